"""A TCP relay that holds every chunk it forwards for a fixed one-way delay, each way: the
delay half of an emulated link (this kernel has no netem qdisc). Also a plain echo server,
for measuring a link. Used by tests/support/netlink.py:

    python -m tests.support.relay --listen 127.0.0.1:6555 --to 10.77.0.1:5555 --delay-ms 20
    python -m tests.support.relay --echo --listen 10.77.0.1:5555

Each direction of a connection is a reader thread and a writer thread with a bounded queue
between them (at most QUEUE_CHUNKS chunks held), so the relay adds delay, not a buffer.
"""

from __future__ import annotations

import queue
import socket
import threading
import time

import click

CHUNK = 1 << 16
QUEUE_CHUNKS = 64


def _address(text: str) -> tuple[str, int]:
    host, port = text.rsplit(":", 1)
    return host, int(port)


def _pump(src: socket.socket, dst: socket.socket, delay: float) -> None:
    held: queue.Queue = queue.Queue(QUEUE_CHUNKS)

    def read() -> None:
        try:
            while data := src.recv(CHUNK):
                held.put((time.monotonic() + delay, data))
        except OSError:
            pass
        held.put((0.0, b""))

    def write() -> None:
        try:
            while True:
                due, data = held.get()
                if not data:
                    break
                wait = due - time.monotonic()
                if wait > 0:
                    time.sleep(wait)
                dst.sendall(data)
            dst.shutdown(socket.SHUT_WR)
        except OSError:
            pass

    for fn in (read, write):
        threading.Thread(target=fn, daemon=True).start()


def _echo(conn: socket.socket) -> None:
    with conn:
        while data := conn.recv(CHUNK):
            conn.sendall(data)


def _listener(listen: str) -> socket.socket:
    server = socket.socket()
    server.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    server.bind(_address(listen))
    server.listen(64)
    return server


@click.command()
@click.option("--listen", required=True, help="host:port to accept on.")
@click.option("--to", "target", default=None, help="host:port to forward to.")
@click.option("--delay-ms", type=float, default=0.0, help="One-way delay, each direction.")
@click.option("--echo", is_flag=True, help="Echo what arrives instead of forwarding.")
def main(listen: str, target: str | None, delay_ms: float, echo: bool) -> None:
    server = _listener(listen)
    while True:
        conn, _ = server.accept()
        conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        if echo:
            threading.Thread(target=_echo, args=(conn,), daemon=True).start()
            continue
        try:
            upstream = socket.create_connection(_address(target))
        except OSError:
            conn.close()
            continue
        upstream.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        _pump(conn, upstream, delay_ms / 1000)
        _pump(upstream, conn, delay_ms / 1000)


if __name__ == "__main__":
    main()
