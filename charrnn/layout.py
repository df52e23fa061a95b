"""The parameter layout: the one truth about the flat parameter vector and the state.

A :class:`Layout` knows the cell kind, the number of layers, H, V and the dtype, and from
them the name, shape, offset, initialisation and PyTorch name of every parameter, and the
columns of the carried state. The model, the checkpoints, the optimizers and both kernel
modules ask it; nothing else does the arithmetic. ``CharRNN.theta``, its gradient ``grad``
and every optimizer state array (sized by the layout) share it, so clipping and updates
are single passes over one vector, and a whole training step (``train_step`` in both
kernel modules) takes the layout and the flat vectors.

The 1-layer vanilla RNN is min-char-rnn's, ``design.md`` section 2:

    Wxh (H, V)   Whh (H, H)   Why (V, H)   bh (H,)   by (V,)

one after another, weights drawn as ``randn * 0.01`` in that order, biases zero.

Every other model (an LSTM or GRU, or a stack of L > 1 layers of any cell; section 2b)
has, for each layer l = 0 .. L-1 in turn, with G = 1 (rnn), 4 (lstm) or 3 (gru) gate
blocks of H rows (PyTorch's order: i, f, g, o for the LSTM, r, z, n for the GRU) and In = V
for layer 0, H above it:

    Wx{l} (G*H, In)   input weights (layer 0: column x is the input of char x)
    Wh{l} (G*H, H)    recurrent weights
    b{l}  (G*H,)      rnn and lstm: the one bias
    bx{l}, bh{l} (G*H,) each    gru: the input-side and the hidden-side bias

then the output layer, ``Why (V, H)`` and ``by (V,)``. These are drawn from the generator
in that order as PyTorch initialises ``nn.RNN``/``nn.LSTM``/``nn.GRU`` and ``nn.Linear``:
every entry uniform in [-1/sqrt(H), 1/sqrt(H)] (``init == "uniform"``), but for layer 0's
input weights Wx0, which are N(0, INPUT_STD**2) (``init == "randn"``). A one-hot model
learns its input path from Wx0's columns alone, and under Adam a small Wx0 takes hundreds
of steps to grow: uniform(+-1/sqrt(H)) entries make it learn far slower per step than
the textbook model, whose N(0, 1) embedding feeds its first layer, and INPUT_STD above 1
faster still (``benchmarks/QUALITY.md``). PyTorch's rnn and lstm layers have two biases
whose sum is what the cell adds; the one bias b{l} stands for that sum and is drawn as one
(``init == "uniform+uniform"``: two uniform arrays, added), so its distribution is
PyTorch's. On export b{l} is ``bias_ih`` and ``bias_hh`` is zero.

The carried state of B streams is one C-contiguous (B, state_size) array,
state_size = L*S*H with S = 2 for the LSTM (h, then c) and 1 otherwise: layer l's h is
columns [l*S*H, l*S*H + H) and an LSTM layer's c the H columns after it. For the 1-layer
RNN this is min-char-rnn's (B, H) h. :meth:`Layout.state_views` cuts it.
"""

from __future__ import annotations

import math
from typing import Any, NamedTuple

import numpy as np

from .aligned import aligned_zeros
from .config import CELLS, check_cell, check_count
from .limits import INT_MAX

GATES = {"rnn": 1, "lstm": 4, "gru": 3}     # G: blocks of H rows in Wx, Wh and the biases
INPUT_STD = 4.0                 # Wx0 ~ N(0, INPUT_STD**2) in every model but the classic


def is_classic(cell: str, num_layers: int) -> bool:
    """Whether ``(cell, num_layers)`` is min-char-rnn's model, the 1-layer vanilla RNN
    (``design.md`` section 2: the classic names, init and state)."""
    return cell == "rnn" and num_layers == 1


class Param(NamedTuple):
    """One parameter of a layout."""

    name: str                   # e.g. "Wxh", "Wh1", "by"
    shape: tuple[int, ...]
    offset: int                 # where it starts in the flat vector
    init: str                   # "randn*0.01", "zeros", "randn", "uniform" or
                                # "uniform+uniform"
    torch_name: str             # its key in a PyTorch word_language_model state_dict

    @property
    def size(self) -> int:
        return math.prod(self.shape)


