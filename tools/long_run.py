#!/usr/bin/env python3
"""A long training run, interrupted with SIGINT at random times and resumed after each.

Trains ``charrnn train`` on tinyshakespeare for a wall-clock budget (30 minutes by
default). A seeded random schedule sends SIGINT to the training process (some of the
signals land during start-up, before training begins); after each one the run goes on
with ``charrnn train --resume``. When the budget is spent, the last process is
interrupted too and the script checks that nothing was lost:

- the step count adds up: every segment's steps (read from the checkpoint before and
  after it, and from the step the command reported) sum to the final step, and the
  final state's update counter and characters seen agree with it;
- the metrics log is continuous across resumes: steps strictly increasing, no gap wider
  than the log interval, elapsed time never going back, the loss across each resume no
  jumpier than within the segments, and every record whose interval no resume split
  equal (exactly) to the uninterrupted run's record of the same steps;
- the final parameters, optimizer state, hidden state, data position and sample RNG
  equal (bitwise) those of an uninterrupted run of the same number of steps, run
  afterwards with ``--steps N`` (so the whole script takes about twice the budget).

Both runs pin BLAS to one thread (``OPENBLAS_NUM_THREADS=1`` and friends), so the
comparison can be bitwise. Not part of the test suite or CI. Run it as::

    python tools/long_run.py                        # 30 minutes, then the reference run
    python tools/long_run.py --budget 20 --gap 2 5 --train-args "--hidden-size 32"

It prints a summary (and ``--json FILE`` writes the figures), and exits 0 when every
check passed, 1 otherwise.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import random
import re
import shlex
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

MAX_STEPS = 2**31 - 1                       # "train until interrupted"
REPO = Path(__file__).resolve().parent.parent


def default_data() -> Path:
    if os.environ.get("CHARRNN_DATA_DIR"):
        return Path(os.environ["CHARRNN_DATA_DIR"]) / "tinyshakespeare.txt"
    return (REPO / ".." / "shared" / "data" / "tinyshakespeare.txt").resolve()


def child_env(work: Path) -> dict:
    env = dict(os.environ)
    for k in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
        env[k] = "1"                        # bitwise-reproducible BLAS for the comparison
    env["CHARRNN_CACHE_DIR"] = str(work / "cache")
    env["PYTHONIOENCODING"] = "utf-8"
    return env


def read_state(path: Path):
    from charrnn.api import read
    return read(path, backend="numpy")


def saved_step(path: Path) -> int:
    return read_state(path)[1].step if path.exists() else 0


def read_metrics(path: Path) -> list[dict]:
    if not path.exists():
        return []
    with open(path, encoding="utf-8") as f:
        return [json.loads(line) for line in f if line.strip()]


def draw_delay(rnd: random.Random, gap: tuple[float, float], early: float) -> float:
    """Seconds until the next SIGINT: sometimes during start-up, mostly in [gap]."""
    if rnd.random() < early:
        return rnd.uniform(0.0, 1.0)
    return rnd.uniform(*gap)


def run_segments(args, work: Path, env: dict) -> dict:
    """Train until the budget is spent, interrupting and resuming; the segments' figures."""
    rnd = random.Random(args.seed)
    ckpt_path, metrics = work / "long.ckpt.npz", work / "long.metrics.jsonl"
    train_args = shlex.split(args.train_args)
    segments = []
    t0 = time.monotonic()
    end = t0 + args.budget
    while time.monotonic() < end:
        before = saved_step(ckpt_path)
        fresh = not ckpt_path.exists()
        if fresh:
            metrics.unlink(missing_ok=True)     # an interrupted start: begin again cleanly
            cmd = ["train", str(args.data), *train_args, "-o", ckpt_path.name]
        else:
            cmd = ["train", str(args.data), "--resume", ckpt_path.name]
        cmd = [sys.executable, "-m", "charrnn", *cmd, "--steps", str(MAX_STEPS), "-q"]
        n_records = len(read_metrics(metrics))
        delay = min(draw_delay(rnd, tuple(args.gap), args.early), end - time.monotonic())
        p = subprocess.Popen(cmd, cwd=work, env=env, stdout=subprocess.PIPE,
                             stderr=subprocess.PIPE, text=True, encoding="utf-8")
        t_start = time.monotonic()
        try:
            p.wait(timeout=max(delay, 0.0))
        except subprocess.TimeoutExpired:
            pass
        if p.poll() is None:
            p.send_signal(signal.SIGINT)
        out, err = p.communicate(timeout=600)
        after = saved_step(ckpt_path)
        m = re.search(r"interrupted at step ([\d,]+)", err)
        reported = int(m.group(1).replace(",", "")) if m else None
        seg = dict(index=len(segments), fresh=fresh, delay=round(delay, 3),
                   seconds=round(time.monotonic() - t_start, 3), returncode=p.returncode,
                   before=before, after=after, reported=reported,
                   saved="checkpoint saved" in err, first_record=n_records,
                   stderr=err.strip()[-500:])
        segments.append(seg)
        if args.verbose:
            print(f"segment {seg['index']:3d}: {delay:7.2f} s, steps {before:,} -> {after:,}, "
                  f"exit {p.returncode}", flush=True)
        if p.returncode not in (130, -signal.SIGINT):
            raise SystemExit(f"segment {seg['index']} exited {p.returncode}: {err[-2000:]}")
    return dict(segments=segments, wall=time.monotonic() - t0, checkpoint=ckpt_path,
                metrics=metrics)


