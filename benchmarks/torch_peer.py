"""The PyTorch peer: the same model, loss, clipping and optimizer, written as a PyTorch user
would, for the benchmark comparison. torch is optional: nothing in charrnn imports it.

- model: ``nn.RNN(V, H, nonlinearity="tanh")`` over one-hot inputs (so its input product is
  the classic ``Wxh @ x``) followed by ``nn.Linear(H, V)``; nn.RNN has a second hidden bias
  (``bias_hh``), which only adds H numbers;
- loss: cross-entropy summed over the T steps and averaged over the B streams (charrnn's);
- step: zero_grad, forward, backward, ``clip_grad_value_`` to [-clip, clip] (5, the classic),
  optimizer step; the hidden state is carried (detached) between steps, as in truncated BPTT;
- optimizer: a parameter; Adagrad with lr 0.1 and eps 1e-8 is the classic comparison
  (torch's Adagrad adds eps after the square root, charrnn and the classic inside it);
- sampling: one character at a time with ``torch.multinomial`` under
  ``torch.inference_mode()``, the state carried.
"""

from __future__ import annotations

import math

import numpy as np

from charrnn.config import DEFAULT_LR

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


def make_model(V: int, H: int, dtype: str = "float64", seed: int = 0):
    """``(rnn, out)``: nn.RNN(V, H, tanh) and nn.Linear(H, V) in ``dtype``."""
    torch.manual_seed(seed)
    rnn = nn.RNN(V, H, nonlinearity="tanh").to(_dtype(dtype))
    out = nn.Linear(H, V).to(_dtype(dtype))
    return rnn, out


def load_params(rnn, out, Wxh, Whh, Why, bh, by) -> None:
    """Copy charrnn-shaped parameters in (``bias_hh`` set to zero), for parity checks."""
    with torch.no_grad():
        rnn.weight_ih_l0.copy_(torch.from_numpy(np.asarray(Wxh)))
        rnn.weight_hh_l0.copy_(torch.from_numpy(np.asarray(Whh)))
        rnn.bias_ih_l0.copy_(torch.from_numpy(np.asarray(bh)))
        rnn.bias_hh_l0.zero_()
        out.weight.copy_(torch.from_numpy(np.asarray(Why)))
        out.bias.copy_(torch.from_numpy(np.asarray(by)))


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
    """Loss of a chunk: X, Y (T, B) int64 tensors, h (1, B, H). Returns (loss, h_last).

    L = (1/B) sum_b sum_t -log p_t[b, Y[t, b]], charrnn's convention.
    """
    T, B = X.shape
    V = rnn.input_size
    x = F.one_hot(X, V).to(rnn.weight_ih_l0.dtype)          # (T, B, V)
    hs, h_last = rnn(x, h)                                  # (T, B, H), (1, B, H)
    z = out(hs)                                             # (T, B, V)
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
                 seed: int = 0) -> None:
        if torch is None:
            raise RuntimeError(IMPORT_ERROR)
        self.dtype = np.dtype(dtype).name
        self.B, self.H, self.T, self.V = B, H, T, V
        self.chars_per_call = B * T
        self.rnn, self.out = make_model(V, H, dtype, seed)
        self.params = list(self.rnn.parameters()) + list(self.out.parameters())
        self.opt = make_optimizer(optimizer, self.params)
        self.clip = clip
        ids = torch.from_numpy(synthetic_ids(B, T, V, windows, seed + 1).astype(np.int64))
        # (T, B) windows, the layout nn.RNN takes without batch_first
        self._windows = [(x.T.contiguous(), y.T.contiguous()) for x, y in id_windows(ids, T)]
        self.h = torch.zeros(1, B, H, dtype=_dtype(dtype))
        self._w = 0
        self.last_loss = math.nan

    def step(self):
        X, Y = self._windows[self._w]
        self.opt.zero_grad()
        loss, h = chunk_loss(self.rnn, self.out, X, Y, self.h)
        loss.backward()
        nn.utils.clip_grad_value_(self.params, self.clip)
        self.opt.step()
        self.h = h.detach()
        self._w += 1
        if self._w == len(self._windows):                  # end of the "epoch"
            self._w = 0
            self.h = torch.zeros_like(self.h)
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
                 seed: int = 0) -> None:
        if torch is None:
            raise RuntimeError(IMPORT_ERROR)
        self.dtype = np.dtype(dtype).name
        self.chars_per_call = n_chars
        self.rnn, self.out = make_model(V, H, dtype, seed)
        self.eye = torch.eye(V, dtype=_dtype(dtype))           # one-hot rows
        self.h = torch.zeros(1, 1, H, dtype=_dtype(dtype))
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
