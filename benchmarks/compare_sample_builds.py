"""Two builds of the compiled sampling kernel, timed in one process, interleaved.

    python benchmarks/compare_sample_builds.py OLD_TREE NEW_TREE --hidden 100

Each tree is a checkout with its extension built in place (``python setup.py build_ext
--inplace``), so that ``TREE/charrnn/_kernels*.so`` exists. Both modules are loaded into
this process (from their own files, side by side), and each round calls one and then
the other (the order alternating round by round) on the same model, state and uniforms:
``sample`` of n characters in one call, the fastest of 3 calls. Prints each build's
median chars/s and the median and quartiles of the per-round speed ratios new/old: what
a change did to the kernel, with the machine's drift shared by both. 1 BLAS thread; the
model is the benchmarks' (V = 65, weights at a trained scale, float32 unless told).
Leave both OpenBLAS variables as they are, or unset them in the command.
"""

from __future__ import annotations

import argparse
import glob
import importlib.util
import statistics
import sys
import time
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
if str(HERE) not in sys.path:
    sys.path.insert(0, str(HERE))

from api_workloads import trained_scale  # noqa: E402
from charrnn.bench import CharrnnSample, pin_threads  # noqa: E402


def load(tree: str):
    """The compiled module of a checkout, loaded from its own file."""
    found = glob.glob(str(Path(tree) / "charrnn" / "_kernels*.so"))
    if not found:
        sys.exit(f"compare_sample_builds: no charrnn/_kernels*.so under {tree}; build it "
                 "with `python setup.py build_ext --inplace` there")
    spec = importlib.util.spec_from_file_location("charrnn._kernels", found[0])
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("old")
    ap.add_argument("new")
    ap.add_argument("--hidden", type=int, default=100)
    ap.add_argument("--chars", type=int, default=20_000)
    ap.add_argument("--dtype", choices=["float32", "float64"], default="float32")
    ap.add_argument("--rounds", type=int, default=25)
    args = ap.parse_args()
    builds = {"old": load(args.old), "new": load(args.new)}
    H, n = args.hidden, args.chars
    with pin_threads(1):
        m = trained_scale(CharrnnSample("cython", H, 65, args.dtype, n_chars=10).model)
        U = np.random.default_rng(0).random((n, 1))
        first = np.zeros(1, np.int32)
        times: dict[str, list[float]] = {k: [] for k in builds}
        ratios = []
        for r in range(args.rounds):
            best = {}
            for k in ("old", "new") if r % 2 else ("new", "old"):
                calls = []
                for _ in range(3):
                    h = np.zeros((1, H), m.dtype)
                    t0 = time.perf_counter()
                    builds[k].sample(m.layout, m.theta, h, first, U, 1.0, None)
                    calls.append(time.perf_counter() - t0)
                best[k] = min(calls)
                times[k].append(best[k])
            ratios.append(best["old"] / best["new"])
    print(f"H={H}, {args.dtype}, {n:,} characters a call, {args.rounds} rounds")
    for k, tree in (("old", args.old), ("new", args.new)):
        print(f"{k} ({tree}): {n / statistics.median(times[k]):,.0f} chars/s")
    q1, q3 = np.quantile(ratios, [0.25, 0.75])
    print(f"speed new/old: median {statistics.median(ratios):.3f} (quartiles {q1:.3f}, "
          f"{q3:.3f})")


if __name__ == "__main__":
    main()
