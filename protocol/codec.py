"""Frames <-> messages. Header: one msgpack frame. Arrays: one raw frame each, no pickle.

Header layout: {"v": version, "t": type, "f": {fields}, "a": [[name, dtype, shape], ...]},
followed by exactly one frame per array descriptor. A descriptor may name a fourth element,
how its frame encodes the array (protocol.wire): "lz4" or "zstd" (compressed), "bfloat16"
or "float16" (a float32 array as 16-bit values). Decoding trusts nothing: every limit, type,
dtype and byte length is checked, compressed frames may not inflate past their declared size
nor, all together, past `max_inflated`, and any failure raises `CodecError` with a short
machine-readable `reason` that the receiver counts.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import msgpack
import numpy as np

from protocol.compression import CODECS, CompressionError, compress, decompress
from protocol.messages import MESSAGE_TYPES, PROTOCOL_VERSION, Message
from protocol.wire import (
    COMPRESSIBLE_KINDS,
    HALF_ENCODINGS,
    NARROWABLE,
    PLAIN,
    WireFormat,
    narrow,
    widen,
)

MAX_HEADER_BYTES = 64 * 1024
MAX_ARRAYS = 16
MAX_STR_LEN = 256
MAX_LIST_LEN = 4096
MAX_ARRAY_BYTES = 256 * 1024 * 1024
MAX_INFLATED_BYTES = 64 * 1024 * 1024
"""Default bound on what a message's compressed frames may inflate to, together."""
ALLOWED_DTYPES = frozenset({"float32", "float64", "int64", "int32", "uint8", "bool"})


class CodecError(ValueError):
    """A message that cannot be decoded or fails validation. `reason` is a short tag."""

    def __init__(self, reason: str, detail: str = ""):
        super().__init__(f"{reason}: {detail}" if detail else reason)
        self.reason = reason
        self.detail = detail


def encode(msg: Message, wire: WireFormat = PLAIN) -> list[Any]:
    """Frames for `msg`: the header bytes, then each array's frame (plain arrays are not
    copied here)."""
    descriptors = []
    buffers = []
    for name, arr in msg.array_items().items():
        arr = np.ascontiguousarray(arr)
        desc, frame = [name, arr.dtype.name, list(arr.shape)], None
        if name in NARROWABLE and wire.floats != "float32" and arr.dtype == np.float32:
            desc.append(wire.floats)
            frame = memoryview(narrow(arr, wire.floats)).cast("B")
        elif arr.dtype.kind in COMPRESSIBLE_KINDS and wire.compress != "none":
            frame = compress(arr, wire.compress)
            if frame is not None:
                desc.append(wire.compress)
        if frame is None:
            frame = memoryview(arr).cast("B") if arr.size else b""
        descriptors.append(desc)
        buffers.append(frame)
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


def _check_descriptor(desc: Any) -> tuple[str, np.dtype, tuple[int, ...], str]:
    if not (isinstance(desc, list) and len(desc) in (3, 4)):
        raise CodecError("bad_array", "descriptor must be [name, dtype, shape, (encoding)]")
    name, dtype, shape = desc[:3]
    encoding = desc[3] if len(desc) == 4 else "plain"
    if not isinstance(name, str) or len(name) > 64:
        raise CodecError("bad_array", "array name")
    if dtype not in ALLOWED_DTYPES:
        raise CodecError("bad_dtype", f"{name}: {dtype!r}")
    if not isinstance(shape, list) or len(shape) > 8:
        raise CodecError("bad_shape", f"{name}: shape")
    if not all(isinstance(d, int) and not isinstance(d, bool) and 0 <= d < 2**31 for d in shape):
        raise CodecError("bad_shape", f"{name}: dims")
    if encoding in HALF_ENCODINGS and dtype != "float32":
        raise CodecError("bad_encoding", f"{name}: {encoding} frames carry float32 arrays")
    if encoding in CODECS and np.dtype(dtype).kind not in COMPRESSIBLE_KINDS:
        raise CodecError("bad_encoding", f"{name}: only uint8 and bool arrays are compressed")
    if encoding not in ("plain", *CODECS, *HALF_ENCODINGS):
        raise CodecError("bad_encoding", f"{name}: {str(encoding)[:20]!r}")
    return name, np.dtype(dtype), tuple(shape), encoding


def _array_from_frame(
    name: str, dtype: np.dtype, shape: tuple[int, ...], encoding: str, buf: memoryview
) -> np.ndarray:
    count = math.prod(shape)
    expected = count * dtype.itemsize
    if expected > MAX_ARRAY_BYTES:
        raise CodecError("bad_frames", f"{name}: {expected} bytes is over the limit")
    if encoding in HALF_ENCODINGS:
        if buf.nbytes != count * HALF_ENCODINGS[encoding]:
            raise CodecError("bad_frames", f"{name}: {buf.nbytes} bytes for {count} {encoding}")
        return widen(buf, encoding, count).reshape(shape)
    if encoding in CODECS:
        try:
            buf = decompress(buf, encoding, expected)
        except CompressionError as exc:
            raise CodecError("bad_compression", f"{name}: {exc}") from None
    elif buf.nbytes != expected:
        raise CodecError("bad_frames", f"{name}: {buf.nbytes} bytes, expected {expected}")
    return np.frombuffer(buf, dtype=dtype).reshape(shape)


def _decode_arrays(
    cls: type[Message], descs: Any, frames: Sequence[Any], max_inflated: int
) -> dict[str, np.ndarray]:
    if not isinstance(descs, list) or len(descs) > MAX_ARRAYS:
        raise CodecError("bad_array", "descriptor list")
    if len(descs) != len(frames):
        raise CodecError("bad_frames", f"{len(descs)} arrays, {len(frames)} frames")
    checked = [_check_descriptor(desc) for desc in descs]
    inflated = sum(math.prod(s) * d.itemsize for _, d, s, e in checked if e in CODECS)
    if inflated > max_inflated:
        # Checked before anything is inflated: a small message may not claim a huge one.
        raise CodecError("bad_compression", f"inflates to {inflated} bytes, over {max_inflated}")
    arrays: dict[str, np.ndarray] = {}
    for (name, dtype, shape, encoding), frame in zip(checked, frames):
        if name in arrays:
            raise CodecError("bad_array", f"duplicate {name}")
        buf = frame.buffer if hasattr(frame, "buffer") else memoryview(frame)
        arrays[name] = _array_from_frame(name, dtype, shape, encoding, buf)
    if cls.ARRAYS is not None:
        names = tuple(arrays)
        required, rest = names[: len(cls.ARRAYS)], names[len(cls.ARRAYS) :]
        if required != cls.ARRAYS or not set(rest) <= set(cls.OPTIONAL):
            raise CodecError("bad_array", f"expected arrays {list(cls.ARRAYS)}, got {list(arrays)}")
    return arrays


def decode(frames: Sequence[Any], max_inflated: int = MAX_INFLATED_BYTES) -> Message:
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
    arrays = _decode_arrays(cls, header["a"], frames[1:], max_inflated)
    return cls.from_wire(fields, arrays)
