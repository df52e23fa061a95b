"""Throughput measurement: the quick ``charrnn bench`` command and the timing code it shares
with the benchmark suite in ``benchmarks/``.

The method, in one place:

- pin every BLAS and OpenMP thread pool (threadpoolctl, which covers numpy's and scipy's
  separate OpenBLAS copies) and torch's own pool to the same thread count;
- warm each implementation up and calibrate how many calls fill a fixed wall time;
- run the implementations interleaved, round by round (the order rotates every round), so
  a slow spell of a shared machine hits them all alike;
- report the median and the range (min-max) of the rounds, and quote ratios paired round
  by round against a baseline measured in the same rounds;
- record the machine and the libraries next to the numbers.

The timed charrnn training step is the trainer's: the next chunk into preallocated int32
id buffers (``corpus.Batches``), then ``Optimizer.train_step``, one kernel call that runs
forward and BPTT with the state carried in place, the global norm, clipping and the
update over the flat ``theta``/``grad``, and the NaN/Inf guard on its result.
"""

from __future__ import annotations

import argparse
import contextlib
import gc
import json
import math
import os
import platform
import statistics
import sys
import time
import tracemalloc
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

import numpy as np

from .backend import available_backends
from .data.batches import Batches
from .model import CharRNN
from .optim import make_optimizer
from .data.vocab import id_dtype

DTYPES = ("float32", "float64")


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


def synthetic_ids(B: int, T: int, V: int, windows: int, seed: int) -> np.ndarray:
    """(B, windows*T + 1) int32 ids from a seeded generator: B streams of uniform ids."""
    rng = np.random.default_rng(seed)
    return rng.integers(0, V, size=(B, windows * T + 1), dtype=np.int32)


def id_windows(ids: np.ndarray, T: int) -> list[tuple[np.ndarray, np.ndarray]]:
    """The (inputs, targets) views of each step's window, made once so a step copies only."""
    B, n = ids.shape
    return [(ids[:, p:p + T], ids[:, p + 1:p + T + 1]) for p in range(0, n - T, T)]


class CharrnnTrain:
    """Training steps of a CharRNN as :class:`charrnn.trainer.Trainer` runs them (at a
    constant learning rate).

    One step: the next T ids of each of the B streams into preallocated int32 (B, T)
    buffers (``corpus.Batches.next_into``, the state zeroed when the walk restarts), then
    ``Optimizer.train_step``: forward + BPTT with the state carried in place, the global
    norm, clipping and the update in one kernel call; then the trainer's NaN/Inf guard.

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
        Steps per pass over the synthetic text (uniform random ids) before it restarts.
    seed : int
    """

    def __init__(self, backend: str, B: int, H: int, T: int, V: int = 65,
                 dtype: str = "float64", optimizer: str = "adagrad",
                 clip_kind: str | None = "value", clip: float = 5.0, windows: int = 16,
                 seed: int = 0) -> None:
        self.model = CharRNN(synthetic_vocab(V), H, dtype, seed=seed, backend=backend)
        self.K = self.model.kernels
        self.backend = self.model.backend
        self.name = f"charrnn-{self.backend}"
        self.dtype = np.dtype(dtype).name
        self.B, self.H, self.T, self.V = B, H, T, V
        self.chars_per_call = B * T
        self.opt = make_optimizer(optimizer, self.model.num_params, self.model.dtype)
        self.clip_kind, self.clip = clip_kind, float(clip)
        rng = np.random.default_rng(seed + 1)
        ids = rng.integers(0, V, size=B * (windows * T + 2)).astype(id_dtype(V))
        self.batches = Batches(ids, B, T)
        self.X = np.empty((B, T), np.int32)                  # the preallocated id buffers
        self.Y = np.empty((B, T), np.int32)
        self.h = np.zeros((B, H), self.model.dtype)          # carried state, updated in place
        self.model.workspace(B, T)                           # allocate scratch up front
        self.last_loss = math.nan

    def step(self) -> float:
        """One training step on the next chunk; returns the chunk's loss."""
        model, X, Y, h = self.model, self.X, self.Y, self.h
        with model._lock:
            if self.batches.next_into(X, Y):
                h.fill(0)                                    # a new pass: reset the state
            loss, norm = self.opt.train_step(model, X, Y, h, self.clip_kind, self.clip)
        if not (math.isfinite(loss) and math.isfinite(norm)):
            raise FloatingPointError(f"{self.name}: training diverged (loss {loss}, "
                                     f"gradient norm {norm})")
        return loss

    def run(self, n: int) -> None:
        step = self.step
        for _ in range(n):
            loss = step()
        if n:
            self.last_loss = loss


