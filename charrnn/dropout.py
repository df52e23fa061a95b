"""Dropout masks: drawn by the Python layer from the seeded generator and passed to the
kernels (the ``masks`` argument of ``loss_and_grads`` and ``train_step``), like the
sampling uniforms, so both backends compute the same numbers (``design.md`` section 2b).

Inverted dropout at rate p: each entry is 0 with probability p and 1/(1-p) otherwise, so a
unit's expected input is unchanged and evaluation runs without masks. Mask l < L-1
multiplies the input of layer l+1 (layer l's h_t), mask L-1 the output layer's input (the
top layer's h_t); nothing touches layer 0's input or the recurrent path.

The uniforms are drawn stream by stream: stream b's L*T*H numbers follow stream b-1's.
A training run draws step s's masks from a generator of its own, keyed by the run's seed
and s (:class:`StepMasks`), so

- a resumed run draws the masks the uninterrupted run would have (nothing to save);
- rank r of a data-parallel run draws the masks of its own streams only (skipping the
  others' numbers), and K ranks drop the units one process with K*B streams drops.
"""

from __future__ import annotations

import numpy as np

from .config import check_dropout
from .layout import Layout

# mixed into every training run's mask generators, so they differ from the other
# generators seeded with the run's seed
_MASK_KEY = 0x6d61736b


def _checked_out(layout: Layout, shape: tuple, out) -> np.ndarray:
    if out is None:
        return np.empty(shape, layout.dtype)
    if (not isinstance(out, np.ndarray) or out.shape != shape or out.dtype != layout.dtype
            or not out.flags.c_contiguous or not out.flags.writeable):
        raise ValueError(f"out must be a writeable C-contiguous {layout.dtype.name} array "
                         f"of shape {shape}")
    return out


def _fill(u: np.ndarray, p: float, rng: np.random.Generator, out: np.ndarray) -> None:
    """out (L, T, B, H) = the masks of the uniforms ``rng`` draws into ``u`` (B, L, T, H)."""
    rng.random(out=u)                                           # stream-major
    # keep a unit when u >= p (P = 1 - p), scaled by 1 / (1 - p)
    np.greater_equal(u.transpose(1, 2, 0, 3), p, out=out)
    out *= out.dtype.type(1 / (1 - p))


def dropout_masks(layout: Layout, B: int, T: int, p: float, rng: np.random.Generator,
                  out: np.ndarray | None = None) -> np.ndarray | None:
    """The dropout masks of one (B, T) chunk of ``layout``'s model.

    Parameters
    ----------
    layout : charrnn.layout.Layout
    B, T : int
        The chunk's streams and steps.
    p : float
        The dropout rate, in [0, 1).
    rng : numpy.random.Generator
        Advanced by B*L*T*H float64 uniforms, stream by stream (whatever the dtype, so
        both dtypes of one seed drop the same units); not touched when p is 0.
    out : ndarray, (L, T, B, H), optional
        Where to write the masks (the layout's dtype, C-contiguous).

    Returns
    -------
    ndarray of the layout's dtype, (L, T, B, H), or None
        Entries 0 or 1/(1-p); None when p is 0 (no dropout: the kernels take None).
    """
    p = check_dropout(p)
    if p == 0:
        return None
    L, H = layout.num_layers, layout.hidden_size
    out = _checked_out(layout, (L, T, B, H), out)
    _fill(np.empty((B, L, T, H)), p, rng, out)
    return out


class StepMasks:
    """The dropout masks of a training run, step by step, into buffers made once.

    Parameters
    ----------
    layout : charrnn.layout.Layout
    B, T : int
        This process's streams and the steps of a chunk.
    p : float
        The dropout rate, in [0, 1); at 0 :meth:`at` returns None.
    seed : int
        The run's seed.
    first : int
        The global index of this process's first stream (rank r of a data-parallel run
        with B streams per rank: r*B).
    """

    def __init__(self, layout: Layout, B: int, T: int, p: float, seed: int,
                 first: int = 0) -> None:
        self.p = check_dropout(p)
        self.seed, self.first = int(seed), int(first)
        L, H = layout.num_layers, layout.hidden_size
        self._skip = self.first * L * T * H         # the uniforms of the streams before
        self._u = np.empty((B, L, T, H)) if self.p else None
        self._out = np.empty((L, T, B, H), layout.dtype) if self.p else None

    def at(self, step: int) -> np.ndarray | None:
        """The masks of update number ``step + 1`` (the buffer, overwritten by the next
        call), or None without dropout."""
        if not self.p:
            return None
        bits = np.random.PCG64(np.random.SeedSequence([self.seed, _MASK_KEY, int(step)]))
        bits.advance(self._skip)                    # one 64-bit draw per uniform
        _fill(self._u, self.p, np.random.Generator(bits), self._out)
        return self._out
