"""ZeroMQ socket set-up and non-blocking send helpers shared by learner and actors."""

from __future__ import annotations

import logging

import zmq

from protocol.codec import encode
from protocol.messages import Message

log = logging.getLogger(__name__)

# Oversized messages make libzmq drop the connection before anything is buffered.
MAX_MESSAGE_BYTES = 64 * 1024 * 1024
HWM = 1000


def _common(sock: zmq.Socket) -> None:
    sock.setsockopt(zmq.LINGER, 0)
    sock.setsockopt(zmq.MAXMSGSIZE, MAX_MESSAGE_BYTES)
    sock.setsockopt(zmq.SNDHWM, HWM)
    sock.setsockopt(zmq.RCVHWM, HWM)
    # Transport heartbeats catch dead TCP peers; application heartbeats catch idle ones.
    sock.setsockopt(zmq.HEARTBEAT_IVL, 2000)
    sock.setsockopt(zmq.HEARTBEAT_TIMEOUT, 10000)
    sock.setsockopt(zmq.HEARTBEAT_TTL, 10000)


def bind_router(ctx: zmq.Context, address: str) -> tuple[zmq.Socket, str]:
    """The learner's one socket. Returns it and the endpoint actually bound."""
    sock = ctx.socket(zmq.ROUTER)
    _common(sock)
    # Raise instead of silently dropping replies to peers that have gone.
    sock.setsockopt(zmq.ROUTER_MANDATORY, 1)
    try:
        sock.bind(address)
    except zmq.ZMQError:
        sock.close(linger=0)  # else terminating the context would wait for it forever
        raise
    return sock, sock.getsockopt_string(zmq.LAST_ENDPOINT)


def connect_dealer(ctx: zmq.Context, address: str) -> zmq.Socket:
    """An actor's socket to the learner."""
    sock = ctx.socket(zmq.DEALER)
    _common(sock)
    sock.setsockopt(zmq.RECONNECT_IVL, 200)
    sock.setsockopt(zmq.RECONNECT_IVL_MAX, 5000)
    sock.connect(address)
    return sock


def try_send(sock: zmq.Socket, msg: Message, identity: bytes | None = None) -> int:
    """Send without blocking. Returns the bytes sent: 0 when the peer is gone or its queue
    is full."""
    frames = encode(msg)
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
    return sum(len(f) if isinstance(f, bytes) else memoryview(f).nbytes for f in frames)
