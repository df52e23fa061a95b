"""Property tests (hypothesis): the compiled kernels equal the NumPy reference on random
small shapes, random sane weights, random ids, in both dtypes.

The default run draws a few dozen examples per property; set CHARRNN_HYPOTHESIS_EXAMPLES
for a longer search, e.g. ``CHARRNN_HYPOTHESIS_EXAMPLES=2000 pytest tests/kernels/test_properties.py``.
"""

from __future__ import annotations

import os

import numpy as np
from hypothesis import given, settings, strategies as st

from charrnn import Workspace
from charrnn.kernels import reference as NP
from conftest import GRAD_NAMES, assert_close_to_ref, cast_params, flat, run_loss, \
    run_loss_and_grads

EXAMPLES = int(os.environ.get("CHARRNN_HYPOTHESIS_EXAMPLES", "40"))
SETTINGS = settings(max_examples=EXAMPLES, deadline=None)


@st.composite
def chunks(draw):
    """(params float64 but float32-representable, X, Y, h0) for small random shapes.

    Weights at a sane scale: Wxh and Why ~ N(0, s) with s in [0.01, 0.6], Whh at a
    spectral radius in [0, 0.95], biases ~ N(0, 0.1 s). Targets are redrawn while an id
    occurs exactly B*T/V times (see test_parity._chunk: at small s that makes dby pure
    cancellation, below float32 resolution).
    """
    B = draw(st.integers(1, 4))
    T = draw(st.integers(1, 8))
    H = draw(st.integers(1, 10))
    V = draw(st.integers(2, 12))
    s = draw(st.floats(0.01, 0.6))
    radius = draw(st.floats(0.0, 0.95))
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    Whh = rng.standard_normal((H, H))
    Whh *= radius / max(np.max(np.abs(np.linalg.eigvals(Whh))), 1e-12)
    P = {"Wxh": rng.standard_normal((H, V)) * s, "Whh": Whh,
         "Why": rng.standard_normal((V, H)) * s,
         "bh": rng.standard_normal(H) * 0.1 * s, "by": rng.standard_normal(V) * 0.1 * s}
    P = {k: np.ascontiguousarray(v.astype(np.float32).astype(np.float64)) for k, v in P.items()}
    X = rng.integers(0, V, (B, T)).astype(np.int32)
    Y = rng.integers(0, V, (B, T)).astype(np.int32)
    while (B * T) % V == 0 and np.any(np.bincount(Y.ravel(), minlength=V) == B * T // V):
        Y = rng.integers(0, V, (B, T)).astype(np.int32)
    h0 = np.tanh(rng.standard_normal((B, H))).astype(np.float32).astype(np.float64)
    return P, X, Y, h0


def _check(label, got, ref, rtol, atol_frac, loss_rtol, scale=None):
    """``got`` against the float64 ``ref``; with ``scale``, each gradient entry to rtol
    relative to the sum of the magnitudes of its terms (see ``term_scale``) instead of
    to its own magnitude."""
    L, G, hl = got
    Lr, Gr, hlr = ref
    np.testing.assert_allclose(L, Lr, rtol=loss_rtol, atol=0, err_msg=f"{label} loss")
    for g in GRAD_NAMES:
        if scale is None:
            assert_close_to_ref(f"{label} {g}", G[g], Gr[g], rtol, atol_frac)
        else:
            bound = rtol * scale[g] + atol_frac * np.max(np.abs(Gr[g]))
            err = np.abs(G[g] - Gr[g])
            assert np.all(err <= bound), (f"{label} {g}: error {np.max(err - bound):.3g} "
                                          f"past the bound, {G[g]} vs {Gr[g]}")
    assert_close_to_ref(f"{label} hlast", hl, hlr, rtol, atol_frac)


def term_scale(P, X, Y, h0) -> dict[str, np.ndarray]:
    """For each gradient entry, the sum of the magnitudes of the terms it sums (the float64
    reference's dz, da and states): the scale a float32 sum's rounding error is relative
    to. Where the terms cancel, the entry is far smaller than that, and no float32 kernel
    can match it to 1e-4 of itself (dbh = -5.2e-4 from eight terms of about 0.15 came out
    1.4e-4 off, relatively, in one drawn example)."""
    B, T = X.shape
    H, V = P["Wxh"].shape
    ws = Workspace(B, T, H, V)
    run_loss_and_grads(NP, P, X, Y, h0, ws)
    dZ = np.abs(ws.zs[:T * B * V].reshape(T * B, V))          # |dz|, row t*B + b
    dA = np.abs(ws.dhs[:T * B * H].reshape(T * B, H))         # |da|
    hs = np.abs(ws.hs[:(T + 1) * B * H].reshape(T + 1, B * H))
    Hs, Hprev = hs[1:].reshape(T * B, H), hs[:T].reshape(T * B, H)
    dWxh = np.zeros((H, V))
    for x, a in zip(X.T.reshape(-1), dA):
        dWxh[:, x] += a
    return {"dWxh": dWxh, "dWhh": dA.T @ Hprev, "dWhy": dZ.T @ Hs, "dbh": dA.sum(axis=0),
            "dby": dZ.sum(axis=0)}


@SETTINGS
@given(chunk=chunks())
def test_loss_and_grads_parity(compiled, chunk):
    P, X, Y, h0 = chunk
    ref = run_loss_and_grads(NP, P, X, Y, h0)
    _check("cython float64", run_loss_and_grads(compiled, P, X, Y, h0), ref,
           1e-10, 1e-10, 1e-10)
    P32, h032 = cast_params(P, np.float32), h0.astype(np.float32)
    scale = term_scale(P, X, Y, h0)
    for K in (compiled, NP):
        _check(f"{K.NAME} float32", run_loss_and_grads(K, P32, X, Y, h032), ref,
               1e-4, 1e-5, 1e-5, scale)


def test_loss_and_grads_parity_under_cancellation(compiled):
    """The example that showed the float32 tolerance must follow the terms: H = 1, dbh a
    sum of eight terms that nearly cancel. Held to the term scale, both backends pass;
    the NumPy twin's float32 dbh can be more than 1e-4 off relative to dbh itself."""
    P = {"Wxh": [[0.35669497, -0.04156275, 0.3107883, -0.29983139, -1.26864362]],
         "Whh": [[-0.0]], "Why": [[0.09895504], [-0.47903842], [-0.43910393],
                                  [-0.75530601], [-0.62565368]],
         "bh": [-0.00016769], "by": [-0.01518845, 0.00118604, 0.00487028, 0.02602097,
                                     0.01536794]}
    P = {k: np.array(v).astype(np.float32).astype(np.float64) for k, v in P.items()}
    X = np.array([[0, 0, 3, 2], [4, 4, 1, 4]], np.int32)
    Y = np.array([[2, 3, 3, 0], [4, 0, 4, 0]], np.int32)
    h0 = np.array([[-0.70102918], [-0.41082975]]).astype(np.float32).astype(np.float64)
    ref = run_loss_and_grads(NP, P, X, Y, h0)
    # The old check (dbh to 1e-4 of itself) failed on the machine where this example was
    # drawn: the NumPy twin's float32 dbh came out 1.4e-4 off. How far off depends on how
    # NumPy sums on the CPU at hand, so that is a comment, not an assertion.
    scale = term_scale(P, X, Y, h0)
    assert scale["dbh"][0] > 100 * abs(ref[1]["dbh"][0])            # heavy cancellation
    for K in (compiled, NP):
        _check(f"{K.NAME} float32", run_loss_and_grads(K, cast_params(P, np.float32), X, Y,
                                                        h0.astype(np.float32)),
               ref, 1e-4, 1e-5, 1e-5, scale)


@SETTINGS
@given(chunk=chunks(), f32=st.booleans())
def test_forward_loss_matches_loss_and_grads(compiled, chunk, f32):
    P, X, Y, h0 = chunk
    if f32:
        P, h0 = cast_params(P, np.float32), h0.astype(np.float32)
    for K in (compiled, NP):
        L, hl = run_loss(K, P, X, Y, h0)
        L2, _, hl2 = run_loss_and_grads(K, P, X, Y, h0)
        np.testing.assert_allclose(L, L2, rtol=1e-12)
        np.testing.assert_allclose(hl, hl2, rtol=1e-12, atol=0)


@SETTINGS
@given(chunk=chunks(), n=st.integers(0, 12),
       temperature=st.one_of(st.just(0.0), st.floats(0.2, 3.0)),
       k=st.one_of(st.none(), st.integers(1, 12)), data=st.data())
def test_sample_parity(compiled, chunk, n, temperature, k, data):
    """float64: identical ids and (to rounding) identical states for the same uniforms."""
    P, X, _, h0 = chunk
    V = P["Wxh"].shape[1]
    top_k = None if k is None else min(k, V)
    U = np.random.default_rng(data.draw(st.integers(0, 2**32 - 1))).random((n, X.shape[0]))
    first = np.ascontiguousarray(X[:, 0])
    hc, hn = h0.copy(), h0.copy()
    layout, theta = flat(P)
    a = compiled.sample(layout, theta, hc, first, U, temperature, top_k)
    b = NP.sample(layout, theta, hn, first, U, temperature, top_k)
    np.testing.assert_array_equal(a, b)
    np.testing.assert_allclose(hc, hn, rtol=1e-12, atol=1e-14)


@SETTINGS
@given(n=st.integers(1, 70), seed=st.integers(0, 2**32 - 1), f32=st.booleans(),
       name=st.sampled_from(["sgd", "adagrad", "rmsprop", "adam"]),
       clip=st.one_of(st.just(float("inf")), st.floats(0.1, 10.0)),
       scale=st.floats(0.0, 1.0), lr=st.floats(1e-4, 1.0), step=st.integers(1, 1000))
def test_update_parity(compiled, n, seed, f32, name, clip, scale, lr, step):
    dtype = np.float32 if f32 else np.float64
    rng = np.random.default_rng(seed)
    g = (rng.standard_normal(n) * 5).astype(dtype)
    w = rng.standard_normal(n).astype(dtype)
    m = rng.standard_normal(n).astype(dtype) * 0.1
    v = rng.random(n).astype(dtype)
    out = []
    for K in (compiled, NP):
        ww, mm, vv = w.copy(), m.copy(), np.abs(m) if name == "adagrad" else v.copy()
        if name == "sgd":
            K.sgd_update(ww, g, lr, clip, scale)
        elif name == "adagrad":
            K.adagrad_update(ww, g, vv, lr, 1e-8, clip, scale)
        elif name == "rmsprop":
            K.rmsprop_update(ww, g, vv, lr, 0.95, 1e-8, clip, scale)
        else:
            K.adam_update(ww, g, mm, vv, lr, 0.9, 0.999, 1e-8, step, clip, scale)
        out.append((ww, mm, vv))
    rtol, atol = (1e-12, 1e-13) if dtype == np.float64 else (1e-5, 1e-6)
    for x, y in zip(*out):
        np.testing.assert_allclose(x, y, rtol=rtol, atol=atol)
