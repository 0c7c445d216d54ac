"""`a3c keygen` file handling, and the learner's authorized-keys folder read while it changes
(renamed away and back, a key overwritten in place, a key removed), in process and fast."""

import logging
import os
import shutil
import stat
import time
from pathlib import Path

import pytest
import zmq
import zmq.auth
from click.testing import CliRunner

from a3c.cli import main as cli
from protocol.security import (
    Guard,
    _AuthorizedKeys,
    apply_client_keys,
    load_client_keys,
    load_server_keys,
)

LAYOUT = [
    "learner/learner.key",
    "learner/learner.key_secret",
    "learner/authorized/actor-1.key",
    "learner/authorized/actor-2.key",
    "actor-1/actor.key",
    "actor-1/actor.key_secret",
    "actor-1/learner.key",
    "actor-2/actor.key",
    "actor-2/actor.key_secret",
    "actor-2/learner.key",
]


def keygen(root: Path, *args: str):
    return CliRunner().invoke(cli, ["keygen", str(root), "--actors", "2", *args])


def contents(root: Path) -> dict[str, bytes]:
    return {name: (root / name).read_bytes() for name in LAYOUT}


def mode(path: Path) -> int:
    return stat.S_IMODE(os.stat(path).st_mode)


def test_secrets_are_private_from_their_first_byte_whatever_the_umask(tmp_path, monkeypatch):
    opened, chmodded = [], []
    real_open, real_chmod = os.open, os.chmod

    def watch_open(path, flags, mode=0o777, *args, **kwargs):
        fd = real_open(path, flags, mode, *args, **kwargs)
        opened.append((str(path), flags, mode, stat.S_IMODE(os.fstat(fd).st_mode)))
        return fd

    def watch_chmod(path, *args, **kwargs):
        chmodded.append(str(path))
        return real_chmod(path, *args, **kwargs)

    monkeypatch.setattr(os, "open", watch_open)
    monkeypatch.setattr(os, "chmod", watch_chmod)
    old_umask = os.umask(0)
    try:
        done = keygen(tmp_path / "keys")
    finally:
        os.umask(old_umask)
    assert done.exit_code == 0, done.output
    root = tmp_path / "keys"
    secrets = [(p, f, m, at_open) for p, f, m, at_open in opened if p.endswith(".key_secret")]
    assert len(secrets) == 3
    for path, flags, requested, at_open in secrets:
        assert flags & os.O_CREAT and flags & os.O_EXCL, path
        assert requested == 0o600 and at_open == 0o600, (path, oct(requested), oct(at_open))
    assert not [p for p in chmodded if p.endswith(".key_secret")]  # no window before a chmod
    for name in LAYOUT:
        expected = 0o600 if name.endswith("_secret") else 0o644
        assert mode(root / name) == expected, name
    for folder in ("learner", "learner/authorized", "actor-1", "actor-2"):
        assert mode(root / folder) == 0o755, folder  # nobody else can swap or add a key


def test_the_keys_fit_together_in_the_format_zmq_reads(tmp_path):
    assert keygen(tmp_path / "keys").exit_code == 0
    root = tmp_path / "keys"
    server = load_server_keys(root / "learner")
    for i in (1, 2):
        client = load_client_keys(root / f"actor-{i}")
        assert client.server_public == server.public
        authorized = zmq.auth.load_certificate(root / "learner" / "authorized" / f"actor-{i}.key")
        assert authorized == (client.public, None)
        assert zmq.auth.load_certificate(root / f"actor-{i}" / "actor.key")[1] is None
    assert len({load_client_keys(root / f"actor-{i}").secret for i in (1, 2)}) == 2


def test_existing_keys_are_refused_without_force_and_replaced_with_it(tmp_path):
    root = tmp_path / "keys"
    assert keygen(root).exit_code == 0
    before = contents(root)
    again = keygen(root)
    assert again.exit_code != 0
    error = again.output.strip()
    assert len(error.splitlines()) == 1 and "Traceback" not in error
    assert str(root / "learner" / "learner.key") in error and "--force" in error
    assert contents(root) == before
    forced = keygen(root, "--force")
    assert forced.exit_code == 0, forced.output
    after = contents(root)
    assert all(after[name] != before[name] for name in LAYOUT)
    assert (
        load_client_keys(root / "actor-1").server_public
        == load_server_keys(root / "learner").public
    )
    assert all(mode(root / n) == (0o600 if n.endswith("_secret") else 0o644) for n in LAYOUT)
    assert not [p for p in root.rglob("*") if p.name.startswith(".")]  # no temporary left


def test_keep_existing_makes_keys_once_then_leaves_them_byte_identical(tmp_path):
    root = tmp_path / "keys"
    first = keygen(root, "--keep-existing")
    assert first.exit_code == 0 and (root / "learner" / "learner.key_secret").exists()
    before = contents(root)
    again = keygen(root, "--keep-existing")
    assert again.exit_code == 0, again.output
    assert "left as they are" in again.output
    assert contents(root) == before


def test_keep_existing_refuses_incomplete_or_mismatched_keys(tmp_path):
    root = tmp_path / "keys"
    assert keygen(root).exit_code == 0
    (root / "actor-2" / "learner.key").unlink()
    done = keygen(root, "--keep-existing")
    assert done.exit_code != 0 and "actor-2/learner.key is missing" in done.output
    shutil.copy(root / "actor-1" / "actor.key", root / "actor-2" / "learner.key")
    done = keygen(root, "--keep-existing")
    assert done.exit_code != 0 and "does not match" in done.output
    assert keygen(root, "--force", "--keep-existing").exit_code != 0


# ---- the authorized folder -----------------------------------------------------------------


