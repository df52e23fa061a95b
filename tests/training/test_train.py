"""The training loop: learning, exact resume, the NaN guard, Ctrl-C, evaluation, metrics."""

from __future__ import annotations

import json
import math
import os
import signal
import sys
import threading

import numpy as np
import pytest

import charrnn
from charrnn.api import read as read_checkpoint
from charrnn.config import CLASSIC, TrainConfig
from charrnn.errors import CorpusError, TrainingDiverged, TrainingInterrupted
from charrnn.optim import make_optimizer
from charrnn.training.loop import Trainer
from charrnn.training.run import default_paths

TINY = dict(hidden_size=16, batch_size=3, seq_length=8, eval_every=5, log_every=5,
            sample_every=0, verbose=False)


def words_text(n=1500, seed=0) -> str:
    """A text with an obvious pattern: a few fixed words in random order."""
    rng = np.random.default_rng(seed)
    words = ["hello", "world", "tanh", "rnn"]
    return " ".join(words[i] for i in rng.integers(0, len(words), n)) + "\n"


TEXT = words_text(400)


@pytest.fixture(autouse=True)
def _cache(tmp_path, monkeypatch):
    monkeypatch.setenv("CHARRNN_CACHE_DIR", str(tmp_path / "cache"))


# ----------------------------------------------------------------------------- learning

def test_it_learns_an_obvious_pattern():
    text = words_text(2500, seed=1)
    V = len(set(text))
    r = charrnn.train(text, hidden_size=32, batch_size=8, seq_length=16, steps=300,
                      eval_every=100, log_every=50, sample_every=0, verbose=False, seed=0)
    first = r.history[0]
    assert r.steps_run == 300 and r.stopped == "steps"
    assert first["train_loss"] > 0.8 * math.log(V)
    assert r.best_val_loss < 0.4 * math.log(V)          # uniform would be ln V
    assert r.model.score(text[-2000:]) < 0.4 * math.log2(V)


def test_batch_one_is_the_classic_loop():
    """B = 1 trains exactly as min-char-rnn's loop, including the reset at the end."""
    text = "the classic walk, step by step.\n" * 3
    T, steps = 7, 30                                     # more than one pass
    r = charrnn.train(text, val_fraction=0.0, steps=steps, verbose=False, **{
        **CLASSIC, "seq_length": T, "hidden_size": 10, "dtype": "float64"})
    m = charrnn.CharRNN(charrnn.Vocab.from_text(text), 10, "float64", seed=0)
    opt = make_optimizer("adagrad", m.num_params, m.dtype, 0.1)
    data = m.vocab.encode(text).astype(np.int32)
    p, h = 0, np.zeros((1, 10))
    for n in range(steps):
        if p + T + 1 >= len(data) or n == 0:
            h[:] = 0
            p = 0
        X, Y = data[None, p:p + T].copy(), data[None, p + 1:p + T + 1].copy()
        m._loss_and_grads(X, Y, h, h)
        opt.step(m.kernels, m.theta, m.grad, clip=5.0)
        p += T
    assert r.model.theta.tobytes() == m.theta.tobytes()
    assert r.model._train_state.h.tobytes() == h.tobytes()


# ----------------------------------------------------------------------------- exact resume

