"""ZeroMQ CURVE keys and authorization (ZAP): who may talk to the learner.

Key layout written by `a3c keygen DIR --actors N`:

    DIR/learner/learner.key, learner.key_secret   the learner's pair
    DIR/learner/authorized/actor-I.key             public keys the learner accepts
    DIR/actor-I/actor.key, actor.key_secret        actor I's pair
    DIR/actor-I/learner.key                        the learner's public key

`a3c learner --keys-dir DIR/learner` and `a3c actor --keys-dir DIR/actor-I`. To authorize
another actor later, copy its `actor.key` into the learner's `authorized/` folder; to revoke
one, remove its key from there. Secret files are created mode 0600 and public ones 0644.
"""

from __future__ import annotations

import contextlib
import logging
import os
import secrets
import stat
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


_PUBLIC_BANNER = """#   ZeroMQ CURVE Public Certificate (a3c keygen)
#   Share it freely: it names its holder and proves nothing by itself.

"""

_SECRET_BANNER = """#   ZeroMQ CURVE **Secret** Certificate (a3c keygen)
#   Whoever holds this file can act as its owner: keep it private, mode 0600.

"""


def _certificate(public: bytes, secret: bytes | None = None) -> bytes:
    """The text format zmq.auth.load_certificate reads (that of zmq.auth.create_certificates)."""
    lines = [
        _SECRET_BANNER if secret else _PUBLIC_BANNER,
        "metadata\n",
        "curve\n",
        f'    public-key = "{public.decode("ascii")}"\n',
    ]
    if secret:
        lines.append(f'    secret-key = "{secret.decode("ascii")}"\n')
    return "".join(lines).encode("ascii")


def _key_plan(root: Path, actors: int) -> dict[Path, tuple[bytes, int]]:
    """Every file keygen writes: its content and mode. Fresh pairs each call."""
    learner_dir = root / "learner"
    authorized = learner_dir / "authorized"
    learner_pub, learner_sec = zmq.curve_keypair()
    plan = {
        learner_dir / "learner.key": (_certificate(learner_pub), 0o644),
        learner_dir / "learner.key_secret": (_certificate(learner_pub, learner_sec), 0o600),
    }
    for i in range(1, actors + 1):
        actor_dir = root / f"actor-{i}"
        pub, sec = zmq.curve_keypair()
        plan[actor_dir / "actor.key"] = (_certificate(pub), 0o644)
        plan[actor_dir / "actor.key_secret"] = (_certificate(pub, sec), 0o600)
        plan[actor_dir / "learner.key"] = (_certificate(learner_pub), 0o644)
        plan[authorized / f"actor-{i}.key"] = (_certificate(pub), 0o644)
    return plan


def _write_key_file(path: Path, data: bytes, mode: int, replace: bool) -> None:
    """Create `path` with `mode` from its first byte: a secret is never readable by others,
    not even between creation and a chmod. With `replace`, a hidden temporary file is
    renamed over the old one, so a reader sees the old key or the new one, never half."""
    target = path
    if replace:
        path = path.with_name(f".{path.name}.{os.getpid()}.{secrets.token_hex(4)}.tmp")
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_NOFOLLOW", 0)
    fd = os.open(path, flags, mode)
    try:
        with os.fdopen(fd, "wb") as f:
            # the umask may have removed bits the public files need (a secret's mode only shrinks)
            os.fchmod(f.fileno(), mode)
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        if replace:
            os.replace(path, target)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(path)
        raise


def _make_folder(path: Path) -> None:
    """0755 whatever the umask: a group- or world-writable folder would let others swap a
    key, or add one to `authorized/`. Folders that exist (a mounted volume) stay as they are."""
    if path.is_dir():
        return
    path.parent.mkdir(parents=True, exist_ok=True)
    os.mkdir(path, 0o755)
    os.chmod(path, 0o755)


def _public_key(path: Path) -> bytes | None:
    try:
        return zmq.auth.load_certificate(path)[0]
    except (OSError, ValueError):
        return None


def _check_consistent(root: Path, actors: int) -> None:
    """Kept keys must still fit together: the learner key each actor holds is the learner's,
    and each actor's key is the one the learner authorizes."""
    learner_pub = _public_key(root / "learner" / "learner.key")
    authorized = root / "learner" / "authorized"
    for i in range(1, actors + 1):
        actor_dir = root / f"actor-{i}"
        pairs = [
            (actor_dir / "learner.key", learner_pub),
            (authorized / f"actor-{i}.key", _public_key(actor_dir / "actor.key")),
        ]
        for path, expected in pairs:
            if expected is None or _public_key(path) != expected:
                raise KeysError(
                    f"{path} does not match the other keys in {root}; --force makes new ones"
                )


