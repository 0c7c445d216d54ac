"""The learner's message path, fuzzed: messages built from the protocol's own schema, valid
for the run they go to, then broken in up to three ways (header, fields, array descriptors,
array bytes, frames). Whatever arrives, the learner counts it, stays bounded and trains on.

The same generator serves two drivers: hypothesis (shrinkable, through the in-process
learner) and a seeded RNG (thousands of messages at a live learner over real sockets)."""

from __future__ import annotations

import copy
import dataclasses
import math
import random
import time
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import lz4.block
import msgpack
import numpy as np
import pytest
import zmq
import zstandard
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from learner.intake import MAX_PENDING_BYTES, DataIntake
from learner.normstats import NormStats
from learner.validation import rollout_specs
from protocol import (
    PROTOCOL_VERSION,
    WORK_STATS,
    ArraySpec,
    CodecError,
    Episodes,
    Gradient,
    Heartbeat,
    Hello,
    Message,
    Rejoin,
    Rollout,
    Status,
    StatusQuery,
    Stop,
    Weights,
    Welcome,
    decode,
    encode,
)
from protocol.codec import ALIGN, ALLOWED_DTYPES, MAX_ARRAY_BYTES, MAX_LIST_LEN, MAX_STR_LEN
from protocol.messages import MESSAGE_TYPES
from protocol.wire import FLOAT_FORMATS, WireFormat
from rlcore.envs import EnvSpec
from rlcore.hyperparams import Hyperparams
from tests.frames import parts
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
from tests.inproc import InProcessLearner

ACTOR_TYPES: tuple[type[Message], ...] = (
    Hello,
    Gradient,
    Rollout,
    Episodes,
    Heartbeat,
    Stop,
    StatusQuery,
)
"""Every message an actor (or anyone) may send a learner."""

INF, NAN = math.inf, math.nan
F32_MAX = float(np.finfo(np.float32).max)

# ---- where choices come from ---------------------------------------------------------------


class Chooser:
    """The fuzzer's source of choices: hypothesis draws (shrinkable) or a seeded RNG."""

    def choice(self, options: Sequence) -> Any:
        raise NotImplementedError

    def integer(self, lo: int, hi: int) -> int:
        raise NotImplementedError

    def value(self, options: Sequence) -> Any:
        """A choice safe to mutate later: the option lists are shared."""
        return copy.deepcopy(self.choice(options))

    def coin(self) -> bool:
        return self.choice((False, True))

    def numpy(self) -> np.random.Generator:
        """Bulk values (array contents) from one drawn seed: one draw, not thousands."""
        return np.random.default_rng(self.integer(0, 2**32 - 1))


class DrawChooser(Chooser):
    def __init__(self, draw: Callable):
        self.draw = draw

    def choice(self, options: Sequence) -> Any:
        return self.draw(st.sampled_from(list(options)))

    def integer(self, lo: int, hi: int) -> int:
        return self.draw(st.integers(lo, hi))


class RandomChooser(Chooser):
    def __init__(self, rng: random.Random):
        self.rng = rng

    def choice(self, options: Sequence) -> Any:
        return options[self.rng.randrange(len(options))]

    def integer(self, lo: int, hi: int) -> int:
        return self.rng.randint(lo, hi)


# ---- valid messages, from the schema --------------------------------------------------------


@dataclass(frozen=True)
class Target:
    """What makes a message valid for one learner run, as a joined actor sees it."""

    run_id: str
    actor_id: str
    version: int
    spec: EnvSpec
    hp: Hyperparams
    num_params: int

    @classmethod
    def of(cls, welcome: Welcome, actor_id: str) -> Target:
        s = welcome.settings
        return cls(
            welcome.run_id,
            actor_id,
            welcome.weights_version,
            EnvSpec.from_dict(s["env_spec"]),
            Hyperparams.from_dict(s["hyperparams"]),
            int(welcome.weights.size),
        )

    @property
    def work_steps(self) -> int:
        return self.hp.rollout_len * self.hp.num_envs

    @property
    def stats_specs(self) -> dict[str, ArraySpec]:
        """The normalization moments this run's work must carry (none when it normalizes
        nothing): the learner's own rule."""
        return NormStats(self.hp, int(np.prod(self.spec.obs_shape))).specs()


REQUIRED_SPECS: dict[str, Callable[[Target], ArraySpec]] = {
    "grad": lambda t: ArraySpec("float32", (t.num_params,)),
}
"""Specs of the named arrays of fixed-layout messages (Message.ARRAYS): what
learner.validation.check_gradient asks."""


def array_specs(cls: type[Message], t: Target) -> dict[str, ArraySpec]:
    """The arrays a valid `cls` carries to this run: any-named messages (ARRAYS None) carry
    the learner's rollout specs, the others their ARRAYS; work also its moments."""
    if cls.ARRAYS is None:
        specs = dict(rollout_specs(t.spec, t.hp))
    else:
        specs = {name: REQUIRED_SPECS[name](t) for name in cls.ARRAYS}
    if cls.ARRAYS is None or set(WORK_STATS) <= set(cls.OPTIONAL):
        specs.update(t.stats_specs)
    return specs


