"""The exceptions charrnn raises for bad data, bad checkpoints and failed training.

Each is a subclass of a built-in exception, so code that catches ``ValueError`` (or
``FloatingPointError``, ``KeyboardInterrupt``) keeps working.
"""

from __future__ import annotations

import os

__all__ = ["CharRNNError", "CorpusError", "CheckpointError", "TrainingDiverged",
           "TrainingInterrupted"]


class CharRNNError(Exception):
    """Base class of the errors charrnn raises on purpose (a mix-in for ``except``)."""


class CorpusError(CharRNNError, ValueError):
    """A training text cannot be used: not valid UTF-8, empty, or too short."""


class CheckpointError(CharRNNError, ValueError):
    """A file is not a valid charrnn checkpoint (corrupt, truncated, wrong version, ...)."""


class TrainingDiverged(CharRNNError, FloatingPointError):
    """The loss or the gradient norm became NaN or infinite; no update was applied.

    Attributes
    ----------
    step : int
        The training step (counting from 1) whose loss or gradient was not finite.
    loss : float
        That step's loss per character (nats), possibly NaN or infinite.
    grad_norm : float
        That step's global gradient norm, possibly NaN or infinite (NaN when the
        divergence showed in the validation loss or the parameters instead).
    checkpoint : str or None
        The last good checkpoint on disk, left untouched, if training wrote one.
    """

    def __init__(self, step: int, loss: float, grad_norm: float,
                 checkpoint: str | os.PathLike | None = None, detail: str | None = None
                 ) -> None:
        self.step, self.loss, self.grad_norm = int(step), float(loss), float(grad_norm)
        self.checkpoint = None if checkpoint is None else os.fspath(checkpoint)
        if detail is None:
            detail = (f"loss {self.loss:.4g} nats/char, gradient norm {self.grad_norm:.4g}; "
                      f"no update was applied")
        msg = f"training diverged at step {self.step}: {detail}"
        if self.checkpoint:
            msg += f"; the last good checkpoint is {self.checkpoint}"
        super().__init__(msg)


class TrainingInterrupted(KeyboardInterrupt):
    """Training stopped on Ctrl-C after finishing its current step.

    A ``KeyboardInterrupt`` (and not an ``Exception``), so a broad ``except Exception``
    does not swallow the user's Ctrl-C.

    Attributes
    ----------
    step : int
        The number of steps trained when it stopped.
    checkpoint : str or None
        Where the state was saved (atomically), if a checkpoint path was given.
    """

    def __init__(self, step: int, checkpoint: str | os.PathLike | None = None) -> None:
        self.step = int(step)
        self.checkpoint = None if checkpoint is None else os.fspath(checkpoint)
        msg = f"training interrupted after step {self.step}"
        if self.checkpoint:
            msg += f"; checkpoint written to {self.checkpoint}"
        super().__init__(msg)
