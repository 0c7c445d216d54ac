"""RolloutBatch storage: preallocated (steps, envs) arrays filled in place while acting.

A truncated step keeps the observation where the episode stopped (`trunc_obs`, indexed by
the flat step*env position in `trunc_index`); it is rare, so it is stored sparsely.

A recurrent policy's rollout also carries the core state the actor started it from
(`state_h`, `state_c`) and which envs began a new episode at its first step (`first0`), so
the learner unrolls from exactly where the actor was.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from rlcore.envs import EnvSpec

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
RECURRENT_ARRAYS = ("first0", "state_h", "state_c")


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
    first0: np.ndarray | None = None
    state_h: np.ndarray | None = None
    state_c: np.ndarray | None = None

    @property
    def recurrent(self) -> bool:
        return self.state_h is not None

    def arrays(self) -> dict[str, np.ndarray]:
        names = ROLLOUT_ARRAYS + (RECURRENT_ARRAYS if self.recurrent else ())
        return {name: getattr(self, name) for name in names}

    @classmethod
    def from_arrays(cls, arrays: dict[str, np.ndarray]) -> RolloutBatch:
        names = ROLLOUT_ARRAYS + (RECURRENT_ARRAYS if "state_h" in arrays else ())
        return cls(**{name: arrays[name] for name in names})

    def first(self) -> np.ndarray:
        """(T, E): whether each step's observation begins an episode."""
        done = self.terminated | self.truncated
        return np.concatenate([self.first0[None], done[:-1]])

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
    if rollouts[0].recurrent:
        for name in RECURRENT_ARRAYS:
            cat[name] = np.concatenate([getattr(r, name) for r in rollouts], axis=0)
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

    def __init__(self, steps: int, num_envs: int, spec: EnvSpec, lstm_size: int = 0):
        self.steps, self.num_envs = steps, num_envs
        self.obs = np.zeros((steps, num_envs, *spec.obs_shape), dtype=spec.obs_dtype)
        self.final_obs = np.zeros_like(self.obs)
        if spec.discrete:
            self.actions = np.zeros((steps, num_envs), dtype=np.int64)
        else:
            self.actions = np.zeros((steps, num_envs, spec.action_dim), dtype=np.float32)
        self.rewards = np.zeros((steps, num_envs), dtype=np.float32)
        self.terminated = np.zeros((steps, num_envs), dtype=bool)
        self.truncated = np.zeros((steps, num_envs), dtype=bool)
        self.behaviour_logp = np.zeros((steps, num_envs), dtype=np.float32)
        self.bootstrap_obs = np.zeros((num_envs, *spec.obs_shape), dtype=spec.obs_dtype)
        self.recurrent = lstm_size > 0
        if self.recurrent:
            self.first0 = np.ones(num_envs, dtype=bool)
            self.state_h = np.zeros((num_envs, lstm_size), dtype=np.float32)
            self.state_c = np.zeros((num_envs, lstm_size), dtype=np.float32)

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
            **({name: getattr(self, name) for name in RECURRENT_ARRAYS} if self.recurrent else {}),
        )
