"""The compiled kernels' element-wise tanh, held to float64 in units in the last place.

The kernels compute tanh with their own vectorised code (csrc/_vmath.h), not libm's. One
sampling step with Whh = 0 and bh = 0 makes the state tanh of a column of Wxh exactly, so
a column of chosen points measures it: every length modulo 8 (the vector loops' last
part-block), B = 1 (gemv) and B = 3 (gemm), small, large and clamped arguments.
"""

from __future__ import annotations

import numpy as np
import pytest

from conftest import flat

V = 3
# float64 tanh is Cephes' (a rational form near 0, exp beyond); float32 is one rational
# form over [-9, 9], whose float32 evaluation costs a few ulps more (benchmarks/
# fit_tanh.py measures it). The code is branch-free and contracts no multiply-add, so it
# rounds alike on every x86-64: the bounds sit a little above the worst seen anywhere.
MAX_ULP = {np.float32: 8.0, np.float64: 4.0}


def _points(n: int, seed: int) -> np.ndarray:
    """n arguments: the special ones first (as many as fit), then random ones."""
    rng = np.random.default_rng(seed)
    special = [0.0, -0.0, 1e-30, -1e-30, 1e-5, 0.625, -0.625, 1.0, 8.9, 9.0, -9.0, 9.5,
               12.0, -20.0, 40.0, -1e4, 3e38]
    x = np.concatenate([special, rng.uniform(-1, 1, 4 * n), rng.uniform(-12, 12, 4 * n),
                        np.geomspace(1e-12, 10, n) * rng.choice([-1, 1], n)])
    return np.concatenate([x[:len(special)], rng.permutation(x[len(special):])])[:n]


def _tanh_by_kernel(K, X: np.ndarray) -> np.ndarray:
    """tanh(X.T) as the kernel's first sampling step computes it, X (H, B): stream b
    starts at id b, so its state becomes h'[b] = tanh(Wxh[:, b]) with Wxh = X."""
    H, B = X.shape
    dtype = X.dtype
    Vb = max(B, 2)
    P = {"Wxh": np.zeros((H, Vb), dtype), "Whh": np.zeros((H, H), dtype),
         "Why": np.zeros((Vb, H), dtype), "bh": np.zeros(H, dtype),
         "by": np.zeros(Vb, dtype)}
    P["Wxh"][:, :B] = X
    layout, theta = flat(P)
    h = np.full((B, H), 0.5, dtype)
    K.sample(layout, theta, h, np.arange(B, dtype=np.int32), np.full((1, B), 0.5), 1.0,
             None)
    return h


def _ulps(got: np.ndarray, x: np.ndarray, dtype) -> np.ndarray:
    ref = np.tanh(x.astype(dtype).astype(np.float64))
    unit = np.spacing(np.abs(ref).astype(dtype)).astype(np.float64)
    return np.abs(got.astype(np.float64) - ref) / unit


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("B", [1, 3])
def test_tanh_within_a_few_ulps_at_every_length(compiled, dtype, B):
    for H in list(range(1, 34)) + [100, 517]:
        X = _points(H * B, seed=H).astype(dtype).reshape(H, B)
        h = _tanh_by_kernel(compiled, X)
        e = _ulps(h, X.T, dtype)
        i = np.unravel_index(e.argmax(), e.shape)
        assert e.max() <= MAX_ULP[dtype], (
            f"H={H}, B={B}: tanh({X.T[i]!r}) = {h[i]!r}, {e.max():.1f} ulp")
        assert np.all(np.abs(h) <= 1)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_tanh_dense_sweep(compiled, dtype):
    """A million points: the ulp bound, odd symmetry and |tanh| <= 1."""
    rng = np.random.default_rng(7)
    x = np.concatenate([rng.uniform(-10, 10, 500_000), rng.uniform(-0.7, 0.7, 500_000)])
    X = x.astype(dtype).reshape(1000, 1000)
    h = _tanh_by_kernel(compiled, X)
    assert _ulps(h, X.T, dtype).max() <= MAX_ULP[dtype]
    np.testing.assert_array_equal(_tanh_by_kernel(compiled, -X), -h)
    assert np.all(np.abs(h) <= 1)
