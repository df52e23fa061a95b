"""The sampling and scoring API: sample, generate, sample_many, score, priming."""

from __future__ import annotations

import math

import numpy as np
import pytest

import charrnn
from charrnn import sampling

TEXT = "abcabd abcabd abcabd. " * 60 + "é😀"


@pytest.fixture(scope="module")
def model():
    """A small model trained just enough to have preferences."""
    r = charrnn.train(TEXT, hidden_size=24, batch_size=4, seq_length=12, steps=60,
                      eval_every=0, sample_every=0, verbose=False, seed=2,
                      cell="rnn", dropout=0.0)            # the tests below spell out its math
    return r.model


def test_sample_is_deterministic_for_a_seed(model):
    a = model.sample(150, prime="abc", seed=7)
    assert a == model.sample(150, prime="abc", seed=7)
    assert len(a) == 150 and set(a) <= set(model.vocab.chars)
    others = {model.sample(150, prime="abc", seed=s) for s in range(8, 12)}
    assert len(others - {a}) >= 3
    assert model.sample(0, seed=1) == ""


def test_generate_streams_the_same_text(model):
    it = model.generate(200, prime="ab", seed=5)
    assert iter(it) is it
    chars = list(it)
    assert all(isinstance(c, str) and len(c) == 1 for c in chars)
    assert "".join(chars) == model.sample(200, prime="ab", seed=5)
    endless = model.generate(prime="ab", seed=5)
    first = [next(endless) for _ in range(300)]
    assert "".join(first[:200]) == "".join(chars)


def test_seeded_generator_continues(model):
    g = np.random.default_rng(3)
    a = model.sample(50, seed=g)
    b = model.sample(50, seed=g)
    assert a != b                                  # the generator moved on
    g2 = np.random.default_rng(3)
    assert model.sample(50, seed=g2) == a


def test_sample_many_is_one_batch_of_independent_streams(model):
    outs = model.sample_many(5, 80, prime="abc", seed=4)
    assert len(outs) == 5 and all(len(o) == 80 for o in outs)
    assert len(set(outs)) == 5
    assert outs == model.sample_many(5, 80, prime="abc", seed=4)
    # stream b draws with column b of the uniforms, from the same primed state
    h, first = sampling.prime_state(model, model.vocab.encode("abc").astype(np.int32), 5)
    U = np.random.default_rng(4).random((80, 5))
    ids = model.kernels.sample(model.layout, model.theta, h, first, U, 1.0, None)
    assert [model.vocab.decode(ids[:, b]) for b in range(5)] == outs
    assert model.sample_many(2, 0) == ["", ""]


def test_temperature_zero_and_top_k_one_are_argmax(model):
    greedy = model.sample(60, prime="abc", temperature=0, seed=1)
    assert greedy == model.sample(60, prime="abc", temperature=0, seed=99)
    assert greedy == model.sample(60, prime="abc", top_k=1, seed=5)


def test_top_k_limits_the_choices(model):
    # with k = 2, no step may pick a character outside its two most likely ones
    k = 2
    out = model.sample(100, prime="a", top_k=k, seed=0)
    ids = model.vocab.encode("a" + out).astype(np.int32)
    p = model.params
    h = np.zeros(model.hidden_size, model.dtype)
    for x, y in zip(ids[:-1], ids[1:]):
        h = np.tanh(p["Wxh"][:, x] + p["Whh"] @ h + p["bh"])
        z = p["Why"] @ h + p["by"]
        assert y in np.argsort(-z, kind="stable")[:k]


def test_priming_matches_the_forward_pass(model):
    prime = "abcabd abc" * 40                       # longer than one forward chunk
    ids = model.vocab.encode(prime).astype(np.int32)
    h, first = sampling.prime_state(model, ids)
    assert first.tolist() == [ids[-1]]
    _, hlast = model.loss(ids[:-1], ids[1:])
    np.testing.assert_allclose(h[0], hlast, rtol=1e-5, atol=1e-6)