class CharrnnSample:
    """Sampling with the backend's ``sample`` kernel at B = 1, as ``charrnn sample`` does.

    Each call draws ``n_chars`` characters with uniforms drawn once up front (the kernel
    takes them as input), feeding back the last character and carrying the state.
    """

    def __init__(self, backend: str, H: int, V: int = 65, dtype: str = "float64",
                 n_chars: int = 1000, seed: int = 0) -> None:
        self.model = CharRNN(synthetic_vocab(V), H, dtype, seed=seed, backend=backend)
        self.K = self.model.kernels
        self.backend = self.model.backend
        self.name = f"charrnn-{self.backend}"
        self.dtype = np.dtype(dtype).name
        self.chars_per_call = n_chars
        rng = np.random.default_rng(seed + 2)
        self.uniforms = rng.random((n_chars, 1))             # (n, B=1) float64, preallocated
        self.h = np.zeros((1, H), self.model.dtype)
        self.first = np.zeros(1, np.int32)
        p = self.model.params
        self._args = (p["Wxh"], p["Whh"], p["Why"], p["bh"], p["by"])

    def run(self, n: int) -> None:
        sample, args, h, U = self.K.sample, self._args, self.h, self.uniforms
        for _ in range(n):
            out = sample(*args, h, self.first, U, 1.0, None)
            self.first[0] = out[-1, 0]


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


def call_time(fn: Callable[[], Any], rounds: int = 5, round_time: float = 0.05) -> float:
    """Median seconds per call of ``fn`` over ``rounds`` rounds of about ``round_time``."""
    return statistics.median(call_times(fn, rounds, round_time))


def call_times(fn: Callable[[], Any], rounds: int = 5, round_time: float = 0.05
               ) -> list[float]:
    """Seconds per call of ``fn`` in each of ``rounds`` rounds of about ``round_time``."""
    fn()
    n, dt = 1, 0.0
    while True:                                              # calibrate
        t0 = time.perf_counter()
        for _ in range(n):
            fn()
        dt = time.perf_counter() - t0
        if dt >= round_time / 4 or n >= 1 << 24:
            break
        n *= 4
    n = max(1, round(n * round_time / max(dt, 1e-9)))
    per = []
    for _ in range(rounds):
        t0 = time.perf_counter()
        for _ in range(n):
            fn()
        per.append((time.perf_counter() - t0) / n)
    return per


# ----------------------------------------------------------------------------- memory

def _rss_bytes() -> int:
    try:
        with open("/proc/self/statm") as f:
            return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    except (OSError, ValueError):
        import resource
        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


# A step's transient Python objects (argument-check tuples, array views, memoryviews, the
# returned float) come to about 3.5 KB whatever B, H, T; any scratch array would add its
# size on top, and the smallest one, the workspace's hidden states ((T+1)*B*H values),
# is larger than this even at B=1, H=100, T=25.
PY_OBJECTS_ALLOWANCE = 8192


