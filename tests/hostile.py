"""A client that speaks to a learner like an attacker: every way a message can be wrong."""

from __future__ import annotations

import random

import lz4.block
import msgpack
import numpy as np
import zmq
import zstandard

from protocol import PROTOCOL_VERSION, Gradient, Hello, Rollout, Welcome, decode, encode
from tests.frames import frame, quiet_rollout


class HostileClient:
    def __init__(self, address: str):
        self.address = address
        self.ctx = zmq.Context()
        self.sock = self._socket()
        self.sent = 0

    def _socket(self) -> zmq.Socket:
        sock = self.ctx.socket(zmq.DEALER)
        sock.setsockopt(zmq.LINGER, 0)
        sock.connect(self.address)
        return sock

    def handshake(self, actor_id: str = "intruder") -> Welcome:
        self.sock.send_multipart(encode(Hello(actor_id, "nowhere", 1)))
        while True:
            if not self.sock.poll(10_000):
                raise TimeoutError("no welcome")
            msg = decode(self.sock.recv_multipart())
            if isinstance(msg, Welcome):
                self.welcome = msg
                return msg

    def send(self, *frames: bytes) -> None:
        self.sock.send_multipart(list(frames))
        self.sent += 1

    def header(self, t: str, fields: dict, arrays: list, v: int = PROTOCOL_VERSION) -> bytes:
        return msgpack.packb({"v": v, "t": t, "f": fields, "a": arrays})

    def garbage(self, rng: random.Random) -> None:
        """Random bytes, truncated and malformed msgpack, wrong shapes, wrong version."""
        for n in (1, 7, 100, 5000):
            self.send(rng.randbytes(n))
        good = encode(Hello("x", "y", 1))[0]
        self.send(good[: len(good) // 2])  # truncated
        self.send(b"\xdc\xff\xff")  # array header promising 65535 items, none there
        self.send(msgpack.packb([1, 2, 3]))
        self.send(self.header("launch", {}, []))
        self.send(self.header("gradient", {"run_id": "x"}, []))
        self.send(self.header("heartbeat", {"run_id": 5, "actor_id": "a"}, []))
        self.send(
            self.header(
                "hello", {"actor_id": "a", "host": "h", "pid": 1}, [], v=PROTOCOL_VERSION + 7
            )
        )

    def bad_gradients(self) -> None:
        w = self.welcome
        n = w.weights.size
        fields = {
            "run_id": w.run_id,
            "actor_id": "intruder",
            "weights_version": w.weights_version,
            "env_steps": 160,
            "weights_latency": 0.0,
        }
        self.send(*encode(Gradient(**fields, grad=np.zeros(n, np.float64))))  # wrong dtype
        self.send(*encode(Gradient(**fields, grad=np.zeros(n + 1, np.float32))))  # wrong shape
        for bad in (np.nan, np.inf, -np.inf):
            grad = np.zeros(n, np.float32)
            grad[n // 2] = bad
            self.send(*encode(Gradient(**fields, grad=grad)))
        (whole,) = encode(Gradient(**fields, grad=np.zeros(n, np.float32)))
        self.send(bytes(whole)[:-8])  # shorter than its shape says
        self.send(bytes(whole), bytes(8))  # a second frame: a message is one
        self.send(bytes(whole)[:-16], bytes(whole)[-16:])  # one message split in two frames

    def bad_moments(self) -> int:
        """Well-formed gradients whose normalization moments are wrong in one way each (for a
        learner with normalize_obs and normalize_reward). Returns how many were sent."""
        w = self.welcome
        dim = w.settings["env_spec"]["obs_shape"][0]
        hp = w.settings["hyperparams"]
        steps = hp["rollout_len"] * hp["num_envs"]
        fields = (w.run_id, "intruder", w.weights_version, steps, 0.0)

        def good():
            obs = np.concatenate([[steps], np.zeros(dim), np.ones(dim)])
            return {"obs_moments": obs, "ret_moments": np.array([steps, 0.0, 1.0])}

        cases = []
        for key, index, value in (
            ("obs_moments", 1, np.nan),  # not finite
            ("obs_moments", 0, steps + 1),  # counts more values than the message has steps
            ("obs_moments", -1, -5.0),  # negative sum of squares
            ("ret_moments", 1, 1e30),  # an absurd mean
        ):
            m = good()
            m[key][index] = value
            cases.append(m)
        m = good()
        m["obs_moments"] = m["obs_moments"][:-1]  # wrong size
        cases.append(m)
        m = good()
        del m["ret_moments"]  # missing
        cases.append(m)
        for m in cases:
            grad = np.zeros(w.weights.size, np.float32)
            self.send(*encode(Gradient(*fields, grad, m)))
        return len(cases)

    def bad_rollouts(self) -> None:
        w = self.welcome
        T = w.settings["hyperparams"]["rollout_len"]
        obs_dim = w.settings["env_spec"]["obs_shape"][0]

        def arrays(E=2):
            return quiet_rollout(T, E, obs_dim)

        def send(a, env_steps=T * 2):
            msg = Rollout(w.run_id, "intruder", w.weights_version, env_steps, 0.0, a)
            self.send(*encode(msg))

        a = arrays()
        a["obs"][3, 1, 0] = np.nan
        send(a)  # noqa: E702
        a = arrays()
        a["rewards"][0, 0] = np.inf
        send(a)  # noqa: E702
        a = arrays()
        a["obs"] = a["obs"].astype(np.float64)
        send(a)  # noqa: E702
        a = arrays()
        a["actions"] = np.zeros((T + 1, 2), np.int64)
        send(a)  # noqa: E702
        a = arrays()
        a["actions"][0, 0] = 99
        send(a)  # noqa: E702
        send(arrays(), env_steps=10**9)

    def bombs(self) -> None:
        """Compressed and half-precision frames that lie: each must be refused before it is
        inflated (bad_compression) or read (bad_encoding, bad_frames)."""
        w = self.welcome
        fields = {
            "run_id": w.run_id,
            "actor_id": "intruder",
            "weights_version": w.weights_version,
            "env_steps": 8,
            "weights_latency": 0.0,
        }
        zeros = zstandard.ZstdCompressor().compress(bytes(64 << 20))  # 64 MiB in a few KB

        def send(desc: list, data: bytes, t: str = "rollout", f: dict = fields) -> None:
            self.send(*frame({"v": PROTOCOL_VERSION, "t": t, "f": f, "a": [desc]}, data))

        send(["obs", "uint8", [64 << 20], "zstd"], zeros)  # inflates past the message limit
        send(["obs", "uint8", [4096], "zstd"], zeros)  # declares 64 MiB, descriptor 4 KiB
        send(["obs", "uint8", [4096], "lz4"], lz4.block.compress(bytes(1 << 14), store_size=False))
        send(["obs", "uint8", [4096], "zstd"], b"\x28\xb5\x2f\xfd" + bytes(40))  # corrupt
        send(["obs", "float32", [4096], "zstd"], zeros)  # only uint8 and bool compress
        send(["obs", "uint8", [4096], "bzip9"], bytes(10))  # no such encoding
        send(["obs", "uint8", [4096], "bfloat16"], bytes(8192))  # halves carry float32
        grad = {k: v for k, v in fields.items()}
        grad["env_steps"] = 160
        n = w.weights.size
        send(["grad", "float32", [n], "bfloat16"], bytes(2 * n - 2), "gradient", grad)

    def almost_valid(self) -> None:
        """Messages that once ended the learner: a handshake whose array descriptor holds a
        list where the dtype goes (unhashable), and one whose zero-byte array claims a shape
        numpy refuses."""
        hello = {"v": PROTOCOL_VERSION, "t": "hello", "f": {"actor_id": "h", "host": "h", "pid": 1}}
        self.send(*frame({**hello, "a": [["x", ["float32"], [1]]]}, bytes(4)))
        self.send(
            *frame({**hello, "a": [["x", "float32", [0, 2**31 - 1, 2**31 - 1, 2**31 - 1]]]}, b"")
        )

    def oversize(self, nbytes: int) -> None:
        """One message over the learner's limit: libzmq drops this connection."""
        self.send(b"\x00" * nbytes)
        self.sock.close(linger=5000)  # flush what is queued before it; it is all counted
        self.sock = self._socket()

    def handshake_flood(self, count: int, sockets: int = 20) -> None:
        """`count` hellos from distinct actor ids over `sockets` distinct connections."""
        socks = [self._socket() for _ in range(sockets)]
        for i in range(count):
            socks[i % sockets].send_multipart(encode(Hello(f"flood-{i}", "nowhere", i)))
        for s in socks:
            s.close(0)

    def close(self) -> None:
        self.sock.close(0)
        self.ctx.term()
