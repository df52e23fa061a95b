"""LSTM, GRU and stacks through the public API: everything the vanilla model does, every
cell and depth does (fit with exact resume under dropout, sample, generate, sample_many,
score, save and load), and bad arguments get clear errors.

The kernels themselves are tested in tests/kernels (test_cells*.py); here each backend runs
every model.
"""

from __future__ import annotations

import json

import numpy as np
import pytest

import charrnn
from charrnn import CharRNN, CheckpointError, Vocab
from charrnn import checkpoint as ckpt
from charrnn.api import read as read_checkpoint
from charrnn.dropout import StepMasks, dropout_masks
from charrnn.layout import Layout

TEXT = ("First Citizen:\nBefore we proceed any further, hear me speak.\n\nAll:\nSpeak, "
        "speak.\n\nFirst Citizen:\nYou are all resolved rather to die than to famish?\n" * 6)
MODELS = [("rnn", 2), ("lstm", 1), ("lstm", 2), ("gru", 1), ("gru", 3)]
SMALL = dict(hidden_size=8, batch_size=3, seq_length=7, eval_every=5, log_every=5,
             sample_every=6, sample_length=5, optimizer="adam", dtype="float64",
             verbose=False)


@pytest.fixture(autouse=True)
def _cache(tmp_path, monkeypatch):
    monkeypatch.setenv("CHARRNN_CACHE_DIR", str(tmp_path / "cache"))


@pytest.fixture(params=charrnn.available_backends())
def backend(request):
    return request.param


def _model(cell, L, backend="numpy", dropout=0.0, H=8, dtype="float64", seed=0):
    return CharRNN(Vocab.from_text(TEXT), H, dtype, seed, backend, cell, L, dropout)


# ----------------------------------------------------------------------------- the model

@pytest.mark.parametrize("cell,L", MODELS)
def test_a_model_of_each_cell_and_depth(cell, L):
    m = _model(cell, L, dropout=0.25)
    layout = Layout(8, m.vocab_size, "float64", cell, L)
    assert m.layout == layout and (m.cell, m.num_layers, m.dropout) == (cell, L, 0.25)
    assert m.state_size == layout.state_size == L * (2 if cell == "lstm" else 1) * 8
    assert tuple(m.params) == layout.names and m.num_params == layout.size
    assert f"{cell}, {L} layer" in m.describe() and "dropout 0.25" in m.describe()
    assert f"cell={cell!r}" in repr(m) or (cell, L) == ("rnn", 1)


def test_the_classic_model_is_unchanged():
    m = CharRNN(Vocab.from_text(TEXT))
    assert (m.cell, m.num_layers, m.dropout, m.state_size) == ("rnn", 1, 0.0, 100)
    assert tuple(m.params) == ("Wxh", "Whh", "Why", "bh", "by")
    assert "cell" not in repr(m) and "dropout" not in repr(m)


@pytest.mark.parametrize("cell,L", MODELS)
def test_loss_and_grads_take_and_return_the_whole_state(backend, cell, L):
    m = _model(cell, L, backend)
    X = m.vocab.encode(TEXT[:12])
    loss, grads, h = m.loss_and_grads(X[:-1], X[1:])
    assert h.shape == (m.state_size,) and set(grads) == set(m.params)
    loss2, h2 = m.loss(X[:-1], X[1:], hprev=np.zeros(m.state_size))
    assert loss2 == pytest.approx(loss, rel=1e-12) and np.allclose(h2, h, rtol=1e-12)
    # carried across two chunks: the same as one chunk
    l1, ha = m.loss(X[:6], X[1:7])
    l2, hb = m.loss(X[6:-1], X[7:], hprev=ha)
    assert l1 + l2 == pytest.approx(loss, rel=1e-12) and np.allclose(hb, h, rtol=1e-12)


@pytest.mark.parametrize("kw,exc,match", [
    (dict(cell="lstmx"), ValueError, "cell must be one of rnn, lstm, gru"),
    (dict(cell=None), ValueError, "cell must be"),
    (dict(num_layers=0), ValueError, "num_layers"),
    (dict(num_layers=1.5), TypeError, "num_layers"),
    (dict(dropout=1.0), ValueError, r"dropout must be in \[0, 1\)"),
    (dict(dropout=-0.1), ValueError, "dropout"),
    (dict(dropout=float("nan")), ValueError, "dropout"),
    (dict(dropout="0.2"), TypeError, "dropout must be a number"),
])
def test_bad_model_arguments(kw, exc, match):
    with pytest.raises(exc, match=match):
        CharRNN(Vocab.from_text(TEXT), 8, **kw)


