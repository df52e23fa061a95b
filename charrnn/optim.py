"""Optimizers over the flat parameter vector: Adagrad (the classic), SGD, RMSprop, Adam.

Each holds its state as flat arrays shaped like the parameters and calls the backend's
fused update kernel, which clips and updates in one pass. Clipping is decided here:

- ``clip_kind="value"``: each gradient entry is clipped to [-clip, clip] (the classic, 5);
- ``clip_kind="norm"``: the whole gradient is scaled by min(1, clip / ||g||);
- ``clip_kind=None``: no clipping.
"""

from __future__ import annotations

import math
from types import ModuleType

import numpy as np

DEFAULT_LR = {"adagrad": 0.1, "sgd": 0.1, "rmsprop": 2e-3, "adam": 2e-3}
CLIP_KINDS = ("value", "norm", None)


class Optimizer:
    """Base class: ``state`` maps names to flat arrays; ``t`` counts the updates applied."""

    name = ""
    slots: tuple[str, ...] = ()

    def __init__(self, size: int, dtype, lr: float | None = None) -> None:
        self.lr = DEFAULT_LR[self.name] if lr is None else float(lr)
        if not (math.isfinite(self.lr) and self.lr > 0):
            raise ValueError(f"learning rate must be finite and > 0, got {lr}")
        self.t = 0
        self.state = {s: np.zeros(size, dtype) for s in self.slots}

    def hyper(self) -> dict:
        """The hyper-parameters other than lr, for checkpoints and display."""
        return {}

    def step(self, K: ModuleType, theta: np.ndarray, grad: np.ndarray,
             clip: float = math.inf, scale: float = 1.0, lr: float | None = None) -> None:
        """Apply one update to ``theta`` in place with the kernels of module ``K``."""
        self.t += 1
        self._update(K, theta, grad, self.lr if lr is None else lr, clip, scale)

    def _update(self, K, theta, grad, lr, clip, scale):  # pragma: no cover - abstract
        raise NotImplementedError

    def __repr__(self) -> str:
        extra = "".join(f", {k}={v}" for k, v in self.hyper().items())
        return f"{type(self).__name__}(lr={self.lr}{extra})"


class SGD(Optimizer):
    name = "sgd"

    def _update(self, K, theta, grad, lr, clip, scale):
        K.sgd_update(theta, grad, lr, clip, scale)


class Adagrad(Optimizer):
    name = "adagrad"
    slots = ("m",)

    def __init__(self, size, dtype, lr=None, eps: float = 1e-8):
        super().__init__(size, dtype, lr)
        self.eps = float(eps)

    def hyper(self):
        return {"eps": self.eps}

    def _update(self, K, theta, grad, lr, clip, scale):
        K.adagrad_update(theta, grad, self.state["m"], lr, self.eps, clip, scale)


class RMSprop(Optimizer):
    name = "rmsprop"
    slots = ("v",)

    def __init__(self, size, dtype, lr=None, rho: float = 0.99, eps: float = 1e-8):
        super().__init__(size, dtype, lr)
        self.rho, self.eps = float(rho), float(eps)

    def hyper(self):
        return {"rho": self.rho, "eps": self.eps}

    def _update(self, K, theta, grad, lr, clip, scale):
        K.rmsprop_update(theta, grad, self.state["v"], lr, self.rho, self.eps, clip, scale)


class Adam(Optimizer):
    name = "adam"
    slots = ("m", "v")

    def __init__(self, size, dtype, lr=None, beta1: float = 0.9, beta2: float = 0.999,
                 eps: float = 1e-8):
        super().__init__(size, dtype, lr)
        self.beta1, self.beta2, self.eps = float(beta1), float(beta2), float(eps)

    def hyper(self):
        return {"beta1": self.beta1, "beta2": self.beta2, "eps": self.eps}

    def _update(self, K, theta, grad, lr, clip, scale):
        K.adam_update(theta, grad, self.state["m"], self.state["v"], lr, self.beta1,
                      self.beta2, self.eps, self.t, clip, scale)


OPTIMIZERS = {cls.name: cls for cls in (Adagrad, SGD, RMSprop, Adam)}


def make_optimizer(name: str, size: int, dtype, lr: float | None = None,
                   **hyper) -> Optimizer:
    """An optimizer by name: "adagrad", "sgd", "rmsprop" or "adam"."""
    try:
        cls = OPTIMIZERS[name]
    except (KeyError, TypeError):
        raise ValueError(f"optimizer must be one of {', '.join(OPTIMIZERS)}, "
                         f"not {name!r}") from None
    return cls(size, dtype, lr, **hyper)


def clip_args(K: ModuleType, grad: np.ndarray, clip_kind: str | None,
              clip: float) -> tuple[float, float, float]:
    """The global gradient norm and the (clip, scale) pair the update kernels take.

    The norm is computed whatever the clip kind, so a non-finite gradient is always seen.
    """
    norm = math.sqrt(K.sumsq(grad))
    if clip_kind == "value":
        return norm, clip, 1.0
    if clip_kind == "norm":
        return norm, math.inf, (clip / norm if norm > clip else 1.0)
    if clip_kind is None:
        return norm, math.inf, 1.0
    raise ValueError(f"clip kind must be 'value', 'norm' or None, not {clip_kind!r}")
