"""Sampling and scoring: priming, drawing characters, and bits per character over a text.

Sampling primes the hidden state by running the forward kernel over the prime text, then
calls the backend's ``sample`` kernel, which feeds each drawn character back in. The
uniforms of the inverse-CDF draws come from a seeded ``numpy.random.Generator`` here, so
a seed fixes the text, and both backends draw the same characters from the same uniforms.
Drawing is chunked, and the generator hands out its numbers in order, so streaming
(:func:`generate`) and one-shot (:func:`sample`) calls give the same text for one seed.

Scoring (and validation during training) runs the forward-only kernel over a text cut
into a few contiguous streams, ``EVAL_CHUNK`` steps at a time, carrying the state.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator

import numpy as np

from .config import EVAL_CHUNK, EVAL_MAX_STREAMS, EVAL_MIN_STREAM, TEMPERATURE, check_count
from .kernels import checks

GEN_CHUNK = 64          # characters drawn per kernel call when streaming
DRAW_CHUNK = 1 << 16    # ... and at most per call when all are wanted at once
PRIME_CHUNK = 256       # prime characters per forward call
LN2 = math.log(2.0)


# ----------------------------------------------------------------------------- arguments

def _rng(seed) -> np.random.Generator:
    if isinstance(seed, np.random.Generator):
        return seed
    if seed is not None and (isinstance(seed, bool) or not isinstance(seed, (int, np.integer))):
        raise TypeError(f"seed must be an int or None, not {type(seed).__name__}")
    if seed is not None and seed < 0:
        raise ValueError(f"seed must be >= 0, got {seed}")
    return np.random.default_rng(seed)


def _count(name: str, n, allow_none: bool = False, minimum: int = 0):
    # no 2**31 bound here: a length is drawn in chunks, and the kernels check what they get
    if n is None and allow_none:
        return None
    return check_count(name, n, minimum, bounded=False)


def _check_draw(model, temperature, top_k) -> tuple[float, int | None]:
    """The kernels' own checks, once per call of the API (not per chunk drawn)."""
    return checks.temperature(temperature), checks.top_k(top_k, model.vocab_size) or None


def unknown_chars_error(what: str, unknown: list[str], hint: str) -> ValueError:
    shown = ", ".join(repr(c) for c in unknown[:20]) + (" ..." if len(unknown) > 20 else "")
    return ValueError(f"{what} has {len(unknown)} character(s) not in the model's "
                      f"vocabulary: {shown} ({hint})")


def encode_text(vocab, text: str, what: str = "text", skip_unknown: bool = False,
                hint: str = "skip_unknown=True drops them") -> np.ndarray:
    """Ids of ``text``; unknown characters raise ``ValueError`` listing them, or are
    dropped with ``skip_unknown``."""
    if not isinstance(text, str):
        raise TypeError(f"{what} must be a str, not {type(text).__name__}")
    if not text:
        return np.empty(0, np.int32)
    unknown = vocab.unknown(text)
    if unknown and not skip_unknown:
        raise unknown_chars_error(what, unknown, hint)
    return vocab.encode(text, "skip" if unknown else "strict").astype(np.int32)


# ----------------------------------------------------------------------------- priming

def start_id(vocab) -> int:
    """The id fed first when there is no prime: a newline, else a space, else id 0."""
    for c in ("\n", " "):
        if c in vocab:
            return vocab.chars.index(c)
    return 0


def prime_state(model, prime_ids: np.ndarray, batch: int = 1) -> tuple[np.ndarray, np.ndarray]:
    """``(h, first_ids)``: the state after all but the last prime character,
    (B, state_size), and that last character, (B,) int32 — what the ``sample`` kernel
    takes."""
    h = np.zeros((1, model.state_size), model.dtype)
    m = int(prime_ids.size)
    if m == 0:
        first = start_id(model.vocab)
    else:
        first = int(prime_ids[-1])
        with model._lock:
            for i in range(0, m - 1, PRIME_CHUNK):
                w = min(PRIME_CHUNK, m - 1 - i)
                X = np.ascontiguousarray(prime_ids[i:i + w], np.int32).reshape(1, w)
                Y = np.ascontiguousarray(prime_ids[i + 1:i + 1 + w], np.int32).reshape(1, w)
                model.kernels.loss(model.layout, model.theta, X, Y, h, h,
                                   model.workspace(1, w))
    if batch > 1:
        h = np.repeat(h, batch, axis=0)
    return h, np.full(batch, first, np.int32)


# ----------------------------------------------------------------------------- drawing

def generate_ids(model, n: int | None, prime_ids: np.ndarray,
                 temperature: float = TEMPERATURE, top_k: int | None = None, seed=None,
                 batch: int = 1, chunk: int = GEN_CHUNK) -> Iterator[np.ndarray]:
    """Draw ``n`` ids per stream (forever if ``n`` is None), yielding int32 (m, B) chunks."""
    rng = _rng(seed)
    temperature, top_k = _check_draw(model, temperature, top_k)
    h, x = prime_state(model, prime_ids, batch)
    K, layout, theta = model.kernels, model.layout, model.theta
    # the uniforms of every chunk in one buffer: the generator hands out the same numbers
    # in the same order whatever the chunking, so a seed gives one text
    U = np.empty((chunk if n is None else max(1, min(chunk, n)), batch))
    done = 0
    while n is None or done < n:
        m = U.shape[0] if n is None else min(U.shape[0], n - done)
        u = U[:m]
        rng.random(out=u)                                           # (m, B) in [0, 1)
        with model._lock:
            out = K.sample(layout, theta, h, x, u, temperature, top_k)
        x = out[-1]                                                 # (B,), contiguous
        done += m
        yield out