def _fill(spec: ArraySpec, shape: tuple[int, ...], rng: np.random.Generator) -> np.ndarray:
    dtype = np.dtype(spec.dtype)
    if dtype.kind == "f":
        return (rng.standard_normal(shape) * 0.01).astype(dtype)
    if dtype.kind == "b":
        return rng.random(shape) < 0.1
    if dtype == np.uint8:
        return rng.integers(0, 256, shape, dtype=np.uint8)
    return np.zeros(shape, dtype)


def valid_arrays(specs: dict[str, ArraySpec], t: Target, rng: np.random.Generator) -> dict:
    """Arrays of `specs`, symbolic dimensions bound as this run binds them, with the values
    learner.validation checks beyond dtype and shape made consistent."""
    T, E = t.hp.rollout_len, t.hp.num_envs
    truncated = rng.random((T, E)) < 0.05
    dims = {"E": E, "K": int(truncated.sum())}
    out = {}
    for name, spec in specs.items():
        shape = tuple(dims[d] if isinstance(d, str) else d for d in spec.shape)
        out[name] = _fill(spec, shape, rng)
    if "truncated" in out:
        out["truncated"] = truncated
        out["trunc_index"] = np.flatnonzero(truncated).astype(np.int64)
    if "actions" in out and t.spec.discrete:
        out["actions"] = rng.integers(0, t.spec.num_actions, (T, E), dtype=np.int64)
    if "behaviour_logp" in out:
        out["behaviour_logp"] = -rng.random((T, E)).astype(np.float32) * 2
    for name in WORK_STATS:
        if name in out:  # [count, mean..., M2...], counting exactly this message's steps
            half = (out[name].size - 1) // 2
            out[name] = np.concatenate([[t.work_steps], np.zeros(half), np.ones(half)])
    return out


VALID_PLAIN = {
    str: ("fuzz", "here"),
    int: (1, 4242),
    float: (0.0, 0.01, -1.0),
    list: ([],),
    dict: ({},),
}


def valid_fields(cls: type[Message], t: Target, c: Chooser) -> dict:
    fields: dict[str, Any] = {}
    for name, kind in cls.FIELDS.items():
        if name == "run_id":
            fields[name] = t.run_id
        elif name == "actor_id":
            fresh = cls is Hello and c.coin()  # a newcomer joins the registry
            fields[name] = f"fuzz-new-{c.integer(0, 10**6)}" if fresh else t.actor_id
        elif name == "weights_version":
            fields[name] = max(0, t.version - c.integer(0, 2))
        elif name == "env_steps":
            fields[name] = t.work_steps
        elif name == "returns":
            fields[name] = [float(c.integer(-10, 500)) for _ in range(c.integer(0, 3))]
        elif name == "lengths":
            fields[name] = [c.integer(1, 500) for _ in fields["returns"]]
        else:
            fields[name] = c.choice(VALID_PLAIN[kind])
    return fields


def valid_message(cls: type[Message], t: Target, c: Chooser) -> Message:
    fields = valid_fields(cls, t, c)
    specs = array_specs(cls, t) if cls.ARRAYS != () or cls.OPTIONAL else {}
    return cls.from_wire(fields, valid_arrays(specs, t, c.numpy()))


# ---- a message taken apart, to be broken ----------------------------------------------------


@dataclass
class Draft:
    cls: type[Message]
    header: dict
    payloads: list[bytes]
    t: Target

    def fields(self) -> dict | None:
        f = self.header.get("f")
        return f if isinstance(f, dict) else None

    def descs(self) -> list | None:
        a = self.header.get("a")
        return a if isinstance(a, list) else None

    def list_descs(self) -> list[int]:
        descs = self.descs() or []
        return [i for i, d in enumerate(descs) if isinstance(d, list) and len(d) == 5]

    def render(self) -> bytes:
        head = msgpack.packb(self.header, use_bin_type=True)
        if not self.payloads:
            return head
        return _pad(head) + b"".join(_pad(p) for p in self.payloads)


def _pad(data: bytes) -> bytes:
    return data + b"\0" * (-len(data) % ALIGN)


def draft_of(msg: Message, t: Target, c: Chooser) -> Draft:
    """`msg` as the real encoder sends it, in a wire format drawn from every one a learner
    may choose, then taken apart."""
    wire = WireFormat(c.choice(("none", "zstd", "lz4")), c.choice(FLOAT_FORMATS))
    head, payloads = parts(bytes(encode(msg, wire)[0]))
    return Draft(type(msg), head, payloads, t)


# ---- mutations ------------------------------------------------------------------------------

MUTATIONS: list[tuple[str, str, Callable[[Draft, Chooser], None]]] = []
"""(name, what it needs: header, fields or arrays, how it breaks a draft)."""


def mutation(needs: str):
    def register(fn):
        MUTATIONS.append((fn.__name__, needs, fn))
        return fn

    return register


