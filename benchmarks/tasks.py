"""The learning benchmark's tasks: target, env-step budget, and what the issue of presets
asks of each (used by learning.py and tune.py)."""

from __future__ import annotations

import json
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class Task:
    env_id: str
    target: float
    """mean_return_100 to reach (the run stops there)."""
    budget: int
    """Env steps a run may use."""
    goal: str
    """The bar, in words."""
    also_report: float | None = None
    """A second, higher mark whose env steps are reported where a run reaches it."""


TASKS = {
    t.env_id: t
    for t in (
        Task("CartPole-v1", 475, 500_000, "475, env steps no worse than before presets"),
        Task("Acrobot-v1", -100, 500_000, "env steps to -100 at most SB3 A2C's"),
        Task("Pendulum-v1", -250, 1_000_000, "-250 within 1M env steps"),
        Task("LunarLander-v3", 0, 1_000_000, "env steps to 0 at most SB3 A2C's", 200),
        Task("InvertedPendulum-v5", 950, 250_000, "950 within 250k env steps"),
        Task("HalfCheetah-v5", 1500, 2_000_000, "1,500 within 2M env steps"),
        Task("MinAtar/Breakout-v1", 20, 5_000_000, "20 within 5M env steps, data >= gradient"),
    )
}


def train(
    task: Task,
    mode: str,
    seed: int,
    flags: tuple[str, ...] = (),
    target: float | None = None,
    max_seconds: float | None = None,
) -> dict:
    """One `a3c train` run of `task` (2 actors, the task's budget, `flags`): whether it
    reached the target, its env steps and wall time, and its curve of (env steps, wall s,
    mean return)."""
    with tempfile.TemporaryDirectory() as tmp:
        run_dir = Path(tmp) / "run"
        cmd = [sys.executable, "-m", "a3c", "train", "--mode", mode, "--env", task.env_id,
               "--actors", "2", "--seed", str(seed), "--max-env-steps", str(task.budget),
               "--target-return", str(task.target if target is None else target),
               "--run-dir", str(run_dir), "--metrics-every", "1", "--no-tensorboard",
               *flags]  # fmt: skip
        if max_seconds:
            cmd += ["--max-seconds", str(max_seconds)]
        start = time.monotonic()
        done = subprocess.run(cmd, capture_output=True, text=True)
        if done.returncode != 0:
            return {"error": done.stderr[-1500:], "cmd": cmd}
        summary = json.loads((run_dir / "summary.json").read_text())
        config = json.loads((run_dir / "config.json").read_text())
        records = [json.loads(x) for x in (run_dir / "metrics.jsonl").read_text().splitlines()]
    curve = [(r["env_steps"], r["wall_seconds"], r["mean_return_100"]) for r in records]
    returns = [r for _, _, r in curve if r is not None]
    return {
        "solved": summary["solved"],
        "env_steps": summary["env_steps"],
        "wall_seconds": summary["wall_seconds"],
        "run_seconds": round(time.monotonic() - start, 1),
        "final_return": summary["mean_return_100"],
        "best_return": max(returns, default=None),
        "preset": config.get("preset"),
        "curve": curve,
    }


def first_reach(curve: list, mark: float) -> tuple[int, float] | None:
    """(env steps, wall seconds) of the first record whose mean return reached `mark`."""
    for steps, wall, mean in curve:
        if mean is not None and mean >= mark:
            return steps, wall
    return None