def test_a_state_of_the_wrong_structure_is_refused():
    m = _model("lstm", 2)                               # state (B, 2 * 2 * 8)
    X = m.vocab.encode(TEXT[:6])
    for bad in (np.zeros(8), np.zeros(16), np.zeros((1, 32)), np.zeros(33)):
        with pytest.raises(ValueError, match=r"hprev must have shape \(32,\)"):
            m.loss(X[:-1], X[1:], hprev=bad)
    with pytest.raises(ValueError, match=r"\(2, 32\)"):
        m.loss(np.stack([X[:-1]] * 2), np.stack([X[1:]] * 2), hprev=np.zeros((2, 16)))


# ----------------------------------------------------------------------------- training

@pytest.mark.parametrize("cell,L", MODELS)
def test_a_run_stopped_and_resumed_with_dropout_equals_an_uninterrupted_one(
        tmp_path, backend, cell, L):
    kw = dict(SMALL, cell=cell, num_layers=L, dropout=0.3, backend=backend)
    whole = charrnn.train(TEXT, steps=16, checkpoint=tmp_path / "whole.ckpt.npz", **kw)
    charrnn.train(TEXT, steps=9, checkpoint=tmp_path / "part.ckpt.npz", **kw)
    resumed = charrnn.load(tmp_path / "part.ckpt.npz", backend=backend)
    assert (resumed.cell, resumed.num_layers, resumed.dropout) == (cell, L, 0.3)
    resumed.fit(TEXT, steps=7, checkpoint=tmp_path / "part.ckpt.npz", verbose=False)
    a, b = whole.model, resumed
    assert a._train_state.step == b._train_state.step == 16
    assert a.theta.tobytes() == b.theta.tobytes()
    assert a._train_state.h.tobytes() == b._train_state.h.tobytes()
    for slot in a._train_state.optimizer.slots:
        assert (a._train_state.optimizer.state[slot].tobytes()
                == b._train_state.optimizer.state[slot].tobytes())
    assert a._train_state.h.shape == (3, a.state_size)


def test_dropout_changes_training_and_is_keyed_by_seed_and_step():
    kw = dict(SMALL, cell="lstm", num_layers=2, steps=4, eval_every=0, sample_every=0)
    runs = {p: charrnn.train(TEXT, dropout=p, **kw).model.theta for p in (0.0, 0.5)}
    again = charrnn.train(TEXT, dropout=0.5, **kw).model.theta
    assert not np.array_equal(runs[0.0], runs[0.5])
    assert again.tobytes() == runs[0.5].tobytes()


def test_step_masks_of_a_rank_are_its_rows_of_the_whole_draw():
    layout = Layout(5, 7, "float32", "gru", 2)
    whole = StepMasks(layout, 6, 4, 0.4, seed=3).at(11).copy()
    for r in range(3):
        part = StepMasks(layout, 2, 4, 0.4, seed=3, first=2 * r).at(11)
        assert part.tobytes() == np.ascontiguousarray(whole[:, :, 2 * r:2 * r + 2]).tobytes()
    assert not np.array_equal(StepMasks(layout, 6, 4, 0.4, seed=3).at(12), whole)
    assert not np.array_equal(StepMasks(layout, 6, 4, 0.4, seed=4).at(11), whole)
    assert StepMasks(layout, 6, 4, 0.0, seed=3).at(11) is None
    # the same numbers as dropout_masks from the step's generator, stream by stream
    rng = np.random.Generator(np.random.PCG64(np.random.SeedSequence([3, 0x6d61736b, 11])))
    assert dropout_masks(layout, 6, 4, 0.4, rng).tobytes() == whole.tobytes()


@pytest.mark.parametrize("controls,match", [
    (dict(cell="lstm"), "cell cannot change"), (dict(num_layers=2), "num_layers cannot change"),
    (dict(dropout=0.1), "dropout cannot change")])
def test_a_continued_model_keeps_its_cell_layers_and_dropout(controls, match):
    m = _model("gru", 1)
    with pytest.raises(ValueError, match=match):
        m.fit(TEXT, steps=1, **{k: v for k, v in SMALL.items()
                                if k not in ("hidden_size", "dtype")}, **controls)


