"""The whole-step kernel ``train_step``: forward, BPTT, norm, clip and update in one call.

It must compute exactly what the separate kernels compute (``composed_step``, its
definition), on both backends; leave the parameters and the optimizer state alone when the
loss or the norm is not finite; and answer bad arguments with the same exception type on
both backends before writing anything.
"""

from __future__ import annotations

import math

import numpy as np
import pytest

import charrnn
from charrnn import Workspace
from charrnn.kernels import reference as NP
from charrnn.kernels.rules import RULES as RULE_TABLE
from charrnn.layout import Layout
from charrnn.optim import clip_args, clip_bounds, make_optimizer
from conftest import assert_close_to_ref, compiled_kernels

H, V, T = 7, 5, 4
RULES = ("sgd", "adagrad", "rmsprop", "adam")
HYPER = {"sgd": (), "adagrad": (1e-8,), "rmsprop": (0.9, 1e-8), "adam": (0.9, 0.999, 1e-8, 3)}
CLIPS = {"value": (0.05, math.inf), "norm": (math.inf, 0.05), "none": (math.inf, math.inf)}


def make_args(rule: str, dtype, B: int = 2, seed: int = 0) -> dict:
    """Valid arguments of ``train_step``, in signature order; the weights at the scale of
    a trained model, so the gradient is large enough for both clip kinds to act."""
    rng = np.random.default_rng(seed)
    layout = Layout(H, V, dtype)
    n = layout.size
    w = (rng.standard_normal(n) * 0.5).astype(dtype)
    state = tuple(np.abs(rng.standard_normal(n)).astype(dtype) * 0.01
                  for _ in RULE_TABLE[rule].states)
    return {"layout": layout, "w": w, "g": np.full(n, np.nan, dtype),
            "X": rng.integers(0, V, (B, T)).astype(np.int32),
            "Y": rng.integers(0, V, (B, T)).astype(np.int32),
            "h": (rng.standard_normal((B, H)) * 0.5).astype(dtype),
            "ws": Workspace(B, T, H, V, dtype), "rule": rule, "state": state,
            "lr": 0.05, "hyper": HYPER[rule], "clip": 5.0, "max_norm": math.inf}


def copy_args(a: dict) -> dict:
    out = {k: (v.copy() if isinstance(v, np.ndarray) else v) for k, v in a.items()}
    out["state"] = tuple(s.copy() for s in a["state"])
    out["ws"] = Workspace(a["X"].shape[0], T, H, V, a["w"].dtype)
    return out


def written(a: dict) -> dict:
    """What a step writes: w, g, h and the state."""
    return {"w": a["w"].copy(), "g": a["g"].copy(), "h": a["h"].copy(),
            **{f"state{i}": s.copy() for i, s in enumerate(a["state"])}}


def same_bytes(x: dict, y: dict) -> bool:
    return x.keys() == y.keys() and all(x[k].tobytes() == y[k].tobytes() for k in x)


# ----------------------------------------------------------------------------- the same function

@pytest.mark.parametrize("rule", RULES)
@pytest.mark.parametrize("clip", CLIPS)
@pytest.mark.parametrize("B", [1, 3])
def test_equals_the_separate_kernels_bit_for_bit(kernels, dtype, rule, clip, B):
    """The fused call and composed_step over the same backend's separate kernels agree
    to the last bit (the compiled one shares their C code; the twin is the composition)."""
    a = make_args(rule, dtype, B)
    a["clip"], a["max_norm"] = CLIPS[clip]
    fused, sep = copy_args(a), copy_args(a)
    r1 = kernels.train_step(*fused.values())
    r2 = NP.composed_step(kernels, *sep.values())
    assert r1 == r2 and all(math.isfinite(x) for x in r1)
    assert same_bytes(written(fused), written(sep))
    assert not same_bytes(written(fused), written(a))          # it did update


@pytest.mark.parametrize("rule", RULES)
@pytest.mark.parametrize("clip", CLIPS)
def test_compiled_matches_the_numpy_twin(dtype, rule, clip):
    C = compiled_kernels()
    a = make_args(rule, dtype, B=3)
    a["clip"], a["max_norm"] = CLIPS[clip]
    c, n = copy_args(a), copy_args(a)
    Lc, normc = C.train_step(*c.values())
    Ln, normn = NP.train_step(*n.values())
    f64 = np.dtype(dtype) == np.float64
    tol = dict(rtol=1e-10, atol_frac=1e-10) if f64 else dict(rtol=1e-4, atol_frac=1e-5)
    np.testing.assert_allclose([Lc, normc], [Ln, normn], rtol=1e-10 if f64 else 1e-5)
    for k, v in written(n).items():
        assert_close_to_ref(k, written(c)[k], v, **tol)


