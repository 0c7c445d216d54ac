"""Emulated links between a learner and its actors, for the tests and benchmarks/network.py.

Two network namespaces joined by a veth pair: the learner's (10.77.0.1) and the actors'
(10.77.0.2). Bandwidth: a `tc tbf` qdisc on each veth end (each direction). Delay: this
kernel has no netem qdisc, so a relay in the actors' namespace (tests/support/relay.py) holds
every chunk it forwards for the one-way delay, each way; actors connect to the relay, the
relay to the learner over the shaped veth. `check()` measures what a link really gives
(round trip of a small message, one-way bulk rate), through the relay, so a profile's
figures are shown, not assumed. Needs root and iproute2.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import socket
import statistics
import subprocess
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path

LEARNER_NS, ACTOR_NS = "a3c-learner", "a3c-actors"
LEARNER_IP, ACTOR_IP = "10.77.0.1", "10.77.0.2"
LEARNER_PORT, RELAY_PORT, ECHO_PORT = 5555, 6555, 7555
ROOT = Path(__file__).resolve().parents[2]  # where `python -m tests.support.relay` resolves


@dataclass(frozen=True)
class Profile:
    name: str
    mbit: float
    rtt_ms: float

    @property
    def describe(self) -> str:
        return f"{self.mbit:g} Mbit/s, {self.rtt_ms:g} ms RTT"


PROFILES = {
    p.name: p
    for p in (Profile("dc", 1000, 0.5), Profile("cloud", 200, 2.0), Profile("wan", 50, 40.0))
}


def missing_requirements() -> str | None:
    """Why links cannot be emulated here, or None."""
    if os.geteuid() != 0:
        return "needs root (network namespaces and tc)"
    for tool in ("ip", "tc"):
        if shutil.which(tool) is None:
            return f"needs iproute2 ({tool} not found)"
    return None


def _sh(*args: str) -> None:
    subprocess.run(args, check=True, capture_output=True, text=True)


def ns_cmd(ns: str, *cmd: str) -> list[str]:
    return ["ip", "netns", "exec", ns, *cmd]


class Link:
    """The namespaces, the shaped veth pair and the delaying relay of one profile. `tag`
    names a separate set of namespaces (so a test and a benchmark can run side by side)."""

    def __init__(self, profile: Profile, tag: str = ""):
        self.profile = profile
        self.relay: subprocess.Popen | None = None
        self.learner_ns, self.actor_ns = LEARNER_NS + tag, ACTOR_NS + tag
        self.veth = (f"a3c-vl{tag}"[:15], f"a3c-va{tag}"[:15])

    def in_learner_ns(self, *cmd: str) -> list[str]:
        return ns_cmd(self.learner_ns, *cmd)

    def in_actor_ns(self, *cmd: str) -> list[str]:
        return ns_cmd(self.actor_ns, *cmd)

    @property
    def learner_bind(self) -> str:
        return f"tcp://{LEARNER_IP}:{LEARNER_PORT}"

    @property
    def actor_address(self) -> str:
        return f"tcp://127.0.0.1:{RELAY_PORT}"

    def __enter__(self) -> Link:
        self._teardown()
        _sh("ip", "netns", "add", self.learner_ns)
        _sh("ip", "netns", "add", self.actor_ns)
        vl, va = self.veth
        _sh("ip", "link", "add", vl, "type", "veth", "peer", "name", va)
        for dev, ns, ip in ((vl, self.learner_ns, LEARNER_IP), (va, self.actor_ns, ACTOR_IP)):
            _sh("ip", "link", "set", dev, "netns", ns)
            _sh("ip", "-n", ns, "addr", "add", f"{ip}/24", "dev", dev)
            _sh("ip", "-n", ns, "link", "set", dev, "up")
            _sh("ip", "-n", ns, "link", "set", "lo", "up")
            rate_bytes = self.profile.mbit * 1e6 / 8
            burst = max(128 * 1024, int(rate_bytes * 0.004))  # >= one GSO segment
            _sh("tc", "-n", ns, "qdisc", "add", "dev", dev, "root", "tbf", "rate",
                f"{self.profile.mbit:g}mbit", "burst", str(burst), "latency", "50ms")  # fmt: skip
        relay = (sys.executable, "-m", "tests.support.relay", "--listen",
                 f"127.0.0.1:{RELAY_PORT}", "--to", f"{LEARNER_IP}:{LEARNER_PORT}",
                 "--delay-ms", str(self.profile.rtt_ms / 2))  # fmt: skip
        self.relay = subprocess.Popen(self.in_actor_ns(*relay), stdout=subprocess.DEVNULL, cwd=ROOT)
        _wait_listening(self.actor_ns, RELAY_PORT)
        return self

    def __exit__(self, *exc) -> None:
        if self.relay is not None:
            self.relay.kill()
            self.relay.wait()
        self._teardown()

    def _teardown(self) -> None:
        for ns in (self.learner_ns, self.actor_ns):
            subprocess.run(["ip", "netns", "del", ns], capture_output=True)

    def check(self) -> dict:
        """Measured through the relay: the round trip of 64 bytes, and the one-way rate."""
        echo = (sys.executable, "-m", "tests.support.relay", "--echo", "--listen",
                f"{LEARNER_IP}:{LEARNER_PORT}")  # fmt: skip
        echo = subprocess.Popen(self.in_learner_ns(*echo), stdout=subprocess.DEVNULL, cwd=ROOT)
        try:
            _wait_listening(self.learner_ns, LEARNER_PORT)
            probe = subprocess.run(
                self.in_actor_ns(sys.executable, "-m", "tests.support.netlink",
                                 f"127.0.0.1:{RELAY_PORT}"),  # fmt: skip
                capture_output=True, text=True, timeout=120, check=True, cwd=ROOT,
            )  # fmt: skip
        finally:
            echo.kill()
            echo.wait()
        rtt_ms, mbit = (float(x) for x in probe.stdout.split())
        return {"rtt_ms": round(rtt_ms, 3), "mbit": round(mbit, 1)}


def _wait_listening(ns: str, port: int, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        out = subprocess.run(ns_cmd(ns, "ss", "-ltnH"), capture_output=True, text=True).stdout
        if f":{port} " in out:
            return
        time.sleep(0.05)
    raise RuntimeError(f"nothing listening on port {port} in {ns}")


def probe(address: str, pings: int = 30, bulk_bytes: int = 16 << 20) -> tuple[float, float]:
    """Round trip (ms, median) of 64-byte messages, and the rate (Mbit/s) of a bulk send
    answered once at its end, less one round trip."""
    host, port = address.rsplit(":", 1)
    with contextlib.closing(socket.create_connection((host, int(port)))) as s:
        s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        rtts = []
        for _ in range(pings):
            t0 = time.perf_counter()
            s.sendall(b"p" * 64)
            got = 0
            while got < 64:
                got += len(s.recv(64 - got))
            rtts.append(time.perf_counter() - t0)
        rtt = statistics.median(rtts)
        chunk = b"\0" * (1 << 16)

        def send() -> None:
            for _ in range(bulk_bytes // len(chunk)):
                s.sendall(chunk)

        t0 = time.perf_counter()
        sender = threading.Thread(target=send)
        sender.start()
        got = 0
        while got < bulk_bytes:  # the echo comes back as fast as it went, at the same time
            got += len(s.recv(1 << 20))
        seconds = time.perf_counter() - t0 - rtt
        sender.join()
    return 1000 * rtt, bulk_bytes * 8 / seconds / 1e6


if __name__ == "__main__":
    print(*probe(sys.argv[1]))
