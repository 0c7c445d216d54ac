"""ZeroMQ CURVE keys and authorization (ZAP): who may talk to the learner.

Key layout written by `a3c keygen DIR --actors N`:

    DIR/learner/learner.key, learner.key_secret   the learner's pair
    DIR/learner/authorized/actor-I.key             public keys the learner accepts
    DIR/actor-I/actor.key, actor.key_secret        actor I's pair
    DIR/actor-I/learner.key                        the learner's public key

`a3c learner --keys-dir DIR/learner` and `a3c actor --keys-dir DIR/actor-I`. To authorize
another actor later, copy its `actor.key` into the learner's `authorized/` folder.
"""

from __future__ import annotations

import logging
import os
import shutil
import threading
import time
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

import zmq
import zmq.auth
from zmq.auth.thread import ThreadAuthenticator

log = logging.getLogger(__name__)


class KeysError(ValueError):
    """Keys missing or unreadable; the message names the file."""


@dataclass(frozen=True)
class ServerKeys:
    public: bytes
    secret: bytes
    authorized_dir: Path


@dataclass(frozen=True)
class ClientKeys:
    public: bytes
    secret: bytes
    server_public: bytes


def keygen(root: str | Path, actors: int) -> list[Path]:
    """Write a learner key pair and `actors` actor key pairs under `root`."""
    root = Path(root)
    learner_dir = root / "learner"
    authorized = learner_dir / "authorized"
    authorized.mkdir(parents=True, exist_ok=True)
    learner_pub, _ = zmq.auth.create_certificates(learner_dir, "learner")
    written = [learner_dir]
    for i in range(1, actors + 1):
        actor_dir = root / f"actor-{i}"
        actor_dir.mkdir(parents=True, exist_ok=True)
        pub, _ = zmq.auth.create_certificates(actor_dir, "actor")
        shutil.copy(learner_pub, actor_dir / "learner.key")
        shutil.copy(pub, authorized / f"actor-{i}.key")
        written.append(actor_dir)
    for secret in root.rglob("*.key_secret"):
        os.chmod(secret, 0o600)
    return written


def _load_pair(path: Path) -> tuple[bytes, bytes]:
    try:
        public, secret = zmq.auth.load_certificate(path)
    except (OSError, ValueError) as exc:
        raise KeysError(f"cannot read key pair {path}: {exc}") from None
    if secret is None:
        raise KeysError(f"{path} holds no secret key")
    return public, secret


def load_server_keys(keys_dir: str | Path, authorized_dir: str | Path | None = None) -> ServerKeys:
    keys_dir = Path(keys_dir)
    public, secret = _load_pair(keys_dir / "learner.key_secret")
    authorized = Path(authorized_dir) if authorized_dir else keys_dir / "authorized"
    if not authorized.is_dir():
        raise KeysError(f"{authorized} is missing: it holds the actors' public keys")
    return ServerKeys(public, secret, authorized)


def load_client_keys(keys_dir: str | Path) -> ClientKeys:
    keys_dir = Path(keys_dir)
    public, secret = _load_pair(keys_dir / "actor.key_secret")
    try:
        server_public, _ = zmq.auth.load_certificate(keys_dir / "learner.key")
    except (OSError, ValueError) as exc:
        raise KeysError(f"cannot read {keys_dir / 'learner.key'}: {exc}") from None
    return ClientKeys(public, secret, server_public)


class _AuthorizedKeys:
    """ZAP credentials provider: the keys in the authorized folder, re-read when it changes."""

    def __init__(self, folder: Path):
        self.folder = folder
        self.refused: Counter[str] = Counter()
        self._lock = threading.Lock()
        self._keys: set[bytes] = set()
        self._stamp = None
        self._last_log = -1e9

    def _reload(self) -> None:
        stamp = self.folder.stat().st_mtime_ns
        if stamp != self._stamp:
            keys = set()
            for path in self.folder.glob("*.key"):
                try:
                    keys.add(zmq.auth.load_certificate(path)[0])
                except (OSError, ValueError):
                    log.warning("ignoring unreadable key file %s", path)
            self._keys, self._stamp = keys, stamp

    def callback(self, domain: str, key: bytes) -> bool:
        with self._lock:
            self._reload()
            if key in self._keys:
                return True
            self.refused["unauthorized_key"] += 1
            count = self.refused["unauthorized_key"]
            quiet = time.monotonic() - self._last_log < 10
            if not quiet:
                self._last_log = time.monotonic()
        if not quiet:
            log.warning(
                "refused a connection: actor key %s... is not authorized [%d so far]",
                key.decode()[:12],
                count,
            )
        return False


class Guard:
    """The learner's CURVE server set-up plus the ZAP authenticator thread."""

    def __init__(self, ctx: zmq.Context, keys: ServerKeys):
        self.keys = keys
        self.provider = _AuthorizedKeys(keys.authorized_dir)
        self.auth = ThreadAuthenticator(ctx)
        self.auth.start()
        self.auth.configure_curve_callback(domain="*", credentials_provider=self.provider)

    def apply(self, sock: zmq.Socket) -> None:
        sock.curve_secretkey = self.keys.secret
        sock.curve_publickey = self.keys.public
        sock.curve_server = True

    def stop(self) -> None:
        self.auth.stop()


def apply_client_keys(sock: zmq.Socket, keys: ClientKeys) -> None:
    sock.curve_secretkey = keys.secret
    sock.curve_publickey = keys.public
    sock.curve_serverkey = keys.server_public
