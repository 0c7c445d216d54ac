"""The `a3c` console script. Every option can also be set as A3C_<OPTION> in the environment
(e.g. A3C_MODE=data, A3C_MAX_ENV_STEPS=100000), so containers are driven by variables."""

from __future__ import annotations

import functools
import json
import signal
import time
from dataclasses import fields

import click

from a3c.logs import setup_logging
from a3c.options import GroupedCommand, apply, option, options_from
from learner.config import LearnerConfig
from rlcore.hyperparams import Hyperparams

ALGORITHM = options_from(Hyperparams)
"""Every hyperparameter with a flag; a preset fills the ones the user leaves unset."""

RUN = options_from(LearnerConfig, run_dir={"required": False, "default": None})
"""The learner's own settings with a flag (bind and keys differ per command: see below); the
run directory is named after the env, mode and time unless given."""

PRESET = option(
    "--preset",
    default=None,
    group="algorithm",
    help="Settings by name from the shipped presets (docs: presets); 'none' turns them off "
    "[default: the preset matching --env, if any]. Flags you give override its values.",
)
PRESET_FILE = option(
    "--preset-file",
    type=click.Path(dir_okay=False),
    default=None,
    group="algorithm",
    help="Your own presets (the shipped file's format; benchmarks/tune.py writes entries), "
    "searched before the shipped ones by --preset name and by env.",
)
VERBOSE = option("--verbose", "-v", is_flag=True, default=False, help="Debug logging.")
LEARNER_OPTIONS = [RUN[0], PRESET, PRESET_FILE, *ALGORITHM, *RUN[1:], VERBOSE]


def learner_address(help: str):
    """--learner, where an actor or a relay reaches the learner (or a relay): a list of
    addresses, tried in turn."""
    return option(
        "--learner",
        "learner_address",
        default="tcp://127.0.0.1:5555",
        show_default=True,
        help=help + " A comma-separated list adds fallbacks, tried in turn.",
    )


def folder_option(name: str, help: str):
    """An optional folder, such as a keys directory."""
    return option(name, type=click.Path(file_okay=False), default=None, help=help)


def hp_options() -> tuple[str, ...]:
    """The Hyperparams fields the command line sets (the others keep their defaults)."""
    return tuple(opt(lambda: None).__click_params__[0].name for opt in ALGORITHM)


def _hyperparams(kw: dict) -> tuple[Hyperparams, dict | None]:
    """The run's hyperparameters: flags and A3C_* variables, then the preset, then defaults."""
    from click.core import ParameterSource

    from rlcore.presets import PresetError, load_file, merge, resolve

    try:
        own = load_file(kw["preset_file"]) if kw["preset_file"] else ()
    except PresetError as exc:
        raise click.BadParameter(str(exc), param_hint="'--preset-file'") from None
    try:
        preset = resolve(kw["preset"], kw["env_id"], own)
    except PresetError as exc:
        raise click.BadParameter(str(exc), param_hint="'--preset'") from None
    ctx = click.get_current_context()
    unset = (ParameterSource.DEFAULT, ParameterSource.DEFAULT_MAP, None)
    names = hp_options()
    given = {n for n in names if ctx.get_parameter_source(n) not in unset}
    values, record = merge(preset, {n: kw[n] for n in names}, given)
    try:
        return Hyperparams.from_dict(values), record
    except (TypeError, ValueError) as exc:
        raise click.ClickException(f"bad hyperparameters: {exc}") from None


def _config(**kw) -> LearnerConfig:
    """LearnerConfig from the options: every one named as a field goes there as given."""
    hp, preset = _hyperparams(kw)
    name = kw["env_id"].replace("/", "-")
    run_dir = kw["run_dir"] or f"runs/{name}-{kw['mode']}-{time.strftime('%Y%m%d-%H%M%S')}"
    given = {f.name: kw[f.name] for f in fields(LearnerConfig) if f.name in kw}
    return LearnerConfig(**{**given, "run_dir": run_dir, "hp": hp, "preset": preset})


def one_line_errors(fn):
    """Known failures become `Error: <one line>` and exit 1, never a traceback."""

    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        # Light modules only: `a3c status` is a probe and must not pay for torch.
        from a3c.errors import EvaluateError
        from a3c.plot import PlotError
        from a3c.status import StatusError
        from learner.errors import LearnerStartError
        from protocol.security import KeysError
        from relay.cli import RelayStartError

        try:
            return fn(*args, **kwargs)
        except (
            LearnerStartError,
            EvaluateError,
            KeysError,
            PlotError,
            StatusError,
            RelayStartError,
        ) as exc:
            raise click.ClickException(str(exc).splitlines()[0]) from None

    return wrapper


def _exit_code(summary: dict) -> int:
    """0 only for a finished run (target, budget, time). Interrupted, the learner has
    checkpointed but the run is not done: 128 + the signal, as a shell reports it, so a
    Job or a restart policy starts it again (with --resume) instead of counting it done."""
    reason = summary["stop_reason"]
    if reason.startswith("interrupted ("):
        name = reason.removeprefix("interrupted (").removesuffix(")")
        return 128 + getattr(signal, name, signal.SIGTERM)
    return 0


