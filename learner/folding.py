"""Actors behind relays: a relay's bundle unpacked into its actors' messages, and one answer
per bundle once all of its work is taken (gradient mode) or learned (data mode).

Each inner message is decoded and checked as if its actor had sent it direct; its actor is
registered under the relay (ActorInfo.via) on first sight, bound to the relay's key, so a
relay speaks only for the actors it serves and no other peer can speak for them.
"""

from __future__ import annotations

from dataclasses import dataclass

from learner.registry import ActorInfo, ActorRegistry
from learner.stats import RunStats
from protocol import (
    Bundle,
    CodecError,
    Episodes,
    Gradient,
    Heartbeat,
    Rollout,
    Stop,
    decode,
)

INNER_TYPES = (Gradient, Rollout, Episodes, Heartbeat, Stop)
WORK_TYPES = (Gradient, Rollout)


@dataclass
class Fold:
    """One bundle: its relay, number and arrival, and how much of its work is unanswered."""

    relay: ActorInfo
    seq: int
    received: float
    remaining: int = 0


class Relays:
    def __init__(self, registry: ActorRegistry, stats: RunStats, forget, max_inflated: int):
        self.registry, self.stats, self.max_inflated = registry, stats, max_inflated
        self.forget = forget
        """The intake's: drops an actor's work waiting to be learned (counted by reason)."""
        self._handling: ActorInfo | None = None
        """The relayed actor whose work message is being handled now, if any."""

    def handle(
        self, relay: ActorInfo, bundle: Bundle, frames: list, received: float, run
    ) -> list[Fold]:
        """Each inner message through `run(info, msg)` as soon as it is decoded, so one
        bundle never holds all its actors' messages inflated at once. Returns the folds
        owed an answer now: this bundle's when none of its work waits, and those of other
        bundles an actor taken over here left behind. Work answered later settles its
        fold through `settle`."""
        # Held by one count until its last message is handled: work settled on the spot
        # cannot answer the bundle while later messages are still to be counted.
        relay.relay = True
        fold, done = Fold(relay, bundle.seq, received, remaining=1), []
        for frame in frames:
            item = self._inner(relay, bundle, frame, done)
            if item is None:
                continue
            info, msg = item
            if isinstance(msg, WORK_TYPES):
                fold.remaining += 1
                info.folds.append(fold)
                self._handling = info
            try:
                run(info, msg)
            finally:
                self._handling = None
        fold.remaining -= 1
        return [*done, fold] if fold.remaining == 0 else done

    def settle(self, info: ActorInfo) -> list[Fold]:
        """One work message of a relayed actor is answered: its bundle's fold, when that
        was the last of the bundle's work (the relay is then owed its answer)."""
        if not info.folds:
            return []
        # Answered while its bundle is handled (refused, or applied at once): the work just
        # counted, the newest. Answered later: learned in arrival order, the oldest.
        fold = info.folds.pop() if info is self._handling else info.folds.popleft()
        fold.remaining -= 1
        return [fold] if fold.remaining == 0 else []

    def release(self, info: ActorInfo) -> list[Fold]:
        """A relayed actor's work unanswered is dropped (it left, or talks another way now):
        its share of each bundle is settled, so its relay is never left waiting."""
        done = []
        while info.folds:
            done += self.settle(info)
        return done

    def evicted(self) -> list[Fold]:
        """Actors the registry forgot for newcomers: their waiting work is dropped and the
        bundles they were in are owed their answers (a relay must not wait for them)."""
        done = []
        while self.registry.evicted:
            info = self.registry.evicted.pop()
            self.forget(info.actor_id, "forgotten")
            done += self.release(info)
        return done

    def rejoined(self, info: ActorInfo) -> list[Fold]:
        """`info` said hello (its waiting work already dropped): it talks direct from now
        on, and the bundles it was in behind a relay are owed their answers now. If it is
        a relay (it restarted, or lost its link), the bundles it sent before are not
        answered, and its actors' work waiting to be learned is dropped, since their
        replies could no longer reach them."""
        info.via = None
        for other in list(self.registry.actors.values()):
            if other.via == info.actor_id:
                other.folds.clear()
                self.forget(other.actor_id, "relay_rejoined")
        return self.release(info)

    def _inner(self, relay: ActorInfo, bundle: Bundle, frame, done: list) -> tuple | None:
        try:
            msg = decode([frame], self.max_inflated)
        except CodecError as exc:
            self.stats.drop(exc.reason, f"in a bundle of {relay.actor_id}: {exc.detail}")
            return None
        if not isinstance(msg, INNER_TYPES):
            self.stats.drop("bad_bundle", f"{msg.TYPE} in a bundle of {relay.actor_id}")
            return None
        if msg.run_id != bundle.run_id:
            self.stats.drop("wrong_run", f"in a bundle of {relay.actor_id}")
            return None
        info = self._actor(relay, msg.actor_id, done)
        return None if info is None else (info, msg)

    def _actor(self, relay: ActorInfo, actor_id: str, done: list) -> ActorInfo | None:
        """The relayed actor, registered under this relay on first sight (or when it moved
        here from a relay it is gone from); None, counted, for an id that is not the
        relay's to speak for. Folds owed an answer by a move go to `done`."""
        if not (actor_id and actor_id.isascii() and actor_id.isprintable()):
            self.stats.drop("bad_field", f"actor id {actor_id[:40]!r} in a bundle")
            return None
        # A connection of its own in the registry's eyes: the relay's, qualified by the id.
        # Registered again each time, so the registry's map follows a relay that reconnected.
        identity = relay.identity + b"/" + actor_id.encode()
        info = self.registry.get(actor_id)
        if info is not None and (info.via, info.key) == (relay.actor_id, relay.key):
            return self.registry.register(actor_id, identity, relay.host, 0, relay.key)
        if info is not None and not (info.gone and info.key == relay.key):
            self.stats.drop("identity_mismatch", f"{actor_id!r} in a bundle of {relay.actor_id}")
            return None
        if info is not None:
            # Taken over: what it sent another way is dropped and settled, as on a hello,
            # so no answer for it reaches this relay or a connection that is gone.
            self.forget(actor_id, "moved")
            done += self.rejoined(info)
        info = self.registry.register(actor_id, identity, relay.host, 0, relay.key)
        if info is None:
            self.stats.drop("registry_full", actor_id)
            return None
        info.via = relay.actor_id
        return info

    def direct(self, info: ActorInfo | None) -> ActorInfo | None:
        """`info`, unless it is an actor behind a relay: that one speaks only in its
        relay's bundles (its identity here is made up, and a peer could choose the same)."""
        if info is not None and info.via is not None:
            self.stats.drop("identity_mismatch", f"{info.actor_id!r} is behind {info.via!r}")
            return None
        return info
