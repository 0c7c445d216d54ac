"""What a learner run holds before anything binds: the env's spec and the target, the model,
the normalization statistics, the settings every welcome carries, and the run directory,
locked and (with --resume) continued from its checkpoint.

Every refusal is a LearnerStartError that names why in one line, raised before the socket
exists, so a learner that cannot run never takes an address.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from learner import checkpoint
from learner.config import LearnerConfig, wire_floats
from learner.errors import LearnerStartError
from learner.normstats import NormStats
from learner.rundir import RunDir, RunDirLocked, write_json
from learner.stats import RunStats
from learner.updater import Updater
from learner.validation import max_work_bytes
from protocol.link import LinkSettings
from protocol.sockets import is_loopback
from protocol.wire import WireFormat
from rlcore.envs import EnvConfig, EnvSpec, UnsupportedEnvError, make_env, probe_env
from rlcore.run_settings import RunSettings


@dataclass(frozen=True)
class RunParts:
    """The parts of a run that the service and its helpers share."""

    cfg: LearnerConfig
    spec: EnvSpec
    target: float | None
    """Stop when mean_return_100 reaches it (None: never)."""
    wire: WireFormat
    settings: dict
    """What every welcome tells an actor (RunSettings and LinkSettings, as one map)."""
    updater: Updater
    norm: NormStats
    stats: RunStats
    """The run's counters; a resumed run's start where its checkpoint left them."""
    rundir: RunDir
    """Locked by this process until the learner closes."""
    max_message_bytes: int


def prepare(cfg: LearnerConfig) -> RunParts:
    """Check `cfg`, build the run's parts and claim its directory, in that order: nothing
    is written to a run directory for settings that cannot run."""
    spec = _probe(cfg)
    import torch

    torch.set_num_threads(cfg.torch_threads)
    target = cfg.target_return if cfg.target_return is not None else _env_threshold(cfg.env)
    wire = WireFormat(cfg.wire_compress, wire_floats(cfg.wire_dtype, spec.discrete))
    try:
        updater = Updater(spec, cfg.hp, cfg.seed, cfg.device)
        limit = cfg.max_message_bytes or max_work_bytes(spec, cfg.hp, updater.num_params)
        settings = welcome_settings(cfg, spec, wire, limit)
    except ValueError as exc:  # settings that do not fit this env's spaces
        raise LearnerStartError(str(exc)) from None
    norm = NormStats(cfg.hp, int(np.prod(spec.obs_shape)))
    refuse_open_bind(cfg)  # before the run directory is touched
    rundir = RunDir(cfg.run_dir)
    stats = _open_run_dir(rundir, cfg, wire, updater, norm)
    return RunParts(cfg, spec, target, wire, settings, updater, norm, stats, rundir, limit)


def welcome_settings(cfg: LearnerConfig, spec: EnvSpec, wire: WireFormat, limit: int) -> dict:
    """What the run trains on and how the link is used: two typed halves of one map, each
    of which an actor reads back."""
    run = RunSettings(cfg.mode, cfg.env, spec, cfg.hp, cfg.seed)
    link = LinkSettings(
        wire,
        cfg.frame_once,
        cfg.max_outstanding,
        cfg.max_credit,
        cfg.heartbeat_interval,
        cfg.heartbeat_timeout,
        limit,
        cfg.hp.rollout_len * cfg.hp.num_envs,
    )
    return {**run.to_dict(), **link.to_dict()}


def _probe(cfg: LearnerConfig) -> EnvSpec:
    try:
        cfg.validate()
        return probe_env(cfg.env)
    except (ValueError, UnsupportedEnvError) as exc:
        raise LearnerStartError(str(exc)) from None


def _env_threshold(env_config: EnvConfig) -> float | None:
    env = make_env(env_config)
    try:
        threshold = env.spec.reward_threshold if env.spec is not None else None
        return None if threshold is None else float(threshold)
    finally:
        env.close()


def _open_run_dir(
    rd: RunDir, cfg: LearnerConfig, wire: WireFormat, updater: Updater, norm: NormStats
) -> RunStats:
    """Lock the directory, then start the run or resume it; the stats it counts on."""
    try:
        rd.create()
        # Before anything else touches the directory: another learner's temp files
        # are its writes in progress, not stale ones.
        rd.lock()
    except (OSError, RunDirLocked) as exc:
        raise LearnerStartError(str(exc)) from None
    try:
        rd.remove_stale_temp_files()
        resumed = checkpoint.start_or_resume(rd, cfg, updater, norm)
        # the settings as resolved
        write_json(rd.config, {**cfg.to_dict(), "wire": wire.to_dict()})
    except BaseException:
        rd.unlock()
        raise
    return RunStats() if resumed is None else resumed


def refuse_open_bind(cfg: LearnerConfig) -> None:
    """A learner without keys serves only loopback, unless told the network is trusted."""
    if cfg.keys_dir is None and not cfg.insecure and not is_loopback(cfg.bind):
        raise LearnerStartError(
            f"refusing to bind {cfg.bind} without keys: anyone who reaches it could "
            "join and send work, unencrypted. Create keys with `a3c keygen DIR` and pass "
            "--keys-dir DIR/learner, or pass --insecure on a network you trust"
        )
