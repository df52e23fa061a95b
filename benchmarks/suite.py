"""The suite's cases: which implementations run where, timed together with their bound.

``Suite(args).run()`` builds the result dict that ``run.py`` writes as JSON and that
``report.py`` renders; ``args`` are ``run.py``'s (see its ``--help``).
"""

from __future__ import annotations

import hashlib
import shlex
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import api_workloads as api
import bound
import classic
import quality_check
import report
import torch_peer  # imports torch when it is installed
from allocations import allocation_check
from environment import environment

import charrnn

# the quality check's model in a smoke run: checks the harness, not the learning
QUALITY_SMOKE = dict(hidden_size=8, batch_size=2, seq_length=8, eval_max_chars=500)
from charrnn import available_backends
from charrnn.bench import CharrnnSample, CharrnnTrain, measure, paired_ratio, pin_threads
from charrnn.layout import is_classic

HERE = Path(__file__).resolve().parent
BASELINES = ("classic", "torch")
BACKEND = {"compiled": "cython", "numpy": "numpy"}   # charrnn implementation -> backend


def source_state() -> dict[str, Any]:
    """Which code ran: the checkout's commit (and whether the sources differ from it) and
    a hash of the compiled extension, so a rerun can be matched to a build."""
    rec: dict[str, Any] = {"charrnn_path": str(Path(charrnn.__file__).parent)}
    try:
        head = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=HERE.parent,
                              capture_output=True, text=True, timeout=10)
        if head.returncode == 0:
            rec["commit"] = head.stdout.strip()
            st = subprocess.run(["git", "status", "--porcelain", "--", "charrnn", "csrc",
                                 "benchmarks"], cwd=HERE.parent, capture_output=True,
                                text=True, timeout=10)
            rec["modified_sources"] = bool(st.stdout.strip())
    except (OSError, subprocess.SubprocessError):
        pass
    try:
        from charrnn import _kernels
        rec["kernels_sha256"] = hashlib.sha256(
            Path(_kernels.__file__).read_bytes()).hexdigest()[:16]
    except Exception:
        rec["kernels_sha256"] = None
    return rec


PROBE = ("import json, scipy.linalg; from threadpoolctl import threadpool_info; "
         "print(json.dumps([[d['filepath'], d.get('architecture')] "
         "for d in threadpool_info() if d['user_api'] == 'blas']))")


def openblas_autodetected() -> dict[str, str] | None:
    """The kernels OpenBLAS picks when OPENBLAS_CORETYPE is unset (None when it is not set
    here, or the probe fails): what the forced choice is compared with."""
    import json
    import os
    if "OPENBLAS_CORETYPE" not in os.environ:
        return None
    env = {k: v for k, v in os.environ.items() if k != "OPENBLAS_CORETYPE"}
    try:
        r = subprocess.run([sys.executable, "-c", PROBE], env=env, capture_output=True,
                           text=True, timeout=60)
        return {Path(f).parent.name: arch for f, arch in json.loads(r.stdout)}
    except (OSError, subprocess.SubprocessError, ValueError):
        return None


