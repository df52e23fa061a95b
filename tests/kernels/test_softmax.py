"""Softmax stability: logits of +-1e3 (float64) or +-200 (float32) stay finite.

Huge Why and by drive the logits there; exp of them overflows unless the kernels subtract
the row max. The probabilities are read back from the kernels' own output: dz rows
(p - onehot)/B, which the workspace holds after loss_and_grads (and, for B = T = 1, dby is
the row itself), so p = dz * B + onehot must be finite, in [0, 1], and sum to 1.
"""

from __future__ import annotations

import numpy as np
import pytest
from scipy.special import logsumexp, softmax

import charrnn
from charrnn import Workspace
from conftest import GRAD_NAMES, cast_params, flat, make_chunk, make_params, run_loss, \
    run_loss_and_grads

H, V = 6, 7
LOGIT = {np.dtype(np.float64): 1e3, np.dtype(np.float32): 200.0}


def _huge(dtype, kind, seed=0):
    """Parameters whose logits reach +-L (L = 1e3 or 200): by spreads the rows over
    [-L, L] ("spread"), or puts every logit near -L ("all_low"), or ties two top logits
    ("tie"); Why adds +-L/4 on top, so the state still matters."""
    L = LOGIT[np.dtype(dtype)]
    P = make_params(H, V, np.float64, "trained", seed=seed)
    rng = np.random.default_rng(seed)
    P["Why"] = rng.standard_normal((V, H)) * (L / 4 / np.sqrt(H))
    if kind == "spread":
        P["by"] = np.linspace(-L, L, V)[rng.permutation(V)]
    elif kind == "all_low":
        P["by"] = -L + rng.standard_normal(V)
    elif kind == "tie":
        P["Why"][:] = 0                                          # logits are by exactly
        P["by"] = np.linspace(-L, L, V)
        P["by"][0] = L
    return cast_params(P, dtype)


def _logits(P, X, h0):
    """z (T, B, V) recomputed here in float64."""
    P = {k: v.astype(np.float64) for k, v in P.items()}
    B, T = X.shape
    h = h0.astype(np.float64)
    zs = []
    for t in range(T):
        h = np.tanh(P["Wxh"][:, X[:, t]].T + h @ P["Whh"].T + P["bh"])
        zs.append(h @ P["Why"].T + P["by"])
    return np.array(zs)


@pytest.mark.parametrize("kind", ["spread", "all_low", "tie"])
def test_huge_logits_give_valid_probabilities(backend, dtype, kind):
    K = charrnn.get_kernels(backend)
    B, T = 3, 5
    P = _huge(dtype, kind, seed=1)
    X, Y, h0 = make_chunk(B, T, H, V, dtype, seed=2)
    z = _logits(P, X, h0)
    L = LOGIT[np.dtype(dtype)]
    assert np.abs(z).max() >= 0.9 * L                           # the logits are that large
    with np.errstate(all="ignore"):                             # a naive softmax fails
        e = np.exp(z.astype(dtype))
        assert not np.all(np.isfinite(e / e.sum(axis=2, keepdims=True)))

    ws = Workspace(B, T, H, V, dtype)
    loss, G, hl = run_loss_and_grads(K, P, X, Y, h0, ws=ws)
    assert np.isfinite(loss) and loss >= 0
    ref = np.sum(logsumexp(z, axis=2) - np.take_along_axis(z, Y.T[:, :, None], 2)[..., 0]) / B
    np.testing.assert_allclose(loss, ref, rtol=1e-10 if dtype == np.float64 else 1e-5)
    for g in GRAD_NAMES:
        assert np.all(np.isfinite(G[g])), g
    assert np.all(np.isfinite(hl)) and np.abs(hl).max() <= 1

    dz = ws.zs[:T * B * V].reshape(T, B, V).astype(np.float64)
    eps = np.finfo(dtype).eps
    assert np.all(np.isfinite(dz))
    np.testing.assert_allclose(dz.sum(axis=2), 0, atol=4 * V * eps / B)
    p = dz * B
    p[np.arange(T)[:, None], np.arange(B)[None, :], Y.T] += 1
    assert p.min() >= -eps and p.max() <= 1 + 2 * eps
    np.testing.assert_allclose(p.sum(axis=2), 1, atol=4 * V * eps)
    np.testing.assert_allclose(p, softmax(z, axis=2), atol=1e-10 if dtype == np.float64 else 1e-4)
    if kind == "tie":
        np.testing.assert_allclose(p[..., 0], 0.5, atol=1e-6)
        np.testing.assert_allclose(p[..., V - 1], 0.5, atol=1e-6)

    L2, hl2 = run_loss(K, P, X, Y, h0)
    assert np.isfinite(L2)
    assert L2 == pytest.approx(loss, rel=1e-12)


