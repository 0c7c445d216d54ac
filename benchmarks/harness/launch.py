"""Running this service as a user runs it (`python -m a3c ...`), each run in a run
directory of its own, and reading back what the run wrote there.

Every a3c command line a benchmark issues through here is remembered (`issued`), so the
results file can say which flags produced it."""

from __future__ import annotations

import json
import re
import shlex
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import click

A3C = (sys.executable, "-m", "a3c")
ROOT = Path(__file__).resolve().parents[2]
RUN_DIR = "RUN_DIR"
"""Stands for the temporary run directory in a remembered command line."""

_issued: list[str] = []


class RunFailed(RuntimeError):
    def __init__(self, cmd: list[str], stderr: str):
        super().__init__(f"{shlex.join(cmd)} failed:\n{stderr[-4000:]}")
        self.cmd, self.stderr = cmd, stderr


@dataclass
class Run:
    args: list[str]
    """What followed `python -m a3c`."""
    summary: dict
    records: list[dict]
    config: dict = field(default_factory=dict)
    seconds: float = 0.0
    """Wall time of the whole process, start-up included."""
    launched_at: float = 0.0
    """Unix time just before the process was started."""

    @property
    def start_seconds(self) -> float:
        """From launching the process to the learner's clock starting (wall_seconds 0)."""
        return self.summary["started_at"] - self.launched_at if self.launched_at else 0.0


@contextmanager
def run_dir() -> Iterator[Path]:
    """A fresh run directory, removed afterwards (the service creates it)."""
    with tempfile.TemporaryDirectory() as tmp:
        yield Path(tmp) / "run"


def read(path: Path, args: list[str], seconds: float = 0.0) -> Run:
    config = path / "config.json"
    return Run(
        args=args,
        summary=json.loads((path / "summary.json").read_text()),
        records=[json.loads(x) for x in (path / "metrics.jsonl").read_text().splitlines()],
        config=json.loads(config.read_text()) if config.exists() else {},
        seconds=seconds,
    )


def remember(args: list[str], path: Path) -> None:
    """Note an a3c command line for the results file, with its run directory and seed as
    placeholders so that repeats over seeds read as one line."""
    line = shlex.join(["a3c", *args]).replace(str(path), RUN_DIR)
    line = re.sub(r"--seed \d+", "--seed {seed}", line)
    if line not in _issued:
        _issued.append(line)


def issued() -> list[str]:
    return list(_issued)


def train(
    env: str,
    mode: str,
    *,
    actors: int = 2,
    seed: int = 0,
    seconds: float | None = None,
    env_steps: int | None = None,
    target: float | None = None,
    num_envs: int | None = None,
    metrics_every: float = 1.0,
    flags: tuple[str, ...] = (),
    keep: Path | None = None,
) -> Run:
    """One `a3c train` run to `target` (none: it runs to its limits), `seconds` or
    `env_steps`, whichever comes first; `keep` copies its run directory there."""
    with run_dir() as path:
        args = ["train", "--mode", mode, "--env", env, "--actors", str(actors),
                "--seed", str(seed), "--run-dir", str(path),
                "--metrics-every", str(metrics_every), "--no-tensorboard",
                "--target-return", "1e9" if target is None else str(target)]  # fmt: skip
        if seconds is not None:
            args += ["--max-seconds", str(seconds)]
        if env_steps is not None:
            args += ["--max-env-steps", str(env_steps)]
        if num_envs is not None:  # else the service's default
            args += ["--num-envs", str(num_envs)]
        args += flags
        remember(args, path)
        start, launched_at = time.monotonic(), time.time()
        cmd = [*A3C, *args]
        done = subprocess.run(cmd, capture_output=True, text=True, cwd=ROOT,
                              timeout=None if seconds is None else seconds + 180)  # fmt: skip
        if done.returncode != 0:
            raise RunFailed(cmd, done.stderr)
        run = read(path, args, time.monotonic() - start)
        run.launched_at = launched_at
        if keep is not None:
            shutil.rmtree(keep, ignore_errors=True)
            shutil.copytree(path, keep)
    return run


def learner_args(mode: str, bind: str, path: Path, *flags: str) -> list[str]:
    """`a3c learner` for a benchmark that brings its own actors; remembered like a run."""
    args = ["learner", "--mode", mode, "--bind", bind, "--run-dir", str(path),
            "--metrics-every", "1", "--no-tensorboard", *flags]  # fmt: skip
    remember(args, path)
    return args


presets_option = click.option(
    "--presets/--no-presets", default=False, show_default=True,
    help="Let each env's preset apply, as `a3c train` does today (off: --preset none, "
    "the settings of the committed results, made before presets).",
)  # fmt: skip


def preset_flags(presets: bool) -> tuple[str, ...]:
    """What `--presets/--no-presets` adds to every a3c command line."""
    return () if presets else ("--preset", "none")
