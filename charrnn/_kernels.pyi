"""Type stub of the compiled kernels, ``charrnn._kernels`` (built from csrc/_kernels.pyx).

The compiled module and its NumPy twin, ``charrnn.kernels.reference``, take the same
arguments: a parameter layout and flat float32 or float64 vectors of its dtype,
C-contiguous arrays, int32 ids. The defaults come from ``charrnn.config``.
Kernels that end in ``_`` or ``_update`` work in place and return nothing. Checked
against the built module with ``python -m mypy.stubtest charrnn._kernels``.
"""

from typing import Any, Final

import numpy as np
import numpy.typing as npt

from charrnn.layout import Layout
from charrnn.workspace import Workspace

_Float = npt.NDArray[np.floating[Any]]   # float32 or float64, one dtype for all arrays
_Ids = npt.NDArray[np.int32]

NAME: Final[str]

def loss_and_grads(
    layout: Layout, theta: _Float, grad: _Float, X: _Ids, Y: _Ids, h0: _Float,
    hlast: _Float, ws: Workspace, masks: _Float | None = None,
) -> float: ...
def loss(
    layout: Layout, theta: _Float, X: _Ids, Y: _Ids, h0: _Float, hlast: _Float,
    ws: Workspace,
) -> float: ...
def sample(
    layout: Layout, theta: _Float, h: _Float, first_ids: _Ids,
    uniforms: npt.NDArray[np.float64], temperature: float = ..., top_k: int | None = None,
) -> _Ids: ...
def sumsq(g: _Float) -> float: ...
def clip_(g: _Float, clip: float) -> None: ...
def scale_(g: _Float, scale: float) -> None: ...
def sgd_update(w: _Float, g: _Float, lr: float, clip: float = ...,
               scale: float = 1.0) -> None: ...
def adagrad_update(w: _Float, g: _Float, m: _Float, lr: float, eps: float = ...,
                   clip: float = ..., scale: float = 1.0) -> None: ...
def rmsprop_update(w: _Float, g: _Float, v: _Float, lr: float, rho: float = ...,
                   eps: float = ..., clip: float = ..., scale: float = 1.0) -> None: ...
def adam_update(w: _Float, g: _Float, m: _Float, v: _Float, lr: float,
                beta1: float = ..., beta2: float = ..., eps: float = ...,
                step: int = 1, clip: float = ..., scale: float = 1.0) -> None: ...
def train_step(
    layout: Layout, w: _Float, g: _Float, X: _Ids, Y: _Ids, h: _Float, ws: Workspace,
    rule: str, state: tuple[_Float, ...], lr: float, hyper: tuple[float | int, ...],
    clip: float, max_norm: float, masks: _Float | None = None,
) -> tuple[float, float]: ...
