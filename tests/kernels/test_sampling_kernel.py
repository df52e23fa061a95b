"""The sampling kernel: inverse-CDF draws, temperature, top-k, and the state it advances.

Everything is checked against an independent float64 recomputation in this file:
h' = tanh(Wxh[:, x] + Whh @ h + bh), z = Why @ h' + by, p = softmax(z / temperature)
restricted to the top k, and the drawn id is the first i with cumsum(p)[i] > u.
"""

from __future__ import annotations

import numpy as np
import pytest
from scipy import stats

import charrnn
import charrnn.kernels.checks
from conftest import cast_params, flat, make_params

H, V = 24, 13


def _params(dtype, seed=0, scale=1.0):
    P = make_params(H, V, np.float64, "trained", seed=seed)
    P["Why"] *= scale
    return cast_params(P, dtype)


def _sample(K, P, h, first, U, temperature=1.0, top_k=None):
    return K.sample(*flat(P), h, first, U, temperature, top_k)


def _step(P, h, x):
    """One step in float64: the next state (B, H) and the logits (B, V)."""
    P = {k: v.astype(np.float64) for k, v in P.items()}
    h = np.tanh(P["Wxh"][:, x].T + np.asarray(h, np.float64) @ P["Whh"].T + P["bh"])
    return h, h @ P["Why"].T + P["by"]


def _probs(z, temperature, k):
    """softmax(z / temperature) over the k largest z (all when k is None), float64."""
    s = z / temperature
    e = np.exp(s - s.max())
    if k is not None:
        e[np.argsort(-z, kind="stable")[k:]] = 0
    return e / e.sum()


def _first_state(B, dtype, seed=1):
    rng = np.random.default_rng(seed)
    h = np.tanh(rng.standard_normal((B, H))).astype(dtype)
    first = rng.integers(0, V, B).astype(np.int32)
    return h, first


def _tol(dtype):
    return 1e-12 if dtype == np.float64 else 2e-5


# ----------------------------------------------------------------------------- twins agree

@pytest.mark.parametrize("B", [1, 5])
@pytest.mark.parametrize("temperature,top_k", [(1.0, None), (0.7, None), (2.0, 3), (1.0, 1),
                                               (0.0, None)])
def test_backends_draw_identical_ids(compiled, B, temperature, top_k):
    """float64: the same uniforms give exactly the same ids, and the same final state."""
    NP = charrnn.get_kernels("numpy")
    P = _params(np.float64, seed=2)
    h0, first = _first_state(B, np.float64, seed=3)
    U = np.random.default_rng(4).random((150, B))
    hc, hn = h0.copy(), h0.copy()
    ids_c = _sample(compiled, P, hc, first, U, temperature, top_k)
    ids_n = _sample(NP, P, hn, first, U, temperature, top_k)
    assert ids_c.dtype == np.int32 and ids_c.shape == (150, B)
    np.testing.assert_array_equal(ids_c, ids_n)
    np.testing.assert_allclose(hc, hn, rtol=1e-12, atol=1e-14)
    assert not np.array_equal(hc, h0)                           # the state did move
    # and the draws are not degenerate: several distinct ids per stream unless argmax/k=1
    if temperature > 0 and top_k != 1:
        assert len(np.unique(ids_c)) > 3


def test_backends_float32_agree_on_the_first_draws(compiled):
    """float32: same uniforms, same ids step by step (checked one step at a time, so a
    single near-boundary uniform cannot desynchronise the streams)."""
    NP = charrnn.get_kernels("numpy")
    P = _params(np.float32, seed=5)
    h, first = _first_state(6, np.float32, seed=6)
    U = np.random.default_rng(7).random((40, 6))
    hc, hn, same = h.copy(), h.copy(), 0
    for i in range(40):
        a = _sample(compiled, P, hc, first, U[i:i + 1])
        b = _sample(NP, P, hn, first, U[i:i + 1])
        np.testing.assert_allclose(hc, hn, rtol=1e-5, atol=1e-6)
        same += int(np.sum(a == b))
        first = a[0]
        hn[:] = hc
    assert same >= 0.98 * 40 * 6


# ----------------------------------------------------------------------------- the draw

@pytest.mark.parametrize("temperature,top_k", [(1.0, None), (0.5, None), (3.0, None),
                                               (1.5, 4), (1.0, V)])
