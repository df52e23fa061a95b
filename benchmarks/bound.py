"""The BLAS-shape bound: how fast a training step (or a sampled character) could be if
everything but its BLAS products were free.

For each configuration the products a step needs are listed with the shapes, transposes
and beta the compiled kernels use (csrc/_kernels.pyx, in row-major terms; for LSTM, GRU
and stacks of L layers, the products design.md section 2b fixes); each is timed
through scipy's own BLAS (``scipy.linalg.blas``, the OpenBLAS that ``cython_blas`` and so
the compiled kernels call) at the thread count in force, and

    bound = chars per step / sum over products of (count x seconds per call)

The cost of a call as such is measured with the same call on 1x1 operands, in the same
rounds, and subtracted round by round: the Python wrapper and BLAS's own entry (argument
checks, dispatch). So each product is charged for its arithmetic and memory traffic only,
and calling is free like everything else; at small sizes, where a 100x100 GEMV takes a
few tenths of a microsecond, that makes the bound a limit a kernel approaches only by
making fewer calls. Each GEMM is also timed with its output transposed (the same product
with the operand roles swapped, ``C.T = op(B).T @ op(A).T``); the faster of the two gives
the ``best_layout`` bound, a limit for a kernel free to pick its layouts. The 2048^3 GEMM
rate is reported as the machine's reference peak.

Two ways to the same number: :class:`BoundMeter` times each product on its own (the
breakdown), and :class:`BlasOnly` is a workload that issues a whole step's calls, timed
interleaved with the implementations so that fractions of the bound are paired ratios
from the same rounds (the reported bound).
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
from scipy.linalg import blas as fblas

from charrnn.bench import Timing
from charrnn.aligned import aligned_zeros
from charrnn.config import check_cell
from charrnn.layout import GATES, is_classic


@dataclass(frozen=True)
class Product:
    """One BLAS call of a step, row-major like the kernels: C (M, N) = op(A) @ op(B)
    (``gemm``, K inner) or y = op(A) @ x with A (M, N) (``gemv``: ``B`` names x, ``C``
    names y). ``A``, ``B``, ``C`` name the operand buffers: products of one step that
    name the same buffer share it, as the kernel's do (Whh in the recurrence and BPTT, Why
    in the output and dH), so the BLAS-only step has the kernel's memory footprint."""

    role: str
    kind: str
    transA: bool
    transB: bool
    M: int
    N: int
    K: int
    beta: float
    count: int
    A: str
    B: str
    C: str

    @property
    def flops(self) -> int:
        return 2 * self.M * self.N * (self.K if self.kind == "gemm" else 1)

    def shapes(self) -> dict[str, tuple[int, ...]]:
        """Row-major shapes of the operand buffers."""
        M, N, K = self.M, self.N, self.K
        if self.kind == "gemv":
            return {self.A: (M, N), self.B: (M,) if self.transA else (N,),
                    self.C: (N,) if self.transA else (M,)}
        return {self.A: (K, M) if self.transA else (M, K),
                self.B: (N, K) if self.transB else (K, N), self.C: (M, N)}




def _names(cell: str, L: int, l: int) -> dict[str, str]:
    """The operand buffers of layer ``l`` of an (L, cell) stack: the classic names for the
    1-layer vanilla RNN (Whh, hprev, h, Hs, dH, ...), else the same with the layer's
    number (Wh1, hprev1, ...). Row-major shapes (training, B streams, T steps):

    Hs (T*B, H) the layer's states, read as Hprev by dWh, by the layer above as its input
    and by the output layer; A (T*B, G*H) the input side of a layer l > 0; hprev (B, H),
    a (B, G*H) one step's recurrence (ah: the GRU's separate recurrent side); dH (T*B, H)
    the gradient reaching the states; dA (T*B, G*H) the pre-activations' (dAh: the GRU's
    recurrent side); da (B, G*H), dhnext (B, H) one step of BPTT; h (H,) a layer's state
    when sampling. ``layer`` is the suffix itself ("" for the classic).
    """
    classic = is_classic(cell, L)
    s = "" if classic else str(l)
    n = {k: k + s for k in ("Hs", "A", "h", "hprev", "a", "ah", "dH", "dA", "dAh", "da",
                            "dhnext")}
    n.update({"Wx": "Wxh", "Wh": "Whh"} if classic else {"Wx": f"Wx{l}", "Wh": f"Wh{l}"})
    n.update(dWx="d" + n["Wx"], dWh="d" + n["Wh"], layer=s)
    if cell == "rnn":                    # the pre-activation in the state's place, as the
        n["a"], n["dA"] = n["h"], n["dH"]    # kernels compute it
    if cell != "gru":                    # one pre-activation: the recurrence adds to it
        n["ah"], n["dAh"] = n["a"], n["dA"]
    return n