def _print_summary(summary: dict) -> None:
    mean = summary["mean_return_100"]
    click.echo(
        f"{summary['stop_reason']}: mean_return_100 "
        f"{'-' if mean is None else f'{mean:.1f}'} after {summary['env_steps']:,} env steps, "
        f"{summary['episodes']:,} episodes, {summary['wall_seconds']:.1f}s"
        f"{' (solved)' if summary['solved'] else ''}"
    )


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
def main():
    """Distributed A3C over ZeroMQ: one learner, any number of actors."""


@main.command(cls=GroupedCommand)
@apply(LEARNER_OPTIONS)
@apply(
    options_from(
        LearnerConfig,
        ("bind", "keys_dir", "authorized_dir", "max_message_bytes"),
        keys_dir={"type": click.Path(file_okay=False)},
        authorized_dir={"type": click.Path(file_okay=False)},
    )
)
@one_line_errors
def learner(verbose, **kw):
    """Run the learner; actors connect to its --bind address."""
    from learner.service import Learner

    setup_logging(verbose)
    config = _config(**kw)
    summary = Learner(config).run()
    _print_summary(summary)
    raise SystemExit(_exit_code(summary))


@main.command()
@learner_address("The learner's (or a relay's) address; everything else comes from its handshake.")
@option(
    "--workers",
    type=click.IntRange(1, 1024),
    default=1,
    show_default=True,
    help="Independent actor processes to run.",
)
@option("--seed", type=int, default=None, help="Base seed [default: the learner's seed].")
@folder_option(
    "--keys-dir", "This actor's CURVE key pair and the learner's public key (a3c keygen)."
)
@option(
    "--after-stop",
    type=click.Choice(["exit", "wait"]),
    default="exit",
    show_default=True,
    help="When the learner ends its run: exit 0, or wait quietly (back-off up to 60 s) "
    "for its next run, as long-lived deployments want.",
)
@option(
    "--learner-timeout",
    type=click.FloatRange(min=0),
    default=None,
    help="Once joined, exit (code 4) when no learner answers for this many seconds; "
    "0: wait forever [default: 300, forever with --after-stop wait].",
)
@option("--verbose", "-v", is_flag=True, default=False)
@one_line_errors
def actor(learner_address, workers, seed, keys_dir, after_stop, learner_timeout, verbose):
    """Run actors for the learner at --learner, until it says stop."""
    from protocol.security import load_client_keys

    setup_logging(verbose)
    if keys_dir:
        load_client_keys(keys_dir)  # fail here, once, with a clear message
    if workers == 1:
        from actor.worker import run_actor

        raise SystemExit(run_actor(learner_address, seed, keys_dir, after_stop, learner_timeout))
    from actor.pool import run_pool

    raise SystemExit(
        run_pool(
            learner_address,
            workers,
            seed,
            functools.partial(setup_logging, verbose),  # each child logs as this process
            keys_dir,
            after_stop,
            learner_timeout,
        )
    )


@main.command()
@learner_address("The learner's address.")
@option(
    "--bind",
    default="tcp://127.0.0.1:5556",
    show_default=True,
    help="Address this relay's actors connect to (as to a learner). Loopback by default.",
)
@folder_option(
    "--keys-dir",
    "This relay's key pair for the learner and the learner's public key, as an actor's "
    "(a3c keygen).",
)
@folder_option(
    "--serve-keys-dir",
    "This relay's server pair for its own actors, as a learner's (a3c keygen): encrypt, "
    "and accept only the authorized actors.",
)
@folder_option(
    "--authorized-dir",
    "Public keys of the actors to accept [default: SERVE_KEYS_DIR/authorized].",
)
@option("--relay-id", default=None, help="This relay's id at the learner [default: relay-HOST].")
@option(
    "--metrics-port",
    type=click.IntRange(0, 65535),
    default=None,
    help="Serve Prometheus metrics over HTTP on this port [default: none].",
)
@option(
    "--after-stop",
    type=click.Choice(["exit", "wait"]),
    default="exit",
    show_default=True,
    help="When the learner ends its run: exit 0, or wait for its next run.",
)
@option(
    "--insecure",
    is_flag=True,
    default=False,
    help="Allow a non-loopback --bind without --serve-keys-dir.",
)
@option("--verbose", "-v", is_flag=True, default=False)
@one_line_errors
def relay(learner_address, bind, keys_dir, serve_keys_dir, authorized_dir, relay_id,
          metrics_port, after_stop, insecure, verbose):  # fmt: skip
    """Serve the actors of this host (or rack) for the learner at --learner: each weights
    version crosses the learner's link once for all of them, and their work goes up folded."""
    from relay.cli import start_relay

    setup_logging(verbose)
    raise SystemExit(
        start_relay(
            learner_address,
            bind,
            keys_dir,
            serve_keys_dir,
            authorized_dir,
            relay_id,
            after_stop,
            insecure,
            metrics_port,
        )
    )


