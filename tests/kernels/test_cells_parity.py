"""Parity of the compiled kernels with the NumPy reference for every cell and depth
(design.md section 2b): LSTM, GRU and multi-layer stacks, with and without dropout.

As test_parity.py: the reference is the NumPy backend in float64; the compiled backend
matches it to rtol=1e-10 in float64, and in float32 matches it to rtol=1e-4 (gradients,
state; atol 1e-5 * max|ref|) and rtol=1e-5 (loss). The grid is every B in {1, 3}, T in
{1, 2, 17}, H in {1, 8, 64}, V in {2, 65} for every cell, depth 1..3 and dropout or not
(the full product), then sampling (identical ids) and train_step for every rule.
"""

from __future__ import annotations

import itertools
import zlib

import numpy as np
import pytest

from charrnn import Workspace
from charrnn.kernels import reference as NP
from charrnn.layout import Layout
from conftest import (CELLS, assert_close_to_ref, make_ids, make_masks, make_stack,
                      make_state)

F64 = dict(rtol=1e-10, atol_frac=1e-10)
F32 = dict(rtol=1e-4, atol_frac=1e-5)
F32_LOSS_RTOL = 1e-5

DEPTHS = (1, 2, 3)
SHAPES = list(itertools.product([1, 3], [1, 2, 17], [1, 8, 64], [2, 65]))     # B, T, H, V
MODELS = list(itertools.product(CELLS, DEPTHS, [False, True]))               # 18
GRID = list(itertools.product(MODELS, SHAPES))      # 648 cases, about 15 s in all


def _id(case):
    (cell, L, drop), (B, T, H, V) = case
    return f"{cell}{L}{'-drop' if drop else ''}-B{B}-T{T}-H{H}-V{V}"


def _as(layout: Layout, theta: np.ndarray, dtype) -> tuple[Layout, np.ndarray]:
    """The same model in ``dtype`` (the values are float32-representable)."""
    lay = Layout(layout.hidden_size, layout.vocab_size, dtype, layout.cell,
                 layout.num_layers)
    th = lay.zeros()
    th[:] = theta
    return lay, th


def _run(K, layout, theta, X, Y, h0, masks):
    """(loss_and_grads' loss, grad, hlast, loss' loss, hlast), every output NaN first."""
    B, T = X.shape
    ws = Workspace.for_layout(layout, B, T)
    grad = layout.zeros()
    grad[:] = np.nan
    hlast = np.full_like(h0, np.nan)
    L = K.loss_and_grads(layout, theta, grad, X, Y, h0, hlast, ws, masks)
    hlast2 = np.full_like(h0, np.nan)
    L2 = K.loss(layout, theta, X, Y, h0, hlast2, ws)
    return L, grad, hlast, L2, hlast2


def _compare(label, got, ref, tol, loss_rtol, masked):
    L, grad, hlast, L2, hlast2 = got
    Lr, gradr, hlastr, L2r, hlast2r = ref
    np.testing.assert_allclose(L, Lr, rtol=loss_rtol, atol=0, err_msg=f"{label}: loss")
    np.testing.assert_allclose(L2, L2r, rtol=loss_rtol, atol=0, err_msg=f"{label}: loss()")
    assert_close_to_ref(f"{label}: grad", grad, gradr, **tol)
    assert_close_to_ref(f"{label}: hlast", hlast, hlastr, **tol)
    assert_close_to_ref(f"{label}: loss() hlast", hlast2, hlast2r, **tol)
    if not masked:
        assert L == L2


@pytest.mark.parametrize("case", GRID, ids=_id)
def test_loss_and_grads_and_loss_parity(compiled, case):
    (cell, L, drop), (B, T, H, V) = case
    seed = zlib.crc32(_id(case).encode())
    layout, theta = make_stack(cell, L, H, V, np.float64, seed=seed)
    X, Y = make_ids(B, T, V, seed=seed + 1)
    h0 = make_state(layout, B, seed=seed + 2)
    # p = 0.5: masks of 0 and 2, the same in both dtypes
    masks = make_masks(layout, B, T, 0.5, seed=seed + 3) if drop else None
    ref = _run(NP, layout, theta, X, Y, h0, masks)
    assert np.all(np.isfinite(ref[1]))
    _compare("cython float64", _run(compiled, layout, theta, X, Y, h0, masks), ref, F64,
             F64["rtol"], drop)
    lay32, th32 = _as(layout, theta, np.float32)
    m32 = None if masks is None else masks.astype(np.float32)
    got = _run(compiled, lay32, th32, X, Y, h0.astype(np.float32), m32)
    assert got[1].dtype == got[2].dtype == np.float32
    _compare("cython float32", got, ref, F32, F32_LOSS_RTOL, drop)


