"""Wall time and env steps until mean_return_100 reaches the target, side by side.

Per task, 5 seeds (by default) each of: this service in gradient and data mode (2 actors,
the defaults and the env's preset, as `a3c train` runs), Stable-Baselines3 PPO and A2C
with their rl-zoo settings, and the seed article's design (benchmarks/seed_baseline.py, 2
workers, both designs), all on this machine in one run. Every clock starts when the
command is launched, so start-up counts: the service's and SB3's each in a fresh process
(the seed design's in this one, its imports already paid). A run that does not solve
counts with its time cap. Needs the `bench` extra:

    pip install -c constraints.txt -e ".[bench]"
    python -m benchmarks.time_to_solve                      # CartPole-v1
    python -m benchmarks.time_to_solve --tasks CartPole-v1,Acrobot-v1 --seeds 3

`--no-presets` runs the service with `--preset none`. Writes
benchmarks/results/time_to_solve.json and plots of mean return against wall
seconds (benchmarks/results/time_to_solve_<task>.png).
"""

from __future__ import annotations

import json
import statistics

import click

from benchmarks.harness import launch, machine, plots, results, sb3
from benchmarks.harness.table import print_table

TASKS = {
    # target, cap for this service, cap for the references
    "CartPole-v1": (475.0, 120.0, 240.0),
    "Acrobot-v1": (-100.0, 180.0, 180.0),
}


def service(mode: str, task: str, seed: int, flags: tuple[str, ...]) -> dict:
    target, cap, _ = TASKS[task]
    run = launch.train(task, mode, seed=seed, seconds=cap, target=target, flags=flags)
    s, start = run.summary, run.start_seconds
    curve = [(start + r["wall_seconds"], r["env_steps"], r["mean_return_100"]) for r in run.records]
    return {
        "solved": s["solved"],
        "wall_seconds": round(start + s["wall_seconds"], 3),
        "start_seconds": round(start, 3),
        "env_steps": s["env_steps"],
        "curve": curve,
    }


def sb3_run(algo: str, task: str, seed: int) -> dict:
    target, _, cap = TASKS[task]
    r = sb3.fresh_process(algo, task, seed, target, max_seconds=cap, min_episodes=1)
    curve = [(wall, steps, mean) for steps, wall, mean in r["curve"]]
    return {**{k: r[k] for k in ("solved", "wall_seconds", "env_steps")}, "curve": curve}


def seed_design(design: str, task: str, seed: int, cap: float) -> dict:
    from benchmarks import seed_baseline  # torch: after the options are read

    target = TASKS[task][0]
    r = seed_baseline.run(design, 2, cap, seed=seed, env_id=task, target=target)
    return {k: r[k] for k in ("solved", "wall_seconds", "env_steps", "curve")}


def summarize(name: str, task: str, runs: list[dict]) -> dict:
    walls = [r["wall_seconds"] for r in runs]
    steps = [r["env_steps"] for r in runs]
    return {
        "trainer": name,
        "task": task,
        "solved": f"{sum(r['solved'] for r in runs)}/{len(runs)}",
        "wall_median": statistics.median(walls),
        "wall_min": min(walls),
        "wall_max": max(walls),
        "steps_median": statistics.median(steps),
        "steps_min": min(steps),
        "steps_max": max(steps),
    }


def plot(found: dict, task: str) -> None:
    plt = plots.pyplot()
    fig, ax = plt.subplots(figsize=(9.5, 4.5))
    for (name, t), runs in found.items():
        if t != task:
            continue
        for i, run in enumerate(runs):
            pts = [(w, m) for w, _, m in run["curve"] if m is not None]
            if pts:
                ax.plot(*zip(*pts), color=COLORS[name], alpha=0.8, label=name if i == 0 else None)
    ax.axhline(TASKS[task][0], color="grey", linestyle=":", label="target")
    ax.set_xscale("symlog", linthresh=10)
    ax.set_xlim(left=0)
    ax.set_xlabel("wall seconds")
    ax.set_ylabel("mean return of the last 100 episodes")
    ax.set_title(f"{task}: time to solve on this machine")
    ax.legend(loc="upper left", bbox_to_anchor=(1.01, 1.0), fontsize="small")
    plots.save(fig, results.path(f"time_to_solve_{task.split('-')[0].lower()}.png"), dpi=110)


COLORS = {
    "service gradient": "tab:blue",
    "service data": "tab:orange",
    "seed gradient": "tab:grey",
    "seed data": "tab:brown",
    "SB3 PPO (zoo)": "tab:purple",
    "SB3 A2C (zoo)": "tab:green",
}
REFERENCE = "SB3 PPO (zoo)"
"""What the wall-time ratio is taken against."""


