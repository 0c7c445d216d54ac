"""Lightweight actors for load: one thread and one socket each, speaking the real protocol
at full speed (hello, then gradients as fast as credit allows, each on the newest weights
received), and a sender of malformed messages. Used by benchmarks/load.py, which
tests/test_load.py runs."""

from __future__ import annotations

import random
import threading
import time
from collections import deque

import numpy as np
import zmq

from protocol import Gradient, Hello, Stop, Weights, Welcome, decode, encode


class LoadActor(threading.Thread):
    def __init__(self, ctx: zmq.Context, address: str, index: int, stop: threading.Event):
        super().__init__(daemon=True)
        self.ctx, self.address, self.index, self.stop = ctx, address, index, stop
        self.replies = 0
        self.sent = 0
        self.latencies: deque[float] = deque(maxlen=2000)
        """Seconds from an update to this actor holding its weights (one clock: same host)."""

    def run(self) -> None:
        sock = self.ctx.socket(zmq.DEALER)
        sock.setsockopt(zmq.LINGER, 0)
        sock.connect(self.address)
        actor_id = f"load-{self.index}"
        welcome, asked = None, 0.0
        while welcome is None and not self.stop.is_set():
            if time.monotonic() - asked > 2.0:  # ask again, as actors do, until answered
                sock.send_multipart(encode(Hello(actor_id, "load", self.index)))
                asked = time.monotonic()
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
                if msg.weights is not None and msg.version > version:
                    self.latencies.append(time.time() - msg.stamp)
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
