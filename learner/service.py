"""The learner process: one ROUTER socket, one model, one optimizer.

Flow control: each actor may have `max_outstanding` work messages in flight; every work
message is answered with the newest weights, which also returns the actor's credit. So a
new or lagging actor always gets current weights at once, memory per actor is bounded, and
the learner never waits on any actor (all sends are non-blocking).
"""

from __future__ import annotations

import logging
import math
import secrets
import signal
import time
from collections import deque
from dataclasses import dataclass

import numpy as np
import zmq

from learner.checkpoint import ResumeError, checkpoint_state, restore
from learner.config import LearnerConfig, wire_floats
from learner.credit import CreditGrant
from learner.errors import LearnerStartError
from learner.normstats import NormStats
from learner.progress import Progress, progress_line
from learner.registry import ActorInfo, ActorRegistry
from learner.rundir import RunDir, RunDirLocked, write_json
from learner.stats import RunStats
from learner.tensorboard import ScalarLog
from learner.updater import Updater
from learner.validation import check_episodes, check_gradient, check_rollout, max_work_bytes
from protocol import (
    PROTOCOL_VERSION,
    WORK_STATS,
    CodecError,
    Episodes,
    Gradient,
    Heartbeat,
    Hello,
    Message,
    Rejoin,
    Rollout,
    Status,
    StatusQuery,
    Stop,
    Weights,
    Welcome,
    decode,
    refusal,
)
from protocol.security import Guard, KeysError, load_server_keys
from protocol.sockets import (
    UNREACHABLE,
    ConnectionEvents,
    bind_router,
    recv_routed,
    send_frames,
    try_send,
    user_id,
)
from protocol.wire import WireFormat
from rlcore.envs import EnvConfig, UnsupportedEnvError, make_env, probe_env
from rlcore.rollout import RolloutBatch

log = logging.getLogger(__name__)
BURST = 256
MAX_ROLLOUTS_PER_UPDATE = 64
"""Data mode: the most rollouts one update learns together (a bound on its memory)."""
MAX_PENDING_BYTES = 1 << 30
"""Data mode: rollouts waiting to be learned, all actors together (each actor's own queue
is bounded by its credit)."""
KEYS_EVERY = 1.0
"""Seconds between re-reads of the authorized keys: a revoked key stops being served
within this."""
HOUSEKEEPING_EVERY = 0.1
RATE_WINDOW = 100  # housekeeping samples: live rates over the last ~10 s


@dataclass
class PendingRollout:
    batch: RolloutBatch
    weights_version: int
    env_steps: int
    moments: dict
    """Normalization moments, merged when its env steps are counted."""
    received: float
    """When it arrived (monotonic): the reply says how long the learner held it."""
    nbytes: int