@pytest.mark.parametrize("controls,exc", [(dict(cell="tree"), ValueError),
                                          (dict(num_layers=0), ValueError),
                                          (dict(dropout=1), ValueError),
                                          (dict(dropout=None), TypeError)])
def test_bad_training_controls(controls, exc):
    with pytest.raises(exc):
        charrnn.train(TEXT, steps=1, verbose=False, **controls)


# ----------------------------------------------------------------------------- sampling, files

@pytest.mark.parametrize("cell,L", MODELS)
def test_sampling_scoring_and_files(tmp_path, backend, cell, L):
    m = _model(cell, L, backend, dropout=0.2, seed=5)
    s = m.sample(60, prime="First", seed=3, top_k=5, temperature=0.8)
    assert len(s) == 60 and set(s) <= set(m.vocab.chars)
    assert s == m.sample(60, prime="First", seed=3, top_k=5, temperature=0.8)
    assert "".join(m.generate(60, prime="First", seed=3, top_k=5, temperature=0.8)) == s
    many = m.sample_many(3, 20, seed=4)
    assert len(many) == 3 and all(len(x) == 20 for x in many)
    bpc = m.score(TEXT[:300])
    assert 0 < bpc < 10
    path = m.save(tmp_path / "m.ckpt.npz")
    back = charrnn.load(path, backend=backend)
    assert (back.cell, back.num_layers, back.dropout) == (cell, L, 0.2)
    assert back.theta.tobytes() == m.theta.tobytes()
    assert back.sample(60, prime="First", seed=3, top_k=5, temperature=0.8) == s
    assert back.score(TEXT[:300]) == bpc
    meta = read_checkpoint(path)[2]
    assert meta["version"] == ckpt.FORMAT_VERSION == 3
    assert (meta["model"]["cell"], meta["model"]["num_layers"],
            meta["model"]["dropout"]) == (cell, L, 0.2)


def _rewrite(src, dst, meta):
    with np.load(src, allow_pickle=False) as z:
        a = {k: z[k] for k in z.files}
    m = json.loads(a["meta"].tobytes())
    meta(m)
    a["meta"] = np.frombuffer(json.dumps(m).encode(), np.uint8)
    with open(dst, "w+b") as f:
        np.savez(f, **a)
        ckpt._append_digest(f)
    return dst


def test_a_version_2_checkpoint_loads_and_resumes_as_a_tanh_rnn(tmp_path):
    r = charrnn.train(TEXT, steps=6, checkpoint=tmp_path / "m.ckpt.npz",
                      **dict(SMALL, cell="rnn", dropout=0.0))   # what versions 1-2 hold

    def as_v2(m):
        m["version"] = 2
        for k in ("cell", "num_layers", "dropout"):
            del m["model"][k]
            del m["config"][k]
    old = _rewrite(tmp_path / "m.ckpt.npz", tmp_path / "v2.ckpt.npz", as_v2)
    model = charrnn.load(old)
    assert (model.cell, model.num_layers, model.dropout) == ("rnn", 1, 0.0)
    assert model._train_state.config.cell == "rnn"
    assert model.theta.tobytes() == r.model.theta.tobytes()
    model.fit(TEXT, steps=2, verbose=False)
    assert model._train_state.step == 8


@pytest.mark.parametrize("change,match", [
    (lambda m: m["model"].update(cell="tree"), "unknown cell 'tree'"),
    (lambda m: m["model"].update(cell=3), "'cell' must be a str"),
    (lambda m: m["model"].update(num_layers=0), "num_layers"),
    (lambda m: m["model"].update(dropout=1.5), "dropout"),
    (lambda m: m["model"].pop("cell"), "missing model.'cell'"),
    (lambda m: m["config"].update(num_layers=3), "does not match the model"),
    (lambda m: m["model"].update(num_layers=3), "missing array 'Wx2'"),
])
def test_a_checkpoint_of_an_unknown_cell_or_a_bad_model_is_a_checkpoint_error(
        tmp_path, change, match):
    charrnn.train(TEXT, steps=2, checkpoint=tmp_path / "m.ckpt.npz",
                  **dict(SMALL, cell="lstm", num_layers=2))
    bad = _rewrite(tmp_path / "m.ckpt.npz", tmp_path / "bad.ckpt.npz", change)
    with pytest.raises(CheckpointError, match=match):
        charrnn.load(bad)
