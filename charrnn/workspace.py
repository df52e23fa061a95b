"""Scratch memory for the kernels, sized once so a training step allocates nothing.

Both backends take a :class:`Workspace`. Its buffers are flat, so one workspace sized
for (B, T) also serves any smaller chunk (the last, shorter chunk of an evaluation pass).
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


class Workspace:
    """Flat scratch buffers for a (B, T) chunk of a model with H hidden units, V chars.

    Attributes
    ----------
    hs : ndarray, ((T+1)*B*H,)   hidden states h_0 .. h_T, step-major
    zs : ndarray, (T*B*V,)       logits, then probabilities, then dz
    dhs : ndarray, (T*B*H,)      dh from the output side, then da
    dhnext : ndarray, (B*H,)     the gradient flowing back from step t+1
    """

    def __init__(self, B: int, T: int, H: int, V: int, dtype="float64") -> None:
        self.dtype = np.dtype(dtype)
        if self.dtype not in (np.float32, np.float64):
            raise TypeError(f"workspace dtype must be float32 or float64, not {self.dtype}")
        for name, n in (("B", B), ("T", T), ("H", H), ("V", V)):
            if int(n) < 1:
                raise ValueError(f"workspace size {name} must be >= 1, got {n}")
        self.B, self.T, self.H, self.V = int(B), int(T), int(H), int(V)
        self.hs = aligned_zeros((self.T + 1) * self.B * self.H, self.dtype)
        self.zs = aligned_zeros(self.T * self.B * self.V, self.dtype)
        self.dhs = aligned_zeros(self.T * self.B * self.H, self.dtype)
        self.dhnext = aligned_zeros(self.B * self.H, self.dtype)

    def fits(self, B: int, T: int, H: int, V: int, dtype) -> bool:
        """True when the buffers are of ``dtype`` and large enough for a (B, T) chunk
        of a model with H hidden units and V characters."""
        return (np.dtype(dtype) == self.dtype
                and (T + 1) * B * H <= self.hs.size and T * B * V <= self.zs.size
                and T * B * H <= self.dhs.size and B * H <= self.dhnext.size)

    def __repr__(self) -> str:
        return (f"Workspace(B={self.B}, T={self.T}, H={self.H}, V={self.V}, "
                f"dtype={self.dtype.name})")