@pytest.mark.parametrize("cell", CELLS)
def test_the_gradient_is_written_whole_with_inputs_untouched(compiled, cell):
    """Every entry of the gradient and state written (they start NaN), and theta, the
    ids, h0 and the masks left as they were; the state carried in place (hlast is h0)
    gives the same numbers."""
    layout, theta = make_stack(cell, 2, 5, 7, np.float64, seed=5)
    X, Y = make_ids(3, 4, 7, seed=6)
    h0 = make_state(layout, 3, seed=7)
    masks = make_masks(layout, 3, 4, 0.3, seed=8)
    before = [a.copy() for a in (theta, X, Y, h0, masks)]
    L, grad, hlast, _, _ = _run(compiled, layout, theta, X, Y, h0, masks)
    assert np.all(np.isfinite(grad)) and np.all(np.isfinite(hlast))
    for a, b in zip((theta, X, Y, h0, masks), before):
        np.testing.assert_array_equal(a, b)
    h = h0.copy()
    g = layout.zeros()
    L2 = compiled.loss_and_grads(layout, theta, g, X, Y, h, h, Workspace.for_layout(
        layout, 3, 4), masks)
    assert L2 == L
    np.testing.assert_array_equal(g, grad)
    np.testing.assert_array_equal(h, hlast)


def test_a_larger_workspace_serves_a_smaller_chunk(compiled):
    """A workspace for a deeper LSTM and a longer chunk: the buffers are cut per chunk,
    as the reference cuts them."""
    layout, theta = make_stack("lstm", 2, 8, 9, np.float64, seed=9)
    X, Y = make_ids(2, 3, 9, seed=10)
    h0 = make_state(layout, 2, seed=11)
    big = Workspace(4, 10, 8, 9, "float64", "lstm", 3)
    for K in (NP, compiled):
        g = layout.zeros()
        hl = np.empty_like(h0)
        L = K.loss_and_grads(layout, theta, g, X, Y, h0, hl, big)
        ref = _run(NP, layout, theta, X, Y, h0, None)
        assert L == pytest.approx(ref[0], rel=1e-12)
        assert_close_to_ref("grad", g, ref[1], **F64)


# ----------------------------------------------------------------------------- sampling

@pytest.mark.parametrize("cell", CELLS)
@pytest.mark.parametrize("L", DEPTHS)
@pytest.mark.parametrize("dtype", ["float64", "float32"])
def test_sampling_draws_the_same_ids(compiled, cell, L, dtype):
    """Identical ids from both backends for the same uniforms, at several temperatures
    and top-k, and the same state after (to rounding)."""
    H, V = 16, 30
    layout, theta = make_stack(cell, L, H, V, dtype, seed=20 + L)
    for B, temperature, top_k in [(1, 1.0, None), (3, 0.7, 5), (3, 0.0, None), (2, 1.5, 1)]:
        h0 = make_state(layout, B, seed=B)
        rng = np.random.default_rng(B + L)
        first = rng.integers(0, V, B).astype(np.int32)
        U = rng.random((40, B))
        hs = [h0.copy(), h0.copy()]
        ids = [K.sample(layout, theta, h, first, U, temperature, top_k)
               for K, h in zip((NP, compiled), hs)]
        np.testing.assert_array_equal(ids[1], ids[0], err_msg=f"B={B} T={temperature}")
        np.testing.assert_allclose(hs[1], hs[0], rtol=1e-4 if dtype == "float32" else 1e-10,
                                   atol=1e-5 if dtype == "float32" else 1e-12)
    # no draws: the state untouched
    h = h0.copy()
    out = compiled.sample(layout, theta, h, first, np.zeros((0, h.shape[0])), 1.0)
    assert out.shape == (0, h.shape[0])
    np.testing.assert_array_equal(h, h0)


@pytest.mark.parametrize("cell", CELLS)
def test_sampling_is_the_forward_pass(compiled, cell):
    """Sampling with given ids (top_k = 1 at temperature 0 is argmax: feed the loss's
    own chunk) advances the state as the forward pass does."""
    layout, theta = make_stack(cell, 2, 8, 11, np.float64, seed=30)
    h0 = make_state(layout, 2, seed=31)
    h = h0.copy()
    ids = compiled.sample(layout, theta, h, np.array([3, 4], np.int32), np.zeros((6, 2)),
                          0.0)
    X = np.ascontiguousarray(np.concatenate([[[3, 4]], ids[:-1]]).T, np.int32)  # (B, T) fed
    hl = np.empty_like(h0)
    compiled.loss(layout, theta, X, X, h0, hl, Workspace.for_layout(layout, 2, 6))
    np.testing.assert_allclose(h, hl, rtol=1e-12, atol=1e-14)


# ----------------------------------------------------------------------------- train_step

RULES = {"sgd": ((), ()), "adagrad": (1, (1e-8,)), "rmsprop": (1, (0.9, 1e-8)),
         "adam": (2, (0.9, 0.999, 1e-8, 3))}


