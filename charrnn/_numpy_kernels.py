"""The NumPy reference kernels: the readable twin of ``csrc/_kernels.pyx``.

Every function here has the same name, signature and result as its compiled twin; the
tests hold the two to numerical parity. The math is ``design.md`` section 2:

    a_t = Wxh[:, X[:, t]].T + h_{t-1} @ Whh.T + bh     (B, H)   column gather, no one-hot
    h_t = tanh(a_t)
    z_t = h_t @ Why.T + by                             (B, V)
    L   = (1/B) sum_b sum_t -log softmax(z_t)[b, Y[b, t]]

Arrays are validated first and the checks raise ``TypeError`` (wrong type or dtype) or
``ValueError`` (wrong shape, layout, value) with the same wording as the compiled kernels.
"""

from __future__ import annotations

import math
from itertools import combinations, product, starmap

import numpy as np

from .layout import param_views, vocab_size
from .workspace import Workspace

NAME = "numpy"
_MAX = 2**31 - 1


# ----------------------------------------------------------------------------- checks

def _array(name, a, dtype=None, ndim=None, out=False):
    if not isinstance(a, np.ndarray):
        raise TypeError(f"{name} must be a numpy.ndarray, not {type(a).__name__}")
    if dtype is not None and a.dtype != dtype:
        raise TypeError(f"{name} must have dtype {np.dtype(dtype).name}, not {a.dtype}")
    if ndim is not None and a.ndim != ndim:
        raise ValueError(f"{name} must be {ndim}-D, got shape {a.shape}")
    if not a.flags.c_contiguous:
        raise ValueError(f"{name} must be C-contiguous")
    if out and not a.flags.writeable:
        raise ValueError(f"{name} is read-only; an output array must be writeable")
    # a dimension can exceed the size only when another one is 0
    if a.size > _MAX or (a.size == 0 and any(n > _MAX for n in a.shape)):
        raise ValueError(f"{name} has a dimension of 2**31 or more: {a.shape}")
    return a


def _shape(name, a, shape):
    if a.shape != shape:
        raise ValueError(f"{name} must have shape {shape}, got {a.shape}")


def check_params(Wxh, Whh, Why, bh, by):
    """Validate the five parameters; return (H, V, dtype)."""
    _array("Wxh", Wxh, ndim=2)
    if Wxh.dtype not in (np.float32, np.float64):
        raise TypeError(f"Wxh must have dtype float32 or float64, not {Wxh.dtype}")
    dtype = Wxh.dtype
    H, V = Wxh.shape
    if H < 1 or V < 1:
        raise ValueError(f"Wxh must have shape (H, V) with H, V >= 1, got {Wxh.shape}")
    for name, a, shape in (("Whh", Whh, (H, H)), ("Why", Why, (V, H)),
                           ("bh", bh, (H,)), ("by", by, (V,))):
        _array(name, a, dtype=dtype)
        _shape(name, a, shape)
    return H, V, dtype


def check_ids(name, ids, V, shape=None):
    """Validate an int32 id array: C-contiguous, the given shape, every id in [0, V)."""
    _array(name, ids)
    if ids.dtype != np.int32:
        raise TypeError(f"{name} must have dtype int32, not {ids.dtype}")
    if shape is not None:
        _shape(name, ids, shape)
    if ids.size and not (ids.min() >= 0 and ids.max() < V):
        bad = np.flatnonzero((ids < 0) | (ids >= V))
        if bad.size:
            pos = [int(p) for p in np.unravel_index(bad[0], ids.shape)]
            raise ValueError(f"{name}{pos} = {ids.flat[bad[0]]} is not a valid id "
                             f"in [0, {V})")


# The overlap checks test every pair with np.may_share_memory (byte bounds, which is exact
# for C-contiguous arrays). All pairs go through one starmap first, since they are nearly
# always disjoint; only when some pair overlaps does the named loop run to word the error.

def _no_alias(outs, ins):
    if not any(starmap(np.may_share_memory, product([o for _, o in outs],
                                                    [i for _, i in ins]))):
        return
    for oname, o in outs:
        for iname, i in ins:
            if np.may_share_memory(o, i):
                raise ValueError(f"output {oname} overlaps input {iname}")


