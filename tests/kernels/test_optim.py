"""Optimizer update kernels, clipping kernels, and the charrnn.optim classes.

Each fused update is checked against its textbook formula written here in float64, for
both backends and both dtypes, with element-wise clipping, global-norm scaling, both, and
none. The textbook forms (g' is the clipped gradient):

    g'      = clip(g * scale, -clip, clip)
    SGD     w -= lr * g'
    Adagrad m += g'**2;  w -= lr * g' / sqrt(m + eps)
    RMSprop v = rho*v + (1-rho)*g'**2;  w -= lr * g' / (sqrt(v) + eps)
    Adam    m = b1*m + (1-b1)*g';  v = b2*v + (1-b2)*g'**2;
            w -= lr * (m / (1-b1**t)) / (sqrt(v / (1-b2**t)) + eps)
"""

from __future__ import annotations

import math

import numpy as np
import pytest

import charrnn
from charrnn import optim

SIZES = [1, 7, 1003]                       # odd sizes reach every vector-loop remainder
CLIPS = [(5.0, 1.0), (math.inf, 1.0), (math.inf, 0.25), (1.0, 0.5), (5.0, 0.0)]


def _tol(dtype):
    # float32 kernels compute in float32 from the same inputs as the float64 formula
    return dict(rtol=1e-12, frac=1e-13) if dtype == np.float64 else dict(rtol=2e-5, frac=2e-6)


def _close(name, a, ref, dtype):
    t = _tol(dtype)
    ref = np.asarray(ref, np.float64)
    np.testing.assert_allclose(np.asarray(a, np.float64), ref, rtol=t["rtol"],
                               atol=t["frac"] * max(np.abs(ref).max(), 1e-30), err_msg=name)


def _gradient(n, dtype, rng):
    g = rng.standard_normal(n) * 4                              # some beyond the clip of 5
    g[4::5] = 0                                                 # and exact zeros
    if n > 3:
        g[1], g[2] = 50.0, -50.0
    return g.astype(dtype)


def _clipped(g, clip, scale):
    return np.clip(g.astype(np.float64) * scale, -clip, clip)


TEXTBOOK = {}


def _textbook(name):
    def deco(f):
        TEXTBOOK[name] = f
        return f
    return deco


@_textbook("sgd")
def _sgd(w, g, state, lr, t, clip, scale):
    return w - lr * _clipped(g, clip, scale), {}


@_textbook("adagrad")
def _adagrad(w, g, state, lr, t, clip, scale, eps=1e-8):
    gc = _clipped(g, clip, scale)
    m = state["m"] + gc * gc
    return w - lr * gc / np.sqrt(m + eps), {"m": m}


@_textbook("rmsprop")
def _rmsprop(w, g, state, lr, t, clip, scale, rho=0.99, eps=1e-8):
    gc = _clipped(g, clip, scale)
    v = rho * state["v"] + (1 - rho) * gc * gc
    return w - lr * gc / (np.sqrt(v) + eps), {"v": v}


@_textbook("adam")
def _adam(w, g, state, lr, t, clip, scale, b1=0.9, b2=0.999, eps=1e-8):
    gc = _clipped(g, clip, scale)
    m = b1 * state["m"] + (1 - b1) * gc
    v = b2 * state["v"] + (1 - b2) * gc * gc
    mhat, vhat = m / (1 - b1 ** t), v / (1 - b2 ** t)
    return w - lr * mhat / (np.sqrt(vhat) + eps), {"m": m, "v": v}


SLOTS = {"sgd": (), "adagrad": ("m",), "rmsprop": ("v",), "adam": ("m", "v")}


def _kernel_update(K, name, w, g, state, lr, t, clip, scale):
    if name == "sgd":
        K.sgd_update(w, g, lr, clip, scale)
    elif name == "adagrad":
        K.adagrad_update(w, g, state["m"], lr, 1e-8, clip, scale)
    elif name == "rmsprop":
        K.rmsprop_update(w, g, state["v"], lr, 0.99, 1e-8, clip, scale)
    else:
        K.adam_update(w, g, state["m"], state["v"], lr, 0.9, 0.999, 1e-8, t, clip, scale)


