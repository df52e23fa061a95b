"""The layout, workspace and dropout masks of LSTM, GRU and multi-layer models (design.md
section 2b): names, shapes, offsets, PyTorch names, the initialisation, the state columns,
the workspace's sizes, and bad arguments. The 1-layer RNN stays min-char-rnn's exactly.
"""

from __future__ import annotations

import math
import pickle

import numpy as np
import pytest

from charrnn import Workspace
from charrnn.dropout import dropout_masks
from charrnn.layout import CELLS, GATES, INPUT_STD, Layout, LayerParams
from conftest import CELLS as TEST_CELLS

DEPTHS = (1, 2, 3)


def expected_params(cell: str, L: int, H: int, V: int) -> list[tuple[str, tuple, str, str]]:
    """(name, shape, init, torch_name) in order, written out independently of the layout."""
    if cell == "rnn" and L == 1:
        return [("Wxh", (H, V), "randn*0.01", "rnn.weight_ih_l0"),
                ("Whh", (H, H), "randn*0.01", "rnn.weight_hh_l0"),
                ("Why", (V, H), "randn*0.01", "decoder.weight"),
                ("bh", (H,), "zeros", "rnn.bias_ih_l0"),
                ("by", (V,), "zeros", "decoder.bias")]
    G = {"rnn": 1, "lstm": 4, "gru": 3}[cell]
    out = []
    for l in range(L):
        out += [(f"Wx{l}", (G * H, V if l == 0 else H), "randn" if l == 0 else "uniform",
                 f"rnn.weight_ih_l{l}"),
                (f"Wh{l}", (G * H, H), "uniform", f"rnn.weight_hh_l{l}")]
        if cell == "gru":
            out += [(f"bx{l}", (G * H,), "uniform", f"rnn.bias_ih_l{l}"),
                    (f"bh{l}", (G * H,), "uniform", f"rnn.bias_hh_l{l}")]
        else:
            out += [(f"b{l}", (G * H,), "uniform+uniform", f"rnn.bias_ih_l{l}")]
    return out + [("Why", (V, H), "uniform", "decoder.weight"),
                  ("by", (V,), "uniform", "decoder.bias")]


# ----------------------------------------------------------------------------- the classic

@pytest.mark.parametrize("H,V", [(1, 1), (4, 5), (100, 65)])
def test_the_vanilla_1_layer_layout_is_unchanged(dtype, H, V):
    """Names, shapes, offsets, init and torch names: min-char-rnn's arithmetic, hard-coded."""
    layout = Layout(H, V, dtype)
    assert layout == Layout(H, V, dtype, "rnn", 1)
    assert [(p.name, p.shape, p.init, p.torch_name) for p in layout.params] == \
        expected_params("rnn", 1, H, V)
    assert layout.offsets.tolist() == [0, H * V, H * V + H * H, H * V + H * H + V * H,
                                       H * V + H * H + V * H + H]
    assert layout.size == H * V + H * H + V * H + H + V
    assert (layout.gates, layout.state_parts, layout.state_size) == (1, 1, H)
    assert layout.layers == (LayerParams("Wxh", "Whh", "bh", None),)
    # the state of B streams is the classic (B, H) h itself
    h = np.arange(3.0 * H).reshape(3, H).astype(dtype)
    (views,) = layout.state_views(h)
    assert len(views) == 1 and np.shares_memory(views[0], h)
    np.testing.assert_array_equal(views[0], h)
    # randn * 0.01 in order Wxh, Whh, Why; biases zero
    flat = layout.zeros()
    flat[:] = np.nan
    layout.init(flat, np.random.default_rng(7))
    rng = np.random.default_rng(7)
    want = np.concatenate([rng.standard_normal(H * V) * 0.01, rng.standard_normal(H * H) * 0.01,
                           rng.standard_normal(V * H) * 0.01, np.zeros(H + V)])
    assert flat.tobytes() == want.astype(dtype).tobytes()
    assert layout.views(flat)["Whh"].ctypes.data % 64 == 0


# ----------------------------------------------------------------------------- stacks