def pick_mutation(d: Draft, c: Chooser) -> tuple[str, str, Callable[[Draft, Chooser], None]]:
    """What it breaks first (so arrays get their share), then how."""
    has = {"arrays": bool(d.list_descs()), "fields": d.fields() is not None, "header": True}
    needs = c.choice([k for k, ok in has.items() if ok])
    return c.choice([m for m in MUTATIONS if m[1] == needs])


SWAPS: dict[type, tuple] = {
    str: ("", "fuzz", "x" * (MAX_STR_LEN + 1)),
    int: (0, -1, 2**63 - 1, -(2**63), 2**64 - 1),
    float: (0.5, NAN, INF, -INF, 1e308, -1e308),
    list: ([], [1, 2], [NAN], [[1]], ["a"], [None]),
    dict: ({}, {"a": 1}, {"run_id": "x"}, {1: 2}),
    type(None): (None,),
    bool: (True, False),
    bytes: (b"\x00", b"run"),
}


def field_extremes(name: str, kind: type, t: Target) -> tuple:
    by_name = {
        "run_id": ("", "0" * 16, t.run_id[::-1], "r" * MAX_STR_LEN, "r" * (MAX_STR_LEN + 1)),
        "actor_id": ("", "stranger", "a" * MAX_STR_LEN, "a" * (MAX_STR_LEN + 1), "\u00fc" * 200),
        "weights_version": (
            t.version + 1,
            t.version + 10**6,
            -1,
            -(2**63),
            2**63 - 1,
            2**64 - 1,
        ),
        "env_steps": (0, -1, t.work_steps - 1, t.work_steps + 1, 10**15, 2**63 - 1, -(2**63)),
        "returns": (
            [1.7e308],
            [-1.7e308],
            [NAN],
            [INF],
            [-INF],
            [1e12],
            [1.0000001e12],
            [1.7e308] * 100,
            [1e12] * 100,
            [True],
            [0.0] * MAX_LIST_LEN,
            [0.0] * (MAX_LIST_LEN + 1),
        ),
        "lengths": ([0], [-1], [2**40], [2**40 + 1], [1.5], [True], [2**63 - 1], [NAN], [-(2**63)]),
        "weights_latency": (NAN, INF, -INF, 1e308, -1e308, 3600.0, -1.0, 5e-324),
    }
    by_kind = {
        int: (-1, 0, 2**63 - 1, -(2**63), 2**64 - 1),
        float: (NAN, INF, -INF, 1e308, -1e308, -1.0),
        str: ("", "x" * MAX_STR_LEN, "x" * (MAX_STR_LEN + 1), "\0", "\ud7ff" * 100),
        list: ([], [NAN], [INF], [1.7e308], [0] * (MAX_LIST_LEN + 1)),
        dict: ({}, {"x": [1] * 100}),
    }
    return by_name.get(name) or by_kind[kind]


FLOAT_VALUES = (NAN, INF, -INF, 1e308, -1e308, 1.7e308, F32_MAX, -F32_MAX, 0.5, 1e30, 5e-324, -0.0)
HALF_VALUES = {"bfloat16": (0x7F80, 0xFF80, 0x7FC0, 0x7F7F), "float16": (0x7C00, 0xFC00, 0x7E00)}


@mutation("arrays")
def array_value(d: Draft, c: Chooser) -> None:
    """Values no honest actor sends: non-finite, huge, actions out of range, log-probs
    above 0, bools that are neither 0 nor 1."""
    i, (_, dtype, _, encoding, _) = _pick(d, c)
    if i >= len(d.payloads) or not d.payloads[i]:
        return
    data = d.payloads[i]
    encoding = encoding if isinstance(encoding, str) else "?"
    if encoding in HALF_VALUES and len(data) % 2 == 0:
        arr, values = np.frombuffer(data, np.uint16).copy(), HALF_VALUES[encoding]
    elif encoding != "plain" or not isinstance(dtype, str) or dtype not in ALLOWED_DTYPES:
        k = c.integer(0, len(data) - 1)  # compressed: corrupt it instead
        d.payloads[i] = data[:k] + bytes([data[k] ^ 0x5A]) + data[k + 1 :]
        return
    else:
        dt = np.dtype(dtype)
        if len(data) % dt.itemsize:
            return
        arr = np.frombuffer(data, dt).copy()
        if dt.kind == "f":
            values = FLOAT_VALUES
        elif dt.kind == "b":
            arr, values = arr.view(np.uint8), (2, 255)
        else:
            info = np.iinfo(dt)
            n = max(d.t.spec.num_actions, 1)
            values = tuple(v for v in (-1, n, 2**31, 2**62, 2**63 - 1) if info.min <= v <= info.max)
    value = c.choice(values)
    with np.errstate(over="ignore"):
        v = np.array(value).astype(arr.dtype)
    if c.coin():
        arr[...] = v
    else:
        arr.reshape(-1)[c.integer(0, arr.size - 1)] = v
    d.payloads[i] = arr.tobytes()


