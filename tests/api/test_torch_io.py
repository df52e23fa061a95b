"""Weights to and from PyTorch (``charrnn.export_torch``, ``CharRNN.from_torch_state``):
the keys of word_language_model's RNNModel, the bias mapping of design.md section 2b, and
the same probabilities and final state as PyTorch's own modules (those tests skip when
torch is not installed; nothing else needs it)."""

from __future__ import annotations

import numpy as np
import pytest

import charrnn
from charrnn import CharRNN, Vocab
from charrnn.kernels import reference as NP
from charrnn.workspace import Workspace

TEXT = "to be, or not to be: that is the question.\n"
MODELS = [("rnn", 1), ("rnn", 2), ("lstm", 1), ("lstm", 2), ("gru", 1), ("gru", 3)]


def _model(cell, L, dtype="float64", H=6, seed=1):
    m = CharRNN(Vocab.from_text(TEXT), H, dtype, seed, "numpy", cell, L)
    # biases and weights of a trained scale, so every term shows
    rng = np.random.default_rng(seed)
    m.theta[...] = rng.uniform(-0.6, 0.6, m.theta.size)
    return m


def _keys(cell, L):
    keys = []
    for l in range(L):
        keys += [f"rnn.weight_ih_l{l}", f"rnn.weight_hh_l{l}", f"rnn.bias_ih_l{l}",
                 f"rnn.bias_hh_l{l}"]
    return keys + ["decoder.weight", "decoder.bias"]


@pytest.mark.parametrize("cell,L", MODELS)
def test_the_keys_shapes_and_biases(cell, L):
    m = _model(cell, L)
    sd = charrnn.export_torch(m)
    assert list(sd) == _keys(cell, L)
    G, H, V = m.layout.gates, 6, m.vocab_size
    for l in range(L):
        assert sd[f"rnn.weight_ih_l{l}"].shape == (G * H, V if l == 0 else H)
        assert sd[f"rnn.weight_hh_l{l}"].shape == (G * H, H)
        names = m.layout.layers[l]
        if cell == "gru":
            np.testing.assert_array_equal(sd[f"rnn.bias_ih_l{l}"], m.params[names.bx])
            np.testing.assert_array_equal(sd[f"rnn.bias_hh_l{l}"], m.params[names.bh])
        else:
            np.testing.assert_array_equal(sd[f"rnn.bias_ih_l{l}"], m.params[names.bx])
            assert not sd[f"rnn.bias_hh_l{l}"].any()
    assert all(v.dtype == m.dtype for v in sd.values())
    sd["decoder.bias"][0] += 1                                  # a copy
    assert m.params["by"][0] != sd["decoder.bias"][0]


@pytest.mark.parametrize("cell,L", MODELS)
def test_export_then_import_is_the_same_model(cell, L):
    m = _model(cell, L)
    back = CharRNN.from_torch_state(charrnn.export_torch(m), m.vocab, dtype="float64",
                                    backend="numpy")
    assert (back.cell, back.num_layers, back.hidden_size) == (cell, L, 6)
    assert back.theta.tobytes() == m.theta.tobytes()


def test_the_rnn_and_lstm_bias_is_the_sum_of_both():
    m = _model("lstm", 1)
    sd = charrnn.export_torch(m)
    sd["rnn.bias_hh_l0"] = np.full_like(sd["rnn.bias_hh_l0"], 0.25)
    back = CharRNN.from_torch_state(sd, m.vocab, dtype="float64")
    np.testing.assert_array_equal(back.params["b0"], m.params["b0"] + 0.25)


@pytest.mark.parametrize("change,exc,match", [
    (lambda sd: sd.pop("rnn.weight_ih_l0"), ValueError, "no rnn.weight_ih_l0"),
    (lambda sd: sd.pop("decoder.bias"), ValueError, "no 'decoder.bias'"),
    (lambda sd: sd.update({"rnn.weight_hr_l0": np.zeros((2, 2))}), ValueError, "weight_hr_l0"),
    (lambda sd: sd.update({"decoder.weight": np.zeros((3, 6))}), ValueError, "shape"),
    (lambda sd: sd.update({"rnn.weight_hh_l0": np.zeros((10, 6))}), ValueError, "shape"),
    (lambda sd: sd.update({"rnn.weight_hh_l0": np.zeros((12, 6))}), ValueError, "gate blocks"),
    (lambda sd: sd.update({"decoder.bias": np.full(sd["decoder.bias"].shape, np.nan)}),
     ValueError, "NaN"),
    (lambda sd: sd.update({"decoder.bias": np.array(["a"] * sd["decoder.bias"].size)}),
     TypeError, "numbers"),
])
def test_a_bad_state_dict_is_a_clear_error(change, exc, match):
    m = _model("lstm", 2)
    sd = charrnn.export_torch(m)
    change(sd)
    with pytest.raises(exc, match=match):
        CharRNN.from_torch_state(sd, m.vocab)


