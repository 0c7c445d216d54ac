"""Actor-critic networks, chosen from the env's spaces, and flat-parameter helpers."""

from __future__ import annotations

import math

import numpy as np
import torch
from torch import nn

from rlcore.distributions import distribution
from rlcore.envs import EnvSpec
from rlcore.hyperparams import Hyperparams


def _mlp(sizes: list[int], out: int, out_gain: float) -> nn.Sequential:
    return nn.Sequential(*_mlp_encoder(sizes), _init(nn.Linear(sizes[-1], out), out_gain))


def _init(layer: nn.Module, gain: float) -> nn.Module:
    # Orthogonal init with a small policy-head gain starts near a uniform policy.
    nn.init.orthogonal_(layer.weight, gain)
    nn.init.zeros_(layer.bias)
    return layer


def _conv_encoder(obs_shape: tuple[int, ...]) -> tuple[nn.Sequential, int]:
    """The A3C paper's network for Atari-size frames; MinAtar's one-conv network for small
    grids. Returns the encoder and its feature size."""
    c, h, w = obs_shape
    if min(h, w) >= 36:
        convs = [nn.Conv2d(c, 16, 8, stride=4), nn.ReLU(), nn.Conv2d(16, 32, 4, stride=2)]
        fc = 256
    else:
        convs, fc = [nn.Conv2d(c, 16, 3, stride=1)], 128
    body = nn.Sequential(*convs, nn.ReLU(), nn.Flatten())
    for layer in body:
        if isinstance(layer, nn.Conv2d):
            _init(layer, math.sqrt(2))
    with torch.no_grad():
        flat = body(torch.zeros(1, *obs_shape)).shape[1]
    return nn.Sequential(body, _init(nn.Linear(flat, fc), math.sqrt(2)), nn.ReLU()), fc


def _mlp_encoder(sizes: list[int]) -> nn.Sequential:
    layers: list[nn.Module] = []
    for a, b in zip(sizes[:-1], sizes[1:]):
        layers += [_init(nn.Linear(a, b), math.sqrt(2)), nn.Tanh()]
    return nn.Sequential(*layers)


