"""charrnn: fast character-level RNN language models.

The min-char-rnn model (one-hot characters in, a tanh hidden state through time, a softmax
over the next character, truncated BPTT, Adagrad), LSTM and GRU cells and stacks of them,
with Cython+BLAS kernels and a NumPy reference twin of every kernel.

>>> import charrnn
>>> vocab = charrnn.Vocab.from_text("hello world")
>>> model = charrnn.CharRNN(vocab, hidden_size=32)
>>> model.backend in charrnn.available_backends()
True
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING

from ._version import __version__

# The public names, and the module each lives in. They are imported on first use (PEP
# 562), so ``import charrnn`` and the ``charrnn`` command start without loading NumPy and
# SciPy: a Ctrl-C while those load is then the command's own one-line "interrupted".
_EXPORTS = {
    "BackendUnavailable": "kernels.backend", "available_backends": "kernels.backend",
    "get_kernels": "kernels.backend", "load": "api", "TrainConfig": "config",
    "Corpus": "data.corpus", "CheckpointError": "errors", "CorpusError": "errors",
    "TrainingDiverged": "errors", "TrainingInterrupted": "errors", "CharRNN": "model",
    "make_optimizer": "optim", "TrainResult": "training.result", "train": "api",
    "Vocab": "data.vocab", "Workspace": "workspace", "export_torch": "torch_io",
}

if TYPE_CHECKING:
    from .api import load, train
    from .kernels.backend import BackendUnavailable, available_backends, get_kernels
    from .config import TrainConfig
    from .data.corpus import Corpus
    from .data.vocab import Vocab
    from .errors import (CheckpointError, CorpusError, TrainingDiverged,
                         TrainingInterrupted)
    from .model import CharRNN
    from .optim import make_optimizer
    from .torch_io import export_torch
    from .training.result import TrainResult
    from .workspace import Workspace


def __getattr__(name: str):
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(f".{module}", __name__), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_EXPORTS))


__all__ = [
    "__version__",
    "BackendUnavailable",
    "CharRNN",
    "CheckpointError",
    "Corpus",
    "CorpusError",
    "TrainConfig",
    "TrainResult",
    "TrainingDiverged",
    "TrainingInterrupted",
    "Vocab",
    "Workspace",
    "available_backends",
    "export_torch",
    "get_kernels",
    "load",
    "make_optimizer",
    "train",
]
