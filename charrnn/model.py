"""CharRNN: a character-level RNN language model (min-char-rnn's vanilla tanh RNN, or an
LSTM or GRU, in stacks), with its parameters in one flat buffer.

The parameters (for the 1-layer vanilla RNN ``Wxh, Whh, Why, bh, by``, the classic names
and shapes; see :mod:`charrnn.layout` for the others) are views into one contiguous
vector ``theta``, and their gradients views into ``grad``, laid out by the model's
:class:`~charrnn.layout.Layout`, so clipping and the optimizer update are single fused
passes over all parameters.
"""

from __future__ import annotations

import threading
from types import MappingProxyType

import numpy as np

from . import checkpoint, config, sampling
from .data.vocab import Vocab
from .config import check_dropout
from .kernels.backend import get_kernels
from .layout import Layout, is_classic
from .limits import INT_MAX
from .torch_io import from_torch
from .training import run as training_run
from .workspace import Workspace


class CharRNN:
    """A character-level RNN language model: ``num_layers`` layers of a cell, then a
    softmax over the next character.

    Parameters
    ----------
    vocab : Vocab or str
        The vocabulary (a ``str`` is taken as its characters).
    hidden_size : int
        H, the number of hidden units of each layer.
    dtype : {"float64", "float32"}
    seed : int
        Seed of the ``numpy.random.Generator`` behind the initial weights.
    backend : {"auto", "cython", "numpy"}
        Which kernels run the math; see :func:`charrnn.available_backends`.
    cell : {"rnn", "lstm", "gru"}
        min-char-rnn's tanh RNN, an LSTM or a GRU (PyTorch's gate order and biases).
    num_layers : int
        L, layers of the cell stacked.
    dropout : float
        The inverted-dropout rate in [0, 1) that training applies to the input of every
        layer above the first and of the output layer (never to the recurrent path).
        Evaluation, scoring and sampling use no dropout.

    Notes
    -----
    The defaults are min-char-rnn's model (``config.CLASSIC_MODEL``: a 1-layer tanh RNN,
    H=100, float64), not the training defaults of ``charrnn.train`` and the command line
    (``config.HIDDEN_SIZE``, ``config.CELL``, ...), which a model built by them takes.

    The carried state of B streams is one (B, ``state_size``) array: each layer's h, and
    an LSTM layer's c after its h (see :meth:`charrnn.layout.Layout.state_views`). For the
    1-layer RNN it is min-char-rnn's (B, H) h.

    A model may be shared between threads: its kernel calls take a lock, so two threads
    using one model run one after the other. Separate models run in parallel.
    """

    def __init__(self, vocab: Vocab | str,
                 hidden_size: int = config.CLASSIC_MODEL["hidden_size"],
                 dtype=config.CLASSIC_MODEL["dtype"], seed: int = 0,
                 backend: str = "auto", cell: str = "rnn", num_layers: int = 1,
                 dropout: float = 0.0) -> None:
        if isinstance(vocab, str):
            vocab = Vocab(vocab)
        if not isinstance(vocab, Vocab):
            raise TypeError(f"vocab must be a Vocab or a str, not {type(vocab).__name__}")
        self.layout = Layout(hidden_size, len(vocab), dtype, cell, num_layers)
        self.dropout = check_dropout(dropout)
        self.vocab = vocab
        self.dtype = self.layout.dtype
        self.hidden_size = self.layout.hidden_size
        self.vocab_size = self.layout.vocab_size
        self.cell = self.layout.cell
        self.num_layers = self.layout.num_layers
        self.state_size = self.layout.state_size
        self.seed = seed
        self._K = get_kernels(backend)
        self.theta = self.layout.zeros()
        self.grad = self.layout.zeros()
        self._params = self.layout.views(self.theta)
        self._grads = self.layout.views(self.grad)
        self.layout.init(self.theta, np.random.default_rng(seed))
        self._ws: Workspace | None = None
        self._lock = threading.RLock()

    # ------------------------------------------------------------------ properties

    @property
    def backend(self) -> str:
        """The name of the active backend: "cython" or "numpy"."""
        return self._K.NAME

    @property
    def kernels(self):
        """The active kernel module (``charrnn._kernels`` or ``charrnn.kernels.reference``)."""
        return self._K

    def set_backend(self, backend: str) -> None:
        """Switch the kernels that run this model; the parameters stay as they are."""
        self._K = get_kernels(backend)

    @property
    def params(self) -> MappingProxyType:
        """The parameters by name (writable views into ``theta``): ``Wxh, Whh, Why, bh,
        by`` for the 1-layer RNN, else ``Wx0, Wh0, b0`` (a GRU: ``bx0, bh0``) for each layer
        in turn, then ``Why, by``."""
        return MappingProxyType(self._params)

    @property
    def grads(self) -> MappingProxyType:
        """The gradient views into ``grad``, filled by the last ``loss_and_grads``."""
        return MappingProxyType(self._grads)

    @property
    def num_params(self) -> int:
        return self.theta.size

    def describe(self) -> str:
        """The model in a few words, e.g. ``"lstm, 2 layers, H=512, dropout 0.2"``."""
        L = self.num_layers
        return (f"{self.cell}, {L} layer{'s' if L > 1 else ''}, H={self.hidden_size}"
                + (f", dropout {self.dropout:g}" if self.dropout else ""))

    def __repr__(self) -> str:
        deep = (f", cell={self.cell!r}, num_layers={self.num_layers}"
                if not is_classic(self.cell, self.num_layers) else "")
        drop = f", dropout={self.dropout:g}" if self.dropout else ""
        return (f"CharRNN(V={self.vocab_size}, hidden_size={self.hidden_size}{deep}{drop}, "
                f"dtype={self.dtype.name}, backend={self.backend!r})")

    # ------------------------------------------------------------------ inputs

    def _ids(self, a, name: str) -> np.ndarray:
        if a is None:
            raise TypeError(f"{name} must be a sequence of ids, not None")
        arr = np.asarray(a)
        if arr.size == 0:
            raise ValueError(f"{name} is empty")
        if arr.dtype == object or arr.dtype.kind not in "iub":
            raise TypeError(f"{name} must hold integer ids, not {arr.dtype}")
        if arr.dtype.kind == "b":
            raise TypeError(f"{name} must hold integer ids, not bool")
        if arr.ndim not in (1, 2):
            raise ValueError(f"{name} must be 1-D (T,) or 2-D (B, T), got shape {arr.shape}")
        # the kernels index with 32-bit BLAS ints: refuse before converting or allocating
        n, widest = arr.size, max(self.hidden_size, self.vocab_size)
        if n > INT_MAX or n * widest > INT_MAX:
            raise ValueError(f"{name} of shape {arr.shape} is too large: the chunk's "
                             f"(steps x streams x {widest}) arrays need 2**31 or more "
                             f"elements; split it into smaller chunks")
        bad = np.flatnonzero((arr < 0) | (arr >= self.vocab_size))
        if bad.size:
            pos = [int(p) for p in np.unravel_index(bad[0], arr.shape)]
            raise ValueError(f"{name}{pos} = {arr.flat[bad[0]]} is not a valid id in "
                             f"[0, {self.vocab_size})")
        return np.ascontiguousarray(arr, dtype=np.int32)

    def _inputs(self, inputs, targets, hprev):
        X, Y = self._ids(inputs, "inputs"), self._ids(targets, "targets")
        if X.shape != Y.shape:
            raise ValueError(f"inputs and targets differ in shape: {X.shape} vs {Y.shape}")
        single = X.ndim == 1
        if single:
            X, Y = X[None, :], Y[None, :]
        B, H = X.shape[0], self.state_size
        if hprev is None:
            h0 = np.zeros((B, H), self.dtype)
        else:
            h = np.asarray(hprev)
            if h.dtype.kind not in "fiu":
                raise TypeError(f"hprev must be a float array, not {h.dtype}")
            want = (H,) if single else (B, H)
            if h.shape != want:
                raise ValueError(f"hprev must have shape {want}, got {h.shape}")
            if not np.all(np.isfinite(h)):
                raise ValueError("hprev holds NaN or infinite values")
            h0 = np.ascontiguousarray(h, dtype=self.dtype).reshape(B, H)
        return X, Y, h0, single

    def workspace(self, B: int, T: int) -> Workspace:
        """A workspace for (B, T) chunks, reused while it is large enough."""
        layout = self.layout
        if self._ws is None or not self._ws.fits(B, T, self.hidden_size, self.vocab_size,
                                                 self.dtype, layout.cell, layout.num_layers):
            self._ws = Workspace.for_layout(layout, B, T)
        return self._ws

    # ------------------------------------------------------------------ the math

    def loss_and_grads(self, inputs, targets, hprev=None):
        """The classic ``lossFun``: loss, gradients and the last hidden state.

        Parameters
        ----------
        inputs, targets : array_like of int
            (T,) ids for one stream, as in min-char-rnn, or (B, T) for B streams.
        hprev : array_like, optional
            The state before the first step: (S,) or (B, S), S = ``state_size`` (H for
            the 1-layer RNN). Zeros when omitted.

        Returns
        -------
        loss : float
            Summed over the T steps and averaged over the B streams, in nats.
        grads : dict of ndarray
            The gradients keyed like ``params`` (raw, unclipped copies), without dropout.
        h_last : ndarray
            The state after the last step, (S,) or (B, S).
        """
        X, Y, h0, single = self._inputs(inputs, targets, hprev)
        with self._lock:
            loss, hlast = self._loss_and_grads(X, Y, h0)
            grads = {k: v.copy() for k, v in self._grads.items()}
        return loss, grads, (hlast[0] if single else hlast)

    def loss(self, inputs, targets, hprev=None):
        """Forward-only: ``(loss, h_last)`` with no gradient work."""
        X, Y, h0, single = self._inputs(inputs, targets, hprev)
        with self._lock:
            hlast = np.empty_like(h0)
            L = self._K.loss(self.layout, self.theta, X, Y, h0, hlast,
                             self.workspace(*X.shape))
        return L, (hlast[0] if single else hlast)

    def _loss_and_grads(self, X: np.ndarray, Y: np.ndarray, h0: np.ndarray,
                        hlast: np.ndarray | None = None, masks: np.ndarray | None = None):
        """The unchecked fast path: int32 (B, T) ids; gradients land in ``self.grad``.

        ``hlast`` may be ``h0`` itself to carry the state in place; ``masks`` are the
        dropout masks (:mod:`charrnn.dropout`). Call under the lock.
        """
        if hlast is None:
            hlast = np.empty_like(h0)
        L = self._K.loss_and_grads(self.layout, self.theta, self.grad, X, Y, h0, hlast,
                                   self.workspace(*X.shape), masks)
        return L, hlast

    def _train_step(self, X: np.ndarray, Y: np.ndarray, h: np.ndarray, rule: str,
                    state: tuple, lr: float, hyper: tuple, clip: float, max_norm: float,
                    masks: np.ndarray | None = None):
        """The kernels' ``train_step`` on this model's flat ``theta`` and ``grad``: int32
        (B, T) ids, the state ``h`` carried in place, the dropout ``masks``. Call under
        the lock; see :meth:`charrnn.optim.Optimizer.train_step`."""
        return self._K.train_step(self.layout, self.theta, self.grad, X, Y, h,
                                  self.workspace(*X.shape), rule, state, lr, hyper, clip,
                                  max_norm, masks)

    # ------------------------------------------------------------------ training, sampling, files
    # Thin wrappers: the work lives in charrnn.training, charrnn.sampling, charrnn.checkpoint.

    def fit(self, data=None, **kwargs):
        """Train this model on a text; see :func:`charrnn.train` for every control.

        A model that was trained before, or loaded from a checkpoint, continues exactly
        where it stopped (optimizer state, data position, carried state).

        Returns
        -------
        charrnn.TrainResult
        """
        return training_run.train(data, self, **kwargs)

    def sample(self, n: int, prime: str = "", temperature: float = config.TEMPERATURE,
               top_k=None, seed=None, skip_unknown: bool = False) -> str:
        """``n`` characters drawn after ``prime``; the same seed gives the same text.

        See :func:`charrnn.sampling.sample`.
        """
        return sampling.sample(self, n, prime, temperature, top_k, seed, skip_unknown)

    def generate(self, n=None, prime: str = "", temperature: float = config.TEMPERATURE,
                 top_k=None, seed=None, skip_unknown: bool = False):
        """An iterator of sampled characters (endless if ``n`` is None); see ``sample``."""
        return sampling.generate(self, n, prime, temperature, top_k, seed, skip_unknown)

    def sample_many(self, k: int, n: int, prime: str = "",
                    temperature: float = config.TEMPERATURE, top_k=None, seed=None,
                    skip_unknown: bool = False) -> list:
        """``k`` independent samples of ``n`` characters, drawn as one batch."""
        return sampling.sample_many(self, k, n, prime, temperature, top_k, seed,
                                    skip_unknown)

    def score(self, text: str, skip_unknown: bool = False) -> float:
        """Bits per character of ``text`` under the model."""
        return sampling.score(self, text, skip_unknown)

    def save(self, path):
        """Write the model (and its training state, if any) to one checkpoint file."""
        return checkpoint.save(path, self, getattr(self, "_train_state", None))

    @classmethod
    def from_checkpoint(cls, parts: checkpoint.Checkpoint,
                        backend: str = "auto") -> "CharRNN":
        """The model of a checkpoint read by :func:`charrnn.checkpoint.read`, with its
        training state (if any) riding along as ``_train_state``.

        Raises
        ------
        CheckpointError
            The file's model cannot be built (e.g. a bad hidden size or backend).
        """
        m = parts.model
        try:
            model = cls(m.vocab, hidden_size=m.hidden_size, dtype=m.dtype, seed=m.seed,
                        backend=backend, cell=m.cell, num_layers=m.num_layers,
                        dropout=m.dropout)
        except (TypeError, ValueError, MemoryError) as e:
            raise parts.error(f"cannot build its model: {e}") from None
        for name, value in m.params.items():
            model.params[name][...] = value
        model._train_state = parts.state
        return model

    @classmethod
    def from_torch_state(cls, state_dict, vocab: Vocab | str, dtype="float32",
                         cell: str | None = None, dropout: float = 0.0, seed: int = 0,
                         backend: str = "auto") -> "CharRNN":
        """A model with the weights of a PyTorch ``word_language_model`` ``RNNModel``.

        Parameters
        ----------
        state_dict : mapping of str to tensor or ndarray
            Its ``state_dict()``: ``rnn.weight_ih_l0``, ... for each layer,
            ``decoder.weight``, ``decoder.bias``, and ``encoder.weight`` if it has an
            embedding (folded into layer 0's input weights). See
            :mod:`charrnn.torch_io` for the bias mapping.
        vocab : Vocab or str
            The characters of its V ids, in order.
        dtype : {"float32", "float64"}
        cell : {"rnn", "lstm", "gru"}, optional
            By default told from the shape of ``rnn.weight_hh_l0`` (a tanh RNN for one
            gate block).
        dropout, seed, backend :
            As the constructor's.

        Raises
        ------
        TypeError, ValueError
            A key is missing or unknown, or a shape does not fit the vocabulary.
        """
        if isinstance(vocab, str):
            vocab = Vocab(vocab)
        if not isinstance(vocab, Vocab):
            raise TypeError(f"vocab must be a Vocab or a str, not {type(vocab).__name__}")
        cell, L, H, params = from_torch(state_dict, len(vocab), cell)
        model = cls(vocab, H, dtype, seed, backend, cell, L, dropout)
        for name, value in params.items():
            model._params[name][...] = value
        return model

    @classmethod
    def load(cls, path, backend: str = "auto") -> "CharRNN":
        """A model from a checkpoint file; see :func:`charrnn.load`."""
        return cls.from_checkpoint(checkpoint.read(path), backend)