def test_the_clip_kinds_act(kernels):
    """Element-wise clipping and norm clipping each change the update (the bounds in
    CLIPS are below the gradient's largest entry and its norm)."""
    results = {}
    for kind, (clip, max_norm) in CLIPS.items():
        a = copy_args(make_args("sgd", np.float64))
        a["clip"], a["max_norm"] = clip, max_norm
        _, norm = kernels.train_step(*a.values())
        assert norm > 0.05
        results[kind] = a["w"]
    assert not np.array_equal(results["value"], results["none"])
    assert not np.array_equal(results["norm"], results["none"])
    assert not np.array_equal(results["norm"], results["value"])


def test_the_state_is_carried_in_place(kernels, dtype):
    """h goes in as h_0 and comes out as h_T, as loss_and_grads gives it."""
    a = make_args("adagrad", dtype)
    ref = copy_args(a)
    hlast = np.empty_like(a["h"])
    kernels.loss_and_grads(ref["layout"], ref["w"], ref["g"], ref["X"], ref["Y"], ref["h"],
                           hlast, ref["ws"])
    kernels.train_step(*a.values())
    assert a["h"].tobytes() == hlast.tobytes()


def test_optimizer_train_step_is_the_classic_loop(kernels, dtype):
    """Optimizer.train_step over five steps gives the trajectory of loss_and_grads +
    clip_args + Optimizer.step, bit for bit, and counts its updates."""
    for name in RULES:
        for kind in ("value", "norm", None):
            models = [charrnn.CharRNN("abcde", H, dtype, seed=3, backend=kernels.NAME)
                      for _ in range(2)]
            opts = [make_optimizer(name, models[0].num_params, dtype) for _ in range(2)]
            hs = [np.zeros((2, H), dtype) for _ in range(2)]
            rng = np.random.default_rng(4)
            for _ in range(5):
                X = rng.integers(0, V, (2, T)).astype(np.int32)
                Y = rng.integers(0, V, (2, T)).astype(np.int32)
                L1, n1 = opts[0].train_step(models[0], X, Y, hs[0], kind, 0.5)
                m = models[1]
                L2 = m._loss_and_grads(X, Y, hs[1], hs[1])[0]
                n2, clip, scale = clip_args(kernels, m.grad, kind, 0.5)
                opts[1].step(kernels, m.theta, m.grad, clip, scale)
                assert (L1, n1) == (L2, n2)
            assert models[0].theta.tobytes() == models[1].theta.tobytes()
            assert hs[0].tobytes() == hs[1].tobytes()
            assert opts[0].t == opts[1].t == 5
            for s in opts[0].slots:
                assert opts[0].state[s].tobytes() == opts[1].state[s].tobytes()


def test_clip_bounds():
    assert clip_bounds("value", 5.0) == (5.0, math.inf)
    assert clip_bounds("norm", 5.0) == (math.inf, 5.0)
    assert clip_bounds(None, 5.0) == (math.inf, math.inf)
    with pytest.raises(ValueError, match="clip kind"):
        clip_bounds("global", 5.0)


# ----------------------------------------------------------------------------- divergence

@pytest.mark.parametrize("what", ["loss", "grad"])
@pytest.mark.parametrize("rule", RULES)
def test_no_update_when_the_loss_or_the_norm_is_not_finite(kernels, dtype, rule, what):
    a = make_args(rule, dtype)
    if what == "loss":
        a["w"][-1] = np.nan                     # a NaN in by: loss and gradient NaN
    else:
        a["h"][0, 0] = np.inf                   # tanh saturates (loss finite); dWhh is not
    before = written(a)
    with np.errstate(all="ignore"):                 # the twin's NumPy would warn
        L, norm = kernels.train_step(*a.values())
    assert math.isfinite(L) == (what == "grad")
    assert not math.isfinite(norm)
    after = written(a)
    for k in ["w"] + [k for k in before if k.startswith("state")]:
        assert after[k].tobytes() == before[k].tobytes(), k


def test_a_diverged_step_does_not_count(kernels):
    model = charrnn.CharRNN("abcde", H, backend=kernels.NAME)
    opt = make_optimizer("adam", model.num_params, model.dtype)
    model.params["by"][0] = np.nan
    X = np.zeros((1, T), np.int32)
    with np.errstate(all="ignore"):
        L, _ = opt.train_step(model, X, X, np.zeros((1, H)), "norm", 5.0)
    assert math.isnan(L) and opt.t == 0


