"""ZeroMQ socket set-up, connection events and non-blocking sends shared by both sides."""

from __future__ import annotations

import logging
import time
from collections import Counter

import zmq
from zmq.utils.monitor import recv_monitor_message

from protocol.codec import encode
from protocol.messages import Message
from protocol.security import ClientKeys, Guard, apply_client_keys
from protocol.wire import PLAIN, WireFormat

log = logging.getLogger(__name__)

# libzmq drops a connection that sends a larger message, before anything is buffered.
MAX_MESSAGE_BYTES = 64 * 1024 * 1024
HWM = 1000


def _common(sock: zmq.Socket, max_message_bytes: int) -> None:
    sock.setsockopt(zmq.LINGER, 0)
    sock.setsockopt(zmq.MAXMSGSIZE, max_message_bytes)
    sock.setsockopt(zmq.SNDHWM, HWM)
    sock.setsockopt(zmq.RCVHWM, HWM)
    # Transport heartbeats catch dead TCP peers; application heartbeats catch idle ones.
    sock.setsockopt(zmq.HEARTBEAT_IVL, 2000)
    sock.setsockopt(zmq.HEARTBEAT_TIMEOUT, 10000)
    sock.setsockopt(zmq.HEARTBEAT_TTL, 10000)


def bind_router(
    ctx: zmq.Context,
    address: str,
    guard: Guard | None = None,
    max_message_bytes: int = MAX_MESSAGE_BYTES,
) -> tuple[zmq.Socket, str]:
    """The learner's one socket. Returns it and the endpoint actually bound."""
    sock = ctx.socket(zmq.ROUTER)
    _common(sock, max_message_bytes)
    # Raise instead of silently dropping replies to peers that have gone.
    sock.setsockopt(zmq.ROUTER_MANDATORY, 1)
    if guard is not None:
        guard.apply(sock)
    try:
        sock.bind(address)
    except zmq.ZMQError:
        sock.close(linger=0)  # else terminating the context would wait for it forever
        raise
    return sock, sock.getsockopt_string(zmq.LAST_ENDPOINT)


def connect_dealer(ctx: zmq.Context, address: str, keys: ClientKeys | None = None) -> zmq.Socket:
    """An actor's socket to the learner."""
    sock = ctx.socket(zmq.DEALER)
    _common(sock, MAX_MESSAGE_BYTES)
    sock.setsockopt(zmq.RECONNECT_IVL, 200)
    sock.setsockopt(zmq.RECONNECT_IVL_MAX, 5000)
    if keys is not None:
        apply_client_keys(sock, keys)
    sock.connect(address)
    return sock


def try_send(
    sock: zmq.Socket, msg: Message, identity: bytes | None = None, wire: WireFormat = PLAIN
) -> int:
    """Send without blocking. Returns the bytes sent: 0 when the peer is gone or its queue
    is full."""
    frames = encode(msg, wire)
    size = sum(len(f) if isinstance(f, bytes) else memoryview(f).nbytes for f in frames)
    if identity is not None:
        frames.insert(0, identity)
    try:
        sock.send_multipart(frames, flags=zmq.NOBLOCK, copy=False)
    except zmq.Again:
        return 0
    except zmq.ZMQError as exc:
        if exc.errno == zmq.EHOSTUNREACH:
            return 0
        raise
    return size


CONNECTION_EVENTS = {
    zmq.EVENT_ACCEPTED: "accepted",
    zmq.EVENT_DISCONNECTED: "disconnected",
    zmq.EVENT_HANDSHAKE_FAILED_AUTH: "handshake_refused",
    zmq.EVENT_HANDSHAKE_FAILED_PROTOCOL: "handshake_failed",
    zmq.EVENT_HANDSHAKE_FAILED_NO_DETAIL: "handshake_failed",
}


class ConnectionEvents:
    """Counts what libzmq saw of connections: accepted, disconnected (including peers cut
    off for oversized messages), handshakes refused or failed (no or wrong keys)."""

    def __init__(self, sock: zmq.Socket):
        events = 0
        for event in CONNECTION_EVENTS:
            events |= event
        self.monitor = sock.get_monitor_socket(events)
        self.counts: Counter[str] = Counter()
        self._last_log = -1e9

    def poll(self) -> None:
        while self.monitor.poll(0):
            try:
                event = recv_monitor_message(self.monitor, zmq.NOBLOCK)
            except zmq.Again:
                return
            name = CONNECTION_EVENTS.get(event["event"])
            if name is None:
                continue
            self.counts[name] += 1
            if name.startswith("handshake") and time.monotonic() - self._last_log > 10:
                self._last_log = time.monotonic()
                log.warning(
                    "refused a connection: %s (a peer with no keys or the wrong learner key) "
                    "[%d so far]",
                    name.replace("_", " "),
                    self.counts[name],
                )

    def close(self) -> None:
        self.monitor.close(linger=0)
