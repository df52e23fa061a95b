"""Fit the float32 tanh of csrc/_vmath.h, and measure it as the kernel evaluates it.

    python benchmarks/fit_tanh.py

tanh(x) = x * P(z) / Q(z), z = x*x, P of degree 6 and Q of degree 3 with Q(0) = 1, on
[0, 9] (beyond 9.01 tanh rounds to 1 in float32; the kernel clamps x to [-9, 9] and the
result to [-1, 1]). The fit minimises the largest relative error of P/Q against
tanh(x)/x: linearised least squares (P - g*Q, divided by the last Q, Sanathanan-Koerner)
with Lawson's reweighting toward the worst points, on z / 81 for conditioning, keeping
the best of 200 rounds. Prints the relative error of the fit in float64, the
coefficients rounded to float32 as _vmath.h writes them, and the error in ulps of the
float32 evaluation (Horner, no fused multiply-add, as the kernel) on 7 million points.
"""

from __future__ import annotations

import numpy as np

C, DEG_P, DEG_Q = 9.0, 6, 3


def fit(rounds: int = 200) -> tuple[np.ndarray, np.ndarray, float]:
    """Coefficients of P and Q in powers of z (Q[0] = 1) and the fit's relative error."""
    x = np.unique(np.concatenate([np.linspace(0, 1, 30_000), np.linspace(1, C, 60_000)]))[1:]
    t = x * x / C**2
    g = np.tanh(x) / x
    lawson, q_last = np.ones_like(t), np.ones_like(t)
    best = (np.inf, None, None)
    for _ in range(rounds):
        A = np.concatenate([t[:, None] ** np.arange(DEG_P + 1),
                            -g[:, None] * t[:, None] ** np.arange(1, DEG_Q + 1)], 1)
        w = np.sqrt(lawson) / (g * np.abs(q_last))
        sol = np.linalg.lstsq(A * w[:, None], g * w, rcond=None)[0]
        p, q = sol[:DEG_P + 1], np.concatenate([[1.0], sol[DEG_P + 1:]])
        q_last = np.polyval(q[::-1], t)
        err = np.abs((np.polyval(p[::-1], t) / q_last - g) / g)
        if err.max() < best[0]:
            best = (err.max(), p, q)
        lawson = lawson * err / err.max()
        lawson = lawson / lawson.sum() * lawson.size + 1e-30
    m, p, q = best
    return p / C ** (2 * np.arange(DEG_P + 1)), q / C ** (2 * np.arange(DEG_Q + 1)), m


def tanh32(x: np.ndarray, p: np.ndarray, q: np.ndarray) -> np.ndarray:
    """The kernel's float32 evaluation, step for step."""
    f = np.float32
    p, q = p.astype(f), q.astype(f)
    xc = np.clip(x.astype(f), f(-C), f(C))
    z = xc * xc
    P = p[-1]
    for c in p[-2::-1]:
        P = P * z + c
    Q = q[-1]
    for c in q[-2::-1]:
        Q = Q * z + c
    return np.clip(xc * P / Q, f(-1), f(1))


def main() -> None:
    p, q, m = fit()
    print(f"fit: largest relative error {m:.2e} (float64 evaluation)")
    print("P:", ", ".join(f"{np.float32(c):.8g}" for c in p))
    print("Q:", ", ".join(f"{np.float32(c):.8g}" for c in q))
    rng = np.random.default_rng(0)
    x = np.concatenate([rng.uniform(-10, 10, 4_000_000), rng.uniform(-1, 1, 2_000_000),
                        np.geomspace(1e-30, 10, 500_000), -np.geomspace(1e-30, 10, 500_000)])
    x = x.astype(np.float32)
    true = np.tanh(x.astype(np.float64))
    ulp = np.spacing(np.abs(true).astype(np.float32)).astype(np.float64)
    for name, got in (("this form", tanh32(x, p, q)), ("np.tanh float32", np.tanh(x))):
        e = np.abs(got.astype(np.float64) - true) / ulp
        print(f"{name}: largest {e.max():.2f} ulp (at x = {x[e.argmax()]:.7g}), "
              f"mean {e.mean():.2f}")


if __name__ == "__main__":
    main()
