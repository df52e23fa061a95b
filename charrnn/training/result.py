"""What a call of :func:`charrnn.train` did: :class:`TrainResult`."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from ..model import CharRNN

LN2 = math.log(2.0)


@dataclass
class TrainResult:
    """What a call of :func:`charrnn.train` did.

    Attributes
    ----------
    model : CharRNN
    step : int
        The model's total step count.
    steps_run : int
        Steps run in this call.
    stopped : str
        "steps", "time" or "early_stop".
    train_loss : float or None
        Mean training loss per character (nats) over the last logging interval.
    val_loss : float or None
        The last validation loss per character (nats).
    best_val_loss : float or None
    best_step : int or None
    chars_per_s : float
        Training throughput of this call (evaluation and saving excluded).
    elapsed : float
        Wall seconds of this call.
    eval_seconds : float
        The part of them spent on validation passes.
    checkpoint, best_checkpoint : str or None
        The files written.
    history : list of dict
        The metrics records (as in the JSON-lines log).
    """

    model: CharRNN
    step: int
    steps_run: int
    stopped: str
    train_loss: float | None
    val_loss: float | None
    best_val_loss: float | None
    best_step: int | None
    chars_per_s: float
    elapsed: float
    eval_seconds: float = 0.0
    checkpoint: str | None = None
    best_checkpoint: str | None = None
    history: list = field(default_factory=list)

    @property
    def best_val_bpc(self) -> float | None:
        """The best validation loss in bits per character."""
        return None if self.best_val_loss is None else self.best_val_loss / LN2
