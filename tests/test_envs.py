"""Vector env bookkeeping, rollout joining, and spaces the networks refuse."""

import gymnasium as gym
import numpy as np
import pytest

from rlcore.envs import EnvConfig, UnsupportedEnvError, VectorEnv, env_spec, probe_env
from rlcore.rollout import RolloutBatch, concat_rollouts


class Counter(gym.Env):
    """obs = [steps taken]; terminates when action 1 is taken, else runs into a time limit."""

    observation_space = gym.spaces.Box(0, 100, (1,), np.float32)
    action_space = gym.spaces.Discrete(2)

    def reset(self, *, seed=None, options=None):
        super().reset(seed=seed)
        self.n = 0
        return np.array([0.0], np.float32), {}

    def step(self, action):
        self.n += 1
        return np.array([self.n], np.float32), 1.0, bool(action == 1), False, {}


gym.register("TestCounter-v0", entry_point=Counter, max_episode_steps=3)


def test_vector_env_keeps_final_obs_and_resets_in_the_same_step():
    env = VectorEnv("TestCounter-v0", 2, seed=0)
    env.reset()
    env.step(np.array([0, 0]))
    env.step(np.array([0, 1]))  # env 1 terminates at its 2nd step
    assert env.terminated.tolist() == [False, True]
    assert env.final_obs[1, 0] == 2.0 and env.obs[1, 0] == 0.0
    env.step(np.array([0, 0]))  # env 0 is truncated by the time limit (3 steps)
    assert env.truncated.tolist() == [True, False]
    assert env.final_obs[0, 0] == 3.0 and env.obs[0, 0] == 0.0
    returns, lengths = env.pop_finished()
    assert sorted(zip(lengths, returns)) == [(2, 2.0), (3, 3.0)]
    assert env.pop_finished() == ([], [])


def test_unsupported_spaces_and_unknown_envs_fail_with_a_named_reason():
    with pytest.raises(UnsupportedEnvError, match="observation space Tuple"):
        probe_env("Blackjack-v1")
    odd = gym.make("CartPole-v1")
    odd.action_space = gym.spaces.MultiBinary(3)
    with pytest.raises(UnsupportedEnvError, match="action space MultiBinary"):
        env_spec(odd)
    with pytest.raises(UnsupportedEnvError, match="unknown wrapper 'nope'"):
        probe_env(EnvConfig("CartPole-v1", wrappers=("nope",)))
    with pytest.raises(UnsupportedEnvError, match="NoSuchEnv-v0"):
        probe_env("NoSuchEnv-v0")


def make_rollout(E, trunc_positions, tag):
    T = 2
    truncated = np.zeros((T, E), bool)
    for t, e in trunc_positions:
        truncated[t, e] = True
    index = np.flatnonzero(truncated)
    return RolloutBatch(
        obs=np.full((T, E, 1), tag, np.float32),
        actions=np.zeros((T, E), np.int64),
        rewards=np.zeros((T, E), np.float32),
        terminated=np.zeros((T, E), bool),
        truncated=truncated,
        behaviour_logp=np.zeros((T, E), np.float32),
        bootstrap_obs=np.full((E, 1), tag, np.float32),
        trunc_index=index,
        trunc_obs=np.array([[tag * 100 + i] for i in index], np.float32).reshape(-1, 1),
    )


def test_concat_rollouts_remaps_truncation_indices():
    a = make_rollout(2, [(1, 0)], 1.0)
    b = make_rollout(3, [(0, 2), (1, 1)], 2.0)
    joined = concat_rollouts([a, b])
    assert joined.obs.shape == (2, 5, 1)
    np.testing.assert_array_equal(joined.trunc_index, np.flatnonzero(joined.truncated))
    # each truncation keeps its own final obs: a's (1,0) -> 102, b's (0,2) -> 202, (1,1) -> 204
    by_position = dict(zip(joined.trunc_index.tolist(), joined.trunc_obs[:, 0].tolist()))
    assert by_position == {1 * 5 + 0: 102.0, 0 * 5 + 4: 202.0, 1 * 5 + 3: 204.0}
