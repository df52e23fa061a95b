"""Bad arguments to the kernels of LSTM, GRU and multi-layer models: states of the wrong
shape, dropout masks of the wrong shape, dtype or memory, workspaces sized for another
model. Each raises ValueError or TypeError before anything is written, from both twins
with the same words (the checks both share; the compiled kernels' own C checks send
whatever they refuse there).
"""

from __future__ import annotations

import numpy as np
import pytest

import charrnn
from charrnn import Workspace
from charrnn.kernels import reference as NP
from charrnn.layout import Layout
from conftest import CELLS, make_ids, make_masks, make_stack, make_state

B, T, H, V = 2, 3, 4, 5


def grads_args(cell="lstm", L=2, dtype=np.float64, masks=True) -> dict:
    layout, theta = make_stack(cell, L, H, V, dtype, seed=1)
    X, Y = make_ids(B, T, V)
    h0 = make_state(layout, B)
    grad = layout.zeros()
    grad[:] = np.nan
    return {"layout": layout, "theta": theta, "grad": grad, "X": X, "Y": Y, "h0": h0,
            "hlast": np.full_like(h0, np.nan), "ws": Workspace.for_layout(layout, B, T),
            "masks": make_masks(layout, B, T) if masks else None}


def step_args(cell="lstm", L=2, dtype=np.float64, masks=True) -> dict:
    a = grads_args(cell, L, dtype, masks)
    return {"layout": a["layout"], "w": a["theta"], "g": a["grad"], "X": a["X"], "Y": a["Y"],
            "h": a["h0"], "ws": a["ws"], "rule": "adagrad",
            "state": (np.full(a["layout"].size, 0.1, dtype),), "lr": 0.1, "hyper": (1e-8,),
            "clip": 5.0, "max_norm": np.inf, "masks": a["masks"]}


def snapshot(a: dict) -> dict:
    return {k: v.copy() for k, v in a.items() if isinstance(v, np.ndarray)} | {
        f"state{i}": s.copy() for i, s in enumerate(a.get("state", ()))}


def unchanged(a: dict, before: dict) -> None:
    now = snapshot(a)
    for k, v in before.items():
        np.testing.assert_array_equal(now[k], v, err_msg=k)


def _set(key, value):
    return lambda a: a.__setitem__(key, value(a))


# (label, exception, message pattern, mutation) for loss_and_grads and train_step alike
# (train_step names the state h)
BAD = [
    ("state of one layer", ValueError, r"h0? must have shape \(2, 16\)",
     _set("h0", lambda a: np.zeros((B, H)))),
    ("state without c", ValueError, r"h0? must have shape \(2, 16\)",
     _set("h0", lambda a: np.zeros((B, 2 * H)))),
    ("state 1-D", ValueError, "must have shape", _set("h0", lambda a: np.zeros(4 * H))),
    ("state other dtype", TypeError, "dtype float64",
     _set("h0", lambda a: a["h0"].astype(np.float32))),
    ("masks other dtype", TypeError, "masks must have dtype float64",
     _set("masks", lambda a: a["masks"].astype(np.float32))),
    ("masks int", TypeError, "masks must have dtype",
     _set("masks", lambda a: (a["masks"] > 0).astype(np.int64))),
    ("masks a list", TypeError, "masks must be a numpy.ndarray",
     _set("masks", lambda a: a["masks"].tolist())),
    ("masks 3-D", ValueError, "masks must be 4-D", _set("masks", lambda a: a["masks"][0].copy())),
    ("masks one layer short", ValueError, r"masks must have shape \(2, 3, 2, 4\)",
     _set("masks", lambda a: a["masks"][:1].copy())),
    ("masks of another chunk", ValueError, r"masks must have shape \(2, 3, 2, 4\)",
     _set("masks", lambda a: np.ones((2, T + 1, B, H)))),
    ("masks (L, B, T, H)", ValueError, r"masks must have shape",
     _set("masks", lambda a: np.ones((2, B, T, H)))),
    ("masks not contiguous", ValueError, "masks must be C-contiguous",
     _set("masks", lambda a: np.ones((2, T, B, 2 * H))[..., ::2])),
    ("masks in the gradient", ValueError, "overlaps",
     _set("masks", lambda a: a["grad"][:2 * T * B * H].reshape(2, T, B, H))),
    ("masks in the workspace", ValueError, "overlaps|workspace",
     _set("masks", lambda a: a["ws"].hs[:2 * T * B * H].reshape(2, T, B, H))),
    ("masks in ws.ins", ValueError, "overlaps|workspace",
     _set("masks", lambda a: a["ws"].ins[:2 * T * B * H].reshape(2, T, B, H))),
    ("workspace of the classic model", ValueError, "does not fit.*cell='lstm'",
     _set("ws", lambda a: Workspace(B, T, H, V))),
    ("workspace of one layer", ValueError, "does not fit",
     _set("ws", lambda a: Workspace(B, T, H, V, "float64", "lstm", 1))),
]
STEP_NAMES = {"h0": "h", "theta": "w", "grad": "g"}