@pytest.mark.parametrize("clip,scale", CLIPS)
@pytest.mark.parametrize("n", SIZES)
@pytest.mark.parametrize("name", ["sgd", "adagrad", "rmsprop", "adam"])
def test_update_matches_textbook(backend, dtype, name, n, clip, scale):
    K = charrnn.get_kernels(backend)
    rng = np.random.default_rng(n)
    w = rng.standard_normal(n).astype(dtype)
    # nonzero starting state, as in the middle of training
    state = {s: (rng.random(n) * (0.1 if s == "m" and name == "adam" else 2.0)).astype(dtype)
             for s in SLOTS[name]}
    if name == "adam":
        state["m"] = (rng.standard_normal(n) * 0.1).astype(dtype)
    w_ref = w.astype(np.float64)
    s_ref = {k: v.astype(np.float64) for k, v in state.items()}
    lr = 0.05
    for t in (1, 2, 3):
        g = _gradient(n, dtype, rng)
        g0, w0 = g.copy(), w.copy()
        w_ref, s_ref = TEXTBOOK[name](w_ref, g, s_ref, lr, t, clip, scale)
        _kernel_update(K, name, w, g, state, lr, t, clip, scale)
        np.testing.assert_array_equal(g, g0)                   # g is not modified
        assert w.dtype == dtype
        _close(f"{name} w, step {t}", w, w_ref, dtype)
        for s in SLOTS[name]:
            _close(f"{name} {s}, step {t}", state[s], s_ref[s], dtype)
        if scale != 0:                                          # the update did something
            assert not np.array_equal(w, w0)


@pytest.mark.parametrize("name", ["sgd", "adagrad", "rmsprop", "adam"])
def test_element_clip_bounds_the_step(backend, name):
    """With clip c every clipped entry contributes exactly +-c: a gradient of 1e6 moves
    SGD by lr*c, and the other updates as if the gradient were c."""
    K = charrnn.get_kernels(backend)
    n = 9
    g = np.full(n, 1e6)
    g[::2] = -1e6
    w = np.zeros(n)
    state = {s: np.zeros(n) for s in SLOTS[name]}
    _kernel_update(K, name, w, g, state, 0.1, 1, 2.0, 1.0)
    w_ref, _ = TEXTBOOK[name](np.zeros(n), np.where(g > 0, 2.0, -2.0), {s: np.zeros(n) for s
                                                                      in SLOTS[name]},
                              0.1, 1, math.inf, 1.0)
    np.testing.assert_allclose(w, w_ref, rtol=1e-12)


def test_update_defaults_come_from_the_config(backend):
    """Both twins' defaults are charrnn.config's, and Optimizer's are the same values."""
    import inspect
    from charrnn import config
    K = charrnn.get_kernels(backend)
    want = {"clip": config.CLIP, "eps": config.EPS, "rho": config.RHO, "beta1": config.BETA1,
            "beta2": config.BETA2, "scale": 1.0, "step": 1}
    for name in ("sgd", "adagrad", "rmsprop", "adam"):
        params = inspect.signature(getattr(K, name + "_update")).parameters
        defaults = {k: p.default for k, p in params.items()
                    if p.default is not inspect.Parameter.empty}
        assert defaults == {k: want[k] for k in defaults}, name
        assert set(defaults) == {"clip", "scale"} | set(
            h for h in ("eps", "rho", "beta1", "beta2", "step") if h in params), name
    sample = inspect.signature(K.sample).parameters
    assert sample["temperature"].default == config.TEMPERATURE
    assert sample["top_k"].default is None
    assert optim.HYPER_DEFAULTS == {"eps": config.EPS, "rho": config.RHO,
                                    "beta1": config.BETA1, "beta2": config.BETA2}


# ----------------------------------------------------------------------------- clipping

@pytest.mark.parametrize("n", SIZES)
def test_clip_(backend, dtype, n):
    K = charrnn.get_kernels(backend)
    g = _gradient(n, dtype, np.random.default_rng(1))
    for c in (5.0, 0.5, math.inf):
        a = g.copy()
        K.clip_(a, c)
        np.testing.assert_array_equal(a, np.clip(g, -c, c).astype(dtype))
        assert np.abs(a).max() <= c


@pytest.mark.parametrize("n", SIZES)
def test_scale_(backend, dtype, n):
    K = charrnn.get_kernels(backend)
    g = _gradient(n, dtype, np.random.default_rng(2))
    for s in (0.3, 1.0, 0.0, 2.5):
        a = g.copy()
        K.scale_(a, s)
        np.testing.assert_allclose(a, g.astype(np.float64) * s,
                                   rtol=np.finfo(dtype).eps, atol=0)


@pytest.mark.parametrize("n", SIZES)
def test_sumsq(backend, dtype, n):
    K = charrnn.get_kernels(backend)
    g = _gradient(n, dtype, np.random.default_rng(3))
    ref = math.fsum(float(x) ** 2 for x in g)                   # exact products of floats
    s = K.sumsq(g)
    assert isinstance(s, float)
    assert s == pytest.approx(ref, rel=1e-12)


