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
    Message,
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
    def __init__(self, registry: ActorRegistry, stats: RunStats, max_inflated: int):
        self.registry, self.stats, self.max_inflated = registry, stats, max_inflated

    def handle(
        self, relay: ActorInfo, bundle: Bundle, frames: list, received: float, run
    ) -> list[Fold]:
        """Each inner message through `run(info, msg)`; the bundle's fold when it is owed
        an answer now (nothing in it was work to wait for). Work answered later settles
        the fold through `settle`."""
        fold, items = self.unpack(relay, bundle, frames, received)
        for info, msg in items:
            run(info, msg)
        return [] if any(isinstance(m, WORK_TYPES) for _, m in items) else [fold]

    def unpack(
        self, relay: ActorInfo, bundle: Bundle, frames: list, received: float
    ) -> tuple[Fold, list[tuple[ActorInfo, Message]]]:
        """The bundle's fold and the messages to handle, each with its actor. Every work
        message is counted in the fold before any is handled, so the answer cannot go out
        before the last of them is done."""
        fold = Fold(relay, bundle.seq, received)
        items = []
        for frame in frames:
            item = self._inner(relay, bundle, frame)
            if item is None:
                continue
            if isinstance(item[1], WORK_TYPES):
                fold.remaining += 1
                item[0].folds.append(fold)
            items.append(item)
        return fold, items

    def settle(self, info: ActorInfo) -> Fold | None:
        """One work message of a relayed actor is answered: its bundle's fold, when that
        was the last of the bundle's work (the relay is then owed its answer)."""
        if not info.folds:
            return None
        fold = info.folds.popleft()
        fold.remaining -= 1
        return fold if fold.remaining == 0 else None

    def release(self, info: ActorInfo) -> list[Fold]:
        """A relayed actor left with work unanswered: its share of each bundle is settled,
        so its relay is never left waiting for an answer."""
        done = []
        while info.folds:
            fold = self.settle(info)
            if fold is not None:
                done.append(fold)
        return done

    def rejoined(self, relay: ActorInfo, forget) -> None:
        """A relay said hello again (it restarted, or lost its link): the bundles it sent
        before are not answered, and its actors' work waiting to be learned is dropped
        (counted by `forget`), since their replies could no longer reach them."""
        for info in list(self.registry.actors.values()):
            if info.via == relay.actor_id:
                info.folds.clear()
                forget(info.actor_id, "relay_rejoined")

    def _inner(self, relay: ActorInfo, bundle: Bundle, frame) -> tuple | None:
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
        info = self._actor(relay, msg.actor_id)
        return None if info is None else (info, msg)

    def _actor(self, relay: ActorInfo, actor_id: str) -> ActorInfo | None:
        """The relayed actor, registered under this relay on first sight (or when it moved
        here from a relay it is gone from); None, counted, for an id that is not the
        relay's to speak for."""
        if not (actor_id and actor_id.isascii() and actor_id.isprintable()):
            self.stats.drop("bad_field", f"actor id {actor_id[:40]!r} in a bundle")
            return None
        # A connection of its own in the registry's eyes: the relay's, qualified by the id.
        identity = relay.identity + b"/" + actor_id.encode()
        info = self.registry.get(actor_id)
        if info is not None and (info.via, info.key) == (relay.actor_id, relay.key):
            self.registry.touch(info, identity)
            return info
        if info is not None and not (info.gone and info.key == relay.key):
            self.stats.drop("identity_mismatch", f"{actor_id!r} in a bundle of {relay.actor_id}")
            return None
        info = self.registry.register(actor_id, identity, relay.host, 0, relay.key)
        if info is None:
            self.stats.drop("registry_full", actor_id)
            return None
        info.via = relay.actor_id
        return info
