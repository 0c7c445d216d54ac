"""How long until the first env steps: from typing `a3c train` to the learner holding the
first work, and from typing `a3c actor` (the learner already up) to the same.

Each measure starts the command as a user does (`python -m a3c ...`, a new Python process)
and ends at the learner's `first_work_at` (summary.json): the first env steps have been
taken, sent and received by then, so this bounds the time to the first env step from above.
`import torch` alone, in a fresh process, is the reference measured in the same run.

    python -m benchmarks.startup                 # 5 repeats of each, both modes
    python -m benchmarks.startup --repeats 3 --modes data

Writes benchmarks/results/startup.json.
"""

from __future__ import annotations

import socket
import statistics
import subprocess
import sys
import time

import click

from benchmarks.harness import launch, machine, results
from benchmarks.harness.table import print_table

BUDGET = "20000"
"""Env steps each run takes after its start: enough to see work, little else."""


def import_torch() -> float:
    start = time.time()
    subprocess.run([sys.executable, "-c", "import torch"], check=True)
    return time.time() - start


def train_start(mode: str) -> float:
    with launch.run_dir() as path:
        args = ["train", "--mode", mode, "--env", "CartPole-v1", "--actors", "2",
                "--run-dir", str(path), "--max-env-steps", BUDGET, "--no-tensorboard"]  # fmt: skip
        launch.remember(args, path)
        start = time.time()
        subprocess.run([*launch.A3C, *args], check=True, capture_output=True, cwd=launch.ROOT)
        return launch.read(path, args).summary["first_work_at"] - start


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def actor_start(mode: str) -> float:
    """The learner is bound before the clock starts: only the actor's start counts."""
    with launch.run_dir() as path:
        address = f"tcp://127.0.0.1:{_free_port()}"
        args = launch.learner_args(mode, address, path, "--env", "CartPole-v1",
                                   "--max-env-steps", BUDGET)  # fmt: skip
        learner = subprocess.Popen([*launch.A3C, *args], cwd=launch.ROOT, text=True,
                                   stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)  # fmt: skip
        for line in learner.stderr:  # its log says when it listens
            if "listening on" in line:
                break
        start = time.time()
        actor = subprocess.run([*launch.A3C, "actor", "--learner", address],
                               capture_output=True, cwd=launch.ROOT)  # fmt: skip
        learner.stderr.close()
        if learner.wait(timeout=60) != 0 or actor.returncode != 0:
            raise click.ClickException(f"{mode}: learner or actor failed")
        return launch.read(path, args).summary["first_work_at"] - start


def row(what: str, mode: str, times: list[float]) -> dict:
    return {
        "what": what,
        "mode": mode,
        "median_s": statistics.median(times),
        "min_s": min(times),
        "max_s": max(times),
        "runs": times,
    }


@click.command(help=__doc__.split("\n\n")[0])
@click.option("--repeats", default=5, show_default=True)
@click.option("--modes", default="gradient,data", show_default=True)
def main(repeats: int, modes: str) -> None:
    machine.show()
    torch_alone = [import_torch() for _ in range(repeats)]
    rows = [row("python -c 'import torch' (reference)", "", torch_alone)]
    for mode in modes.split(","):
        train = [train_start(mode) for _ in range(repeats)]
        actor = [actor_start(mode) for _ in range(repeats)]
        rows += [row("a3c train to first work", mode, train),
                 row("a3c actor to first work", mode, actor)]  # fmt: skip
    print_table(rows, [
        ("what", "from", ""), ("mode", "mode", ""), ("median_s", "median s", ".2f"),
        ("min_s", "min", ".2f"), ("max_s", "max", ".2f"),
    ])  # fmt: skip
    results.write("startup.json", {"repeats": repeats, "rows": rows})


if __name__ == "__main__":
    main()