def test_huge_logits_single_step_dby_is_p_minus_onehot(backend, dtype):
    """B = T = 1: dby = p - onehot(y), through the public outputs only."""
    K = charrnn.get_kernels(backend)
    P = _huge(dtype, "spread", seed=3)
    eps = np.finfo(dtype).eps
    for y in range(V):
        X, _, h0 = make_chunk(1, 1, H, V, dtype, seed=4 + y)
        Y = np.array([[y]], np.int32)
        loss, G, _ = run_loss_and_grads(K, P, X, Y, h0)
        assert np.isfinite(loss)
        p = G["dby"].astype(np.float64)
        p[y] += 1
        assert np.all(np.isfinite(p)) and p.min() >= -eps and p.max() <= 1 + 2 * eps
        assert p.sum() == pytest.approx(1, abs=float(4 * V * eps))
        np.testing.assert_allclose(p, softmax(_logits(P, X, h0)[0, 0]),
                                   atol=1e-10 if dtype == np.float64 else 1e-4)


def test_huge_logits_through_the_model(backend, dtype):
    vocab = charrnn.Vocab("abcdefg")
    model = charrnn.CharRNN(vocab, hidden_size=H, dtype=dtype, backend=backend)
    for k, v in _huge(dtype, "spread", seed=5).items():
        model.params[k][...] = v
    ids = vocab.encode("abcdefgabcdefg")
    loss, grads, h = model.loss_and_grads(ids[:-1], ids[1:])
    assert np.isfinite(loss)
    assert all(np.all(np.isfinite(g)) for g in grads.values())
    assert np.all(np.isfinite(h))


@pytest.mark.parametrize("temperature,top_k", [(1.0, None), (0.5, None), (2.0, 3), (0.0, None)])
@pytest.mark.parametrize("kind", ["spread", "all_low"])
def test_sampling_with_huge_logits(backend, dtype, kind, temperature, top_k):
    """Valid ids, a finite state, and never an id with a negligible probability."""
    K = charrnn.get_kernels(backend)
    B, n = 4, 40
    P = _huge(dtype, kind, seed=6)
    _, _, h = make_chunk(B, 1, H, V, dtype, seed=7)
    first = np.arange(B, dtype=np.int32) % V
    U = np.random.default_rng(8).random((n, B))
    U[0] = 1.0
    U[1] = 0.0
    h_in = h.copy()
    ids = K.sample(*flat(P), h, first, U, temperature, top_k)
    assert ids.shape == (n, B) and ids.min() >= 0 and ids.max() < V
    assert np.all(np.isfinite(h)) and np.abs(h).max() <= 1
    # replay in float64: each id's logit is within 50 * temperature nats of the best one
    # (anything further has p < 2e-22), and is among the top k. The edge uniforms 1 and 0
    # pick the last and the first id with a nonzero float probability, however small.
    Pf = {k: v.astype(np.float64) for k, v in P.items()}
    hh, x = h_in.astype(np.float64), first
    for i in range(n):
        hh = np.tanh(Pf["Wxh"][:, x].T + hh @ Pf["Whh"].T + Pf["bh"])
        z = hh @ Pf["Why"].T + Pf["by"]
        for b in range(B):
            zb = z[b]
            slack = 10 * LOGIT[np.dtype(dtype)] * np.finfo(dtype).eps   # rounding of z
            if 0 < U[i, b] < 1:
                assert zb[ids[i, b]] >= zb.max() - 50 * temperature - slack, (i, b)
            if top_k:
                assert zb[ids[i, b]] >= np.sort(zb)[-top_k] - slack
        x = ids[i]
