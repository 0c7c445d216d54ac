"""The actors a relay serves, by the id from their hello, each bound to the connection and
key it joined with (as the learner binds its own actors)."""

from __future__ import annotations

import time
from collections import Counter
from dataclasses import dataclass, field

from protocol import Hello, Message

CAPACITY = 4096


@dataclass
class Member:
    actor_id: str
    identity: bytes
    key: str
    index: int
    host: str
    sent_version: int = -1
    """The newest weights version this actor was sent (-1: none yet)."""
    outstanding: int = 0
    """Its work messages not yet answered."""
    waiting: int = 0
    """Its other messages waiting here to go up (relay.service.MAX_WAITING)."""
    env_steps: int = 0
    last_seen: float = field(default_factory=time.monotonic)


def plain(text: str) -> bool:
    """Printable ASCII: ids and hosts reach logs and status tables."""
    return text.isascii() and text.isprintable()


class Members:
    def __init__(self, dropped: Counter, first_index: int = 0):
        self.dropped = dropped
        self.by_id: dict[str, Member] = {}
        self.by_identity: dict[bytes, str] = {}
        self.first_index = first_index
        self._next = 0

    def admit(self, identity: bytes, key: str, hello: Hello) -> Member | None:
        """The member to welcome (registered, or moved to this connection); None, counted,
        for a hello this relay refuses."""
        if not (hello.actor_id and plain(hello.actor_id) and plain(hello.host)):
            return self._refuse("bad_field")
        owner = self.by_identity.get(identity)
        if owner is not None and owner != hello.actor_id:
            return self._refuse("one_id_per_connection")
        member = self.by_id.get(hello.actor_id)
        if member is not None and member.key != key:
            return self._refuse("identity_mismatch")
        if member is None:
            if len(self.by_id) >= CAPACITY and not self._forget_oldest_silent():
                return self._refuse("registry_full")
            member = Member(hello.actor_id, identity, key, self.first_index + self._next, "")
            self._next += 1
            self.by_id[hello.actor_id] = member
        self.by_identity.pop(member.identity, None)
        member.identity, member.host = identity, hello.host
        member.outstanding, member.sent_version = 0, -1
        member.last_seen = time.monotonic()
        self.by_identity[identity] = member.actor_id
        return member

    def sender(self, identity: bytes, key: str, msg: Message) -> Member | None:
        """The member that sent `msg` on this connection, or None (counted)."""
        member = self.by_id.get(getattr(msg, "actor_id", ""))
        if member is None:
            return self._refuse("unknown_actor")
        if (member.identity, member.key) != (identity, key):
            return self._refuse("identity_mismatch")
        member.last_seen = time.monotonic()
        return member

    def leave(self, member: Member) -> None:
        self.by_id.pop(member.actor_id, None)
        if self.by_identity.get(member.identity) == member.actor_id:
            del self.by_identity[member.identity]

    def connected(self, timeout: float) -> list[Member]:
        now = time.monotonic()
        return [m for m in self.by_id.values() if now - m.last_seen <= timeout]

    def _forget_oldest_silent(self) -> bool:
        oldest = min(self.by_id.values(), key=lambda m: m.last_seen)
        if time.monotonic() - oldest.last_seen < 60.0:
            return False  # a connected actor is never forgotten for a newcomer
        self.leave(oldest)
        return True

    def _refuse(self, reason: str) -> None:
        self.dropped[reason] += 1
        return None
