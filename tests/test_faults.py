"""Faults with real processes over real sockets: dead actors, a dead learner, signals, a
kill in the middle of a checkpoint write."""

import random
import signal
import time

import torch

from tests.helpers import (
    INTERRUPTED,
    free_port,
    kill_all,
    metrics,
    start_actors,
    start_learner,
    stop,
    summary,
    wait,
    wait_for,
    wait_for_contributors,
    wait_for_env_steps,
)

# A slower learning rate stretches the run to tens of seconds, so faults land mid-run.
SLOW = ("--lr", "3e-4", "--heartbeat-timeout", "2", "--metrics-every", "0.5")


def last_metric(run_dir, key):
    records = metrics(run_dir)
    return records[-1][key] if records else None


def test_kill_9_actor_is_marked_gone_a_new_one_joins_and_the_run_still_solves(tmp_path):
    address = f"tcp://127.0.0.1:{free_port()}"
    run_dir = tmp_path / "run"
    learner = start_learner(
        "gradient",
        address,
        run_dir,
        "--max-env-steps",
        "5000000",
        *SLOW,
        log=tmp_path / "learner.log",
    )
    doomed = start_actors(address)
    survivor = start_actors(address)
    late = None
    try:
        wait_for_contributors(address, 2)
        doomed.kill()
        wait_for(
            lambda: last_metric(run_dir, "actors_connected") == 1,
            15,
            "the killed actor to be marked gone",
        )
        steps_before = last_metric(run_dir, "env_steps")
        late = start_actors(address, log=tmp_path / "late.log")
        wait_for_contributors(address, 3)  # the killed one still counts what it did
        assert wait(learner, 300) == 0
        assert wait(survivor, 30) == 0 and wait(late, 30) == 0
    finally:
        kill_all(learner, doomed, survivor, *([late] if late else []))
    result = summary(run_dir)
    assert result["stop_reason"] == "target_reached", result
    assert result["env_steps"] > steps_before
    assert len(result["actors"]) == 3  # the killed one, the survivor and the newcomer


def test_kill_9_learner_then_resume_and_running_actors_reconnect(tmp_path):
    address = f"tcp://127.0.0.1:{free_port()}"
    run_dir = tmp_path / "run"
    first = start_learner(
        "data",
        address,
        run_dir,
        "--target-return",
        "1e9",
        "--checkpoint-every",
        "0.5",
        *SLOW,
    )
    actors = start_actors(address, "--workers", "2", log=tmp_path / "actors.log")
    second = None
    try:
        wait_for(
            lambda: (
                (run_dir / "checkpoint.pt").exists()
                and (last_metric(run_dir, "env_steps") or 0) > 30000
            ),
            60,
            "a checkpoint",
        )
        first.kill()
        first.wait()
        saved = torch.load(run_dir / "checkpoint.pt", weights_only=True)
        budget = saved["env_steps"] + 40000
        second = start_learner(
            "data",
            address,
            run_dir,
            "--resume",
            "--target-return",
            "1e9",
            *SLOW,
            log=tmp_path / "second.log",
        )
        # However long the actors' back-off on a busy machine, both come back and work.
        wait_for_contributors(address, 2)
        wait_for_env_steps(run_dir, budget)
        assert stop(second) == INTERRUPTED, (tmp_path / "second.log").read_text()[-2000:]
        assert wait(actors, 30) == 0  # the same actor processes, never restarted
    finally:
        kill_all(first, actors, *([second] if second else []))
    result = summary(run_dir)
    assert result["env_steps"] >= budget
    assert result["weights_version"] > saved["weights_version"]
    assert result["episodes"] >= saved["episodes"]
    assert len(result["actors"]) == 2  # both reconnected on their own and contributed


def checkpoint_version(run_dir) -> int:
    path = run_dir / "checkpoint.pt"
    return torch.load(path, weights_only=True)["weights_version"] if path.exists() else -1


def test_kill_9_during_checkpoint_writes_never_leaves_a_broken_checkpoint(tmp_path):
    address = f"tcp://127.0.0.1:{free_port()}"
    run_dir = tmp_path / "run"
    actors = start_actors(address)
    rng = random.Random(0)
    versions = []
    try:
        for _ in range(4):
            learner = start_learner(
                "gradient",
                address,
                run_dir,
                "--resume",
                "--target-return",
                "1e9",
                "--checkpoint-every",
                "0.02",
                "--hidden",
                "512,512",
                *SLOW,
            )
            # Kill at a random moment once this learner has trained past the last kill's
            # checkpoint: it writes one every 20 ms, so most kills land mid-write.
            floor = versions[-1] if versions else 0
            wait_for(lambda f=floor: checkpoint_version(run_dir) > f, 60, "training to go on")
            time.sleep(rng.uniform(0.0, 1.0))
            learner.kill()
            learner.wait()
            state = torch.load(run_dir / "checkpoint.pt", weights_only=True)
            versions.append(state["weights_version"])
    finally:
        kill_all(actors)
    assert versions == sorted(versions) and len(set(versions)) == len(versions)


def test_sigterm_on_an_actor_leaves_cleanly_and_the_learner_notes_it(tmp_path):
    address = f"tcp://127.0.0.1:{free_port()}"
    run_dir = tmp_path / "run"
    learner = start_learner(
        "gradient",
        address,
        run_dir,
        "--target-return",
        "1e9",
        *SLOW,
        log=tmp_path / "learner.log",
    )
    actor = start_actors(address)
    try:
        wait_for(lambda: last_metric(run_dir, "actors_connected") == 1, 60, "the actor")
        actor.send_signal(signal.SIGTERM)
        assert wait(actor, 20) == 0
        wait_for(lambda: " left" in (tmp_path / "learner.log").read_text(), 10, "the note")
        wait_for(lambda: last_metric(run_dir, "actors_connected") == 0, 30, "the count")
        learner.send_signal(signal.SIGINT)
        assert wait(learner, 30) == 130
    finally:
        kill_all(learner, actor)
    assert summary(run_dir)["stop_reason"] == "interrupted (SIGINT)"


def test_work_from_before_a_learner_restart_is_never_applied(tmp_path):
    """Work stamped with an earlier learner's run id is dropped and answered with a request
    to say hello again, even when its weights version looks current."""
    import numpy as np

    from protocol import Gradient, Rejoin, decode, encode
    from tests.hostile import HostileClient

    address = f"tcp://127.0.0.1:{free_port()}"
    run_dir = tmp_path / "run"
    learner = start_learner(
        "gradient",
        address,
        run_dir,
        "--target-return",
        "1e9",
    )
    client = HostileClient(address)
    try:
        welcome = client.handshake("old-actor")
        stale = Gradient(
            "0123456789abcdef",
            "old-actor",
            welcome.weights_version,
            80,
            0.0,
            np.full(welcome.weights.size, 0.5, np.float32),
        )
        client.sock.send_multipart(encode(stale))
        assert client.sock.poll(10_000)
        reply = decode(client.sock.recv_multipart())
        # asked to say hello again (a small reply: weights go out only to a hello)
        assert isinstance(reply, Rejoin) and reply.run_id == stale.run_id
        learner.send_signal(signal.SIGTERM)
        assert wait(learner, 30) == INTERRUPTED
    finally:
        client.close()
        kill_all(learner)
    result = summary(run_dir)
    assert result["dropped"].get("wrong_run") == 1
    assert result["updates"] == 0 and result["weights_version"] == 0
