"""Env wrappers by name: Atari preprocessing, MinAtar frames, masked velocities,
episodic life; and env kwargs reaching gymnasium.make."""

import numpy as np
import pytest

from rlcore.envs import EnvConfig, VectorEnv, make_env, probe_env


def test_atari_preprocessing_gives_a_stack_of_four_84x84_uint8_frames():
    env = make_env(EnvConfig("ALE/Pong-v5"))
    obs, _ = env.reset(seed=0)
    assert obs.shape == (4, 84, 84) and obs.dtype == np.uint8
    assert env.unwrapped._frameskip == 1  # skipping (with max-pooling) is the wrapper's job
    prev = obs
    for _ in range(3):
        obs, *_ = env.step(0)
        # the stack slides by one frame per agent step: oldest out, newest in
        np.testing.assert_array_equal(obs[:3], prev[1:])
        prev = obs
    assert obs.max() > obs.min()  # real grayscale pixels, not a blank frame
    spec = probe_env("ALE/Pong-v5")
    assert spec.obs_dtype == "uint8" and spec.obs_scale == pytest.approx(1 / 255)
    env.close()


def test_episodic_life_ends_learning_episodes_on_a_lost_life_but_not_the_game():
    envs = VectorEnv(EnvConfig("ALE/Breakout-v5", wrappers=("atari-episodic-life",)), 1, seed=0)
    envs.reset()
    ale = envs.envs[0].unwrapped.ale
    start_lives = ale.lives()
    life_ends = 0
    for _ in range(3000):
        envs.step(np.array([1]))  # FIRE serves the ball; it is soon missed
        if envs.terminated[0]:
            life_ends += 1
            if ale.lives() > 0:
                break
    assert life_ends == 1 and 0 < ale.lives() < start_lives  # the game went on
    assert envs.pop_finished() == ([], [])  # no whole-game episode was reported yet


def test_minatar_frames_are_channels_first_uint8():
    spec = probe_env("MinAtar/Breakout-v1")
    assert spec.obs_shape == (4, 10, 10) and spec.obs_dtype == "uint8"
    assert spec.obs_scale == 1.0 and spec.num_actions == 3
    env = make_env("MinAtar/Breakout-v1")
    obs, _ = env.reset(seed=0)
    assert obs.dtype == np.uint8 and set(np.unique(obs)) <= {0, 1} and obs.sum() > 0


def test_mask_velocity_keeps_positions_only():
    env = make_env(EnvConfig("CartPole-v1", wrappers=("mask-velocity",)))
    obs, _ = env.reset(seed=0)
    for _ in range(5):
        obs, *_ = env.step(1)
        x, _x_dot, theta, _theta_dot = env.unwrapped.state
        np.testing.assert_allclose(obs, [x, theta], rtol=1e-6)
    assert probe_env(EnvConfig("CartPole-v1", wrappers=("mask-velocity",))).obs_shape == (2,)


def test_env_kwargs_reach_gymnasium_make():
    env = make_env(EnvConfig("Pendulum-v1", kwargs={"g": 2.5}))
    assert env.unwrapped.g == 2.5
    envs = VectorEnv(EnvConfig("CartPole-v1", kwargs={"max_episode_steps": 7}), 1, seed=0)
    envs.reset()
    for _ in range(7):
        envs.step(np.array([0 if envs.obs[0, 2] < 0 else 1]))  # balance: only the limit ends it
    assert envs.truncated[0] and envs.pop_finished()[1] == [7]