def _message(K, fn, *args):
    """The exception ``fn`` of kernel module K raises on ``args``."""
    with pytest.raises((ValueError, TypeError)) as e:
        getattr(K, fn)(*args)
    return e.value


@pytest.mark.parametrize("label,exc,match,mutate", BAD, ids=[b[0] for b in BAD])
def test_loss_and_grads_refuses(kernels, label, exc, match, mutate):
    a = grads_args()
    mutate(a)
    before = snapshot(a)
    with pytest.raises(exc, match=match) as e:
        kernels.loss_and_grads(*a.values())
    unchanged(a, before)
    # the same words from both twins
    ref = _message(NP, "loss_and_grads", *a.values())
    assert type(e.value) is type(ref) and str(e.value) == str(ref)


@pytest.mark.parametrize("label,exc,match,mutate", BAD, ids=[b[0] for b in BAD])
def test_train_step_refuses(kernels, label, exc, match, mutate):
    g = grads_args()
    mutate(g)
    a = step_args()
    for key in ("h0", "masks", "ws", "grad", "theta"):
        a[STEP_NAMES.get(key, key)] = g[key]
    before = snapshot(a)
    with pytest.raises(exc, match=match.replace("h0?", "h")) as e:
        kernels.train_step(*a.values())
    unchanged(a, before)
    ref = _message(NP, "train_step", *a.values())
    assert type(e.value) is type(ref) and str(e.value) == str(ref)


def test_hlast_of_the_wrong_shape_or_over_the_masks(kernels):
    a = grads_args()
    a["hlast"] = np.zeros((B, H))
    with pytest.raises(ValueError, match=r"hlast must have shape \(2, 16\)"):
        kernels.loss_and_grads(*a.values())
    a = grads_args()
    big = np.zeros(a["masks"].size + a["h0"].size)
    a["masks"] = big[:a["masks"].size].reshape(a["masks"].shape)
    n = a["masks"].size - 8                                     # the last 8 masks in hlast
    a["hlast"] = big[n:n + a["h0"].size].reshape(a["h0"].shape)
    with pytest.raises(ValueError, match="hlast overlaps input masks"):
        kernels.loss_and_grads(*a.values())


@pytest.mark.parametrize("cell", CELLS)
def test_loss_and_sample_refuse_a_state_of_another_layout(kernels, cell):
    layout, theta = make_stack(cell, 2, H, V, seed=3)
    X, Y = make_ids(B, T, V)
    ws = Workspace.for_layout(layout, B, T)
    wrong = np.zeros((B, layout.state_size + H))
    with pytest.raises(ValueError, match="h0 must have shape"):
        kernels.loss(layout, theta, X, Y, wrong, np.zeros_like(wrong), ws)
    with pytest.raises(ValueError, match=rf"h must have shape \(B, {layout.state_size}\)"):
        kernels.sample(layout, theta, wrong, X[:, 0].copy(), np.zeros((3, B)), 1.0)
    with pytest.raises(TypeError):
        kernels.sample(layout, theta, np.zeros((B, layout.state_size), np.float32),
                       X[:, 0].copy(), np.zeros((3, B)), 1.0)


def test_a_masked_step_on_the_classic_layout_is_fine(kernels):
    """Dropout on the output layer's input of a 1-layer RNN: masks (1, T, B, H)."""
    a = grads_args("rnn", 1)
    assert a["layout"] == Layout(H, V) and a["masks"].shape == (1, T, B, H)
    assert np.isfinite(kernels.loss_and_grads(*a.values()))
    assert np.all(np.isfinite(a["grad"]))


# ----------------------------------------------------------------------------- compiled

