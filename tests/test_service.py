"""The service's contract: the one-command run, evaluation, run-directory files, start-up
order, stopping, resuming, reproducibility and one-line errors."""

import json
import signal
import time

import msgpack
import pytest
import torch
import zmq

from protocol import PROTOCOL_VERSION
from tests.helpers import (
    INTERRUPTED,
    a3c,
    free_port,
    kill_all,
    metrics,
    run_a3c,
    start_actors,
    start_learner,
    summary,
    wait,
    wait_for,
)

METRIC_KEYS = {
    "wall_seconds",
    "env_steps",
    "episodes",
    "updates",
    "weights_version",
    "mean_return_100",
    "env_steps_per_second",
    "actors_connected",
    "staleness_mean",
    "staleness_max",
    "dropped",
}
SUMMARY_KEYS = {
    "mode",
    "env",
    "stop_reason",
    "solved",
    "env_steps",
    "episodes",
    "updates",
    "wall_seconds",
    "mean_return_100",
}


def test_train_end_to_end_then_evaluate(tmp_path):
    run_dir = tmp_path / "run"
    done = run_a3c(
        "train",
        "--mode",
        "gradient",
        "--actors",
        "2",
        "--run-dir",
        run_dir,
        "--max-env-steps",
        "1500000",
        timeout=300,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    assert "target_reached" in done.stdout
    for name in ("config.json", "metrics.jsonl", "checkpoint.pt", "summary.json"):
        assert (run_dir / name).exists(), name
    config = json.loads((run_dir / "config.json").read_text())
    assert config["mode"] == "gradient" and config["hp"]["rollout_len"] == 20
    assert set(summary(run_dir)) >= SUMMARY_KEYS
    records = metrics(run_dir)
    assert records and all(set(r) >= METRIC_KEYS for r in records)
    state = torch.load(run_dir / "checkpoint.pt", weights_only=True)
    assert state["weights_version"] == summary(run_dir)["updates"]

    evaluated = run_a3c("evaluate", run_dir, "--episodes", "20")
    assert evaluated.returncode == 0, evaluated.stderr
    mean = float(evaluated.stdout.split("mean return ")[1].split()[0])
    assert mean >= 150, evaluated.stdout  # random play scores about 22


def test_actor_started_before_learner_joins_when_it_comes(tmp_path):
    address = f"tcp://127.0.0.1:{free_port()}"
    actor = start_actors(address, log=tmp_path / "actor.log")
    try:
        wait_for(
            lambda: "no learner answering" in (tmp_path / "actor.log").read_text(),
            20,
            "the actor to report that it waits",
        )
        learner = a3c(
            "learner",
            "--mode",
            "data",
            "--bind",
            address,
            "--run-dir",
            tmp_path / "run",
            "--max-env-steps",
            "20000",
        )
        assert wait(learner, 120) == 0
        assert wait(actor, 30) == 0
    finally:
        kill_all(actor)
    assert summary(tmp_path / "run")["env_steps"] >= 20000
    # Data mode says how far its policy moved from the actors' (little, on one host).
    ratios = [r["log_ratio"] for r in metrics(tmp_path / "run") if r["log_ratio"] is not None]
    assert ratios and all(0 <= x < 1 for x in ratios)


def final_weights(run_dir):
    return torch.load(run_dir / "checkpoint.pt", weights_only=True)["model"]


@pytest.mark.parametrize(
    "task",
    [
        ("--max-env-steps", "12000"),
        pytest.param(
            ("--env", "Pendulum-v1", "--recurrent", "--max-env-steps", "6000"),
            marks=pytest.mark.slow,
        ),
    ],
    ids=["cartpole", "pendulum-gaussian-lstm"],
)
def test_single_actor_run_with_a_seed_repeats_exactly(tmp_path, task):
    for mode in ("gradient", "data"):
        results = []
        for attempt in range(2):
            run_dir = tmp_path / f"{mode}-{attempt}"
            address = f"tcp://127.0.0.1:{free_port()}"
            learner = start_learner(
                mode,
                address,
                run_dir,
                *task,
                "--seed",
                "5",
                "--target-return",
                "1e9",
                "--max-credit",
                "2",  # no pacing: in-flight counts sized from measured time are not repeatable
            )
            actor = start_actors(address)
            try:
                assert wait(learner, 120) == 0 and wait(actor, 30) == 0
            finally:
                kill_all(learner, actor)
            results.append((summary(run_dir), final_weights(run_dir)))
        (s1, w1), (s2, w2) = results
        assert s1["updates"] == s2["updates"] and s1["env_steps"] == s2["env_steps"]
        for name in w1:
            assert torch.equal(w1[name], w2[name]), f"{mode}: {name} differs"


def test_sigterm_stops_learner_and_actors_cleanly_and_resume_continues(tmp_path):
    address = f"tcp://127.0.0.1:{free_port()}"
    run_dir = tmp_path / "run"
    learner = start_learner(
        "gradient",
        address,
        run_dir,
        "--target-return",
        "1e9",
    )
    actors = start_actors(address, "--workers", "2")
    try:
        wait_for(lambda: any(r["env_steps"] > 0 for r in metrics(run_dir)), 60, "training")
        learner.send_signal(signal.SIGTERM)
        assert wait(learner, 30) == INTERRUPTED
        assert wait(actors, 30) == 0
    finally:
        kill_all(learner, actors)
    first = summary(run_dir)
    assert first["stop_reason"] == "interrupted (SIGTERM)"

    refused = run_a3c("learner", "--mode", "gradient", "--bind", address, "--run-dir", run_dir)
    assert refused.returncode != 0 and "--resume" in refused.stderr

    budget = first["env_steps"] + 8000
    learner = start_learner(
        "gradient",
        address,
        run_dir,
        "--resume",
        "--max-env-steps",
        budget,
        "--target-return",
        "1e9",
    )
    actor = start_actors(address)
    try:
        assert wait(learner, 180) == 0 and wait(actor, 30) == 0
    finally:
        kill_all(learner, actor)
    second = summary(run_dir)
    assert second["env_steps"] >= budget
    assert second["updates"] > first["updates"]
    assert second["episodes"] >= first["episodes"]
    assert second["wall_seconds"] > first["wall_seconds"]


def test_bad_messages_are_counted_and_never_stop_training(tmp_path):
    address = f"tcp://127.0.0.1:{free_port()}"
    run_dir = tmp_path / "run"
    learner = start_learner(
        "data",
        address,
        run_dir,
        "--max-env-steps",
        "40000",
        "--target-return",
        "1e9",
    )
    ctx = zmq.Context()
    sock = ctx.socket(zmq.DEALER)
    sock.connect(address)
    try:
        time.sleep(1.0)
        sock.send(b"\xc1\xffnot msgpack")  # 0xc1 starts no msgpack value
        sock.send(msgpack.packb({"v": 99, "t": "hello", "f": {}, "a": []}))
        gradient = {"v": PROTOCOL_VERSION, "t": "gradient", "f": {}, "a": []}
        sock.send_multipart([msgpack.packb(gradient)])
        actor = start_actors(address)
        assert wait(learner, 120) == 0 and wait(actor, 30) == 0
    finally:
        sock.close(0)
        ctx.term()
        kill_all(learner)
    dropped = summary(run_dir)["dropped"]
    assert dropped.get("bad_msgpack") == 1
    assert dropped.get("bad_version") == 1
    assert dropped.get("bad_field") == 1
    assert summary(run_dir)["env_steps"] >= 40000


def one_line_error(result, *needles):
    assert result.returncode != 0
    assert "Traceback" not in result.stderr
    lines = [line for line in result.stderr.splitlines() if line.startswith("Error")]
    assert len(lines) == 1, result.stderr
    for needle in needles:
        assert needle in lines[0], lines[0]


def test_start_up_errors_are_one_line(tmp_path):
    one_line_error(
        run_a3c("learner", "--mode", "data", "--env", "NoSuchEnv-v9", "--run-dir", tmp_path / "a"),
        "NoSuchEnv-v9",
    )
    one_line_error(
        run_a3c("learner", "--mode", "data", "--env", "Blackjack-v1", "--run-dir", tmp_path / "b"),
        "observation space",
    )
    one_line_error(
        run_a3c("learner", "--mode", "data", "--env-kwargs", "{oops", "--run-dir", tmp_path / "e"),
        "not JSON",
    )
    one_line_error(
        run_a3c("learner", "--mode", "data", "--wrappers", "nope", "--run-dir", tmp_path / "f"),
        "unknown wrapper",
    )
    one_line_error(
        run_a3c(
            "learner", "--mode", "data", "--env-kwargs", '{"bogus": 1}', "--run-dir", tmp_path / "g"
        ),
        "bogus",
    )
    one_line_error(run_a3c("learner", "--mode", "sideways", "--run-dir", tmp_path / "c"), "--mode")
    one_line_error(run_a3c("train", "--mode", "data", "--actors", "0"), "--actors")
    port = free_port()
    ctx = zmq.Context()
    holder = ctx.socket(zmq.ROUTER)
    holder.bind(f"tcp://127.0.0.1:{port}")
    try:
        one_line_error(
            run_a3c(
                "learner",
                "--mode",
                "data",
                "--bind",
                f"tcp://127.0.0.1:{port}",
                "--run-dir",
                tmp_path / "d",
            ),
            "cannot bind",
        )
    finally:
        holder.close(0)
        ctx.term()


def test_options_come_from_environment_variables(tmp_path):
    import os
    import subprocess
    import sys

    env = {
        **os.environ,
        "A3C_MODE": "data",
        "A3C_MAX_ENV_STEPS": "8000",
        "A3C_RUN_DIR": str(tmp_path / "env-run"),
        "A3C_ACTORS": "1",
        "A3C_TARGET_RETURN": "1e9",
    }
    done = subprocess.run(
        [sys.executable, "-m", "a3c", "train"], env=env, capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stderr[-2000:]
    result = summary(tmp_path / "env-run")
    assert result["mode"] == "data" and result["env_steps"] >= 8000


def test_resume_with_a_different_network_is_a_one_line_error(tmp_path):
    run_dir = tmp_path / "run"
    first = run_a3c(
        "learner",
        "--mode",
        "data",
        "--bind",
        f"tcp://127.0.0.1:{free_port()}",
        "--run-dir",
        run_dir,
        "--max-seconds",
        "0.5",
    )
    assert first.returncode == 0, first.stderr
    again = run_a3c(
        "learner",
        "--mode",
        "data",
        "--bind",
        f"tcp://127.0.0.1:{free_port()}",
        "--run-dir",
        run_dir,
        "--resume",
        "--hidden",
        "32",
    )
    one_line_error(again, "hidden sizes")
    other_mode = run_a3c("learner", "--mode", "gradient", "--run-dir", run_dir, "--resume")
    one_line_error(other_mode, "mode data")


@pytest.mark.slow  # the check itself: tests/test_checkpoint.py, in the default run
def test_resume_without_the_bounded_mean_it_trained_with_is_a_one_line_error(tmp_path):
    run_dir = tmp_path / "run"
    common = ("learner", "--mode", "data", "--env", "Pendulum-v1", "--run-dir", run_dir)
    first = run_a3c(*common, "--bind", f"tcp://127.0.0.1:{free_port()}", "--bounded-mean",
                    "--max-seconds", "0.5")  # fmt: skip
    assert first.returncode == 0, first.stderr
    again = run_a3c(*common, "--bind", f"tcp://127.0.0.1:{free_port()}", "--resume")
    one_line_error(again, "--bounded-mean")
