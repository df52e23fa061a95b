"""Packaging: one version source, typing files shipped, the compiled module's stub, the
installed package under test, and the NumPy-only build.

With ``CHARRNN_TEST_INSTALLED=1`` (set by .ci/run, tools/build_wheels.sh and the
cibuildwheel test environment) the suite must be importing an installed charrnn, not the
source tree, so a run that tests ``./charrnn`` by mistake fails here.
"""

from __future__ import annotations

import ast
import importlib.metadata
import importlib.resources
import inspect
import os
import re
import shutil
import subprocess
import sys
import sysconfig
import zipfile
from pathlib import Path
from types import ModuleType

import pytest

import charrnn
from charrnn import _version
from charrnn.kernels import reference
from conftest import compiled_kernels

DIST = "charrnn-blas"
# the pure-Python modules the kernels need (the NumPy twin and what both twins import)
KERNEL_MODULES = ("charrnn/layout.py", "charrnn/kernels/__init__.py",
                  "charrnn/kernels/backend.py", "charrnn/kernels/reference.py",
                  "charrnn/kernels/checks.py", "charrnn/kernels/rules.py")
ROOT = Path(__file__).resolve().parents[2]          # the checkout, when tests run from it
PKG = Path(charrnn.__file__).resolve().parent         # the charrnn being tested
TEST_INSTALLED = os.environ.get("CHARRNN_TEST_INSTALLED", "") not in ("", "0")
# PEP 440 public version: N(.N)*[{a|b|rc}N][.postN][.devN]
PEP440 = re.compile(r"^\d+(\.\d+)*((a|b|rc)\d+)?(\.post\d+)?(\.dev\d+)?$")


def _site_dirs() -> set[Path]:
    paths = sysconfig.get_paths()
    return {Path(paths[k]).resolve() for k in ("purelib", "platlib")}


def _installed() -> bool:
    """True when charrnn comes from site-packages (a wheel), not a source tree."""
    return any(d in PKG.parents for d in _site_dirs())


def _stub() -> dict[str, inspect.Signature | None]:
    """Public names of charrnn/_kernels.pyi: functions with their signatures, constants."""
    tree = ast.parse((PKG / "_kernels.pyi").read_text(encoding="utf-8"))
    names: dict[str, inspect.Signature | None] = {}
    for node in tree.body:
        if isinstance(node, ast.FunctionDef):
            a = node.args
            pos = a.posonlyargs + a.args
            defaults = [inspect.Parameter.empty] * (len(pos) - len(a.defaults)) + [
                ast.literal_eval(d) for d in a.defaults]
            names[node.name] = inspect.Signature([
                inspect.Parameter(p.arg, inspect.Parameter.POSITIONAL_OR_KEYWORD, default=d)
                for p, d in zip(pos, defaults)])
        elif isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name):
            names[node.target.id] = None
    return {n: s for n, s in names.items() if not n.startswith("_")}


def _plain(sig: inspect.Signature) -> list[tuple[str, object]]:
    """Parameter names and defaults only (the stub's annotations are for type checkers)."""
    return [(p.name, p.default) for p in sig.parameters.values()]


def _as_stubbed(sig: inspect.Signature, stub: inspect.Signature) -> list[tuple[str, object]]:
    """``_plain(sig)``, with each default the stub gives as ``...`` (a default whose value
    lives in charrnn.config) shown as ``...`` if ``sig`` has one."""
    want = dict(_plain(stub))
    return [(n, ... if want.get(n) is ... and d is not inspect.Parameter.empty else d)
            for n, d in _plain(sig)]


def _public(module: ModuleType) -> set[str]:
    """Names a module defines itself: no imported modules, classes or functions."""
    return {n for n, obj in vars(module).items()
            if not n.startswith("_") and not isinstance(obj, ModuleType)
            and getattr(obj, "__module__", module.__name__) == module.__name__}


# ----------------------------------------------------------------------------- version

def test_version_is_pep440_and_single_sourced():
    assert charrnn.__version__ == _version.__version__
    assert PEP440.match(charrnn.__version__), charrnn.__version__
    # no other module of the package assigns a version of its own
    for f in PKG.glob("*.py"):
        if f.name != "_version.py":
            assert not re.search(r"^__version__\s*=", f.read_text(encoding="utf-8"), re.M), f


