"""RolloutBatch storage: preallocated (steps, envs) arrays filled in place while acting.

A truncated step keeps the observation where the episode stopped (`trunc_obs`, indexed by
the flat step*env position in `trunc_index`); it is rare, so it is stored sparsely.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

ROLLOUT_ARRAYS = (
    "obs",
    "actions",
    "rewards",
    "terminated",
    "truncated",
    "behaviour_logp",
    "bootstrap_obs",
    "trunc_index",
    "trunc_obs",
)


@dataclass
class RolloutBatch:
    """`T` steps of `E` envs. obs (T, E, *obs), per-step arrays (T, E), bootstrap_obs (E, *obs)."""

    obs: np.ndarray
    actions: np.ndarray
    rewards: np.ndarray
    terminated: np.ndarray
    truncated: np.ndarray
    behaviour_logp: np.ndarray
    bootstrap_obs: np.ndarray
    trunc_index: np.ndarray
    trunc_obs: np.ndarray

    def arrays(self) -> dict[str, np.ndarray]:
        return {name: getattr(self, name) for name in ROLLOUT_ARRAYS}

    @classmethod
    def from_arrays(cls, arrays: dict[str, np.ndarray]) -> RolloutBatch:
        return cls(**{name: arrays[name] for name in ROLLOUT_ARRAYS})

    @property
    def num_steps(self) -> int:
        return int(self.rewards.size)


def concat_rollouts(rollouts: list[RolloutBatch]) -> RolloutBatch:
    """Join rollouts of equal length along the env axis (for one batched update)."""
    if len(rollouts) == 1:
        return rollouts[0]
    total_envs = sum(r.rewards.shape[1] for r in rollouts)
    trunc_index = []
    offset = 0
    for r in rollouts:
        t, e = np.divmod(r.trunc_index, r.rewards.shape[1])
        trunc_index.append(t * total_envs + e + offset)
        offset += r.rewards.shape[1]
    per_step = ("obs", "actions", "rewards", "terminated", "truncated", "behaviour_logp")
    cat = {name: np.concatenate([getattr(r, name) for r in rollouts], axis=1) for name in per_step}
    index = np.concatenate(trunc_index).astype(np.int64)
    order = np.argsort(index, kind="stable")  # keep the flat-position order of truncated
    return RolloutBatch(
        **cat,
        bootstrap_obs=np.concatenate([r.bootstrap_obs for r in rollouts], axis=0),
        trunc_index=index[order],
        trunc_obs=np.concatenate([r.trunc_obs for r in rollouts], axis=0)[order],
    )


class RolloutBuffer:
    """Preallocated storage an actor fills step by step, then hands out as a `RolloutBatch`."""

    def __init__(self, steps: int, num_envs: int, obs_shape: tuple[int, ...]):
        self.steps, self.num_envs = steps, num_envs
        self.obs = np.zeros((steps, num_envs, *obs_shape), dtype=np.float32)
        self.final_obs = np.zeros_like(self.obs)
        self.actions = np.zeros((steps, num_envs), dtype=np.int64)
        self.rewards = np.zeros((steps, num_envs), dtype=np.float32)
        self.terminated = np.zeros((steps, num_envs), dtype=bool)
        self.truncated = np.zeros((steps, num_envs), dtype=bool)
        self.behaviour_logp = np.zeros((steps, num_envs), dtype=np.float32)
        self.bootstrap_obs = np.zeros((num_envs, *obs_shape), dtype=np.float32)

    def finish(self) -> RolloutBatch:
        """The collected rollout. Its arrays are views: use it before the next collection."""
        trunc_index = np.flatnonzero(self.truncated).astype(np.int64)
        flat_final = self.final_obs.reshape(self.steps * self.num_envs, *self.obs.shape[2:])
        return RolloutBatch(
            obs=self.obs,
            actions=self.actions,
            rewards=self.rewards,
            terminated=self.terminated,
            truncated=self.truncated,
            behaviour_logp=self.behaviour_logp,
            bootstrap_obs=self.bootstrap_obs,
            trunc_index=trunc_index,
            trunc_obs=flat_final[trunc_index],
        )