def _not_in_workspace(ws, arrays, buffers):
    """The workspace is scratch the kernel overwrites: no argument may live in the
    buffers it uses (hs and zs for the forward pass, dhs and dhnext too for gradients)."""
    if not any(starmap(np.may_share_memory, product([getattr(ws, w) for w in buffers],
                                                    [a for _, a in arrays]))):
        return
    for wname in buffers:
        for name, a in arrays:
            if np.may_share_memory(getattr(ws, wname), a):
                raise ValueError(f"{name} overlaps the workspace buffer ws.{wname}")


def _check_chunk(Wxh, Whh, Why, bh, by, X, Y, h0, hlast, ws):
    H, V, dtype = check_params(Wxh, Whh, Why, bh, by)
    B, T = _check_ids_state_ws(X, Y, "h0", h0, False, ws, H, V, dtype)
    _array("hlast", hlast, dtype=dtype, out=True)
    _shape("hlast", hlast, (B, H))
    _no_alias([("hlast", hlast)], [("Wxh", Wxh), ("Whh", Whh), ("Why", Why), ("bh", bh),
                                   ("by", by), ("X", X), ("Y", Y)])
    # hlast may be h0 itself (the state carried in place), but not a partial overlap
    if hlast is not h0 and np.may_share_memory(hlast, h0) and not (
            hlast.ctypes.data == h0.ctypes.data and hlast.shape == h0.shape):
        raise ValueError("output hlast partially overlaps input h0")
    _not_in_workspace(ws, [("Wxh", Wxh), ("Whh", Whh), ("Why", Why), ("bh", bh), ("by", by),
                           ("X", X), ("Y", Y), ("h0", h0), ("hlast", hlast)], ("hs", "zs"))
    return B, T, H, V


def _check_ids_state_ws(X, Y, hname, h0, h_out, ws, H, V, dtype):
    """The ids, the start state (written in place if ``h_out``) and the workspace of a
    chunk; returns (B, T)."""
    _array("X", X, ndim=2)
    B, T = X.shape
    if B < 1 or T < 1:
        raise ValueError(f"X must have shape (B, T) with B, T >= 1, got {X.shape}")
    if B * T > _MAX or T * B * max(H, V) > _MAX:
        raise ValueError(f"chunk (B={B}, T={T}) too large for 32-bit BLAS indices")
    check_ids("X", X, V)
    check_ids("Y", Y, V, (B, T))
    _array(hname, h0, dtype=dtype, out=h_out)
    _shape(hname, h0, (B, H))
    if not isinstance(ws, Workspace):
        raise TypeError(f"ws must be a charrnn.Workspace, not {type(ws).__name__}")
    if not ws.fits(B, T, H, V, dtype):
        raise ValueError(f"{ws!r} does not fit a chunk B={B}, T={T}, H={H}, V={V}, "
                         f"dtype={dtype.name}")
    return B, T


def _check_vec(name, a, dtype=None, out=False):
    _array(name, a, ndim=1, out=out)
    if a.dtype not in (np.float32, np.float64):
        raise TypeError(f"{name} must have dtype float32 or float64, not {a.dtype}")
    if dtype is not None and a.dtype != dtype:
        raise TypeError(f"{name} must have dtype {np.dtype(dtype).name}, not {a.dtype}")
    return a


def _no_alias_outputs(outs):
    """No two outputs may share memory."""
    if not any(starmap(np.may_share_memory, combinations([o for _, o in outs], 2))):
        return
    for i, (na, a) in enumerate(outs):
        for nb, b in outs[i + 1:]:
            if np.may_share_memory(a, b):
                raise ValueError(f"output {na} overlaps output {nb}")


def _check_update(w, g, states, hypers):
    _check_vec("w", w, out=True)
    _check_vec("g", g, dtype=w.dtype)
    _shape("g", g, w.shape)
    for name, s in states:
        _check_vec(name, s, dtype=w.dtype, out=True)
        _shape(name, s, w.shape)
    _no_alias([("w", w)] + states, [("g", g)])
    _no_alias([("w", w)], states)
    _no_alias_outputs(states)                                   # Adam's m and v
    _check_finite(hypers)


