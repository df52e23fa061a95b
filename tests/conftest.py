"""Shared fixtures: backends, dtypes, the reference data directory, benchmark modules."""

from __future__ import annotations

import importlib.util
import os
import sys
from pathlib import Path

import numpy as np
import pytest

import charrnn
from charrnn.kernels import backend as _backend
from charrnn.layout import Layout

REQUIRE_EXT = os.environ.get("CHARRNN_REQUIRE_EXT", "") not in ("", "0")
BENCH_DIR = Path(__file__).resolve().parents[1] / "benchmarks"


def benchmark_module(name: str):
    """A module of benchmarks/ (one without sibling imports), loaded by path under a
    private name so nothing on sys.path is shadowed; skip if it is not beside the tests."""
    path = BENCH_DIR / f"{name}.py"
    if not path.is_file():
        pytest.skip(f"benchmarks/{name}.py is not beside the tests")
    key = f"_charrnn_benchmarks_{name}"
    if key not in sys.modules:
        spec = importlib.util.spec_from_file_location(key, path)
        module = importlib.util.module_from_spec(spec)
        sys.modules[key] = module
        spec.loader.exec_module(module)
    return sys.modules[key]


def compiled_kernels():
    """The compiled kernel module; skip (or fail under CHARRNN_REQUIRE_EXT=1) if absent."""
    if "cython" not in charrnn.available_backends():
        if REQUIRE_EXT:
            pytest.fail(f"CHARRNN_REQUIRE_EXT=1 but the extension is missing: "
                        f"{_backend._ext_error!r}")
        pytest.skip("the compiled extension is not built")
    K = charrnn.get_kernels("cython")
    assert K.NAME == "cython" and K is not charrnn.get_kernels("numpy")
    return K


@pytest.fixture(params=["cython", "numpy"])
def backend(request) -> str:
    """Each backend name; the compiled one skips (or fails) when it is not built."""
    if request.param == "cython":
        compiled_kernels()
    return request.param


@pytest.fixture
def kernels(backend):
    return charrnn.get_kernels(backend)


@pytest.fixture(params=["float64", "float32"])
def dtype(request) -> np.dtype:
    return np.dtype(request.param)


def data_dir() -> Path | None:
    """``$CHARRNN_DATA_DIR`` or ``../shared/data`` beside the checkout, if it exists."""
    env = os.environ.get("CHARRNN_DATA_DIR")
    candidates = [Path(env)] if env else []
    candidates.append(Path(__file__).resolve().parents[2] / "shared" / "data")
    for c in candidates:
        if c.is_dir():
            return c
    return None


@pytest.fixture
def shared_file():
    """Return a path in the reference data directory, or skip with a reason."""
    def get(name: str) -> Path:
        d = data_dir()
        if d is None or not (d / name).is_file():
            pytest.skip(f"reference data file {name} not found "
                        f"(set CHARRNN_DATA_DIR or place ../shared/data)")
        return d / name
    return get


# ----------------------------------------------------------------------------- kernel helpers
#
# Plain functions (importable as ``from conftest import ...``) that build parameters and
# chunks and call the raw kernels, shared by the parity, gradient-check, property and
# sampling tests.

PARAM_NAMES = ("Wxh", "Whh", "Why", "bh", "by")
GRAD_NAMES = ("dWxh", "dWhh", "dWhy", "dbh", "dby")
SCALES = ("init", "trained")


