"""Where the time of sampling goes: the compiled ``sample`` kernel and the calls users make.

    python benchmarks/profile_sample.py                        # H=100 and H=512, float32
    python benchmarks/profile_sample.py --hidden 100 --perf

1 BLAS thread, V = 65, weights of a trained scale (``api_workloads.trained_scale``). For
each H: the kernel drawing n characters in one call and in calls of 64 (the streaming
chunk), ``model.sample(n)`` and ``model.sample(1000)``, timed in interleaved rounds with
the BLAS-shape bound (``bound.py``: the two GEMVs a character needs, timed through
scipy's BLAS, less a 1×1 call), as the suite times them: chars/s and the fraction of the
bound; with ``--perf``, ``perf record`` of the kernel loop by shared object and symbol.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
if str(HERE) not in sys.path:
    sys.path.insert(0, str(HERE))

import numpy as np  # noqa: E402

import bound  # noqa: E402
from api_workloads import trained_scale  # noqa: E402
from charrnn.bench import CharrnnSample, measure, paired_ratio, pin_threads  # noqa: E402
from environment import cpu_model  # noqa: E402
from profile_step import perf_profile  # noqa: E402

PERF_CHILD = """
import sys, time
sys.path.insert(0, {here!r})
from api_workloads import trained_scale
from charrnn.bench import CharrnnSample, pin_threads
H, V, dtype, n, secs = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3], int(sys.argv[4]), \\
    float(sys.argv[5])
with pin_threads(1):
    w = CharrnnSample("cython", H, V, dtype, n_chars=n)
    trained_scale(w.model)
    w.run(1)
    t0 = time.perf_counter()
    while time.perf_counter() - t0 < secs:
        w.run(1)
"""


class _Calls:
    """A workload of ``measure``: ``f()`` draws ``chars`` characters."""

    def __init__(self, name: str, dtype: str, chars: int, f) -> None:
        self.name, self.dtype, self.chars_per_call, self._f = name, dtype, chars, f

    def run(self, n: int) -> None:
        for _ in range(n):
            self._f()


def profile(H: int, V: int, dtype: str, n: int, rounds: int, perf: bool) -> str:
    with pin_threads(1):
        w = CharrnnSample("cython", H, V, dtype, n_chars=n)
        m = trained_scale(w.model)
        K, U = w.K, w.uniforms
        h, x = np.zeros((1, H), m.dtype), np.zeros(1, np.int32)

        def chunked(size=64):
            for i in range(0, n, size):
                x[:] = K.sample(m.layout, m.theta, h, x, U[i:i + size])[-1]
        works = [_Calls("kernel, one call of n", dtype, n, lambda: w.run(1)),
                 _Calls("kernel, calls of 64", dtype, n, chunked),
                 _Calls(f"model.sample({n})", dtype, n, lambda: m.sample(n, seed=0)),
                 _Calls("model.sample(1000)", dtype, 1000, lambda: m.sample(1000, seed=0))]
        products = bound.sample_products(H, V)
        blas = bound.BlasOnly(products, dtype, 1)
        null = bound.BlasOnly(products, dtype, 1, null=True)
        timings = {t.name: t for t in measure(works + [blas, null], rounds, 0.3, 0.2, 0.0)}
        tb, tn = timings.pop("blas-bound"), timings.pop("blas-null")
        bound.subtract_null(tb, tn)
    b = tb.summary()["median"]
    lines = [f"### H = {H}, V = {V}, {dtype}, 1 thread", "",
             f"BLAS-shape bound: {b:,.0f} chars/s ({1e6 / b:.3f} µs a character), timed "
             f"in the same {rounds} interleaved rounds as the rows below.", "",
             "| what | chars/s (median) | µs a character | of the bound (median of the "
             "rounds' ratios) |", "|---|---|---|---|"]
    for name, t in timings.items():
        r = t.summary()["median"]
        frac = paired_ratio(t, tb)
        lines.append(f"| {name} | {r:,.0f} | {1e6 / r:.3f} | {frac['median']:.0%} "
                     f"({frac['min']:.0%}–{frac['max']:.0%}) |")
    lines.append("")
    if perf:
        lines += ["perf (cpu-clock samples of the kernel loop, by shared object and symbol):",
                  "", "```", perf_profile(PERF_CHILD.format(here=str(HERE)),
                                          [H, V, dtype, n, 5.0]), "```", ""]
    return "\n".join(lines)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--hidden", type=int, nargs="+", default=[100, 512])
    p.add_argument("--vocab-size", type=int, default=65)
    p.add_argument("--dtype", choices=("float32", "float64"), default="float32")
    p.add_argument("--chars", type=int, default=100_000, help="the n of the calls")
    p.add_argument("--rounds", type=int, default=5)
    p.add_argument("--perf", action="store_true", help="add a perf record profile")
    a = p.parse_args(argv)
    print(f"Profile of sampling on {cpu_model()}, "
          f"{time.strftime('%Y-%m-%d %H:%M', time.gmtime())} UTC\n")
    for H in a.hidden:
        print(profile(H, a.vocab_size, a.dtype, a.chars, a.rounds, a.perf))
        sys.stdout.flush()
    return 0


if __name__ == "__main__":
    sys.exit(main())
