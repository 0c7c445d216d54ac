"""An actor's side of normalization: the moments of what it saw go to the learner with its
work; the statistics the learner merged come back with the weights, checked before use."""

from __future__ import annotations

import numpy as np

from protocol import NORM_STATS, WORK_STATS, ArraySpec, CodecError, check_arrays
from rlcore.hyperparams import Hyperparams
from rlcore.networks import ActorCritic
from rlcore.normalize import Moments, discounted_returns, factor_from_var
from rlcore.rollout import RolloutBatch


class ActorNorm:
    def __init__(self, hp: Hyperparams, obs_size: int, num_envs: int):
        self.hp = hp
        self.specs: dict[str, ArraySpec] = {}
        if hp.normalize_obs:
            self.specs[NORM_STATS[0]] = ArraySpec("float32", (obs_size,))
            self.specs[NORM_STATS[1]] = ArraySpec("float32", (obs_size,))
        if hp.normalize_reward:
            self.specs[NORM_STATS[2]] = ArraySpec("float32", (1,))
        self.running_returns = np.zeros(num_envs)
        self.reward_factor = 1.0
        """What rewards are multiplied by in this actor's loss (gradient mode)."""

    def check(self, stats: dict[str, np.ndarray]) -> None:
        """The learner's statistics: exactly those this run uses, of the right shapes and
        finite, variances not below 0. CodecError otherwise."""
        check_arrays(stats, self.specs)
        for name in NORM_STATS[1:]:
            if name in stats and (stats[name] < 0).any():
                raise CodecError("bad_value", f"{name} below 0")

    def adopt(self, model: ActorCritic, stats: dict[str, np.ndarray]) -> None:
        """Use checked statistics: observation moments in the network, the reward factor."""
        if self.hp.normalize_obs:
            model.set_obs_stats(stats[NORM_STATS[0]], stats[NORM_STATS[1]])
        if self.hp.normalize_reward:
            self.reward_factor = factor_from_var(float(stats[NORM_STATS[2]][0]))

    def work_stats(self, rollout: RolloutBatch) -> dict[str, np.ndarray]:
        """Moments of what this rollout saw (one value per env step), for the learner."""
        stats = {}
        if self.hp.normalize_obs:
            T, E = rollout.obs.shape[:2]
            stats[WORK_STATS[0]] = Moments.of(rollout.obs.reshape(T * E, -1)).pack()
        if self.hp.normalize_reward:
            done = rollout.terminated | rollout.truncated
            returns = discounted_returns(self.running_returns, rollout.rewards, done, self.hp.gamma)
            stats[WORK_STATS[1]] = Moments.of(returns.reshape(-1, 1)).pack()
        return stats