class Learner:
    def __init__(self, config: LearnerConfig):
        try:
            config.validate()
            self.spec = probe_env(config.env)
        except (ValueError, UnsupportedEnvError) as exc:
            raise LearnerStartError(str(exc)) from None
        import torch

        torch.set_num_threads(config.torch_threads)
        self.cfg = config
        self.hp = config.hp
        self.target = config.target_return
        if self.target is None:
            self.target = _env_threshold(config.env)
        self.rundir = RunDir(config.run_dir)
        try:
            self.updater = Updater(self.spec, self.hp, config.seed, config.device)
        except ValueError as exc:  # settings that do not fit this env's spaces
            raise LearnerStartError(str(exc)) from None
        self.norm = NormStats(self.hp, int(np.prod(self.spec.obs_shape)))
        floats = wire_floats(config.wire_dtype, self.spec.discrete)
        self.wire = WireFormat(config.wire_compress, floats)
        self.stats = RunStats()
        self.registry = ActorRegistry(config.heartbeat_timeout)
        self.run_id = secrets.token_hex(8)
        self.pending: dict[str, deque[PendingRollout]] = {}
        self._received = time.monotonic()
        self.credit = CreditGrant(config.max_outstanding, config.max_credit, config.max_staleness)
        self._rates: deque[tuple[float, int, int]] = deque(maxlen=RATE_WINDOW)
        self._last_record: dict = {}
        self._handlers = {
            Gradient: self._on_gradient,
            Rollout: self._on_rollout,
            Episodes: self._on_episodes,
            Heartbeat: self._on_heartbeat,
            Stop: self._on_leave,
        }
        self.interrupted: str | None = None
        self._last_internal_log = -1e9
        self._last_refusal = -1e9
        self._next_keys_check = 0.0
        self._pending_bytes = 0
        self.max_message_bytes = config.max_message_bytes or max_work_bytes(
            self.spec, self.hp, self.updater.num_params
        )
        self.max_inflated = self.max_message_bytes
        if config.keys_dir is None and not config.insecure and not _is_loopback(config.bind):
            raise LearnerStartError(
                f"refusing to bind {config.bind} without keys: anyone who reaches it could "
                "join and send work, unencrypted. Create keys with `a3c keygen DIR` and pass "
                "--keys-dir DIR/learner, or pass --insecure on a network you trust"
            )
        self._prepare_run_dir()
        self.scalars = ScalarLog(str(self.rundir.root), config.tensorboard)
        self.ctx = zmq.Context()
        self.guard = self._guard()
        try:
            self.sock, self.endpoint = bind_router(
                self.ctx, config.bind, self.guard, self.max_message_bytes
            )
        except zmq.ZMQError as exc:
            self._stop_guard()
            self.ctx.term()
            raise LearnerStartError(f"cannot bind {config.bind}: {exc}") from None
        self.connections = ConnectionEvents(self.sock)
        if self.guard is None and not _is_loopback(config.bind):
            log.warning("--insecure: anyone who reaches %s can join, unencrypted", config.bind)

    def _guard(self) -> Guard | None:
        if self.cfg.keys_dir is None:
            return None
        try:
            keys = load_server_keys(self.cfg.keys_dir, self.cfg.authorized_dir)
            return Guard(self.ctx, keys)
        except KeysError as exc:
            self.ctx.term()
            raise LearnerStartError(str(exc)) from None

    def _stop_guard(self) -> None:
        if self.guard is not None:
            self.guard.stop()

    # ---- run directory -------------------------------------------------------------------

    def _prepare_run_dir(self) -> None:
        rd = self.rundir
        try:
            rd.create()
            # Before anything else touches the directory: another learner's temp files
            # are its writes in progress, not stale ones.
            rd.lock()
        except (OSError, RunDirLocked) as exc:
            raise LearnerStartError(str(exc)) from None
        try:
            rd.remove_stale_temp_files()
            if rd.checkpoint.exists() and not self.cfg.resume:
                raise LearnerStartError(
                    f"{rd.root} already holds a checkpoint: pass --resume to continue that "
                    "run, or choose another --run-dir"
                )
            if self.cfg.resume and rd.checkpoint.exists():
                self._resume()
            elif self.cfg.resume:
                log.warning("--resume: no checkpoint in %s, starting a new run", rd.root)
            # the settings as resolved
            write_json(rd.config, {**self.cfg.to_dict(), "wire": self.wire.to_dict()})
        except BaseException:
            rd.unlock()
            raise

    def _resume(self) -> None:
        try:
            state = self.rundir.load_checkpoint()
            self.stats = restore(state, self.updater, self.cfg, self.norm)
        except ResumeError as exc:
            raise LearnerStartError(str(exc)) from None
        except Exception as exc:  # unreadable file: say which and why, in one line
            raise LearnerStartError(f"cannot load {self.rundir.checkpoint}: {exc}") from None
        log.info(
            "resumed from %s: version %d, %d env steps",
            self.rundir.checkpoint,
            self.updater.version,
            self.stats.env_steps,
        )

    def save_checkpoint(self, final: bool = False) -> bool:
        """Whether the checkpoint was written. A failed write (a full disk, a lost volume)
        is logged and counted, never fatal: the old checkpoint is intact (atomic_write),
        and the run goes on and tries again at the next interval."""
        self.norm.sync(self.updater.model)
        state = checkpoint_state(self.updater, self.stats, self.cfg, self.norm)
        try:
            self.rundir.save_checkpoint(state)
        except OSError as exc:
            self.stats.checkpoint_failures += 1
            then = "the last state is not saved" if final else "retrying at the next interval"
            log.error("checkpoint write to %s failed: %s; %s", self.rundir.checkpoint, exc, then)
            return False
        return True

    # ---- main loop -----------------------------------------------------------------------

    def run(self) -> dict:
        self._install_signal_handlers()
        log.info(
            "learner run %s: mode %s, env %s, listening on %s, target %s",
            self.run_id,
            self.cfg.mode,
            self.cfg.env_id,
            self.endpoint,
            self.target,
        )
        self._log_preset()
        log.info("wire: %s weights and gradients, %s frames", self.wire.floats, self.wire.compress)
        progress = Progress(plain_every=self.cfg.metrics_every)
        now = time.monotonic()
        self._next_metrics = now + self.cfg.metrics_every
        self._next_checkpoint = now + self.cfg.checkpoint_every
        self._next_housekeeping = now
        reason = None
        try:
            # The stop condition is checked after every applied message, so a single-actor
            # run with a fixed seed and budget ends on exactly the same update every time.
            while reason is None:
                if self._poll():
                    self._receive_burst()
                reason = self._stop_reason()
                if reason is None and self.pending:
                    self._learn_pending()
                    reason = self._stop_reason()
                self._periodic(progress)
        finally:
            progress.close()
        return self._finish(reason)

    def _log_preset(self) -> None:
        preset = self.cfg.preset
        if preset is None:
            log.info("no preset: the hyperparameters are the defaults and your flags")
            return
        values = ", ".join(f"{k}={v}" for k, v in preset["applied"].items()) or "nothing"
        log.info("preset %s sets %s", preset["name"], values)
        if preset["overridden"]:
            log.info("your settings override the preset's %s", ", ".join(preset["overridden"]))
        if self.hp.lr_decay and not self.cfg.max_env_steps:
            log.warning("lr_decay needs an env-step budget (--max-env-steps); the lr stays fixed")

    def _install_signal_handlers(self) -> None:
        def handler(signum, _frame):
            self.interrupted = signal.Signals(signum).name

        try:
            signal.signal(signal.SIGTERM, handler)
            signal.signal(signal.SIGINT, handler)
        except ValueError:  # not the main thread (embedded use); the caller handles signals
            pass

    def _poll(self) -> bool:
        """Whether work waits; the time spent waiting for it tells the grant how busy we are."""
        if self.pending:  # rollouts to learn: do not wait
            return bool(self.sock.poll(0))
        start = time.monotonic()
        ready = self.sock.poll(50)
        self.credit.waited(time.monotonic() - start)
        return bool(ready)

    def _receive_burst(self) -> None:
        for _ in range(BURST):
            try:
                identity, frame, extra = recv_routed(self.sock, zmq.NOBLOCK)
            except zmq.Again:
                return
            self.stats.bytes_in += 0 if frame is None else len(frame.buffer)
            self._handle(identity, frame, extra)
            if self._stop_reason() is not None:
                return

    def _periodic(self, progress: Progress) -> None:
        # The loop turns once per update; housekeeping (O(actors)) runs a few times a second.
        now = time.monotonic()
        if now < self._next_housekeeping:
            return
        self._next_housekeeping = now + HOUSEKEEPING_EVERY
        self._check_keys(now)
        self.registry.expire()
        self.registry.update_rates()
        self.credit.update(now, len(self.registry.connected()))
        self._rates.append((now, self.stats.env_steps, self.stats.updates))
        self.connections.poll()
        if now >= self._next_metrics:
            self._next_metrics = now + self.cfg.metrics_every
            self._write_metrics()
        if now >= self._next_checkpoint:
            self._next_checkpoint = now + self.cfg.checkpoint_every
            self.save_checkpoint()
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

    def _write_metrics(self) -> dict:
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

    def _stop_reason(self) -> str | None:
        s = self.stats
        if self.interrupted:
            return f"interrupted ({self.interrupted})"
        if self._solved():
            return "target_reached"
        if self.cfg.max_env_steps is not None and s.env_steps >= self.cfg.max_env_steps:
            return "max_env_steps"
        if self.cfg.max_seconds is not None and s.wall_seconds >= self.cfg.max_seconds:
            return "max_seconds"
        return None

    def _solved(self) -> bool:
        """mean_return_100 at the target, over a full window of 100 episodes."""
        s = self.stats
        return bool(
            self.target is not None
            and len(s.recent_returns) == 100
            and s.mean_return_100 >= self.target
        )

    def _finish(self, reason: str) -> dict:
        saved = self.save_checkpoint(final=True)
        self._write_metrics()
        s = self.stats
        mean = s.mean_return_100
        summary = {
            "mode": self.cfg.mode,
            "env": self.cfg.env_id,
            "stop_reason": reason,
            "solved": self._solved(),
            "env_steps": s.env_steps,
            "episodes": s.episodes,
            "updates": s.updates,
            "weights_version": self.updater.version,
            "wall_seconds": round(s.wall_seconds, 3),
            "mean_return_100": mean,
            "target_return": self.target,
            "dropped": dict(s.dropped),
            "checkpoint_failures": s.checkpoint_failures,
            "final_checkpoint_saved": saved,
            "actors": self._contributions(),
        }
        try:
            write_json(self.rundir.summary, summary)
        except OSError as exc:  # the actors are still told to stop; the log keeps the summary
            log.error("cannot write %s: %s", self.rundir.summary, exc)
        log.info("stopping (%s): %s", reason, summary)
        self._tell_actors_to_stop(reason)
        self.close()
        return summary

    def status(self) -> dict:
        """The live state `a3c status` shows."""
        s, now = self.stats, time.monotonic()
        steps_rate = updates_rate = 0.0
        if len(self._rates) >= 2:
            (t0, e0, u0), (t1, e1, u1) = self._rates[0], self._rates[-1]
            if t1 > t0:
                steps_rate, updates_rate = (e1 - e0) / (t1 - t0), (u1 - u0) / (t1 - t0)
        actors = [
            {
                "actor_id": a.actor_id[:64],  # the whole reply fits the header limit
                "host": a.host[:64],
                "index": a.index,
                "connected": not a.gone,
                "last_seen_seconds": round(now - a.last_seen, 2),
                "env_steps": a.env_steps,
                "env_steps_per_second": round(a.steps_per_second, 1),
            }
            for a in sorted(self.registry.actors.values(), key=lambda a: a.index)[-64:]
        ]
        return {
            "mode": self.cfg.mode,
            "env": self.cfg.env_id,
            "recurrent": self.hp.recurrent,
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
            "actors": actors,
            "dropped": dict(s.dropped),
        }

    def _contributions(self, top: int = 100) -> dict[str, int]:
        """Env steps of the actors that contributed most, in this learner process."""
        ranked = sorted(self.registry.actors.values(), key=lambda a: -a.env_steps)
        return {a.actor_id: a.env_steps for a in ranked[:top] if a.env_steps > 0}

    def _tell_actors_to_stop(self, reason: str) -> None:
        for info in self.registry.actors.values():
            try_send(self.sock, Stop(self.run_id, info.actor_id, reason), info.identity)
        # Actors mid-send get their stop as the answer to whatever they send next.
        deadline = time.monotonic() + self.cfg.stop_grace
        while time.monotonic() < deadline:
            if not self.sock.poll(50):
                continue
            identity, frame, extra = recv_routed(self.sock)
            try:
                msg = decode([frame] if frame is not None and not extra else [], self.max_inflated)
            except CodecError:
                continue
            actor_id = getattr(msg, "actor_id", "")
            try_send(self.sock, Stop(self.run_id, actor_id, reason), identity)

    def _check_keys(self, now: float) -> None:
        """Re-read the authorized keys; actors whose key was revoked are forgotten, and
        their connections get nothing more (each message's key is checked as it comes)."""
        if self.guard is None or now < self._next_keys_check:
            return
        self._next_keys_check = now + KEYS_EVERY
        self.guard.refresh()
        for info in list(self.registry.actors.values()):
            if info.key and not self.guard.is_authorized(info.key):
                self._forget_pending(info.actor_id, "revoked")
                self.registry.forget(info)
                self.stats.drop("revoked_actor", info.actor_id)

    def close(self) -> None:
        self.scalars.close()
        self.connections.close()
        self.sock.close(linger=200)
        self._stop_guard()
        self.ctx.term()
        self.rundir.unlock()

    # ---- messages ------------------------------------------------------------------------

    def _handle(self, identity: bytes, frame, extra_frames: int = 0) -> None:
        """One message from the network. Whatever it holds, the loop goes on: every path
        that refuses it counts why; the guard below is a last resort, and a fuzzed run
        expects it never to fire."""
        msg = None
        try:
            self._received = time.monotonic()
            if frame is None or extra_frames:
                self.stats.drop("bad_frames", f"{0 if frame is None else 1 + extra_frames}")
                return
            key = self._key_of(frame)
            if self.guard is not None and key is None:
                self.stats.drop("revoked_key")  # its key left the authorized folder
                return
            try:
                msg = decode([frame], self.max_inflated)
            except CodecError as exc:
                self._on_bad_message(identity, exc)
                return
            self._dispatch(identity, key, msg)
        except Exception:  # a message must never take the learner down
            kind = getattr(msg, "TYPE", "undecoded")
            self.stats.drop("internal_error", kind)
            self._log_internal_error(kind)

    def _log_internal_error(self, kind: str) -> None:
        now = time.monotonic()
        if now - self._last_internal_log >= 10.0:
            self._last_internal_log = now
            log.exception("failed to handle a %s message (counted as internal_error)", kind)

    def _key_of(self, frame) -> str | None:
        """The sender's authorized key; None when keys are on and it is no longer
        authorized (keys off: "" for everyone)."""
        if self.guard is None:
            return ""
        key = user_id(frame)
        return key if key is not None and self.guard.is_authorized(key) else None

    def _on_bad_message(self, identity: bytes, exc: CodecError) -> None:
        self.stats.drop(exc.reason, exc.detail)
        if exc.reason == "bad_version" and exc.peer_type == "hello":
            # A peer of another version learns why, in terms it decodes, once per second.
            now = time.monotonic()
            if now - self._last_refusal >= 1.0:
                self._last_refusal = now
                theirs = "?" if exc.peer_version is None else exc.peer_version
                reason = (
                    f"protocol version mismatch: learner speaks {PROTOCOL_VERSION}, actor "
                    f"speaks {theirs}; upgrade the {_older(theirs)}"
                )
                frames = refusal(exc.peer_version, reason)
                self._count_send(send_frames(self.sock, frames, identity))

    def _dispatch(self, identity: bytes, key: str, msg: Message) -> None:
        if isinstance(msg, StatusQuery):
            self._send(Status(self.run_id, self.status()), identity)
            return
        if isinstance(msg, Hello):
            self._on_hello(identity, key, msg)
            return
        handler = self._handlers.get(type(msg))
        if handler is None:
            self.stats.drop("unexpected_type", msg.TYPE)
            return
        info = self._sender(identity, key, msg)
        if info is None:
            return
        try:
            handler(info, msg)
        except CodecError as exc:
            self.stats.drop(exc.reason, f"from {info.actor_id}: {exc.detail}")
            self._return_credit(info, msg, exc.reason)

    def _return_credit(self, info: ActorInfo, msg: Message, reason: str) -> None:
        """A known actor's work that was dropped is still answered, or its credit would be
        gone for good and the actor would wait forever; never beyond its credit."""
        if isinstance(msg, (Gradient, Rollout)) and reason != "over_credit":
            self._reply_weights(info, self._received)

    def _on_hello(self, identity: bytes, key: str, msg: Hello) -> None:
        if not (_plain(msg.actor_id) and msg.actor_id and _plain(msg.host)):
            # ids and hosts reach logs and status tables: printable ASCII only
            self.stats.drop("bad_field", f"hello with actor id {msg.actor_id[:40]!r}")
            return
        owner = self.registry.owner(identity)
        if owner is not None and owner != msg.actor_id:
            # One id per connection: else one socket could register (and be sent weights
            # for) any number of actors.
            self.stats.drop("one_id_per_connection", f"{msg.actor_id!r} after {owner!r}")
            return
        info = self.registry.get(msg.actor_id)
        if info is not None and info.key != key:
            self.stats.drop("identity_mismatch", f"hello for {msg.actor_id!r}")
            return
        if info is not None and info.welcomed == (identity, self.updater.version):
            # Weights go out once per version per connection: a repeated hello buys nothing.
            self.stats.drop("repeated_hello", msg.actor_id)
            return
        self._forget_pending(msg.actor_id, "rejoined")
        info = self.registry.register(msg.actor_id, identity, msg.host, msg.pid, key)
        if info is None:
            self.stats.drop("registry_full", msg.actor_id)
            return
        self._welcome(info)

    def _sender(self, identity: bytes, key: str, msg: Message) -> ActorInfo | None:
        """The registered sender of `msg`, or None after asking an unknown or out-of-date
        one to say hello again (a small reply: weights go out only to a hello)."""
        info = self.registry.get(msg.actor_id)
        if msg.run_id != self.run_id or info is None:
            self.stats.drop("wrong_run" if msg.run_id != self.run_id else "unknown_actor")
            if not isinstance(msg, Stop):
                self._send(Rejoin(msg.run_id, "unknown actor or earlier run: say hello"), identity)
            return None
        if info.key != key or info.identity != identity:
            # Another connection speaking for this actor: a forger, or a connection the
            # actor has since replaced (its hello moved it). Neither may act for it.
            self.stats.drop("identity_mismatch", f"{msg.TYPE} for {msg.actor_id!r}")
            if info.key == key and not isinstance(msg, Stop):
                self._send(Rejoin(msg.run_id, "this connection is not the actor's"), identity)
            return None
        self.registry.touch(info, identity)
        return info

    def _forget_pending(self, actor_id: str, reason: str) -> None:
        queue = self.pending.pop(actor_id, None)
        if queue:
            self._pending_bytes -= sum(item.nbytes for item in queue)
            self.stats.drop(f"{reason}_unlearned", f"{len(queue)} rollouts of {actor_id}")

    def _welcome(self, info: ActorInfo) -> None:
        settings = {
            "mode": self.cfg.mode,
            "env": self.cfg.env.to_dict(),
            "env_spec": self.spec.to_dict(),
            "hyperparams": self.hp.to_dict(),
            "seed": self.cfg.seed,
            "max_outstanding": self.cfg.max_outstanding,
            "max_credit": self.cfg.max_credit,
            "wire": {**self.wire.to_dict(), "frame_once": self.cfg.frame_once},
            "heartbeat_interval": self.cfg.heartbeat_interval,
            "heartbeat_timeout": self.cfg.heartbeat_timeout,
        }
        up = self.updater
        welcome = Welcome(
            self.run_id, info.index, up.version, up.stamp, settings, up.weights, self.norm.reply()
        )
        # Marked before sending: a peer whose queue is full gets no welcome and no second
        # try on this connection (an honest actor says hello again on a fresh socket).
        info.welcomed = (info.identity, up.version)
        info.sent_version = up.version
        self._send(welcome, info.identity)

    def _send(self, msg: Message, identity: bytes) -> int:
        return self._count_send(try_send(self.sock, msg, identity, self.wire))

    def _count_send(self, sent: int) -> int:
        """Bytes sent; a reply that could not go is counted by why: its identity is stale
        (the peer reconnected or left) or the peer's queue is full (it does not read)."""
        if sent > 0:
            self.stats.bytes_out += sent
            return sent
        self.stats.drop("stale_identity" if sent == UNREACHABLE else "peer_queue_full")
        return 0

    def _reply_weights(self, info: ActorInfo, received: float) -> None:
        """Return one credit, with the newest weights unless the actor's copy is at most
        weights_lag versions old (a version-only reply). `received`: when the work it
        answers arrived, so the actor can tell the link's round trip from the learner's."""
        up = self.updater
        held = max(0.0, time.monotonic() - received)
        reply = Weights(self.run_id, up.version, up.stamp, self.credit.grant, held)
        if up.version - info.sent_version > self.cfg.weights_lag or info.sent_version < 0:
            reply.weights, reply.extras = up.weights, self.norm.reply()
        if self._send(reply, info.identity) and reply.weights is not None:
            info.sent_version = up.version
            self.stats.weights_sent += 1

    def _staleness(self, info: ActorInfo, version: int) -> int | None:
        staleness = self.updater.version - version
        if staleness < 0:
            self.stats.drop("future_version", f"from {info.actor_id}")
            return None
        return staleness

    def _on_gradient(self, info: ActorInfo, msg: Gradient) -> None:
        if self.cfg.mode != "gradient":
            raise CodecError("wrong_mode", "gradient sent to a data-mode learner")
        check_gradient(msg, self.updater.num_params, self.hp)
        moments = self.norm.check(msg.extras, msg.env_steps)
        self.stats.add_latency(msg.weights_latency)
        staleness = self._staleness(info, msg.weights_version)
        if staleness is not None:
            self._count_steps(info, msg.env_steps)
            self.norm.merge(moments)  # what the actor saw counts, even if its gradient is late
            if staleness > self.cfg.max_staleness:
                self.stats.drop("stale", f"{staleness} updates old from {info.actor_id}")
            else:
                self._schedule_lr()
                if self.updater.apply_gradient(msg.grad):
                    self.stats.add_update([staleness], (math.nan,) * 4)
                else:
                    self.stats.drop("non_finite_update", f"from {info.actor_id}")
        self._reply_weights(info, self._received)

    def _on_rollout(self, info: ActorInfo, msg: Rollout) -> None:
        if self.cfg.mode != "data":
            raise CodecError("wrong_mode", "rollout sent to a gradient-mode learner")
        # The cheap refusals first: nothing is unpacked for work that cannot be taken.
        if len(self.pending.get(info.actor_id, ())) >= self.cfg.max_credit:
            raise CodecError("over_credit", f"{info.actor_id} exceeded its credit")
        if self._pending_bytes >= MAX_PENDING_BYTES:
            raise CodecError("learner_full", f"{self._pending_bytes} bytes wait to be learned")
        stats = {k: msg.arrays.pop(k) for k in WORK_STATS if k in msg.arrays}
        batch = check_rollout(msg, self.spec, self.hp)
        moments = self.norm.check(stats, msg.env_steps)
        self.stats.add_latency(msg.weights_latency)
        if self._staleness(info, msg.weights_version) is None:
            self._reply_weights(info, self._received)
            return
        # numpy views into ZeroMQ frames: copy so the frames can be released now.
        batch = RolloutBatch(**{k: v.copy() for k, v in batch.arrays().items()})
        nbytes = sum(v.nbytes for v in batch.arrays().values())
        self._pending_bytes += nbytes
        self.pending.setdefault(info.actor_id, deque()).append(
            PendingRollout(
                batch, msg.weights_version, msg.env_steps, moments, self._received, nbytes
            )
        )

    def _learn_pending(self) -> None:
        """One update from the oldest pending rollout of every actor that has one, at most
        MAX_ROLLOUTS_PER_UPDATE of them; actors left over go first next time."""
        taken: list[tuple[str, PendingRollout]] = []
        for actor_id in list(self.pending)[:MAX_ROLLOUTS_PER_UPDATE]:
            queue = self.pending.pop(actor_id)
            taken.append((actor_id, queue.popleft()))
            self._pending_bytes -= taken[-1][1].nbytes
            if queue:
                self.pending[actor_id] = queue  # to the back of the line
        fresh, staleness = [], []
        for actor_id, item in taken:
            self._count_steps(self.registry.get(actor_id), item.env_steps)
            self.norm.merge(item.moments)  # the statistics count exactly the counted steps
            age = self.updater.version - item.weights_version
            if age > self.cfg.max_staleness:
                self.stats.drop("stale", f"{age} updates old from {actor_id}")
            else:
                fresh.append(item.batch)
                staleness.append(age)
        if fresh:
            self.norm.sync(self.updater.model)
            if self.hp.split_batches:  # one update per rollout, as gradient mode applies them
                groups = [([b], [age + i]) for i, (b, age) in enumerate(zip(fresh, staleness))]
            else:
                groups = [(fresh, staleness)]
            for batches, ages in groups:
                self._schedule_lr()
                ls = self.updater.learn(batches, self.norm.reward_factor)
                if ls is None:
                    self.stats.drop("non_finite_update", f"{len(batches)} rollouts")
                    continue
                losses = (ls.policy_loss, ls.value_loss, ls.entropy, ls.log_ratio)
                self.stats.add_update(ages, losses)
        for actor_id, item in taken:
            info = self.registry.get(actor_id)
            if info is not None:
                self._reply_weights(info, item.received)

    def _schedule_lr(self) -> None:
        """--lr-decay: linearly from lr to 0 over the env-step budget."""
        if self.hp.lr_decay and self.cfg.max_env_steps:
            left = max(0.0, 1.0 - self.stats.env_steps / self.cfg.max_env_steps)
            self.updater.set_lr(self.hp.lr * left)

    def _count_steps(self, info: ActorInfo | None, n: int) -> None:
        if info is not None:
            info.env_steps += n
        self.stats.add_env_steps(n)

    def _on_episodes(self, info: ActorInfo, msg: Episodes) -> None:
        check_episodes(msg)
        self.stats.add_episodes(msg.returns)

    def _on_heartbeat(self, info: ActorInfo, msg: Heartbeat) -> None:
        self._send(Heartbeat(self.run_id, info.actor_id), info.identity)

    def _on_leave(self, info: ActorInfo, msg: Stop) -> None:
        self._forget_pending(info.actor_id, "left")
        self.registry.leave(info)
        log.info("actor %s left: %r", info.actor_id, msg.reason[:80])


def _plain(text: str) -> bool:
    return text.isascii() and text.isprintable()


def _older(peer_version) -> str:
    """Which side to upgrade when an actor speaks `peer_version`."""
    older = isinstance(peer_version, int) and peer_version < PROTOCOL_VERSION
    return "actor" if older else "learner"


def _is_loopback(address: str) -> bool:
    host = address.split("://", 1)[-1].rsplit(":", 1)[0].strip("[]")
    return (
        address.startswith(("ipc://", "inproc://"))
        or host in ("localhost", "::1")
        or (host.startswith("127."))
    )


def _env_threshold(env_config: EnvConfig) -> float | None:
    env = make_env(env_config)
    try:
        threshold = env.spec.reward_threshold if env.spec is not None else None
        return None if threshold is None else float(threshold)
    finally:
        env.close()
