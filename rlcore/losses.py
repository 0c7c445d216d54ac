"""The A3C loss: policy gradient with an advantage, value regression, entropy bonus."""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from rlcore.hyperparams import Hyperparams
from rlcore.returns import n_step_returns, vtrace
from rlcore.rollout import RolloutBatch


@dataclass
class LossStats:
    policy_loss: float
    value_loss: float
    entropy: float


def a3c_loss(
    logits: torch.Tensor,
    values: torch.Tensor,
    actions: torch.Tensor,
    value_targets: torch.Tensor,
    advantages: torch.Tensor,
    entropy_coef: float,
    value_coef: float,
) -> tuple[torch.Tensor, LossStats]:
    """Mean over samples of -log pi(a) A - entropy_coef H + value_coef * 0.5 (target - V)^2.

    Targets and advantages are constants (no gradient flows through them).
    """
    logp_all = torch.log_softmax(logits, dim=-1)
    logp = logp_all.gather(-1, actions.unsqueeze(-1)).squeeze(-1)
    entropy = -(logp_all.exp() * logp_all).sum(-1).mean()
    policy_loss = -(logp * advantages.detach()).mean()
    value_loss = 0.5 * (value_targets.detach() - values).pow(2).mean()
    total = policy_loss + value_coef * value_loss - entropy_coef * entropy
    stats = LossStats(policy_loss.item(), value_loss.item(), entropy.item())
    return total, stats


def rollout_loss(
    model: nn.Module, rollout: RolloutBatch, hp: Hyperparams, off_policy: bool
) -> tuple[torch.Tensor, LossStats]:
    """The loss of `model` on `rollout`: n-step returns when on-policy, V-trace when not."""
    T, E = rollout.rewards.shape
    obs_shape = rollout.obs.shape[2:]
    device = next(model.parameters()).device

    def tensor(x):
        return torch.as_tensor(x, device=device)

    obs = tensor(rollout.obs).reshape(T * E, *obs_shape)
    extra = torch.cat([tensor(rollout.bootstrap_obs), tensor(rollout.trunc_obs)]).reshape(
        -1, *obs_shape
    )
    logits, values = model(obs)
    with torch.no_grad():
        _, extra_values = model(extra)
    values_te = values.reshape(T, E)
    next_values = _next_values(values_te.detach(), extra_values, rollout, E)
    rewards = tensor(rollout.rewards)
    terminated = tensor(rollout.terminated)
    truncated = tensor(rollout.truncated)
    actions = tensor(rollout.actions).reshape(-1)
    if off_policy:
        target_logp = torch.log_softmax(logits.detach(), -1).gather(-1, actions.unsqueeze(-1))
        vs, adv = vtrace(
            tensor(rollout.behaviour_logp),
            target_logp.reshape(T, E),
            rewards,
            values_te.detach(),
            next_values,
            terminated,
            truncated,
            hp.gamma,
            hp.rho_bar,
            hp.c_bar,
        )
    else:
        vs = n_step_returns(rewards, next_values, terminated, truncated, hp.gamma)
        adv = vs - values_te.detach()
    return a3c_loss(
        logits, values, actions, vs.reshape(-1), adv.reshape(-1), hp.entropy_coef, hp.value_coef
    )


def _next_values(values: torch.Tensor, extra_values: torch.Tensor, rollout: RolloutBatch, E: int):
    """V of the state after each step: shifted values, the bootstrap, and truncation finals."""
    next_values = torch.cat([values[1:], extra_values[:E].unsqueeze(0)])
    if rollout.trunc_index.size:
        flat = next_values.reshape(-1).clone()
        flat[torch.as_tensor(rollout.trunc_index, device=flat.device)] = extra_values[E:]
        next_values = flat.reshape(values.shape)
    return next_values
