"""``charrnn bench``: a quick training and sampling throughput check of the installed
backends, with the timing method of the benchmark suite (``benchmarks/``, not installed),
which uses the workloads, the thread pinning and the timing below.

The method, in one place:

- pin every BLAS and OpenMP thread pool (threadpoolctl, which covers numpy's and scipy's
  separate OpenBLAS copies) and torch's own pool to the same thread count;
- warm each implementation up and calibrate how many calls fill a fixed wall time;
- run the implementations interleaved, round by round (the order rotates every round), so
  a slow spell of a shared machine hits them all alike;
- report the median and the range (min-max) of the rounds, and quote ratios paired round
  by round against a baseline measured in the same rounds.

The timed training step is the trainer's own: :class:`charrnn.training.step.Stepper`.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import math
import os
import statistics
import sys
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

import numpy as np

from .kernels.backend import available_backends
from .config import CELLS, DTYPES, TrainConfig
from .data.batches import Batches
from .data.vocab import id_dtype
from .model import CharRNN
from .optim import make_optimizer
from .train_state import TrainState
from .training.step import Stepper
from .training.world import SINGLE, World

# the quick check's size and length: a mid-sized model, a few seconds
BATCH_SIZE, HIDDEN_SIZE, SEQ_LENGTH, VOCAB_SIZE = 32, 256, 50, 65
DTYPE, THREADS, SECONDS, ROUNDS = "float32", 1, 3.0, 5


# ----------------------------------------------------------------------------- workloads

class Workload(Protocol):
    """Something to time: ``run(n)`` does ``n`` calls of ``chars_per_call`` characters."""

    name: str
    dtype: str
    chars_per_call: int

    def run(self, n: int) -> None: ...


def synthetic_vocab(V: int) -> str:
    """V distinct characters (code points 32, 33, ...): throughput does not depend on them."""
    if not 1 <= V <= 55_000:                   # below the surrogate code points
        raise ValueError(f"vocabulary size must be in [1, 55000], got {V}")
    return "".join(chr(32 + i) for i in range(V))


class CharrnnTrain:
    """Training steps of a CharRNN, the trainer's own (:class:`~charrnn.training.step.
    Stepper`) at a constant learning rate, over a synthetic text of uniform random ids.

    Parameters
    ----------
    backend : {"cython", "numpy"}
    B, H, T, V : int
        Streams, hidden units, steps per chunk, vocabulary size.
    dtype : {"float32", "float64"}
    optimizer : str
        Any name ``charrnn.make_optimizer`` takes; Adagrad (lr 0.1) is the classic.
    clip_kind, clip : the clipping rule (element-wise to [-5, 5] is the classic).
    windows : int
        Steps per pass over the synthetic text before it restarts.
    seed : int
    world : World
        The ranks of a data-parallel run, each with B streams (``benchmarks/mpi_scaling.py``).
    cell, num_layers, dropout :
        The model (:class:`charrnn.CharRNN`'s); min-char-rnn's by default.
    """

    def __init__(self, backend: str, B: int, H: int, T: int, V: int = VOCAB_SIZE,
                 dtype: str = "float64", optimizer: str = "adagrad",
                 clip_kind: str | None = "value", clip: float = 5.0, windows: int = 16,
                 seed: int = 0, world: World = SINGLE, cell: str = "rnn",
                 num_layers: int = 1, dropout: float = 0.0) -> None:
        self.model = CharRNN(synthetic_vocab(V), H, dtype, seed=seed, backend=backend,
                             cell=cell, num_layers=num_layers, dropout=dropout)
        self.K = self.model.kernels
        self.backend = self.model.backend
        self.name = f"charrnn-{self.backend}"
        self.dtype = np.dtype(dtype).name
        self.B, self.H, self.T, self.V = B, H, T, V
        self.chars_per_call = B * T * world.size
        config = TrainConfig(hidden_size=H, cell=cell, num_layers=num_layers,
                             dropout=dropout, dtype=self.dtype, seed=seed, batch_size=B,
                             seq_length=T, optimizer=optimizer, clip_kind=clip_kind,
                             clip=float(clip), lr_decay=1.0).validate()
        self.opt = make_optimizer(optimizer, self.model.num_params, self.model.dtype)
        K = world.size
        self.state = TrainState(config=config, optimizer=self.opt,
                                h=np.zeros((K * B, self.model.state_size), self.model.dtype),
                                world_size=K)
        rng = np.random.default_rng(seed + 1)
        ids = rng.integers(0, V, size=K * B * (windows * T + 2)).astype(id_dtype(V))
        self.batches = Batches(ids, B, T, rank=world.rank, world_size=K)
        self.stepper = Stepper(self.model, self.state, self.batches, world)
        self.X, self.Y, self.h = self.stepper.X, self.stepper.Y, self.stepper.h
        self.model.workspace(B, T)                           # allocate scratch up front
        self.last_loss = math.nan

    def step(self) -> float:
        """One training step on the next chunk; returns the chunk's loss."""
        return self.stepper.step()[0]

    def run(self, n: int) -> None:
        step = self.stepper.step
        for _ in range(n):
            loss, _ = step()
        if n:
            self.last_loss = loss


class CharrnnSample:
    """Sampling with the backend's ``sample`` kernel, B streams (1: as ``charrnn sample``
    does).

    Each call draws ``n_chars`` characters per stream with uniforms drawn once up front
    (the kernel takes them as input), feeding back the last characters and carrying the
    state.
    """

    def __init__(self, backend: str, H: int, V: int = VOCAB_SIZE, dtype: str = "float64",
                 n_chars: int = 1000, seed: int = 0, batch: int = 1, cell: str = "rnn",
                 num_layers: int = 1) -> None:
        self.model = CharRNN(synthetic_vocab(V), H, dtype, seed=seed, backend=backend,
                             cell=cell, num_layers=num_layers)
        self.K = self.model.kernels
        self.backend = self.model.backend
        self.name = f"charrnn-{self.backend}"
        self.dtype = np.dtype(dtype).name
        self.chars_per_call = n_chars * batch
        rng = np.random.default_rng(seed + 2)
        self.uniforms = rng.random((n_chars, batch))         # (n, B) float64, preallocated
        self.h = np.zeros((batch, self.model.state_size), self.model.dtype)
        self.first = np.zeros(batch, np.int32)
        self._args = (self.model.layout, self.model.theta)

    def run(self, n: int) -> None:
        sample, args, h, U = self.K.sample, self._args, self.h, self.uniforms
        for _ in range(n):
            out = sample(*args, h, self.first, U, 1.0, None)
            self.first[:] = out[-1]


# ----------------------------------------------------------------------------- threads

def _threadpoolctl():
    try:
        import threadpoolctl
    except ImportError:
        return None
    return threadpoolctl


def blas_pools() -> list[dict[str, Any]]:
    """The thread pools threadpoolctl sees (BLAS, OpenMP): library, kernel, threads.

    Imports ``scipy.linalg`` first so scipy's own OpenBLAS (the one the compiled kernels
    call) is loaded and listed. Empty when threadpoolctl is not installed.
    """
    import scipy.linalg  # noqa: F401  (loads scipy's OpenBLAS)
    tpc = _threadpoolctl()
    if tpc is None:
        return []
    keys = ("user_api", "internal_api", "prefix", "version", "architecture",
            "threading_layer", "num_threads", "filepath")
    return [{k: d.get(k) for k in keys} for d in tpc.threadpool_info()]


def _owner(filepath: str) -> str:
    """Which package bundles a library: numpy.libs/... -> "numpy", scipy.libs/... -> "scipy"."""
    parts = filepath.replace("\\", "/").split("/")
    for p in reversed(parts[:-1]):
        if p.endswith(".libs") or p in ("numpy", "scipy", "torch"):
            return p.split(".")[0]
        if p == "lib" and "torch" in parts:
            return "torch"
    return "system"


def pinned_pools(pools: list[dict[str, Any]] | None = None) -> dict[str, Any]:
    """Which BLAS pools are under control: numpy's and scipy's must both be listed."""
    pools = blas_pools() if pools is None else pools
    blas = [p for p in pools if p["user_api"] == "blas"]
    owners = sorted({_owner(p["filepath"] or "") for p in blas})
    return {"threadpoolctl": _threadpoolctl() is not None,
            "blas_owners": owners,
            "numpy_blas_listed": "numpy" in owners,
            "scipy_blas_listed": "scipy" in owners}


@contextlib.contextmanager
def pin_threads(n: int) -> Iterator[dict[str, Any]]:
    """Limit every BLAS/OpenMP pool (threadpoolctl) and torch (if imported) to ``n`` threads.

    Yields a record of what was pinned: the pools as threadpoolctl then reports them and
    torch's thread count. Without threadpoolctl the BLAS pools are left as they are and the
    record says so (``"pinned": False``).
    """
    if isinstance(n, bool) or not isinstance(n, int) or n < 1:
        raise ValueError(f"thread count must be an int >= 1, got {n!r}")
    tpc = _threadpoolctl()
    torch = sys.modules.get("torch")
    old_torch = torch.get_num_threads() if torch is not None else None
    if torch is not None:
        torch.set_num_threads(n)
    ctx = tpc.threadpool_limits(limits=n) if tpc is not None else contextlib.nullcontext()
    try:
        with ctx:
            pools = blas_pools()
            rec = {"threads": n, "pinned": tpc is not None, **pinned_pools(pools),
                   "pools": [{k: p[k] for k in ("internal_api", "prefix", "num_threads",
                                                "filepath")} for p in pools],
                   "torch_threads": torch.get_num_threads() if torch is not None else None}
            yield rec
    finally:
        if torch is not None:
            torch.set_num_threads(old_torch)


# ----------------------------------------------------------------------------- timing

@dataclass
class Timing:
    """The rounds of one workload: calls per round and the wall time of each round."""

    name: str
    dtype: str
    chars_per_call: int
    calls: int = 0
    seconds: list[float] = field(default_factory=list)
    cpu_seconds: list[float] = field(default_factory=list)
    overhead_seconds: list[float] = field(default_factory=list)

    @property
    def rates(self) -> list[float]:
        """chars/s of each round, less the round's ``overhead_seconds`` if they are set
        (but never more than 90% of a round: an overhead is itself a measurement)."""
        n, o = self.calls, self.overhead_seconds or [0.0] * len(self.seconds)
        return [n * self.chars_per_call / max(s - x, 0.1 * s)
                for s, x in zip(self.seconds, o)]

    def summary(self) -> dict[str, Any]:
        r = self.rates
        return {"name": self.name, "dtype": self.dtype, "calls_per_round": self.calls,
                "chars_per_call": self.chars_per_call, "rounds": len(r),
                "median": statistics.median(r), "min": min(r), "max": max(r),
                "round_rates": r, "round_seconds": self.seconds,
                "round_overhead_seconds": self.overhead_seconds,
                # process CPU time over wall time: below the thread count, the process
                # waited for a CPU (a busy machine); BLAS threads spinning count as busy
                "cpu_per_wall": [c / s for c, s in zip(self.cpu_seconds, self.seconds)]}


def paired_ratio(a: Timing, b: Timing) -> dict[str, float]:
    """a's rate over b's, round by round (same rounds, so a machine hiccup cancels).

    Returns the median and the range of the per-round ratios.
    """
    r = [x / y for x, y in zip(a.rates, b.rates)]
    return {"median": statistics.median(r), "min": min(r), "max": max(r)}


def calibrate(w: Workload, warmup: float, round_time: float) -> int:
    """Warm ``w`` up for ``warmup`` seconds; return the calls that fill ``round_time``."""
    w.run(1)                                                # first call: lazy allocations
    n, spent, per_call = 1, 0.0, math.inf
    while True:
        t0 = time.perf_counter()
        w.run(n)
        dt = time.perf_counter() - t0
        spent += dt
        per_call = min(per_call, dt / n)
        if spent >= warmup:
            break
        if dt < warmup / 8:
            n *= 2
    return max(1, round(round_time / per_call))


def measure(workloads: Sequence[Workload], rounds: int = 7, round_time: float = 0.5,
            warmup: float = 0.3, pause: float = 0.0,
            log: Callable[[str], None] | None = None) -> list[Timing]:
    """Time ``workloads`` interleaved: warm-up, then ``rounds`` rounds, each running every
    workload for about ``round_time`` seconds, in an order that rotates every round.

    ``pause`` seconds of sleep precede each timed run, so the spinning worker threads of the
    previous workload's BLAS (OpenBLAS spins for tens of ms after a call) are parked before
    the next one starts. Returns one :class:`Timing` per workload, in the given order.
    """
    if rounds < 1:
        raise ValueError(f"rounds must be >= 1, got {rounds}")
    if not (round_time > 0 and warmup >= 0 and pause >= 0):
        raise ValueError("round_time must be > 0, warmup and pause >= 0")
    timings = []
    for w in workloads:
        calls = calibrate(w, warmup, round_time)
        timings.append(Timing(w.name, w.dtype, w.chars_per_call, calls))
        if log:
            log(f"    warmed up {w.name} [{w.dtype}]: {calls} calls/round")
    k = len(workloads)
    for r in range(rounds):
        order = list(range(k))[r % k:] + list(range(k))[:r % k] if k else []
        for i in order:
            if pause:
                time.sleep(pause)
            w, t = workloads[i], timings[i]
            c0, t0 = time.process_time(), time.perf_counter()
            w.run(t.calls)
            t.seconds.append(time.perf_counter() - t0)
            t.cpu_seconds.append(time.process_time() - c0)
    return timings


# ----------------------------------------------------------------------------- command

def positive_int(s: str) -> int:
    """An argparse type: an integer >= 1."""
    try:
        v = int(s)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected an integer, got {s!r}") from None
    if v < 1:
        raise argparse.ArgumentTypeError(f"expected an integer >= 1, got {v}")
    return v


def fraction(s: str) -> float:
    try:
        v = float(s)
    except ValueError:
        v = math.nan
    if not 0 <= v < 1:
        raise argparse.ArgumentTypeError(f"expected a number in [0, 1), got {s}")
    return v


def positive_float(s: str) -> float:
    """An argparse type: a finite number > 0."""
    try:
        v = float(s)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number, got {s!r}") from None
    if not (math.isfinite(v) and v > 0):
        raise argparse.ArgumentTypeError(f"expected a number > 0, got {s}")
    return v


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The options of ``charrnn bench``."""
    parser.add_argument("-B", "--batch-size", type=positive_int, default=BATCH_SIZE,
                        help=f"parallel streams B (default {BATCH_SIZE})")
    parser.add_argument("-H", "--hidden-size", type=positive_int, default=HIDDEN_SIZE,
                        help=f"hidden units H (default {HIDDEN_SIZE})")
    parser.add_argument("-T", "--seq-length", type=positive_int, default=SEQ_LENGTH,
                        help=f"steps per chunk T (default {SEQ_LENGTH})")
    parser.add_argument("-V", "--vocab-size", type=positive_int, default=VOCAB_SIZE,
                        help=f"vocabulary size V (default {VOCAB_SIZE}, tinyshakespeare's)")
    parser.add_argument("--cell", choices=CELLS, default="rnn",
                        help="the recurrent cell (default rnn)")
    parser.add_argument("--num-layers", type=positive_int, default=1, metavar="L",
                        help="layers of the cell (default 1)")
    parser.add_argument("--dropout", type=fraction, default=0.0, metavar="P",
                        help="dropout rate in training (default 0)")
    parser.add_argument("--dtype", choices=DTYPES, default=DTYPE)
    parser.add_argument("--threads", type=positive_int, default=THREADS,
                        help=f"BLAS threads, pinned with threadpoolctl (default {THREADS})")
    parser.add_argument("--backend", choices=("all", "cython", "numpy"), default="all",
                        help="which backends to time (default: every installed one)")
    parser.add_argument("--seconds", type=positive_float, default=SECONDS,
                        help=f"approximate total run time (default {SECONDS:g})")
    parser.add_argument("--no-sample", action="store_true",
                        help="time training only, not sampling")
    parser.add_argument("--json", action="store_true", help="print the result as JSON")


def quick_bench(B: int = BATCH_SIZE, H: int = HIDDEN_SIZE, T: int = SEQ_LENGTH,
                V: int = VOCAB_SIZE, dtype: str = DTYPE, threads: int = THREADS,
                backends: Sequence[str] = (), seconds: float = SECONDS,
                sample: bool = True, cell: str = "rnn", num_layers: int = 1,
                dropout: float = 0.0) -> dict[str, Any]:
    """Time training (and B = 1 sampling) of each backend at one size, interleaved.

    Returns a dict with the thread record, one summary per backend and task, and the
    paired ratio of each backend to the slowest-expected one (numpy) when both ran.
    """
    model = dict(cell=cell, num_layers=num_layers)
    backends = list(backends) or available_backends()
    rounds = ROUNDS
    tasks = 2 if sample else 1
    slot = seconds / (rounds + 1) / (len(backends) * tasks)  # +1: the warm-up
    result: dict[str, Any] = {"B": B, "H": H, "T": T, "V": V, "dtype": dtype,
                              **model, "dropout": dropout, "rounds": rounds}
    with pin_threads(threads) as rec:
        result["threads"] = {k: rec[k] for k in ("threads", "pinned", "blas_owners",
                                                 "scipy_blas_listed")}
        train = [CharrnnTrain(b, B, H, T, V, dtype, dropout=dropout, **model)
                 for b in backends]
        tt = measure(train, rounds, slot, slot)
        result["train"] = {t.name: t.summary() for t in tt}
        if sample:
            samp = [CharrnnSample(b, H, V, dtype, n_chars=200, **model) for b in backends]
            ts = measure(samp, rounds, slot, slot)
            result["sample"] = {t.name: t.summary() for t in ts}
    for task in ("train", "sample"):
        if task in result and {"charrnn-cython", "charrnn-numpy"} <= result[task].keys():
            tl = tt if task == "train" else ts
            by = {t.name: t for t in tl}
            result[f"{task}_cython_over_numpy"] = paired_ratio(by["charrnn-cython"],
                                                               by["charrnn-numpy"])
    return result


def _fmt(x: float) -> str:
    return f"{x:,.0f}"


def run(args: argparse.Namespace) -> int:
    """Run ``charrnn bench`` with parsed arguments; return the exit status."""
    if args.backend == "all":
        backends = available_backends()
    else:
        if args.backend not in available_backends():
            print(f"charrnn bench: error: backend {args.backend!r} is not available here "
                  f"(available: {', '.join(available_backends())})", file=sys.stderr)
            return 1
        backends = [args.backend]
    try:
        res = quick_bench(args.batch_size, args.hidden_size, args.seq_length,
                          args.vocab_size, args.dtype, args.threads, backends, args.seconds,
                          not args.no_sample, args.cell, args.num_layers, args.dropout)
    except (ValueError, TypeError, MemoryError) as e:
        print(f"charrnn bench: error: {e}", file=sys.stderr)
        return 1
    if args.json:
        print(json.dumps(res, indent=2))
        return 0
    th = res["threads"]
    pin = ("pinned" if th["pinned"] else "NOT pinned: install threadpoolctl")
    if "OPENBLAS_CORETYPE" in os.environ:
        print(f"note: OPENBLAS_CORETYPE={os.environ['OPENBLAS_CORETYPE']} forces OpenBLAS's "
              "kernel choice (unset it to let OpenBLAS detect this CPU)")
    drop = f", dropout {res['dropout']:g}" if res["dropout"] else ""
    print(f"charrnn bench: {res['cell']} x {res['num_layers']}{drop}, B={res['B']} "
          f"H={res['H']} T={res['T']} V={res['V']} {res['dtype']}, {th['threads']} BLAS thread(s) ({pin}), "
          f"median of {res['rounds']} interleaved rounds [min-max]")
    for task, label in (("train", f"training (B={res['B']})"), ("sample", "sampling (B=1)")):
        if task not in res:
            continue
        print(f"  {label}, chars/s:")
        for name, s in res[task].items():
            print(f"    {name:<16}{_fmt(s['median']):>14}   [{_fmt(s['min'])} - "
                  f"{_fmt(s['max'])}]")
        r = res.get(f"{task}_cython_over_numpy")
        if r:
            print(f"    cython / numpy: {r['median']:.2f}x [{r['min']:.2f} - {r['max']:.2f}]")
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m charrnn.bench``: the same as ``charrnn bench``."""
    parser = argparse.ArgumentParser(prog="charrnn bench",
                                     description="Quick training and sampling throughput "
                                                 "of the installed backends.")
    add_arguments(parser)
    return run(parser.parse_args(argv))


if __name__ == "__main__":
    sys.exit(main())
