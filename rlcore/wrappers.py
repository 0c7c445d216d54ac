"""Env wrappers chosen by name (`--wrapper NAME`), and the ones an env family always needs.

Names travel in the handshake, so every actor builds exactly the learner's env.
"""

from __future__ import annotations

from collections.abc import Callable

import gymnasium as gym
import numpy as np

# Observation indices kept by `mask-velocity`: positions without their velocities, which
# turns a fully observed task into one that needs memory.
VELOCITY_FREE = {
    "CartPole": (0, 2),  # cart position, pole angle (drops both velocities)
    "Pendulum": (0, 1),  # cos and sin of the angle (drops the angular velocity)
}


class MaskVelocity(gym.ObservationWrapper):
    """Keep only the position components of a classic-control observation."""

    def __init__(self, env: gym.Env):
        super().__init__(env)
        family = env.spec.id.split("-")[0] if env.spec is not None else ""
        if family not in VELOCITY_FREE:
            raise ValueError(
                f"mask-velocity knows {sorted(VELOCITY_FREE)}, not {env.spec and env.spec.id}"
            )
        self.keep = np.array(VELOCITY_FREE[family])
        box = env.observation_space
        self.observation_space = gym.spaces.Box(
            box.low[self.keep], box.high[self.keep], dtype=np.float32
        )

    def observation(self, obs):
        return obs[self.keep].astype(np.float32)


class ChannelsFirstUint8(gym.ObservationWrapper):
    """(H, W, C) bool or uint8 images as (C, H, W) uint8: what the CNN and the wire carry."""

    def __init__(self, env: gym.Env):
        super().__init__(env)
        h, w, c = env.observation_space.shape
        high = 1 if env.observation_space.dtype == np.bool_ else 255
        self.observation_space = gym.spaces.Box(0, high, (c, h, w), dtype=np.uint8)

    def observation(self, obs):
        return np.ascontiguousarray(np.moveaxis(obs, -1, 0), dtype=np.uint8)


class EpisodicLife(gym.Wrapper):
    """A lost life ends the episode for learning; the game resets only when it is over.

    `info["game_over"]` tells the vector env whether to close the episode's statistics, so
    reported returns stay whole-game returns.
    """

    def __init__(self, env: gym.Env):
        super().__init__(env)
        self.lives = 0
        self.game_over = True

    def step(self, action):
        obs, reward, terminated, truncated, info = self.env.step(action)
        self.game_over = terminated or truncated
        lives = self.env.unwrapped.ale.lives()
        life_lost = 0 < lives < self.lives
        self.lives = lives
        info["game_over"] = self.game_over
        return obs, reward, terminated or life_lost, truncated, info

    def reset(self, **kwargs):
        if self.game_over:
            obs, info = self.env.reset(**kwargs)
        else:  # a no-op step from where the lost life left off
            obs, _, terminated, truncated, info = self.env.step(0)
            if terminated or truncated:
                obs, info = self.env.reset(**kwargs)
        self.lives = self.env.unwrapped.ale.lives()
        return obs, info


def atari(env: gym.Env) -> gym.Env:
    """The standard preprocessing: no-op starts, frame skip 4 with max-pooling of the last
    two frames, 84x84 grayscale, a stack of the last 4 frames, all uint8."""
    env = gym.wrappers.AtariPreprocessing(env, noop_max=30, frame_skip=4, screen_size=84)
    return gym.wrappers.FrameStackObservation(env, 4)


def atari_episodic_life(env: gym.Env) -> gym.Env:
    env = gym.wrappers.AtariPreprocessing(env, noop_max=30, frame_skip=4, screen_size=84)
    return gym.wrappers.FrameStackObservation(EpisodicLife(env), 4)


WRAPPERS: dict[str, Callable[[gym.Env], gym.Env]] = {
    "mask-velocity": MaskVelocity,
    "channels-first": ChannelsFirstUint8,
    "atari": atari,
    "atari-episodic-life": atari_episodic_life,
}


def default_wrappers(env_id: str, chosen: tuple[str, ...]) -> tuple[str, ...]:
    """The wrappers an env family cannot do without, unless the user chose a variant."""
    if env_id.startswith("ALE/") and not any(w.startswith("atari") for w in chosen):
        return ("atari", *chosen)
    if env_id.startswith("MinAtar/") and "channels-first" not in chosen:
        return ("channels-first", *chosen)
    return chosen


def default_kwargs(env_id: str) -> dict:
    """Atari's frame skip is done by the `atari` wrapper (with max-pooling), not the env."""
    return {"frameskip": 1} if env_id.startswith("ALE/") else {}


def register_families(env_id: str) -> None:
    """Make the ids of optional env packages known to gymnasium, on first use."""
    if env_id.startswith("ALE/"):
        import ale_py

        gym.register_envs(ale_py)
    elif env_id.startswith("MinAtar/") and env_id not in gym.registry:
        from minatar.gym import register_envs

        register_envs()
