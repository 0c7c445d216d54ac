"""Running moments of observations and of discounted returns, mergeable across processes.

Actors summarise what they saw as (count, mean, M2) and the learner merges the summaries
with the parallel-variance update of Chan, Golub and LeVeque (1979), so the statistics are
those of all the data, in any split and any order, without any process holding the data.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

EPS = 1e-8


@dataclass
class Moments:
    """Count, mean and sum of squared deviations (M2) of vectors of a fixed size."""

    count: float
    mean: np.ndarray
    m2: np.ndarray

    @classmethod
    def zeros(cls, size: int) -> Moments:
        return cls(0.0, np.zeros(size), np.zeros(size))

    @classmethod
    def of(cls, x: np.ndarray) -> Moments:
        """The moments of the rows of `x` (any leading shape; the last axis is the vector)."""
        flat = np.asarray(x, dtype=np.float64).reshape(-1, x.shape[-1] if x.ndim else 1)
        n = flat.shape[0]
        if n == 0:
            return cls.zeros(flat.shape[1])
        mean = flat.mean(axis=0)
        return cls(float(n), mean, ((flat - mean) ** 2).sum(axis=0))

    @property
    def var(self) -> np.ndarray:
        """Population variance (ones before two values, so nothing is scaled by zero)."""
        if self.count < 2:
            return np.ones_like(self.mean)
        return self.m2 / self.count

    def merge(self, other: Moments) -> None:
        """Fold `other` into these moments (Chan et al.'s pairwise update)."""
        if other.count <= 0:
            return
        total = self.count + other.count
        delta = other.mean - self.mean
        self.mean = self.mean + delta * (other.count / total)
        self.m2 = self.m2 + other.m2 + delta**2 * (self.count * other.count / total)
        self.count = total

    def pack(self) -> np.ndarray:
        """One float64 array for the wire: [count, mean..., M2...]."""
        return np.concatenate([[self.count], self.mean, self.m2])

    @classmethod
    def unpack(cls, packed: np.ndarray) -> Moments:
        size = (packed.size - 1) // 2
        return cls(float(packed[0]), packed[1 : 1 + size].copy(), packed[1 + size :].copy())


def discounted_returns(
    running: np.ndarray, rewards: np.ndarray, done: np.ndarray, gamma: float
) -> np.ndarray:
    """The running discounted return of each env after each of `T` steps, as SB3's
    VecNormalize keeps it (r_t + gamma * ret_{t-1}, restarted after an episode ends).

    `running` (E,) is updated in place to carry across rollouts; returns (T, E)."""
    out = np.empty(rewards.shape, dtype=np.float64)
    for t in range(rewards.shape[0]):
        running *= gamma
        running += rewards[t]
        out[t] = running
        running[done[t]] = 0.0
    return out


def reward_factor(ret: Moments | None) -> float:
    """1 / std of discounted returns (1 without statistics)."""
    return 1.0 if ret is None else factor_from_var(float(ret.var[0]))


def factor_from_var(var: float, bound: float = 10.0) -> float:
    """1 / std, so returns have about unit size; bounded, so an early, tiny variance cannot
    blow the rewards up."""
    return float(min(1.0 / np.sqrt(max(var, 0.0) + EPS), bound))