@mutation("fields")
def field_extreme(d: Draft, c: Chooser) -> None:
    f = d.fields()
    names = [n for n in d.cls.FIELDS if n in f]
    if not names:
        return
    name = c.choice(names)
    f[name] = c.value(field_extremes(name, d.cls.FIELDS[name], d.t))
    other = {"returns": "lengths", "lengths": "returns"}.get(name)
    if other in f and c.coin():  # same count, so the values themselves are judged
        fill = 10 if other == "lengths" else 1.0
        f[other] = [fill] * len(f[name]) if isinstance(f[name], list) else []


@mutation("header")
def version(d: Draft, c: Chooser) -> None:
    d.header["v"] = c.value(
        (
            0,
            1,
            3,
            PROTOCOL_VERSION + 1,
            PROTOCOL_VERSION + 7,
            -1,
            2**63 - 1,
            2**64 - 1,
            float(PROTOCOL_VERSION),
            str(PROTOCOL_VERSION),
            None,
            True,
            [PROTOCOL_VERSION],
        )
    )


@mutation("header")
def message_type(d: Draft, c: Chooser) -> None:
    learner_types = [name for name in MESSAGE_TYPES if MESSAGE_TYPES[name] not in ACTOR_TYPES]
    actor_types = [cls.TYPE for cls in ACTOR_TYPES if cls is not d.cls]
    d.header["t"] = c.value(
        (*actor_types, *learner_types, "launch", "", None, 7, ["hello"], "h" * 300)
    )


@mutation("header")
def header_keys(d: Draft, c: Chooser) -> None:
    if c.coin():
        d.header.pop(c.choice(("v", "t", "f", "a")), None)
    else:
        d.header[c.value(("x", "V", 1))] = c.value((0, "", None))


@mutation("header")
def fields_container(d: Draft, c: Chooser) -> None:
    d.header["f"] = c.value(([], None, "f", 1, [list(d.cls.FIELDS)]))


@mutation("header")
def arrays_container(d: Draft, c: Chooser) -> None:
    d.header["a"] = c.value((None, {}, "a", 1, [[]], [None], [0] * (MAX_LIST_LEN + 1)))


@mutation("fields")
def field_type(d: Draft, c: Chooser) -> None:
    f = d.fields()
    if not f:
        return
    name = c.choice(sorted(f, key=str))
    declared = d.cls.FIELDS.get(name, str)
    f[name] = c.value(c.choice([v for k, v in SWAPS.items() if k is not declared]))


@mutation("fields")
def field_missing(d: Draft, c: Chooser) -> None:
    f = d.fields()
    if f:
        del f[c.choice(sorted(f, key=str))]


@mutation("fields")
def field_extra(d: Draft, c: Chooser) -> None:
    d.fields()[c.value(("extra", "run_id2", "", 5))] = c.value((0, "x", None, [1]))


def _small(x: Any) -> bool:
    """An int that stays packable after the arithmetic below (msgpack ends at 2**64 - 1)."""
    return type(x) is int and abs(x) < 2**40


def _pick(d: Draft, c: Chooser) -> tuple[int, list]:
    i = c.choice(d.list_descs())
    return i, d.descs()[i]


@mutation("arrays")
def desc_dtype(d: Draft, c: Chooser) -> None:
    _, desc = _pick(d, c)
    desc[1] = c.value(
        (
            "float16",
            "complex128",
            "object",
            "<f4",
            "float32",
            "float64",
            "int64",
            "int32",
            "uint8",
            "bool",
            "",
            None,
            5,
            ["float32"],
            {"kind": "f"},
        )
    )


@mutation("arrays")
def desc_shape(d: Draft, c: Chooser) -> None:
    _, desc = _pick(d, c)
    shape = [x for x in desc[2] if _small(x)] if isinstance(desc[2], list) else [1]
    rest = shape[1:]
    desc[2] = c.choice(
        (
            [-1, *rest],
            [2**31, *rest],
            [2**31 - 1],
            [0, 2**31 - 1, 2**31 - 1, 2**31 - 1],
            [0, 2**62],
            [0, 2**63 - 1],
            [*shape, 1],
            shape[:-1],
            [],
            [1] * 9,
            [float(x) for x in shape],
            [str(x) for x in shape],
            [True] * len(shape),
            [2**64 - 1],
            [-(2**63)],
            [x * 2 for x in shape],
            [0] * len(shape),
            None,
            "4",
            7,
            {"0": 1},
            [[1]],
        )
    )


@mutation("arrays")
def desc_encoding(d: Draft, c: Chooser) -> None:
    _, desc = _pick(d, c)
    desc[3] = c.value(
        ("bzip9", "", None, 3, ["plain"], "ZSTD", "zstd", "lz4", "bfloat16", "float16", "plain")
    )


@mutation("arrays")
def desc_nbytes(d: Draft, c: Chooser) -> None:
    _, desc = _pick(d, c)
    n = desc[4] if _small(desc[4]) else 0
    desc[4] = c.choice(
        (n + 1, n + 8, n - 8, 0, -1, 2**31, MAX_ARRAY_BYTES + 1, 2**63 - 1, 2**64 - 1, 1.5)
        + (None, "8", True)
    )