def test_a_cell_that_does_not_fit_the_weights_is_refused():
    sd = charrnn.export_torch(_model("gru", 1))
    with pytest.raises(ValueError, match="a lstm has 4"):
        CharRNN.from_torch_state(sd, Vocab.from_text(TEXT), cell="lstm")
    with pytest.raises(TypeError, match="mapping"):
        CharRNN.from_torch_state([1, 2], Vocab.from_text(TEXT))


# ----------------------------------------------------------------------------- with PyTorch

def _probs(m, ids, h0):
    """The model's next-character probabilities at every step (T, V), and its last state,
    from the reference kernel's forward pass."""
    X, Y = ids[None, :-1], ids[None, 1:]
    ws = Workspace.for_layout(m.layout, 1, X.shape[1])
    hlast = np.empty_like(h0)
    NP.loss(m.layout, m.theta, X, Y, h0, hlast, ws)
    T, V = X.shape[1], m.vocab_size
    p = ws.zs[:T * V].reshape(T, V).copy()                      # p - onehot(Y)
    p[np.arange(T), Y[0]] += 1
    return p, hlast


def _torch_modules(torch, cell, L, V, H, dtype, embedding=None):
    nn = torch.nn
    rnn = {"rnn": nn.RNN, "lstm": nn.LSTM, "gru": nn.GRU}[cell](
        V if embedding is None else embedding, H, L)
    model = nn.Module()
    if embedding is not None:
        model.encoder = nn.Embedding(V, embedding)
    model.rnn, model.decoder = rnn, nn.Linear(H, V)
    return model.to(dtype)


def _torch_forward(torch, model, cell, ids, V, state):
    x = torch.as_tensor(ids[:-1], dtype=torch.long)
    if hasattr(model, "encoder"):
        inp = model.encoder(x)[:, None, :]                      # (T, 1, E)
    else:
        inp = torch.nn.functional.one_hot(x, V).to(model.decoder.weight.dtype)[:, None, :]
    with torch.no_grad():
        out, hn = model.rnn(inp, state)
        p = torch.softmax(model.decoder(out[:, 0]), dim=1)
    return p.numpy(), hn


@pytest.mark.parametrize("cell,L", MODELS)
@pytest.mark.parametrize("dtype,tol", [("float64", 1e-12), ("float32", 1e-5)])
def test_pytorch_computes_the_same_probabilities(cell, L, dtype, tol):
    torch = pytest.importorskip("torch")
    m = _model(cell, L, dtype)
    V, H = m.vocab_size, m.hidden_size
    tdtype = torch.float64 if dtype == "float64" else torch.float32
    tm = _torch_modules(torch, cell, L, V, H, tdtype)
    tm.load_state_dict({k: torch.from_numpy(v) for k, v in charrnn.export_torch(m).items()})
    ids = m.vocab.encode(TEXT * 2).astype(np.int32)
    # a random start state, in charrnn's (1, L*S*H) and in PyTorch's (L, 1, H) form
    rng = np.random.default_rng(3)
    h0 = rng.uniform(-0.5, 0.5, (1, m.state_size)).astype(dtype)
    parts = m.layout.state_views(h0)
    th = torch.from_numpy(np.stack([p[0] for p in parts]))
    state = (th, torch.from_numpy(np.stack([p[1] for p in parts]))) if cell == "lstm" else th
    p, hlast = _probs(m, ids, h0)
    tp, hn = _torch_forward(torch, tm, cell, ids, V, state)
    np.testing.assert_allclose(p, tp, rtol=0, atol=tol)
    last = m.layout.state_views(hlast)
    hn = hn if cell == "lstm" else (hn,)
    for s, t in enumerate(hn):
        np.testing.assert_allclose(np.stack([q[s][0] for q in last]), t[:, 0].numpy(),
                                   rtol=0, atol=tol)
    # and back: PyTorch's state_dict gives the same model
    back = CharRNN.from_torch_state(tm.state_dict(), m.vocab, dtype=dtype)
    np.testing.assert_allclose(back.theta, m.theta, rtol=0, atol=tol)


@pytest.mark.parametrize("cell", ["lstm", "gru"])
def test_the_textbook_model_with_an_embedding_imports_exactly(cell):
    torch = pytest.importorskip("torch")
    V = len(Vocab.from_text(TEXT))
    torch.manual_seed(0)
    tm = _torch_modules(torch, cell, 2, V, 7, torch.float64, embedding=5)
    vocab = Vocab.from_text(TEXT)
    m = CharRNN.from_torch_state(tm.state_dict(), vocab, dtype="float64")
    assert (m.cell, m.num_layers, m.hidden_size) == (cell, 2, 7)
    ids = vocab.encode(TEXT).astype(np.int32)
    p, _ = _probs(m, ids, np.zeros((1, m.state_size)))
    tp, _ = _torch_forward(torch, tm, cell, ids, V, None)
    np.testing.assert_allclose(p, tp, rtol=0, atol=1e-12)
