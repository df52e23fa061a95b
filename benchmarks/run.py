"""The charrnn benchmark suite: training and sampling throughput of charrnn (compiled and
NumPy backends), the classic min-char-rnn and PyTorch, against the BLAS-shape bound.

    python benchmarks/run.py                     # the full suite (about 15 minutes)
    python benchmarks/run.py --smoke             # tiny sizes, a few seconds (the CI check)

Writes ``results.json``, ``results.md`` and ``throughput.png`` to ``--out`` (default
``benchmarks/results``) and, with ``--results-md PATH``, a report with the command line
and the machine (``benchmarks/RESULTS.md`` holds the latest full run). This file is the
command line; ``suite.py`` runs the cases, ``report.py`` renders them, and the method and
the timing code are ``charrnn.bench``'s (``allocations.py`` and ``environment.py`` add the
suite's own records). See ``benchmarks/README.md``.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
from pathlib import Path

from charrnn.bench import positive_int as _pos_int  # one parser for both command lines

HERE = Path(__file__).resolve().parent
if str(HERE) not in sys.path:                       # the sibling modules, from any cwd
    sys.path.insert(0, str(HERE))

import quality_check  # noqa: E402  (its defaults are the command's)

IMPLS = ("compiled", "numpy", "classic", "torch")
FULL_CONFIGS = ((1, 100, 25), (32, 256, 50), (64, 512, 100), (1, 512, 100))
CELL_CONFIGS = ((64, 512, 100), (1, 256, 100))   # of every model but the 1-layer RNN
FULL_ALLOC = ((1, 100, 25, "float64"), (1, 100, 25, "float32"), (32, 256, 50, "float32"))


# ----------------------------------------------------------------------------- arguments

def _three(names: str):
    """A parser of "a,b,c": three integers >= 1, named ``names`` ("B,H,T") in errors."""
    def parse(s: str) -> tuple[int, int, int]:
        try:
            a, b, c = (int(x) for x in s.split(","))
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected {names} (three integers), "
                                             f"got {s!r}") from None
        if min(a, b, c) < 1:
            raise argparse.ArgumentTypeError(f"{', '.join(names.split(','))} must be >= 1, "
                                             f"got {s!r}")
        return a, b, c
    return parse


_config = _three("B,H,T")


def _alloc(s: str) -> tuple[int, int, int, str]:
    parts = s.split(",")
    if len(parts) != 4 or parts[3] not in ("float32", "float64"):
        raise argparse.ArgumentTypeError(f"expected B,H,T,dtype, got {s!r}")
    return (*_config(",".join(parts[:3])), parts[3])


def _nonneg_float(s: str) -> float:
    try:
        v = float(s)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number, got {s!r}") from None
    if not (math.isfinite(v) and v >= 0):
        raise argparse.ArgumentTypeError(f"expected a number >= 0, got {s}")
    return v


def _dropout(s: str) -> float:
    v = _nonneg_float(s)
    if v >= 1:
        raise argparse.ArgumentTypeError(f"expected a rate in [0, 1), got {s}")
    return v


def _pos_float(s: str) -> float:
    v = _nonneg_float(s)
    if v == 0:
        raise argparse.ArgumentTypeError("expected a number > 0, got 0")
    return v


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="benchmarks/run.py", description=__doc__.split("\n\n")[0],
        formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("--out", type=Path, default=HERE / "results",
                   help="directory for results.json, results.md, throughput.png")
    p.add_argument("--results-md", type=Path, default=None,
                   help="also write the full report (command, machine, tables) here")
    p.add_argument("--configs", type=_config, nargs="+", default=list(FULL_CONFIGS),
                   metavar="B,H,T", help="training configurations")
    p.add_argument("--vocab-size", type=_pos_int, default=65)
    p.add_argument("--cells", nargs="+", choices=("rnn", "lstm", "gru"),
                   default=["rnn", "lstm", "gru"],
                   help="the cells of the training and sampling cases (design.md 2b)")
    p.add_argument("--num-layers", type=_pos_int, nargs="+", default=[1, 2], metavar="L",
                   help="the depths of the stacks of those cells")
    p.add_argument("--cell-configs", type=_config, nargs="*", default=list(CELL_CONFIGS),
                   metavar="B,H,T", help="training configurations of every model but the "
                   "1-layer vanilla RNN (which runs --configs)")
    p.add_argument("--cell-dtypes", nargs="*", choices=("float32", "float64"),
                   default=["float32"], help="... and their dtypes")
    p.add_argument("--cell-sample-hidden", type=_pos_int, nargs="*", default=[512],
                   metavar="H", help="... and their hidden sizes for sampling at B=1")
    p.add_argument("--dropout", type=_dropout, default=0.0,
                   help="dropout rate p in training, for every model but the 1-layer "
                        "vanilla RNN (the classic has none)")
    p.add_argument("--dtypes", nargs="+", choices=("float32", "float64"),
                   default=["float32", "float64"])
    p.add_argument("--threads", type=_pos_int, nargs="+", default=[1, 2],
                   help="BLAS thread counts (pinned with threadpoolctl and torch)")
    p.add_argument("--sample-hidden", type=_pos_int, nargs="*", default=[100, 512],
                   metavar="H", help="hidden sizes for sampling at B=1 (none: skip)")
    p.add_argument("--sample-chars", type=_pos_int, default=1000,
                   help="characters per sampling call")
    p.add_argument("--api-sample-hidden", type=_pos_int, nargs="*", default=[100],
                   metavar="H", help="hidden sizes for model.sample(n), compiled, 1 thread")
    p.add_argument("--api-sample-chars", type=_pos_int, nargs="+", default=[1000, 100_000],
                   metavar="N", help="the n of model.sample(n)")
    p.add_argument("--api-many", type=_three("K,N,H"), default=(64, 1000, 512), metavar="K,N,H",
                   help="model.sample_many(K, N) of a model with H hidden units")
    p.add_argument("--score-hidden", type=_pos_int, default=512,
                   help="hidden size for model.score")
    p.add_argument("--score-chars", type=_pos_int, default=1_000_000,
                   help="characters of the text model.score rates")
    p.add_argument("--no-api", action="store_true",
                   help="skip the API cases (model.sample, sample_many, score)")
    p.add_argument("--impls", nargs="+", choices=IMPLS, default=list(IMPLS))
    p.add_argument("--optimizer", choices=("adagrad", "sgd", "rmsprop", "adam"),
                   default="adagrad", help="charrnn's and torch's optimizer "
                   "(the classic is Adagrad)")
    p.add_argument("--rounds", type=_pos_int, default=7)
    p.add_argument("--round-time", type=_pos_float, default=0.5,
                   help="seconds per implementation per round")
    p.add_argument("--warmup", type=_nonneg_float, default=0.5,
                   help="warm-up seconds per implementation")
    p.add_argument("--pause", type=_nonneg_float, default=None,
                   help="sleep before each timed run, so the last library's spinning BLAS "
                        "threads park (default 0.1 s with >1 thread, else 0)")
    p.add_argument("--bound-rounds", type=_pos_int, default=5)
    p.add_argument("--bound-round-time", type=_pos_float, default=0.02)
    p.add_argument("--peak-size", type=_pos_int, default=2048,
                   help="n of the n x n x n reference GEMM")
    p.add_argument("--alloc", type=_alloc, nargs="*", default=list(FULL_ALLOC),
                   metavar="B,H,T,DTYPE", help="allocation checks of the compiled step")
    p.add_argument("--alloc-steps", type=_pos_int, default=1000)
    p.add_argument("--quality-file", type=Path, default=quality_check.DEFAULT_TEXT,
                   help="the text of the quality regression check")
    p.add_argument("--quality-steps", type=int, default=quality_check.STEPS,
                   help="default-config steps of the quality check (0: skip it)")
    p.add_argument("--quality-eval-every", type=_pos_int, default=quality_check.EVAL_EVERY)
    p.add_argument("--no-plot", action="store_true", help="skip the PNG chart")
    p.add_argument("--allow-unpinned", action="store_true",
                   help="run even without threadpoolctl (threads then not pinned)")
    p.add_argument("--smoke", action="store_true",
                   help="tiny sizes and short rounds: checks the harness, not the speed")
    p.add_argument("--quiet", action="store_true", help="no progress on stderr")
    return p


SMOKE = dict(configs=[(1, 8, 4), (2, 8, 4)], cell_configs=[(2, 8, 4)],
             cell_sample_hidden=[8], threads=[1], sample_hidden=[8],
             sample_chars=20, api_sample_hidden=[8], api_sample_chars=[20, 50],
             api_many=(3, 20, 8), score_hidden=8, score_chars=5000, rounds=2, round_time=0.01, warmup=0.005, pause=0.0,
             bound_rounds=2, bound_round_time=0.002, peak_size=64,
             alloc=[(1, 8, 4, "float64")], alloc_steps=20, quality_steps=4,
             quality_eval_every=2)


def _json_default(o):
    import numpy as np
    if isinstance(o, (np.integer,)):
        return int(o)
    if isinstance(o, (np.floating,)):
        return float(o)
    if isinstance(o, Path):
        return str(o)
    raise TypeError(f"not JSON serialisable: {type(o).__name__}")


def main(argv: list[str] | None = None) -> int:
    p = parser()
    args = p.parse_args(argv)
    if args.smoke:
        defaults = p.parse_args([])
        for k, v in SMOKE.items():              # smoke sizes, unless given explicitly
            if getattr(args, k) == getattr(defaults, k):
                setattr(args, k, v)
    try:
        import threadpoolctl  # noqa: F401
    except ImportError:
        if not args.allow_unpinned:
            print("benchmarks/run.py: error: threadpoolctl is needed to pin BLAS threads "
                  "(pip install threadpoolctl, or the bench extra); --allow-unpinned runs "
                  "without it", file=sys.stderr)
            return 1
    import report                       # the suite's modules (and torch) load only now
    from suite import Suite
    suite = Suite(args)
    try:
        res = suite.run()
    except (ValueError, TypeError, RuntimeError, FloatingPointError, MemoryError) as e:
        print(f"benchmarks/run.py: error: {e}", file=sys.stderr)
        return 1
    args.out.mkdir(parents=True, exist_ok=True)
    chart = args.out / "throughput.png"
    res["chart"] = (report.chart(res, chart) if not args.no_plot
                    else {"skipped": "--no-plot"})
    (args.out / "results.json").write_text(json.dumps(res, indent=1, default=_json_default)
                                           + "\n")
    md = report.markdown(res)
    (args.out / "results.md").write_text(md)
    if args.results_md is not None:
        args.results_md.parent.mkdir(parents=True, exist_ok=True)
        args.results_md.write_text(report.results_document(res, md, chart,
                                                           args.results_md))
    suite.log(f"done: {args.out / 'results.json'}, results.md"
              + (", throughput.png" if "path" in res["chart"] else ""))
    return 0


if __name__ == "__main__":
    sys.exit(main())