def _gates(cell: str) -> int:
    return GATES[check_cell(cell)]


def train_products(B: int, H: int, T: int, V: int, cell: str = "rnn",
                   num_layers: int = 1) -> list[Product]:
    """The BLAS calls of one training step of a stack of ``num_layers`` layers of
    ``cell`` (design.md section 2b), (B, T) chunk, G gate blocks per layer.

    Forward: layer 0's input side is a column gather (no BLAS); each layer above it one
    (T*B, H) x (H, G*H) GEMM; per step the recurrence (B, H) x (H, G*H) (a GEMV at B = 1);
    then one output GEMM over all T*B states of the top layer. Backward: the output
    layer's two GEMMs, then for each layer from the top the T-1 sequential BPTT products
    and dWh as one GEMM over all steps; a layer above the first adds its dWx and its
    input's gradient as one GEMM each (layer 0's dWx is a scatter-add, no BLAS).
    """
    G, L, N = _gates(cell), num_layers, T * B
    GH = G * H
    lay = [_names(cell, L, l) for l in range(L)]
    top = lay[-1]
    fwd: list[Product] = []
    bwd: list[Product] = []
    for l, n in enumerate(lay):
        # GRU: ah = hprev @ Wh.T + bh on its own; else a += hprev @ Wh.T onto the input side
        beta = 0.0 if cell == "gru" else 1.0
        op = "+=" if beta else "="
        if l > 0:
            below = lay[l - 1]
            # A = Hs_below @ Wx.T: the input side of all T steps at once
            fwd.append(Product(f"forward input {n['A']} = {below['Hs']} @ {n['Wx']}.T",
                               "gemm", False, True, N, GH, H, 0.0, 1,
                               below["Hs"], n["Wx"], n["A"]))
        if B == 1:
            # a (+)= Wh @ hprev, per step
            fwd.append(Product(f"forward recurrence {n['ah']} {op} {n['Wh']} @ {n['hprev']}",
                               "gemv", False, False, GH, H, 1, beta, T,
                               n["Wh"], n["hprev"], n["ah"]))
            # dhnext = Wh.T @ da, per step but the first
            bptt = Product(f"BPTT {n['dhnext']} = {n['Wh']}.T @ {n['da']}", "gemv", True,
                           False, GH, H, 1, 0.0, T - 1, n["Wh"], n["da"], n["dhnext"])
        else:
            # a (+)= hprev @ Wh.T, per step
            fwd.append(Product(f"forward recurrence {n['ah']} {op} {n['hprev']} @ {n['Wh']}.T",
                               "gemm", False, True, B, GH, H, beta, T,
                               n["hprev"], n["Wh"], n["ah"]))
            # dhnext = da @ Wh, per step but the first
            bptt = Product(f"BPTT {n['dhnext']} = {n['da']} @ {n['Wh']}", "gemm", False,
                           False, B, H, GH, 0.0, T - 1, n["da"], n["Wh"], n["dhnext"])
        s = n["layer"]
        layer = [bptt,
                 # dWh = sum_t dah_t.T @ h_{t-1}: one GEMM over all steps
                 Product(f"{n['dWh']} = dA{'h' if cell == 'gru' else ''}{s}.T @ Hprev{s}",
                         "gemm", True, False,
                         GH, H, N, 0.0, 1, n["dAh"], n["Hs"], n["dWh"])]
        if l > 0:
            below = lay[l - 1]
            # dWx = sum_t dax_t.T @ in_t: one GEMM over all steps
            layer.append(Product(f"{n['dWx']} = {n['dA']}.T @ {below['Hs']}", "gemm", True,
                                 False, GH, H, N, 0.0, 1, n["dA"], below["Hs"], n["dWx"]))
            # dH_below = dA @ Wx: the input's gradient, all steps at once
            layer.append(Product(f"{below['dH']} = {n['dA']} @ {n['Wx']}", "gemm", False,
                                 False, N, H, GH, 0.0, 1, n["dA"], n["Wx"], below["dH"]))
        bwd = layer + bwd                                 # BPTT runs from the top layer
    out = fwd + [
        # Z += Hs_top @ Why.T: all T steps' logits (the bias already in Z)
        Product(f"output Z += {top['Hs']} @ Why.T", "gemm", False, True, N, V, H, 1.0, 1,
                top["Hs"], "Why", "Z"),
        # dWhy = dZ.T @ Hs_top
        Product(f"dWhy = dZ.T @ {top['Hs']}", "gemm", True, False, V, H, N, 0.0, 1, "Z",
                top["Hs"], "dWhy"),
        # dH_top = dZ @ Why
        Product(f"{top['dH']} = dZ @ Why", "gemm", False, False, N, H, V, 0.0, 1, "Z", "Why",
                top["dH"]),
    ] + bwd
    return [p for p in out if p.count > 0]


