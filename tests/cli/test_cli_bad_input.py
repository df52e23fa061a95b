"""The command line's rows of the bad-input table: one-line errors and exit codes.

Every mistake must end with one line on stderr, no traceback, and exit code 2 for a
usage error (a bad flag value) or 1 for anything else (a bad file, a bad checkpoint).
Rows that tests/cli/test_cli.py already runs are not repeated here. Each row runs through
``charrnn.cli.main`` in this process (fast), and as ``python -m charrnn`` in a
subprocess with a temporary working directory: one row of each kind in the default run,
every row with ``CHARRNN_CLI_ALL=1`` (about 40 s; those rows are also marked ``slow``).
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys

import numpy as np
import pytest

import charrnn
from charrnn import cli

TEXT = "the quick brown fox jumps over the lazy dog. " * 30


def rewrite(src, dst, meta=None, change=None):
    """A copy of checkpoint ``src`` with its metadata or arrays changed."""
    with np.load(src, allow_pickle=False) as z:
        a = {k: z[k] for k in z.files}
    if meta is not None:
        m = json.loads(a["meta"].tobytes())
        meta(m)
        a["meta"] = np.frombuffer(json.dumps(m).encode(), np.uint8)
    if change:
        a.update(change)
    with open(dst, "wb") as f:
        np.savez(f, **a)


def make_files(d) -> None:
    """The files the rows refer to, all in ``d``."""
    good = d / "m.ckpt.npz"
    charrnn.train(TEXT, hidden_size=8, batch_size=2, seq_length=6, steps=4, eval_every=2,
                  sample_every=0, verbose=False, checkpoint=good, optimizer="adam")
    blob = good.read_bytes()
    (d / "text.txt").write_text(TEXT)
    (d / "empty.txt").write_bytes(b"")
    (d / "seq8.txt").write_text("abcdefgh")                 # T=8 needs at least 9 characters
    (d / "one.txt").write_text("aZZZ")                      # one character of the vocabulary
    (d / "latin1.txt").write_bytes("naïve café".encode("latin-1"))   # \xef at offset 2
    (d / "binary.bin").write_bytes(b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR" + bytes(range(256)))
    (d / "nul.txt").write_bytes(b"abc\x00def\x00" * 10)      # valid UTF-8, not in the vocab
    (d / "adir").mkdir()
    (d / "half.ckpt.npz").write_bytes(blob[:len(blob) // 2])
    (d / "lastbyte.ckpt.npz").write_bytes(blob[:-1])
    flipped = bytearray(blob)
    with np.load(good, allow_pickle=False) as z:
        off = blob.find(z["Why"].tobytes()[:16])
    assert off > 0
    flipped[off + 5] ^= 0x55
    (d / "flipped.ckpt.npz").write_bytes(bytes(flipped))
    (d / "empty.ckpt.npz").write_bytes(b"")
    np.savez(d / "foreign.npz", weights=np.ones(3))
    np.save(d / "array.npy", np.arange(4))
    (d / "foreign.zip").write_bytes(b"PK\x05\x06" + b"\x00" * 18)    # an empty zip archive
    rewrite(good, d / "newer.ckpt.npz", meta=lambda m: m.update(version=99))
    rewrite(good, d / "otherformat.ckpt.npz", meta=lambda m: m.update(format="keras"))
    # pickle-bearing: an object array (numpy pickles it) in place of a parameter / the meta
    with np.load(good, allow_pickle=False) as z:
        a = {k: z[k] for k in z.files}
    a["Wxh"] = np.array([{"evil": "__reduce__"}, None], dtype=object)
    np.savez(d / "pickled.ckpt.npz", **a)
    np.savez(d / "pickledmeta.ckpt.npz", meta=np.array([os.system], dtype=object))


CKPT_ROWS = {
    # name: (file, pattern)
    "truncated half": ("half.ckpt.npz", r"half\.ckpt\.npz: not a valid checkpoint"),
    "truncated last byte": ("lastbyte.ckpt.npz", r"lastbyte\.ckpt\.npz: not a valid"),
    "flipped byte": ("flipped.ckpt.npz", r"flipped\.ckpt\.npz: not a valid checkpoint"),
    "empty file": ("empty.ckpt.npz", r"empty\.ckpt\.npz: not a charrnn checkpoint"),
    "foreign npz": ("foreign.npz", r"foreign\.npz: not a charrnn checkpoint \(no 'meta'"),
    "npy file": ("array.npy", r"array\.npy: not a charrnn checkpoint"),
    "empty zip": ("foreign.zip", r"foreign\.zip: not a charrnn checkpoint"),
    "other format": ("otherformat.ckpt.npz", r"unknown format 'keras'"),
    "newer version": ("newer.ckpt.npz", r"format version 99 is newer .* upgrade charrnn"),
    "pickled param": ("pickled.ckpt.npz", r"pickled\.ckpt\.npz: not a valid checkpoint"),
    "pickled meta": ("pickledmeta.ckpt.npz", r"pickledmeta\.ckpt\.npz: not a valid"),
    "a directory": ("adir", r"adir: Is a directory"),
}

ROWS = []
for name, (f, pat) in CKPT_ROWS.items():
    ROWS += [(f"sample {name}", ["sample", f, "-n", "5"], 1, pat),
             (f"score {name}", ["score", f, "text.txt"], 1, pat),
             (f"info {name}", ["info", f], 1, pat)]
ROWS += [
    ("train resume newer", ["train", "--resume", "newer.ckpt.npz", "--steps", "1"], 1,
     r"newer"),
    ("train resume pickled", ["train", "--resume", "pickled.ckpt.npz", "--steps", "1"], 1,
     r"not a valid checkpoint"),
    # texts
    ("train dir", ["train", "adir", "--steps", "1"], 1, r"adir"),
    ("train exactly T chars", ["train", "seq8.txt", "--seq-length", "8", "--batch-size", "1",
                               "--steps", "1"], 1, r"too short"),
    ("train latin-1 file", ["train", "latin1.txt", "--steps", "1"], 1,
     r"latin1\.txt.*not valid UTF-8 at byte offset 2"),
    ("train binary file", ["train", "binary.bin", "--steps", "1"], 1,
     r"binary\.bin.*not valid UTF-8 at byte offset 0"),
    ("score empty", ["score", "m.ckpt.npz", "empty.txt"], 1, r"empty\.txt"),
    ("score latin-1", ["score", "m.ckpt.npz", "latin1.txt"], 1,
     r"not valid UTF-8 at byte offset 2"),
    ("score binary", ["score", "m.ckpt.npz", "binary.bin"], 1,
     r"not valid UTF-8 at byte offset 0"),
    ("score unknown chars", ["score", "m.ckpt.npz", "nul.txt"], 1, r"vocabulary"),
    ("score one char", ["score", "m.ckpt.npz", "one.txt", "--skip-unknown"], 1,
     r"at least 2 characters"),
    ("score dir", ["score", "m.ckpt.npz", "adir"], 1, r"adir"),
    ("prime file missing", ["sample", "m.ckpt.npz", "--prime-file", "nope.txt"], 1,
     r"nope\.txt: No such file"),
    ("prime file latin-1", ["sample", "m.ckpt.npz", "--prime-file", "latin1.txt"], 1,
     r"not valid UTF-8 at byte offset 2"),
    ("prime file unknown", ["sample", "m.ckpt.npz", "--prime-file", "nul.txt"], 1,
     r"not in the model's vocabulary"),
    ("prime unknown unicode", ["sample", "m.ckpt.npz", "--prime", "the 😀"], 1,
     r"not in the model's vocabulary"),
    # flag values
    ("sample n text", ["sample", "m.ckpt.npz", "-n", "ten"], 2, r"-n/--length.*'ten'"),
    ("sample n huge", ["sample", "m.ckpt.npz", "-n", str(2**31)], 2, r"--length"),
    ("temperature nan", ["sample", "m.ckpt.npz", "--temperature", "nan"], 2, r"temperature"),
    ("temperature inf", ["sample", "m.ckpt.npz", "--temperature", "inf"], 2, r"temperature"),
    ("top-k negative", ["sample", "m.ckpt.npz", "--top-k", "-3"], 2, r"top-k"),
    ("top-k V+1", ["sample", "m.ckpt.npz", "--top-k", "V+1"], 2, r"vocabulary size"),
    ("seed negative", ["sample", "m.ckpt.npz", "--seed", "-1"], 2, r"--seed"),
    ("hidden size negative", ["train", "text.txt", "--hidden-size", "-3"], 2,
     r"hidden-size"),
    ("hidden size 2**31", ["train", "text.txt", "--hidden-size", str(2**31)], 2,
     r"hidden-size"),
    ("seq length 0", ["train", "text.txt", "--seq-length", "0"], 2, r"seq-length"),
    ("batch size 0", ["train", "text.txt", "--batch-size", "0"], 2, r"batch-size"),
    ("lr nan", ["train", "text.txt", "--lr", "nan"], 2, r"--lr"),
    ("lr inf", ["train", "text.txt", "--lr", "inf"], 2, r"--lr"),
    ("steps 0", ["train", "text.txt", "--steps", "0"], 2, r"--steps"),
    ("clip 0", ["train", "text.txt", "--clip", "0"], 2, r"--clip"),
    ("time budget negative", ["train", "text.txt", "--time-budget", "-5"], 2,
     r"time-budget"),
    ("eval every negative", ["train", "text.txt", "--eval-every", "-1"], 2, r"eval-every"),
    ("sample temperature nan", ["train", "text.txt", "--sample-temperature", "nan"], 2,
     r"sample-temperature"),
    ("lr decay 0", ["train", "text.txt", "--lr-decay", "0"], 2, r"lr-decay"),
    ("output a directory", ["train", "text.txt", "--steps", "1", "-o", "adir"], 2,
     r"directory"),
    ("dtype float16", ["train", "text.txt", "--dtype", "float16"], 2, r"invalid choice"),
]


def env_for(d) -> dict:
    env = dict(os.environ)
    env["CHARRNN_CACHE_DIR"] = str(d / "cache")
    env["PYTHONIOENCODING"] = "utf-8"
    env["OPENBLAS_NUM_THREADS"] = "1"
    env.pop("PYTHONWARNINGS", None)
    return env


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    d = tmp_path_factory.mktemp("cli_bad")
    make_files(d)
    return d, charrnn.load(d / "m.ckpt.npz").vocab_size


def argv(row, V) -> list[str]:
    return [str(V + 1) if a == "V+1" else a for a in row]


def check(rc, out, err, code, pattern) -> None:
    """The failure contract: the exit code, one line on stderr, no traceback."""
    assert rc == code, (rc, out[-500:], err[-2000:])
    assert "Traceback" not in err
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    assert re.search(pattern, lines[0]), lines[0]
    if code == 1:
        assert lines[0].startswith("charrnn: error: ")
    assert out == ""                                # nothing half-done on stdout


@pytest.mark.parametrize("name, args, code, pattern", ROWS, ids=[r[0] for r in ROWS])
def test_in_process(files, name, args, code, pattern, monkeypatch, capsys):
    d, V = files
    monkeypatch.chdir(d)
    monkeypatch.setenv("CHARRNN_CACHE_DIR", str(d / "cache"))
    rc = cli.main(argv(args, V))
    cap = capsys.readouterr()
    check(rc, cap.out, cap.err, code, pattern)


# one row of each kind runs in the default run, every row with CHARRNN_CLI_ALL=1
ALL = os.environ.get("CHARRNN_CLI_ALL", "") not in ("", "0")
LATER = (pytest.mark.slow,
         pytest.mark.skipif(not ALL, reason="every row in a subprocess: CHARRNN_CLI_ALL=1"))
QUICK = {"sample pickled param", "score newer version", "info flipped byte",
         "train binary file", "prime file latin-1", "temperature nan", "top-k V+1",
         "output a directory"}


@pytest.mark.parametrize("name, args, code, pattern", [
    pytest.param(*r, id=r[0], marks=() if r[0] in QUICK else LATER)
    for r in ROWS])
def test_in_a_subprocess(files, name, args, code, pattern):
    d, V = files
    p = subprocess.run([sys.executable, "-m", "charrnn", *argv(args, V)], cwd=d,
                       env=env_for(d), capture_output=True, timeout=120)
    check(p.returncode, p.stdout.decode("utf-8", "replace"),
          p.stderr.decode("utf-8", "replace"), code, pattern)


def test_bad_files_change_nothing(files):
    """A failed command writes no checkpoint, temp file or metrics next to its inputs."""
    d, _ = files
    made = {p.name for p in d.iterdir()} - {"cache"}
    expected = {"m.ckpt.npz", "m.best.ckpt.npz", "text.txt", "empty.txt", "seq8.txt",
                "one.txt", "latin1.txt", "binary.bin", "nul.txt", "adir", "half.ckpt.npz", "lastbyte.ckpt.npz",
                "flipped.ckpt.npz", "empty.ckpt.npz", "foreign.npz", "array.npy",
                "foreign.zip", "newer.ckpt.npz", "otherformat.ckpt.npz", "pickled.ckpt.npz",
                "pickledmeta.ckpt.npz"}
    assert made == expected, made ^ expected
    assert list((d / "adir").iterdir()) == []
