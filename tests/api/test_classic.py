"""The batched formulation is the classic: B = 1 is min-char-rnn's lossFun, B > 1 averages.

The classic is ``lossFun`` of ``benchmarks/classic.py``, the benchmark's transcription of
min-char-rnn (dicts xs/hs/ys/ps keyed by t, one-hot column vectors, np.dot), written
independently of the package, in float64; the tests that need it skip when
``benchmarks/`` is not beside the tests.
"""

from __future__ import annotations

import numpy as np
import pytest

import charrnn
from conftest import benchmark_module, make_params


def classic_lossFun(*args):
    """``benchmarks/classic.py``'s lossFun: inputs, targets are lists of ints, hprev is
    Hx1, then Wxh, Whh, Why, bh, by; the raw (unclipped) gradients."""
    return benchmark_module("classic").lossFun(*args)


def _tol(dtype):
    # float64 both ways; float32 model against the float64 loop: the parity tolerances
    return (dict(rtol=1e-10, frac=1e-10, lrtol=1e-10) if dtype == np.float64
            else dict(rtol=1e-4, frac=1e-5, lrtol=1e-5))


def _model(backend, dtype, H, V, seed):
    vocab = charrnn.Vocab("".join(chr(ord("a") + i) for i in range(V)))
    model = charrnn.CharRNN(vocab, hidden_size=H, dtype=dtype, backend=backend)
    for k, v in make_params(H, V, np.float64, "trained", seed=seed).items():
        model.params[k][...] = v
    return model


def _classic(model, inputs, targets, hprev):
    p = {k: v.astype(np.float64) for k, v in model.params.items()}
    return classic_lossFun(list(inputs), list(targets), hprev.reshape(-1, 1).astype(np.float64),
                           p["Wxh"], p["Whh"], p["Why"], p["bh"].reshape(-1, 1),
                           p["by"].reshape(-1, 1))


def _close(name, a, ref, tol):
    ref = np.asarray(ref, np.float64)
    np.testing.assert_allclose(np.asarray(a, np.float64), ref, rtol=tol["rtol"],
                               atol=tol["frac"] * np.abs(ref).max(), err_msg=name)


@pytest.mark.parametrize("T", [1, 2, 25])
def test_B1_matches_classic_lossFun(backend, dtype, T):
    H, V = 7, 6
    model = _model(backend, dtype, H, V, seed=T)
    rng = np.random.default_rng(T)
    data = rng.integers(0, V, T + 1)
    inputs, targets = data[:-1].tolist(), data[1:].tolist()
    hprev = np.tanh(rng.standard_normal(H)).astype(np.float32).astype(dtype)
    tol = _tol(dtype)

    loss, grads, h = model.loss_and_grads(inputs, targets, hprev)
    ref = _classic(model, inputs, targets, hprev)

    assert isinstance(loss, float)
    np.testing.assert_allclose(loss, ref[0], rtol=tol["lrtol"])
    for name, r in zip(("Wxh", "Whh", "Why", "bh", "by"), ref[1:6]):
        assert grads[name].shape == model.params[name].shape
        assert grads[name].dtype == dtype
        _close(f"d{name}", grads[name], r.reshape(grads[name].shape), tol)
    assert h.shape == (H,)
    _close("hlast", h, ref[6][:, 0], tol)


def test_B1_classic_training_walk(backend):
    """Three chunks in a row, carrying hprev as the classic main loop does."""
    H, V, T = 5, 4, 6
    model = _model(backend, np.float64, H, V, seed=42)
    data = np.random.default_rng(3).integers(0, V, 3 * T + 1)
    hprev = np.zeros(H)
    href = np.zeros((H, 1))
    tol = _tol(np.float64)
    for p in range(0, 3 * T, T):
        inputs, targets = data[p:p + T], data[p + 1:p + T + 1]
        loss, grads, hprev = model.loss_and_grads(inputs, targets, hprev)
        ref = _classic(model, inputs, targets, href)
        href = ref[6]
        np.testing.assert_allclose(loss, ref[0], rtol=1e-10)
        _close("dWhh", grads["Whh"], ref[2], tol)
        _close("hprev", hprev, href[:, 0], tol)


def test_batch_is_the_average_of_its_streams(backend, dtype):
    """Loss and gradients of B streams are the mean over streams of the B = 1 results;
    the last state of stream b is that stream's own last state."""
    B, T, H, V = 4, 9, 6, 5
    model = _model(backend, dtype, H, V, seed=9)
    rng = np.random.default_rng(10)
    X = rng.integers(0, V, (B, T))
    Y = rng.integers(0, V, (B, T))
    h0 = np.tanh(rng.standard_normal((B, H))).astype(dtype)
    loss, grads, hl = model.loss_and_grads(X, Y, h0)
    singles = [model.loss_and_grads(X[b], Y[b], h0[b]) for b in range(B)]
    f32 = dtype == np.float32
    rtol = 1e-5 if f32 else 1e-12
    np.testing.assert_allclose(loss, np.mean([s[0] for s in singles]), rtol=rtol)
    for name in grads:
        mean = np.mean([s[1][name].astype(np.float64) for s in singles], axis=0)
        np.testing.assert_allclose(grads[name], mean, rtol=1e-4 if f32 else 1e-10,
                                   atol=(1e-5 if f32 else 1e-12) * np.abs(mean).max())
    assert hl.shape == (B, H)
    for b in range(B):
        np.testing.assert_allclose(hl[b], singles[b][2], rtol=1e-5 if f32 else 1e-12,
                                   atol=1e-6 if f32 else 1e-15)
