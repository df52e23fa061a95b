"""Gradient check: the NumPy reference gradients against central finite differences.

float64, eps = 1e-5, and every checked entry must satisfy |a - n| <= 1e-5 + 1e-3 * |n|
(a analytic, n numeric). Checked entries: a random sample of each parameter plus its
largest entry (by |value|) and the entry with the largest analytic gradient. The compiled
backend is held to the reference by the parity tests.
"""

from __future__ import annotations

import numpy as np
import pytest

from charrnn.kernels import reference as NP
from conftest import GRAD_NAMES, PARAM_NAMES, SCALES, make_chunk, make_params, \
    run_loss, run_loss_and_grads

EPS = 1e-5
ATOL, RTOL = 1e-5, 1e-3
N_RANDOM = 8


def _entries(P, G, name, gname, rng):
    """Flat indices to check: random ones, the largest |param|, the largest |grad|."""
    size = P[name].size
    idx = set(rng.choice(size, min(N_RANDOM, size), replace=False).tolist())
    idx.add(int(np.argmax(np.abs(P[name]))))
    idx.add(int(np.argmax(np.abs(G[gname]))))
    return sorted(idx)


def _numeric(P, name, i, X, Y, h0):
    """Central difference of the loss along flat entry i of parameter `name`."""
    flat = P[name].reshape(-1)
    old = flat[i]
    flat[i] = old + EPS
    Lp, _ = run_loss(NP, P, X, Y, h0)
    flat[i] = old - EPS
    Lm, _ = run_loss(NP, P, X, Y, h0)
    flat[i] = old
    return (Lp - Lm) / (2 * EPS)


@pytest.mark.parametrize("scale", SCALES)
@pytest.mark.parametrize("B,T,H,V", [(1, 1, 1, 2), (1, 6, 5, 4), (3, 7, 6, 5), (4, 3, 2, 9)])
def test_gradients_match_finite_differences(B, T, H, V, scale):
    seed = 100 * B + 10 * T + H
    P = make_params(H, V, np.float64, scale, seed=seed)
    X, Y, h0 = make_chunk(B, T, H, V, np.float64, seed=seed + 1)
    L, G, _ = run_loss_and_grads(NP, P, X, Y, h0)
    rng = np.random.default_rng(seed + 2)
    checked = 0
    for name, gname in zip(PARAM_NAMES, GRAD_NAMES):
        a_flat = G[gname].reshape(-1)
        for i in _entries(P, G, name, gname, rng):
            n = _numeric(P, name, i, X, Y, h0)
            a = a_flat[i]
            assert abs(a - n) <= ATOL + RTOL * abs(n), \
                f"{gname}[{np.unravel_index(i, P[name].shape)}]: analytic {a!r}, numeric {n!r}"
            checked += 1
    assert checked >= 5
    # the check is not vacuous: at the trained scale the gradients are far above ATOL
    if scale == "trained":
        assert max(np.abs(G[g]).max() for g in GRAD_NAMES) > 100 * ATOL


def test_gradient_check_detects_a_wrong_gradient():
    """The criterion is sharp enough to reject a gradient that is off by 1%."""
    B, T, H, V = 2, 5, 4, 6
    P = make_params(H, V, np.float64, "trained", seed=5)
    X, Y, h0 = make_chunk(B, T, H, V, np.float64, seed=6)
    _, G, _ = run_loss_and_grads(NP, P, X, Y, h0)
    i = int(np.argmax(np.abs(G["dWhy"])))
    n = _numeric(P, "Why", i, X, Y, h0)
    a = G["dWhy"].reshape(-1)[i] * 1.01
    assert abs(a - n) > ATOL + RTOL * abs(n)


def test_chunks_carry_the_state():
    """Two chunks run back to back, the second starting from the first's hlast, give the
    loss and last state of one long chunk (the forward pass is not truncated)."""
    B, T, H, V = 2, 8, 5, 7
    P = make_params(H, V, np.float64, "trained", seed=7)
    X, Y, h0 = make_chunk(B, T, H, V, np.float64, seed=8)
    L, _, hl = run_loss_and_grads(NP, P, X, Y, h0)
    L1, _, h1 = run_loss_and_grads(NP, P, np.ascontiguousarray(X[:, :3]),
                                   np.ascontiguousarray(Y[:, :3]), h0)
    L2, _, h2 = run_loss_and_grads(NP, P, np.ascontiguousarray(X[:, 3:]),
                                   np.ascontiguousarray(Y[:, 3:]), h1)
    assert L1 + L2 == pytest.approx(L, rel=1e-12)
    np.testing.assert_allclose(h2, hl, rtol=1e-12, atol=1e-15)