@pytest.mark.parametrize("cell", TEST_CELLS)
@pytest.mark.parametrize("L", DEPTHS)
def test_names_shapes_offsets_and_torch_names(dtype, cell, L):
    H, V = 6, 11
    layout = Layout(H, V, dtype, cell, L)
    assert [(p.name, p.shape, p.init, p.torch_name) for p in layout.params] == \
        expected_params(cell, L, H, V)
    offset = 0
    for p in layout.params:                                     # contiguous, in order
        assert p.offset == offset and layout[p.name] is p
        offset += math.prod(p.shape)
    assert layout.size == offset and layout.offsets.tolist() == [p.offset for p in layout.params]
    G = {"rnn": 1, "lstm": 4, "gru": 3}[cell]
    S = 2 if cell == "lstm" else 1
    assert (layout.gates, layout.state_parts, layout.state_size) == (G, S, L * S * H)
    assert len(layout.layers) == L
    for l, names in enumerate(layout.layers):
        if cell == "rnn" and L == 1:
            break
        assert names.Wx == f"Wx{l}" and names.Wh == f"Wh{l}"
        assert (names.bx, names.bh) == ((f"bx{l}", f"bh{l}") if cell == "gru" else (f"b{l}", None))
    # the views tile the vector, and the first layer's Wh starts on a 64-byte boundary
    flat = layout.zeros()
    flat[:] = np.arange(layout.size)
    views = layout.views(flat)
    np.testing.assert_array_equal(np.concatenate([v.ravel() for v in views.values()]), flat)
    assert views[layout.layers[0].Wh].ctypes.data % 64 == 0


def test_the_registries_agree():
    assert CELLS == TEST_CELLS and set(GATES) == set(CELLS)
    assert [GATES[c] for c in CELLS] == [1, 4, 3]


@pytest.mark.parametrize("cell", TEST_CELLS)
@pytest.mark.parametrize("L", DEPTHS)
def test_state_columns(cell, L):
    """Layer l's h is columns [l*S*H, l*S*H + H), an LSTM layer's c the next H."""
    H, B = 3, 2
    layout = Layout(H, 4, "float64", cell, L)
    S = layout.state_parts
    state = np.arange(B * layout.state_size, dtype=np.float64).reshape(B, layout.state_size)
    views = layout.state_views(state)
    assert len(views) == L
    for l, parts in enumerate(views):
        assert len(parts) == S
        for s, part in enumerate(parts):
            assert part.shape == (B, H) and np.shares_memory(part, state)
            np.testing.assert_array_equal(part, state[:, (l * S + s) * H:(l * S + s + 1) * H])


@pytest.mark.parametrize("cell,L", [("rnn", 2), ("lstm", 1), ("lstm", 2), ("gru", 1),
                                    ("gru", 2)])
@pytest.mark.parametrize("seed", (0, 5))
def test_initialisation_is_pytorchs(dtype, cell, L, seed):
    """Every entry uniform in [-1/sqrt(H), 1/sqrt(H)] drawn in parameter order; the one bias
    of an rnn or lstm layer the sum of two such draws (PyTorch's bias_ih + bias_hh); layer
    0's input weights N(0, 1). (The 1-layer RNN keeps the classic initialisation: the test
    above.)"""
    H, V = 9, 5
    layout = Layout(H, V, dtype, cell, L)
    flat = layout.zeros()
    flat[:] = np.nan
    layout.init(flat, np.random.default_rng(seed))
    rng = np.random.default_rng(seed)
    k = 1 / math.sqrt(H)
    views = layout.views(flat)
    for p in layout.params:
        if p.init == "randn":
            assert p.name == "Wx0"
            want = rng.standard_normal(p.shape) * INPUT_STD
        else:
            want = rng.uniform(-k, k, p.shape)
        if p.init == "uniform+uniform":
            want = want + rng.uniform(-k, k, p.shape)
        assert views[p.name].tobytes() == want.astype(dtype).tobytes(), p.name
    after = np.random.default_rng(seed)
    layout.init(layout.zeros(), after)
    assert after.standard_normal() == rng.standard_normal()    # advanced by exactly those
    rest = np.concatenate([views[p.name].ravel() for p in layout.params if p.name != "Wx0"])
    assert np.all(np.abs(rest) <= 2 * k) and np.all(np.isfinite(flat))


