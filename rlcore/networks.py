"""Actor-critic networks, chosen from the env's spaces, and flat-parameter helpers."""

from __future__ import annotations

import math

import numpy as np
import torch
from torch import nn

from rlcore.envs import EnvSpec


def _mlp(sizes: list[int], out: int, out_gain: float) -> nn.Sequential:
    layers: list[nn.Module] = []
    for a, b in zip(sizes[:-1], sizes[1:]):
        layers += [_init(nn.Linear(a, b), math.sqrt(2)), nn.Tanh()]
    layers.append(_init(nn.Linear(sizes[-1], out), out_gain))
    return nn.Sequential(*layers)


def _init(layer: nn.Linear, gain: float) -> nn.Linear:
    # Orthogonal init with a small policy-head gain starts near a uniform policy.
    nn.init.orthogonal_(layer.weight, gain)
    nn.init.zeros_(layer.bias)
    return layer


class MLPActorCritic(nn.Module):
    """Separate policy and value MLPs over a vector observation; discrete actions."""

    def __init__(self, spec: EnvSpec, hidden: tuple[int, ...]):
        super().__init__()
        sizes = [int(np.prod(spec.obs_shape)), *hidden]
        self.policy = _mlp(sizes, spec.num_actions, 0.01)
        self.value = _mlp(sizes, 1, 1.0)

    def forward(self, obs: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Logits (B, A) and values (B,)."""
        return self.policy(obs), self.value(obs).squeeze(-1)

    def logits(self, obs: torch.Tensor) -> torch.Tensor:
        return self.policy(obs)


def build_network(spec: EnvSpec, hidden: tuple[int, ...], seed: int | None = None) -> nn.Module:
    if seed is not None:
        torch.manual_seed(seed)
    return MLPActorCritic(spec, hidden)


def num_params(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


def get_flat_params(model: nn.Module) -> np.ndarray:
    with torch.no_grad():
        flat = torch.nn.utils.parameters_to_vector(model.parameters())
        return flat.cpu().numpy().copy()


def set_flat_params(model: nn.Module, flat: np.ndarray) -> None:
    device = next(model.parameters()).device
    with torch.no_grad():
        torch.nn.utils.vector_to_parameters(
            torch.as_tensor(flat, device=device), model.parameters()
        )


def get_flat_grad(model: nn.Module) -> np.ndarray:
    grads = [p.grad if p.grad is not None else torch.zeros_like(p) for p in model.parameters()]
    return torch.cat([g.reshape(-1) for g in grads]).numpy()


def set_flat_grad(model: nn.Module, flat: torch.Tensor) -> None:
    offset = 0
    for p in model.parameters():
        n = p.numel()
        p.grad = flat[offset : offset + n].view_as(p).to(p.device, copy=True)
        offset += n


def sample_actions(
    logits: torch.Tensor, generator: torch.Generator, greedy: bool = False
) -> tuple[torch.Tensor, torch.Tensor]:
    """Actions and their log-probabilities under the categorical policy of `logits`."""
    logp_all = torch.log_softmax(logits, dim=-1)
    if greedy:
        actions = logits.argmax(dim=-1)
    else:
        actions = torch.multinomial(logp_all.exp(), 1, generator=generator).squeeze(-1)
    return actions, logp_all.gather(-1, actions.unsqueeze(-1)).squeeze(-1)