@pytest.mark.parametrize("controls", [
    dict(optimizer="adam", clip_kind="norm", lr_decay=0.7, lr_decay_every=4),
    dict(optimizer="adagrad", clip_kind="value", batch_size=1, seq_length=5),
    dict(optimizer="rmsprop", clip_kind=None, dtype="float64"),
    dict(optimizer="adam", lr_decay=0.5, lr_decay_every="epoch", seq_length=40),
])
def test_resume_after_save_and_load_is_exact(tmp_path, controls):
    kw = {**TINY, "sample_every": 3, "sample_length": 4, **controls}
    N = 12
    whole = charrnn.train(TEXT, steps=2 * N, **kw).model
    half = charrnn.train(TEXT, steps=N, checkpoint=tmp_path / "h.ckpt.npz", **kw)
    assert half.step == N
    again = charrnn.load(tmp_path / "h.ckpt.npz")
    r = again.fit(TEXT, steps=N, checkpoint=tmp_path / "h2.ckpt.npz", verbose=False)
    assert r.step == 2 * N
    assert again.theta.tobytes() == whole.theta.tobytes()
    a, b = whole._train_state, again._train_state
    assert a.optimizer.t == b.optimizer.t == 2 * N
    for k in a.optimizer.state:
        assert a.optimizer.state[k].tobytes() == b.optimizer.state[k].tobytes()
    assert a.h.tobytes() == b.h.tobytes()
    assert (a.position, a.epoch, a.chars_seen) == (b.position, b.epoch, b.chars_seen)
    assert a.rng_state == b.rng_state


def test_fit_twice_continues(tmp_path):
    m1 = charrnn.train(TEXT, steps=20, **TINY).model
    m2 = charrnn.train(TEXT, steps=8, **TINY).model
    m2.fit(TEXT, steps=12, verbose=False)
    assert m1.theta.tobytes() == m2.theta.tobytes()
    assert m2._train_state.step == 20
    # resume=False: a fresh optimizer and walk from the same parameters
    before = m2.theta.copy()
    r = m2.fit(TEXT, steps=1, resume=False, verbose=False)
    assert r.step == 1 and not np.array_equal(m2.theta, before)


def test_evaluation_and_samples_never_disturb_training():
    quiet = charrnn.train(TEXT, steps=15, **{**TINY, "eval_every": 0}).model
    busy = charrnn.train(TEXT, steps=15, **{**TINY, "eval_every": 1, "sample_every": 2,
                                            "log_every": 1}).model
    assert quiet.theta.tobytes() == busy.theta.tobytes()
    assert quiet._train_state.h.tobytes() == busy._train_state.h.tobytes()


def test_a_file_and_its_text_train_alike(tmp_path):
    text = "Ünïcödé with a BOM\r\nand CRLF 😀 lines\r\n" * 30
    path = tmp_path / "u.txt"
    path.write_bytes(b"\xef\xbb\xbf" + text.encode("utf-8"))
    a = charrnn.train(path, steps=6, **TINY).model
    b = charrnn.train(text, steps=6, **TINY).model
    assert a.vocab.chars == "".join(sorted(set(text)))
    assert a.theta.tobytes() == b.theta.tobytes()
    c = charrnn.train(str(path), steps=6, normalize_newlines=True, **TINY).model
    assert "\r" not in c.vocab and "\n" in c.vocab


# ----------------------------------------------------------------------------- the NaN guard

@pytest.mark.parametrize("what", ["loss", "grad"])
def test_nan_guard_applies_no_update_and_keeps_the_checkpoint(tmp_path, what):
    path = tmp_path / "g.ckpt.npz"
    model = charrnn.CharRNN(charrnn.Vocab.from_text(TEXT), hidden_size=16)
    real = model._train_step
    calls = []
    seen = {}

    def poisoned(X, Y, h, *args):
        """At the 7th step, real non-finite values for the kernel to meet: a NaN bias
        (loss and gradient NaN), or an infinite carried state (tanh saturates, so the
        loss stays finite, but dWhh = dA.T @ H_prev is not)."""
        calls.append(1)
        if len(calls) == 7:
            if what == "loss":
                model.params["by"][0] = math.nan
            else:
                h[0, 0] = math.inf
            seen["theta"] = model.theta.copy()
            seen["file"] = path.read_bytes()
        return real(X, Y, h, *args)

    model._train_step = poisoned
    with pytest.raises(TrainingDiverged) as e:
        model.fit(TEXT, steps=20, checkpoint=path, **TINY)
    err = e.value
    assert isinstance(err, FloatingPointError)
    assert err.step == 7 and "step 7" in str(err)
    assert err.checkpoint == str(path)
    assert not math.isfinite(err.loss if what == "loss" else err.grad_norm)
    assert model.theta.tobytes() == seen["theta"].tobytes()     # no update applied
    assert path.read_bytes() == seen["file"]                      # last good one untouched
    assert read_checkpoint(path)[1].step == 5