def test_unknown_prime_characters(model):
    with pytest.raises(ValueError, match=r"'Z'.*'q'|'q'.*'Z'") as e:
        model.sample(10, prime="abqZ", seed=0)
    assert "2 character(s)" in str(e.value)
    with pytest.raises(ValueError, match="'Z'"):
        model.generate(10, prime="Z")
    with pytest.raises(ValueError, match="'Z'"):
        model.sample_many(2, 10, prime="Z")
    assert model.sample(20, prime="abqZ", seed=3, skip_unknown=True) == \
        model.sample(20, prime="ab", seed=3)


@pytest.mark.parametrize("kw, exc", [
    (dict(n=-1), ValueError), (dict(n=2.5), TypeError), (dict(temperature=-1), ValueError),
    (dict(temperature=float("nan")), ValueError), (dict(temperature="hot"), TypeError),
    (dict(top_k=0), ValueError), (dict(top_k=10**6), ValueError), (dict(top_k=1.5), TypeError),
    (dict(seed=-3), ValueError), (dict(seed="x"), TypeError), (dict(prime=5), TypeError),
])
def test_bad_arguments(model, kw, exc):
    args = dict(n=10, prime="", temperature=1.0, top_k=None, seed=0)
    args.update(kw)
    with pytest.raises(exc):
        model.sample(**args)
    with pytest.raises(exc):
        model.generate(**args)


def test_score_is_bits_per_char(model):
    text = "abcabd abcabd abcabd. abcabd"
    ids = model.vocab.encode(text)
    loss, _ = model.loss(ids[:-1], ids[1:])                # one stream: summed nats
    want = loss / (len(text) - 1) / math.log(2)
    assert model.score(text) == pytest.approx(want, rel=1e-5)
    assert model.score(text) < model.score("da.b cba a.dcbd éb😀a ca")
    with pytest.raises(ValueError, match="'Q'"):
        model.score("abQ")
    assert model.score("abQc", skip_unknown=True) == pytest.approx(model.score("abc"))
    with pytest.raises(ValueError, match="at least 2"):
        model.score("a")


def test_an_untrained_model_scores_near_uniform():
    m = charrnn.CharRNN("abcdefghij", hidden_size=8, seed=0)
    assert m.score("abcdefghij" * 30) == pytest.approx(math.log2(10), abs=0.02)


def test_score_over_many_streams_adds_up(model):
    """A long text runs as several streams; the total still counts every character once."""
    rng = np.random.default_rng(0)
    ids = rng.integers(0, model.vocab_size, 9000).astype(model.vocab.dtype)
    total, n = sampling.evaluate(model, ids)
    assert n == 8999 and sampling.eval_streams(n) == 4
    # the same number from explicit streams: each piece scored on its own
    E, L = 4, 8999 // 4
    manual = 0.0
    h_last = None
    for b in range(E):
        x = ids[b * L:(b + 1) * L].astype(np.int32)
        y = ids[b * L + 1:(b + 1) * L + 1].astype(np.int32)
        loss, h_last = model.loss(x, y)
        manual += loss
    rest_x = ids[E * L:-1].astype(np.int32)
    rest_y = ids[E * L + 1:].astype(np.int32)
    manual += model.loss(rest_x, rest_y, hprev=h_last)[0]
    assert total == pytest.approx(manual, rel=1e-5)


def test_sampling_after_save_and_load(model, tmp_path):
    p = model.save(tmp_path / "s.ckpt.npz")
    m2 = charrnn.load(p)
    assert m2.sample(100, prime="ab", seed=11) == model.sample(100, prime="ab", seed=11)
    assert m2.score(TEXT[:300]) == model.score(TEXT[:300])


def test_backends_draw_alike_from_the_same_uniforms(model, backend):
    m = charrnn.CharRNN(model.vocab, hidden_size=model.hidden_size, dtype=model.dtype,
                        backend=backend)
    m.theta[:] = model.theta
    assert m.sample(40, prime="abc", temperature=0) == model.sample(40, prime="abc",
                                                                   temperature=0)
