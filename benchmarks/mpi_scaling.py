"""Data-parallel training over MPI against one process, in interleaved rounds.

    env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE python benchmarks/mpi_scaling.py
    python benchmarks/mpi_scaling.py --configs 64,512,100 256,512,100 --rounds 5 --json out.json

For each (B, H, T) configuration, B being the streams of the whole run:

- **one process, 2 BLAS threads**: ``charrnn.bench.CharrnnTrain`` (the trainer's own
  step: the fused ``train_step`` kernel) with B streams;
- **2 ranks, 1 BLAS thread each** (``mpiexec -n 2``): the same with B/2 streams per
  rank, the data-parallel step (``loss_and_grads``, an in-place ``Allreduce`` of the flat
  gradient and of the loss, the norm, the update).

Each round starts both, in alternating order; each times enough whole training steps to
fill ``--seconds`` after warm-up, in chars/s of the whole run. The 2-rank worker also
times, in the same process, its ``loss_and_grads`` alone and the ``Allreduce`` of the flat
gradient alone (the model's dtype and size), so the share of the step that communication
takes is measured, not guessed. Prints the medians and the median of the per-round ratios
(2 ranks / 1 process), and the OpenBLAS kernel each side ran.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path

WORKER = r"""
import json, sys, time
import numpy as np
import threadpoolctl
from charrnn.bench import CharrnnTrain, pin_threads
from charrnn.training.world import world
B, H, T, V, dtype, threads, seconds = (int(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3]),
                                       int(sys.argv[4]), sys.argv[5], int(sys.argv[6]),
                                       float(sys.argv[7]))