def allocation_check(w: CharrnnTrain, steps: int = 1000, warmup_steps: int = 300
                     ) -> dict[str, Any]:
    """Does a training step allocate after warm-up? Runs ``steps`` steps twice.

    First under tracemalloc (which sees numpy's array buffers as well as Python objects):
    the traced memory retained after the steps (``traced_growth``) and the highest point
    above the start during them (``traced_peak_above_start``). Then without it, the
    process RSS before and after as many steps again. ``flat`` means nothing retained, no
    RSS growth, and a transient peak within :data:`PY_OBJECTS_ALLOWANCE` (no array
    allocated). The warm-up runs past 256 steps so counters such as the optimizer's step
    count have left CPython's small-int cache and are replaced in place of equal size.
    """
    w.run(warmup_steps)
    gc.collect()
    tracemalloc.start()
    w.run(warmup_steps)                                     # replace untraced objects
    # what the reading itself retains (the int it returns): measured around no steps
    null0, _ = tracemalloc.get_traced_memory()
    w.run(0)
    null1, _ = tracemalloc.get_traced_memory()
    tracemalloc.reset_peak()
    cur0, _ = tracemalloc.get_traced_memory()
    w.run(steps)
    cur1, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    gc.collect()
    rss0 = _rss_bytes()
    w.run(steps)
    rss1 = _rss_bytes()
    itemsize = np.dtype(w.dtype).itemsize
    res = {"impl": w.name, "B": w.B, "H": w.H, "T": w.T, "dtype": w.dtype, "steps": steps,
           "traced_growth": (cur1 - cur0) - (null1 - null0),
           "traced_peak_above_start": peak - cur0,
           "peak_allowance": PY_OBJECTS_ALLOWANCE,
           "rss_before": rss0, "rss_after": rss1, "rss_growth": rss1 - rss0,
           "array_bytes_BH": w.B * w.H * itemsize,
           "array_bytes_hs": (w.T + 1) * w.B * w.H * itemsize}
    res["flat"] = (res["traced_growth"] <= 0 and res["rss_growth"] <= 0
                   and res["traced_peak_above_start"] <= PY_OBJECTS_ALLOWANCE)
    return res


# ----------------------------------------------------------------------------- environment

def cpu_model() -> str:
    """The CPU model name from /proc/cpuinfo (or what ``platform`` knows)."""
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def _cpu_flags() -> list[str]:
    want = ("sse4_2", "avx", "avx2", "fma", "avx512f", "avx512vl", "avx512_bf16")
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("flags"):
                    have = set(line.split(":", 1)[1].split())
                    return [x for x in want if x in have]
    except OSError:
        pass
    return []


def _version(module: str) -> str | None:
    try:
        from importlib.metadata import version
        return version(module)
    except Exception:
        return None


# environment variables that change what the BLAS and OpenMP libraries do
ENV_PREFIXES = ("OPENBLAS_", "GOTO", "OMP_", "GOMP_", "KMP_", "MKL_", "BLIS_", "VECLIB_",
                "NPY_", "CHARRNN_")


def env_vars() -> dict[str, str]:
    """The threading and BLAS environment variables that are set, e.g. OPENBLAS_CORETYPE,
    which forces OpenBLAS's kernel instead of the one it would detect."""
    return {k: v for k, v in sorted(os.environ.items()) if k.startswith(ENV_PREFIXES)}


def environment() -> dict[str, Any]:
    """The machine and the libraries: CPU, cores, BLAS pools, versions, load average."""
    import scipy

    from . import _version as charrnn_version
    try:
        affinity = len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        affinity = None
    env: dict[str, Any] = {
        "date_utc": time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime()),
        "cpu_model": cpu_model(),
        "cpu_flags": _cpu_flags(),
        "logical_cpus": os.cpu_count(),
        "usable_cpus": affinity,
        "platform": platform.platform(),
        "python": platform.python_version(),
        "numpy": np.__version__,
        "scipy": scipy.__version__,
        "charrnn": charrnn_version.__version__,
        "charrnn_backends": available_backends(),
        "threadpoolctl": _version("threadpoolctl"),
        "matplotlib": _version("matplotlib"),
        "loadavg": list(os.getloadavg()) if hasattr(os, "getloadavg") else None,
        "env_vars": env_vars(),
        "blas": blas_pools(),
        "pinning": pinned_pools(),
    }
    torch = sys.modules.get("torch")
    if torch is not None:
        env["torch"] = torch.__version__
        info = {"default_threads": torch.get_num_threads(),
                "interop_threads": torch.get_num_interop_threads()}
        with contextlib.suppress(Exception):
            info["cpu_capability"] = torch.backends.cpu.get_cpu_capability()
        with contextlib.suppress(Exception):
            info["mkl"] = torch.backends.mkl.is_available()
        with contextlib.suppress(Exception):
            info["mkldnn"] = torch.backends.mkldnn.is_available()
        env["torch_info"] = info
    else:
        env["torch"] = None
    return env


