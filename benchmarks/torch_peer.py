"""The PyTorch peer: the same model, loss, clipping and optimizer, written as a PyTorch user
would, for the benchmark comparison. torch is optional: nothing in charrnn imports it.

- model: ``nn.RNN(V, H, L, nonlinearity="tanh")``, ``nn.LSTM(V, H, L)`` or
  ``nn.GRU(V, H, L)`` over one-hot inputs (so layer 0's input product is the classic
  ``Wxh @ x``, which charrnn computes as a column gather), layers above the first reading
  the states of the layer below, followed by ``nn.Linear(H, V)``; the cells' gate order
  and biases are PyTorch's, which charrnn's layout follows (a single bias of charrnn's is
  ``bias_ih`` with ``bias_hh`` zero);
- dropout (training only): PyTorch's own between the layers (``nn.LSTM(dropout=p)``) and
  ``F.dropout`` on the top layer's states before the output layer, where charrnn puts its
  masks (design.md section 2b); none when sampling;
- loss: cross-entropy summed over the T steps and averaged over the B streams (charrnn's);
- step: zero_grad, forward, backward, ``clip_grad_value_`` to [-clip, clip] (5, the classic),
  optimizer step; the state is carried (detached) between steps, as in truncated BPTT;
- optimizer: a parameter; Adagrad with lr 0.1 and eps 1e-8 is the classic comparison
  (torch's Adagrad adds eps after the square root, charrnn and the classic inside it);
- sampling: one character at a time with ``torch.multinomial`` under
  ``torch.inference_mode()``, the state carried.
"""

from __future__ import annotations

import math

import numpy as np

from charrnn.config import CELLS, DEFAULT_LR
from charrnn.torch_io import to_torch

try:
    import torch
    import torch.nn.functional as F
    from torch import nn
    IMPORT_ERROR: str | None = None
except Exception as e:  # torch is optional
    torch = None
    IMPORT_ERROR = f"torch is not importable ({type(e).__name__}: {e})"


def available() -> bool:
    """True when torch imports here."""
    return torch is not None


def version() -> str | None:
    return torch.__version__ if torch is not None else None


def _dtype(dtype: str):
    return {"float32": torch.float32, "float64": torch.float64}[np.dtype(dtype).name]


def make_model(V: int, H: int, dtype: str = "float64", seed: int = 0, cell: str = "rnn",
               num_layers: int = 1, dropout: float = 0.0):
    """``(rnn, out)``: ``nn.RNN(V, H, L, tanh)``, ``nn.LSTM(V, H, L)`` or
    ``nn.GRU(V, H, L)``, and ``nn.Linear(H, V)``, in ``dtype``, PyTorch's initialisation.

    ``rnn.dropout`` is the rate p: PyTorch applies it between the layers, and
    :func:`chunk_loss` on the top layer's states (with one layer, there only).
    """
    torch.manual_seed(seed)
    rnn = recurrent(cell, V, H, num_layers, dropout).to(_dtype(dtype))
    out = nn.Linear(H, V).to(_dtype(dtype))
    return rnn, out


def recurrent(cell: str, input_size: int, H: int, num_layers: int = 1,
              dropout: float = 0.0):
    """``nn.RNN(input_size, H, L, tanh)``, ``nn.LSTM(...)`` or ``nn.GRU(...)`` with
    ``rnn.dropout`` = p (PyTorch's draws from torch's global generator)."""
    if cell not in CELLS:
        raise ValueError(f"cell must be one of {', '.join(CELLS)}, not {cell!r}")
    between = dropout if num_layers > 1 else 0.0
    if cell == "rnn":
        rnn = nn.RNN(input_size, H, num_layers, nonlinearity="tanh", dropout=between)
    else:
        rnn = {"lstm": nn.LSTM, "gru": nn.GRU}[cell](input_size, H, num_layers,
                                                     dropout=between)
    rnn.dropout = float(dropout)        # (one layer: set here, where PyTorch would warn)
    return rnn


