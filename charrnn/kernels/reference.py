"""The NumPy reference kernels: the readable twin of ``csrc/_kernels.pyx``.

Every function here has the same name, signature and result as its compiled twin; the
tests hold the two to numerical parity. The parameters come as one flat vector ``theta``
and its :class:`~charrnn.layout.Layout`, which names its parts. The math, for ids ``X``,
targets ``Y`` (B, T) and a start state ``h0`` (B, H):

    a_t = Wxh[:, X[:, t]].T + h_{t-1} @ Whh.T + bh     (B, H)   column gather, no one-hot
    h_t = tanh(a_t)
    z_t = h_t @ Why.T + by                             (B, V)
    L   = (1/B) sum_b sum_t -log softmax(z_t)[b, Y[b, t]]

Arguments are checked first, by :mod:`charrnn.kernels.checks`, which both twins share.
"""

from __future__ import annotations

import math

import numpy as np

from .. import config
from . import checks

NAME = "numpy"


# ----------------------------------------------------------------------------- forward

def _forward(P, X, Y, h0, hs, zs):
    """Run the recurrence and the output layer. Leaves p - onehot(Y) in zs; returns L."""
    Wxh, Whh, Why, bh, by = P["Wxh"], P["Whh"], P["Why"], P["bh"], P["by"]
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


def _backward(P, G, X, hs, zs, dhs, dhnext):
    """BPTT from the dz that ``_forward`` left in zs; the gradients overwrite G."""
    Wxh, Whh, Why = P["Wxh"], P["Whh"], P["Why"]
    dWxh, dWhh, dWhy, dbh, dby = G["Wxh"], G["Whh"], G["Why"], G["bh"], G["by"]
    B, T = X.shape
    H, V = Wxh.shape
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


def _chunk_buffers(layout, ws, B, T):
    """The workspace as (hs, zs, dhs, dhnext) shaped for a (B, T) chunk."""
    H, V = layout.hidden_size, layout.vocab_size
    return (ws.hs[:(T + 1) * B * H].reshape(T + 1, B, H),      # h_0 .. h_T
            ws.zs[:T * B * V].reshape(T, B, V),
            ws.dhs[:T * B * H].reshape(T, B, H),
            ws.dhnext[:B * H].reshape(B, H))


def loss_and_grads(layout, theta, grad, X, Y, h0, hlast, ws):
    """Loss of a (B, T) chunk and its gradients; the gradients overwrite ``grad``.

    Parameters
    ----------
    layout : charrnn.layout.Layout   names the parts of ``theta`` and ``grad``
    theta : ndarray, (n,)             the parameters
    grad : ndarray, (n,)              output: the gradient, in the same layout
    X, Y : ndarray of int32, (B, T)   input ids and target ids
    h0 : ndarray, (B, H)              the state before step 0 (may be ``hlast`` itself)
    hlast : ndarray, (B, H)           output: the state after step T-1
    ws : Workspace                    scratch sized for at least (B, T)

    Returns
    -------
    float
        L = (1/B) sum_b sum_t -log p_t[b, Y[b, t]], in nats.
    """
    checks.grads(layout, theta, grad, X, Y, h0, hlast, ws)
    return _loss_and_grads(layout, theta, grad, X, Y, h0, hlast, ws)


def _loss_and_grads(layout, theta, grad, X, Y, h0, hlast, ws):
    """loss_and_grads on arguments already checked."""
    hs, zs, dhs, dhnext = _chunk_buffers(layout, ws, *X.shape)
    P = layout.views(theta)
    loss = _forward(P, X, Y, h0, hs, zs)
    _backward(P, layout.views(grad), X, hs, zs, dhs, dhnext)
    hlast[:] = hs[-1]
    return loss


def loss(layout, theta, X, Y, h0, hlast, ws):
    """Forward-only loss of a (B, T) chunk: ``loss_and_grads`` without gradient work.

    Same arguments and result as :func:`loss_and_grads`, less the gradient output.
    """
    checks.chunk(layout, theta, X, Y, h0, hlast, ws)
    hs, zs, _, _ = _chunk_buffers(layout, ws, *X.shape)
    loss = _forward(layout.views(theta), X, Y, h0, hs, zs)
    hlast[:] = hs[-1]
    return loss


# ----------------------------------------------------------------------------- sampling

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


def sample(layout, theta, h, first_ids, uniforms, temperature=config.TEMPERATURE,
           top_k=None):
    """Draw n ids for each of B streams, advancing the state ``h`` in place.

    Parameters
    ----------
    layout : charrnn.layout.Layout    names the parts of ``theta``
    theta : ndarray, (n,)             the parameters
    h : ndarray, (B, H)               the state; advanced in place
    first_ids : ndarray of int32, (B,)   the id fed at the first step
    uniforms : ndarray of float64, (n, B)   one uniform in [0, 1] per draw
    temperature : float               0 means argmax
    top_k : int or None               restrict each draw to the k most likely ids

    Returns
    -------
    ndarray of int32, (n, B)
    """
    B, n, k = checks.sample(layout, theta, h, first_ids, uniforms, temperature, top_k)
    # the arrays' data, as the compiled kernel reads it: an ndarray subclass such as a
    # masked array would otherwise carry its own arithmetic (masking NaN logits, say)
    P = layout.views(np.asarray(theta))
    Wxh, Whh, Why, bh, by = P["Wxh"], P["Whh"], P["Why"], P["bh"], P["by"]
    h = np.asarray(h)
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
    checks.vec("g", g)
    return _sumsq(g)


