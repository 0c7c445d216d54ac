"""GAE / n-step returns and V-trace against hand-computed values and a direct reference."""

import math

import numpy as np
import pytest
import torch

from rlcore.returns import gae, vtrace


def col(xs, dtype=torch.float32):
    return torch.tensor(xs, dtype=dtype).reshape(-1, 1)


def flags(xs):
    return col(xs, torch.bool)


REWARDS, NEXT_V, GAMMA = [1.0, 2.0, 3.0], [10.0, 20.0, 30.0], 0.5


@pytest.mark.parametrize(
    ("terminated", "truncated", "expected"),
    [
        ([0, 0, 0], [0, 0, 0], [6.5, 11.0, 18.0]),  # bootstrap from V after the last step
        ([0, 1, 0], [0, 0, 0], [2.0, 2.0, 18.0]),  # no future after a termination
        ([0, 0, 0], [0, 1, 0], [7.0, 12.0, 18.0]),  # bootstrap from V(final obs) on truncation
        ([0, 0, 1], [0, 0, 0], [2.75, 3.5, 3.0]),
    ],
)
def test_gae_at_lambda_1_is_n_step_returns_by_hand(terminated, truncated, expected):
    values = col([4.0, 10.0, 20.0])  # V(obs[t+1]) = next V[t], as inside a rollout
    adv, out = gae(
        col(REWARDS), values, col(NEXT_V), flags(terminated), flags(truncated), GAMMA, 1.0
    )
    np.testing.assert_allclose(out.squeeze(1).numpy(), expected, rtol=1e-6)
    np.testing.assert_allclose((adv + values).squeeze(1).numpy(), expected, rtol=1e-6)


# V = [4, 5, 6], next V = [10, 20, 30], gamma 0.5, lambda 0.5:
# deltas = r + 0.5 nv - V = [1+5-4, 2+10-5, 3+15-6] = [2, 7, 12]
# A_2 = 12; A_1 = 7 + 0.25 * 12 = 10; A_0 = 2 + 0.25 * 10 = 4.5
# with step 1 terminated: delta_1 = 2 - 5 = -3 and no carry: A = [2 - 0.75, -3, 12]
@pytest.mark.parametrize(
    ("terminated", "truncated", "expected"),
    [
        ([0, 0, 0], [0, 0, 0], [4.5, 10.0, 12.0]),
        ([0, 1, 0], [0, 0, 0], [1.25, -3.0, 12.0]),
        ([0, 0, 0], [0, 1, 0], [2.0 + 0.25 * 7.0, 7.0, 12.0]),  # truncation: bootstrap, cut
    ],
)
def test_gae_by_hand(terminated, truncated, expected):
    values = col([4.0, 5.0, 6.0])
    adv, targets = gae(
        col(REWARDS), values, col(NEXT_V), flags(terminated), flags(truncated), GAMMA, 0.5
    )
    np.testing.assert_allclose(adv.squeeze(1).numpy(), expected, rtol=1e-6)
    np.testing.assert_allclose(targets.numpy(), (adv + values).numpy(), rtol=1e-6)


def vtrace_reference(blogp, tlogp, r, v, nv, term, trunc, gamma, rho_bar, c_bar, lam=1.0):
    """Direct sum of the paper's definition, one env at a time, episodes cut at ends."""
    T = len(r)
    ratio = [math.exp(t - b) for t, b in zip(tlogp, blogp)]
    rho = [min(rho_bar, x) for x in ratio]
    c = [lam * min(c_bar, x) for x in ratio]
    delta = [rho[t] * (r[t] + gamma * (1 - term[t]) * nv[t] - v[t]) for t in range(T)]
    vs = []
    for s in range(T):
        total, coef = 0.0, 1.0
        for t in range(s, T):
            total += coef * delta[t]
            if term[t] or trunc[t]:
                break
            coef *= gamma * c[t]
        vs.append(v[s] + total)
    adv = []
    for s in range(T):
        nxt = nv[s] if term[s] or trunc[s] or s == T - 1 else vs[s + 1]
        adv.append(rho[s] * (r[s] + gamma * (1 - term[s]) * nxt - v[s]))
    return vs, adv


def consistent_next_values(v, nv, term, trunc):
    """next_values[t] is V(obs[t+1]) wherever the episode goes on inside the rollout."""
    nv = nv.copy()
    goes_on = ~(term | trunc)
    nv[:-1] = np.where(goes_on[:-1], v[1:], nv[:-1])
    return nv


@pytest.mark.parametrize(("seed", "lam"), [(s, 1.0) for s in range(4)] + [(4, 0.9), (5, 0.5)])
def test_vtrace_matches_direct_reference(seed, lam):
    rng = np.random.default_rng(seed)
    T, E = 12, 4
    blogp = np.log(rng.uniform(0.05, 1, (T, E)))
    tlogp = np.log(rng.uniform(0.05, 1, (T, E)))
    r, v, nv = rng.normal(size=(3, T, E))
    term = rng.random((T, E)) < 0.15
    trunc = (rng.random((T, E)) < 0.15) & ~term
    nv = consistent_next_values(v, nv, term, trunc)
    t = lambda x: torch.tensor(x, dtype=torch.float64)  # noqa: E731
    vs, adv = vtrace(
        t(blogp),
        t(tlogp),
        t(r),
        t(v),
        t(nv),
        torch.tensor(term),
        torch.tensor(trunc),
        0.9,
        rho_bar=1.0,
        c_bar=0.8,
        lam=lam,
    )
    for e in range(E):
        ref_vs, ref_adv = vtrace_reference(
            blogp[:, e],
            tlogp[:, e],
            r[:, e],
            v[:, e],
            nv[:, e],
            term[:, e],
            trunc[:, e],
            0.9,
            1.0,
            0.8,
            lam,
        )
        np.testing.assert_allclose(vs[:, e].numpy(), ref_vs, rtol=1e-10)
        np.testing.assert_allclose(adv[:, e].numpy(), ref_adv, rtol=1e-10)


@pytest.mark.parametrize("lam", [1.0, 0.9, 0.0])
def test_vtrace_on_policy_equals_gae(lam):
    rng = np.random.default_rng(7)
    T, E = 20, 3
    logp = torch.tensor(np.log(rng.uniform(0.1, 1, (T, E))))
    r, v, nv = rng.normal(size=(3, T, E))
    term = rng.random((T, E)) < 0.1
    trunc = (rng.random((T, E)) < 0.1) & ~term
    nv = consistent_next_values(v, nv, term, trunc)
    r, v, nv, term, trunc = (torch.tensor(x) for x in (r, v, nv, term, trunc))
    vs, _ = vtrace(logp, logp, r, v, nv, term, trunc, 0.99, lam=lam)
    advantages, targets = gae(r, v, nv, term, trunc, 0.99, lam)
    np.testing.assert_allclose(vs.numpy(), targets.numpy(), rtol=1e-10)
    if lam == 1.0:  # V-trace's policy advantage looks one step past vs; at lambda 1 they agree
        _, adv = vtrace(logp, logp, r, v, nv, term, trunc, 0.99)
        np.testing.assert_allclose(adv.numpy(), advantages.numpy(), rtol=1e-10, atol=1e-12)
