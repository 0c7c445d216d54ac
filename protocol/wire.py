"""How arrays travel: as they are, compressed (uint8 and bool arrays), or as 16-bit floats
(weights and gradients). Receivers always get back the array's own dtype and shape.

The learner chooses a `WireFormat` and tells actors in its welcome, so an actor still needs
nothing but the learner's address.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from protocol.compression import CODECS

FLOAT_FORMATS = ("float32", "bfloat16", "float16")
COMPRESSIBLE_KINDS = ("u", "b")  # uint8 frames and bool masks
NARROWABLE = ("weights", "grad")  # bulk float32 arrays; rewards and log-probs stay exact
FLOAT16_MAX = float(np.finfo(np.float16).max)
# Encodings a descriptor may name, with the bytes per element of the frame.
HALF_ENCODINGS = {"bfloat16": 2, "float16": 2}


@dataclass(frozen=True)
class WireFormat:
    compress: str = "none"
    """Codec for uint8 and bool arrays: none, lz4 or zstd."""
    floats: str = "float32"
    """How weights and gradients travel: float32, bfloat16 or float16 (saturating)."""

    def __post_init__(self):
        if self.compress not in ("none", *CODECS):
            raise ValueError(f"compress must be none, {', '.join(CODECS)}; not {self.compress!r}")
        if self.floats not in FLOAT_FORMATS:
            raise ValueError(f"floats must be one of {FLOAT_FORMATS}, not {self.floats!r}")

    def to_dict(self) -> dict:
        return {"compress": self.compress, "floats": self.floats}

    @classmethod
    def from_dict(cls, d: dict) -> WireFormat:
        return cls(str(d.get("compress", "none")), str(d.get("floats", "float32")))


PLAIN = WireFormat()


def narrow(arr: np.ndarray, floats: str) -> np.ndarray:
    """A float32 array as 16-bit values: bfloat16 bits (round to nearest even) in uint16,
    or float16 clipped to its finite range."""
    if floats == "float16":
        return np.clip(arr, -FLOAT16_MAX, FLOAT16_MAX).astype(np.float16)
    bits = np.ascontiguousarray(arr, dtype=np.float32).view(np.uint32)
    rounding = np.uint32(0x7FFF) + ((bits >> np.uint32(16)) & np.uint32(1))
    return ((bits + rounding) >> np.uint32(16)).astype(np.uint16)


def widen(buf, encoding: str, count: int) -> np.ndarray:
    """float32 values of `count` 16-bit elements in `buf`."""
    if encoding == "float16":
        return np.frombuffer(buf, dtype=np.float16, count=count).astype(np.float32)
    half = np.frombuffer(buf, dtype=np.uint16, count=count)
    return (half.astype(np.uint32) << np.uint32(16)).view(np.float32)
