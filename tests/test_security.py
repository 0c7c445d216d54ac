"""CURVE encryption and ZAP authorization: only authorized actors get anything applied."""

import os
import shutil
import signal
import stat
import time

from learner.config import LearnerConfig
from learner.service import Learner
from protocol.security import load_client_keys
from tests.helpers import (
    INTERRUPTED,
    free_port,
    kill_all,
    metrics,
    run_a3c,
    start_actors,
    start_learner,
    stop,
    summary,
    wait,
    wait_for,
    wait_for_contributors,
    wait_for_env_steps,
)


def keys(tmp_path):
    done = run_a3c("keygen", tmp_path / "keys", "--actors", "2")
    assert done.returncode == 0, done.stderr
    return tmp_path / "keys"


def keyed_learner(root, address, run_dir):
    """A learner with keys that trains until stopped."""
    return start_learner(
        "gradient", address, run_dir, "--keys-dir", root / "learner",
        "--target-return", "1e9", "--metrics-every", "0.5",
    )  # fmt: skip


def test_keygen_writes_pairs_and_keeps_secrets_private(tmp_path):
    root = keys(tmp_path)
    assert (root / "learner" / "learner.key_secret").exists()
    assert sorted(p.name for p in (root / "learner" / "authorized").iterdir()) == [
        "actor-1.key",
        "actor-2.key",
    ]
    for i in (1, 2):
        assert (root / f"actor-{i}" / "learner.key").exists()
    for secret in root.rglob("*.key_secret"):
        assert stat.S_IMODE(os.stat(secret).st_mode) == 0o600


def test_an_authorized_actor_trains_over_curve(tmp_path):
    root = keys(tmp_path)
    address = f"tcp://127.0.0.1:{free_port()}"
    run_dir = tmp_path / "run"
    learner = keyed_learner(root, address, run_dir)
    actor = start_actors(address, "--workers", "2", "--keys-dir", root / "actor-1")
    try:
        wait_for_contributors(address, 2, keys=load_client_keys(str(root / "actor-2")))
        wait_for_env_steps(run_dir, 40000)
        assert stop(learner) == INTERRUPTED and wait(actor, 30) == 0
    finally:
        kill_all(learner, actor)
    result = summary(run_dir)
    assert result["env_steps"] >= 40000 and result["updates"] > 100
    assert len(result["actors"]) == 2
    # work that arrived too late on a busy machine is dropped by design; nothing else is
    assert set(result["dropped"]) <= {"stale"}, result["dropped"]


def test_actors_without_keys_or_with_unauthorized_keys_get_nothing_applied(tmp_path):
    root = keys(tmp_path)
    # A stranger's pair that knows the learner's public key but is not authorized.
    run_a3c("keygen", tmp_path / "other")
    stranger = tmp_path / "other" / "actor-1"
    shutil.copy(root / "learner" / "learner.key", stranger / "learner.key")
    address = f"tcp://127.0.0.1:{free_port()}"
    run_dir = tmp_path / "run"
    learner = start_learner(
        "gradient",
        address,
        run_dir,
        "--keys-dir",
        root / "learner",
        "--target-return",
        "1e9",
        "--metrics-every",
        "0.5",
        log=tmp_path / "learner.log",
    )
    keyless = start_actors(address)
    unauthorized = start_actors(address, "--keys-dir", stranger)
    try:

        def refused():
            records = metrics(run_dir)
            seen = records[-1]["connections"] if records else {}
            return seen.get("handshake_failed", 0) and seen.get("unauthorized_key", 0)

        wait_for(refused, 30, "both refusals")
        learner.send_signal(signal.SIGTERM)
        assert wait(learner, 30) == INTERRUPTED
    finally:
        kill_all(learner, keyless, unauthorized)
    result = summary(run_dir)
    assert result["updates"] == 0 and result["env_steps"] == 0 and result["episodes"] == 0
    assert result["actors"] == {}
    log = (tmp_path / "learner.log").read_text()
    assert "is not authorized" in log and "refused a connection" in log


