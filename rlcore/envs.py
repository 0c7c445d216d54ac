"""Env construction and a lean vector env that writes into preallocated arrays.

The vector env resets an env in the same step it ends (gymnasium's "same step" autoreset)
and keeps the final observation of every ended env, so a truncated episode can be
bootstrapped from the value of where it really stopped.
"""

from __future__ import annotations

from dataclasses import dataclass

import gymnasium as gym
import numpy as np


class UnsupportedEnvError(ValueError):
    """The env cannot be built, or has a space no network here supports."""


@dataclass(frozen=True)
class EnvSpec:
    """What a network needs to know of an env."""

    obs_shape: tuple[int, ...]
    num_actions: int

    def to_dict(self) -> dict:
        return {"obs_shape": list(self.obs_shape), "num_actions": self.num_actions}

    @classmethod
    def from_dict(cls, d: dict) -> EnvSpec:
        return cls(tuple(int(x) for x in d["obs_shape"]), int(d["num_actions"]))


def make_env(env_id: str) -> gym.Env:
    try:
        return gym.make(env_id, disable_env_checker=True)
    except Exception as exc:  # an env's own constructor may fail in any way
        detail = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise UnsupportedEnvError(f"cannot make env {env_id!r}: {detail}") from None


def env_spec(env: gym.Env) -> EnvSpec:
    """The spec of `env`, or `UnsupportedEnvError` naming the space no network here handles."""
    obs, act = env.observation_space, env.action_space
    if not (isinstance(obs, gym.spaces.Box) and len(obs.shape) == 1):
        raise UnsupportedEnvError(f"unsupported observation space {obs}: a 1-D Box is needed")
    if not isinstance(act, gym.spaces.Discrete):
        raise UnsupportedEnvError(f"unsupported action space {act}: Discrete is needed")
    return EnvSpec(obs_shape=tuple(obs.shape), num_actions=int(act.n))


def probe_env(env_id: str) -> EnvSpec:
    env = make_env(env_id)
    try:
        return env_spec(env)
    finally:
        env.close()


class VectorEnv:
    """`num_envs` copies of one env stepped in turn, results in preallocated arrays."""

    def __init__(self, env_id: str, num_envs: int, seed: int):
        self.envs = [make_env(env_id) for _ in range(num_envs)]
        self.spec = env_spec(self.envs[0])
        self.num_envs = num_envs
        self.seed = seed
        shape = (num_envs, *self.spec.obs_shape)
        self.obs = np.zeros(shape, dtype=np.float32)
        self.final_obs = np.zeros(shape, dtype=np.float32)
        self.rewards = np.zeros(num_envs, dtype=np.float32)
        self.terminated = np.zeros(num_envs, dtype=bool)
        self.truncated = np.zeros(num_envs, dtype=bool)
        self._ep_return = np.zeros(num_envs, dtype=np.float64)
        self._ep_length = np.zeros(num_envs, dtype=np.int64)
        self.finished_returns: list[float] = []
        self.finished_lengths: list[int] = []

    def reset(self) -> np.ndarray:
        for i, env in enumerate(self.envs):
            env.action_space.seed(self.seed + i)
            self.obs[i], _ = env.reset(seed=self.seed + i)
        self._ep_return[:] = 0
        self._ep_length[:] = 0
        return self.obs

    def step(self, actions: np.ndarray) -> None:
        """Step every env; ended ones are reset at once and their last obs kept in `final_obs`."""
        for i, env in enumerate(self.envs):
            obs, reward, term, trunc, _ = env.step(int(actions[i]))
            self.rewards[i] = reward
            self.terminated[i] = term
            self.truncated[i] = trunc
            self._ep_return[i] += reward
            self._ep_length[i] += 1
            if term or trunc:
                self.final_obs[i] = obs
                self._finish_episode(i)
                obs, _ = env.reset()
            self.obs[i] = obs

    def _finish_episode(self, i: int) -> None:
        self.finished_returns.append(float(self._ep_return[i]))
        self.finished_lengths.append(int(self._ep_length[i]))
        self._ep_return[i] = 0
        self._ep_length[i] = 0

    def pop_finished(self) -> tuple[list[float], list[int]]:
        returns, lengths = self.finished_returns, self.finished_lengths
        self.finished_returns, self.finished_lengths = [], []
        return returns, lengths

    def close(self) -> None:
        for env in self.envs:
            env.close()
