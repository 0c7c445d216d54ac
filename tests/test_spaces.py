"""Every observation/action space through the whole system, in both modes: a learner and two
actors as real processes over tcp, actors told everything (env, kwargs, wrappers, network)
by the handshake. Short runs: they prove the data flows and updates apply, not learning
(README "Supported spaces" and benchmarks/spaces.py show the learning)."""

import pytest

from tests.helpers import run_a3c, summary

CASES = {
    # Big enough that the second actor (MinAtar's imports are slow) joins before it is spent.
    "minatar-cnn": ("--env", "MinAtar/Breakout-v1", "--max-env-steps", "12000"),
    "pong-cnn": ("--env", "ALE/Pong-v5", "--max-env-steps", "1600", "--num-envs", "2"),
    "mujoco-gaussian": ("--env", "InvertedPendulum-v5", "--max-env-steps", "8000"),
    "masked-cartpole-lstm": (
        "--env",
        "CartPole-v1",
        "--wrappers",
        "mask-velocity",
        "--recurrent",
        "--max-env-steps",
        "12000",
    ),
    "pendulum-lstm-kwargs": (
        "--env",
        "Pendulum-v1",
        "--env-kwargs",
        '{"g": 3.0, "max_episode_steps": 50}',
        "--recurrent",
        "--max-env-steps",
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
    run_dir = tmp_path / "run"
    args = CASES[case]
    proc = run_a3c(
        "train", "--mode", mode, "--actors", "2", "--run-dir", run_dir, *args, timeout=240
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    result = summary(run_dir)
    budget = int(args[args.index("--max-env-steps") + 1])
    assert result["stop_reason"] == "max_env_steps", result
    assert budget <= result["env_steps"] < budget + 2 * 20 * 4 * 2
    assert result["updates"] > 0 and result["weights_version"] == result["updates"]
    assert len(result["actors"]) == 2, result["actors"]  # both actors built the env and worked
    assert set(result["dropped"]) <= {"stale"}, result["dropped"]  # nothing malformed
    if "max_episode_steps" in " ".join(args):
        # the kwargs reached every actor's env: episodes are cut at 50 steps
        assert result["episodes"] >= budget // 50 - 2 * 4 * 2
