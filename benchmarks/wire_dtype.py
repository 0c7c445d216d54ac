"""Does learning change when weights and gradients travel as 16-bit floats? Each task, each
mode, each seed, with --wire-dtype float32 and bfloat16 (the learner's copy and Adam state
stay float32 either way): env steps to the target and the best mean return, medians printed
side by side; runs saved as they end in benchmarks/results/wire_dtype.json.

    python -m benchmarks.wire_dtype --task CartPole-v1
    python -m benchmarks.wire_dtype --task MinAtar/Breakout-v1 --budget 1000000
"""

from __future__ import annotations

import statistics
from dataclasses import replace

import click

from benchmarks.harness import machine, results
from benchmarks.tasks import TASKS, train

DTYPES = ("float32", "bfloat16")


def _median(xs: list) -> float | None:
    xs = [x for x in xs if x is not None]
    return statistics.median(xs) if xs else None


@click.command(help=__doc__.split("\n\n")[0])
@click.option("--task", "env_id", default="CartPole-v1", type=click.Choice(sorted(TASKS)))
@click.option("--seeds", default=3, show_default=True)
@click.option("--modes", default="gradient,data", show_default=True)
@click.option("--budget", type=int, default=None, help="Env steps per run [the task's].")
def main(env_id: str, seeds: int, modes: str, budget: int | None) -> None:
    out = results.load("wire_dtype.json", {"runs": []})
    out.pop("machine", None)  # the meta object says which machine
    machine.show()
    task = TASKS[env_id] if budget is None else replace(TASKS[env_id], budget=budget)
    out["runs"] = [r for r in out["runs"] if r["task"] != env_id or r["budget"] != task.budget]
    for mode in modes.split(","):
        for dtype in DTYPES:
            for seed in range(1, seeds + 1):
                r = train(task, mode, seed, ("--wire-dtype", dtype))
                run = {
                    "task": env_id,
                    "budget": task.budget,
                    "mode": mode,
                    "dtype": dtype,
                    "seed": seed,
                    "reached": r.get("solved"),
                    "env_steps": r.get("env_steps"),
                    "best_mean_return": r.get("best_return"),
                    "error": r.get("error"),
                }
                out["runs"].append(run)
                results.write("wire_dtype.json", out)
    print(f"\n{env_id}, budget {task.budget:,} env steps, {seeds} seeds: medians")
    for mode in modes.split(","):
        for dtype in DTYPES:
            rs = [r for r in out["runs"] if (r["task"], r["budget"], r["mode"], r["dtype"])
                  == (env_id, task.budget, mode, dtype)]  # fmt: skip
            steps = _median([r["env_steps"] if r["reached"] else None for r in rs])
            best = _median([r["best_mean_return"] for r in rs])
            print(f"  {mode:<9}{dtype:<9} reached {sum(bool(r['reached']) for r in rs)}/{len(rs)}"
                  f", env steps to target {steps}, best mean return {best}")  # fmt: skip


if __name__ == "__main__":
    main()