def make_params(H: int, V: int, dtype="float64", scale: str = "init",
                seed: int = 0) -> dict[str, np.ndarray]:
    """The five parameters ``Wxh (H,V), Whh (H,H), Why (V,H), bh (H,), by (V,)``.

    ``scale="init"`` is the classic initialisation (randn * 0.01, zero biases);
    ``scale="trained"`` looks like a moderately trained model without being chaotic:
    Whh rescaled to spectral radius 0.9, Wxh and Why ~ N(0, 0.4), biases ~ N(0, 0.1).
    Every value is representable in float32, so a float32 run and the float64 reference
    see the same numbers and only the arithmetic differs.
    """
    rng = np.random.default_rng(seed)
    if scale == "init":
        P = {"Wxh": rng.standard_normal((H, V)) * 0.01,
             "Whh": rng.standard_normal((H, H)) * 0.01,
             "Why": rng.standard_normal((V, H)) * 0.01,
             "bh": np.zeros(H), "by": np.zeros(V)}
    elif scale == "trained":
        Whh = rng.standard_normal((H, H))
        Whh *= 0.9 / np.max(np.abs(np.linalg.eigvals(Whh)))
        P = {"Wxh": rng.standard_normal((H, V)) * 0.4, "Whh": Whh,
             "Why": rng.standard_normal((V, H)) * 0.4,
             "bh": rng.standard_normal(H) * 0.1, "by": rng.standard_normal(V) * 0.1}
    else:
        raise ValueError(f"unknown scale {scale!r}")
    return {k: np.ascontiguousarray(v.astype(np.float32).astype(dtype)) for k, v in P.items()}


def cast_params(P: dict[str, np.ndarray], dtype) -> dict[str, np.ndarray]:
    return {k: np.ascontiguousarray(v, dtype=dtype) for k, v in P.items()}


def make_chunk(B: int, T: int, H: int, V: int, dtype="float64", seed: int = 1):
    """Random int32 ids X, Y (B, T) and a start state h0 (B, H) in (-1, 1)."""
    rng = np.random.default_rng(seed)
    X = rng.integers(0, V, (B, T)).astype(np.int32)
    Y = rng.integers(0, V, (B, T)).astype(np.int32)
    h0 = np.tanh(rng.standard_normal((B, H)) * 0.5).astype(np.float32).astype(dtype)
    return X, Y, h0


def flat(P: dict[str, np.ndarray]) -> tuple[Layout, np.ndarray]:
    """The ``Layout`` of the parameter dict ``P`` and a fresh flat ``theta`` holding its
    values (an aligned vector, as a model's): ``layout.views(theta)[name][...] = P[name]``.

    The five arrays must have the shapes of one layout and one float dtype.
    """
    H, V = P["Wxh"].shape
    dtype = P["Wxh"].dtype
    layout = Layout(H, V, dtype)
    theta = layout.zeros()
    views = layout.views(theta)
    assert set(P) == set(views), sorted(P)
    for name, view in views.items():
        a = np.asarray(P[name])
        assert a.shape == view.shape and a.dtype == dtype, (name, a.shape, a.dtype)
        view[...] = a
    return layout, theta


def unflat(layout: Layout, theta: np.ndarray, prefix: str = "") -> dict[str, np.ndarray]:
    """The parameters (or, with ``prefix="d"``, the gradients ``dWxh..dby``) of a flat
    vector, as views keyed by name."""
    return {prefix + name: view for name, view in layout.views(theta).items()}


def run_loss_and_grads(K, P, X, Y, h0, ws=None):
    """Call ``K.loss_and_grads`` on ``flat(P)``; return (loss, {dWxh..dby: array}, hlast).

    The gradient vector starts as NaN, so an entry the kernel does not write shows."""
    from charrnn import Workspace
    B, T = X.shape
    layout, theta = flat(P)
    H, V = layout.hidden_size, layout.vocab_size
    grad = layout.zeros()
    grad[:] = np.nan
    hlast = np.full((B, H), np.nan, layout.dtype)
    if ws is None:
        ws = Workspace(B, T, H, V, layout.dtype)
    L = K.loss_and_grads(layout, theta, grad, X, Y, h0, hlast, ws)
    return L, unflat(layout, grad, "d"), hlast


def run_loss(K, P, X, Y, h0, ws=None):
    """Call the forward-only ``K.loss`` on ``flat(P)``; return (loss, hlast)."""
    from charrnn import Workspace
    B, T = X.shape
    layout, theta = flat(P)
    H, V = layout.hidden_size, layout.vocab_size
    hlast = np.full((B, H), np.nan, layout.dtype)
    if ws is None:
        ws = Workspace(B, T, H, V, layout.dtype)
    L = K.loss(layout, theta, X, Y, h0, hlast, ws)
    return L, hlast


