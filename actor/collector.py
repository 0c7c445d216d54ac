"""Acting: step the envs with batched policy inference, filling a preallocated rollout.

A recurrent policy's core state lives here between rollouts: it is zeroed for an env whose
episode just ended, and each rollout records the state it started from.
"""

from __future__ import annotations

import numpy as np
import torch

from rlcore.envs import VectorEnv
from rlcore.networks import ActorCritic
from rlcore.rollout import RolloutBatch, RolloutBuffer


class Collector:
    def __init__(self, envs: VectorEnv, steps: int, generator: torch.Generator, lstm_size: int):
        self.envs = envs
        self.buffer = RolloutBuffer(steps, envs.num_envs, envs.spec, lstm_size)
        self.generator = generator
        self._obs_t = torch.from_numpy(envs.obs)  # shares memory with the env's obs array
        self._first = np.ones(envs.num_envs, dtype=bool)
        self._first_t = torch.from_numpy(self._first)
        self.state: tuple[torch.Tensor, ...] = ()
        if lstm_size:
            zeros = torch.zeros(envs.num_envs, lstm_size)
            self.state = (zeros, zeros.clone())

    @torch.inference_mode()
    def collect(self, model: ActorCritic) -> RolloutBatch:
        buf, envs = self.buffer, self.envs
        if buf.recurrent:
            buf.first0[:] = self._first
            buf.state_h[:] = self.state[0].numpy()
            buf.state_c[:] = self.state[1].numpy()
        for t in range(buf.steps):
            buf.obs[t] = envs.obs
            params, self.state = model.act(self._obs_t, self._first_t, self.state)
            actions, logp = model.dist.sample(params, self.generator)
            buf.actions[t] = actions.numpy()
            buf.behaviour_logp[t] = logp.numpy()
            envs.step(buf.actions[t])
            buf.rewards[t] = envs.rewards
            buf.terminated[t] = envs.terminated
            buf.truncated[t] = envs.truncated
            np.logical_or(envs.terminated, envs.truncated, out=self._first)
            if envs.truncated.any():
                buf.final_obs[t] = envs.final_obs
        buf.bootstrap_obs[:] = envs.obs
        return buf.finish()