def sample_products(H: int, V: int, B: int = 1, cell: str = "rnn",
                    num_layers: int = 1) -> list[Product]:
    """The BLAS calls of one sampling step of B streams (B characters) of a stack of
    ``num_layers`` layers of ``cell``: per layer the recurrence and, above the first, the
    input product, then the logits."""
    G, L = _gates(cell), num_layers
    GH = G * H
    lay = [_names(cell, L, l) for l in range(L)]
    beta = 0.0 if cell == "gru" else 1.0
    op = "+=" if beta else "="
    out: list[Product] = []
    for l, n in enumerate(lay):
        x = lay[l - 1]["h"] if l > 0 else None
        if B == 1:
            if x:
                # a = Wx @ h_below
                out.append(Product(f"input {n['a']} = {n['Wx']} @ {x}", "gemv", False, False,
                                   GH, H, 1, 0.0, 1, n["Wx"], x, n["a"]))
            # a (+)= Wh @ hprev
            out.append(Product(f"recurrence {n['ah']} {op} {n['Wh']} @ {n['hprev']}", "gemv",
                               False, False, GH, H, 1, beta, 1, n["Wh"], n["hprev"],
                               n["ah"]))
        else:
            if x:
                # a = h_below @ Wx.T
                out.append(Product(f"input {n['a']} = {x} @ {n['Wx']}.T", "gemm", False, True,
                                   B, GH, H, 0.0, 1, x, n["Wx"], n["a"]))
            # a (+)= hprev @ Wh.T
            out.append(Product(f"recurrence {n['ah']} {op} {n['hprev']} @ {n['Wh']}.T",
                               "gemm", False, True, B, GH, H, beta, 1, n["hprev"], n["Wh"],
                               n["ah"]))
    h = lay[-1]["h"]
    if B == 1:
        # z += Why @ h_top
        out.append(Product(f"logits z += Why @ {h}", "gemv", False, False, V, H, 1, 1.0, 1,
                           "Why", h, "z"))
    else:
        # z += h_top @ Why.T
        out.append(Product(f"logits z += {h} @ Why.T", "gemm", False, True, B, V, H, 1.0, 1,
                           h, "Why", "z"))
    return out


def forward_products(B: int, H: int, T: int, V: int, cell: str = "rnn",
                     num_layers: int = 1) -> list[Product]:
    """The BLAS calls of the forward-only ``loss`` kernel on a (B, T) chunk (scoring and
    validation): the stack's forward products, then one output GEMM."""
    return [p for p in train_products(B, H, T, V, cell, num_layers)
            if p.role.startswith(("forward", "output"))]


def _blas(kind: str, dtype):
    f32 = np.dtype(dtype) == np.float32
    if kind == "gemm":
        return fblas.sgemm if f32 else fblas.dgemm
    return fblas.sgemv if f32 else fblas.dgemv


