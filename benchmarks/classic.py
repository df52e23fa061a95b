"""The classic baseline: a plain Python 3 transcription of min-char-rnn, written for this
benchmark.

This is the loop of Andrej Karpathy's "Minimal character-level language model with a
Vanilla Recurrent Neural Network, in Python/numpy" (2015, BSD license), transcribed to
Python 3 for the comparison and kept as the original is written, on purpose: per-step
dicts, one-hot input column vectors, one ``np.dot`` per product per step,
``np.exp(y) / np.sum(np.exp(y))``, clipping each gradient to [-5, 5] inside ``lossFun``,
Adagrad (lr 0.1), and ``np.random.choice(range(vocab_size), p=p.ravel())`` for sampling.
It runs one stream (B = 1) in float64. It is not part of the charrnn package.

The only changes are packaging: the globals live on an object, the text is passed in,
``lossFun`` takes the parameters as arguments (the method on the object clips, as the
original does; the tests compare charrnn with the unclipped function), the sampler's
progress print and the training loop's periodic sampling are left out (the benchmark
times training and sampling separately).
"""

from __future__ import annotations

import numpy as np


def lossFun(inputs, targets, hprev, Wxh, Whh, Why, bh, by):
    """
    inputs,targets are both list of integers.
    hprev is Hx1 array of initial hidden state
    returns the loss, gradients on model parameters, and last hidden state
    (the original's lossFun with the parameters passed in, and its clipping left to
    MinCharRNN.lossFun: tests/api/test_classic.py holds charrnn to these raw gradients)
    """
    vocab_size = Wxh.shape[1]
    xs, hs, ys, ps = {}, {}, {}, {}
    hs[-1] = np.copy(hprev)
    loss = 0
    # forward pass
    for t in range(len(inputs)):
        xs[t] = np.zeros((vocab_size, 1))  # encode in 1-of-k representation
        xs[t][inputs[t]] = 1
        hs[t] = np.tanh(np.dot(Wxh, xs[t]) + np.dot(Whh, hs[t - 1]) + bh)  # hidden state
        ys[t] = np.dot(Why, hs[t]) + by  # unnormalized log probabilities for next chars
        ps[t] = np.exp(ys[t]) / np.sum(np.exp(ys[t]))  # probabilities for next chars
        loss += -np.log(ps[t][targets[t], 0])  # softmax (cross-entropy loss)
    # backward pass: compute gradients going backwards
    dWxh, dWhh, dWhy = np.zeros_like(Wxh), np.zeros_like(Whh), np.zeros_like(Why)
    dbh, dby = np.zeros_like(bh), np.zeros_like(by)
    dhnext = np.zeros_like(hs[0])
    for t in reversed(range(len(inputs))):
        dy = np.copy(ps[t])
        dy[targets[t]] -= 1  # backprop into y
        dWhy += np.dot(dy, hs[t].T)
        dby += dy
        dh = np.dot(Why.T, dy) + dhnext  # backprop into h
        dhraw = (1 - hs[t] * hs[t]) * dh  # backprop through tanh nonlinearity
        dbh += dhraw
        dWxh += np.dot(dhraw, xs[t].T)
        dWhh += np.dot(dhraw, hs[t - 1].T)
        dhnext = np.dot(Whh.T, dhraw)
    return loss, dWxh, dWhh, dWhy, dbh, dby, hs[len(inputs) - 1]