class ActorCritic(nn.Module):
    """Encoder, an optional LSTM core, then a policy head and a value head.

    Vector observations without a core get separate policy and value MLPs (no shared
    torso: on small control tasks the two objectives interfere). Images get a CNN encoder
    shared by both heads. `recurrent` adds an LSTM core whose state is zeroed where
    `first` marks the first observation of an episode.

    The policy output `params` is read by `self.dist` (logits, or Gaussian mean and log-std).
    """

    def __init__(
        self,
        spec: EnvSpec,
        hidden: tuple[int, ...],
        recurrent: bool = False,
        lstm_size: int = 128,
        normalize_obs: bool = False,
        obs_clip: float = 10.0,
        log_std_init: float = 0.0,
        bounded_mean: bool = False,
    ):
        super().__init__()
        self.dist = distribution(spec.discrete)
        self.obs_scale = spec.obs_scale
        self.normalize_obs = normalize_obs
        self.obs_clip = obs_clip
        if normalize_obs:
            if spec.is_image:
                raise ValueError("normalize_obs is for vector observations, not images")
            # Buffers, not parameters: no gradient, never in the flat weights; they travel
            # with the weights as statistics and are saved in the checkpoint's state dict.
            size = int(np.prod(spec.obs_shape))
            self.register_buffer("obs_mean", torch.zeros(size))
            self.register_buffer("obs_var", torch.ones(size))
        self.recurrent = recurrent
        self.lstm_size = lstm_size
        out = spec.num_actions if spec.discrete else spec.action_dim
        self.separate = not spec.is_image and not recurrent
        if self.separate:
            sizes = [int(np.prod(spec.obs_shape)), *hidden]
            self.policy = _mlp(sizes, out, 0.01)
            self.value = _mlp(sizes, 1, 1.0)
        else:
            if spec.is_image:
                self.encoder, features = _conv_encoder(spec.obs_shape)
            else:
                self.encoder = _mlp_encoder([int(np.prod(spec.obs_shape)), *hidden])
                features = hidden[-1]
            if recurrent:
                self.core = nn.LSTMCell(features, lstm_size)
                nn.init.zeros_(self.core.bias_ih)
                nn.init.zeros_(self.core.bias_hh)
                features = lstm_size
            self.policy_head = _init(nn.Linear(features, out), 0.01)
            self.value_head = _init(nn.Linear(features, 1), 1.0)
        self.gaussian = not spec.discrete
        if self.gaussian:
            self.log_std = nn.Parameter(torch.full((out,), float(log_std_init)))
        self.bounded_mean = bounded_mean and self.gaussian
        if self.bounded_mean:
            if not spec.action_low:
                raise ValueError("bounded_mean needs an action space with finite bounds")
            low = torch.tensor(spec.action_low, dtype=torch.float32)
            high = torch.tensor(spec.action_high, dtype=torch.float32)
            # Not persistent: the bounds come from the env, not from a checkpoint.
            self.register_buffer("action_mid", (high + low) / 2, persistent=False)
            self.register_buffer("action_half", (high - low) / 2, persistent=False)

    def initial_state(self, batch: int) -> tuple[torch.Tensor, ...]:
        """The core state of `batch` new episodes (empty without a core)."""
        if not self.recurrent:
            return ()
        device = next(self.parameters()).device
        zeros = torch.zeros(batch, self.lstm_size, device=device)
        return (zeros, zeros.clone())

    def set_obs_stats(self, mean: np.ndarray, var: np.ndarray) -> None:
        """Adopt the learner's running observation statistics."""
        with torch.no_grad():
            self.obs_mean.copy_(torch.as_tensor(mean, dtype=torch.float32))
            self.obs_var.copy_(torch.as_tensor(var, dtype=torch.float32))

    def _encode(self, obs: torch.Tensor) -> torch.Tensor:
        x = obs.float()
        if self.obs_scale != 1.0:
            x = x * self.obs_scale
        if self.normalize_obs:
            x = (x - self.obs_mean) * torch.rsqrt(self.obs_var + 1e-8)
            x = x.clamp(-self.obs_clip, self.obs_clip)
        return x if self.separate else self.encoder(x)

    def _policy(self, x: torch.Tensor) -> torch.Tensor:
        params = self.policy(x) if self.separate else self.policy_head(x)
        if self.gaussian:
            if self.bounded_mean:
                params = self.action_mid + self.action_half * torch.tanh(params)
            params = torch.cat([params, self.log_std.expand_as(params)], dim=-1)
        return params

    def _outputs(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        values = self.value(x) if self.separate else self.value_head(x)
        return self._policy(x), values.squeeze(-1)

    def forward(self, obs: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Feed-forward policy params (B, P) and values (B,); a core starts from zeros."""
        params, values, _ = self.step(obs, None, self.initial_state(obs.shape[0]))
        return params, values

    def step(self, obs: torch.Tensor, first: torch.Tensor | None, state: tuple):
        """One step for a batch: params (B, P), values (B,), the next core state."""
        x = self._encode(obs)
        if self.recurrent:
            h, c = _reset(state, first)
            h, c = self.core(x, (h, c))
            x, state = h, (h, c)
        params, values = self._outputs(x)
        return params, values, state

    def act(self, obs: torch.Tensor, first: torch.Tensor | None, state: tuple):
        """`step` without the value head: what acting needs."""
        x = self._encode(obs)
        if self.recurrent:
            h, c = self.core(x, _reset(state, first))
            x, state = h, (h, c)
        return self._policy(x), state

    def unroll(self, obs: torch.Tensor, first: torch.Tensor | None, state: tuple):
        """`T` steps of `B` envs: params (T, B, P), values (T, B), and the core states after
        every step as (h, c) of (T, B, H) each (None without a core)."""
        T, B = obs.shape[:2]
        x = self._encode(obs.reshape(T * B, *obs.shape[2:]))
        if not self.recurrent:
            params, values = self._outputs(x)
            return params.reshape(T, B, -1), values.reshape(T, B), None
        x = x.reshape(T, B, -1)
        hs, cs = [], []
        h, c = state
        for t in range(T):
            h, c = self.core(x[t], _reset((h, c), first[t]))
            hs.append(h)
            cs.append(c)
        out = torch.stack(hs)
        params, values = self._outputs(out.reshape(T * B, -1))
        return params.reshape(T, B, -1), values.reshape(T, B), (out, torch.stack(cs))


def _reset(state: tuple, first: torch.Tensor | None) -> tuple:
    if first is None:
        return state
    keep = (~first).unsqueeze(-1).to(state[0].dtype)
    return tuple(s * keep for s in state)


def build_network(spec: EnvSpec, hp: Hyperparams, seed: int | None = None) -> ActorCritic:
    if seed is not None:
        torch.manual_seed(seed)
    # By keyword: a setting left out here is silently the network's default.
    return ActorCritic(
        spec,
        hidden=hp.hidden,
        recurrent=hp.recurrent,
        lstm_size=hp.lstm_size,
        normalize_obs=hp.normalize_obs,
        obs_clip=hp.obs_clip,
        log_std_init=hp.log_std_init,
        bounded_mean=hp.bounded_mean,
    )


def get_flat_params(model: nn.Module) -> np.ndarray:
    with torch.no_grad():
        flat = torch.nn.utils.parameters_to_vector(model.parameters())
        return flat.cpu().numpy().copy()
