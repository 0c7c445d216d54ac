"""Figures read off a run's metrics records and learning curves."""

from __future__ import annotations

import statistics


def steady(records: list[dict], key: str, warmup: float) -> float | None:
    """Mean of `key` over the records after `warmup` seconds (None where never reported)."""
    values = [r[key] for r in records if r["wall_seconds"] > warmup and r.get(key) is not None]
    return statistics.fmean(values) if values else None


def best_return(records: list[dict]) -> float | None:
    return max((r["mean_return_100"] for r in records if r["mean_return_100"] is not None),
               default=None)  # fmt: skip


def first_reach(curve: list, mark: float) -> tuple[int, float] | None:
    """(env steps, wall seconds) of the first (env steps, wall s, mean return) point whose
    mean return reached `mark`."""
    for steps, wall, mean in curve:
        if mean is not None and mean >= mark:
            return steps, wall
    return None