def _known(ctx, param, value: str) -> list[str]:
    tasks = value.split(",")
    unknown = [t for t in tasks if t not in TASKS]
    if unknown:
        raise click.BadParameter(f"{unknown}: the tasks are {list(TASKS)}")
    return tasks


@click.command(help=__doc__.split("\n\n")[0])
@click.option("--tasks", default="CartPole-v1", show_default=True, callback=_known,
              help="Comma-separated env ids.")  # fmt: skip
@click.option("--seeds", default=5, show_default=True)
@click.option("--seed-baseline-tasks", default="CartPole-v1", show_default=True,
              help="Comma-separated tasks to run the article's design on (it runs to its "
                   "time cap).")  # fmt: skip
@click.option("--seed-cap", default=60.0, show_default=True,
              help="Seconds the article's design gets per run (it does not solve CartPole "
                   "within 240 s at 2 workers).")  # fmt: skip
@click.option(
    "--presets/--no-presets",
    default=True,
    show_default=True,
    help="Let each env's preset apply, as `a3c train` does (off: --preset none).",
)
@click.option("--replot", is_flag=True, help="Redraw the plots from the last results JSON, "
              "run nothing.")  # fmt: skip
def main(tasks: list[str], seeds: int, seed_baseline_tasks: str, seed_cap: float,
         presets: bool, replot: bool) -> None:  # fmt: skip
    if replot:
        redraw(tasks)
        return
    machine.show()
    flags = launch.preset_flags(presets)
    trainers = {
        "service gradient": lambda t, s: service("gradient", t, s, flags),
        "service data": lambda t, s: service("data", t, s, flags),
        "SB3 PPO (zoo)": lambda t, s: sb3_run("ppo", t, s),
        "SB3 A2C (zoo)": lambda t, s: sb3_run("a2c", t, s),
        "seed gradient": lambda t, s: seed_design("gradient", t, s, seed_cap),
        "seed data": lambda t, s: seed_design("data", t, s, seed_cap),
    }
    found: dict = {}
    for task in tasks:
        for name, fn in trainers.items():
            if name.startswith("seed") and task not in seed_baseline_tasks.split(","):
                continue
            for seed in range(1, seeds + 1):
                r = fn(task, seed)
                found.setdefault((name, task), []).append(r)
                print(
                    f"  {task} {name} seed {seed}: solved={r['solved']} "
                    f"{r['wall_seconds']:.1f}s {r['env_steps']:,} steps",
                    flush=True,
                )
    rows = [summarize(name, task, runs) for (name, task), runs in found.items()]
    _add_ratios(rows)
    print()
    print_table(rows, [
        ("task", "task", ""), ("trainer", "trainer", ""), ("solved", "solved", ""),
        ("wall_median", "wall s median", ".1f"), ("wall_min", "min", ".1f"),
        ("wall_max", "max", ".1f"), ("steps_median", "env steps median", ",.0f"),
        ("steps_min", "min", ",.0f"), ("steps_max", "max", ",.0f"),
        ("wall_vs_ref", "wall / PPO", ".2f"), ("steps_vs_best_ref", "steps / best ref", ".2f"),
    ])  # fmt: skip
    for task in tasks:
        plot(found, task)
    results.write(
        "time_to_solve.json",
        {"rows": rows, "runs": {f"{n}|{t}": runs for (n, t), runs in found.items()}},
        sb3_zoo={algo: {t: zoo[t] for t in tasks if t in zoo} for algo, zoo in sb3.ZOOS.items()},
        seed_cap=seed_cap,
        reference=REFERENCE,
    )


def redraw(tasks: list[str]) -> None:
    data = json.loads(results.path("time_to_solve.json").read_text())
    found = {tuple(key.split("|")): runs for key, runs in data["runs"].items()}
    for task in tasks:
        plot(found, task)


def _add_ratios(rows: list[dict]) -> None:
    """Wall time against SB3 PPO's median; env steps against the best reference's median."""
    for task in {r["task"] for r in rows}:
        task_rows = {r["trainer"]: r for r in rows if r["task"] == task}
        reference = task_rows.get(REFERENCE)
        refs = [
            r["steps_median"]
            for n, r in task_rows.items()
            if not n.startswith("service") and r["solved"].split("/")[0] != "0"
        ]
        for row in task_rows.values():
            row["wall_vs_ref"] = (
                row["wall_median"] / reference["wall_median"] if reference else None
            )
            row["steps_vs_best_ref"] = row["steps_median"] / min(refs) if refs else None


if __name__ == "__main__":
    main()
