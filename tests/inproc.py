"""A real learner driven in-process: messages go straight into its handling path (the same
decode, validate and handle code the socket feeds), and what it would send is recorded
instead of sent, so tests can look at every reply."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from learner.config import LearnerConfig
from learner.service import Learner
from protocol import MAX_BUNDLE, Gradient, Hello, Message, Rollout, Welcome, decode, encode
from tests.frames import quiet_rollout


class InProcessLearner:
    def __init__(self, run_dir: Path, mode: str = "gradient", **settings):
        settings.setdefault("tensorboard", False)
        config = LearnerConfig(
            mode=mode, env_id="CartPole-v1", run_dir=str(run_dir), bind="tcp://127.0.0.1:*",
            **settings,
        )  # fmt: skip
        self.learner = Learner(config)
        self.sent: list[tuple[bytes, Message]] = []
        self.learner._send = self._record
        self.refusals: list[tuple[bytes, list]] = []

    def _record(self, msg: Message, identity: bytes) -> int:
        self.sent.append((identity, msg))
        return sum(len(bytes(f)) for f in encode(msg))

    def deliver(self, identity: bytes, frames: list) -> None:
        """One message from the network, as the receive loop hands it on."""
        keep = 1 + MAX_BUNDLE  # what the receive loop keeps of one message
        self.learner._handle(identity, frames[:keep], max(0, len(frames) - keep))

    def send(self, identity: bytes, msg: Message) -> None:
        self.deliver(identity, [bytes(f) for f in encode(msg)])

    def replies(self, identity: bytes) -> list[Message]:
        return [m for i, m in self.sent if i == identity]

    def join(self, actor_id: str, identity: bytes) -> Welcome:
        self.send(identity, Hello(actor_id, "here", 1))
        welcome = self.replies(identity)[-1]
        assert isinstance(welcome, Welcome), welcome
        return welcome

    def work(self, actor_id: str, welcome: Welcome, version: int | None = None) -> Message:
        """A valid work message of this actor (a zero gradient, or a quiet rollout)."""
        hp = self.learner.hp
        version = welcome.weights_version if version is None else version
        steps = hp.rollout_len * hp.num_envs
        if self.learner.cfg.mode == "gradient":
            grad = np.zeros(self.learner.updater.num_params, np.float32)
            return Gradient(welcome.run_id, actor_id, version, steps, 0.0, grad)
        T, E, dim = hp.rollout_len, hp.num_envs, self.learner.spec.obs_shape[0]
        arrays = quiet_rollout(T, E, dim, reward=1.0)
        return Rollout(welcome.run_id, actor_id, version, steps, 0.0, arrays)

    def learn(self) -> None:
        """What the loop does between bursts: learn the rollouts that wait."""
        if self.learner.intake.backlog:
            self.learner._learn_pending()

    @property
    def dropped(self) -> dict:
        return dict(self.learner.stats.dropped)

    def close(self) -> None:
        self.learner.close()


def decoded(frames: list) -> Message:
    return decode([bytes(f) for f in frames])
