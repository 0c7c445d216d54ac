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

from protocol import Answer, Message, Rejoin, Stop, Welcome
from protocol.exporter import serve_metrics
from protocol.security import ClientKeys, ServerKeys
from relay import metrics
from relay.downstream import Downstream
from relay.upstream import LearnerRefusedRelay, Upstream

log = logging.getLogger(__name__)
EXIT_REFUSED = 3


@dataclass
class RelayConfig:
    learner: list[str]
    """The learner's address, then fallbacks, tried in turn."""
    bind: str
    relay_id: str
    keys: ClientKeys | None = None
    guard_keys: ServerKeys | None = None
    """Server keys for its own actors, or None."""
    after_stop: str = "exit"
    metrics_port: int | None = None


class Relay:
    def __init__(self, cfg: RelayConfig):
        self.cfg = cfg
        self.dropped: Counter = Counter()
        self.up = Upstream(cfg.learner, cfg.relay_id, cfg.keys)
        self.down = Downstream(self.up.ctx, cfg.bind, cfg.guard_keys, self.up, self.dropped)
        self.endpoint = self.down.endpoint
        self.stop_reason: str | None = None
        self.lost_in_flight = 0
        self.started = self._published = time.monotonic()
        self.exporter = serve_metrics(cfg.metrics_port) if cfg.metrics_port is not None else None

    def run(self) -> int:
        signal.signal(signal.SIGTERM, lambda *_: self._request_stop("SIGTERM"))
        log.info("relay %s serving %s for %s", self.cfg.relay_id, self.endpoint, self.cfg.learner)
        poller = zmq.Poller()
        poller.register(self.down.sock, zmq.POLLIN)
        try:
            while self.stop_reason is None:
                self._pump_upstream()
                if poller.poll(20):
                    self.down.receive_burst(self.status)
                self.down.flush()
                self._chores()
        except KeyboardInterrupt:
            self.stop_reason = "interrupted"
        finally:
            self.close()
        return EXIT_REFUSED if self.stop_reason == "refused" else 0

    def _pump_upstream(self) -> None:
        if self.up.sock is None or self.up.hello_due(time.monotonic()):
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
            flight = self.up.answered(msg.seq)
            if flight is None:
                self.dropped["unknown_answer"] += 1
            else:
                self.down.answer(flight.work)
        elif isinstance(msg, Welcome):
            self._lose_in_flight("the learner welcomed this relay again")
            self.down.welcome_held()
        elif isinstance(msg, Rejoin):
            self._lose_in_flight(f"the learner asked this relay to rejoin ({msg.reason[:80]})")
            self.up.hello()
        elif isinstance(msg, Stop):
            self._on_learner_stop(msg)

    def _lose_in_flight(self, why: str) -> None:
        """Bundles the learner will not answer: their actors are asked to say hello again,
        and the loss is counted."""
        lost = [w for f in self.up.inflight.values() for w in f.work] + self.down.drop_pending()
        self.up.inflight.clear()
        if lost:
            self.lost_in_flight += len(lost)
            log.warning("%s: %d work messages in flight lost", why, len(lost))
        self.down.ask_to_rejoin({a for a, _ in lost}, "the learner restarted")

    def _on_learner_stop(self, msg: Stop) -> None:
        self.down.stop_all(msg.run_id, msg.reason)
        log.info("learner ended training (%s)", msg.reason[:80])
        if self.cfg.after_stop == "exit":
            self.stop_reason = "learner_stopped"
        else:
            self.up.joined = None  # ask again, backing off, for the learner's next run

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
        members = self.down.members.by_id.values()
        return {
            "role": "relay",
            "relay_id": self.cfg.relay_id,
            "learner": self.up.address,
            "joined": joined is not None,
            "weights_version": None if joined is None else joined.version,
            "actors_connected": len(self.down.members.connected(_timeout(joined))),
            "actors": {m.actor_id[:64]: m.env_steps for m in list(members)[:100]},
            "env_steps": self.down.env_steps,
            "bundles": self.up.bundles,
            "fanout_replies": self.down.fanout_replies,
            "messages_folded": self.up.folded,
            "lost_in_flight": self.lost_in_flight,
            "bytes_in_from_learner": self.up.bytes_in,
            "bytes_out_to_learner": self.up.bytes_out,
            "dropped": dict(self.dropped),
            "wall_seconds": round(time.monotonic() - self.started, 1),
        }

    def _request_stop(self, reason: str) -> None:
        self.stop_reason = reason

    def close(self) -> None:
        joined = self.up.joined
        if joined is not None:
            self.down.stop_all(joined.run_id, "relay stopped")
            self.up.leave()
        log.info("relay %s exiting (%s): %s", self.cfg.relay_id, self.stop_reason, self.status())
        self.down.close()
        if self.exporter is not None:
            self.exporter.close()
        self.up.close()


def _timeout(joined) -> float:
    return 10.0 if joined is None else joined.link.heartbeat_timeout