class LayerParams(NamedTuple):
    """One layer's parameters: their names (``Layout.layers``), or the arrays themselves
    (the kernels' views)."""

    Wx: Any                     # input weights (G*H, In)
    Wh: Any                     # recurrent weights (G*H, H)
    bx: Any                     # the bias added to the input side: the one bias of an rnn
                                # or lstm layer (the classic bh), a GRU's bx
    bh: Any                     # a GRU's hidden-side bias; None for the other cells


def _classic_params(H: int, V: int) -> list[tuple[str, tuple[int, ...], str, str]]:
    # the classic names and shapes; nn.RNN(V, H) takes the one-hot input, so Wxh is its
    # weight_ih and bh its bias_ih (its bias_hh is zero)
    return [("Wxh", (H, V), "randn*0.01", "rnn.weight_ih_l0"),
            ("Whh", (H, H), "randn*0.01", "rnn.weight_hh_l0"),
            ("Why", (V, H), "randn*0.01", "decoder.weight"),
            ("bh", (H,), "zeros", "rnn.bias_ih_l0"),
            ("by", (V,), "zeros", "decoder.bias")]


def _stack_params(cell: str, H: int, V: int, L: int) -> list[tuple[str, tuple[int, ...],
                                                                   str, str]]:
    GH = GATES[cell] * H
    params = []
    for l in range(L):
        In = V if l == 0 else H
        params += [(f"Wx{l}", (GH, In), "randn" if l == 0 else "uniform",
                    f"rnn.weight_ih_l{l}"),
                   (f"Wh{l}", (GH, H), "uniform", f"rnn.weight_hh_l{l}")]
        if cell == "gru":
            params += [(f"bx{l}", (GH,), "uniform", f"rnn.bias_ih_l{l}"),
                       (f"bh{l}", (GH,), "uniform", f"rnn.bias_hh_l{l}")]
        else:
            params.append((f"b{l}", (GH,), "uniform+uniform", f"rnn.bias_ih_l{l}"))
    return params + [("Why", (V, H), "uniform", "decoder.weight"),
                     ("by", (V,), "uniform", "decoder.bias")]


def _layer_names(cell: str, L: int) -> tuple[LayerParams, ...]:
    if is_classic(cell, L):
        return (LayerParams("Wxh", "Whh", "bh", None),)
    if cell == "gru":
        return tuple(LayerParams(f"Wx{l}", f"Wh{l}", f"bx{l}", f"bh{l}") for l in range(L))
    return tuple(LayerParams(f"Wx{l}", f"Wh{l}", f"b{l}", None) for l in range(L))


