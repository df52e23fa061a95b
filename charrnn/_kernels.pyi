"""Type stub of the compiled kernels, ``charrnn._kernels`` (built from csrc/_kernels.pyx).

The compiled module and its NumPy twin, ``charrnn._numpy_kernels``, take the same
arguments: float32 or float64 parameter arrays of one dtype, C-contiguous, int32 ids.
Kernels that end in ``_`` or ``_update`` work in place and return nothing. Checked
against the built module with ``python -m mypy.stubtest charrnn._kernels``.
"""

from typing import Any, Final

import numpy as np
import numpy.typing as npt

from charrnn.workspace import Workspace

_Float = npt.NDArray[np.floating[Any]]   # float32 or float64, one dtype for all arrays
_Ids = npt.NDArray[np.int32]

NAME: Final[str]

def loss_and_grads(
    Wxh: _Float, Whh: _Float, Why: _Float, bh: _Float, by: _Float,
    X: _Ids, Y: _Ids, h0: _Float,
    dWxh: _Float, dWhh: _Float, dWhy: _Float, dbh: _Float, dby: _Float,
    hlast: _Float, ws: Workspace,
) -> float: ...
def loss(
    Wxh: _Float, Whh: _Float, Why: _Float, bh: _Float, by: _Float,
    X: _Ids, Y: _Ids, h0: _Float, hlast: _Float, ws: Workspace,
) -> float: ...
def sample(
    Wxh: _Float, Whh: _Float, Why: _Float, bh: _Float, by: _Float,
    h: _Float, first_ids: _Ids, uniforms: npt.NDArray[np.float64],
    temperature: float = 1.0, top_k: int | None = None,
) -> _Ids: ...
def sumsq(g: _Float) -> float: ...
def clip_(g: _Float, clip: float) -> None: ...
def scale_(g: _Float, scale: float) -> None: ...
def sgd_update(w: _Float, g: _Float, lr: float, clip: float = 5.0,
               scale: float = 1.0) -> None: ...
def adagrad_update(w: _Float, g: _Float, m: _Float, lr: float, eps: float = 1e-8,
                   clip: float = 5.0, scale: float = 1.0) -> None: ...
def rmsprop_update(w: _Float, g: _Float, v: _Float, lr: float, rho: float = 0.99,
                   eps: float = 1e-8, clip: float = 5.0, scale: float = 1.0) -> None: ...
def adam_update(w: _Float, g: _Float, m: _Float, v: _Float, lr: float,
                beta1: float = 0.9, beta2: float = 0.999, eps: float = 1e-8,
                step: int = 1, clip: float = 5.0, scale: float = 1.0) -> None: ...
def train_step(
    w: _Float, g: _Float, X: _Ids, Y: _Ids, h: _Float, ws: Workspace, H: int,
    rule: str, state: tuple[_Float, ...], lr: float, hyper: tuple[float | int, ...],
    clip: float, max_norm: float,
) -> tuple[float, float]: ...