def test_installed_metadata_version_matches():
    try:
        meta = importlib.metadata.version(DIST)
    except importlib.metadata.PackageNotFoundError:
        pytest.skip(f"{DIST} is not installed (charrnn imported from a bare source tree)")
    assert meta == charrnn.__version__


def test_pyproject_takes_the_version_from_version_module():
    pyproject = ROOT / "pyproject.toml"
    if not (ROOT / "setup.py").is_file() or not pyproject.is_file():
        pytest.skip("not running from a source checkout")
    import tomllib
    project = tomllib.loads(pyproject.read_text(encoding="utf-8"))
    assert "version" not in project["project"]
    assert "version" in project["project"]["dynamic"]
    attr = project["tool"]["setuptools"]["dynamic"]["version"]["attr"]
    assert attr == "charrnn._version.__version__"


# ----------------------------------------------------------------------------- typing files

@pytest.mark.parametrize("name", ["py.typed", "_kernels.pyi"])
def test_typing_files_are_in_the_package(name):
    assert (importlib.resources.files("charrnn") / name).is_file()


@pytest.mark.parametrize("name", ["charrnn/py.typed", "charrnn/_kernels.pyi"])
def test_typing_files_are_recorded_by_the_wheel(name):
    if not _installed():
        pytest.skip("charrnn is not installed from a wheel (editable or source tree)")
    files = {str(f) for f in importlib.metadata.distribution(DIST).files or []}
    assert name in files


@pytest.mark.parametrize("name", KERNEL_MODULES)
def test_kernel_modules_are_in_the_package(name):
    assert (importlib.resources.files("charrnn").joinpath(*Path(name).parts[1:])).is_file()


@pytest.mark.parametrize("name", KERNEL_MODULES)
def test_kernel_modules_are_recorded_by_the_wheel(name):
    if not _installed():
        pytest.skip("charrnn is not installed from a wheel (editable or source tree)")
    files = {str(f) for f in importlib.metadata.distribution(DIST).files or []}
    assert name in files


def test_suite_runs_against_the_installed_package():
    if not TEST_INSTALLED:
        pytest.skip("CHARRNN_TEST_INSTALLED is not set")
    assert _installed(), (f"CHARRNN_TEST_INSTALLED=1 but charrnn comes from {PKG}, "
                          f"not from {sorted(map(str, _site_dirs()))}")
    if "cython" in charrnn.available_backends():
        K = charrnn.get_kernels("cython")
        assert Path(K.__file__).resolve().parent == PKG


# ----------------------------------------------------------------------------- stub

def test_stub_matches_the_numpy_twin():
    """The stub's functions exist in the NumPy twin with the same parameters."""
    stub = _stub()
    assert "NAME" in stub
    for name, sig in stub.items():
        assert hasattr(reference, name), name
        if sig is not None:
            assert _as_stubbed(inspect.signature(getattr(reference, name)), sig) == \
                _plain(sig), name


def test_stub_names_match_the_compiled_module():
    K = compiled_kernels()
    assert set(_stub()) == _public(K)


def test_stub_signatures_match_the_compiled_module():
    K = compiled_kernels()
    for name, sig in _stub().items():
        if sig is not None:
            assert _as_stubbed(inspect.signature(getattr(K, name)), sig) == _plain(sig), name


def test_the_twins_have_the_same_signatures_and_defaults():
    """Names, order and default values (those the stub leaves as ``...`` too) agree."""
    K = compiled_kernels()
    for name, sig in _stub().items():
        if sig is not None:
            assert _plain(inspect.signature(getattr(K, name))) == \
                _plain(inspect.signature(getattr(reference, name))), name


def test_stubtest_accepts_the_stub(tmp_path):
    """mypy.stubtest on the built module, when mypy is installed (.ci/run runs it too)."""
    compiled_kernels()
    pytest.importorskip("mypy.stubtest")
    allow = ROOT / "tools" / "stubtest_allowlist.txt"
    cmd = [sys.executable, "-m", "mypy.stubtest", "charrnn._kernels"]
    if allow.is_file():
        cmd += ["--allowlist", str(allow)]
    env = dict(os.environ, MYPY_CACHE_DIR=str(tmp_path / "mypy_cache"))
    if not _installed():   # the source tree: let the subprocess import the same charrnn
        env["PYTHONPATH"] = os.pathsep.join([str(PKG.parent), env.get("PYTHONPATH", "")])
    r = subprocess.run(cmd, cwd=tmp_path, env=env, capture_output=True, text=True,
                       timeout=300)
    assert r.returncode == 0, r.stdout + r.stderr


