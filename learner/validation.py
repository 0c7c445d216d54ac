"""What the learner accepts: the array specs of each work message, plus the checks that
need the network spec (action range, truncation bookkeeping, env-step counts)."""

from __future__ import annotations

import math

import numpy as np

from protocol import ArraySpec, CodecError, Episodes, Gradient, Rollout, check_arrays
from rlcore import framestack
from rlcore.envs import EnvSpec
from rlcore.hyperparams import Hyperparams
from rlcore.rollout import RolloutBatch

MAX_GAUSSIAN_ACTION = 1e6
MAX_GAUSSIAN_LOG_DENSITY = 20.0
MAX_ABS_RETURN = 1e12
"""An episode return beyond this is a forged or broken report: a hundred of them still sum
to a finite mean."""
MAX_EPISODE_LENGTH = 2**40
MAX_ABS_REWARD = 1e9
"""A step reward beyond this is forged or broken; within it, a rollout's losses stay finite."""
MIN_MESSAGE_LIMIT = 1 << 20


def max_work_bytes(spec: EnvSpec, hp: Hyperparams, num_params: int) -> int:
    """A message size limit that every honest work message fits: twice the plain size of the
    largest rollout this run's actors can send (every step a truncation: K = T * E), or of a
    gradient, plus room for the header and statistics; at least 1 MiB."""
    T, E = hp.rollout_len, hp.num_envs
    dims = {"E": E, "K": T * E, "R": T * E}
    rollout = 0
    for packed in (False, True):
        total = 0
        for s in rollout_specs(spec, hp, packed).values():
            count = np.prod([dims.get(d, d) if isinstance(d, str) else d for d in s.shape])
            total += int(count) * np.dtype(s.dtype).itemsize
        rollout = max(rollout, total)
    stats = 8 * 4 * (int(np.prod(spec.obs_shape)) + 2)  # moments, float64
    return max(MIN_MESSAGE_LIMIT, 2 * (max(rollout, 4 * num_params) + stats) + (64 << 10))


def rollout_specs(spec: EnvSpec, hp: Hyperparams, packed: bool = False) -> dict[str, ArraySpec]:
    """packed: observations as frame-once arrays (rlcore.framestack) instead of obs and
    bootstrap_obs."""
    T, obs, dtype = hp.rollout_len, spec.obs_shape, spec.obs_dtype
    if spec.discrete:
        actions = ArraySpec("int64", (T, "E"))
    else:
        actions = ArraySpec("float32", (T, "E", spec.action_dim))
    specs = {
        "obs": ArraySpec(dtype, (T, "E", *obs)),
        "actions": actions,
        "rewards": ArraySpec("float32", (T, "E")),
        "terminated": ArraySpec("bool", (T, "E")),
        "truncated": ArraySpec("bool", (T, "E")),
        "behaviour_logp": ArraySpec("float32", (T, "E")),
        "bootstrap_obs": ArraySpec(dtype, ("E", *obs)),
        "trunc_index": ArraySpec("int64", ("K",)),
        "trunc_obs": ArraySpec(dtype, ("K", *obs)),
    }
    if packed:
        del specs["obs"], specs["bootstrap_obs"]
        specs["stack0"] = ArraySpec(dtype, ("E", *obs))
        specs["frames"] = ArraySpec(dtype, (T, "E", *obs[1:]))
        specs["restack_index"] = ArraySpec("int64", ("R",))
        specs["restack_obs"] = ArraySpec(dtype, ("R", obs[0] - 1, *obs[1:]))
    if hp.recurrent:
        specs["first0"] = ArraySpec("bool", ("E",))
        specs["state_h"] = ArraySpec("float32", ("E", hp.lstm_size))
        specs["state_c"] = ArraySpec("float32", ("E", hp.lstm_size))
    return specs


def check_rollout(msg: Rollout, spec: EnvSpec, hp: Hyperparams) -> RolloutBatch:
    """The rollout a message carries, every array checked; frame-once observations are
    rebuilt here."""
    packed = "frames" in msg.arrays and framestack.can_pack(spec.obs_shape, spec.obs_dtype)
    dims = check_arrays(msg.arrays, rollout_specs(spec, hp, packed))
    E = dims["E"]
    if hp.num_envs != E:  # every actor steps the number of envs its welcome names
        raise CodecError("bad_shape", f"{E} envs, the run's actors step {hp.num_envs}")
    a = msg.arrays
    _check_actions(a["actions"], spec)
    if hp.recurrent and np.abs(a["state_h"]).max(initial=0) > 1.0 + 1e-5:
        raise CodecError("bad_value", "LSTM output state outside [-1, 1]")
    if not np.array_equal(a["trunc_index"], np.flatnonzero(a["truncated"])):
        raise CodecError("bad_value", "trunc_index does not match truncated")
    _check_logp(a["behaviour_logp"], spec)
    if np.abs(a["rewards"]).max(initial=0) > MAX_ABS_REWARD:
        raise CodecError("bad_value", f"a reward beyond +-{MAX_ABS_REWARD:g}")
    if msg.env_steps != hp.rollout_len * E:
        raise CodecError(
            "bad_value", f"env_steps {msg.env_steps} for a {hp.rollout_len}x{E} rollout"
        )
    if packed:
        try:
            obs, bootstrap_obs = framestack.unpack(a)
        except ValueError as exc:
            raise CodecError("bad_value", str(exc)) from None
        a = {k: v for k, v in a.items() if k not in framestack.PACKED}
        a.update(obs=obs, bootstrap_obs=bootstrap_obs)
    return RolloutBatch.from_arrays(a)


def _check_logp(logp: np.ndarray, spec: EnvSpec) -> None:
    """A probability is at most 1, so a categorical log-probability is at most 0. A Gaussian
    density has no such bound: a narrow one exceeds 1 near its mean (log-density above 0),
    but not beyond MAX_GAUSSIAN_LOG_DENSITY per dimension (a std of e^-20)."""
    bound = 1e-4 if spec.discrete else MAX_GAUSSIAN_LOG_DENSITY * spec.action_dim
    if logp.max() > bound:
        raise CodecError("bad_value", f"log-probability above {bound:g}")


def _check_actions(actions: np.ndarray, spec: EnvSpec) -> None:
    if spec.discrete:
        if actions.min() < 0 or actions.max() >= spec.num_actions:
            raise CodecError("bad_value", "action out of range")
    elif np.abs(actions).max() > MAX_GAUSSIAN_ACTION:
        # Gaussian samples are unbounded, but not this far out: a forged or broken sender.
        raise CodecError("bad_value", "continuous action absurdly large")


def check_gradient(msg: Gradient, num_params: int, hp: Hyperparams) -> None:
    check_arrays({"grad": msg.grad}, {"grad": ArraySpec("float32", (num_params,))})
    if msg.env_steps != hp.rollout_len * hp.num_envs:
        raise CodecError("bad_value", f"env_steps {msg.env_steps}")


def check_episodes(msg: Episodes) -> None:
    if len(msg.returns) != len(msg.lengths):
        raise CodecError("bad_value", "returns and lengths differ in count")
    if not all(isinstance(n, int) and 0 < n <= MAX_EPISODE_LENGTH for n in msg.lengths):
        raise CodecError("bad_value", "episode lengths must be positive integers")
    if not all(math.isfinite(r) for r in msg.returns):
        raise CodecError("non_finite", "returns")
    if not all(abs(r) <= MAX_ABS_RETURN for r in msg.returns):
        raise CodecError("bad_value", f"an episode return beyond +-{MAX_ABS_RETURN:g}")
