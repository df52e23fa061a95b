"""Two builds of charrnn, one training configuration, timed in interleaved rounds.

    python benchmarks/compare_builds.py A_PYTHON B_PYTHON --config 1,100,25 --dtype float64
    python benchmarks/compare_builds.py /tmp/old-venv/bin/python .venv/bin/python \
        --backend numpy --rounds 8

Each Python is a virtual environment with its own charrnn installed (for instance a
checkout of an older commit, built in place with ``pip install -e . --no-build-isolation``).
Every round starts one process per build, in alternating order, that times
``charrnn.bench.CharrnnTrain`` (the trainer's own step) with 1 BLAS thread: the fastest of
five timings of enough steps to fill 0.3 s. Prints each build's median µs a step and the
median of the per-round ratios B/A: what a change did to the speed of a step, with the
machine's drift shared by both. Both variables of OpenBLAS's kernel choice are passed on
as they are; unset them in the command to let OpenBLAS pick the CPU's own kernels.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys

CHILD = r"""
import json, sys, time
from charrnn.bench import CharrnnTrain, pin_threads
B, H, T, V, dtype, backend = (int(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3]),
                              int(sys.argv[4]), sys.argv[5], sys.argv[6])
with pin_threads(1):
    w = CharrnnTrain(backend, B, H, T, V, dtype)
    w.run(5)
    n = 1
    while True:
        t0 = time.perf_counter()
        w.run(n)
        if time.perf_counter() - t0 > 0.3:
            break
        n *= 2
    best = []
    for _ in range(5):
        t0 = time.perf_counter()
        w.run(n)
        best.append((time.perf_counter() - t0) / n)
print(json.dumps(min(best)))
"""


def step_time(python: str, args) -> float:
    B, H, T = args.config
    env = dict(os.environ, OPENBLAS_NUM_THREADS="1")
    r = subprocess.run([python, "-c", CHILD, str(B), str(H), str(T), str(args.vocab_size),
                        args.dtype, args.backend], capture_output=True, text=True,
                       cwd=os.path.expanduser("~"), env=env)
    if r.returncode != 0:
        sys.exit(f"{python}: {r.stderr.strip()[-2000:]}")
    return json.loads(r.stdout)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("a", help="the Python of build A (the baseline)")
    p.add_argument("b", help="the Python of build B")
    p.add_argument("--config", default="1,100,25", metavar="B,H,T",
                   type=lambda s: tuple(int(x) for x in s.split(",")))
    p.add_argument("--vocab-size", type=int, default=65)
    p.add_argument("--dtype", choices=("float32", "float64"), default="float64")
    p.add_argument("--backend", choices=("cython", "numpy"), default="cython")
    p.add_argument("--rounds", type=int, default=6)
    a = p.parse_args(argv)
    times = {"A": [], "B": []}
    for r in range(a.rounds):
        order = [("A", a.a), ("B", a.b)] if r % 2 == 0 else [("B", a.b), ("A", a.a)]
        for name, python in order:
            times[name].append(step_time(python, a))
    B, H, T = a.config
    print(f"({B},{H},{T}) {a.dtype}, {a.backend}, 1 thread, {a.rounds} rounds")
    for name in ("A", "B"):
        t = times[name]
        print(f"  {name}: {statistics.median(t) * 1e6:,.1f} µs a step "
              f"({min(t) * 1e6:,.1f}–{max(t) * 1e6:,.1f})")
    ratios = [b / x for b, x in zip(times["B"], times["A"])]
    print(f"  B/A time: {statistics.median(ratios):.3f} "
          f"({min(ratios):.3f}–{max(ratios):.3f})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
