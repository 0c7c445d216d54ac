"""One actor process: join the learner, then act, compute work, send it, take new weights.

Credit: at most `limit` work messages are in flight (actor.credit: the learner's base credit,
more when the round trip is long). Before each rollout the actor takes the replies that have
come (while pacing) and then waits for as many as it needs to be under that limit, in order,
adopting the weights they carry. With a fixed credit (--max-credit equal to the base) it
reads only the replies it needs, so a single-actor run with a fixed seed repeats exactly.

Nothing waits in silence: a reply overdue past the pacer's deadline, or a learner's rejoin
request, makes the actor say hello again on a fresh socket; a refusal (another protocol
version) ends it with exit code 3; a joined actor that no learner answers for
`learner_timeout` seconds ends with exit code 4.
"""

from __future__ import annotations

import logging
import os
import secrets
import signal
import socket
import time

import numpy as np
import torch

from actor.collector import Collector
from actor.connection import LearnerLink, LearnerRefused, LearnerUnreachable
from actor.credit import CreditPacer
from actor.normstats import ActorNorm
from protocol import (
    CodecError,
    Episodes,
    Gradient,
    Heartbeat,
    Rejoin,
    Rollout,
    Stop,
    Weights,
    Welcome,
)
from protocol.link import LinkSettings
from protocol.security import ClientKeys, load_client_keys
from rlcore import framestack
from rlcore.envs import VectorEnv
from rlcore.flat import FlatParameters
from rlcore.losses import rollout_loss
from rlcore.networks import build_network
from rlcore.run_settings import RunSettings

log = logging.getLogger(__name__)


class LearnerGone(Exception):
    """The oldest work in flight went unanswered past the reply deadline."""

    def __init__(self, waited: float, deadline: float):
        super().__init__(f"{waited:.1f}s")
        self.waited = waited
        self.deadline = deadline


class RejoinRequested(Exception):
    """The learner does not know this actor, or not in this run: say hello again."""


class StopActor(Exception):
    """The learner said training is over."""


AFTER_STOP = ("exit", "wait")
RUN_WAIT_FIRST, RUN_WAIT_MAX = 5.0, 60.0
LEARNER_TIMEOUT = 300.0
"""Default seconds a joined actor keeps asking a silent learner (0: forever); actors that
outlive runs (after_stop="wait") wait forever unless told otherwise."""
EXIT_SETTINGS, EXIT_REFUSED, EXIT_UNREACHABLE = 2, 3, 4


