"""Network heads and action distributions against torch.distributions, and the LSTM
state carried across rollouts and reset at episode boundaries."""

import numpy as np
import pytest
import torch

from actor.collector import Collector
from rlcore.distributions import Categorical, DiagGaussian
from rlcore.envs import EnvConfig, EnvSpec, VectorEnv
from rlcore.hyperparams import Hyperparams
from rlcore.losses import _extra_values
from rlcore.networks import build_network

MINATAR = EnvSpec(obs_shape=(4, 10, 10), num_actions=3, obs_dtype="uint8")
ATARI = EnvSpec(obs_shape=(4, 84, 84), num_actions=6, obs_dtype="uint8", obs_scale=1 / 255)
PENDULUM = EnvSpec(obs_shape=(3,), action_dim=1, action_low=(-2.0,), action_high=(2.0,))


@pytest.mark.parametrize("spec", [MINATAR, ATARI], ids=["minatar", "atari"])
@pytest.mark.parametrize("recurrent", [False, True])
def test_cnn_heads_take_uint8_frames(spec, recurrent):
    model = build_network(spec, Hyperparams(recurrent=recurrent, lstm_size=32), seed=0)
    obs = torch.randint(0, 256, (5, *spec.obs_shape), dtype=torch.uint8)
    params, values = model(obs)
    assert params.shape == (5, spec.num_actions) and values.shape == (5,)
    assert torch.isfinite(params).all() and torch.isfinite(values).all()
    T, B = 3, 2
    seq = torch.randint(0, 2, (T, B, *spec.obs_shape), dtype=torch.uint8)
    first = torch.zeros(T, B, dtype=torch.bool)
    params, values, states = model.unroll(seq, first, model.initial_state(B))
    assert params.shape == (T, B, spec.num_actions) and values.shape == (T, B)
    assert (states is None) == (not recurrent)


def test_atari_network_is_the_a3c_papers():
    model = build_network(ATARI, Hyperparams(), seed=0)
    convs = [m for m in model.encoder.modules() if isinstance(m, torch.nn.Conv2d)]
    assert [(c.out_channels, c.kernel_size, c.stride) for c in convs] == [
        (16, (8, 8), (4, 4)),
        (32, (4, 4), (2, 2)),
    ]


def test_categorical_matches_torch_distributions():
    logits = torch.randn(7, 4)
    actions = torch.randint(0, 4, (7,))
    ref = torch.distributions.Categorical(logits=logits)
    torch.testing.assert_close(Categorical.log_prob(logits, actions), ref.log_prob(actions))
    torch.testing.assert_close(Categorical.entropy(logits), ref.entropy())
    sampled, logp = Categorical.sample(logits, torch.Generator().manual_seed(0))
    torch.testing.assert_close(logp, ref.log_prob(sampled))
    greedy, _ = Categorical.sample(logits, torch.Generator(), greedy=True)
    assert torch.equal(greedy, logits.argmax(-1))


def test_gaussian_matches_torch_distributions():
    mean, log_std = torch.randn(6, 3), torch.randn(3).expand(6, 3)
    params = torch.cat([mean, log_std], -1)
    actions = torch.randn(6, 3) * 3
    ref = torch.distributions.Normal(mean, log_std.exp())
    torch.testing.assert_close(
        DiagGaussian.log_prob(params, actions), ref.log_prob(actions).sum(-1)
    )
    torch.testing.assert_close(DiagGaussian.entropy(params), ref.entropy().sum(-1))
    sampled, logp = DiagGaussian.sample(params, torch.Generator().manual_seed(0))
    torch.testing.assert_close(logp, ref.log_prob(sampled).sum(-1))
    greedy, _ = DiagGaussian.sample(params, torch.Generator(), greedy=True)
    assert torch.equal(greedy, mean)


def test_gaussian_head_has_a_state_independent_log_std_that_learns():
    model = build_network(PENDULUM, Hyperparams(), seed=0)
    params, _ = model(torch.randn(4, 3))
    assert params.shape == (4, 2)
    assert torch.equal(params[:, 1], model.log_std.expand(4))  # same for every state
    DiagGaussian.entropy(params).sum().backward()
    assert model.log_std.grad is not None and model.log_std.grad.abs().sum() > 0


@pytest.mark.parametrize("log_std_init", [-1.0, 0.0, 0.5])
def test_the_gaussian_starts_at_the_configured_log_std(log_std_init):
    model = build_network(PENDULUM, Hyperparams(log_std_init=log_std_init), seed=0)
    params, _ = model(torch.randn(4, 3))
    assert torch.all(params[:, 1] == log_std_init)
    assert DiagGaussian.entropy(params)[0].item() == pytest.approx(
        log_std_init + 0.5 * (np.log(2 * np.pi) + 1.0)
    )


def test_a_bounded_mean_starts_mid_box_and_never_leaves_it():
    spec = EnvSpec(obs_shape=(3,), action_dim=2, action_low=(-2.0, 0.0), action_high=(2.0, 1.0))
    model = build_network(spec, Hyperparams(bounded_mean=True), seed=0)
    params, _ = model(torch.zeros(1, 3))
    assert params[0, :2].tolist() == pytest.approx([0.0, 0.5], abs=0.05)  # head init near 0
    with torch.no_grad():
        model.policy[-1].weight.mul_(1e4)  # preactivations far past any bound
        params, _ = model(torch.randn(256, 3) * 10)
    mean = params[:, :2]
    assert (mean[:, 0].abs() <= 2).all() and ((mean[:, 1] >= 0) & (mean[:, 1] <= 1)).all()
    assert mean[:, 0].abs().max() > 1.9  # tanh reaches the bounds: the box, not less
    unbounded = build_network(spec, Hyperparams(), seed=0)
    with torch.no_grad():
        unbounded.policy[-1].weight.mul_(1e4)
        assert unbounded(torch.randn(256, 3) * 10)[0][:, 0].abs().max() > 2


