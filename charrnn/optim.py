"""Optimizers over the flat parameter vector: Adagrad (the classic), SGD, RMSprop, Adam.

Each holds its state as flat arrays shaped like the parameters. Training runs
:meth:`Optimizer.train_step`: the backend's ``train_step`` kernel, the whole training step
(forward, BPTT, norm, clip, update) in one call. :meth:`Optimizer.step` applies one update
with the separate ``<rule>_update`` kernel, which clips and updates in one pass; the tests
compose a step from it to hold ``train_step`` to the separate kernels. Clipping is decided
here:

- ``clip_kind="value"``: each gradient entry is clipped to [-clip, clip] (the classic, 5);
- ``clip_kind="norm"``: the whole gradient is scaled by min(1, clip / ||g||);
- ``clip_kind=None``: no clipping.
"""

from __future__ import annotations

import math
from types import ModuleType
from typing import TYPE_CHECKING

import numpy as np

from . import config
from .config import DEFAULT_LR
from .kernels.rules import RULES

if TYPE_CHECKING:                       # the model imports the kernels; this only names it
    from .model import CharRNN

# the hyper-parameters' defaults, by the names charrnn.kernels.rules gives them
HYPER_DEFAULTS = {"eps": config.EPS, "rho": config.RHO, "beta1": config.BETA1,
                  "beta2": config.BETA2}


class Optimizer:
    """One update rule of ``charrnn.kernels.rules`` with its state: ``state`` maps the
    rule's state names to flat arrays shaped like the parameters; ``t`` counts the
    updates applied.

    Parameters
    ----------
    name : {"adagrad", "sgd", "rmsprop", "adam"}
    size : int
        The length of the parameter vector.
    dtype : {"float32", "float64"}
    lr : float, optional
        The learning rate (``config.DEFAULT_LR[name]`` if None).
    **hyper
        The rule's other hyper-parameters (``eps``, ``rho``, ``beta1``, ``beta2``), by
        default ``HYPER_DEFAULTS``.
    """

    def __init__(self, name: str, size: int, dtype, lr: float | None = None,
                 **hyper) -> None:
        if not isinstance(name, str) or name not in RULES:
            raise ValueError(f"optimizer must be one of {', '.join(RULES)}, not {name!r}")
        self.name = name
        self.slots = RULES[name].states
        self._hyper_names = RULES[name].hypers
        own = [h for h in self._hyper_names if h != "step"]
        unknown = sorted(set(hyper) - set(own))
        if unknown:
            raise TypeError(f"{RULES[name].title} takes no hyper-parameter {unknown[0]!r} "
                            f"(it takes {', '.join(own) or 'none'})")
        self._hyper = {h: float(hyper.get(h, HYPER_DEFAULTS[h])) for h in own}
        self.lr = DEFAULT_LR[name] if lr is None else float(lr)
        if not (math.isfinite(self.lr) and self.lr > 0):
            raise ValueError(f"learning rate must be finite and > 0, got {lr}")
        self.t = 0
        self.state = {s: np.zeros(size, dtype) for s in self.slots}

    def hyper(self) -> dict:
        """The hyper-parameters other than lr, for checkpoints and display."""
        return dict(self._hyper)

    def hyper_args(self, step: int) -> tuple:
        """The arguments of the ``<name>_update`` kernel between lr and clip, for the
        update number ``step`` (from 1)."""
        return tuple([step if h == "step" else self._hyper[h] for h in self._hyper_names])

    def states(self) -> tuple[np.ndarray, ...]:
        """The state arrays in the order the update kernel takes them."""
        # from a list, not a generator: a tuple built from a generator is resized, and
        # the blocks left over pile up in CPython's tuple free lists, which tracemalloc
        # (and so the allocation check of a training step) counts as growth
        return tuple([self.state[s] for s in self.slots])

    def step(self, K: ModuleType, theta: np.ndarray, grad: np.ndarray,
             clip: float = math.inf, scale: float = 1.0, lr: float | None = None) -> None:
        """Apply one update to ``theta`` in place with the kernels of module ``K``."""
        self.t += 1
        update = getattr(K, self.name + "_update")
        update(theta, grad, *self.states(), self.lr if lr is None else lr,
               *self.hyper_args(self.t), clip, scale)

    def train_step(self, model: CharRNN, X: np.ndarray, Y: np.ndarray, h: np.ndarray,
                   clip_kind: str | None, clip: float, lr: float | None = None,
                   masks: np.ndarray | None = None) -> tuple[float, float]:
        """One whole training step of ``model`` in one kernel call (``train_step``):
        forward and BPTT on the int32 (B, T) ids ``X``, ``Y`` from the state ``h``
        (carried in place), the global gradient norm, clipping and this update.

        Parameters
        ----------
        model : CharRNN
            Its ``theta`` is updated in place and ``grad`` overwritten; call under
            ``model._lock`` when other threads share the model.
        X, Y : ndarray of int32, (B, T)
            Input ids and target ids.
        h : ndarray, (B, model.state_size), the model's dtype
            The carried state: h_0 in, h_T out.
        clip_kind : {"value", "norm", None}
        clip : float
            The element-wise bound ("value") or the norm bound ("norm").
        lr : float, optional
            This step's learning rate (a schedule's); ``self.lr`` if None.
        masks : ndarray, (L, T, B, H), optional
            The step's dropout masks (:mod:`charrnn.dropout`); None: no dropout.

        Returns
        -------
        (float, float)
            The chunk's loss (summed over T, averaged over B) and the gradient norm
            before clipping. When either is not finite nothing is updated, and the
            caller decides what divergence means.
        """
        elementwise, max_norm = clip_bounds(clip_kind, clip)
        L, norm = model._train_step(X, Y, h, self.name, self.states(),
                                    self.lr if lr is None else lr,
                                    self.hyper_args(self.t + 1), elementwise, max_norm,
                                    masks)
        if math.isfinite(L) and math.isfinite(norm):
            self.t += 1
        return L, norm

    def __repr__(self) -> str:
        extra = "".join(f", {k}={v}" for k, v in self.hyper().items())
        return f"{RULES[self.name].title}(lr={self.lr}{extra})"


OPTIMIZERS = tuple(RULES)


def make_optimizer(name: str, size: int, dtype, lr: float | None = None,
                   **hyper) -> Optimizer:
    """An optimizer by name: "adagrad", "sgd", "rmsprop" or "adam"; see
    :class:`Optimizer`."""
    return Optimizer(name, size, dtype, lr, **hyper)


def clip_args(K: ModuleType, grad: np.ndarray, clip_kind: str | None,
              clip: float, count: int = 1) -> tuple[float, float, float]:
    """The global gradient norm and the (clip, scale) pair the update kernels take.

    The norm is computed whatever the clip kind, so a non-finite gradient is always seen.
    With ``count`` > 1, ``grad`` is a sum of ``count`` gradients (one per rank of a
    data-parallel run): the norm is the mean's, and the scale takes the mean first.
    """
    norm = math.sqrt(K.sumsq(grad)) / count
    elementwise, max_norm = clip_bounds(clip_kind, clip)
    return norm, elementwise, (max_norm / norm if norm > max_norm else 1.0) / count

def clip_bounds(clip_kind: str | None, clip: float) -> tuple[float, float]:
    """The (element-wise bound, global-norm bound) pair of ``train_step``; inf for none."""
    if clip_kind == "value":
        return clip, math.inf
    if clip_kind == "norm":
        return math.inf, clip
    if clip_kind is None:
        return math.inf, math.inf
    raise ValueError(f"clip kind must be 'value', 'norm' or None, not {clip_kind!r}")
