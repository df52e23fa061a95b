"""Batching: the training ids cut into B contiguous streams, T steps at a time."""

from __future__ import annotations

import numpy as np

from ..errors import CorpusError


class Batches:
    """The training ids cut into B contiguous streams, T steps at a time.

    Stream ``b`` is ``ids[b*S:(b+1)*S]`` with ``S = len(ids) // B``. Each step takes ids
    ``[p, p+T)`` of every stream as inputs and ``[p+1, p+T+1)`` as targets, then moves
    ``p`` on by T. When ``p + T + 1 >= S`` the walk restarts at 0 and the carried state
    must be reset: min-char-rnn's rule, so with B = 1 this is exactly its walk.

    Parameters
    ----------
    ids : ndarray, (N,)
    batch_size, seq_length : int
        B and T.
    position : int
        Where the next step starts in every stream (from a checkpoint).
    epoch : int
        Completed passes (from a checkpoint).
    rank, world_size : int
        Data-parallel training (:mod:`charrnn.training.world`): the text is cut into
        ``world_size * B`` streams and this walk takes streams ``rank*B .. rank*B + B - 1``
        of them, so the K ranks together walk what one process with batch size ``K*B``
        walks.
    """

    def __init__(self, ids: np.ndarray, batch_size: int, seq_length: int,
                 position: int = 0, epoch: int = 0, rank: int = 0,
                 world_size: int = 1) -> None:
        B, T = int(batch_size), int(seq_length)
        N = int(ids.size)
        n = B * int(world_size)                               # streams of all the ranks
        S = N // n
        if S < T + 2:
            raise CorpusError(
                f"the training text is too short: {N:,} characters cannot make {n} "
                f"stream(s) of at least seq_length + 2 = {T + 2}; it needs at least "
                f"{n * (T + 2):,} (use a longer text or a smaller --batch-size or "
                f"--seq-length)")
        self.B, self.T, self.S = B, T, S
        # a view, never a copy
        self.streams = ids[:n * S].reshape(n, S)[rank * B:(rank + 1) * B]
        self.position = int(position) if 0 <= position <= S else 0
        self.epoch = int(epoch)

    @property
    def steps_per_epoch(self) -> int:
        return (self.S - self.T - 2) // self.T + 1

    def next_into(self, X: np.ndarray, Y: np.ndarray) -> bool:
        """Fill the int32 (B, T) buffers with the next chunk; True if the walk restarted
        (the carried state must then be zeroed)."""
        p, T = self.position, self.T
        restart = p + T + 1 >= self.S
        if restart:
            p = 0
            self.epoch += 1
        np.copyto(X, self.streams[:, p:p + T], casting="unsafe")
        np.copyto(Y, self.streams[:, p + 1:p + T + 1], casting="unsafe")
        self.position = p + T
        return restart
