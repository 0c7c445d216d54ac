"""What the learner does a few times a second however busy it is: forget actors whose key
was revoked, mark silent ones gone, measure rates, set the credit grant, and write metrics,
checkpoints and the progress line, and publish what Prometheus scrapes, each when due.

The loop turns once per update; this work is O(actors), so it runs on a clock instead.
"""

from __future__ import annotations

import time
from collections.abc import Callable

from learner.config import LearnerConfig
from learner.credit import CreditGrant
from learner.exporting import LearnerMetrics
from learner.gate import Gate
from learner.progress import Progress
from learner.registry import ActorRegistry
from learner.reporting import Reporter

EVERY = 0.1
KEYS_EVERY = 1.0
"""Seconds between re-reads of the authorized keys: a revoked key stops being served
within this."""


class Housekeeping:
    def __init__(
        self,
        cfg: LearnerConfig,
        registry: ActorRegistry,
        credit: CreditGrant,
        gate: Gate,
        reporter: Reporter,
        save_checkpoint: Callable[[], bool],
    ):
        self.cfg, self.registry, self.credit, self.gate = cfg, registry, credit, gate
        self.reporter, self.save_checkpoint = reporter, save_checkpoint
        self.metrics: LearnerMetrics | None = None
        """What --metrics-port serves, published on this clock (None: no port)."""
        self.start(time.monotonic())
        self._next_keys = 0.0

    def start(self, now: float) -> None:
        """The run starts now: housekeeping at once, metrics and checkpoints when due."""
        self._next = now
        self._next_metrics = now + self.cfg.metrics_every
        self._next_checkpoint = now + self.cfg.checkpoint_every

    def tick(self, progress: Progress) -> None:
        now = time.monotonic()
        if now < self._next:
            return
        self._next = now + EVERY
        if now >= self._next_keys:
            self._next_keys = now + KEYS_EVERY
            self.gate.check_keys()
        self.registry.expire()
        self.credit.update(now, len(self.registry.connected()))
        self.reporter.sample(now)
        if self.metrics is not None:
            self.metrics.tick(now)
        self._write_due(now)
        self.reporter.show_progress(progress)

    def _write_due(self, now: float) -> None:
        if now >= self._next_metrics:
            self._next_metrics = now + self.cfg.metrics_every
            self.reporter.write_metrics()
        if now >= self._next_checkpoint:
            self._next_checkpoint = now + self.cfg.checkpoint_every
            self.save_checkpoint()
