"""Choose presets by measurement: each candidate setting of a task, in both modes, over
seeds, with presets off and the candidate's flags alone; ranked by env steps to the task's
target (a run that misses counts its whole budget), ties by the best mean return.

    python -m benchmarks.tune --task Acrobot-v1 --seeds 2
    python -m benchmarks.tune --task MinAtar/Breakout-v1 --jobs 4 --max-seconds 600
    python -m benchmarks.tune --task HalfCheetah-v5 --only NAME --seeds 3 --first-seed 3

Writes benchmarks/results/tune_<task>.json; rlcore/presets.json names the file and the
candidate that chose each entry.
"""

from __future__ import annotations

import statistics
from concurrent.futures import ThreadPoolExecutor

import click

from benchmarks.harness import machine, results
from benchmarks.tasks import TASKS, train

PENDULUM = "--gamma 0.9 --entropy-coef 0"
NORM = "--normalize-obs --normalize-reward"
# Candidate flags per task (presets off); each name is what the results file records.
CANDIDATES: dict[str, dict[str, str]] = {
    "CartPole-v1": {"defaults": "", "wire-f32": "--wire-dtype float32", "split": "--split-batches"},
    "Acrobot-v1": {
        "defaults": "",
        "norm-obs": "--normalize-obs",
        "norm-obs-ent0": "--normalize-obs --entropy-coef 0",
        "norm-both-ent0": f"{NORM} --entropy-coef 0",
        "norm-both-ent0-T10": f"{NORM} --entropy-coef 0 --rollout-len 10",
        "norm-both-ent0-T5": f"{NORM} --entropy-coef 0 --rollout-len 5",
        "norm-both-ent0-T10-lr2e-3": f"{NORM} --entropy-coef 0 --rollout-len 10 --lr 2e-3",
    },
    "Pendulum-v1": {
        "scale0.1": f"{PENDULUM} --reward-scale 0.1",
        "scale0.1-lr2e-3": f"{PENDULUM} --reward-scale 0.1 --lr 2e-3",
        "norm-reward": f"{PENDULUM} --normalize-reward",
        "norm-both": f"{PENDULUM} {NORM}",
        "norm-both-lr2e-3": f"{PENDULUM} {NORM} --lr 2e-3",
        "norm-reward-T10": f"{PENDULUM} --normalize-reward --rollout-len 10",
        "norm-reward-envs8": f"{PENDULUM} --normalize-reward --num-envs 8",
        "norm-reward-std-1": f"{PENDULUM} --normalize-reward --log-std-init -1",
        "norm-reward-decay": f"{PENDULUM} --normalize-reward --lr-decay",
        "norm-reward-decay-T10": f"{PENDULUM} --normalize-reward --lr-decay --rollout-len 10",
        "norm-reward-std-1-T10": f"{PENDULUM} --normalize-reward --log-std-init -1 --rollout-len 10",  # noqa: E501
    },
    "LunarLander-v3": {
        "defaults": "",
        "g995-ent1e-5": "--gamma 0.995 --entropy-coef 1e-5",
        "g995-norm-obs": "--gamma 0.995 --entropy-coef 1e-5 --normalize-obs",
        "g995-norm-both": f"--gamma 0.995 --entropy-coef 1e-5 {NORM}",
        "g995-norm-both-lr2e-3": f"--gamma 0.995 --entropy-coef 1e-5 {NORM} --lr 2e-3",
        "lr2e-3": "--lr 2e-3",
        "T10": "--rollout-len 10",
        "T5": "--rollout-len 5",
        "T10-lr2e-3": "--rollout-len 10 --lr 2e-3",
        "norm-obs": "--normalize-obs",
        "T10-decay": "--rollout-len 10 --lr-decay",
        "T10-lr2e-3-decay": "--rollout-len 10 --lr 2e-3 --lr-decay",
        "T10-envs8-lr2e-3-decay": "--rollout-len 10 --num-envs 8 --lr 2e-3 --lr-decay",
        "T10-linear": "--rollout-len 10 --batch-lr-power 1",
        "T10-linear-decay": "--rollout-len 10 --batch-lr-power 1 --lr-decay",
        "T10-split": "--rollout-len 10 --split-batches",
        "T10-split-norm-reward": "--rollout-len 10 --split-batches --normalize-reward",
    },
    "InvertedPendulum-v5": {
        "defaults": "",
        "norm-both": NORM,
        "norm-obs": "--normalize-obs",
        "norm-both-ent0-std-1": f"{NORM} --entropy-coef 0 --log-std-init -1",
        "norm-both-ent0-std-1-decay": f"{NORM} --entropy-coef 0 --log-std-init -1 --lr-decay",
        "norm-both-ent0-std-1-decay-T5": f"{NORM} --entropy-coef 0 --log-std-init -1 "
        "--lr-decay --rollout-len 5",
        "norm-both-ent0-decay-T5": f"{NORM} --entropy-coef 0 --lr-decay --rollout-len 5",
    },
    "HalfCheetah-v5": {
        "norm-both": NORM,
        "norm-both-ent0-std-1": f"{NORM} --entropy-coef 0 --log-std-init -1",
        "norm-both-std-1": f"{NORM} --log-std-init -1",
        "norm-both-std-1-T10": f"{NORM} --log-std-init -1 --rollout-len 10",
        "norm-both-lr3e-4": f"{NORM} --lr 3e-4",
        "norm-both-256": f"{NORM} --hidden 256,256",
        "norm-both-ent0-std-1-decay": f"{NORM} --entropy-coef 0 --log-std-init -1 --lr-decay",
        "norm-both-ent0-std-0.5-decay": f"{NORM} --entropy-coef 0 --log-std-init -0.5 --lr-decay",
        "norm-both-std-1-decay": f"{NORM} --log-std-init -1 --lr-decay",
        "norm-both-ent0-std-1-decay-256": f"{NORM} --entropy-coef 0 --log-std-init -1 --lr-decay "
        "--hidden 256,256",
        "norm-both-ent0-std-1-decay-clip0.5": f"{NORM} --entropy-coef 0 --log-std-init -1 "
        "--lr-decay --max-grad-norm 0.5",
        "norm-both-ent0-std-1-decay-envs8": f"{NORM} --entropy-coef 0 --log-std-init -1 "
        "--lr-decay --num-envs 8",
        "norm-both-ent0-std-1-decay-lam0.9": f"{NORM} --entropy-coef 0 --log-std-init -1 "
        "--lr-decay --gae-lambda 0.9",
        "norm-both-ent0-std-1-decay-lr2e-3": f"{NORM} --entropy-coef 0 --log-std-init -1 "
        "--lr-decay --lr 2e-3",
        "norm-both-ent0-std-1-decay-T10": f"{NORM} --entropy-coef 0 --log-std-init -1 "
        "--lr-decay --rollout-len 10",
        "norm-both-ent0-std-1-decay-T5": f"{NORM} --entropy-coef 0 --log-std-init -1 "
        "--lr-decay --rollout-len 5",
        "norm-both-ent0-std-1-decay-T5-bls1": f"{NORM} --entropy-coef 0 --log-std-init -1 "
        "--lr-decay --rollout-len 5 --batch-lr-scale 1",
        "norm-both-ent0-std-1-decay-T5-linear": f"{NORM} --entropy-coef 0 --log-std-init -1 "
        "--lr-decay --rollout-len 5 --batch-lr-power 1",
        "norm-both-ent0-std-1-decay-T5-clip0.5": f"{NORM} --entropy-coef 0 --log-std-init -1 "
        "--lr-decay --rollout-len 5 --max-grad-norm 0.5",
        "norm-both-ent0-decay-T5": f"{NORM} --entropy-coef 0 --lr-decay --rollout-len 5",
        "norm-both-ent0-std-1-decay-T5-envs2": f"{NORM} --entropy-coef 0 --log-std-init -1 "
        "--lr-decay --rollout-len 5 --num-envs 2",
        "norm-both-ent0-std-1-decay-T5-bounded": f"{NORM} --entropy-coef 0 --log-std-init -1 "
        "--lr-decay --rollout-len 5 --bounded-mean",
        "norm-both-ent0-std-1-decay-T5-bounded-linear": f"{NORM} --entropy-coef 0 "
        "--log-std-init -1 --lr-decay --rollout-len 5 --bounded-mean --batch-lr-power 1",
    },
    "MinAtar/Breakout-v1": {
        "defaults": "",
        "lr2e-3": "--lr 2e-3",
        "lr2e-3-envs8": "--lr 2e-3 --num-envs 8",
        "lr2e-3-envs8-decay": "--lr 2e-3 --num-envs 8 --lr-decay",
        "lr2e-3-envs8-decay-ent0.02": "--lr 2e-3 --num-envs 8 --lr-decay --entropy-coef 0.02",
        "lr2.8e-3-envs16-decay-ent0.02": "--lr 2.8e-3 --num-envs 16 --lr-decay --entropy-coef 0.02",
        "lr2e-3-envs8-decay-ent0.02-T10": "--lr 2e-3 --num-envs 8 --lr-decay "
        "--entropy-coef 0.02 --rollout-len 10",
        "lr2e-3-envs8-decay-ent0.02-T5": "--lr 2e-3 --num-envs 8 --lr-decay "
        "--entropy-coef 0.02 --rollout-len 5",
    },
}