def test_ids_follow_the_inverse_cdf(backend, dtype, temperature, top_k):
    """One step at a time: the state is advanced in place to tanh(...), and the id is the
    first i with cumsum(p)[i] > u, for p recomputed here from the kernel's new state."""
    K = charrnn.get_kernels(backend)
    B = 4
    P = _params(dtype, seed=8)
    h, x = _first_state(B, dtype, seed=9)
    rng = np.random.default_rng(10)
    tol = _tol(dtype)
    checked = 0
    for _ in range(60):
        u = rng.random((1, B))
        h_prev = h.copy()
        ids = _sample(K, P, h, x, u, temperature, top_k)
        h_ref, z = _step(P, h_prev, x)
        np.testing.assert_allclose(h, h_ref, rtol=10 * tol, atol=10 * tol)
        for b in range(B):
            c = np.cumsum(_probs(z[b], temperature, top_k))
            if np.min(np.abs(c - u[0, b])) < 100 * tol:
                continue                                        # too close to a boundary
            assert ids[0, b] == np.searchsorted(c, u[0, b], side="right")
            checked += 1
        x = ids[0]
    assert checked > 200


def test_uniform_edges(backend, dtype):
    """u = 0 picks the first id with nonzero probability, u = 1 a valid id."""
    K = charrnn.get_kernels(backend)
    P = _params(dtype, seed=11)
    h, x = _first_state(3, dtype, seed=12)
    _, z = _step(P, h, x)
    for top_k in (None, 3):
        for u, want in ((0.0, "first"), (1.0, "last")):
            hh = h.copy()
            ids = _sample(K, P, hh, x, np.full((1, 3), u), 1.0, top_k)
            for b in range(3):
                allowed = np.flatnonzero(_probs(z[b], 1.0, top_k))
                assert ids[0, b] in allowed
                assert ids[0, b] == (allowed[0] if want == "first" else allowed[-1])


@pytest.mark.parametrize("B", [1, 4])
def test_temperature_zero_is_argmax(backend, dtype, B):
    """Replaying the kernel's own ids, each one is the argmax of the logits recomputed
    here (or within rounding of it, for a float32 near-tie); the uniforms are ignored."""
    K = charrnn.get_kernels(backend)
    P = _params(dtype, seed=13)
    h, first = _first_state(B, dtype, seed=14)
    n = 80
    hk = h.copy()
    ids = _sample(K, P, hk, first, np.random.default_rng(15).random((n, B)), 0.0)
    ids_again = _sample(K, P, h.copy(), first, np.zeros((n, B)), 0)
    np.testing.assert_array_equal(ids, ids_again)
    tol = 1e-9 if dtype == np.float64 else 1e-4
    href, x = h.astype(np.float64), first
    exact = 0
    for i in range(n):
        href, z = _step(P, href, x)
        for b in range(B):
            top2 = np.sort(z[b])[-2:]
            if top2[1] - top2[0] > tol:
                assert ids[i, b] == np.argmax(z[b]), (i, b)
                exact += 1
            else:
                assert z[b, ids[i, b]] >= top2[1] - tol
        x = ids[i]
    assert exact >= 0.9 * n * B
    np.testing.assert_allclose(hk, href, rtol=1e-4 if dtype == np.float32 else 1e-10,
                               atol=1e-5 if dtype == np.float32 else 1e-12)
    assert len(np.unique(ids)) > 1                              # not a fixed point


TINY = {np.dtype(np.float64): [1e-3, 1e-300, 5e-324],
        np.dtype(np.float32): [1e-3, 1e-30, 1e-40, 1e-46]}


def test_tiny_temperature_tends_to_argmax(backend, dtype):
    """As the temperature goes to 0 the draw becomes the argmax, down to the smallest
    positive temperature of the dtype (and one that rounds to 0 in it)."""
    K = charrnn.get_kernels(backend)
    P = _params(dtype, seed=28)
    h, first = _first_state(3, dtype, seed=29)
    U = np.random.default_rng(30).random((20, 3))
    want = _sample(K, P, h.copy(), first, U, 0.0)
    for t in TINY[np.dtype(dtype)]:
        with np.errstate(all="ignore"):
            got = _sample(K, P, h.copy(), first, U, t)
        np.testing.assert_array_equal(got, want, err_msg=f"temperature {t}")


