"""Learning with no flags but the env id: each task in both modes, 2 actors, several seeds,
beside Stable-Baselines3 A2C with rl-zoo's settings where rl-zoo has the env.

    pip install -c constraints.txt -e ".[bench,all]"
    python -m benchmarks.learning                                   # every task, 3 seeds
    python -m benchmarks.learning --tasks Acrobot-v1,LunarLander-v3 --seeds 3
    python -m benchmarks.learning --tasks MinAtar/Breakout-v1 --jobs 6   # a many-core host

Each service run is `a3c train --mode M --env ID --actors 2 --max-env-steps BUDGET` (the
presets decide the rest); each SB3 run gets the same budget. Medians over seeds. Results
are merged into benchmarks/results/learning.json (rows keyed by task, trainer and seed, each
with the machine that ran it) and drawn to benchmarks/results/learning_<task>.png.
"""

from __future__ import annotations

import statistics
import threading
from concurrent.futures import ThreadPoolExecutor

import click

from benchmarks.harness import plots, results, sb3
from benchmarks.harness.machine import machine
from benchmarks.harness.records import first_reach
from benchmarks.harness.table import print_table
from benchmarks.tasks import TASKS, Task, train

TRAINERS = ("service gradient", "service data", "SB3 A2C (zoo)")


def flag_settings(flags: str) -> dict:
    """`--lr 2e-3 --lr-decay` as {"lr": 0.002, "lr_decay": True}."""
    out, words = {}, flags.split()
    for i, word in enumerate(words):
        if word.startswith("--"):
            takes = i + 1 < len(words) and not words[i + 1].startswith("--")
            value = words[i + 1] if takes else True
            if takes and "," in value:  # --hidden 256,256
                value = [int(x) for x in value.split(",")]
            elif takes:
                value = float(value)
            out[word[2:].replace("-", "_")] = value
    return out


def preset_values(settings: dict) -> dict:
    """A preset's settings in flag_settings' terms (numbers as floats)."""
    return {k: v if isinstance(v, (bool, list)) else float(v) for k, v in settings.items()}


def tune_rows(spec: str) -> tuple[Task, dict]:
    """`TASK:CANDIDATE`: a tune.py candidate's runs as this benchmark's service rows, taken
    only where the candidate's flags are exactly what the task's preset applies now, so each
    run is what `a3c train --env ID` does with no flags (tune.py runs `--preset none` plus
    the flags). For tasks measured on a bigger host than the one at hand."""
    from rlcore.presets import for_env

    env_id, name = spec.rsplit(":", 1)
    task = TASKS[env_id]
    entry = results.load(f"tune_{env_id.replace('/', '-')}.json")
    candidate = entry["candidates"][name]
    preset = for_env(env_id)
    if flag_settings(candidate["flags"]) != preset_values(preset.settings):
        raise SystemExit(f"{spec}: flags {candidate['flags']!r} are not preset "
                         f"{preset.name}'s settings {preset.settings}")  # fmt: skip
    source = f"tune_{env_id.replace('/', '-')}.json, candidate {name} = preset {preset.name}"
    rows = {f"service {mode}|{run['seed']}": {**run, "machine": candidate["machine"],
                                              "source": source}
            for mode, runs in candidate["runs"].items() for run in runs}  # fmt: skip
    return task, rows


def service(task: Task, mode: str, seed: int, max_seconds: float | None) -> dict:
    # Stop at the higher mark where there is one, so the lower one is read off the curve.
    target = task.also_report if task.also_report is not None else task.target
    return train(task, mode, seed, target=target, max_seconds=max_seconds)


def sb3_a2c(task: Task, seed: int, max_seconds: float | None) -> dict:
    """SB3 A2C with the zoo's settings, stopped at the target (the comparison is to it) or
    the same budget; in a process of its own, so that --jobs runs SB3 runs side by side
    (threads of this one would share its interpreter lock)."""
    return sb3.fresh_process("a2c", task.env_id, seed, task.target, budget=task.budget,
                             max_seconds=max_seconds, threads=1)  # fmt: skip


def summarize(task: Task, runs: list[dict]) -> dict:
    """Medians over seeds: env steps and wall s to the target (a miss counts the budget)."""
    reach = [first_reach(r["curve"], task.target) for r in runs]
    row = {
        "reached": sum(x is not None for x in reach),
        "seeds": len(runs),
        "steps_to_target": statistics.median(x[0] if x else task.budget for x in reach),
        "wall_to_target": statistics.median(
            x[1] if x else r["wall_seconds"] for x, r in zip(reach, runs)
        ),  # fmt: skip
        "best_return": statistics.median(r["best_return"] or float("-inf") for r in runs),
        "final_return": statistics.median(r["final_return"] or float("-inf") for r in runs),
    }
    if task.also_report is not None:
        high = [first_reach(r["curve"], task.also_report) for r in runs]
        row["reached_high"] = sum(x is not None for x in high)
        if row["reached_high"]:  # else nothing to report
            row["steps_to_high"] = statistics.median(x[0] if x else task.budget for x in high)
    return row