def score(runs: list[dict], budget: int) -> tuple[float, float]:
    steps = [r["env_steps"] if r.get("solved") else budget for r in runs]
    best = [r.get("best_return") or float("-inf") for r in runs]
    return statistics.median(steps), -statistics.median(best)


@click.command(help=__doc__.split("\n\n")[0])
@click.option("--task", "env_id", required=True, type=click.Choice(list(CANDIDATES)))
@click.option("--seeds", default=2, show_default=True)
@click.option("--first-seed", default=0, show_default=True,
              help="Run seeds K..K+seeds-1; above 0 they join the runs already "
                   "recorded.")  # fmt: skip
@click.option("--modes", default="gradient,data", show_default=True)
@click.option("--only", default=None, help="Comma-separated candidate names.")
@click.option("--jobs", default=1, show_default=True, help="Runs at a time.")
@click.option("--max-seconds", type=float, default=None, help="Wall cap per run.")
def main(env_id: str, seeds: int, first_seed: int, modes: str, only: str | None, jobs: int,
         max_seconds: float | None) -> None:  # fmt: skip
    task = TASKS[env_id]
    here = machine.show()
    names = only.split(",") if only else list(CANDIDATES[env_id])
    seed_range = range(first_seed, first_seed + seeds)
    todo = [(n, m, s) for n in names for m in modes.split(",") for s in seed_range]

    def one(job):
        name, mode, seed = job
        flags = ("--preset", "none", *CANDIDATES[env_id][name].split())
        result = train(task, mode, seed, flags, max_seconds=max_seconds)
        print(name, mode, seed, {k: v for k, v in result.items() if k != "curve"}, flush=True)
        return job, result

    with ThreadPoolExecutor(jobs) as pool:
        done = list(pool.map(one, todo))
    # Candidates and modes tuned in earlier invocations stay in the file; the modes run now
    # replace theirs, or with --first-seed add seeds to them (a changed flag string drops
    # the candidate's old runs).
    file_name = f"tune_{env_id.replace('/', '-')}.json"
    earlier = results.load(file_name)
    table = earlier.get("candidates", {})
    for name in names:
        flags, old = CANDIDATES[env_id][name], table.get(name, {})
        kept = old.get("runs", {}) if old.get("flags") == flags else {}
        runs = {
            m: [r for r in rs if first_seed and r["seed"] not in seed_range]
            if m in modes.split(",")
            else rs
            for m, rs in kept.items()
        }
        table[name] = {"flags": flags, "runs": runs, "machine": here}
    for (name, mode, seed), result in done:
        table[name]["runs"].setdefault(mode, []).append({"seed": seed, **result})
    for entry in table.values():
        entry["score"] = {m: score(runs, task.budget) for m, runs in entry["runs"].items()}
        entry["worst_mode_steps"] = max(s[0] for s in entry["score"].values())

    def rank(name):
        return table[name]["worst_mode_steps"], min(s[1] for s in table[name]["score"].values())

    ranking = sorted(table, key=rank)
    print("ranking (median env steps to target, worse mode first):")
    for name in ranking:
        print(f"  {name}: {table[name]['worst_mode_steps']:,.0f} {table[name]['score']}")
    out = {"task": task.__dict__, "ranking": ranking, "candidates": table}
    if earlier.get("notes"):  # what a reader must know of older runs, written by hand
        out["notes"] = earlier["notes"]
    results.write(file_name, out, candidates={n: CANDIDATES[env_id][n] for n in names})


if __name__ == "__main__":
    main()
