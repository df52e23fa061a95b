"""CharRNN's public API: initialisation, the params mapping, loss_and_grads forms, bad input."""

from __future__ import annotations

import math
from collections.abc import Mapping

import numpy as np
import pytest

import charrnn
from charrnn import CharRNN, Vocab

NAMES = ("Wxh", "Whh", "Why", "bh", "by")
TEXT = "the quick brown fox jumps over the lazy dog"


def _model(backend="numpy", dtype="float64", H=16, seed=0, text=TEXT):
    return CharRNN(Vocab.from_text(text), hidden_size=H, dtype=dtype, seed=seed, backend=backend)


# ----------------------------------------------------------------------------- init

@pytest.mark.parametrize("H", [1, 7, 100])
def test_shapes_and_dtype(dtype, H):
    m = _model(dtype=dtype, H=H)
    V = len(Vocab.from_text(TEXT))
    assert m.hidden_size == H and m.vocab_size == V
    assert tuple(m.params) == NAMES
    want = {"Wxh": (H, V), "Whh": (H, H), "Why": (V, H), "bh": (H,), "by": (V,)}
    for k, shape in want.items():
        assert m.params[k].shape == shape
        assert m.params[k].dtype == dtype
    assert m.theta.dtype == dtype and m.theta.ndim == 1
    assert m.theta.size == m.num_params == sum(int(np.prod(s)) for s in want.values())


def test_layout_is_the_models(dtype):
    """The model's layout names its flat vectors: params and grads are its views."""
    from charrnn.layout import Layout
    m = _model(dtype=dtype, H=9)
    assert m.layout == Layout(9, m.vocab_size, dtype)
    assert m.layout.dtype == m.dtype and m.layout.size == m.theta.size == m.grad.size
    assert m.layout.names == NAMES == tuple(m.params) == tuple(m.grads)
    for name, p in m.layout.views(m.theta).items():
        assert m.params[name].shape == p.shape
        assert m.params[name].ctypes.data == p.ctypes.data
    for name, g in m.layout.views(m.grad).items():
        assert m.grads[name].ctypes.data == g.ctypes.data
    with pytest.raises(AttributeError):
        m.layout.hidden_size = 3                                 # immutable


def test_seed_determinism(dtype):
    a, b, c = _model(dtype=dtype, seed=3), _model(dtype=dtype, seed=3), _model(dtype=dtype, seed=4)
    np.testing.assert_array_equal(a.theta, b.theta)
    assert not np.array_equal(a.theta, c.theta)
    for k in NAMES[:3]:
        assert not np.array_equal(a.params[k], c.params[k])


def test_init_scale_is_the_classic():
    """Weights randn * 0.01, biases zero."""
    m = CharRNN(Vocab("".join(chr(32 + i) for i in range(65))), hidden_size=100, seed=1)
    for k in ("Wxh", "Whh", "Why"):
        w = m.params[k]
        assert abs(w.std() - 0.01) < 0.0005, (k, w.std())       # 6500-10000 draws: <3%
        assert abs(w.mean()) < 0.0005
        assert np.abs(w).max() < 0.06                            # no 6-sigma outliers
    assert not m.params["bh"].any() and not m.params["by"].any()
    # three independent draws, not one array reused
    assert not np.allclose(m.params["Wxh"][:, :65][:65], m.params["Whh"][:65, :65])


def test_initial_loss_is_log_V(backend):
    """With weights ~0.01 every character is about equally likely: L / T ~ ln V."""
    m = _model(backend)
    ids = m.vocab.encode(TEXT)
    loss, _, _ = m.loss_and_grads(ids[:-1], ids[1:])
    assert loss / (len(ids) - 1) == pytest.approx(math.log(m.vocab_size), rel=0.01)


# ----------------------------------------------------------------------------- params

