"""The ``charrnn`` command, end to end in subprocesses (cwd: a temporary directory)."""

from __future__ import annotations

import importlib.util
import json
import math
import os
import signal
import subprocess
import sys
from types import SimpleNamespace

import numpy as np
import pytest

import charrnn
from charrnn import cli
from charrnn import config as C
from charrnn.api import read as read_checkpoint

TINY = ["--hidden-size", "16", "--batch-size", "2", "--seq-length", "8",
        "--eval-every", "10", "--log-every", "5", "--sample-every", "10",
        "--sample-length", "20"]
UNICODE = "Ça va? naïve café — 中文 😀 end.\r\nsecond line, déjà vu\r\n"


def env_for(tmp) -> dict:
    env = dict(os.environ)
    env["CHARRNN_CACHE_DIR"] = str(tmp / "cache")
    env["PYTHONIOENCODING"] = "utf-8"
    env.pop("PYTHONWARNINGS", None)
    return env


def run(tmp, *args, check=None, timeout=120):
    # bytes, decoded here: text mode would turn the model's "\r\n" into "\n"
    p = subprocess.run([sys.executable, "-m", "charrnn", *map(str, args)], cwd=tmp,
                       env=env_for(tmp), capture_output=True, timeout=timeout)
    p.stdout, p.stderr = p.stdout.decode("utf-8"), p.stderr.decode("utf-8")
    if check is not None:
        assert p.returncode == check, (p.returncode, p.stdout[-2000:], p.stderr[-2000:])
    return p


def one_line_error(p, code, pattern=None):
    """The failure contract: the exit code, one line on stderr, no traceback."""
    assert p.returncode == code, (p.returncode, p.stdout[-1000:], p.stderr[-2000:])
    assert "Traceback" not in p.stderr
    lines = p.stderr.strip().splitlines()
    assert len(lines) == 1, p.stderr
    if pattern is not None:
        import re
        assert re.search(pattern, lines[0]), lines[0]
    return lines[0]


@pytest.fixture(scope="module")
def work(tmp_path_factory):
    """A directory with a Unicode text (BOM, CRLF) and a model trained on it by the CLI."""
    tmp = tmp_path_factory.mktemp("cli")
    (tmp / "in.txt").write_bytes(b"\xef\xbb\xbf" + (UNICODE * 40).encode())
    p = run(tmp, "train", "in.txt", *TINY, "--steps", "30", "-o", "m.ckpt.npz", check=0)
    return tmp, p


# ----------------------------------------------------------------------------- end to end

def test_train_prints_progress_samples_and_summary(work):
    tmp, p = work
    out = p.stdout
    assert "step       5 | loss" in out and "chars/s" in out
    assert "--- sample at step 10 ---" in out
    assert "val loss" in out
    assert "checkpoint: m.ckpt.npz" in out
    assert "best validation loss" in out and "throughput" in out
    for name in ("m.ckpt.npz", "m.best.ckpt.npz", "m.metrics.jsonl"):
        assert (tmp / name).is_file()
    recs = [json.loads(x) for x in (tmp / "m.metrics.jsonl").read_text().splitlines()]
    assert recs[-1]["step"] == 30 and recs[-1]["val_loss"] is not None


def test_unicode_round_trip_on_a_generated_text(work):
    tmp, _ = work
    model, st, _ = read_checkpoint(tmp / "m.ckpt.npz")
    assert model.vocab.chars == "".join(sorted(set(UNICODE)))      # BOM gone, CR kept
    assert st.step == 30 and st.corpus["chars"] == len(UNICODE) * 40
    s = run(tmp, "sample", "m.ckpt.npz", "-n", "200", "--seed", "3", "--prime", "Ça ",
            check=0).stdout
    assert s.startswith("Ça ") and len(s) == 203
    assert set(s) <= set(model.vocab.chars)
    assert s[3:] == model.sample(200, prime="Ça ", seed=3)


def test_sample_is_deterministic_and_streams_a_prime_file(work):
    tmp, _ = work
    a = run(tmp, "sample", "m.ckpt.npz", "-n", "50", "--seed", "7", check=0).stdout
    b = run(tmp, "sample", "m.ckpt.npz", "-n", "50", "--seed", "7", check=0).stdout
    assert a == b and len(a) == 50
    (tmp / "prime.txt").write_bytes(b"\xef\xbb\xbf" + "naïve ".encode())
    c = run(tmp, "sample", "m.ckpt.npz", "-n", "30", "--seed", "1", "--prime-file",
            "prime.txt", "--temperature", "0.5", "--top-k", "3", check=0).stdout
    assert c.startswith("naïve ") and len(c) == 36


