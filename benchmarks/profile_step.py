"""Where the time of one compiled training step goes, phase by phase.

    python benchmarks/profile_step.py                       # (1,100,25) and (64,512,100) f32
    python benchmarks/profile_step.py --config 32,256,50 --dtype float64 --perf

Three views, 1 BLAS thread, each timing the fastest of its rounds (phases are
differences of timings; on a shared machine the slow rounds belong to other processes):

1. the kernel calls of a step timed on their own: fetching the chunk
   (``Batches.next_into``) and ``train_step`` (the rest of the step, one call), and the
   separate kernels it fuses: ``loss`` (forward only), ``loss_and_grads`` (forward +
   BPTT), ``sumsq`` (the norm behind ``clip_args``) and ``adagrad_update`` (clip +
   update);
2. each BLAS product of the step timed through scipy's BLAS at the kernel's shapes
   (``bound.py``), which splits forward and backward into BLAS and the rest (gather +
   bias + tanh; softmax + loss + dz; the (1-h^2) pass, dby, dbh and the dWxh scatter);
3. with ``--perf``, ``perf record`` of a process running the step, by shared object and
   symbol: OpenBLAS routines, libm (tanhf/expf), the kernel's own loops, the interpreter.
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
if str(HERE) not in sys.path:
    sys.path.insert(0, str(HERE))

import numpy as np  # noqa: E402

import bound  # noqa: E402
from bound import call_times  # noqa: E402
from environment import cpu_model  # noqa: E402

from charrnn.bench import CharrnnTrain, pin_threads  # noqa: E402
from charrnn.optim import clip_args  # noqa: E402


def _us(s: float) -> str:
    return f"{s * 1e6:,.1f}"


def kernel_times(B: int, H: int, T: int, V: int, dtype: str, rounds: int,
                 round_time: float) -> dict[str, float]:
    """Seconds per call of each kernel call a step makes (median of rounds)."""
    w = CharrnnTrain("cython", B, H, T, V, dtype)
    w.run(20)
    m, K, X, Y, h = w.model, w.K, w.X, w.Y, w.h
    ws = m.workspace(B, T)
    hl = np.empty_like(h)
    m_state = w.opt.state["m"]
    layout, theta, grad = m.layout, m.theta, m.grad
    inf = float("inf")
    # the fastest round: phases are differences of timings, and on a shared machine the
    # slow rounds are other processes' doing, not the kernel's
    ct = (lambda f: min(call_times(f, rounds, round_time)))
    return {
        "step": ct(w.step),
        "next_into": ct(lambda: w.batches.next_into(X, Y)),
        # a zero learning rate leaves theta as it is; the passes cost the same
        "train_step (the rest of the step, one call)": ct(
            lambda: K.train_step(layout, theta, grad, X, Y, h, ws, "adagrad", (m_state,),
                                 0.0, (1e-8,), 5.0, inf)),
        "loss (forward)": ct(lambda: K.loss(layout, theta, X, Y, h, hl, ws)),
        "loss_and_grads": ct(lambda: K.loss_and_grads(layout, theta, grad, X, Y, h, hl, ws)),
        "clip_args (sumsq)": ct(lambda: clip_args(K, grad, "value", 5.0)),
        "adagrad_update": ct(lambda: K.adagrad_update(theta, grad, m_state, 0.0, 1e-8,
                                                      5.0, 1.0)),
    }


def blas_times(B: int, H: int, T: int, V: int, dtype: str, rounds: int,
               round_time: float) -> list[dict]:
    """Each BLAS product of the step through scipy's BLAS (median of the rounds, the
    wrapper's cost subtracted round by round, as in ``bound.py``)."""
    meter = bound.BoundMeter(1, rounds, round_time)
    products = bound.train_products(B, H, T, V)
    ops = bound.StepOperands(products, dtype)
    rows = []
    for prod in products:
        t = meter.time(prod, dtype, ops)["as_kernel"]
        rows.append({"role": prod.role, "count": prod.count, "per_call": t["net_s"],
                     "per_step": prod.count * t["net_s"], "gflops": t["gflops"]})
    return rows


PERF_CHILD = """
import sys, time
from charrnn.bench import CharrnnTrain, pin_threads
B, H, T, V, dtype, secs = int(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3]), \\
    int(sys.argv[4]), sys.argv[5], float(sys.argv[6])
with pin_threads(1):
    w = CharrnnTrain("cython", B, H, T, V, dtype)
    w.run(20)
    t0 = time.perf_counter()
    while time.perf_counter() - t0 < secs:
        w.run(10)
"""


