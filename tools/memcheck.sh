#!/usr/bin/env bash
# Memory-safety checks of the compiled kernels. Each mode builds its own copy of the tree
# in its own virtual environment (so the checkout's in-place build is never touched):
#
#   debug     CHARRNN_DEBUG=1 build: boundscheck, wraparound and initializedcheck on,
#             -O0 -g. Runs the whole test suite.
#   asan      CHARRNN_ASAN=1 build: AddressSanitizer. Runs the kernel and property tests
#             with gcc's libasan preloaded (CPython itself is not instrumented) and
#             ASAN_OPTIONS=detect_leaks=0 (CPython's own allocations would fail the run).
#   valgrind  release build (-O3) plus -g. Runs a handful of kernel tests under valgrind
#             memcheck with PYTHONMALLOC=malloc, suppressing what baseline runs that
#             execute no compiled kernel report: an import-only run (numpy, scipy.linalg,
#             charrnn) and the same tests on the NumPy backend.
#
# usage: tools/memcheck.sh [--canary] [--src DIR] [--work DIR] MODE... [-- PYTEST_ARGS...]
#
#   MODE        debug, asan, valgrind, or all (the three in turn)
#   --canary    also build charrnn._canary (CHARRNN_CANARY=1) and run
#               tools/memcheck_canary.py instead of the tests: it plants an out-of-bounds
#               read and write, and the mode succeeds only if the checker catches them
#   --src DIR   the tree to check (default: this checkout, tracked and untracked files)
#   --work DIR  where copies, environments and logs go (default: $TMPDIR/charrnn-memcheck)
#   -- ARGS     pytest arguments replacing the mode's default selection
#
# Exit status: 0 when every mode ran clean (or, with --canary, caught its canary).

set -euo pipefail
# each mode tests an in-place build of a copy, never an installed wheel
unset CHARRNN_TEST_INSTALLED

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
src="$(cd "$here/.." && pwd)"
work="${TMPDIR:-/tmp}/charrnn-memcheck"
canary=0
modes=()
pytest_args=()
PYTHON="${PYTHON:-python3}"

while [ $# -gt 0 ]; do
    case "$1" in
        --canary) canary=1 ;;
        --src) src="$(cd "$2" && pwd)"; shift ;;
        --work) work="$2"; shift ;;
        debug|asan|valgrind) modes+=("$1") ;;
        all) modes+=(debug asan valgrind) ;;
        --) shift; pytest_args=("$@"); break ;;
        -h|--help) sed -n '2,25p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
        *) echo "memcheck.sh: unknown argument '$1' (try --help)" >&2; exit 2 ;;
    esac
    shift