def top(rnn, hs):
    """The top layer's states ``hs`` as the output layer reads them: in training, dropped
    out at rate ``rnn.dropout`` (where charrnn's last mask is)."""
    return F.dropout(hs, rnn.dropout) if rnn.dropout and rnn.training else hs


def load_params(rnn, out, layout, theta) -> None:
    """Copy the parameters ``theta`` of charrnn's ``layout`` in, by their PyTorch names
    (``charrnn.torch_io.to_torch``: a single bias of charrnn's is ``bias_ih``, and
    ``bias_hh`` zero)."""
    modules = {"rnn": rnn, "decoder": out}
    with torch.no_grad():
        for key, value in to_torch(layout, theta).items():
            module, attr = key.split(".")
            getattr(modules[module], attr).copy_(torch.from_numpy(value))


def state_dict(rnn, out, encoder=None) -> dict:
    """The model's weights keyed as PyTorch's ``word_language_model`` ``RNNModel`` keys
    them (``encoder.``, ``rnn.``, ``decoder.``): what ``CharRNN.from_torch_state``
    reads."""
    parts = {"encoder": encoder, "rnn": rnn, "decoder": out}
    return {f"{name}.{k}": v for name, m in parts.items() if m is not None
            for k, v in m.state_dict().items()}


def zero_state(rnn, B: int):
    """The zero state of B streams: h (L, B, H), or ``(h, c)`` for an LSTM."""
    h = torch.zeros(rnn.num_layers, B, rnn.hidden_size, dtype=rnn.weight_hh_l0.dtype)
    return (h, torch.zeros_like(h)) if isinstance(rnn, nn.LSTM) else h


def detach_state(h):
    """The state cut from the graph (truncated BPTT)."""
    return tuple(x.detach() for x in h) if isinstance(h, tuple) else h.detach()


def make_optimizer(name: str, params, lr: float | None = None):
    """The torch twin of ``charrnn.make_optimizer(name)``, with charrnn's defaults."""
    lr = DEFAULT_LR[name] if lr is None else lr
    if name == "adagrad":
        return torch.optim.Adagrad(params, lr=lr, eps=1e-8)
    if name == "sgd":
        return torch.optim.SGD(params, lr=lr)
    if name == "rmsprop":
        return torch.optim.RMSprop(params, lr=lr, alpha=0.99, eps=1e-8)
    if name == "adam":
        return torch.optim.Adam(params, lr=lr, betas=(0.9, 0.999), eps=1e-8)
    raise ValueError(f"optimizer must be adagrad, sgd, rmsprop or adam, not {name!r}")


def chunk_loss(rnn, out, X, Y, h):
    """Loss of a chunk: X, Y (T, B) int64 tensors, h the state (``zero_state``'s shape).
    Returns (loss, h_last).

    L = (1/B) sum_b sum_t -log p_t[b, Y[t, b]], charrnn's convention. In training mode
    with ``rnn.dropout`` p > 0, the top layer's states are dropped out at rate p before
    the output layer (the layers below: by PyTorch, between them).
    """
    T, B = X.shape
    V = rnn.input_size
    x = F.one_hot(X, V).to(rnn.weight_ih_l0.dtype)          # (T, B, V)
    hs, h_last = rnn(x, h)                                  # (T, B, H), the state
    z = out(top(rnn, hs))                                   # (T, B, V)
    loss = F.cross_entropy(z.reshape(T * B, V), Y.reshape(T * B), reduction="sum") / B
    return loss, h_last


def synthetic_ids(B: int, T: int, V: int, windows: int, seed: int) -> np.ndarray:
    """(B, windows*T + 1) int32 ids from a seeded generator: B streams of uniform ids."""
    rng = np.random.default_rng(seed)
    return rng.integers(0, V, size=(B, windows * T + 1), dtype=np.int32)


def id_windows(ids: np.ndarray, T: int) -> list[tuple[np.ndarray, np.ndarray]]:
    """The (inputs, targets) views of each step's window, made once so a step copies only."""
    B, n = ids.shape
    return [(ids[:, p:p + T], ids[:, p + 1:p + T + 1]) for p in range(0, n - T, T)]


