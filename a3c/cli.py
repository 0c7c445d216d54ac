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
from learner.config import DEFAULTS as CONFIG
from rlcore.hyperparams import Hyperparams

DEFAULTS = Hyperparams()


def option(*names: str, **kwargs):
    """A click option whose environment variable is A3C_<LONG NAME>."""
    long = next(n for n in names if n.startswith("--")).split("/")[0]
    kwargs.setdefault("envvar", "A3C_" + long[2:].upper().replace("-", "_"))
    kwargs.setdefault("show_envvar", True)
    return click.option(*names, **kwargs)


def _hidden(_ctx, _param, value: str) -> tuple[int, ...]:
    try:
        sizes = tuple(int(x) for x in value.split(",") if x.strip())
    except ValueError:
        raise click.BadParameter(f"{value!r}: expected sizes like 64,64") from None
    if not sizes or min(sizes) <= 0:
        raise click.BadParameter(f"{value!r}: expected positive sizes like 64,64")
    return sizes


def _env_kwargs(_ctx, _param, value: str | None) -> dict:
    if not value:
        return {}
    try:
        kwargs = json.loads(value)
    except json.JSONDecodeError as exc:
        raise click.BadParameter(f"{value!r} is not JSON: {exc}") from None
    if not isinstance(kwargs, dict):
        raise click.BadParameter(f"{value!r}: expected a JSON object like '{{\"g\": 9.81}}'")
    return kwargs


def _wrappers(_ctx, _param, value: str | None) -> tuple[str, ...]:
    from rlcore.wrappers import WRAPPERS

    names = tuple(w.strip() for w in (value or "").split(",") if w.strip())
    unknown = [w for w in names if w not in WRAPPERS]
    if unknown:
        raise click.BadParameter(f"unknown wrapper {unknown[0]!r}; known: {', '.join(WRAPPERS)}")
    return names


