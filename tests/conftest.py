"""Shared fixtures: backends, dtypes, and the reference data directory."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest

import charrnn
from charrnn import backend as _backend

REQUIRE_EXT = os.environ.get("CHARRNN_REQUIRE_EXT", "") not in ("", "0")


def compiled_kernels():
    """The compiled kernel module; skip (or fail under CHARRNN_REQUIRE_EXT=1) if absent."""
    if "cython" not in charrnn.available_backends():
        if REQUIRE_EXT:
            pytest.fail(f"CHARRNN_REQUIRE_EXT=1 but the extension is missing: "
                        f"{_backend._ext_error!r}")
        pytest.skip("the compiled extension is not built")
    K = charrnn.get_kernels("cython")
    assert K.NAME == "cython" and K is not charrnn.get_kernels("numpy")
    return K


@pytest.fixture(params=["cython", "numpy"])
def backend(request) -> str:
    """Each backend name; the compiled one skips (or fails) when it is not built."""
    if request.param == "cython":
        compiled_kernels()
    return request.param


@pytest.fixture
def kernels(backend):
    return charrnn.get_kernels(backend)


@pytest.fixture(params=["float64", "float32"])
def dtype(request) -> np.dtype:
    return np.dtype(request.param)


def data_dir() -> Path | None:
    """``$CHARRNN_DATA_DIR`` or ``../shared/data`` beside the checkout, if it exists."""
    env = os.environ.get("CHARRNN_DATA_DIR")
    candidates = [Path(env)] if env else []
    candidates.append(Path(__file__).resolve().parents[2] / "shared" / "data")
    for c in candidates:
        if c.is_dir():
            return c
    return None


@pytest.fixture
def shared_file():
    """Return a path in the reference data directory, or skip with a reason."""
    def get(name: str) -> Path:
        d = data_dir()
        if d is None or not (d / name).is_file():
            pytest.skip(f"reference data file {name} not found "
                        f"(set CHARRNN_DATA_DIR or place ../shared/data)")
        return d / name
    return get
