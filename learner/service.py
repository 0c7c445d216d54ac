"""The learner process: one ROUTER socket, one model, one optimizer.

Flow control: each actor may have `max_outstanding` work messages in flight; every work
message is answered with the newest weights, which also returns the actor's credit. So a
new or lagging actor always gets current weights at once, memory per actor is bounded, and
the learner never waits on any actor (all sends are non-blocking).

This module binds, runs the loop, dispatches messages and sends. The rest has a module
each: what is built before binding (learner.startup), what work does to the model
(learner.intake, one per mode), who may speak (learner.gate), what the answers hold
(learner.replies), the clocked chores (learner.housekeeping), when the run ends
(learner.stopping) and what it tells (learner.reporting).
"""

from __future__ import annotations

import logging
import secrets
import time

import zmq

from learner import checkpoint
from learner.binding import bind
from learner.config import LearnerConfig
from learner.credit import CreditGrant
from learner.exporting import LearnerMetrics
from learner.folding import Fold, Relays
from learner.gate import Gate
from learner.housekeeping import Housekeeping
from learner.intake import INTAKES, Due
from learner.progress import Progress
from learner.registry import ActorInfo, ActorRegistry
from learner.replies import Replies
from learner.reporting import Reporter
from learner.startup import RunParts, prepare
from learner.stopping import StopRule, tell_actors_to_stop
from learner.validation import check_episodes
from protocol import (
    MAX_BUNDLE,
    Answer,
    Bundle,
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
    decode,
)
from protocol.sockets import (
    UNREACHABLE,
    recv_routed,
    send_frames,
    try_send,
)

log = logging.getLogger(__name__)
BURST = 256
WORK_TYPES = (Gradient, Rollout)


