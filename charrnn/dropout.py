"""Dropout masks: drawn by the Python layer from the seeded generator and passed to the
kernels (the ``masks`` argument of ``loss_and_grads`` and ``train_step``), like the
sampling uniforms, so both backends compute the same numbers (``design.md`` section 2b).

Inverted dropout at rate p: each entry is 0 with probability p and 1/(1-p) otherwise, so a
unit's expected input is unchanged and evaluation runs without masks. Mask l < L-1
multiplies the input of layer l+1 (layer l's h_t), mask L-1 the output layer's input (the
top layer's h_t); nothing touches layer 0's input or the recurrent path.
"""

from __future__ import annotations

import numpy as np

from .layout import Layout


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
        Advanced by L*T*B*H float64 uniforms (whatever the dtype, so both dtypes of one
        seed drop the same units); not touched when p is 0.
    out : ndarray, (L, T, B, H), optional
        Where to write the masks (the layout's dtype, C-contiguous).

    Returns
    -------
    ndarray of the layout's dtype, (L, T, B, H), or None
        Entries 0 or 1/(1-p); None when p is 0 (no dropout: the kernels take None).
    """
    if isinstance(p, bool) or not isinstance(p, (int, float, np.integer, np.floating)):
        raise TypeError(f"dropout must be a number, not {type(p).__name__}")
    if not 0 <= p < 1:
        raise ValueError(f"dropout must be in [0, 1), got {p}")
    if p == 0:
        return None
    shape = (layout.num_layers, T, B, layout.hidden_size)
    if out is None:
        out = np.empty(shape, layout.dtype)
    elif (not isinstance(out, np.ndarray) or out.shape != shape or out.dtype != layout.dtype
          or not out.flags.c_contiguous or not out.flags.writeable):
        raise ValueError(f"out must be a writeable C-contiguous {layout.dtype.name} array "
                         f"of shape {shape}")
    keep = rng.random(shape) >= p                               # P(keep) = 1 - p
    np.multiply(keep, layout.dtype.type(1 / (1 - p)), out=out)
    return out
