"""The run directory: config.json, metrics.jsonl, checkpoint.pt, summary.json.

Every whole-file write goes to a temporary file in the same directory, is flushed to disk,
then renamed over the target, so a crash at any moment leaves the old file or the new one.
"""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path
from typing import Any

import torch

CHECKPOINT = "checkpoint.pt"


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


def write_json(path: Path, data: dict) -> None:
    atomic_write(path, lambda f: f.write((json.dumps(data, indent=2) + "\n").encode()))


class RunDir:
    def __init__(self, root: str | Path):
        self.root = Path(root)
        self.config = self.root / "config.json"
        self.metrics = self.root / "metrics.jsonl"
        self.checkpoint = self.root / CHECKPOINT
        self.summary = self.root / "summary.json"

    def create(self) -> None:
        self.root.mkdir(parents=True, exist_ok=True)

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
