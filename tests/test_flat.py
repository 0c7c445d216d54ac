"""Flat parameter buffers and the Adam on them, against torch.optim.Adam and clip_grad_norm_
on the same model: the same weights after the same gradients."""

import numpy as np
import pytest
import torch

from rlcore.envs import EnvSpec
from rlcore.flat import FlatAdam, FlatParameters
from rlcore.hyperparams import Hyperparams
from rlcore.networks import build_network, get_flat_params

SPEC = EnvSpec(obs_shape=(4,), num_actions=2)


def _pair(seed: int = 0):
    hp = Hyperparams(hidden=(16, 16))
    return build_network(SPEC, hp, seed=seed), build_network(SPEC, hp, seed=seed)


def test_views_keep_the_model_working_on_the_buffers():
    model, reference = _pair()
    flat = FlatParameters(model)
    np.testing.assert_array_equal(flat.weights(), get_flat_params(reference))
    flat.load(np.zeros(flat.size, np.float32))
    assert all(float(p.detach().abs().sum()) == 0 for p in model.parameters())
    obs = torch.randn(3, 4)
    params, _ = model.act(obs, None, ())
    params.sum().backward()
    assert float(flat.grads.abs().sum()) > 0  # backward accumulated into the grad buffer
    assert all(p.grad.data_ptr() >= flat.grads.data_ptr() for p in model.parameters())


@pytest.mark.parametrize("max_norm", [0.05, 100.0])
def test_adam_and_clipping_match_torch_over_many_steps(max_norm):
    ours, theirs = _pair(seed=3)
    flat = FlatParameters(ours)
    adam = FlatAdam(flat, lr=1e-2)
    torch_adam = torch.optim.Adam(theirs.parameters(), lr=1e-2)
    gen = torch.Generator().manual_seed(0)
    for step in range(25):
        obs = torch.randn(5, 4, generator=gen)
        flat.zero_grad()
        ours.act(obs, None, ())[0].pow(2).sum().backward()
        norm = flat.clip_grad_norm(max_norm)
        adam.step()
        torch_adam.zero_grad()
        theirs.act(obs, None, ())[0].pow(2).sum().backward()
        ref_norm = torch.nn.utils.clip_grad_norm_(theirs.parameters(), max_norm)
        torch_adam.step()
        assert norm == pytest.approx(float(ref_norm), rel=1e-5)
        if step == 12:
            adam.lr = torch_adam.param_groups[0]["lr"] = 3e-3  # a schedule's change
    np.testing.assert_allclose(flat.weights(), get_flat_params(theirs), rtol=1e-5, atol=1e-6)


def test_a_non_finite_norm_is_returned_and_nothing_is_scaled():
    model, _ = _pair()
    flat = FlatParameters(model)
    grad = np.ones(flat.size, np.float32)
    grad[0] = np.nan
    flat.set_gradient(grad)
    assert np.isnan(flat.clip_grad_norm(1.0))
    assert float(flat.grads[1]) == 1.0


def test_state_round_trips_and_torch_adam_state_loads():
    ours, theirs = _pair(seed=1)
    torch_adam = torch.optim.Adam(theirs.parameters(), lr=2e-3)
    for _ in range(3):
        torch_adam.zero_grad()
        theirs.act(torch.randn(2, 4), None, ())[0].sum().backward()
        torch_adam.step()
    legacy = torch_adam.state_dict()  # what checkpoints held before the flat buffers
    flat = FlatParameters(ours)
    flat.load(get_flat_params(theirs))
    adam = FlatAdam(flat, lr=1.0)
    adam.load_state_dict(legacy)
    assert adam.steps == 3 and adam.lr == pytest.approx(2e-3)
    # one more identical step on both: identical weights
    obs = torch.randn(2, 4)
    flat.zero_grad()
    ours.act(obs, None, ())[0].sum().backward()
    adam.step()
    torch_adam.zero_grad()
    theirs.act(obs, None, ())[0].sum().backward()
    torch_adam.step()
    np.testing.assert_allclose(flat.weights(), get_flat_params(theirs), rtol=1e-5, atol=1e-6)
    again = FlatAdam(FlatParameters(_pair()[0]), lr=1.0)
    again.load_state_dict(adam.state_dict())
    assert again.steps == 4
    torch.testing.assert_close(again.exp_avg_sq, adam.exp_avg_sq)


def test_state_for_another_size_is_refused():
    small = FlatAdam(FlatParameters(_pair()[0]), lr=1e-3)
    big = build_network(SPEC, Hyperparams(hidden=(32, 32)), seed=0)
    other = FlatAdam(FlatParameters(big), lr=1e-3)
    with pytest.raises(ValueError, match="weights"):
        small.load_state_dict(other.state_dict())
