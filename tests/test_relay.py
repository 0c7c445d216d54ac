"""Relays with real processes over real sockets: both modes through a relay, accounting that
passes through, keys at both hops, a relay killed and restarted, a learner restarted with
--resume behind a relay, fallback addresses, and a refusal in one line."""

from __future__ import annotations

import signal
import subprocess
import sys

import pytest
import zmq

from protocol import Hello, decode
from protocol.messages import PROTOCOL_VERSION
from tests.frames import frame, header
from tests.helpers import (
    ENV,
    INTERRUPTED,
    a3c,
    free_port,
    kill_all,
    metrics,
    start_actors,
    start_learner,
    stop,
    summary,
    wait,
    wait_for,
    wait_for_env_steps,
)


def addr() -> str:
    return f"tcp://127.0.0.1:{free_port()}"


def start_relay(learner: str, bind: str, *extra, log=None) -> subprocess.Popen:
    return a3c("relay", "--learner", learner, "--bind", bind, *extra, log=log)


def scrape(url: str) -> dict[str, float]:
    """Each unlabelled sample of a scrape, parsed by the Prometheus client's own parser
    (counters by their family name, without _total)."""
    from urllib.request import urlopen

    from prometheus_client.parser import text_string_to_metric_families

    text = urlopen(url, timeout=10).read().decode()
    families = text_string_to_metric_families(text)
    return {f.name: s.value for f in families for s in f.samples if not s.labels}


def relay_state(address: str, keys=None) -> dict:
    from a3c.status import StatusError, query

    try:
        return query(address, 2.0, keys)
    except StatusError:
        return {}


@pytest.mark.parametrize("mode", ["gradient", "data"])
def test_training_through_a_relay_is_accounted_per_actor_and_relay(tmp_path, mode):
    learner_at, relay_at = addr(), addr()
    run_dir = tmp_path / "run"
    learner = start_learner(mode, learner_at, run_dir, "--max-env-steps", "30000",
                            "--no-tensorboard", log=tmp_path / "learner.log")  # fmt: skip
    relay = start_relay(learner_at, relay_at, "--relay-id", "relay-a", log=tmp_path / "relay.log")
    actors = start_actors(relay_at, "--workers", "2", log=tmp_path / "actors.log")
    try:
        assert wait(learner, 180) == 0, (tmp_path / "learner.log").read_text()[-3000:]
        assert wait(relay, 30) == 0 and wait(actors, 30) == 0
    finally:
        kill_all(learner, relay, actors)
    s = summary(run_dir)
    assert s["env_steps"] >= 30000 and s["updates"] > 0
    assert s["relays"] == {"relay-a": {"actors": 2, "env_steps": s["env_steps"]}}
    assert len(s["actors"]) == 2 and sum(s["actors"].values()) == s["env_steps"]
    assert not {k for k in s["dropped"] if k != "stale"}, s["dropped"]
    log = (tmp_path / "relay.log").read_text()
    assert "'bundles': " in log and "'lost_in_flight': 0" in log


def test_status_through_a_relay_and_at_the_relay(tmp_path):
    learner_at, relay_at = addr(), addr()
    learner = start_learner("gradient", learner_at, tmp_path / "run", "--no-tensorboard")
    port = free_port()
    relay = start_relay(learner_at, relay_at, "--relay-id", "relay-s", "--metrics-port", port)
    actors = start_actors(relay_at)
    try:
        wait_for(lambda: relay_state(relay_at).get("bundles", 0) > 5, 90, "bundles")
        at_relay = relay_state(relay_at)
        assert at_relay["role"] == "relay" and at_relay["joined"] and len(at_relay["actors"]) == 1
        at_learner = relay_state(learner_at)
        assert at_learner["relays"]["relay-s"]["actors"] == 1
        relayed = [a for a in at_learner["actors"] if a["via"] == "relay-s"]
        assert len(relayed) == 1 and relayed[0]["env_steps"] > 0
        url = f"http://127.0.0.1:{port}/metrics"
        wait_for(lambda: scrape(url)["a3c_relay_bundles"] > 5, 30, "a scrape with bundles")
        scraped = scrape(url)
        assert scraped["a3c_actors_connected"] == 1
        assert scraped["a3c_relay_fanout_replies"] > 0 and scraped["a3c_env_steps"] > 0
        shown = subprocess.run([sys.executable, "-m", "a3c", "status", relay_at], env=ENV,
                               capture_output=True, text=True, timeout=60)  # fmt: skip
        assert shown.returncode == 0 and "messages_folded" in shown.stdout
    finally:
        kill_all(actors, relay, learner)


def test_keys_at_both_hops_and_an_actor_unknown_to_the_relay_applies_nothing(tmp_path):
    keys, relay_keys = tmp_path / "keys", tmp_path / "relay-keys"
    for folder, n in ((keys, 1), (relay_keys, 2)):
        done = subprocess.run([sys.executable, "-m", "a3c", "keygen", str(folder), "--actors",
                               str(n)], env=ENV, capture_output=True, timeout=60)  # fmt: skip
        assert done.returncode == 0
    (relay_keys / "learner" / "authorized" / "actor-2.key").unlink()  # the relay's stranger
    learner_at, relay_at = addr(), addr()
    run_dir = tmp_path / "run"
    learner = start_learner("gradient", learner_at, run_dir, "--keys-dir", keys / "learner",
                            "--max-env-steps", "8000", "--no-tensorboard")  # fmt: skip
    relay = start_relay(learner_at, relay_at, "--keys-dir", keys / "actor-1",
                        "--serve-keys-dir", relay_keys / "learner", "--relay-id", "relay-k",
                        log=tmp_path / "relay.log")  # fmt: skip
    stranger = start_actors(relay_at, "--keys-dir", relay_keys / "actor-2")
    member = start_actors(relay_at, "--keys-dir", relay_keys / "actor-1")
    try:
        assert wait(learner, 180) == 0
    finally:
        kill_all(member, stranger, relay, learner)
    s = summary(run_dir)
    assert s["relays"]["relay-k"]["env_steps"] == s["env_steps"] >= 8000
    assert len(s["actors"]) == 1  # the stranger's work never arrived