@pytest.mark.parametrize("k", [1, 2, 5])
def test_top_k_never_emits_outside_the_top_k(backend, dtype, k):
    """A high temperature spreads p over all ids, yet every id is among the k largest
    logits recomputed here at that step."""
    K = charrnn.get_kernels(backend)
    B, n = 4, 120
    P = _params(dtype, seed=16)
    h, first = _first_state(B, dtype, seed=17)
    U = np.random.default_rng(18).random((n, B))
    U[::7] = 1.0                                                # the edges too
    U[3::7] = 0.0
    hk = h.copy()
    ids = _sample(K, P, hk, first, U, 5.0, k)
    tol = 1e-9 if dtype == np.float64 else 1e-4
    href, x = h.astype(np.float64), first
    for i in range(n):
        href, z = _step(P, href, x)
        for b in range(B):
            kth = np.sort(z[b])[-k]
            assert z[b, ids[i, b]] >= kth - tol, (i, b, ids[i, b])
        x = ids[i]
    if k == 1:
        ids0 = _sample(K, P, h.copy(), first, U, 0.0)
        np.testing.assert_array_equal(ids, ids0)
    else:
        assert len(np.unique(ids)) > k                          # different steps, different sets


def test_top_k_equal_to_V_is_no_restriction(backend, dtype):
    K = charrnn.get_kernels(backend)
    P = _params(dtype, seed=19)
    h, first = _first_state(3, dtype, seed=20)
    U = np.random.default_rng(21).random((50, 3))
    a = _sample(K, P, h.copy(), first, U, 1.0, V)
    b = _sample(K, P, h.copy(), first, U, 1.0, None)
    np.testing.assert_array_equal(a, b)


# ----------------------------------------------------------------------------- statistics

@pytest.mark.parametrize("temperature,top_k", [(1.0, None), (0.6, None), (1.0, 4)])
def test_frequencies_match_softmax(backend, dtype, temperature, top_k):
    """N streams start from one state and one first id, so one step draws N times from
    the same p; a chi-square test (fixed seed) accepts p and rejects a perturbed p."""
    K = charrnn.get_kernels(backend)
    N = 10_000
    P = _params(dtype, seed=22, scale=2.5)                      # a spread-out p
    h1, x1 = _first_state(1, dtype, seed=23)
    h = np.repeat(h1, N, axis=0)
    first = np.repeat(x1, N)
    U = np.random.default_rng(24).random((1, N))
    ids = _sample(K, P, h, first, U, temperature, top_k)[0]
    # every stream stepped alike (up to BLAS rounding, which may differ between rows)
    np.testing.assert_allclose(h, np.repeat(h[:1], N, axis=0), rtol=1e-5, atol=1e-6)
    _, z = _step(P, h1, x1)
    p = _probs(z[0], temperature, top_k)
    counts = np.bincount(ids, minlength=V)
    assert np.all(counts[p == 0] == 0)                          # nothing outside the top k
    keep = p * N >= 5
    assert keep.sum() >= 3
    assert p.max() < 0.6                                        # a test with some power

    def pvalue(q):
        obs = np.append(counts[keep], counts[~keep].sum())
        exp = np.append(q[keep], q[~keep].sum()) * N
        if exp[-1] == 0:
            obs, exp = obs[:-1], exp[:-1]
        return stats.chisquare(obs, exp * obs.sum() / exp.sum()).pvalue

    assert pvalue(p) > 1e-3
    wrong = _probs(z[0], temperature * 1.25, top_k)             # a slightly different p
    assert pvalue(wrong) < 1e-3


# ----------------------------------------------------------------------------- steps

def test_n_steps_equal_n_single_steps(backend, dtype):
    K = charrnn.get_kernels(backend)
    P = _params(dtype, seed=25)
    h, first = _first_state(3, dtype, seed=26)
    U = np.random.default_rng(27).random((30, 3))
    h_all = h.copy()
    ids = _sample(K, P, h_all, first, U, 0.8, 6)
    h_one, x = h.copy(), first
    for i in range(30):
        step = _sample(K, P, h_one, x, U[i:i + 1], 0.8, 6)
        assert step.shape == (1, 3)
        np.testing.assert_array_equal(step[0], ids[i])
        x = step[0]
    np.testing.assert_array_equal(h_one, h_all)


def test_zero_steps_leave_the_state(backend, dtype):
    K = charrnn.get_kernels(backend)
    P = _params(dtype)
    h, first = _first_state(2, dtype)
    h0 = h.copy()
    out = _sample(K, P, h, first, np.empty((0, 2)))
    assert out.shape == (0, 2) and out.dtype == np.int32
    np.testing.assert_array_equal(h, h0)