# ----------------------------------------------------------------------------- NumPy-only

def _require_build_backend() -> None:
    """Skip unless this environment's setuptools meets [build-system] requires (the build
    below runs without isolation, so it uses what is installed here)."""
    import tomllib
    requires = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))[
        "build-system"]["requires"]
    need = next((re.fullmatch(r"setuptools\s*>=\s*([\d.]+)", r) for r in requires
                 if r.startswith("setuptools")), None)
    try:
        have = importlib.metadata.version("setuptools")
    except importlib.metadata.PackageNotFoundError:
        pytest.skip("setuptools is not installed here")
    if need and _release(have) < _release(need[1]):
        pytest.skip(f"setuptools {have} here, the build needs >= {need[1]}")


def _release(v: str) -> tuple[int, ...]:
    return tuple(int(x) for x in re.findall(r"\d+", v)[:3])


@pytest.mark.slow
def test_no_ext_build_is_pure_python_and_says_so(tmp_path):
    """CHARRNN_NO_EXT=1 builds a py3-none-any wheel whose auto backend warns."""
    if not (ROOT / "setup.py").is_file():
        pytest.skip("not running from a source checkout")
    _require_build_backend()
    src = tmp_path / "src"                    # a copy, so the build leaves the checkout alone
    shutil.copytree(ROOT, src, ignore=shutil.ignore_patterns(
        ".git", ".venv*", "build", "dist", "wheelhouse", "*.so", "*.egg-info", "__pycache__",
        ".*cache", ".hypothesis", ".benchmarks", "benchmarks", "runs"))
    env = dict(os.environ, CHARRNN_NO_EXT="1", PIP_NO_INDEX="1")
    env.pop("CHARRNN_REQUIRE_EXT", None)
    wheels = tmp_path / "wheels"
    r = subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps",
                        "--no-build-isolation", "-q", "-w", str(wheels), str(src)],
                       cwd=tmp_path, env=env, capture_output=True, text=True, timeout=600)
    if r.returncode != 0 and "No module named" in r.stderr:
        pytest.skip(f"build tools missing here: {r.stderr.strip().splitlines()[-1]}")
    assert r.returncode == 0, r.stderr
    (whl,) = wheels.glob("*.whl")
    assert whl.name.endswith("-py3-none-any.whl"), whl.name
    names = zipfile.ZipFile(whl).namelist()
    for f in KERNEL_MODULES:
        assert f in names, f
    assert not [n for n in names if n.endswith((".so", ".pyd", ".pyx", ".c"))], names

    site = tmp_path / "site"
    zipfile.ZipFile(whl).extractall(site)
    probe = (
        "import warnings, charrnn\n"
        "assert charrnn.available_backends() == ['numpy'], charrnn.available_backends()\n"
        "with warnings.catch_warnings(record=True) as w:\n"
        "    warnings.simplefilter('always')\n"
        "    assert charrnn.get_kernels('auto').NAME == 'numpy'\n"
        "assert [x.category for x in w] == [RuntimeWarning], w\n"
        "print(charrnn.__file__)\n")
    # -S: no site-packages .pth files, so an editable install of the checkout (its import
    # hook would find the built extension) cannot leak in; numpy's directory comes after
    # the unpacked wheel, so an installed charrnn there is shadowed.
    import numpy
    env = {k: v for k, v in os.environ.items() if not k.startswith("CHARRNN_")}
    env["PYTHONPATH"] = os.pathsep.join([str(site), str(Path(numpy.__file__).parents[1])])
    py = [sys.executable, "-S"]
    r = subprocess.run(py + ["-c", probe], cwd=tmp_path, env=env,
                       capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    assert Path(r.stdout.strip()).resolve().is_relative_to(site.resolve())
    # and with the extension required, the pure build refuses instead of falling back
    env["CHARRNN_REQUIRE_EXT"] = "1"
    r = subprocess.run(py + ["-c", "import charrnn; charrnn.get_kernels()"],
                       cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120)
    assert r.returncode != 0 and "BackendUnavailable" in r.stderr, r.stderr