# ----------------------------------------------------------------------------- bad input

def _bad_cases(dtype):
    """(label, mutate(args), expected exception): every argument wrong in some way."""
    other = np.float32 if np.dtype(dtype) == np.float64 else np.float64

    def setter(key, value):
        def f(a):
            a[key] = value(a) if callable(value) else value
        return f

    def state_item(i, value):
        def f(a):
            s = list(a["state"])
            s[i] = value(a)
            a["state"] = tuple(s)
        return f

    return [
        ("rule unknown", setter("rule", "lbfgs"), ValueError),
        ("rule not a str", setter("rule", 1), ValueError),
        # the layout replaces the argument H: H zero or huge is a Layout that cannot be
        # built (test_layout.py); here a layout that is none, or does not fit the vectors
        ("layout None", setter("layout", None), TypeError),
        ("layout a tuple", setter("layout", (H, V)), TypeError),
        ("layout an int", setter("layout", H), TypeError),
        ("layout other dtype", setter("layout", Layout(H, V, other)), TypeError),
        ("layout of another H", setter("layout", Layout(H - 1, V, dtype)), ValueError),
        ("layout of another V", setter("layout", Layout(H, V + 1, dtype)), ValueError),
        ("layout of a V below the ids", _smaller_vocabulary, ValueError),
        ("state too short", setter("state", ()), ValueError),
        ("state not a sequence", setter("state", None), TypeError),
        ("hyper too long", setter("hyper", lambda a: a["hyper"] + (1.0,)), ValueError),
        ("hyper not a sequence", setter("hyper", 1e-8), TypeError),
        ("hyper not finite", setter("hyper", lambda a: (math.nan,) + a["hyper"][1:]),
         ValueError),
        ("hyper a str", setter("hyper", lambda a: ("x",) + a["hyper"][1:]), TypeError),
        ("lr not finite", setter("lr", math.inf), ValueError),
        ("clip zero", setter("clip", 0.0), ValueError),
        ("max_norm zero", setter("max_norm", 0.0), ValueError),
        ("max_norm NaN", setter("max_norm", math.nan), ValueError),
        ("w 2-D", setter("w", lambda a: a["w"].reshape(1, -1)), ValueError),
        ("w other dtype", setter("w", lambda a: a["w"].astype(other)), TypeError),
        ("w float16", setter("w", lambda a: a["w"].astype(np.float16)), TypeError),
        ("w a list", setter("w", lambda a: a["w"].tolist()), TypeError),
        ("w strided", setter("w", lambda a: np.repeat(a["w"], 2)[::2]), ValueError),
        ("w read-only", setter("w", lambda a: _read_only(a["w"])), ValueError),
        ("g read-only", setter("g", lambda a: _read_only(a["g"])), ValueError),
        ("g other dtype", setter("g", lambda a: a["g"].astype(other)), TypeError),
        ("g short", setter("g", lambda a: a["g"][:-1].copy()), ValueError),
        ("g is w", setter("g", lambda a: a["w"]), ValueError),
        ("state read-only", state_item(0, lambda a: _read_only(a["state"][0])), ValueError),
        ("state short", state_item(0, lambda a: a["state"][0][:-1].copy()), ValueError),
        ("state other dtype", state_item(0, lambda a: a["state"][0].astype(other)),
         TypeError),
        ("state is w", state_item(0, lambda a: a["w"]), ValueError),
        ("state is g", state_item(0, lambda a: a["g"]), ValueError),
        ("state in ws.hs", state_item(0, _in_workspace), ValueError),
        ("state holds h", state_item(0, lambda a: _holding(a, "h")), ValueError),
        ("X out of range", setter("X", lambda a: a["X"] + V), ValueError),
        ("X int64", setter("X", lambda a: a["X"].astype(np.int64)), TypeError),
        ("Y other shape", setter("Y", lambda a: a["Y"][:, :-1].copy()), ValueError),
        ("h other shape", setter("h", lambda a: a["h"][:, :-1].copy()), ValueError),
        ("h read-only", setter("h", lambda a: _read_only(a["h"])), ValueError),
        ("h is in w", setter("h", lambda a: a["w"][:a["h"].size].reshape(a["h"].shape)),
         ValueError),
        ("ws not a Workspace", setter("ws", None), TypeError),
        ("ws too small", setter("ws", lambda a: Workspace(1, 1, H, V, dtype)), ValueError),
        ("ws other dtype", setter("ws", lambda a: Workspace(2, T, H, V, other)), ValueError),
    ]


