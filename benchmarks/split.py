"""Data mode under load: how many rollouts each update learns, and how fast, with rounds
learned as one batch, split without bound (one update per rollout), or split into at most
`--split-max` updates (the bound `--split-batches` has today).

Each case is a CartPole-v1 data-mode run with `--actors` actors (the same count for all)
for `--seconds`, measured after a warm-up: env steps/s, updates/s and the rollouts per
update that follow from them.

    python -m benchmarks.split                     # 8 actors, 15 s per case
    python -m benchmarks.split --actors 16 --seconds 20

Writes benchmarks/results/split.json.
"""

from __future__ import annotations

import click

from benchmarks.harness import launch, machine, results
from benchmarks.harness.records import steady
from benchmarks.harness.table import print_table

CASES = {
    "one batch per round": (),
    "split, at most 4 updates (the default bound)": ("--split-batches", "--split-max", "4"),
    "split, one update per rollout (unbounded)": ("--split-batches", "--split-max", "256"),
}


def measure(name: str, flags: tuple[str, ...], actors: int, seconds: float) -> dict:
    run = launch.train("CartPole-v1", "data", actors=actors, seconds=seconds,
                       flags=("--preset", "none", *flags))  # fmt: skip
    warm = min(4.0, seconds / 3)
    steps = steady(run.records, "env_steps_per_second", warm) or 0.0
    updates = steady(run.records, "updates_per_second", warm) or 0.0
    hp = run.config["hp"]
    per_rollout = hp["rollout_len"] * hp["num_envs"]
    return {
        "case": name,
        "actors": actors,
        "env_steps_per_second": steps,
        "updates_per_second": updates,
        "rollouts_per_update": steps / per_rollout / updates if updates else None,
        "staleness_mean": steady(run.records, "staleness_mean", warm),
    }


@click.command(help=__doc__.split("\n\n")[0])
@click.option("--actors", default=8, show_default=True)
@click.option("--seconds", default=15.0, show_default=True, help="Per case.")
def main(actors: int, seconds: float) -> None:
    machine.show()
    rows = []
    for name, flags in CASES.items():
        rows.append(measure(name, flags, actors, seconds))
        print(f"  {name}: {rows[-1]['env_steps_per_second']:,.0f} env steps/s", flush=True)
    print_table(rows, [
        ("case", "case", ""), ("actors", "actors", "d"),
        ("env_steps_per_second", "env steps/s", ",.0f"),
        ("updates_per_second", "updates/s", ",.0f"),
        ("rollouts_per_update", "rollouts/update", ".1f"), ("staleness_mean", "staleness", ".1f"),
    ])  # fmt: skip
    results.write("split.json", {"rows": rows})


if __name__ == "__main__":
    main()
