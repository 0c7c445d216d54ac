"""Message types. Each one is a dataclass of header fields plus named numpy arrays.

Every actor message carries the learner's `run_id` (a fresh id per learner start), so work
built on weights from an earlier learner process is never taken for current work.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import ClassVar

import numpy as np

# 2: optional arrays (normalization moments and statistics), float64 arrays.
# 3: array encodings (compressed, 16-bit floats), replies without weights, credit grants.
# 4: one frame per message, refusals every version reads, rejoin requests.
# 5: relays: bundles of their actors' messages, and the answer to each bundle.
PROTOCOL_VERSION = 5


def version_advice(theirs: int | None, me: str = "actor") -> str:
    """Which side to upgrade, said by `me` (an actor or a relay) to a learner of `theirs`."""
    if theirs is None:
        return "run the same a3c release on both sides"
    if theirs < PROTOCOL_VERSION:
        return "upgrade the learner"
    if theirs > PROTOCOL_VERSION:
        return f"upgrade this {me}"
    return "both sides speak the same version"


MAX_BUNDLE = 256
"""The most actor messages one bundle carries (each is a frame of its own after it)."""


@dataclass
class Message:
    """Base: `TYPE` names the message on the wire, `FIELDS` maps header fields to types,
    `ARRAYS` names the array payloads (None: any set of names, checked by the receiver)."""

    TYPE: ClassVar[str] = ""
    FIELDS: ClassVar[dict[str, type]] = {}
    ARRAYS: ClassVar[tuple[str, ...] | None] = ()
    OPTIONAL: ClassVar[tuple[str, ...]] = ()
    """Arrays that may follow the required ones, held in the message's `extras` map."""

    def header_fields(self) -> dict:
        return {name: getattr(self, name) for name in self.FIELDS}

    def array_items(self) -> dict[str, np.ndarray]:
        return {}

    @classmethod
    def from_wire(cls, fields: dict, arrays: dict[str, np.ndarray]) -> Message:
        """Build from checked fields and arrays: arrays named by a dataclass field go there,
        optional others into `extras`."""
        named = {k: arrays.pop(k) for k in list(arrays) if k in cls.__dataclass_fields__}
        if cls.OPTIONAL:
            return cls(**fields, **named, extras=arrays)
        return cls(**fields, **named)


# Normalization statistics: actors send the moments of what they saw with their work, the
# learner sends the merged statistics with its weights (rlcore.normalize).
WORK_STATS = ("obs_moments", "ret_moments")
NORM_STATS = ("obs_mean", "obs_var", "ret_var")


@dataclass
class Hello(Message):
    """Actor -> learner: first contact."""

    TYPE: ClassVar[str] = "hello"
    FIELDS: ClassVar[dict[str, type]] = {"actor_id": str, "host": str, "pid": int}

    actor_id: str
    host: str
    pid: int


@dataclass
class Welcome(Message):
    """Learner -> actor: everything an actor needs (settings and current weights)."""

    TYPE: ClassVar[str] = "welcome"
    FIELDS: ClassVar[dict[str, type]] = {
        "run_id": str,
        "actor_index": int,
        "weights_version": int,
        "weights_stamp": float,
        "settings": dict,
    }
    ARRAYS: ClassVar[tuple[str, ...]] = ("weights",)
    OPTIONAL: ClassVar[tuple[str, ...]] = NORM_STATS

    run_id: str
    actor_index: int
    weights_version: int
    weights_stamp: float
    settings: dict
    weights: np.ndarray
    extras: dict[str, np.ndarray] = field(default_factory=dict)

    def array_items(self) -> dict[str, np.ndarray]:
        return {"weights": self.weights, **self.extras}


@dataclass
class Weights(Message):
    """Learner -> actor: the reply that returns one credit. It carries the newest weights
    (and their normalization statistics) unless the actor's copy is recent enough; then it
    is a version-only reply (`weights` None). `stamp` is the learner's wall-clock time of
    the update that made version `version`; `credit` is how many work messages this actor
    may now keep in flight; `held` is how long the learner held the work it answers."""

    TYPE: ClassVar[str] = "weights"
    FIELDS: ClassVar[dict[str, type]] = {
        "run_id": str,
        "version": int,
        "stamp": float,
        "credit": int,
        "held": float,
    }
    ARRAYS: ClassVar[tuple[str, ...]] = ()
    OPTIONAL: ClassVar[tuple[str, ...]] = ("weights", *NORM_STATS)

    run_id: str
    version: int
    stamp: float
    credit: int
    held: float
    weights: np.ndarray | None = None
    extras: dict[str, np.ndarray] = field(default_factory=dict)

    def array_items(self) -> dict[str, np.ndarray]:
        if self.weights is None:
            return dict(self.extras)
        return {"weights": self.weights, **self.extras}


