"""Load: many concurrent actor connections speaking the real protocol at full speed.

Starts a learner (gradient mode) and `--actors` lightweight actors in one process (one
thread and one socket each): hello, then gradients as fast as credit allows, each built on
the newest weights received. One more connection sends a stream of malformed messages.
Reports connections held, messages accepted per second, bad messages survived, learner
memory before and after, and how evenly the learner served the actors.

    python benchmarks/load.py --actors 64 --seconds 20
"""

from __future__ import annotations

import argparse
import json
import random
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import numpy as np
import zmq

from benchmarks.common import print_machine, write_json
from protocol import Gradient, Hello, Stop, Weights, Welcome, decode, encode


def _rss(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    return 0


class LoadActor(threading.Thread):
    def __init__(self, ctx: zmq.Context, address: str, index: int, stop: threading.Event):
        super().__init__(daemon=True)
        self.ctx, self.address, self.index, self.stop = ctx, address, index, stop
        self.replies = 0
        self.sent = 0

    def run(self) -> None:
        sock = self.ctx.socket(zmq.DEALER)
        sock.setsockopt(zmq.LINGER, 0)
        sock.connect(self.address)
        actor_id = f"load-{self.index}"
        sock.send_multipart(encode(Hello(actor_id, "load", self.index)))
        welcome = None
        while welcome is None and not self.stop.is_set():
            if sock.poll(500):
                msg = decode(sock.recv_multipart())
                welcome = msg if isinstance(msg, Welcome) else None
        if welcome is None:
            return
        run_id, version = welcome.run_id, welcome.weights_version
        steps = (
            welcome.settings["hyperparams"]["rollout_len"]
            * welcome.settings["hyperparams"]["num_envs"]
        )
        rng = np.random.default_rng(self.index)
        grad = (rng.standard_normal(welcome.weights.size) * 1e-6).astype(np.float32)
        credit = welcome.settings["max_outstanding"]
        while not self.stop.is_set():
            while credit > 0:
                sock.send_multipart(encode(Gradient(run_id, actor_id, version, steps, 0.0, grad)))
                self.sent += 1
                credit -= 1
            if not sock.poll(200):
                continue
            msg = decode(sock.recv_multipart())
            if isinstance(msg, Weights):
                version, credit = msg.version, credit + 1
                self.replies += 1
            elif isinstance(msg, Stop):
                break
        sock.close(0)


def junk_sender(ctx: zmq.Context, address: str, stop: threading.Event, counter: list) -> None:
    sock = ctx.socket(zmq.DEALER)
    sock.setsockopt(zmq.LINGER, 0)
    sock.setsockopt(zmq.SNDHWM, 100)
    sock.connect(address)
    rng = random.Random(0)
    while not stop.is_set():
        try:
            sock.send(rng.randbytes(rng.randint(1, 300)), zmq.NOBLOCK)
            counter[0] += 1
        except zmq.Again:
            pass
        time.sleep(0.02)
    sock.close(0)


def run(actors: int, seconds: float, port: int) -> dict:
    address = f"tcp://127.0.0.1:{port}"
    with tempfile.TemporaryDirectory() as tmp:
        run_dir = Path(tmp) / "run"
        learner = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "a3c",
                "learner",
                "--mode",
                "gradient",
                "--bind",
                address,
                "--run-dir",
                str(run_dir),
                "--target-return",
                "1e9",
                "--metrics-every",
                "1",
                "--max-staleness",
                "1000000",
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
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
    records = [json.loads(x) for x in (run_dir / "metrics.jsonl").read_text().splitlines()]
    summary = json.loads((run_dir / "summary.json").read_text())
    return {
        "actors": actors,
        "seconds": seconds,
        "connections_held_max": max(r["actors_connected"] for r in records),
        "messages_accepted_per_second": round((sum(replies) - replies_before) / seconds, 1),
        "updates": summary["updates"],
        "bad_messages_sent": junk[0],
        "bad_messages_dropped": sum(summary["dropped"].values()),
        "learner_exit_code": learner.returncode,
        "rss_start_mib": round(rss[0] / 2**20, 1),
        "rss_middle_mib": round(rss[len(rss) // 2] / 2**20, 1),
        "rss_end_mib": round(rss[-1] / 2**20, 1),
        "replies_min": min(replies),
        "replies_mean": round(sum(replies) / len(replies), 1),
        "replies_max": max(replies),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--actors", type=int, default=64)
    parser.add_argument("--seconds", type=float, default=20)
    parser.add_argument("--port", type=int, default=5599)
    args = parser.parse_args()
    info = print_machine()
    result = run(args.actors, args.seconds, args.port)
    for key, value in result.items():
        print(f"  {key:32s} {value}")
    write_json("load.json", {"machine": info, **result})


if __name__ == "__main__":
    main()
