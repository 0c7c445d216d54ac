"""Counters of a run and the metrics record built from them."""

from __future__ import annotations

import logging
import math
import time
from collections import Counter, deque

log = logging.getLogger(__name__)


class RunStats:
    """Cumulative counters plus per-interval rates, staleness and loss figures."""

    def __init__(self, elapsed_before: float = 0.0):
        self.started = time.monotonic() - elapsed_before
        self.started_at = time.time() - elapsed_before
        """Unix time the run's clock started (a resumed run's: as if it had not stopped)."""
        self.env_steps = 0
        self.first_work_at: float | None = None
        """Unix time the first env steps of this learner process arrived (start-up cost)."""
        self.episodes = 0
        self.updates = 0
        self.recent_returns: deque[float] = deque(maxlen=100)
        self.dropped: Counter[str] = Counter()
        self.checkpoint_failures = 0
        """Checkpoint writes that failed (this learner process)."""
        self._last_log: dict[str, float] = {}
        self._interval_start = time.monotonic()
        self._interval_env_steps = 0
        self._interval_updates = 0
        self._staleness: list[int] = []
        self._losses: list[tuple[float, float, float]] = []
        self._latencies: list[float] = []
        self.bytes_in = 0
        self.bytes_out = 0
        self.weights_sent = 0
        """Replies that carried weights (the rest were version-only)."""
        self._interval_bytes = (0, 0)
        self.staleness_count = 0
        self.staleness_sum = 0
        """Every applied work message's staleness, counted and summed since this process
        started: a scraper's rate over any window gives their mean."""

    @property
    def wall_seconds(self) -> float:
        return time.monotonic() - self.started

    @property
    def mean_return_100(self) -> float | None:
        if not self.recent_returns:
            return None
        return sum(self.recent_returns) / len(self.recent_returns)

    def add_episodes(self, returns: list[float]) -> None:
        self.episodes += len(returns)
        self.recent_returns.extend(float(r) for r in returns)

    def add_env_steps(self, n: int) -> None:
        if self.first_work_at is None:
            self.first_work_at = time.time()
        self.env_steps += n
        self._interval_env_steps += n

    def add_update(self, staleness: list[int], losses: tuple[float, ...]) -> None:
        """One update: the staleness of its work and (policy loss, value loss, entropy,
        log ratio), NaN where not computed."""
        self.updates += 1
        self._interval_updates += 1
        self.staleness_count += len(staleness)
        self.staleness_sum += sum(staleness)
        # Bounded: one interval of updates at most a few hundred thousand small ints.
        if len(self._staleness) < 1_000_000:
            self._staleness.extend(staleness)
        self._losses.append(losses)
        if len(self._losses) > 10_000:
            del self._losses[:5_000]

    def add_latency(self, seconds: float) -> None:
        """Update-to-acting latency reported by an actor (negative: nothing new to report)."""
        if 0 <= seconds < 3600 and len(self._latencies) < 100_000:
            self._latencies.append(seconds)

    def drop(self, reason: str, detail: str = "") -> None:
        """Count a rejected message; log each reason at most once every 10 seconds."""
        self.dropped[reason] += 1
        now = time.monotonic()
        if now - self._last_log.get(reason, -1e9) >= 10.0:
            self._last_log[reason] = now
            # repr escapes what a peer put in the detail, so it cannot forge log lines
            shown = repr(detail)[1:-1]
            log.warning("dropped message (%s) %s [%d so far]", reason, shown, self.dropped[reason])

    def record(self, weights_version: int, actors_connected: int) -> dict:
        """The metrics.jsonl record for the interval since the last call; starts a new one."""
        now = time.monotonic()
        span = max(now - self._interval_start, 1e-9)
        st = self._staleness
        losses = self._losses
        lat = self._latencies
        steps = self._interval_env_steps
        bytes_in = self.bytes_in - self._interval_bytes[0]
        bytes_out = self.bytes_out - self._interval_bytes[1]
        rec = {
            "wall_seconds": round(self.wall_seconds, 3),
            "env_steps": self.env_steps,
            "episodes": self.episodes,
            "updates": self.updates,
            "weights_version": weights_version,
            "mean_return_100": self.mean_return_100,
            "env_steps_per_second": round(self._interval_env_steps / span, 1),
            "updates_per_second": round(self._interval_updates / span, 2),
            "actors_connected": actors_connected,
            "staleness_mean": round(sum(st) / len(st), 3) if st else None,
            "staleness_max": max(st) if st else None,
            "weights_latency_ms_mean": round(1000 * sum(lat) / len(lat), 3) if lat else None,
            "weights_latency_ms_max": round(1000 * max(lat), 3) if lat else None,
            "bytes_per_env_step": round((bytes_in + bytes_out) / steps, 1) if steps else None,
            "bytes_in_per_env_step": round(bytes_in / steps, 1) if steps else None,
            "bytes_out_per_env_step": round(bytes_out / steps, 1) if steps else None,
            "bytes_in": self.bytes_in,
            "bytes_out": self.bytes_out,
            "weights_sent": self.weights_sent,
            "dropped": dict(self.dropped),
            "dropped_total": sum(self.dropped.values()),
            "checkpoint_failures": self.checkpoint_failures,
            "policy_loss": _mean([x[0] for x in losses]),
            "value_loss": _mean([x[1] for x in losses]),
            "entropy": _mean([x[2] for x in losses]),
            "log_ratio": _mean([x[3] for x in losses]),
        }
        self._interval_start = now
        self._interval_env_steps = 0
        self._interval_updates = 0
        self._staleness = []
        self._losses = []
        self._latencies = []
        self._interval_bytes = (self.bytes_in, self.bytes_out)
        return rec


def _mean(xs: list[float]) -> float | None:
    # NaN marks "not computed here" (gradient mode); and metrics.jsonl stays strict JSON
    xs = [x for x in xs if math.isfinite(x)]
    return round(sum(xs) / len(xs), 5) if xs else None
