"""The A3C loss: policy gradient with an advantage, value regression, entropy bonus."""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch

from rlcore.hyperparams import Hyperparams
from rlcore.networks import ActorCritic
from rlcore.returns import gae, vtrace
from rlcore.rollout import RolloutBatch


@dataclass
class LossStats:
    policy_loss: float
    value_loss: float
    entropy: float
    log_ratio: float = math.nan
    """Off-policy: the mean |log pi(a) - log mu(a)| of the batch, how far the learner's policy
    has moved from the one that acted (0 on-policy; NaN where not computed)."""


def a3c_loss(
    logp: torch.Tensor,
    entropy: torch.Tensor,
    values: torch.Tensor,
    value_targets: torch.Tensor,
    advantages: torch.Tensor,
    entropy_coef: float,
    value_coef: float,
) -> tuple[torch.Tensor, LossStats]:
    """Mean over samples of -log pi(a) A - entropy_coef H + value_coef * 0.5 (target - V)^2.

    `logp` and `entropy` are per sample, of any action distribution. Targets and advantages
    are constants (no gradient flows through them).
    """
    entropy = entropy.mean()
    policy_loss = -(logp * advantages.detach()).mean()
    value_loss = 0.5 * (value_targets.detach() - values).pow(2).mean()
    total = policy_loss + value_coef * value_loss - entropy_coef * entropy
    stats = LossStats(policy_loss.item(), value_loss.item(), entropy.item())
    return total, stats


def rollout_loss(
    model: ActorCritic,
    rollout: RolloutBatch,
    hp: Hyperparams,
    off_policy: bool,
    reward_factor: float = 1.0,
) -> tuple[torch.Tensor, LossStats]:
    """The loss of `model` on `rollout`: GAE when on-policy, V-trace when not (both with
    `gae_lambda`; at 1 the on-policy targets are A3C's n-step returns).

    Rewards enter as `reward * reward_scale * reward_factor` (the factor: 1 / std of the
    running discounted returns with normalize_reward), clipped to +-reward_clip when set.
    A recurrent model is unrolled from the rollout's stored core state.
    """
    T, E = rollout.rewards.shape
    device = next(model.parameters()).device

    def tensor(x):
        return torch.as_tensor(x, device=device)

    first, state = None, ()
    if rollout.recurrent:
        first = tensor(rollout.first())
        state = (tensor(rollout.state_h), tensor(rollout.state_c))
    params, values, states = model.unroll(tensor(rollout.obs), first, state)
    with torch.no_grad():
        extra_values = _extra_values(model, rollout, states, tensor)
    next_values = _next_values(values.detach(), extra_values, rollout, E)
    rewards = loss_rewards(tensor(rollout.rewards), hp, reward_factor)
    terminated = tensor(rollout.terminated)
    truncated = tensor(rollout.truncated)
    logp = model.dist.log_prob(params, tensor(rollout.actions))
    behaviour_logp = tensor(rollout.behaviour_logp) if off_policy else None
    if off_policy:
        vs, adv = vtrace(
            behaviour_logp,
            logp.detach(),
            rewards,
            values.detach(),
            next_values,
            terminated,
            truncated,
            hp.gamma,
            hp.rho_bar,
            hp.c_bar,
            hp.gae_lambda,
        )
    else:
        adv, vs = gae(
            rewards, values.detach(), next_values, terminated, truncated, hp.gamma, hp.gae_lambda
        )
    entropy = model.dist.entropy(params)
    total, stats = a3c_loss(
        logp.reshape(-1),
        entropy.reshape(-1),
        values.reshape(-1),
        vs.reshape(-1),
        adv.reshape(-1),
        hp.entropy_coef,
        hp.value_coef,
    )
    if off_policy:
        stats.log_ratio = (logp.detach() - behaviour_logp).abs().mean().item()
    return total, stats


def loss_rewards(rewards: torch.Tensor, hp: Hyperparams, factor: float = 1.0) -> torch.Tensor:
    """The rewards the loss sees: scaled, then clipped when reward_clip is set."""
    rewards = rewards * (hp.reward_scale * factor)
    if hp.reward_clip > 0:
        rewards = rewards.clamp(-hp.reward_clip, hp.reward_clip)
    return rewards


def _extra_values(model: ActorCritic, rollout: RolloutBatch, states, tensor) -> torch.Tensor:
    """V of the bootstrap observations (E), then of the truncation finals (K).

    With a core, the bootstrap obs continues from the state after the last step (reset if
    that step ended an episode), and a truncation final from the state after its own step.
    """
    obs = torch.cat([tensor(rollout.bootstrap_obs), tensor(rollout.trunc_obs)])
    if states is None:
        return model(obs)[1]
    h, c = states
    E = rollout.rewards.shape[1]
    t, e = (tensor(x) for x in divmod(rollout.trunc_index, E))
    state = (torch.cat([h[-1], h[t, e]]), torch.cat([c[-1], c[t, e]]))
    done_last = tensor(rollout.terminated[-1] | rollout.truncated[-1])
    first = torch.cat([done_last, torch.zeros(len(t), dtype=torch.bool, device=h.device)])
    return model.step(obs, first, state)[1]


def _next_values(values: torch.Tensor, extra_values: torch.Tensor, rollout: RolloutBatch, E: int):
    """V of the state after each step: shifted values, the bootstrap, and truncation finals."""
    next_values = torch.cat([values[1:], extra_values[:E].unsqueeze(0)])
    if rollout.trunc_index.size:
        flat = next_values.reshape(-1).clone()
        flat[torch.as_tensor(rollout.trunc_index, device=flat.device)] = extra_values[E:]
        next_values = flat.reshape(values.shape)
    return next_values