w = world()
comm = w.comm
barrier = comm.Barrier if comm is not None else (lambda: None)
with pin_threads(threads):
    job = CharrnnTrain("cython", B, H, T, V, dtype, optimizer="adam", clip_kind="norm",
                       world=w)
    job.run(3)
    barrier()
    n, t0 = 0, time.perf_counter()
    while True:                               # rank 0's clock decides for every rank
        job.run(1)
        n += 1
        done = w.share(time.perf_counter() - t0 >= seconds)
        if done:
            break
    barrier()
    wall = time.perf_counter() - t0
    out = {"chars_per_s": n * job.chars_per_call / wall, "steps": n,
           "step_s": wall / n, "ranks": w.size, "threads": threads,
           "blas": [{k: p.get(k) for k in ("prefix", "architecture", "num_threads")}
                    for p in threadpoolctl.threadpool_info()]}
    if w.parallel:
        model = job.model
        g = model.grad.copy()
        reps = 20
        barrier()
        t0 = time.perf_counter()
        for _ in range(reps):
            w.sum_(g)
        out["allreduce_s"] = (time.perf_counter() - t0) / reps
        out["allreduce_bytes"] = g.nbytes
        sizes = {}                                # the cost per call and per byte
        for n in (1, 2**12, 2**16, 2**18, 2**20, 2**22):
            a = np.zeros(n, model.dtype)
            w.sum_(a)
            barrier()
            t0 = time.perf_counter()
            for _ in range(reps):
                w.sum_(a)
            sizes[a.nbytes] = (time.perf_counter() - t0) / reps
        out["allreduce_sizes"] = sizes
        barrier()
        t0 = time.perf_counter()
        for _ in range(reps // 4):
            model._loss_and_grads(job.X, job.Y, job.h, job.h)
        out["grads_s"] = (time.perf_counter() - t0) / (reps // 4)
if w.root:
    print(json.dumps(out))
"""


def mpiexec() -> str:
    here = Path(sys.executable).parent
    found = shutil.which("mpiexec", path=f"{here}{os.pathsep}{os.environ.get('PATH', '')}")
    if found is None:
        sys.exit("mpiexec is not installed: pip install mpi4py mpich")
    return found


def worker(cmd: list[str], threads: int) -> dict:
    env = dict(os.environ, OPENBLAS_NUM_THREADS=str(threads), OMP_NUM_THREADS=str(threads))
    r = subprocess.run(cmd, capture_output=True, text=True, env=env,
                       cwd=os.path.expanduser("~"))
    if r.returncode != 0:
        sys.exit(f"{' '.join(cmd[:4])} ...: {r.stderr.strip()[-2000:]}")
    return json.loads(r.stdout.strip().splitlines()[-1])


def run_config(B: int, H: int, T: int, args) -> dict:
    if B % 2:
        sys.exit(f"B={B} must be even to split over 2 ranks")
    common = [str(H), str(T), str(args.vocab_size), args.dtype]
    one = [sys.executable, "-c", WORKER, str(B), *common, "2", str(args.seconds)]
    two = [mpiexec(), "-n", "2", sys.executable, "-c", WORKER, str(B // 2), *common, "1",
           str(args.seconds)]
    rounds = []
    for i in range(args.rounds):
        order = [("one", one, 2), ("two", two, 1)]
        if i % 2:
            order.reverse()
        rounds.append({name: worker(cmd, threads) for name, cmd, threads in order})
        r = rounds[-1]
        print(f"  ({B}, {H}, {T}) round {i + 1}: one process {r['one']['chars_per_s']:,.0f}"
              f" chars/s, 2 ranks {r['two']['chars_per_s']:,.0f} chars/s", flush=True)
    med = statistics.median
    two_r = [r["two"] for r in rounds]
    return {
        "config": [B, H, T], "dtype": args.dtype, "rounds": rounds,
        "one_chars_per_s": med(r["one"]["chars_per_s"] for r in rounds),
        "two_chars_per_s": med(r["chars_per_s"] for r in two_r),
        "ratio": med(r["two"]["chars_per_s"] / r["one"]["chars_per_s"] for r in rounds),
        "allreduce_s": med(r["allreduce_s"] for r in two_r),
        "allreduce_bytes": two_r[0]["allreduce_bytes"],
        "grads_s": med(r["grads_s"] for r in two_r),
        "two_step_s": med(r["step_s"] for r in two_r),
        "one_step_s": med(r["one"]["step_s"] for r in rounds),
        "blas_one": rounds[0]["one"]["blas"], "blas_two": two_r[0]["blas"],
    }


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--configs", nargs="+", default=["64,512,100", "256,512,100"],
                    help="B,H,T of the whole run (B streams in all)")
    ap.add_argument("--dtype", default="float32", choices=["float32", "float64"])
    ap.add_argument("--vocab-size", type=int, default=65)
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--seconds", type=float, default=4.0,
                    help="timed seconds of steps per worker and round")
    ap.add_argument("--json", help="write the results here")
    args = ap.parse_args(argv)
    print(f"OPENBLAS_CORETYPE={os.environ.get('OPENBLAS_CORETYPE', '(unset)')} "
          f"OPENBLAS_L2_SIZE={os.environ.get('OPENBLAS_L2_SIZE', '(unset)')}")
    results = []
    for c in args.configs:
        B, H, T = (int(x) for x in c.split(","))
        results.append(run_config(B, H, T, args))
    print(f"\n| B, H, T ({args.dtype}) | 1 process × 2 threads | 2 ranks × 1 thread | "
          f"2 ranks / 1 process | step (2 ranks) | of which loss_and_grads | "
          f"Allreduce of the gradient |")
    print("|---|---:|---:|---:|---:|---:|---:|")
    for r in results:
        B, H, T = r["config"]
        print(f"| ({B}, {H}, {T}) | {r['one_chars_per_s']:,.0f} chars/s | "
              f"{r['two_chars_per_s']:,.0f} chars/s | {r['ratio']:.3f}× | "
              f"{r['two_step_s'] * 1e3:.1f} ms | {r['grads_s'] * 1e3:.1f} ms | "
              f"{r['allreduce_s'] * 1e6:,.0f} µs for {r['allreduce_bytes'] / 1e6:.2f} MB |")
    print("\nAllreduce (sum, in place) on 2 ranks, median over the rounds:")
    sizes = [r["allreduce_sizes"] for res in results for r in (x["two"] for x in res["rounds"])]
    for nbytes in sizes[0]:
        t = statistics.median(s[nbytes] for s in sizes)
        print(f"  {int(nbytes):>10,} bytes: {t * 1e6:9.1f} µs "
              f"({int(nbytes) / t / 1e9:.2f} GB/s)")
    print(f"\nOpenBLAS, one process: {results[0]['blas_one']}")
    print(f"OpenBLAS, each rank:   {results[0]['blas_two']}")
    if args.json:
        Path(args.json).write_text(json.dumps({"time": time.strftime("%Y-%m-%d %H:%M UTC",
                                                                     time.gmtime()),
                                               "results": results}, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
