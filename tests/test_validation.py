"""The learner's checks of rollouts for every space: pixel, continuous and recurrent
rollouts that a real actor sends pass; forged or broken ones are rejected by reason."""

import numpy as np
import pytest
import torch

from actor.collector import Collector
from learner.validation import check_rollout
from protocol import CodecError, Rollout, decode, encode
from rlcore.envs import EnvConfig, VectorEnv
from rlcore.hyperparams import Hyperparams
from rlcore.networks import build_network

CASES = {
    "minatar": (EnvConfig("MinAtar/Breakout-v1"), Hyperparams(rollout_len=5, num_envs=2)),
    "pendulum": (EnvConfig("Pendulum-v1"), Hyperparams(rollout_len=5, num_envs=2)),
    "lstm": (
        EnvConfig("CartPole-v1", wrappers=("mask-velocity",)),
        Hyperparams(rollout_len=5, num_envs=2, recurrent=True, lstm_size=8),
    ),
}


def real_rollout(case: str):
    config, hp = CASES[case]
    envs = VectorEnv(config, hp.num_envs, seed=0)
    envs.reset()
    model = build_network(envs.spec, hp, seed=0)
    lstm = hp.lstm_size if hp.recurrent else 0
    batch = Collector(envs, hp.rollout_len, torch.Generator().manual_seed(0), lstm).collect(model)
    arrays = {k: v.copy() for k, v in batch.arrays().items()}
    return envs.spec, hp, arrays


def message(arrays: dict, hp: Hyperparams) -> Rollout:
    msg = Rollout("run", "a", 0, hp.rollout_len * hp.num_envs, -1.0, arrays)
    return decode(encode(msg))  # through the codec, as the learner receives it


@pytest.mark.parametrize("case", list(CASES))
def test_a_real_actors_rollout_passes(case):
    spec, hp, arrays = real_rollout(case)
    batch = check_rollout(message(arrays, hp), spec, hp)
    assert batch.obs.dtype == np.dtype(spec.obs_dtype)
    assert batch.recurrent == hp.recurrent


def reject(case: str, change, reason: str):
    spec, hp, arrays = real_rollout(case)
    change(arrays)
    with pytest.raises(CodecError) as err:
        check_rollout(message(arrays, hp), spec, hp)
    assert err.value.reason == reason


def test_pixel_rollouts_must_be_uint8():
    reject("minatar", lambda a: a.update(obs=a["obs"].astype(np.float32)), "bad_dtype")


def test_continuous_actions_must_be_finite_and_sane():
    def nan(a):
        a["actions"][0, 0, 0] = np.nan

    def huge(a):
        a["actions"][0, 0, 0] = 1e9

    reject("pendulum", nan, "non_finite")
    reject("pendulum", huge, "bad_value")
    reject("pendulum", lambda a: a.update(actions=a["actions"][..., 0]), "bad_shape")


def test_recurrent_rollouts_need_a_valid_start_state():
    def no_state(a):
        del a["state_h"]

    def bad_h(a):
        a["state_h"][0, 0] = 3.0  # an LSTM output is a tanh times a sigmoid

    reject("lstm", no_state, "bad_array")
    reject("lstm", bad_h, "bad_value")
    reject("lstm", lambda a: a.update(state_c=a["state_c"][:, :4].copy()), "bad_shape")


def test_a_narrow_gaussian_may_have_a_log_density_above_0_a_categorical_may_not():
    spec, hp, arrays = real_rollout("pendulum")
    arrays["behaviour_logp"][:] = 1.2  # a std of 0.1 puts log-densities near +1.4
    check_rollout(message(arrays, hp), spec, hp)  # passes
    arrays["behaviour_logp"][0, 0] = 1e3  # beyond any std the policy can learn
    with pytest.raises(CodecError) as err:
        check_rollout(message(arrays, hp), spec, hp)
    assert err.value.reason == "bad_value"

    def positive(a):
        a["behaviour_logp"][0, 0] = 0.5  # a probability above 1

    reject("lstm", positive, "bad_value")
