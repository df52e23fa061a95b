"""Scratch memory for the kernels, sized once so a training step allocates nothing.

Both backends take a :class:`Workspace`. Its buffers are flat, so one workspace sized
for (B, T) also serves any smaller chunk (the last, shorter chunk of an evaluation pass),
and one sized for a deeper stack or a cell with more gates serves a smaller model.
"""

from __future__ import annotations

import functools

import numpy as np

from .aligned import aligned_zeros
from .config import check_cell
from .layout import GATES, Layout


@functools.lru_cache(maxsize=64)            # fits() runs at every kernel call
def buffer_sizes(B: int, T: int, H: int, V: int, cell: str = "rnn",
                 num_layers: int = 1) -> tuple[tuple[str, int], ...]:
    """(name, elements) of each buffer a (B, T) chunk of a model of ``num_layers`` layers
    of ``cell`` needs (see :class:`Workspace` for what each holds)."""
    L, GH = num_layers, GATES[cell] * H
    return (("hs", L * (T + 1) * B * H), ("zs", T * B * V), ("dhs", L * T * B * H),
            ("dhnext", B * H),
            ("cs", L * (T + 1) * B * H if cell == "lstm" else 0),
            ("dcnext", B * H if cell == "lstm" else 0),
            ("acts", L * T * B * GH if cell != "rnn" else 0),
            ("ahs", L * T * B * GH if cell == "gru" else 0),
            ("ins", L * T * B * H))


class Workspace:
    """Flat scratch buffers for a (B, T) chunk of a model: L layers of a cell with G gate
    blocks of H hidden units, V chars.

    Each buffer holds its layers one after another, each layer step-major.

    Attributes
    ----------
    hs : ndarray, (L*(T+1)*B*H,)  each layer's states h_0 .. h_T (rnn: a_t, then h_t)
    zs : ndarray, (T*B*V,)        logits, then probabilities, then dz
    dhs : ndarray, (L*T*B*H,)     each layer's dh from above (rnn: then da)
    dhnext : ndarray, (B*H,)      the gradient flowing back from step t+1
    cs : ndarray, (L*(T+1)*B*H,)  lstm: each layer's cell states c_0 .. c_T (else empty)
    dcnext : ndarray, (B*H,)      lstm: dc flowing back from step t+1 (else empty)
    acts : ndarray, (L*T*B*G*H,)  lstm, gru: the input side of each step, then its gates,
                                  then (BPTT) the gradient of the input side (rnn: empty)
    ahs : ndarray, (L*T*B*G*H,)   gru: h_{t-1} @ Wh.T + bh, then its gradient (else empty)
    ins : ndarray, (L*T*B*H,)     with dropout: the masked input of layers 1 .. L-1 and
                                  of the output layer (mask index l is ins's layer l)
    """

    BUFFERS = ("hs", "zs", "dhs", "dhnext", "cs", "dcnext", "acts", "ahs", "ins")

    def __init__(self, B: int, T: int, H: int, V: int, dtype="float64", cell: str = "rnn",
                 num_layers: int = 1) -> None:
        self.dtype = np.dtype(dtype)
        if self.dtype not in (np.float32, np.float64):
            raise TypeError(f"workspace dtype must be float32 or float64, not {self.dtype}")
        for name, n in (("B", B), ("T", T), ("H", H), ("V", V), ("num_layers", num_layers)):
            if int(n) < 1:
                raise ValueError(f"workspace size {name} must be >= 1, got {n}")
        check_cell(cell)
        self.B, self.T, self.H, self.V = int(B), int(T), int(H), int(V)
        self.cell, self.num_layers = cell, int(num_layers)
        # np.zeros maps its pages when first written: a buffer a chunk does not use (ins
        # without dropout) costs address space only
        for name, n in buffer_sizes(self.B, self.T, self.H, self.V, cell, self.num_layers):
            setattr(self, name, aligned_zeros(n, self.dtype))

    @classmethod
    def for_layout(cls, layout: Layout, B: int, T: int) -> Workspace:
        """A workspace for (B, T) chunks of ``layout``'s model."""
        return cls(B, T, layout.hidden_size, layout.vocab_size, layout.dtype, layout.cell,
                   layout.num_layers)

    def fits(self, B: int, T: int, H: int, V: int, dtype, cell: str = "rnn",
             num_layers: int = 1) -> bool:
        """True when the buffers are of ``dtype`` and large enough for a (B, T) chunk
        of a model of ``num_layers`` layers of ``cell`` with H hidden units and V
        characters."""
        if np.dtype(dtype) != self.dtype:
            return False
        for name, n in buffer_sizes(B, T, H, V, cell, num_layers):
            if n > getattr(self, name).size:
                return False
        return True

    def __repr__(self) -> str:
        return (f"Workspace(B={self.B}, T={self.T}, H={self.H}, V={self.V}, "
                f"dtype={self.dtype.name}, cell={self.cell!r}, "
                f"num_layers={self.num_layers})")