def perf_profile(child: str, args: list, top: int = 25) -> str:
    """``perf report`` lines (overhead, shared object, symbol) of the script ``child`` run
    with ``args`` in a child process."""
    if shutil.which("perf") is None:
        return "(perf not installed)"
    with tempfile.TemporaryDirectory() as d:
        data = Path(d) / "perf.data"
        script = Path(d) / "child.py"
        script.write_text(child)
        r = subprocess.run(["perf", "record", "-q", "-F", "2000", "-o", str(data), "--",
                            sys.executable, str(script), *map(str, args)],
                           capture_output=True, text=True, cwd=d)
        if r.returncode != 0:
            return f"(perf record failed: {r.stderr.strip()[-300:]})"
        r = subprocess.run(["perf", "report", "-i", str(data), "--stdio", "--no-children",
                            "--sort", "dso,symbol", "--percent-limit", "0.5"],
                           capture_output=True, text=True, cwd=d)
        lines = [ln for ln in r.stdout.splitlines() if ln.strip() and not ln.startswith("#")]
        return "\n".join(lines[:top])


def profile(B, H, T, V, dtype, rounds, round_time, perf: bool) -> str:
    with pin_threads(1):
        k = kernel_times(B, H, T, V, dtype, rounds, round_time)
        b = blas_times(B, H, T, V, dtype, rounds, round_time)
    fwd, lag = k["loss (forward)"], k["loss_and_grads"]
    rec = [r for r in b if r["role"].startswith("forward recurrence")][0]["per_step"]
    outg = [r for r in b if r["role"].startswith("output")][0]["per_step"]
    back = sum(r["per_step"] for r in b if not r["role"].startswith(("forward", "output")))
    step = k["step"]
    lines = [f"### (B, H, T) = ({B}, {H}, {T}), {dtype}, 1 thread", "",
             f"Whole step {_us(step)} µs = {B * T / step:,.0f} chars/s.", "",
             "| kernel call | µs per step | share of step |", "|---|---|---|"]
    for name, s in k.items():
        if name != "step":
            lines.append(f"| {name} | {_us(s)} | {s / step:.0%} |")
    fused = k["train_step (the rest of the step, one call)"]
    rest = step - k["next_into"] - fused
    parts = lag + k["clip_args (sumsq)"] + k["adagrad_update"]
    lines += [f"| Python around the calls (step − next_into − train_step) | {_us(rest)} | "
              f"{rest / step:.0%} |",
              f"| train_step − the separate calls it fuses (loss_and_grads, clip_args, "
              f"adagrad_update) | {_us(fused - parts)} | {(fused - parts) / step:.0%} |", "",
              "| BLAS product (scipy's BLAS, kernel shapes) | calls | µs per call | "
              "µs per step | GFLOP/s |", "|---|---|---|---|---|"]
    for r in b:
        lines.append(f"| {r['role']} | {r['count']} | {_us(r['per_call'])} | "
                     f"{_us(r['per_step'])} | {r['gflops']:.1f} |")
    blas = sum(r["per_step"] for r in b)
    lines += ["",
              "| phase (derived) | µs per step | share of step |", "|---|---|---|",
              f"| forward BLAS (recurrence + output GEMM) | {_us(rec + outg)} | "
              f"{(rec + outg) / step:.0%} |",
              f"| forward rest: gather + bias + tanh, softmax + loss + dz "
              f"(loss − its BLAS) | {_us(fwd - rec - outg)} | {(fwd - rec - outg) / step:.0%} |",
              f"| backward BLAS (dWhy, dH, BPTT, dWhh) | {_us(back)} | {back / step:.0%} |",
              f"| backward rest: (1−h²) pass, dby, dbh, dWxh scatter "
              f"(loss_and_grads − loss − its BLAS) | {_us(lag - fwd - back)} | "
              f"{(lag - fwd - back) / step:.0%} |",
              f"| clip + update (sumsq, adagrad_update) | "
              f"{_us(k['clip_args (sumsq)'] + k['adagrad_update'])} | "
              f"{(k['clip_args (sumsq)'] + k['adagrad_update']) / step:.0%} |",
              f"| all BLAS / whole step (= fraction of the BLAS-shape bound) | {_us(blas)} | "
              f"{blas / step:.0%} |", ""]
    if perf:
        lines += ["perf (cpu-clock samples of the step loop, by shared object and symbol):",
                  "", "```", perf_profile(PERF_CHILD, [B, H, T, V, dtype, 5.0]), "```", ""]
    return "\n".join(lines)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--config", action="append", default=None, metavar="B,H,T")
    p.add_argument("--vocab-size", type=int, default=65)
    p.add_argument("--dtype", choices=("float32", "float64"), default="float32")
    p.add_argument("--rounds", type=int, default=7)
    p.add_argument("--round-time", type=float, default=0.1)
    p.add_argument("--perf", action="store_true", help="add a perf record profile")
    a = p.parse_args(argv)
    configs = [tuple(int(x) for x in c.split(",")) for c in (a.config or
                                                              ["1,100,25", "64,512,100"])]
    print(f"Profile of the compiled step on {cpu_model()}, "
          f"{time.strftime('%Y-%m-%d %H:%M', time.gmtime())} UTC\n")
    for B, H, T in configs:
        print(profile(B, H, T, a.vocab_size, a.dtype, a.rounds, a.round_time, a.perf))
        sys.stdout.flush()
    return 0


if __name__ == "__main__":
    sys.exit(main())