@pytest.fixture
def keys(tmp_path) -> Path:
    assert keygen(tmp_path / "keys").exit_code == 0
    return tmp_path / "keys"


@pytest.fixture
def guard(keys):
    ctx = zmq.Context()
    g = Guard(ctx, load_server_keys(keys / "learner"))
    yield g
    g.stop()
    ctx.term()


def user_id(keys: Path, actor: int) -> str:
    return load_client_keys(keys / f"actor-{actor}").public.decode()


def test_the_first_connection_is_checked_against_the_folder(keys, guard):
    # no refresh() call: the constructor read the folder
    assert guard.is_authorized(user_id(keys, 1)) and guard.is_authorized(user_id(keys, 2))
    assert not guard.is_authorized("x" * 40) and not guard.is_authorized("")


def test_a_folder_renamed_away_keeps_the_last_keys_and_warns_once(keys, guard, caplog):
    folder = keys / "learner" / "authorized"
    os.rename(folder, keys / "away")
    with caplog.at_level(logging.WARNING, logger="protocol.security"):
        for _ in range(3):
            assert guard.refresh() is False
        # the ZAP callback never touches the folder: known keys still get in
        assert guard.provider.callback("*", user_id(keys, 1).encode()) is True
        assert guard.provider.callback("*", b"y" * 40) is False
    warnings = [r for r in caplog.records if "cannot read the authorized keys" in r.message]
    assert len(warnings) == 1
    assert guard.is_authorized(user_id(keys, 1))
    # back with one key fewer: noticed on the next refresh
    (keys / "away" / "actor-2.key").unlink()
    os.rename(keys / "away", folder)
    assert guard.refresh() is True
    assert guard.is_authorized(user_id(keys, 1)) and not guard.is_authorized(user_id(keys, 2))


def test_a_key_overwritten_in_place_is_noticed(keys, guard, tmp_path):
    target = keys / "learner" / "authorized" / "actor-1.key"
    assert keygen(tmp_path / "other").exit_code == 0
    other = tmp_path / "other" / "actor-1" / "actor.key"
    inode = os.stat(target).st_ino
    time.sleep(0.05)  # a later write, as any real edit is
    with open(target, "r+b") as f:  # same file, same name, same size
        f.write(other.read_bytes())
        f.truncate()
    assert os.stat(target).st_ino == inode
    assert guard.refresh() is True
    assert not guard.is_authorized(user_id(keys, 1))
    assert guard.is_authorized(user_id(tmp_path / "other", 1))
    assert guard.refresh() is False  # nothing changed since


def test_a_removed_key_is_no_longer_authorized(keys, guard):
    (keys / "learner" / "authorized" / "actor-2.key").unlink()
    assert guard.is_authorized(user_id(keys, 2))  # until the next refresh
    assert guard.refresh() is True
    assert not guard.is_authorized(user_id(keys, 2)) and guard.is_authorized(user_id(keys, 1))


def test_a_secret_volume_update_swaps_keys_behind_symlinks(keys, tmp_path):
    # A Kubernetes Secret volume: NAME -> ..data/NAME, and an update swaps ..data at once.
    folder = tmp_path / "secret"
    folder.mkdir()
    v1 = folder / "..v1"
    shutil.copytree(keys / "learner" / "authorized", v1)
    (folder / "..data").symlink_to("..v1")
    for name in ("actor-1.key", "actor-2.key"):
        (folder / name).symlink_to(f"..data/{name}")
    provider = _AuthorizedKeys(folder)
    assert provider.refresh() is True
    assert provider.is_authorized(user_id(keys, 2).encode())
    v2 = folder / "..v2"
    v2.mkdir()
    shutil.copy(v1 / "actor-1.key", v2 / "actor-1.key")
    shutil.copy(keys / "actor-1" / "actor.key", v2 / "actor-2.key")  # actor 2 revoked
    (folder / "..tmp").symlink_to("..v2")
    os.replace(folder / "..tmp", folder / "..data")
    assert provider.refresh() is True
    assert not provider.is_authorized(user_id(keys, 2).encode())
    assert provider.is_authorized(user_id(keys, 1).encode())


def test_refresh_and_the_callback_never_raise(keys, guard):
    shutil.rmtree(keys / "learner" / "authorized")
    assert guard.refresh() is False
    assert guard.provider.callback("*", None) is False
    assert guard.is_authorized(None) is False and guard.is_authorized("é" * 40) is False
    (keys / "learner" / "authorized").mkdir()
    (keys / "learner" / "authorized" / "junk.key").write_text("public-key = short\n")
    assert guard.refresh() is True  # an empty set now: every key revoked
    assert not guard.is_authorized(user_id(keys, 1))


def test_the_user_id_of_a_curve_message_is_what_is_authorized(keys, guard):
    """The learner drops messages whose "User-Id" is no longer authorized: this is what the
    property holds for a peer admitted through the authenticator."""
    ctx = guard.auth.context  # ZAP serves the sockets of its own context only
    server, client = ctx.socket(zmq.ROUTER), ctx.socket(zmq.DEALER)
    try:
        for sock in (server, client):
            sock.linger = 0
            sock.rcvtimeo = 5000
        guard.apply(server)
        port = server.bind_to_random_port("tcp://127.0.0.1")
        apply_client_keys(client, load_client_keys(keys / "actor-1"))
        client.connect(f"tcp://127.0.0.1:{port}")
        client.send(b"hello")
        _, frame = server.recv_multipart(copy=False)
        uid = frame.get("User-Id")
        assert uid == user_id(keys, 1) and guard.is_authorized(uid)
        (keys / "learner" / "authorized" / "actor-1.key").unlink()
        guard.refresh()
        assert not guard.is_authorized(uid)
    finally:
        server.close()
        client.close()
