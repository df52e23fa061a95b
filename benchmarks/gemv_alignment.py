"""How much a small GEMV depends on where its matrix starts: the measurement behind
``charrnn.aligned.aligned_zeros`` (benchmarks/NOTES.md, attempt 7).

    python benchmarks/gemv_alignment.py                     # H = 100, both dtypes
    python benchmarks/gemv_alignment.py -H 512 --dtype float32

Times the two GEMVs of a B = 1 step (the forward h += Whh @ hprev and BPTT's
dhnext = Whh.T @ da) through scipy's BLAS, with the matrix starting at byte offsets 0-56
from a 64-byte boundary and the vectors aligned; the cost of a call as such is
subtracted round by round, as in ``bound.py``. 1 BLAS thread.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
if str(HERE) not in sys.path:
    sys.path.insert(0, str(HERE))

import numpy as np  # noqa: E402
from scipy.linalg import blas as fblas  # noqa: E402

import bound  # noqa: E402
from charrnn.bench import pin_threads  # noqa: E402
from charrnn.aligned import ALIGN, aligned_zeros  # noqa: E402


def gemv_times(H: int, dtype, offset: int, rounds: int, round_time: float) -> dict:
    """Net µs per call of the forward ('T' on the column-major view) and BPTT ('N')
    GEMV with the matrix starting ``offset`` bytes past a 64-byte boundary."""
    dtype = np.dtype(dtype)
    skip = offset // dtype.itemsize
    A = aligned_zeros(H * H + skip, dtype)[skip:].reshape(H, H)
    A[...] = np.random.default_rng(0).standard_normal((H, H)) * 0.01
    x = aligned_zeros(H, dtype)
    x[:] = 0.1
    y = aligned_zeros(H, dtype)
    f = fblas.sgemv if dtype == np.float32 else fblas.dgemv
    At = A.T                                   # row-major A is column-major A.T
    null = bound._null_call("gemv", dtype)
    out = {}
    for name, trans in (("forward", 1), ("bptt", 0)):
        def call(trans=trans):
            f(1.0, At, x, 1.0, y, 0, 1, 0, 1, trans, 1)
        out[name] = bound.paired_net_time(call, null, rounds, round_time)["net_s"] * 1e6
    return out


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("-H", "--hidden-size", type=int, default=100)
    p.add_argument("--dtype", choices=("float32", "float64"), action="append")
    p.add_argument("--rounds", type=int, default=9)
    p.add_argument("--round-time", type=float, default=0.05)
    a = p.parse_args(argv)
    print(f"GEMV {a.hidden_size}x{a.hidden_size}, µs per call (net of the call's own "
          f"cost), 1 BLAS thread\n")
    print("| dtype | matrix offset from 64 B | forward (Whh @ h) | BPTT (Whh.T @ da) |")
    print("|---|---|---|---|")
    with pin_threads(1):
        for dtype in a.dtype or ["float64", "float32"]:
            size = np.dtype(dtype).itemsize
            for offset in range(0, ALIGN, max(size, 8)):
                t = gemv_times(a.hidden_size, dtype, offset, a.rounds, a.round_time)
                print(f"| {dtype} | {offset} B | {t['forward']:.3f} | {t['bptt']:.3f} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
