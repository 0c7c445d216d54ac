"""Learning with no flags but the env id: each task in both modes, 2 actors, several seeds,
beside Stable-Baselines3 A2C with rl-zoo's settings where rl-zoo has the env.

    pip install -c constraints.txt -e ".[bench,all]"
    python benchmarks/learning.py                                   # every task, 3 seeds
    python benchmarks/learning.py --tasks Acrobot-v1,LunarLander-v3 --seeds 3
    python benchmarks/learning.py --tasks MinAtar/Breakout-v1 --jobs 6   # a many-core host

Each service run is `a3c train --mode M --env ID --actors 2 --max-env-steps BUDGET` (the
presets decide the rest); each SB3 run gets the same budget. Medians over seeds. Results
are merged into benchmarks/results/learning.json (rows keyed by task, trainer and seed, each
with the machine that ran it) and drawn to benchmarks/results/learning_<task>.png.
"""

from __future__ import annotations

import argparse
import json
import statistics
import threading
import time
from collections import deque
from concurrent.futures import ThreadPoolExecutor

from benchmarks.common import RESULTS, machine, print_table, write_json
from benchmarks.tasks import TASKS, Task, first_reach, train

# rl-baselines3-zoo hyperparams/a2c.yml (LunarLander-v2's entry for v3; the MuJoCo defaults)
SB3_ZOO = {
    "CartPole-v1": {"n_envs": 8, "normalize": False, "kwargs": {"ent_coef": 0.0}},
    "Acrobot-v1": {"n_envs": 16, "normalize": True, "kwargs": {"ent_coef": 0.0}},
    "LunarLander-v3": {
        "n_envs": 8,
        "normalize": False,
        "kwargs": {"gamma": 0.995, "n_steps": 5, "ent_coef": 1e-5},
        "linear_lr": 8.3e-4,
    },
    "Pendulum-v1": {
        "n_envs": 8,
        "normalize": True,
        "kwargs": {
            "gamma": 0.9,
            "n_steps": 8,
            "gae_lambda": 0.9,
            "vf_coef": 0.4,
            "ent_coef": 0.0,
            "max_grad_norm": 0.5,
            "use_sde": True,
            "normalize_advantage": False,
            "policy_kwargs": {"log_std_init": -2, "ortho_init": False},
        },  # fmt: skip
        "linear_lr": 7e-4,
    },
    "InvertedPendulum-v5": {"n_envs": 1, "normalize": True, "kwargs": {}},
    "HalfCheetah-v5": {"n_envs": 1, "normalize": True, "kwargs": {}},
}
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
    entry = json.loads((RESULTS / f"tune_{env_id.replace('/', '-')}.json").read_text())
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
    """SB3 A2C with the zoo's settings, stopped at the same mark or budget."""
    import torch
    from stable_baselines3 import A2C
    from stable_baselines3.common.callbacks import BaseCallback
    from stable_baselines3.common.env_util import make_vec_env
    from stable_baselines3.common.vec_env import VecNormalize

    torch.set_num_threads(1)
    zoo = SB3_ZOO[task.env_id]
    env = make_vec_env(task.env_id, n_envs=zoo["n_envs"], seed=seed)
    if zoo["normalize"]:
        env = VecNormalize(env, gamma=zoo["kwargs"].get("gamma", 0.99))
    stop_at = task.target  # the comparison is to the target; SB3 stops there
    kwargs = dict(zoo["kwargs"])
    if "linear_lr" in zoo:
        kwargs["learning_rate"] = lambda left, lr=zoo["linear_lr"]: lr * left

    class Watch(BaseCallback):
        def __init__(self):
            super().__init__()
            self.returns: deque[float] = deque(maxlen=100)
            self.start = time.monotonic()
            self.curve: list = []
            self.next_record = 0.0

        def _on_step(self) -> bool:
            for info in self.locals["infos"]:
                if "episode" in info:
                    self.returns.append(info["episode"]["r"])
            now = time.monotonic() - self.start
            mean = sum(self.returns) / 100 if len(self.returns) == 100 else None
            if now >= self.next_record or (mean is not None and mean >= stop_at):
                self.curve.append((self.num_timesteps, round(now, 2), mean))
                self.next_record = now + 1.0
            if mean is not None and mean >= stop_at:
                return False
            return not (max_seconds and now > max_seconds)

    model = A2C("MlpPolicy", env, seed=seed, verbose=0, device="cpu", **kwargs)
    watch = Watch()
    model.learn(total_timesteps=task.budget, callback=watch)
    last = watch.curve[-1] if watch.curve else (model.num_timesteps, 0.0, None)
    returns = [m for _, _, m in watch.curve if m is not None]
    return {
        "solved": bool(returns) and returns[-1] >= stop_at,
        "env_steps": model.num_timesteps,
        "wall_seconds": last[1],
        "final_return": returns[-1] if returns else None,
        "best_return": max(returns, default=None),
        "curve": watch.curve,
    }


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
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

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
    fig.tight_layout()
    path = RESULTS / f"learning_{task.env_id.replace('/', '-')}.png"
    fig.savefig(path, dpi=90)
    plt.close(fig)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tasks", default=",".join(TASKS), help="comma-separated env ids")
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--trainers", default=",".join(TRAINERS))
    parser.add_argument("--jobs", type=int, default=1, help="runs at a time (many-core hosts)")
    parser.add_argument("--max-seconds", type=float, default=None, help="wall cap per run")
    parser.add_argument("--import-tune", action="append", default=[], metavar="TASK:CANDIDATE",
                        help="a tune.py candidate's runs as the task's service rows (only "
                             "if its flags are the task's preset now); runs nothing")  # fmt: skip
    args = parser.parse_args()
    tasks = [] if args.import_tune else [TASKS[t] for t in args.tasks.split(",")]
    trainers = args.trainers.split(",")
    here = machine()
    jobs = [(t, name, s) for t in tasks for name in trainers for s in range(args.seeds)
            if name != TRAINERS[2] or t.env_id in SB3_ZOO]  # fmt: skip

    def one(job):
        task, name, seed = job
        if name == TRAINERS[2]:
            result = sb3_a2c(task, seed, args.max_seconds)
        else:
            result = service(task, name.split()[1], seed, args.max_seconds)
        print(task.env_id, name, seed, {k: v for k, v in result.items() if k != "curve"},
              flush=True)  # fmt: skip
        return job, {**result, "machine": here}

    path = RESULTS / "learning.json"
    store = json.loads(path.read_text()) if path.exists() else {"runs": {}}
    lock = threading.Lock()

    def keep(job):  # each run is saved as it ends: an interrupted benchmark loses no run
        (task, name, seed), result = one(job)
        with lock:
            store["runs"].setdefault(task.env_id, {})[f"{name}|{seed}"] = result
            write_json("learning.json", store)

    with ThreadPoolExecutor(args.jobs) as pool:
        list(pool.map(keep, jobs))
    for spec in args.import_tune:
        task, rows = tune_rows(spec)
        store["runs"].setdefault(task.env_id, {}).update(rows)
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
    write_json("learning.json", store)
    print_table(table, [("task", "task", ""), ("trainer", "trainer", ""),
                        ("reached", "reached", ""), ("seeds", "of", ""),
                        ("steps_to_target", "env steps to target", ",.0f"),
                        ("wall_to_target", "wall s", ".1f"), ("best_return", "best", ".1f"),
                        ("reached_high", "reached 200", ""),
                        ("steps_to_high", "env steps to 200", ",.0f")])  # fmt: skip


if __name__ == "__main__":
    main()
