"""A relay's actors' side: the socket its actors connect to, who they are, what they send
and what waits to go up. Every actor message is decoded and checked here first; what goes
up is the frame its actor encoded, in the bundle the relay sends next."""

from __future__ import annotations

import logging
import time
from collections import Counter

import zmq

from protocol import (
    MAX_BUNDLE,
    CodecError,
    Episodes,
    Gradient,
    Heartbeat,
    Hello,
    Message,
    Rejoin,
    Rollout,
    Status,
    StatusQuery,
    Stop,
    Weights,
    Welcome,
    decode,
)
from protocol.security import Guard, ServerKeys
from protocol.sockets import bind_router, recv_routed, try_send, user_id
from relay.members import CAPACITY, Member, Members
from relay.upstream import Joined, Upstream

log = logging.getLogger(__name__)
WORK = (Gradient, Rollout)
FORWARDED = (*WORK, Episodes, Stop, Heartbeat)
MAX_WAITING = 64
"""An actor's messages other than work (heartbeats, episode reports) waiting here to go up:
work is bounded by its credit, these by this, however slowly the learner answers."""


class Downstream:
    def __init__(
        self, ctx: zmq.Context, bind: str, keys: ServerKeys | None, up: Upstream, dropped: Counter
    ):
        self.up, self.dropped = up, dropped
        self.guard = Guard(ctx, keys) if keys is not None else None
        self.sock, self.endpoint = bind_router(ctx, bind, self.guard)
        self.members = Members(dropped)
        self.pending: list[tuple[object, Member, float | None]] = []
        """Frames waiting to go up, each with its actor and, for work, when it came."""
        self.held: dict[bytes, tuple[str, Hello]] = {}
        """Hellos that came before this relay joined the learner, by connection."""
        self.env_steps = self.fanout_replies = 0

    def receive_burst(self, status) -> None:
        """Up to a burst of actor messages; `status()` answers a status query."""
        for _ in range(256):
            try:
                identity, parts, extra = recv_routed(self.sock, zmq.NOBLOCK)
            except zmq.Again:
                return
            try:
                self.on_frames(identity, parts, extra, status)
            except Exception:  # a message must never take the relay down
                self.dropped["internal_error"] += 1
                log.exception("failed to handle an actor's message (counted)")

    def on_frames(self, identity: bytes, parts: list, extra: int, status) -> None:
        if len(parts) != 1 or extra:
            self.dropped["bad_frames"] += 1
            return
        key = self._key_of(parts[0])
        if key is None:
            self.dropped["revoked_key"] += 1
            return
        try:
            msg = decode(parts)
        except CodecError as exc:
            self.dropped[exc.reason] += 1
            return
        if isinstance(msg, StatusQuery):
            self.send(Status(run_of(self.up), status()), identity)
        elif isinstance(msg, Hello):
            self.on_hello(identity, key, msg)
        elif isinstance(msg, FORWARDED):
            self._forwarded(identity, key, msg, parts[0])
        else:
            self.dropped["unexpected_type"] += 1

    def on_hello(self, identity: bytes, key: str, msg: Hello) -> None:
        joined = self.up.joined
        if joined is None:
            # Answered once this relay joins, rather than after the actor's back-off; one
            # hello per connection, and no more than the members this relay may hold.
            if identity in self.held or len(self.held) < CAPACITY:
                self.held[identity] = (key, msg)
            else:
                self.dropped["not_joined"] += 1
            return
        member = self.members.admit(identity, key, msg)
        if member is None:
            return
        index = joined.index * 4096 + member.index % 4096  # seeds apart from other relays'
        welcome = Welcome(
            joined.run_id, index, joined.version, joined.stamp, joined.settings, joined.weights
        )
        welcome.extras = dict(joined.extras)
        if self.send(welcome, identity):
            member.sent_version = joined.version

    def _forwarded(self, identity: bytes, key: str, msg: Message, frame) -> None:
        member = self.members.sender(identity, key, msg)
        if member is None:
            if not isinstance(msg, Stop):
                self.send(Rejoin(msg.run_id, "unknown actor: say hello"), identity)
            return
        joined = self.up.joined
        if joined is None or msg.run_id != joined.run_id:
            self.dropped["wrong_run"] += 1
            if not isinstance(msg, Stop) and joined is not None:
                self.send(Rejoin(msg.run_id, "earlier run: say hello"), identity)
            return
        if len(frame) > joined.max_frame:
            self.dropped["oversize"] += 1  # up, it would cut every actor's link off
            return
        received = None
        if isinstance(msg, WORK):
            if member.outstanding >= joined.link.max_credit:
                self.dropped["over_credit"] += 1
                return
            member.outstanding += 1
            if msg.env_steps == joined.work_steps:  # the learner refuses any other count
                member.env_steps += msg.env_steps
                self.env_steps += msg.env_steps
            received = time.monotonic()
        elif member.waiting >= MAX_WAITING:
            self.dropped["queue_full"] += 1
            return
        else:
            member.waiting += 1
            if isinstance(msg, Heartbeat):
                self.send(Heartbeat(joined.run_id, member.actor_id), identity)
            elif isinstance(msg, Stop):
                self.members.leave(member)
        self.pending.append((frame, member, received))

    def flush(self) -> None:
        """Whatever waits goes up as one bundle whenever the learner has room for one: the
        longer its answers take, the more each bundle folds."""
        while self.pending and self.up.can_send():
            batch = self.pending[:MAX_BUNDLE]
            work = [(m.actor_id, t) for _, m, t in batch if t is not None]
            if not self.up.send_bundle([f for f, _, _ in batch], work):
                return  # the learner's queue is full: they wait for the next round
            del self.pending[:MAX_BUNDLE]
            for _, member, received in batch:
                member.waiting -= received is None

    def welcome_held(self) -> None:
        """The hellos that came before this relay joined, answered now that it has."""
        held, self.held = self.held, {}
        for identity, (key, hello) in held.items():
            self.on_hello(identity, key, hello)

    def answer(self, work: list[tuple[str, float]]) -> None:
        """The learner answered the bundle that carried this work: each actor gets its
        reply, with the weights this relay holds if its copy is older."""
        joined = self.up.joined
        for actor_id, received in work:
            member = self.members.by_id.get(actor_id)
            if member is None or member.outstanding <= 0:
                continue
            member.outstanding -= 1
            self._reply(member, joined, time.monotonic() - received)

    def _reply(self, member: Member, joined, held: float) -> None:
        weights = joined.weights if member.sent_version < joined.version else None
        extras = joined.extras if weights is not None else {}
        reply = Weights(joined.run_id, joined.version, joined.stamp, self._grant(joined), held)
        reply.weights, reply.extras = weights, dict(extras)
        if self.send(reply, member.identity) and weights is not None:
            member.sent_version = joined.version
            self.fanout_replies += 1

    def _grant(self, joined: Joined) -> int:
        """Work an actor may keep in flight here: the floor every actor has. Its link to
        the relay is short, and more in flight would only age the work it sends."""
        return joined.link.max_outstanding

    def drop_pending(self) -> list[tuple[str, float]]:
        """Nothing waiting goes up (the learner will not take it): the work it held."""
        lost = [(m.actor_id, t) for _, m, t in self.pending if t is not None]
        for _, member, _ in self.pending:
            member.waiting = 0
        self.pending = []
        return lost

    def ask_to_rejoin(self, actor_ids: set[str], why: str) -> None:
        for actor_id in actor_ids:
            member = self.members.by_id.get(actor_id)
            if member is not None:
                member.outstanding = 0
                self.send(Rejoin(run_of(self.up), why), member.identity)

    def stop_all(self, run_id: str, reason: str) -> None:
        for member in list(self.members.by_id.values()):
            self.send(Stop(run_id, member.actor_id, reason), member.identity)

    def _key_of(self, frame) -> str | None:
        if self.guard is None:
            return ""
        key = user_id(frame)
        return key if key is not None and self.guard.is_authorized(key) else None

    def send(self, msg: Message, identity: bytes) -> bool:
        joined = self.up.joined
        if joined is None:
            sent = try_send(self.sock, msg, identity)
        else:
            sent = try_send(self.sock, msg, identity, joined.link.wire)
        if sent <= 0:
            self.dropped["peer_queue_full" if sent == 0 else "stale_identity"] += 1
        return sent > 0

    def close(self) -> None:
        self.sock.close(linger=200)
        if self.guard is not None:
            self.guard.stop()


def run_of(up: Upstream) -> str:
    return up.joined.run_id if up.joined is not None else ""