def run_reference(args, work: Path, env: dict, steps: int) -> dict:
    cmd = [sys.executable, "-m", "charrnn", "train", str(args.data),
           *shlex.split(args.train_args), "--steps", str(steps), "-o", "ref.ckpt.npz", "-q"]
    t0 = time.monotonic()
    p = subprocess.run(cmd, cwd=work, env=env, capture_output=True, text=True,
                       encoding="utf-8")
    if p.returncode != 0:
        raise SystemExit(f"the reference run exited {p.returncode}: {p.stderr[-2000:]}")
    return dict(wall=time.monotonic() - t0, checkpoint=work / "ref.ckpt.npz",
                metrics=work / "ref.metrics.jsonl")


# ----------------------------------------------------------------------------- checks

def check_steps(segments: list[dict], final) -> list[str]:
    problems = []
    model, st, _ = final
    prev = 0
    for s in segments:
        if s["before"] != prev:
            problems.append(f"segment {s['index']} started at step {s['before']}, the one "
                            f"before ended at {prev}")
        if s["after"] < s["before"]:
            problems.append(f"segment {s['index']} went back from {s['before']} to "
                            f"{s['after']}")
        if s["saved"] and s["reported"] != s["after"]:
            problems.append(f"segment {s['index']} reported step {s['reported']} but saved "
                            f"{s['after']}")
        if not s["saved"] and s["after"] != s["before"]:
            problems.append(f"segment {s['index']} moved the checkpoint without saying so")
        prev = s["after"]
    total = sum(s["after"] - s["before"] for s in segments)
    c = st.config
    if total != st.step:
        problems.append(f"the segments add up to {total} steps, the checkpoint has {st.step}")
    if st.optimizer.t != st.step:
        problems.append(f"the optimizer made {st.optimizer.t} updates in {st.step} steps")
    if st.chars_seen != st.step * c.batch_size * c.seq_length:
        problems.append(f"{st.chars_seen} characters seen in {st.step} steps of "
                        f"{c.batch_size}x{c.seq_length}")
    return problems


