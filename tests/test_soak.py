"""Soak: the service under faults, keys on, for A3C_SOAK_SECONDS (default 300).

One learner (gradient mode, CartPole, checkpoints every 2 s) and two actors run while a
seeded schedule of faults lands every few seconds: actors killed with SIGKILL and replaced,
the learner killed with SIGKILL and restarted with --resume, and an authorized peer (the
third actor's keys) that sends almost-valid messages, mutated from valid ones, the whole
time, reconnecting to each new learner. What must hold:

* the learner dies only by the kills; SIGTERM at the end gives 143 (0 had it finished);
* a resume loses at most one checkpoint interval (plus one metrics interval) of env steps;
* the learner's RSS stays within 64 MiB of its value 20 s into each of its lives;
* nothing the peer sends ever reaches the learner's last-resort guard (internal_error),
  and no checkpoint ever holds a non-finite weight;
* every actor exits within 30 s of the end: 0 when its learner said stop, 4 (its
  --learner-timeout) when it had lost its learner.

The figures go to stdout and to benchmarks/results/soak.json. Run it with
`A3C_SOAK_SECONDS=60 pytest -m slow tests/test_soak.py -s` while developing.
"""

from __future__ import annotations

import json
import math
import os
import random
import re
import signal
import subprocess
import threading
import time
import traceback
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import msgpack
import numpy as np
import pytest
import zmq
import zstandard

from benchmarks.harness import results
from protocol import (
    PROTOCOL_VERSION,
    CodecError,
    Episodes,
    Gradient,
    Heartbeat,
    Hello,
    Rollout,
    Status,
    StatusQuery,
    Stop,
    Weights,
    Welcome,
    decode,
    encode,
)
from protocol.security import load_client_keys
from protocol.sockets import connect_dealer
from tests.frames import frame, quiet_rollout
from tests.helpers import INTERRUPTED, free_port, run_a3c, start_actors, start_learner

pytestmark = pytest.mark.slow

REPO = Path(__file__).resolve().parents[1]
RESULTS = REPO / "benchmarks" / "results" / "soak.json"

SECONDS = float(os.environ.get("A3C_SOAK_SECONDS", "300"))
SEED = int(os.environ.get("A3C_SOAK_SEED", "0"))
CHECKPOINT_EVERY = 2.0
METRICS_EVERY = 1.0
MAX_ENV_STEPS = 10**9  # far beyond what the soak reaches: the learner never ends on its own
LEARNER_TIMEOUT = 20.0
ACTOR_FAULT_EVERY = (2.0, 6.0)  # seconds between actor kills, uniform
LEARNER_KILLS = max(1, round(SECONDS / 70))  # planned: 4 in 300 s (at least 3 happen)
LEARNER_SLOT = SECONDS / (LEARNER_KILLS + 1)  # a learner life, about
MIN_LIFE = 25.0  # a learner lives at least this long (its RSS baseline is at 20 s)
QUIET_END = 20.0  # no actor faults in the last seconds, so the final actors have joined
RSS_BASELINE_AT = 20.0
RSS_ALLOWANCE = 64 << 20
LOSS_MARGIN = 1.5  # on (checkpoint + metrics interval) x the measured rate
FUZZ_RATE = 100.0  # messages per second
MIB = 1 << 20


# ---- observing the learner ---------------------------------------------------------------


class MetricsTail:
    """metrics.jsonl read as it grows; whole lines only. A line that does not parse (a
    learner killed mid-write, the next one appending after it) is kept aside, not fatal."""

    def __init__(self, path: Path):
        self.path = path
        self.offset = 0
        self.records: list[dict] = []
        self.corrupt: list[str] = []

    def poll(self) -> None:
        try:
            with open(self.path, "rb") as f:
                f.seek(self.offset)
                data = f.read()
        except FileNotFoundError:
            return
        end = data.rfind(b"\n")
        if end < 0:
            return
        for line in data[:end].splitlines():
            if not line.strip():
                continue
            try:
                self.records.append(json.loads(line))
            except ValueError:
                self.corrupt.append(line[:300].decode("utf-8", "replace"))
        self.offset += end + 1


def rss_bytes(pid: int) -> int | None:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    except OSError:
        return None
    return None


def tail(path: Path, n: int = 4000) -> str:
    try:
        return path.read_text(errors="replace")[-n:]
    except OSError as exc:
        return f"<{exc}>"


@dataclass
class Life:
    """One learner process."""

    index: int
    proc: subprocess.Popen
    log: Path
    started: float
    first_record: int
    """Index in MetricsTail.records of this life's first record."""
    kill_at: float | None
    rss: list[tuple[float, int]] = field(default_factory=list)
    run_id: str | None = None
    ended: str = ""

    def records(self, metrics: MetricsTail) -> list[dict]:
        return metrics.records[self.first_record :]

    def find_run_id(self) -> str | None:
        if self.run_id is None:
            m = re.search(r"learner run (\S+):", tail(self.log, 10**7))
            self.run_id = m.group(1) if m else None
        return self.run_id

    def rss_figures(self) -> dict:
        base = next((v for t, v in self.rss if t - self.started >= RSS_BASELINE_AT), None)
        peak = max((v for _, v in self.rss), default=None)
        return {
            "life": self.index,
            "seconds": round((self.rss[-1][0] - self.started) if self.rss else 0.0, 1),
            "rss_at_20s_mib": None if base is None else round(base / MIB, 1),
            "rss_max_mib": None if peak is None else round(peak / MIB, 1),
            "ended": self.ended,
        }


