"""The training state: everything besides the parameters that a run needs to continue
exactly (the optimizer, the carried hidden state, the data position, the RNG, the counts).

A checkpoint stores it (:mod:`charrnn.checkpoint`); ``CharRNN._train_state`` carries it
between calls of ``fit``.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from .config import TrainConfig
from .optim import Optimizer


@dataclass
class TrainState:
    """Everything besides the parameters that a run needs to continue exactly.

    Attributes
    ----------
    config : TrainConfig
    optimizer : Optimizer
        With its state arrays and update counter ``t``.
    h : ndarray, (world_size * B, H)
        The hidden state carried per stream: of every rank's streams in a
        data-parallel run (rank r's are rows ``r*B .. r*B + B - 1``).
    step : int
        Updates applied so far.
    epoch, position : int
        Completed passes over the training text and the offset of the next step in
        every stream (see :class:`charrnn.data.Batches`).
    chars_seen : int
    elapsed : float
        Seconds of training so far, over all runs.
    best_val_loss : float or None
        In nats per character.
    best_step : int or None
    bad_evals : int
        Evaluations since the best one (for early stopping).
    rng_state : dict
        ``bit_generator.state`` of the generator that draws the training samples.
    corpus : dict
        The fingerprint of the training text (:attr:`charrnn.data.Corpus.fingerprint`).
    world_size : int
        The processes the run trains on (:mod:`charrnn.training.world`); the walk and
        ``h`` depend on it.
    """

    config: TrainConfig
    optimizer: Optimizer
    h: np.ndarray
    step: int = 0
    epoch: int = 0
    position: int = 0
    chars_seen: int = 0
    elapsed: float = 0.0
    best_val_loss: float | None = None
    best_step: int | None = None
    bad_evals: int = 0
    rng_state: dict = field(default_factory=dict)
    corpus: dict = field(default_factory=dict)
    world_size: int = 1
