"""The one model and its one Adam optimizer (the shared-memory SharedAdam, in one place),
both on flat buffers (rlcore.flat)."""

from __future__ import annotations

import math
import time

import numpy as np

from rlcore.envs import EnvSpec
from rlcore.flat import FlatAdam, FlatParameters
from rlcore.hyperparams import Hyperparams
from rlcore.losses import LossStats, rollout_loss
from rlcore.networks import build_network
from rlcore.rollout import RolloutBatch, concat_rollouts


class Updater:
    """Applies gradients (gradient mode) or learns from rollouts (data mode).

    `version` counts updates; it names the weights an actor acted or computed on.
    """

    def __init__(self, spec: EnvSpec, hp: Hyperparams, seed: int, device: str = "cpu"):
        self.hp = hp
        self.model = build_network(spec, hp, seed=seed).to(device)
        self.flat = FlatParameters(self.model)
        self.optimizer = FlatAdam(self.flat, lr=hp.lr)
        self.lr = hp.lr
        """The scheduled learning rate (before data mode's batch scaling)."""
        self.version = 0
        self.stamp = time.time()
        """Wall-clock time of the update that made the current weights."""
        self.num_params = self.flat.size
        self._weights = self.flat.weights()

    @property
    def weights(self) -> np.ndarray:
        """Flat float32 weights of the current version (cached: served to every actor)."""
        return self._weights

    def set_lr(self, lr: float) -> None:
        """The step size of the next updates (a schedule's value; Adam's state is kept)."""
        self.lr = lr
        self._use_lr(lr)

    def _use_lr(self, lr: float) -> None:
        self.optimizer.lr = lr

    def apply_gradient(self, flat_grad: np.ndarray) -> bool:
        """Apply one gradient; False (nothing applied) when its norm is not finite."""
        self.flat.set_gradient(np.asarray(flat_grad, dtype=np.float32))
        self._use_lr(self.lr)
        return self._step()

    def learn(self, rollouts: list[RolloutBatch], reward_factor: float = 1.0) -> LossStats | None:
        """One update from `rollouts`; None (nothing applied) when the loss or its gradient
        is not finite."""
        factor = len(rollouts) ** self.hp.batch_lr_power
        self._use_lr(self.lr * min(factor, self.hp.batch_lr_scale))
        self.flat.zero_grad()
        batch = concat_rollouts(rollouts)
        loss, stats = rollout_loss(self.model, batch, self.hp, True, reward_factor)
        loss.backward()
        return stats if self._step() else None

    def _step(self) -> bool:
        norm = self.flat.clip_grad_norm(self.hp.max_grad_norm)
        if not math.isfinite(norm):
            # Clipping cannot tame an infinite or NaN norm: one such step would make every
            # weight NaN, and every actor would receive them.
            self.flat.zero_grad()
            return False
        self.optimizer.step()
        self.flat.zero_grad()
        self.version += 1
        self.stamp = time.time()
        self._weights = self.flat.weights()
        return True

    def state_dict(self) -> dict:
        return {
            "model": self.model.state_dict(),
            "optimizer": self.optimizer.state_dict(),
            "weights_version": self.version,
        }

    def load_state_dict(self, state: dict) -> None:
        self.model.load_state_dict(state["model"])  # load_state_dict copies to the device
        self.optimizer.load_state_dict(state["optimizer"])
        self.version = int(state["weights_version"])
        self._weights = self.flat.weights()
