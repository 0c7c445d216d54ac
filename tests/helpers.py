"""Real processes over real sockets: start learners and actors as the CLI does."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
from pathlib import Path

ENV = {**os.environ, "PYTHONUNBUFFERED": "1"}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def a3c(*args: str, log: Path | None = None) -> subprocess.Popen:
    out = open(log, "wb") if log else subprocess.DEVNULL  # noqa: SIM115 (closed by the child)
    return subprocess.Popen(
        [sys.executable, "-m", "a3c", *map(str, args)],
        stdout=out,
        stderr=subprocess.STDOUT,
        env=ENV,
    )


def run_a3c(*args: str, timeout: float = 120) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "a3c", *map(str, args)],
        capture_output=True,
        text=True,
        timeout=timeout,
        env=ENV,
    )


def wait(proc: subprocess.Popen, timeout: float) -> int:
    try:
        return proc.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()
        raise


def kill_all(*procs: subprocess.Popen) -> None:
    for p in procs:
        if p.poll() is None:
            p.kill()
            p.wait()


def summary(run_dir: Path) -> dict:
    return json.loads((run_dir / "summary.json").read_text())


def metrics(run_dir: Path) -> list[dict]:
    path = run_dir / "metrics.jsonl"
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def wait_for(predicate, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.2)
    raise AssertionError(f"timed out waiting for {what}")


def start_learner(mode: str, address: str, run_dir: Path, *extra, log: Path | None = None):
    """`a3c learner` in `mode`, bound to `address`, writing to `run_dir`."""
    return a3c("learner", "--mode", mode, "--bind", address, "--run-dir", run_dir, *extra, log=log)


def start_actors(address: str, *extra, log: Path | None = None) -> subprocess.Popen:
    """`a3c actor` for the learner at `address`."""
    return a3c("actor", "--learner", address, *extra, log=log)


def actor_steps(address: str, keys=None) -> dict[str, int]:
    """Env steps per actor, as the live learner at `address` reports them ({} if silent)."""
    from a3c.status import StatusError, query

    try:
        state = query(address, 2.0, keys)
    except StatusError:
        return {}
    return {a["actor_id"]: a["env_steps"] for a in state["actors"]}


def wait_for_contributors(address: str, n: int, timeout: float = 120, keys=None) -> None:
    """Until `n` actors have each had env steps counted: a condition on outcomes, so it
    holds on a loaded machine where a fixed sleep or a small budget would not."""
    wait_for(
        lambda: sum(s > 0 for s in actor_steps(address, keys).values()) >= n,
        timeout,
        f"{n} actors contributing",
    )


def wait_for_env_steps(run_dir: Path, steps: int, timeout: float = 300) -> None:
    wait_for(
        lambda: (metrics(run_dir) or [{}])[-1].get("env_steps", 0) >= steps,
        timeout,
        f"{steps} env steps",
    )


INTERRUPTED = 143
"""A learner's exit code after SIGTERM before its run finished (128 + 15): checkpointed, not
done, so an orchestrator restarts it with --resume. SIGINT gives 130; a finished run 0."""


def stop(proc: subprocess.Popen, timeout: float = 60) -> int:
    """SIGTERM, then the exit code: INTERRUPTED from a learner mid-run, 0 from actors."""
    proc.terminate()
    return wait(proc, timeout)
