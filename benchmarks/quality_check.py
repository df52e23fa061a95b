"""The quality regression check: how far a fixed number of default-config steps gets.

    env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE \\
        python benchmarks/quality_check.py ../shared/data/tinyshakespeare.txt

Trains ``charrnn.train`` with every default (the model, the optimizer, the schedule;
``--steps`` steps, 2 BLAS threads) on the text and scores the whole validation split
every ``--eval-every`` steps. Training is deterministic per step, so the losses at fixed
steps measure how fast the model learns, whatever the machine's speed. They are compared
with ``quality_reference.json`` beside this file, the losses of a recorded run, each
allowed ``tolerance`` nats/char above its reference (the rounding of another CPU's BLAS
kernels moves them by far less). Prints the table and exits 1 on a regression. The full
benchmark run (``run.py``) runs it too; ``tests/training/test_learning.py`` is its cheap
version in the test suite. ``--record`` rewrites the reference from this run (after a
change that is meant to move it: say so in the commit).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
REFERENCE = HERE / "quality_reference.json"
STEPS, EVAL_EVERY, THREADS = 1500, 250, 2
DEFAULT_TEXT = HERE.parent.parent / "shared" / "data" / "tinyshakespeare.txt"


def measure(path: Path, steps: int = STEPS, eval_every: int = EVAL_EVERY,
            threads: int = THREADS, **controls) -> dict:
    """Train the defaults for ``steps`` steps on ``path``; the validation loss at every
    ``eval_every`` steps, against the reference when it has the same run."""
    import charrnn
    from charrnn.bench import pin_threads

    t0 = time.perf_counter()
    with pin_threads(threads):
        r = charrnn.train(path, steps=steps, eval_every=eval_every, sample_every=0,
                          verbose=False, **controls)
    points = [(h["step"], h["val_loss"]) for h in r.history if h["val_loss"] is not None]
    out = {"text": str(path), "steps": steps, "eval_every": eval_every, "threads": threads,
           "controls": controls, "config": r.model._train_state.config.to_dict(),
           "points": points, "seconds": time.perf_counter() - t0}
    ref = json.loads(REFERENCE.read_text()) if REFERENCE.is_file() else None
    # the same run: the same text, steps and controls, and the same defaults (a changed
    # default model or schedule has no reference until one is recorded)
    same = (ref is not None and ref["steps"] == steps and ref["eval_every"] == eval_every
            and ref["controls"] == controls and Path(ref["text"]).name == path.name
            and ref.get("config") == out["config"])
    if same:
        tol = ref["tolerance"]
        want = dict(map(tuple, ref["points"]))
        out["reference"] = {"points": ref["points"], "tolerance": tol,
                            "recorded": ref["recorded"]}
        out["ok"] = all(step in want and val <= want[step] + tol for step, val in points)
    else:
        out["reference"] = None
        out["ok"] = None
    return out


def table(res: dict) -> str:
    ref = dict(map(tuple, res["reference"]["points"])) if res["reference"] else {}
    tol = res["reference"]["tolerance"] if res["reference"] else None
    lines = ["| step | validation loss (nats/char) | reference | within reference + "
             f"{tol if tol is not None else '—'} |", "|---:|---:|---:|---|"]
    for step, val in res["points"]:
        r = ref.get(step)
        ok = "—" if r is None else ("yes" if val <= r + tol else "**no**")
        lines.append(f"| {step:,} | {val:.4f} | {'—' if r is None else f'{r:.4f}'} | {ok} |")
    return "\n".join(lines)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("file", type=Path, nargs="?", default=DEFAULT_TEXT)
    ap.add_argument("--steps", type=int, default=STEPS)
    ap.add_argument("--eval-every", type=int, default=EVAL_EVERY)
    ap.add_argument("--threads", type=int, default=THREADS)
    ap.add_argument("--tolerance", type=float, default=0.02,
                    help="with --record: nats/char allowed above each reference loss")
    ap.add_argument("--record", action="store_true",
                    help="write this run's losses as the reference")
    ap.add_argument("--json", type=Path, help="write the result here")
    args = ap.parse_args(argv)
    if not args.file.is_file():
        sys.exit(f"{args.file}: no such file")
    res = measure(args.file, args.steps, args.eval_every, args.threads)
    print(table(res))
    print(f"\n{res['steps']:,} default steps in {res['seconds']:.0f} s; "
          + {True: "no regression", False: "REGRESSION", None: "no reference for this run"}
          [res["ok"]])
    if args.record:
        REFERENCE.write_text(json.dumps({
            "recorded": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
            "command": "python benchmarks/quality_check.py " + " ".join(argv or sys.argv[1:]),
            "text": args.file.name, "steps": args.steps, "eval_every": args.eval_every,
            "controls": {}, "config": res["config"], "tolerance": args.tolerance,
            "points": res["points"]},
            indent=1) + "\n")
        print(f"recorded {REFERENCE}")
    if args.json:
        args.json.write_text(json.dumps(res, indent=1) + "\n")
    return 1 if res["ok"] is False else 0


if __name__ == "__main__":
    sys.exit(main())