def test_sumsq_accumulates_in_float64(backend):
    """Squares of 1e20 overflow float32 but not the float64 accumulator."""
    K = charrnn.get_kernels(backend)
    g = np.full(5, 1e20, np.float32)
    assert K.sumsq(g) == pytest.approx(5 * float(np.float32(1e20)) ** 2, rel=1e-12)
    assert K.sumsq(np.zeros(3, np.float32)) == 0.0


def test_global_norm_clipping(backend, dtype):
    """clip_kind="norm": scale = clip / ||g|| when ||g|| > clip, and the step taken is the
    step of the rescaled gradient, whose norm is exactly the clip."""
    K = charrnn.get_kernels(backend)
    rng = np.random.default_rng(4)
    g = (rng.standard_normal(500) * 3).astype(dtype)
    norm_ref = float(np.linalg.norm(g.astype(np.float64)))
    assert norm_ref > 5
    norm, clip, scale = optim.clip_args(K, g, "norm", 5.0)
    assert norm == pytest.approx(norm_ref, rel=1e-12)
    assert clip == math.inf
    assert scale == pytest.approx(5.0 / norm_ref, rel=1e-12)
    gs = g.copy()
    K.scale_(gs, scale)
    assert np.linalg.norm(gs.astype(np.float64)) == pytest.approx(5.0, rel=1e-6)
    w = np.zeros(500, dtype)
    K.sgd_update(w, g, 1.0, clip, scale)
    _close("w", w, -g.astype(np.float64) * scale, dtype)
    # below the threshold nothing is scaled
    _, clip, scale = optim.clip_args(K, g, "norm", 10 * norm_ref)
    assert (clip, scale) == (math.inf, 1.0)


def test_clip_args_kinds(backend):
    K = charrnn.get_kernels(backend)
    g = np.array([3.0, 4.0])
    assert optim.clip_args(K, g, "value", 5.0) == (5.0, 5.0, 1.0)
    assert optim.clip_args(K, g, None, 5.0) == (5.0, math.inf, 1.0)
    assert optim.clip_args(K, g, "norm", 2.5) == (5.0, math.inf, 0.5)
    with pytest.raises(ValueError, match="clip kind"):
        optim.clip_args(K, g, "global", 5.0)
    # a non-finite gradient shows in the norm whatever the kind
    bad = np.array([1.0, np.inf])
    for kind in ("value", "norm", None):
        assert not math.isfinite(optim.clip_args(K, bad, kind, 5.0)[0])


# ----------------------------------------------------------------------------- classes

@pytest.mark.parametrize("name", ["sgd", "adagrad", "rmsprop", "adam"])
def test_optimizer_classes(backend, dtype, name):
    K = charrnn.get_kernels(backend)
    opt = charrnn.make_optimizer(name, 50, dtype)
    assert isinstance(opt, optim.Optimizer) and opt.name == name
    assert opt.lr == optim.DEFAULT_LR[name]
    assert opt.t == 0
    assert set(opt.state) == set(SLOTS[name])
    for s in opt.state.values():
        assert s.shape == (50,) and s.dtype == dtype and not s.any()
    assert name in repr(opt).lower()
    rng = np.random.default_rng(5)
    theta = rng.standard_normal(50).astype(dtype)
    w_ref = theta.astype(np.float64)
    s_ref = {s: np.zeros(50) for s in SLOTS[name]}
    for t, (clip, scale) in enumerate([(5.0, 1.0), (math.inf, 0.5), (1.0, 1.0)], start=1):
        g = _gradient(50, dtype, rng)
        opt.step(K, theta, g, clip=clip, scale=scale)
        assert opt.t == t
        w_ref, s_ref = TEXTBOOK[name](w_ref, g, s_ref, opt.lr, t, clip, scale)
        _close(f"{name} step {t}", theta, w_ref, dtype)
        for s in SLOTS[name]:
            _close(f"{name} {s}", opt.state[s], s_ref[s], dtype)
    # an lr given to step overrides the optimizer's own for that step
    g = _gradient(50, dtype, rng)
    opt.step(K, theta, g, clip=5.0, lr=opt.lr / 10)
    w_ref, _ = TEXTBOOK[name](w_ref, g, s_ref, opt.lr / 10, 4, 5.0, 1.0)
    _close(f"{name} lr override", theta, w_ref, dtype)


def test_optimizer_hyperparameters():
    a = charrnn.make_optimizer("adam", 4, np.float64, lr=0.01, beta1=0.8, beta2=0.99,
                               eps=1e-6)
    assert a.lr == 0.01 and a.hyper() == {"beta1": 0.8, "beta2": 0.99, "eps": 1e-6}
    r = charrnn.make_optimizer("rmsprop", 4, np.float32, rho=0.9)
    assert r.hyper() == {"rho": 0.9, "eps": 1e-8}
    assert charrnn.make_optimizer("adagrad", 4, np.float64).hyper() == {"eps": 1e-8}
    assert charrnn.make_optimizer("sgd", 4, np.float64).hyper() == {}
    assert optim.DEFAULT_LR["adagrad"] == 0.1                  # the classic


