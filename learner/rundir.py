"""The run directory: config.json, metrics.jsonl, checkpoint.pt, summary.json.

Every whole-file write goes to a temporary file in the same directory, is flushed to disk,
then renamed over the target, so a crash at any moment leaves the old file or the new one.
One learner at a time owns a run directory: it holds an exclusive lock on its .lock file.
"""

from __future__ import annotations

import errno
import json
import os
import tempfile
from pathlib import Path
from typing import Any

import torch

CHECKPOINT = "checkpoint.pt"
LOCK = ".lock"

try:
    import fcntl
except ImportError:  # Windows: no flock; the run directory goes unguarded there
    fcntl = None


class RunDirLocked(RuntimeError):
    """Another process holds the run directory; the message names it and its pid."""


def atomic_write(path: Path, write: Any) -> None:
    """Call `write(file)` on a temp file beside `path`, fsync, then rename over `path`."""
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    _fsync_dir(path.parent)


def _fsync_dir(directory: Path) -> None:
    """The rename itself is only durable once the directory entry is on disk: without this
    a power cut can bring back the old file, or on some filesystems none at all."""
    try:
        fd = os.open(directory, os.O_RDONLY)
    except OSError:  # Windows cannot open a directory; its renames are journaled anyway
        return
    try:
        os.fsync(fd)
    except OSError:  # some filesystems refuse fsync on a directory (EINVAL, EBADF)
        pass
    finally:
        os.close(fd)


def write_json(path: Path, data: dict) -> None:
    atomic_write(path, lambda f: f.write((json.dumps(data, indent=2) + "\n").encode()))


class RunDir:
    def __init__(self, root: str | Path):
        self.root = Path(root)
        self.config = self.root / "config.json"
        self.metrics = self.root / "metrics.jsonl"
        self.checkpoint = self.root / CHECKPOINT
        self.summary = self.root / "summary.json"
        self._lock_file = None

    def create(self) -> None:
        self.root.mkdir(parents=True, exist_ok=True)

    def lock(self) -> None:
        """Own the directory until unlock() or this process's exit, or raise RunDirLocked.
        Two learners on one directory would overwrite each other's checkpoints and
        interleave their metrics. flock, not the pid file alone, decides: the kernel drops
        it with its holder however it dies, so a stale file never locks anyone out."""
        if fcntl is None or self._lock_file is not None:
            return
        f = open(self.root / LOCK, "a+")  # noqa: SIM115 (held open for the learner's life)
        try:
            fcntl.flock(f.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as exc:
            f.seek(0)
            holder = f.read().strip()
            f.close()
            if exc.errno not in (errno.EWOULDBLOCK, errno.EAGAIN, errno.EACCES):
                raise
            pid = f" (pid {holder})" if holder.isdigit() else ""
            raise RunDirLocked(
                f"{self.root} is in use by another learner{pid}: stop it first, "
                "or choose another --run-dir"
            ) from None
        f.seek(0)
        f.truncate()
        f.write(f"{os.getpid()}\n")
        f.flush()
        self._lock_file = f

    def unlock(self) -> None:
        if self._lock_file is not None:
            self._lock_file.close()  # closing the descriptor releases the flock
            self._lock_file = None

    def remove_stale_temp_files(self) -> None:
        """Temp files left by a process killed mid-write (the real files are intact)."""
        for tmp in self.root.glob(".*.tmp"):
            tmp.unlink(missing_ok=True)

    def save_checkpoint(self, state: dict) -> None:
        atomic_write(self.checkpoint, lambda f: torch.save(state, f))

    def load_checkpoint(self) -> dict:
        return load_checkpoint(self.checkpoint)

    def append_metrics(self, record: dict) -> None:
        with open(self.metrics, "a") as f:
            f.write(json.dumps(record) + "\n")


def load_checkpoint(path: Path) -> dict:
    """Load a checkpoint safely: tensors and plain containers only, never arbitrary objects."""
    return torch.load(path, map_location="cpu", weights_only=True)
