"""A live, training learner under hostile input: everything is rejected and counted by
reason, nothing reaches the model, memory stays bounded, and the run still solves."""

import random
from pathlib import Path

import pytest

from tests.helpers import (
    free_port,
    kill_all,
    metrics,
    start_actors,
    start_learner,
    summary,
    wait,
    wait_for,
)
from tests.hostile import HostileClient

EXPECTED = {
    "gradient": {
        "bad_msgpack",
        "bad_header",
        "unknown_type",
        "bad_field",
        "bad_version",
        "bad_dtype",
        "bad_shape",
        "non_finite",
        "bad_frames",
        "bad_compression",
        "bad_encoding",
    },
    "data": {
        "bad_msgpack",
        "bad_header",
        "unknown_type",
        "bad_field",
        "bad_version",
        "bad_dtype",
        "bad_shape",
        "non_finite",
        "bad_value",
        "bad_compression",
        "bad_encoding",
    },
}
LIMIT = 1 << 20


def rss_bytes(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    raise RuntimeError("no VmRSS")


@pytest.mark.parametrize(
    "mode",
    # data mode's rollout checks are also unit-tested (test_validation.py) in the default run
    ["gradient", pytest.param("data", marks=pytest.mark.slow)],
)
def test_hostile_input_is_rejected_counted_and_survived(tmp_path, mode):
    address = f"tcp://127.0.0.1:{free_port()}"
    run_dir = tmp_path / "run"
    learner = start_learner(
        mode,
        address,
        run_dir,
        "--lr",
        "3e-4",
        "--metrics-every",
        "0.5",
        "--max-message-bytes",
        LIMIT,
        "--max-env-steps",
        "6000000",
        log=tmp_path / "learner.log",
    )
    actors = start_actors(address, "--workers", "2")
    client = HostileClient(address)
    try:
        wait_for(lambda: (metrics(run_dir) or [{}])[-1].get("env_steps", 0) > 0, 60, "training")
        client.handshake()
        rss_before = rss_bytes(learner.pid)
        rng = random.Random(1)
        for _ in range(3):
            client.garbage(rng)
            client.bad_gradients() if mode == "gradient" else client.bad_rollouts()
            client.bombs()
            client.almost_valid()
        client.oversize(LIMIT + 1024)
        client.handshake_flood(3000)

        def counted():  # the learner has read the bad messages by the time it counts them
            dropped = (metrics(run_dir) or [{}])[-1].get("dropped", {})
            return EXPECTED[mode] <= set(dropped)

        wait_for(counted, 120, "the bad messages to be counted")
        rss_after = rss_bytes(learner.pid)
        assert wait(learner, 300) == 0, (tmp_path / "learner.log").read_text()[-3000:]
        assert wait(actors, 30) == 0
    finally:
        client.close()
        kill_all(learner, actors)
    result = summary(run_dir)
    assert result["stop_reason"] == "target_reached", result
    missing = EXPECTED[mode] - set(result["dropped"])
    assert not missing, f"not counted: {missing}; counted {result['dropped']}"
    assert "intruder" not in result["actors"]  # not one env step of it was taken
    assert "internal_error" not in result["dropped"]  # every refusal had its own reason
    last = metrics(run_dir)[-1]
    assert last["connections"].get("disconnected", 0) >= 1  # the oversized sender was cut off
    assert rss_after - rss_before < 64 * 2**20, (rss_before, rss_after)
