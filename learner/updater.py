"""The one model and its one Adam optimizer (the shared-memory SharedAdam, in one place)."""

from __future__ import annotations

import time

import numpy as np
import torch

from rlcore.envs import EnvSpec
from rlcore.hyperparams import Hyperparams
from rlcore.losses import LossStats, rollout_loss
from rlcore.networks import build_network, get_flat_params, num_params, set_flat_grad
from rlcore.rollout import RolloutBatch, concat_rollouts


class Updater:
    """Applies gradients (gradient mode) or learns from rollouts (data mode).

    `version` counts updates; it names the weights an actor acted or computed on.
    """

    def __init__(self, spec: EnvSpec, hp: Hyperparams, seed: int, device: str = "cpu"):
        self.hp = hp
        self.model = build_network(spec, hp, seed=seed).to(device)
        self.optimizer = torch.optim.Adam(self.model.parameters(), lr=hp.lr)
        self.lr = hp.lr
        """The scheduled learning rate (before data mode's batch scaling)."""
        self.version = 0
        self.stamp = time.time()
        """Wall-clock time of the update that made the current weights."""
        self.num_params = num_params(self.model)
        self._weights = get_flat_params(self.model)

    @property
    def weights(self) -> np.ndarray:
        """Flat float32 weights of the current version (cached: served to every actor)."""
        return self._weights

    def set_lr(self, lr: float) -> None:
        """The step size of the next updates (a schedule's value; Adam's state is kept)."""
        self.lr = lr
        self._use_lr(lr)

    def _use_lr(self, lr: float) -> None:
        for group in self.optimizer.param_groups:
            group["lr"] = lr

    def apply_gradient(self, flat_grad: np.ndarray) -> bool:
        """Apply one gradient; False (nothing applied) when its norm is not finite."""
        set_flat_grad(self.model, torch.from_numpy(np.array(flat_grad, dtype=np.float32)))
        self._use_lr(self.lr)
        return self._step()

    def learn(self, rollouts: list[RolloutBatch], reward_factor: float = 1.0) -> LossStats | None:
        """One update from `rollouts`; None (nothing applied) when the loss or its gradient
        is not finite."""
        factor = len(rollouts) ** self.hp.batch_lr_power
        self._use_lr(self.lr * min(factor, self.hp.batch_lr_scale))
        self.optimizer.zero_grad(set_to_none=True)
        batch = concat_rollouts(rollouts)
        loss, stats = rollout_loss(self.model, batch, self.hp, True, reward_factor)
        loss.backward()
        return stats if self._step() else None

    def _step(self) -> bool:
        norm = torch.nn.utils.clip_grad_norm_(self.model.parameters(), self.hp.max_grad_norm)
        if not torch.isfinite(norm):
            # Clipping cannot tame an infinite or NaN norm: one such step would make every
            # weight NaN, and every actor would receive them.
            self.optimizer.zero_grad(set_to_none=True)
            return False
        self.optimizer.step()
        self.optimizer.zero_grad(set_to_none=True)
        self.version += 1
        self.stamp = time.time()
        self._weights = get_flat_params(self.model)
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
        self._weights = get_flat_params(self.model)