def test_a_non_finite_validation_loss_stops_training(tmp_path, monkeypatch):
    train_mod = sys.modules["charrnn.training.loop"]
    real = train_mod.sampling.evaluate
    calls = []

    def evaluate(model, ids, **kw):
        calls.append(1)
        total, n = real(model, ids, **kw)
        return (math.inf if len(calls) == 2 else total), n

    monkeypatch.setattr(train_mod.sampling, "evaluate", evaluate)
    path = tmp_path / "v.ckpt.npz"
    with pytest.raises(TrainingDiverged, match="step 10: validation loss inf"):
        charrnn.train(TEXT, steps=50, checkpoint=path, **TINY)
    assert read_checkpoint(path)[1].step == 5


def test_overflowed_parameters_are_never_saved(tmp_path):
    path = tmp_path / "o.ckpt.npz"
    model = charrnn.CharRNN(charrnn.Vocab.from_text(TEXT), hidden_size=16)
    with pytest.raises(TrainingDiverged, match="parameters"):
        charrnn.train(TEXT, model=model, steps=50, checkpoint=path, val_fraction=0.0,
                      callback=lambda rec: model.params["Wxh"].fill(np.inf)
                      if rec["step"] == 10 else None, **TINY)
    # poisoned just after the save at step 10; tanh keeps the loss finite, so only the
    # check before the next save (step 15) sees it
    m, st, _ = read_checkpoint(path)
    assert st.step == 10 and np.isfinite(m.theta).all()


# ----------------------------------------------------------------------------- Ctrl-C

@pytest.mark.skipif(os.name != "posix", reason="needs POSIX signals")
def test_ctrl_c_finishes_the_step_and_saves(tmp_path):
    if threading.current_thread() is not threading.main_thread():
        pytest.skip("signals need the main thread")
    path = tmp_path / "i.ckpt.npz"

    def on_record(rec):
        if rec["step"] == 10:
            os.kill(os.getpid(), signal.SIGINT)

    prev = signal.getsignal(signal.SIGINT)
    with pytest.raises(TrainingInterrupted) as e:
        charrnn.train(TEXT, steps=1000, checkpoint=path, callback=on_record,
                      **{**TINY, "log_every": 10, "eval_every": 0})
    assert isinstance(e.value, KeyboardInterrupt)
    assert e.value.step == 10 and e.value.checkpoint == str(path)
    assert charrnn.load(path)._train_state.step == 10
    assert signal.getsignal(signal.SIGINT) is prev          # the old handler is back


# ----------------------------------------------------------------------------- evaluation

def test_early_stopping_and_the_best_checkpoint(tmp_path, monkeypatch):
    vals = iter([3.0, 2.0, 2.5, 2.6, 2.7, 1.0])
    monkeypatch.setattr(Trainer, "_evaluate", lambda self: next(vals))
    path = tmp_path / "e.ckpt.npz"
    r = charrnn.train(TEXT, steps=100, checkpoint=path, patience=3, **TINY)
    assert r.stopped == "early_stop" and r.step == 25
    assert r.best_val_loss == 2.0 and r.best_step == 10
    best = tmp_path / "e.best.ckpt.npz"
    assert r.best_checkpoint == str(best)
    st = read_checkpoint(best)[1]
    assert st.step == 10 and st.best_val_loss == 2.0
    assert read_checkpoint(path)[1].step == 25


def test_restore_best(monkeypatch):
    vals = iter([3.0, 2.0, 2.5, 2.9])
    saved = {}

    def fake(self):
        v = next(vals)
        if v == 2.0:
            saved["theta"] = self.model.theta.copy()
        return v

    monkeypatch.setattr(Trainer, "_evaluate", fake)
    r = charrnn.train(TEXT, steps=20, restore_best=True, **TINY)
    assert r.model.theta.tobytes() == saved["theta"].tobytes()


