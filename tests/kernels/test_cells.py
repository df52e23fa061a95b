"""The NumPy reference kernels for every cell and depth (design.md section 2b): gradients
against central differences, the math against a plain per-step loop written here and
against PyTorch, the state carried across chunks, the forward-only loss, sampling, dropout
and the training step.

Gradient check as test_gradcheck.py: float64, eps = 1e-5, and every checked entry must
satisfy |a - n| <= 1e-5 + 1e-3 * |n| (a analytic, n numeric).
"""

from __future__ import annotations

import importlib.util

import numpy as np
import pytest

from charrnn import Workspace
from charrnn.kernels import reference as NP
from conftest import CELLS, make_ids, make_masks, make_stack, make_state, run_stack

EPS = 1e-5
ATOL, RTOL = 1e-5, 1e-3
DEPTHS = (1, 2, 3)


def _tol(dtype):
    """(rtol, atol) of a run in ``dtype`` against the float64 reference."""
    return (1e-12, 1e-12) if dtype == np.float64 else (1e-4, 1e-5)


# ----------------------------------------------------------------------------- the plain loop

def _sig(x):
    return 1 / (1 + np.exp(-x))


def plain_forward(layout, theta, X, Y, h0, masks=None):
    """The model of design.md section 2b one step at a time, in float64, with one-hot
    inputs, written without the kernels' structure. Returns (loss, final state as layer
    lists [h...], [c...], logits (T, B, V))."""
    cell, L, H, V = layout.cell, layout.num_layers, layout.hidden_size, layout.vocab_size
    P = {k: v.astype(np.float64) for k, v in layout.views(theta).items()}
    if cell == "rnn" and L == 1:
        P = {"Wx0": P["Wxh"], "Wh0": P["Whh"], "b0": P["bh"], "Why": P["Why"], "by": P["by"]}
    S = 2 if cell == "lstm" else 1
    h0 = h0.astype(np.float64)
    h = [h0[:, l * S * H:l * S * H + H].copy() for l in range(L)]
    c = [h0[:, l * S * H + H:l * S * H + 2 * H].copy() for l in range(L)] if S == 2 else None
    B, T = X.shape
    loss, logits = 0.0, np.zeros((T, B, V))
    for t in range(T):
        inp = np.eye(V)[X[:, t]]                                # (B, V) one-hot
        for l in range(L):
            if l > 0 and masks is not None:
                inp = inp * masks[l - 1, t]
            Wx, Wh = P[f"Wx{l}"], P[f"Wh{l}"]
            if cell == "rnn":
                h[l] = np.tanh(inp @ Wx.T + h[l] @ Wh.T + P[f"b{l}"])
            elif cell == "lstm":
                a = inp @ Wx.T + h[l] @ Wh.T + P[f"b{l}"]
                i, f = _sig(a[:, :H]), _sig(a[:, H:2 * H])
                g, o = np.tanh(a[:, 2 * H:3 * H]), _sig(a[:, 3 * H:])
                c[l] = f * c[l] + i * g
                h[l] = o * np.tanh(c[l])
            else:
                ax = inp @ Wx.T + P[f"bx{l}"]
                ah = h[l] @ Wh.T + P[f"bh{l}"]
                r = _sig(ax[:, :H] + ah[:, :H])
                z = _sig(ax[:, H:2 * H] + ah[:, H:2 * H])
                n = np.tanh(ax[:, 2 * H:] + r * ah[:, 2 * H:])
                h[l] = (1 - z) * n + z * h[l]
            inp = h[l]
        if masks is not None:
            inp = inp * masks[L - 1, t]
        zt = inp @ P["Why"].T + P["by"]
        logits[t] = zt
        m = zt.max(axis=1)
        loss += float(np.sum(m + np.log(np.exp(zt - m[:, None]).sum(axis=1))
                             - zt[np.arange(B), Y[:, t]]))
    return loss / B, h, c, logits


def _state_parts(layout, state):
    return ([p[0] for p in layout.state_views(state)],
            [p[1] for p in layout.state_views(state)] if layout.state_parts == 2 else None)


CASES = [(cell, L) for cell in CELLS for L in DEPTHS]