LEARNER_OPTIONS = [
    option(
        "--mode",
        type=click.Choice(["gradient", "data"]),
        required=True,
        help="gradient: actors send gradients; data: actors send experience.",
    ),
    option("--env", "env_id", default="CartPole-v1", show_default=True, help="Gymnasium env id."),
    option(
        "--env-kwargs",
        default=None,
        callback=_env_kwargs,
        help="JSON keyword arguments of gymnasium.make, e.g. '{\"g\": 9.81}'.",
    ),
    option(
        "--wrappers",
        default=None,
        callback=_wrappers,
        help="Comma-separated env wrappers: mask-velocity, channels-first, atari, "
        "atari-episodic-life (ALE/ ids get atari and MinAtar/ ids channels-first by default).",
    ),
    option(
        "--preset",
        default=None,
        help="Settings by name from the shipped presets (see README); 'none' turns them off "
        "[default: the preset matching --env, if any]. Flags you give override its values.",
    ),
    option("--run-dir", default=None, help="Run directory [default: runs/ENV-MODE-TIME]."),
    option(
        "--target-return",
        type=float,
        default=None,
        help="Stop when mean_return_100 reaches it [default: the env's threshold].",
    ),
    option("--max-env-steps", type=click.IntRange(min=1), default=None, help="Env-step budget."),
    option(
        "--max-seconds",
        type=click.FloatRange(min=0, min_open=True),
        default=None,
        help="Wall-time budget.",
    ),
    option("--seed", type=int, default=CONFIG["seed"], show_default=True),
    option(
        "--lr", type=click.FloatRange(min=0, min_open=True), default=DEFAULTS.lr, show_default=True
    ),
    option(
        "--rollout-len",
        type=click.IntRange(1, 10_000),
        default=DEFAULTS.rollout_len,
        show_default=True,
        help="Env steps per env in one rollout.",
    ),
    option(
        "--num-envs",
        type=click.IntRange(1, 4096),
        default=DEFAULTS.num_envs,
        show_default=True,
        help="Envs per actor, stepped with batched inference.",
    ),
    option("--gamma", type=click.FloatRange(0, 1), default=DEFAULTS.gamma, show_default=True),
    option(
        "--gae-lambda",
        type=click.FloatRange(0, 1),
        default=DEFAULTS.gae_lambda,
        show_default=True,
        help="Lambda of advantages and value targets: 1 is A3C's n-step returns; lower cuts "
        "their variance (GAE; V-trace's lambda in data mode).",
    ),
    option(
        "--reward-scale",
        type=click.FloatRange(min=0, min_open=True),
        default=DEFAULTS.reward_scale,
        show_default=True,
        help="Multiplies rewards in the loss.",
    ),
    option(
        "--entropy-coef",
        type=click.FloatRange(min=0),
        default=DEFAULTS.entropy_coef,
        show_default=True,
    ),
    option(
        "--value-coef", type=click.FloatRange(min=0), default=DEFAULTS.value_coef, show_default=True
    ),
    option(
        "--max-grad-norm",
        type=click.FloatRange(min=0, min_open=True),
        default=DEFAULTS.max_grad_norm,
        show_default=True,
    ),
    option(
        "--batch-lr-scale",
        type=click.FloatRange(min=1),
        default=DEFAULTS.batch_lr_scale,
        show_default=True,
        help="Data mode: an update from k rollouts steps with lr*k**P, at most lr times this "
        "(1: off).",
    ),
    option(
        "--batch-lr-power",
        type=click.FloatRange(0, 1),
        default=DEFAULTS.batch_lr_power,
        show_default=True,
        help="P of that rule: 0.5 the square-root rule, 1 as far per env step as gradient mode.",
    ),
    option(
        "--reward-clip",
        type=click.FloatRange(min=0),
        default=DEFAULTS.reward_clip,
        show_default=True,
        help="Clip rewards to [-C, C] in the loss (0: off); reported returns stay unclipped.",
    ),
    option(
        "--normalize-obs/--no-normalize-obs",
        default=DEFAULTS.normalize_obs,
        show_default=True,
        help="Normalize observations by running statistics the learner merges from all actors.",
    ),
    option(
        "--normalize-reward/--no-normalize-reward",
        default=DEFAULTS.normalize_reward,
        show_default=True,
        help="Divide rewards in the loss by the running std of discounted returns.",
    ),
    option(
        "--lr-decay/--no-lr-decay",
        default=DEFAULTS.lr_decay,
        show_default=True,
        help="Decay the learning rate linearly to 0 over --max-env-steps.",
    ),
    option(
        "--hidden",
        default=",".join(map(str, DEFAULTS.hidden)),
        show_default=True,
        callback=_hidden,
        help="Hidden layer sizes of the MLP.",
    ),
    option(
        "--recurrent",
        is_flag=True,
        default=False,
        help="An LSTM core: the policy remembers within an episode.",
    ),
    option(
        "--log-std-init",
        type=float,
        default=DEFAULTS.log_std_init,
        show_default=True,
        help="Continuous actions: initial log std of the Gaussian policy.",
    ),
    option(
        "--bounded-mean/--no-bounded-mean",
        default=DEFAULTS.bounded_mean,
        show_default=True,
        help="Continuous actions: squash the Gaussian's mean into the action box (tanh).",
    ),
    option(
        "--split-batches/--no-split-batches",
        default=DEFAULTS.split_batches,
        show_default=True,
        help="Data mode: one update per rollout instead of one per batch of rollouts.",
    ),
    option(
        "--lstm-size",
        type=click.IntRange(1, 65536),
        default=DEFAULTS.lstm_size,
        show_default=True,
        help="LSTM units with --recurrent.",
    ),
    option(
        "--max-staleness",
        type=click.IntRange(min=0),
        default=CONFIG["max_staleness"],
        show_default=True,
        help="Drop work computed on weights more than this many updates old.",
    ),
    option(
        "--wire-compress",
        type=click.Choice(["zstd", "lz4", "none"]),
        default=CONFIG["wire_compress"],
        show_default=True,
        help="Lossless codec for frames (uint8 and bool arrays) on the wire.",
    ),
    option(
        "--wire-dtype",
        type=click.Choice(["auto", "float32", "bfloat16", "float16"]),
        default=CONFIG["wire_dtype"],
        show_default=True,
        help="Weights and gradients on the wire (the learner's copy stays float32): 16-bit "
        "halves their bytes; auto is bfloat16 for discrete actions, float32 for continuous.",
    ),
    option(
        "--frame-once/--no-frame-once",
        default=CONFIG["frame_once"],
        show_default=True,
        help="Data mode, stacked frames: each new frame travels once.",
    ),
    option(
        "--weights-lag",
        type=click.IntRange(min=0),
        default=CONFIG["weights_lag"],
        show_default=True,
        help="Send an actor new weights only when its copy is more than this many versions "
        "old (version-only replies otherwise).",
    ),
    option(
        "--max-credit",
        type=click.IntRange(min=1),
        default=CONFIG["max_credit"],
        show_default=True,
        help="Most work messages an actor keeps in flight to cover a long round trip "
        "(2 turns pacing off).",
    ),
    option(
        "--checkpoint-every",
        type=click.FloatRange(min=0, min_open=True),
        default=CONFIG["checkpoint_every"],
        show_default=True,
        help="Seconds between checkpoints.",
    ),
    option(
        "--metrics-every",
        type=click.FloatRange(min=0.1),
        default=CONFIG["metrics_every"],
        show_default=True,
        help="Seconds between metrics.jsonl records.",
    ),
    option(
        "--heartbeat-timeout",
        type=click.FloatRange(min=1.0),
        default=CONFIG["heartbeat_timeout"],
        show_default=True,
        help="Seconds of silence after which an actor counts as gone (and actors reconnect).",
    ),
    option(
        "--device",
        default=CONFIG["device"],
        show_default=True,
        help="Learner device: cpu, cuda, cuda:1, mps.",
    ),
    option(
        "--tensorboard/--no-tensorboard",
        default=CONFIG["tensorboard"],
        show_default=True,
        help="TensorBoard scalars in the run directory (needs the viz group).",
    ),
    option("--resume", is_flag=True, default=False, help="Continue from the run dir's checkpoint."),
    option(
        "--insecure",
        is_flag=True,
        default=False,
        help="Allow a non-loopback --bind without --keys-dir: every peer that reaches it may "
        "join, unencrypted (only on a network you trust).",
    ),
    option("--verbose", "-v", is_flag=True, default=False),
]


