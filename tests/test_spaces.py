"""Every observation/action space through the whole system, in both modes: a learner and two
actors as real processes over tcp, actors told everything (env, kwargs, wrappers, network)
by the handshake. Short runs: they prove the data flows and updates apply, not learning
(README "Supported spaces" and benchmarks/spaces.py show the learning)."""

import pytest

from tests.helpers import (
    INTERRUPTED,
    free_port,
    kill_all,
    start_actors,
    start_learner,
    stop,
    summary,
    wait,
    wait_for_contributors,
    wait_for_env_steps,
)

CASES = {
    # Each case ends with the env-step count it must reach.
    "minatar-cnn": ("--env", "MinAtar/Breakout-v1", "6000"),
    "pong-cnn": ("--env", "ALE/Pong-v5", "--num-envs", "2", "1600"),
    "mujoco-gaussian": ("--env", "InvertedPendulum-v5", "8000"),
    "masked-cartpole-lstm": (
        "--env",
        "CartPole-v1",
        "--wrappers",
        "mask-velocity",
        "--recurrent",
        "12000",
    ),
    "pendulum-lstm-kwargs": (
        "--env",
        "Pendulum-v1",
        "--env-kwargs",
        '{"g": 3.0, "max_episode_steps": 50}',
        "--recurrent",
        "12000",
    ),
}


# The slowest end-to-end runs go to `pytest -m slow`: Pong in both modes (its preprocessing
# is checked in test_wrappers.py), and data mode for the feed-forward pixel and MuJoCo tasks
# (their uint8 and float32-action rollouts are checked through the codec in
# test_validation.py). Data mode stays in the default run for the recurrent cases, whose
# rollouts carry the LSTM state.
SLOW = {("pong-cnn", "gradient"), ("pong-cnn", "data"), ("minatar-cnn", "data"),
        ("mujoco-gaussian", "data")}  # fmt: skip
PARAMS = [
    pytest.param(case, mode, marks=pytest.mark.slow) if (case, mode) in SLOW else (case, mode)
    for case in CASES
    for mode in ("gradient", "data")
]


@pytest.mark.parametrize(("case", "mode"), PARAMS)
def test_each_space_trains_end_to_end(tmp_path, case, mode):
    """Runs until both actors have worked and the step count is reached, whatever the
    machine's load (a fixed budget could be spent by one actor before the other joins)."""
    address = f"tcp://127.0.0.1:{free_port()}"
    run_dir = tmp_path / "run"
    *args, budget = CASES[case]
    learner = start_learner(mode, address, run_dir, *args, "--target-return", "1e9",
                            "--metrics-every", "0.5", log=tmp_path / "learner.log")  # fmt: skip
    actors = start_actors(address, "--workers", "2", log=tmp_path / "actors.log")
    try:
        wait_for_contributors(address, 2, timeout=180)
        wait_for_env_steps(run_dir, int(budget), timeout=240)
        assert stop(learner) == INTERRUPTED, (tmp_path / "learner.log").read_text()[-3000:]
        assert wait(actors, 30) == 0, (tmp_path / "actors.log").read_text()[-3000:]
    finally:
        kill_all(learner, actors)
    result = summary(run_dir)
    assert result["env_steps"] >= int(budget), result
    assert result["updates"] > 0 and result["weights_version"] == result["updates"]
    assert len(result["actors"]) == 2, result["actors"]  # both actors built the env and worked
    assert set(result["dropped"]) <= {"stale"}, result["dropped"]  # nothing malformed
    if "max_episode_steps" in " ".join(args):
        # the kwargs reached every actor's env: episodes are cut at 50 steps
        assert result["episodes"] >= result["env_steps"] // 50 - 2 * 4 * 2
