"""Messages the fuzzer (tests/test_fuzz.py) found that the learner once mishandled, each
cut down to the least that shows it, kept as plain tests."""

import json

import numpy as np
import pytest

from tests.inproc import InProcessLearner

F32_MAX = float(np.finfo(np.float32).max)


@pytest.fixture
def data_learner(tmp_path):
    learner = InProcessLearner(tmp_path / "run", "data")
    yield learner
    learner.close()


@pytest.mark.parametrize("reward", [F32_MAX, -F32_MAX])
def test_an_extreme_finite_reward_never_reaches_the_weights(data_learner, reward):
    """Only finiteness was checked: one such reward made every weight NaN, and every actor
    received them. Now a reward past the bound is refused (and a non-finite update is
    never applied)."""
    welcome = data_learner.join("a", b"a")
    rollout = data_learner.work("a", welcome)
    rollout.arrays["rewards"][0, 0] = reward
    data_learner.send(b"a", rollout)
    data_learner.learn()
    learner = data_learner.learner
    assert np.isfinite(learner.updater.weights).all(), (
        f"weights not finite after version {learner.updater.version}; "
        f"dropped {data_learner.dropped}"
    )


def _strict(constant: str):
    raise ValueError(f"{constant} is not JSON")


def test_a_huge_finite_reward_keeps_the_metrics_json(data_learner):
    """A reward of 1e30 made the value loss inf, and metrics.jsonl got a bare Infinity."""
    welcome = data_learner.join("a", b"a")
    rollout = data_learner.work("a", welcome)
    rollout.arrays["rewards"][0, 0] = 1e30
    data_learner.send(b"a", rollout)
    data_learner.learn()
    learner = data_learner.learner
    learner.reporter.write_metrics()
    for line in learner.rundir.metrics.read_text().splitlines():
        json.loads(line, parse_constant=_strict)