class MinCharRNN:
    """min-char-rnn, one object instead of module globals.

    Parameters
    ----------
    data : str
        The training text.
    hidden_size, seq_length, learning_rate : as in the original (100, 25, 1e-1).
    seed : int
        Seeds numpy's global RandomState, which the original uses for init and sampling.
    """

    name = "classic"
    dtype = "float64"

    def __init__(self, data: str, hidden_size: int = 100, seq_length: int = 25,
                 learning_rate: float = 1e-1, seed: int = 0) -> None:
        np.random.seed(seed)
        chars = sorted(set(data))
        self.data = data
        self.vocab_size = vocab_size = len(chars)
        self.char_to_ix = {ch: i for i, ch in enumerate(chars)}
        self.ix_to_char = {i: ch for i, ch in enumerate(chars)}
        self.hidden_size, self.seq_length = hidden_size, seq_length
        self.learning_rate = learning_rate
        # model parameters
        self.Wxh = np.random.randn(hidden_size, vocab_size) * 0.01  # input to hidden
        self.Whh = np.random.randn(hidden_size, hidden_size) * 0.01  # hidden to hidden
        self.Why = np.random.randn(vocab_size, hidden_size) * 0.01  # hidden to output
        self.bh = np.zeros((hidden_size, 1))  # hidden bias
        self.by = np.zeros((vocab_size, 1))  # output bias
        # memory variables for Adagrad
        self.mWxh, self.mWhh, self.mWhy = (np.zeros_like(self.Wxh), np.zeros_like(self.Whh),
                                           np.zeros_like(self.Why))
        self.mbh, self.mby = np.zeros_like(self.bh), np.zeros_like(self.by)
        self.smooth_loss = -np.log(1.0 / vocab_size) * seq_length  # loss at iteration 0
        self.n, self.p = 0, 0
        self.hprev = np.zeros((hidden_size, 1))

    def lossFun(self, inputs, targets, hprev):
        """The original's lossFun: the loss, the gradients clipped to [-5, 5], the last
        hidden state."""
        loss, dWxh, dWhh, dWhy, dbh, dby, h = lossFun(inputs, targets, hprev, self.Wxh,
                                                      self.Whh, self.Why, self.bh, self.by)
        for dparam in [dWxh, dWhh, dWhy, dbh, dby]:
            np.clip(dparam, -5, 5, out=dparam)  # clip to mitigate exploding gradients
        return loss, dWxh, dWhh, dWhy, dbh, dby, h

    def sample(self, h, seed_ix, n):
        """
        sample a sequence of integers from the model
        h is memory state, seed_ix is seed letter for first time step
        """
        Wxh, Whh, Why, bh, by = self.Wxh, self.Whh, self.Why, self.bh, self.by
        vocab_size = self.vocab_size
        x = np.zeros((vocab_size, 1))
        x[seed_ix] = 1
        ixes = []
        for t in range(n):
            h = np.tanh(np.dot(Wxh, x) + np.dot(Whh, h) + bh)
            y = np.dot(Why, h) + by
            p = np.exp(y) / np.sum(np.exp(y))
            ix = np.random.choice(range(vocab_size), p=p.ravel())
            x = np.zeros((vocab_size, 1))
            x[ix] = 1
            ixes.append(ix)
        return ixes

    def train_step(self):
        """One iteration of the original's main loop (without its periodic sampling)."""
        data, seq_length, p = self.data, self.seq_length, self.p
        # prepare inputs (we're sweeping from left to right in steps seq_length long)
        if p + seq_length + 1 >= len(data) or self.n == 0:
            self.hprev = np.zeros((self.hidden_size, 1))  # reset RNN memory
            p = 0  # go from start of data
        inputs = [self.char_to_ix[ch] for ch in data[p:p + seq_length]]
        targets = [self.char_to_ix[ch] for ch in data[p + 1:p + seq_length + 1]]

        # forward seq_length characters through the net and fetch gradient
        loss, dWxh, dWhh, dWhy, dbh, dby, self.hprev = self.lossFun(inputs, targets,
                                                                    self.hprev)
        self.smooth_loss = self.smooth_loss * 0.999 + loss * 0.001

        # perform parameter update with Adagrad
        for param, dparam, mem in zip([self.Wxh, self.Whh, self.Why, self.bh, self.by],
                                      [dWxh, dWhh, dWhy, dbh, dby],
                                      [self.mWxh, self.mWhh, self.mWhy, self.mbh, self.mby]):
            mem += dparam * dparam
            param += -self.learning_rate * dparam / np.sqrt(mem + 1e-8)  # adagrad update

        self.p = p + seq_length  # move data pointer
        self.n += 1  # iteration counter
        return loss


class ClassicTrain:
    """Benchmark workload: ``run(n)`` does n iterations of the classic training loop."""

    name = "classic"
    dtype = "float64"

    def __init__(self, H: int, T: int, V: int = 65, seed: int = 0,
                 text_len: int = 20_000) -> None:
        rng = np.random.default_rng(seed + 1)
        chars = [chr(32 + i) for i in range(V)]
        ids = rng.integers(0, V, size=max(text_len, 4 * (T + 1)))
        ids[:V] = np.arange(V)                                # every char occurs: vocab = V
        self.net = MinCharRNN("".join(chars[i] for i in ids), H, T, seed=seed)
        self.B, self.H, self.T, self.V = 1, H, T, V
        self.chars_per_call = T

    def run(self, n: int) -> None:
        step = self.net.train_step
        for _ in range(n):
            step()


class ClassicSample:
    """Benchmark workload: ``run(n)`` draws n times ``n_chars`` characters with the
    classic sampler. Like the original's periodic sample, each call starts from a given
    state (zeros here) and seed character (the last one drawn)."""

    name = "classic"
    dtype = "float64"

    def __init__(self, H: int, V: int = 65, n_chars: int = 1000, seed: int = 0) -> None:
        text = "".join(chr(32 + i) for i in range(V)) * 2
        self.net = MinCharRNN(text, H, 25, seed=seed)
        self.h = np.zeros((H, 1))
        self.ix = 0
        self.chars_per_call = n_chars

    def run(self, n: int) -> None:
        for _ in range(n):
            ixes = self.net.sample(self.h, self.ix, self.chars_per_call)
            self.ix = ixes[-1]
