"""Threads: separate models train and sample in parallel exactly as they do in turn.

- Several threads each training its own model (``Optimizer.train_step``, or
  ``_loss_and_grads`` plus an optimizer update on the flat ``theta``/``grad``) while
  others sample, give results bitwise equal to running the same jobs one after another.
- The compiled kernels release the GIL: a Python thread keeps counting while a long
  kernel call runs in another thread.
- One model shared by two threads is safe: ``CharRNN`` takes a lock around its kernel
  calls, so concurrent ``loss_and_grads`` calls give the sequential results.
- The same for the raw kernels of LSTM, GRU and multi-layer models with dropout: jobs
  in threads give the results of the jobs in turn, and the long calls release the GIL.

For the bitwise comparisons BLAS is pinned to one thread (threadpoolctl, in the test
extra), so that every GEMM sums in one order; they skip without it.
"""

from __future__ import annotations

import threading
import time

import numpy as np
import pytest

from charrnn import CharRNN, Vocab, Workspace
from charrnn.optim import clip_args, make_optimizer
from conftest import compiled_kernels, flat, make_ids, make_masks, make_stack, make_state

try:
    import threadpoolctl
except ImportError:  # pragma: no cover - it is in the test extra
    threadpoolctl = None

TEXT = ("It is a truth universally acknowledged, that a single man in possession of a good "
        "fortune, must be in want of a wife.\n") * 4
VOCAB = Vocab.from_text(TEXT)


@pytest.fixture
def one_blas_thread():
    """BLAS on one thread, so that every GEMM sums in one order (bitwise comparisons)."""
    if threadpoolctl is None:
        pytest.skip("threadpoolctl is needed to pin BLAS to one thread")
    with threadpoolctl.threadpool_limits(limits=1, user_api="blas"):
        yield


@pytest.fixture
def quiet_blas():
    """BLAS on one thread where threadpoolctl is installed, so that the kernel's BLAS
    threads do not take both cores from the counting thread; as it is otherwise."""
    if threadpoolctl is None:
        yield
        return
    with threadpoolctl.threadpool_limits(limits=1, user_api="blas"):
        yield


def train_job(backend: str, dtype: str, seed: int, steps: int = 30, B: int = 3, T: int = 16,
              H: int = 64, optimizer: str = "adagrad", fused: bool = True):
    """Train a fresh model for ``steps`` chunks, with ``Optimizer.train_step`` or (not
    ``fused``) the separate kernels; return (theta, losses, final state)."""
    m = CharRNN(VOCAB, hidden_size=H, dtype=dtype, seed=seed, backend=backend)
    K = m.kernels
    opt = make_optimizer(optimizer, m.num_params, m.dtype)
    ids = VOCAB.encode(TEXT).astype(np.int32)
    rng = np.random.default_rng(seed)
    h = np.zeros((B, H), m.dtype)
    losses = []
    for _ in range(steps):
        starts = rng.integers(0, ids.size - T - 1, B)
        X = np.stack([ids[s:s + T] for s in starts])
        Y = np.stack([ids[s + 1:s + T + 1] for s in starts])
        with m._lock:
            if fused:                                           # as the trainer does
                L, _ = opt.train_step(m, X, Y, h, "value", 5.0)
            else:
                L, h = m._loss_and_grads(X, Y, h, h)           # the state carried in place
                _, clip, scale = clip_args(K, m.grad, "value", 5.0)
                opt.step(K, m.theta, m.grad, clip, scale)
        losses.append(L)
    return m.theta.copy(), losses, h.copy()


def sample_job(backend: str, dtype: str, seed: int, n: int = 300, B: int = 4,
               temperature: float = 0.9, top_k: int | None = None):
    """Draw n ids for B streams from a seeded model with the raw ``sample`` kernel."""
    m = CharRNN(VOCAB, hidden_size=32, dtype=dtype, seed=seed, backend=backend)
    rng = np.random.default_rng(seed)
    h = np.tanh(rng.standard_normal((B, 32))).astype(m.dtype)
    first = rng.integers(0, len(VOCAB), B).astype(np.int32)
    U = rng.random((n, B))
    out = m.kernels.sample(m.layout, m.theta, h, first, U, temperature, top_k)
    return out, h