def _check_finite(hypers):
    for name, value in hypers:
        if not math.isfinite(value):
            raise ValueError(f"{name} must be finite, got {value}")


def _check_adam(beta1, beta2, step):
    if isinstance(step, bool) or not isinstance(step, (int, np.integer)):
        raise TypeError(f"step must be an int, not {type(step).__name__}")
    if step < 1:
        raise ValueError(f"step must be >= 1, got {step}")
    for name, b in (("beta1", beta1), ("beta2", beta2)):
        if not 0 <= b < 1:                      # else 1 - b**step is 0 or overflows
            raise ValueError(f"{name} must be in [0, 1), got {b}")


def _check_clip(clip, scale):
    if not (clip > 0):
        raise ValueError(f"clip must be > 0 (inf for none), got {clip}")
    if not (math.isfinite(scale) and scale >= 0):
        raise ValueError(f"scale must be finite and >= 0, got {scale}")


# ----------------------------------------------------------------------------- forward

def _forward(Wxh, Whh, Why, bh, by, X, Y, h0, hs, zs):
    """Run the recurrence and the output layer. Leaves p - onehot(Y) in zs; returns L."""
    B, T = X.shape
    V = by.shape[0]
    # the input side of every step at once, into hs[1:]: Wxh[:, x].T + bh   (T, B, H),
    # a column gather
    np.add(Wxh.T[X.T], bh, out=hs[1:])
    hs[0] = h0
    # at B = 1 a step is three small calls and their overhead is the cost: np.dot (not
    # matmul's ufunc dispatch), Whh.T made once, one view per step
    hprev, WhhT = hs[0], Whh.T
    for h in hs[1:]:                                            # (B, H): a_t, then h_t
        h += np.dot(hprev, WhhT)                                # a_t = ... + h_{t-1} @ Whh.T
        np.tanh(h, out=h)                                       # h_t = tanh(a_t)
        hprev = h
    Hs = hs[1:].reshape(T * B, -1)                              # (T*B, H), row t*B + b
    Z = zs.reshape(T * B, -1)                                   # (T*B, V)
    np.matmul(Hs, Why.T, out=Z)                                 # all T steps in one GEMM
    Z += by
    # where the targets sit in the flat Z: row t*B + b, column Y[b, t]   (T*B,)
    iy = np.arange(0, T * B * V, V) + Y.T.reshape(-1)
    Zf = Z.reshape(-1)                                          # a view
    # stable softmax: subtract the row max; -log p[y] = log(sum exp z) - z[y]
    Z -= Z.max(axis=1, keepdims=True)
    zy = Zf[iy].astype(np.float64, copy=False)
    np.exp(Z, out=Z)
    s = Z.sum(axis=1, keepdims=True)
    # the loss sums the exps in float64: for a confident float32 prediction s = 1 + tiny,
    # and rounding s to float32 would cost the small -log p its relative precision
    s64 = s[:, 0] if Z.dtype == np.float64 else Z.sum(axis=1, dtype=np.float64)
    loss = float((np.log(s64) - zy).sum() / B)
    Z /= s                                                      # p_t
    Zf[iy] -= 1                                                 # p_t - onehot(y_t)
    return loss