# ----------------------------------------------------------------------------- CLI

def _positive_int(s: str) -> int:
    try:
        v = int(s)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected an integer, got {s!r}") from None
    if v < 1:
        raise argparse.ArgumentTypeError(f"expected an integer >= 1, got {v}")
    return v


def _positive_float(s: str) -> float:
    try:
        v = float(s)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number, got {s!r}") from None
    if not (math.isfinite(v) and v > 0):
        raise argparse.ArgumentTypeError(f"expected a number > 0, got {s}")
    return v


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The options of ``charrnn bench``."""
    parser.add_argument("-B", "--batch-size", type=_positive_int, default=32,
                        help="parallel streams B (default 32)")
    parser.add_argument("-H", "--hidden-size", type=_positive_int, default=256,
                        help="hidden units H (default 256)")
    parser.add_argument("-T", "--seq-length", type=_positive_int, default=50,
                        help="steps per chunk T (default 50)")
    parser.add_argument("-V", "--vocab-size", type=_positive_int, default=65,
                        help="vocabulary size V (default 65, tinyshakespeare's)")
    parser.add_argument("--dtype", choices=DTYPES, default="float32")
    parser.add_argument("--threads", type=_positive_int, default=1,
                        help="BLAS threads, pinned with threadpoolctl (default 1)")
    parser.add_argument("--backend", choices=("all", "cython", "numpy"), default="all",
                        help="which backends to time (default: every installed one)")
    parser.add_argument("--seconds", type=_positive_float, default=3.0,
                        help="approximate total run time (default 3)")
    parser.add_argument("--no-sample", action="store_true",
                        help="time training only, not sampling")
    parser.add_argument("--json", action="store_true", help="print the result as JSON")


def quick_bench(B: int = 32, H: int = 256, T: int = 50, V: int = 65,
                dtype: str = "float32", threads: int = 1, backends: Sequence[str] = (),
                seconds: float = 3.0, sample: bool = True) -> dict[str, Any]:
    """Time training (and B = 1 sampling) of each backend at one size, interleaved.

    Returns a dict with the thread record, one summary per backend and task, and the
    paired ratio of each backend to the slowest-expected one (numpy) when both ran.
    """
    backends = list(backends) or available_backends()
    rounds = 5
    tasks = 2 if sample else 1
    slot = seconds / (rounds + 1) / (len(backends) * tasks)  # +1: the warm-up
    result: dict[str, Any] = {"B": B, "H": H, "T": T, "V": V, "dtype": dtype,
                              "rounds": rounds}
    with pin_threads(threads) as rec:
        result["threads"] = {k: rec[k] for k in ("threads", "pinned", "blas_owners",
                                                 "scipy_blas_listed")}
        train = [CharrnnTrain(b, B, H, T, V, dtype) for b in backends]
        tt = measure(train, rounds, slot, slot)
        result["train"] = {t.name: t.summary() for t in tt}
        if sample:
            samp = [CharrnnSample(b, H, V, dtype, n_chars=200) for b in backends]
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
                          not args.no_sample)
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
    print(f"charrnn bench: B={res['B']} H={res['H']} T={res['T']} V={res['V']} "
          f"{res['dtype']}, {th['threads']} BLAS thread(s) ({pin}), "
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
