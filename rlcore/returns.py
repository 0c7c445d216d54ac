"""Return targets: GAE / n-step returns (on-policy) and V-trace (off-policy, IMPALA).

Conventions, for `T` steps of `E` envs (arrays shaped (T, E)):
- `next_values[t]` is V of the state after step t: V(obs[t+1]) inside the rollout,
  V(bootstrap obs) at t = T-1, and V(final obs) where step t was truncated.
- A terminated step has no future (discount 0). A truncated step bootstraps from
  `next_values[t]` and cuts the recursion, since obs[t+1] belongs to a new episode.
"""

from __future__ import annotations

import torch


def gae(
    rewards: torch.Tensor,
    values: torch.Tensor,
    next_values: torch.Tensor,
    terminated: torch.Tensor,
    truncated: torch.Tensor,
    gamma: float,
    lam: float = 1.0,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Generalized advantage estimates and lambda-return value targets (Schulman et al. 2016).

    A_t = delta_t + gamma lam A_{t+1} while the episode goes on, delta_t = r_t + gamma
    (1 - term_t) next_values[t] - V_t; targets are A + V. lam = 1 gives the n-step returns
    of A3C (bootstrapped once, from the value after the rollout or the episode's end);
    lam < 1 leans on the value function sooner, trading bias for lower variance.
    """
    discounts = gamma * (~terminated).to(rewards.dtype)
    carry = (~(terminated | truncated)).to(rewards.dtype)
    deltas = rewards + discounts * next_values - values
    advantages = torch.empty_like(rewards)
    following = torch.zeros_like(rewards[0])
    for t in range(rewards.shape[0] - 1, -1, -1):
        following = deltas[t] + (discounts[t] * lam) * carry[t] * following
        advantages[t] = following
    return advantages, advantages + values


def vtrace(
    behaviour_logp: torch.Tensor,
    target_logp: torch.Tensor,
    rewards: torch.Tensor,
    values: torch.Tensor,
    next_values: torch.Tensor,
    terminated: torch.Tensor,
    truncated: torch.Tensor,
    gamma: float,
    rho_bar: float = 1.0,
    c_bar: float = 1.0,
    lam: float = 1.0,
) -> tuple[torch.Tensor, torch.Tensor]:
    """V-trace value targets `vs` and policy-gradient advantages (Espeholt et al. 2018).

    vs_t = V_t + sum_k gamma^k (prod c) delta_{t+k}, delta_t = rho_t (r_t + gamma V_{t+1} - V_t),
    computed by the recursion acc_t = delta_t + gamma c_t acc_{t+1}, cut at episode ends.
    `lam` scales the traces, c_t = lam min(c_bar, ratio_t) (the paper's remark on
    lambda-returns): on-policy it makes vs the targets of `gae` with the same lam.
    """
    ratios = torch.exp(target_logp - behaviour_logp)
    rhos = ratios.clamp(max=rho_bar)
    cs = lam * ratios.clamp(max=c_bar)
    discounts = gamma * (~terminated).to(rewards.dtype)
    carry = (~(terminated | truncated)).to(rewards.dtype)
    deltas = rhos * (rewards + discounts * next_values - values)
    acc = torch.zeros_like(rewards)
    following = torch.zeros_like(rewards[0])
    for t in range(rewards.shape[0] - 1, -1, -1):
        acc[t] = deltas[t] + discounts[t] * carry[t] * cs[t] * following
        following = acc[t]
    vs = values + acc
    next_acc = torch.cat([acc[1:], torch.zeros_like(acc[:1])])
    vs_next = next_values + carry * next_acc
    pg_advantages = rhos * (rewards + discounts * vs_next - values)
    return vs, pg_advantages
