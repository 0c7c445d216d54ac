"""Load: many concurrent actor connections speaking the real protocol at full speed.

Starts a learner (gradient mode) and `--actors` lightweight actors in one process
(tests/support/load_actor.py: one thread and one socket each): hello, then gradients as
fast as credit allows, each built on the newest weights received. One more connection sends
a stream of malformed messages. Reports connections held, messages accepted per second, bad
messages survived, learner memory before and after, and how evenly the learner served the
actors.

    python -m benchmarks.load --actors 64 --seconds 20
"""

from __future__ import annotations

import subprocess
import threading
import time
from pathlib import Path

import click
import zmq

from benchmarks.harness import launch, machine, results
from tests.support.load_actor import LoadActor, junk_sender


def _rss(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    return 0


def run(actors: int, seconds: float, port: int) -> dict:
    address = f"tcp://127.0.0.1:{port}"
    with launch.run_dir() as run_dir:
        args = launch.learner_args("gradient", address, run_dir, "--target-return", "1e9",
                                   "--max-staleness", "1000000")  # fmt: skip
        quiet = {"stdout": subprocess.DEVNULL, "stderr": subprocess.DEVNULL}
        learner = subprocess.Popen([*launch.A3C, *args], cwd=launch.ROOT, **quiet)
        try:
            return _drive(learner, address, actors, seconds, run_dir)
        finally:
            if learner.poll() is None:
                learner.kill()
                learner.wait()


def _drive(learner, address, actors, seconds, run_dir) -> dict:
    ctx = zmq.Context()
    stop = threading.Event()
    junk = [0]
    threads = [LoadActor(ctx, address, i, stop) for i in range(actors)]
    for t in threads:
        t.start()
    junk_thread = threading.Thread(target=junk_sender, args=(ctx, address, stop, junk), daemon=True)
    junk_thread.start()
    # Measure from when every actor has been served once: a learner still starting (slow
    # on a busy machine) would count its own warm-up as growth.
    deadline = time.monotonic() + 120
    while min(t.replies for t in threads) == 0 and time.monotonic() < deadline:
        time.sleep(0.2)
    time.sleep(1.0)
    replies_before = sum(t.replies for t in threads)
    rss = []
    for _ in range(int(seconds)):
        rss.append(_rss(learner.pid))
        time.sleep(1.0)
    rss.append(_rss(learner.pid))
    replies = [t.replies for t in threads]
    learner.send_signal(2)
    learner.wait(timeout=30)
    stop.set()
    for t in threads:
        t.join(timeout=5)
    junk_thread.join(timeout=5)
    ctx.term()
    done = launch.read(run_dir, [])
    return {
        "actors": actors,
        "seconds": seconds,
        "connections_held_max": max(r["actors_connected"] for r in done.records),
        "messages_accepted_per_second": round((sum(replies) - replies_before) / seconds, 1),
        "updates": done.summary["updates"],
        "bad_messages_sent": junk[0],
        "bad_messages_dropped": sum(done.summary["dropped"].values()),
        "learner_exit_code": learner.returncode,
        "rss_start_mib": round(rss[0] / 2**20, 1),
        "rss_middle_mib": round(rss[len(rss) // 2] / 2**20, 1),
        "rss_end_mib": round(rss[-1] / 2**20, 1),
        "replies_min": min(replies),
        "replies_mean": round(sum(replies) / len(replies), 1),
        "replies_max": max(replies),
    }


@click.command(help=__doc__.split("\n\n")[0])
@click.option("--actors", default=64, show_default=True)
@click.option("--seconds", default=20.0, show_default=True)
@click.option("--port", default=5599, show_default=True)
def main(actors: int, seconds: float, port: int) -> None:
    machine.show()
    result = run(actors, seconds, port)
    for key, value in result.items():
        print(f"  {key:32s} {value}")
    results.write("load.json", result)


if __name__ == "__main__":
    main()