def loss_and_grads(Wxh, Whh, Why, bh, by, X, Y, h0,
                   dWxh, dWhh, dWhy, dbh, dby, hlast, ws):
    """Loss of a (B, T) chunk and its gradients; the gradients overwrite dW*, db*.

    Parameters
    ----------
    Wxh, Whh, Why, bh, by : ndarray   the parameters, (H,V) (H,H) (V,H) (H,) (V,)
    X, Y : ndarray of int32, (B, T)   input ids and target ids
    h0 : ndarray, (B, H)              the state before step 0 (may be ``hlast`` itself)
    dWxh, dWhh, dWhy, dbh, dby : ndarray   outputs, shaped like the parameters
    hlast : ndarray, (B, H)           output: the state after step T-1
    ws : Workspace                    scratch sized for at least (B, T)

    Returns
    -------
    float
        L = (1/B) sum_b sum_t -log p_t[b, Y[b, t]], in nats.
    """
    B, T, H, V = _check_chunk(Wxh, Whh, Why, bh, by, X, Y, h0, hlast, ws)
    for name, g, p in (("dWxh", dWxh, Wxh), ("dWhh", dWhh, Whh), ("dWhy", dWhy, Why),
                       ("dbh", dbh, bh), ("dby", dby, by)):
        _array(name, g, dtype=p.dtype, out=True)
        _shape(name, g, p.shape)
    grads = [("dWxh", dWxh), ("dWhh", dWhh), ("dWhy", dWhy), ("dbh", dbh), ("dby", dby)]
    # (_check_chunk has tested hlast against the inputs)
    _no_alias(grads, [("Wxh", Wxh), ("Whh", Whh), ("Why", Why), ("bh", bh), ("by", by),
                      ("X", X), ("Y", Y)])
    _no_alias(grads, [("h0", h0)])
    _no_alias_outputs(grads + [("hlast", hlast)])
    _not_in_workspace(ws, grads, ("hs", "zs", "dhs", "dhnext"))
    _not_in_workspace(ws, [("Wxh", Wxh), ("Whh", Whh), ("Why", Why), ("bh", bh), ("by", by),
                           ("X", X), ("Y", Y), ("h0", h0), ("hlast", hlast)], ("dhs", "dhnext"))
    return _loss_and_grads(Wxh, Whh, Why, bh, by, X, Y, h0, dWxh, dWhh, dWhy, dbh, dby,
                           hlast, ws)


def _loss_and_grads(Wxh, Whh, Why, bh, by, X, Y, h0, dWxh, dWhh, dWhy, dbh, dby, hlast, ws):
    """loss_and_grads on arguments already checked."""
    B, T = X.shape
    H, V = Wxh.shape
    hs = ws.hs[:(T + 1) * B * H].reshape(T + 1, B, H)          # h_0 .. h_T
    zs = ws.zs[:T * B * V].reshape(T, B, V)
    dhs = ws.dhs[:T * B * H].reshape(T, B, H)
    dhnext = ws.dhnext[:B * H].reshape(B, H)

    loss = _forward(Wxh, Whh, Why, bh, by, X, Y, h0, hs, zs)
    dZ = zs.reshape(T * B, V)
    if B > 1:                                                   # (x / 1 is x: skip it)
        dZ /= B                                                 # dz_t = (p_t - onehot) / B
    Hs = hs[1:].reshape(T * B, H)

    # backward, output side: three single GEMMs/reductions over all T steps
    np.matmul(dZ.T, Hs, out=dWhy)                               # dWhy = dz.T @ h   (V, H)
    dZ.sum(axis=0, out=dby)                                     # dby  = sum dz     (V,)
    dH = dhs.reshape(T * B, H)
    np.matmul(dZ, Why, out=dH)                                  # dh   = dz @ Why   (T*B, H)

    # backward through time: only da_t @ Whh is sequential
    dtanh = 1 - hs[1:] * hs[1:]                                 # (T, B, H): 1 - h_t**2
    dhnext[:] = 0
    for t in reversed(range(T)):
        da = dhs[t]                                             # (B, H)
        da += dhnext                                            # dh_t = dz_t @ Why + dhnext
        da *= dtanh[t]                                          # da_t = (1 - h_t**2) * dh_t
        if t > 0:
            # np.dot as in the forward pass, into a fresh (B, H) array: np.dot's out=
            # refuses an unaligned buffer (ws.dhnext only supplies the zeros above)
            dhnext = np.dot(da, Whh)                            # dhnext = da_t @ Whh
    np.matmul(dH.T, hs[:T].reshape(T * B, H), out=dWhh)         # dWhh = sum_t da_t.T @ h_{t-1}
    dH.sum(axis=0, out=dbh)                                     # dbh  = sum da
    # a plain loop over the T*B rows beats np.add.at (per-element dispatch) at every size;
    # same order of additions, so the same sums
    dWxh[:] = 0
    dWxhT = dWxh.T                                              # (V, H), a view
    for x, da in zip(X.T.reshape(-1).tolist(), dH):            # row t*B + b of dH, (H,)
        dw = dWxhT[x]                   # a view: "dWxhT[x] += da" would also copy it back
        dw += da                                                # dWxh[:, X[b, t]] += da_t[b]

    hlast[:] = hs[T]
    return loss


