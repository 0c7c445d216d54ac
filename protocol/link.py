"""How a learner's actors use their link: the wire format, whether stacked frames travel
once, how much work may be in flight, and the heartbeat pace.

The learner builds one and sends it in its welcome, beside what the run trains on
(rlcore.run_settings); both write disjoint keys of the welcome's settings map, each reads
back its own. An actor reads a map that came over the network, so reading checks every
type and names the first setting that is missing or wrong.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, TypeVar

from protocol.wire import WireFormat

T = TypeVar("T")


@dataclass(frozen=True)
class LinkSettings:
    wire: WireFormat
    frame_once: bool
    """Data mode, stacked frames: each new frame travels once."""
    max_outstanding: int
    """Work messages an actor may always have in flight before it waits for a reply."""
    max_credit: int
    """The most an actor keeps in flight to cover a long round trip (the learner grants
    what it can take, in each reply)."""
    heartbeat_interval: float
    heartbeat_timeout: float
    max_message_bytes: int
    """The learner's limit on one message: a peer that sends a larger one is cut off (a
    relay keeps such a message from its actors rather than lose its link)."""
    work_steps: int
    """Env steps each work message carries (a relay counts its actors' steps by it)."""

    def __post_init__(self):
        if not 1 <= self.max_outstanding <= self.max_credit:
            raise ValueError(
                f"max_outstanding {self.max_outstanding} and max_credit {self.max_credit} "
                "must satisfy 1 <= max_outstanding <= max_credit"
            )
        for name in ("max_message_bytes", "work_steps"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be positive, not {getattr(self, name)}")
        for name in ("heartbeat_interval", "heartbeat_timeout"):
            value = getattr(self, name)
            if not (math.isfinite(value) and value > 0):
                raise ValueError(f"{name} must be a positive number of seconds, not {value}")

    def to_dict(self) -> dict:
        return {
            "max_outstanding": self.max_outstanding,
            "max_credit": self.max_credit,
            "wire": {**self.wire.to_dict(), "frame_once": self.frame_once},
            "heartbeat_interval": self.heartbeat_interval,
            "heartbeat_timeout": self.heartbeat_timeout,
            "max_message_bytes": self.max_message_bytes,
            "work_steps": self.work_steps,
        }

    @classmethod
    def from_dict(cls, d: Any) -> LinkSettings:
        """TypeError or ValueError, naming the setting, for a map that is not one."""
        wire = _read(d, "wire", dict)
        return cls(
            # A wire map without a key means the plain format, as WireFormat's defaults.
            wire=WireFormat(
                _read(wire, "compress", str, "none"), _read(wire, "floats", str, "float32")
            ),
            frame_once=_read(wire, "frame_once", bool, False),
            max_outstanding=_read(d, "max_outstanding", int),
            max_credit=_read(d, "max_credit", int),
            heartbeat_interval=_read(d, "heartbeat_interval", float),
            heartbeat_timeout=_read(d, "heartbeat_timeout", float),
            max_message_bytes=_read(d, "max_message_bytes", int),
            work_steps=_read(d, "work_steps", int),
        )


_REQUIRED = object()


def _read(d: Any, name: str, kind: type[T], default: Any = _REQUIRED) -> T:
    """`d[name]`, which must be of `kind` (an int is a float; a bool is never a number)."""
    if not isinstance(d, dict):
        raise TypeError(f"settings must be a map, not {type(d).__name__}")
    if name not in d:
        if default is _REQUIRED:
            raise ValueError(f"settings lack {name!r}")
        return default
    value = d[name]
    if kind is float and isinstance(value, int) and not isinstance(value, bool):
        return float(value)
    if not isinstance(value, kind) or (isinstance(value, bool) and kind is not bool):
        raise TypeError(f"setting {name!r} must be {kind.__name__}, not {type(value).__name__}")
    return value