def jobs(backend: str, dtype: str) -> list:
    return ([lambda s=s: train_job(backend, dtype, seed=s) for s in range(2)]
            + [lambda: train_job(backend, dtype, seed=2, fused=False)]
            + [lambda: train_job(backend, dtype, seed=7, optimizer="adam", B=1, T=16)]
            + [lambda s=s, k=k: sample_job(backend, dtype, seed=10 + s, top_k=k)
               for s, k in ((0, None), (1, 5))])


def run_threaded(fns: list) -> list:
    results = [None] * len(fns)
    errors = []
    start = threading.Barrier(len(fns))

    def work(i):
        try:
            start.wait()
            results[i] = fns[i]()
        except BaseException as e:  # noqa: BLE001 - reported below, with its thread
            errors.append((i, e))

    threads = [threading.Thread(target=work, args=(i,)) for i in range(len(fns))]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=600)
    assert not any(t.is_alive() for t in threads), "a thread hung"
    assert not errors, errors
    return results


def assert_same(a, b, what=""):
    """Bitwise equality of nested tuples / lists of arrays and floats."""
    if isinstance(a, (tuple, list)):
        assert type(a) is type(b) and len(a) == len(b), what
        for i, (x, y) in enumerate(zip(a, b)):
            assert_same(x, y, f"{what}[{i}]")
    elif isinstance(a, np.ndarray):
        assert a.dtype == b.dtype and a.shape == b.shape, what
        assert a.tobytes() == b.tobytes(), f"{what}: arrays differ"
    else:
        assert a == b, f"{what}: {a!r} != {b!r}"


@pytest.mark.usefixtures("one_blas_thread")
def test_threads_train_and_sample_as_if_in_turn(backend, dtype):
    fns = jobs(backend, dtype.name)
    sequential = [f() for f in fns]
    for round_ in range(2):
        assert_same(run_threaded(fns), sequential, f"round {round_}")
    # the jobs differ from each other, so the comparison could have failed
    assert sequential[0][0].tobytes() != sequential[1][0].tobytes()


@pytest.mark.usefixtures("one_blas_thread")
def test_backends_mixed_across_threads(dtype):
    """Compiled and NumPy jobs side by side each match their own sequential run."""
    compiled_kernels()
    fns = jobs("cython", dtype.name)[:2] + jobs("numpy", dtype.name)[:2]
    assert_same(run_threaded(fns), [f() for f in fns])


# ----------------------------------------------------------------------------- the GIL

def _timed(fn) -> float:
    """The shorter of two timings of fn(): a warm run, whatever the first one cost."""
    times = []
    for _ in range(2):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return min(times)


def _long_call(K, kernel: str, min_seconds: float = 0.35):
    """A (call, seconds) pair whose single kernel call takes at least ``min_seconds``."""
    B, H, V = 8, 256, 64
    rng = np.random.default_rng(0)
    layout, theta = flat({k: rng.standard_normal(s) * 0.05 for k, s in
                          [("Wxh", (H, V)), ("Whh", (H, H)), ("Why", (V, H)), ("bh", (H,)),
                           ("by", (V,))]})
    T = 128
    while True:
        X = rng.integers(0, V, (B, T)).astype(np.int32)
        if kernel == "loss_and_grads":
            grad = layout.zeros()
            ws = Workspace(B, T, H, V)

            def call(X=X, grad=grad, ws=ws):
                K.loss_and_grads(layout, theta, grad, X, X, np.zeros((B, H)),
                                 np.zeros((B, H)), ws)
        elif kernel == "train_step":
            w = theta.copy()
            ws = Workspace(B, T, H, V)

            def call(X=X, w=w, ws=ws):
                K.train_step(layout, w, np.zeros_like(w), X, X, np.zeros((B, H)), ws, "sgd",
                             (), 0.0, (), 5.0, np.inf)
        else:
            U = rng.random((T, B))

            def call(X=X, U=U):
                K.sample(layout, theta, np.zeros((B, H)), X[:, 0].copy(), U)
        seconds = _timed(call)
        if seconds >= min_seconds or T >= 2**16:
            return call, seconds
        T *= 2


