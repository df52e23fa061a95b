"""Zeroed arrays that start on a 64-byte boundary: the flat parameter vectors
(:mod:`charrnn.layout`) and the kernels' scratch (:mod:`charrnn.workspace`).
"""

from __future__ import annotations

import numpy as np

ALIGN = 64                                  # bytes: a cache line, and an AVX-512 vector


def aligned_zeros(n: int, dtype, at: int = 0) -> np.ndarray:
    """A zeroed flat array of ``n`` elements whose element ``at`` starts on a 64-byte
    boundary.

    OpenBLAS's GEMV is faster on a matrix that starts on a 32-byte boundary
    (``benchmarks/gemv_alignment.py``, NOTES.md), and NumPy only promises 16. The buffer
    is a slice of a slightly larger allocation, which it keeps alive as its base.
    """
    dtype = np.dtype(dtype)
    size = dtype.itemsize
    raw = np.zeros(n + ALIGN // size, dtype)
    address = raw.__array_interface__["data"][0] + at * size
    skip = (-address % ALIGN) // size
    return raw[skip:skip + n]
