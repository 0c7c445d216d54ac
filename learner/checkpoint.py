"""What a checkpoint holds (model, optimizer, counters, weights version, returns window),
when a run may continue from one, and how it is written without ever ending the run."""

from __future__ import annotations

import logging

from learner.config import LearnerConfig
from learner.errors import LearnerStartError
from learner.normstats import NormStats
from learner.rundir import RunDir
from learner.stats import RunStats
from learner.updater import Updater

log = logging.getLogger(__name__)


class ResumeError(RuntimeError):
    """The checkpoint cannot continue this run; the message says why."""


# Settings that change what the weights or the normalization statistics mean, with the
# flag that sets each. The network's shape is checked on its own (hidden, recurrent).
MEANING = {
    "gamma": "--gamma",
    "reward_scale": "--reward-scale",
    "reward_clip": "--reward-clip",
    "normalize_reward": "--normalize-reward",
    "normalize_obs": "--normalize-obs",
    "lstm_size": "--lstm-size",
}


def checkpoint_state(
    updater: Updater, stats: RunStats, cfg: LearnerConfig, norm: NormStats
) -> dict:
    state = updater.state_dict()
    state["norm"] = norm.state_dict()
    state.update(
        mode=cfg.mode,
        env_id=cfg.env_id,
        env_steps=stats.env_steps,
        episodes=stats.episodes,
        updates=stats.updates,
        wall_seconds=stats.wall_seconds,
        recent_returns=list(stats.recent_returns),
        hidden=list(cfg.hp.hidden),
        recurrent=cfg.hp.recurrent,
        bounded_mean=cfg.hp.bounded_mean,
        env=cfg.env.to_dict(),
    )
    state.update({name: getattr(cfg.hp, name) for name in MEANING})
    return state


def _check_meaning(state: dict, cfg: LearnerConfig) -> None:
    """Checkpoints from before a setting was stored are checked on what they hold."""
    for name, flag in MEANING.items():
        if name not in state:
            continue
        if name == "lstm_size" and not state.get("recurrent", False):
            continue  # no LSTM in the network: its size means nothing
        saved, now = state[name], getattr(cfg.hp, name)
        if isinstance(now, bool):
            if bool(saved) != now:
                want = flag if saved else "--no-" + flag[2:]
                raise ResumeError(
                    f"checkpoint was trained with {name} {'on' if saved else 'off'}, "
                    f"this run has it {'on' if now else 'off'}: resume with {want}"
                )
        elif saved != now:
            raise ResumeError(
                f"checkpoint was trained with {name} {saved}, this run has {now}: "
                f"resume with {flag} {saved}"
            )


def restore(state: dict, updater: Updater, cfg: LearnerConfig, norm: NormStats) -> RunStats:
    """Load `state` into `updater` and `norm`; the run's counters continue in the returned
    stats."""
    if (state["mode"], state["env_id"]) != (cfg.mode, cfg.env_id):
        raise ResumeError(
            f"checkpoint is of mode {state['mode']} on {state['env_id']}, "
            f"not {cfg.mode} on {cfg.env_id}"
        )
    if list(state.get("hidden", cfg.hp.hidden)) != list(cfg.hp.hidden):
        raise ResumeError(
            f"checkpoint has hidden sizes {list(state['hidden'])}, not {list(cfg.hp.hidden)}"
        )
    if state.get("env", cfg.env.to_dict()) != cfg.env.to_dict():
        raise ResumeError(f"checkpoint was made with env settings {state['env']}")
    if bool(state.get("recurrent", False)) != cfg.hp.recurrent:
        kind = "recurrent" if state.get("recurrent") else "feed-forward"
        raise ResumeError(f"checkpoint holds a {kind} network; --recurrent must match it")
    if bool(state.get("bounded_mean", False)) != cfg.hp.bounded_mean:
        # The same weights read as a different policy: tanh(x) is not x.
        flag = "--bounded-mean" if state.get("bounded_mean") else "--no-bounded-mean"
        raise ResumeError(f"checkpoint's policy was trained with {flag}; resume with it")
    _check_meaning(state, cfg)
    try:
        updater.load_state_dict(state)
        norm.load_state_dict(state.get("norm", {}))
    except (KeyError, RuntimeError, ValueError) as exc:
        raise ResumeError(f"checkpoint does not fit this network: {exc}") from None
    stats = RunStats(elapsed_before=float(state["wall_seconds"]))
    stats.env_steps = int(state["env_steps"])
    stats.episodes = int(state["episodes"])
    stats.updates = int(state["updates"])
    stats.recent_returns.extend(float(r) for r in state["recent_returns"])
    return stats


def start_or_resume(
    rundir: RunDir, cfg: LearnerConfig, updater: Updater, norm: NormStats
) -> RunStats | None:
    """The counters a resumed run continues from (its model and statistics loaded into
    `updater` and `norm`), or None for a new run. LearnerStartError, in one line, for a
    checkpoint this run may not overwrite or cannot continue."""
    if not rundir.checkpoint.exists():
        if cfg.resume:
            log.warning("--resume: no checkpoint in %s, starting a new run", rundir.root)
        return None
    if not cfg.resume:
        raise LearnerStartError(
            f"{rundir.root} already holds a checkpoint: pass --resume to continue that "
            "run, or choose another --run-dir"
        )
    try:
        stats = restore(rundir.load_checkpoint(), updater, cfg, norm)
    except ResumeError as exc:
        raise LearnerStartError(str(exc)) from None
    except Exception as exc:  # unreadable file: say which and why, in one line
        raise LearnerStartError(f"cannot load {rundir.checkpoint}: {exc}") from None
    log.info(
        "resumed from %s: version %d, %d env steps",
        rundir.checkpoint,
        updater.version,
        stats.env_steps,
    )
    return stats


def save(
    rundir: RunDir,
    updater: Updater,
    stats: RunStats,
    cfg: LearnerConfig,
    norm: NormStats,
    final: bool = False,
) -> bool:
    """Whether the checkpoint was written. A failed write (a full disk, a lost volume) is
    logged and counted, never fatal: the old checkpoint is intact (atomic_write), and the
    run goes on and tries again at the next interval."""
    norm.sync(updater.model)
    state = checkpoint_state(updater, stats, cfg, norm)
    try:
        rundir.save_checkpoint(state)
    except OSError as exc:
        stats.checkpoint_failures += 1
        then = "the last state is not saved" if final else "retrying at the next interval"
        log.error("checkpoint write to %s failed: %s; %s", rundir.checkpoint, exc, then)
        return False
    return True
