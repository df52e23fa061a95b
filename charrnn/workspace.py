"""Scratch memory for the kernels, sized once so a training step allocates nothing.

Both backends take a :class:`Workspace`. Its buffers are flat, so one workspace sized
for (B, T) also serves any smaller chunk (the last, shorter chunk of an evaluation pass).
"""

from __future__ import annotations

import numpy as np


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
        self.hs = np.zeros((self.T + 1) * self.B * self.H, self.dtype)
        self.zs = np.zeros(self.T * self.B * self.V, self.dtype)
        self.dhs = np.zeros(self.T * self.B * self.H, self.dtype)
        self.dhnext = np.zeros(self.B * self.H, self.dtype)

    def fits(self, B: int, T: int, H: int, V: int, dtype) -> bool:
        """True when the buffers are of ``dtype`` and large enough for a (B, T) chunk
        of a model with H hidden units and V characters."""
        return (np.dtype(dtype) == self.dtype
                and (T + 1) * B * H <= self.hs.size and T * B * V <= self.zs.size
                and T * B * H <= self.dhs.size and B * H <= self.dhnext.size)

    def __repr__(self) -> str:
        return (f"Workspace(B={self.B}, T={self.T}, H={self.H}, V={self.V}, "
                f"dtype={self.dtype.name})")