def _count_while(fn) -> tuple[int, float]:
    """Run fn() in this thread while another thread counts; return (counts, seconds)."""
    state = {"n": 0, "stop": False}

    def counter():
        while not state["stop"]:
            state["n"] += 1

    t = threading.Thread(target=counter)
    t.start()
    try:
        time.sleep(0.02)                                  # let the counter get going
        n0, t0 = state["n"], time.perf_counter()
        fn()
        n1, t1 = state["n"], time.perf_counter()
    finally:
        state["stop"] = True
        t.join()
    return n1 - n0, t1 - t0


@pytest.mark.usefixtures("quiet_blas")
@pytest.mark.parametrize("kernel", ["loss_and_grads", "train_step", "sample"])
@pytest.mark.parametrize("stack", [False, True], ids=["rnn", "lstm2-dropout"])
def test_compiled_kernels_release_the_gil(kernel, stack):
    """A Python thread makes progress while one long kernel call runs, of the 1-layer RNN
    or of a 2-layer LSTM with dropout.

    Holding the GIL, a single C call would let the counter run at most for one switch
    interval (5 ms) around its start. The counter must instead do more than it does in an
    eighth of the call's duration with the main thread asleep.
    """
    K = compiled_kernels()
    call, seconds = (_long_stack_call if stack else _long_call)(K, kernel)
    assert seconds >= 0.2, f"could not make a call of 0.2 s ({seconds:.3f} s)"
    baseline, slept = _count_while(lambda: time.sleep(seconds / 8))
    during, took = _count_while(call)
    assert took >= 0.2
    assert during > baseline, (f"{during} counts during a {took:.3f} s kernel call vs "
                               f"{baseline} in {slept:.3f} s of sleep")


def test_a_gil_holding_call_is_caught():
    """The same measure flags a long C call that holds the GIL, so the test above could fail.

    ``sum(range(n))`` runs in C without returning to the interpreter loop, where a thread
    switch could happen.
    """
    n = 4 * 10**6
    while True:
        seconds = _timed(lambda: sum(range(n)))
        if seconds >= 0.35 or n >= 10**10:
            break
        n *= 2
    baseline, _ = _count_while(lambda: time.sleep(seconds / 8))
    during, took = _count_while(lambda: sum(range(n)))
    assert took >= 0.2
    assert during <= baseline, (during, baseline)


# ----------------------------------------------------------------------------- one model

@pytest.mark.usefixtures("one_blas_thread")
def test_one_model_from_two_threads(backend, dtype):
    """Concurrent loss_and_grads on one model equal the sequential results (the lock)."""
    m = CharRNN(VOCAB, hidden_size=48, dtype=dtype, seed=5, backend=backend)
    rng = np.random.default_rng(5)
    ids = VOCAB.encode(TEXT).astype(np.int32)
    # two callers with different chunk shapes, so a shared workspace would be resized
    calls = [(ids[:40].reshape(4, 10), ids[1:41].reshape(4, 10)),
             (ids[50:82].reshape(1, 32), ids[51:83].reshape(1, 32))]
    hs = [np.tanh(rng.standard_normal((X.shape[0], 48))) for X, _ in calls]
    want = [m.loss_and_grads(X, Y, h) for (X, Y), h in zip(calls, hs)]
    want_loss = [m.loss(X, Y, h) for (X, Y), h in zip(calls, hs)]
    rounds = 40
    barrier = threading.Barrier(2)

    def caller(i):
        (X, Y), h = calls[i], hs[i]
        out = []
        for _ in range(rounds):
            barrier.wait()
            out.append((m.loss_and_grads(X, Y, h), m.loss(X, Y, h)))
        return out

    results = run_threaded([lambda: caller(0), lambda: caller(1)])
    for i, res in enumerate(results):
        for r, (lg, lo) in enumerate(res):
            assert_same((lg[0], lg[2]), (want[i][0], want[i][2]), f"caller {i} round {r}")
            for k in lg[1]:
                assert_same(lg[1][k], want[i][1][k], f"caller {i} round {r} {k}")
            assert_same(lo, want_loss[i], f"caller {i} round {r} loss")
    assert want[0][0] != want[1][0]


