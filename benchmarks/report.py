"""Rendering of a suite run: the targets check, the markdown tables, the PNG chart and the
RESULTS.md document. Reads only the result dict that ``run.py`` builds (and writes as JSON),
so a saved run can be rendered again:

    python benchmarks/report.py benchmarks/results/results.json --results-md benchmarks/RESULTS.md
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path
from typing import Any

from charrnn.layout import is_classic
from quality_check import table as quality_check_table

LABELS = {"compiled": "charrnn compiled", "numpy": "charrnn NumPy",
          "classic": "classic min-char-rnn", "torch": "PyTorch",
          "blas-bound": "BLAS-shape bound"}
ORDER = ("compiled", "numpy", "classic", "torch")
COLORS = {"compiled": "#1f77b4", "numpy": "#2ca02c", "classic": "#ff7f0e", "torch": "#d62728"}


# ----------------------------------------------------------------------------- lookup

def model_of(c: dict) -> tuple[str, int]:
    """(cell, num_layers) of a case; a run from before the cells has the vanilla RNN."""
    return c.get("cell", "rnn"), c.get("num_layers", 1)


def model_label(c: dict) -> str:
    """The model after a case's sizes (" lstm×2"); nothing for the 1-layer vanilla RNN."""
    cell, L = model_of(c)
    return "" if is_classic(cell, L) else f" {cell}×{L}"


def find_case(res: dict, task: str, dtype: str, threads: int, B: int | None = None,
              H: int | None = None, T: int | None = None, cell: str = "rnn",
              num_layers: int = 1) -> dict | None:
    for c in res.get(task, []):
        if (c["dtype"] == dtype and c["threads"] == threads
                and (B is None or c["B"] == B) and (H is None or c["H"] == H)
                and (T is None or c.get("T") == T)
                and model_of(c) == (cell, num_layers)):
            return c
    return None


# ----------------------------------------------------------------------------- targets

