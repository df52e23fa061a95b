"""What users call, timed as the suite times the kernels: ``model.sample(n)``,
``model.sample_many(k, n)`` and ``model.score(text)``, each against the BLAS-shape bound
of the kernel calls it makes (``bound.py``), beside the kernel-only workload, so the cost
of the API around the kernels shows as a ratio.
"""

from __future__ import annotations

import numpy as np

import bound
from charrnn.bench import synthetic_vocab
from charrnn.model import CharRNN
from charrnn.sampling import eval_streams
from charrnn.config import EVAL_CHUNK


def trained_scale(model: CharRNN, seed: int = 0) -> CharRNN:
    """Give ``model`` weights of a trained scale, N(0, 1/H): the classic init's 0.01
    makes every distribution nearly uniform, which no trained model has, and the draw's
    search for the sampled id takes longer on a flat distribution than on a peaked one."""
    rng = np.random.default_rng(seed + 1)
    model.theta[:] = rng.standard_normal(model.theta.size) / np.sqrt(model.hidden_size)
    return model


def _model(backend: str, H: int, V: int, dtype: str, seed: int) -> CharRNN:
    return trained_scale(CharRNN(synthetic_vocab(V), H, dtype, seed=seed, backend=backend),
                         seed)


class ApiSample:
    """``model.sample(n, seed=...)``: one call draws ``n`` characters at B = 1."""

    def __init__(self, backend: str, H: int, V: int, dtype: str, n_chars: int,
                 seed: int = 0) -> None:
        self.model = _model(backend, H, V, dtype, seed)
        self.name, self.dtype, self.n = "api", np.dtype(dtype).name, n_chars
        self.chars_per_call = n_chars

    def run(self, n: int) -> None:
        for i in range(n):
            self.model.sample(self.n, seed=i)


class ApiSampleMany:
    """``model.sample_many(k, n, seed=...)``: k samples of n characters as one batch."""

    def __init__(self, backend: str, H: int, V: int, dtype: str, k: int, n_chars: int,
                 seed: int = 0) -> None:
        self.model = _model(backend, H, V, dtype, seed)
        self.name, self.dtype, self.k, self.n = "api", np.dtype(dtype).name, k, n_chars
        self.chars_per_call = k * n_chars

    def run(self, n: int) -> None:
        for i in range(n):
            self.model.sample_many(self.k, self.n, seed=i)


class ApiScore:
    """``model.score(text)`` on a text of ``n_chars`` characters drawn from the model's
    vocabulary (``n_chars - 1`` predictions a call)."""

    def __init__(self, backend: str, H: int, V: int, dtype: str, n_chars: int,
                 seed: int = 0) -> None:
        self.model = _model(backend, H, V, dtype, seed)
        rng = np.random.default_rng(seed + 2)
        self.text = self.model.vocab.decode(rng.integers(0, V, n_chars))
        self.name, self.dtype = "api", np.dtype(dtype).name
        self.chars_per_call = n_chars - 1

    def run(self, n: int) -> None:
        for _ in range(n):
            self.model.score(self.text)


def score_products(H: int, V: int, n_chars: int) -> tuple[list, int]:
    """The forward-only BLAS calls of scoring ``n_chars`` characters, per chunk of
    ``EVAL_CHUNK`` steps over the streams ``evaluate`` cuts the text into, and the
    predictions per chunk."""
    E = eval_streams(n_chars - 1)
    T = min(EVAL_CHUNK, (n_chars - 1) // E)
    return bound.forward_products(E, H, T, V), E * T