class Layout:
    """Where every parameter of a model lives in its flat vector, and what its state is.

    Parameters
    ----------
    hidden_size : int
        H, hidden units per layer.
    vocab_size : int
        V, the number of characters.
    dtype : {"float32", "float64"}
    cell : {"rnn", "lstm", "gru"}
        The cell kind.
    num_layers : int
        L, the depth of the stack.

    Attributes
    ----------
    params : tuple of Param
        The parameters in the order they lie in the vector.
    size : int
        The length of the vector.
    offsets : ndarray of int64
        Each parameter's offset, in order (read-only): what the compiled kernels read.
    layers : tuple of LayerParams
        Each layer's parameter names (Wx, Wh, bx, bh; bh None but for the GRU), bottom
        first. The output layer is Why, by.
    gates : int
        G: 1 (rnn), 4 (lstm: i, f, g, o) or 3 (gru: r, z, n).
    state_parts : int
        S: 2 for the LSTM (h, c), else 1.
    state_size : int
        L*S*H, the columns of a (B, state_size) state.

    A layout is immutable and compares equal to any layout of the same five values.
    """

    __slots__ = ("cell", "num_layers", "hidden_size", "vocab_size", "dtype", "params",
                 "size", "offsets", "layers", "gates", "state_parts", "state_size",
                 "_index", "_slices", "_state_slices")

    def __init__(self, hidden_size: int, vocab_size: int, dtype="float64", cell: str = "rnn",
                 num_layers: int = 1) -> None:
        H = check_count("hidden_size", hidden_size)
        V = check_count("vocab_size", vocab_size)
        L = check_count("num_layers", num_layers)
        check_cell(cell)
        try:
            dt = np.dtype(dtype)
        except TypeError:
            raise TypeError(f"dtype must be float32 or float64, not {dtype!r}") from None
        if dt != np.float32 and dt != np.float64:         # (native byte order only)
            raise TypeError(f"dtype must be float32 or float64, not {dt}")
        # the size first, in Python ints: a huge L must not build a huge list
        G = GATES[cell]
        n = (G * H * (V + H + (2 if cell == "gru" else 1)) + (L - 1) * G * H
             * (2 * H + (2 if cell == "gru" else 1)) + V * H + V)
        if n > INT_MAX:
            raise ValueError(f"a model of {n} parameters is too large for 32-bit BLAS "
                             f"indices (H={H}, V={V}, cell={cell!r}, num_layers={L})")
        entries = (_classic_params(H, V) if is_classic(cell, L)
                   else _stack_params(cell, H, V, L))
        params, offset = [], 0
        for name, shape, init, torch_name in entries:
            params.append(Param(name, shape, offset, init, torch_name))
            offset += params[-1].size
        assert offset == n
        # from bytes: a read-only array that no one can make writeable again
        offsets = np.frombuffer(np.array([p.offset for p in params], np.int64).tobytes(),
                                np.int64)
        S = 2 if cell == "lstm" else 1
        for slot, value in (("cell", cell), ("num_layers", L), ("hidden_size", H),
                            ("vocab_size", V), ("dtype", dt), ("params", tuple(params)),
                            ("size", offset), ("offsets", offsets),
                            ("layers", _layer_names(cell, L)), ("gates", G),
                            ("state_parts", S), ("state_size", L * S * H),
                            ("_index", {p.name: p for p in params}),
                            # views() and state_views() run at every kernel call of the
                            # NumPy twin
                            ("_slices", tuple((p.name, p.offset, p.offset + p.size, p.shape)
                                              for p in params)),
                            ("_state_slices", tuple(
                                tuple(slice((l * S + s) * H, (l * S + s + 1) * H)
                                      for s in range(S)) for l in range(L)))):
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
        """A zeroed vector of this layout whose first recurrent matrix (Whh, or Wh0: read
        twice per step by the sequential products) starts on a 64-byte boundary."""
        return aligned_zeros(self.size, self.dtype, at=self[self.layers[0].Wh].offset)

    def init(self, flat: np.ndarray, rng: np.random.Generator) -> None:
        """Fill ``flat`` with the initial weights, drawn from ``rng`` in parameter order.

        The classic RNN: ``randn * 0.01``, biases zero. Every other layout: uniform in
        [-1/sqrt(H), 1/sqrt(H)], the one bias of an rnn or lstm layer the sum of two such
        draws, layer 0's input weights N(0, INPUT_STD**2) (the module docstring says why).
        """
        k = 1 / math.sqrt(self.hidden_size)
        for name, p in self.views(flat).items():
            init = self._index[name].init
            if init == "zeros":
                p[...] = 0
            elif init == "randn*0.01":
                p[...] = rng.standard_normal(p.shape) * 0.01
            elif init == "randn":
                p[...] = rng.standard_normal(p.shape) * INPUT_STD
            elif init == "uniform":
                p[...] = rng.uniform(-k, k, p.shape)
            else:                                               # "uniform+uniform"
                p[...] = rng.uniform(-k, k, p.shape) + rng.uniform(-k, k, p.shape)

    def state_views(self, state: np.ndarray) -> tuple[tuple[np.ndarray, ...], ...]:
        """Each layer's part of a (B, state_size) state, bottom first, as column views:
        ``(h,)``, or ``(h, c)`` for the LSTM, each (B, H)."""
        return tuple([tuple([state[:, cols] for cols in layer])
                      for layer in self._state_slices])