def _smaller_vocabulary(a):
    """A layout of V - 2 with every vector resized to it: only the ids (X holds V - 1)
    no longer fit."""
    layout = Layout(H, V - 2, a["layout"].dtype)
    rng = np.random.default_rng(1)
    a["layout"] = layout
    a["w"] = (rng.standard_normal(layout.size) * 0.5).astype(layout.dtype)
    a["g"] = np.zeros(layout.size, layout.dtype)
    a["state"] = tuple(np.zeros(layout.size, layout.dtype) for _ in a["state"])
    a["X"][0, 0] = V - 1
    a["Y"][:] = 0
    a["ws"] = Workspace(a["X"].shape[0], T, H, V - 2, layout.dtype)


def _read_only(a):
    a = a.copy()
    a.flags.writeable = False
    return a


def _in_workspace(a):
    """A state-sized array sharing memory with the workspace's ws.hs."""
    ws, n = a["ws"], a["w"].size
    big = np.zeros(max(n, ws.hs.size), ws.hs.dtype)
    ws.hs = big[:ws.hs.size]
    return big[:n]


def _holding(a, key):
    """A state-sized array whose memory also holds argument ``key``, which moves there."""
    big = np.zeros(a["w"].size, a["w"].dtype)
    a[key] = big[:a[key].size].reshape(a[key].shape)
    return big


BAD = [c[0] for c in _bad_cases(np.float64)]


@pytest.mark.parametrize("label", BAD)
@pytest.mark.parametrize("rule", ["adagrad", "adam"])
def test_bad_input_raises_and_writes_nothing(kernels, dtype, rule, label):
    case = {c[0]: c for c in _bad_cases(dtype)}[label]
    _, mutate, exc = case
    a = make_args(rule, dtype)
    mutate(a)
    state = a["state"] if isinstance(a["state"], tuple) else ()
    arrays = [v for v in [a["w"], a["g"], a["h"], *state] if isinstance(v, np.ndarray)]
    before = [x.copy() for x in arrays]
    with pytest.raises(exc):
        kernels.train_step(*a.values())
    for x, b in zip(arrays, before):
        assert np.array_equal(x, b, equal_nan=True)


@pytest.mark.parametrize("label,mutate,exc", [
    ("adam step 0", lambda h: h[:3] + (0,), ValueError),
    ("adam step a float", lambda h: h[:3] + (2.0,), TypeError),
    ("adam step a bool", lambda h: h[:3] + (True,), TypeError),
    ("adam beta1 1", lambda h: (1.0,) + h[1:], ValueError),
    ("adam beta2 negative", lambda h: (h[0], -0.1) + h[2:], ValueError),
])
def test_bad_adam_arguments(kernels, label, mutate, exc):
    a = make_args("adam", np.float64)
    a["hyper"] = mutate(a["hyper"])
    w = a["w"].copy()
    with pytest.raises(exc):
        kernels.train_step(*a.values())
    assert a["w"].tobytes() == w.tobytes()


def test_arguments_the_fast_path_refuses_still_work():
    """A list for the state, a list for the hypers, a NumPy integer for Adam's step, a
    huge Adam step: the compiled kernel takes its checked path and computes the same.
    (A NumPy integer for H was one such argument; the layout now carries H.)"""
    C = compiled_kernels()
    a = make_args("adam", np.float64)
    ref = copy_args(a)
    C.train_step(*ref.values())
    for change in (lambda x: x.update(state=list(x["state"])),
                   lambda x: x.update(hyper=list(x["hyper"])),
                   lambda x: x.update(hyper=(0.9, 0.999, 1e-8, np.int32(3)))):
        b = copy_args(a)
        change(b)
        C.train_step(*b.values())
        assert same_bytes(written(b), written(ref))
    big = copy_args(a)
    big["hyper"] = (0.9, 0.999, 1e-8, 2**70)       # the bias corrections are 1 by then
    assert all(math.isfinite(x) for x in C.train_step(*big.values()))


def test_valid_arguments_take_the_fused_path(monkeypatch, dtype):
    """The checked path is for what the fast checks refuse, not for every call (a fast
    check that always failed would still give right answers, only slowly)."""
    C = compiled_kernels()
    calls = []

    def spy(*args):
        calls.append(1)
        return NP.composed_step(*args)

    monkeypatch.setattr(C, "_composed_step", spy)
    for rule in RULES:
        for B in (1, 3):
            C.train_step(*make_args(rule, dtype, B).values())
    assert calls == []
    a = make_args("adagrad", dtype)
    a["state"] = list(a["state"])
    C.train_step(*a.values())
    assert calls == [1]