class Actor:
    def __init__(
        self,
        learner: str,
        seed: int | None = None,
        keys: ClientKeys | None = None,
        after_stop: str = "exit",
        learner_timeout: float = 0.0,
    ):
        if after_stop not in AFTER_STOP:
            raise ValueError(f"after_stop must be one of {AFTER_STOP}, not {after_stop!r}")
        self.after_stop = after_stop
        self.learner_timeout = learner_timeout
        self.joined = False
        """In a run: a learner that stops answering now is lost, not yet to come."""
        self._run_wait = RUN_WAIT_FIRST
        self.actor_id = f"{socket.gethostname()}-{os.getpid()}-{secrets.token_hex(3)}"
        self.link = LearnerLink(learner, self.actor_id, keys)
        self.cli_seed = seed
        self.settings: RunSettings | None = None
        """What the run trains on, from the learner's welcome."""
        self.link_settings: LinkSettings | None = None
        self.envs: VectorEnv | None = None
        self.run_id = ""
        self.version = 0
        self.weights_stamp = 0.0
        self.latency_reported = True
        self.outstanding = 0
        self.signalled: str | None = None

    def run(self) -> int:
        """Train until the learner says stop (exit code 0) or a signal arrives (also 0).

        With after_stop="wait" a stop does not end the process: the actor waits, with
        back-off, for the learner's next run (a long-lived deployment's actors).
        Exit code 3: the learner refused this actor; 4: a joined actor's learner was lost.
        """
        torch.set_num_threads(1)
        self._install_signal_handlers()
        try:
            return self._run()
        except LearnerRefused as exc:
            log.error("%s", exc)
            return EXIT_REFUSED
        except LearnerUnreachable as exc:
            log.error("%s", exc)
            return EXIT_UNREACHABLE
        finally:
            self._close()

    def _run(self) -> int:
        while not self.signalled:
            # Actors that outlive runs knock rarely while no learner is up.
            max_wait = RUN_WAIT_MAX if self.after_stop == "wait" else 10.0
            # Before the first join a learner may yet start: only a lost one has a limit.
            give_up = self.learner_timeout if self.joined and self.learner_timeout else None
            answer = self.link.handshake(lambda: self.signalled is not None, 1.0, max_wait, give_up)
            if answer is None:
                break
            if isinstance(answer, Stop):  # a learner whose run is already over
                if self._run_over(answer.reason):
                    continue
                return 0
            self._run_wait = RUN_WAIT_FIRST
            try:
                self._adopt_welcome(answer)
                self._work()
            except LearnerGone as gone:
                log.warning(
                    "no reply from the learner for %.1fs (deadline %.1fs); joining again",
                    gone.waited,
                    gone.deadline,
                )
            except RejoinRequested as rejoin:
                log.info("the learner asked this actor to join again (%s)", rejoin)
            except StopActor as stop:
                self._acknowledge(stop)
                if self._run_over(str(stop)):
                    continue
                return 0
            except (AttributeError, KeyError, TypeError, ValueError) as exc:
                # e.g. a learner of another version, or an env this host cannot make
                log.error("cannot act on the learner's settings: %s: %s", type(exc).__name__, exc)
                return EXIT_SETTINGS
        self._leave()
        return 0

    def _run_over(self, reason: str) -> bool:
        """The learner ended its run. True: wait for its next run; False: exit."""
        if self.after_stop == "exit":
            log.info("learner ended training (%s); exiting", reason)
            return False
        log.info("learner ended training (%s); asking again in %.0fs", reason, self._run_wait)
        self.run_id = ""  # nothing of the ended run is sent on
        self.joined = False  # waiting for a run that is yet to come, as before the first
        deadline = time.monotonic() + self._run_wait
        while not self.signalled and time.monotonic() < deadline:
            time.sleep(0.2)
        self._run_wait = min(self._run_wait * 2, RUN_WAIT_MAX)
        return True

    def _install_signal_handlers(self) -> None:
        def handler(signum, _frame):
            self.signalled = signal.Signals(signum).name

        signal.signal(signal.SIGTERM, handler)
        signal.signal(signal.SIGINT, handler)

    def _adopt_welcome(self, welcome: Welcome) -> None:
        # Both raise TypeError or ValueError on a welcome that is not well formed: _run ends
        # the actor with EXIT_SETTINGS rather than act on half of it.
        settings = RunSettings.from_dict(welcome.settings)
        link = LinkSettings.from_dict(welcome.settings)
        if (settings, link) != (self.settings, self.link_settings):
            self._build(settings, link, welcome.actor_index)
        self.run_id = welcome.run_id
        self.joined = True
        self.outstanding = 0
        self.pacer.reset()
        self._adopt_weights(
            welcome.weights_version, welcome.weights_stamp, welcome.weights, welcome.extras
        )

    def _build(self, settings: RunSettings, link: LinkSettings, actor_index: int) -> None:
        self.settings = self.link_settings = None  # set once everything below is built
        if self.envs is not None:
            self.envs.close()
            self.envs = None
        base = settings.seed if self.cli_seed is None else self.cli_seed
        env_seed, torch_seed = np.random.SeedSequence([base, actor_index]).generate_state(2)
        hp, spec = settings.hp, settings.spec
        self.model = build_network(spec, hp)
        self.flat = FlatParameters(self.model)
        self.envs = VectorEnv(settings.env, hp.num_envs, int(env_seed))
        if self.envs.spec != spec:
            raise ValueError(f"this host builds {self.envs.spec}, the learner {spec}")
        self.envs.reset()
        self.link.wire = link.wire
        self.pacer = CreditPacer(link.max_outstanding, link.max_credit)
        self.pack_frames = link.frame_once and framestack.can_pack(spec.obs_shape, spec.obs_dtype)
        self.norm = ActorNorm(hp, int(np.prod(spec.obs_shape)), hp.num_envs)
        generator = torch.Generator().manual_seed(int(torch_seed))
        lstm_size = hp.lstm_size if hp.recurrent else 0
        self.collector = Collector(self.envs, hp.rollout_len, generator, lstm_size)
        # Chosen once per run: what a rollout becomes is the mode's, not a branch per send.
        self._send_work = self._send_gradient if settings.mode == "gradient" else self._send_rollout
        log.info(
            "acting on %s in %s mode with %d envs (index %d)",
            settings.env.env_id,
            settings.mode,
            hp.num_envs,
            actor_index,
        )
        self.settings, self.link_settings = settings, link

    def _adopt_weights(
        self, version: int, stamp: float, weights: np.ndarray, stats: dict[str, np.ndarray]
    ) -> None:
        try:
            self.norm.check(stats)
        except CodecError as exc:  # keep acting on what we had; the next reply may be good
            log.warning("ignored weights with bad statistics from the learner: %s", exc)
            return
        self.flat.load(weights)
        self.norm.adopt(self.model, stats)
        if version != self.version or self.latency_reported:
            self.weights_stamp, self.latency_reported = stamp, False
        self.version = version

    def _weights_latency(self) -> float:
        """Seconds from the learner's update to now, once per new weights version."""
        if self.latency_reported:
            return -1.0
        self.latency_reported = True
        return max(0.0, time.time() - self.weights_stamp)

    def _work(self) -> None:
        while not self.signalled:
            self._wait_for_credit()
            if self.signalled:
                return
            latency = self._weights_latency()
            started = time.monotonic()
            rollout = self.collector.collect(self.model)
            self._send_episodes()
            self._send_work(rollout, latency)
            self.pacer.on_work(time.monotonic() - started)
            self.pacer.on_send()
            self.outstanding += 1

    def _send_gradient(self, rollout, latency: float) -> None:
        stats = self.norm.work_stats(rollout)
        self.flat.zero_grad()
        hp = self.settings.hp
        loss, _ = rollout_loss(self.model, rollout, hp, False, self.norm.reward_factor)
        loss.backward()
        grad = self.flat.gradient()
        steps = rollout.num_steps
        self.link.send(
            Gradient(self.run_id, self.actor_id, self.version, steps, latency, grad, stats)
        )

    def _send_rollout(self, rollout, latency: float) -> None:
        stats = self.norm.work_stats(rollout)
        arrays = {**self._rollout_arrays(rollout), **stats}
        steps = rollout.num_steps
        msg = Rollout(self.run_id, self.actor_id, self.version, steps, latency, arrays)
        # Copied: the rollout buffer is refilled while ZeroMQ may still hold the frames.
        self.link.send(msg, copy=True)

    def _rollout_arrays(self, rollout) -> dict[str, np.ndarray]:
        """The rollout's arrays; stacked frames once each where that is smaller."""
        arrays = rollout.arrays()
        if not self.pack_frames:
            return arrays
        packed = framestack.pack(arrays["obs"], arrays["bootstrap_obs"])
        if framestack.packed_bytes(packed) >= arrays["obs"].nbytes + arrays["bootstrap_obs"].nbytes:
            return arrays  # frames that are not a stack, or episodes too short to gain
        del arrays["obs"], arrays["bootstrap_obs"]
        return {**arrays, **packed}

    def _send_episodes(self) -> None:
        returns, lengths = self.envs.pop_finished()
        if returns:
            self.link.send(Episodes(self.run_id, self.actor_id, returns, lengths))

    def _wait_for_credit(self) -> None:
        """Consume replies, in order, until fewer than the pacer's limit are in flight."""
        s = self.link_settings
        if self.pacer.pacing:
            self._drain_replies()
        last_sent = time.monotonic()
        while self.outstanding >= self.pacer.limit and not self.signalled:
            # Heartbeat answers prove nothing: after a TCP reset they may reach this socket
            # while the replies to its work go to an identity the learner no longer has.
            deadline = self.pacer.reply_deadline(s.heartbeat_timeout)
            left = deadline - self.pacer.oldest_wait()
            msg = self.link.recv(min(s.heartbeat_interval, max(left, 0.05)))
            if msg is None:
                waited = self.pacer.oldest_wait()
                if waited > deadline:
                    raise LearnerGone(waited, deadline)
                if time.monotonic() - last_sent >= s.heartbeat_interval:
                    self.link.send(Heartbeat(self.run_id, self.actor_id))
                    last_sent = time.monotonic()
                continue
            self.pacer.nothing_waiting()  # we waited for it: it arrived just now
            self._on_message(msg)

    def _drain_replies(self) -> None:
        """Take the replies that have come, without waiting: the actor acts on the newest
        weights it has, and the pacer learns that later replies arrive after now. Only
        while pacing: with a fixed credit, replies are read only when the credit is spent,
        so a run with a seed does the same thing every time."""
        for _ in range(4 * self.pacer.cap):  # bounded: a flood cannot hold the actor here
            if not self.link.waiting():
                self.pacer.nothing_waiting()
                return
            msg = self.link.recv(0)
            if msg is not None:
                self._on_message(msg)

    def _on_message(self, msg) -> None:
        if isinstance(msg, Stop):
            raise StopActor(msg.reason)
        if isinstance(msg, Rejoin):
            # One about another run is late news of a run this actor has left.
            if msg.run_id in (self.run_id, ""):
                raise RejoinRequested(" ".join(msg.reason.split())[:200])
            return
        if isinstance(msg, Welcome):
            log.info("learner restarted or re-synced (run %s)", msg.run_id)
            self._adopt_welcome(msg)
        elif isinstance(msg, Weights) and msg.run_id == self.run_id:
            self.outstanding = max(0, self.outstanding - 1)
            self.pacer.on_reply(msg.held)
            self.pacer.on_grant(msg.credit)
            if msg.weights is not None and msg.version >= self.version:
                self._adopt_weights(msg.version, msg.stamp, msg.weights, msg.extras)

    def _acknowledge(self, stop: StopActor) -> None:
        """Said so that the learner need not wait to tell this actor again."""
        if self.run_id and self.link.sock is not None:
            self.link.send(Stop(self.run_id, self.actor_id, f"actor leaving ({stop})"[:200]))

    def _leave(self) -> None:
        if self.run_id and self.link.sock is not None:
            self.link.send(Stop(self.run_id, self.actor_id, f"actor {self.signalled or 'done'}"))
            log.info("leaving (%s)", self.signalled)

    def _close(self) -> None:
        if self.envs is not None:
            self.envs.close()
        self.link.close()


def run_actor(
    learner: str,
    seed: int | None = None,
    keys_dir: str | None = None,
    after_stop: str = "exit",
    learner_timeout: float | None = None,
) -> int:
    """`learner_timeout` None: LEARNER_TIMEOUT, or forever with after_stop="wait"."""
    if learner_timeout is None:
        learner_timeout = 0.0 if after_stop == "wait" else LEARNER_TIMEOUT
    keys = load_client_keys(keys_dir) if keys_dir else None
    return Actor(learner, seed, keys, after_stop, learner_timeout).run()