def loss(Wxh, Whh, Why, bh, by, X, Y, h0, hlast, ws):
    """Forward-only loss of a (B, T) chunk: ``loss_and_grads`` without gradient work.

    Same arguments and result as :func:`loss_and_grads`, less the gradient outputs.
    """
    B, T, H, V = _check_chunk(Wxh, Whh, Why, bh, by, X, Y, h0, hlast, ws)
    hs = ws.hs[:(T + 1) * B * H].reshape(T + 1, B, H)
    zs = ws.zs[:T * B * V].reshape(T, B, V)
    loss = _forward(Wxh, Whh, Why, bh, by, X, Y, h0, hs, zs)
    hlast[:] = hs[T]
    return loss


# ----------------------------------------------------------------------------- sampling

def check_sample_args(Wxh, Whh, Why, bh, by, h, first_ids, uniforms, temperature, top_k):
    """Validate the arguments of :func:`sample`; return (B, n, H, V, top_k or 0)."""
    H, V, dtype = check_params(Wxh, Whh, Why, bh, by)
    _array("h", h, dtype=dtype, ndim=2, out=True)
    B = h.shape[0]
    if B < 1 or h.shape[1] != H:
        raise ValueError(f"h must have shape (B, {H}) with B >= 1, got {h.shape}")
    _array("uniforms", uniforms, dtype=np.float64, ndim=2)
    n = uniforms.shape[0]
    if uniforms.shape[1] != B:
        raise ValueError(f"uniforms must have shape (n, {B}), got {uniforms.shape}")
    check_ids("first_ids", first_ids, V, (B,))
    if uniforms.size and not np.all((uniforms >= 0) & (uniforms <= 1)):
        raise ValueError("uniforms must lie in [0, 1]")
    if isinstance(temperature, bool) or not isinstance(temperature, (int, float, np.floating,
                                                                     np.integer)):
        raise TypeError(f"temperature must be a number, not {type(temperature).__name__}")
    if not (math.isfinite(temperature) and temperature >= 0):
        raise ValueError(f"temperature must be finite and >= 0, got {temperature}")
    if top_k is None:
        k = 0
    else:
        if isinstance(top_k, bool) or not isinstance(top_k, (int, np.integer)):
            raise TypeError(f"top_k must be an int or None, not {type(top_k).__name__}")
        if not 1 <= top_k <= V:
            raise ValueError(f"top_k must be in [1, {V}] or None, got {top_k}")
        k = int(top_k)
    _no_alias([("h", h)], [("Wxh", Wxh), ("Whh", Whh), ("Why", Why), ("bh", bh),
                           ("by", by), ("uniforms", uniforms), ("first_ids", first_ids)])
    return B, n, H, V, k


def draw(z, u, temperature, k):
    """Draw one id from logits ``z`` (V,) with uniform ``u`` by inverse CDF.

    The order of operations is the contract the compiled kernel follows exactly:
    e = exp((z - max z) / temperature) over the top-k ids (0 elsewhere),
    c = cumsum(e) in id order, and the id is the first i with c[i] > u * c[-1].
    Subtracting the max first keeps the exponent <= 0 however small the temperature.
    """
    t = z.dtype.type(temperature)
    if t == 0:                                  # 0, or a temperature that is 0 in this dtype
        return int(np.argmax(z))                                # first maximum
    with np.errstate(over="ignore", under="ignore"):
        e = np.exp((z - z.max()) / t)
    if k and k < z.size:
        keep = np.argsort(-z, kind="stable")[:k]                # ties: lower id first
        mask = np.zeros(z.size, bool)
        mask[keep] = True
        e[~mask] = 0
    c = np.cumsum(e)
    i = int(np.searchsorted(c, u * c[-1], side="right"))
    return i if i < z.size else int(np.flatnonzero(e)[-1])


