"""Messages <-> one frame each. No pickle: a msgpack header, then the arrays as raw bytes.

A message is a single ZeroMQ frame, so libzmq's per-frame size limit (ZMQ_MAXMSGSIZE)
bounds every message a peer of this protocol sends. (libzmq still assembles a hostile
multi-frame message whole before delivering it; the receiver drops it as it reads it, and
only keys keep strangers from sending one.) The frame is the msgpack header map
{"v": version, "t": type, "f": {fields}, "a": [[name, dtype, shape, encoding, nbytes], ...]}
followed, from the next multiple of 8 bytes, by each array's bytes in descriptor order, each
padded to a multiple of 8 (so arrays start aligned). A message without arrays is the header
alone: plain msgpack. An encoding is "plain", "lz4" or "zstd" (compressed uint8/bool), or
"bfloat16" or "float16" (a float32 array as 16-bit values, protocol.wire).

Decoding trusts nothing: every limit, type, dtype, shape and byte length is checked,
compressed arrays may not inflate past their declared size nor, all together, past
`max_inflated`, and any failure raises `CodecError` with a short machine-readable `reason`
that the receiver counts. A "refused" message decodes whatever version it claims, so a peer
of any version can read why it was turned away.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import msgpack
import numpy as np

from protocol.compression import CODECS, CompressionError, compress, decompress
from protocol.messages import (
    MAX_BUNDLE,
    MESSAGE_TYPES,
    PROTOCOL_VERSION,
    Bundle,
    Message,
    Refused,
)
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
"""Default bound on what a message's compressed arrays may inflate to, together."""
ALLOWED_DTYPES = frozenset({"float32", "float64", "int64", "int32", "uint8", "bool"})
ENCODINGS = frozenset({"plain", *CODECS, *HALF_ENCODINGS})
ALIGN = 8


class CodecError(ValueError):
    """A message that cannot be decoded or fails validation. `reason` is a short tag. For
    `bad_version`, `peer_version` and `peer_type` say what the peer claimed (None when they
    are not an int and a str), so a receiver can answer in terms that peer reads."""

    def __init__(
        self,
        reason: str,
        detail: str = "",
        peer_version: int | None = None,
        peer_type: str | None = None,
    ):
        super().__init__(f"{reason}: {detail}" if detail else reason)
        self.reason = reason
        self.detail = detail
        self.peer_version = peer_version
        self.peer_type = peer_type


# ---- encoding ----------------------------------------------------------------------------


