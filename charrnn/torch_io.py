"""Weights to and from PyTorch, without PyTorch: the keys of the ``state_dict`` of
PyTorch's ``word_language_model`` ``RNNModel``, as NumPy arrays.

That model is ``encoder`` (an ``nn.Embedding``), ``rnn`` (``nn.RNN``, ``nn.LSTM`` or
``nn.GRU``) and ``decoder`` (an ``nn.Linear``). A charrnn model has no embedding: layer 0
reads the character itself, so its input weights are the layer's ``weight_ih_l0`` for a
one-hot input (``nn.LSTM(V, H)``, ...). Each parameter's key is its ``torch_name`` in the
model's :class:`~charrnn.layout.Layout`; the biases map as ``design.md`` section 2b says:

    rnn, lstm   bias_ih_l{l} = b{l} (bh for the 1-layer RNN), bias_hh_l{l} = 0
                (importing: b{l} = bias_ih_l{l} + bias_hh_l{l})
    gru         bias_ih_l{l} = bx{l}, bias_hh_l{l} = bh{l}

Importing a model with an embedding folds it into layer 0's input weights,
``Wx0 = weight_ih_l0 @ encoder.weight.T`` (G*H, V): the same function, since
``Wx0[:, x]`` is then ``weight_ih_l0 @ encoder.weight[x]``.

PyTorch's tanh ``nn.RNN`` is charrnn's rnn cell; a ReLU ``nn.RNN`` has the same keys and
shapes and cannot be told apart from its weights: import only tanh models.
"""

from __future__ import annotations

import re
from typing import Any

import numpy as np

from .config import CELLS
from .layout import GATES, Layout

_CELL_OF_GATES = {GATES[c]: c for c in CELLS}
_LAYER_KEY = re.compile(r"rnn\.weight_ih_l(\d+)$")


def to_torch(layout: Layout, theta: np.ndarray) -> dict[str, np.ndarray]:
    """The parameters ``theta`` of ``layout``'s model under the keys of a PyTorch
    ``RNNModel`` ``state_dict`` (copies, in the model's dtype)."""
    out = {}
    for name, value in layout.views(theta).items():
        out[layout[name].torch_name] = value.copy()
    GH = layout.gates * layout.hidden_size
    for l in range(layout.num_layers):
        out.setdefault(f"rnn.bias_hh_l{l}", np.zeros(GH, layout.dtype))
    return dict(sorted(out.items(), key=lambda kv: _order(kv[0])))


def _order(key: str) -> tuple:
    # PyTorch's own order: encoder, the rnn layer by layer (weight_ih, weight_hh, bias_ih,
    # bias_hh), decoder
    m = re.match(r"rnn\.(weight|bias)_(ih|hh)_l(\d+)$", key)
    if m:
        return (1, int(m.group(3)), m.group(1) == "bias", m.group(2) == "hh")
    return (0 if key.startswith("encoder") else 2, 0, False, key == "decoder.bias")


def _array(state: dict, key: str) -> np.ndarray:
    v = state[key]
    if hasattr(v, "detach"):                    # a torch.Tensor, without importing torch
        v = v.detach().cpu().numpy()
    a = np.asarray(v)
    if a.dtype.kind not in "fiu":
        raise TypeError(f"state_dict[{key!r}] must hold numbers, not {a.dtype}")
    a = a.astype(np.float64)
    if not np.all(np.isfinite(a)):
        raise ValueError(f"state_dict[{key!r}] holds NaN or infinite values")
    return a


def _shape(key: str, a: np.ndarray, want: tuple) -> None:
    if a.shape != want:
        raise ValueError(f"state_dict[{key!r}] has shape {a.shape}, expected {want}")


