"""Running moments: any split of the data, merged in any order, equals numpy on all of it."""

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from rlcore.normalize import Moments, discounted_returns, reward_factor

finite = st.floats(-1e3, 1e3, allow_nan=False, allow_infinity=False, width=32)


@settings(max_examples=200, deadline=None)
@given(
    data=arrays(np.float32, st.tuples(st.integers(1, 60), st.integers(1, 4)), elements=finite),
    cuts=st.lists(st.integers(0, 60), max_size=6),
    reverse=st.booleans(),
)
def test_merged_moments_equal_numpy_on_the_concatenated_data(data, cuts, reverse):
    bounds = sorted({0, len(data), *[c for c in cuts if c <= len(data)]})
    parts = [Moments.of(data[a:b]) for a, b in zip(bounds[:-1], bounds[1:])]
    total = Moments.zeros(data.shape[1])
    for part in reversed(parts) if reverse else parts:
        total.merge(part)
    assert total.count == len(data)
    expected = data.astype(np.float64)
    np.testing.assert_allclose(total.mean, expected.mean(axis=0), rtol=1e-9, atol=1e-9)
    np.testing.assert_allclose(total.m2 / total.count, expected.var(axis=0), rtol=1e-7, atol=1e-6)
    if len(data) >= 2:
        np.testing.assert_allclose(total.var, expected.var(axis=0), rtol=1e-7, atol=1e-6)


def test_pack_round_trip_and_empty_parts():
    m = Moments.of(np.arange(12, dtype=np.float32).reshape(2, 3, 2))
    back = Moments.unpack(m.pack())
    assert back.count == 6 and np.array_equal(back.mean, m.mean) and np.array_equal(back.m2, m.m2)
    before = back.pack().copy()
    back.merge(Moments.of(np.zeros((0, 2), np.float32)))
    assert np.array_equal(back.pack(), before)
    assert np.array_equal(Moments.zeros(2).var, np.ones(2))  # no data: no scaling


def test_discounted_returns_restart_after_an_episode_ends():
    running = np.zeros(2)
    rewards = np.array([[1.0, 1.0], [1.0, 1.0], [1.0, 1.0]], np.float32)
    done = np.array([[False, False], [True, False], [False, False]])
    out = discounted_returns(running, rewards, done, 0.5)
    np.testing.assert_allclose(out[:, 0], [1.0, 1.5, 1.0])  # restarted after step 1
    np.testing.assert_allclose(out[:, 1], [1.0, 1.5, 1.75])
    np.testing.assert_allclose(running, [1.0, 1.75])  # carried into the next rollout


def test_reward_factor_is_one_over_the_return_std_and_bounded():
    ret = Moments.of(np.array([[2.0], [-2.0], [2.0], [-2.0]]))
    assert abs(reward_factor(ret) - 0.5) < 1e-6
    assert reward_factor(None) == 1.0
    assert reward_factor(Moments.of(np.zeros((5, 1)))) == 10.0  # bounded
    assert abs(reward_factor(Moments.of(np.array([[0.001]]))) - 1.0) < 1e-6  # one value: none yet