class Learner:
    def __init__(self, config: LearnerConfig):
        run = prepare(config)
        self.cfg, self.hp, self.spec = config, config.hp, run.spec
        self.wire, self.rundir = run.wire, run.rundir
        self.updater, self.norm, self.stats = run.updater, run.norm, run.stats
        self.max_message_bytes = self.max_inflated = run.max_message_bytes
        self.registry = ActorRegistry(config.heartbeat_timeout)
        self.run_id = secrets.token_hex(8)
        self.credit = CreditGrant(config.max_outstanding, config.max_credit, config.max_staleness)
        self.intake = INTAKES[config.mode](run, self.registry)
        self.replies = Replies(run, self.run_id, self.credit)
        self.relays = Relays(self.registry, self.stats, self.intake.forget, self.max_inflated)
        self.stop_rule = StopRule(run)
        self._handlers = self._message_handlers()
        self._received = time.monotonic()
        self._last_internal_log = -1e9
        self.bound = bind(config, self.rundir, self.max_message_bytes)
        self.sock = self.bound.sock
        self._watch(run)

    def _message_handlers(self) -> dict:
        """Handlers of a registered actor's messages by type. The intake's work type goes to
        it and the other mode's is refused, chosen here once rather than per message."""
        handlers = {kind: self._on_wrong_mode for kind in WORK_TYPES}
        handlers[self.intake.WORK] = self._on_work
        handlers.update({Episodes: self._on_episodes, Heartbeat: self._on_heartbeat})
        return {**handlers, Stop: self._on_leave}

    def _watch(self, run: RunParts) -> None:
        """The parts that watch the bound socket: who may speak, what the run tells, and
        the chores on a clock."""
        b = self.bound
        self.gate = Gate(self.registry, self.stats, self.intake, b.guard)
        self.reporter = Reporter(run, self.registry, self.credit, b.connections, b.guard)
        self.housekeeping = Housekeeping(
            self.cfg, self.registry, self.credit, self.gate, self.reporter, self.save_checkpoint
        )
        if b.exporter is not None:
            self.housekeeping.metrics = LearnerMetrics(b.exporter, self.reporter, self.run_id)

    @property
    def endpoint(self) -> str:
        """The address actually bound (a free port resolved)."""
        return self.bound.endpoint

    def save_checkpoint(self, final: bool = False) -> bool:
        """Whether it was written: a failed write is counted and logged, never fatal."""
        return checkpoint.save(self.rundir, self.updater, self.stats, self.cfg, self.norm, final)

    # ---- main loop -----------------------------------------------------------------------

    def run(self) -> dict:
        self.stop_rule.listen()
        self.reporter.log_start(self.run_id, self.bound.endpoint, self.wire)
        progress = Progress(plain_every=self.cfg.metrics_every)
        self.housekeeping.start(time.monotonic())
        reason = None
        try:
            # The stop condition is checked after every applied message, so a single-actor
            # run with a fixed seed and budget ends on exactly the same update every time.
            while reason is None:
                if self._poll():
                    self._receive_burst()
                reason = self.stop_rule.reason()
                if reason is None and self.intake.backlog:
                    self._learn_pending()
                    reason = self.stop_rule.reason()
                self.housekeeping.tick(progress)
        finally:
            progress.close()
        return self._finish(reason)

    def _poll(self) -> bool:
        """Whether work waits; the time spent waiting for it tells the grant how busy we are."""
        if self.intake.backlog:  # rollouts to learn: do not wait
            return bool(self.sock.poll(0))
        start = time.monotonic()
        ready = self.sock.poll(50)
        self.credit.waited(time.monotonic() - start)
        return bool(ready)

    def _receive_burst(self) -> None:
        for _ in range(BURST):
            try:
                identity, parts, extra = recv_routed(self.sock, zmq.NOBLOCK, 1 + MAX_BUNDLE)
            except zmq.Again:
                return
            self.stats.bytes_in += sum(len(part.buffer) for part in parts)
            self._handle(identity, parts, extra)
            if self.stop_rule.reason() is not None:
                return

    def _learn_pending(self) -> None:
        self._answer(self.intake.learn())

    def _finish(self, reason: str) -> dict:
        saved = self.save_checkpoint(final=True)
        self.reporter.write_metrics()
        summary = self.reporter.summary(reason, self.stop_rule.solved(), saved)
        grace = self.cfg.stop_grace
        tell_actors_to_stop(self.sock, self.registry, self.run_id, reason, grace, self.max_inflated)
        self.close()
        return summary

    def close(self) -> None:
        self.reporter.close()
        self.bound.close()
        self.rundir.unlock()

    # ---- messages ------------------------------------------------------------------------

    def _handle(self, identity: bytes, parts: list, extra_frames: int = 0) -> None:
        """One message from the network: one frame, or a relay's bundle (a header frame and
        its actors' frames). Whatever it holds, the loop goes on: every path that refuses
        it counts why; the guard below is a last resort, and a fuzzed run expects it never
        to fire."""
        msg = None
        try:
            self._received = time.monotonic()
            if not parts or extra_frames:
                self.stats.drop("bad_frames", f"{len(parts) + extra_frames}")
                return
            key = self.gate.key_of(parts[0])
            if key is None:
                self.stats.drop("revoked_key")  # its key left the authorized folder
                return
            try:
                msg = decode(parts, self.max_inflated)
            except CodecError as exc:
                self._on_bad_message(identity, exc)
                return
            if isinstance(msg, Bundle):
                self._on_bundle(identity, key, msg, parts[1:])
            else:
                self._dispatch(identity, key, msg)
            if self.registry.evicted:  # a gone actor forgotten for a newcomer
                self._answer_relays(self.relays.evicted())
        except Exception:  # a message must never take the learner down
            kind = getattr(msg, "TYPE", "undecoded")
            self.stats.drop("internal_error", kind)
            self._log_internal_error(kind)

    def _log_internal_error(self, kind: str) -> None:
        now = time.monotonic()
        if now - self._last_internal_log >= 10.0:
            self._last_internal_log = now
            log.exception("failed to handle a %s message (counted as internal_error)", kind)

    def _on_bad_message(self, identity: bytes, exc: CodecError) -> None:
        self.stats.drop(exc.reason, exc.detail)
        frames = self.gate.refusal(exc)
        if frames is not None:
            self._count_send(send_frames(self.sock, frames, identity))

    def _dispatch(self, identity: bytes, key: str, msg: Message) -> None:
        if isinstance(msg, StatusQuery):
            self._send(Status(self.run_id, self.reporter.status()), identity)
            return
        if isinstance(msg, Hello):
            self._on_hello(identity, key, msg)
            return
        handler = self._handlers.get(type(msg))
        if handler is None:
            self.stats.drop("unexpected_type", msg.TYPE)
            return
        info = self._sender(identity, key, msg)
        if info is not None:
            self._run(handler, info, msg)

    def _sender(self, identity: bytes, key: str, msg: Message) -> ActorInfo | None:
        info, rejoin = self.gate.sender(identity, key, msg, self.run_id)
        if rejoin is not None:
            self._send(Rejoin(msg.run_id, rejoin), identity)
        return self.relays.direct(info)

    def _run(self, handler, info: ActorInfo, msg: Message) -> None:
        try:
            handler(info, msg)
        except CodecError as exc:
            self.stats.drop(exc.reason, f"from {info.actor_id}: {exc.detail}")
            self._return_credit(info, msg, exc.reason)

    def _on_bundle(self, identity: bytes, key: str, msg: Bundle, frames: list) -> None:
        """A relay's actors' messages (learner.folding), each handled as if sent direct."""
        relay = self._sender(identity, key, msg)
        if relay is not None:
            run = lambda info, inner: self._run(self._handlers[type(inner)], info, inner)  # noqa: E731
            self._answer_relays(self.relays.handle(relay, msg, frames, self._received, run))

    def _return_credit(self, info: ActorInfo, msg: Message, reason: str) -> None:
        """A known actor's work that was dropped is still answered, or its credit would be
        gone for good and the actor would wait forever; never beyond its credit (except
        behind a relay, whose bundle is answered once all its work is)."""
        if isinstance(msg, WORK_TYPES) and (reason != "over_credit" or info.via is not None):
            self._reply_weights(info, self._received)

    def _on_hello(self, identity: bytes, key: str, msg: Hello) -> None:
        info = self.gate.admit(identity, key, msg, self.updater.version)
        if info is not None:
            self._answer_relays(self.relays.rejoined(info))
            self._send(self.replies.welcome(info), info.identity)

    def _send(self, msg: Message, identity: bytes) -> int:
        return self._count_send(try_send(self.sock, msg, identity, self.wire))

    def _count_send(self, sent: int) -> int:
        """Bytes sent; a reply that could not go is counted by why: its identity is stale
        (the peer reconnected or left) or the peer's queue is full (it does not read)."""
        if sent > 0:
            self.stats.bytes_out += sent
            return sent
        self.stats.drop("stale_identity" if sent == UNREACHABLE else "peer_queue_full")
        return 0

    def _answer(self, dues: list[Due]) -> None:
        for info, received in dues:
            self._reply_weights(info, received)

    def _reply_weights(self, info: ActorInfo, received: float) -> None:
        if info.via is not None:  # its relay answers it, once the bundle is answered
            self._answer_relays(self.relays.settle(info))
            return
        self._send_weights(info, self.replies.weights(info, received))

    def _answer_relays(self, folds: list[Fold]) -> None:
        for fold in folds:
            reply = self.replies.weights(fold.relay, fold.received)
            self._send_weights(fold.relay, Answer(**vars(reply), seq=fold.seq))

    def _send_weights(self, info: ActorInfo, reply: Message) -> None:
        if self._send(reply, info.identity) and reply.weights is not None:
            info.sent_version = reply.version
            self.stats.weights_sent += 1

    def _on_work(self, info: ActorInfo, msg: Message) -> None:
        self._answer(self.intake.take(info, msg, self._received))

    def _on_wrong_mode(self, info: ActorInfo, msg: Message) -> None:
        raise CodecError("wrong_mode", f"{msg.TYPE} sent to a {self.cfg.mode}-mode learner")

    def _on_episodes(self, info: ActorInfo, msg: Episodes) -> None:
        check_episodes(msg)
        self.stats.add_episodes(msg.returns)

    def _on_heartbeat(self, info: ActorInfo, msg: Heartbeat) -> None:
        if info.via is None:  # behind a relay, the relay answers it
            self._send(Heartbeat(self.run_id, info.actor_id), info.identity)

    def _on_leave(self, info: ActorInfo, msg: Stop) -> None:
        self.intake.forget(info.actor_id, "left")
        self._answer_relays(self.relays.release(info))
        self.registry.leave(info)
        log.info("actor %s left: %r", info.actor_id, msg.reason[:80])