def test_time_budget_stops_the_run():
    r = charrnn.train(TEXT, time_budget=0.2, **TINY)
    assert r.stopped == "time" and r.steps_run >= 1


def test_lr_decay_per_epoch(tmp_path):
    path = tmp_path / "m.jsonl"
    r = charrnn.train(TEXT[:400], steps=60, metrics=path, lr_decay=0.5, lr_decay_every="epoch",
                      lr_decay_after=0,
                      optimizer="sgd", lr=0.05, **{**TINY, "log_every": 1})
    recs = [json.loads(line) for line in path.read_text().splitlines()]
    epochs = [x["epoch"] for x in recs]
    assert epochs[-1] >= 2 and epochs == sorted(epochs)          # several passes
    for x in recs:
        assert x["lr"] == 0.05 * 0.5 ** x["epoch"]
    assert r.model._train_state.epoch == epochs[-1]


@pytest.mark.parametrize("every, after", [(10, 25), ("epoch", 2)])
def test_lr_decay_after(every, after):
    cfg = charrnn.TrainConfig(optimizer="sgd", lr=0.08, lr_decay=0.5, lr_decay_every=every,
                              lr_decay_after=after).validate()
    if every == "epoch":
        got = [cfg.lr_at(0, e) for e in range(6)]
        assert got == [0.08, 0.08, 0.08, 0.04, 0.02, 0.01]
    else:
        got = [cfg.lr_at(s) for s in (0, 24, 25, 34, 35, 44, 45)]
        assert got == [0.08, 0.08, 0.08, 0.08, 0.04, 0.04, 0.02]


def test_metrics_log(tmp_path):
    path = tmp_path / "m.jsonl"
    r = charrnn.train(TEXT, steps=20, metrics=path, lr_decay=0.5, lr_decay_every=10,
                      lr_decay_after=0,
                      optimizer="sgd", lr=0.05, **TINY)
    recs = [json.loads(line) for line in path.read_text().splitlines()]
    assert recs == r.history and [x["step"] for x in recs] == [5, 10, 15, 20]
    keys = {"step", "chars", "train_loss", "val_loss", "train_bpc", "val_bpc",
            "chars_per_s", "lr", "elapsed"}
    for x in recs:
        assert keys <= set(x)
        assert x["chars"] == x["step"] * 3 * 8
        assert x["train_bpc"] == pytest.approx(x["train_loss"] / math.log(2))
        assert x["val_bpc"] == pytest.approx(x["val_loss"] / math.log(2))
        assert x["chars_per_s"] > 0 and x["elapsed"] >= 0
    assert [x["lr"] for x in recs] == [0.05, 0.05, 0.025, 0.025]
    # a second run appends, with elapsed time carried on
    r.model.fit(TEXT, steps=5, metrics=path, verbose=False)
    recs2 = [json.loads(line) for line in path.read_text().splitlines()]
    assert len(recs2) == 5 and recs2[-1]["step"] == 25
    assert recs2[-1]["elapsed"] >= recs2[-2]["elapsed"]


def test_validation_loss_is_the_score_of_the_validation_text():
    text = words_text(900)
    r = charrnn.train(text, steps=10, **TINY)
    cut = int(len(text) * 0.9)
    assert r.val_loss / math.log(2) == pytest.approx(r.model.score(text[cut:]), rel=1e-6)


def test_progress_lines_and_samples(capsys):
    charrnn.train(TEXT, steps=10, **{**TINY, "verbose": True, "sample_every": 5,
                                     "sample_length": 12})
    out = capsys.readouterr().out
    assert "step       5 | loss" in out and "chars/s" in out
    assert "--- sample at step 5 ---" in out and "--- sample at step 10 ---" in out
    assert "best validation loss" in out and "throughput" in out


# ----------------------------------------------------------------------------- bad input