@pytest.mark.parametrize("cell,L", CASES)
@pytest.mark.parametrize("dropout", [False, True])
def test_the_math_is_the_plain_per_step_loop(dtype, cell, L, dropout):
    B, T, H, V = 3, 5, 4, 6
    layout, theta = make_stack(cell, L, H, V, dtype, seed=10 * L)
    X, Y = make_ids(B, T, V, seed=L)
    h0 = make_state(layout, B, seed=L + 1)
    masks = make_masks(layout, B, T, 0.4, seed=L + 2) if dropout else None
    want, hw, cw, _ = plain_forward(layout, theta, X, Y, h0, masks)
    rtol, atol = _tol(dtype)
    L1, _, hlast = run_stack(NP, layout, theta, X, Y, h0, masks)
    assert L1 == pytest.approx(want, rel=rtol, abs=0)
    hs, cs = _state_parts(layout, hlast)
    for l in range(L):
        np.testing.assert_allclose(hs[l], hw[l], rtol=rtol, atol=atol, err_msg=f"h layer {l}")
        if cw is not None:
            np.testing.assert_allclose(cs[l], cw[l], rtol=rtol, atol=atol,
                                       err_msg=f"c layer {l}")
    if not dropout:
        L2 = NP.loss(layout, theta, X, Y, h0, np.empty_like(h0), Workspace.for_layout(
            layout, B, T))
        assert L2 == pytest.approx(want, rel=rtol, abs=0)


# ----------------------------------------------------------------------------- gradients

def _check_gradients(layout, theta, X, Y, h0, masks, seed):
    L, grad, _ = run_stack(NP, layout, theta, X, Y, h0, masks)
    assert np.all(np.isfinite(grad))
    rng = np.random.default_rng(seed)
    ws = Workspace.for_layout(layout, *X.shape)
    scratch = np.empty_like(h0)

    def loss_at(i, value):
        old = theta[i]
        theta[i] = value
        try:
            return NP.loss_and_grads(layout, theta, layout.zeros(), X, Y, h0, scratch, ws,
                                     masks)
        finally:
            theta[i] = old

    checked = 0
    for p in layout.params:
        g = grad[p.offset:p.offset + p.size]
        idx = set(rng.choice(p.size, min(6, p.size), replace=False).tolist())
        idx.add(int(np.argmax(np.abs(g))))
        for j in sorted(idx):
            i = p.offset + j
            n = (loss_at(i, theta[i] + EPS) - loss_at(i, theta[i] - EPS)) / (2 * EPS)
            assert abs(grad[i] - n) <= ATOL + RTOL * abs(n), \
                f"d{p.name}[{np.unravel_index(j, p.shape)}]: analytic {grad[i]!r}, numeric {n!r}"
            checked += 1
    assert checked >= len(layout.params)
    assert np.abs(grad).max() > 100 * ATOL                      # not vacuous


@pytest.mark.parametrize("cell", CELLS)
@pytest.mark.parametrize("L", [1, 2])
@pytest.mark.parametrize("dropout", [False, True])
@pytest.mark.parametrize("B,T,H,V", [(1, 1, 2, 3), (2, 5, 3, 4)])
def test_gradients_match_finite_differences(cell, L, dropout, B, T, H, V):
    seed = 100 * B + 10 * T + L
    layout, theta = make_stack(cell, L, H, V, np.float64, seed=seed)
    X, Y = make_ids(B, T, V, seed=seed + 1)
    h0 = make_state(layout, B, seed=seed + 2)
    masks = make_masks(layout, B, T, 0.3, seed=seed + 3) if dropout else None
    _check_gradients(layout, theta, X, Y, h0, masks, seed + 4)


@pytest.mark.parametrize("cell", CELLS)
def test_gradients_of_a_3_layer_stack(cell):
    layout, theta = make_stack(cell, 3, 3, 5, np.float64, seed=31)
    X, Y = make_ids(2, 4, 5, seed=32)
    h0 = make_state(layout, 2, seed=33)
    _check_gradients(layout, theta, X, Y, h0, make_masks(layout, 2, 4, 0.5, seed=34), 35)


