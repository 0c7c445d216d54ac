"""What the learner tells about its run: the start and preset log lines, the live progress
line, metrics records (metrics.jsonl and TensorBoard), `a3c status` replies and the summary
of a finished run."""

from __future__ import annotations

import logging
import time
from collections import deque

from learner.credit import CreditGrant
from learner.progress import Progress, progress_line
from learner.registry import ActorRegistry
from learner.rundir import write_json
from learner.startup import RunParts
from learner.tensorboard import ScalarLog
from protocol.security import Guard
from protocol.sockets import ConnectionEvents
from protocol.wire import WireFormat

log = logging.getLogger(__name__)
RATE_WINDOW = 100
"""Samples of the live rates `a3c status` shows (one per housekeeping: the last ~10 s)."""
STATUS_ACTORS = 64
"""Actors a status reply lists, so the whole reply fits the decoder's header limit."""


class Reporter:
    """Reads the learner's parts, never changes them (but for a counted metrics drop)."""

    def __init__(
        self,
        run: RunParts,
        registry: ActorRegistry,
        credit: CreditGrant,
        connections: ConnectionEvents,
        guard: Guard | None,
    ):
        self.cfg, self.target, self.rundir = run.cfg, run.target, run.rundir
        self.stats, self.updater = run.stats, run.updater
        self.registry, self.credit = registry, credit
        self.connections, self.guard = connections, guard
        self.scalars = ScalarLog(str(run.rundir.root), run.cfg.tensorboard)
        self._rates: deque[tuple[float, int, int]] = deque(maxlen=RATE_WINDOW)
        self._last_record: dict = {}

    def log_start(self, run_id: str, endpoint: str, wire: WireFormat) -> None:
        cfg = self.cfg
        log.info(
            "learner run %s: mode %s, env %s, listening on %s, target %s",
            run_id,
            cfg.mode,
            cfg.env_id,
            endpoint,
            self.target,
        )
        self._log_preset()
        log.info("wire: %s weights and gradients, %s frames", wire.floats, wire.compress)

    def _log_preset(self) -> None:
        preset = self.cfg.preset
        if preset is None:
            log.info("no preset: the hyperparameters are the defaults and your flags")
            return
        values = ", ".join(f"{k}={v}" for k, v in preset["applied"].items()) or "nothing"
        log.info("preset %s sets %s", preset["name"], values)
        if preset["overridden"]:
            log.info("your settings override the preset's %s", ", ".join(preset["overridden"]))
        if self.cfg.hp.lr_decay and not self.cfg.max_env_steps:
            log.warning("lr_decay needs an env-step budget (--max-env-steps); the lr stays fixed")

    def sample(self, now: float) -> None:
        """One sample of what the live rates and connection counts are measured on."""
        self.registry.update_rates()
        self._rates.append((now, self.stats.env_steps, self.stats.updates))
        self.connections.poll()

    def show_progress(self, progress: Progress) -> None:
        s = self.stats
        progress.maybe_show(
            s.env_steps,
            lambda rate: progress_line(
                s.wall_seconds,
                s.env_steps,
                rate,
                s.episodes,
                s.mean_return_100,
                s.updates,
                len(self.registry.connected()),
            ),
        )

    def write_metrics(self) -> dict:
        record = self.stats.record(self.updater.version, len(self.registry.connected()))
        record["mode"] = self.cfg.mode
        record["credit_grant"] = self.credit.grant
        idle = self.credit.idle_fraction
        record["learner_idle"] = None if idle is None else round(idle, 3)
        self.connections.poll()
        record["connections"] = dict(self.connections.counts)
        if self.guard is not None:
            record["connections"].update(self.guard.provider.refused)
        try:
            self.rundir.append_metrics(record)
        except OSError as exc:  # a full disk costs this record, not the run
            self.stats.drop("metrics_write_failed", str(exc))
        self.scalars.write(record)
        self._last_record = record
        return record

    def status(self) -> dict:
        """The live state `a3c status` shows."""
        s = self.stats
        steps_rate, updates_rate = self.live_rates()
        return {
            "mode": self.cfg.mode,
            "env": self.cfg.env_id,
            "recurrent": self.cfg.hp.recurrent,
            "preset": self.cfg.preset["name"] if self.cfg.preset else None,
            "wall_seconds": round(s.wall_seconds, 1),
            "env_steps": s.env_steps,
            "episodes": s.episodes,
            "updates": s.updates,
            "weights_version": self.updater.version,
            "mean_return_100": s.mean_return_100,
            "target_return": self.target,
            "env_steps_per_second": round(steps_rate, 1),
            "updates_per_second": round(updates_rate, 2),
            "staleness_mean": self._last_record.get("staleness_mean"),
            "staleness_max": self._last_record.get("staleness_max"),
            "actors_connected": len(self.registry.connected()),
            "actors": self._actors(),
            "relays": self.relays(),
            "dropped": dict(s.dropped),
        }

    def live_rates(self) -> tuple[float, float]:
        """Env steps and updates per second over the rate window."""
        if len(self._rates) >= 2:
            (t0, e0, u0), (t1, e1, u1) = self._rates[0], self._rates[-1]
            if t1 > t0:
                return (e1 - e0) / (t1 - t0), (u1 - u0) / (t1 - t0)
        return 0.0, 0.0

    def _actors(self) -> list[dict]:
        now = time.monotonic()
        newest = sorted(self.registry.actors.values(), key=lambda a: a.index)[-STATUS_ACTORS:]
        return [
            {
                "actor_id": a.actor_id[:64],  # the whole reply fits the header limit
                "host": a.host[:64],
                "index": a.index,
                "connected": not a.gone,
                "last_seen_seconds": round(now - a.last_seen, 2),
                "env_steps": a.env_steps,
                "env_steps_per_second": round(a.steps_per_second, 1),
                "via": None if a.via is None else a.via[:64],
            }
            for a in newest
        ]

    def summary(self, reason: str, solved: bool, checkpoint_saved: bool) -> dict:
        """The finished run, written to summary.json and the log."""
        s = self.stats
        summary = {
            "mode": self.cfg.mode,
            "env": self.cfg.env_id,
            "stop_reason": reason,
            "solved": solved,
            "env_steps": s.env_steps,
            "episodes": s.episodes,
            "updates": s.updates,
            "weights_version": self.updater.version,
            "wall_seconds": round(s.wall_seconds, 3),
            "started_at": round(s.started_at, 3),
            "first_work_at": s.first_work_at,
            "mean_return_100": s.mean_return_100,
            "target_return": self.target,
            "dropped": dict(s.dropped),
            "checkpoint_failures": s.checkpoint_failures,
            "final_checkpoint_saved": checkpoint_saved,
            "actors": self._contributions(),
        }
        if any(a.via for a in self.registry.actors.values()):
            summary["relays"] = self.relays()
        try:
            write_json(self.rundir.summary, summary)
        except OSError as exc:  # the actors are still told to stop; the log keeps the summary
            log.error("cannot write %s: %s", self.rundir.summary, exc)
        log.info("stopping (%s): %s", reason, summary)
        return summary

    def _contributions(self, top: int = 100) -> dict[str, int]:
        """Env steps of the actors that contributed most, in this learner process."""
        ranked = sorted(self.registry.actors.values(), key=lambda a: -a.env_steps)
        return {a.actor_id: a.env_steps for a in ranked[:top] if a.env_steps > 0}

    def relays(self) -> dict[str, dict]:
        """Per relay: the actors behind it (connected now) and the env steps they sent."""
        out: dict[str, dict] = {}
        for a in self.registry.actors.values():
            if a.via is not None:
                row = out.setdefault(a.via[:64], {"actors": 0, "env_steps": 0})
                row["actors"] += not a.gone
                row["env_steps"] += a.env_steps
        return dict(sorted(out.items())[:STATUS_ACTORS])

    def close(self) -> None:
        self.scalars.close()