def test_a_bounded_mean_needs_finite_bounds():
    spec = EnvSpec(obs_shape=(3,), action_dim=1)  # an unbounded Box has no action_low/high
    with pytest.raises(ValueError, match="finite bounds"):
        build_network(spec, Hyperparams(bounded_mean=True))
    assert build_network(MINATAR, Hyperparams(bounded_mean=True)) is not None  # discrete: n/a


def test_vector_env_clips_gaussian_actions_to_the_box_but_keeps_the_sample():
    envs = VectorEnv(EnvConfig("Pendulum-v1"), 2, seed=0)
    envs.reset()
    envs.step(np.array([[50.0], [-50.0]], np.float32))  # far outside [-2, 2]: clipped, no error
    assert np.isfinite(envs.rewards).all()


def recurrent_model(spec, lstm_size=16):
    return build_network(spec, Hyperparams(hidden=(16,), recurrent=True, lstm_size=lstm_size), 0)


def test_lstm_state_is_zeroed_where_an_episode_begins():
    spec = EnvSpec(obs_shape=(2,), num_actions=2)
    model = recurrent_model(spec)
    obs = torch.randn(4, 1, 2)
    first = torch.tensor([[True], [False], [True], [False]])
    params, _, _ = model.unroll(obs, first, model.initial_state(1))
    # Steps 2-3 form a new episode: the same as unrolling them alone from a zero state.
    alone, _, _ = model.unroll(obs[2:], first[2:], model.initial_state(1))
    torch.testing.assert_close(params[2:], alone)
    # Without the reset, step 2 would see the memory of steps 0-1.
    no_reset, _, _ = model.unroll(obs, torch.zeros_like(first), model.initial_state(1))
    assert not torch.allclose(no_reset[2], params[2])


def test_learner_recomputes_the_actors_policy_from_the_stored_state_across_rollouts():
    """Two consecutive rollouts of a recurrent policy on velocity-masked CartPole, with
    episode ends inside them: unrolling each from its stored state reproduces exactly
    the log-probabilities the actor acted with."""
    envs = VectorEnv(EnvConfig("CartPole-v1", wrappers=("mask-velocity",)), 3, seed=0)
    envs.reset()
    model = recurrent_model(envs.spec)
    collector = Collector(envs, 40, torch.Generator().manual_seed(0), lstm_size=16)
    ends = 0
    for i in range(2):
        batch = collector.collect(model)
        ends += int(batch.terminated.sum() + batch.truncated.sum())
        if i == 1:
            assert not batch.first0.all() and np.abs(batch.state_h).sum() > 0  # carried over
        params, _, _ = model.unroll(
            torch.as_tensor(batch.obs),
            torch.as_tensor(batch.first()),
            (torch.as_tensor(batch.state_h), torch.as_tensor(batch.state_c)),
        )
        logp = model.dist.log_prob(params, torch.as_tensor(batch.actions))
        np.testing.assert_allclose(logp.detach().numpy(), batch.behaviour_logp, atol=1e-5)
    assert ends > 0


def test_truncation_bootstrap_continues_from_the_state_after_that_step():
    spec = EnvSpec(obs_shape=(2,), num_actions=2)
    model = recurrent_model(spec)
    from rlcore.rollout import RolloutBatch

    T, E = 3, 2
    rng = np.random.default_rng(0)
    truncated = np.zeros((T, E), bool)
    truncated[1, 1] = True
    batch = RolloutBatch(
        obs=rng.standard_normal((T, E, 2)).astype(np.float32),
        actions=np.zeros((T, E), np.int64),
        rewards=np.zeros((T, E), np.float32),
        terminated=np.zeros((T, E), bool),
        truncated=truncated,
        behaviour_logp=np.zeros((T, E), np.float32),
        bootstrap_obs=rng.standard_normal((E, 2)).astype(np.float32),
        trunc_index=np.array([1 * E + 1]),
        trunc_obs=rng.standard_normal((1, 2)).astype(np.float32),
        first0=np.array([True, True]),
        state_h=np.zeros((E, 16), np.float32),
        state_c=np.zeros((E, 16), np.float32),
    )
    _, _, states = model.unroll(
        torch.as_tensor(batch.obs), torch.as_tensor(batch.first()), model.initial_state(E)
    )
    with torch.no_grad():
        extra = _extra_values(model, batch, states, torch.as_tensor)
        # env 1's final obs, seen right after its own steps 0-1 (no reset in between)
        seq = torch.as_tensor(np.stack([batch.obs[0, 1], batch.obs[1, 1], batch.trunc_obs[0]]))
        _, values, _ = model.unroll(
            seq[:, None], torch.zeros(3, 1, dtype=torch.bool), model.initial_state(1)
        )
    torch.testing.assert_close(extra[2], values[2, 0])