def generate(model, n: int | None = None, prime: str = "",
             temperature: float = TEMPERATURE, top_k: int | None = None, seed=None,
             skip_unknown: bool = False) -> Iterator[str]:
    """Stream sampled characters one by one (after the prime, which is not repeated).

    ``n=None`` streams without end. Same arguments as :func:`sample`.
    """
    n = _count("n", n, allow_none=True)
    ids = encode_text(model.vocab, prime, "the prime", skip_unknown,
                      "skip_unknown=True drops them")
    _check_draw(model, temperature, top_k)
    rng = _rng(seed)                       # checked now, not at the first next()

    def chars():
        for out in generate_ids(model, n, ids, temperature, top_k, rng):
            yield from model.vocab.decode(out[:, 0])
    return chars()


def sample(model, n: int, prime: str = "", temperature: float = TEMPERATURE,
           top_k: int | None = None, seed=None, skip_unknown: bool = False) -> str:
    """``n`` characters drawn after ``prime``.

    Parameters
    ----------
    model : CharRNN
    n : int
        Characters to draw.
    prime : str
        Text to condition on; its characters must be in the vocabulary. Empty: start as
        after a line break.
    temperature : float
        Divides the logits; below 1 is more conservative, 0 takes the most likely char.
    top_k : int or None
        Draw only among the k most likely characters.
    seed : int, numpy.random.Generator or None
        The same seed gives the same text; None draws fresh entropy.
    skip_unknown : bool
        Drop prime characters outside the vocabulary instead of raising ``ValueError``.
    """
    n = _count("n", n)
    ids = encode_text(model.vocab, prime, "the prime", skip_unknown,
                      "skip_unknown=True drops them")
    _check_draw(model, temperature, top_k)
    if n == 0:
        return ""
    out = np.concatenate(list(generate_ids(model, n, ids, temperature, top_k, seed,
                                           chunk=DRAW_CHUNK)))
    return model.vocab.decode(out[:, 0])


def sample_many(model, k: int, n: int, prime: str = "",
                temperature: float = TEMPERATURE, top_k: int | None = None, seed=None,
                skip_unknown: bool = False) -> list[str]:
    """``k`` independent samples of ``n`` characters, drawn as one batch of k streams."""
    k = _count("k", k, minimum=1)
    n = _count("n", n)
    ids = encode_text(model.vocab, prime, "the prime", skip_unknown,
                      "skip_unknown=True drops them")
    _check_draw(model, temperature, top_k)
    if n == 0:
        return [""] * k
    out = np.concatenate(list(generate_ids(model, n, ids, temperature, top_k, seed,
                                           batch=k, chunk=max(1, DRAW_CHUNK // k))))
    return [model.vocab.decode(out[:, b]) for b in range(k)]


# ----------------------------------------------------------------------------- scoring

def eval_streams(predictions: int) -> int:
    """How many streams an evaluation of ``predictions`` characters uses."""
    return max(1, min(EVAL_MAX_STREAMS, predictions // EVAL_MIN_STREAM))


def evaluate(model, ids: np.ndarray, streams: int | None = None, chunk: int = EVAL_CHUNK,
             stop: Callable[[], bool] | None = None) -> tuple[float, int] | None:
    """Forward-only total loss over a text of ids: ``(nats, predictions)``.

    The ``n - 1`` predictions (each id from the ones before it) are cut into ``streams``
    contiguous pieces run side by side from a zero state; the few left over run on from
    the last stream's state. Nothing of the model changes but its scratch workspace.
    Returns None if ``stop()`` turned true midway.
    """
    n = int(ids.size)
    preds = n - 1
    if preds < 1:
        raise ValueError(f"scoring needs at least 2 characters, got {n}")
    E = eval_streams(preds) if streams is None else min(int(streams), preds)
    L = preds // E
    rest = preds - E * L
    Xs = ids[:E * L].reshape(E, L)                  # views into ids, never copies
    Ys = ids[1:E * L + 1].reshape(E, L)
    w0 = min(chunk, L)
    xbuf = np.empty(E * w0, np.int32)
    ybuf = np.empty(E * w0, np.int32)
    h = np.zeros((E, model.state_size), model.dtype)
    K, layout, theta = model.kernels, model.layout, model.theta
    total = 0.0
    with model._lock:
        ws = model.workspace(E, w0)
        for j in range(0, L, w0):
            w = min(w0, L - j)
            X, Y = xbuf[:E * w].reshape(E, w), ybuf[:E * w].reshape(E, w)
            np.copyto(X, Xs[:, j:j + w], casting="unsafe")
            np.copyto(Y, Ys[:, j:j + w], casting="unsafe")
            # the kernel averages over the E streams; the total wants the sum
            total += E * K.loss(layout, theta, X, Y, h, h, ws)
            if stop is not None and stop():
                return None
        if rest:
            X = np.ascontiguousarray(ids[E * L:n - 1], np.int32).reshape(1, rest)
            Y = np.ascontiguousarray(ids[E * L + 1:n], np.int32).reshape(1, rest)
            h1 = h[E - 1:E].copy()
            total += K.loss(layout, theta, X, Y, h1, h1, model.workspace(1, rest))
    return total, preds


def score(model, text: str, skip_unknown: bool = False) -> float:
    """Bits per character of ``text`` under the model (lower is better).

    Characters outside the vocabulary raise ``ValueError`` listing them, unless
    ``skip_unknown`` drops them.
    """
    ids = encode_text(model.vocab, text, "the text", skip_unknown,
                      "skip_unknown=True drops them")
    if ids.size < 2:
        raise ValueError(f"scoring needs a text of at least 2 characters, got {ids.size}")
    total, preds = evaluate(model, ids)
    return total / preds / LN2