def sample(Wxh, Whh, Why, bh, by, h, first_ids, uniforms, temperature=1.0, top_k=None):
    """Draw n ids for each of B streams, advancing the state ``h`` in place.

    Parameters
    ----------
    Wxh, Whh, Why, bh, by : ndarray   the parameters
    h : ndarray, (B, H)               the state; advanced in place
    first_ids : ndarray of int32, (B,)   the id fed at the first step
    uniforms : ndarray of float64, (n, B)   one uniform in [0, 1] per draw
    temperature : float               0 means argmax
    top_k : int or None               restrict each draw to the k most likely ids

    Returns
    -------
    ndarray of int32, (n, B)
    """
    B, n, H, V, k = check_sample_args(Wxh, Whh, Why, bh, by, h, first_ids, uniforms,
                                      temperature, top_k)
    # the arrays' data, as the compiled kernel reads it: an ndarray subclass such as a
    # masked array would otherwise carry its own arithmetic (masking NaN logits, say)
    Wxh, Whh, Why, bh, by, h = map(np.asarray, (Wxh, Whh, Why, bh, by, h))
    out = np.empty((n, B), np.int32)
    x = first_ids.copy()
    for i in range(n):
        a = Wxh[:, x].T + bh                                    # (B, H)
        a += h @ Whh.T
        np.tanh(a, out=h)
        z = h @ Why.T + by                                      # (B, V)
        for b in range(B):
            out[i, b] = draw(z[b], uniforms[i, b], temperature, k)
        x = out[i]
    return out


# ----------------------------------------------------------------------------- clipping

def sumsq(g):
    """Sum of squares of a 1-D array, accumulated in float64 (for the global norm)."""
    _check_vec("g", g)
    return _sumsq(g)


def _sumsq(g):
    # einsum casts chunk by chunk: no float64 copy of g
    return float(np.einsum("i,i->", g, g, dtype=np.float64))


def clip_(g, clip):
    """Clip ``g`` element-wise to [-clip, clip] in place."""
    _check_vec("g", g, out=True)
    _check_clip(clip, 1.0)
    np.clip(g, -clip, clip, out=g)


def scale_(g, scale):
    """Multiply ``g`` by ``scale`` in place (global-norm clipping)."""
    _check_vec("g", g, out=True)
    _check_clip(math.inf, scale)
    g *= g.dtype.type(scale)


# ----------------------------------------------------------------------------- optimizers
#
# Every update takes the flat parameter vector w, the raw gradient g, the optimizer state
# and the hyper-parameters, and first forms  g' = clip(g * scale, -clip, clip)  (scale < 1
# is global-norm clipping, clip = inf turns element-wise clipping off). g is not modified.

def _clipped(g, clip, scale):
    if scale == 1 and clip != math.inf:                         # the classic: clip only
        return np.clip(g, -clip, clip, out=np.empty_like(g))    # one pass, no copy first
    gc = g * g.dtype.type(scale) if scale != 1 else g.copy()
    if clip != math.inf:
        np.clip(gc, -clip, clip, out=gc)
    return gc


def sgd_update(w, g, lr, clip=5.0, scale=1.0):
    """w -= lr * g'"""
    _check_update(w, g, [], [("lr", lr)])
    _check_clip(clip, scale)
    _sgd(w, g, lr, clip, scale)


def _sgd(w, g, lr, clip, scale):
    g = _clipped(g, clip, scale)                                # a fresh array
    g *= w.dtype.type(lr)
    w -= g


def adagrad_update(w, g, m, lr, eps=1e-8, clip=5.0, scale=1.0):
    """m += g'*g';  w -= lr * g' / sqrt(m + eps)   (the classic)"""
    _check_update(w, g, [("m", m)], [("lr", lr), ("eps", eps)])
    _check_clip(clip, scale)
    _adagrad(w, g, m, lr, eps, clip, scale)


def _adagrad(w, g, m, lr, eps, clip, scale):
    g = _clipped(g, clip, scale)                                # a fresh array
    t = w.dtype.type
    s = g * g
    m += s
    np.add(m, t(eps), out=s)
    np.sqrt(s, out=s)
    g *= t(lr)
    g /= s                                                      # lr * g / sqrt(m + eps)
    w -= g


def rmsprop_update(w, g, v, lr, rho=0.99, eps=1e-8, clip=5.0, scale=1.0):
    """v = rho*v + (1-rho)*g'*g';  w -= lr * g' / (sqrt(v) + eps)"""
    _check_update(w, g, [("v", v)], [("lr", lr), ("rho", rho), ("eps", eps)])
    _check_clip(clip, scale)
    _rmsprop(w, g, v, lr, rho, eps, clip, scale)


