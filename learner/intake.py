"""What the learner does with work, by mode, chosen once at start: gradients are applied as
they come (GradientIntake); rollouts wait in a queue per actor and are learned together
(DataIntake).

An intake never sends: it returns whom to answer, each with when the work it answers
arrived, and the service sends the replies.
"""

from __future__ import annotations

import math
from collections import deque
from dataclasses import dataclass
from typing import ClassVar, NamedTuple

from learner.registry import ActorInfo, ActorRegistry
from learner.startup import RunParts
from learner.validation import check_gradient, check_rollout
from protocol import WORK_STATS, CodecError, Gradient, Message, Rollout
from rlcore.hyperparams import Hyperparams
from rlcore.rollout import RolloutBatch

MAX_ROLLOUTS_PER_UPDATE = 64
"""Data mode: the most rollouts one update learns together (a bound on its memory)."""
MAX_PENDING_BYTES = 1 << 30
"""Data mode: rollouts waiting to be learned, all actors together (each actor's own queue
is bounded by its credit)."""


class Due(NamedTuple):
    """An actor owed a reply, and when the work it answers arrived: the reply says how long
    the learner held it, so the actor can tell the link's round trip from the learner's."""

    info: ActorInfo
    received: float


class Intake:
    """What both modes share: staleness, env-step counting and the learning-rate schedule."""

    WORK: ClassVar[type[Message]]
    """The work message this mode takes; the service refuses the other as wrong_mode."""

    def __init__(self, run: RunParts, registry: ActorRegistry):
        self.cfg, self.hp, self.spec = run.cfg, run.cfg.hp, run.spec
        self.updater, self.norm, self.stats = run.updater, run.norm, run.stats
        self.registry = registry

    @property
    def backlog(self) -> bool:
        """Whether work waits to be learned: the loop then does not wait for messages."""
        return False

    def take(self, info: ActorInfo, msg: Message, received: float) -> list[Due]:
        """Use one work message of this mode's type; CodecError for work it refuses (the
        service still returns its credit unless the reason is over_credit)."""
        raise NotImplementedError

    def learn(self) -> list[Due]:
        return []

    def forget(self, actor_id: str, reason: str) -> None:
        """An actor rejoined, left or lost its key: what it has waiting is not learned."""

    def _staleness(self, info: ActorInfo, version: int) -> int | None:
        staleness = self.updater.version - version
        if staleness < 0:
            self.stats.drop("future_version", f"from {info.actor_id}")
            return None
        return staleness

    def _count_steps(self, info: ActorInfo | None, n: int) -> None:
        if info is not None:
            info.env_steps += n
        self.stats.add_env_steps(n)

    def _schedule_lr(self) -> None:
        """--lr-decay: linearly from lr to 0 over the env-step budget."""
        if self.hp.lr_decay and self.cfg.max_env_steps:
            left = max(0.0, 1.0 - self.stats.env_steps / self.cfg.max_env_steps)
            self.updater.set_lr(self.hp.lr * left)


class GradientIntake(Intake):
    WORK = Gradient

    def take(self, info: ActorInfo, msg: Gradient, received: float) -> list[Due]:
        check_gradient(msg, self.updater.num_params, self.hp)
        moments = self.norm.check(msg.extras, msg.env_steps)
        self.stats.add_latency(msg.weights_latency)
        staleness = self._staleness(info, msg.weights_version)
        if staleness is not None:
            self._count_steps(info, msg.env_steps)
            self.norm.merge(moments)  # what the actor saw counts, even if its gradient is late
            self._apply(info, msg.grad, staleness)
        return [Due(info, received)]

    def _apply(self, info: ActorInfo, grad, staleness: int) -> None:
        if staleness > self.cfg.max_staleness:
            self.stats.drop("stale", f"{staleness} updates old from {info.actor_id}")
            return
        self._schedule_lr()
        if self.updater.apply_gradient(grad):
            self.stats.add_update([staleness], (math.nan,) * 4)
        else:
            self.stats.drop("non_finite_update", f"from {info.actor_id}")


@dataclass
class PendingRollout:
    batch: RolloutBatch
    weights_version: int
    env_steps: int
    moments: dict
    """Normalization moments, merged when its env steps are counted."""
    received: float
    nbytes: int