def keygen(
    root: str | Path, actors: int, *, force: bool = False, keep_existing: bool = False
) -> list[Path]:
    """Write a learner key pair and `actors` actor key pairs under `root`; return the folders
    written (none when `keep_existing` found them all). Existing keys are an error unless
    `force` (replace them) or `keep_existing` (leave them, when complete)."""
    if force and keep_existing:
        raise KeysError("--force and --keep-existing exclude each other")
    root = Path(root)
    plan = _key_plan(root, actors)
    existing = [p for p in plan if os.path.lexists(p)]
    if existing and keep_existing:
        missing = [p for p in plan if not os.path.lexists(p)]
        if missing:
            raise KeysError(
                f"{missing[0]} is missing but {existing[0]} exists: the keys in {root} are "
                "incomplete; --force makes new ones"
            )
        _check_consistent(root, actors)
        return []
    if existing and not force:
        raise KeysError(
            f"{existing[0]} exists: --force replaces the keys, --keep-existing leaves them"
        )
    folders = sorted({root} | {p.parent for p in plan}, key=lambda p: len(p.parts))
    for path in (*folders, *plan):
        try:
            if path in plan:
                data, mode = plan[path]
                _write_key_file(path, data, mode, replace=force)
            else:
                _make_folder(path)
        except FileExistsError:
            raise KeysError(f"{path} appeared while writing: --force replaces the keys") from None
        except OSError as exc:
            raise KeysError(f"cannot write {path}: {exc.strerror or exc}") from None
    return [root / "learner"] + [root / f"actor-{i}" for i in range(1, actors + 1)]


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
    """ZAP credentials provider: the public keys in the authorized folder.

    `refresh()` re-reads the folder when anything in it changed and never raises; the ZAP
    callback only looks the key up, so a folder that is briefly missing or being rewritten
    can never stop the authenticator thread (an exception there ends it for good)."""

    def __init__(self, folder: Path):
        self.folder = folder
        self.refused: Counter[str] = Counter()
        self._lock = threading.Lock()
        self._refresh_lock = threading.Lock()
        self._keys: frozenset[bytes] = frozenset()
        self._signature: tuple | None = None
        self._outage = False
        self._last_log = -1e9

    def _current_signature(self) -> tuple:
        """What identifies the folder's content without reading it: the folder itself, and
        (name, size, mtime_ns, inode) of each key file. A file rewritten in place changes its
        size or mtime; one renamed over another (a Kubernetes Secret update, `mv`) its inode."""
        folder = self.folder.stat()
        files = []
        with os.scandir(self.folder) as entries:
            for entry in entries:
                if not entry.name.endswith(".key"):
                    continue
                try:
                    st = entry.stat()  # follows symlinks, as Secret volumes use them
                except OSError:
                    files.append((entry.name, -1, -1, -1))
                    continue
                if stat.S_ISREG(st.st_mode):
                    files.append((entry.name, st.st_size, st.st_mtime_ns, st.st_ino))
        return (folder.st_ino, folder.st_mtime_ns, tuple(sorted(files)))

    def _read_keys(self, names: list[str]) -> frozenset[bytes]:
        keys = set()
        for name in names:
            path = self.folder / name
            try:
                public = zmq.auth.load_certificate(path)[0]
            except (OSError, ValueError):
                public = b""
            if len(public) != 40:  # z85 of 32 bytes; anything else is no key at all
                log.warning("ignoring unreadable key file %s", path)
                continue
            keys.add(public)
        return frozenset(keys)

    def refresh(self) -> bool:
        """Re-read the keys if the folder changed; True when the set of keys changed. A
        missing or unreadable folder keeps the last good set (one warning per outage)."""
        with self._refresh_lock:
            try:
                # the signature is taken before reading, so a change made while reading
                # shows up as a new signature next time
                signature = self._current_signature()
                if self._outage:
                    self._outage = False
                    log.warning("the authorized keys in %s are readable again", self.folder)
                if signature == self._signature:
                    return False
                keys = self._read_keys([name for name, *_ in signature[2]])
            except Exception as exc:  # whatever the folder does, keep serving the last good set
                if not self._outage:
                    self._outage = True
                    log.warning(
                        "cannot read the authorized keys in %s (%s); keeping the last %d keys "
                        "until it is back",
                        self.folder,
                        exc,
                        len(self._keys),
                    )
                return False
            self._signature = signature
            with self._lock:
                changed = keys != self._keys
                before, self._keys = len(self._keys), keys
            if changed:
                log.info("authorized keys in %s: %d (were %d)", self.folder, len(keys), before)
            return changed

    def is_authorized(self, key: bytes) -> bool:
        with self._lock:
            return key in self._keys

    def callback(self, domain: str, key: bytes) -> bool:
        try:
            with self._lock:
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
                    key.decode("ascii", "replace")[:12],
                    count,
                )
        except Exception:  # an exception here would end the authenticator thread
            pass
        return False


class Guard:
    """The learner's CURVE server set-up plus the ZAP authenticator thread.

    The authenticator decides once, when a peer connects. To make a key removed from the
    authorized folder take effect on connections already open, the learner calls `refresh()`
    now and then and drops messages whose "User-Id" property fails `is_authorized`."""

    def __init__(self, ctx: zmq.Context, keys: ServerKeys):
        self.keys = keys
        self.provider = _AuthorizedKeys(keys.authorized_dir)
        self.refresh()
        self.auth = ThreadAuthenticator(ctx)
        self.auth.start()
        self.auth.configure_curve_callback(domain="*", credentials_provider=self.provider)

    def refresh(self) -> bool:
        """Re-read the authorized folder if it changed (cheap: a few stat calls); never raises."""
        return self.provider.refresh()

    def is_authorized(self, user_id: str) -> bool:
        """Whether a peer whose message carries this "User-Id" is authorized now. For CURVE
        peers admitted by pyzmq's authenticator it is the z85 text of their public key."""
        if not isinstance(user_id, str):
            return False
        try:
            key = user_id.encode("ascii")
        except UnicodeEncodeError:
            return False
        return self.provider.is_authorized(key)

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
