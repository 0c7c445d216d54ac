"""The learning benchmark's tasks: target, env-step budget, and what the issue of presets
asks of each (used by learning.py, tune.py and wire_dtype.py)."""

from __future__ import annotations

from dataclasses import dataclass

from benchmarks.harness import launch
from benchmarks.harness.records import best_return


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
        Task("Walker2d-v5", 1000, 2_000_000, "1,000 within 2M env steps, and SB3 A2C's"),
        Task("Ant-v5", 1000, 2_000_000, "1,000 within 2M env steps, and SB3 A2C's"),
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
    mean return). A run that fails is an {"error": ...} row, not the end of a benchmark."""
    try:
        run = launch.train(task.env_id, mode, seed=seed, env_steps=task.budget,
                           target=task.target if target is None else target,
                           seconds=max_seconds or None, flags=flags)  # fmt: skip
    except launch.RunFailed as failed:
        return {"error": failed.stderr[-1500:], "cmd": failed.cmd}
    s = run.summary
    return {
        "solved": s["solved"],
        "env_steps": s["env_steps"],
        "wall_seconds": s["wall_seconds"],
        "run_seconds": round(run.seconds, 1),
        "final_return": s["mean_return_100"],
        "best_return": best_return(run.records),
        "preset": run.config.get("preset"),
        "curve": [(r["env_steps"], r["wall_seconds"], r["mean_return_100"]) for r in run.records],
    }