# aliasing that only the compiled kernels' C checks see first: each must reach the shared
# checks and come back with their words, nothing written
def _half_over_h0(a):
    """h0 and hlast two views of one buffer, 4 values apart."""
    n = a["h0"].size
    buf = np.zeros(n + 4, a["h0"].dtype)
    buf[:n] = a["h0"].ravel()
    a["h0"] = buf[:n].reshape(a["h0"].shape)
    a["hlast"] = buf[4:].reshape(a["h0"].shape)


def _in(a, key, buffer):
    """a[key] replaced by a view of the same shape into ``buffer``."""
    x = a[key]
    a[key] = buffer.view(x.dtype)[:x.size].reshape(x.shape)


ALIASES = [
    ("hlast over theta", lambda a: _in(a, "hlast", a["theta"])),
    ("hlast half over h0", _half_over_h0),
    ("grad is theta", lambda a: a.__setitem__("grad", a["theta"])),
    ("h0 in ws.hs", lambda a: _in(a, "h0", a["ws"].hs)),
    ("hlast in ws.ins", lambda a: _in(a, "hlast", a["ws"].ins)),
    ("masks in ws.dhs", lambda a: _in(a, "masks", a["ws"].dhs)),
    ("X in ws.zs", lambda a: _in(a, "X", a["ws"].zs)),
]


@pytest.mark.parametrize("cell", CELLS)
@pytest.mark.parametrize("L", [1, 2])
@pytest.mark.parametrize("label,mutate", ALIASES, ids=[x[0] for x in ALIASES])
def test_aliasing_is_refused_with_the_same_words(compiled, cell, L, label, mutate):
    a = grads_args(cell, L)
    mutate(a)
    before = snapshot(a)
    ref = _message(NP, "loss_and_grads", *a.values())
    unchanged(a, before)
    got = _message(compiled, "loss_and_grads", *a.values())
    assert type(got) is type(ref) and str(got) == str(ref)
    unchanged(a, before)


@pytest.mark.parametrize("cell,L", [("lstm", 1), ("lstm", 2), ("gru", 1), ("gru", 2),
                                    ("rnn", 2), ("rnn", 3)])
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_the_compiled_kernels_compute_every_model(compiled, cell, L, dtype):
    """Every model, with dropout, and the NumPy twin's numbers (test_cells_parity.py
    holds them to it over a grid)."""
    a = grads_args(cell, L, dtype)
    g = a["grad"].copy()
    L1 = compiled.loss_and_grads(*a.values())
    L2 = NP.loss_and_grads(*(dict(a, grad=g)).values())
    assert L1 == pytest.approx(L2, rel=1e-5 if dtype == np.float32 else 1e-10)
    assert np.all(np.isfinite(a["grad"]))
    s = step_args(cell, L, dtype)
    assert np.isfinite(compiled.train_step(*s.values())[0])


def test_the_twins_take_masks_by_keyword(backend):
    K = charrnn.get_kernels(backend)
    a = grads_args("rnn", 1, masks=False)
    masks = a.pop("masks")
    assert np.isfinite(K.loss_and_grads(**a, masks=masks))
    s = step_args("rnn", 1, masks=False)
    s.pop("masks")
    assert np.isfinite(K.train_step(**s, masks=None)[0])


@pytest.mark.parametrize("cell", ["lstm", "gru"])
def test_a_chunk_too_large_for_32_bit_blas(kernels, cell):
    """B*T and every array fit in 2**31, but the (T*B, G*H) gate block would not (the
    (T*B, V) logits would): refused before anything is read or written."""
    layout = Layout(2**9, 2, "float32", cell, 2)               # G*H = 2**11 or 3 * 2**9
    T = 2**31 // (layout.gates * 2**9) + 1
    X = np.zeros((1, T), np.int32)
    h = np.zeros((1, layout.state_size), np.float32)
    ws = Workspace.for_layout(layout, 1, 1)
    theta = layout.zeros()
    with pytest.raises(ValueError, match="too large for 32-bit BLAS"):
        kernels.loss(layout, theta, X, X, h, h, ws)
    with pytest.raises(ValueError, match="too large for 32-bit BLAS"):
        kernels.loss_and_grads(layout, theta, layout.zeros(), X, X, h, h, ws)
    with pytest.raises(ValueError, match="too large for 32-bit BLAS"):
        kernels.train_step(layout, theta, layout.zeros(), X, X, h, ws, "sgd", (), 0.1, (),
                           5.0, np.inf)
