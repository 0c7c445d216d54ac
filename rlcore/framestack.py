"""Frame-once rollouts: a stacked-frame observation shares all but its newest frame with the
one before it, so a rollout needs to carry each new frame once.

A rollout's observations, with the bootstrap observation appended, are a sequence
s_0 .. s_T of stacks (C frames each, oldest first). Packed, it is:

- `stack0` (E, C, H, W): s_0, the stack the rollout began with;
- `frames` (T, E, H, W): the newest frame of s_1 .. s_T;
- `restack_index` (K,) and `restack_obs` (K, C-1, H, W): for the K flat (t, env) positions
  where s_{t+1} is not s_t shifted by one frame (a new episode began), its older frames.

Nothing about the env is assumed: the shift is checked, so unpacking gives back exactly
the observations the actor saw, whatever wrapper made them.
"""

from __future__ import annotations

import numpy as np

PACKED = ("stack0", "frames", "restack_index", "restack_obs")


def can_pack(obs_shape: tuple[int, ...], obs_dtype: str) -> bool:
    """Stacks of at least two uint8 frames."""
    return len(obs_shape) == 3 and obs_shape[0] >= 2 and obs_dtype == "uint8"


def pack(obs: np.ndarray, bootstrap_obs: np.ndarray) -> dict[str, np.ndarray]:
    """The packed arrays of obs (T, E, C, H, W) and bootstrap_obs (E, C, H, W)."""
    T, E = obs.shape[:2]
    nxt = np.concatenate([obs[1:], bootstrap_obs[None]])  # s_1 .. s_T
    shifted = (nxt[:, :, :-1] == obs[:, :, 1:]).reshape(T, E, -1).all(axis=2)
    restack_index = np.flatnonzero(~shifted).astype(np.int64)
    flat = nxt.reshape(T * E, *nxt.shape[2:])
    return {
        "stack0": obs[0],
        "frames": np.ascontiguousarray(nxt[:, :, -1]),
        "restack_index": restack_index,
        "restack_obs": np.ascontiguousarray(flat[restack_index, :-1]),
    }


def packed_bytes(arrays: dict[str, np.ndarray]) -> int:
    return sum(arrays[name].nbytes for name in PACKED)


def unpack(arrays: dict[str, np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
    """obs (T, E, C, H, W) and bootstrap_obs from packed arrays whose shapes and dtypes were
    checked; ValueError when the restack index is not sorted, unique and in range."""
    stack0, frames = arrays["stack0"], arrays["frames"]
    index, older = arrays["restack_index"], arrays["restack_obs"]
    T, E = frames.shape[:2]
    if index.size and (index[0] < 0 or index[-1] >= T * E or (np.diff(index) <= 0).any()):
        raise ValueError("restack_index must be sorted, unique and within the rollout")
    seq = np.empty((T + 1, E, *stack0.shape[1:]), dtype=stack0.dtype)
    seq[0] = stack0
    restart = np.zeros(T * E, dtype=bool)
    restart[index] = True
    restart = restart.reshape(T, E)
    position = np.zeros((T, E), dtype=np.int64)
    position.reshape(-1)[index] = np.arange(index.size)
    for t in range(T):
        seq[t + 1, :, :-1] = seq[t, :, 1:]
        envs = np.flatnonzero(restart[t])
        if envs.size:
            seq[t + 1, envs, :-1] = older[position[t, envs]]
        seq[t + 1, :, -1] = frames[t]
    return seq[:-1], seq[-1]
