"""One training step, the one place it is written: the trainer runs it, and the benchmark
times it (``charrnn bench``, ``benchmarks/``).

    X, Y <- the next T ids of each of the B streams       (preallocated int32 buffers)
    masks <- the step's dropout masks, if any            (charrnn.dropout.StepMasks)
    L, norm <- Optimizer.train_step(X, Y, h, lr, masks)   (one kernel call: forward, BPTT
                                                           with h carried in place, the
                                                           global norm, clipping, update)
    stop if L or norm is not finite                       (then nothing was updated)

On K ranks of an MPI job (:mod:`charrnn.training.world`) the kernel's fused step is
split where the gradient must be summed over the ranks:

    L, g <- loss_and_grads(X, Y, h)                       (this rank's B streams)
    g <- sum of g over the ranks; L <- mean of L          (one in-place Allreduce each)
    update with g / K, clipped as the mean gradient       (the 1/K folded into the scale)

A step allocates nothing but a few Python floats (and, with dropout, the masks'
generator).
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

import numpy as np

from ..dropout import StepMasks
from ..errors import TrainingDiverged
from ..optim import clip_args
from .world import SINGLE, World

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
        The walk over the training ids (B streams, T ids per step): this rank's.
    world : World
        The ranks training together; the state's ``h`` holds the streams of all of them.
    """

    def __init__(self, model: CharRNN, state: TrainState, batches: Batches,
                 world: World = SINGLE) -> None:
        cfg = state.config
        self.model, self.state, self.batches, self.world = model, state, batches, world
        B, T = cfg.batch_size, cfg.seq_length
        self.X = np.zeros((B, T), np.int32)          # the step's ids, filled in place
        self.Y = np.zeros((B, T), np.int32)
        self.h = state.h[world.streams(B)]           # this rank's rows: a view
        self.masks = StepMasks(model.layout, B, T, model.dropout, cfg.seed,
                               first=world.streams(B).start)
        self._loss = np.zeros(1)                     # the loss, summed over the ranks
        self.chars = B * T * world.size              # of every rank, per step

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
            masks = self.masks.at(st.step)
            if self.world.parallel:
                L, norm = self._reduced_step(lr, masks)
            else:
                L, norm = st.optimizer.train_step(self.model, self.X, self.Y, self.h,
                                                  cfg.clip_kind, cfg.clip, lr, masks)
        if not (math.isfinite(L) and math.isfinite(norm)):
            raise TrainingDiverged(st.step + 1, L / cfg.seq_length, norm, checkpoint)
        st.step += 1
        st.chars_seen += self.chars
        return L, lr

    def _reduced_step(self, lr: float, masks) -> tuple[float, float]:
        """The step of one rank of several: the loss and the norm are the ones of the
        mean gradient over all the ranks' streams, the same on every rank."""
        model, st, cfg, world = self.model, self.state, self.state.config, self.world
        K = world.size
        L, _ = model._loss_and_grads(self.X, self.Y, self.h, self.h, masks)
        self._loss[0] = L
        world.sum_(model.grad)                       # sum over the ranks of the mean
        world.sum_(self._loss)                       # over each rank's B streams
        L = float(self._loss[0]) / K
        norm, clip, scale = clip_args(model.kernels, model.grad, cfg.clip_kind, cfg.clip,
                                      count=K)
        if math.isfinite(L) and math.isfinite(norm):
            st.optimizer.step(model.kernels, model.theta, model.grad, clip, scale, lr)
        return L, norm