def test_bad_controls():
    with pytest.raises(TypeError, match="unknown training control"):
        charrnn.train(TEXT, stepz=3)
    for bad, exc in [(dict(steps=0), ValueError), (dict(lr=-1), ValueError),
                     (dict(batch_size=1.5), TypeError), (dict(optimizer="lbfgs"), ValueError),
                     (dict(clip_kind="max"), ValueError), (dict(val_fraction=1.0), ValueError),
                     (dict(time_budget=float("inf")), ValueError),
                     (dict(lr_decay=1.5), ValueError), (dict(dtype="float16"), ValueError),
                     (dict(lr_decay_every="epochs"), ValueError),
                     (dict(lr_decay_every=0), ValueError),
                     (dict(lr_decay_every=2.5), TypeError),
                     (dict(lr_decay_after=-1), ValueError)]:
        with pytest.raises(exc):
            charrnn.train(TEXT, verbose=False, **bad)
    # a count's message states the range, including the 32-bit bound
    with pytest.raises(ValueError, match=r"^steps must be in \[1, 2\*\*31\), got 2147483648$"):
        charrnn.train(TEXT, verbose=False, steps=2**31)
    with pytest.raises(ValueError, match=r"^lr_decay_after must be in \[0, 2\*\*31\), got -1$"):
        charrnn.train(TEXT, verbose=False, lr_decay_after=-1)


def test_unusable_texts():
    with pytest.raises(CorpusError, match="empty"):
        charrnn.train("", steps=1, verbose=False)
    with pytest.raises(CorpusError, match="too short"):
        charrnn.train("abcdefgh" * 3, steps=1, seq_length=25, batch_size=1, verbose=False)
    m = charrnn.CharRNN("abc", hidden_size=4)
    with pytest.raises(CorpusError, match="'z'"):
        m.fit("abcz" * 50, steps=1, verbose=False)


def test_a_resumed_model_keeps_its_shape():
    m = charrnn.train(TEXT, steps=2, **TINY).model
    with pytest.raises(ValueError, match="batch_size cannot change"):
        m.fit(TEXT, steps=1, batch_size=5, verbose=False)
    with pytest.raises(ValueError, match="hidden_size cannot change"):
        m.fit(TEXT, steps=1, hidden_size=99, verbose=False)
    m.fit(TEXT, steps=1, lr=1e-4, verbose=False)               # the lr may change


def test_classic_preset():
    c = TrainConfig.classic()
    assert (c.hidden_size, c.seq_length, c.batch_size, c.optimizer, c.lr, c.clip_kind,
            c.clip) == (100, 25, 1, "adagrad", 0.1, "value", 5.0)
    # min-char-rnn's model, whatever the default model is
    assert (c.cell, c.num_layers, c.dropout, c.lr_decay) == ("rnn", 1, 0.0, 1.0)
    assert TrainConfig.classic(lr=0.05).lr == 0.05


def test_default_paths():
    assert [p.name for p in default_paths("run.ckpt.npz")] == ["run.best.ckpt.npz",
                                                               "run.metrics.jsonl"]
    assert [p.name for p in default_paths("x/model.npz")] == ["model.best.npz",
                                                              "model.metrics.jsonl"]


def test_the_footer_reports_the_share_of_validation():
    import io
    out = io.StringIO()
    r = charrnn.train("to be or not to be, that is the question. " * 300, steps=40,
                      hidden_size=16, batch_size=4, seq_length=16, eval_every=20,
                      sample_every=0, out=out)
    assert 0 <= r.eval_seconds <= r.elapsed
    line = [x for x in out.getvalue().splitlines() if x.startswith("validation:")]
    assert len(line) == 1 and line[0].endswith("of the run"), out.getvalue()
    quiet = charrnn.train("to be or not to be. " * 300, steps=5, hidden_size=8,
                          batch_size=2, seq_length=8, eval_every=0, val_fraction=0.0,
                          sample_every=0, out=io.StringIO())
    assert quiet.eval_seconds == 0                      # no validation text, no pass
