"""When a run ends, and how its actors learn that it did."""

from __future__ import annotations

import logging
import signal
import time

import zmq

from learner.registry import ActorRegistry
from learner.startup import RunParts
from protocol import CodecError, Stop, decode
from protocol.sockets import recv_routed, try_send

SOLVED_WINDOW = 100
"""Episodes mean_return_100 must span before the target counts as reached."""


class StopRule:
    def __init__(self, run: RunParts):
        self.cfg, self.target, self.stats = run.cfg, run.target, run.stats
        self.interrupted: str | None = None
        """The signal that asked the run to end, by name."""

    def listen(self) -> None:
        """SIGTERM and SIGINT end the run at the loop's next check, which saves it."""

        def handler(signum, _frame):
            self.interrupted = signal.Signals(signum).name

        try:
            signal.signal(signal.SIGTERM, handler)
            signal.signal(signal.SIGINT, handler)
        except ValueError:  # not the main thread (embedded use); the caller handles signals
            pass

    def reason(self) -> str | None:
        """Why the run ends now; None while it goes on."""
        s, cfg = self.stats, self.cfg
        if self.interrupted:
            return f"interrupted ({self.interrupted})"
        if self.solved():
            return "target_reached"
        if cfg.max_env_steps is not None and s.env_steps >= cfg.max_env_steps:
            return "max_env_steps"
        if cfg.max_seconds is not None and s.wall_seconds >= cfg.max_seconds:
            return "max_seconds"
        return None

    def solved(self) -> bool:
        """mean_return_100 at the target, over a full window of 100 episodes."""
        s = self.stats
        return bool(
            self.target is not None
            and len(s.recent_returns) == SOLVED_WINDOW
            and s.mean_return_100 >= self.target
        )


log = logging.getLogger(__name__)

STRAGGLERS = 0.25
"""Seconds a stopping learner still answers after the last actor it knows has left (hellos
in flight then get a stop rather than silence)."""


def tell_actors_to_stop(
    sock: zmq.Socket,
    registry: ActorRegistry,
    run_id: str,
    reason: str,
    grace: float,
    max_inflated: int,
) -> None:
    """Every known actor is told; for `grace` seconds after, whoever sends anything gets a
    stop as its answer (actors mid-send, and those the first stop did not reach). Actors
    answer a stop with one of their own as they leave: once every connected actor has,
    nobody is left to tell and the learner exits after a short wait (for hellos in flight)
    instead of the whole grace."""
    for info in registry.actors.values():
        try_send(sock, Stop(run_id, info.actor_id, reason), info.identity)
    leaving = {info.actor_id for info in registry.actors.values() if not info.gone}
    deadline = time.monotonic() + grace
    last_left = time.monotonic()
    while time.monotonic() < (deadline if leaving else min(deadline, last_left + STRAGGLERS)):
        if not sock.poll(50):
            continue
        identity, parts, extra = recv_routed(sock)
        try:
            msg = decode(parts if not extra else [], max_inflated)
        except CodecError:
            continue
        if isinstance(msg, Stop):  # an actor leaving: it needs no answer
            info = registry.actors.get(msg.actor_id)
            if info is not None and info.identity == identity:  # only itself
                leaving.discard(msg.actor_id)
                last_left = time.monotonic()
                if not leaving:
                    log.debug("every connected actor has left; the grace ends early")
            continue
        try_send(sock, Stop(run_id, getattr(msg, "actor_id", ""), reason), identity)