class TorchTrain:
    """Benchmark workload: ``run(n)`` does n training steps of B streams of T chars."""

    name = "torch"

    def __init__(self, B: int, H: int, T: int, V: int = 65, dtype: str = "float64",
                 optimizer: str = "adagrad", clip: float = 5.0, windows: int = 16,
                 seed: int = 0, cell: str = "rnn", num_layers: int = 1,
                 dropout: float = 0.0) -> None:
        if torch is None:
            raise RuntimeError(IMPORT_ERROR)
        self.dtype = np.dtype(dtype).name
        self.B, self.H, self.T, self.V = B, H, T, V
        self.chars_per_call = B * T
        self.rnn, self.out = make_model(V, H, dtype, seed, cell, num_layers, dropout)
        self.params = list(self.rnn.parameters()) + list(self.out.parameters())
        self.opt = make_optimizer(optimizer, self.params)
        self.clip = clip
        ids = torch.from_numpy(synthetic_ids(B, T, V, windows, seed + 1).astype(np.int64))
        # (T, B) windows, the layout nn.RNN takes without batch_first
        self._windows = [(x.T.contiguous(), y.T.contiguous()) for x, y in id_windows(ids, T)]
        self.h = zero_state(self.rnn, B)
        self._w = 0
        self.last_loss = math.nan

    def step(self):
        X, Y = self._windows[self._w]
        self.opt.zero_grad()
        loss, h = chunk_loss(self.rnn, self.out, X, Y, self.h)
        loss.backward()
        nn.utils.clip_grad_value_(self.params, self.clip)
        self.opt.step()
        self.h = detach_state(h)
        self._w += 1
        if self._w == len(self._windows):                  # end of the "epoch"
            self._w = 0
            self.h = zero_state(self.rnn, self.B)
        return loss

    def run(self, n: int) -> None:
        loss = None
        for _ in range(n):
            loss = self.step()
        if loss is not None:
            value = loss.item()
            if not math.isfinite(value):
                raise FloatingPointError(f"torch: training loss became {value}")
            self.last_loss = value


class TorchSample:
    """Benchmark workload: ``run(n)`` draws n times ``n_chars`` characters, one step at a
    time with ``torch.multinomial`` under ``torch.inference_mode()``, state carried."""

    name = "torch"

    def __init__(self, H: int, V: int = 65, dtype: str = "float64", n_chars: int = 1000,
                 seed: int = 0, cell: str = "rnn", num_layers: int = 1) -> None:
        if torch is None:
            raise RuntimeError(IMPORT_ERROR)
        self.dtype = np.dtype(dtype).name
        self.chars_per_call = n_chars
        self.rnn, self.out = make_model(V, H, dtype, seed, cell, num_layers)
        self.rnn.eval()                                         # (no dropout)
        self.eye = torch.eye(V, dtype=_dtype(dtype))           # one-hot rows
        self.h = zero_state(self.rnn, 1)
        self.ix = torch.zeros((), dtype=torch.int64)
        self.ids = torch.empty(n_chars, dtype=torch.int64)
        self.gen = torch.Generator().manual_seed(seed + 2)

    def sample(self, n: int, temperature: float = 1.0):
        """Draw n ids, advancing ``self.h`` and ``self.ix``; returns the (n,) id tensor."""
        rnn, out, eye, ids, gen = self.rnn, self.out, self.eye, self.ids, self.gen
        h, ix = self.h, self.ix
        with torch.inference_mode():
            for i in range(n):
                x = eye[ix].view(1, 1, -1)                      # (1, 1, V)
                hs, h = rnn(x, h)
                z = out(hs[0])                                  # (1, V)
                p = torch.softmax(z / temperature, dim=-1)
                ix = torch.multinomial(p, 1, generator=gen).view(())
                ids[i] = ix
        self.h, self.ix = h, ix
        return ids[:n]

    def run(self, n: int) -> None:
        for _ in range(n):
            self.sample(self.chars_per_call)
