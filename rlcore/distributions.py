"""Action distributions over a network's flat output `params`, as pure functions.

Categorical: params are logits (..., A); actions are int64 (...).
DiagGaussian: params are [mean, log_std] (..., 2D), the log-std state-independent; actions
are the unclipped float32 samples (..., D). The env sees them clipped to its bounds; the
clipping belongs to the env, so log-probabilities are those of the Gaussian sample.
"""

from __future__ import annotations

import math

import torch

LOG_2PI = math.log(2 * math.pi)


class Categorical:
    @staticmethod
    def log_prob(params: torch.Tensor, actions: torch.Tensor) -> torch.Tensor:
        logp_all = torch.log_softmax(params, dim=-1)
        return logp_all.gather(-1, actions.unsqueeze(-1)).squeeze(-1)

    @staticmethod
    def entropy(params: torch.Tensor) -> torch.Tensor:
        logp_all = torch.log_softmax(params, dim=-1)
        return -(logp_all.exp() * logp_all).sum(-1)

    @staticmethod
    def sample(
        params: torch.Tensor, generator: torch.Generator, greedy: bool = False
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Actions and their log-probabilities."""
        logp_all = torch.log_softmax(params, dim=-1)
        if greedy:
            actions = params.argmax(dim=-1)
        else:
            actions = torch.multinomial(logp_all.exp(), 1, generator=generator).squeeze(-1)
        return actions, logp_all.gather(-1, actions.unsqueeze(-1)).squeeze(-1)


class DiagGaussian:
    @staticmethod
    def split(params: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        mean, log_std = params.chunk(2, dim=-1)
        return mean, log_std

    @staticmethod
    def log_prob(params: torch.Tensor, actions: torch.Tensor) -> torch.Tensor:
        mean, log_std = DiagGaussian.split(params)
        z = (actions - mean) * torch.exp(-log_std)
        return (-0.5 * z.pow(2) - log_std - 0.5 * LOG_2PI).sum(-1)

    @staticmethod
    def entropy(params: torch.Tensor) -> torch.Tensor:
        _, log_std = DiagGaussian.split(params)
        return (log_std + 0.5 * (LOG_2PI + 1.0)).sum(-1)

    @staticmethod
    def sample(
        params: torch.Tensor, generator: torch.Generator, greedy: bool = False
    ) -> tuple[torch.Tensor, torch.Tensor]:
        mean, log_std = DiagGaussian.split(params)
        if greedy:
            actions = mean
        else:
            noise = torch.randn(mean.shape, generator=generator, dtype=mean.dtype)
            actions = mean + noise * log_std.exp()
        return actions, DiagGaussian.log_prob(params, actions)


def distribution(discrete: bool) -> type[Categorical] | type[DiagGaussian]:
    return Categorical if discrete else DiagGaussian
