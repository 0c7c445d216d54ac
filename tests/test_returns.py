"""n-step returns and V-trace against hand-computed values and a direct reference."""

import math

import numpy as np
import pytest
import torch

from rlcore.returns import n_step_returns, vtrace


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
def test_n_step_returns_by_hand(terminated, truncated, expected):
    out = n_step_returns(col(REWARDS), col(NEXT_V), flags(terminated), flags(truncated), GAMMA)
    np.testing.assert_allclose(out.squeeze(1).numpy(), expected, rtol=1e-6)


def vtrace_reference(blogp, tlogp, r, v, nv, term, trunc, gamma, rho_bar, c_bar):
    """Direct sum of the paper's definition, one env at a time, episodes cut at ends."""
    T = len(r)
    ratio = [math.exp(t - b) for t, b in zip(tlogp, blogp)]
    rho = [min(rho_bar, x) for x in ratio]
    c = [min(c_bar, x) for x in ratio]
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


@pytest.mark.parametrize("seed", range(6))
def test_vtrace_matches_direct_reference(seed):
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
        )
        np.testing.assert_allclose(vs[:, e].numpy(), ref_vs, rtol=1e-10)
        np.testing.assert_allclose(adv[:, e].numpy(), ref_adv, rtol=1e-10)


def test_vtrace_on_policy_equals_n_step_returns():
    rng = np.random.default_rng(7)
    T, E = 20, 3
    logp = torch.tensor(np.log(rng.uniform(0.1, 1, (T, E))))
    r, v, nv = rng.normal(size=(3, T, E))
    term = rng.random((T, E)) < 0.1
    trunc = (rng.random((T, E)) < 0.1) & ~term
    nv = consistent_next_values(v, nv, term, trunc)
    r, v, nv, term, trunc = (torch.tensor(x) for x in (r, v, nv, term, trunc))
    vs, adv = vtrace(logp, logp, r, v, nv, term, trunc, 0.99)
    returns = n_step_returns(r, nv, term, trunc, 0.99)
    np.testing.assert_allclose(vs.numpy(), returns.numpy(), rtol=1e-10)
    np.testing.assert_allclose(adv.numpy(), (returns - v).numpy(), rtol=1e-10, atol=1e-12)