def learner_options(fn):
    for opt in reversed(LEARNER_OPTIONS):
        fn = opt(fn)
    return fn


def hp_options() -> tuple[str, ...]:
    """The Hyperparams fields the command line sets (the others keep their defaults)."""

    def probe():
        pass

    for opt in LEARNER_OPTIONS:
        probe = opt(probe)
    names = {p.name for p in probe.__click_params__}
    return tuple(f.name for f in fields(Hyperparams) if f.name in names)


def _apply_preset(kw: dict) -> tuple[dict, dict | None]:
    """Hyperparameter values: the preset's, where the user gave no flag or A3C_* variable."""
    from click.core import ParameterSource

    from rlcore.presets import PresetError, resolve

    try:
        preset = resolve(kw["preset"], kw["env_id"])
    except PresetError as exc:
        raise click.BadParameter(str(exc), param_hint="'--preset'") from None
    values = {name: kw[name] for name in hp_options()}
    if preset is None:
        return values, None
    ctx = click.get_current_context()
    applied, overridden = {}, []
    for name, value in preset.settings.items():
        if name in values and ctx.get_parameter_source(name) not in (
            ParameterSource.DEFAULT,
            ParameterSource.DEFAULT_MAP,
            None,
        ):
            overridden.append(name)
            continue
        values[name] = tuple(value) if name == "hidden" else value
        applied[name] = value
    record = {
        "name": preset.name,
        "chosen_by": preset.chosen_by,
        "applied": applied,
        "overridden": sorted(overridden),
    }
    return values, record


