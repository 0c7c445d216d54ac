"""Expected array shapes and dtypes, checked after decoding.

Shapes may use symbolic dimensions (strings): every use of one symbol must bind to the same
size across the arrays of one message. This lets a receiver say "obs is (T, E, 4) and
actions is (T, E)" without knowing E in advance.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from protocol.codec import CodecError


@dataclass(frozen=True)
class ArraySpec:
    dtype: str
    shape: tuple[int | str, ...]
    finite: bool = True


def check_arrays(arrays: dict[str, np.ndarray], specs: dict[str, ArraySpec]) -> dict[str, int]:
    """Validate `arrays` against `specs`; return the bound symbolic dimensions."""
    if set(arrays) != set(specs):
        raise CodecError("bad_array", f"expected {sorted(specs)}, got {sorted(arrays)}")
    bound: dict[str, int] = {}
    for name, spec in specs.items():
        arr = arrays[name]
        if arr.dtype.name != spec.dtype:
            raise CodecError("bad_dtype", f"{name}: {arr.dtype.name}, expected {spec.dtype}")
        if len(arr.shape) != len(spec.shape):
            raise CodecError("bad_shape", f"{name}: {arr.shape}, expected {spec.shape}")
        for got, want in zip(arr.shape, spec.shape):
            if isinstance(want, str):
                want = bound.setdefault(want, got)
            if got != want:
                raise CodecError("bad_shape", f"{name}: {arr.shape}, expected {spec.shape}")
        if spec.finite and arr.dtype.kind == "f" and not np.isfinite(arr).all():
            raise CodecError("non_finite", name)
    return bound
