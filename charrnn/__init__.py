"""charrnn: a fast character-level vanilla RNN language model.

The min-char-rnn model (one-hot characters in, a tanh hidden state through time, a softmax
over the next character, truncated BPTT, Adagrad) with Cython+BLAS kernels and a NumPy
reference twin of every kernel.

>>> import charrnn
>>> vocab = charrnn.Vocab.from_text("hello world")
>>> model = charrnn.CharRNN(vocab, hidden_size=32)
>>> model.backend in charrnn.available_backends()
True
"""

from ._version import __version__
from .backend import BackendUnavailable, available_backends, get_kernels
from .checkpoint import load
from .config import TrainConfig
from .corpus import Corpus
from .errors import (CheckpointError, CorpusError, TrainingDiverged,
                     TrainingInterrupted)
from .model import CharRNN
from .optim import make_optimizer
from .train import TrainResult, train
from .vocab import Vocab
from .workspace import Workspace

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
    "get_kernels",
    "load",
    "make_optimizer",
    "train",
]