@pytest.mark.parametrize("name", ["bogus", "", None, "ADAM "])
def test_make_optimizer_unknown_name(name):
    with pytest.raises(ValueError, match="optimizer must be one of"):
        charrnn.make_optimizer(name, 4, np.float64)


@pytest.mark.parametrize("lr", [0, -0.1, float("nan"), float("inf")])
def test_make_optimizer_bad_lr(lr):
    with pytest.raises(ValueError, match="learning rate"):
        charrnn.make_optimizer("sgd", 4, np.float64, lr=lr)


def test_make_optimizer_unknown_hyperparameter():
    with pytest.raises(TypeError):
        charrnn.make_optimizer("sgd", 4, np.float64, rho=0.9)


# ----------------------------------------------------------------------------- bad input

def _bad_update(case):
    w, g = np.zeros(6), np.ones(6)
    m, v = np.zeros(6), np.zeros(6)
    kw = dict(lr=0.1, clip=5.0, scale=1.0)
    fn = "adam"
    if case == "g float32":
        g = g.astype(np.float32)
    elif case == "g shape":
        g = np.ones(5)
    elif case == "w 2-D":
        w, g, m, v = (np.zeros((2, 3)) for _ in range(4))
    elif case == "w int":
        w = np.zeros(6, np.int64)
    elif case == "w read-only":
        w.setflags(write=False)
    elif case == "w strided":
        w = np.zeros(12)[::2]
    elif case == "w is g":
        g = w
    elif case == "m is w":
        m = w
    elif case == "m is v":
        v = m
    elif case == "m shape":
        m = np.zeros(7)
    elif case == "clip 0":
        kw["clip"] = 0.0
    elif case == "clip < 0":
        kw["clip"] = -1.0
    elif case == "scale < 0":
        kw["scale"] = -0.5
    elif case == "scale nan":
        kw["scale"] = float("nan")
    elif case == "lr nan":
        kw["lr"] = float("nan")
    elif case == "step 0":
        kw["step"] = 0
    elif case == "g list":
        g = [1.0] * 6
    return fn, (w, g, m, v), kw


BAD_UPDATE = [("g float32", TypeError), ("g shape", ValueError), ("w 2-D", ValueError),
              ("w int", TypeError), ("w read-only", ValueError), ("w strided", ValueError),
              ("w is g", ValueError), ("m is w", ValueError), ("m is v", ValueError),
              ("m shape", ValueError), ("clip 0", ValueError), ("clip < 0", ValueError),
              ("scale < 0", ValueError), ("scale nan", ValueError), ("lr nan", ValueError),
              ("step 0", ValueError), ("g list", TypeError)]


@pytest.mark.parametrize("case,exc", BAD_UPDATE, ids=[c for c, _ in BAD_UPDATE])
def test_bad_update_arguments(backend, case, exc):
    K = charrnn.get_kernels(backend)
    _, (w, g, m, v), kw = _bad_update(case)
    step = kw.pop("step", 1)
    before = [np.array(a, copy=True) for a in (w, m, v)]
    with pytest.raises(exc):
        K.adam_update(w, g, m, v, kw["lr"], 0.9, 0.999, 1e-8, step, kw["clip"], kw["scale"])
    for a, b in zip((w, m, v), before):
        np.testing.assert_array_equal(a, b)                    # nothing written


@pytest.mark.parametrize("fn,args", [
    ("clip_", (np.zeros(3), 0.0)), ("clip_", (np.zeros(3), -1.0)),
    ("scale_", (np.zeros(3), -1.0)), ("scale_", (np.zeros(3), float("inf"))),
    ("clip_", (np.zeros((2, 2)), 1.0)), ("sumsq", (np.zeros((2, 2)),))])
def test_bad_clip_arguments(backend, fn, args):
    K = charrnn.get_kernels(backend)
    with pytest.raises(ValueError):
        getattr(K, fn)(*args)


@pytest.mark.parametrize("fn,args", [("clip_", (np.zeros(3, np.int32), 1.0)),
                                     ("sumsq", (np.zeros(3, np.float16),)),
                                     ("scale_", ([1.0, 2.0], 0.5))])
def test_bad_clip_types(backend, fn, args):
    K = charrnn.get_kernels(backend)
    with pytest.raises(TypeError):
        getattr(K, fn)(*args)
