"""Frames <-> messages. Header: one msgpack frame. Arrays: one raw frame each, no pickle.

Header layout: {"v": version, "t": type, "f": {fields}, "a": [[name, dtype, shape], ...]},
followed by exactly one frame per array descriptor. Decoding trusts nothing: every limit,
type, dtype and byte length is checked, and any failure raises `CodecError` with a short
machine-readable `reason` that the receiver counts.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import msgpack
import numpy as np

from protocol.messages import MESSAGE_TYPES, PROTOCOL_VERSION, Message, Rollout

MAX_HEADER_BYTES = 64 * 1024
MAX_ARRAYS = 16
MAX_STR_LEN = 256
MAX_LIST_LEN = 4096
MAX_ARRAY_BYTES = 256 * 1024 * 1024
ALLOWED_DTYPES = frozenset({"float32", "float64", "int64", "int32", "uint8", "bool"})


class CodecError(ValueError):
    """A message that cannot be decoded or fails validation. `reason` is a short tag."""

    def __init__(self, reason: str, detail: str = ""):
        super().__init__(f"{reason}: {detail}" if detail else reason)
        self.reason = reason
        self.detail = detail


def encode(msg: Message) -> list[Any]:
    """Frames for `msg`: the header bytes, then each array's buffer (no copy made here)."""
    arrays = msg.array_items()
    descriptors = []
    buffers = []
    for name, arr in arrays.items():
        arr = np.ascontiguousarray(arr)
        descriptors.append([name, arr.dtype.name, list(arr.shape)])
        buffers.append(memoryview(arr).cast("B") if arr.size else b"")
    header = {"v": PROTOCOL_VERSION, "t": msg.TYPE, "f": msg.header_fields(), "a": descriptors}
    return [msgpack.packb(header, use_bin_type=True), *buffers]


def _unpack_header(data: Any) -> dict:
    raw = bytes(data)
    if len(raw) > MAX_HEADER_BYTES:
        raise CodecError("oversize_header", f"{len(raw)} bytes")
    try:
        header = msgpack.unpackb(
            raw,
            raw=False,
            strict_map_key=True,
            max_str_len=MAX_HEADER_BYTES,
            max_bin_len=0,
            max_array_len=MAX_LIST_LEN,
            max_map_len=256,
            max_ext_len=0,
        )
    except Exception as exc:  # msgpack raises many types; all mean the same to us
        raise CodecError("bad_msgpack", type(exc).__name__) from None
    if not isinstance(header, dict):
        raise CodecError("bad_header", "not a map")
    return header


def _check_value(name: str, value: Any, expected: type) -> None:
    ok = {
        int: lambda v: isinstance(v, int) and not isinstance(v, bool),
        float: lambda v: isinstance(v, (int, float)) and not isinstance(v, bool),
        str: lambda v: isinstance(v, str) and len(v) <= MAX_STR_LEN,
        dict: lambda v: isinstance(v, dict),
        list: lambda v: isinstance(v, list) and len(v) <= MAX_LIST_LEN,
    }[expected](value)
    if not ok:
        raise CodecError("bad_field", f"{name} must be {expected.__name__}")
    if expected is list and not all(_finite_number(v) for v in value):
        raise CodecError("bad_field", f"{name} must hold finite numbers")


def _finite_number(v: Any) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)


def _check_fields(cls: type[Message], fields: Any) -> dict:
    if not isinstance(fields, dict):
        raise CodecError("bad_header", "fields not a map")
    if set(fields) != set(cls.FIELDS):
        missing = sorted(set(cls.FIELDS) - set(fields))
        extra = sorted(set(fields) - set(cls.FIELDS))
        raise CodecError("bad_field", f"missing {missing} unexpected {extra}")
    for name, expected in cls.FIELDS.items():
        _check_value(name, fields[name], expected)
    return fields


def _check_descriptor(desc: Any) -> tuple[str, np.dtype, tuple[int, ...]]:
    if not (isinstance(desc, list) and len(desc) == 3):
        raise CodecError("bad_array", "descriptor must be [name, dtype, shape]")
    name, dtype, shape = desc
    if not isinstance(name, str) or len(name) > 64:
        raise CodecError("bad_array", "array name")
    if dtype not in ALLOWED_DTYPES:
        raise CodecError("bad_dtype", f"{name}: {dtype!r}")
    if not isinstance(shape, list) or len(shape) > 8:
        raise CodecError("bad_shape", f"{name}: shape")
    if not all(isinstance(d, int) and not isinstance(d, bool) and 0 <= d < 2**31 for d in shape):
        raise CodecError("bad_shape", f"{name}: dims")
    return name, np.dtype(dtype), tuple(shape)


def _decode_arrays(cls: type[Message], descs: Any, frames: Sequence[Any]) -> dict[str, np.ndarray]:
    if not isinstance(descs, list) or len(descs) > MAX_ARRAYS:
        raise CodecError("bad_array", "descriptor list")
    if len(descs) != len(frames):
        raise CodecError("bad_frames", f"{len(descs)} arrays, {len(frames)} frames")
    arrays: dict[str, np.ndarray] = {}
    for desc, frame in zip(descs, frames):
        name, dtype, shape = _check_descriptor(desc)
        if name in arrays:
            raise CodecError("bad_array", f"duplicate {name}")
        buf = frame.buffer if hasattr(frame, "buffer") else memoryview(frame)
        expected = math.prod(shape) * dtype.itemsize
        if expected > MAX_ARRAY_BYTES or buf.nbytes != expected:
            raise CodecError("bad_frames", f"{name}: {buf.nbytes} bytes, expected {expected}")
        arrays[name] = np.frombuffer(buf, dtype=dtype).reshape(shape)
    if cls.ARRAYS is not None:
        names = tuple(arrays)
        required, rest = names[: len(cls.ARRAYS)], names[len(cls.ARRAYS) :]
        if required != cls.ARRAYS or not set(rest) <= set(cls.OPTIONAL):
            raise CodecError("bad_array", f"expected arrays {list(cls.ARRAYS)}, got {list(arrays)}")
    return arrays


def decode(frames: Sequence[Any]) -> Message:
    """Decode and structurally validate frames (header first). Raises `CodecError`."""
    if not frames:
        raise CodecError("bad_frames", "no frames")
    header = _unpack_header(frames[0].buffer if hasattr(frames[0], "buffer") else frames[0])
    if set(header) != {"v", "t", "f", "a"}:
        raise CodecError("bad_header", "keys")
    if header["v"] != PROTOCOL_VERSION:
        theirs = repr(header["v"])[:20]
        raise CodecError("bad_version", f"peer speaks {theirs}, this side {PROTOCOL_VERSION}")
    cls = MESSAGE_TYPES.get(header["t"]) if isinstance(header["t"], str) else None
    if cls is None:
        raise CodecError("unknown_type", repr(header["t"])[:40])
    fields = _check_fields(cls, header["f"])
    arrays = _decode_arrays(cls, header["a"], frames[1:])
    if cls is Rollout:
        return Rollout(**fields, arrays=arrays)
    if cls.OPTIONAL:
        required = {k: arrays.pop(k) for k in cls.ARRAYS}
        return cls(**fields, **required, extras=arrays)
    return cls(**fields, **arrays)
