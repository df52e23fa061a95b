"""The BLAS shims of csrc/_blas.pxd (row-major products through column-major BLAS), each
held to NumPy at every transpose combination, both dtypes and shapes that reach BLAS's
edge cases (1-wide, non-square), as scikit-learn tests its own BLAS wrappers."""

from __future__ import annotations

import itertools

import numpy as np
import pytest

from conftest import compiled_kernels

SHAPES = [(1, 1, 1), (1, 7, 3), (5, 1, 4), (3, 4, 1), (17, 9, 33), (64, 65, 100)]


def _tol(dtype):
    return {"rtol": 1e-5, "atol": 1e-5} if dtype == np.float32 else {"rtol": 1e-12,
                                                                         "atol": 1e-12}


@pytest.mark.parametrize("transA,transB", list(itertools.product([False, True], repeat=2)))
@pytest.mark.parametrize("M,N,K", SHAPES)
def test_gemm_matches_numpy(dtype, transA, transB, M, N, K):
    K_ = compiled_kernels()
    rng = np.random.default_rng(M * 1000 + N * 10 + K)
    A = rng.standard_normal((K, M) if transA else (M, K)).astype(dtype)
    B = rng.standard_normal((N, K) if transB else (K, N)).astype(dtype)
    C = rng.standard_normal((M, N)).astype(dtype)
    want = 0.5 * (A.T if transA else A).astype(np.float64) @ \
        (B.T if transB else B).astype(np.float64) + 2.0 * C.astype(np.float64)
    K_._gemm(transA, transB, 0.5, A, B, 2.0, C)
    np.testing.assert_allclose(C, want, **_tol(dtype))


@pytest.mark.parametrize("transA", [False, True])
@pytest.mark.parametrize("M,N", [(1, 1), (1, 5), (6, 1), (17, 33), (100, 65)])
def test_gemv_matches_numpy(dtype, transA, M, N):
    K_ = compiled_kernels()
    rng = np.random.default_rng(M * 100 + N)
    A = rng.standard_normal((M, N)).astype(dtype)
    x = rng.standard_normal(M if transA else N).astype(dtype)
    y = rng.standard_normal(N if transA else M).astype(dtype)
    want = -1.5 * (A.T if transA else A).astype(np.float64) @ x.astype(np.float64) \
        + 0.25 * y.astype(np.float64)
    K_._gemv(transA, -1.5, A, x, 0.25, y)
    np.testing.assert_allclose(y, want, **_tol(dtype))


def test_beta_zero_ignores_what_c_held():
    """beta = 0 overwrites C: NaN in it does not leak into the product (BLAS's rule,
    which the kernels rely on when they write gradients with beta = 0)."""
    K_ = compiled_kernels()
    A = np.ones((2, 3))
    B = np.ones((3, 4))
    C = np.full((2, 4), np.nan)
    K_._gemm(False, False, 1.0, A, B, 0.0, C)
    np.testing.assert_array_equal(C, np.full((2, 4), 3.0))


def test_mismatched_shapes_are_refused():
    K_ = compiled_kernels()
    with pytest.raises(ValueError, match="shapes do not match"):
        K_._gemm(False, False, 1.0, np.ones((2, 3)), np.ones((4, 5)), 0.0, np.ones((2, 5)))
    with pytest.raises(ValueError, match="shapes do not match"):
        K_._gemv(False, 1.0, np.ones((2, 3)), np.ones(2), 0.0, np.ones(2))