def _rmsprop(w, g, v, lr, rho, eps, clip, scale):
    g = _clipped(g, clip, scale)                                # a fresh array
    t = w.dtype.type
    v *= t(rho)
    v += t(1 - rho) * (g * g)
    s = np.sqrt(v)
    s += t(eps)
    g *= t(lr)
    g /= s                                                      # lr * g / (sqrt(v) + eps)
    w -= g


def adam_update(w, g, m, v, lr, beta1=0.9, beta2=0.999, eps=1e-8, step=1,
                clip=5.0, scale=1.0):
    """Adam with bias correction; ``step`` counts from 1.

    m = b1*m + (1-b1)*g';  v = b2*v + (1-b2)*g'*g'
    w -= lr * (m / (1 - b1**step)) / (sqrt(v / (1 - b2**step)) + eps)
    """
    _check_update(w, g, [("m", m), ("v", v)],
                  [("lr", lr), ("beta1", beta1), ("beta2", beta2), ("eps", eps)])
    _check_clip(clip, scale)
    _check_adam(beta1, beta2, step)
    _adam(w, g, m, v, lr, beta1, beta2, eps, step, clip, scale)


def _adam(w, g, m, v, lr, beta1, beta2, eps, step, clip, scale):
    g = _clipped(g, clip, scale)                                # a fresh array
    t = w.dtype.type
    m *= t(beta1)
    m += t(1 - beta1) * g
    v *= t(beta2)
    v += t(1 - beta2) * (g * g)
    c1 = t(1 - beta1 ** step)
    c2 = t(1 - beta2 ** step)
    s = v / c2
    np.sqrt(s, out=s)
    s += t(eps)
    np.divide(m, c1, out=g)
    g *= t(lr)
    g /= s                                       # lr * (m / c1) / (sqrt(v / c2) + eps)
    w -= g


# ----------------------------------------------------------------------------- a whole step

# update rule -> the names of its state arrays and of its arguments between lr and clip
UPDATE_ARGS = {"sgd": ((), ()), "adagrad": (("m",), ("eps",)),
               "rmsprop": (("v",), ("rho", "eps")),
               "adam": (("m", "v"), ("beta1", "beta2", "eps", "step"))}


def _check_step(w, g, X, Y, h, ws, H, rule, state, lr, hyper, clip, max_norm):
    """Every check of a training step, before anything is written (the update's
    arguments too: a bad one must not leave a half-made step behind). Returns V."""
    if isinstance(H, bool) or not isinstance(H, (int, np.integer)):
        raise TypeError(f"H must be an int, not {type(H).__name__}")
    if not 1 <= H <= _MAX:
        raise ValueError(f"H must be in [1, 2**31), got {H}")
    if not isinstance(rule, str) or rule not in UPDATE_ARGS:
        raise ValueError(f"rule must be one of {', '.join(UPDATE_ARGS)}, not {rule!r}")
    state_names, hyper_names = UPDATE_ARGS[rule]
    for what, seq, names in (("state", state, state_names), ("hyper", hyper, hyper_names)):
        if not isinstance(seq, (tuple, list)):
            raise TypeError(f"{what} must be a tuple, not {type(seq).__name__}")
        if len(seq) != len(names):
            raise ValueError(f"{rule} takes {len(names)} {what} value(s) "
                             f"({', '.join(names) or 'none'}), got {len(seq)}")
    _check_vec("w", w, out=True)
    _check_vec("g", g, dtype=w.dtype, out=True)     # the gradient is written here
    _shape("g", g, w.shape)
    states = list(zip(state_names, state))
    for name, a in states:
        _check_vec(name, a, dtype=w.dtype, out=True)
        _shape(name, a, w.shape)
    V = vocab_size(w.size, H)
    _check_ids_state_ws(X, Y, "h", h, True, ws, H, V, w.dtype)   # h carried in place
    # (Adam's step is checked by _check_adam below, not as a finite float)
    _check_finite([("lr", lr)] + [(n, v) for n, v in zip(hyper_names, hyper) if n != "step"])
    _check_clip(clip, 1.0)
    if not (max_norm > 0):
        raise ValueError(f"max_norm must be > 0 (inf for none), got {max_norm}")
    if rule == "adam":
        _check_adam(*hyper[:2], hyper[3])
    # every array apart from every other but X from Y (both only read): the parameters
    # are views of w, the gradients of g, and everything but X and Y is written
    named = [("w", w), ("g", g), ("h", h), *states, ("ws.hs", ws.hs), ("ws.zs", ws.zs),
             ("ws.dhs", ws.dhs), ("ws.dhnext", ws.dhnext), ("X", X), ("Y", Y)]
    pairs = list(combinations(named, 2))[:-1]       # the last pair is (X, Y)
    if any(starmap(np.may_share_memory, [(a, b) for (_, a), (_, b) in pairs])):
        for (na, a), (nb, b) in pairs:
            if np.may_share_memory(a, b):
                raise ValueError(f"{na} overlaps {nb}")
    return V