def test_nan_logits_through_a_masked_array_draw_valid_ids(backend):
    """The fuzz found it: NaN logits (a NaN in Wxh) with the parameters in a
    numpy.ma.MaskedArray (once Why alone; now the whole flat theta). The twin's masked
    arithmetic masked every NaN, and its draw then indexed an empty array (IndexError).
    Both kernels read the arrays' data: a valid id comes out."""
    K = charrnn.get_kernels(backend)
    P = _params(np.float64)
    P["Wxh"][0, 0] = np.nan
    layout, theta = flat(P)
    theta = np.ma.masked_array(theta, mask=np.zeros(theta.shape, bool))
    h, _ = _first_state(1, np.float64)
    with np.errstate(invalid="ignore"):
        out = K.sample(layout, theta, h, np.zeros(1, np.int32), np.full((3, 1), 0.5))
    assert out.dtype == np.int32 and np.all((out >= 0) & (out < V))


# ----------------------------------------------------------------------------- bad input

def _bad(case, P, h, first, U):
    kw = dict(temperature=1.0, top_k=None)
    if case == "temperature<0":
        kw["temperature"] = -0.5
    elif case == "temperature nan":
        kw["temperature"] = float("nan")
    elif case == "temperature inf":
        kw["temperature"] = float("inf")
    elif case == "temperature str":
        kw["temperature"] = "1"
    elif case == "temperature bool":
        kw["temperature"] = True
    elif case == "top_k 0":
        kw["top_k"] = 0
    elif case == "top_k > V":
        kw["top_k"] = V + 1
    elif case == "top_k float":
        kw["top_k"] = 2.0
    elif case == "u > 1":
        U = U.copy()
        U[0, 0] = 1.5
    elif case == "u nan":
        U = U.copy()
        U[0, 0] = np.nan
    elif case == "u float32":
        U = U.astype(np.float32)
    elif case == "u wrong B":
        U = np.zeros((3, 3))
    elif case == "first int64":
        first = first.astype(np.int64)
    elif case == "first id >= V":
        first = first.copy()
        first[1] = V
    elif case == "first wrong shape":
        first = np.zeros(3, np.int32)
    elif case == "h read-only":
        h.setflags(write=False)
    elif case == "h 1-D":
        h = h[0].copy()
    elif case == "h other dtype":
        h = h.astype(np.float32)
    elif case == "h wrong H":
        h = np.zeros((2, H + 1))
    return (P, h, first, U), kw


BAD_SAMPLE = [("temperature<0", ValueError), ("temperature nan", ValueError),
              ("temperature inf", ValueError), ("temperature str", TypeError),
              ("temperature bool", TypeError), ("top_k 0", ValueError),
              ("top_k > V", ValueError), ("top_k float", TypeError), ("u > 1", ValueError),
              ("u nan", ValueError), ("u float32", TypeError), ("u wrong B", ValueError),
              ("first int64", TypeError), ("first id >= V", ValueError),
              ("first wrong shape", ValueError), ("h read-only", ValueError),
              ("h 1-D", ValueError), ("h other dtype", TypeError), ("h wrong H", ValueError)]


@pytest.mark.parametrize("case,exc", BAD_SAMPLE, ids=[c for c, _ in BAD_SAMPLE])
def test_bad_sample_arguments(backend, case, exc):
    K = charrnn.get_kernels(backend)
    P = _params(np.float64)
    h, first = _first_state(2, np.float64)
    (P, h, first, U), kw = _bad(case, P, h, first, np.full((3, 2), 0.5))
    h_before = h.copy()
    with pytest.raises(exc):
        _sample(K, P, h, first, U, **kw)
    np.testing.assert_array_equal(h, h_before)                 # checked before any work


def test_valid_arguments_take_the_fast_path(compiled, monkeypatch, dtype):
    """Valid arguments are checked in C: the shared checks (the slow path, which words
    errors) are not called, and the draws equal the slow path's."""
    P = _params(dtype, seed=21)
    h, first = _first_state(3, dtype, seed=22)
    U = np.random.default_rng(23).random((50, 3))
    calls = []
    real = charrnn.kernels.checks.sample

    def counted(*args):
        calls.append(1)
        return real(*args)
    monkeypatch.setattr(charrnn.kernels.checks, "sample", counted)
    # a NumPy scalar temperature is valid but not a Python float: the checked path
    want = _sample(compiled, P, h.copy(), first, U, np.float64(0.8), 5)
    assert calls, "the checked path did not run"

    def refuse(*args):
        raise AssertionError("the slow path ran")
    monkeypatch.setattr(charrnn.kernels.checks, "sample", refuse)
    got = _sample(compiled, P, h.copy(), first, U, 0.8, 5)
    np.testing.assert_array_equal(got, want)