def assert_close_to_ref(name: str, a, ref, rtol: float, atol_frac: float) -> None:
    """``|a - ref| <= atol_frac * max|ref| + rtol * |ref|`` element-wise."""
    ref = np.asarray(ref, np.float64)
    a = np.asarray(a, np.float64)
    assert a.shape == ref.shape, f"{name}: shape {a.shape} != {ref.shape}"
    assert np.all(np.isfinite(a)), f"{name}: non-finite values"
    atol = atol_frac * (float(np.max(np.abs(ref))) if ref.size else 0.0)
    np.testing.assert_allclose(a, ref, rtol=rtol, atol=atol, err_msg=name)


@pytest.fixture(scope="module")
def compiled():
    """The compiled kernel module (module scope, so hypothesis tests may use it)."""
    return compiled_kernels()


# ----------------------------------------------------------------------------- cells and stacks
#
# Layouts of any cell and depth (design.md section 2b): parameters drawn by the layout's
# own initialisation, scaled up to look trained; states and dropout masks to go with them.

CELLS = ("rnn", "lstm", "gru")


def make_stack(cell: str, num_layers: int, H: int, V: int, dtype="float64", seed: int = 0,
               scale: float = 2.0) -> tuple[Layout, np.ndarray]:
    """A layout of ``num_layers`` layers of ``cell`` and a theta of it: the layout's
    initialisation times ``scale`` (uniform in +-scale/sqrt(H)), every value representable
    in float32 so both dtypes see the same numbers."""
    layout = Layout(H, V, dtype, cell, num_layers)
    values = np.empty(layout.size)
    layout.init(values, np.random.default_rng(seed))
    theta = layout.zeros()
    theta[:] = (values * scale).astype(np.float32)
    return layout, theta


def make_state(layout: Layout, B: int, seed: int = 1) -> np.ndarray:
    """A (B, state_size) start state: h in (-1, 1), an LSTM's c ~ N(0, 0.5)."""
    rng = np.random.default_rng(seed)
    state = np.empty((B, layout.state_size), layout.dtype)
    for parts in layout.state_views(state):
        parts[0][...] = np.tanh(rng.standard_normal(parts[0].shape) * 0.5).astype(np.float32)
        if len(parts) > 1:
            parts[1][...] = (rng.standard_normal(parts[1].shape) * 0.5).astype(np.float32)
    return state


def make_ids(B: int, T: int, V: int, seed: int = 2) -> tuple[np.ndarray, np.ndarray]:
    """Random int32 ids X, Y (B, T)."""
    rng = np.random.default_rng(seed)
    return (rng.integers(0, V, (B, T)).astype(np.int32),
            rng.integers(0, V, (B, T)).astype(np.int32))


def make_masks(layout: Layout, B: int, T: int, p: float = 0.3, seed: int = 3) -> np.ndarray:
    """Dropout masks of a (B, T) chunk at rate p, as the training loop draws them."""
    from charrnn.dropout import dropout_masks
    return dropout_masks(layout, B, T, p, np.random.default_rng(seed))


def run_stack(K, layout: Layout, theta: np.ndarray, X, Y, h0, masks=None, ws=None):
    """``K.loss_and_grads`` on a layout of any cell and depth; returns (loss, grad,
    hlast). The gradient and hlast start as NaN, so an entry not written shows."""
    from charrnn import Workspace
    grad = layout.zeros()
    grad[:] = np.nan
    hlast = np.full(h0.shape, np.nan, layout.dtype)
    if ws is None:
        ws = Workspace.for_layout(layout, *X.shape)
    L = K.loss_and_grads(layout, theta, grad, X, Y, h0, hlast, ws, masks)
    return L, grad, hlast
