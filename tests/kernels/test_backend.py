"""Backend selection: names, CHARRNN_BACKEND, CHARRNN_REQUIRE_EXT, the warned fallback.

A missing extension is simulated by setting ``charrnn.kernels.backend._ext`` to None (and
``_ext_error`` to the import error it would have raised); monkeypatch restores both.
"""

from __future__ import annotations

import warnings

import numpy as np
import pytest

import charrnn
from charrnn.kernels import backend as B
from charrnn.kernels import reference
from conftest import compiled_kernels


@pytest.fixture(autouse=True)
def clean_env(monkeypatch):
    """Each test starts from an unset CHARRNN_BACKEND / CHARRNN_REQUIRE_EXT."""
    monkeypatch.delenv("CHARRNN_BACKEND", raising=False)
    monkeypatch.delenv("CHARRNN_REQUIRE_EXT", raising=False)


@pytest.fixture
def no_ext(monkeypatch):
    """Pretend the compiled extension failed to import, with the warning not yet given."""
    monkeypatch.setattr(B, "_ext", None)
    monkeypatch.setattr(B, "_ext_error", ImportError("simulated: no module charrnn._kernels"))
    monkeypatch.setattr(B, "_warned", False)


def test_the_package_exports_the_kernels_backend():
    """The lazy names of the package are those of charrnn.kernels.backend, where the
    backend choice lives (it was charrnn.backend)."""
    assert charrnn.get_kernels is B.get_kernels
    assert charrnn.available_backends is B.available_backends
    assert charrnn.BackendUnavailable is B.BackendUnavailable
    for name in ("get_kernels", "available_backends", "BackendUnavailable"):
        assert name in charrnn.__all__ and name in dir(charrnn)
    assert charrnn.get_kernels("numpy").__name__ == "charrnn.kernels.reference"


def test_available_backends():
    names = charrnn.available_backends()
    assert isinstance(names, list)
    assert names[-1] == "numpy"
    assert set(names) <= {"cython", "numpy"}
    assert ("cython" in names) == (B._ext is not None)


def test_compiled_backend_is_available_here():
    # (skips when the extension is not built; fails under CHARRNN_REQUIRE_EXT=1)
    K = compiled_kernels()
    assert charrnn.available_backends() == ["cython", "numpy"]
    assert charrnn.get_kernels("cython") is K
    assert charrnn.get_kernels("auto") is K                    # auto prefers it
    assert charrnn.get_kernels() is K
    assert charrnn.CharRNN("ab", hidden_size=3).backend == "cython"


def test_explicit_names(backend):
    K = charrnn.get_kernels(backend)
    assert K.NAME == backend
    assert charrnn.get_kernels(backend.upper()) is K           # names are case-insensitive
    model = charrnn.CharRNN("abc", hidden_size=4, backend=backend)
    assert model.backend == backend
    assert model.kernels is K
    assert backend in repr(model)
    assert charrnn.get_kernels("numpy") is reference


@pytest.mark.parametrize("name", ["cuda", "", "numpy ", "Cython2", "auto-ish"])
def test_invalid_name_raises_value_error(name):
    with pytest.raises(ValueError, match="backend must be"):
        charrnn.get_kernels(name)
    with pytest.raises(ValueError):
        charrnn.CharRNN("ab", hidden_size=2, backend=name)


@pytest.mark.parametrize("name", [None, 1, b"numpy"])
def test_non_string_name_raises_type_error(name):
    with pytest.raises(TypeError):
        charrnn.get_kernels(name)


def test_env_selects_numpy(monkeypatch):
    monkeypatch.setenv("CHARRNN_BACKEND", "numpy")
    assert charrnn.get_kernels("auto") is reference
    assert charrnn.CharRNN("ab", hidden_size=3).backend == "numpy"
    # an explicit name wins over the environment
    K = compiled_kernels()
    assert charrnn.get_kernels("cython") is K
    assert charrnn.CharRNN("ab", hidden_size=3, backend="cython").backend == "cython"


def test_env_selects_cython(monkeypatch):
    K = compiled_kernels()
    monkeypatch.setenv("CHARRNN_BACKEND", " Cython ")
    assert charrnn.get_kernels("auto") is K
    assert charrnn.CharRNN("ab", hidden_size=3).backend == "cython"
    assert charrnn.CharRNN("ab", hidden_size=3, backend="numpy").backend == "numpy"


@pytest.mark.parametrize("value", ["", "auto"])
def test_env_auto_or_empty(monkeypatch, value):
    monkeypatch.setenv("CHARRNN_BACKEND", value)
    assert charrnn.get_kernels("auto").NAME == charrnn.available_backends()[0]


