"""Hand-built wire frames for tests: a header map and array payloads laid out as
protocol.codec does (one frame; arrays from the next multiple of 8, each padded to 8), so
tests can forge exactly the message they mean."""

from __future__ import annotations

import msgpack

from protocol import PROTOCOL_VERSION
from protocol.codec import ALIGN


def _pad(data: bytes) -> bytes:
    return data + b"\0" * (-len(data) % ALIGN)


def frame(header: dict, *payloads: bytes) -> list[bytes]:
    """One message of `header` with `payloads` after it. Descriptors given as
    [name, dtype, shape] get a plain encoding and their payload's length appended."""
    descs = []
    for desc, data in zip(header.get("a", []), payloads):
        if isinstance(desc, list) and len(desc) == 3:
            desc = [*desc, "plain", len(data)]
        elif isinstance(desc, list) and len(desc) == 4:
            desc = [*desc, len(data)]
        descs.append(desc)
    descs += header.get("a", [])[len(payloads) :]
    head = msgpack.packb({**header, "a": descs} if "a" in header else header)
    if not payloads:
        return [head]
    return [_pad(head) + b"".join(_pad(p) for p in payloads)]


def header(t="heartbeat", f=None, a=None, v=PROTOCOL_VERSION) -> dict:
    f = {"run_id": "r", "actor_id": "a"} if f is None else f
    return {"v": v, "t": t, "f": f, "a": a or []}


def array_sizes(whole: bytes) -> list[int]:
    """The byte count each array of an encoded message travels in, in order."""
    unpacker = msgpack.Unpacker()
    unpacker.feed(whole)
    return [desc[4] for desc in unpacker.unpack()["a"]]


def parts(whole: bytes) -> tuple[dict, list[bytes]]:
    """An encoded message taken apart: its header map and each array's bytes."""
    unpacker = msgpack.Unpacker(raw=False)
    unpacker.feed(whole)
    head = unpacker.unpack()
    pos = unpacker.tell()
    pos += -pos % ALIGN
    payloads = []
    for desc in head["a"]:
        payloads.append(whole[pos : pos + desc[4]])
        pos += desc[4] + (-desc[4] % ALIGN)
    return head, payloads


def quiet_rollout(T: int, E: int, obs_dim: int, reward: float = 0.0) -> dict:
    """The arrays of a valid discrete-action rollout in which nothing happens: zero
    observations, action 0, a constant reward, no episode ends. Tests change one thing."""
    import numpy as np

    return {
        "obs": np.zeros((T, E, obs_dim), np.float32),
        "actions": np.zeros((T, E), np.int64),
        "rewards": np.full((T, E), reward, np.float32),
        "terminated": np.zeros((T, E), bool),
        "truncated": np.zeros((T, E), bool),
        "behaviour_logp": np.full((T, E), -0.7, np.float32),
        "bootstrap_obs": np.zeros((E, obs_dim), np.float32),
        "trunc_index": np.zeros(0, np.int64),
        "trunc_obs": np.zeros((0, obs_dim), np.float32),
    }
