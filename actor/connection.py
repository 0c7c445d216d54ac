"""An actor's link to the learner: handshake with backoff, sends, validated receives."""

from __future__ import annotations

import logging
import os
import socket
import time

import numpy as np
import zmq

from protocol import (
    PROTOCOL_VERSION,
    CodecError,
    Hello,
    Message,
    Refused,
    Stop,
    Weights,
    Welcome,
    decode,
)
from protocol.codec import encode
from protocol.messages import version_advice
from protocol.security import ClientKeys
from protocol.sockets import connect_dealer
from protocol.wire import PLAIN, WireFormat

log = logging.getLogger(__name__)


class LearnerRefused(Exception):
    """The learner cannot take this actor (another protocol version): retrying is futile.
    The message is one line that says which side to upgrade."""


class LearnerUnreachable(Exception):
    """No learner answered a handshake for the time allowed."""


class LearnerLink:
    def __init__(self, address: str, actor_id: str, keys: ClientKeys | None = None):
        # "a,b": a learner (or relay) and fallbacks, each hello attempt trying the next.
        self.addresses = [a.strip() for a in address.split(",") if a.strip()] or [address]
        self.address = self.addresses[0]
        self.keys = keys
        self.actor_id = actor_id
        self.ctx = zmq.Context()
        self.sock: zmq.Socket | None = None
        self.last_heard = time.monotonic()
        self.num_params: int | None = None
        self.wire: WireFormat = PLAIN
        """How this actor's arrays travel: what the learner's welcome asked for."""

    def handshake(
        self,
        should_stop,
        first_wait: float = 1.0,
        max_wait: float = 10.0,
        give_up_after: float | None = None,
    ) -> Welcome | Stop | None:
        """Say hello until a learner answers: its Welcome, or its Stop when its run is over.

        None if `should_stop()` turns true first. Raises LearnerUnreachable when nothing
        answered for `give_up_after` seconds (None: keep asking), LearnerRefused when the
        learner turns this actor away.
        """
        started = time.monotonic()
        wait = first_wait
        attempt = 0
        while not should_stop():
            left = None if give_up_after is None else started + give_up_after - time.monotonic()
            if left is not None and left <= 0:
                raise LearnerUnreachable(
                    f"no learner answered at {self.address} for {give_up_after:.0f}s; "
                    "giving up (--learner-timeout)"
                )
            self.address = self.addresses[attempt % len(self.addresses)]
            self._reopen()
            hello = Hello(self.actor_id, socket.gethostname(), os.getpid())
            self.sock.send_multipart(encode(hello))  # queued until the connection is up
            answer = self._await_answer(wait if left is None else min(wait, left), should_stop)
            if isinstance(answer, Stop):
                return answer
            if answer is not None:
                self.num_params = int(answer.weights.size)
                log.info("joined learner at %s (run %s)", self.address, answer.run_id)
                return answer
            attempt += 1
            wait = min(wait * 2, max_wait)
            log.warning(
                "no learner answering at %s (attempt %d); retrying for %.0fs%s",
                self.address,
                attempt,
                wait,
                # A learner older than protocol 4 drops a newer hello without a word.
                " (if it uses keys, check --keys-dir; a learner older than protocol "
                f"{PROTOCOL_VERSION} does not answer)"
                if attempt == 3
                else "",
            )
        return None

    def _reopen(self) -> None:
        if self.sock is not None:
            self.sock.close(linger=0)
        # A fresh socket per attempt: nothing queued for an earlier learner is sent twice.
        self.sock = connect_dealer(self.ctx, self.address, self.keys)

    def _await_answer(self, timeout: float, should_stop) -> Welcome | Stop | None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline and not should_stop():
            msg = self.recv(min(0.2, max(deadline - time.monotonic(), 0.0)))
            if isinstance(msg, (Welcome, Stop)):
                return msg
        return None

    def send(self, msg: Message, copy: bool = False) -> bool:
        try:
            self.sock.send_multipart(encode(msg, self.wire), flags=zmq.NOBLOCK, copy=copy)
            return True
        except zmq.Again:
            return False

    def waiting(self) -> bool:
        """Whether a message from the learner is there to read now."""
        return bool(self.sock.poll(0))

    def recv(self, timeout: float) -> Message | None:
        """The next valid message from the learner, or None after `timeout` seconds.
        Raises LearnerRefused on a refusal or a message of another protocol version."""
        if not self.sock.poll(int(timeout * 1000)):
            return None
        frames = self.sock.recv_multipart(copy=False)
        try:
            msg = decode(frames)
            self._check(msg)
        except CodecError as exc:
            if exc.reason == "bad_version":
                raise LearnerRefused(self._mismatch(exc.peer_version, "speaks")) from None
            log.warning("dropped a bad message from the learner: %s", exc)
            return None
        self.last_heard = time.monotonic()
        if isinstance(msg, Refused):
            reason = " ".join(msg.reason.split())[:200] or "no reason given"
            what = f"refused this actor ({reason}); it speaks"
            raise LearnerRefused(self._mismatch(msg.version, what))
        return msg

    def _mismatch(self, theirs: int | None, what: str) -> str:
        shown = "an unknown version" if theirs is None else f"protocol {theirs}"
        return (
            f"the learner at {self.address} {what} {shown}, this actor protocol "
            f"{PROTOCOL_VERSION}: {version_advice(theirs)}"
        )

    def _check(self, msg: Message) -> None:
        if not isinstance(msg, (Welcome, Weights)):
            return
        weights = msg.weights
        if weights is None:  # a version-only reply
            return
        if weights.dtype != np.float32 or weights.ndim != 1:
            raise CodecError("bad_array", "weights must be a flat float32 array")
        if isinstance(msg, Weights) and weights.size != self.num_params:
            raise CodecError("bad_shape", f"{weights.size} weights, expected {self.num_params}")
        if not np.isfinite(weights).all():
            raise CodecError("non_finite", "weights")

    def close(self) -> None:
        if self.sock is not None:
            self.sock.close(linger=500)
        self.ctx.term()