@pytest.mark.parametrize("cell", CELLS)
def test_gradient_check_detects_a_wrong_gradient(cell):
    """Off by 1% in one entry of a recurrent matrix is caught."""
    layout, theta = make_stack(cell, 2, 3, 5, np.float64, seed=41)
    X, Y = make_ids(2, 5, 5, seed=42)
    h0 = make_state(layout, 2, seed=43)
    _, grad, _ = run_stack(NP, layout, theta, X, Y, h0)
    p = layout["Wh1"]
    i = p.offset + int(np.argmax(np.abs(grad[p.offset:p.offset + p.size])))
    ws, hl = Workspace.for_layout(layout, 2, 5), np.empty_like(h0)
    old = theta[i]
    theta[i] = old + EPS
    Lp = NP.loss(layout, theta, X, Y, h0, hl, ws)
    theta[i] = old - EPS
    Lm = NP.loss(layout, theta, X, Y, h0, hl, ws)
    theta[i] = old
    n = (Lp - Lm) / (2 * EPS)
    assert abs(grad[i] - n) <= ATOL + RTOL * abs(n)
    assert abs(grad[i] * 1.01 - n) > ATOL + RTOL * abs(n)


def test_a_mask_of_ones_is_no_dropout():
    """Masks of 1 compute exactly what no masks compute (the masked copies are exact)."""
    for cell in CELLS:
        layout, theta = make_stack(cell, 2, 4, 5, np.float64, seed=51)
        X, Y = make_ids(3, 4, 5, seed=52)
        h0 = make_state(layout, 3, seed=53)
        a = run_stack(NP, layout, theta, X, Y, h0)
        b = run_stack(NP, layout, theta, X, Y, h0, np.ones((2, 4, 3, 4)))
        assert a[0] == b[0]
        np.testing.assert_array_equal(a[1], b[1])
        np.testing.assert_array_equal(a[2], b[2])


# ----------------------------------------------------------------------------- PyTorch

@pytest.mark.skipif(importlib.util.find_spec("torch") is None, reason="torch is not installed")
@pytest.mark.parametrize("cell,L", CASES)
def test_forward_equals_pytorch(cell, L):
    """nn.RNN / nn.LSTM / nn.GRU + nn.Linear loaded with the layout's weights by their
    torch names (the bias_hh a single bias stands for: zero) give the same loss,
    probabilities and final state, to 1e-12 in float64."""
    import torch
    B, T, H, V = 3, 6, 5, 7
    layout, theta = make_stack(cell, L, H, V, np.float64, seed=60 + L, scale=3.0)
    X, Y = make_ids(B, T, V, seed=61)
    h0 = make_state(layout, B, seed=62)
    ws, hlast = Workspace.for_layout(layout, B, T), np.empty_like(h0)
    loss = NP.loss(layout, theta, X, Y, h0, hlast, ws)
    p = ws.zs[:T * B * V].reshape(T, B, V).copy()               # p - onehot(Y)
    p[np.arange(T)[:, None], np.arange(B), Y.T] += 1

    model = torch.nn.Module()
    model.rnn = {"rnn": torch.nn.RNN, "lstm": torch.nn.LSTM, "gru": torch.nn.GRU}[cell](
        V, H, L, dtype=torch.float64)
    model.decoder = torch.nn.Linear(H, V, dtype=torch.float64)
    state = {k: torch.zeros_like(v) for k, v in model.state_dict().items()}
    for param, view in zip(layout.params, layout.views(theta).values()):
        state[param.torch_name] = torch.from_numpy(view.copy())
    model.load_state_dict(state, strict=True)
    x = torch.nn.functional.one_hot(torch.from_numpy(X.T.astype(np.int64)), V).double()
    hs, cs = _state_parts(layout, h0)
    start = torch.from_numpy(np.stack(hs))
    if cell == "lstm":
        start = (start, torch.from_numpy(np.stack(cs)))
    with torch.no_grad():
        out, last = model.rnn(x, start)
        logits = model.decoder(out)                             # (T, B, V)
        want = torch.nn.functional.cross_entropy(
            logits.reshape(T * B, V), torch.from_numpy(Y.T.reshape(-1).astype(np.int64)),
            reduction="sum").item() / B
    assert loss == pytest.approx(want, rel=1e-12, abs=0)
    np.testing.assert_allclose(p, torch.softmax(logits, -1).numpy(), rtol=0, atol=1e-12)
    # the top layer's states: what the output layer read
    top = ws.hs[:L * (T + 1) * B * H].reshape(L, T + 1, B, H)[L - 1, 1:]
    np.testing.assert_allclose(top, out.numpy(), rtol=0, atol=1e-12)
    hl, cl = _state_parts(layout, hlast)
    last_h = last[0] if cell == "lstm" else last
    for l in range(L):
        np.testing.assert_allclose(hl[l], last_h[l].numpy(), rtol=0, atol=1e-12)
        if cell == "lstm":
            np.testing.assert_allclose(cl[l], last[1][l].numpy(), rtol=0, atol=1e-12)