@main.command()
@click.argument("directory", type=click.Path(file_okay=False))
@option(
    "--actors",
    type=click.IntRange(1, 10_000),
    default=1,
    show_default=True,
    help="Actor key pairs to create.",
)
@click.option("--force", is_flag=True, default=False, help="Replace keys that exist.")
@click.option(
    "--keep-existing",
    is_flag=True,
    default=False,
    help="If the keys exist, leave them and succeed (for a set-up step run on every start).",
)
def keygen(directory, actors, force, keep_existing):
    """Write CURVE keys: DIRECTORY/learner for the learner, DIRECTORY/actor-I per actor.
    Secret files are created mode 0600; existing keys are left alone unless --force."""
    from protocol.security import KeysError
    from protocol.security import keygen as make_keys

    if force and keep_existing:
        raise click.UsageError("--force and --keep-existing exclude each other")
    try:
        written = make_keys(directory, actors, force=force, keep_existing=keep_existing)
    except KeysError as exc:
        raise click.ClickException(str(exc).splitlines()[0]) from None
    if not written:
        click.echo(f"keys in {directory} exist; left as they are")
        return
    for path in written:
        click.echo(f"wrote {path}")
    click.echo(
        f"learner: --keys-dir {directory}/learner    actor I: --keys-dir {directory}/actor-I"
    )


@main.command(cls=GroupedCommand)
@apply(LEARNER_OPTIONS)
@option(
    "--actors",
    type=click.IntRange(1, 256),
    default=2,
    show_default=True,
    group="run",
    help="Actor processes to start on this machine.",
)
@apply(
    options_from(
        LearnerConfig,
        ("bind",),
        bind={"default": "tcp://127.0.0.1:*", "help": "Learner address (a free port by default)."},
    )
)
@one_line_errors
def train(actors, verbose, **kw):
    """Train on this machine: a learner and N actor processes, stopped when done."""
    from a3c.train import train as run_train

    setup_logging(verbose)
    summary = run_train(_config(**kw), actors, verbose)
    _print_summary(summary)
    raise SystemExit(_exit_code(summary))


@main.command()
@click.argument("address")
@option(
    "--keys-dir",
    type=click.Path(file_okay=False),
    default=None,
    help="A CURVE key pair authorized by the learner, and its public key (a3c keygen).",
)
@click.option("--timeout", type=click.FloatRange(min=0.1), default=3.0, show_default=True)
@click.option("--json", "as_json", is_flag=True, default=False, help="Print the raw JSON.")
@one_line_errors
def status(address, keys_dir, timeout, as_json):
    """Ask the learner at ADDRESS (e.g. tcp://host:5555) for its live state."""
    from a3c.status import query, render
    from protocol.security import load_client_keys

    state = query(address, timeout, load_client_keys(keys_dir) if keys_dir else None)
    click.echo(json.dumps(state, indent=2) if as_json else render(state))


@main.command()
@click.argument("run_dirs", nargs=-1, required=True, type=click.Path(exists=True, file_okay=False))
@click.option("-o", "--out", default="curve.png", show_default=True, help="Image to write.")
@click.option("--title", default=None, help="Figure title.")
@one_line_errors
def plot(run_dirs, out, title):
    """Plot mean return against env steps and wall seconds for one or more RUN_DIRS."""
    from a3c.plot import plot as make_plot

    drawn = make_plot(list(run_dirs), out, title)
    click.echo(f"wrote {out} ({drawn} run{'s' if drawn != 1 else ''})")


@main.command()
@click.argument("run_dir", type=click.Path(exists=True, file_okay=False))
@option("--episodes", type=click.IntRange(min=1), default=100, show_default=True)
@option(
    "--stochastic",
    is_flag=True,
    default=False,
    help="Sample actions instead of taking the most likely one.",
)
@option("--seed", type=int, default=0, show_default=True)
@option(
    "--video",
    type=click.Path(dir_okay=False),
    default=None,
    help="Record episodes to this .mp4 or .gif instead (needs the viz group).",
)
@option(
    "--video-episodes",
    type=click.IntRange(min=1),
    default=3,
    show_default=True,
    help="Episodes to record with --video.",
)
@one_line_errors
def evaluate(run_dir, episodes, stochastic, seed, video, video_episodes):
    """Run the latest checkpoint of RUN_DIR and print the mean and std of the return."""
    from a3c.evaluate import evaluate as run_evaluate

    if video:
        from a3c.video import record

        results = record(run_dir, video, video_episodes, stochastic, seed)
        for i, (ret, length) in enumerate(results):
            click.echo(f"episode {i}: return {ret:.2f}, {length} steps")
        click.echo(f"wrote {video}")
        return
    mean, std = run_evaluate(run_dir, episodes, stochastic, seed)
    policy = "stochastic" if stochastic else "greedy"
    click.echo(f"mean return {mean:.2f} +/- {std:.2f} over {episodes} episodes ({policy} policy)")