@mutation("arrays")
def desc_name(d: Draft, c: Chooser) -> None:
    _, desc = _pick(d, c)
    others = [x[0] for x in d.descs() if isinstance(x, list) and x]
    desc[0] = c.value(("", "x" * 65, "x" * 64, 5, None, "obs_moments", "grad", "obs", *others))


@mutation("arrays")
def desc_form(d: Draft, c: Chooser) -> None:
    i, desc = _pick(d, c)
    d.descs()[i] = c.value((desc[:4], [*desc, 0], {"name": desc[0]}, desc[0], None, []))


@mutation("arrays")
def array_drop(d: Draft, c: Chooser) -> None:
    i, _ = _pick(d, c)
    del d.descs()[i]
    if c.coin() and i < len(d.payloads):  # or its bytes stay, unaccounted for
        del d.payloads[i]


@mutation("arrays")
def array_duplicate(d: Draft, c: Chooser) -> None:
    i, desc = _pick(d, c)
    d.descs().insert(i, list(desc))
    if i < len(d.payloads):
        d.payloads.insert(i, d.payloads[i])


@mutation("arrays")
def array_reorder(d: Draft, c: Chooser) -> None:
    descs = d.descs()
    i, j = c.integer(0, len(descs) - 1), c.integer(0, len(descs) - 1)
    descs[i], descs[j] = descs[j], descs[i]
    if max(i, j) < len(d.payloads):
        d.payloads[i], d.payloads[j] = d.payloads[j], d.payloads[i]


@mutation("header")
def array_extra(d: Draft, c: Chooser) -> None:
    descs = d.descs()
    if descs is None:
        return
    obs = int(np.prod(d.t.spec.obs_shape))
    name = c.choice(("extra", *WORK_STATS, "weights", "grad", "obs", "trunc_obs"))
    if name == WORK_STATS[0]:
        arr = np.concatenate([[d.t.work_steps], np.zeros(obs), np.ones(obs)])
    elif name == WORK_STATS[1]:
        arr = np.array([d.t.work_steps, 0.0, 1.0])
    else:
        dtype = c.choice(("float32", "float64", "int64", "uint8", "bool"))
        arr = np.zeros(c.integer(0, 4), dtype)
    if arr.size and arr.dtype.kind == "f" and c.coin():
        arr[c.integer(0, arr.size - 1)] = c.choice((NAN, -5.0, 1e30, -INF, d.t.work_steps + 1))
    descs.append([name, arr.dtype.name, list(arr.shape), "plain", arr.nbytes])
    d.payloads.append(arr.tobytes())


@mutation("arrays")
def payload_bytes(d: Draft, c: Chooser) -> None:
    i, desc = _pick(d, c)
    if i >= len(d.payloads):
        return
    data = d.payloads[i]
    how = c.choice(("truncate", "extend", "flip", "empty"))
    if how == "truncate":
        data = data[: max(0, len(data) - c.choice((1, 8, 4096)))]
    elif how == "extend":
        data = data + bytes(c.choice((1, 8, 4096)))
    elif how == "flip" and data:
        k = c.integer(0, len(data) - 1)
        data = data[:k] + bytes([data[k] ^ 0xFF]) + data[k + 1 :]
    else:
        data = b""
    d.payloads[i] = data
    if c.coin():  # the descriptor agrees, so only the array's own size can tell
        desc[4] = len(data)


