"""Choose presets by measurement: each candidate setting of a task, in both modes, over
seeds, with presets off and the candidate's flags alone; ranked by env steps (or wall
seconds) to the task's target (a run that misses counts its whole budget), ties by the best
mean return. Several tasks are a family: a candidate ranks by its worst task.

    python -m benchmarks.tune --task Acrobot-v1 --seeds 2
    python -m benchmarks.tune --task MinAtar/Breakout-v1 --jobs 4 --max-seconds 600
    python -m benchmarks.tune --task HalfCheetah-v5 --task Walker2d-v5 --task Ant-v5 \\
        --candidates mujoco --seeds 3
    python -m benchmarks.tune --task corridor_env:Corridor-v0 --target 0.9 --budget 20000 \\
        --candidates generic --write-preset my-presets.json

Writes benchmarks/results/tune_<task>.json per task and tune_<set>.json for a family;
rlcore/presets.json names the file and the candidate that chose each entry. With
--write-preset the best candidate becomes an entry of your own presets file, which
`a3c train --preset-file FILE` applies.
"""

from __future__ import annotations

import dataclasses
import json
import statistics
import typing
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import click

from benchmarks.harness import machine, results
from benchmarks.tasks import TASKS, Task, train
from rlcore.hyperparams import Hyperparams


def with_flags(base: str, extra: str) -> str:
    """`base` with the options in `extra` set there: an option `base` already gives has its
    value replaced, so a candidate reads as the settings it runs with."""
    given = {word for word in extra.split() if word.startswith("--")}
    out, words = [], base.split()
    i = 0
    while i < len(words):
        if words[i] in given:  # drop it and its value, if it has one
            i += 2 if i + 1 < len(words) and not words[i + 1].startswith("--") else 1
            continue
        out.append(words[i])
        i += 1
    return " ".join(out + extra.split())


PENDULUM = "--gamma 0.9 --entropy-coef 0"
NORM = "--normalize-obs --normalize-reward"
MUJOCO = (f"{NORM} --entropy-coef 0 --log-std-init -1 --lr-decay --rollout-len 5 "
          "--bounded-mean --batch-lr-power 1")  # fmt: skip
