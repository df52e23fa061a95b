#!/usr/bin/env bash
# Proves the runtime minimums that pyproject.toml declares for numpy and scipy.
#
# Builds a wheel against current numpy/scipy (an isolated build, as a release would), then
# installs it into a fresh venv together with exactly the declared minimums
# (numpy==MIN, scipy==MIN) and runs the test suite against the installed package, from
# outside the checkout, with the compiled extension required.
#
# Usage:  tools/check_min_versions.sh [WHEEL]      (no WHEEL: build one from the checkout)
# Env:    CHARRNN_PYTHON=X.Y     the Python (default 3.11, the oldest supported, from pyenv)
#         CHARRNN_MIN_NUMPY=V    try numpy V instead of the declared minimum (pip is told
#         CHARRNN_MIN_SCIPY=V    to ignore the declared bounds then: for finding the real ones)
#         CHARRNN_PYTEST_ARGS=.. extra pytest arguments
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
WORK=$(mktemp -d "${TMPDIR:-/tmp}/charrnn-minver.XXXXXX")
START=$SECONDS
trap 'rc=$?; [ $rc -eq 0 ] && rm -rf "$WORK" || echo "work directory kept: $WORK" >&2' EXIT
unset CHARRNN_NO_EXT CHARRNN_DEBUG CHARRNN_ASAN CHARRNN_BACKEND
export CHARRNN_REQUIRE_EXT=1 CHARRNN_TEST_INSTALLED=1
export PIP_DISABLE_PIP_VERSION_CHECK=1 PYTHONDONTWRITEBYTECODE=1
die() { echo "check_min_versions: $*" >&2; exit 1; }

v=${CHARRNN_PYTHON:-3.11}
if command -v pyenv >/dev/null 2>&1; then PYENV_ROOT=$(pyenv root); fi
d=$(find "${PYENV_ROOT:-$HOME/.pyenv}/versions" -mindepth 1 -maxdepth 1 \
        -regex ".*/${v//./\\.}\.[0-9]+" 2>/dev/null | sort -V | tail -n 1)
PY=${d:+$d/bin/python3}
if [ -z "$PY" ]; then PY=$(command -v "python$v") || die "Python $v not found"; fi

# The declared minimums: the `>=` bounds of numpy and scipy in [project].dependencies.
read -r NUMPY_MIN SCIPY_MIN < <("$PY" - "$ROOT/pyproject.toml" <<'EOF'
import re, sys, tomllib
deps = tomllib.load(open(sys.argv[1], "rb"))["project"]["dependencies"]
found = {}
for d in deps:
    m = re.fullmatch(r"\s*(numpy|scipy)\s*>=\s*([0-9][0-9.]*)\s*", d)
    if m:
        found[m[1]] = m[2]
missing = {"numpy", "scipy"} - set(found)
if missing:
    sys.exit(f"no plain '>=' minimum declared for {sorted(missing)} in {deps}")
print(found["numpy"], found["scipy"])
EOF
)
NUMPY=${CHARRNN_MIN_NUMPY:-$NUMPY_MIN}
SCIPY=${CHARRNN_MIN_SCIPY:-$SCIPY_MIN}
echo "declared minimums: numpy>=$NUMPY_MIN scipy>=$SCIPY_MIN; testing numpy==$NUMPY scipy==$SCIPY" \
     "on Python $("$PY" -c 'import platform; print(platform.python_version())')"

WHEEL=${1:-}
if [ -z "$WHEEL" ]; then
    echo "building a wheel from $ROOT against current scipy ..."
    if ! "$PY" -m pip wheel --no-deps --wheel-dir "$WORK/dist" "$ROOT" > "$WORK/build.log" 2>&1; then
        tail -n 60 "$WORK/build.log" >&2; die "wheel build failed"
    fi
    WHEEL=$(ls "$WORK"/dist/charrnn_blas-*.whl)
    echo "built $(basename "$WHEEL") (isolated: the newest setuptools, Cython and scipy)"
fi
[ -f "$WHEEL" ] || die "no such wheel: $WHEEL"
WHEEL=$(cd "$(dirname "$WHEEL")" && pwd)/$(basename "$WHEEL")

"$PY" -m venv "$WORK/venv"
PIP=("$WORK/venv/bin/pip" install --only-binary numpy,scipy)
if [ -z "${CHARRNN_MIN_NUMPY:-}${CHARRNN_MIN_SCIPY:-}" ]; then
    # One resolve: the wheel's own requirements must accept exactly the minimums.
    "${PIP[@]}" "numpy==$NUMPY" "scipy==$SCIPY" "$WHEEL[test]"
else
    # Exploring below the declared bounds: install the candidates, then the wheel without
    # its requirements, then the test extra.
    "${PIP[@]}" "numpy==$NUMPY" "scipy==$SCIPY"
    "${PIP[@]}" --no-deps "$WHEEL"
    "$WORK/venv/bin/python" - "$WHEEL" <<'EOF' > "$WORK/test-reqs.txt"
import sys, zipfile, email
name = [n for n in zipfile.ZipFile(sys.argv[1]).namelist() if n.endswith(".dist-info/METADATA")][0]
meta = email.message_from_bytes(zipfile.ZipFile(sys.argv[1]).read(name))
for r in meta.get_all("Requires-Dist") or []:
    if "extra ==" in r and "'test'" in r.replace('"', "'"):
        print(r.split(";")[0].strip())
EOF
    "${PIP[@]}" -r "$WORK/test-reqs.txt" "numpy==$NUMPY" "scipy==$SCIPY"
fi

mkdir -p "$WORK/run"
cd "$WORK/run"
"$WORK/venv/bin/python" - "$NUMPY" "$SCIPY" <<'EOF'
import sys, numpy, scipy, charrnn, charrnn._kernels as k
want_np, want_sp = sys.argv[1:]
print("numpy", numpy.__version__, " scipy", scipy.__version__)
print("charrnn", charrnn.__version__, charrnn.__file__)
print("kernels", k.__file__)
# "1.24" pins 1.24.0: compare release tuples padded with zeros
def rel(s): t = [int(x) for x in s.split(".")[:3]]; return t + [0] * (3 - len(t))
assert rel(numpy.__version__) == rel(want_np), (numpy.__version__, want_np)
assert rel(scipy.__version__) == rel(want_sp), (scipy.__version__, want_sp)
EOF
rc=0
eval "\"$WORK/venv/bin/pytest\" -p no:cacheprovider --rootdir=\"$ROOT\" \"$ROOT/tests\" \
    ${CHARRNN_PYTEST_ARGS:-}" || rc=$?
[ "$rc" -eq 0 ] || die "the suite failed with numpy==$NUMPY scipy==$SCIPY (pytest exit $rc)"
echo "check_min_versions: numpy==$NUMPY scipy==$SCIPY pass ($((SECONDS - START)) s)"
