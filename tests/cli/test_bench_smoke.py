"""The benchmark harness keeps working: a smoke run of the suite at tiny sizes, the quick
``charrnn bench``, the allocation check, and the peers computing the same loss.

No timing assertions: the speed of anything is the suite's business, not the tests'.
"""

from __future__ import annotations

import json
import math
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import charrnn
from charrnn import bench
from conftest import BENCH_DIR, compiled_kernels
from conftest import benchmark_module as _import

IMPLS = ("compiled", "numpy", "classic", "torch")

pytestmark = pytest.mark.skipif(not (BENCH_DIR / "run.py").is_file(),
                                reason="benchmarks/ is not beside the tests")


@pytest.fixture(scope="module")
def smoke(tmp_path_factory):
    """One smoke run of the suite in a subprocess (cwd outside the checkout)."""
    tmp = tmp_path_factory.mktemp("bench")
    out = tmp / "out"
    doc = tmp / "RESULTS.md"
    r = subprocess.run([sys.executable, str(BENCH_DIR / "run.py"), "--smoke",
                        "--allow-unpinned", "--quiet", "--out", str(out),
                        "--results-md", str(doc)],
                       cwd=tmp, capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr
    res = json.loads((out / "results.json").read_text())
    return res, (out / "results.md").read_text(), doc.read_text(), out


def _finite_positive(x) -> bool:
    return isinstance(x, (int, float)) and math.isfinite(x) and x > 0


def test_smoke_json_has_every_case_and_implementation(smoke):
    res, _, _, _ = smoke
    # the 1-layer vanilla RNN on every config and dtype, then every other model (cells x
    # depths) on the cell configs in float32
    others = [(cell, L) for cell in ("rnn", "lstm", "gru") for L in (1, 2)][1:]
    assert [(c["B"], c["H"], c["T"], c["dtype"], c["cell"], c["num_layers"])
            for c in res["train"]] == [
        (1, 8, 4, "float32", "rnn", 1), (1, 8, 4, "float64", "rnn", 1),
        (2, 8, 4, "float32", "rnn", 1), (2, 8, 4, "float64", "rnn", 1)] + [
        (2, 8, 4, "float32", cell, L) for cell, L in others]
    assert [(c["H"], c["dtype"], c["cell"], c["num_layers"]) for c in res["sample"]] == [
        (8, "float32", "rnn", 1), (8, "float64", "rnn", 1)] + [
        (8, "float32", cell, L) for cell, L in others]
    for c in res["train"] + res["sample"]:
        assert c["threads"] == 1
        for impl in IMPLS:                       # measured, or skipped with a reason
            assert (impl in c["results"]) != (impl in c["skipped"]), (impl, c["skipped"])
            if impl in c["skipped"]:
                assert c["skipped"][impl].strip()
        for impl, r in c["results"].items():
            assert r["rounds"] == 2 and len(r["round_rates"]) == 2
            assert all(_finite_positive(x) for x in r["round_rates"])
            assert r["min"] <= r["median"] <= r["max"]
            assert set(r["vs"]) == {"classic", "torch"} & set(c["results"])
            for ratio in r["vs"].values():
                assert ratio["min"] <= ratio["median"] <= ratio["max"]
            if r["dtype"] == c["dtype"]:
                assert _finite_positive(r["fraction_of_bound"]["median"])
            else:                                # the classic in a float32 case
                assert impl == "classic" and r["dtype"] == "float64"
                assert r["fraction_of_bound"] is None
        assert _finite_positive(c["bound"]["median"])
        assert c["bound"]["products"]
    for c in res["train"]:
        assert ("classic" in c["skipped"]) == (c["B"] != 1)
    compiled = "cython" in charrnn.available_backends()
    assert all(("compiled" in c["results"]) == compiled for c in res["train"])


def test_smoke_records_environment_and_pinning(smoke):
    res, _, _, _ = smoke
    env = res["environment"]
    for key in ("cpu_model", "python", "numpy", "scipy", "charrnn", "blas", "loadavg"):
        assert key in env
    assert env["charrnn"] == charrnn.__version__
    (pin,) = res["pinning"]
    assert pin["threads"] == 1
    if pin["pinned"]:                           # threadpoolctl installed: both OpenBLAS copies
        assert pin["scipy_blas_listed"]
        assert {p["num_threads"] for p in pin["pools"]} == {1}
    assert len(res["gemm_peak"]) == 2 and all(_finite_positive(g["median_gflops"])
                                              for g in res["gemm_peak"])
    assert [t["case"] for t in res["targets"]][-1] == "allocations"


def test_smoke_markdown_chart_and_results_document(smoke):
    res, md, doc, out = smoke
    for heading in ("## Targets", "## Training throughput", "## Sampling throughput",
                    "## BLAS-shape bound", "## Allocation check", "## Environment"):
        assert heading in md
    for label in ("charrnn compiled", "charrnn NumPy", "classic min-char-rnn", "PyTorch",
                  "BLAS-shape bound"):
        assert label in md
    training = md[md.index("## Training throughput"):md.index("## Sampling throughput")]
    rows = [l for l in training.splitlines() if l.startswith("| 1,8,4 | float64 | 1 |")]
    assert len(rows) == 5                        # four implementations and the bound
    assert "--smoke" in doc and res["command"] in doc and md in doc
    if "path" in res["chart"]:
        png = Path(res["chart"]["path"])
        assert png == out / "throughput.png"
        assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    else:
        assert "matplotlib" in res["chart"]["skipped"]


def test_suite_usage_errors_exit_2(tmp_path):
    for bad in (["--configs", "1,2"], ["--rounds", "0"], ["--dtypes", "float16"]):
        r = subprocess.run([sys.executable, str(BENCH_DIR / "run.py"), *bad],
                           cwd=tmp_path, capture_output=True, text=True, timeout=60)
        assert r.returncode == 2, bad
        assert "error:" in r.stderr and "Traceback" not in r.stderr


# ----------------------------------------------------------------------------- the peers

def test_classic_transcription_computes_charrnns_loss_and_gradients():
    classic = _import("classic")
    net = classic.MinCharRNN("".join(chr(97 + i) for i in range(7)) * 3, hidden_size=12,
                             seq_length=6, seed=3)
    net.bh[:] = np.linspace(-0.1, 0.1, 12)[:, None]
    inputs, targets = [0, 3, 6, 2, 2, 5], [3, 6, 2, 2, 5, 1]
    hprev = np.linspace(-0.5, 0.5, 12)[:, None]
    loss, dWxh, dWhh, dWhy, dbh, dby, hlast = net.lossFun(inputs, targets, hprev)

    model = charrnn.CharRNN("abcdefg", 12, "float64", backend="numpy")
    for name in ("Wxh", "Whh", "Why"):
        model.params[name][...] = getattr(net, name)
    model.params["bh"][...] = net.bh[:, 0]
    ref_loss, g, h = model.loss_and_grads(inputs, targets, hprev[:, 0])
    assert np.abs(np.concatenate([d.ravel() for d in (dWxh, dWhh, dWhy)])).max() < 5
    assert loss == pytest.approx(ref_loss, rel=1e-12)
    for name, d in (("Wxh", dWxh), ("Whh", dWhh), ("Why", dWhy)):
        np.testing.assert_allclose(d, g[name], rtol=1e-10, atol=1e-14)
    np.testing.assert_allclose(dbh[:, 0], g["bh"], rtol=1e-10, atol=1e-14)
    np.testing.assert_allclose(dby[:, 0], g["by"], rtol=1e-10, atol=1e-14)
    np.testing.assert_allclose(hlast[:, 0], h, rtol=1e-12)


def test_classic_training_and_sampling_workloads_run():
    classic = _import("classic")
    w = classic.ClassicTrain(H=8, T=5, V=11)
    assert w.net.vocab_size == 11 and w.chars_per_call == 5
    w.run(3)
    assert w.net.n == 3 and w.net.p == 15
    s = classic.ClassicSample(H=8, V=11, n_chars=7)
    s.run(2)
    assert 0 <= s.ix < 11


def test_torch_peer_computes_charrnns_loss():
    torch_peer = _import("torch_peer")
    if not torch_peer.available():
        pytest.skip(torch_peer.IMPORT_ERROR)
    torch = torch_peer.torch
    B, T, H, V = 3, 5, 10, 9
    model = charrnn.CharRNN("".join(chr(65 + i) for i in range(V)), H, "float64", seed=1,
                            backend="numpy")
    model.params["bh"][...] = 0.05
    model.params["by"][...] = np.linspace(-0.2, 0.2, V)
    rng = np.random.default_rng(0)
    X, Y = rng.integers(0, V, (B, T)), rng.integers(0, V, (B, T))
    h0 = rng.standard_normal((B, H)) * 0.1
    ref, grads, hlast = model.loss_and_grads(X, Y, h0)
    rnn, out = torch_peer.make_model(V, H, "float64")
    torch_peer.load_params(rnn, out, model.layout, model.theta)
    loss, h = torch_peer.chunk_loss(rnn, out, torch.from_numpy(X.T.copy()),
                                    torch.from_numpy(Y.T.copy()),
                                    torch.from_numpy(h0)[None])
    loss.backward()
    assert loss.item() == pytest.approx(ref, rel=1e-12)
    np.testing.assert_allclose(h[0].detach().numpy(), hlast, rtol=1e-12)
    np.testing.assert_allclose(rnn.weight_hh_l0.grad.numpy(), grads["Whh"], rtol=1e-9,
                               atol=1e-14)
    np.testing.assert_allclose(out.weight.grad.numpy(), grads["Why"], rtol=1e-9, atol=1e-14)


# ----------------------------------------------------------------------------- charrnn bench

def test_quick_bench_json(capsys):
    rc = bench.main(["-B", "2", "-H", "8", "-T", "4", "--seconds", "0.3", "--json"])
    assert rc == 0
    res = json.loads(capsys.readouterr().out)
    assert (res["B"], res["H"], res["T"], res["dtype"]) == (2, 8, 4, "float32")
    names = {f"charrnn-{b}" for b in charrnn.available_backends()}
    assert set(res["train"]) == names and set(res["sample"]) == names
    for task in ("train", "sample"):
        for s in res[task].values():
            assert s["rounds"] == 5 and _finite_positive(s["median"])
    assert ("train_cython_over_numpy" in res) == ("charrnn-cython" in names)


def test_quick_bench_table_and_usage_errors(capsys):
    assert bench.main(["-B", "1", "-H", "8", "-T", "3", "--seconds", "0.2", "--backend",
                       "numpy", "--no-sample", "--dtype", "float64"]) == 0
    out = capsys.readouterr().out
    assert "charrnn-numpy" in out and "sampling" not in out and "float64" in out
    for bad in (["-B", "0"], ["--seconds", "-1"], ["--dtype", "float16"], ["-H", "x"]):
        with pytest.raises(SystemExit) as e:
            bench.main(bad)
        assert e.value.code == 2
        assert "error:" in capsys.readouterr().err


def test_pin_threads_limits_both_openblas_copies():
    pytest.importorskip("threadpoolctl")
    with pytest.raises(ValueError):
        with bench.pin_threads(0):
            pass
    with bench.pin_threads(1) as rec:
        assert rec["pinned"] and rec["numpy_blas_listed"] and rec["scipy_blas_listed"]
        assert all(p["num_threads"] == 1 for p in bench.blas_pools())


def test_compiled_step_allocates_nothing_after_warm_up():
    compiled_kernels()
    w = bench.CharrnnTrain("cython", 2, 16, 5, 17, "float32")
    r = _import("allocations").allocation_check(w, steps=100, warmup_steps=300)
    assert r["traced_growth"] <= 0 and r["rss_growth"] <= 0
    assert r["traced_peak_above_start"] <= r["peak_allowance"]
    assert r["flat"]


class _StackSteps:
    """Raw compiled training steps of a stack with dropout, in the shape
    ``allocation_check`` runs (the masks drawn once: a trainer draws them into an array
    of its own)."""

    def __init__(self, cell, L, B, H, T, V, dtype):
        from charrnn import Workspace
        from conftest import make_ids, make_masks, make_stack, make_state
        self.K = compiled_kernels()
        self.name, self.B, self.H, self.T, self.dtype = f"cython-{cell}{L}", B, H, T, dtype
        self.layout, self.w = make_stack(cell, L, H, V, dtype)
        self.g, self.m = self.layout.zeros(), self.layout.zeros()
        self.X, self.Y = make_ids(B, T, V)
        self.h = make_state(self.layout, B)
        self.ws = Workspace.for_layout(self.layout, B, T)
        self.masks = make_masks(self.layout, B, T)
        self.state, self.hyper = (self.m,), (1e-8,)

    def run(self, n):
        for _ in range(n):
            self.K.train_step(self.layout, self.w, self.g, self.X, self.Y, self.h, self.ws,
                              "adagrad", self.state, 0.01, self.hyper, 5.0, 1.0, self.masks)


@pytest.mark.parametrize("cell,L", [("lstm", 2), ("gru", 1)])
def test_compiled_stack_step_allocates_nothing_after_warm_up(cell, L):
    w = _StackSteps(cell, L, 2, 16, 5, 17, "float32")
    r = _import("allocations").allocation_check(w, steps=100, warmup_steps=300)
    assert r["traced_growth"] <= 0 and r["rss_growth"] <= 0
    assert r["traced_peak_above_start"] <= r["peak_allowance"]
    assert r["flat"]


def test_allocation_check_sees_numpy_backend_temporaries():
    w = bench.CharrnnTrain("numpy", 2, 64, 5, 65, "float64")
    r = _import("allocations").allocation_check(w, steps=5, warmup_steps=3)
    # the NumPy optimizer update clips into a copy of the gradient: one array per step
    assert r["traced_peak_above_start"] >= w.model.num_params * 8
    assert not r["flat"]


def test_paired_ratio_and_measure_interleave():
    calls = []

    class W:
        dtype, chars_per_call = "float64", 10

        def __init__(self, name):
            self.name = name

        def run(self, n):
            calls.append((self.name, n))

    ws = [W("a"), W("b"), W("c")]
    ts = bench.measure(ws, rounds=3, round_time=1e-4, warmup=0)
    timed = [c for c in calls if c[1] == ts[0].calls or c[1] in (t.calls for t in ts)]
    order = [name for name, _ in calls[-9:]]
    assert order == ["a", "b", "c", "b", "c", "a", "c", "a", "b"]   # rotated each round
    assert timed and all(len(t.seconds) == 3 for t in ts)
    r = bench.paired_ratio(ts[0], ts[0])
    assert r == {"median": 1.0, "min": 1.0, "max": 1.0}


# ----------------------------------------------------------------------------- the bound

@pytest.mark.parametrize("B", [1, 3])
@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_bound_calls_compute_the_kernels_products(B, dtype):
    """Each scipy call of the BLAS-shape bound computes its row-major product (with its
    beta), and the transposed variant computes the same product stored transposed."""
    bound = _import("bound")
    products = bound.train_products(B, 6, 4, 5) + bound.sample_products(6, 5)
    assert [p.count for p in products[:6]] == [4, 1, 1, 1, 3, 1]
    tol = 1e-5 if dtype == "float32" else 1e-12
    for p in products:
        ops = bound.StepOperands([p], dtype, seed=1)
        A, X, C0 = ops.buf[p.A], ops.buf[p.B], ops.buf[p.C].copy()
        product = (A.T if p.transA else A) @ ((X.T if p.transB else X)
                                              if p.kind == "gemm" else X)
        ops.call(p)()
        np.testing.assert_allclose(ops.buf[p.C], product + p.beta * C0, rtol=tol,
                                   atol=tol * 1e-3, err_msg=p.role)
        if p.kind == "gemm":
            ops.transposed_call(p)()
            np.testing.assert_allclose(ops.buf[p.C + ".T"], product.T, rtol=tol,
                                       atol=tol * 1e-3, err_msg=p.role)


def test_step_operands_are_shared_like_the_kernels():
    bound = _import("bound")
    ops = bound.StepOperands(bound.train_products(4, 8, 3, 5), "float32")
    assert sorted(ops.buf) == sorted(["hprev", "Whh", "h", "Hs", "Why", "Z", "dWhy", "dH",
                                      "da", "dhnext", "dWhh"])
    assert ops.buf["Whh"].shape == (8, 8) and ops.buf["Hs"].shape == (12, 8)


def test_step_operands_start_on_64_byte_boundaries():
    """As the kernels' buffers do, so the bound is a limit for them (a 100x100 float64
    GEMV is about 20% slower on a matrix that does not start on a 32-byte boundary)."""
    bound = _import("bound")
    for dtype in ("float32", "float64"):
        ops = bound.StepOperands(bound.train_products(1, 7, 3, 5), dtype)
        for name, a in ops.buf.items():
            assert a.__array_interface__["data"][0] % 64 == 0, (dtype, name)


def test_gemv_alignment_script_runs():
    r = subprocess.run([sys.executable, str(BENCH_DIR / "gemv_alignment.py"), "-H", "8",
                        "--rounds", "1", "--round-time", "0.001"],
                       capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    rows = [ln.split("|") for ln in r.stdout.splitlines() if ln.startswith("| float")]
    assert [row[1].strip() for row in rows] == ["float64"] * 8 + ["float32"] * 8
    assert all(float(row[3]) > 0 and float(row[4]) > 0 for row in rows)