def test_a_relay_killed_and_restarted_gets_its_actors_back(tmp_path):
    learner_at, relay_at = addr(), addr()
    run_dir = tmp_path / "run"
    learner = start_learner("data", learner_at, run_dir, "--metrics-every", "0.5",
                            "--no-tensorboard", log=tmp_path / "learner.log")  # fmt: skip
    relay = start_relay(learner_at, relay_at, "--relay-id", "relay-x")
    actors = start_actors(relay_at, "--workers", "2", log=tmp_path / "actors.log")
    try:
        wait_for_env_steps(run_dir, 5000, timeout=120)
        relay.send_signal(signal.SIGKILL)
        relay.wait()
        relay = start_relay(learner_at, relay_at, "--relay-id", "relay-x")
        before = metrics(run_dir)[-1]["env_steps"]

        # Back to work: two actors contribute again through the new relay process.
        def back() -> bool:
            steps = metrics(run_dir)[-1]["env_steps"]
            return len(relay_state(relay_at).get("actors", {})) == 2 and steps > before + 5000

        wait_for(back, 60, "actors back")
        assert stop(learner) == INTERRUPTED
    finally:
        kill_all(actors, relay, learner)
    s = summary(run_dir)
    assert s["relays"]["relay-x"]["actors"] == 2
    assert "internal_error" not in s["dropped"]


def test_a_learner_restarted_with_resume_passes_through_the_relay(tmp_path):
    learner_at, relay_at = addr(), addr()
    run_dir = tmp_path / "run"
    args = ("--max-env-steps", "40000", "--metrics-every", "0.5", "--no-tensorboard")
    learner = start_learner("gradient", learner_at, run_dir, *args)
    # Long-lived, as a deployment runs them: a stopped run is waited out, not exited on.
    wait_too = ("--after-stop", "wait")
    relay = start_relay(learner_at, relay_at, "--relay-id", "relay-r", *wait_too,
                        log=tmp_path / "r.log")  # fmt: skip
    actors = start_actors(relay_at, *wait_too, log=tmp_path / "actors.log")
    try:
        wait_for_env_steps(run_dir, 8000, timeout=120)
        assert stop(learner) == INTERRUPTED
        learner = start_learner("gradient", learner_at, run_dir, "--resume", *args)
        assert wait(learner, 180) == 0
        assert relay.poll() is None and actors.poll() is None  # still serving, for a next run
    finally:
        kill_all(actors, relay, learner)
    s = summary(run_dir)
    assert s["env_steps"] >= 40000 and s["relays"]["relay-r"]["env_steps"] > 0
    assert (tmp_path / "r.log").read_text().count("joined learner") == 2


def test_actors_fall_back_to_a_second_address(tmp_path):
    learner_at, dead, relay_at = addr(), addr(), addr()
    run_dir = tmp_path / "run"
    learner = start_learner("gradient", learner_at, run_dir, "--max-env-steps", "5000",
                            "--no-tensorboard")  # fmt: skip
    relay = start_relay(learner_at, relay_at, "--relay-id", "relay-f")
    actors = start_actors(f"{dead},{relay_at}")  # the first address has nobody behind it
    try:
        assert wait(learner, 180) == 0
    finally:
        kill_all(actors, relay, learner)
    assert summary(run_dir)["relays"]["relay-f"]["env_steps"] >= 5000


@pytest.mark.parametrize("theirs", [PROTOCOL_VERSION - 1, PROTOCOL_VERSION + 1])
def test_a_relay_refused_for_its_version_exits_with_one_line(theirs):
    ctx = zmq.Context()
    learner = ctx.socket(zmq.ROUTER)
    port = learner.bind_to_random_port("tcp://127.0.0.1")
    relay = subprocess.Popen(
        [sys.executable, "-m", "a3c", "relay", "--learner", f"tcp://127.0.0.1:{port}",
         "--bind", addr()], env=ENV, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )  # fmt: skip
    try:
        assert learner.poll(30_000)
        identity, *frames = learner.recv_multipart()
        assert isinstance(decode(frames), Hello)
        # As a learner of that protocol sends it: its own version in the header as well.
        fields = {"reason": "another protocol", "version": theirs}
        learner.send_multipart([identity, *frame(header("refused", fields, v=theirs))])
        out, _ = relay.communicate(timeout=30)
    finally:
        relay.kill()
        learner.close(0)
        ctx.term()
    assert relay.returncode == 3
    lines = [line for line in out.splitlines() if "refused this relay" in line]
    assert len(lines) == 1 and f"protocol {theirs}" in lines[0]
    assert f"this relay protocol {PROTOCOL_VERSION}" in lines[0]
