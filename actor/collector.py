"""Acting: step the envs with batched policy inference, filling a preallocated rollout."""

from __future__ import annotations

import torch
from torch import nn

from rlcore.envs import VectorEnv
from rlcore.networks import sample_actions
from rlcore.rollout import RolloutBatch, RolloutBuffer


class Collector:
    def __init__(self, envs: VectorEnv, steps: int, generator: torch.Generator):
        self.envs = envs
        self.buffer = RolloutBuffer(steps, envs.num_envs, envs.spec.obs_shape)
        self.generator = generator
        self._obs_t = torch.from_numpy(envs.obs)  # shares memory with the env's obs array

    @torch.inference_mode()
    def collect(self, model: nn.Module) -> RolloutBatch:
        buf, envs = self.buffer, self.envs
        for t in range(buf.steps):
            buf.obs[t] = envs.obs
            actions, logp = sample_actions(model.logits(self._obs_t), self.generator)
            buf.actions[t] = actions.numpy()
            buf.behaviour_logp[t] = logp.numpy()
            envs.step(buf.actions[t])
            buf.rewards[t] = envs.rewards
            buf.terminated[t] = envs.terminated
            buf.truncated[t] = envs.truncated
            if envs.truncated.any():
                buf.final_obs[t] = envs.final_obs
        buf.bootstrap_obs[:] = envs.obs
        return buf.finish()