# Candidate flags per task (presets off); each name is what the results file records.
CANDIDATES: dict[str, dict[str, str]] = {
    "CartPole-v1": {
        "defaults": "",
        "wire-f32": "--wire-dtype float32",
        "split": "--split-batches",
        "ent0": "--entropy-coef 0",
        "lr2e-3": "--lr 2e-3",
        "lr3e-3": "--lr 3e-3",
        "T10": "--rollout-len 10",
        "T10-lr2e-3": "--rollout-len 10 --lr 2e-3",
        "T10-split": "--rollout-len 10 --split-batches",
        "g98-lam0.8": "--gamma 0.98 --gae-lambda 0.8",
        "norm-reward": "--normalize-reward",
        "envs8": "--num-envs 8",
        "lr2e-3-split": "--lr 2e-3 --split-batches",
        # Aimed at data mode's rare collapse at lr 3e-3 (a policy stuck on one action):
        # the same step size as gradient mode, or a tighter clip.
        "lr3e-3-bls1": "--lr 3e-3 --batch-lr-scale 1",
        "lr3e-3-clip0.5": "--lr 3e-3 --max-grad-norm 0.5",
    },
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
    # The MuJoCo family, ranked by its worst task (--task HalfCheetah-v5 --task Walker2d-v5
    # --task Ant-v5 --candidates mujoco); the first is the preset tuned on HalfCheetah alone.
    "mujoco": {
        "preset": MUJOCO,
        "preset-256": f"{MUJOCO} --hidden 256,256",
        "preset-128": f"{MUJOCO} --hidden 128,128",
        "preset-vf1": f"{MUJOCO} --value-coef 1",
        "preset-lam0.95": f"{MUJOCO} --gae-lambda 0.95",
        "preset-T10": with_flags(MUJOCO, "--rollout-len 10"),
        "preset-std-0.5": with_flags(MUJOCO, "--log-std-init -0.5"),
        "preset-nodecay": MUJOCO.replace(" --lr-decay", ""),
        "preset-unbounded": MUJOCO.replace(" --bounded-mean", ""),
        "preset-256-lam0.95": f"{MUJOCO} --hidden 256,256 --gae-lambda 0.95",
        # Walker2d's runs settle on one gait and stop exploring (entropy 0, std e^-1).
        "preset-std0": with_flags(MUJOCO, "--log-std-init 0"),
        "preset-lr5e-4": f"{MUJOCO} --lr 5e-4",
    },
    # For an env of your own (--task module:Id --target R --budget N --candidates generic):
    # the knobs that moved the tuned tasks most.
    "generic": {
        "defaults": "",
        "T5": "--rollout-len 5",
        "T10": "--rollout-len 10",
        "norm-both": NORM,
        "norm-both-T10": f"{NORM} --rollout-len 10",
        "norm-both-ent0-T10": f"{NORM} --entropy-coef 0 --rollout-len 10",
        "lr2e-3-T10": "--lr 2e-3 --rollout-len 10",
        "T10-split": "--rollout-len 10 --split-batches",
        "T10-decay": "--rollout-len 10 --lr-decay",
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


def score(runs: list[dict], budget: int, by: str = "steps") -> tuple[float, float]:
    """(median env steps to the target, a miss counting the whole budget; or with
    by="seconds" the median wall seconds, a miss counting its own), then -median best."""
    if by == "steps":
        cost = [r["env_steps"] if r.get("solved") else budget for r in runs]
    else:
        cost = [r.get("wall_seconds", float("inf")) for r in runs]
    best = [r.get("best_return") or float("-inf") for r in runs]
    return statistics.median(cost), -statistics.median(best)


def shortfall(entry: dict, task: Task) -> float:
    """One candidate on one task of a family, comparable across tasks: the worse mode's
    median of env steps to the target over the budget (at most 1), or for a run that
    missed, 1 plus how far its best return fell short, as a fraction of the target."""

    def one(run: dict) -> float:
        if run.get("solved"):
            return run["env_steps"] / task.budget
        best = run.get("best_return")
        if best is None:
            return 2.0
        return 1 + max(0.0, task.target - best) / max(abs(task.target), 1.0)

    per_mode = [statistics.median(one(r) for r in runs) for runs in entry["runs"].values() if runs]
    return max(per_mode, default=2.0)


def tasks_of(env_ids: tuple[str, ...], target: float | None, budget: int | None) -> list[Task]:
    """The tasks to tune on; an env of benchmarks/tasks.py takes its target and budget
    unless given, any other env needs both."""
    out = []
    for env_id in env_ids:
        known = TASKS.get(env_id)
        if known is None and (target is None or budget is None):
            raise click.UsageError(f"{env_id} is not a known task: give --target and --budget")
        task = known or Task(env_id, target, budget, "your target")
        given = {"target": target, "budget": budget}
        out.append(dataclasses.replace(task, **{k: v for k, v in given.items() if v is not None}))
    return out


def run_task(task: Task, candidates: dict[str, str], names: list[str], modes: list[str],
             seeds: range, jobs: int, max_seconds: float | None,
             by: str) -> tuple[str, dict]:  # fmt: skip
    """Every (candidate, mode, seed) of one task; returns its results file and candidates."""
    here = machine.machine()
    todo = [(n, m, s) for n in names for m in modes for s in seeds]

    def one(job):
        name, mode, seed = job
        flags = ("--preset", "none", *candidates[name].split())
        result = train(task, mode, seed, flags, max_seconds=max_seconds)
        print(task.env_id, name, mode, seed,
              {k: v for k, v in result.items() if k != "curve"}, flush=True)  # fmt: skip
        return job, result

    with ThreadPoolExecutor(jobs) as pool:
        done = list(pool.map(one, todo))
    # Candidates and modes tuned in earlier invocations stay in the file; the modes run now
    # replace theirs, or with --first-seed add seeds to them (a changed flag string drops
    # the candidate's old runs).
    file_name = task_file(task)
    earlier = results.load(file_name)
    table = earlier.get("candidates", {})
    for name in names:
        flags, old = candidates[name], table.get(name, {})
        kept = old.get("runs", {}) if old.get("flags") == flags else {}
        runs = {
            m: [r for r in rs if seeds.start and r["seed"] not in seeds] if m in modes else rs
            for m, rs in kept.items()
        }
        table[name] = {"flags": flags, "runs": runs, "machine": here}
    for (name, mode, seed), result in done:
        table[name]["runs"].setdefault(mode, []).append({"seed": seed, **result})
    for entry in table.values():
        entry["score"] = {m: score(runs, task.budget, by) for m, runs in entry["runs"].items()}
        entry["worst_mode_steps"] = max(s[0] for s in entry["score"].values())

    def rank(name):
        return table[name]["worst_mode_steps"], min(s[1] for s in table[name]["score"].values())

    ranking = sorted(table, key=rank)
    unit = "env steps" if by == "steps" else "wall seconds"
    print(f"{task.env_id} ranking (median {unit} to target, worse mode first):")
    for name in ranking:
        print(f"  {name}: {table[name]['worst_mode_steps']:,.1f} {table[name]['score']}")
    out = {"task": task.__dict__, "rank_by": by, "ranking": ranking, "candidates": table}
    if earlier.get("notes"):  # what a reader must know of older runs, written by hand
        out["notes"] = earlier["notes"]
    results.write(file_name, out, candidates={n: candidates[n] for n in names})
    return file_name, table


def task_file(task: Task) -> str:
    return f"tune_{task.env_id.replace('/', '-').replace(':', '-')}.json"


def recorded(task: Task) -> dict:
    """A task's candidates as its results file holds them (none if it was never tuned)."""
    return results.load(task_file(task)).get("candidates", {})


def outcome(entry: dict, task: Task) -> dict:
    """Per mode: seeds that reached the target, seeds run, median env steps to it (a miss
    counting the budget) and median best return."""
    out = {}
    for mode, runs in entry["runs"].items():
        median_steps, minus_best = score(runs, task.budget)
        best = None if minus_best == float("inf") else -minus_best  # no run reported one
        out[mode] = {"reached": sum(bool(r.get("solved")) for r in runs), "seeds": len(runs),
                     "median_steps": median_steps, "median_best": best}  # fmt: skip
    return out


def same_flags(table: dict, name: str, flags: str) -> dict | None:
    """The recorded candidate with these flags: by its name, or under another name (a task's
    own set may hold the same flags, as HalfCheetah's holds the mujoco preset's)."""
    mine = table.get(name)
    if mine and mine.get("flags") == flags and mine.get("runs"):
        return mine
    return next((e for e in table.values() if e.get("flags") == flags and e.get("runs")), None)


def rank_family(family: str, tasks: list[Task], tables: dict[str, dict],
                candidates: dict[str, str]) -> tuple[str, list[str]]:  # fmt: skip
    """Candidates run on every task of the family, ranked by their worst task."""
    found = {n: [same_flags(tables[t.env_id], n, flags) for t in tasks]
             for n, flags in candidates.items()}  # fmt: skip
    rows = {}
    for name, entries in found.items():
        if not all(entries):
            continue
        per_task = {t.env_id: shortfall(e, t) for t, e in zip(tasks, entries, strict=True)}
        cells = {t.env_id: outcome(e, t) for t, e in zip(tasks, entries, strict=True)}
        rows[name] = {"flags": candidates[name], "per_task": per_task, "cells": cells,
                      "worst": max(per_task.values())}  # fmt: skip
    ranking = sorted(rows, key=lambda n: rows[n]["worst"])
    print(f"{family} ranking by the worst task (env steps to target / budget; >1: missed):")
    for name in ranking:
        cells = ", ".join(f"{t}: {v:.2f}" for t, v in rows[name]["per_task"].items())
        print(f"  {name}: worst {rows[name]['worst']:.2f} ({cells})")
    file_name = f"tune_{family}.json"
    results.write(file_name, {"tasks": [t.__dict__ for t in tasks], "ranking": ranking,
                              "candidates": rows})  # fmt: skip
    return file_name, ranking


def preset_entry(name: str, env_ids: list[str], flags: str, chosen_by: str) -> dict:
    """A presets-file entry (rlcore/presets.json's format) holding `flags` as settings."""
    from benchmarks.learning import flag_settings

    types = typing.get_type_hints(Hyperparams)
    settings = {}
    for key, value in flag_settings(flags).items():
        kind = types[key]
        settings[key] = value if kind is bool or isinstance(value, list) else kind(value)
    return {"name": name, "ids": env_ids, "settings": settings, "chosen_by": chosen_by}


def add_preset(path: Path, entry: dict) -> None:
    """Add `entry` to the presets file at `path` (replacing one of the same name)."""
    data = json.loads(path.read_text()) if path.exists() else {"presets": []}
    data["presets"] = [p for p in data["presets"] if p["name"] != entry["name"]] + [entry]
    path.write_text(json.dumps(data, indent=2) + "\n")
    print(f"wrote preset {entry['name']!r} to {path}: {entry['settings']}")


@click.command(help=__doc__.split("\n\n")[0])
@click.option("--task", "env_ids", required=True, multiple=True,
              help="An env id (repeat for a family, ranked by its worst task); an env not in "
                   "benchmarks/tasks.py needs --target and --budget.")  # fmt: skip
@click.option(
    "--candidates",
    "candidate_set",
    default=None,
    help=f"Candidate set: {', '.join(CANDIDATES)} [default: the task's own].",
)
@click.option("--target", type=float, default=None, help="Mean return to reach.")
@click.option("--budget", type=int, default=None, help="Env steps a run may use.")
@click.option("--seeds", default=2, show_default=True)
@click.option("--first-seed", default=0, show_default=True,
              help="Run seeds K..K+seeds-1; above 0 they join the runs already "
                   "recorded.")  # fmt: skip
@click.option("--modes", default="gradient,data", show_default=True)
@click.option("--only", default=None, help="Comma-separated candidate names.")
@click.option("--jobs", default=1, show_default=True, help="Runs at a time.")
@click.option("--max-seconds", type=float, default=None, help="Wall cap per run.")
@click.option("--rank-by", type=click.Choice(["steps", "seconds"]), default="steps",
              show_default=True, help="One task's ranking: env steps or wall seconds to the "
              "target.")  # fmt: skip
@click.option("--write-preset", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="Add the best candidate as an entry of this presets file (for "
                   "--preset-file).")  # fmt: skip
@click.option("--preset-name", default=None, help="That entry's name [default: from the task].")
@click.option("--rank-only", is_flag=True,
              help="Run nothing: rank the family from the runs its tasks' files hold (tasks "
                   "tuned in separate invocations, or with different seeds).")  # fmt: skip
def main(env_ids: tuple[str, ...], candidate_set: str | None, target: float | None,
         budget: int | None, seeds: int, first_seed: int, modes: str, only: str | None,
         jobs: int, max_seconds: float | None, rank_by: str, write_preset: Path | None,
         preset_name: str | None, rank_only: bool) -> None:  # fmt: skip
    tasks = tasks_of(env_ids, target, budget)
    set_name = candidate_set or (env_ids[0] if len(env_ids) == 1 else None)
    if set_name not in CANDIDATES:
        raise click.UsageError(f"no candidate set {set_name!r}: give --candidates, one of "
                               f"{', '.join(CANDIDATES)}")  # fmt: skip
    candidates = CANDIDATES[set_name]
    names = only.split(",") if only else list(candidates)
    unknown = [n for n in names if n not in candidates]
    if unknown:
        raise click.UsageError(f"unknown candidates {unknown} in set {set_name!r}")
    if rank_only and len(tasks) < 2:
        raise click.UsageError("--rank-only ranks a family: give two --task or more")
    machine.show()
    seed_range = range(first_seed, first_seed + seeds)
    tables, files = {}, {}
    for task in tasks:
        if rank_only:
            files[task.env_id], tables[task.env_id] = task_file(task), recorded(task)
            continue
        files[task.env_id], tables[task.env_id] = run_task(
            task, candidates, names, modes.split(","), seed_range, jobs, max_seconds, rank_by
        )
    if len(tasks) > 1:
        file_name, ranking = rank_family(set_name, tasks, tables, candidates)
    else:
        file_name = files[tasks[0].env_id]
        ranking = json.loads(results.path(file_name).read_text())["ranking"]
    if write_preset is not None:
        best = ranking[0]
        name = preset_name or tasks[0].env_id.split(":")[-1].split("/")[-1].lower()
        entry = preset_entry(name, list(env_ids), candidates.get(best, ""),
                             f"{file_name}, candidate {best}")  # fmt: skip
        add_preset(write_preset, entry)


if __name__ == "__main__":
    main()