# (task, (B, H, T[, cell, num_layers]) or H or (H, cell[, num_layers]), dtype, threads, kind,
#  impl, baseline, threshold, case, target); a size without a cell is the 1-layer vanilla RNN
TARGETS = [
    ("train", (1, 100, 25), "float64", 1, "ratio", "compiled", "classic", 8.0,
     "training (1,100,25) float64, 1 thread", "compiled ≥ 8× classic"),
    ("train", (1, 100, 25), "float64", 1, "ratio", "compiled", "torch", 12.0,
     "training (1,100,25) float64, 1 thread", "compiled ≥ 12× PyTorch"),
    ("train", (1, 100, 25), "float32", 1, "ratio", "compiled", "classic", 15.0,
     "training (1,100,25) float32, 1 thread", "compiled ≥ 15× classic (float64)"),
    ("train", (64, 512, 100), "float32", 1, "ratio", "compiled", "torch", 1.15,
     "training (64,512,100) float32, 1 thread", "compiled ≥ 1.15× PyTorch"),
    ("train", (64, 512, 100), "float32", 2, "ratio", "compiled", "torch", 1.25,
     "training (64,512,100) float32, 2 threads", "compiled ≥ 1.25× PyTorch"),
    ("train", (64, 512, 100), "float32", 1, "bound", "compiled", None, 0.85,
     "training (64,512,100) float32, 1 thread", "compiled ≥ 85% of the BLAS-shape bound"),
    ("train", (1, 512, 100), "float32", 1, "ratio", "compiled", "torch", 5.0,
     "training (1,512,100) float32, 1 thread", "compiled ≥ 5× PyTorch"),
    ("train", (64, 512, 100, "lstm"), "float32", 1, "ratio", "compiled", "torch", 1.3,
     "training (64,512,100) LSTM float32, 1 thread", "compiled ≥ 1.3× PyTorch"),
    ("train", (64, 512, 100, "lstm"), "float32", 1, "bound", "compiled", None, 0.85,
     "training (64,512,100) LSTM float32, 1 thread",
     "compiled ≥ 85% of the BLAS-shape bound"),
    ("train", (64, 512, 100, "lstm"), "float32", 2, "ratio", "compiled", "torch", 1.3,
     "training (64,512,100) LSTM float32, 2 threads", "compiled ≥ 1.3× PyTorch"),
    ("train", (64, 512, 100, "gru"), "float32", 1, "ratio", "compiled", "torch", 1.3,
     "training (64,512,100) GRU float32, 1 thread", "compiled ≥ 1.3× PyTorch"),
    ("train", (64, 512, 100, "gru"), "float32", 1, "bound", "compiled", None, 0.85,
     "training (64,512,100) GRU float32, 1 thread",
     "compiled ≥ 85% of the BLAS-shape bound"),
    ("train", (64, 512, 100, "gru"), "float32", 2, "ratio", "compiled", "torch", 1.3,
     "training (64,512,100) GRU float32, 2 threads", "compiled ≥ 1.3× PyTorch"),
    ("train", (1, 256, 100, "lstm"), "float32", 1, "ratio", "compiled", "torch", 3.0,
     "training (1,256,100) LSTM float32, 1 thread", "compiled ≥ 3× PyTorch"),
    ("sample", 100, "float32", 1, "bound", "compiled", None, 0.85,
     "sampling H=100 float32, 1 thread", "compiled ≥ 85% of its bound"),
    ("sample", 512, "float32", 1, "bound", "compiled", None, 0.80,
     "sampling H=512 float32, 1 thread", "compiled ≥ 80% of its bound"),
    ("sample", (512, "lstm"), "float32", 1, "bound", "compiled", None, 0.80,
     "sampling LSTM H=512 float32, 1 thread", "compiled ≥ 80% of its bound"),
    ("api", ("sample(100000)", 100), "float32", 1, "bound", "api", None, 0.85,
     "model.sample(100_000) H=100 float32, 1 thread", "≥ 85% of the sampling bound"),
    ("api", ("sample(1000)", 100), "float32", 1, "bound", "api", None, 0.70,
     "model.sample(1_000) H=100 float32, 1 thread", "≥ 70% of the sampling bound"),
    ("api", ("sample_many(64, 1000)", 512), "float32", 1, "bound", "api", None, 0.80,
     "model.sample_many(64, 1_000) H=512 float32, 1 thread",
     "≥ 80% of its bound (B = 64 GEMMs)"),
    ("api", ("score(1,000,000 chars)", 512), "float32", 1, "bound", "api", None, 0.80,
     "model.score on 1 MB, H=512 float32, 1 thread", "≥ 80% of the forward-only bound"),
    ("train", (1, 100, 25), "float64", 1, "ratio", "numpy", "classic", 2.5,
     "NumPy backend, training (1,100,25) float64, 1 thread", "NumPy ≥ 2.5× classic"),
    ("train", (64, 512, 100), "float32", 1, "ratio", "numpy", "torch", 0.9,
     "NumPy backend, training (64,512,100) float32, 1 thread", "NumPy ≥ 0.9× PyTorch"),
    ("train", (64, 512, 100), "float32", 2, "ratio", "numpy", "torch", 0.9,
     "NumPy backend, training (64,512,100) float32, 2 threads", "NumPy ≥ 0.9× PyTorch"),
]


def _range(d: dict, pct: bool = False) -> str:
    if pct:
        return f"{100 * d['median']:.0f}% ({100 * d['min']:.0f}–{100 * d['max']:.0f}%)"
    return f"{d['median']:.2f}× ({d['min']:.2f}–{d['max']:.2f})"


def evaluate_targets(res: dict) -> list[dict[str, Any]]:
    """Each target of the targets table, judged on the median of the paired per-round
    ratios (or rates) of this run; ``met`` is None when the case was not measured."""
    out = []
    for task, size, dtype, threads, kind, impl, base, thr, case, target in TARGETS:
        if task == "train":
            c = find_case(res, task, dtype, threads, *size)
        elif task == "api":
            call, H = size
            c = next((c for c in res.get("api", []) if c["call"] == call and c["H"] == H
                      and c["dtype"] == dtype and c["threads"] == threads), None)
        else:                                  # sampling: H, or (H, cell[, num_layers])
            H, *model = size if isinstance(size, tuple) else (size,)
            c = find_case(res, task, dtype, threads, 1, H, None, *model)
        row = {"case": case, "target": target, "measured": "not measured", "met": None}
        r = c["results"].get(impl) if c else None
        if r is not None:
            if kind == "ratio" and base in r["vs"]:
                v = r["vs"][base]
                row.update(value=v["median"], measured=_range(v), met=v["median"] >= thr)
            elif kind == "bound" and r.get("fraction_of_bound"):
                v = r["fraction_of_bound"]
                row.update(value=v["median"], measured=_range(v, pct=True),
                           met=v["median"] >= thr)
        out.append(row)
    q = res.get("quality")
    row = {"case": "quality regression check", "target": "default-config validation loss "
           "at fixed steps within the recorded run's + tolerance (quality_check.py)",
           "measured": "not measured", "met": None}
    if q and q["ok"] is not None:
        row["met"] = q["ok"]
        row["measured"] = ", ".join(f"{v:.4f} at step {s:,}" for s, v in q["points"][-2:])
    out.append(row)
    allocs = res.get("allocations", [])
    row = {"case": "allocations", "target": "a compiled training step allocates nothing "
           "after warm-up (tracemalloc and RSS flat)", "measured": "not measured",
           "met": None}
    if allocs:
        row["met"] = all(a["flat"] for a in allocs)
        row["measured"] = "; ".join(
            f"({a['B']},{a['H']},{a['T']}) {a['dtype']}: "
            f"{'flat' if a['flat'] else 'NOT flat'}" for a in allocs)
    out.append(row)
    return out


