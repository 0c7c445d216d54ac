"""Wall time and env steps until mean_return_100 reaches the target, side by side.

Per task, at least 3 seeds each of: this service in gradient and data mode (2 actors, the
defaults), the seed article's design (benchmarks/seed_baseline.py, 2 workers, both designs)
and Stable-Baselines3 A2C with its rl-zoo settings (one process), all on this machine in
one run. A run that does not solve counts with its time cap. Needs the `bench` extra:

    pip install -c constraints.txt -e ".[bench]"
    python benchmarks/time_to_solve.py                      # CartPole-v1 and Acrobot-v1
    python benchmarks/time_to_solve.py --tasks CartPole-v1 --seeds 3

Writes benchmarks/results/time_to_solve.json and a plot of mean return against wall
seconds (benchmarks/results/time_to_solve.png).
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from collections import deque

from benchmarks import seed_baseline
from benchmarks.common import RESULTS, print_machine, print_table, run_service, write_json

TASKS = {
    # target, cap for this service, cap for the references
    "CartPole-v1": (475.0, 120.0, 240.0),
    "Acrobot-v1": (-100.0, 180.0, 180.0),
}
# rl-baselines3-zoo hyperparams/a2c.yml
SB3_ZOO = {
    "CartPole-v1": {"n_envs": 8, "normalize": False, "kwargs": {"ent_coef": 0.0}},
    "Acrobot-v1": {"n_envs": 16, "normalize": True, "kwargs": {"ent_coef": 0.0}},
}


def service(mode: str, task: str, seed: int) -> dict:
    target, cap, _ = TASKS[task]
    run = run_service(mode, 2, cap, seed=seed, env=task, target=target)
    s = run["summary"]
    curve = [(r["wall_seconds"], r["env_steps"], r["mean_return_100"]) for r in run["records"]]
    return {
        "solved": s["solved"],
        "wall_seconds": s["wall_seconds"],
        "env_steps": s["env_steps"],
        "curve": curve,
    }


def sb3_a2c(task: str, seed: int) -> dict:
    from stable_baselines3 import A2C
    from stable_baselines3.common.callbacks import BaseCallback
    from stable_baselines3.common.env_util import make_vec_env
    from stable_baselines3.common.vec_env import VecNormalize

    target, _, cap = TASKS[task]
    zoo = SB3_ZOO[task]
    env = make_vec_env(task, n_envs=zoo["n_envs"], seed=seed)
    if zoo["normalize"]:
        env = VecNormalize(env, gamma=0.99)

    class Stopper(BaseCallback):
        def __init__(self):
            super().__init__()
            self.returns: deque[float] = deque(maxlen=100)
            self.start = time.monotonic()
            self.curve: list = []
            self.solved_at = None

        def _on_step(self) -> bool:
            for info in self.locals["infos"]:
                if "episode" in info:
                    self.returns.append(info["episode"]["r"])
            now = time.monotonic() - self.start
            mean = statistics.fmean(self.returns) if self.returns else None
            if not self.curve or now - self.curve[-1][0] >= 1.0:
                self.curve.append((round(now, 2), self.num_timesteps, mean))
            if len(self.returns) == 100 and mean >= target:
                self.solved_at = (now, self.num_timesteps)
                self.curve.append((round(now, 2), self.num_timesteps, mean))
                return False
            return now < cap

    model = A2C("MlpPolicy", env, seed=seed, verbose=0, **zoo["kwargs"])
    stopper = Stopper()
    model.learn(total_timesteps=10**9, callback=stopper)
    wall = time.monotonic() - stopper.start
    solved = stopper.solved_at is not None
    return {
        "solved": solved,
        "wall_seconds": stopper.solved_at[0] if solved else wall,
        "env_steps": stopper.solved_at[1] if solved else model.num_timesteps,
        "curve": stopper.curve,
    }


def seed_design(design: str, task: str, seed: int) -> dict:
    target, _, cap = TASKS[task]
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


def plot(results: dict, task: str, path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(9.5, 4.5))
    for (name, t), runs in results.items():
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
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    print(f"wrote {path}")


COLORS = {
    "service gradient": "tab:blue",
    "service data": "tab:orange",
    "seed gradient": "tab:grey",
    "seed data": "tab:brown",
    "SB3 A2C (zoo)": "tab:green",
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tasks", nargs="+", default=list(TASKS), choices=list(TASKS))
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument(
        "--seed-baseline-tasks",
        nargs="*",
        default=["CartPole-v1"],
        help="tasks to run the article's design on (it runs to its time cap)",
    )
    parser.add_argument(
        "--replot",
        action="store_true",
        help="redraw the plots from the last results JSON, run nothing",
    )
    args = parser.parse_args()
    if args.replot:
        replot(args.tasks)
        return
    info = print_machine()
    trainers = {
        "service gradient": lambda t, s: service("gradient", t, s),
        "service data": lambda t, s: service("data", t, s),
        "SB3 A2C (zoo)": sb3_a2c,
        "seed gradient": lambda t, s: seed_design("gradient", t, s),
        "seed data": lambda t, s: seed_design("data", t, s),
    }
    results: dict = {}
    for task in args.tasks:
        for name, fn in trainers.items():
            if name.startswith("seed") and task not in args.seed_baseline_tasks:
                continue
            for seed in range(1, args.seeds + 1):
                r = fn(task, seed)
                results.setdefault((name, task), []).append(r)
                print(
                    f"  {task} {name} seed {seed}: solved={r['solved']} "
                    f"{r['wall_seconds']:.1f}s {r['env_steps']:,} steps",
                    flush=True,
                )
    rows = [summarize(name, task, runs) for (name, task), runs in results.items()]
    _add_ratios(rows)
    print()
    print_table(
        rows,
        [
            ("task", "task", ""),
            ("trainer", "trainer", ""),
            ("solved", "solved", ""),
            ("wall_median", "wall s median", ".1f"),
            ("wall_min", "min", ".1f"),
            ("wall_max", "max", ".1f"),
            ("steps_median", "env steps median", ",.0f"),
            ("steps_min", "min", ",.0f"),
            ("steps_max", "max", ",.0f"),
            ("wall_vs_sb3", "wall / SB3", ".2f"),
            ("steps_vs_best_ref", "steps / best ref", ".2f"),
        ],
    )
    for task in args.tasks:
        plot(results, task, RESULTS / f"time_to_solve_{task.split('-')[0].lower()}.png")
    write_json(
        "time_to_solve.json",
        {
            "machine": info,
            "rows": rows,
            "runs": {f"{n}|{t}": runs for (n, t), runs in results.items()},
        },
    )


def replot(tasks: list[str]) -> None:
    data = json.loads((RESULTS / "time_to_solve.json").read_text())
    results = {tuple(key.split("|")): runs for key, runs in data["runs"].items()}
    for task in tasks:
        plot(results, task, RESULTS / f"time_to_solve_{task.split('-')[0].lower()}.png")


def _add_ratios(rows: list[dict]) -> None:
    """Wall time against SB3's median; env steps against the best reference's median."""
    for task in {r["task"] for r in rows}:
        task_rows = {r["trainer"]: r for r in rows if r["task"] == task}
        sb3 = task_rows.get("SB3 A2C (zoo)")
        refs = [
            r["steps_median"]
            for n, r in task_rows.items()
            if not n.startswith("service") and r["solved"].split("/")[0] != "0"
        ]
        for row in task_rows.values():
            row["wall_vs_sb3"] = row["wall_median"] / sb3["wall_median"] if sb3 else None
            row["steps_vs_best_ref"] = row["steps_median"] / min(refs) if refs else None


if __name__ == "__main__":
    RESULTS.mkdir(parents=True, exist_ok=True)
    main()
