"""Wire protocol between learner and actors: typed messages, a validating codec, socket set-up.

This package knows bytes, messages and sockets. It knows nothing of reinforcement learning:
arrays are named, typed and shaped, and what they mean is up to the caller.
"""

from protocol.codec import CodecError, decode, encode, refusal
from protocol.messages import (
    MAX_BUNDLE,
    NORM_STATS,
    PROTOCOL_VERSION,
    WORK_STATS,
    Answer,
    Bundle,
    Episodes,
    Gradient,
    Heartbeat,
    Hello,
    Message,
    Refused,
    Rejoin,
    Rollout,
    Status,
    StatusQuery,
    Stop,
    Weights,
    Welcome,
)
from protocol.schema import ArraySpec, check_arrays

__all__ = [
    "MAX_BUNDLE",
    "NORM_STATS",
    "PROTOCOL_VERSION",
    "WORK_STATS",
    "Answer",
    "ArraySpec",
    "Bundle",
    "CodecError",
    "Episodes",
    "Gradient",
    "Heartbeat",
    "Hello",
    "Message",
    "Refused",
    "Rejoin",
    "Rollout",
    "Status",
    "StatusQuery",
    "Stop",
    "Weights",
    "Welcome",
    "check_arrays",
    "decode",
    "refusal",
    "encode",
]