@mutation("arrays")
def array_compressed(d: Draft, c: Chooser) -> None:
    """Compressed bytes: of any dtype (only uint8 and bool may be), lying about the size
    they inflate to, or a bomb."""
    i, desc = _pick(d, c)
    if i >= len(d.payloads):
        return
    codec = c.choice(("zstd", "lz4"))
    raw = c.choice(("own", "bomb", "short"))
    data = d.payloads[i]
    if raw == "bomb":
        data = bytes(c.choice((1 << 16, 1 << 24)))
    elif raw == "short":
        data = data[: len(data) // 2]
    if codec == "zstd":
        packed = zstandard.ZstdCompressor().compress(data)
    else:
        packed = lz4.block.compress(data, store_size=False)
    desc[3], desc[4] = codec, len(packed)
    d.payloads[i] = packed


def _split(w: bytes, c: Chooser) -> list[bytes]:
    k = c.integer(0, len(w))
    return [w[:k], w[k:]]


def _flip(w: bytes, c: Chooser) -> list[bytes]:
    k = c.integer(0, len(w) - 1)
    return [w[:k] + bytes([w[k] ^ c.integer(1, 255)]) + w[k + 1 :]]


def _noise(w: bytes, c: Chooser) -> list[bytes]:
    return [random.Random(c.integer(0, 2**32)).randbytes(c.choice((0, 1, 7, 100, 5000)))]


FRAME_MUTATIONS: list[tuple[str, Callable[[bytes, Chooser], list[bytes]]]] = [
    ("no_frames", lambda w, c: []),
    ("two_frames", lambda w, c: [w, c.choice((b"", bytes(8), w))]),
    ("three_frames", lambda w, c: [w, b"", b"x"]),
    ("split", _split),
    ("truncated", lambda w, c: [w[: c.integer(0, len(w) - 1)]]),
    ("trailing", lambda w, c: [w + c.choice((b"\0", bytes(8), b"\xff" * 64))]),
    ("doubled", lambda w, c: [w + w]),
    ("flipped", _flip),
    ("noise", _noise),
    ("not_a_map", lambda w, c: [msgpack.packb(c.choice(([1, 2, 3], 5, "hello", None, b"b")))]),
]


@dataclass(repr=False)
class Fuzzed:
    """One message as it goes out: its frames, what it began as and how it was broken."""

    frames: list[bytes]
    kind: str
    mutations: tuple[str, ...]
    stranger: bool
    """Sent from a connection that is not the actor's."""
    header: Any = field(default=None, repr=False)

    def _repr_pretty_(self, p, cycle) -> None:
        p.text(repr(self))

    def __repr__(self) -> str:
        head = repr(self.header)
        head = head if len(head) < 600 else head[:600] + "..."
        sizes = [len(f) for f in self.frames]
        return (
            f"Fuzzed({self.kind}, mutations={self.mutations}, stranger={self.stranger}, "
            f"frame sizes={sizes}, header={head})"
        )


ONE_IN_SIX = (False,) * 5 + (True,)
"""Hypothesis favours the first option: a rare choice goes last, not at 0 of a range."""
WORK_FIRST = sorted(ACTOR_TYPES, key=lambda cls: cls.ARRAYS == ())
"""The types with arrays first: their checks go deepest."""


def fuzz(c: Chooser, t: Target) -> Fuzzed:
    """A valid message of a type an actor sends, for run `t`, broken 0 to 3 ways."""
    cls = c.choice(WORK_FIRST)
    d = draft_of(valid_message(cls, t, c), t, c)
    done = []
    for _ in range(c.choice((0, 1, 1, 1, 2, 2, 3))):
        name, _, fn = pick_mutation(d, c)
        fn(d, c)
        done.append(name)
    frames = [d.render()]
    if c.choice(ONE_IN_SIX):
        name, fn = c.choice(FRAME_MUTATIONS)
        frames = fn(frames[0], c)
        done.append(name)
    return Fuzzed(frames, cls.TYPE, tuple(done), c.choice(ONE_IN_SIX), copy.deepcopy(d.header))


@st.composite
def fuzzed(draw, t: Target) -> Fuzzed:
    return fuzz(DrawChooser(draw), t)


# ---- the in-process learner -----------------------------------------------------------------

FUZZ_ACTOR, FUZZ_ID = "fuzz-actor", b"fuzz"
CHECK_ACTOR, CHECK_ID = "check-actor", b"check"
STRANGER_ID = b"stranger"


class Harness:
    """One in-process learner per mode, fed fuzz as its receive loop would feed it."""

    def __init__(self, run_dir: Path, mode: str):
        self.inproc = InProcessLearner(run_dir, mode)
        self.learner = self.inproc.learner
        welcome = self.inproc.join(FUZZ_ACTOR, FUZZ_ID)
        self.base = Target.of(welcome, FUZZ_ACTOR)
        self.check_welcome = self.inproc.join(CHECK_ACTOR, CHECK_ID)

    def ensure_joined(self, actor_id: str, identity: bytes) -> None:
        """Fuzzed hellos may move an actor to another connection; valid work from its own
        needs it back."""
        info = self.learner.registry.get(actor_id)
        if info is None or info.identity != identity:
            self.inproc.join(actor_id, identity)

    def target(self) -> Target:
        self.ensure_joined(FUZZ_ACTOR, FUZZ_ID)
        return dataclasses.replace(self.base, version=self.learner.updater.version)

    def _seen(self) -> tuple:
        ln, s = self.learner, self.learner.stats
        last_seen = max((a.last_seen for a in ln.registry.actors.values()), default=0.0)
        queued = sum(len(q) for q in _queues(ln))
        return (sum(s.dropped.values()), len(self.inproc.sent), s.episodes, queued, last_seen)

    def deliver(self, fz: Fuzzed) -> None:
        before = self._seen()
        self.inproc.deliver(STRANGER_ID if fz.stranger else FUZZ_ID, fz.frames)
        # Counted as dropped, answered, or its sender seen: nothing vanishes unaccounted.
        assert self._seen() != before, f"{fz} left no trace"
        self.check_invariants()

    def check_invariants(self) -> None:
        ln, s = self.learner, self.learner.stats
        assert "internal_error" not in s.dropped, s.dropped
        assert len(ln.registry.actors) <= ln.registry.capacity
        assert all(len(q) <= ln.cfg.max_credit for q in _queues(ln))
        held = ln.intake.pending_bytes if isinstance(ln.intake, DataIntake) else 0
        assert held == sum(i.nbytes for q in _queues(ln) for i in q)
        assert 0 <= held <= MAX_PENDING_BYTES
        counters = [s.env_steps, s.episodes, s.updates, s.bytes_in, s.bytes_out, s.weights_sent]
        counters += list(s.dropped.values()) + [a.env_steps for a in ln.registry.actors.values()]
        assert min(counters) >= 0, (counters, s.dropped)
        mean = s.mean_return_100
        assert mean is None or math.isfinite(mean), mean
        assert np.isfinite(ln.updater.weights).all(), "fuzz reached the model's weights"

    def assert_still_trains(self) -> None:
        before = self.learner.updater.version
        self.ensure_joined(CHECK_ACTOR, CHECK_ID)
        self.inproc.send(CHECK_ID, self.inproc.work(CHECK_ACTOR, self.check_welcome, before))
        self.inproc.learn()
        assert self.learner.updater.version > before, self.inproc.dropped
        self.check_invariants()

    def feed(self, data) -> None:
        """A batch of fuzzed messages, learning between them as the loop would."""
        for _ in range(data.draw(st.integers(1, 4), label="batch size")):
            self.deliver(data.draw(fuzzed(self.target())))
            if self.learner.cfg.mode == "data" and data.draw(st.booleans(), label="learn"):
                self.inproc.learn()
                self.check_invariants()
        self.assert_still_trains()


def _queues(ln) -> list:
    """The rollouts waiting to be learned, per actor (a gradient learner holds none)."""
    return list(ln.intake.pending.values()) if isinstance(ln.intake, DataIntake) else []


def _harness(tmp_path_factory, mode: str):
    harness = Harness(tmp_path_factory.mktemp(f"fuzz-{mode}") / "run", mode)
    yield harness
    harness.inproc.close()


@pytest.fixture(scope="module")
def gradient_learner(tmp_path_factory):
    yield from _harness(tmp_path_factory, "gradient")


@pytest.fixture(scope="module")
def data_learner(tmp_path_factory):
    yield from _harness(tmp_path_factory, "data")


FUZZ_SETTINGS = settings(
    max_examples=500,
    deadline=None,
    derandomize=True,
    database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)


@FUZZ_SETTINGS
@given(data=st.data())
def test_fuzzed_messages_to_a_gradient_learner(gradient_learner, data):
    gradient_learner.feed(data)


@FUZZ_SETTINGS
@given(data=st.data())
def test_fuzzed_messages_to_a_data_learner(data_learner, data):
    data_learner.feed(data)


def test_the_generator_covers_the_schema():
    """Unbroken, every actor message type decodes and is valid for its run; broken, every
    mutation is reached."""
    # A CartPole-sized run: only the shapes it implies matter here.
    target = Target("r" * 16, "a", 3, EnvSpec((4,), 2), Hyperparams(), 9155)
    rng = random.Random(0)
    kinds, names = Counter(), Counter()
    for _ in range(3000):
        fz = fuzz(RandomChooser(rng), target)
        kinds[fz.kind] += 1
        names.update(fz.mutations)
        if not fz.mutations:
            msg = decode(fz.frames)
            assert fz.kind == msg.TYPE
    assert set(kinds) == {cls.TYPE for cls in ACTOR_TYPES}
    assert {n for n, _, _ in MUTATIONS} | {n for n, _ in FRAME_MUTATIONS} <= set(names)


# ---- a live learner -------------------------------------------------------------------------

LIVE_MESSAGES = 4000
LIVE_BUDGET = 80_000
"""Env steps: enough that the run is still going when the fuzz ends (the guard below stops
the fuzz early on a slow machine), small enough that it ends by itself soon after."""
LIVE_PEERS = 4


def rss_bytes(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    raise RuntimeError("no VmRSS")


class FuzzPeer:
    """A DEALER that joins as its own actor, then sends fuzz and reads every reply."""

    def __init__(self, ctx: zmq.Context, address: str, actor_id: str):
        self.sock = ctx.socket(zmq.DEALER)
        self.sock.setsockopt(zmq.LINGER, 0)
        self.sock.setsockopt(zmq.SNDTIMEO, 30_000)  # a learner that stops reading fails the test
        self.sock.connect(address)
        self.actor_id = actor_id
        self.replies: Counter[str] = Counter()
        self.sent = 0
        self.target: Target | None = None
        self.statuses_due = 0
        self.last_status: dict | None = None

    def send(self, frames: list[bytes]) -> Message | str:
        """What the learner will decode the message to, or the reason it will count."""
        frames = frames or [b""]  # a DEALER cannot send no frame at all
        self.sock.send_multipart(frames)
        self.sent += 1
        verdict = decoded_or_reason(frames)
        self.statuses_due += isinstance(verdict, StatusQuery)  # always answered
        return verdict

    def _read(self) -> Message | None:
        try:
            msg = decode(self.sock.recv_multipart())
        except CodecError:  # a refusal in an older version's terms
            self.replies["undecodable"] += 1
            return None
        self.replies[msg.TYPE] += 1
        if isinstance(msg, Status):
            self.last_status = msg.state
        if isinstance(msg, Weights) and self.target is not None:
            self.target = dataclasses.replace(self.target, version=msg.version)
        if isinstance(msg, Rejoin):  # a fuzzed hello moved this actor: take it back
            self.send(encode(Hello(self.actor_id, "fuzz", 1)))
        return msg

    def drain(self) -> None:
        while self.sock.poll(0):
            self._read()

    def until(self, done: Callable[[Message | None], bool], what: str, timeout: float = 30.0):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.sock.poll(100) and done(self._read()):
                return
        raise AssertionError(f"{self.actor_id}: no {what} within {timeout}s")

    def join(self) -> None:
        self.sock.send_multipart(encode(Hello(self.actor_id, "fuzz", 1)))
        welcomes = []
        self.until(lambda m: isinstance(m, Welcome) and not welcomes.append(m), "welcome")
        self.replies.clear()
        self.target = Target.of(welcomes[0], self.actor_id)

    def status(self) -> dict:
        """The learner's state once it has handled everything this peer sent before. The
        fuzz asks for status too: the answer to this query is the last one due."""
        self.sock.send_multipart(encode(StatusQuery()))
        self.statuses_due += 1
        self.until(lambda m: self.replies["status"] >= self.statuses_due, "status")
        self.replies["status"] -= 1
        self.statuses_due -= 1
        return self.last_status


def decoded_or_reason(frames: list[bytes]) -> Message | str:
    if len(frames) != 1:
        return "bad_frames"
    try:
        return decode(frames)
    except CodecError as exc:
        return exc.reason


SILENT_KINDS = (Episodes.TYPE, Stop.TYPE)
"""Handled without a reply when valid: episodes are counted, a stop marks the actor gone."""


def test_live_learner_keeps_training_under_fuzz(tmp_path):
    address = f"tcp://127.0.0.1:{free_port()}"
    run_dir = tmp_path / "run"
    log = tmp_path / "learner.log"
    learner = start_learner(
        "gradient",
        address,
        run_dir,
        "--metrics-every",
        "0.5",
        "--max-env-steps",
        LIVE_BUDGET,
        "--target-return",
        "1e9",  # it runs to its budget: a solved run would end mid-fuzz
        log=log,
    )
    actors = start_actors(address, "--workers", "2")
    ctx = zmq.Context()
    peers = [FuzzPeer(ctx, address, f"fuzz-live-{i}") for i in range(LIVE_PEERS)]
    try:
        wait_for(lambda: (metrics(run_dir) or [{}])[-1].get("env_steps", 0) > 0, 60, "training")
        for peer in peers:
            peer.join()
        before = peers[0].status()
        rss_before = rss_bytes(learner.pid)
        rng = random.Random(1234)
        chooser = RandomChooser(rng)
        kinds, mutations, refused, silent, sent = Counter(), Counter(), Counter(), 0, 0
        steps_per_update = peers[0].target.work_steps
        for i in range(LIVE_MESSAGES):
            own = peers[i % LIVE_PEERS]
            fz = fuzz(chooser, own.target)
            verdict = (peers[(i + 1) % LIVE_PEERS] if fz.stranger else own).send(fz.frames)
            kinds[fz.kind] += 1
            mutations.update(fz.mutations or ("none",))
            if isinstance(verdict, str):
                refused[verdict] += 1
            else:
                silent += verdict.TYPE in SILENT_KINDS
            sent += 1
            if i % 64 == 0:
                for peer in peers:
                    peer.drain()
                progress = own.target.version * steps_per_update
                if progress > 0.6 * LIVE_BUDGET:  # a slow machine: leave the run time to go on
                    break
        states = [peer.status() for peer in peers]  # in order: the last follows all the fuzz
        after = states[-1]
        rss_after = rss_bytes(learner.pid)
        total = sum(peer.sent for peer in peers)  # the fuzz and the re-joins it caused
        replies = sum(sum(peer.replies.values()) for peer in peers)
        dropped = Counter(after["dropped"]) - Counter(before["dropped"])
        report = f"sent {total}, replies {replies}, dropped {dict(dropped)}, refused {refused}"
        print(f"live fuzz: {report}; kinds {dict(kinds)}; mutations {dict(mutations)}")
        assert sent >= 1000, report
        assert "internal_error" not in after["dropped"], after["dropped"]
        # Every message the codec refuses is counted under the codec's own reason...
        assert not refused - dropped, report
        # ...and every one it reads is counted (by a later check), answered, or is an
        # episodes or stop report, which a valid one never answers.
        later = sum(dropped.values()) - sum(refused.values())
        assert later + replies >= total - sum(refused.values()) - silent, report
        fuzz_end = after["env_steps"]

        def went_on() -> bool:
            steps = (metrics(run_dir) or [{}])[-1].get("env_steps", 0)
            return steps > fuzz_end or learner.poll() is not None

        wait_for(went_on, 60, "training after the fuzz")
        assert rss_after - rss_before < 64 * 2**20, (rss_before, rss_after)
        assert wait(learner, 120) == 0, log.read_text()[-3000:]
        assert wait(actors, 30) == 0
    finally:
        for peer in peers:
            peer.sock.close(0)
        ctx.term()
        kill_all(learner, actors)
    result = summary(run_dir)
    assert result["stop_reason"] == "max_env_steps", result
    assert result["env_steps"] > fuzz_end
    assert "internal_error" not in result["dropped"], result["dropped"]
