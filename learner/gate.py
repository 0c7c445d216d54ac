"""Who may speak to the learner, and for which actor: the keys it accepts, the peers of
another protocol version it turns away, the hellos it answers, and the one connection and
key each actor id belongs to.

Every refusal here is counted by reason (RunStats.drop). The gate never sends: it returns
what to answer, and the service sends it.
"""

from __future__ import annotations

import time

import zmq

from learner.config import LearnerConfig
from learner.errors import LearnerStartError
from learner.intake import Intake
from learner.registry import ActorInfo, ActorRegistry
from learner.stats import RunStats
from protocol import PROTOCOL_VERSION, CodecError, Hello, Message, Stop, refusal
from protocol.security import Guard, KeysError, load_server_keys
from protocol.sockets import user_id


def load_guard(ctx: zmq.Context, cfg: LearnerConfig) -> Guard | None:
    """The CURVE guard of `cfg`'s keys: only authorized actors connect. None without keys."""
    if cfg.keys_dir is None:
        return None
    try:
        return Guard(ctx, load_server_keys(cfg.keys_dir, cfg.authorized_dir))
    except KeysError as exc:
        raise LearnerStartError(str(exc)) from None


class Gate:
    def __init__(
        self, registry: ActorRegistry, stats: RunStats, intake: Intake, guard: Guard | None
    ):
        self.registry, self.stats, self.intake, self.guard = registry, stats, intake, guard
        self._last_refusal = -1e9

    def key_of(self, frame) -> str | None:
        """The sender's authorized key; None when keys are on and it is no longer
        authorized (keys off: "" for everyone)."""
        if self.guard is None:
            return ""
        key = user_id(frame)
        return key if key is not None and self.guard.is_authorized(key) else None

    def check_keys(self) -> None:
        """Re-read the authorized keys; actors whose key was revoked are forgotten, with
        what they have waiting (each message's key is checked as it comes, so their
        connections get nothing more either way)."""
        if self.guard is None:
            return
        self.guard.refresh()
        actors = list(self.registry.actors.values())
        for info in actors:
            if info.key and not self.guard.is_authorized(info.key):
                self.intake.forget(info.actor_id, "revoked")
                self.registry.forget(info)
                self.stats.drop("revoked_actor", info.actor_id)

    def refusal(self, exc: CodecError) -> list | None:
        """The frames that tell a peer of another version why it cannot join, in terms it
        decodes; at most one a second, so refusals cannot be made to flood."""
        if exc.reason != "bad_version" or exc.peer_type != "hello":
            return None
        now = time.monotonic()
        if now - self._last_refusal < 1.0:
            return None
        self._last_refusal = now
        theirs = "?" if exc.peer_version is None else exc.peer_version
        reason = (
            f"protocol version mismatch: learner speaks {PROTOCOL_VERSION}, actor "
            f"speaks {theirs}; upgrade the {_older(theirs)}"
        )
        return refusal(exc.peer_version, reason)

    def admit(self, identity: bytes, key: str, msg: Hello, version: int) -> ActorInfo | None:
        """The actor to welcome, (re)registered on this connection at weights `version`;
        None for a hello that is refused (and counted)."""
        if not self._admits(identity, key, msg, version):
            return None
        self.intake.forget(msg.actor_id, "rejoined")
        info = self.registry.register(msg.actor_id, identity, msg.host, msg.pid, key)
        if info is None:
            self.stats.drop("registry_full", msg.actor_id)
        return info

    def _admits(self, identity: bytes, key: str, msg: Hello, version: int) -> bool:
        if not (_plain(msg.actor_id) and msg.actor_id and _plain(msg.host)):
            # ids and hosts reach logs and status tables: printable ASCII only
            self.stats.drop("bad_field", f"hello with actor id {msg.actor_id[:40]!r}")
            return False
        owner = self.registry.owner(identity)
        if owner is not None and owner != msg.actor_id:
            # One id per connection: else one socket could register (and be sent weights
            # for) any number of actors.
            self.stats.drop("one_id_per_connection", f"{msg.actor_id!r} after {owner!r}")
            return False
        info = self.registry.get(msg.actor_id)
        if info is not None and info.key != key:
            self.stats.drop("identity_mismatch", f"hello for {msg.actor_id!r}")
            return False
        if info is not None and info.welcomed == (identity, version):
            # Weights go out once per version per connection: a repeated hello buys nothing.
            self.stats.drop("repeated_hello", msg.actor_id)
            return False
        return True

    def sender(
        self, identity: bytes, key: str, msg: Message, run_id: str
    ) -> tuple[ActorInfo | None, str | None]:
        """The registered sender of `msg`, else None and, where the sender should say hello
        again, why (a small reply: weights go out only to a hello)."""
        info = self.registry.get(msg.actor_id)
        if msg.run_id != run_id or info is None:
            self.stats.drop("wrong_run" if msg.run_id != run_id else "unknown_actor")
            return None, _unless_leaving(msg, "unknown actor or earlier run: say hello")
        if info.key != key or info.identity != identity:
            # Another connection speaking for this actor: a forger, or a connection the
            # actor has since replaced (its hello moved it). Neither may act for it.
            self.stats.drop("identity_mismatch", f"{msg.TYPE} for {msg.actor_id!r}")
            reason = "this connection is not the actor's"
            return None, _unless_leaving(msg, reason) if info.key == key else None
        self.registry.touch(info, identity)
        return info, None


def _unless_leaving(msg: Message, reason: str) -> str | None:
    """An actor that says it leaves is not asked back."""
    return None if isinstance(msg, Stop) else reason


def _older(peer_version) -> str:
    """Which side to upgrade when an actor speaks `peer_version`."""
    older = isinstance(peer_version, int) and peer_version < PROTOCOL_VERSION
    return "actor" if older else "learner"


def _plain(text: str) -> bool:
    return text.isascii() and text.isprintable()
