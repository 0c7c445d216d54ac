"""The relay process: between the actors of one host (or rack) and the learner.

To the learner it is one peer with its own key; to its actors it is a learner. Each
weights version crosses the learner's link once per relay instead of once per actor, and
the actors' messages go up folded into bundles, one answer each. Every actor message is
checked here (and again by the learner, which applies nothing on the relay's word).

Flow: an actor's work waits here until the bundle it is in is answered, so the learner's
pace reaches every actor, and what the relay holds is bounded by its actors' credit.
"""

from __future__ import annotations

import logging
import signal
import time
from collections import Counter
from dataclasses import dataclass

import zmq

from protocol import (
    MAX_BUNDLE,
    Answer,
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
from protocol.exporter import serve_metrics
from protocol.security import ClientKeys, Guard
from protocol.sockets import bind_router, recv_routed, try_send, user_id
from relay import metrics
from relay.members import CAPACITY, Member, Members
from relay.upstream import Upstream

log = logging.getLogger(__name__)
WORK = (Gradient, Rollout)
FORWARDED = (*WORK, Episodes, Stop, Heartbeat)
EXIT_REFUSED = 3
MAX_WAITING = 64
"""An actor's messages other than work (heartbeats, episode reports) waiting here to go up:
work is bounded by its credit, these by this, however slowly the learner answers."""


@dataclass
class RelayConfig:
    learner: list[str]
    """The learner's address, then fallbacks, tried in turn."""
    bind: str
    relay_id: str
    keys: ClientKeys | None = None
    guard_keys: object | None = None
    """Server keys for its own actors (protocol.security.ServerKeys), or None."""
    after_stop: str = "exit"
    metrics_port: int | None = None


class Relay:
    def __init__(self, cfg: RelayConfig):
        self.cfg = cfg
        self.dropped: Counter = Counter()
        self.up = Upstream(cfg.learner, cfg.relay_id, cfg.keys)
        self.guard = Guard(self.up.ctx, cfg.guard_keys) if cfg.guard_keys is not None else None
        self.sock, self.endpoint = bind_router(self.up.ctx, cfg.bind, self.guard)
        self.members = Members(self.dropped)
        self.pending: list[tuple[object, Member, float | None]] = []
        """Frames waiting to go up, each with its actor and, for work, when it came."""
        self.stop_reason: str | None = None
        self.held: dict[bytes, tuple[str, Hello]] = {}
        """Hellos that came before this relay joined the learner, by connection."""
        self.lost_in_flight = self.env_steps = self.fanout_replies = 0
        self.started = self._published = time.monotonic()
        self.exporter = serve_metrics(cfg.metrics_port) if cfg.metrics_port is not None else None

    def run(self) -> int:
        signal.signal(signal.SIGTERM, lambda *_: self._request_stop("SIGTERM"))
        log.info("relay %s serving %s for %s", self.cfg.relay_id, self.endpoint, self.cfg.learner)
        poller = zmq.Poller()
        poller.register(self.sock, zmq.POLLIN)
        try:
            while self.stop_reason is None:
                self._pump_upstream()
                if poller.poll(20):
                    self._receive_burst()
                self._flush()
                self._chores()
        except KeyboardInterrupt:
            self.stop_reason = "interrupted"
        finally:
            self.close()
        return EXIT_REFUSED if self.stop_reason == "refused" else 0

    # ---- the learner's side -----------------------------------------------------------

    def _pump_upstream(self) -> None:
        from relay.upstream import LearnerRefusedRelay

        poller_sock = self.up.sock
        if poller_sock is None or self.up.hello_due(time.monotonic()):
            self.up.hello()
            return
        try:
            for _ in range(256):
                msg = self.up.recv()
                if msg is None:
                    return
                self._on_upstream(msg)
        except LearnerRefusedRelay as exc:
            log.error("%s", exc)
            self.stop_reason = "refused"

    def _on_upstream(self, msg: Message) -> None:
        if isinstance(msg, Answer):
            self._on_answer(msg)
        elif isinstance(msg, Welcome):
            self._lose_in_flight("the learner welcomed this relay again")
            held, self.held = self.held, {}
            for identity, (key, hello) in held.items():
                self._on_hello(identity, key, hello)
        elif isinstance(msg, Rejoin):
            self._lose_in_flight(f"the learner asked this relay to rejoin ({msg.reason[:80]})")
            self.up.hello()
        elif isinstance(msg, Stop):
            self._on_learner_stop(msg)

    def _on_answer(self, msg: Answer) -> None:
        flight = self.up.answered(msg.seq)
        if flight is None:
            self.dropped["unknown_answer"] += 1
            return
        joined = self.up.joined
        for actor_id, received in flight.work:
            member = self.members.by_id.get(actor_id)
            if member is None or member.outstanding <= 0:
                continue
            member.outstanding -= 1
            held = time.monotonic() - received
            self._reply(member, joined, held)

    def _reply(self, member: Member, joined, held: float) -> None:
        weights = joined.weights if member.sent_version < joined.version else None
        extras = joined.extras if weights is not None else {}
        reply = Weights(joined.run_id, joined.version, joined.stamp, self._grant(joined), held)
        reply.weights, reply.extras = weights, dict(extras)
        if self._send(reply, member.identity) and weights is not None:
            member.sent_version = joined.version
            self.fanout_replies += 1

    def _grant(self, joined) -> int:
        """Work an actor may keep in flight here: the floor every actor has. Its link to
        the relay is short, and more in flight would only age the work it sends."""
        return joined.link.max_outstanding

    def _lose_in_flight(self, why: str) -> None:
        """Bundles the learner will not answer: their actors are asked to say hello again,
        and the loss is counted."""
        lost = [w for f in self.up.inflight.values() for w in f.work]
        lost += [(m.actor_id, t) for _, m, t in self.pending if t is not None]
        self.up.inflight.clear()
        for _, member, _ in self.pending:
            member.waiting = 0
        self.pending = []
        if lost:
            self.lost_in_flight += len(lost)
            log.warning("%s: %d work messages in flight lost", why, len(lost))
        for actor_id in {a for a, _ in lost}:
            member = self.members.by_id.get(actor_id)
            if member is not None:
                member.outstanding = 0
                self._send(Rejoin(member_run(self.up), "the learner restarted"), member.identity)

    def _on_learner_stop(self, msg: Stop) -> None:
        for member in list(self.members.by_id.values()):
            self._send(Stop(msg.run_id, member.actor_id, msg.reason), member.identity)
        log.info("learner ended training (%s)", msg.reason[:80])
        if self.cfg.after_stop == "exit":
            self.stop_reason = "learner_stopped"
        else:
            self.up.joined = None  # ask again, backing off, for the learner's next run

    # ---- the actors' side -------------------------------------------------------------

    def _receive_burst(self) -> None:
        for _ in range(256):
            try:
                identity, parts, extra = recv_routed(self.sock, zmq.NOBLOCK)
            except zmq.Again:
                return
            try:
                self._on_actor_frames(identity, parts, extra)
            except Exception:  # a message must never take the relay down
                self.dropped["internal_error"] += 1
                log.exception("failed to handle an actor's message (counted)")

    def _on_actor_frames(self, identity: bytes, parts: list, extra: int) -> None:
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
            self._send(Status(member_run(self.up), self.status()), identity)
        elif isinstance(msg, Hello):
            self._on_hello(identity, key, msg)
        elif isinstance(msg, FORWARDED):
            self._on_forwarded(identity, key, msg, parts[0])
        else:
            self.dropped["unexpected_type"] += 1

    def _on_hello(self, identity: bytes, key: str, msg: Hello) -> None:
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
        if self._send(welcome, identity):
            member.sent_version = joined.version

    def _on_forwarded(self, identity: bytes, key: str, msg: Message, frame) -> None:
        member = self.members.sender(identity, key, msg)
        if member is None:
            if not isinstance(msg, Stop):
                self._send(Rejoin(msg.run_id, "unknown actor: say hello"), identity)
            return
        joined = self.up.joined
        if joined is None or msg.run_id != joined.run_id:
            self.dropped["wrong_run"] += 1
            if not isinstance(msg, Stop) and joined is not None:
                self._send(Rejoin(msg.run_id, "earlier run: say hello"), identity)
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
                self._send(Heartbeat(joined.run_id, member.actor_id), identity)
            elif isinstance(msg, Stop):
                self.members.leave(member)
        self.pending.append((frame, member, received))

    def _flush(self) -> None:
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

    # ---- chores, status, exit ---------------------------------------------------------

    def _chores(self) -> None:
        now = time.monotonic()
        if self.exporter is not None and now - self._published >= metrics.EVERY:
            self._published = now
            self.exporter.publish(metrics.snapshot(self.status()))
        joined = self.up.joined
        if joined is None:
            return
        self.up.heartbeat(now, joined.link.heartbeat_interval)
        silent = now - self.up.last_heard
        timeout = joined.link.heartbeat_timeout
        # Work or heartbeats unanswered for the timeout: the learner is gone or restarted.
        if silent > timeout and self.up.last_sent > self.up.last_heard:
            self._lose_in_flight(f"no answer from the learner for {silent:.0f}s")
            self.up.hello()
            return
        # A learner that answers all else but one bundle lost it: the credit that bundle
        # holds, here and its actors', would never come back.
        waited = self.up.overdue(now, timeout)
        if waited is not None:
            self._lose_in_flight(f"a bundle unanswered for {waited:.0f}s")
            self.up.hello()

    def status(self) -> dict:
        joined = self.up.joined
        members = self.members.by_id.values()
        return {
            "role": "relay",
            "relay_id": self.cfg.relay_id,
            "learner": self.up.address,
            "joined": joined is not None,
            "weights_version": None if joined is None else joined.version,
            "actors_connected": len(self.members.connected(_timeout(joined))),
            "actors": {m.actor_id[:64]: m.env_steps for m in list(members)[:100]},
            "env_steps": self.env_steps,
            "bundles": self.up.bundles,
            "fanout_replies": self.fanout_replies,
            "messages_folded": self.up.folded,
            "lost_in_flight": self.lost_in_flight,
            "bytes_in_from_learner": self.up.bytes_in,
            "bytes_out_to_learner": self.up.bytes_out,
            "dropped": dict(self.dropped),
            "wall_seconds": round(time.monotonic() - self.started, 1),
        }

    def _key_of(self, frame) -> str | None:
        if self.guard is None:
            return ""
        key = user_id(frame)
        return key if key is not None and self.guard.is_authorized(key) else None

    def _send(self, msg: Message, identity: bytes) -> bool:
        joined = self.up.joined
        if joined is None:
            sent = try_send(self.sock, msg, identity)
        else:
            sent = try_send(self.sock, msg, identity, joined.link.wire)
        if sent <= 0:
            self.dropped["peer_queue_full" if sent == 0 else "stale_identity"] += 1
        return sent > 0

    def _request_stop(self, reason: str) -> None:
        self.stop_reason = reason

    def close(self) -> None:
        joined = self.up.joined
        if joined is not None:
            for member in self.members.by_id.values():
                self._send(Stop(joined.run_id, member.actor_id, "relay stopped"), member.identity)
            self.up.leave()
        log.info("relay %s exiting (%s): %s", self.cfg.relay_id, self.stop_reason, self.status())
        self.sock.close(linger=200)
        if self.exporter is not None:
            self.exporter.close()
        if self.guard is not None:
            self.guard.stop()
        self.up.close()


def member_run(up: Upstream) -> str:
    return up.joined.run_id if up.joined is not None else ""


def _timeout(joined) -> float:
    return 10.0 if joined is None else joined.link.heartbeat_timeout