@dataclass
class ActorProc:
    slot: int
    proc: subprocess.Popen
    log: Path
    started: float
    ended: str = ""
    code: int | None = None

    def text(self) -> str:
        return tail(self.log, 10**7)


# ---- the fuzzing peer --------------------------------------------------------------------


class Fuzzer(threading.Thread):
    """An authorized peer (CURVE client keys) that joins every learner it finds and sends
    almost-valid messages at FUZZ_RATE: valid ones with one thing wrong."""

    def __init__(self, address: str, keys_dir: Path, seed: int):
        super().__init__(name="fuzzer", daemon=True)
        self.address = address
        self.keys = load_client_keys(keys_dir)
        self.rng = random.Random(seed)
        self.done = threading.Event()
        self.learner_restarted = threading.Event()
        self.sent = 0
        self.kinds: Counter[str] = Counter()
        self.replies: Counter[str] = Counter()
        self.welcomed: Counter[str] = Counter()
        """Welcomes by run id: which learner lives this peer joined."""
        self.reconnects = 0
        self.queue_full = 0
        self.error: str | None = None
        self.welcome: Welcome | None = None
        self.run_ids: list[str] = []
        self.version = 0
        self.peers: list[str] = []
        """Ids of the real actors (from status replies), to forge."""
        self.ctx = zmq.Context()
        self.sock: zmq.Socket | None = None
        self.last_heard = time.monotonic()
        self.ghosts = 0
        self._last_ghost = 0.0
        self._last_status = 0.0
        self._last_oversize = time.monotonic()
        self._bomb = zstandard.ZstdCompressor().compress(bytes(8 << 20))
        self._cases = [
            (self.grad_dtype, 3),
            (self.grad_shape, 3),
            (self.grad_nonfinite, 3),
            (self.grad_huge, 1),
            (self.grad_fields, 8),
            (self.grad_extras, 2),
            (self.multi_frame, 3),
            (self.mutated_bytes, 4),
            (self.forged_header, 8),
            (self.hello, 2),
            (self.rollout, 1),
            (self.episodes, 3),
            (self.heartbeat, 1),
            (self.stop_message, 1),
            (self.status_query, 1),
            (self.garbage, 3),
            (self.bomb, 1),
        ]
        self._weights = [w for _, w in self._cases]

    # -- plumbing --

    def run(self) -> None:
        try:
            self._loop()
        except BaseException:
            self.error = traceback.format_exc()
        finally:
            if self.sock is not None:
                self.sock.close(linger=0)
            self.ctx.term()

    def stop(self) -> None:
        self.done.set()
        self.join(30)

    def _reopen(self) -> None:
        if self.sock is not None:
            self.sock.close(linger=0)
        self.sock = connect_dealer(self.ctx, self.address, self.keys)
        self.welcome = None
        self.reconnects += 1

    def _send(self, kind: str, frames: list) -> None:
        try:
            self.sock.send_multipart(frames, flags=zmq.NOBLOCK)
        except zmq.Again:
            self.queue_full += 1
            return
        self.sent += 1
        self.kinds[kind] += 1

    def _drain(self) -> None:
        while self.sock.poll(0):
            frames = self.sock.recv_multipart()
            self.last_heard = time.monotonic()
            try:
                msg = decode(frames)
            except CodecError:
                self.replies["undecodable"] += 1
                continue
            self.replies[msg.TYPE] += 1
            if isinstance(msg, Welcome):
                self.welcome = msg
                self.version = msg.weights_version
                self.welcomed[msg.run_id] += 1
                if msg.run_id not in self.run_ids:
                    self.run_ids.append(msg.run_id)
            elif isinstance(msg, Weights) and self.welcome and msg.run_id == self.welcome.run_id:
                self.version = max(self.version, msg.version)
            elif isinstance(msg, Status):
                if self.welcome is not None and msg.run_id != self.welcome.run_id:
                    self.welcome = None  # another learner answers now: join it
                    continue
                self.version = max(self.version, int(msg.state.get("weights_version", 0)))
                self.peers = [
                    a["actor_id"]
                    for a in msg.state.get("actors", [])
                    if not str(a["actor_id"]).startswith("fuzz")
                ][-8:]

    def _loop(self) -> None:
        self._reopen()
        next_hello = 0.0
        while not self.done.is_set():
            now = time.monotonic()
            if self.learner_restarted.is_set():
                self.learner_restarted.clear()
                self._reopen()
                next_hello = 0.0
            elif self.welcome is not None and now - self.last_heard > 5.0:
                self._reopen()  # nothing heard for a while: the learner is gone, find the next
                next_hello = 0.0
            if self.welcome is None:
                if now >= next_hello:
                    if next_hello:  # no answer to the last hello on that connection
                        self._reopen()
                    self._send("hello_join", encode(Hello("fuzzer", "fuzzhost", os.getpid())))
                    next_hello = now + 3.0
                self._send("garbage", self._garbage_frames())
            else:
                if now - self._last_status > 2.0:
                    self._last_status = now
                    self._send("status_query", encode(StatusQuery()))
                if now - self._last_oversize > 60.0:
                    self._last_oversize = now
                    self._send("oversize", [self.rng.randbytes(MIB + 4096)])
                    self._reopen()  # libzmq drops a connection that sends that: join again
                    continue
                case = self.rng.choices(self._cases, self._weights)[0][0]
                case()
            self._drain()
            time.sleep(1.0 / FUZZ_RATE)

    # -- valid messages to start from --

    @property
    def T(self) -> int:
        return int(self.welcome.settings["hyperparams"]["rollout_len"])

    @property
    def E(self) -> int:
        return int(self.welcome.settings["hyperparams"]["num_envs"])

    @property
    def n(self) -> int:
        return int(self.welcome.weights.size)

    def _fields(self, **over) -> dict:
        fields = {
            "run_id": self.welcome.run_id,
            "actor_id": "fuzzer",
            "weights_version": self.version,
            "env_steps": self.T * self.E,
            "weights_latency": 0.0,
        }
        fields.update(over)
        return fields

    def _gradient(self, grad=None, extras=None, **over) -> list:
        grad = np.zeros(self.n, np.float32) if grad is None else grad
        return encode(Gradient(**self._fields(**over), grad=grad, extras=extras or {}))

    def _whole(self, frames: list) -> bytes:
        return b"".join(bytes(f) for f in frames)

    def _someone(self) -> str:
        """An actor id to speak for: a real actor's (forgery), a ghost, or odd text."""
        r = self.rng.random()
        if r < 0.5 and self.peers:
            return self.rng.choice(self.peers)
        if r < 0.7:
            return f"ghost-{self.rng.randrange(10**6)}"
        return self.rng.choice(["", "x" * 300, "fuzzer\0", "ф" * 100])

    # -- mutations --

    def grad_dtype(self) -> None:
        dtype = self.rng.choice([np.float64, np.float16, np.int32, np.int64, np.uint8, np.bool_])
        self._send("grad_dtype", self._gradient(np.zeros(self.n, dtype)))

    def grad_shape(self) -> None:
        n = self.n
        shape = self.rng.choice(
            [(n - 1,), (n + 1,), (0,), (1,), (2 * n,), (1, n), (n, 1), (n // 2, 2)]
        )
        self._send("grad_shape", self._gradient(np.zeros(shape, np.float32)))

    def grad_nonfinite(self) -> None:
        grad = np.zeros(self.n, np.float32)
        for _ in range(self.rng.randint(1, 3)):
            grad[self.rng.randrange(self.n)] = self.rng.choice([np.nan, np.inf, -np.inf])
        self._send("grad_nonfinite", self._gradient(grad))

    def grad_huge(self) -> None:
        """Finite but absurd values (1e308 is inf in float32): a valid message, so the
        learner may apply it; clipping must keep the weights finite."""
        value = self.rng.choice([3.4e38, -3.4e38, 1e30, 1e19, 1e-45])
        grad = np.full(self.n, value, np.float32)
        if self.rng.random() < 0.5:
            grad *= np.where(np.arange(self.n) % 2, 1, -1).astype(np.float32)
        self._send("grad_huge", self._gradient(grad))

    def grad_fields(self) -> None:
        TE, v = self.T * self.E, self.version
        name, values = self.rng.choice(
            [
                ("run_id", ["", "x" * 300, "not-this-run", 5, None, 1.5, ["r"]]),
                ("run_id", self.run_ids[-3:-1] or ["r"]),  # an earlier learner's run
                ("actor_id", [self._someone(), 7, None, ["a"]]),
                (
                    "weights_version",
                    [-1, -(2**63), 2**63 - 1, 2**64 - 1, v + 1000, v - 100, 1.5, "3", True, None],
                ),
                (
                    "env_steps",
                    [
                        0,
                        -TE,
                        TE + 1,
                        TE - 1,
                        10**9,
                        2**63 - 1,
                        -(2**63),
                        2**64 - 1,
                        float(TE),
                        True,
                    ],
                ),
                ("weights_latency", [math.nan, math.inf, -math.inf, 1e308, -1e308, 5e-324, "0"]),
            ]
        )
        value = self.rng.choice(values)
        self._send(f"grad_field_{name}", self._gradient(**{name: value}))

    def grad_extras(self) -> None:
        TE = self.T * self.E
        obs_dim = int(np.prod(self.welcome.settings["env_spec"]["obs_shape"]))
        good_obs = np.concatenate([[TE], np.zeros(obs_dim), np.ones(obs_dim)])
        extras = self.rng.choice(
            [
                {"obs_moments": good_obs},  # statistics a run without normalization ignores
                {"obs_moments": np.full_like(good_obs, np.nan)},
                {"obs_moments": good_obs[:-1]},
                {"ret_moments": np.array([-5.0, 0.0, 1.0])},
                {"ret_moments": np.array([TE, 1e308, 1e308])},
                {"ret_moments": np.array([TE, 0.0, 1.0], np.float32)},
                {"bogus": np.zeros(3)},
                {"obs_moments": good_obs, "ret_moments": np.array([TE + 1, 0.0, 1.0])},
            ]
        )
        self._send("grad_extras", self._gradient(extras={k: v.copy() for k, v in extras.items()}))

    def multi_frame(self) -> None:
        whole = self._whole(self._gradient())
        cut = self.rng.randrange(1, len(whole))
        frames = self.rng.choice(
            [
                [whole, b"x" * 8],
                [whole[:cut], whole[cut:]],
                [b"", whole],
                [whole, whole, whole],
                [b""],
                [b"", b""],
            ]
        )
        self._send("multi_frame", frames)

    def mutated_bytes(self) -> None:
        base = self.rng.choice(
            [
                self._gradient(),
                encode(Heartbeat(self.welcome.run_id, "fuzzer")),
                encode(Episodes(self.welcome.run_id, "fuzzer", [1.0], [1])),
            ]
        )
        data = bytearray(self._whole(base))
        how = self.rng.randrange(4)
        if how == 0:
            data = data[: self.rng.randrange(len(data))]
        elif how == 1:
            data += self.rng.randbytes(self.rng.randint(1, 64))
        else:
            # flip bytes: in the header (first 200 bytes) or anywhere
            span = min(len(data), 200) if how == 2 else len(data)
            for _ in range(self.rng.randint(1, 4)):
                data[self.rng.randrange(span)] ^= 1 << self.rng.randrange(8)
        self._send("mutated_bytes", [bytes(data)])

    def forged_header(self) -> None:
        n = self.n
        fields = self._fields()
        payload = bytes(4 * n)
        good_desc = ["grad", "float32", [n], "plain", len(payload)]
        head = {"v": PROTOCOL_VERSION, "t": "gradient", "f": fields, "a": [list(good_desc)]}
        part = self.rng.choice(["v", "t", "f", "a", "desc", "keys"])
        if part == "v":
            head["v"] = self.rng.choice([0, 3, 5, -1, 2**31, "4", None, 4.0, [4]])
        elif part == "t":
            head["t"] = self.rng.choice(
                ["", "GRADIENT", "welcome", "weights", "status", "refused", "rejoin", "hello",
                 "episodes", "x" * 100, 5, None]
            )  # fmt: skip
        elif part == "f":
            head["f"] = self.rng.choice(
                [
                    None,
                    [],
                    "f",
                    {},
                    {**fields, "extra": 1},
                    {k: fields[k] for k in list(fields)[:3]},
                ]
            )
        elif part == "a":
            head["a"] = self.rng.choice(
                [None, {}, "a", [list(good_desc)] * 17, [list(good_desc)] * 2, []]
            )
        elif part == "desc":
            i, values = self.rng.choice(
                [
                    (0, [None, 5, "x" * 100, "grad2", ""]),
                    (1, ["object", "float16", "complex64", "<f4", ["float32"], None, "float64"]),
                    (2, [[-1], [n, -1], [2**31], ["n"], [n] * 9, [0, 2**31 - 1, 2**31 - 1], [],
                         None, [n // 2, 2], [2**30, 2**30]]),
                    (3, ["zstd", "lz4", "bfloat16", "float16", "gzip", None, 5]),
                    (4, [-1, 2**40, len(payload) + 8, len(payload) - 4, "x", None]),
                ]
            )  # fmt: skip
            head["a"][0][i] = self.rng.choice(values)
            if self.rng.random() < 0.2:
                head["a"][0] = head["a"][0][: self.rng.choice([3, 4])] + (
                    [len(payload), "extra"] if self.rng.random() < 0.5 else []
                )
        else:
            head["x"] = self.rng.choice([1, None, "x"])
        try:
            frames = frame(head, payload)
        except Exception:  # a descriptor frame() itself cannot lay out
            packed = msgpack.packb(head)
            frames = [packed + bytes(-len(packed) % 8) + payload]
        self._send(f"forged_{part}", frames)

    def hello(self) -> None:
        now = time.monotonic()
        if now - self._last_ghost > 2.0 and self.rng.random() < 0.3:
            # a new id each time: registers (bounded by the registry), gets weights
            self._last_ghost = now
            self.ghosts += 1
            self._send("hello_ghost", encode(Hello(f"fuzz-ghost-{self.ghosts}", "h", 1)))
            return
        head = {"v": PROTOCOL_VERSION, "t": "hello", "a": []}
        f = {"actor_id": "fuzzer", "host": "fuzzhost", "pid": os.getpid()}
        what = self.rng.randrange(5)
        if what == 0:  # someone else's id, or an odd one
            f["actor_id"] = self._someone() if self.peers else "x" * 300
        elif what == 1:
            f["pid"] = self.rng.choice([-1, 2**63 - 1, 2**64 - 1, "1", 1.5, None])
        elif what == 2:
            f["host"] = self.rng.choice(["", "h" * 300, 5, None])
        elif what == 3:
            head["v"] = self.rng.choice([PROTOCOL_VERSION - 1, PROTOCOL_VERSION + 1, 1, 99])
        else:  # arrays a hello never carries (one a list where the dtype goes)
            head["a"] = self.rng.choice(
                [[["x", ["float32"], [1]]], [["x", "float32", [0, 2**31 - 1, 2**31 - 1]]],
                 [["x", "float32", [1]]]]
            )  # fmt: skip
            self._send("hello_arrays", frame({**head, "f": f}, bytes(4)))
            return
        self._send(f"hello_{what}", frame({**head, "f": f}))

    def rollout(self) -> None:
        """A data-mode message to this gradient-mode learner, well formed or not."""
        T, E = self.T, self.E
        obs_dim = int(np.prod(self.welcome.settings["env_spec"]["obs_shape"]))
        arrays = quiet_rollout(T, E, obs_dim)
        if self.rng.random() < 0.5:
            arrays["obs"][0, 0, 0] = np.nan
        msg = Rollout(self.welcome.run_id, "fuzzer", self.version, T * E, 0.0, arrays)
        self._send("rollout", encode(msg))

    def episodes(self) -> None:
        returns, lengths = self.rng.choice(
            [
                ([math.nan], [10]),
                ([math.inf], [10]),
                ([1e308], [10]),
                ([-1e308], [10]),
                ([1e13], [10]),
                ([10.0], [0]),
                ([10.0], [-1]),
                ([10.0], [2**40 + 1]),
                ([10.0], [1.5]),
                ([10.0], ["1"]),
                ([10.0, 11.0], [10]),
                ([0.0] * 4097, [1] * 4097),
                ({"r": 1}, [1]),
                ([True], [1]),
                ([10.0], [10]),  # valid, harmless: a return far below the target
            ]
        )
        actor = "fuzzer" if self.rng.random() < 0.7 else self._someone()
        head = {"v": PROTOCOL_VERSION, "t": "episodes", "a": []}
        f = {
            "run_id": self.welcome.run_id,
            "actor_id": actor,
            "returns": returns,
            "lengths": lengths,
        }
        self._send("episodes", frame({**head, "f": f}))

    def heartbeat(self) -> None:
        run_id = self.rng.choice([self.welcome.run_id, "old-run", ""])
        self._send(
            "heartbeat", encode(Heartbeat(run_id, self.rng.choice(["fuzzer", self._someone()])))
        )

    def stop_message(self) -> None:
        reason = self.rng.choice(["fuzz", "x" * 300])
        actor = self._someone() if self.rng.random() < 0.8 else "fuzzer"
        self._send("stop", encode(Stop(self.welcome.run_id, actor, reason)))

    def status_query(self) -> None:
        head = {"v": PROTOCOL_VERSION, "t": "status_query", "f": {}, "a": []}
        if self.rng.random() < 0.5:
            head["f"] = {"run_id": "x"}
            self._send("status_query_bad", frame(head))
        else:
            self._send("status_query_arrays", frame({**head, "a": [["q", "uint8", [8]]]}, bytes(8)))

    def _garbage_frames(self) -> list:
        r = self.rng.randrange(6)
        if r == 0:
            return [self.rng.randbytes(self.rng.choice([0, 1, 7, 100, 5000]))]
        if r == 1:
            return [b"\x91" * 2000 + b"\xc0"]  # arrays nested 2000 deep
        if r == 2:
            return [msgpack.packb({str(i): i for i in range(300)})]  # a map too large
        if r == 3:
            return [b"\xdc\xff\xff"]  # an array header promising 65535 items, none there
        if r == 4:
            return [msgpack.packb([PROTOCOL_VERSION, "gradient", {}, []])]
        return [msgpack.packb({"v": PROTOCOL_VERSION, "t": "hello", "f": {"actor_id": b"\xff"}})]

    def garbage(self) -> None:
        self._send("garbage", self._garbage_frames())

    def bomb(self) -> None:
        """Compressed or half-precision frames that lie about what they hold."""
        fields = self._fields(env_steps=8)
        n = self.n
        desc, data, t = self.rng.choice(
            [
                (["obs", "uint8", [8 << 20], "zstd"], self._bomb, "rollout"),
                (["obs", "uint8", [4096], "zstd"], self._bomb, "rollout"),
                (["obs", "uint8", [4096], "zstd"], b"\x28\xb5\x2f\xfd" + bytes(40), "rollout"),
                (["obs", "float32", [4096], "zstd"], self._bomb, "rollout"),
                (["grad", "float32", [n], "bfloat16"], bytes(2 * n - 2), "gradient"),
                (["grad", "float32", [n], "float16"], bytes(2 * n), "gradient"),
                (["grad", "uint8", [4 * n], "zstd"], self._bomb, "gradient"),
            ]
        )
        if t == "gradient":
            fields = self._fields()
        self._send("bomb", frame({"v": PROTOCOL_VERSION, "t": t, "f": fields, "a": [desc]}, data))


# ---- the soak ----------------------------------------------------------------------------


class Soak:
    def __init__(self, tmp: Path):
        self.tmp = tmp
        self.rng = random.Random(SEED)
        self.keys = tmp / "keys"
        self.run_dir = tmp / "run"
        self.address = f"tcp://127.0.0.1:{free_port()}"
        self.metrics = MetricsTail(self.run_dir / "metrics.jsonl")
        self.lives: list[Life] = []
        self.actors: list[ActorProc] = []
        self.slots: dict[int, ActorProc] = {}
        self.resumes: list[dict] = []
        self.pending_resume: dict | None = None
        self.failures: list[str] = []
        self.actor_kills = 0
        self.actor_self_exits: list[dict] = []
        self.final_actor_exits: list[dict] = []
        self.final_code: int | None = None
        self.fuzzer: Fuzzer | None = None
        self.actor_args: tuple = ()
        self.notes: list[str] = []
        self.te: int | None = None
        self.started = time.monotonic()

    # -- set-up --

    def setup(self) -> None:
        done = run_a3c("keygen", self.keys, "--actors", "3")
        assert done.returncode == 0, done.stderr
        help_text = run_a3c("actor", "--help").stdout
        if "--learner-timeout" in help_text:
            self.actor_args = ("--learner-timeout", str(LEARNER_TIMEOUT))
        else:
            self.notes.append("a3c actor has no --learner-timeout yet: left out")

    def fail(self, what: str) -> None:
        stamp = f"[t={time.monotonic() - self.started:.0f}s] {what}"
        self.failures.append(stamp)
        print("SOAK FAILURE:", stamp, flush=True)

    def start_learner(self, resume: bool) -> Life:
        index = len(self.lives) + 1
        log = self.tmp / f"learner-{index}.log"
        self.metrics.poll()
        proc = start_learner(
            "gradient",
            self.address,
            self.run_dir,
            "--env",
            "CartPole-v1",
            "--keys-dir",
            self.keys / "learner",
            "--target-return",
            "1e9",
            "--max-env-steps",
            str(MAX_ENV_STEPS),
            "--checkpoint-every",
            str(CHECKPOINT_EVERY),
            "--metrics-every",
            str(METRICS_EVERY),
            *(["--resume"] if resume else []),
            log=log,
        )
        now = time.monotonic()
        slot = LEARNER_SLOT * self.rng.uniform(0.75, 1.25)
        last_kill = self.end - (RSS_BASELINE_AT + 3)  # the last life outlives its RSS baseline
        kill_at = min(now + max(MIN_LIFE, slot), last_kill)
        if kill_at < now + MIN_LIFE:
            kill_at = None  # the last life: it ends with the soak, by SIGTERM
        life = Life(index, proc, log, now, len(self.metrics.records), kill_at)
        self.lives.append(life)
        return life

    def start_actor(self, slot: int) -> ActorProc:
        log = self.tmp / f"actor-{len(self.actors) + 1}-slot{slot}.log"
        proc = start_actors(
            self.address, "--keys-dir", self.keys / f"actor-{slot}", *self.actor_args, log=log
        )
        actor = ActorProc(slot, proc, log, time.monotonic())
        self.actors.append(actor)
        self.slots[slot] = actor
        return actor

    # -- faults --

    def kill_learner(self, life: Life) -> None:
        self.metrics.poll()
        records = life.records(self.metrics)
        rate = max((r["env_steps_per_second"] for r in records[-5:]), default=0.0)
        life.proc.send_signal(signal.SIGKILL)
        life.proc.wait()
        killed, killed_wall = time.monotonic(), time.time()
        life.ended = "SIGKILL"
        self.metrics.poll()  # a record written between the read and the kill counts too
        records = life.records(self.metrics)
        last = records[-1]["env_steps"] if records else None
        from learner.rundir import load_checkpoint

        state = load_checkpoint(self.run_dir / "checkpoint.pt")
        # The metrics record may be older than the checkpoint (then last - saved < 0): the
        # steps made after the checkpoint, estimated from its age at the kill, say more.
        age = killed_wall - (self.run_dir / "checkpoint.pt").stat().st_mtime
        saved = int(state["env_steps"])
        bad = [k for k, v in state["model"].items() if not bool(v.isfinite().all())]
        if bad:
            self.fail(f"checkpoint after life {life.index} holds non-finite weights: {bad}")
        te = self.steps_per_message()
        allowed = (CHECKPOINT_EVERY + METRICS_EVERY) * rate * LOSS_MARGIN + 4 * te
        entry = {
            "life": life.index,
            "killed_at_s": round(killed - self.started, 1),
            "life_seconds": round(killed - life.started, 1),
            "last_metrics_env_steps": last,
            "checkpoint_env_steps": saved,
            "checkpoint_weights_version": int(state["weights_version"]),
            "lost_env_steps": None if last is None else last - saved,
            "checkpoint_age_at_kill_s": round(age, 2),
            "lost_env_steps_estimated": round(rate * age),
            "rate_env_steps_per_s": rate,
            "allowed_loss": round(allowed),
        }
        self.resumes.append(entry)
        if last is None:
            self.fail(f"learner life {life.index} wrote no metrics in {entry['life_seconds']}s")
        elif last - saved > allowed:
            self.fail(
                f"resume after life {life.index} loses {last - saved} env steps "
                f"(metrics {last}, checkpoint {saved}), over the allowed {allowed:.0f} "
                f"at {rate} env steps/s"
            )
        new = self.start_learner(resume=True)
        self.fuzzer.learner_restarted.set()
        self.pending_resume = {"entry": entry, "life": new, "killed": killed}

    def check_resume(self, now: float) -> None:
        pending = self.pending_resume
        if pending is None:
            return
        life, entry = pending["life"], pending["entry"]
        records = life.records(self.metrics)
        if records:
            first = records[0]["env_steps"]
            entry["resumed_first_metrics_env_steps"] = first
            entry["downtime_s"] = round(now - pending["killed"], 1)
            m = re.search(
                r"resumed from \S+: version (\d+), (\d+) env steps", tail(life.log, 10**6)
            )
            entry["resumed_log_env_steps"] = int(m.group(2)) if m else None
            if first < entry["checkpoint_env_steps"]:
                self.fail(f"life {life.index} resumed at {first} env steps, below its checkpoint")
            if m is None or int(m.group(2)) != entry["checkpoint_env_steps"]:
                self.fail(f"life {life.index} did not log resuming from the checkpoint's steps")
            self.pending_resume = None
        elif now - pending["killed"] > 90:
            self.fail(f"the resumed learner (life {life.index}) wrote no metrics in 90 s")
            self.pending_resume = None

    def steps_per_message(self) -> int:
        if self.te is None:
            cfg = json.loads((self.run_dir / "config.json").read_text())
            self.te = int(cfg["hp"]["rollout_len"]) * int(cfg["hp"]["num_envs"])
        return self.te

    def kill_actor(self) -> None:
        slot = self.rng.choice(sorted(self.slots))
        actor = self.slots[slot]
        if actor.proc.poll() is None:
            actor.proc.send_signal(signal.SIGKILL)
            actor.proc.wait()
            actor.ended, actor.code = "SIGKILL", actor.proc.returncode
            self.actor_kills += 1
        self.start_actor(slot)

    # -- the run --

    def run(self) -> None:
        self.end = time.monotonic() + SECONDS
        self.fuzzer = Fuzzer(self.address, self.keys / "actor-3", SEED + 1)
        life = self.start_learner(resume=False)
        for slot in (1, 2):
            self.start_actor(slot)
        self.fuzzer.start()
        next_actor_fault = time.monotonic() + self.rng.uniform(*ACTOR_FAULT_EVERY)
        while True:
            now = time.monotonic()
            self.metrics.poll()
            life = self.lives[-1]
            rss = rss_bytes(life.proc.pid)
            code = life.proc.poll()
            if code is not None:
                life.ended = f"exit {code} (unprompted)"
                self.fail(
                    f"learner life {life.index} exited with {code} without being killed; "
                    f"log tail:\n{tail(life.log)}"
                )
                return
            if rss is not None:
                life.rss.append((now, rss))
            life.find_run_id()
            self.check_resume(now)
            if self.fuzzer.error:
                self.fail(f"the fuzzer thread failed (a test bug):\n{self.fuzzer.error}")
                return
            for slot, actor in list(self.slots.items()):
                code = actor.proc.poll()
                if code is not None:
                    actor.ended, actor.code = f"exit {code}", code
                    text = actor.text()
                    self.actor_self_exits.append(
                        {"slot": slot, "code": code, "at_s": round(now - self.started, 1)}
                    )
                    if code != 4:
                        self.fail(f"an actor exited with {code} mid-run; log tail:\n{text[-3000:]}")
                    self.start_actor(slot)
            if now >= self.end:
                return
            if life.kill_at is not None and now >= life.kill_at and self.pending_resume is None:
                self.kill_learner(life)
                continue
            if now >= next_actor_fault and now < self.end - QUIET_END:
                self.kill_actor()
                next_actor_fault = now + self.rng.uniform(*ACTOR_FAULT_EVERY)
            time.sleep(0.5)

    def finish(self) -> None:
        """SIGTERM to the learner once the live actors have joined it; then every actor
        must leave within 30 s."""
        life = self.lives[-1]
        run_id = life.find_run_id()
        live = list(self.slots.values())
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and not all(f"(run {run_id})" in a.text() for a in live):
            time.sleep(0.5)
        for a in live:
            if f"(run {run_id})" not in a.text():
                self.notes.append(f"actor {a.log.name} had not joined the last learner at the end")
        if life.proc.poll() is None:
            rss = rss_bytes(life.proc.pid)
            if rss is not None:
                life.rss.append((time.monotonic(), rss))
            life.proc.send_signal(signal.SIGTERM)
            try:
                self.final_code = life.proc.wait(60)
            except subprocess.TimeoutExpired:
                self.fail(f"the learner did not exit within 60 s of SIGTERM:\n{tail(life.log)}")
                life.proc.kill()
                self.final_code = life.proc.wait()
            life.ended = f"SIGTERM, exit {self.final_code}"
            if self.final_code not in (INTERRUPTED, 0):
                self.fail(
                    f"the learner exited with {self.final_code} after SIGTERM, not "
                    f"{INTERRUPTED} (or 0):\n{tail(life.log)}"
                )
        stopped = time.monotonic()
        for a in live:
            try:
                code = a.proc.wait(max(0.1, stopped + 30 - time.monotonic()))
            except subprocess.TimeoutExpired:
                a.proc.kill()
                a.proc.wait()
                a.ended = "not exited in 30 s"
                self.final_actor_exits.append({"log": a.log.name, "code": None})
                self.fail(f"actor {a.log.name} did not exit within 30 s:\n{a.text()[-3000:]}")
                continue
            took = time.monotonic() - stopped
            a.ended, a.code = f"exit {code}", code
            text = a.text()
            told = "learner ended training" in text
            self.final_actor_exits.append(
                {"log": a.log.name, "code": code, "seconds": round(took, 1), "told_stop": told}
            )
            if told and code != 0:
                self.fail(f"actor {a.log.name} was told to stop but exited {code}")
            elif not told and code not in (0, 4):
                self.fail(f"actor {a.log.name} exited {code}:\n{text[-3000:]}")

    def cleanup(self) -> None:
        if self.fuzzer is not None and self.fuzzer.is_alive():
            self.fuzzer.stop()
        for p in [life.proc for life in self.lives] + [a.proc for a in self.actors]:
            if p.poll() is None:
                p.kill()
                p.wait()

    # -- the figures --

    def report(self) -> dict:
        self.metrics.poll()
        summary_path = self.run_dir / "summary.json"
        final = json.loads(summary_path.read_text()) if summary_path.exists() else {}
        drops_per_life = []
        total: Counter[str] = Counter()
        for i, life in enumerate(self.lives):
            records = life.records(self.metrics)
            if i + 1 < len(self.lives):
                records = records[: self.lives[i + 1].first_record - life.first_record]
            dropped = dict(records[-1].get("dropped", {})) if records else {}
            if life is self.lives[-1] and final:
                dropped = final.get("dropped", dropped)
            drops_per_life.append(dropped)
            total.update(dropped)
        if total.get("internal_error"):
            self.fail(f"messages reached the learner's last-resort guard: {dict(total)}")
        for life in self.lives:
            figures = life.rss_figures()
            base, peak = figures["rss_at_20s_mib"], figures["rss_max_mib"]
            if base is None:
                self.notes.append(f"learner life {life.index} ended before 20 s: no RSS baseline")
            elif peak * MIB >= base * MIB + RSS_ALLOWANCE:
                self.fail(
                    f"learner life {life.index}: RSS peaked at {peak} MiB, over its 20 s value "
                    f"{base} MiB + 64 MiB"
                )
        kills = sum(life.ended == "SIGKILL" for life in self.lives)
        if SECONDS >= 300 and kills < 3:
            self.fail(f"only {kills} learner kills in {SECONDS:.0f} s")
        if self.metrics.corrupt:
            self.fail(f"{len(self.metrics.corrupt)} metrics.jsonl lines do not parse")
        fz = self.fuzzer
        missed = [life.index for life in self.lives if life.run_id not in fz.welcomed]
        if missed:
            self.fail(f"the fuzzing peer never joined learner lives {missed}")
        last = self.metrics.records[-1] if self.metrics.records else {}
        try:
            rev = subprocess.run(
                ["git", "rev-parse", "HEAD"], capture_output=True, text=True, cwd=REPO
            ).stdout.strip()
            dirty = bool(
                subprocess.run(
                    ["git", "status", "--porcelain", "--untracked-files=no"],
                    capture_output=True,
                    text=True,
                    cwd=REPO,
                ).stdout.strip()
            )
        except OSError:
            rev = dirty = None
        return {
            "git_rev": rev,
            "git_dirty": dirty,
            "seconds": SECONDS,
            "seed": SEED,
            "env": "CartPole-v1",
            "mode": "gradient",
            "keys": True,
            "checkpoint_every_s": CHECKPOINT_EVERY,
            "metrics_every_s": METRICS_EVERY,
            "env_steps": final.get("env_steps", last.get("env_steps")),
            "updates": final.get("updates", last.get("updates")),
            "episodes": final.get("episodes", last.get("episodes")),
            "mean_return_100": final.get("mean_return_100", last.get("mean_return_100")),
            "fuzzer_env_steps_counted": final.get("actors", {}).get("fuzzer"),
            "learner_kills": kills,
            "learner_resumes": len(self.resumes),
            "resumes": self.resumes,
            "lost_env_steps_per_resume": [r["lost_env_steps"] for r in self.resumes],
            "final_learner_exit_code": self.final_code,
            "actor_kills": self.actor_kills,
            "actor_processes": len(self.actors),
            "actor_exits_mid_run": self.actor_self_exits,
            "actor_exits_at_end": self.final_actor_exits,
            "actor_learner_timeout": self.actor_args[1] if self.actor_args else None,
            "fuzz_messages_sent": fz.sent,
            "fuzz_queue_full": fz.queue_full,
            "fuzz_kinds": dict(sorted(fz.kinds.items())),
            "fuzz_replies": dict(sorted(fz.replies.items())),
            "fuzz_reconnects": fz.reconnects,
            "fuzz_learner_lives_joined": len(fz.welcomed),
            "dropped_last_life": drops_per_life[-1] if drops_per_life else {},
            "dropped_all_lives": dict(sorted(total.items())),
            "rss_per_life": [life.rss_figures() for life in self.lives],
            "corrupt_metrics_lines": self.metrics.corrupt[:5],
            "notes": self.notes,
            "failures": self.failures,
            "passed": not self.failures,
        }


def print_report(result: dict) -> None:
    print("\n==== soak", f"{result['seconds']:.0f}s", "seed", result["seed"], result["git_rev"])
    print(
        "env steps:",
        result["env_steps"],
        " updates:",
        result["updates"],
        " of which the fuzzer's accepted work (last life):",
        result["fuzzer_env_steps_counted"],
    )
    print(
        "learner kills:",
        result["learner_kills"],
        " resumes:",
        result["learner_resumes"],
        " final exit code:",
        result["final_learner_exit_code"],
    )
    for r in result["resumes"]:
        print(
            f"  life {r['life']} killed at {r['killed_at_s']}s after {r['life_seconds']}s: "
            f"metrics {r['last_metrics_env_steps']} -> checkpoint {r['checkpoint_env_steps']}, "
            f"lost {r['lost_env_steps']} (checkpoint {r['checkpoint_age_at_kill_s']}s old: "
            f"~{r['lost_env_steps_estimated']}; allowed {r['allowed_loss']} at "
            f"{r['rate_env_steps_per_s']}/s), resumed at {r.get('resumed_first_metrics_env_steps')}"
            f", back in {r.get('downtime_s')}s"
        )
    print(
        "actor kills:",
        result["actor_kills"],
        " actor processes:",
        result["actor_processes"],
        " mid-run exits:",
        result["actor_exits_mid_run"],
    )
    print("actor exits at the end:", result["actor_exits_at_end"])
    print(
        "fuzz messages sent:",
        result["fuzz_messages_sent"],
        " (queue full",
        result["fuzz_queue_full"],
        ") reconnects:",
        result["fuzz_reconnects"],
        " lives joined:",
        result["fuzz_learner_lives_joined"],
    )
    print("fuzz replies:", result["fuzz_replies"])
    print("dropped (last life):", result["dropped_last_life"])
    print("dropped (all lives):", result["dropped_all_lives"])
    for r in result["rss_per_life"]:
        print(
            f"  life {r['life']} ({r['seconds']}s, {r['ended']}): RSS at 20 s "
            f"{r['rss_at_20s_mib']} MiB, max {r['rss_max_mib']} MiB"
        )
    for note in result["notes"]:
        print("note:", note)
    for failure in result["failures"]:
        print("FAILED:", failure.splitlines()[0])
    print("passed:", result["passed"], flush=True)


def test_soak_under_faults_with_keys(tmp_path):
    soak = Soak(tmp_path)
    soak.setup()
    try:
        soak.run()
        soak.finish()
    finally:
        soak.cleanup()
    result = soak.report()
    print_report(result)
    results.write(RESULTS, result, command="pytest -m slow tests/test_soak.py", seconds=SECONDS)
    assert not result["failures"], "\n\n".join(result["failures"])
