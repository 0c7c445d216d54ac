"""Data mode with the learner's model on a GPU against the same run on the CPU.

`python -m benchmarks.gpu_learner` on a machine with CUDA: for each pixel task, the same
`a3c train --mode data` run (N actors x E envs on this host) with `--device cpu` and then
`--device cuda`; env steps/s and updates/s after a warm-up, and the mean return reached.
Data mode is where a GPU pays: the learner runs the CNN's forward and backward pass on
every batch of rollouts, while gradient mode's learner only applies gradients.
"""

from __future__ import annotations

import click

from benchmarks.harness import launch, machine, results
from benchmarks.harness.records import steady
from benchmarks.harness.table import print_table

TASKS = ("MinAtar/Breakout-v1", "ALE/Pong-v5")


def measure(env: str, device: str, actors: int, envs: int, seconds: float) -> dict:
    run = launch.train(env, "data", actors=actors, seconds=seconds, num_envs=envs,
                       flags=("--device", device))  # fmt: skip
    warmup = min(15.0, seconds / 3)
    return {
        "env": env,
        "device": device,
        "actors": actors,
        "envs_per_actor": envs,
        "env_steps_per_second": steady(run.records, "env_steps_per_second", warmup),
        "updates_per_second": steady(run.records, "updates_per_second", warmup),
        "env_steps": run.summary["env_steps"],
        "updates": run.summary["updates"],
        "mean_return_100": run.summary["mean_return_100"],
        "staleness_mean": steady(run.records, "staleness_mean", warmup),
    }


@click.command(help=__doc__.split("\n\n")[0])
@click.option("--actors", default=8, show_default=True)
@click.option("--num-envs", default=8, show_default=True)
@click.option("--seconds", default=45.0, show_default=True)
@click.option("--tasks", default=",".join(TASKS), show_default=True,
              help="Comma-separated env ids.")  # fmt: skip
@click.option("--out", default="gpu_learner.json", show_default=True, help="Results file name.")
def main(actors: int, num_envs: int, seconds: float, tasks: str, out: str) -> None:
    import torch

    if not torch.cuda.is_available():
        raise SystemExit("no CUDA device: this benchmark compares --device cuda with cpu")
    machine.show()
    rows = []
    for env in tasks.split(","):
        by_device = {}
        for device in ("cpu", "cuda"):
            by_device[device] = measure(env, device, actors, num_envs, seconds)
            rows.append(by_device[device])
            print(rows[-1], flush=True)
        cpu, gpu = by_device["cpu"], by_device["cuda"]
        if cpu["env_steps_per_second"] and gpu["env_steps_per_second"]:
            gpu["x_cpu"] = gpu["env_steps_per_second"] / cpu["env_steps_per_second"]
    print_table(rows, [
        ("env", "task", ""), ("device", "learner", ""),
        ("env_steps_per_second", "env steps/s", ",.0f"), ("x_cpu", "x cpu", ".2f"),
        ("updates_per_second", "updates/s", ".1f"), ("staleness_mean", "staleness", ".1f"),
        ("mean_return_100", "mean return", ".1f"),
    ])  # fmt: skip
    results.write(out, {"rows": rows})


if __name__ == "__main__":
    main()