# ----------------------------------------------------------------------------- markdown

def _n(x: float) -> str:
    return f"{x:,.0f}"


def _table(header: list[str], rows: list[list[str]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    lines += ["| " + " | ".join(r) + " |" for r in rows]
    return "\n".join(lines)


def _case_rows(c: dict, first: list[str]) -> list[list[str]]:
    rows = []
    for impl in ORDER:
        r = c["results"].get(impl)
        if r is None:
            if impl in c["skipped"]:
                rows.append(first + [LABELS[impl], "skipped", "", "", "", c["skipped"][impl]])
            continue
        label = LABELS[impl] + (f" ({r['dtype']})" if r["dtype"] != c["dtype"] else "")
        vs = [_range(r["vs"][b]) if b in r["vs"] and b != impl else "" for b in
              ("classic", "torch")]
        frac = (_range(r["fraction_of_bound"], pct=True)
                if r["dtype"] == c["dtype"] else "")
        rows.append(first + [label, _n(r["median"]), f"{_n(r['min'])}–{_n(r['max'])}",
                             *vs, frac])
    b = c["bound"]
    rows.append(first + [LABELS["blas-bound"], _n(b["median"]),
                         f"{_n(b['min'])}–{_n(b['max'])}", "", "", "100%"])
    return rows


def _env_lines(env: dict) -> list[str]:
    lines = [f"- CPU: {env['cpu_model']} ({env['logical_cpus']} logical CPUs, "
             f"{env['usable_cpus']} usable; flags {', '.join(env['cpu_flags'])})",
             f"- Platform: {env['platform']}; Python {env['python']}",
             f"- Versions: charrnn {env['charrnn']}, numpy {env['numpy']}, "
             f"scipy {env['scipy']}, torch {env.get('torch') or 'not installed'}, "
             f"threadpoolctl {env.get('threadpoolctl') or 'not installed'}"]
    for p in env.get("blas", []):
        owner = Path(p["filepath"] or "").parent.name
        lines.append(f"- {p['user_api']} pool: {p['internal_api']} {p.get('version') or ''} "
                     f"({owner}/{Path(p['filepath'] or '').name}), architecture "
                     f"{p.get('architecture') or 'n/a'}, "
                     f"threading {p.get('threading_layer') or 'n/a'}")
    if env.get("env_vars"):
        lines.append("- Environment variables: " + ", ".join(
            f"`{k}={v}`" for k, v in env["env_vars"].items()))
    ti = env.get("torch_info")
    if ti:
        lines.append(f"- torch: CPU capability {ti.get('cpu_capability')}, MKL "
                     f"{ti.get('mkl')}, oneDNN {ti.get('mkldnn')}, default threads "
                     f"{ti.get('default_threads')}")
    la0, la1 = env.get("loadavg"), env.get("loadavg_end")
    if la0:
        lines.append(f"- Load average (1, 5, 15 min) at start {', '.join(f'{x:.2f}' for x in la0)}"
                     + (f"; at end {', '.join(f'{x:.2f}' for x in la1)}" if la1 else ""))
    return lines


def cpu_share(res: dict) -> dict[str, float] | None:
    """Median and lowest process CPU / wall time over every 1-thread round of the run."""
    xs = [x for c in res["train"] + res["sample"] if c["threads"] == 1
          for r in c["results"].values() for x in r.get("cpu_per_wall", [])]
    if not xs:
        return None
    xs.sort()
    return {"median": xs[len(xs) // 2], "min": xs[0]}


def markdown(res: dict) -> str:
    """The tables of a run as markdown."""
    s = res["settings"]
    out = [f"Median of {s['rounds']} interleaved rounds (about {s['round_time']} s per "
           f"implementation per round, after {s['warmup']} s of warm-up) and the range "
           "(min–max) of the rounds. Every ratio is paired round by round against a "
           "baseline timed in the same rounds of the same case; the bound is the "
           "BLAS-shape bound timed in those rounds too.", ""]

    out += ["## Targets", ""]
    out.append(_table(["case", "target", "measured (median, range)", "met"],
                      [[t["case"], t["target"], t["measured"],
                        {True: "yes", False: "**no**", None: "–"}[t["met"]]]
                       for t in res["targets"]]))
    out.append("")

    head = ["B,H,T", "dtype", "threads", "implementation", "chars/s (median)", "range",
            "× classic", "× PyTorch", "of bound"]
    out += ["## Training throughput", "",
            "chars/s = B·T·steps / time of whole training steps (forward, BPTT, clip, "
            "optimizer update; Adagrad lr 0.1, element-wise clip 5), V = "
            f"{s['vocab_size']}. The classic runs one stream in float64 only.", ""]
    rows = []
    for c in res["train"]:
        rows += _case_rows(c, [f"{c['B']},{c['H']},{c['T']}{model_label(c)}", c["dtype"],
                               str(c["threads"])])
    out += [_table(head, rows) if rows else "(none)", ""]

    out += ["## Sampling throughput", "",
            f"chars/s at B = 1, {s['sample_chars']} characters per call, temperature 1.", ""]
    rows = []
    for c in res["sample"]:
        rows += _case_rows(c, [f"1,{c['H']},–{model_label(c)}", c["dtype"],
                               str(c["threads"])])
    head[0] = "B,H,–"
    out += [_table(head, rows) if rows else "(none)", ""]

    out += ["## What users call", "",
            "chars/s of `model.sample(n)` (B = 1, a new seed each call), "
            "`model.sample_many(k, n)` (k streams) and `model.score(text)` (predictions "
            "per second), compiled backend, against the bound of the kernel calls each "
            "makes; *kernel* is the `sample` kernel alone on preallocated uniforms, the "
            "same characters per call.", ""]
    rows = []
    for c in res.get("api", []):
        for name in ("kernel", "api"):
            r = c["results"].get(name)
            if r is not None:
                rows.append([c["call"], str(c["H"]), c["dtype"], name, _n(r["median"]),
                             f"{_n(r['min'])}–{_n(r['max'])}",
                             _range(r["fraction_of_bound"], pct=True)])
        rows.append([c["call"], str(c["H"]), c["dtype"], LABELS["blas-bound"],
                     _n(c["bound"]["median"]),
                     f"{_n(c['bound']['min'])}–{_n(c['bound']['max'])}", "100%"])
    out += [_table(["call", "H", "dtype", "what", "chars/s (median)", "range", "of bound"],
                   rows) if rows else "(none)", ""]

    out += ["## BLAS-shape bound", "",
            "B·T / (time of one step's BLAS calls), each call timed through "
            "scipy.linalg.blas at the shapes, transposes and beta of the compiled kernel, "
            "less the time of the same calls on 1×1 operands (the cost of calling as "
            "such), timed in the same rounds. *interleaved*: a workload issuing a "
            "whole step's calls, timed in the rounds (the bound used above); *separate*: "
            "the sum of each product timed alone; *best layout*: each GEMM with the faster "
            "of its two output orientations.", ""]
    rows = []
    for c in res["train"] + res["sample"]:
        b = c["bound"]
        sep = b["separate"]
        cfg = (f"{c['B']},{c['H']},{c['T']}" if c["task"] == "train"
               else f"sample H={c['H']}") + model_label(c)
        rows.append([cfg, c["dtype"], str(c["threads"]), _n(b["median"]),
                     _n(sep["bound"]), _n(sep["best_layout_bound"]),
                     f"{sep['blas_s_per_step'] * 1e6:,.1f}", f"{sep['step_gflops']:.1f}"])
    out += [_table(["config", "dtype", "threads", "bound chars/s (interleaved)",
                    "separate", "best layout", "BLAS µs per step", "GFLOP/s"], rows)
            if rows else "(none)", ""]
    if res["gemm_peak"]:
        out += [f"Reference: {res['gemm_peak'][0]['n']}³ GEMM through scipy's BLAS", ""]
        out.append(_table(["dtype", "threads", "GFLOP/s (median)", "range"],
                          [[g["dtype"], str(g["threads"]), f"{g['median_gflops']:.1f}",
                            f"{g['min_gflops']:.1f}–{g['max_gflops']:.1f}"]
                           for g in res["gemm_peak"]]))
        out.append("")

    out += ["## Allocation check", "",
            "The compiled training step after warm-up, 1 thread: tracemalloc (which also "
            "sees numpy's array buffers) over the steps, then the RSS over as many steps "
            "again. *flat*: nothing retained, no RSS growth, and a transient peak no larger "
            "than the allowance for the Python objects of a call (argument checks, views, "
            "the returned float: about 4 KB whatever the sizes); at the sizes of the full "
            "run that is smaller than any buffer a step could need, such as its hidden "
            "states ((T+1)·B·H values).", ""]
    rows = [[f"{a['B']},{a['H']},{a['T']}", a["dtype"], f"{a['steps']:,}",
             f"{a['traced_growth']:,}", f"{a['traced_peak_above_start']:,}",
             f"{a['peak_allowance']:,}", f"{a['array_bytes_hs']:,}", f"{a['rss_growth']:,}",
             "yes" if a["flat"] else "**no**"] for a in res["allocations"]]
    out += [_table(["B,H,T", "dtype", "steps", "traced growth (bytes)",
                    "traced peak above start", "allowance", "hidden-state buffer",
                    "RSS growth (bytes)", "flat"], rows) if rows else "(not run)", ""]

    q = res.get("quality")
    if q:
        out += ["## Learning: the quality regression check", "",
                f"`quality_check.py`: {q['steps']:,} steps of the default configuration"
                + "".join(f", {k}={v}" for k, v in q["controls"].items())
                + f" on {Path(q['text']).name}, {q['threads']} BLAS threads, the whole "
                f"validation split scored every {q['eval_every']} steps "
                f"({q['seconds']:.0f} s); the reference is the run recorded "
                f"{q['reference']['recorded'] if q['reference'] else '(none for this run)'}.",
                "", quality_check_table(q), ""]

    pins = res.get("pinning", [])
    out += ["## Environment", ""] + _env_lines(res["environment"])
    for p in pins:
        out.append(f"- threads={p['threads']}: pinned={p['pinned']}, BLAS pools of "
                   f"{', '.join(p['blas_owners']) or 'none'} "
                   f"(scipy's listed: {p['scipy_blas_listed']}), "
                   f"set to {sorted({q['num_threads'] for q in p['pools']})}, "
                   f"torch threads {p['torch_threads']}")
    out.append(f"- Run time: {res['elapsed_s']:.0f} s")
    share = cpu_share(res)
    if share:
        out.append(f"- CPU share of the timed 1-thread rounds (process CPU time / wall "
                   f"time): median {share['median']:.0%}, lowest {share['min']:.0%}; "
                   "below 100% the benchmark waited for a CPU that other processes held")
    if res.get("notes"):
        out += ["", "## Notes", ""] + [f"- {n}" for n in res["notes"]]
    return "\n".join(out) + "\n"


def results_document(res: dict, md: str, chart: Path, doc: Path) -> str:
    """RESULTS.md: what ran, where, the chart and the tables."""
    env = res["environment"]
    rel = os.path.relpath(chart, doc.parent) if "path" in res.get("chart", {}) else None
    head = ["# Benchmark results", "",
            "The latest full run of the benchmark suite (`benchmarks/`, see README.md there).",
            "", "Command (from the repository root):", "", "```",
            res["command"], "```", "",
            f"Run {env['date_utc']} UTC on {env['cpu_model']}, {env['usable_cpus']} "
            f"usable CPUs, Python {env['python']}, numpy {env['numpy']}, scipy "
            f"{env['scipy']}, torch {env.get('torch') or 'not installed'}, charrnn "
            f"{env['charrnn']}.", ""]
    src = env.get("source") or {}
    if src.get("commit"):
        head += [f"Code: commit {src['commit']}"
                 + (" with uncommitted changes to the sources" if src.get("modified_sources")
                    else "")
                 + (f", compiled kernels sha256 {src['kernels_sha256']}"
                    if src.get("kernels_sha256") else "") + ".", ""]
    auto = env.get("openblas_autodetected")
    if auto:
        head += [f"**OpenBLAS kernel forced:** `OPENBLAS_CORETYPE="
                 f"{env['env_vars'].get('OPENBLAS_CORETYPE')}` was set, so numpy's and "
                 "scipy's OpenBLAS (and with it the compiled backend and the bound) ran that "
                 "kernel; unset, OpenBLAS would pick "
                 + ", ".join(f"{v} ({k})" for k, v in auto.items())
                 + ". PyTorch's MKL is not affected.", ""]
    share = cpu_share(res)
    if share and share["median"] < 0.9:
        head += [f"**A busy machine:** in the 1-thread rounds this process got a median "
                 f"{share['median']:.0%} of a CPU (lowest {share['min']:.0%}); load average "
                 f"{', '.join(f'{x:.1f}' for x in env.get('loadavg') or [])} at the start. "
                 "Absolute throughputs are low and noisy; the paired ratios less so. Rerun "
                 "the command on a quiet machine for numbers to quote.", ""]
    if rel:
        head += [f"![throughput per configuration and implementation]({rel})", ""]
    return "\n".join(head) + "\n" + md


# ----------------------------------------------------------------------------- chart

def chart(res: dict, path: Path) -> dict[str, Any]:
    """A PNG of throughput per configuration and implementation (log scale), the bound
    marked; returns {"path": ...} or {"skipped": reason}."""
    try:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except Exception as e:
        return {"skipped": f"matplotlib not importable ({type(e).__name__}: {e})"}
    panels = [(t, res[t]) for t in ("train", "sample") if res[t]]
    if not panels:
        return {"skipped": "no cases"}
    fig, axes = plt.subplots(len(panels), 1, figsize=(15, 5 * len(panels)), squeeze=False)
    for ax, (task, cases) in zip(axes[:, 0], panels):
        width = 0.8 / len(ORDER)
        for k, impl in enumerate(ORDER):
            xs, ys, lo, hi = [], [], [], []
            for i, c in enumerate(cases):
                r = c["results"].get(impl)
                if r:
                    xs.append(i - 0.4 + (k + 0.5) * width)
                    ys.append(r["median"])
                    lo.append(r["median"] - r["min"])
                    hi.append(r["max"] - r["median"])
            if xs:
                ax.bar(xs, ys, width, yerr=[lo, hi], label=LABELS[impl],
                       color=COLORS[impl], capsize=2)
        for i, c in enumerate(cases):
            ax.hlines(c["bound"]["median"], i - 0.42, i + 0.42, colors="black",
                      linestyles="--", label=LABELS["blas-bound"] if i == 0 else None)
        labels = [(f"{c['B']},{c['H']},{c['T']}" if task == "train" else f"H={c['H']}")
                  + model_label(c) + f"\n{c['dtype'].replace('float', 'f')} {c['threads']}t"
                  for c in cases]
        ax.set_xticks(range(len(cases)), labels, fontsize=8)
        ax.set_yscale("log")
        ax.set_ylabel("chars/s (median, range)")
        ax.set_title("training (B,H,T)" if task == "train" else "sampling, B = 1")
        ax.grid(axis="y", alpha=0.3, which="both")
        ax.legend(fontsize=8, ncol=5)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return {"path": str(path)}


def main(argv: list[str] | None = None) -> int:
    """Render results.md, the chart and (optionally) RESULTS.md again from results.json."""
    p = argparse.ArgumentParser(prog="benchmarks/report.py", description=main.__doc__)
    p.add_argument("json", type=Path, help="a results.json written by run.py")
    p.add_argument("--results-md", type=Path, help="also write the full report here")
    p.add_argument("--no-plot", action="store_true")
    a = p.parse_args(argv)
    try:
        res = json.loads(a.json.read_text())
    except (OSError, ValueError) as e:
        print(f"benchmarks/report.py: error: cannot read {a.json}: {e}", file=sys.stderr)
        return 1
    out = a.json.parent
    png = out / "throughput.png"
    res["targets"] = evaluate_targets(res)
    if not a.no_plot:
        res["chart"] = chart(res, png)
    md = markdown(res)
    (out / "results.md").write_text(md)
    if a.results_md is not None:
        a.results_md.write_text(results_document(res, md, png, a.results_md))
    return 0


if __name__ == "__main__":
    sys.exit(main())
