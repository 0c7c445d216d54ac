"""A network partition between two hosts: the learner and the actors in separate network
namespaces joined by a veth pair. The link is cut for longer than the heartbeat timeout,
then restored; training resumes and solves, and no process hangs or grows without bound."""

import os
import shutil
import subprocess
import sys
import time

import pytest

from tests.helpers import ENV, free_port, kill_all, metrics, summary, wait, wait_for
from tests.test_hostile import rss_bytes


def sh(*args: str) -> None:
    subprocess.run(args, check=True, capture_output=True, timeout=30)


@pytest.fixture
def two_hosts():
    if os.geteuid() != 0:
        pytest.skip("network namespaces need root")
    if shutil.which("ip") is None:
        pytest.skip("iproute2 (ip) is not installed")
    tag = str(os.getpid() % 100_000)
    learner_ns, actor_ns = f"a3cl{tag}", f"a3ca{tag}"
    subnet = f"10.231.{os.getpid() % 250}"
    try:
        sh("ip", "netns", "add", learner_ns)
        sh("ip", "netns", "add", actor_ns)
        sh("ip", "link", "add", f"vl{tag}", "type", "veth", "peer", "name", f"va{tag}")
    except (subprocess.CalledProcessError, OSError) as exc:
        for ns in (learner_ns, actor_ns):
            subprocess.run(["ip", "netns", "del", ns], capture_output=True)
        pytest.skip(f"cannot create network namespaces here: {exc}")
    try:
        for ns, dev, host in ((learner_ns, f"vl{tag}", 1), (actor_ns, f"va{tag}", 2)):
            sh("ip", "link", "set", dev, "netns", ns)
            sh("ip", "-n", ns, "addr", "add", f"{subnet}.{host}/24", "dev", dev)
            sh("ip", "-n", ns, "link", "set", dev, "up")
            sh("ip", "-n", ns, "link", "set", "lo", "up")
        yield {
            "learner_ns": learner_ns,
            "actor_ns": actor_ns,
            "learner_ip": f"{subnet}.1",
            "actor_dev": f"va{tag}",
        }
    finally:
        for ns in (learner_ns, actor_ns):
            subprocess.run(["ip", "netns", "del", ns], capture_output=True)


def in_ns(ns: str, *args, log=None) -> subprocess.Popen:
    out = open(log, "wb") if log else subprocess.DEVNULL  # noqa: SIM115
    return subprocess.Popen(
        ["ip", "netns", "exec", ns, sys.executable, "-m", "a3c", *map(str, args)],
        stdout=out,
        stderr=subprocess.STDOUT,
        env=ENV,
    )


@pytest.mark.slow
def test_training_survives_a_partition_longer_than_the_heartbeat_timeout(tmp_path, two_hosts):
    h = two_hosts
    address = f"tcp://{h['learner_ip']}:{free_port()}"
    run_dir = tmp_path / "run"
    learner = in_ns(
        h["learner_ns"],
        "learner",
        "--mode",
        "gradient",
        "--bind",
        address,
        "--insecure",  # a private namespace pair, nothing else on the link
        "--run-dir",
        run_dir,
        "--lr",
        "3e-4",
        "--heartbeat-timeout",
        "2",
        "--metrics-every",
        "0.5",
        "--max-env-steps",
        "6000000",
        log=tmp_path / "learner.log",
    )
    actors = in_ns(
        h["actor_ns"], "actor", "--learner", address, "--workers", "2", log=tmp_path / "actors.log"
    )
    link = ("ip", "-n", h["actor_ns"], "link", "set", h["actor_dev"])
    try:
        wait_for(
            lambda: (metrics(run_dir) or [{}])[-1].get("actors_connected") == 2,
            60,
            "two actors across the link",
        )
        rss_before = rss_bytes(learner.pid)
        sh(*link, "down")
        wait_for(
            lambda: metrics(run_dir)[-1]["actors_connected"] == 0,
            15,
            "the learner to see the actors gone",
        )
        steps_cut = metrics(run_dir)[-1]["env_steps"]
        time.sleep(4)  # well past the 2 s heartbeat timeout
        sh(*link, "up")
        wait_for(lambda: metrics(run_dir)[-1]["env_steps"] > steps_cut, 60, "training to resume")
        rss_after = rss_bytes(learner.pid)
        assert wait(learner, 300) == 0, (tmp_path / "learner.log").read_text()[-3000:]
        assert wait(actors, 30) == 0, (tmp_path / "actors.log").read_text()[-3000:]
    finally:
        subprocess.run([*link, "up"], capture_output=True)
        kill_all(learner, actors)
    assert summary(run_dir)["stop_reason"] == "target_reached"
    assert rss_after - rss_before < 64 * 2**20
