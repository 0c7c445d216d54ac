"""A relay's link to the learner: it joins as one peer, keeps the newest weights it was
sent (once per version, for all of its actors), and sends its actors' messages up in
bundles, each answered once."""

from __future__ import annotations

import logging
import os
import socket
import time
from collections import deque
from dataclasses import dataclass, field

import numpy as np
import zmq

from protocol import (
    PROTOCOL_VERSION,
    Answer,
    Bundle,
    CodecError,
    Heartbeat,
    Hello,
    Message,
    Refused,
    Stop,
    Welcome,
    decode,
    encode,
)
from protocol.link import LinkSettings
from protocol.messages import version_advice
from protocol.security import ClientKeys
from protocol.sockets import connect_dealer

log = logging.getLogger(__name__)
DEADLINE_FACTOR = 4.0
"""A bundle unanswered for this many times the slowest recent answer (and at least the
heartbeat timeout) was lost on the way: the learner's pace, as actors judge it
(actor.credit)."""
MAX_IN_FLIGHT = 2


class LearnerRefusedRelay(Exception):
    """The learner turned this relay away (another protocol version): retrying is futile."""


@dataclass
class Joined:
    """What the learner's welcome said, kept for every actor this relay welcomes."""

    run_id: str
    index: int
    settings: dict
    link: LinkSettings
    version: int
    stamp: float
    weights: np.ndarray
    extras: dict = field(default_factory=dict)
    work_steps: int = 0
    """Env steps in each of this run's work messages."""
    max_frame: int = 0
    """The most bytes a message of this run's actors may take: the learner drops the link
    of a peer that sends a larger frame, and a relay's link is all its actors'."""


@dataclass
class InFlight:
    """A bundle sent and not yet answered: the actors whose work it carries."""

    sent: float
    work: list[tuple[str, float]]
    """(actor id, when the relay received that work), one per work message."""