done
if [ ${#modes[@]} -eq 0 ]; then
    echo "memcheck.sh: name a mode: debug, asan, valgrind or all" >&2
    exit 2
fi
mkdir -p "$work"
work="$(cd "$work" && pwd)"
# the copies do not sit beside ../shared/data: point the tests at the reference data
if [ -z "${CHARRNN_DATA_DIR:-}" ] && [ -d "$src/../shared/data" ]; then
    export CHARRNN_DATA_DIR="$(cd "$src/../shared/data" && pwd)"
fi

# The kernel and property tests (ASan); files that do not exist are left out.
KERNEL_TESTS=(kernels api/test_classic.py api/test_model.py robustness/test_bad_input.py
              robustness/test_fuzz.py robustness/test_threads.py)
# A handful of kernel tests for valgrind: every kernel on valid, read-only, unaligned and
# in-place arguments, both dtypes, the compiled backend only. The same selection on the
# NumPy backend is the second baseline of the suppressions (see run_valgrind).
VALGRIND_FILE=tests/robustness/test_bad_input.py
VALGRIND_K="cython and (read_only_inputs_accepted or unaligned or hlast_may_be_h0 \
or larger_workspace or sample_zero_draws or empty_vectors or chunk_too_large)"

log() { printf '\n== %s\n' "$*"; }
RUNENV=()            # environment of every python run of the build under test

# ------------------------------------------------------------------ copy, build, check

prepare() {  # prepare NAME ENV...: copy the tree to $work/NAME, build it there in a venv
    local name="$1"; shift
    local dest="$work/$name"
    log "$name: copying $src to $dest"
    rm -rf "$dest"
    "$PYTHON" - "$src" "$dest" <<'EOF' || return 1
import os, shutil, subprocess, sys
src, dest = sys.argv[1:]
files = subprocess.run(["git", "-C", src, "ls-files", "-z", "--cached", "--others",
                        "--exclude-standard"], check=True, capture_output=True).stdout
for rel in sorted(set(files.decode().split("\0")) - {""}):
    path = os.path.join(src, rel)
    if os.path.isfile(path):                    # skip files deleted from the work tree
        os.makedirs(os.path.dirname(os.path.join(dest, rel)), exist_ok=True)
        shutil.copy2(path, os.path.join(dest, rel))
EOF
    log "$name: virtual environment (system site-packages for numpy, scipy, pytest, ...)"
    # no pip of its own: the system pip and setuptools, run by the venv python, install
    # into the venv (a bundled, older setuptools would shadow the one the build needs)
    "$PYTHON" -m venv --system-site-packages --without-pip "$dest/.venv" || return 1
    VPY="$dest/.venv/bin/python"
    if [ "$canary" = 1 ] && ! grep -q CHARRNN_CANARY "$dest/setup.py"; then
        echo "memcheck.sh: setup.py does not build charrnn._canary (CHARRNN_CANARY=1)" >&2
        return 1
    fi
    log "$name: building with $* CHARRNN_CANARY=$canary"
    # build requirements first (already satisfied where the system has them), then the
    # package with its test extra, built here without isolation so that the flags above
    # apply
    if ! (cd "$dest" && export PIP_ROOT_USER_ACTION=ignore PIP_DISABLE_PIP_VERSION_CHECK=1 \
            && "$VPY" -m pip install -q "setuptools>=77" "Cython>=3.1" "scipy>=1.10" numpy \
            && env "$@" CHARRNN_CANARY="$canary" \
                "$VPY" -m pip install -q --no-build-isolation -e ".[test]") \
            >"$dest/build.log" 2>&1
    then
        tail -30 "$dest/build.log"
        echo "memcheck.sh: the build failed (see $dest/build.log)" >&2
        return 1
    fi
    local where
    where="$(cd "$work" && env "${RUNENV[@]}" "$VPY" -c \
             'import charrnn._kernels as k; print(k.__file__)')"
    case "$where" in
        "$dest"/*) echo "the extension under test: $where" ;;
        *) echo "memcheck.sh: the venv imports $where, not the copy in $dest" >&2; return 1 ;;
    esac
    DEST="$dest"
}

existing_kernel_tests() {
    local f
    for f in "${KERNEL_TESTS[@]}"; do
        [ -e "$DEST/tests/$f" ] && printf 'tests/%s\n' "$f"
    done
}

expect_caught() {  # expect_caught LOG STATUS PATTERN...: each pattern in LOG, STATUS != 0
    local logf="$1" status="$2"; shift 2
    local p ok=1
    [ "$status" != 0 ] || { echo "the canary run exited 0" >&2; ok=0; }
    for p in "$@"; do
        if grep -q -- "$p" "$logf"; then echo "caught: $p"
        else echo "NOT caught: $p" >&2; ok=0; fi
    done
    [ "$ok" = 1 ]
}

# ------------------------------------------------------------------ the three modes

run_debug() {
    prepare "debug$suffix" CHARRNN_DEBUG=1 || return 1
    local logf="$DEST/memcheck.log" status=0
    cd "$DEST"
    if [ -n "${CANARY_RUN:-}" ]; then
        "$VPY" -m pytest -p no:cacheprovider -q tools/memcheck_canary.py >"$logf" 2>&1 \
            || status=$?
        cat "$logf"
        expect_caught "$logf" "$status" "IndexError: Out of bounds on buffer access" \
            "FAILED tools/memcheck_canary.py::test_out_of_bounds_read - IndexError" \
            "FAILED tools/memcheck_canary.py::test_out_of_bounds_write - IndexError"
        return
    fi
    log "debug: the whole suite"
    CHARRNN_REQUIRE_EXT=1 "$VPY" -m pytest -p no:cacheprovider -q \
        "${pytest_args[@]:-tests}" 2>&1 | tee "$logf"
    return "${PIPESTATUS[0]}"
}

run_asan() {
    local libasan
    libasan="$(gcc -print-file-name=libasan.so)"
    [ -f "$libasan" ] || { echo "memcheck.sh: gcc's libasan.so not found" >&2; return 1; }
    local name="asan$suffix"
    # Reports go to files (asan.PID), since pytest captures a test's stderr and an abort
    # loses it. allocator_may_return_null: a test asking for an impossible allocation
    # gets MemoryError, as without ASan, instead of an abort.
    RUNENV=(LD_PRELOAD="$libasan"
            ASAN_OPTIONS="detect_leaks=0:allocator_may_return_null=1:halt_on_error=1:\
log_path=$work/$name/asan")
    local asan=(env "${RUNENV[@]}")
    prepare "$name" CHARRNN_ASAN=1 || return 1
    local logf="$DEST/memcheck.log" status=0
    cd "$DEST"
    rm -f "$DEST"/asan.*
    if [ -n "${CANARY_RUN:-}" ]; then
        "${asan[@]}" "$VPY" -m pytest -p no:cacheprovider -q tools/memcheck_canary.py \
            >"$logf" 2>&1 || status=$?
        cat "$DEST"/asan.* >>"$logf" 2>/dev/null || true
        grep -E -A3 "ERROR: AddressSanitizer|^(READ|WRITE) of size" "$logf" | head -20 || true
        expect_caught "$logf" "$status" "ERROR: AddressSanitizer: heap-buffer-overflow" \
            "READ of size 8" "in __pyx_pf_7charrnn_7_canary_oob_read"
        return
    fi
    local tests
    mapfile -t tests < <(existing_kernel_tests)
    log "asan: ${pytest_args[*]:-${tests[*]}}"
    # more fuzzing than the default run: here an out-of-bounds access is caught
    "${asan[@]}" CHARRNN_REQUIRE_EXT=1 CHARRNN_FUZZ_EXAMPLES="${CHARRNN_FUZZ_EXAMPLES:-2000}" \
        "$VPY" -m pytest -p no:cacheprovider -q \
        "${pytest_args[@]:-${tests[@]}}" >"$logf" 2>&1 || status=$?
    tail -25 "$logf"
    if ls "$DEST"/asan.* >/dev/null 2>&1; then
        head -60 "$DEST"/asan.*
        echo "memcheck.sh: AddressSanitizer reported an error (see $DEST/asan.*)" >&2
        return 1
    fi
    return "$status"
}

run_valgrind() {
    command -v valgrind >/dev/null || { echo "memcheck.sh: valgrind not found" >&2; return 1; }
    prepare "valgrind$suffix" CFLAGS="-g -fno-omit-frame-pointer" || return 1
    local logf="$DEST/memcheck.log" supp="$DEST/baseline.supp" status=0
    cd "$DEST"
    export PYTHONMALLOC=malloc OPENBLAS_NUM_THREADS=1 CHARRNN_REQUIRE_EXT=1
    # one log per process: a forked child (before its exec) reports on its own, and only
    # the main process's errors set the exit status
    local vg=(valgrind --tool=memcheck --error-exitcode=97 --num-callers=30)
    local tests=("$VALGRIND_FILE" -k "$VALGRIND_K")
    [ ${#pytest_args[@]} -eq 0 ] || tests=("${pytest_args[@]}")
    rm -f "$DEST"/baseline-*.log "$DEST"/valgrind.*.log

    # The suppressions: whatever numpy, scipy and CPython report while no compiled kernel
    # runs. The import-only baseline covers loading them; with the default selection, the
    # same tests on the NumPy backend add CPython's run-time reports (3.11's eval loop and
    # GC give memcheck "uninitialised value" false positives).
    log "valgrind: import-only baseline"
    "${vg[@]}" --gen-suppressions=all --log-file="$DEST/baseline-import.%p.log" \
        "$VPY" -c "import numpy, scipy.linalg, charrnn, charrnn._kernels" || true
    if [ ${#pytest_args[@]} -eq 0 ] && [ -z "${CANARY_RUN:-}" ]; then
        log "valgrind: NumPy-backend baseline: -k '${VALGRIND_K/cython/numpy}'"
        "${vg[@]}" --gen-suppressions=all --log-file="$DEST/baseline-numpy.%p.log" \
            "$VPY" -m pytest -p no:cacheprovider -q "$VALGRIND_FILE" \
            -k "${VALGRIND_K/cython/numpy}" >"$DEST/baseline-numpy.out" 2>&1 || true
        tail -1 "$DEST/baseline-numpy.out"
    fi
    "$PYTHON" "$here/valgrind_supp.py" "$supp" "$DEST"/baseline-*.log || return 1
    vg+=(--suppressions="$supp" --log-file="$DEST/valgrind.%p.log")

    if [ -n "${CANARY_RUN:-}" ]; then
        "${vg[@]}" "$VPY" -m pytest -p no:cacheprovider -q tools/memcheck_canary.py \
            >"$logf" 2>&1 || status=$?
        cat "$DEST"/valgrind.*.log >"$DEST/valgrind.log"
        grep -A3 -E "Invalid (read|write) of size 8" "$DEST/valgrind.log" | head -12 || true
        expect_caught "$DEST/valgrind.log" "$status" "Invalid read of size 8" \
            "Invalid write of size 8" "_canary_oob_read" "_canary_2oob_write"
        return
    fi
    log "valgrind: ${tests[*]}"
    "${vg[@]}" "$VPY" -m pytest -p no:cacheprovider -q "${tests[@]}" >"$logf" 2>&1 \
        || status=$?
    tail -3 "$logf"
    # the main process is the one whose parent is this shell
    local main me=$BASHPID
    main="$(grep -l "Parent PID: $me\$" "$DEST"/valgrind.*.log | head -1)"
    grep -h "ERROR SUMMARY" "${main:-/dev/null}" || true
    if [ "$status" = 97 ]; then
        echo "memcheck.sh: valgrind reported errors (see ${main:-$DEST/valgrind.*.log})" >&2
    fi
    return "$status"
}

# ------------------------------------------------------------------ main

suffix=""
if [ "$canary" = 1 ]; then CANARY_RUN=1; suffix="-canary"; fi
results=()
overall=0
for mode in "${modes[@]}"; do
    start=$SECONDS
    status=0
    ( "run_$mode" ) || status=$?
    took=$((SECONDS - start))
    if [ "$status" = 0 ]; then word=$([ "$canary" = 1 ] && echo "canary caught" || echo clean)
    else word="FAILED (exit $status)"; overall=1; fi
    results+=("$(printf '%-9s %-22s %5d s' "$mode" "$word" "$took")")
done
log "summary (logs under $work)"
printf '%s\n' "${results[@]}"
exit "$overall"
