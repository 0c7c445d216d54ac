"""Does learning change through relays? An env to its target with 4 actors, straight to
the learner (`a3c train`) and through 2 relays (2 actors each), per mode, over seeds, in one
run: solved seeds, env steps and wall time to the target.

    python -m benchmarks.relay_learning --seeds 3
    python -m benchmarks.relay_learning --env MinAtar/Breakout-v1 --target 20 \
        --max-env-steps 5000000 --modes data --no-direct --seeds 1
"""

from __future__ import annotations

import statistics
import subprocess
import time
from dataclasses import dataclass

import click

from benchmarks.harness import launch, machine, results
from benchmarks.harness.table import print_table

ACTORS, RELAYS = 4, 2


@dataclass(frozen=True)
class Task:
    env: str
    target: float
    seconds: float
    env_steps: int | None


def direct(task: Task, mode: str, seed: int) -> dict:
    run = launch.train(task.env, mode, actors=ACTORS, seed=seed, seconds=task.seconds,
                       env_steps=task.env_steps, target=task.target)  # fmt: skip
    return _row("direct", mode, seed, run.summary, run.seconds)


def relayed(task: Task, mode: str, seed: int, port: int) -> dict:
    learner_at = f"tcp://127.0.0.1:{port}"
    relays = [f"tcp://127.0.0.1:{port + 1 + i}" for i in range(RELAYS)]
    with launch.run_dir() as path:
        limits = ["--target-return", str(task.target), "--max-seconds", str(task.seconds)]
        if task.env_steps is not None:
            limits += ["--max-env-steps", str(task.env_steps)]
        args = launch.learner_args(mode, learner_at, path, "--env", task.env, "--seed",
                                   str(seed), *limits)  # fmt: skip
        start = time.monotonic()
        procs = [subprocess.Popen([*launch.A3C, *args], cwd=launch.ROOT, stderr=subprocess.PIPE)]
        for i, bind in enumerate(relays):
            cmd = ["relay", "--learner", learner_at, "--bind", bind, "--relay-id", f"relay-{i}"]
            launch.remember(cmd, path)
            procs.append(subprocess.Popen([*launch.A3C, *cmd], cwd=launch.ROOT, **_QUIET))
            actors = ["actor", "--learner", bind, "--workers", str(ACTORS // RELAYS)]
            launch.remember(actors, path)
            procs.append(subprocess.Popen([*launch.A3C, *actors], cwd=launch.ROOT, **_QUIET))
        try:
            _, err = procs[0].communicate(timeout=task.seconds + 180)
            if procs[0].returncode != 0:
                raise launch.RunFailed([*launch.A3C, *args], err.decode())
            wall = time.monotonic() - start
            return _row("2 relays", mode, seed, launch.read(path, args).summary, wall)
        finally:
            for proc in procs:
                if proc.poll() is None:
                    proc.kill()
                    proc.wait()


_QUIET = {"stdout": subprocess.DEVNULL, "stderr": subprocess.DEVNULL}


def _row(case: str, mode: str, seed: int, summary: dict, wall: float) -> dict:
    return {
        "case": case, "mode": mode, "seed": seed, "solved": summary["solved"],
        "env_steps": summary["env_steps"], "wall_seconds": round(wall, 1),
        "relays": summary.get("relays", {}),
    }  # fmt: skip


def summarize(rows: list[dict]) -> list[dict]:
    out = []
    for mode in ("gradient", "data"):
        for case in ("direct", "2 relays"):
            runs = [r for r in rows if (r["mode"], r["case"]) == (mode, case)]
            if not runs:
                continue
            steps = [r["env_steps"] for r in runs]
            out.append({
                "mode": mode, "case": case,
                "solved": f"{sum(r['solved'] for r in runs)}/{len(runs)}",
                "env_steps_median": statistics.median(steps),
                "env_steps_min": min(steps), "env_steps_max": max(steps),
                "wall_median": statistics.median(r["wall_seconds"] for r in runs),
            })  # fmt: skip
    return out


COLUMNS = [
    ("mode", "mode", ""), ("case", "case", ""), ("solved", "solved", ""),
    ("env_steps_median", "env steps median", ",.0f"), ("env_steps_min", "min", ",.0f"),
    ("env_steps_max", "max", ",.0f"), ("wall_median", "wall s median", ".1f"),
]  # fmt: skip


@click.command(help=__doc__.split("\n\n")[0])
@click.option("--env", default="CartPole-v1", show_default=True)
@click.option("--target", default=475.0, show_default=True, help="Mean return to reach.")
@click.option("--seeds", default=3, show_default=True)
@click.option("--seconds", default=120.0, show_default=True, help="Wall budget of each run.")
@click.option("--max-env-steps", type=int, default=None, help="Env-step budget of each run.")
@click.option("--modes", default="gradient,data", show_default=True)
@click.option("--direct/--no-direct", "with_direct", default=True, show_default=True,
              help="Also run each seed straight to the learner.")  # fmt: skip
@click.option("--port", default=5900, show_default=True)
def main(env, target, seeds, seconds, max_env_steps, modes, with_direct, port) -> None:
    machine.show()
    task, rows = Task(env, target, seconds, max_env_steps), []
    for mode in modes.split(","):
        for seed in range(seeds):
            new = [direct(task, mode, seed)] if with_direct else []
            new.append(relayed(task, mode, seed, port))
            rows += new
            print(f"  {mode} seed {seed}: " + ", ".join(
                f"{r['case']} {r['env_steps']:,} steps {r['wall_seconds']}s" for r in new
            ), flush=True)  # fmt: skip
    table = summarize(rows)
    print_table(table, COLUMNS)
    name = "relay_learning.json" if env == "CartPole-v1" else f"relay_learning_{_file(env)}.json"
    results.write(name, {"env": env, "target": target, "rows": rows, "summary": table})


def _file(env: str) -> str:
    return env.replace("/", "-")


if __name__ == "__main__":
    main()