def test_score_info_and_plot(work):
    tmp, _ = work
    s = run(tmp, "score", "m.ckpt.npz", "in.txt", check=0).stdout
    bpc = float(s.split()[0])
    model = charrnn.load(tmp / "m.ckpt.npz")
    assert bpc == pytest.approx(model.score(UNICODE * 40), abs=1e-4)
    assert "bits/char" in s and s.rstrip().endswith("predicted characters)")
    (tmp / "two.txt").write_text(UNICODE[:2], encoding="utf-8")
    s = run(tmp, "score", "m.ckpt.npz", "two.txt", check=0).stdout
    assert s.rstrip().endswith("over 1 predicted character)")
    info = run(tmp, "info", "m.ckpt.npz", check=0).stdout
    assert "step: 30" in info and f"{model.num_params:,} parameters" in info
    assert f"V={len(model.vocab)}" in info and "validation loss: best" in info
    assert "batch_size=2, seq_length=8" in info
    meta = json.loads(run(tmp, "info", "m.ckpt.npz", "--json", check=0).stdout)
    assert meta["state"]["step"] == 30
    p = run(tmp, "plot", "m.metrics.jsonl", "-o", "loss.png")
    if importlib.util.find_spec("matplotlib") is None:
        one_line_error(p, 1, "matplotlib")
    else:
        assert p.returncode == 0, p.stderr
        assert (tmp / "loss.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_an_lstm_stack_with_dropout_trains_resumes_and_samples(tmp_path):
    (tmp_path / "in.txt").write_text(UNICODE * 40, encoding="utf-8")
    model = ["--cell", "lstm", "--num-layers", "2", "--dropout", "0.25"]
    run(tmp_path, "train", "in.txt", *TINY, *model, "--steps", "12", check=0)
    p = run(tmp_path, "info", "charrnn.ckpt.npz", check=0)
    assert "model: lstm, 2 layers, H=16, dropout 0.25" in p.stdout
    assert "v3" in p.stdout
    p = run(tmp_path, "train", "--resume", "charrnn.ckpt.npz", "--steps", "3", check=0)
    assert "model: lstm, 2 layers, H=16, dropout 0.25" in p.stdout
    m, st, _ = read_checkpoint(tmp_path / "charrnn.ckpt.npz")
    assert (m.cell, m.num_layers, m.dropout, st.step) == ("lstm", 2, 0.25, 15)
    assert st.h.shape == (2, 2 * 2 * 16)
    p = run(tmp_path, "sample", "charrnn.ckpt.npz", "-n", "40", "--seed", "1", check=0)
    assert len(p.stdout.rstrip("\n")) >= 30
    # a note that the NumPy backend runs the model, if it does, is one line
    assert all(line.startswith("charrnn: note: ") for line in p.stderr.splitlines())


def test_version_and_help(tmp_path, capsys):
    assert run(tmp_path, "--version", check=0).stdout.strip() == \
        f"charrnn {charrnn.__version__}"
    assert "usage: charrnn train" in run(tmp_path, "train", "--help", check=0).stdout

    def helptext(*args):
        with pytest.raises(SystemExit) as e:
            cli.main([*args, "--help"])
        assert e.value.code == 0
        return capsys.readouterr().out

    h = helptext("train")
    for want in ("--classic", f"(default: {C.HIDDEN_SIZE})", "(default: 180", "--resume", "--time-budget",
                 "--patience", "--lr-decay", "--clip-kind", "--encoding", "--steps"):
        assert want in h, want
    for cmd in ("sample", "score", "info", "plot"):
        assert "usage: charrnn " + cmd in helptext(cmd)
    assert "(default: 500)" in helptext("sample")
    assert "Exit codes" in helptext()


def test_default_run_on_the_builtin_corpus(tmp_path):
    """``charrnn train`` with no file trains on the standard library (shortened here)."""
    p = run(tmp_path, "train", "--steps", "3", "--eval-max-chars", "3000",
            "--hidden-size", "32", check=0)
    assert "<stdlib>" in p.stdout
    _, st, _ = read_checkpoint(tmp_path / "charrnn.ckpt.npz")
    assert st.corpus["source"] == "<stdlib>" and st.step == 3
    # resuming needs no file: the checkpoint names its text
    run(tmp_path, "train", "--resume", "charrnn.ckpt.npz", "--steps", "2", "-q", check=0)
    assert read_checkpoint(tmp_path / "charrnn.ckpt.npz")[1].step == 5


def test_an_existing_checkpoint_is_never_overwritten_by_a_fresh_run(tmp_path):
    (tmp_path / "t.txt").write_text("keep my earlier run. " * 60)
    run(tmp_path, "train", "t.txt", *TINY, "--steps", "6", "-q", "-o", "m.ckpt.npz", check=0)
    before = (tmp_path / "m.ckpt.npz").read_bytes()
    p = run(tmp_path, "train", "t.txt", *TINY, "--steps", "6", "-o", "m.ckpt.npz")
    one_line_error(p, 2, r"m\.ckpt\.npz already exists.*--resume m\.ckpt\.npz.*--overwrite")
    assert (tmp_path / "m.ckpt.npz").read_bytes() == before
    # resuming into another existing file is refused too; --overwrite allows both
    run(tmp_path, "train", "t.txt", *TINY, "--steps", "3", "-q", "-o", "n.ckpt.npz", check=0)
    p = run(tmp_path, "train", "--resume", "m.ckpt.npz", "--steps", "2", "-o", "n.ckpt.npz")
    one_line_error(p, 2, r"n\.ckpt\.npz already exists")
    run(tmp_path, "train", "t.txt", *TINY, "--steps", "4", "-q", "-o", "m.ckpt.npz",
        "--overwrite", check=0)
    assert read_checkpoint(tmp_path / "m.ckpt.npz")[1].step == 4


# ----------------------------------------------------------------------------- resume

def test_exact_resume_across_processes(tmp_path):
    (tmp_path / "t.txt").write_text("resume me exactly, bit for bit. " * 60)
    flags = [*TINY, "--eval-every", "7", "--sample-every", "6", "-q"]
    run(tmp_path, "train", "t.txt", *flags, "--steps", "24", "-o", "a.ckpt.npz", check=0)
    run(tmp_path, "train", "t.txt", *flags, "--steps", "12", "-o", "b.ckpt.npz", check=0)
    run(tmp_path, "train", "--resume", "b.ckpt.npz", "--steps", "12", "-q", check=0)
    ma, sa, _ = read_checkpoint(tmp_path / "a.ckpt.npz")
    mb, sb, _ = read_checkpoint(tmp_path / "b.ckpt.npz")
    assert sa.step == sb.step == 24
    assert ma.theta.tobytes() == mb.theta.tobytes()
    for k in sa.optimizer.state:
        assert sa.optimizer.state[k].tobytes() == sb.optimizer.state[k].tobytes()
    assert sa.h.tobytes() == sb.h.tobytes() and sa.rng_state == sb.rng_state
    assert (sa.position, sa.epoch) == (sb.position, sb.epoch)


# ----------------------------------------------------------------------------- Ctrl-C

def interrupt_training(tmp_path, wait, *flags) -> tuple[int, str]:
    """Start ``python -m charrnn train`` (endless), call ``wait(p)``, send SIGINT, and
    return the exit code and stderr."""
    p = subprocess.Popen([sys.executable, "-m", "charrnn", "train", "t.txt", *TINY,
                          "--steps", "100000000", *flags, "-o", "c.ckpt.npz"],
                         cwd=tmp_path, env=env_for(tmp_path), stdout=subprocess.PIPE,
                         stderr=subprocess.PIPE, text=True, encoding="utf-8")
    try:
        wait(p)
        p.send_signal(signal.SIGINT)
        out, err = p.communicate(timeout=60)
    finally:
        if p.poll() is None:
            p.kill()
            p.wait()
    return p.returncode, err


@pytest.mark.skipif(os.name != "posix", reason="needs POSIX signals")
def test_ctrl_c_saves_and_exits_130(tmp_path):
    (tmp_path / "t.txt").write_text("interrupt me please. " * 200)

    def first_progress_line(p):
        for line in p.stdout:
            if line.startswith("step"):
                return
        pytest.fail("no progress line: " + p.stderr.read())

    rc, err = interrupt_training(tmp_path, first_progress_line,
                                 "--log-every", "20", "--eval-every", "500")
    assert rc == 130, err
    assert "Traceback" not in err
    assert "checkpoint saved to c.ckpt.npz" in err
    st = read_checkpoint(tmp_path / "c.ckpt.npz")[1]
    assert st.step >= 20 and st.position > 0
    assert not [f for f in os.listdir(tmp_path) if f.endswith(".tmp")]


def test_the_command_starts_without_numpy():
    # what makes a Ctrl-C during start-up the command's own one line (below)
    code = "import sys, charrnn.cli; print(sorted({'numpy', 'scipy'} & set(sys.modules)))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True).stdout
    assert out.strip() == "[]"


@pytest.mark.skipif(os.name != "posix", reason="needs POSIX signals")
@pytest.mark.parametrize("delay", [0.1, 0.2, 0.3, 0.45, 0.7])
def test_ctrl_c_while_starting_up(tmp_path, delay):
    import time
    (tmp_path / "t.txt").write_text("interrupt me early. " * 200)
    rc, err = interrupt_training(tmp_path, lambda p: time.sleep(delay), "--eval-every", "0")
    if "Fatal Python error: init_import_site" in err:
        # the interpreter's own start-up (its site module), before any charrnn code ran
        return
    # -SIGINT: the signal came before Python set up its handler (nothing was started)
    assert rc in (130, -signal.SIGINT), err
    assert "Traceback" not in err, err
    assert len(err.strip().splitlines()) <= 1 or "checkpoint saved" in err, err


# ----------------------------------------------------------------------------- divergence

def test_divergence_exits_3_and_keeps_the_checkpoint(tmp_path):
    (tmp_path / "t.txt").write_text("blow up. " * 200)
    p = run(tmp_path, "train", "t.txt", *TINY, "--steps", "200", "--optimizer", "sgd",
            "--lr", "1e38", "--clip-kind", "none", "--eval-every", "0", "--log-every", "1")
    one_line_error(p, 3, r"training diverged at step \d+")
    assert not (tmp_path / "charrnn.ckpt.npz").exists()


# ----------------------------------------------------------------------------- user mistakes

@pytest.fixture(scope="module")
def files(work):
    tmp, _ = work
    (tmp / "empty.txt").write_bytes(b"")
    (tmp / "short.txt").write_text("too short")
    (tmp / "bad.txt").write_bytes(b"valid start \xc3\x28 then junk")
    (tmp / "corrupt.ckpt.npz").write_bytes((tmp / "m.ckpt.npz").read_bytes()[:500])
    (tmp / "junk.jsonl").write_text("not json\n")
    (tmp / "one.txt").write_text(UNICODE[0], encoding="utf-8")
    return tmp


MISTAKES = [
    # (arguments, exit code, pattern of the one-line message)
    (["train", "missing.txt"], 1, r"missing\.txt: No such file"),
    (["train", "empty.txt"], 1, r"empty"),
    (["train", "short.txt", "--seq-length", "25"], 1, r"too short"),
    (["train", "bad.txt"], 1, r"not valid UTF-8 at byte offset 12"),
    (["train", "in.txt", "--resume", "corrupt.ckpt.npz"], 1, r"corrupt\.ckpt\.npz"),
    (["sample", "corrupt.ckpt.npz"], 1, r"not a valid checkpoint"),
    (["score", "corrupt.ckpt.npz", "in.txt"], 1, r"corrupt\.ckpt\.npz"),
    (["info", "corrupt.ckpt.npz"], 1, r"corrupt\.ckpt\.npz"),
    (["info", "in.txt"], 1, r"not a charrnn checkpoint"),
    (["sample", "nothere.ckpt.npz"], 1, r"nothere\.ckpt\.npz: No such file"),
    (["sample", "m.ckpt.npz", "--prime", "QZ"], 1, r"not in the model's vocabulary: 'Q', 'Z'"),
    (["score", "m.ckpt.npz", "missing.txt"], 1, r"No such file"),
    (["score", "m.ckpt.npz", "short.txt"], 1, r"vocabulary"),
    (["plot", "nothere.jsonl"], 1, r"No such file"),
    (["plot", "junk.jsonl"], 1, r"not a JSON line"),
    (["train", "--hidden-size", "0"], 2, r"hidden-size.*positive integer"),
    (["train", "--lr", "-1"], 2, r"--lr"),
    (["train", "--lr", "fast"], 2, r"--lr"),
    (["train", "--val-fraction", "1.5"], 2, r"val-fraction"),
    (["train", "--optimizer", "lbfgs"], 2, r"invalid choice"),
    (["train", "--bogus"], 2, r"unrecognized arguments"),
    (["train", "--resume", "m.ckpt.npz", "--classic"], 2, r"--classic"),
    (["train", "--resume", "m.ckpt.npz", "--hidden-size", "99"], 2, r"cannot change"),
    (["sample", "m.ckpt.npz", "-n", "-5"], 2, r"integer >= 0"),
    (["sample", "m.ckpt.npz", "--temperature", "-1"], 2, r"temperature"),
    (["sample", "m.ckpt.npz", "--top-k", "0"], 2, r"top-k"),
    (["sample", "m.ckpt.npz", "--top-k", "100000"], 2, r"vocabulary size"),
    (["sample", "m.ckpt.npz", "--prime", "a", "--prime-file", "x"], 2, r"not allowed"),
    (["sample"], 2, r"required"),
    ([], 2, r"choose a command"),
    (["frobnicate"], 2, r"invalid choice"),
    (["train", "--cell", "tree"], 2, r"--cell: invalid choice: 'tree'"),
    (["train", "--num-layers", "0"], 2, r"num-layers.*positive integer"),
    (["train", "--dropout", "1"], 2, r"--dropout: a number in \[0, 1\)"),
    (["train", "--resume", "m.ckpt.npz", "--cell", "gru"], 2, r"--cell cannot change"),
    (["train", "--resume", "m.ckpt.npz", "--dropout", "0.5"], 2, r"--dropout cannot change"),
    (["score", "m.ckpt.npz", "empty.txt"], 1, r"empty\.txt is empty: it holds no text$"),
    (["score", "m.ckpt.npz", "one.txt"], 1, r"one\.txt: scoring needs at least 2 characters, got 1"),
    (["sample", "m.ckpt.npz", "-n", "99999999999999999999"], 2,
     r"-n/--length: an integer >= 0 below 2\*\*31, got '99999999999999999999'"),
    (["train", "--steps", str(2**31)], 2, r"--steps: a positive integer below 2\*\*31"),
    (["train", "--steps", str(2**31 - 1), "--hidden-size", "0"], 2, r"--hidden-size"),
]


@pytest.mark.parametrize("args, code, pattern", MISTAKES,
                         ids=[" ".join(a[:3]) or "nothing" for a, _, _ in MISTAKES])
def test_user_mistakes(files, args, code, pattern, monkeypatch, capsys):
    """Each mistake through ``main`` in this process (fast), as the command runs it."""
    monkeypatch.chdir(files)
    monkeypatch.setenv("CHARRNN_CACHE_DIR", str(files / "cache"))
    rc = cli.main(args)
    err = capsys.readouterr().err
    one_line_error(SimpleNamespace(returncode=rc, stderr=err, stdout=""), code, pattern)


@pytest.mark.parametrize("args, code, pattern", [MISTAKES[i] for i in (0, 5, 10, 15, 20)],
                         ids=["missing", "corrupt", "prime", "flag value", "flag"])
def test_user_mistakes_in_a_subprocess(files, args, code, pattern):
    one_line_error(run(files, *args), code, pattern)


def test_bench_without_the_module_is_a_clear_error(monkeypatch, capsys):
    monkeypatch.setitem(sys.modules, "charrnn.bench", None)     # as if it were not there
    monkeypatch.delattr(charrnn, "bench", raising=False)
    rc = cli.main(["bench", "--anything"])
    one_line_error(SimpleNamespace(returncode=rc, stderr=capsys.readouterr().err, stdout=""), 1,
                   r"benchmarks are unavailable")
    rc = cli.main(["info", "nothere.npz"])
    assert rc == 1                                   # the other commands do not need it
    capsys.readouterr()


# ----------------------------------------------------------------------------- reference data

def test_unicode_round_trip_on_alice_fr(shared_file, tmp_path):
    src = shared_file("alice_fr.txt")
    text = src.read_bytes().decode("utf-8")
    assert text.startswith("\ufeff")
    text = text[1:]
    run(tmp_path, "train", src, *TINY, "--steps", "10", "--eval-max-chars", "4000",
        "-o", "a.ckpt.npz", "-q", check=0)
    model, st, _ = read_checkpoint(tmp_path / "a.ckpt.npz")
    assert model.vocab.chars == "".join(sorted(set(text)))
    # 110 distinct code points in the file, one of them the BOM that reading drops
    assert len(model.vocab) == 109 and "\r" in model.vocab and "\ufeff" not in model.vocab
    assert st.corpus["chars"] == len(text)
    info = run(tmp_path, "info", "a.ckpt.npz", check=0).stdout
    assert "V=109" in info
    s = run(tmp_path, "sample", "a.ckpt.npz", "-n", "300", "--seed", "0", "--prime", "Alice",
            check=0).stdout
    assert s.startswith("Alice") and set(s) <= set(model.vocab.chars)
    non_ascii = [c for c in model.vocab.chars if ord(c) > 127]
    assert non_ascii
    assert s[5:] == model.sample(300, prime="Alice", seed=0)
    # the file's last 10% scores as the training run's validation measured it
    short = text[:20000]
    (tmp_path / "part.txt").write_text(short, encoding="utf-8", newline="")
    bpc = float(run(tmp_path, "score", "a.ckpt.npz", "part.txt", check=0).stdout.split()[0])
    assert bpc == pytest.approx(model.score(short), abs=1e-4)
    assert 0 < bpc < math.log2(110) + 0.5
    assert np.isfinite(model.theta).all()