# ----------------------------------------------------------------------------- chunks

@pytest.mark.parametrize("cell,L", CASES)
def test_chunks_carry_the_state(dtype, cell, L):
    """Two chunks of T, the second from the first's hlast, give the loss and the last state
    of one chunk of 2T (the forward pass is not truncated)."""
    B, T, H, V = 2, 4, 5, 7
    layout, theta = make_stack(cell, L, H, V, dtype, seed=70)
    X, Y = make_ids(B, 2 * T, V, seed=71)
    h0 = make_state(layout, B, seed=72)
    rtol, atol = (1e-12, 1e-14) if dtype == np.float64 else (1e-5, 1e-6)
    L12, _, h12 = run_stack(NP, layout, theta, X, Y, h0)
    L1, _, h1 = run_stack(NP, layout, theta, X[:, :T].copy(), Y[:, :T].copy(), h0)
    L2, _, h2 = run_stack(NP, layout, theta, X[:, T:].copy(), Y[:, T:].copy(), h1)
    assert L1 + L2 == pytest.approx(L12, rel=rtol)
    np.testing.assert_allclose(h2, h12, rtol=rtol, atol=atol)
    # the forward-only loss carries it the same way
    ws, hf = Workspace.for_layout(layout, B, 2 * T), h0.copy()
    Lf1 = NP.loss(layout, theta, X[:, :T].copy(), Y[:, :T].copy(), hf, hf, ws)
    Lf2 = NP.loss(layout, theta, X[:, T:].copy(), Y[:, T:].copy(), hf, hf, ws)
    assert Lf1 == L1 and Lf2 == L2
    np.testing.assert_array_equal(hf, h2)


@pytest.mark.parametrize("cell,L", CASES)
def test_loss_is_the_loss_of_loss_and_grads(dtype, cell, L):
    """The forward-only loss and hlast equal loss_and_grads' exactly, whatever the
    workspace held before, and in place (h0 is hlast)."""
    B, T, H, V = 3, 6, 4, 5
    layout, theta = make_stack(cell, L, H, V, dtype, seed=80)
    X, Y = make_ids(B, T, V, seed=81)
    h0 = make_state(layout, B, seed=82)
    want = run_stack(NP, layout, theta, X, Y, h0)
    ws = Workspace.for_layout(layout, B + 2, T + 3)
    for name in Workspace.BUFFERS:
        buf = getattr(ws, name)
        buf[:] = np.random.default_rng(0).standard_normal(buf.size) * 1e3
    hlast = np.empty_like(h0)
    assert NP.loss(layout, theta, X, Y, h0, hlast, ws) == want[0]
    np.testing.assert_array_equal(hlast, want[2])
    got = run_stack(NP, layout, theta, X, Y, h0, ws=ws)         # a dirty, larger workspace
    assert got[0] == want[0]
    np.testing.assert_array_equal(got[1], want[1])
    np.testing.assert_array_equal(got[2], want[2])
    h = h0.copy()
    grad = layout.zeros()
    assert NP.loss_and_grads(layout, theta, grad, X, Y, h, h, ws) == want[0]
    np.testing.assert_array_equal(h, want[2])
    np.testing.assert_array_equal(grad, want[1])


@pytest.mark.parametrize("cell", CELLS)
def test_inputs_are_not_modified(cell):
    layout, theta = make_stack(cell, 2, 4, 5, np.float64, seed=85)
    X, Y = make_ids(2, 3, 5, seed=86)
    h0 = make_state(layout, 2, seed=87)
    masks = make_masks(layout, 2, 3, 0.5, seed=88)
    before = [a.copy() for a in (theta, X, Y, h0, masks)]
    run_stack(NP, layout, theta, X, Y, h0, masks)
    NP.loss(layout, theta, X, Y, h0, np.empty_like(h0), Workspace.for_layout(layout, 2, 3))
    for a, b in zip((theta, X, Y, h0, masks), before):
        np.testing.assert_array_equal(a, b)


# ----------------------------------------------------------------------------- sampling