def test_params_is_a_read_only_mapping_of_writable_views(dtype):
    m = _model(dtype=dtype)
    p = m.params
    assert isinstance(p, Mapping)
    with pytest.raises(TypeError):
        p["Wxh"] = np.zeros_like(p["Wxh"])
    with pytest.raises(TypeError):
        del p["bh"]
    with pytest.raises((TypeError, AttributeError)):
        p.update({"bh": 0})                                     # no mutating methods
    # the arrays are views into the flat theta, laid out in NAMES order
    np.testing.assert_array_equal(np.concatenate([p[k].ravel() for k in NAMES]), m.theta)
    for k in NAMES:
        assert np.shares_memory(p[k], m.theta)
        assert p[k].flags.writeable and p[k].flags.c_contiguous
    # writing through a view changes theta and the model's output
    x, y = m.vocab.encode("tttt"), m.vocab.encode("hhhh")
    L0, _, _ = m.loss_and_grads(x, y)
    ih = int(m.vocab.encode("h")[0])
    p["by"][ih] += 3.0
    assert m.theta[m.theta.size - m.vocab_size + ih] == pytest.approx(3.0)
    L1, _, _ = m.loss_and_grads(x, y)
    assert L1 < L0 - 3                                          # "h" is now much likelier
    # and writing theta shows through the views
    m.theta[:] = 0
    assert not any(p[k].any() for k in NAMES)


def test_grads_property_views(backend):
    m = _model(backend)
    for k in NAMES:
        assert np.shares_memory(m.grads[k], m.grad)
        assert m.grads[k].shape == m.params[k].shape
    with pytest.raises(TypeError):
        m.grads["Wxh"] = None


# ----------------------------------------------------------------------------- loss_and_grads

def test_one_d_and_two_d_forms_agree(backend, dtype):
    m = _model(backend, dtype)
    H = m.hidden_size
    ids = m.vocab.encode(TEXT)
    x, y = ids[:-1], ids[1:]
    hprev = np.tanh(np.random.default_rng(0).standard_normal(H)).astype(dtype)
    L1, G1, h1 = m.loss_and_grads(x, y, hprev)
    L2, G2, h2 = m.loss_and_grads(x[None, :], y[None, :], hprev[None, :])
    assert isinstance(L1, float)
    assert h1.shape == (H,) and h2.shape == (1, H)
    assert h1.dtype == dtype
    assert L1 == L2
    np.testing.assert_array_equal(h1, h2[0])
    for k in NAMES:
        np.testing.assert_array_equal(G1[k], G2[k])
    # python lists and other integer dtypes are the same ids
    L3, _, h3 = m.loss_and_grads(x.tolist(), y.astype(np.int64).tolist(), hprev.tolist())
    assert L3 == pytest.approx(L1, rel=1e-12 if dtype == np.float64 else 1e-6)
    np.testing.assert_allclose(h3, h1, rtol=1e-12 if dtype == np.float64 else 1e-6)


def test_hprev_none_is_zeros(backend):
    m = _model(backend)
    ids = m.vocab.encode(TEXT)
    X = np.stack([ids[:10], ids[5:15]])
    Y = np.stack([ids[1:11], ids[6:16]])
    L1, G1, h1 = m.loss_and_grads(X, Y)
    L2, G2, h2 = m.loss_and_grads(X, Y, np.zeros((2, m.hidden_size)))
    assert L1 == L2 and h1.shape == (2, m.hidden_size)
    np.testing.assert_array_equal(h1, h2)
    L3, _, h3 = m.loss_and_grads(ids[:10], ids[1:11])
    assert h3.shape == (m.hidden_size,)