def _sumsq(g):
    # einsum casts chunk by chunk: no float64 copy of g
    return float(np.einsum("i,i->", g, g, dtype=np.float64))


def clip_(g, clip):
    """Clip ``g`` element-wise to [-clip, clip] in place."""
    checks.vec("g", g, out=True)
    checks.clip(clip, 1.0)
    np.clip(g, -clip, clip, out=g)


def scale_(g, scale):
    """Multiply ``g`` by ``scale`` in place (global-norm clipping)."""
    checks.vec("g", g, out=True)
    checks.clip(math.inf, scale)
    g *= g.dtype.type(scale)


# ----------------------------------------------------------------------------- optimizers
#
# Every update takes the flat parameter vector w, the raw gradient g, the optimizer state
# and the hyper-parameters, and first forms  g' = clip(g * scale, -clip, clip)  (scale < 1
# is global-norm clipping, clip = inf turns element-wise clipping off). g is not modified.
# charrnn.kernels.rules lists each rule's state arrays and hyper-parameters.

def _clipped(g, clip, scale):
    if scale == 1 and clip != math.inf:                         # the classic: clip only
        return np.clip(g, -clip, clip, out=np.empty_like(g))    # one pass, no copy first
    gc = g * g.dtype.type(scale) if scale != 1 else g.copy()
    if clip != math.inf:
        np.clip(gc, -clip, clip, out=gc)
    return gc


def sgd_update(w, g, lr, clip=config.CLIP, scale=1.0):
    """w -= lr * g'"""
    checks.update("sgd", w, g, (), lr, (), clip, scale)
    _sgd(w, g, lr, clip, scale)


def _sgd(w, g, lr, clip, scale):
    g = _clipped(g, clip, scale)                                # a fresh array
    g *= w.dtype.type(lr)
    w -= g


def adagrad_update(w, g, m, lr, eps=config.EPS, clip=config.CLIP, scale=1.0):
    """m += g'*g';  w -= lr * g' / sqrt(m + eps)   (the classic)"""
    checks.update("adagrad", w, g, (m,), lr, (eps,), clip, scale)
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


def rmsprop_update(w, g, v, lr, rho=config.RHO, eps=config.EPS, clip=config.CLIP,
                   scale=1.0):
    """v = rho*v + (1-rho)*g'*g';  w -= lr * g' / (sqrt(v) + eps)"""
    checks.update("rmsprop", w, g, (v,), lr, (rho, eps), clip, scale)
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


def adam_update(w, g, m, v, lr, beta1=config.BETA1, beta2=config.BETA2, eps=config.EPS,
                step=1, clip=config.CLIP, scale=1.0):
    """Adam with bias correction; ``step`` counts from 1.

    m = b1*m + (1-b1)*g';  v = b2*v + (1-b2)*g'*g'
    w -= lr * (m / (1 - b1**step)) / (sqrt(v / (1 - b2**step)) + eps)
    """
    checks.update("adam", w, g, (m, v), lr, (beta1, beta2, eps, step), clip, scale)
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


_UPDATES = {"sgd": _sgd, "adagrad": _adagrad, "rmsprop": _rmsprop, "adam": _adam}


# ----------------------------------------------------------------------------- a whole step

def _run_step(loss_and_grads, sumsq, update, layout, w, g, X, Y, h, ws, state, lr, hyper,
              clip, max_norm):
    """The step on checked arguments, with the given kernels."""
    loss = loss_and_grads(layout, w, g, X, Y, h, h, ws)
    norm = math.sqrt(sumsq(g))
    if not (math.isfinite(loss) and math.isfinite(norm)):
        return loss, norm                       # no update: the caller reports divergence
    scale = max_norm / norm if norm > max_norm else 1.0
    update(w, g, *state, lr, *hyper, clip, scale)
    return loss, norm


def composed_step(K, layout, w, g, X, Y, h, ws, rule, state, lr, hyper, clip, max_norm):
    """``train_step`` as separate calls of the public kernels of module ``K``: the
    definition of a training step.

    Every argument is checked first, then ``K.loss_and_grads``, the global norm from
    ``K.sumsq`` and ``K.<rule>_update``. The compiled ``train_step`` fuses these calls,
    and runs this over its own kernels for any argument its fast checks refuse: the same
    result, or the error worded by the checks.
    """
    checks.step(layout, w, g, X, Y, h, ws, rule, state, lr, hyper, clip, max_norm)
    return _run_step(K.loss_and_grads, K.sumsq, getattr(K, rule + "_update"), layout, w, g,
                     X, Y, h, ws, state, lr, hyper, clip, max_norm)


def train_step(layout, w, g, X, Y, h, ws, rule, state, lr, hyper, clip, max_norm):
    """One training step: forward and BPTT on a (B, T) chunk, the global gradient norm,
    clipping and one optimizer update, on the flat vectors of ``layout``.

    Parameters
    ----------
    layout : charrnn.layout.Layout   names the parts of ``w`` and ``g``
    w, g : ndarray, (n,)        the parameters (updated in place) and the gradient (output)
    X, Y : ndarray of int32, (B, T)   input ids and target ids
    h : ndarray, (B, H)         the carried state: h_0 in, h_T out (in place)
    ws : Workspace              scratch sized for at least (B, T)
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
    checks.step(layout, w, g, X, Y, h, ws, rule, state, lr, hyper, clip, max_norm)
    # composed_step on this module, less the separate kernels' own checks: the ones
    # above cover them
    return _run_step(_loss_and_grads, _sumsq, _UPDATES[rule], layout, w, g, X, Y, h, ws,
                     state, lr, hyper, clip, max_norm)