def from_torch(state: dict, vocab_size: int,
               cell: str | None = None) -> tuple[str, int, int, dict[str, np.ndarray]]:
    """Read a PyTorch ``RNNModel`` ``state_dict`` (tensors or arrays).

    Parameters
    ----------
    state : mapping
        The keys :func:`to_torch` writes, with or without ``encoder.weight`` and with or
        without the rnn's biases (``bias=False``: zeros). Other keys are an error.
    vocab_size : int
        V, the rows of ``decoder.weight``.
    cell : {"rnn", "lstm", "gru"}, optional
        The cell kind; by default told from the gate blocks of ``weight_hh_l0``
        (1: rnn, 4: lstm, 3: gru).

    Returns
    -------
    (cell, num_layers, hidden_size, params)
        ``params``: float64 arrays keyed by charrnn's parameter names.
    """
    if not hasattr(state, "keys"):
        raise TypeError(f"state_dict must be a mapping, not {type(state).__name__}")
    keys = set(state.keys())
    for k in keys:
        if not isinstance(k, str):
            raise TypeError(f"state_dict keys must be str, not {type(k).__name__}")
    layers = sorted(int(m.group(1)) for k in keys if (m := _LAYER_KEY.match(k)))
    L = len(layers)
    if L == 0 or layers != list(range(L)):
        raise ValueError("state_dict has no rnn.weight_ih_l0 .. rnn.weight_ih_l{L-1}: not "
                         "the state_dict of a word_language_model RNNModel")
    for k in ("rnn.weight_hh_l0", "decoder.weight", "decoder.bias"):
        if k not in keys:
            raise ValueError(f"state_dict has no {k!r}")
    Wh0 = _array(state, "rnn.weight_hh_l0")
    if Wh0.ndim != 2 or Wh0.shape[1] < 1 or Wh0.shape[0] % Wh0.shape[1]:
        raise ValueError(f"state_dict['rnn.weight_hh_l0'] has shape {Wh0.shape}, not "
                         f"(G*H, H)")
    H = Wh0.shape[1]
    G = Wh0.shape[0] // H
    if cell is None:
        if G not in _CELL_OF_GATES:
            raise ValueError(f"rnn.weight_hh_l0 has {G} gate blocks of H={H} rows: not an "
                             f"RNN (1), LSTM (4) or GRU (3)")
        cell = _CELL_OF_GATES[G]
    elif cell not in CELLS:
        raise ValueError(f"cell must be one of {', '.join(CELLS)}, not {cell!r}")
    elif GATES[cell] != G:
        raise ValueError(f"rnn.weight_hh_l0 has {G} gate blocks of H={H} rows, and a "
                         f"{cell} has {GATES[cell]}")
    layout = Layout(H, vocab_size, "float64", cell, L)
    GH, V = G * H, vocab_size
    known = {"decoder.weight", "decoder.bias", "encoder.weight"}
    params: dict[str, np.ndarray] = {}
    enc = None
    if "encoder.weight" in keys:
        enc = _array(state, "encoder.weight")                   # (V, E)
        if enc.ndim != 2 or enc.shape[0] != V:
            raise ValueError(f"state_dict['encoder.weight'] has shape {enc.shape}, "
                             f"expected ({V}, E)")
    for l, names in enumerate(layout.layers):
        ih, hh = f"rnn.weight_ih_l{l}", f"rnn.weight_hh_l{l}"
        bih, bhh = f"rnn.bias_ih_l{l}", f"rnn.bias_hh_l{l}"
        known |= {ih, hh, bih, bhh}
        if hh not in keys:
            raise ValueError(f"state_dict has no {hh!r}")
        Wx, Wh = _array(state, ih), _array(state, hh)
        if l == 0 and enc is not None:
            _shape(ih, Wx, (GH, enc.shape[1]))
            Wx = Wx @ enc.T                                     # (G*H, V): the fold
        _shape(ih, Wx, (GH, V if l == 0 else H))
        _shape(hh, Wh, (GH, H))
        biases = []
        for k in (bih, bhh):
            b = _array(state, k) if k in keys else np.zeros(GH)
            _shape(k, b, (GH,))
            biases.append(b)
        params[names.Wx], params[names.Wh] = Wx, Wh
        if cell == "gru":
            params[names.bx], params[names.bh] = biases
        else:
            params[names.bx] = biases[0] + biases[1]
    extra = sorted(keys - known)
    if extra:
        raise ValueError(f"state_dict has keys a {cell} RNNModel does not: "
                         f"{', '.join(extra[:5])}")
    params["Why"] = _array(state, "decoder.weight")
    _shape("decoder.weight", params["Why"], (V, H))
    params["by"] = _array(state, "decoder.bias")
    _shape("decoder.bias", params["by"], (V,))
    return cell, L, H, params


def export_torch(model: Any) -> dict[str, np.ndarray]:
    """A model's weights keyed like the ``state_dict`` of PyTorch's
    ``word_language_model`` ``RNNModel``: ``rnn.weight_ih_l0``, ``rnn.weight_hh_l0``,
    ``rnn.bias_ih_l0``, ``rnn.bias_hh_l0``, ... for each layer, ``decoder.weight``,
    ``decoder.bias``. (No ``encoder.weight``: a charrnn model reads characters directly,
    so ``rnn`` takes one-hot inputs of size V.)

    Load it into PyTorch with ``{k: torch.from_numpy(v) for k, v in ...items()}`` and
    ``load_state_dict`` of a module with ``rnn = nn.LSTM(V, H, L)`` (``nn.RNN``,
    ``nn.GRU``) and ``decoder = nn.Linear(H, V)``.

    Parameters
    ----------
    model : CharRNN

    Returns
    -------
    dict of str to ndarray
        Copies, in the model's dtype.
    """
    with model._lock:
        return to_torch(model.layout, model.theta)
