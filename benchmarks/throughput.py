"""Env steps per second of this service against the seed baseline and this machine's ceiling.

For each mode, number of actors (1, 2, 4) and envs per actor (1, the default 4, 8, 32): a
training run of `--seconds`, measured after a warm-up. Also reported: learner updates/s,
the latency from a learner update to an actor acting on the new weights, and bytes on the
wire per env step.
References, measured in the same run:
  (a) the seed article's design (benchmarks/seed_baseline.py) with as many workers;
  (b) the ceiling: one process per core stepping the same envs with the same policy
      (batched inference), with no learning and no sockets.

    python -m benchmarks.throughput                      # full matrix, about 12 minutes
    python -m benchmarks.throughput --quick --runs 3     # 2 actors at the defaults, 3 times

With `--runs N` every measurement, the seed design's included, is repeated N times, each
repeat a row of its own: a ratio to the seed holds in each run, not on average.
"""

from __future__ import annotations

import multiprocessing as mp
import os
import time

import click

from benchmarks.harness import launch, machine, results
from benchmarks.harness.records import steady
from benchmarks.harness.table import print_table
from rlcore.hyperparams import Hyperparams

DEFAULT_ENVS = Hyperparams().num_envs


def _ceiling_worker(num_envs: int, seconds: float, seed: int, out) -> None:
    import torch

    from actor.collector import Collector
    from rlcore.envs import VectorEnv
    from rlcore.hyperparams import Hyperparams
    from rlcore.networks import build_network

    torch.set_num_threads(1)
    envs = VectorEnv("CartPole-v1", num_envs, seed)
    envs.reset()
    model = build_network(envs.spec, Hyperparams(hidden=(64, 64)), seed=seed)
    collector = Collector(envs, 20, torch.Generator().manual_seed(seed), 0)
    steps, start = 0, time.monotonic()
    while time.monotonic() - start < seconds:
        steps += collector.collect(model).num_steps
    out.put(steps / (time.monotonic() - start))


def ceiling(num_envs: int, seconds: float) -> float:
    """Env steps/s of one no-learning process per core, summed."""
    ctx = mp.get_context("spawn")
    out = ctx.Queue()
    procs = [
        ctx.Process(target=_ceiling_worker, args=(num_envs, seconds, i, out))
        for i in range(os.cpu_count() or 1)
    ]
    for p in procs:
        p.start()
    rates = [out.get() for _ in procs]
    for p in procs:
        p.join()
    return sum(rates)


def measure_service(mode: str, actors: int, envs: int | None, seconds: float) -> dict:
    """`envs` None: the service's default number of envs per actor."""
    run = launch.train("CartPole-v1", mode, actors=actors, seconds=seconds, num_envs=envs)
    recs, warm = run.records, min(4.0, seconds / 3)
    return {
        "mode": mode,
        "actors": actors,
        "envs_per_actor": run.config["hp"]["num_envs"],
        "env_steps_per_second": steady(recs, "env_steps_per_second", warm),
        "updates_per_second": steady(recs, "updates_per_second", warm),
        "weights_latency_ms": steady(recs, "weights_latency_ms_mean", warm),
        "bytes_per_env_step": steady(recs, "bytes_per_env_step", warm),
        "staleness_mean": steady(recs, "staleness_mean", warm),
    }


@click.command(help=__doc__.split("\n\n")[0])
@click.option("--seconds", default=12.0, show_default=True, help="Per configuration.")
@click.option("--quick", is_flag=True, help="2 actors at the default envs per actor only.")
@click.option("--runs", default=1, show_default=True, help="Repeats of every measurement.")
def main(seconds: float, quick: bool, runs: int) -> None:
    machine.show()
    actor_counts, env_counts = ([2], [None]) if quick else ([1, 2, 4], [1, None, 8, 32])
    ceilings = {e: ceiling(e or DEFAULT_ENVS, min(seconds, 8)) for e in env_counts}
    rows, seed_rates = [], {}
    for run in range(1, runs + 1):
        rates = measure_seed(actor_counts, seconds)
        seed_rates.update({(d, w, run): v for (d, w), v in rates.items()})
        for mode in ("gradient", "data"):
            for actors in actor_counts:
                for envs in env_counts:
                    row = {"run": run, **measure_service(mode, actors, envs, seconds)}
                    rate = row["env_steps_per_second"] or 0.0
                    row["seed_baseline_steps_per_second"] = rates[mode, actors]
                    row["x_seed_baseline"] = rate / rates[mode, actors]
                    row["ceiling_steps_per_second"] = ceilings[envs]
                    row["pct_of_ceiling"] = 100 * rate / ceilings[envs]
                    rows.append(row)
                    print(f"  run {run} {mode:8s} actors {actors} envs {row['envs_per_actor']:2d}:"
                          f" {rate:9,.0f} steps/s, {row['x_seed_baseline']:.1f}x the seed",
                          flush=True)  # fmt: skip
    print()
    print_table(rows, [
        ("run", "run", "d"), ("mode", "mode", ""), ("actors", "actors", "d"),
        ("envs_per_actor", "envs/actor", "d"), ("env_steps_per_second", "env steps/s", ",.0f"),
        ("x_seed_baseline", "x seed", ".1f"), ("pct_of_ceiling", "% ceiling", ".0f"),
        ("updates_per_second", "updates/s", ",.0f"), ("weights_latency_ms", "latency ms", ".1f"),
        ("bytes_per_env_step", "bytes/step", ",.0f"), ("staleness_mean", "staleness", ".1f"),
    ])  # fmt: skip
    print()
    print(
        "references: seed baseline env steps/s "
        + ", ".join(f"{d} x{w} (run {r}): {v:,.0f}" for (d, w, r), v in seed_rates.items())
    )
    results.write(
        "throughput.json",
        {
            "seconds": seconds,
            "runs": runs,
            "rows": rows,
            "seed_baseline": {f"{d}-{w}-run{r}": v for (d, w, r), v in seed_rates.items()},
            "ceiling": {str(e or DEFAULT_ENVS): v for e, v in ceilings.items()},
        },
    )


def measure_seed(actor_counts: list[int], seconds: float) -> dict:
    """The seed design's env steps/s with as many workers, per design."""
    from benchmarks import seed_baseline  # torch: after the options are read

    return {
        (design, workers): seed_baseline.run(design, workers, seconds, target=None)[
            "env_steps_per_second"
        ]
        for design in ("gradient", "data")
        for workers in actor_counts
    }


if __name__ == "__main__":
    main()