def test_a_key_authorized_while_the_learner_runs_gets_in(tmp_path):
    root = keys(tmp_path)
    run_a3c("keygen", tmp_path / "other")
    newcomer = tmp_path / "other" / "actor-1"
    shutil.copy(root / "learner" / "learner.key", newcomer / "learner.key")
    address = f"tcp://127.0.0.1:{free_port()}"
    run_dir = tmp_path / "run"
    learner = start_learner(
        "gradient",
        address,
        run_dir,
        "--keys-dir",
        root / "learner",
        "--max-env-steps",
        "20000",
        "--target-return",
        "1e9",
        "--metrics-every",
        "0.5",
    )
    actor = start_actors(address, "--keys-dir", newcomer)
    try:
        wait_for(
            lambda: (
                (metrics(run_dir) or [{}])[-1].get("connections", {}).get("unauthorized_key", 0) > 0
            ),
            30,
            "the refusal",
        )
        shutil.copy(newcomer / "actor.key", root / "learner" / "authorized" / "newcomer.key")
        assert wait(learner, 180) == 0 and wait(actor, 30) == 0
    finally:
        kill_all(learner, actor)
    assert summary(run_dir)["env_steps"] >= 20000


def test_a_revoked_key_stops_being_served_on_its_open_connection(tmp_path):
    root = keys(tmp_path)
    address = f"tcp://127.0.0.1:{free_port()}"
    run_dir = tmp_path / "run"
    learner = keyed_learner(root, address, run_dir)
    actor = start_actors(address, "--keys-dir", root / "actor-1")
    try:
        wait_for_env_steps(run_dir, 2000)
        (root / "learner" / "authorized" / "actor-1.key").unlink()

        def revoked():
            records = metrics(run_dir)
            dropped = records[-1].get("dropped", {}) if records else {}
            return records[-1] if {"revoked_actor", "revoked_key"} & set(dropped) else None

        wait_for(revoked, 30, "the revocation")
        steps = revoked()["env_steps"]
        time.sleep(3)  # the actor goes on sending on its open connection, to no effect
        assert stop(learner) == INTERRUPTED
    finally:
        kill_all(learner, actor)
    assert summary(run_dir)["env_steps"] == steps


def test_a_non_loopback_bind_without_keys_needs_insecure(tmp_path, caplog):
    def learner(bind_host: str, run: str, *extra):
        return run_a3c(
            "learner",
            "--mode",
            "data",
            "--bind",
            f"tcp://{bind_host}:{free_port()}",
            "--run-dir",
            tmp_path / run,
            "--max-seconds",
            "0.5",
            *extra,
        )

    refused = learner("0.0.0.0", "run")
    assert refused.returncode != 0 and "Traceback" not in refused.stderr
    assert "--insecure" in refused.stderr and "a3c keygen" in refused.stderr
    # The same rule in-process (a process start each would double this test's time).
    for bind, insecure, warned in (("0.0.0.0", True, True), ("127.0.0.1", False, False)):
        config = LearnerConfig(
            mode="data",
            env_id="CartPole-v1",
            run_dir=str(tmp_path / f"run-{bind}"),
            bind=f"tcp://{bind}:{free_port()}",
            insecure=insecure,
            tensorboard=False,
        )
        caplog.clear()
        Learner(config).close()
        assert ("anyone who reaches" in caplog.text) == warned


def test_missing_keys_are_a_one_line_error(tmp_path):
    done = run_a3c(
        "learner",
        "--mode",
        "data",
        "--keys-dir",
        tmp_path / "nothing",
        "--run-dir",
        tmp_path / "run",
    )
    assert done.returncode != 0 and "Traceback" not in done.stderr
    assert "learner.key_secret" in done.stderr
    done = run_a3c("actor", "--keys-dir", tmp_path / "nothing")
    assert done.returncode != 0 and "Traceback" not in done.stderr
    assert "actor.key_secret" in done.stderr
