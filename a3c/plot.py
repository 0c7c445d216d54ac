"""Learning curves of one or more run directories: mean return against env steps and
against wall-clock seconds, read from each run's metrics.jsonl."""

from __future__ import annotations

import json
from pathlib import Path


class PlotError(RuntimeError):
    pass


def read_curve(run_dir: str) -> tuple[list[float], list[float], list[float]]:
    """(env_steps, wall_seconds, mean_return_100) of the records that have a return."""
    path = Path(run_dir) / "metrics.jsonl"
    if not path.exists():
        raise PlotError(f"{run_dir} has no metrics.jsonl")
    steps, seconds, returns = [], [], []
    for line in path.read_text().splitlines():
        try:
            record = json.loads(line)
        except json.JSONDecodeError:
            continue  # a line cut short by a crash
        if record.get("mean_return_100") is not None:
            steps.append(record["env_steps"])
            seconds.append(record["wall_seconds"])
            returns.append(record["mean_return_100"])
    return steps, seconds, returns


def _label(run_dir: str) -> str:
    config = Path(run_dir) / "config.json"
    name = Path(run_dir).resolve().name
    try:
        c = json.loads(config.read_text())
        recurrent = " lstm" if c["hp"].get("recurrent") else ""
        return f"{name} ({c['mode']}{recurrent})"
    except (OSError, ValueError, KeyError):
        return name


def plot(run_dirs: list[str], out: str, title: str | None = None) -> int:
    """Write the figure to `out`; returns how many runs had points to draw."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        raise PlotError("a3c plot needs matplotlib: pip install 'a3c-service[viz]'") from None
    fig, (by_steps, by_time) = plt.subplots(1, 2, figsize=(11, 4), sharey=True)
    drawn = 0
    for run_dir in run_dirs:
        steps, seconds, returns = read_curve(run_dir)
        if not steps:
            continue
        label = _label(run_dir)
        by_steps.plot(steps, returns, label=label)
        by_time.plot(seconds, returns, label=label)
        drawn += 1
    if drawn == 0:
        plt.close(fig)
        raise PlotError("no run has a mean return yet (no episode finished)")
    by_steps.set_xlabel("env steps")
    by_steps.set_ylabel("mean return (last 100 episodes)")
    by_time.set_xlabel("wall seconds")
    for ax in (by_steps, by_time):
        ax.grid(alpha=0.3)
    by_steps.legend(fontsize=8)
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    fig.savefig(out, dpi=110)
    plt.close(fig)
    return drawn