@pytest.mark.parametrize("rule", list(RULES))
@pytest.mark.parametrize("cell", CELLS)
@pytest.mark.parametrize("dtype", ["float64", "float32"])
def test_train_step_parity(compiled, rule, cell, dtype):
    """The fused compiled step against the NumPy step, with dropout, element-wise and
    global-norm clipping (both active), for every rule and cell, at depths 1 and 2."""
    nstates, hyper = RULES[rule]
    tol = 1e-10 if dtype == "float64" else 1e-4
    for L, (B, T, H, V) in [(1, (1, 5, 8, 9)), (2, (3, 7, 16, 13))]:
        layout, theta = make_stack(cell, L, H, V, dtype, seed=40 + L)
        X, Y = make_ids(B, T, V, seed=41)
        masks = make_masks(layout, B, T, 0.5, seed=42)
        res = []
        for K in (NP, compiled):
            w, g, h = theta.copy(), layout.zeros(), make_state(layout, B, seed=43)
            ws = Workspace.for_layout(layout, B, T)
            state = tuple(np.full(layout.size, 0.01, dtype) for _ in range(nstates or 0))
            out = []
            for step in range(3):                           # carried state, updated w
                hyp = hyper[:-1] + (step + 1,) if rule == "adam" else hyper
                out.append(K.train_step(layout, w, g, X, Y, h, ws, rule, state, 0.05, hyp,
                                        0.05, 1.0, masks))
            res.append((out, w, h, state))
        (o0, w0, h0, s0), (o1, w1, h1, s1) = res
        for (l0, n0), (l1, n1) in zip(o0, o1):
            assert n0 > 1.0                                 # global-norm clipping is on
            np.testing.assert_allclose([l1, n1], [l0, n0], rtol=tol)
        np.testing.assert_allclose(w1, w0, rtol=tol, atol=tol * np.abs(w0).max())
        np.testing.assert_allclose(h1, h0, rtol=tol, atol=tol)
        for a, b in zip(s1, s0):
            np.testing.assert_allclose(a, b, rtol=tol, atol=tol * np.abs(b).max())


@pytest.mark.parametrize("cell,L,dropout", [("lstm", 2, True), ("gru", 1, False),
                                            ("rnn", 1, True), ("rnn", 3, False)])
def test_the_compiled_fast_paths_take_valid_arguments(compiled, monkeypatch, cell, L,
                                                      dropout):
    """Valid arguments never reach the Python checks: every call is checked in C."""
    from charrnn.kernels import checks

    def refuse(*a, **k):
        raise AssertionError("the checked path ran")
    for name in ("step", "grads", "chunk", "sample"):
        monkeypatch.setattr(checks, name, refuse)
    for dtype in ("float64", "float32"):
        layout, theta = make_stack(cell, L, 8, 11, dtype, seed=50)
        B, T = 3, 5
        X, Y = make_ids(B, T, 11)
        h = make_state(layout, B)
        ws = Workspace.for_layout(layout, B, T)
        m = make_masks(layout, B, T) if dropout else None
        g = layout.zeros()
        compiled.loss(layout, theta, X, Y, h, h, ws)
        compiled.loss_and_grads(layout, theta, g, X, Y, h, h, ws, m)
        compiled.train_step(layout, theta, g, X, Y, h, ws, "adam",
                            (layout.zeros(), layout.zeros()), 0.01, (0.9, 0.99, 1e-8, 1),
                            5.0, 1.0, m)
        compiled.sample(layout, theta, h, X[:, 0].copy(), np.random.rand(4, B), 1.0)


def test_a_step_that_diverges_updates_nothing(compiled):
    """A non-finite loss or norm: w and the optimizer state are left as they were."""
    layout, theta = make_stack("lstm", 2, 4, 5, np.float64, seed=60)
    theta[layout["Why"].offset] = np.inf
    X, Y = make_ids(2, 3, 5)
    h = make_state(layout, 2)
    m = np.zeros(layout.size)
    w = theta.copy()
    loss, norm = compiled.train_step(layout, w, layout.zeros(), X, Y, h,
                                     Workspace.for_layout(layout, 2, 3), "adagrad", (m,),
                                     0.1, (1e-8,), 5.0, np.inf)
    assert not (np.isfinite(loss) and np.isfinite(norm))
    np.testing.assert_array_equal(w, theta)
    assert not m.any()


@pytest.mark.parametrize("cell", CELLS)
@pytest.mark.parametrize("B,T", [(8, 40), (2, 3)])       # layer 0's scatter both ways
def test_the_workspace_keeps_dz_as_the_reference_does(compiled, cell, B, T):
    """After loss_and_grads, ws.zs holds dz = (p - onehot(Y)) / B in both twins (the
    compiled kernels borrow other buffers as scratch, never that one)."""
    H, V = 16, 30
    layout, theta = make_stack(cell, 2, H, V, np.float64, seed=70)
    X, Y = make_ids(B, T, V, seed=71)
    h0 = make_state(layout, B, seed=72)
    zs = []
    for K in (NP, compiled):
        ws = Workspace.for_layout(layout, B, T)
        K.loss_and_grads(layout, theta, layout.zeros(), X, Y, h0, np.empty_like(h0), ws)
        zs.append(ws.zs[:T * B * V].copy())
    assert_close_to_ref("dz", zs[1], zs[0], **F64)