class DataIntake(Intake):
    WORK = Rollout

    def __init__(self, run: RunParts, registry: ActorRegistry):
        super().__init__(run, registry)
        self.pending: dict[str, deque[PendingRollout]] = {}
        """Each actor's rollouts in arrival order; actors in the order they are served."""
        self.pending_bytes = 0

    @property
    def backlog(self) -> bool:
        return bool(self.pending)

    def take(self, info: ActorInfo, msg: Rollout, received: float) -> list[Due]:
        # The cheap refusals first: nothing is unpacked for work that cannot be taken.
        if len(self.pending.get(info.actor_id, ())) >= self.cfg.max_credit:
            raise CodecError("over_credit", f"{info.actor_id} exceeded its credit")
        if self.pending_bytes >= MAX_PENDING_BYTES:
            raise CodecError("learner_full", f"{self.pending_bytes} bytes wait to be learned")
        stats = {k: msg.arrays.pop(k) for k in WORK_STATS if k in msg.arrays}
        batch = check_rollout(msg, self.spec, self.hp)
        moments = self.norm.check(stats, msg.env_steps)
        self.stats.add_latency(msg.weights_latency)
        if self._staleness(info, msg.weights_version) is None:
            return [Due(info, received)]
        # numpy views into ZeroMQ frames: copy so the frames can be released now.
        batch = RolloutBatch(**{k: v.copy() for k, v in batch.arrays().items()})
        nbytes = sum(v.nbytes for v in batch.arrays().values())
        self.pending_bytes += nbytes
        self.pending.setdefault(info.actor_id, deque()).append(
            PendingRollout(batch, msg.weights_version, msg.env_steps, moments, received, nbytes)
        )
        return []

    def learn(self) -> list[Due]:
        """One update from the oldest pending rollout of every actor that has one, at most
        MAX_ROLLOUTS_PER_UPDATE of them; actors left over go first next time."""
        taken = self._take_oldest()
        fresh, ages = self._count(taken)
        if fresh:
            self._update(fresh, ages)
        dues = ((self.registry.get(actor_id), item.received) for actor_id, item in taken)
        return [Due(info, received) for info, received in dues if info is not None]

    def forget(self, actor_id: str, reason: str) -> None:
        queue = self.pending.pop(actor_id, None)
        if queue:
            self.pending_bytes -= sum(item.nbytes for item in queue)
            self.stats.drop(f"{reason}_unlearned", f"{len(queue)} rollouts of {actor_id}")

    def _take_oldest(self) -> list[tuple[str, PendingRollout]]:
        taken = []
        for actor_id in list(self.pending)[:MAX_ROLLOUTS_PER_UPDATE]:
            queue = self.pending.pop(actor_id)
            taken.append((actor_id, queue.popleft()))
            self.pending_bytes -= taken[-1][1].nbytes
            if queue:
                self.pending[actor_id] = queue  # to the back of the line
        return taken

    def _count(self, taken: list[tuple[str, PendingRollout]]) -> tuple[list, list[int]]:
        """Every taken rollout's env steps and moments count; only the fresh ones are
        learned. Returns those batches and their staleness."""
        fresh, ages = [], []
        for actor_id, item in taken:
            self._count_steps(self.registry.get(actor_id), item.env_steps)
            self.norm.merge(item.moments)  # the statistics count exactly the counted steps
            age = self.updater.version - item.weights_version
            if age > self.cfg.max_staleness:
                self.stats.drop("stale", f"{age} updates old from {actor_id}")
            else:
                fresh.append(item.batch)
                ages.append(age)
        return fresh, ages

    def _update(self, fresh: list[RolloutBatch], ages: list[int]) -> None:
        self.norm.sync(self.updater.model)
        for batches, group_ages in split(fresh, ages, self.hp):
            self._schedule_lr()
            ls = self.updater.learn(batches, self.norm.reward_factor)
            if ls is None:
                self.stats.drop("non_finite_update", f"{len(batches)} rollouts")
                continue
            losses = (ls.policy_loss, ls.value_loss, ls.entropy, ls.log_ratio)
            self.stats.add_update(group_ages, losses)


def split(fresh: list, ages: list[int], hp: Hyperparams) -> list[tuple[list, list[int]]]:
    """A round's rollouts as the updates that learn them: one, or with split batches up to
    `split_max` of nearly equal size in arrival order; every update after the first makes
    the rest one version older."""
    parts = min(len(fresh), hp.split_max) if hp.split_batches else 1
    bounds = [i * len(fresh) // parts for i in range(parts + 1)]
    return [
        (fresh[a:b], [age + i for age in ages[a:b]])
        for i, (a, b) in enumerate(zip(bounds, bounds[1:]))
    ]


INTAKES: dict[str, type[Intake]] = {"gradient": GradientIntake, "data": DataIntake}
"""The intake of each mode (rlcore.run_settings.MODES)."""
