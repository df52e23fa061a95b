"""The benchmark's peers and bounds for LSTM, GRU and stacks (design.md section 2b): the
PyTorch peer computes charrnn's model and loss convention, the BLAS-shape bound lists the
products the section fixes, and the suite runs cases of every cell.

The math is checked against a plain per-step loop written here in NumPy, independent of
the peer and of the package, and against the package's NumPy reference kernels. Torch
tests skip when torch is not installed.
"""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest

import charrnn
from charrnn.kernels import reference
from charrnn.layout import Layout
from charrnn.workspace import Workspace
from conftest import BENCH_DIR
from conftest import benchmark_module as _import

pytestmark = pytest.mark.skipif(not (BENCH_DIR / "bound.py").is_file(),
                                reason="benchmarks/ is not beside the tests")

GATES = {"rnn": 1, "lstm": 4, "gru": 3}


def _peer():
    torch_peer = _import("torch_peer")
    if not torch_peer.available():
        pytest.skip(torch_peer.IMPORT_ERROR)
    return torch_peer


# ----------------------------------------------------------------------------- a plain loop

def _sig(x):
    return 1 / (1 + np.exp(-x))


def plain_loss(cell, W, X, Y, h0, c0=None):
    """charrnn's loss of a chunk, one step and one layer at a time, float64.

    W: PyTorch's names (weight_ih_l{l}, weight_hh_l{l}, bias_ih_l{l}, bias_hh_l{l},
    weight, bias) to arrays; X, Y (B, T) ids; h0, c0 (L, B, H). Layer 0's input product is
    a column gather. Returns (L = sum_t mean_b -log p, h_T, c_T).
    """
    B, T = X.shape
    L = h0.shape[0]
    h, c = [x.copy() for x in h0], None if c0 is None else [x.copy() for x in c0]
    loss = 0.0
    for t in range(T):
        for l in range(L):
            Wih, Whh = W[f"weight_ih_l{l}"], W[f"weight_hh_l{l}"]
            H = Whh.shape[1]
            ax = (Wih[:, X[:, t]].T if l == 0 else h[l - 1] @ Wih.T) + W[f"bias_ih_l{l}"]
            ah = h[l] @ Whh.T + W[f"bias_hh_l{l}"]
            if cell == "rnn":
                h[l] = np.tanh(ax + ah)
            elif cell == "lstm":
                a = ax + ah
                i, f = _sig(a[:, :H]), _sig(a[:, H:2 * H])
                g, o = np.tanh(a[:, 2 * H:3 * H]), _sig(a[:, 3 * H:])
                c[l] = f * c[l] + i * g
                h[l] = o * np.tanh(c[l])
            else:
                r = _sig(ax[:, :H] + ah[:, :H])
                z = _sig(ax[:, H:2 * H] + ah[:, H:2 * H])
                n = np.tanh(ax[:, 2 * H:] + r * ah[:, 2 * H:])
                h[l] = (1 - z) * n + z * h[l]
        zt = h[-1] @ W["weight"].T + W["bias"]                  # (B, V)
        zt = zt - zt.max(axis=1, keepdims=True)
        logp = zt - np.log(np.exp(zt).sum(axis=1, keepdims=True))
        loss -= logp[np.arange(B), Y[:, t]].sum() / B
    return loss, np.stack(h), None if c is None else np.stack(c)


def _chunk(B=3, T=6, V=7, seed=0):
    rng = np.random.default_rng(seed)
    return rng.integers(0, V, (B, T)), rng.integers(0, V, (B, T))