def test_grads_are_copies_keyed_like_params(backend, dtype):
    m = _model(backend, dtype)
    ids = m.vocab.encode(TEXT)
    _, G, _ = m.loss_and_grads(ids[:20], ids[1:21])
    assert tuple(G) == tuple(m.params)
    for k in NAMES:
        assert G[k].shape == m.params[k].shape and G[k].dtype == dtype
        assert not np.shares_memory(G[k], m.grad)
        assert not np.shares_memory(G[k], m.theta)
    kept = {k: v.copy() for k, v in G.items()}
    G["Wxh"][...] = 123.0                                       # the caller may scribble
    _, G2, _ = m.loss_and_grads(ids[5:25], ids[6:26])           # another call
    for k in NAMES:
        if k != "Wxh":
            np.testing.assert_array_equal(G[k], kept[k])        # old result untouched
    assert not np.any(G2["Wxh"] == 123.0)
    assert not np.array_equal(G2["Why"], kept["Why"])


def test_grads_are_raw_not_clipped(backend):
    """T = 30 steps all with target 'a': dby['a'] is about -30, far beyond the clip of 5."""
    m = _model(backend)
    a = m.vocab.encode("a")[0]
    L, G, _ = m.loss_and_grads(np.full(30, a), np.full(30, a))
    assert G["by"][a] < -25
    assert np.abs(G["by"]).max() > 5


def test_forward_loss_agrees(backend, dtype):
    m = _model(backend, dtype)
    ids = m.vocab.encode(TEXT)
    h0 = np.full(m.hidden_size, 0.1, dtype)
    L, G, h = m.loss_and_grads(ids[:-1], ids[1:], h0)
    L2, h2 = m.loss(ids[:-1], ids[1:], h0)
    assert L2 == pytest.approx(L, rel=1e-12)
    np.testing.assert_allclose(h2, h, rtol=1e-12)


def test_inputs_not_modified(backend):
    m = _model(backend)
    ids = m.vocab.encode(TEXT).astype(np.int32)
    x, y = ids[:-1].copy(), ids[1:].copy()
    hprev = np.full(m.hidden_size, 0.2)
    keep = (x.copy(), y.copy(), hprev.copy(), m.theta.copy())
    m.loss_and_grads(x, y, hprev)
    m.loss(x, y, hprev)
    for a, b in zip((x, y, hprev, m.theta), keep):
        np.testing.assert_array_equal(a, b)


def test_workspace_is_reused_for_smaller_chunks():
    m = _model()
    ws = m.workspace(4, 25)
    assert m.workspace(2, 10) is ws
    assert m.workspace(4, 25) is ws
    assert m.workspace(5, 25) is not ws


# ----------------------------------------------------------------------------- bad input

def _bad_call(m, case):
    H, V = m.hidden_size, m.vocab_size
    x = np.arange(6) % V
    y = (np.arange(6) + 1) % V
    h = None
    if case == "inputs None":
        x = None
    elif case == "targets None":
        y = None
    elif case == "float ids":
        x = x.astype(float)
    elif case == "bool ids":
        x = x > 2
    elif case == "str ids":
        x = "abcdef"
    elif case == "object ids":
        x = np.array([0, 1, None, 3, 4, 5], dtype=object)
    elif case == "3-D ids":
        x, y = x.reshape(1, 2, 3), y.reshape(1, 2, 3)
    elif case == "empty":
        x, y = np.zeros(0, int), np.zeros(0, int)
    elif case == "ragged":
        x = [[0, 1], [2]]
    elif case == "shape mismatch":
        y = y[:5]
    elif case == "1-D vs 2-D":
        y = y[None, :]
    elif case == "hprev wrong H":
        h = np.zeros(H + 1)
    elif case == "hprev 2-D for 1-D ids":
        h = np.zeros((1, H))
    elif case == "hprev 1-D for 2-D ids":
        x, y, h = np.stack([x, x]), np.stack([y, y]), np.zeros(H)
    elif case == "hprev wrong B":
        x, y, h = np.stack([x, x]), np.stack([y, y]), np.zeros((3, H))
    elif case == "hprev nan":
        h = np.full(H, np.nan)
    elif case == "hprev str":
        h = np.array(["a"] * H)
    return x, y, h