class StepOperands:
    """The operand buffers of a list of products (row-major, C-contiguous, shared by
    name) and zero-copy scipy calls on them.

    A row-major (r, c) buffer is the column-major (c, r) matrix ``buf.T``, so the row-major
    C = op(A) @ op(B) is the column-major call C.T = op(B).T @ op(A).T on ``B.T, A.T, C.T``,
    the same swap ``csrc/_blas.pxd`` makes.
    """

    def __init__(self, products: list[Product], dtype, seed: int = 0) -> None:
        rng = np.random.default_rng(seed)
        self.dtype = np.dtype(dtype)
        self.buf: dict[str, np.ndarray] = {}
        for p in products:
            for name, shape in p.shapes().items():
                if name not in self.buf:
                    # on 64-byte boundaries, as the kernels' buffers are: a GEMV is
                    # slower on a matrix that is not (NOTES.md, attempt 7)
                    self.buf[name] = self._zeros(shape)
                    self.buf[name][...] = rng.standard_normal(shape) * 0.01
                elif self.buf[name].shape != shape:
                    raise ValueError(f"operand {name} used with shapes "
                                     f"{self.buf[name].shape} and {shape}")

    def _zeros(self, shape: tuple[int, ...]) -> np.ndarray:
        return aligned_zeros(int(np.prod(shape)), self.dtype).reshape(shape)

    def call(self, p: Product):
        """The call as the kernel issues it."""
        f, A, Bx, C = _blas(p.kind, self.dtype), self.buf[p.A], self.buf[p.B], self.buf[p.C]
        beta = p.beta
        if p.kind == "gemv":
            # row-major A (M, N) is column-major A.T (N, M): A @ x is its 'T' product
            At, t = A.T, int(not p.transA)

            def call():
                f(1.0, At, Bx, beta, C, 0, 1, 0, 1, t, 1)
            return call
        Bt, At, Ct, ta, tb = Bx.T, A.T, C.T, int(p.transB), int(p.transA)

        def call():
            f(1.0, Bt, At, beta, Ct, ta, tb, 1)
        return call

    def transposed_call(self, p: Product):
        """The same GEMM with its output stored transposed: row-major
        C.T (N, M) = op(B).T @ op(A).T, i.e. column-major op(A) @ op(B) into a fresh C."""
        f, A, Bx = _blas(p.kind, self.dtype), self.buf[p.A], self.buf[p.B]
        out = self.buf.setdefault(p.C + ".T", self._zeros((p.N, p.M)))
        Ct = out.T                                            # column-major (M, N)
        At, Bt, ta, tb, beta = A.T, Bx.T, int(not p.transA), int(not p.transB), p.beta

        def call():
            f(1.0, At, Bt, beta, Ct, ta, tb, 1)
        return call


def _null_call(kind: str, dtype):
    """A 1x1 call: the wrapper's cost alone."""
    one = Product("null", kind, False, False, 1, 1, 1, 0.0, 1, "a", "b", "c")
    return StepOperands([one], dtype).call(one)


class BlasOnly:
    """Benchmark workload: ``run(n)`` issues n steps' worth of BLAS calls and nothing else.

    Timed interleaved with the implementations, its rate is the BLAS-shape bound measured
    in the same rounds, so each implementation's fraction of the bound is a paired ratio.
    With ``null=True`` it issues the same number of calls on 1x1 operands instead: the
    wrapper's cost alone, timed in the same rounds and subtracted round by round, as if
    the calls were issued from C.
    """

    def __init__(self, products: list[Product], dtype, chars_per_step: int,
                 null: bool = False) -> None:
        self.name = "blas-null" if null else "blas-bound"
        self.dtype = np.dtype(dtype).name
        self.chars_per_call = chars_per_step
        ops = StepOperands(products, dtype)
        self._calls = [(_null_call(p.kind, dtype) if null else ops.call(p), p.count)
                       for p in products]

    def run(self, n: int) -> None:
        for _ in range(n):
            for call, count in self._calls:
                for _ in range(count):
                    call()


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


def subtract_null(blas: Timing, null: Timing) -> None:
    """Set the BLAS workload's per-round overhead: the null workload's time per step in
    the same round times the BLAS workload's steps in it."""
    blas.overhead_seconds = [sn / null.calls * blas.calls for sn in null.seconds]