def check_metrics(recs: list[dict], ref: list[dict], segments: list[dict], final,
                  figures: dict) -> list[str]:
    problems = []
    _, st, _ = final
    c = st.config
    if not recs:
        return ["the metrics log is empty"]
    steps = [r["step"] for r in recs]
    for a, b in zip(steps, steps[1:]):
        if b <= a:
            problems.append(f"metrics steps not increasing: {a} then {b}")
        elif b - a > c.log_every:
            problems.append(f"a gap in the metrics log: step {a} to {b} "
                            f"(log interval {c.log_every})")
    if steps[0] > c.log_every:
        problems.append(f"the metrics log starts at step {steps[0]}")
    if st.step - steps[-1] > c.log_every:
        problems.append(f"the metrics log ends at {steps[-1]}, the run at {st.step}")
    el = [r.get("elapsed", 0) for r in recs]
    if any(b < a for a, b in zip(el, el[1:])):
        problems.append("elapsed time goes back in the metrics log")
    for r in recs:
        if r.get("chars") != r["step"] * c.batch_size * c.seq_length:
            problems.append(f"step {r['step']}: chars {r.get('chars')} does not match")
            break
    # records opening a segment cover part of an interval; the others are comparable
    starts = {s["first_record"] for s in segments if s["first_record"] < len(recs)}
    loss = [r.get("train_loss") for r in recs]
    inner, across = [], []
    for i in range(1, len(recs)):
        if loss[i] is None or loss[i - 1] is None:
            continue
        (across if i in starts else inner).append(abs(loss[i] - loss[i - 1]))
    if inner and across:
        inner_sorted = sorted(inner)
        p99 = inner_sorted[min(len(inner_sorted) - 1, int(0.99 * len(inner_sorted)))]
        limit = max(0.5, 3 * p99)
        figures["loss_jump_within"] = round(p99, 4)
        figures["loss_jump_across_max"] = round(max(across), 4)
        for i in sorted(starts):
            if i > 0 and loss[i] is not None and loss[i - 1] is not None \
                    and abs(loss[i] - loss[i - 1]) > limit:
                problems.append(f"the loss jumps from {loss[i - 1]:.4f} to {loss[i]:.4f} "
                                f"across the resume at step {recs[i - 1]['step']}")
    by_step = {}
    for j, r in enumerate(ref):
        by_step[r["step"]] = (ref[j - 1]["step"] if j else 0, r)
    same = differ = 0
    for i, r in enumerate(recs):
        if i in starts:
            continue
        prev_step = recs[i - 1]["step"] if i else 0
        hit = by_step.get(r["step"])
        if hit is None or hit[0] != prev_step:
            continue
        keys = [k for k in ("train_loss", "val_loss") if r.get(k) is not None]
        if all(r[k] == hit[1].get(k) for k in keys):
            same += 1
        else:
            differ += 1
            if differ <= 3:
                problems.append(f"step {r['step']}: " + ", ".join(
                    f"{k} {r[k]!r} vs {hit[1].get(k)!r} uninterrupted" for k in keys))
    figures["records"] = len(recs)
    figures["records_equal_to_reference"] = same
    if same == 0:
        problems.append("no metrics record could be compared with the uninterrupted run")
    return problems


def check_final(final, reference) -> list[str]:
    problems = []
    m1, s1, _ = final
    m2, s2, _ = reference
    if s1.step != s2.step:
        return [f"the reference run has {s2.step} steps, not {s1.step}"]
    if m1.theta.tobytes() != m2.theta.tobytes():
        import numpy as np
        d = np.abs(m1.theta.astype(np.float64) - m2.theta).max()
        problems.append(f"the final parameters differ (max |difference| {d:.3g})")
    for k in s1.optimizer.state:
        if s1.optimizer.state[k].tobytes() != s2.optimizer.state[k].tobytes():
            problems.append(f"the optimizer's {k} differs")
    if s1.optimizer.t != s2.optimizer.t:
        problems.append("the optimizer's update counter differs")
    if s1.h.tobytes() != s2.h.tobytes():
        problems.append("the carried hidden state differs")
    if (s1.position, s1.epoch) != (s2.position, s2.epoch):
        problems.append(f"the data position differs: {(s1.position, s1.epoch)} vs "
                        f"{(s2.position, s2.epoch)}")
    if s1.rng_state != s2.rng_state:
        problems.append("the sample RNG state differs")
    return problems


# ----------------------------------------------------------------------------- main