class Suite:
    """The full run: every (configuration, dtype, threads) case, sampling, the GEMM peak
    and the allocation check."""

    def __init__(self, args) -> None:
        self.a = args
        self.t0 = time.perf_counter()
        self.compiled = "cython" in available_backends()

    def models(self) -> list[tuple[str, int]]:
        """The (cell, num_layers) of the training and sampling cases, in order."""
        return [(cell, L) for cell in self.a.cells for L in self.a.num_layers]

    def _grid(self, vanilla_sizes, cell_sizes) -> list[tuple]:
        """(size, cell, L, dtype) of the cases: the 1-layer vanilla RNN at
        ``vanilla_sizes`` in every ``--dtypes``, every other model at ``cell_sizes`` in
        ``--cell-dtypes``."""
        grid = []
        for cell, L in self.models():
            vanilla = is_classic(cell, L)
            sizes, dtypes = ((vanilla_sizes, self.a.dtypes) if vanilla
                             else (cell_sizes, self.a.cell_dtypes))
            grid += [(size, cell, L, d) for size in sizes for d in dtypes]
        return grid

    def train_grid(self) -> list[tuple]:
        """(B, H, T, cell, L, dtype) of the training cases: ``--configs`` for the vanilla
        RNN, ``--cell-configs`` for the others."""
        return [(*size, cell, L, d)
                for size, cell, L, d in self._grid(self.a.configs, self.a.cell_configs)]

    def sample_grid(self) -> list[tuple]:
        """(H, cell, L, dtype) of the sampling cases: ``--sample-hidden`` for the vanilla
        RNN, ``--cell-sample-hidden`` for the others."""
        return self._grid(self.a.sample_hidden, self.a.cell_sample_hidden)

    def log(self, msg: str) -> None:
        if not self.a.quiet:
            print(f"[{time.perf_counter() - self.t0:7.1f}s] {msg}", file=sys.stderr,
                  flush=True)

    def _skips(self, B: int, model: dict) -> dict[str, str]:
        skipped = {}
        vanilla = is_classic(model["cell"], model["num_layers"])
        if "compiled" in self.a.impls and not self.compiled:
            skipped["compiled"] = "the compiled extension charrnn._kernels is not built"
        if "classic" in self.a.impls and not vanilla:
            skipped["classic"] = "the classic min-char-rnn is the 1-layer vanilla RNN"
        elif "classic" in self.a.impls and B != 1:
            skipped["classic"] = "the classic min-char-rnn runs one stream (B=1) only"
        if "torch" in self.a.impls and not torch_peer.available():
            skipped["torch"] = torch_peer.IMPORT_ERROR
        return skipped

    def _case(self, task: str, workloads: list, meta: dict, skipped: dict,
              meter: bound.BoundMeter, products: list, chars_per_step: int,
              threads: int, dtype: str) -> dict[str, Any]:
        """Time ``workloads`` and the BLAS-only workload together; ratios per round."""
        a = self.a
        blas = bound.BlasOnly(products, dtype, chars_per_step)
        null = bound.BlasOnly(products, dtype, chars_per_step, null=True)
        pause = a.pause if a.pause is not None else (0.1 if threads > 1 else 0.0)
        timings = measure(workloads + [blas, null], a.rounds, a.round_time, a.warmup, pause,
                          log=None if a.quiet else self.log)
        by = {t.name: t for t in timings}
        tb, tn = by.pop("blas-bound"), by.pop("blas-null")
        bound.subtract_null(tb, tn)
        breakdown = meter.bound(products, dtype, chars_per_step)
        results = {}
        for name, t in by.items():
            r = t.summary()
            r["vs"] = {b: paired_ratio(t, by[b]) for b in BASELINES if b in by}
            # a fraction of the bound only against the bound of the implementation's dtype
            r["fraction_of_bound"] = paired_ratio(t, tb) if t.dtype == dtype else None
            results[name] = r
        return {"task": task, **meta, "dtype": dtype, "threads": threads,
                "pause": pause, "results": results, "skipped": skipped,
                "bound": {**tb.summary(), "separate": {
                    k: breakdown[k] for k in ("bound", "best_layout_bound",
                                              "blas_s_per_step", "step_gflops")},
                    "products": breakdown["products"]}}

    def train_case(self, B, H, T, dtype, threads, meter, cell="rnn", num_layers=1
                   ) -> dict[str, Any]:
        a, V = self.a, self.a.vocab_size
        model = {"cell": cell, "num_layers": num_layers,
                 "dropout": 0.0 if is_classic(cell, num_layers) else a.dropout}
        skipped = self._skips(B, model)
        ws = []
        for impl in a.impls:
            if impl in skipped:
                continue
            if impl in ("compiled", "numpy"):
                w = CharrnnTrain(BACKEND[impl], B, H, T, V, dtype, optimizer=a.optimizer,
                                 **model)
            elif impl == "classic":
                w = classic.ClassicTrain(H, T, V)
            else:
                w = torch_peer.TorchTrain(B, H, T, V, dtype, optimizer=a.optimizer, **model)
            w.name = impl
            ws.append(w)
        case = self._case("train", ws, {"B": B, "H": H, "T": T, "V": V, **model}, skipped,
                          meter, bound.train_products(B, H, T, V, cell, num_layers), B * T,
                          threads, dtype)
        # the loss per char after the run: a sanity check that every peer trains
        case["final_loss_per_char"] = {w.name: w.last_loss / T for w in ws
                                       if hasattr(w, "last_loss")}
        return case

    def sample_case(self, H, dtype, threads, meter, cell="rnn", num_layers=1
                    ) -> dict[str, Any]:
        a, V, n = self.a, self.a.vocab_size, self.a.sample_chars
        model = {"cell": cell, "num_layers": num_layers}
        skipped = self._skips(1, model)
        ws = []
        for impl in a.impls:
            if impl in skipped:
                continue
            if impl in ("compiled", "numpy"):
                w = CharrnnSample(BACKEND[impl], H, V, dtype, n_chars=n, **model)
            elif impl == "classic":
                w = classic.ClassicSample(H, V, n_chars=n)
            else:
                w = torch_peer.TorchSample(H, V, dtype, n_chars=n, **model)
            w.name = impl
            ws.append(w)
        return self._case("sample", ws, {"B": 1, "H": H, "V": V, "chars_per_call": n,
                                         **model}, skipped, meter,
                          bound.sample_products(H, V, 1, cell, num_layers), 1, threads,
                          dtype)

    def api_cases(self, threads, meter) -> list[dict[str, Any]]:
        """What users call, compiled backend: ``model.sample(n)`` for each n beside the
        kernel at B = 1, ``sample_many(k, n)`` beside the kernel at B = k, and
        ``model.score`` on a text, each against the bound of the kernel calls it makes."""
        a, V, cases = self.a, self.a.vocab_size, []
        if not self.compiled:
            return cases
        for dtype in a.dtypes:
            for H in a.api_sample_hidden:
                for n in a.api_sample_chars:
                    self.log(f"api sample({n}) H={H} {dtype} threads={threads}")
                    kern = CharrnnSample("cython", H, V, dtype, n_chars=n)
                    kern.name = "kernel"
                    api.trained_scale(kern.model)       # the API workload's weights
                    ws = [kern, api.ApiSample("cython", H, V, dtype, n)]
                    cases.append(self._case("api", ws, {"call": f"sample({n})", "B": 1,
                                                        "H": H, "V": V}, {}, meter,
                                            bound.sample_products(H, V), 1, threads, dtype))
            k, n, H = a.api_many
            self.log(f"api sample_many({k}, {n}) H={H} {dtype} threads={threads}")
            kern = CharrnnSample("cython", H, V, dtype, n_chars=n, batch=k)
            kern.name = "kernel"
            api.trained_scale(kern.model)
            ws = [kern, api.ApiSampleMany("cython", H, V, dtype, k, n)]
            cases.append(self._case("api", ws, {"call": f"sample_many({k}, {n})", "B": k,
                                                "H": H, "V": V}, {}, meter,
                                    bound.sample_products(H, V, k), k, threads, dtype))
            H, chars = a.score_hidden, a.score_chars
            self.log(f"api score({chars:,} chars) H={H} {dtype} threads={threads}")
            products, per_chunk = api.score_products(H, V, chars)
            cases.append(self._case("api", [api.ApiScore("cython", H, V, dtype, chars)],
                                    {"call": f"score({chars:,} chars)",
                                     "B": products[0].M if products[0].kind == "gemm" else 1,
                                     "H": H, "V": V}, {}, meter, products, per_chunk,
                                    threads, dtype))
        return cases

    def run(self) -> dict[str, Any]:
        a = self.a
        out: dict[str, Any] = {
            "command": " ".join(shlex.quote(x) for x in [Path(sys.executable).name]
                                + sys.argv),
            "settings": {k: (str(v) if isinstance(v, Path) else v)
                         for k, v in vars(a).items()},
            "environment": {**environment(), "source": source_state(),
                            "openblas_autodetected": openblas_autodetected()},
            "pinning": [], "train": [], "sample": [], "api": [], "gemm_peak": [],
            "allocations": [],
            "notes": []}
        auto = out["environment"]["openblas_autodetected"]
        if auto:
            out["notes"].append(
                f"OPENBLAS_CORETYPE={out['environment']['env_vars']['OPENBLAS_CORETYPE']} is "
                "set: OpenBLAS runs that kernel; unset, it would pick "
                + ", ".join(f"{v} ({k})" for k, v in auto.items()))
        if not torch_peer.available() and "torch" in a.impls:
            out["notes"].append(f"PyTorch skipped: {torch_peer.IMPORT_ERROR}")
        if not self.compiled:
            out["notes"].append("compiled backend skipped: charrnn._kernels is not built")
        for threads in a.threads:
            with pin_threads(threads) as rec:
                out["pinning"].append(rec)
                if not rec["pinned"]:
                    out["notes"].append(f"threads={threads}: BLAS threads NOT pinned "
                                        "(threadpoolctl is not installed); the libraries "
                                        "used their default thread counts")
                elif not rec["scipy_blas_listed"]:
                    out["notes"].append(f"threads={threads}: scipy's OpenBLAS was not "
                                        "listed by threadpoolctl, so it may not be pinned")
                meter = bound.BoundMeter(threads, a.bound_rounds, a.bound_round_time)
                for B, H, T, cell, L, dtype in self.train_grid():
                    self.log(f"train B={B} H={H} T={T} {cell}x{L} {dtype} "
                             f"threads={threads}")
                    out["train"].append(self.train_case(B, H, T, dtype, threads, meter,
                                                        cell, L))
                for H, cell, L, dtype in self.sample_grid():
                    self.log(f"sample H={H} {cell}x{L} {dtype} threads={threads}")
                    out["sample"].append(self.sample_case(H, dtype, threads, meter,
                                                          cell, L))
                if threads == 1 and not a.no_api:
                    out["api"].extend(self.api_cases(threads, meter))
                for dtype in a.dtypes:
                    self.log(f"GEMM peak n={a.peak_size} {dtype} threads={threads}")
                    out["gemm_peak"].append({"threads": threads,
                                             **bound.gemm_peak(a.peak_size, dtype)})
        if self.compiled:
            with pin_threads(1):
                for B, H, T, dtype in a.alloc:
                    self.log(f"allocation check B={B} H={H} T={T} {dtype}, "
                             f"{a.alloc_steps} steps")
                    w = CharrnnTrain("cython", B, H, T, a.vocab_size, dtype,
                                     optimizer=a.optimizer)
                    out["allocations"].append(allocation_check(w, a.alloc_steps))
        else:
            out["notes"].append("allocation check skipped: no compiled backend")
        out["quality"] = None
        if a.quality_steps and a.quality_file.is_file():
            self.log(f"quality check: {a.quality_steps} default steps on "
                     f"{a.quality_file.name}")
            out["quality"] = quality_check.measure(
                a.quality_file, a.quality_steps, a.quality_eval_every,
                **(QUALITY_SMOKE if a.smoke else {}))
        elif a.quality_steps:
            out["notes"].append(f"quality check skipped: {a.quality_file} is not there")
        out["environment"]["loadavg_end"] = environment()["loadavg"]
        out["elapsed_s"] = time.perf_counter() - self.t0
        out["targets"] = report.evaluate_targets(out)
        return out