def paired_net_time(call, null, rounds: int, round_time: float) -> dict[str, float]:
    """Seconds per call of ``call`` less the wrapper's (``null``), paired round by round:
    both timed in each round, the median of the per-round differences (at least 10% of
    the call's own time, since both are measurements)."""
    n = max(1, round(round_time / min(call_times(call, 1, round_time / 4))))
    m = max(1, round(round_time / min(call_times(null, 1, round_time / 4))))
    raw, net = [], []
    for _ in range(rounds):
        t0 = time.perf_counter()
        for _ in range(n):
            call()
        r = (time.perf_counter() - t0) / n
        t0 = time.perf_counter()
        for _ in range(m):
            null()
        o = (time.perf_counter() - t0) / m
        raw.append(r)
        net.append(max(r - o, 0.1 * r))
    return {"raw_s": statistics.median(raw), "net_s": statistics.median(net)}


class BoundMeter:
    """Times the products of a step one by one at the thread count in force, each paired
    round by round with a 1x1 call whose time (the wrapper's) is subtracted.

    Create one per thread count (the rates depend on it).
    """

    def __init__(self, threads: int, rounds: int = 5, round_time: float = 0.02) -> None:
        self.threads, self.rounds, self.round_time = threads, rounds, round_time

    def _time(self, p: Product, call, dtype) -> dict[str, float]:
        t = paired_net_time(call, _null_call(p.kind, dtype), self.rounds, self.round_time)
        return {**t, "gflops": p.flops / t["net_s"] / 1e9}

    def time(self, p: Product, dtype, ops: StepOperands | None = None) -> dict[str, Any]:
        """Seconds per call of ``p`` as the kernel issues it (and transposed, for GEMMs),
        on the operands ``ops`` (fresh ones if None)."""
        ops = StepOperands([p], dtype) if ops is None else ops
        rec: dict[str, Any] = {"as_kernel": self._time(p, ops.call(p), dtype)}
        if p.kind == "gemm":
            rec["transposed"] = self._time(p, ops.transposed_call(p), dtype)
        return rec

    def bound(self, products: list[Product], dtype, chars_per_step: int) -> dict[str, Any]:
        """The bound in chars/s from the products timed separately, and the breakdown."""
        ops = StepOperands(products, dtype)
        rows, total, best = [], 0.0, 0.0
        for p in products:
            t = self.time(p, dtype, ops)
            k = t["as_kernel"]["net_s"]
            b = min(k, t["transposed"]["net_s"]) if "transposed" in t else k
            total += p.count * k
            best += p.count * b
            rows.append({**asdict(p), "flops": p.flops, "timing": t,
                         "step_share_s": p.count * k})
        return {"threads": self.threads, "dtype": np.dtype(dtype).name,
                "chars_per_step": chars_per_step, "blas_s_per_step": total,
                "bound": chars_per_step / total,
                "best_layout_bound": chars_per_step / best,
                "step_gflops": sum(p.count * p.flops for p in products) / total / 1e9,
                "products": rows}


def train_bound(meter: BoundMeter, B: int, H: int, T: int, V: int, dtype,
                cell: str = "rnn", num_layers: int = 1) -> dict[str, Any]:
    """The BLAS-shape bound of a (B, H, T) training step: B*T chars per step."""
    return {"B": B, "H": H, "T": T, "V": V, "cell": cell, "num_layers": num_layers,
            **meter.bound(train_products(B, H, T, V, cell, num_layers), dtype, B * T)}


def sample_bound(meter: BoundMeter, H: int, V: int, dtype, cell: str = "rnn",
                 num_layers: int = 1) -> dict[str, Any]:
    """The BLAS-shape bound of sampling at B = 1: one char per step."""
    return {"B": 1, "H": H, "V": V, "cell": cell, "num_layers": num_layers,
            **meter.bound(sample_products(H, V, 1, cell, num_layers), dtype, 1)}


def gemm_peak(n: int, dtype, rounds: int = 3) -> dict[str, Any]:
    """GFLOP/s of an n x n x n GEMM through scipy's BLAS (median of ``rounds`` calls)."""
    p = Product("peak", "gemm", False, False, n, n, n, 0.0, 1, "A", "B", "C")
    call = StepOperands([p], dtype).call(p)
    call()
    times = []
    for _ in range(rounds):
        t0 = time.perf_counter()
        call()
        times.append(time.perf_counter() - t0)
    flops = 2 * n ** 3
    return {"n": n, "dtype": np.dtype(dtype).name,
            "median_gflops": flops / statistics.median(times) / 1e9,
            "min_gflops": flops / max(times) / 1e9, "max_gflops": flops / min(times) / 1e9}