def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--data", type=Path, default=None,
                   help="the training text (default: $CHARRNN_DATA_DIR/tinyshakespeare.txt, "
                        "else ../shared/data/tinyshakespeare.txt beside the repository)")
    p.add_argument("--budget", type=float, default=1800.0,
                   help="seconds of interrupted training (default: 1800); the reference "
                        "run afterwards takes about as long again")
    p.add_argument("--gap", type=float, nargs=2, default=(10.0, 120.0), metavar=("MIN", "MAX"),
                   help="seconds between interrupts, drawn uniformly (default: 10 120)")
    p.add_argument("--early", type=float, default=0.1,
                   help="share of interrupts sent within 1 s of start-up (default: 0.1)")
    p.add_argument("--seed", type=int, default=0, help="seed of the interrupt schedule")
    p.add_argument("--train-args", default="",
                   help="extra flags for the first 'charrnn train' and the reference run, "
                        "e.g. \"--hidden-size 64 --log-every 20\"")
    p.add_argument("--workdir", type=Path, default=None,
                   help="where the checkpoints and logs go (default: a new temp directory)")
    p.add_argument("--json", type=Path, default=None, help="also write the figures here")
    p.add_argument("-v", "--verbose", action="store_true", help="a line per segment")
    args = p.parse_args(argv)
    args.data = (args.data or default_data()).resolve()
    if not args.data.is_file():
        p.error(f"no training text at {args.data} (give --data or set CHARRNN_DATA_DIR)")
    if not (0 < args.gap[0] <= args.gap[1]) or args.budget <= 0:
        p.error("--budget and --gap must be positive, MIN <= MAX")
    work = args.workdir or Path(tempfile.mkdtemp(prefix="charrnn-long-run-"))
    work.mkdir(parents=True, exist_ok=True)
    env = child_env(work)

    run = run_segments(args, work, env)
    segs = run["segments"]
    if not run["checkpoint"].exists():
        print("no checkpoint was ever written: the budget is too short", file=sys.stderr)
        return 1
    final = read_state(run["checkpoint"])
    steps = final[1].step
    if steps == 0:
        print("no training step was ever saved: the budget is too short", file=sys.stderr)
        return 1
    ref = run_reference(args, work, env, steps)
    reference = read_state(ref["checkpoint"])

    figures = {}
    checks = {
        "step count adds up": check_steps(segs, final),
        "metrics log continuous": check_metrics(read_metrics(run["metrics"]),
                                                read_metrics(ref["metrics"]), segs, final,
                                                figures),
        "final state equals the uninterrupted run": check_final(final, reference),
    }
    st = final[1]
    c = st.config
    recs = read_metrics(run["metrics"])
    last = next((r for r in reversed(recs) if r.get("train_loss") is not None), {})
    val = next((r for r in reversed(recs) if r.get("val_loss") is not None), {})
    summary = {
        "data": str(args.data), "budget_s": args.budget, "seed": args.seed,
        "config": f"H={c.hidden_size} B={c.batch_size} T={c.seq_length} {c.optimizer} "
                  f"{c.dtype} log_every={c.log_every} eval_every={c.eval_every}",
        "wall_s": round(run["wall"], 1), "reference_wall_s": round(ref["wall"], 1),
        "segments": len(segs),
        "interrupts_before_training": sum(1 for s in segs if not s["saved"]),
        "steps": steps, "chars": st.chars_seen, "epochs": st.epoch,
        "steps_per_segment": [s["after"] - s["before"] for s in segs],
        "final_train_loss": last.get("train_loss"), "final_val_loss": val.get("val_loss"),
        "best_val_loss": st.best_val_loss,
        "chars_per_s_overall": round(st.chars_seen / max(st.elapsed, 1e-9)),
        **figures,
        "checks": {k: ("ok" if not v else v) for k, v in checks.items()},
        "workdir": str(work),
    }
    print("long run summary")
    for k, v in summary.items():
        if k == "checks":
            for name, res in v.items():
                print(f"  check {name}: {'ok' if res == 'ok' else 'FAILED'}")
                if res != "ok":
                    for line in res:
                        print(f"      {line}")
        elif k == "steps_per_segment":
            print(f"  {k}: min {min(v)}, median {statistics.median(v):g}, max {max(v)}")
        elif isinstance(v, float) and not math.isnan(v):
            print(f"  {k}: {v:.4f}" if abs(v) < 100 else f"  {k}: {v:,.1f}")
        else:
            print(f"  {k}: {v}")
    if args.json is not None:
        args.json.write_text(json.dumps(summary, indent=2) + "\n")
    return 0 if all(not v for v in checks.values()) else 1


if __name__ == "__main__":
    sys.exit(main())
