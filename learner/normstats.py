"""The learner's running normalization statistics: the moments every actor saw, merged
(Chan et al.), checked like any input from the network, and sent with every reply so all
actors and the learner normalize alike."""

from __future__ import annotations

import numpy as np
import torch

from protocol import NORM_STATS, WORK_STATS, ArraySpec, CodecError, check_arrays
from rlcore.hyperparams import Hyperparams
from rlcore.networks import ActorCritic
from rlcore.normalize import Moments, reward_factor

MAX_ABS_MEAN = 1e9


class NormStats:
    """Observation moments (with normalize_obs) and discounted-return moments (with
    normalize_reward); both absent when the run uses neither."""

    def __init__(self, hp: Hyperparams, obs_size: int):
        self.obs = Moments.zeros(obs_size) if hp.normalize_obs else None
        self.ret = Moments.zeros(1) if hp.normalize_reward else None
        self._reply: dict[str, np.ndarray] | None = None

    @property
    def enabled(self) -> bool:
        return self.obs is not None or self.ret is not None

    def specs(self) -> dict[str, ArraySpec]:
        """What a work message must carry: exactly these arrays, or none when disabled."""
        specs = {}
        if self.obs is not None:
            specs[WORK_STATS[0]] = ArraySpec("float64", (2 * self.obs.mean.size + 1,))
        if self.ret is not None:
            specs[WORK_STATS[1]] = ArraySpec("float64", (3,))
        return specs

    def check(self, arrays: dict[str, np.ndarray], env_steps: int) -> dict[str, Moments]:
        """The moments in a work message, validated; CodecError('bad_moments') otherwise.

        Each counts one value per env step of the message, exactly."""
        try:
            check_arrays(arrays, self.specs())
        except CodecError as exc:
            raise CodecError("bad_moments", exc.detail or exc.reason) from None
        parts = {}
        for name, packed in arrays.items():
            m = Moments.unpack(packed)
            if m.count != env_steps:
                raise CodecError("bad_moments", f"{name}: count {m.count} for {env_steps} steps")
            if (m.m2 < 0).any() or (np.abs(m.mean) > MAX_ABS_MEAN).any():
                raise CodecError("bad_moments", f"{name}: negative M2 or absurd mean")
            if (m.m2 > MAX_ABS_MEAN**2 * max(m.count, 1)).any():
                # merged once, an absurd variance would stay in the statistics for good
                raise CodecError("bad_moments", f"{name}: absurd variance")
            parts[name] = m
        return parts

    def merge(self, parts: dict[str, Moments]) -> None:
        if WORK_STATS[0] in parts:
            self.obs.merge(parts[WORK_STATS[0]])
        if WORK_STATS[1] in parts:
            self.ret.merge(parts[WORK_STATS[1]])
        if parts:
            self._reply = None

    @property
    def reward_factor(self) -> float:
        return reward_factor(self.ret)

    def reply(self) -> dict[str, np.ndarray]:
        """The current statistics for a Weights or Welcome message (cached until a merge)."""
        if self._reply is None:
            reply = {}
            if self.obs is not None:
                reply[NORM_STATS[0]] = self.obs.mean.astype(np.float32)
                reply[NORM_STATS[1]] = self.obs.var.astype(np.float32)
            if self.ret is not None:
                reply[NORM_STATS[2]] = self.ret.var.astype(np.float32)
            self._reply = reply
        return self._reply

    def sync(self, model: ActorCritic) -> None:
        """Put the observation statistics into the learner's own network."""
        if self.obs is not None:
            model.set_obs_stats(self.obs.mean, self.obs.var)

    def state_dict(self) -> dict:
        state = {}
        if self.obs is not None:
            state["obs"] = torch.from_numpy(self.obs.pack())
        if self.ret is not None:
            state["ret"] = torch.from_numpy(self.ret.pack())
        return state

    def load_state_dict(self, state: dict) -> None:
        if self.obs is not None and "obs" in state:
            self.obs = Moments.unpack(state["obs"].numpy())
        if self.ret is not None and "ret" in state:
            self.ret = Moments.unpack(state["ret"].numpy())
        self._reply = None
