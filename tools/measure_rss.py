"""Measure peak memory (RSS) when training on a large generated corpus.

Training memory must not grow with the corpus: the text is encoded once, streaming, into
an id file and memory-mapped. This script checks that. It writes a generated text of
``--size-gb`` gigabytes into a temporary directory, then, in a child process, trains a
default-sized model on it for a bounded number of steps (encoding it to the id cache
first, as ``charrnn train`` does) and reports the child's peak RSS from
``resource.getrusage``. A second child does the same on a small text for comparison.

Usage (about 1-3 minutes for 1 GB, most of it writing and encoding the file):

    python tools/measure_rss.py                      # 1 GB, 200 steps, default model
    python tools/measure_rss.py --size-gb 0.05 --steps 20
    python tools/measure_rss.py --limit-mb 400       # exit 1 if the peak is above

The generated text and its id cache are deleted at the end unless ``--keep DIR`` is given.
POSIX only (``resource``).

Linux carries a process's peak RSS across fork and exec, so this parent stays lean (it
imports neither NumPy nor charrnn) and generates the text in a child of its own.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time

BLOCK = 4 << 20                         # bytes generated at a time


def generate(path: str, size: int, seed: int = 0) -> None:
    """Write ``size`` bytes of word-like ASCII text, 4 MiB at a time (bounded memory)."""
    import numpy as np

    rng = np.random.default_rng(seed)
    letters = np.frombuffer(b"etaoinshrdlcumwfgypbvkjxqz", np.uint8)
    weights = np.linspace(2.0, 0.2, letters.size)
    weights /= weights.sum()
    extra = np.frombuffer(b" \n.,;:!?'-ABCDEFGHIJKLMNOPQRSTUVWXYZ", np.uint8)
    written = 0
    with open(path, "wb") as f:
        while written < size:
            n = min(BLOCK, size - written)
            block = rng.choice(letters, n, p=weights)
            spaces = rng.random(n) < 0.18                      # words of ~5 letters
            block[spaces] = ord(" ")
            marks = rng.random(n) < 0.01
            block[marks] = rng.choice(extra, int(marks.sum()))
            f.write(block.tobytes())
            written += n


def child(args) -> None:
    """Train on ``args.text`` and print one JSON line with timings and the peak RSS."""
    import charrnn
    from charrnn.data.corpus import Corpus

    t0 = time.perf_counter()
    corpus = Corpus.from_file(args.text, cache_dir=args.cache_dir)
    t_encode = time.perf_counter() - t0
    rss_after_encode = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    t1 = time.perf_counter()
    r = charrnn.train(corpus, steps=args.steps, eval_every=args.steps,
                      eval_max_chars=args.eval_chars, sample_every=0, verbose=False,
                      checkpoint=os.path.join(args.cache_dir, "rss.ckpt.npz"))
    t_train = time.perf_counter() - t1
    cfg = r.model._train_state.config
    print(json.dumps({
        "chars": len(corpus), "memory_mapped": corpus.cache_path is not None,
        "encode_s": round(t_encode, 2), "train_s": round(t_train, 2),
        "steps": r.steps_run, "chars_per_s": round(r.chars_per_s),
        "hidden_size": cfg.hidden_size, "batch_size": cfg.batch_size,
        "seq_length": cfg.seq_length, "dtype": cfg.dtype, "backend": r.model.backend,
        "val_loss": r.val_loss,
        "peak_rss_after_encode_mb": rss_after_encode / 1024,
        "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
    }))


def _run_child(*args: str) -> str:
    p = subprocess.run([sys.executable, os.path.abspath(__file__), *args],
                       capture_output=True, text=True)
    if p.returncode != 0:
        sys.exit(f"a child process failed:\n{p.stderr}")
    return p.stdout


def measure(text: str, cache_dir: str, steps: int, eval_chars: int) -> dict:
    out = _run_child("--child", "--text", text, "--cache-dir", cache_dir,
                     "--steps", str(steps), "--eval-chars", str(eval_chars))
    return json.loads(out.strip().splitlines()[-1])


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                 formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    ap.add_argument("--size-gb", type=float, default=1.0, help="size of the generated text")
    ap.add_argument("--steps", type=int, default=200, help="training steps")
    ap.add_argument("--eval-chars", type=int, default=100_000,
                    help="validation characters evaluated at the end")
    ap.add_argument("--small-mb", type=float, default=10.0,
                    help="size of the comparison text")
    ap.add_argument("--limit-mb", type=float, default=None,
                    help="exit 1 if the peak RSS is above this")
    ap.add_argument("--keep", metavar="DIR", help="work in DIR and keep the files")
    ap.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    ap.add_argument("--generate", type=int, metavar="BYTES", help=argparse.SUPPRESS)
    ap.add_argument("--text", help=argparse.SUPPRESS)
    ap.add_argument("--cache-dir", help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.child:
        child(args)
        return 0
    if args.generate is not None:
        generate(args.text, args.generate)
        return 0

    work = args.keep or tempfile.mkdtemp(prefix="charrnn-rss-")
    os.makedirs(work, exist_ok=True)
    try:
        results = {}
        for name, size in (("small", int(args.small_mb * 1e6)),
                           ("large", int(args.size_gb * 1e9))):
            path = os.path.join(work, f"{name}.txt")
            if not (os.path.exists(path) and os.path.getsize(path) == size):
                t = time.perf_counter()
                _run_child("--generate", str(size), "--text", path)
                print(f"wrote {path}: {size / 1e6:,.0f} MB in {time.perf_counter() - t:.1f} s",
                      flush=True)
            cache = os.path.join(work, f"cache-{name}")
            results[name] = r = measure(path, cache, args.steps, args.eval_chars)
            print(f"{name}: {r['chars']:,} chars (memory-mapped: {r['memory_mapped']}), "
                  f"encode {r['encode_s']} s, {r['steps']} steps of H={r['hidden_size']} "
                  f"B={r['batch_size']} T={r['seq_length']} {r['dtype']} in {r['train_s']} s; "
                  f"peak RSS {r['peak_rss_mb']:.0f} MB "
                  f"(after encoding {r['peak_rss_after_encode_mb']:.0f} MB)", flush=True)
        big, small = results["large"]["peak_rss_mb"], results["small"]["peak_rss_mb"]
        print(f"peak RSS: {big:.0f} MB on {args.size_gb:g} GB vs {small:.0f} MB on "
              f"{args.small_mb:g} MB ({big - small:+.0f} MB)")
        print(json.dumps({"size_gb": args.size_gb, **{f"{k}_{n}": v for n, r in
                                                        results.items()
                                                        for k, v in r.items()}}))
        if args.limit_mb is not None and big > args.limit_mb:
            print(f"FAIL: peak RSS {big:.0f} MB is above {args.limit_mb:g} MB")
            return 1
        return 0
    finally:
        if not args.keep:
            shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