def test_env_invalid_raises_value_error(monkeypatch):
    monkeypatch.setenv("CHARRNN_BACKEND", "fortran")
    with pytest.raises(ValueError, match="CHARRNN_BACKEND"):
        charrnn.get_kernels("auto")
    with pytest.raises(ValueError, match="CHARRNN_BACKEND"):
        charrnn.CharRNN("ab", hidden_size=2)
    assert charrnn.get_kernels("numpy") is reference     # explicit names still work


def test_set_backend_switches_kernels_keeps_params(backend):
    model = charrnn.CharRNN("abcd", hidden_size=5, backend="numpy")
    theta = model.theta.copy()
    ids = [0, 1, 2, 3, 0]
    L1, _, _ = model.loss_and_grads(ids[:-1], ids[1:])
    model.set_backend(backend)
    assert model.backend == backend
    np.testing.assert_array_equal(model.theta, theta)
    L2, _, _ = model.loss_and_grads(ids[:-1], ids[1:])
    assert L2 == pytest.approx(L1, rel=1e-10)


# ----------------------------------------------------------------------------- fallback

def test_fallback_warns_once(no_ext):
    assert charrnn.available_backends() == ["numpy"]
    with pytest.warns(RuntimeWarning, match="falling back to the NumPy backend") as rec:
        K = charrnn.get_kernels("auto")
    assert K is reference
    assert len(rec) == 1
    assert "simulated" in str(rec[0].message)                  # says why
    with warnings.catch_warnings():
        warnings.simplefilter("error")                          # a second warning would raise
        assert charrnn.get_kernels("auto") is reference
        model = charrnn.CharRNN("ab", hidden_size=3)
    assert model.backend == "numpy"


def test_fallback_through_the_model(no_ext):
    with pytest.warns(RuntimeWarning):
        model = charrnn.CharRNN("abc", hidden_size=3)
    assert model.backend == "numpy"


def test_fallback_never_for_explicit_cython(no_ext):
    with pytest.raises(charrnn.BackendUnavailable, match="simulated"):
        charrnn.get_kernels("cython")
    with pytest.raises(ImportError):                           # BackendUnavailable is one
        charrnn.CharRNN("ab", hidden_size=2, backend="cython")
    # numpy by name neither warns nor fails
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert charrnn.get_kernels("numpy") is reference


def test_env_cython_without_extension_raises(no_ext, monkeypatch):
    monkeypatch.setenv("CHARRNN_BACKEND", "cython")
    with pytest.raises(charrnn.BackendUnavailable):
        charrnn.get_kernels("auto")


@pytest.mark.parametrize("value", ["1", "yes", "true"])
def test_require_ext_makes_the_fallback_an_error(no_ext, monkeypatch, value):
    monkeypatch.setenv("CHARRNN_REQUIRE_EXT", value)
    with warnings.catch_warnings():
        warnings.simplefilter("error")                          # an error, not a warning
        with pytest.raises(charrnn.BackendUnavailable, match="CHARRNN_REQUIRE_EXT"):
            charrnn.get_kernels("auto")
        with pytest.raises(charrnn.BackendUnavailable):
            charrnn.CharRNN("ab", hidden_size=2)
        # asking for numpy by name is still allowed
        assert charrnn.CharRNN("ab", hidden_size=2, backend="numpy").backend == "numpy"


@pytest.mark.parametrize("value", ["0", ""])
def test_require_ext_off_values(no_ext, monkeypatch, value):
    monkeypatch.setenv("CHARRNN_REQUIRE_EXT", value)
    with pytest.warns(RuntimeWarning):
        assert charrnn.get_kernels("auto") is reference


def test_require_ext_with_the_extension_present(monkeypatch):
    K = compiled_kernels()
    monkeypatch.setenv("CHARRNN_REQUIRE_EXT", "1")
    assert charrnn.get_kernels("auto") is K


def test_compiled_kernels_helper_fails_under_require_ext(no_ext, monkeypatch):
    """The parity tests' guard: with the extension missing it skips, or fails when
    CHARRNN_REQUIRE_EXT=1, so parity can never pass by comparing NumPy with NumPy."""
    import conftest
    monkeypatch.setattr(conftest, "REQUIRE_EXT", True)
    with pytest.raises(pytest.fail.Exception, match="extension is missing"):
        conftest.compiled_kernels()
    monkeypatch.setattr(conftest, "REQUIRE_EXT", False)
    with pytest.raises(pytest.skip.Exception):
        conftest.compiled_kernels()


def test_backend_unavailable_is_an_import_error():
    assert issubclass(charrnn.BackendUnavailable, ImportError)
