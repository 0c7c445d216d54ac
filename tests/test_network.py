"""Over an emulated wide-area link (50 Mbit/s, 40 ms round trip; tests/support/netlink.py), the
learner in one network namespace and its actors in another: CartPole still solves in both
modes, and the actors kept more work in flight than the base credit to cover the round trip.
Needs root and iproute2; skips with the reason otherwise."""

import json
import subprocess
import sys

import pytest

from tests.helpers import ENV, kill_all, summary, wait
from tests.support.netlink import PROFILES, Link, missing_requirements

pytestmark = pytest.mark.skipif(
    missing_requirements() is not None, reason=str(missing_requirements())
)


def a3c_in(ns_cmd, *args: str, log=None) -> subprocess.Popen:
    out = open(log, "wb") if log else subprocess.DEVNULL  # noqa: SIM115 (closed by the child)
    cmd = ns_cmd(sys.executable, "-m", "a3c", *args)
    return subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT, env=ENV)


@pytest.fixture(scope="module")
def wan():
    with Link(PROFILES["wan"], tag="-t") as link:
        yield link


def test_the_emulated_link_gives_its_profile(wan):
    measured = wan.check()
    assert 38 <= measured["rtt_ms"] <= 50, measured  # 40 ms, plus the relay's own time
    assert 35 <= measured["mbit"] <= 52, measured  # 50 Mbit/s less TCP/IP headers


# data mode crosses the same link the same way; its run is in the slow set
@pytest.mark.parametrize("mode", ["gradient", pytest.param("data", marks=pytest.mark.slow)])
def test_cartpole_solves_over_a_wan_link(wan, tmp_path, mode):
    run_dir = tmp_path / "run"
    learner = a3c_in(wan.in_learner_ns, "learner", "--mode", mode, "--bind", wan.learner_bind,
                     "--insecure",  # a private namespace pair, nothing else on the link
                     "--run-dir", str(run_dir), "--target-return", "475", "--max-seconds",
                     "240", "--metrics-every", "1", "--no-tensorboard",
                     log=tmp_path / "learner.log")  # fmt: skip
    actors = a3c_in(wan.in_actor_ns, "actor", "--workers", "2", "--learner", wan.actor_address)
    try:
        assert wait(learner, 300) == 0, (tmp_path / "learner.log").read_text()[-3000:]
        assert wait(actors, 60) == 0
    finally:
        kill_all(learner, actors)
    result = summary(run_dir)
    assert result["solved"], result
    records = [json.loads(x) for x in (run_dir / "metrics.jsonl").read_text().splitlines()]
    # Two actors at the base credit (2 each) would see staleness of at most ~3 updates.
    staleness = [r["staleness_max"] for r in records]
    assert max(s or 0 for s in staleness) > 4, staleness
    assert set(result["dropped"]) <= {"stale"}, result["dropped"]
