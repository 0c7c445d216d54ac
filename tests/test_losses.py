"""The A3C loss against hand-computed values, and rollout targets with truncation."""

import math

import numpy as np
import pytest
import torch
from torch import nn

from rlcore.distributions import Categorical
from rlcore.hyperparams import Hyperparams
from rlcore.losses import a3c_loss, rollout_loss
from rlcore.rollout import RolloutBatch


def categorical_loss(logits, values, actions, targets, advantages, entropy_coef, value_coef):
    logp = Categorical.log_prob(logits, actions)
    entropy = Categorical.entropy(logits)
    return a3c_loss(logp, entropy, values, targets, advantages, entropy_coef, value_coef)


def test_a3c_loss_by_hand():
    logits = torch.zeros(1, 2)
    values = torch.tensor([1.0], requires_grad=True)
    total, stats = categorical_loss(
        logits,
        values,
        torch.tensor([0]),
        torch.tensor([3.0]),
        torch.tensor([2.0]),
        entropy_coef=0.01,
        value_coef=0.5,
    )
    ln2 = math.log(2)
    assert stats.policy_loss == pytest.approx(2 * ln2)  # -(log 0.5) * advantage 2
    assert stats.value_loss == pytest.approx(2.0)  # 0.5 * (3 - 1)^2
    assert stats.entropy == pytest.approx(ln2)
    assert total.item() == pytest.approx(2 * ln2 + 0.5 * 2.0 - 0.01 * ln2)
    total.backward()
    assert values.grad.item() == pytest.approx(0.5 * (1.0 - 3.0))


def test_policy_gradient_pushes_toward_positive_advantage():
    logits = torch.zeros(1, 3, requires_grad=True)
    total, _ = categorical_loss(
        logits, torch.zeros(1), torch.tensor([2]), torch.zeros(1), torch.tensor([1.0]), 0.0, 0.5
    )
    total.backward()
    # d/dlogits of -log softmax(z)[2] = softmax - onehot = [1/3, 1/3, -2/3]
    np.testing.assert_allclose(logits.grad.numpy(), [[1 / 3, 1 / 3, -2 / 3]], rtol=1e-6)


class ObsValue(nn.Module):
    """V(obs) = obs[0]; uniform policy over 2 actions. Makes targets checkable by hand."""

    dist = Categorical
    recurrent = False

    def __init__(self):
        super().__init__()
        self.dummy = nn.Parameter(torch.zeros(1))

    def forward(self, obs):
        return torch.zeros(obs.shape[0], 2) + self.dummy, obs[:, 0] + 0 * self.dummy

    def unroll(self, obs, first, state):
        T, E = obs.shape[:2]
        params, values = self(obs.reshape(T * E, -1))
        return params.reshape(T, E, -1), values.reshape(T, E), None


def test_rollout_targets_use_final_obs_on_truncation_and_zero_on_termination():
    T, E = 3, 2
    obs = np.zeros((T, E, 1), np.float32)
    obs[:, 0, 0] = [1.0, 2.0, 3.0]
    obs[:, 1, 0] = [5.0, 6.0, 7.0]
    truncated = np.zeros((T, E), bool)
    terminated = np.zeros((T, E), bool)
    truncated[1, 0] = True  # env 0 truncated at t=1; its final obs has value 100
    terminated[0, 1] = True  # env 1 terminated at t=0
    batch = RolloutBatch(
        obs=obs,
        actions=np.zeros((T, E), np.int64),
        rewards=np.ones((T, E), np.float32),
        terminated=terminated,
        truncated=truncated,
        behaviour_logp=np.full((T, E), math.log(0.5), np.float32),
        bootstrap_obs=np.array([[4.0], [8.0]], np.float32),
        trunc_index=np.array([1 * E + 0]),
        trunc_obs=np.array([[100.0]], np.float32),
    )
    hp = Hyperparams(gamma=0.5, entropy_coef=0.0, value_coef=1.0)
    model = ObsValue()
    for off_policy in (False, True):
        _, stats = rollout_loss(model, batch, hp, off_policy=off_policy)
        # env 0: R2 = 1 + .5*4 = 3; R1 = 1 + .5*100 = 51 (truncation); R0 = 1 + .5*51 = 26.5
        # env 1: R2 = 1 + .5*8 = 5; R1 = 1 + .5*5 = 3.5; R0 = 1 (terminated)
        targets = np.array([[26.5, 1.0], [51.0, 3.5], [3.0, 5.0]])
        expected = 0.5 * np.mean((targets - obs[..., 0]) ** 2)
        assert stats.value_loss == pytest.approx(expected, rel=1e-6)


def test_the_off_policy_loss_reports_how_far_the_policy_moved():
    T, E = 2, 2
    behaviour = np.full((T, E), math.log(0.5), np.float32)
    behaviour[0] = math.log(0.25)  # the learner's policy (p = 0.5) is twice as likely there
    batch = RolloutBatch(
        obs=np.zeros((T, E, 1), np.float32),
        actions=np.zeros((T, E), np.int64),
        rewards=np.ones((T, E), np.float32),
        terminated=np.zeros((T, E), bool),
        truncated=np.zeros((T, E), bool),
        behaviour_logp=behaviour,
        bootstrap_obs=np.zeros((E, 1), np.float32),
        trunc_index=np.zeros(0, np.int64),
        trunc_obs=np.zeros((0, 1), np.float32),
    )
    _, stats = rollout_loss(ObsValue(), batch, Hyperparams(), off_policy=True)
    assert stats.log_ratio == pytest.approx(math.log(2) / 2)
    _, stats = rollout_loss(ObsValue(), batch, Hyperparams(), off_policy=False)
    assert math.isnan(stats.log_ratio)  # on-policy: nothing moved, nothing computed