def test_model_lock_is_reentrant():
    """Holding ``model._lock`` across several calls (the way to combine them) works."""
    m = CharRNN(VOCAB, hidden_size=8, seed=1, backend="numpy")
    out = []

    def hold_and_call():
        with m._lock:
            out.append(m.loss_and_grads([1, 2, 3], [2, 3, 4])[0])
            out.append(m.loss([1, 2, 3], [2, 3, 4])[0])

    t = threading.Thread(target=hold_and_call, daemon=True)
    t.start()
    t.join(timeout=60)
    assert not t.is_alive(), "a call under the held lock deadlocked"
    assert len(out) == 2 and out[0] == out[1]


# ----------------------------------------------------------------------------- cells and stacks

def stack_job(backend: str, dtype: str, cell: str, L: int, seed: int, steps: int = 12,
              B: int = 3, T: int = 10, H: int = 24, V: int = 17):
    """Train a stack of ``cell`` with the raw ``train_step`` (Adam, dropout, the state
    carried in place), then sample from it; return (w, losses, state, ids)."""
    import charrnn
    K = charrnn.get_kernels(backend)
    layout, w = make_stack(cell, L, H, V, dtype, seed=seed)
    h = make_state(layout, B, seed=seed)
    ws = Workspace.for_layout(layout, B, T)
    g, m, v = layout.zeros(), layout.zeros(), layout.zeros()
    losses = []
    for step in range(steps):
        X, Y = make_ids(B, T, V, seed=seed + step)
        masks = make_masks(layout, B, T, 0.3, seed=seed + step)
        losses.append(K.train_step(layout, w, g, X, Y, h, ws, "adam", (m, v), 1e-2,
                                   (0.9, 0.999, 1e-8, step + 1), 5.0, 1.0, masks))
    U = np.random.default_rng(seed).random((50, B))
    ids = K.sample(layout, w, h, np.arange(B, dtype=np.int32), U, 0.9, 5)
    return w.copy(), losses, h.copy(), ids


def stack_jobs(backend: str, dtype: str) -> list:
    return [lambda c=c, L=L, s=s: stack_job(backend, dtype, c, L, s)
            for s, (c, L) in enumerate([("lstm", 2), ("gru", 1), ("rnn", 3), ("lstm", 1)])]


@pytest.mark.usefixtures("one_blas_thread")
def test_threads_train_stacks_as_if_in_turn(backend, dtype):
    fns = stack_jobs(backend, dtype.name)
    sequential = [f() for f in fns]
    for round_ in range(2):
        assert_same(run_threaded(fns), sequential, f"round {round_}")


def _long_stack_call(K, kernel: str, min_seconds: float = 0.35):
    """A (call, seconds) pair of one LSTM kernel call of at least ``min_seconds``."""
    B, H, V = 8, 128, 64
    layout, theta = make_stack("lstm", 2, H, V, "float64", seed=0)
    T = 32
    while True:
        X, Y = make_ids(B, T, V)
        h = make_state(layout, B)
        ws = Workspace.for_layout(layout, B, T)
        masks = make_masks(layout, B, T)
        if kernel == "loss_and_grads":
            def call(X=X, h=h, ws=ws, masks=masks):
                K.loss_and_grads(layout, theta, layout.zeros(), X, Y, h, np.empty_like(h), ws,
                                 masks)
        elif kernel == "train_step":
            w = theta.copy()

            def call(X=X, h=h, ws=ws, masks=masks, w=w):
                K.train_step(layout, w, np.zeros_like(w), X, Y, h, ws, "sgd", (), 0.0, (),
                             5.0, np.inf, masks)
        else:
            U = np.random.default_rng(0).random((T, B))

            def call(X=X, h=h, U=U):
                K.sample(layout, theta, h.copy(), X[:, 0].copy(), U)
        seconds = _timed(call)
        if seconds >= min_seconds or T >= 2**14:
            return call, seconds
        T *= 2