@dataclass
class Gradient(Message):
    """Actor -> learner (gradient mode): a flat gradient computed on `weights_version`."""

    TYPE: ClassVar[str] = "gradient"
    FIELDS: ClassVar[dict[str, type]] = {
        "run_id": str,
        "actor_id": str,
        "weights_version": int,
        "env_steps": int,
        "weights_latency": float,
    }
    ARRAYS: ClassVar[tuple[str, ...]] = ("grad",)
    OPTIONAL: ClassVar[tuple[str, ...]] = WORK_STATS

    run_id: str
    actor_id: str
    weights_version: int
    env_steps: int
    weights_latency: float
    """Seconds from the update that made these weights to this actor first acting on them;
    negative when this rollout reused weights already reported."""
    grad: np.ndarray
    extras: dict[str, np.ndarray] = field(default_factory=dict)

    def array_items(self) -> dict[str, np.ndarray]:
        return {"grad": self.grad, **self.extras}


@dataclass
class Rollout(Message):
    """Actor -> learner (data mode): experience collected with `weights_version`."""

    TYPE: ClassVar[str] = "rollout"
    FIELDS: ClassVar[dict[str, type]] = {
        "run_id": str,
        "actor_id": str,
        "weights_version": int,
        "env_steps": int,
        "weights_latency": float,
    }
    ARRAYS: ClassVar[tuple[str, ...] | None] = None

    run_id: str
    actor_id: str
    weights_version: int
    env_steps: int
    weights_latency: float
    arrays: dict[str, np.ndarray] = field(default_factory=dict)

    def array_items(self) -> dict[str, np.ndarray]:
        return self.arrays

    @classmethod
    def from_wire(cls, fields: dict, arrays: dict[str, np.ndarray]) -> Rollout:
        return cls(**fields, arrays=arrays)


@dataclass
class Episodes(Message):
    """Actor -> learner: returns and lengths of episodes that finished."""

    TYPE: ClassVar[str] = "episodes"
    FIELDS: ClassVar[dict[str, type]] = {
        "run_id": str,
        "actor_id": str,
        "returns": list,
        "lengths": list,
    }

    run_id: str
    actor_id: str
    returns: list
    lengths: list


@dataclass
class Heartbeat(Message):
    """Either way: I am alive. Sent when nothing else has been sent for a while."""

    TYPE: ClassVar[str] = "heartbeat"
    FIELDS: ClassVar[dict[str, type]] = {"run_id": str, "actor_id": str}

    run_id: str
    actor_id: str


@dataclass
class Stop(Message):
    """Learner -> actor: training is over, exit. Actor -> learner: this actor is leaving."""

    TYPE: ClassVar[str] = "stop"
    FIELDS: ClassVar[dict[str, type]] = {"run_id": str, "actor_id": str, "reason": str}

    run_id: str
    actor_id: str
    reason: str


@dataclass
class Rejoin(Message):
    """Learner -> actor: I do not know you (or you speak of an earlier run): say hello
    again. Small on purpose: weights go out only in answer to a hello."""

    TYPE: ClassVar[str] = "rejoin"
    FIELDS: ClassVar[dict[str, type]] = {"run_id": str, "reason": str}

    run_id: str
    reason: str


@dataclass
class Refused(Message):
    """Learner -> peer: you cannot join, and why (another protocol version). Its layout
    never changes, so a peer of any version from 4 on decodes it."""

    TYPE: ClassVar[str] = "refused"
    FIELDS: ClassVar[dict[str, type]] = {"reason": str, "version": int}

    reason: str
    version: int
    """The refusing side's protocol version."""


@dataclass
class Bundle(Message):
    """Relay -> learner: the messages of the relay's actors, folded into one. The header
    frame is followed by `count` frames, each one actor message exactly as that actor
    encoded it, so the learner checks every one as if it came direct."""

    TYPE: ClassVar[str] = "bundle"
    FIELDS: ClassVar[dict[str, type]] = {
        "run_id": str,
        "actor_id": str,
        "seq": int,
        "count": int,
    }

    run_id: str
    actor_id: str
    """The relay's own id (it said hello as this)."""
    seq: int
    """The relay's number for this bundle; the answer names it."""
    count: int


@dataclass
class Answer(Weights):
    """Learner -> relay: the reply to bundle `seq`, once all its work is taken or learned.
    As Weights: the newest weights once per version (the relay fans them out to its
    actors), else a version-only reply."""

    TYPE: ClassVar[str] = "answer"
    FIELDS: ClassVar[dict[str, type]] = {**Weights.FIELDS, "seq": int}

    seq: int = 0


@dataclass
class StatusQuery(Message):
    """Anyone -> learner: what is your live state? Needs no handshake and joins nothing."""

    TYPE: ClassVar[str] = "status_query"


@dataclass
class Status(Message):
    """Learner -> asker: the live state, a plain map (see the learner for its keys)."""

    TYPE: ClassVar[str] = "status"
    FIELDS: ClassVar[dict[str, type]] = {"run_id": str, "state": dict}

    run_id: str
    state: dict


MESSAGE_TYPES: dict[str, type[Message]] = {
    cls.TYPE: cls
    for cls in (
        Hello,
        Welcome,
        Weights,
        Gradient,
        Rollout,
        Episodes,
        Heartbeat,
        Stop,
        Rejoin,
        Refused,
        StatusQuery,
        Status,
        Bundle,
        Answer,
    )
}
