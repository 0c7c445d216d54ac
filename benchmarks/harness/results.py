"""Results files: JSON under benchmarks/results, each with a top-level "meta" object that
says where its figures came from:

    {"commit": HEAD's sha, "dirty": uncommitted changes?, "date": ISO UTC,
     "machine": harness.machine.machine(), "command": the command line,
     "settings": {"options": the script's options, "a3c": the a3c command lines it ran,
                  ...what the script adds}, "source": "recorded", "defaults": "current"}

A script that keeps rows of earlier invocations (it `load`s the file first) also keeps their
meta objects, newest first, under meta["earlier"]; "defaults" is "older" where any of those
ran on older defaults."""

from __future__ import annotations

import json
import os
import shlex
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path

from benchmarks.harness import launch
from benchmarks.harness.machine import machine

RESULTS = Path(os.environ.get("A3C_RESULTS_DIR") or launch.ROOT / "benchmarks" / "results")
"""Where results files go: benchmarks/results, or $A3C_RESULTS_DIR (a trial run's)."""

_earlier: dict[str, list[dict]] = {}
"""Per file name: the meta objects it held when this process first read it."""
_params: dict = {}
"""The script's options, kept for writes from threads (click's context is per thread)."""


def path(name: str) -> Path:
    """benchmarks/results/`name`; an absolute `name` is a file elsewhere."""
    return RESULTS / name


def load(name: str, empty: dict | None = None) -> dict:
    """The file's figures without its meta (kept for the next `write`), or `empty`."""
    _options()
    p = path(name)
    if not p.exists():
        _earlier.setdefault(name, [])
        return {} if empty is None else empty
    data = json.loads(p.read_text())
    meta = data.pop("meta", None)
    if name not in _earlier:
        _earlier[name] = [] if meta is None else [
            {k: v for k, v in meta.items() if k != "earlier"}, *meta.get("earlier", [])
        ]  # fmt: skip
    return data


def write(name: str, data: dict, command: str | None = None, **settings) -> Path:
    """`data` under benchmarks/results/`name`, after its provenance; `settings` join the
    script's options and the a3c command lines it ran; `command` names what produced it
    when that is not this process's command line (a test)."""
    meta = provenance(settings)
    if command is not None:
        meta["command"] = command
    earlier = _earlier.get(name, [])
    if earlier:
        meta["earlier"] = earlier
        if any(m.get("defaults") != "current" for m in earlier):
            meta["defaults"] = "older"
    out = {"meta": meta, **{k: v for k, v in data.items() if k != "meta"}}
    p = path(name)
    p.parent.mkdir(parents=True, exist_ok=True)
    p.write_text(json.dumps(out, indent=2, default=str) + "\n")  # paths among the options
    print(f"wrote {p.relative_to(launch.ROOT) if p.is_relative_to(launch.ROOT) else p}")
    return p


def provenance(settings: dict) -> dict:
    return {
        "commit": _git("rev-parse", "HEAD").strip(),
        # results files a script appends to across runs are not code changes
        "dirty": bool(_git("status", "--porcelain", "--", ".", ":!benchmarks/results").strip()),
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
        "machine": machine(),
        "command": command_line(),
        "settings": {"options": _options(), "a3c": launch.issued(), **settings},
        "source": "recorded",
        "defaults": "current",
    }


def command_line() -> str:
    """This process's command line as typed: `python -m benchmarks.NAME ...`."""
    spec = getattr(sys.modules["__main__"], "__spec__", None)
    head = ["python", "-m", spec.name] if spec is not None else ["python", sys.argv[0]]
    return shlex.join([*head, *sys.argv[1:]])


def _options() -> dict:
    import click

    ctx = click.get_current_context(silent=True)
    if ctx is not None:
        _params.update(ctx.params)
    return dict(_params)


def _git(*args: str) -> str:
    return subprocess.run(["git", *args], capture_output=True, text=True, cwd=launch.ROOT).stdout
