"""The defaults, in one place, and the training configuration: every control of a run.

The defaults of the command line, of :func:`charrnn.train`, of sampling and of the
optimizers are the module constants below; the CLI's help is generated from them.
``CLASSIC`` is min-char-rnn's own setting (H=100, T=25, B=1, Adagrad at lr 0.1,
element-wise clipping to [-5, 5], a constant lr), one flag away as ``--classic``. This
module imports nothing of charrnn but the size bound (:mod:`charrnn.limits`): everything
else may read it.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass, fields

import numpy as np

from .limits import INT_MAX

# ----------------------------------------------------------------------------- defaults

# The command line's defaults: the best validation loss on tinyshakespeare in a 10-minute
# run on a 2-core CPU, among the measured runs in the README's Quality section.
HIDDEN_SIZE = 512           # H
CELL = "lstm"               # the recurrent cell, one of CELLS
NUM_LAYERS = 1              # L, layers of the cell stacked
DROPOUT = 0.25              # the dropout rate between layers and before the output layer
BATCH_SIZE = 64             # B, parallel streams
SEQ_LENGTH = 100            # T, steps of truncated BPTT
OPTIMIZER = "adam"
LR = None                   # None: the optimizer's own default, DEFAULT_LR below
CLIP_KIND = "norm"          # "value" (element-wise, the classic), "norm" (global) or None
CLIP = 5.0
LR_DECAY = 0.85             # multiply the lr by this ...
LR_DECAY_EVERY = "epoch"    # ... every so many steps, or once per pass over the text,
LR_DECAY_AFTER = 6          # ... after this many steps (or passes) at the full rate
DTYPE = "float32"
DTYPES = ("float32", "float64")
CELLS = ("rnn", "lstm", "gru")  # tanh RNN (min-char-rnn's), LSTM, GRU (design.md 2b)
TIME_BUDGET = 180.0         # seconds, when neither steps nor a time budget is given
EVAL_EVERY = 250            # steps between evaluations (and checkpoint writes)
LOG_EVERY = 100             # steps between progress lines
SAMPLE_EVERY = 1000         # steps between printed samples
SAMPLE_LENGTH = 200         # characters per printed sample
TEMPERATURE = 1.0           # of sampling: the model's own distribution
VAL_FRACTION = 0.1          # the last 10% of the text (as nanoGPT's shakespeare_char)
CHECKPOINT = "charrnn.ckpt.npz"
BACKENDS = ("auto", "cython", "numpy")  # auto: $CHARRNN_BACKEND, else compiled if built
ENCODINGS = ("utf-8", "latin-1")  # of training texts (latin-1: any bytes, one char each)
# the update rules' hyper-parameters (charrnn.kernels.rules names them)
EPS = 1e-8                  # Adagrad, RMSprop, Adam
RHO = 0.99                  # RMSprop
BETA1 = 0.9                 # Adam
BETA2 = 0.999
STDLIB_CHARS = 2_000_000   # size of the built-in corpus (Python standard library source)

# Evaluation cuts the validation text into up to EVAL_MAX_STREAMS streams of at least
# EVAL_MIN_STREAM characters (so the result depends on the text only) and runs the
# forward-only kernel over EVAL_CHUNK steps at a time.
EVAL_MAX_STREAMS = 16
EVAL_MIN_STREAM = 2048
EVAL_CHUNK = 128

# Each optimizer's default learning rate (the keys are the optimizers there are), and the
# clipping rules.
DEFAULT_LR = {"adagrad": 0.1, "sgd": 0.1, "rmsprop": 2e-3, "adam": 2e-3}
CLIP_KINDS = ("value", "norm", None)

# min-char-rnn's model: a CharRNN built without sizes (NumPy's float64, as the original)
CLASSIC_MODEL = {"hidden_size": 100, "dtype": "float64"}
CLASSIC = {"hidden_size": CLASSIC_MODEL["hidden_size"], "cell": "rnn", "num_layers": 1,
           "dropout": 0.0, "seq_length": 25, "batch_size": 1, "optimizer": "adagrad",
           "lr": 0.1, "clip_kind": "value", "clip": 5.0, "lr_decay": 1.0}


def _is_int(x) -> bool:
    return isinstance(x, (int, np.integer)) and not isinstance(x, bool)


def _is_num(x) -> bool:
    return isinstance(x, (int, float, np.integer, np.floating)) and not isinstance(x, bool)


def check_count(name: str, value, lo: int = 1, bounded: bool = True) -> int:
    """``value`` as an int if it is an integer of at least ``lo`` (and, if ``bounded``, at
    most :data:`~charrnn.limits.INT_MAX`), else a ``TypeError`` or ``ValueError``."""
    if not _is_int(value):
        raise TypeError(f"{name} must be an int, not {type(value).__name__}")
    if bounded and not lo <= value <= INT_MAX:
        raise ValueError(f"{name} must be in [{lo}, 2**31), got {value}")
    if value < lo:
        raise ValueError(f"{name} must be >= {lo}, got {value}")
    return int(value)


def check_cell(cell) -> str:
    """``cell`` if it names a cell (:data:`CELLS`), else a ``ValueError``."""
    if not isinstance(cell, str) or cell not in CELLS:
        raise ValueError(f"cell must be one of {', '.join(CELLS)}, not {cell!r}")
    return cell


def check_dropout(p) -> float:
    """``p`` as a float if it is a dropout rate in [0, 1), else a ``TypeError`` or
    ``ValueError``."""
    if not _is_num(p):
        raise TypeError(f"dropout must be a number, not {type(p).__name__}")
    if not 0 <= p < 1:
        raise ValueError(f"dropout must be in [0, 1), got {p}")
    return float(p)


@dataclass
class TrainConfig:
    """Every control of a training run.

    Attributes
    ----------
    hidden_size : int
        H, the number of hidden units (of each layer).
    cell : {"rnn", "lstm", "gru"}
        The recurrent cell: min-char-rnn's tanh RNN, an LSTM or a GRU.
    num_layers : int
        L, layers of the cell stacked; layer l > 0 reads layer l - 1's state.
    dropout : float
        The inverted-dropout rate, in [0, 1), on the input of every layer above the first
        and of the output layer (never on the recurrent path); training only.
    dtype : {"float32", "float64"}
    seed : int
        Seed of the initial weights, the dropout masks and the samples printed during
        training.
    batch_size : int
        B, the number of parallel streams the training text is cut into.
    seq_length : int
        T, the characters per stream per step (the BPTT length).
    optimizer : {"adam", "adagrad", "rmsprop", "sgd"}
    lr : float or None
        Learning rate; None takes the optimizer's default.
    clip_kind : {"norm", "value", None}
        Global-norm clipping, element-wise clipping (the classic) or none.
    clip : float
        The clip threshold.
    lr_decay : float
        Multiply the learning rate by this every ``lr_decay_every`` (1 = constant).
    lr_decay_every : int or "epoch"
        Steps between decays, or ``"epoch"``: once per pass over the training text (so
        a small text, which a run sees many times and starts to overfit, anneals sooner
        than a large one).
    lr_decay_after : int
        Keep the learning rate constant for this many steps (or passes, with
        ``lr_decay_every="epoch"``) before the decay starts.
    steps : int or None
        Steps to train in this call.
    time_budget : float or None
        Seconds to train in this call. With neither ``steps`` nor ``time_budget`` the run
        lasts ``TIME_BUDGET`` seconds; with both it stops at whichever comes first.
    eval_every : int
        Evaluate on the validation text (and write the checkpoint) every so many steps;
        0 evaluates only at the end.
    patience : int or None
        Stop after this many evaluations without a new best validation loss.
    eval_max_chars : int or None
        Evaluate on at most this many validation characters (None: all of them).
    val_fraction : float
        The share of the text, taken from its end, held out for validation.
    log_every : int
        Steps between progress lines and metrics records.
    sample_every : int
        Steps between printed samples (0: none).
    sample_length : int
    sample_temperature : float
    encoding : {"utf-8", "latin-1"}
        How the training file is decoded (latin-1 reads any bytes, one char per byte).
    normalize_newlines : bool
        Turn CRLF and CR line endings into LF.
    """

    hidden_size: int = HIDDEN_SIZE
    cell: str = CELL
    num_layers: int = NUM_LAYERS
    dropout: float = DROPOUT
    dtype: str = DTYPE
    seed: int = 0
    batch_size: int = BATCH_SIZE
    seq_length: int = SEQ_LENGTH
    optimizer: str = OPTIMIZER
    lr: float | None = LR
    clip_kind: str | None = CLIP_KIND
    clip: float = CLIP
    lr_decay: float = LR_DECAY
    lr_decay_every: int | str = LR_DECAY_EVERY
    lr_decay_after: int = LR_DECAY_AFTER
    steps: int | None = None
    time_budget: float | None = None
    eval_every: int = EVAL_EVERY
    patience: int | None = None
    eval_max_chars: int | None = None
    val_fraction: float = VAL_FRACTION
    log_every: int = LOG_EVERY
    sample_every: int = SAMPLE_EVERY
    sample_length: int = SAMPLE_LENGTH
    sample_temperature: float = TEMPERATURE
    encoding: str = "utf-8"
    normalize_newlines: bool = False

    # Controls a model keeps (they shape its parameters), and those a resumed run may not
    # change either (they shape the optimizer state, the carried hidden state and the
    # data position).
    MODEL = ("hidden_size", "cell", "num_layers", "dropout", "dtype")
    FIXED = MODEL + ("batch_size", "seq_length", "optimizer")
    # Controls a resumed run does not inherit: they say how long this call trains.
    PER_CALL = ("steps", "time_budget")

    @classmethod
    def classic(cls, **overrides) -> "TrainConfig":
        """min-char-rnn's settings, with ``overrides`` on top."""
        return cls(**{**CLASSIC, **overrides})

    def replace(self, **changes) -> "TrainConfig":
        return dataclasses.replace(self, **changes)

    def continued(self) -> "TrainConfig":
        """This config for a run that continues this one: without ``PER_CALL``."""
        return self.replace(**{name: None for name in self.PER_CALL})

    def changed(self, other: "TrainConfig", names: tuple[str, ...] = FIXED) -> str | None:
        """The first of ``names`` whose value ``other`` changes, or None.

        Parameters
        ----------
        other : TrainConfig
            The config asked for.
        names : tuple of str
            The controls that may not change: ``FIXED`` when resuming a run, ``MODEL``
            when training a model further without its state.
        """
        return next((n for n in names if getattr(other, n) != getattr(self, n)), None)

    @property
    def learning_rate(self) -> float:
        """The base learning rate (``lr`` or the optimizer's default)."""
        return DEFAULT_LR[self.optimizer] if self.lr is None else float(self.lr)

    def lr_at(self, step: int, epoch: int = 0) -> float:
        """The learning rate of update number ``step + 1``, made in pass ``epoch``.

        ``lr * lr_decay ** n`` with ``n = max(0, step - lr_decay_after) //
        lr_decay_every``, or ``n = max(0, epoch - lr_decay_after)`` when
        ``lr_decay_every`` is ``"epoch"``.
        """
        if self.lr_decay == 1.0:
            return self.learning_rate
        if self.lr_decay_every == "epoch":
            n = max(0, epoch - self.lr_decay_after)
        else:
            n = max(0, step - self.lr_decay_after) // self.lr_decay_every
        return self.learning_rate * self.lr_decay ** n

    def describe_lr(self) -> str:
        """The learning-rate schedule in words, e.g. ``lr 0.002 x 0.85 every epoch after 6``."""
        text = f"lr {self.learning_rate:g}"
        if self.lr_decay != 1.0:
            every = self.lr_decay_every
            text += f" x {self.lr_decay:g} every " + ("epoch" if every == "epoch"
                                                      else f"{every} steps")
            if self.lr_decay_after:
                text += f" after {self.lr_decay_after}"
        return text

    def validate(self) -> "TrainConfig":
        """Raise ``ValueError``/``TypeError`` naming the first bad control; return self."""
        def pos_int(name, allow_none=False, allow_zero=False):
            v = getattr(self, name)
            if not (v is None and allow_none):
                check_count(name, v, 0 if allow_zero else 1)

        def pos_float(name, allow_none=False, allow_zero=False):
            v = getattr(self, name)
            if v is None and allow_none:
                return
            if not _is_num(v):
                raise TypeError(f"{name} must be a number, not {type(v).__name__}")
            if not (math.isfinite(v) and (v >= 0 if allow_zero else v > 0)):
                raise ValueError(f"{name} must be finite and {'>= 0' if allow_zero else '> 0'}"
                                 f", got {v}")

        for name in ("hidden_size", "num_layers", "batch_size", "seq_length", "log_every",
                     "sample_length"):
            pos_int(name)
        if self.lr_decay_every != "epoch":
            if isinstance(self.lr_decay_every, str):
                raise ValueError(f"lr_decay_every must be a number of steps or 'epoch', "
                                 f"not {self.lr_decay_every!r}")
            pos_int("lr_decay_every")
        pos_int("steps", allow_none=True)
        pos_int("patience", allow_none=True)
        pos_int("eval_max_chars", allow_none=True)
        pos_int("eval_every", allow_zero=True)
        pos_int("lr_decay_after", allow_zero=True)
        pos_int("sample_every", allow_zero=True)
        if not _is_int(self.seed):
            raise TypeError(f"seed must be an int, not {type(self.seed).__name__}")
        if self.seed < 0:
            raise ValueError(f"seed must be >= 0, got {self.seed}")
        pos_float("lr", allow_none=True)
        pos_float("clip")
        pos_float("time_budget", allow_none=True)
        pos_float("sample_temperature", allow_zero=True)
        pos_float("lr_decay")
        if self.lr_decay > 1:
            raise ValueError(f"lr_decay must be in (0, 1], got {self.lr_decay}")
        if not _is_num(self.val_fraction):
            raise TypeError("val_fraction must be a number")
        if not 0 <= self.val_fraction < 1:
            raise ValueError(f"val_fraction must be in [0, 1), got {self.val_fraction}")
        check_cell(self.cell)
        check_dropout(self.dropout)
        if self.dtype not in DTYPES:
            raise ValueError(f"dtype must be 'float32' or 'float64', not {self.dtype!r}")
        if self.optimizer not in DEFAULT_LR:
            raise ValueError(f"optimizer must be one of {', '.join(DEFAULT_LR)}, "
                             f"not {self.optimizer!r}")
        if self.clip_kind not in CLIP_KINDS:
            raise ValueError(f"clip_kind must be 'value', 'norm' or None, "
                             f"not {self.clip_kind!r}")
        if self.encoding not in ENCODINGS:
            raise ValueError(f"encoding must be 'utf-8' or 'latin-1', not {self.encoding!r}")
        if not isinstance(self.normalize_newlines, bool):
            raise TypeError("normalize_newlines must be a bool")
        return self

    def to_dict(self) -> dict:
        return {f.name: getattr(self, f.name) for f in fields(self)}

    @classmethod
    def from_dict(cls, d: dict) -> "TrainConfig":
        """A config from ``to_dict`` output; unknown keys are ignored, missing ones default."""
        if not isinstance(d, dict):
            raise TypeError(f"a config must be a dict, not {type(d).__name__}")
        names = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in d.items() if k in names})


def config_fields() -> list[str]:
    """The names of the training controls, in declaration order."""
    return [f.name for f in fields(TrainConfig)]
