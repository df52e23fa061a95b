"""Backend selection: the compiled kernels (``cython``) or the NumPy reference (``numpy``).

``backend="auto"`` takes ``$CHARRNN_BACKEND`` if set, else the compiled kernels if they
import, else NumPy with a warning (once). With ``CHARRNN_REQUIRE_EXT=1`` a missing or
broken extension is an error instead.
"""

from __future__ import annotations

import importlib.util
import os
import warnings
from types import ModuleType

from .. import config
from . import reference

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

_warned = False


class BackendUnavailable(ImportError):
    """The requested backend cannot be used here."""


def _require_ext() -> bool:
    return os.environ.get("CHARRNN_REQUIRE_EXT", "") not in ("", "0")


def available_backends() -> list[str]:
    """Names of the backends that work in this installation, fastest first."""
    return (["cython"] if _ext is not None else []) + ["numpy"]


def get_kernels(backend: str = "auto") -> ModuleType:
    """The kernel module for ``backend`` ("auto", "cython" or "numpy")."""
    global _warned
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
        return _ext
    reason = f"the compiled extension charrnn._kernels is unavailable: {_ext_error!r}"
    if name == "cython" or _require_ext():
        raise BackendUnavailable(reason + (" (CHARRNN_REQUIRE_EXT is set)"
                                           if _require_ext() else ""))
    if not _warned:
        warnings.warn(reason + "; falling back to the NumPy backend (slower)",
                      RuntimeWarning, stacklevel=3)
        _warned = True
    return reference
