"""Which actors the learner knows, by the id from their handshake (not the ZeroMQ identity,
which changes when an actor reconnects)."""

from __future__ import annotations

import logging
import time
from collections import deque
from dataclasses import dataclass, field

log = logging.getLogger(__name__)


@dataclass
class ActorInfo:
    actor_id: str
    identity: bytes
    index: int
    host: str = "?"
    pid: int = 0
    last_seen: float = field(default_factory=time.monotonic)
    env_steps: int = 0
    gone: bool = False
    steps_per_second: float = 0.0
    sent_version: int = -1
    """The newest weights version sent to this actor (-1: none yet)."""
    welcomed: tuple[bytes, int] = (b"", -1)
    """The connection and weights version of the last welcome: one per version each."""
    key: str = ""
    """The CURVE public key it joined with (z85; "" without keys): its id belongs to it."""
    relay: bool = False
    """A relay (it has sent a bundle): a peer that serves actors, not an actor."""
    via: str | None = None
    """The relay this actor's messages come through (None: it talks to the learner)."""
    folds: deque = field(default_factory=deque)
    """Behind a relay: the bundle of each of its work messages not yet answered, oldest
    first (learner.folding)."""
    _mark: tuple[float, int] = (0.0, 0)


class ActorRegistry:
    """Bounded: past `capacity` entries the longest-silent actor is forgotten."""

    def __init__(self, heartbeat_timeout: float, capacity: int = 4096):
        self.timeout = heartbeat_timeout
        self.capacity = capacity
        self.actors: dict[str, ActorInfo] = {}
        self.by_identity: dict[bytes, str] = {}
        """Which actor each connection speaks for: one id per connection."""
        self._next_index = 0
        self.evicted: list[ActorInfo] = []
        """Gone actors forgotten for newcomers, for the learner to settle what they left."""

    def get(self, actor_id: str) -> ActorInfo | None:
        return self.actors.get(actor_id)

    def owner(self, identity: bytes) -> str | None:
        """The actor id this connection already speaks for, if any."""
        return self.by_identity.get(identity)

    def register(
        self, actor_id: str, identity: bytes, host: str = "?", pid: int = 0, key: str = ""
    ) -> ActorInfo | None:
        """The actor's entry, (re)bound to this connection. None when the registry is full
        of connected actors: a gone one may be forgotten for a newcomer, a connected one
        never is."""
        info = self.actors.get(actor_id)
        if info is None:
            if len(self.actors) >= self.capacity:
                gone = [a for a in self.actors.values() if a.gone]
                if not gone:
                    return None
                victim = min(gone, key=lambda a: a.last_seen)
                self.forget(victim)
                self.evicted.append(victim)
            info = ActorInfo(actor_id, identity, self._next_index, host, pid, key=key)
            self._next_index += 1
            self.actors[actor_id] = info
            log.info("actor %s joined (host %s, pid %d, index %d)", actor_id, host, pid, info.index)
        else:
            self.by_identity.pop(info.identity, None)
            info.identity, info.host, info.pid = identity, host, pid
            if info.gone:
                log.info("actor %s is back", actor_id)
        self.by_identity[identity] = actor_id
        info.gone = False
        info.last_seen = time.monotonic()
        return info

    def touch(self, info: ActorInfo, identity: bytes) -> None:
        info.identity = identity
        info.last_seen = time.monotonic()
        if info.gone:
            info.gone = False
            log.info("actor %s is back", info.actor_id)

    def expire(self) -> None:
        """Mark actors silent for longer than the heartbeat timeout as gone."""
        now = time.monotonic()
        for info in self.actors.values():
            if not info.gone and now - info.last_seen > self.timeout:
                info.gone = True
                log.warning("actor %s gone: silent for %.1fs", info.actor_id, now - info.last_seen)

    def update_rates(self, min_interval: float = 2.0) -> None:
        """Each actor's env steps/s since its last mark, re-marked every `min_interval` s."""
        now = time.monotonic()
        for info in self.actors.values():
            then, steps = info._mark
            if then == 0.0:
                info._mark = (now, info.env_steps)
            elif now - then >= min_interval:
                info.steps_per_second = (info.env_steps - steps) / (now - then)
                info._mark = (now, info.env_steps)

    def forget(self, info: ActorInfo) -> None:
        self.actors.pop(info.actor_id, None)
        if self.by_identity.get(info.identity) == info.actor_id:
            del self.by_identity[info.identity]
        log.info("actor %s forgotten", info.actor_id)

    def leave(self, info: ActorInfo) -> None:
        info.gone = True
        log.info("actor %s left", info.actor_id)

    def connected(self) -> list[ActorInfo]:
        """The actors heard from lately (relays are peers that serve actors, not counted)."""
        return [a for a in self.actors.values() if not a.gone and not a.relay]