@pytest.mark.parametrize("cell", ["rnn", "lstm", "gru"])
@pytest.mark.parametrize("L", [1, 2])
def test_torch_peer_loss_is_the_plain_loop(cell, L):
    """The peer's chunk loss (one-hot input, sum over T, mean over B) and final state equal
    the plain per-step loop's, float64, to 1e-10."""
    torch_peer = _peer()
    torch = torch_peer.torch
    B, T, H, V = 3, 6, 5, 7
    rnn, out = torch_peer.make_model(V, H, "float64", seed=4, cell=cell, num_layers=L)
    X, Y = _chunk(B, T, V)
    rng = np.random.default_rng(1)
    h0 = rng.standard_normal((L, B, H)) * 0.5
    c0 = rng.standard_normal((L, B, H)) * 0.5 if cell == "lstm" else None
    state = torch.from_numpy(h0) if c0 is None else (torch.from_numpy(h0),
                                                     torch.from_numpy(c0))
    with torch.no_grad():
        loss, last = torch_peer.chunk_loss(rnn, out, torch.from_numpy(X.T.copy()),
                                           torch.from_numpy(Y.T.copy()), state)
    W = {k: v.numpy() for k, v in rnn.state_dict().items()}
    W.update({k: v.numpy() for k, v in out.state_dict().items()})
    ref, h, c = plain_loss(cell, W, X, Y, h0, c0)
    assert loss.item() == pytest.approx(ref, rel=1e-10)
    got_h = last[0] if cell == "lstm" else last
    np.testing.assert_allclose(got_h.numpy(), h, rtol=1e-10, atol=1e-12)
    if cell == "lstm":
        np.testing.assert_allclose(last[1].numpy(), c, rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("cell", ["rnn", "lstm", "gru"])
def test_torch_peer_computes_charrnns_loss_and_gradients(cell):
    """A 2-layer model's weights loaded into the peer by the layout's PyTorch names: the
    same loss, final state and gradients as charrnn's NumPy reference kernels; and
    ``CharRNN.from_torch_state`` of the peer's ``state_dict`` gives the weights back."""
    torch_peer = _peer()
    torch = torch_peer.torch
    B, T, H, V, L = 3, 5, 6, 7, 2
    layout = Layout(H, V, "float64", cell, L)
    theta = layout.zeros()
    layout.init(theta, np.random.default_rng(2))
    X, Y = (x.astype(np.int32) for x in _chunk(B, T, V, seed=3))
    h0 = np.random.default_rng(4).standard_normal((B, layout.state_size)) * 0.3
    grad, hlast = layout.zeros(), np.empty_like(h0)
    ref = reference.loss_and_grads(layout, theta, grad, X, Y, h0, hlast,
                                   Workspace.for_layout(layout, B, T))

    rnn, out = torch_peer.make_model(V, H, "float64", cell=cell, num_layers=L)
    torch_peer.load_params(rnn, out, layout, theta)
    parts = layout.state_views(h0)                              # per layer (h,) or (h, c)
    state = torch.from_numpy(np.stack([p[0] for p in parts]))
    if cell == "lstm":
        state = (state, torch.from_numpy(np.stack([p[1] for p in parts])))
    loss, last = torch_peer.chunk_loss(rnn, out, torch.from_numpy(X.T.astype(np.int64)),
                                       torch.from_numpy(Y.T.astype(np.int64)), state)
    loss.backward()
    assert loss.item() == pytest.approx(ref, rel=1e-12)
    want = layout.state_views(hlast)
    for l in range(L):
        got = (last[0][l], last[1][l]) if cell == "lstm" else (last[l],)
        for g, w in zip(got, want[l]):
            np.testing.assert_allclose(g.detach().numpy(), w, rtol=1e-10, atol=1e-13)
    modules = {"rnn": rnn, "decoder": out}
    G = layout.views(grad)
    for p in layout.params:
        module, attr = p.torch_name.split(".")
        np.testing.assert_allclose(getattr(modules[module], attr).grad.numpy(), G[p.name],
                                   rtol=1e-9, atol=1e-13, err_msg=p.name)
    back = charrnn.CharRNN.from_torch_state(torch_peer.state_dict(rnn, out),
                                            "ABCDEFG", "float64", backend="numpy")
    assert back.layout == layout
    for name, w in layout.views(theta).items():
        np.testing.assert_array_equal(back.params[name], w, err_msg=name)


def test_textbook_model_is_scored_as_it_computes():
    """torch_quality's textbook model (nn.Embedding -> nn.LSTM -> nn.Linear) becomes the
    CharRNN it is scored as (the embedding folded into layer 0): the same loss."""
    torch_peer = _peer()
    torch, nn = torch_peer.torch, torch_peer.nn
    torch_quality = _import("torch_quality")
    B, T, H, V = 2, 4, 5, 6
    torch.manual_seed(0)
    encoder = nn.Embedding(V, H)
    rnn = torch_peer.recurrent("lstm", H, H, 2, dropout=0.3)
    out = nn.Linear(H, V)
    for m in (encoder, rnn, out):
        m.double().eval()
    X, Y = _chunk(B, T, V, seed=5)
    with torch.no_grad():
        hs, _ = rnn(encoder(torch.from_numpy(X.T.copy())), torch_peer.zero_state(rnn, B))
        want = torch.nn.functional.cross_entropy(
            out(hs).reshape(T * B, V), torch.from_numpy(Y.T.copy()).reshape(-1),
            reduction="sum") / B
    model = torch_quality.to_charrnn(rnn, out, "abcdef", encoder, backend="numpy")
    assert (model.layout.cell, model.layout.num_layers) == ("lstm", 2)
    got, _ = model.loss(X, Y)
    assert got == pytest.approx(want.item(), rel=1e-5)        # (a float32 CharRNN)


@pytest.mark.parametrize("L", [1, 2])
def test_peer_dropout_is_charrnns_training_only(L):
    """With dropout p the training loss is random (one layer: the mask before the output
    layer alone) and evaluation is the p = 0 model's."""
    torch_peer = _peer()
    torch = torch_peer.torch
    B, T, H, V = 4, 5, 8, 6
    X, Y = (torch.from_numpy(x.T.copy()) for x in _chunk(B, T, V, seed=6))
    rnn, out = torch_peer.make_model(V, H, "float64", cell="gru", num_layers=L, dropout=0.5)
    plain, pout = torch_peer.make_model(V, H, "float64", cell="gru", num_layers=L)
    assert rnn.dropout == 0.5 and plain.dropout == 0.0
    with torch.no_grad():
        ref, _ = torch_peer.chunk_loss(plain, pout, X, Y, torch_peer.zero_state(plain, B))
        a, _ = torch_peer.chunk_loss(rnn, out, X, Y, torch_peer.zero_state(rnn, B))
        b, _ = torch_peer.chunk_loss(rnn, out, X, Y, torch_peer.zero_state(rnn, B))
        rnn.eval()
        e, _ = torch_peer.chunk_loss(rnn, out, X, Y, torch_peer.zero_state(rnn, B))
    assert a.item() != b.item() and a.item() != ref.item()
    assert e.item() == ref.item()


@pytest.mark.parametrize("cell", ["lstm", "gru"])
def test_peer_workloads_run(cell):
    torch_peer = _peer()
    w = torch_peer.TorchTrain(2, 8, 5, 11, "float32", cell=cell, num_layers=2, dropout=0.1,
                              windows=2)
    w.run(3)                                    # past the end of the windows: a new pass
    assert np.isfinite(w.last_loss) and w.chars_per_call == 10
    s = torch_peer.TorchSample(8, 11, "float32", n_chars=7, cell=cell, num_layers=2)
    ids = s.sample(7)
    assert ids.shape == (7,) and 0 <= int(ids.min()) and int(ids.max()) < 11
    h = s.h[0] if cell == "lstm" else s.h
    assert tuple(h.shape) == (2, 1, 8)


# ----------------------------------------------------------------------------- the bound

def _flops(B, H, T, V, G, L):
    """A training step's BLAS flops by design.md section 2b: per layer T recurrence and
    T-1 BPTT products of 2*B*G*H*H and dWh (2*G*H*H*T*B); per layer above the first the
    input GEMM, dWx and the input gradient (2*T*B*G*H*H each); the output layer's three
    GEMMs (2*T*B*H*V each)."""
    GHH = G * H * H
    return (L * (2 * B * GHH * T + 2 * B * GHH * (T - 1) + 2 * GHH * T * B)
            + (L - 1) * 3 * 2 * T * B * GHH + 3 * 2 * T * B * H * V)


@pytest.mark.parametrize("cell", ["rnn", "lstm", "gru"])
@pytest.mark.parametrize("L", [1, 2, 3])
@pytest.mark.parametrize("B", [1, 4])
def test_train_products_count_and_flops(cell, L, B):
    bound = _import("bound")
    G, H, T, V = GATES[cell], 8, 5, 7
    ps = bound.train_products(B, H, T, V, cell, L)
    assert len(ps) == 6 * L                     # 3 per layer, 3 more above the first, 3 out
    assert sum(p.count for p in ps) == L * (2 * T) + 3 * (L - 1) + 3
    assert sum(p.count * p.flops for p in ps) == _flops(B, H, T, V, G, L)
    assert {p.kind for p in ps if p.count == T} == {"gemv" if B == 1 else "gemm"}
    assert all(p.kind == "gemm" for p in ps if p.count == 1)
    # layer 0's input weights are never a BLAS operand (a gather, and a scatter-add)
    assert not {"Wxh", "Wx0", "dWxh", "dWx0"} & {n for p in ps for n in (p.A, p.B, p.C)}
    bound.StepOperands(ps, "float32")           # every buffer has one shape
    fwd = bound.forward_products(B, H, T, V, cell, L)
    assert [p.role for p in fwd] == [p.role for p in ps[:len(fwd)]] and len(fwd) == 2 * L
    assert len(bound.train_products(B, H, 1, V, cell, L)) == 5 * L    # T = 1: no BPTT


@pytest.mark.parametrize("cell", ["rnn", "lstm", "gru"])
@pytest.mark.parametrize("L", [1, 2])
@pytest.mark.parametrize("B", [1, 3])
def test_sample_products_count_and_flops(cell, L, B):
    bound = _import("bound")
    G, H, V = GATES[cell], 8, 7
    ps = bound.sample_products(H, V, B, cell, L)
    assert len(ps) == 2 * L and all(p.count == 1 for p in ps)
    assert sum(p.flops for p in ps) == 2 * B * (G * H * H * (2 * L - 1) + V * H)
    assert {p.kind for p in ps} == {"gemv" if B == 1 else "gemm"}
    bound.StepOperands(ps, "float64")


@pytest.mark.parametrize("cell", ["lstm", "gru"])
@pytest.mark.parametrize("B", [1, 3])
def test_bound_calls_compute_the_cells_products(cell, B):
    """Each scipy call of a 2-layer cell's bound computes its row-major product."""
    bound = _import("bound")
    products = bound.train_products(B, 6, 3, 5, cell, 2) + bound.sample_products(6, 5, B,
                                                                                cell, 2)
    for p in products:
        ops = bound.StepOperands([p], "float64", seed=1)
        A, X, C0 = ops.buf[p.A], ops.buf[p.B], ops.buf[p.C].copy()
        product = (A.T if p.transA else A) @ ((X.T if p.transB else X)
                                              if p.kind == "gemm" else X)
        ops.call(p)()
        np.testing.assert_allclose(ops.buf[p.C], product + p.beta * C0, rtol=1e-12,
                                   atol=1e-15, err_msg=p.role)


def test_vanilla_bound_is_unchanged():
    """The 1-layer vanilla RNN's products, operands and order as before the cells."""
    bound = _import("bound")
    B, H, T, V = 4, 8, 5, 7
    N = T * B
    rows = [(p.role, p.kind, p.transA, p.transB, p.M, p.N, p.K, p.beta, p.count, p.A, p.B,
             p.C) for p in bound.train_products(B, H, T, V)]
    assert rows == [
        ("forward recurrence h += hprev @ Whh.T", "gemm", False, True, B, H, H, 1.0, T,
         "hprev", "Whh", "h"),
        ("output Z += Hs @ Why.T", "gemm", False, True, N, V, H, 1.0, 1, "Hs", "Why", "Z"),
        ("dWhy = dZ.T @ Hs", "gemm", True, False, V, H, N, 0.0, 1, "Z", "Hs", "dWhy"),
        ("dH = dZ @ Why", "gemm", False, False, N, H, V, 0.0, 1, "Z", "Why", "dH"),
        ("BPTT dhnext = da @ Whh", "gemm", False, False, B, H, H, 0.0, T - 1, "da", "Whh",
         "dhnext"),
        ("dWhh = dA.T @ Hprev", "gemm", True, False, H, H, N, 0.0, 1, "dH", "Hs", "dWhh")]
    one = bound.train_products(1, H, T, V)
    assert [(p.role, p.kind, p.transA, p.M, p.N, p.count, p.A, p.B, p.C) for p in one
            if p.kind == "gemv"] == [
        ("forward recurrence h += Whh @ hprev", "gemv", False, H, H, T, "Whh", "hprev", "h"),
        ("BPTT dhnext = Whh.T @ da", "gemv", True, H, H, T - 1, "Whh", "da", "dhnext")]
    assert [(p.role, p.kind, p.A, p.B, p.C) for p in bound.sample_products(H, V)] == [
        ("recurrence h += Whh @ hprev", "gemv", "Whh", "hprev", "h"),
        ("logits z += Why @ h", "gemv", "Why", "h", "z")]
    assert bound.train_products(B, H, T, V) == bound.train_products(B, H, T, V, "rnn", 1)


def test_bound_refuses_an_unknown_cell():
    bound = _import("bound")
    with pytest.raises(ValueError, match="cell"):
        bound.train_products(2, 4, 3, 5, "transformer")


# ----------------------------------------------------------------------------- the suite

def test_suite_runs_cases_of_every_cell(tmp_path):
    """A smoke run with LSTM and GRU stacks: every case names its model and is timed
    against that model's bound; the classic is skipped, charrnn measured or skipped with
    a reason."""
    pytest.importorskip("threadpoolctl")
    r = subprocess.run([sys.executable, str(BENCH_DIR / "run.py"), "--smoke", "--quiet",
                        "--out", str(tmp_path), "--cells", "lstm", "gru", "--num-layers",
                        "2", "--dropout", "0.2", "--configs", "2,8,4", "--dtypes",
                        "float32", "--no-api", "--alloc", "--quality-steps", "0",
                        "--no-plot"], cwd=tmp_path, capture_output=True, text=True,
                       timeout=300)
    assert r.returncode == 0, r.stderr
    res = json.loads((tmp_path / "results.json").read_text())
    models = [(c["cell"], c["num_layers"]) for c in res["train"]]
    assert models == [("lstm", 2), ("gru", 2)]
    assert [(c["cell"], c["num_layers"]) for c in res["sample"]] == models
    for c in res["train"] + res["sample"]:
        assert len(c["bound"]["products"]) == (12 if c["task"] == "train" else 4)
        assert c["skipped"]["classic"]
        for impl in ("compiled", "numpy", "torch"):
            assert (impl in c["results"]) != (impl in c["skipped"]), impl
    for c in res["train"]:
        assert c["dropout"] == 0.2
    md = (tmp_path / "results.md").read_text()
    assert "| 2,8,4 lstm×2 | float32 | 1 |" in md and "| 1,8,– gru×2 | float32 | 1 |" in md
