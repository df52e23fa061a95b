"""The corpus pipeline's speed: first-time encoding and cached reopening, in MB/s.

Generates, deterministically from a seed, a text of each size in ``--sizes`` in two kinds:

- ``ascii``: English-like words of letters drawn with English letter frequencies, some
  capitalised, separated by spaces, punctuation and newlines (one byte per character);
- ``utf8``: a multi-byte mix of words: accented Latin words (French/German-like, mostly
  ASCII letters with é, ü, ß, ç, ...: 2-byte characters) 45% of the words, Cyrillic
  words (2-byte) 25%, runs of CJK ideographs from a pool of 3,000 (3-byte) 25%, emoji
  (4-byte) 5%, with the same separators. Its vocabulary exceeds 256 characters, so its
  ids are uint16. The measured share of 1-, 2-, 3- and 4-byte characters is printed.

It then times, each in a fresh child process with one BLAS/OpenMP thread, the
generated file read from the page cache:

(a) first-time encoding: ``charrnn.data.Corpus.from_file`` with an empty cache
    directory, i.e. the content hash, the vocabulary scan and the id file (the files are
    above the cache threshold, so their ids are written to the id cache and mapped);
(b) cached reopening: the same call again on the filled cache directory (the content
    hash, the cached record, mapping the id file).

Rounds are interleaved over every (size, kind) case; the table gives the median and the
range of the rounds; MB/s is file bytes / 1e6 / seconds. The peak RSS of the first-time
encoding (the child's ``ru_maxrss``) and its growth over the RSS before the call are
reported too: the encoding streams, so neither may grow with the corpus. The parent
process imports neither NumPy nor charrnn, because Linux carries a process's peak RSS
across fork and exec.

Command, from the repository root (generated files go to ``--tmp``, default the system's
temporary directory, and are deleted at the end):

    python benchmarks/corpus_speed.py                       # 100 MB and 1 GB, 3 rounds
    python benchmarks/corpus_speed.py --quick               # 20 MB, 2 rounds
    python benchmarks/corpus_speed.py --sizes 100M --rounds 5 --json out.json
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile

BLOCK = 4 << 20                 # bytes of text generated at a time
KINDS = ("ascii", "utf8")
ONE_THREAD = {v: "1" for v in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS",
                               "BLIS_NUM_THREADS", "VECLIB_MAXIMUM_THREADS")}


# ----------------------------------------------------------------------------- the texts

def _words(rng, letters: str, weights, count: int, lo: int, hi: int) -> list[str]:
    """``count`` words of ``lo``..``hi`` characters drawn from ``letters`` by ``weights``."""
    import numpy as np

    pool = np.array(list(letters))
    lengths = rng.integers(lo, hi + 1, count)
    return ["".join(rng.choice(pool, n, p=weights)) for n in lengths]


def word_pools(kind: str, rng) -> tuple[list[list[bytes]], list[float]]:
    """The word pools of a kind of text, UTF-8 encoded, and the share of words from each."""
    import numpy as np

    english = "etaoinshrdlcumwfgypbvkjxqz"
    freq = np.linspace(2.0, 0.2, len(english))
    latin = _words(rng, english, freq / freq.sum(), 4000, 1, 10)
    latin = [w.capitalize() if rng.random() < 0.1 else w for w in latin]
    if kind == "ascii":
        return [[w.encode() for w in latin]], [1.0]
    accented = english + "éèàüöäßçñôê"
    acc_w = np.concatenate([freq, np.full(11, 0.25)])
    cyrillic = "".join(chr(c) for c in range(0x430, 0x450))
    cjk = "".join(chr(c) for c in rng.choice(np.arange(0x4E00, 0x9FA6), 3000, replace=False))
    emoji = "".join(chr(c) for c in range(0x1F600, 0x1F640))
    pools = [_words(rng, accented, acc_w / acc_w.sum(), 4000, 1, 10),
             _words(rng, cyrillic, None, 4000, 2, 10),
             _words(rng, cjk, None, 4000, 1, 4),
             list(emoji)]
    return [[w.encode() for w in p] for p in pools], [0.45, 0.25, 0.25, 0.05]


SEPARATORS = [b" ", b", ", b". ", b"\n", b"; ", b"! ", b"? ", b": "]
SEP_SHARE = [0.80, 0.07, 0.05, 0.04, 0.01, 0.01, 0.01, 0.01]


def generate(path: str, size: int, kind: str, seed: int = 0) -> None:
    """Write exactly ``size`` bytes of text of ``kind`` to ``path``, a block at a time.

    The last block is cut at a character boundary and padded with newlines.
    """
    import numpy as np

    rng = np.random.default_rng(seed)
    pools, share = word_pools(kind, rng)
    words = np.array([w for p in pools for w in p], dtype=object)
    starts = np.cumsum([0] + [len(p) for p in pools[:-1]])
    sizes = np.array([len(p) for p in pools])
    seps = np.array(SEPARATORS, dtype=object)
    mean = sum(s * np.mean([len(w) for w in p]) for s, p in zip(share, pools)) + 1.4
    per_block = int(BLOCK / mean)
    written = 0
    with open(path, "wb") as f:
        while written < size:
            pool = rng.choice(len(pools), per_block, p=share)
            idx = starts[pool] + (rng.random(per_block) * sizes[pool]).astype(np.int64)
            sep = rng.choice(len(seps), per_block, p=SEP_SHARE)
            block = b"".join((words[idx] + seps[sep]).tolist())
            if written + len(block) > size:
                block = block[:size - written]
                cut = len(block.decode("utf-8", "ignore").encode())
                block = block[:cut] + b"\n" * (len(block) - cut)
            f.write(block)
            written += len(block)


def byte_shares(path: str) -> dict[int, float]:
    """The share of the characters of a UTF-8 file (its first 4 MiB) by encoded length."""
    with open(path, "rb") as f:
        text = f.read(BLOCK).decode("utf-8", "ignore")
    counts = {1: 0, 2: 0, 3: 0, 4: 0}
    for ch in text:
        counts[len(ch.encode())] += 1
    return {k: v / max(1, len(text)) for k, v in counts.items()}


# ----------------------------------------------------------------------------- the children

def child_encode(path: str, cache_dir: str) -> dict:
    """Time one ``Corpus.from_file`` of ``path`` with ``cache_dir``, with its peak RSS."""
    import resource
    import time

    from environment import cpu_model

    from charrnn.data import Corpus

    def rss_kb() -> int:
        with open("/proc/self/status") as f:
            return next(int(line.split()[1]) for line in f if line.startswith("VmRSS:"))

    before = rss_kb()
    t0 = time.perf_counter()
    corpus = Corpus.from_file(path, cache_dir=cache_dir)
    seconds = time.perf_counter() - t0
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    if corpus.cache_path is None:
        raise SystemExit(f"{path} is below the cache threshold: give a larger size")
    return {"seconds": seconds, "peak_rss_kb": peak, "rss_before_kb": before,
            "chars": len(corpus), "vocab": len(corpus.vocab),
            "dtype": corpus.ids.dtype.name, "cpu_model": cpu_model()}


def run_child(*args: str) -> dict:
    """Run this script as a child with one thread and return its JSON answer."""
    env = dict(os.environ, **ONE_THREAD)
    out = subprocess.run([sys.executable, __file__, *args], env=env, check=True,
                         capture_output=True, text=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


# ----------------------------------------------------------------------------- the parent

def parse_size(s: str) -> int:
    """``"100M"``, ``"1G"``, ``"512K"`` or a byte count (decimal units)."""
    s = s.strip().upper().rstrip("B")
    mult = {"K": 10**3, "M": 10**6, "G": 10**9}.get(s[-1:], 1)
    return int(float(s[:-1] if mult > 1 else s) * mult)


def fmt_size(n: int) -> str:
    """``n`` bytes as "100 MB" or "1 GB"."""
    return f"{n / 1e9:g} GB" if n >= 10**9 else f"{n / 1e6:g} MB"


def measure(sizes: list[int], rounds: int, tmp: str, seed: int) -> dict:
    """Generate the texts, time every case in interleaved rounds, delete the texts."""
    work = tempfile.mkdtemp(prefix="charrnn-corpus-speed-", dir=tmp)
    try:
        cases = []
        for size in sizes:
            for kind in KINDS:
                path = os.path.join(work, f"{kind}-{size}.txt")
                run_child("--_generate", path, str(size), kind, str(seed))
                cases.append({"size": size, "kind": kind, "path": path,
                              "shares": json.loads(run_child("--_shares", path)["shares"]),
                              "first": [], "reopen": []})
        for r in range(rounds):
            for case in cases:
                cache = os.path.join(work, "cache")
                shutil.rmtree(cache, ignore_errors=True)
                case["first"].append(run_child("--_encode", case["path"], cache))
                case["reopen"].append(run_child("--_encode", case["path"], cache))
                shutil.rmtree(cache, ignore_errors=True)
                print(f"round {r + 1}/{rounds} {fmt_size(case['size'])} {case['kind']}: "
                      f"first {case['first'][-1]['seconds']:.2f} s, "
                      f"reopen {case['reopen'][-1]['seconds']:.3f} s", file=sys.stderr)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    for case in cases:
        del case["path"]
    return {"cpu_model": cases[0]["first"][0]["cpu_model"], "rounds": rounds,
            "seed": seed, "cases": cases}


def markdown(result: dict) -> str:
    """The table of a measurement: median MB/s (range) and the peak RSS per case."""
    def rate(case, which):
        mbs = sorted(case["size"] / 1e6 / m["seconds"] for m in case[which])
        return f"{statistics.median(mbs):,.0f} ({mbs[0]:,.0f}–{mbs[-1]:,.0f})"

    lines = ["| text | chars | V (ids) | first-time encoding, MB/s | cached reopening, MB/s "
             "| peak RSS of the encoding (growth) |",
             "|---|---|---|---|---|---|"]
    for case in result["cases"]:
        m = case["first"][0]
        sh = case["shares"]
        mix = "ASCII" if case["kind"] == "ascii" else (
            "UTF-8 (" + " / ".join(f"{100 * sh[k]:.0f}%" for k in "1234") + " 1/2/3/4-byte)")
        peak = max(x["peak_rss_kb"] for x in case["first"]) / 1024
        growth = max(x["peak_rss_kb"] - x["rss_before_kb"] for x in case["first"]) / 1024
        lines.append(f"| {fmt_size(case['size'])} {mix} | {m['chars']:,} | {m['vocab']} "
                     f"({m['dtype']}) | {rate(case, 'first')} | {rate(case, 'reopen')} "
                     f"| {peak:.0f} MiB (+{growth:.0f} MiB) |")
    return "\n".join(lines)


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--sizes", default="100M,1G", help="comma-separated sizes (default 100M,1G)")
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--quick", action="store_true", help="20M, 2 rounds")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--tmp", default=None, help="where the generated texts go")
    p.add_argument("--json", default=None, help="write the measurements here too")
    args = p.parse_args(argv)
    sizes = [parse_size(s) for s in ("20M" if args.quick else args.sizes).split(",")]
    result = measure(sizes, 2 if args.quick else args.rounds, args.tmp, args.seed)
    print(f"CPU: {result['cpu_model']}, 1 thread, texts read from the page cache; median "
          f"(range) of {result['rounds']} interleaved rounds, MB = 10^6 bytes of the file.\n")
    print(markdown(result))
    if args.json:
        with open(args.json, "w") as f:
            json.dump(result, f, indent=1)


if __name__ == "__main__":
    if len(sys.argv) > 1 and sys.argv[1].startswith("--_"):
        mode, rest = sys.argv[1], sys.argv[2:]
        if mode == "--_generate":
            generate(rest[0], int(rest[1]), rest[2], int(rest[3]))
            print("{}")
        elif mode == "--_shares":
            print(json.dumps({"shares": json.dumps(byte_shares(rest[0]))}))
        else:
            print(json.dumps(child_encode(*rest)))
    else:
        main()
