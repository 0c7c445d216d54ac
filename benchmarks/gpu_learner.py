"""Data mode with the learner's model on a GPU against the same run on the CPU.

`python benchmarks/gpu_learner.py` on a machine with CUDA: for each pixel task, the same
`a3c train --mode data` run (N actors x E envs on this host) with `--device cpu` and then
`--device cuda`; env steps/s and updates/s after a warm-up, and the mean return reached.
Data mode is where a GPU pays: the learner runs the CNN's forward and backward pass on
every batch of rollouts, while gradient mode's learner only applies gradients.
"""

from __future__ import annotations

import argparse

import torch

from benchmarks.common import print_machine, print_table, run_service, steady, write_json

TASKS = ("MinAtar/Breakout-v1", "ALE/Pong-v5")


def measure(env: str, device: str, actors: int, envs: int, seconds: float) -> dict:
    extra = ("--device", device, "--no-tensorboard")
    out = run_service("data", actors, seconds, num_envs=envs, env=env, extra=extra)
    records, summary = out["records"], out["summary"]
    warmup = min(15.0, seconds / 3)
    return {
        "env": env,
        "device": device,
        "actors": actors,
        "envs_per_actor": envs,
        "env_steps_per_second": steady(records, "env_steps_per_second", warmup),
        "updates_per_second": steady(records, "updates_per_second", warmup),
        "env_steps": summary["env_steps"],
        "updates": summary["updates"],
        "mean_return_100": summary["mean_return_100"],
        "staleness_mean": steady(records, "staleness_mean", warmup),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--actors", type=int, default=8)
    parser.add_argument("--num-envs", type=int, default=8)
    parser.add_argument("--seconds", type=float, default=45.0)
    parser.add_argument("--tasks", default=",".join(TASKS), help="comma-separated env ids")
    parser.add_argument("--out", default="gpu_learner.json", help="results file name")
    args = parser.parse_args()
    if not torch.cuda.is_available():
        raise SystemExit("no CUDA device: this benchmark compares --device cuda with cpu")
    machine = print_machine()
    machine["gpu"] = torch.cuda.get_device_name(0)
    rows = []
    for env in args.tasks.split(","):
        by_device = {}
        for device in ("cpu", "cuda"):
            by_device[device] = measure(env, device, args.actors, args.num_envs, args.seconds)
            rows.append(by_device[device])
            print(rows[-1], flush=True)
        cpu, gpu = by_device["cpu"], by_device["cuda"]
        if cpu["env_steps_per_second"] and gpu["env_steps_per_second"]:
            gpu["x_cpu"] = gpu["env_steps_per_second"] / cpu["env_steps_per_second"]
    print_table(
        rows,
        [
            ("env", "task", ""),
            ("device", "learner", ""),
            ("env_steps_per_second", "env steps/s", ",.0f"),
            ("x_cpu", "x cpu", ".2f"),
            ("updates_per_second", "updates/s", ".1f"),
            ("staleness_mean", "staleness", ".1f"),
            ("mean_return_100", "mean return", ".1f"),
        ],
    )
    write_json(args.out, {"machine": machine, "args": vars(args), "rows": rows})


if __name__ == "__main__":
    main()