def _config(
    bind: str,
    keys_dir: str | None = None,
    max_message_bytes: int | None = None,
    authorized_dir: str | None = None,
    **kw,
):
    from learner.config import LearnerConfig

    values, preset = _apply_preset(kw)
    try:
        hp = Hyperparams.from_dict(values)
    except (TypeError, ValueError) as exc:
        raise click.ClickException(f"bad hyperparameters: {exc}") from None
    name = kw["env_id"].replace("/", "-")
    run_dir = kw["run_dir"] or f"runs/{name}-{kw['mode']}-{time.strftime('%Y%m%d-%H%M%S')}"
    # Every option named as a LearnerConfig field goes there as given: one list of
    # settings (the dataclass), not a second one here.
    resolved = {
        "run_dir": run_dir,
        "bind": bind,
        "hp": hp,
        "keys_dir": keys_dir,
        "authorized_dir": authorized_dir,
        "max_message_bytes": max_message_bytes,
        "preset": preset,
    }
    given = {f.name: kw[f.name] for f in fields(LearnerConfig) if f.name in kw}
    return LearnerConfig(**{**given, **resolved})


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

        try:
            return fn(*args, **kwargs)
        except (LearnerStartError, EvaluateError, KeysError, PlotError, StatusError) as exc:
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


@main.command()
@learner_options
@option(
    "--bind",
    default="tcp://127.0.0.1:5555",
    show_default=True,
    help="Address actors connect to. Loopback by default.",
)
@option(
    "--keys-dir",
    type=click.Path(file_okay=False),
    default=None,
    help="CURVE keys (a3c keygen): encrypt, and accept only the authorized actors.",
)
@option(
    "--authorized-dir",
    type=click.Path(file_okay=False),
    default=None,
    help="Public keys of the actors to accept [default: KEYS_DIR/authorized]; re-read when "
    "it changes.",
)
@option(
    "--max-message-bytes",
    type=click.IntRange(min=4096),
    default=None,
    help="A peer that sends a larger message is disconnected [default: twice the largest "
    "work message of this run's settings, at least 1 MiB].",
)
@one_line_errors
def learner(bind, keys_dir, authorized_dir, max_message_bytes, verbose, **kw):
    """Run the learner; actors connect to its --bind address."""
    from learner.service import Learner

    setup_logging(verbose)
    config = _config(bind, keys_dir, max_message_bytes, authorized_dir, **kw)
    summary = Learner(config).run()
    _print_summary(summary)
    raise SystemExit(_exit_code(summary))


@main.command()
@option(
    "--learner",
    "learner_address",
    default="tcp://127.0.0.1:5555",
    show_default=True,
    help="The learner's address; everything else comes from its handshake.",
)
@option(
    "--workers",
    type=click.IntRange(1, 1024),
    default=1,
    show_default=True,
    help="Independent actor processes to run.",
)
@option("--seed", type=int, default=None, help="Base seed [default: the learner's seed].")
@option(
    "--keys-dir",
    type=click.Path(file_okay=False),
    default=None,
    help="This actor's CURVE key pair and the learner's public key (a3c keygen).",
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


@main.command()
@learner_options
@option(
    "--actors",
    type=click.IntRange(1, 256),
    default=2,
    show_default=True,
    help="Actor processes to start on this machine.",
)
@option(
    "--bind",
    default="tcp://127.0.0.1:*",
    show_default=True,
    help="Learner address (a free port by default).",
)
@one_line_errors
def train(actors, bind, verbose, **kw):
    """Train on this machine: a learner and N actor processes, stopped when done."""
    from a3c.train import train as run_train

    setup_logging(verbose)
    summary = run_train(_config(bind, **kw), actors, verbose)
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