@pytest.mark.parametrize("cell,L", CASES)
def test_sampling_is_the_forward_pass(dtype, cell, L):
    """Each draw from a state is the inverse-CDF draw from the probabilities of the forward
    pass fed the previous draws, and the sampler leaves the state the forward pass ends in."""
    B, n, H, V = 3, 12, 5, 6
    layout, theta = make_stack(cell, L, H, V, dtype, seed=90, scale=3.0)
    h0 = make_state(layout, B, seed=91)
    first = np.arange(B, dtype=np.int32) % V
    U = np.random.default_rng(92).random((n, B))
    h = h0.copy()
    ids = NP.sample(layout, theta, h, first, U, 1.0)
    assert ids.shape == (n, B) and ids.dtype == np.int32
    X = np.ascontiguousarray(np.vstack([first, ids[:-1]]).T)    # (B, n): what was fed
    Y = np.ascontiguousarray(ids.T)
    ws, hlast = Workspace.for_layout(layout, B, n), np.empty_like(h0)
    NP.loss(layout, theta, X, Y, h0, hlast, ws)
    p = ws.zs[:n * B * V].reshape(n, B, V).astype(np.float64)
    p[np.arange(n)[:, None], np.arange(B), ids] += 1            # p, from p - onehot(Y)
    c = np.cumsum(p, axis=2)
    want = (c <= U[:, :, None] * c[:, :, -1:]).sum(axis=2)      # the first i: c[i] > u*c[-1]
    np.testing.assert_array_equal(ids, want)
    rtol, atol = (1e-12, 1e-14) if dtype == np.float64 else (1e-5, 1e-6)
    np.testing.assert_allclose(h, hlast, rtol=rtol, atol=atol)
    assert len(np.unique(ids)) > 2


@pytest.mark.parametrize("cell", CELLS)
def test_sampling_in_pieces_and_from_uniforms(cell):
    """Draws in two calls continue one call; the same uniforms give the same ids; no
    draws leave the state alone."""
    layout, theta = make_stack(cell, 2, 6, 8, np.float64, seed=95, scale=3.0)
    h0 = make_state(layout, 2, seed=96)
    first = np.array([1, 5], np.int32)
    U = np.random.default_rng(97).random((30, 2))
    h = h0.copy()
    ids = NP.sample(layout, theta, h, first, U, 0.9, 4)
    h2 = h0.copy()
    a = NP.sample(layout, theta, h2, first, U[:11].copy(), 0.9, 4)
    b = NP.sample(layout, theta, h2, a[-1].copy(), U[11:].copy(), 0.9, 4)
    np.testing.assert_array_equal(np.vstack([a, b]), ids)
    np.testing.assert_array_equal(h2, h)
    h3 = h0.copy()
    assert NP.sample(layout, theta, h3, first, np.empty((0, 2)), 1.0).shape == (0, 2)
    np.testing.assert_array_equal(h3, h0)


# ----------------------------------------------------------------------------- a whole step

@pytest.mark.parametrize("cell,L", [("rnn", 1), ("rnn", 2), ("lstm", 2), ("gru", 3)])
@pytest.mark.parametrize("dropout", [False, True])
def test_train_step_is_the_composed_step(dtype, cell, L, dropout):
    """train_step with masks computes what loss_and_grads with those masks, the norm and
    the update compute, bit for bit; the state is carried in place."""
    B, T, H, V = 2, 5, 4, 6
    layout, w = make_stack(cell, L, H, V, dtype, seed=100)
    X, Y = make_ids(B, T, V, seed=101)
    h = make_state(layout, B, seed=102)
    masks = make_masks(layout, B, T, 0.3, seed=103) if dropout else None
    runs = []
    for step in (NP.train_step, lambda *a: NP.composed_step(NP, *a)):
        args = [w.copy(), layout.zeros(), h.copy(), (np.full(layout.size, 0.1, dtype),)]
        r = step(layout, args[0], args[1], X, Y, args[2], Workspace.for_layout(layout, B, T),
                 "adagrad", args[3], 0.1, (1e-8,), 1.0, 2.0, masks)
        runs.append((r, args))
    (r1, a1), (r2, a2) = runs
    assert r1 == r2
    for x, y in zip(a1[:3] + list(a1[3]), a2[:3] + list(a2[3])):
        np.testing.assert_array_equal(x, y)
    L0, g0, h0 = run_stack(NP, layout, w, X, Y, h, masks)
    assert r1[0] == L0 and r1[1] == pytest.approx(np.sqrt(np.sum(g0.astype(float) ** 2)))
    np.testing.assert_array_equal(a1[2], h0)
    assert not np.array_equal(a1[0], w)