def plot(task: Task, rows: dict) -> None:
    plt = plots.pyplot()
    fig, ax = plt.subplots(figsize=(7, 4))
    colors = dict(zip(TRAINERS, ("tab:blue", "tab:orange", "tab:green")))
    for (trainer, _seed), run in sorted(rows.items()):
        pts = [(s, m) for s, _, m in run["curve"] if m is not None]
        if pts:
            ax.plot(*zip(*pts), color=colors.get(trainer, "gray"), alpha=0.7,
                    label=trainer)  # fmt: skip
    ax.axhline(task.target, color="black", lw=0.8, ls="--")
    handles, labels = ax.get_legend_handles_labels()
    unique = dict(zip(labels, handles))
    ax.legend(unique.values(), unique.keys())
    ax.set_xlabel("env steps")
    ax.set_ylabel("mean return (last 100 episodes)")
    ax.set_title(f"{task.env_id}: no flags but the env id, 2 actors")
    plots.save(fig, results.path(f"learning_{task.env_id.replace('/', '-')}.png"), dpi=90)


@click.command(help=__doc__.split("\n\n")[0])
@click.option("--tasks", default=",".join(TASKS), show_default=True,
              help="Comma-separated env ids.")  # fmt: skip
@click.option("--seeds", default=3, show_default=True)
@click.option(
    "--first-seed",
    default=0,
    show_default=True,
    help="Run seeds K..K+seeds-1 (more seeds for rows already measured).",
)
@click.option("--trainers", default=",".join(TRAINERS), show_default=True)
@click.option("--jobs", default=1, show_default=True, help="Runs at a time (many-core hosts).")
@click.option("--max-seconds", type=float, default=None, help="Wall cap per run.")
@click.option("--import-tune", multiple=True, metavar="TASK:CANDIDATE",
              help="A tune.py candidate's runs as the task's service rows (only if its flags "
                   "are the task's preset now); runs nothing.")  # fmt: skip
def main(tasks: str, seeds: int, first_seed: int, trainers: str, jobs: int,
         max_seconds: float | None, import_tune: tuple[str, ...]) -> None:  # fmt: skip
    chosen = [] if import_tune else [TASKS[t] for t in tasks.split(",")]
    names = trainers.split(",")
    here = machine()
    seed_range = range(first_seed, first_seed + seeds)
    todo = [(t, name, s) for t in chosen for name in names for s in seed_range
            if name != TRAINERS[2] or t.env_id in sb3.ZOO]  # fmt: skip

    def one(job):
        task, name, seed = job
        if name == TRAINERS[2]:
            result = sb3_a2c(task, seed, max_seconds)
        else:
            result = service(task, name.split()[1], seed, max_seconds)
        print(task.env_id, name, seed, {k: v for k, v in result.items() if k != "curve"},
              flush=True)  # fmt: skip
        return job, {**result, "machine": here}

    store = results.load("learning.json", {"runs": {}})
    lock = threading.Lock()

    def keep(job):  # each run is saved as it ends: an interrupted benchmark loses no run
        (task, name, seed), result = one(job)
        with lock:
            store["runs"].setdefault(task.env_id, {})[f"{name}|{seed}"] = result
            results.write("learning.json", store, sb3_zoo=zoo)

    zoo = {t.env_id: sb3.ZOO[t.env_id] for t in chosen
           if t.env_id in sb3.ZOO and TRAINERS[2] in names}  # fmt: skip
    with ThreadPoolExecutor(jobs) as pool:
        list(pool.map(keep, todo))
    for spec in import_tune:  # the candidate's runs become the task's service rows, all of them
        task, rows = tune_rows(spec)
        kept = {k: v for k, v in store["runs"].get(task.env_id, {}).items()
                if not k.startswith("service ")}  # fmt: skip
        store["runs"][task.env_id] = kept | rows
    table = []
    for task in (TASKS[t] for t in store["runs"]):  # every task measured so far
        runs = {tuple(k.split("|")): v for k, v in store["runs"][task.env_id].items()
                if "error" not in v}  # fmt: skip
        for name in TRAINERS:
            mine = [v for (n, _), v in runs.items() if n == name]
            if mine:
                table.append({"task": task.env_id, "trainer": name, **summarize(task, mine)})
        plot(task, {(n, int(s)): v for (n, s), v in runs.items()})
    store["summary"] = {f"{r['task']}|{r['trainer']}": r for r in table}
    results.write("learning.json", store, sb3_zoo=zoo)
    print_table(table, [("task", "task", ""), ("trainer", "trainer", ""),
                        ("reached", "reached", ""), ("seeds", "of", ""),
                        ("steps_to_target", "env steps to target", ",.0f"),
                        ("wall_to_target", "wall s", ".1f"), ("best_return", "best", ".1f"),
                        ("reached_high", "reached 200", ""),
                        ("steps_to_high", "env steps to 200", ",.0f")])  # fmt: skip


if __name__ == "__main__":
    main()
