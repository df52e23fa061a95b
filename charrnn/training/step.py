"""One training step, the one place it is written: the trainer runs it, and the benchmark
times it (``charrnn bench``, ``benchmarks/``).

    X, Y <- the next T ids of each of the B streams       (preallocated int32 buffers)
    L, norm <- Optimizer.train_step(X, Y, h, lr)          (one kernel call: forward, BPTT
                                                           with h carried in place, the
                                                           global norm, clipping, update)
    stop if L or norm is not finite                       (then nothing was updated)

A step allocates nothing but a few Python floats.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

import numpy as np

from ..errors import TrainingDiverged

if TYPE_CHECKING:
    from ..data.batches import Batches
    from ..model import CharRNN
    from ..train_state import TrainState


class Stepper:
    """Training steps of a model over batches, advancing a training state.

    Parameters
    ----------
    model : CharRNN
        Its ``theta`` is updated in place.
    state : TrainState
        Its optimizer, carried state ``h``, config (B, T, clipping, the learning-rate
        schedule), step and character counts. The state's ``h`` is zeroed when the walk
        over the text restarts.
    batches : Batches
        The walk over the training ids (B streams, T ids per step).
    """

    def __init__(self, model: CharRNN, state: TrainState, batches: Batches) -> None:
        cfg = state.config
        self.model, self.state, self.batches = model, state, batches
        B, T = cfg.batch_size, cfg.seq_length
        self.X = np.zeros((B, T), np.int32)          # the step's ids, filled in place
        self.Y = np.zeros((B, T), np.int32)
        self._chars = B * T

    def step(self, checkpoint: str | None = None) -> tuple[float, float]:
        """Train on the next chunk.

        Parameters
        ----------
        checkpoint : str, optional
            The last good checkpoint on disk, which a divergence error names.

        Returns
        -------
        (float, float)
            The chunk's loss (summed over T, averaged over B, in nats) and the learning
            rate of the update.

        Raises
        ------
        TrainingDiverged
            The loss or the gradient norm was NaN or infinite; nothing was updated.
        """
        st, cfg, batches = self.state, self.state.config, self.batches
        with self.model._lock:
            if batches.next_into(self.X, self.Y):
                st.h.fill(0)                         # a new pass over the text: reset
            lr = cfg.lr_at(st.step, batches.epoch)
            L, norm = st.optimizer.train_step(self.model, self.X, self.Y, st.h,
                                              cfg.clip_kind, cfg.clip, lr)
        if not (math.isfinite(L) and math.isfinite(norm)):
            raise TrainingDiverged(st.step + 1, L / cfg.seq_length, norm, checkpoint)
        st.step += 1
        st.chars_seen += self._chars
        return L, lr
