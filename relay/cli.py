"""Start a relay from the command line's values: keys loaded and checked before binding."""

from __future__ import annotations

import socket

import zmq

from protocol.exporter import ExporterError
from protocol.security import KeysError, load_client_keys, load_server_keys
from protocol.sockets import is_loopback
from relay.members import plain
from relay.service import Relay, RelayConfig


class RelayStartError(Exception):
    """A relay that cannot start, in one line."""


def start_relay(
    learner: str,
    bind: str,
    keys_dir: str | None,
    serve_keys_dir: str | None,
    authorized_dir: str | None,
    relay_id: str | None,
    after_stop: str,
    insecure: bool,
    metrics_port: int | None = None,
) -> int:
    addresses = [a.strip() for a in learner.split(",") if a.strip()]
    relay_id = relay_id or f"relay-{socket.gethostname()}"
    if not addresses:
        raise RelayStartError("--learner names no address")
    if not (relay_id and plain(relay_id)):
        raise RelayStartError(f"--relay-id {relay_id!r} must be printable ASCII")
    if serve_keys_dir is None and not insecure and not is_loopback(bind):
        raise RelayStartError(
            f"refusing to serve {bind} without --serve-keys-dir: anyone who reaches it could "
            "join, unencrypted (--insecure allows it on a network you trust)"
        )
    try:
        keys = load_client_keys(keys_dir) if keys_dir else None
        served = load_server_keys(serve_keys_dir, authorized_dir) if serve_keys_dir else None
    except KeysError as exc:
        raise RelayStartError(str(exc)) from None
    cfg = RelayConfig(addresses, bind, relay_id, keys, served, after_stop, metrics_port)
    try:
        relay = Relay(cfg)
    except ExporterError as exc:
        raise RelayStartError(str(exc)) from None
    except zmq.ZMQError as exc:
        raise RelayStartError(f"cannot bind {bind}: {exc}") from None
    return relay.run()