@pytest.mark.parametrize("cell", TEST_CELLS)
def test_equality_pickling_and_immutability(cell):
    a = Layout(4, 5, "float32", cell, 2)
    assert a == Layout(4, 5, "float32", cell, 2) and hash(a) == hash(Layout(4, 5, "float32",
                                                                           cell, 2))
    others = [Layout(4, 5, "float32", cell, 3), Layout(4, 5, "float32"), Layout(4, 5)]
    others += [Layout(4, 5, "float32", c, 2) for c in TEST_CELLS if c != cell]
    assert all(a != o for o in others)
    b = pickle.loads(pickle.dumps(a))
    assert b == a and b.offsets.tolist() == a.offsets.tolist() and b.layers == a.layers
    assert eval(repr(a), {"Layout": Layout}) == a
    for name in ("gates", "state_size", "layers", "cell", "num_layers"):
        with pytest.raises(AttributeError, match="immutable"):
            setattr(a, name, 1)
    assert not a.offsets.flags.writeable


@pytest.mark.parametrize("kw,exc", [
    ({"cell": "transformer"}, ValueError), ({"cell": "LSTM"}, ValueError),
    ({"cell": "gru "}, ValueError), ({"cell": None}, ValueError), ({"cell": 4}, ValueError),
    ({"num_layers": 0}, ValueError), ({"num_layers": -2}, ValueError),
    ({"num_layers": 2**31}, ValueError), ({"num_layers": 1.0}, TypeError),
    ({"num_layers": 2.5}, TypeError), ({"num_layers": "2"}, TypeError),
    ({"num_layers": True}, TypeError), ({"num_layers": None}, TypeError),
])
def test_bad_cell_or_depth(kw, exc):
    with pytest.raises(exc, match="cell|num_layers"):
        Layout(**{"hidden_size": 4, "vocab_size": 5, "cell": "lstm", "num_layers": 2, **kw})


@pytest.mark.parametrize("cell", TEST_CELLS)
def test_a_stack_too_large_for_32_bit_blas(cell):
    """The size counts every layer: refused before any list of parameters is built."""
    with pytest.raises(ValueError, match="too large for 32-bit"):
        Layout(1000, 65, "float32", cell, 1100)
    with pytest.raises(ValueError, match="too large for 32-bit"):
        Layout(2, 1, "float32", cell, 2**30)
    assert Layout(1000, 65, "float32", cell, 2).size < 2**31


# ----------------------------------------------------------------------------- workspace

@pytest.mark.parametrize("cell", TEST_CELLS)
@pytest.mark.parametrize("L", DEPTHS)
def test_workspace_sizes(cell, L):
    B, T, H, V = 3, 5, 4, 7
    layout = Layout(H, V, "float32", cell, L)
    ws = Workspace.for_layout(layout, B, T)
    G = layout.gates
    want = {"hs": L * (T + 1) * B * H, "zs": T * B * V, "dhs": L * T * B * H,
            "dhnext": B * H, "cs": L * (T + 1) * B * H if cell == "lstm" else 0,
            "dcnext": B * H if cell == "lstm" else 0,
            "acts": L * T * B * G * H if cell != "rnn" else 0,
            "ahs": L * T * B * G * H if cell == "gru" else 0, "ins": L * T * B * H}
    assert {name: getattr(ws, name).size for name in Workspace.BUFFERS} == want
    for name in Workspace.BUFFERS:
        a = getattr(ws, name)
        assert a.dtype == np.float32 and a.flags.c_contiguous
        assert a.size == 0 or a.ctypes.data % 64 == 0, name
    assert (ws.cell, ws.num_layers) == (cell, L)
    assert ws.fits(B, T, H, V, "float32", cell, L)
    assert ws.fits(B - 1, T - 2, H, V, "float32", cell, L)             # a smaller chunk
    assert ws.fits(B, T, H, V, "float32", cell, max(L - 1, 1))
    assert not ws.fits(B, T, H, V, "float64", cell, L)
    assert not ws.fits(B, T + 1, H, V, "float32", cell, L)
    assert not ws.fits(B, T, H, V, "float32", cell, L + 1)
    if cell != "lstm":
        assert not ws.fits(B, T, H, V, "float32", "lstm", L)           # no c buffers
    assert Workspace(B, T, H, V, "float32", cell, L).fits(B, T, H, V, "float32", cell, L)
    assert repr(ws) == (f"Workspace(B={B}, T={T}, H={H}, V={V}, dtype=float32, "
                        f"cell={cell!r}, num_layers={L})")


