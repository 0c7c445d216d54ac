"""What the learner holds open once it is bound, opened together and closed together: the
ZeroMQ context and socket, the CURVE guard, connection events and the metrics endpoint."""

from __future__ import annotations

import logging
from dataclasses import dataclass

import zmq

from learner.config import LearnerConfig
from learner.errors import LearnerStartError
from learner.exporting import start_exporter
from learner.gate import load_guard
from learner.rundir import RunDir
from protocol.exporter import Exporter
from protocol.security import Guard
from protocol.sockets import ConnectionEvents, bind_router, is_loopback

log = logging.getLogger(__name__)


@dataclass
class Bound:
    ctx: zmq.Context
    sock: zmq.Socket
    endpoint: str
    guard: Guard | None
    connections: ConnectionEvents
    exporter: Exporter | None

    def close(self) -> None:
        if self.exporter is not None:
            self.exporter.close()
        self.connections.close()
        self.sock.close(linger=200)
        if self.guard is not None:
            self.guard.stop()
        self.ctx.term()


def bind(cfg: LearnerConfig, rundir: RunDir, max_message_bytes: int) -> Bound:
    """The learner's socket on cfg.bind; a LearnerStartError in one line when it cannot be,
    and then nothing is left open, the run directory's lock included."""
    ctx, guard, exporter = zmq.Context(), None, None
    try:
        exporter = start_exporter(cfg.metrics_port)
        guard = load_guard(ctx, cfg)
        sock, endpoint = bind_router(ctx, cfg.bind, guard, max_message_bytes)
    except (LearnerStartError, zmq.ZMQError) as exc:
        if exporter is not None:
            exporter.close()
        if guard is not None:
            guard.stop()
        ctx.term()
        rundir.unlock()
        if isinstance(exc, LearnerStartError):
            raise
        raise LearnerStartError(f"cannot bind {cfg.bind}: {exc}") from None
    if guard is None and not is_loopback(cfg.bind):
        log.warning("--insecure: anyone who reaches %s can join, unencrypted", cfg.bind)
    return Bound(ctx, sock, endpoint, guard, ConnectionEvents(sock), exporter)