BAD = [("inputs None", TypeError), ("targets None", TypeError), ("float ids", TypeError),
       ("bool ids", TypeError), ("str ids", TypeError), ("object ids", TypeError),
       ("3-D ids", ValueError), ("empty", ValueError), ("ragged", ValueError),
       ("shape mismatch", ValueError), ("1-D vs 2-D", ValueError),
       ("hprev wrong H", ValueError), ("hprev 2-D for 1-D ids", ValueError),
       ("hprev 1-D for 2-D ids", ValueError), ("hprev wrong B", ValueError),
       ("hprev nan", ValueError), ("hprev str", TypeError)]


@pytest.mark.parametrize("case,exc", BAD, ids=[c for c, _ in BAD])
def test_bad_input_raises(backend, case, exc):
    m = _model(backend, H=5)
    x, y, h = _bad_call(m, case)
    theta = m.theta.copy()
    with pytest.raises(exc):
        m.loss_and_grads(x, y, h)
    with pytest.raises(exc):
        m.loss(x, y, h)
    np.testing.assert_array_equal(m.theta, theta)


def test_out_of_range_ids_name_the_position(backend):
    m = _model(backend, H=4)
    V = m.vocab_size
    x = np.zeros(8, int)
    x[5] = V
    with pytest.raises(ValueError, match=rf"inputs\[5\] = {V} is not a valid id in \[0, {V}\)"):
        m.loss_and_grads(x, np.zeros(8, int))
    Y = np.zeros((3, 4), int)
    Y[2, 1] = -1
    with pytest.raises(ValueError, match=r"targets\[2, 1\] = -1"):
        m.loss_and_grads(np.zeros((3, 4), int), Y)


@pytest.mark.parametrize("kwargs,exc", [
    (dict(hidden_size=0), ValueError), (dict(hidden_size=-3), ValueError),
    (dict(hidden_size=2.5), TypeError), (dict(hidden_size=True), TypeError),
    (dict(hidden_size="100"), TypeError), (dict(dtype="int32"), TypeError),
    (dict(dtype="float16"), TypeError), (dict(dtype="bogus"), TypeError),
    (dict(backend="gpu"), ValueError)])
def test_constructor_bad_arguments(kwargs, exc):
    with pytest.raises(exc):
        CharRNN(Vocab.from_text("abc"), **kwargs)


@pytest.mark.parametrize("vocab,exc", [(5, TypeError), (None, TypeError), ("", ValueError),
                                       ("aa", ValueError), (["a", "b"], TypeError)])
def test_constructor_bad_vocab(vocab, exc):
    with pytest.raises(exc):
        CharRNN(vocab, hidden_size=3)


def test_constructor_accepts_chars_and_numpy_ints():
    m = CharRNN("cab", hidden_size=np.int64(4), dtype=np.float32)
    assert m.vocab == Vocab("abc") and m.hidden_size == 4 and m.dtype == np.float32
    assert charrnn.CharRNN(Vocab("ab")).hidden_size == 100      # the classic default


@pytest.mark.parametrize("dtype", ["float64", "float32"])
@pytest.mark.parametrize("H,V", [(100, 65), (7, 5), (1, 1)])
def test_whh_and_the_workspace_start_on_64_byte_boundaries(dtype, H, V):
    """OpenBLAS's small GEMVs are about 20% slower on a matrix that does not start on a
    32-byte boundary (benchmarks/gemv_alignment.py): Whh, read twice per character, and
    the scratch buffers are placed on 64-byte ones, whatever malloc returns."""
    for _ in range(5):
        m = CharRNN("abcdefghijklmnopqrstuvwxyz"[:V] if V <= 26 else
                    "".join(chr(32 + i) for i in range(V)), H, dtype)
        for a in (m.params["Whh"], m.grads["Whh"]):
            assert a.__array_interface__["data"][0] % 64 == 0
        ws = m.workspace(2, 3)
        for a in (ws.hs, ws.zs, ws.dhs, ws.dhnext):
            assert a.__array_interface__["data"][0] % 64 == 0
        assert m.theta.flags.c_contiguous and m.theta.size == m.num_params