class Upstream:
    def __init__(self, addresses: list[str], relay_id: str, keys: ClientKeys | None):
        self.addresses, self.relay_id, self.keys = addresses, relay_id, keys
        self.ctx = zmq.Context()
        self.sock: zmq.Socket | None = None
        self.joined: Joined | None = None
        self.inflight: dict[int, InFlight] = {}
        self.trips: deque[float] = deque(maxlen=32)
        """Seconds from sending each of the last bundles to its answer."""
        self.credit = 2
        self.next_seq = 0
        self.attempt = 0
        self.last_hello = -1e9
        self.last_sent = self.last_heard = time.monotonic()
        self.bytes_in = self.bytes_out = self.bundles = self.folded = 0

    @property
    def address(self) -> str:
        return self.addresses[self.attempt % len(self.addresses)]

    def hello(self) -> None:
        """Say hello on a fresh socket (nothing queued for an earlier learner is sent twice);
        each attempt tries the next address of the list."""
        if self.sock is not None:
            self.sock.close(linger=0)
            self.attempt += 1
        self.sock = connect_dealer(self.ctx, self.address, self.keys)
        self.joined = None
        self.last_hello = time.monotonic()
        self._send(encode(Hello(self.relay_id, socket.gethostname(), os.getpid())))

    def hello_due(self, now: float) -> bool:
        """Not joined, and the last hello went unanswered for long enough (backing off)."""
        wait = min(1.0 * 2 ** min(self.attempt, 4), 10.0)
        return self.joined is None and now - self.last_hello >= wait

    def answered(self, seq: int) -> InFlight | None:
        """The bundle `seq` names, no longer in flight (None: not one of this relay's)."""
        flight = self.inflight.pop(seq, None)
        if flight is not None:
            self.trips.append(time.monotonic() - flight.sent)
        return flight

    def overdue(self, now: float, floor: float) -> float | None:
        """How long the oldest bundle in flight has waited, once that is past its deadline
        (answers that come slowly are a busy learner, one that never comes is lost)."""
        if not self.inflight:
            return None
        waited = now - min(f.sent for f in self.inflight.values())
        deadline = max(floor, DEADLINE_FACTOR * max(self.trips, default=0.0))
        return waited if waited > deadline else None

    def can_send(self) -> bool:
        """Room for another bundle: two in flight keep the learner busy while the next one
        fills, and the fewer in flight, the more each folds (fewer messages to the learner)."""
        limit = min(MAX_IN_FLIGHT, max(1, self.credit))
        return self.joined is not None and len(self.inflight) < limit

    def send_bundle(self, frames: list, work: list[tuple[str, float]]) -> bool:
        """One bundle of its actors' frames (each as its actor encoded it)."""
        seq = self.next_seq
        header = Bundle(self.joined.run_id, self.relay_id, seq, len(frames))
        if not self._send([*encode(header), *frames]):
            return False
        self.next_seq += 1
        self.inflight[seq] = InFlight(time.monotonic(), work)
        self.bundles += 1
        self.folded += len(frames)
        return True

    def heartbeat(self, now: float, interval: float) -> None:
        if self.joined is not None and now - self.last_sent >= interval:
            self._send(encode(Heartbeat(self.joined.run_id, self.relay_id)))

    def leave(self) -> None:
        """Tell the learner this relay is going (its actors' work in flight goes with it)."""
        if self.joined is not None and self.sock is not None:
            self._send(encode(Stop(self.joined.run_id, self.relay_id, "relay stopped")))

    def recv(self) -> Message | None:
        """The next valid message from the learner, if one is there. A welcome is kept;
        LearnerRefusedRelay on a refusal or a message of another protocol version."""
        if self.sock is None or not self.sock.poll(0):
            return None
        frames = self.sock.recv_multipart(copy=False)
        self.bytes_in += sum(len(f.buffer) for f in frames)
        try:
            msg = decode(frames)
        except CodecError as exc:
            if exc.reason == "bad_version":
                raise LearnerRefusedRelay(_mismatch(self.address, exc.peer_version)) from None
            log.warning("dropped a bad message from the learner: %s", exc)
            return None
        self.last_heard = time.monotonic()
        if isinstance(msg, Refused):
            raise LearnerRefusedRelay(_mismatch(self.address, msg.version, msg.reason))
        if isinstance(msg, Welcome):
            self._join(msg)
        elif isinstance(msg, Answer):
            self._adopt(msg)
        return msg

    def _join(self, msg: Welcome) -> None:
        link = LinkSettings.from_dict(msg.settings)  # checked before any actor gets it
        self.joined = Joined(
            msg.run_id,
            msg.actor_index,
            msg.settings,
            link,
            msg.weights_version,
            msg.weights_stamp,
            np.array(msg.weights, copy=True),  # the frame it came in is released
            {k: np.array(v, copy=True) for k, v in msg.extras.items()},
            link.work_steps,
            link.max_message_bytes,
        )
        self.attempt = 0
        log.info("joined learner at %s (run %s)", self.address, msg.run_id)

    def _adopt(self, msg: Answer) -> None:
        """Newer weights from an answer become what this relay serves."""
        self.credit = max(1, msg.credit)
        joined = self.joined
        if joined is None or msg.run_id != joined.run_id:
            return
        if msg.weights is not None and msg.version >= joined.version:
            if msg.weights.shape != joined.weights.shape or not np.isfinite(msg.weights).all():
                log.warning("dropped weights of another shape or not finite from the learner")
                return
            joined.weights = np.array(msg.weights, copy=True)
            joined.extras = {k: np.array(v, copy=True) for k, v in msg.extras.items()}
            joined.version, joined.stamp = msg.version, msg.stamp

    def _send(self, frames: list) -> bool:
        try:
            self.sock.send_multipart(frames, flags=zmq.NOBLOCK, copy=False)
        except zmq.Again:
            return False
        self.bytes_out += sum(memoryview(f).nbytes for f in frames)
        self.last_sent = time.monotonic()
        return True

    def close(self) -> None:
        if self.sock is not None:
            self.sock.close(linger=200)
        self.ctx.term()


def _mismatch(address: str, theirs: int | None, reason: str = "") -> str:
    shown = "an unknown version" if theirs is None else f"protocol {theirs}"
    why = f" ({' '.join(reason.split())[:200]})" if reason else ""
    return (
        f"the learner at {address} refused this relay{why}: it speaks {shown}, this relay "
        f"protocol {PROTOCOL_VERSION}: {version_advice(theirs, 'relay')}"
    )
