"""Backend selection: the compiled kernels (``cython``) or the NumPy reference (``numpy``).

``backend="auto"`` takes ``$CHARRNN_BACKEND`` if set, else the compiled kernels if they
import (and implement the model), else NumPy with a warning (once). With
``CHARRNN_REQUIRE_EXT=1`` a missing or broken extension is an error instead.
"""

from __future__ import annotations

import importlib.util
import os
import warnings
from types import ModuleType

from .. import config
from . import checks, reference

BACKENDS = config.BACKENDS[1:]          # the twins "auto" picks from

_ext: ModuleType | None = None
_ext_error: BaseException | None = None
if importlib.util.find_spec("charrnn._kernels") is None:
    _ext_error = ImportError("charrnn._kernels is not built (a NumPy-only install, "
                             "CHARRNN_NO_EXT=1, or a source tree without the build)")
else:
    try:
        from .. import _kernels as _ext
    except Exception as e:  # a broken build: ImportError, or anything else
        _ext_error = e

_warned: set[str] = set()


def _warn_once(reason: str) -> None:
    if reason not in _warned:
        warnings.warn(reason + "; falling back to the NumPy backend (slower)",
                      RuntimeWarning, stacklevel=4)
        _warned.add(reason)


class BackendUnavailable(ImportError):
    """The requested backend cannot be used here."""


def _require_ext() -> bool:
    return os.environ.get("CHARRNN_REQUIRE_EXT", "") not in ("", "0")


def available_backends() -> list[str]:
    """Names of the backends that work in this installation, fastest first."""
    return (["cython"] if _ext is not None else []) + ["numpy"]


def implements(layout, dropout: float = 0.0) -> bool:
    """Whether the compiled kernels (if built) implement the model of ``layout`` trained
    with ``dropout``."""
    try:
        checks.compiled_supports(layout, True if dropout else None)   # (masks or None)
    except ValueError:
        return False
    return True


def get_kernels(backend: str = "auto", layout=None, dropout: float = 0.0) -> ModuleType:
    """The kernel module for ``backend`` ("auto", "cython" or "numpy"), and for the model
    of ``layout`` (trained with ``dropout``) if given: the compiled kernels must implement
    it ("cython": a ``ValueError`` if not; "auto": NumPy then)."""
    if not isinstance(backend, str):
        raise TypeError(f"backend must be a str, not {type(backend).__name__}")
    name = backend.lower()
    if name == "auto":
        name = os.environ.get("CHARRNN_BACKEND", "auto").strip().lower() or "auto"
        if name not in ("auto",) + BACKENDS:
            raise ValueError(f"CHARRNN_BACKEND={name!r} is not one of auto, cython, numpy")
    if name not in ("auto",) + BACKENDS:
        raise ValueError(f"backend must be 'auto', 'cython' or 'numpy', not {backend!r}")
    if name == "numpy":
        return reference
    if _ext is not None:
        if name == "cython" and layout is not None:
            checks.compiled_supports(layout, True if dropout else None)   # or ValueError
        if layout is None or name == "cython" or implements(layout, dropout):
            return _ext
        _warn_once(f"the compiled kernels do not implement a {layout.num_layers}-layer "
                   f"{layout.cell}{' with dropout' if dropout else ''} yet")
        return reference
    reason = f"the compiled extension charrnn._kernels is unavailable: {_ext_error!r}"
    if name == "cython" or _require_ext():
        raise BackendUnavailable(reason + (" (CHARRNN_REQUIRE_EXT is set)"
                                           if _require_ext() else ""))
    _warn_once(reason)
    return reference