def _padded(n: int) -> int:
    return -(-n // ALIGN) * ALIGN


def _nbytes(data: Any) -> int:
    return len(data) if isinstance(data, bytes) else memoryview(data).nbytes


def _array_bytes(name: str, arr: np.ndarray, wire: WireFormat) -> tuple[list, Any]:
    """The descriptor and the bytes of one array as it travels."""
    desc, data = [name, arr.dtype.name, list(arr.shape), "plain"], None
    if name in NARROWABLE and wire.floats != "float32" and arr.dtype == np.float32:
        desc[3] = wire.floats
        data = memoryview(narrow(arr, wire.floats)).cast("B")
    elif arr.dtype.kind in COMPRESSIBLE_KINDS and wire.compress != "none":
        data = compress(arr, wire.compress)
        if data is not None:
            desc[3] = wire.compress
    if data is None:
        data = memoryview(arr).cast("B") if arr.size else b""
    desc.append(_nbytes(data))
    return desc, data


def encode(msg: Message, wire: WireFormat = PLAIN) -> list[Any]:
    """`msg` as a list of one frame: the header, then each array's bytes, aligned."""
    descriptors, datas = [], []
    for name, arr in msg.array_items().items():
        desc, data = _array_bytes(name, np.ascontiguousarray(arr), wire)
        descriptors.append(desc)
        datas.append(data)
    header = {"v": PROTOCOL_VERSION, "t": msg.TYPE, "f": msg.header_fields(), "a": descriptors}
    head = msgpack.packb(header, use_bin_type=True)
    if not datas:
        return [head]
    # One buffer written once: np.empty skips a zero fill, and only the padding is zeroed.
    out = np.empty(_padded(len(head)) + sum(_padded(d[4]) for d in descriptors), np.uint8)
    pos = _put(out, 0, head)
    for data in datas:
        pos = _put(out, pos, data)
    return [out]


def _put(out: np.ndarray, pos: int, data: Any) -> int:
    n = _nbytes(data)
    if n:
        out[pos : pos + n] = np.frombuffer(data, np.uint8)
    end = _padded(pos + n)
    out[pos + n : end] = 0
    return end


# ---- decoding ----------------------------------------------------------------------------


def _buffer(frame: Any) -> memoryview:
    buf = frame.buffer if hasattr(frame, "buffer") else memoryview(frame)
    return buf if buf.format == "B" and buf.ndim == 1 else buf.cast("B")


def _unpack_header(buf: memoryview) -> tuple[dict, int]:
    """The header map and the offset where it ends."""
    unpacker = msgpack.Unpacker(
        raw=False,
        strict_map_key=True,
        max_buffer_size=MAX_HEADER_BYTES,
        max_str_len=MAX_HEADER_BYTES,
        max_bin_len=0,
        max_array_len=MAX_LIST_LEN,
        max_map_len=256,
        max_ext_len=0,
    )
    try:
        unpacker.feed(bytes(buf[:MAX_HEADER_BYTES]))
        header = unpacker.unpack()
    except msgpack.OutOfData:
        if buf.nbytes >= MAX_HEADER_BYTES:
            raise CodecError("oversize_header", f"over {MAX_HEADER_BYTES} bytes") from None
        raise CodecError("bad_msgpack", "truncated") from None
    except Exception as exc:  # msgpack raises many types; all mean the same to us
        raise CodecError("bad_msgpack", type(exc).__name__) from None
    if not isinstance(header, dict):
        raise CodecError("bad_header", "not a map")
    return header, unpacker.tell()


def _is_int(v: Any) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def _check_value(name: str, value: Any, expected: type) -> None:
    ok = {
        int: lambda v: _is_int(v) and -(2**63) <= v < 2**63,
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
        missing = sorted(set(cls.FIELDS) - set(fields), key=str)
        extra = sorted(map(str, set(fields) - set(cls.FIELDS)))[:8]
        raise CodecError("bad_field", f"missing {missing} unexpected {extra}")
    for name, expected in cls.FIELDS.items():
        _check_value(name, fields[name], expected)
    return fields


def _check_descriptor(desc: Any) -> tuple[str, np.dtype, tuple[int, ...], str, int]:
    if not (isinstance(desc, list) and len(desc) == 5):
        raise CodecError("bad_array", "descriptor must be [name, dtype, shape, encoding, nbytes]")
    name, dtype, shape, encoding, nbytes = desc
    if not isinstance(name, str) or len(name) > 64:
        raise CodecError("bad_array", "array name")
    if not isinstance(dtype, str) or dtype not in ALLOWED_DTYPES:
        raise CodecError("bad_dtype", f"{name}: {str(dtype)[:20]!r}")
    if not isinstance(shape, list) or len(shape) > 8:
        raise CodecError("bad_shape", f"{name}: shape")
    if not all(_is_int(d) and 0 <= d < 2**31 for d in shape):
        raise CodecError("bad_shape", f"{name}: dims")
    # Zero-sized arrays pass any byte count, so bound the other dimensions as well: numpy
    # refuses shapes whose non-zero dimensions multiply past its address space.
    if math.prod(max(d, 1) for d in shape) * np.dtype(dtype).itemsize > MAX_ARRAY_BYTES:
        raise CodecError("bad_shape", f"{name}: {shape} is over the size limit")
    if not isinstance(encoding, str) or encoding not in ENCODINGS:
        raise CodecError("bad_encoding", f"{name}: {str(encoding)[:20]!r}")
    if encoding in HALF_ENCODINGS and dtype != "float32":
        raise CodecError("bad_encoding", f"{name}: {encoding} frames carry float32 arrays")
    if encoding in CODECS and np.dtype(dtype).kind not in COMPRESSIBLE_KINDS:
        raise CodecError("bad_encoding", f"{name}: only uint8 and bool arrays are compressed")
    if not (_is_int(nbytes) and 0 <= nbytes <= MAX_ARRAY_BYTES):
        raise CodecError("bad_array", f"{name}: byte count")
    return name, np.dtype(dtype), tuple(shape), encoding, nbytes


def _array_from_bytes(
    name: str, dtype: np.dtype, shape: tuple[int, ...], encoding: str, buf: memoryview
) -> np.ndarray:
    count = math.prod(shape)
    expected = count * dtype.itemsize
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
    cls: type[Message], descs: Any, buf: memoryview, start: int, max_inflated: int
) -> dict[str, np.ndarray]:
    if not isinstance(descs, list) or len(descs) > MAX_ARRAYS:
        raise CodecError("bad_array", "descriptor list")
    checked = [_check_descriptor(desc) for desc in descs]
    end = (_padded(start) if checked else start) + sum(_padded(c[4]) for c in checked)
    if end != buf.nbytes:
        raise CodecError("bad_frames", f"{buf.nbytes} bytes, the header accounts for {end}")
    inflated = sum(math.prod(s) * d.itemsize for _, d, s, e, _ in checked if e in CODECS)
    if inflated > max_inflated:
        # Checked before anything is inflated: a small message may not claim a huge one.
        raise CodecError("bad_compression", f"inflates to {inflated} bytes, over {max_inflated}")
    arrays: dict[str, np.ndarray] = {}
    pos = _padded(start)
    for name, dtype, shape, encoding, nbytes in checked:
        if name in arrays:
            raise CodecError("bad_array", f"duplicate {name}")
        arrays[name] = _array_from_bytes(name, dtype, shape, encoding, buf[pos : pos + nbytes])
        pos += _padded(nbytes)
    if cls.ARRAYS is not None:
        names = tuple(arrays)
        required, rest = names[: len(cls.ARRAYS)], names[len(cls.ARRAYS) :]
        if required != cls.ARRAYS or not set(rest) <= set(cls.OPTIONAL):
            raise CodecError("bad_array", f"expected arrays {list(cls.ARRAYS)}, got {list(arrays)}")
    return arrays


def _check_version(header: dict) -> None:
    if _is_int(header["v"]) and header["v"] == PROTOCOL_VERSION:
        return
    theirs, kind = header["v"], header["t"]
    raise CodecError(
        "bad_version",
        f"peer speaks {repr(theirs)[:20]}, this side {PROTOCOL_VERSION}",
        peer_version=theirs if _is_int(theirs) else None,
        peer_type=kind if isinstance(kind, str) and len(kind) <= 32 else None,
    )


def decode(frames: Sequence[Any], max_inflated: int = MAX_INFLATED_BYTES) -> Message:
    """Decode and structurally validate a message: a list of its one frame, or a relay's
    bundle (its header frame, then as many frames as it counts, each a message of its own,
    left for the receiver to decode). Raises `CodecError`."""
    if not frames:
        raise CodecError("bad_frames", "no frame")
    try:
        msg = _decode_frame(frames[0], max_inflated)
    except CodecError:
        if len(frames) > 1:  # several frames are a bundle or nothing
            raise CodecError("bad_frames", f"{len(frames)} frames, not a bundle") from None
        raise
    follow = len(frames) - 1
    if isinstance(msg, Bundle) and 0 < msg.count == follow <= MAX_BUNDLE:
        return msg
    if follow or isinstance(msg, Bundle):
        raise CodecError("bad_frames", f"{msg.TYPE} with {follow} frames after it")
    return msg


def _decode_frame(frame: Any, max_inflated: int) -> Message:
    buf = _buffer(frame)
    header, end = _unpack_header(buf)
    if set(header) != {"v", "t", "f", "a"}:
        raise CodecError("bad_header", "keys")
    if header["t"] == Refused.TYPE and header["a"] == [] and end == buf.nbytes:
        return Refused(**_check_fields(Refused, header["f"]))  # readable across versions
    _check_version(header)
    cls = MESSAGE_TYPES.get(header["t"]) if isinstance(header["t"], str) else None
    if cls is None:
        raise CodecError("unknown_type", repr(header["t"])[:40])
    fields = _check_fields(cls, header["f"])
    arrays = _decode_arrays(cls, header["a"], buf, end, max_inflated)
    try:
        return cls.from_wire(fields, arrays)
    except (TypeError, ValueError) as exc:  # a last line: fields that build no message
        raise CodecError("bad_field", type(exc).__name__) from None


def refusal(peer_version: int | None, reason: str) -> list[bytes]:
    """A refusal that a peer speaking `peer_version` decodes: a "refused" message from
    version 4 on; before it, the stop message those versions know, which they print."""
    if peer_version is not None and 1 <= peer_version <= 3:
        fields = {"run_id": "", "actor_id": "", "reason": reason[:MAX_STR_LEN]}
        header = {"v": peer_version, "t": "stop", "f": fields, "a": []}
        return [msgpack.packb(header, use_bin_type=True)]
    return encode(Refused(reason[:MAX_STR_LEN], PROTOCOL_VERSION))