def test_the_classic_workspace_is_unchanged():
    """Workspace(B, T, H, V) as before: hs, zs, dhs, dhnext of the same sizes."""
    B, T, H, V = 2, 3, 4, 5
    ws = Workspace(B, T, H, V)
    assert (ws.hs.size, ws.zs.size, ws.dhs.size, ws.dhnext.size) == \
        ((T + 1) * B * H, T * B * V, T * B * H, B * H)
    assert ws.fits(B, T, H, V, "float64") and ws.fits(B, T, H, V, np.float64, "rnn", 1)
    assert not ws.fits(B, T, H, V, "float64", "rnn", 2)


@pytest.mark.parametrize("kw,exc", [({"cell": "lstmx"}, ValueError), ({"cell": None}, ValueError),
                                    ({"num_layers": 0}, ValueError),
                                    ({"dtype": "float16"}, TypeError)])
def test_bad_workspace(kw, exc):
    with pytest.raises(exc):
        Workspace(**{"B": 2, "T": 3, "H": 4, "V": 5, **kw})


# ----------------------------------------------------------------------------- dropout masks

@pytest.mark.parametrize("cell", TEST_CELLS)
@pytest.mark.parametrize("p", [0.1, 0.5])
def test_dropout_masks(dtype, cell, p):
    layout = Layout(8, 5, dtype, cell, 2)
    B, T = 6, 40
    m = dropout_masks(layout, B, T, p, np.random.default_rng(0))
    assert m.shape == (2, T, B, 8) and m.dtype == dtype and m.flags.c_contiguous
    scale = dtype.type(1 / (1 - p))
    assert set(np.unique(m).tolist()) == {0.0, float(scale)}
    assert abs(np.mean(m == 0) - p) < 0.05                     # 3840 draws
    # reproducible; the same units dropped in both dtypes; into a given array
    again = dropout_masks(layout, B, T, p, np.random.default_rng(0))
    assert again.tobytes() == m.tobytes()
    other = Layout(8, 5, "float32" if dtype == np.float64 else "float64", cell, 2)
    np.testing.assert_array_equal(dropout_masks(other, B, T, p, np.random.default_rng(0)) == 0,
                                  m == 0)
    out = np.empty_like(m)
    assert dropout_masks(layout, B, T, p, np.random.default_rng(0), out=out) is out
    assert out.tobytes() == m.tobytes()


def test_no_dropout_is_none_and_draws_nothing():
    rng = np.random.default_rng(1)
    assert dropout_masks(Layout(3, 4), 2, 5, 0, rng) is None
    assert dropout_masks(Layout(3, 4), 2, 5, 0.0, rng) is None
    assert rng.standard_normal() == np.random.default_rng(1).standard_normal()


@pytest.mark.parametrize("p,exc", [(1.0, ValueError), (-0.1, ValueError), (1.5, ValueError),
                                   (math.nan, ValueError), ("0.2", TypeError), (None, TypeError),
                                   (True, TypeError)])
def test_bad_dropout_rate(p, exc):
    with pytest.raises(exc, match="dropout"):
        dropout_masks(Layout(3, 4), 2, 5, p, np.random.default_rng(0))


def test_bad_mask_output():
    layout = Layout(3, 4, "float64", "lstm", 2)
    for out in (np.empty((2, 5, 2, 3), np.float32), np.empty((2, 5, 2, 4)),
                np.empty((2, 2, 5, 3)).transpose(0, 2, 1, 3), [0.0]):
        with pytest.raises(ValueError, match="out must be"):
            dropout_masks(layout, 2, 5, 0.5, np.random.default_rng(0), out=out)
