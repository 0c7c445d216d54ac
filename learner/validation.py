"""What the learner accepts: the array specs of each work message, plus the checks that
need the network spec (action range, truncation bookkeeping, env-step counts)."""

from __future__ import annotations

import math

import numpy as np

from protocol import ArraySpec, CodecError, Episodes, Gradient, Rollout, check_arrays
from rlcore.envs import EnvSpec
from rlcore.hyperparams import Hyperparams
from rlcore.rollout import RolloutBatch

MAX_ENVS_PER_ACTOR = 4096


def rollout_specs(spec: EnvSpec, hp: Hyperparams) -> dict[str, ArraySpec]:
    T, obs = hp.rollout_len, spec.obs_shape
    return {
        "obs": ArraySpec("float32", (T, "E", *obs)),
        "actions": ArraySpec("int64", (T, "E")),
        "rewards": ArraySpec("float32", (T, "E")),
        "terminated": ArraySpec("bool", (T, "E")),
        "truncated": ArraySpec("bool", (T, "E")),
        "behaviour_logp": ArraySpec("float32", (T, "E")),
        "bootstrap_obs": ArraySpec("float32", ("E", *obs)),
        "trunc_index": ArraySpec("int64", ("K",)),
        "trunc_obs": ArraySpec("float32", ("K", *obs)),
    }


def check_rollout(msg: Rollout, spec: EnvSpec, hp: Hyperparams) -> RolloutBatch:
    dims = check_arrays(msg.arrays, rollout_specs(spec, hp))
    E = dims["E"]
    if not 1 <= E <= MAX_ENVS_PER_ACTOR:
        raise CodecError("bad_shape", f"{E} envs")
    a = msg.arrays
    if a["actions"].min() < 0 or a["actions"].max() >= spec.num_actions:
        raise CodecError("bad_value", "action out of range")
    if not np.array_equal(a["trunc_index"], np.flatnonzero(a["truncated"])):
        raise CodecError("bad_value", "trunc_index does not match truncated")
    if a["behaviour_logp"].max() > 1e-4:
        raise CodecError("bad_value", "log-probability above 0")
    if msg.env_steps != hp.rollout_len * E:
        raise CodecError(
            "bad_value", f"env_steps {msg.env_steps} for a {hp.rollout_len}x{E} rollout"
        )
    return RolloutBatch.from_arrays(a)


def check_gradient(msg: Gradient, num_params: int, hp: Hyperparams) -> None:
    check_arrays({"grad": msg.grad}, {"grad": ArraySpec("float32", (num_params,))})
    if msg.env_steps != hp.rollout_len * hp.num_envs:
        raise CodecError("bad_value", f"env_steps {msg.env_steps}")


def check_episodes(msg: Episodes) -> None:
    if len(msg.returns) != len(msg.lengths):
        raise CodecError("bad_value", "returns and lengths differ in count")
    if not all(isinstance(n, int) and n > 0 for n in msg.lengths):
        raise CodecError("bad_value", "episode lengths must be positive integers")
    if not all(math.isfinite(r) for r in msg.returns):
        raise CodecError("non_finite", "returns")