def _run_step(loss_and_grads, sumsq, update, w, g, X, Y, h, ws, H, V, state, lr, hyper,
              clip, max_norm):
    """The step on checked arguments, with the given kernels."""
    P, G = param_views(w, H, V), param_views(g, H, V)
    loss = loss_and_grads(*P.values(), X, Y, h, *G.values(), h, ws)
    norm = math.sqrt(sumsq(g))
    if not (math.isfinite(loss) and math.isfinite(norm)):
        return loss, norm                       # no update: the caller reports divergence
    scale = max_norm / norm if norm > max_norm else 1.0
    update(w, g, *state, lr, *hyper, clip, scale)
    return loss, norm


def composed_step(K, w, g, X, Y, h, ws, H, rule, state, lr, hyper, clip, max_norm):
    """``train_step`` as separate calls of the public kernels of module ``K``: the
    definition of a training step.

    Every argument is checked first, then ``K.loss_and_grads``, the global norm from
    ``K.sumsq`` and ``K.<rule>_update``. The compiled ``train_step`` fuses these calls,
    and runs this over its own kernels for any argument its fast checks refuse: the same
    result, or the error worded here.
    """
    V = _check_step(w, g, X, Y, h, ws, H, rule, state, lr, hyper, clip, max_norm)
    return _run_step(K.loss_and_grads, K.sumsq, getattr(K, rule + "_update"), w, g, X, Y,
                     h, ws, H, V, state, lr, hyper, clip, max_norm)


def train_step(w, g, X, Y, h, ws, H, rule, state, lr, hyper, clip, max_norm):
    """One training step: forward and BPTT on a (B, T) chunk, the global gradient norm,
    clipping and one optimizer update, on the flat vectors of ``charrnn.layout``.

    Parameters
    ----------
    w, g : ndarray, (n,)        the parameters (updated in place) and the gradient (output)
    X, Y : ndarray of int32, (B, T)   input ids and target ids
    h : ndarray, (B, H)         the carried state: h_0 in, h_T out (in place)
    ws : Workspace              scratch sized for at least (B, T)
    H : int                     hidden units (V follows from n)
    rule : {"sgd", "adagrad", "rmsprop", "adam"}
    state : tuple of ndarray    the rule's state arrays, as ``<rule>_update`` takes them
    lr : float
    hyper : tuple               the rule's arguments between lr and clip in
                                ``<rule>_update`` (Adam's ends with the step, from 1)
    clip : float                element-wise bound (inf for none)
    max_norm : float            global-norm bound: g is scaled by max_norm / ||g|| when
                                ||g|| is larger (inf for none)

    Returns
    -------
    (float, float)
        The chunk's loss as ``loss_and_grads`` returns it, and ||g|| before clipping.
        When either is not finite, ``w`` and ``state`` are left as they were.
    """
    V = _check_step(w, g, X, Y, h, ws, H, rule, state, lr, hyper, clip, max_norm)
    # composed_step on this module, less the separate kernels' own checks: the ones
    # above cover them
    return _run_step(_loss_and_grads, _sumsq, _UPDATES[rule], w, g, X, Y, h, ws, H, V,
                     state, lr, hyper, clip, max_norm)


_UPDATES = {"sgd": _sgd, "adagrad": _adagrad, "rmsprop": _rmsprop, "adam": _adam}
