"""The learner's metrics for Prometheus (--metrics-port): what a scrape sees, built from the
run's counters about once a second and published to the exporter (protocol.exporter).

Counters are cumulative, as Prometheus expects (rate() and increase() turn them into
per-interval figures, restarts included); gauges hold the state at the publish. Labels are
only ever bounded sets: drop reasons, which the code names, and relays, of which a run has
few. Per-actor figures stay in `a3c status`: actor ids would be an unbounded label.
"""

from __future__ import annotations

import logging

from learner.errors import LearnerStartError
from learner.registry import ActorInfo
from learner.reporting import Reporter
from protocol.exporter import (
    COUNTER,
    GAUGE,
    Exporter,
    ExporterError,
    Family,
    Sample,
    by_label,
    counter,
    gauge,
    serve_metrics,
    summary,
)

log = logging.getLogger(__name__)
EVERY = 1.0
"""Seconds between publishes: Prometheus scrapes every 15 s or so by default, so fresher
figures would only cost the loop."""


def start_exporter(port: int | None) -> Exporter | None:
    """The metrics endpoint of --metrics-port; None without one."""
    if port is None:
        return None
    try:
        exporter = serve_metrics(port)
    except ExporterError as exc:
        raise LearnerStartError(str(exc)) from None
    log.info("metrics for Prometheus on port %d (all interfaces), path /metrics", exporter.port)
    return exporter


class LearnerMetrics:
    """Publishes the learner's state to its exporter when due (read-only, like Reporter)."""

    def __init__(self, exporter: Exporter, reporter: Reporter, run_id: str):
        self.exporter, self.reporter, self.run_id = exporter, reporter, run_id
        self._next = 0.0
        self._staleness_seen = (0, 0)

    def tick(self, now: float) -> None:
        """Publish when due (the housekeeping clock calls this every turn)."""
        if now >= self._next:
            self._next = now + EVERY
            try:
                self.exporter.publish(self.snapshot())
            except ValueError as exc:  # scrapes see the last snapshot; the run goes on
                self.reporter.stats.drop("metrics_publish_failed", str(exc))

    def snapshot(self) -> list[Family]:
        """What a scrape sees from now on; starts a new interval of the staleness mean."""
        rep = self.reporter
        s, cfg = rep.stats, rep.cfg
        connected = rep.registry.connected()
        steps_rate, updates_rate = rep.live_rates()
        return [
            Family(
                "a3c_run_info",
                "The run this learner serves (always 1; the labels name it).",
                GAUGE,
                (Sample(1, (self.run_id, cfg.mode, cfg.env_id)),),
                ("run_id", "mode", "env"),
            ),
            counter("a3c_env_steps_total", "Env steps the learner has counted.", s.env_steps),
            counter("a3c_episodes_total", "Episodes the actors finished.", s.episodes),
            counter("a3c_updates_total", "Updates applied to the model.", s.updates),
            gauge(
                "a3c_env_steps_per_second",
                "Env steps per second over the last ~10 s.",
                round(steps_rate, 3),
            ),
            gauge(
                "a3c_updates_per_second",
                "Updates per second over the last ~10 s.",
                round(updates_rate, 3),
            ),
            gauge("a3c_weights_version", "Version of the newest weights.", rep.updater.version),
            gauge("a3c_actors_connected", "Actors heard from within the timeout.", len(connected)),
            by_label(
                GAUGE, "a3c_relay_actors", "Connected actors per relay.", "relay", _via(connected)
            ),
            gauge(
                "a3c_mean_return_100",
                "Mean return of the last 100 episodes (absent before the first).",
                s.mean_return_100,
            ),
            by_label(
                COUNTER,
                "a3c_dropped_total",
                "Messages dropped or replies not sent, by reason.",
                "reason",
                dict(s.dropped),
            ),
            summary(
                "a3c_staleness_updates",
                "Updates between the weights a work message was computed on and the "
                "weights it was applied to, per applied message (this learner process).",
                s.staleness_count,
                s.staleness_sum,
            ),
            gauge(
                "a3c_staleness_mean_updates",
                "Mean staleness of the work applied since the last publish (~1 s; absent "
                "when none was).",
                self._staleness_mean(),
            ),
            counter("a3c_received_bytes_total", "Bytes of messages received.", s.bytes_in),
            counter("a3c_sent_bytes_total", "Bytes of messages sent.", s.bytes_out),
            counter(
                "a3c_weights_sent_total",
                "Replies that carried weights (the rest were version-only).",
                s.weights_sent,
            ),
            counter(
                "a3c_checkpoint_failures_total",
                "Checkpoint writes that failed.",
                s.checkpoint_failures,
            ),
            gauge(
                "a3c_run_seconds",
                "Wall time of the run, resumed runs included.",
                round(s.wall_seconds, 3),
            ),
        ]

    def _staleness_mean(self) -> float | None:
        s = self.reporter.stats
        count, total = s.staleness_count, s.staleness_sum
        seen_count, seen_total = self._staleness_seen
        self._staleness_seen = (count, total)
        if count <= seen_count:
            return None
        return round((total - seen_total) / (count - seen_count), 3)


def _via(connected: list[ActorInfo]) -> dict[str, int]:
    """Connected actors per relay, for the actors the registry knows came through one
    (`ActorInfo.via`; actors without it connect directly)."""
    counts: dict[str, int] = {}
    for info in connected:
        via = getattr(info, "via", None)
        if via:
            counts[str(via)] = counts.get(str(via), 0) + 1
    return counts
