"""The flat parameter layout: ``Wxh, Whh, Why, bh, by`` one after another in one vector.

``CharRNN.theta``, its gradient ``grad`` and every optimizer state array share this
layout, so clipping and updates are single passes, and a whole training step
(``train_step`` in both kernel modules) takes the flat vectors and H alone.
"""

from __future__ import annotations

import numpy as np

PARAM_NAMES = ("Wxh", "Whh", "Why", "bh", "by")


def param_shapes(H: int, V: int) -> dict[str, tuple[int, ...]]:
    """The classic shapes: Wxh (H, V), Whh (H, H), Why (V, H), bh (H,), by (V,)."""
    return {"Wxh": (H, V), "Whh": (H, H), "Why": (V, H), "bh": (H,), "by": (V,)}


def num_params(H: int, V: int) -> int:
    """H*V + H*H + V*H + H + V."""
    return H * V + H * H + V * H + H + V


def vocab_size(n: int, H: int) -> int:
    """The V for which a vector of ``n`` parameters holds a model of H hidden units.

    Raises ``ValueError`` when there is none (n = H*H + H + (2H + 1) * V, V >= 1).
    """
    V, rest = divmod(n - H * H - H, 2 * H + 1)
    if rest or V < 1:
        raise ValueError(f"{n} parameters do not make a model with H={H} hidden units "
                         f"(H*V + H*H + V*H + H + V for some V >= 1)")
    return V


def param_views(flat: np.ndarray, H: int, V: int) -> dict[str, np.ndarray]:
    """The five parameters as views into the 1-D C-contiguous vector ``flat``."""
    i1 = H * V
    i2 = i1 + H * H
    i3 = i2 + V * H
    return {"Wxh": flat[:i1].reshape(H, V), "Whh": flat[i1:i2].reshape(H, H),
            "Why": flat[i2:i3].reshape(V, H), "bh": flat[i3:i3 + H],
            "by": flat[i3 + H:i3 + H + V]}
