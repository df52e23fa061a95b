"""A learning-speed regression check, cheap enough for every run of the suite.

Training is deterministic per step, so the validation loss after a fixed number of steps
measures how fast the defaults learn (the optimizer, its learning rate and clipping, the
initialisation, the loss normalisation), whatever the machine's speed. A small model on
tinyshakespeare, the default model (cell, layers, dropout) at a small size, with every
other control at its default; the bounds are the losses of measured runs plus a margin
far above the rounding of other BLAS kernels and of the other backend. ``benchmarks/quality_check.py`` is the full-size version. A
change meant to make learning faster or slower moves these bounds: re-measure and say so
in the commit.
"""

from __future__ import annotations

import pytest

import charrnn
from charrnn import config as C

# (B, H, T), steps, and the validation loss (nats/char, first 20,000 characters of the
# validation split) each evaluation step must reach. Measured for the default 1-layer
# LSTM with dropout 0.25 and Wx0 ~ N(0, 16): 2.2321 at step 500 and 2.0819 at step 1000
# (both backends, float32 and float64, within 1e-6). With Wx0 ~ N(0, 1), the default
# until 5 Dec 2026: 2.2410 and 2.0841 (also across 1 and 2 threads and OpenBLAS's Haswell
# and Sandybridge kernels, within 1e-6); the 1-layer RNN, the default until 3 Dec 2026,
# gave 2.3705 and 2.1791.
CONFIG = dict(batch_size=16, hidden_size=64, seq_length=50)
STEPS = 1000
BOUNDS = {500: 2.26, 1000: 2.11}


@pytest.mark.parametrize("backend", ["cython", "numpy"])
def test_the_defaults_learn_as_fast_as_recorded(shared_file, backend):
    if backend not in charrnn.available_backends():
        pytest.skip(f"the {backend} backend is not available")
    text = shared_file("tinyshakespeare.txt")
    model = charrnn.CharRNN(charrnn.Corpus.from_file(text).vocab, CONFIG["hidden_size"],
                            "float32", backend=backend, cell=C.CELL,
                            num_layers=C.NUM_LAYERS, dropout=C.DROPOUT)
    r = charrnn.train(text, model=model, steps=STEPS, eval_every=STEPS // 2,
                      eval_max_chars=20_000, sample_every=0, verbose=False,
                      **{k: v for k, v in CONFIG.items() if k != "hidden_size"})
    got = {h["step"]: h["val_loss"] for h in r.history if h["val_loss"] is not None}
    assert sorted(got) == sorted(BOUNDS)
    for step, bound in BOUNDS.items():
        assert got[step] <= bound, (step, got[step], bound)
