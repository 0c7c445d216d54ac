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

# libzmq drops a connection that sends a larger frame, before it is buffered. A message is
# one frame (protocol.codec), so this bounds every well-formed message; a multi-frame one
# is assembled by libzmq before anyone sees it (keys keep strangers from sending one).
MAX_MESSAGE_BYTES = 64 * 1024 * 1024
HWM = 1000
ROUTER_HWM = 64
"""Messages the learner queues per peer each way: more than an actor's credit (16) plus its
heartbeats and episode reports, and what bounds the memory a peer that never reads (or
floods) can make the learner hold: ROUTER_HWM times the message size limit."""


def _common(sock: zmq.Socket, max_message_bytes: int, hwm: int = HWM) -> None:
    sock.setsockopt(zmq.LINGER, 0)
    sock.setsockopt(zmq.MAXMSGSIZE, max_message_bytes)
    sock.setsockopt(zmq.SNDHWM, hwm)
    sock.setsockopt(zmq.RCVHWM, hwm)
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
    _common(sock, max_message_bytes, ROUTER_HWM)
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


QUEUE_FULL = 0
UNREACHABLE = -1


def try_send(
    sock: zmq.Socket, msg: Message, identity: bytes | None = None, wire: WireFormat = PLAIN
) -> int:
    """Send without blocking. Returns the bytes sent, QUEUE_FULL (0) when the peer's queue
    is full, or UNREACHABLE (-1) when no peer has that identity any more."""
    return send_frames(sock, encode(msg, wire), identity)


def send_frames(sock: zmq.Socket, frames: list, identity: bytes | None = None) -> int:
    """try_send for frames already encoded."""
    size = sum(len(f) if isinstance(f, bytes) else memoryview(f).nbytes for f in frames)
    if identity is not None:
        frames = [identity, *frames]
    try:
        sock.send_multipart(frames, flags=zmq.NOBLOCK, copy=False)
    except zmq.Again:
        return QUEUE_FULL
    except zmq.ZMQError as exc:
        if exc.errno == zmq.EHOSTUNREACH:
            return UNREACHABLE
        raise
    return size


def recv_routed(
    sock: zmq.Socket, flags: int = 0, keep: int = 1
) -> tuple[bytes, list[zmq.Frame], int]:
    """One message from a ROUTER: the sender's identity, up to `keep` of its frames and how
    many frames past those it sent, each released as soon as it is read, so a peer's extra
    frames never pile up here (a relay's bundle is the one message of several frames)."""
    identity = sock.recv(flags, copy=False)
    parts, extra = [], 0
    while sock.getsockopt(zmq.RCVMORE):
        part = sock.recv(copy=False)
        if len(parts) < keep:
            parts.append(part)
        else:
            extra += 1
    return identity.bytes, parts, extra


def user_id(frame: zmq.Frame) -> str | None:
    """The authenticated key of a frame's sender (CURVE with ZAP: its z85 public key)."""
    try:
        return frame.get("User-Id")
    except (zmq.ZMQError, KeyError, UnicodeDecodeError):
        return None


CONNECTION_EVENTS = {
    zmq.EVENT_ACCEPTED: "accepted",
    zmq.EVENT_DISCONNECTED: "disconnected",
    zmq.EVENT_HANDSHAKE_FAILED_AUTH: "handshake_refused",
    zmq.EVENT_HANDSHAKE_FAILED_PROTOCOL: "handshake_failed",
    # A connection lost mid-handshake (a peer that closed its socket early), not a refusal.
    zmq.EVENT_HANDSHAKE_FAILED_NO_DETAIL: "handshake_dropped",
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
            refused = name in ("handshake_refused", "handshake_failed")
            if refused and time.monotonic() - self._last_log > 10:
                self._last_log = time.monotonic()
                log.warning(
                    "refused a connection: %s (a peer with no keys or the wrong learner key) "
                    "[%d so far]",
                    name.replace("_", " "),
                    self.counts[name],
                )

    def close(self) -> None:
        self.monitor.close(linger=0)


def is_loopback(address: str) -> bool:
    """Whether only this host can reach `address`."""
    host = address.split("://", 1)[-1].rsplit(":", 1)[0].strip("[]")
    return (
        address.startswith(("ipc://", "inproc://"))
        or host in ("localhost", "::1")
        or (host.startswith("127."))
    )
