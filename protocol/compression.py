"""Lossless compression of array frames, with the receiver's rules for hostile input.

The sender compresses an array only when that makes it smaller. The receiver knows the size
an array must inflate to from its descriptor (dtype and shape), checks what the frame
declares against it before decompressing anything, and never lets a frame inflate past it:
a decompression bomb or a lying size is a `CompressionError`, never an allocation.
"""

from __future__ import annotations

import numpy as np
import zstandard

try:  # optional (the test and bench groups): zstd was chosen by measurement
    import lz4.block
except ImportError:  # pragma: no cover - exercised where lz4 is not installed
    lz4 = None

CODECS = ("lz4", "zstd")
ZSTD_LEVEL = 1  # frames are compressed on an actor's acting thread: speed first
MIN_BYTES = 512  # smaller arrays are sent as they are


class CompressionError(ValueError):
    """A compressed frame that is corrupt, lies about its size, or inflates too far."""


_zstd_c = zstandard.ZstdCompressor(level=ZSTD_LEVEL, write_checksum=False)
_zstd_d = zstandard.ZstdDecompressor()


def compress(arr: np.ndarray, codec: str) -> bytes | None:
    """The compressed bytes of `arr`, or None when sending it as it is is as small."""
    if codec == "none" or arr.nbytes < MIN_BYTES:
        return None
    data = memoryview(np.ascontiguousarray(arr)).cast("B")
    if codec == "lz4":
        out = _lz4().compress(data, store_size=False)
    elif codec == "zstd":
        out = _zstd_c.compress(data)
    else:
        raise ValueError(f"unknown codec {codec!r}; known: {CODECS}")
    return out if len(out) < arr.nbytes else None


def _lz4():
    if lz4 is None:
        raise CompressionError("lz4 frames need the lz4 package (pip install lz4)")
    return lz4.block


def decompress(data, codec: str, expected: int) -> bytes:
    """Exactly `expected` bytes from `data`, or CompressionError."""
    if len(data) >= expected:
        raise CompressionError(f"{len(data)} compressed bytes for {expected}: not compressed")
    if codec == "lz4":
        block = _lz4()
        try:
            out = block.decompress(data, uncompressed_size=expected)
        except (block.LZ4BlockError, ValueError):
            raise CompressionError("corrupt lz4 block, or it inflates too far") from None
    elif codec == "zstd":
        # zstd allocates what the frame header declares: check that first.
        try:
            declared = zstandard.frame_content_size(data)
        except zstandard.ZstdError:
            raise CompressionError("corrupt zstd frame header") from None
        if declared != expected:
            raise CompressionError(f"zstd frame declares {declared} bytes, expected {expected}")
        try:
            out = _zstd_d.decompress(data, max_output_size=expected)
        except zstandard.ZstdError:
            raise CompressionError("corrupt zstd frame") from None
    else:
        raise CompressionError(f"unknown codec {codec!r}")
    if len(out) != expected:
        raise CompressionError(f"inflated to {len(out)} bytes, expected {expected}")
    return out
