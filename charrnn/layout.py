"""The parameter layout: the one truth about the flat parameter vector.

A :class:`Layout` knows the cell kind, the number of layers, H, V and the dtype, and from
them the name, shape, offset, initialisation and PyTorch name of every parameter. The
model, the checkpoints, the optimizers and both kernel modules ask it; nothing else does
the arithmetic. ``CharRNN.theta``, its gradient ``grad`` and every optimizer state array
(sized by the layout) share it, so clipping and updates are single passes over one vector, and a whole
training step (``train_step`` in both kernel modules) takes the layout and the flat
vectors.

The 1-layer vanilla RNN is min-char-rnn's, ``design.md`` section 2:

    Wxh (H, V)   Whh (H, H)   Why (V, H)   bh (H,)   by (V,)

one after another, weights drawn as ``randn * 0.01`` in that order, biases zero.
"""

from __future__ import annotations

import math
from typing import NamedTuple

import numpy as np

from .workspace import aligned_zeros

CELLS = ("rnn",)
INT_MAX = 2**31 - 1             # BLAS takes 32-bit sizes: every count and size is below


class Param(NamedTuple):
    """One parameter of a layout."""

    name: str                   # the classic name, e.g. "Wxh"
    shape: tuple[int, ...]
    offset: int                 # where it starts in the flat vector
    init: str                   # "randn*0.01" or "zeros"
    torch_name: str             # its key in a PyTorch word_language_model state_dict

    @property
    def size(self) -> int:
        return math.prod(self.shape)


def _rnn_params(H: int, V: int) -> list[tuple[str, tuple[int, ...], str, str]]:
    # the classic names and shapes; nn.RNN(V, H) takes the one-hot input, so Wxh is its
    # weight_ih and bh its bias_ih (its bias_hh is zero)
    return [("Wxh", (H, V), "randn*0.01", "rnn.weight_ih_l0"),
            ("Whh", (H, H), "randn*0.01", "rnn.weight_hh_l0"),
            ("Why", (V, H), "randn*0.01", "decoder.weight"),
            ("bh", (H,), "zeros", "rnn.bias_ih_l0"),
            ("by", (V,), "zeros", "decoder.bias")]


# cell -> (its parameters, the matrix the sequential products read at every step)
_CELL_PARAMS = {"rnn": (_rnn_params, "Whh")}


def _count(name: str, value, lo: int = 1) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
        raise TypeError(f"{name} must be an int, not {type(value).__name__}")
    if not lo <= value <= INT_MAX:
        raise ValueError(f"{name} must be in [{lo}, 2**31), got {value}")
    return int(value)


class Layout:
    """Where every parameter of a model lives in its flat vector.

    Parameters
    ----------
    hidden_size : int
        H, hidden units per layer.
    vocab_size : int
        V, the number of characters.
    dtype : {"float32", "float64"}
    cell : {"rnn"}
        The cell kind.
    num_layers : int
        The depth of the stack.

    Attributes
    ----------
    params : tuple of Param
        The parameters in the order they lie in the vector.
    size : int
        The length of the vector.
    offsets : ndarray of int64
        Each parameter's offset, in order (read-only): what the compiled kernels read.

    A layout is immutable and compares equal to any layout of the same five values.
    """

    __slots__ = ("cell", "num_layers", "hidden_size", "vocab_size", "dtype", "params",
                 "size", "offsets", "_index", "_recurrent", "_slices")

    def __init__(self, hidden_size: int, vocab_size: int, dtype="float64", cell: str = "rnn",
                 num_layers: int = 1) -> None:
        H = _count("hidden_size", hidden_size)
        V = _count("vocab_size", vocab_size)
        L = _count("num_layers", num_layers)
        if not isinstance(cell, str) or cell not in _CELL_PARAMS:
            raise ValueError(f"cell must be one of {', '.join(CELLS)}, not {cell!r}")
        if L != 1:
            raise ValueError(f"a {cell} model has one layer here, got num_layers={L}")
        try:
            dt = np.dtype(dtype)
        except TypeError:
            raise TypeError(f"dtype must be float32 or float64, not {dtype!r}") from None
        if dt != np.float32 and dt != np.float64:         # (native byte order only)
            raise TypeError(f"dtype must be float32 or float64, not {dt}")
        params, offset = [], 0
        entries, recurrent = _CELL_PARAMS[cell]
        for name, shape, init, torch_name in entries(H, V):
            params.append(Param(name, shape, offset, init, torch_name))
            offset += params[-1].size
        if offset > INT_MAX:
            raise ValueError(f"a model of {offset} parameters is too large for 32-bit "
                             f"BLAS indices (H={H}, V={V})")
        # from bytes: a read-only array that no one can make writeable again
        offsets = np.frombuffer(np.array([p.offset for p in params], np.int64).tobytes(),
                                np.int64)
        for slot, value in (("cell", cell), ("num_layers", L), ("hidden_size", H),
                            ("vocab_size", V), ("dtype", dt), ("params", tuple(params)),
                            ("size", offset), ("offsets", offsets),
                            ("_index", {p.name: p for p in params}),
                            ("_recurrent", recurrent),
                            # views() runs at every kernel call of the NumPy twin
                            ("_slices", tuple((p.name, p.offset, p.offset + p.size, p.shape)
                                              for p in params))):
            object.__setattr__(self, slot, value)

    def __init_subclass__(cls, **kwargs):
        # the compiled kernels take a layout's offsets as they are: only this class's own
        raise TypeError("Layout cannot be subclassed")

    def __setattr__(self, name, value):
        raise AttributeError("a Layout is immutable")

    def __delattr__(self, name):
        raise AttributeError("a Layout is immutable")

    def __reduce__(self):
        return (Layout, (self.hidden_size, self.vocab_size, self.dtype.name, self.cell,
                         self.num_layers))

    def _key(self) -> tuple:
        return (self.cell, self.num_layers, self.hidden_size, self.vocab_size, self.dtype.name)

    def __eq__(self, other) -> bool:
        return isinstance(other, Layout) and self._key() == other._key()

    def __hash__(self) -> int:
        return hash(self._key())

    def __repr__(self) -> str:
        return (f"Layout(hidden_size={self.hidden_size}, vocab_size={self.vocab_size}, "
                f"dtype={self.dtype.name!r}, cell={self.cell!r}, "
                f"num_layers={self.num_layers})")

    def __getitem__(self, name: str) -> Param:
        return self._index[name]

    @property
    def names(self) -> tuple[str, ...]:
        """The parameter names, in order."""
        return tuple(p.name for p in self.params)

    def views(self, flat: np.ndarray) -> dict[str, np.ndarray]:
        """Every parameter as a view into the 1-D C-contiguous vector ``flat``."""
        return {name: flat[a:b].reshape(shape) for name, a, b, shape in self._slices}

    def zeros(self) -> np.ndarray:
        """A zeroed vector of this layout whose recurrent matrix (read twice per step
        by the sequential GEMVs) starts on a 64-byte boundary."""
        return aligned_zeros(self.size, self.dtype, at=self[self._recurrent].offset)

    def init(self, flat: np.ndarray, rng: np.random.Generator) -> None:
        """Fill ``flat`` with the initial weights: ``randn * 0.01`` drawn from ``rng`` in
        parameter order, biases zero."""
        for name, p in self.views(flat).items():
            if self._index[name].init == "zeros":
                p[...] = 0
            else:
                p[...] = rng.standard_normal(p.shape) * 0.01
