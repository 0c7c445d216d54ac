"""Env construction and a lean vector env that writes into preallocated arrays.

The vector env resets an env in the same step it ends (gymnasium's "same step" autoreset)
and keeps the final observation of every ended env, so a truncated episode can be
bootstrapped from the value of where it really stopped.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import gymnasium as gym
import numpy as np

from rlcore.wrappers import WRAPPERS, default_kwargs, default_wrappers, register_families


class UnsupportedEnvError(ValueError):
    """The env cannot be built, or has a space no network here supports."""


@dataclass(frozen=True)
class EnvConfig:
    """Which env to build: a gymnasium id, its constructor kwargs, wrappers by name."""

    env_id: str
    kwargs: dict = field(default_factory=dict)
    wrappers: tuple[str, ...] = ()

    def to_dict(self) -> dict:
        return {"env_id": self.env_id, "kwargs": dict(self.kwargs), "wrappers": list(self.wrappers)}

    @classmethod
    def from_dict(cls, d: dict) -> EnvConfig:
        kwargs = d.get("kwargs", {})
        if not isinstance(kwargs, dict):
            raise ValueError("env kwargs must be a JSON object")
        return cls(str(d["env_id"]), dict(kwargs), tuple(str(w) for w in d.get("wrappers", ())))


@dataclass(frozen=True)
class EnvSpec:
    """What a network and the wire need to know of an env's spaces.

    Observations are float32 vectors or uint8 (C, H, W) images (`obs_scale` maps them to
    [0, 1] inside the network). Actions are discrete (`num_actions`) or a float32 vector of
    `action_dim` in [action_low, action_high].
    """

    obs_shape: tuple[int, ...]
    num_actions: int = 0
    obs_dtype: str = "float32"
    obs_scale: float = 1.0
    action_dim: int = 0
    action_low: tuple[float, ...] = ()
    action_high: tuple[float, ...] = ()

    @property
    def discrete(self) -> bool:
        return self.num_actions > 0

    @property
    def is_image(self) -> bool:
        return len(self.obs_shape) == 3

    def to_dict(self) -> dict:
        d = {k: getattr(self, k) for k in self.__dataclass_fields__}
        for k in ("obs_shape", "action_low", "action_high"):
            d[k] = list(d[k])
        return d

    @classmethod
    def from_dict(cls, d: dict) -> EnvSpec:
        return cls(
            obs_shape=tuple(int(x) for x in d["obs_shape"]),
            num_actions=int(d.get("num_actions", 0)),
            obs_dtype=str(d.get("obs_dtype", "float32")),
            obs_scale=float(d.get("obs_scale", 1.0)),
            action_dim=int(d.get("action_dim", 0)),
            action_low=tuple(float(x) for x in d.get("action_low", ())),
            action_high=tuple(float(x) for x in d.get("action_high", ())),
        )


def make_env(config: EnvConfig | str, **make_kwargs) -> gym.Env:
    """Build the env of `config` with its wrappers; any failure is an UnsupportedEnvError."""
    if isinstance(config, str):
        config = EnvConfig(config)
    wrappers = default_wrappers(config.env_id, config.wrappers)
    unknown = [w for w in wrappers if w not in WRAPPERS]
    if unknown:
        raise UnsupportedEnvError(f"unknown wrapper {unknown[0]!r}; known: {sorted(WRAPPERS)}")
    kwargs = {**default_kwargs(config.env_id), **config.kwargs, **make_kwargs}
    try:
        register_families(config.env_id)
        env = gym.make(config.env_id, disable_env_checker=True, **kwargs)
        for name in wrappers:
            env = WRAPPERS[name](env)
        return env
    except Exception as exc:  # an env's own constructor may fail in any way
        detail = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise UnsupportedEnvError(f"cannot make env {config.env_id!r}: {detail}") from None


def env_spec(env: gym.Env) -> EnvSpec:
    """The spec of `env`, or `UnsupportedEnvError` naming the space no network here handles."""
    obs, act = env.observation_space, env.action_space
    if not isinstance(obs, gym.spaces.Box):
        raise UnsupportedEnvError(f"unsupported observation space {obs}: a Box is needed")
    if len(obs.shape) == 1:
        obs_fields = {"obs_dtype": "float32", "obs_scale": 1.0}
    elif len(obs.shape) == 3 and obs.dtype == np.uint8:
        obs_fields = {"obs_dtype": "uint8", "obs_scale": 1.0 / max(1.0, float(obs.high.max()))}
    else:
        raise UnsupportedEnvError(
            f"unsupported observation space {obs}: a 1-D Box or a uint8 (C, H, W) image is "
            "needed (the atari or channels-first wrapper makes one)"
        )
    return EnvSpec(obs_shape=tuple(obs.shape), **obs_fields, **_action_fields(act))


def _action_fields(act: gym.Space) -> dict:
    if isinstance(act, gym.spaces.Discrete):
        return {"num_actions": int(act.n)}
    if isinstance(act, gym.spaces.Box) and len(act.shape) == 1:
        low, high = act.low.astype(float), act.high.astype(float)
        if all(math.isfinite(x) for x in (*low, *high)):
            return {
                "action_dim": int(act.shape[0]),
                "action_low": tuple(low.tolist()),
                "action_high": tuple(high.tolist()),
            }
    raise UnsupportedEnvError(
        f"unsupported action space {act}: Discrete or a bounded 1-D Box is needed"
    )


def probe_env(config: EnvConfig | str) -> EnvSpec:
    env = make_env(config)
    try:
        return env_spec(env)
    finally:
        env.close()


class VectorEnv:
    """`num_envs` copies of one env stepped in turn, results in preallocated arrays."""

    def __init__(self, config: EnvConfig | str, num_envs: int, seed: int):
        self.envs = [make_env(config) for _ in range(num_envs)]
        self.spec = env_spec(self.envs[0])
        self.num_envs = num_envs
        self.seed = seed
        shape = (num_envs, *self.spec.obs_shape)
        self.obs = np.zeros(shape, dtype=self.spec.obs_dtype)
        self.final_obs = np.zeros(shape, dtype=self.spec.obs_dtype)
        self.rewards = np.zeros(num_envs, dtype=np.float32)
        self.terminated = np.zeros(num_envs, dtype=bool)
        self.truncated = np.zeros(num_envs, dtype=bool)
        self._ep_return = np.zeros(num_envs, dtype=np.float64)
        self._ep_length = np.zeros(num_envs, dtype=np.int64)
        self.finished_returns: list[float] = []
        self.finished_lengths: list[int] = []
        if self.spec.discrete:
            self._to_env = int
        else:
            low = np.array(self.spec.action_low, np.float32)
            high = np.array(self.spec.action_high, np.float32)
            # The policy's Gaussian is unbounded; the env gets the action clipped to its box.
            self._to_env = lambda a: np.clip(a, low, high)

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
            obs, reward, term, trunc, info = env.step(self._to_env(actions[i]))
            self.rewards[i] = reward
            self.terminated[i] = term
            self.truncated[i] = trunc
            self._ep_return[i] += reward
            self._ep_length[i] += 1
            if term or trunc:
                self.final_obs[i] = obs
                if info.get("game_over", True):
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
