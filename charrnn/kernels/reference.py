"""The NumPy reference kernels: the readable twin of ``csrc/_kernels.pyx``.

Every function here has the same name, signature and result as its compiled twin; the
tests hold the two to numerical parity. The parameters come as one flat vector ``theta``
and its :class:`~charrnn.layout.Layout`, which names its parts. The math, for ids ``X``,
targets ``Y`` (B, T) and a start state ``h0`` (B, layout.state_size), is ``design.md``
sections 2 and 2b: a stack of L layers of one cell, then the output layer.

    layer 0:     A = Wx0[:, X[:, t]].T + bx0                  (T, B, G*H)  a column gather
    layer l > 0: A = in_t @ Wx.T + bx, in_t = h^{l-1}_t * mask  (T*B, H) x (H, G*H): one GEMM
                 then the cell's recurrence, step by step      (charrnn.kernels.cells)
    output:      z_t = (h^{L-1}_t * mask) @ Why.T + by         (T*B, V): one GEMM
    L = (1/B) sum_b sum_t -log softmax(z_t)[b, Y[b, t]]

BPTT mirrors it: the output layer's gradients, then for each layer from the top the cell's
way back through time, and the layer's dWx, dWh, biases and input gradient as GEMMs over
all T steps. The masks (inverted dropout, the ``masks`` argument; none when None) sit on
the input of every layer above the first and of the output layer, never on the recurrent
path. The 1-layer vanilla RNN is min-char-rnn's:

    a_t = Wxh[:, X[:, t]].T + h_{t-1} @ Whh.T + bh     (B, H)   column gather, no one-hot
    h_t = tanh(a_t)
    z_t = h_t @ Why.T + by                             (B, V)

Arguments are checked first, by :mod:`charrnn.kernels.checks`, which both twins share.
"""

from __future__ import annotations

import math
from typing import NamedTuple

import numpy as np

from .. import config
from ..layout import LayerParams
from ..workspace import Workspace
from . import checks
from .cells import CELLS, LayerBuffers

NAME = "numpy"


# ----------------------------------------------------------------------------- buffers

class _Chunk(NamedTuple):
    """The workspace shaped for a (B, T) chunk (views)."""

    layers: tuple[LayerBuffers, ...]    # bottom first
    zs: np.ndarray                      # (T, B, V): logits, then p, then dz
    ins: np.ndarray                     # (L, T, B, H): the masked inputs (with dropout)
    dhnext: np.ndarray                  # (B, H): zeros for the last step's dhnext
    dcnext: np.ndarray | None           # (B, H): the LSTM's, likewise


def _chunk_buffers(layout, ws, B, T, swap=False):
    """The workspace as a :class:`_Chunk` for a (B, T) chunk of ``layout``.

    With ``swap``, the states h_0 .. h_T (and c) are views in reverse order: for T = 1
    the h_0 of these buffers is the h_1 of the others, so one step's result is the next
    step's start without a copy (sampling).
    """
    H, V, L, GH, cell = (layout.hidden_size, layout.vocab_size, layout.num_layers,
                         layout.gates * layout.hidden_size, layout.cell)
    hs = ws.hs[:L * (T + 1) * B * H].reshape(L, T + 1, B, H)    # h_0 .. h_T per layer
    dhs = ws.dhs[:L * T * B * H].reshape(L, T, B, H)
    cs = ws.cs[:L * (T + 1) * B * H].reshape(L, T + 1, B, H) if cell == "lstm" else None
    if swap:
        hs, cs = hs[:, ::-1], None if cs is None else cs[:, ::-1]
    acts = ws.acts[:L * T * B * GH].reshape(L, T, B, GH) if cell != "rnn" else None
    ahs = ws.ahs[:L * T * B * GH].reshape(L, T, B, GH) if cell == "gru" else None
    layers = tuple([LayerBuffers(h=hs[l], c=None if cs is None else cs[l],
                                 a=hs[l][1:] if acts is None else acts[l],
                                 ah=None if ahs is None else ahs[l], dh=dhs[l])
                    for l in range(L)])
    return _Chunk(layers, ws.zs[:T * B * V].reshape(T, B, V),
                  ws.ins[:L * T * B * H].reshape(L, T, B, H), ws.dhnext[:B * H].reshape(B, H),
                  ws.dcnext[:B * H].reshape(B, H) if cell == "lstm" else None)


def _input(buf, l, masks):
    """The input of layer l >= 1 (l = L: of the output layer) at every step: layer l-1's
    h_1 .. h_T, or with dropout that times its mask, which the forward pass put into
    ``buf.ins[l-1]``.   (T, B, H)"""
    return buf.layers[l - 1].h[1:] if masks is None else buf.ins[l - 1]


def _mask_input(buf, l, masks):
    """Dropout on the input of layer l >= 1 (l = L: the output layer), into buf.ins."""
    if masks is not None:
        np.multiply(buf.layers[l - 1].h[1:], masks[l - 1], out=buf.ins[l - 1])


# ----------------------------------------------------------------------------- forward

def _load_state(layout, buf, h0):
    """Every layer's h_0 (and c_0) from the state ``h0``."""
    for lb, parts in zip(buf.layers, layout.state_views(h0)):
        lb.h[0] = parts[0]
        if lb.c is not None:
            lb.c[0] = parts[1]


def _store_state(layout, buf, hlast, t=-1):
    """hlast = every layer's h_t (and c_t): by default the state after the chunk."""
    for lb, parts in zip(buf.layers, layout.state_views(hlast)):
        parts[0][...] = lb.h[t]
        if lb.c is not None:
            parts[1][...] = lb.c[t]


def _layer_params(layout, P):
    """Each layer's arrays of the dict ``P`` (parameters or gradients), bottom first."""
    return tuple([LayerParams(P[n.Wx], P[n.Wh], P[n.bx], None if n.bh is None else P[n.bh])
                  for n in layout.layers])


def _stack_forward(cell, layers, XT, buf, masks):
    """Run the layers (``_layer_params``) of ``cell`` over the chunk of ids ``XT`` (T, B)
    (step-major: X.T) from the state in buf (``_load_state``): every layer's h_1 .. h_T
    (and c) into ``buf``."""
    for l, (p, lb) in enumerate(zip(layers, buf.layers)):
        # the input side of every step at once, into lb.a: Wx·in_t + bx   (T, B, G*H)
        if l == 0:
            np.add(p.Wx.T[XT], p.bx, out=lb.a)                  # Wx[:, x].T, a column gather
        else:
            _mask_input(buf, l, masks)
            A = lb.a.reshape(XT.size, -1)                       # (T*B, G*H)
            np.matmul(_input(buf, l, masks).reshape(XT.size, -1), p.Wx.T, out=A)
            A += p.bx                                           # all T steps in one GEMM
        cell.forward(p.Wh, p.bh, lb)


def _forward(layout, P, X, Y, h0, buf, masks):
    """The stack and the output layer. Leaves p - onehot(Y) in buf.zs; returns L."""
    Why, by = P["Why"], P["by"]
    B, T = X.shape
    V = by.shape[0]
    _load_state(layout, buf, h0)
    _stack_forward(CELLS[layout.cell], _layer_params(layout, P), X.T, buf, masks)
    L = layout.num_layers
    _mask_input(buf, L, masks)
    Hs = _input(buf, L, masks).reshape(T * B, -1)               # (T*B, H), row t*B + b
    Z = buf.zs.reshape(T * B, -1)                               # (T*B, V)
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


# ----------------------------------------------------------------------------- backward

def _backward(layout, P, G, X, buf, masks):
    """BPTT from the dz that ``_forward`` left in buf.zs; the gradients overwrite G."""
    Why = P["Why"]
    B, T = X.shape
    H, V, L = layout.hidden_size, layout.vocab_size, layout.num_layers
    dZ = buf.zs.reshape(T * B, V)
    if B > 1:                                                   # (x / 1 is x: skip it)
        dZ /= B                                                 # dz_t = (p_t - onehot) / B

    # backward, output side: three single GEMMs/reductions over all T steps
    np.matmul(dZ.T, _input(buf, L, masks).reshape(T * B, H), out=G["Why"])
    #                                                             dWhy = dz.T @ h   (V, H)
    dZ.sum(axis=0, out=G["by"])                                 # dby  = sum dz     (V,)
    dh = buf.layers[L - 1].dh                                   # (T, B, H)
    np.matmul(dZ, Why, out=dh.reshape(T * B, H))                # dh   = dz @ Why   (T*B, H)
    if masks is not None:
        dh *= masks[L - 1]                                      # through the dropout

    # each layer from the top: back through time (only dh_{t-1} is sequential), then its
    # weights' gradients and its input's as single GEMMs over all T steps
    cell = CELLS[layout.cell]
    layers, dlayers = _layer_params(layout, P), _layer_params(layout, G)
    for l in reversed(range(L)):
        p, d, lb = layers[l], dlayers[l], buf.layers[l]
        buf.dhnext[:] = 0
        if buf.dcnext is not None:
            buf.dcnext[:] = 0
        dAx, dAh = cell.backward(p.Wh, lb, buf.dhnext, buf.dcnext)
        dAx, dAh = dAx.reshape(T * B, -1), dAh.reshape(T * B, -1)     # (T*B, G*H)
        np.matmul(dAh.T, lb.h[:T].reshape(T * B, H), out=d.Wh)  # dWh = sum_t dah_t.T @ h_{t-1}
        dAx.sum(axis=0, out=d.bx)                               # dbx = sum dax
        if d.bh is not None:
            dAh.sum(axis=0, out=d.bh)                           # dbh = sum dah (GRU)
        if l == 0:
            # a plain loop over the T*B rows beats np.add.at (per-element dispatch) at
            # every size; same order of additions, so the same sums
            d.Wx[:] = 0
            dWxT = d.Wx.T                                       # (V, G*H), a view
            for x, da in zip(X.T.reshape(-1).tolist(), dAx):    # row t*B + b, (G*H,)
                dw = dWxT[x]            # a view: "dWxT[x] += da" would also copy it back
                dw += da                                        # dWx[:, X[b, t]] += dax_t[b]
        else:
            np.matmul(dAx.T, _input(buf, l, masks).reshape(T * B, H), out=d.Wx)
            #                                                   dWx = sum_t dax_t.T @ in_t
            din = buf.layers[l - 1].dh                          # (T, B, H)
            np.matmul(dAx, p.Wx, out=din.reshape(T * B, H))     # din_t = dax_t @ Wx
            if masks is not None:
                din *= masks[l - 1]                             # through the dropout


# ----------------------------------------------------------------------------- a chunk

def loss_and_grads(layout, theta, grad, X, Y, h0, hlast, ws, masks=None):
    """Loss of a (B, T) chunk and its gradients; the gradients overwrite ``grad``.

    Parameters
    ----------
    layout : charrnn.layout.Layout   names the parts of ``theta``, ``grad`` and the state
    theta : ndarray, (n,)             the parameters
    grad : ndarray, (n,)              output: the gradient, in the same layout
    X, Y : ndarray of int32, (B, T)   input ids and target ids
    h0 : ndarray, (B, layout.state_size)   the state before step 0 (may be ``hlast``
                                      itself); (B, H) for the 1-layer RNN
    hlast : ndarray, (B, layout.state_size)   output: the state after step T-1
    ws : Workspace                    scratch sized for at least (B, T) of the layout
    masks : ndarray, (L, T, B, H), optional
        Dropout: each entry 0 or 1/(1-p) (``charrnn.dropout.dropout_masks``); mask l < L-1
        multiplies the input of layer l+1, mask L-1 the output layer's. None: no dropout.

    Returns
    -------
    float
        L = (1/B) sum_b sum_t -log p_t[b, Y[b, t]], in nats.
    """
    checks.grads(layout, theta, grad, X, Y, h0, hlast, ws, masks)
    return _loss_and_grads(layout, theta, grad, X, Y, h0, hlast, ws, masks)


def _loss_and_grads(layout, theta, grad, X, Y, h0, hlast, ws, masks):
    """loss_and_grads on arguments already checked."""
    buf = _chunk_buffers(layout, ws, *X.shape)
    P = layout.views(theta)
    loss = _forward(layout, P, X, Y, h0, buf, masks)
    _backward(layout, P, layout.views(grad), X, buf, masks)
    _store_state(layout, buf, hlast)
    return loss


def loss(layout, theta, X, Y, h0, hlast, ws):
    """Forward-only loss of a (B, T) chunk: ``loss_and_grads`` without gradient work,
    and without dropout (evaluation).

    Same arguments and result as :func:`loss_and_grads`, less the gradient output.
    """
    checks.chunk(layout, theta, X, Y, h0, hlast, ws)
    buf = _chunk_buffers(layout, ws, *X.shape)
    loss = _forward(layout, layout.views(theta), X, Y, h0, buf, None)
    _store_state(layout, buf, hlast)
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
    layout : charrnn.layout.Layout    names the parts of ``theta`` and of the state
    theta : ndarray, (n,)             the parameters
    h : ndarray, (B, layout.state_size)   the state; advanced in place
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
    Why, by = P["Why"], P["by"]
    h = np.asarray(h)
    out = np.empty((n, B), np.int32)
    # each draw is a chunk of one step, run by the forward pass's own code on scratch for
    # T = 1 that holds the state, in turn in two sets of buffers: the h_1 (and c_1) of one
    # is the h_0 of the other
    ws = Workspace.for_layout(layout, B, 1)
    bufs = (_chunk_buffers(layout, ws, B, 1), _chunk_buffers(layout, ws, B, 1, swap=True))
    tops = [buf.layers[-1].h[1] for buf in bufs]                # (B, H): the top layer's h
    _load_state(layout, bufs[0], h)
    cell, layers = CELLS[layout.cell], _layer_params(layout, P)
    WhyT, z = Why.T, np.empty((B, by.shape[0]), by.dtype)      # z: (B, V)
    x = first_ids.reshape(1, B)                                 # (T=1, B), step-major
    for i in range(n):
        _stack_forward(cell, layers, x, bufs[i % 2], None)
        np.dot(tops[i % 2], WhyT, out=z)
        z += by                                                 # z = h @ Why.T + by
        for b in range(B):
            out[i, b] = draw(z[b], uniforms[i, b], temperature, k)
        x = out[i:i + 1]
    _store_state(layout, bufs[n % 2], h, 0)
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
              clip, max_norm, masks):
    """The step on checked arguments, with the given kernels."""
    loss = loss_and_grads(layout, w, g, X, Y, h, h, ws, masks)
    norm = math.sqrt(sumsq(g))
    if not (math.isfinite(loss) and math.isfinite(norm)):
        return loss, norm                       # no update: the caller reports divergence
    scale = max_norm / norm if norm > max_norm else 1.0
    update(w, g, *state, lr, *hyper, clip, scale)
    return loss, norm


def composed_step(K, layout, w, g, X, Y, h, ws, rule, state, lr, hyper, clip, max_norm,
                  masks=None):
    """``train_step`` as separate calls of the public kernels of module ``K``: the
    definition of a training step.

    Every argument is checked first, then ``K.loss_and_grads``, the global norm from
    ``K.sumsq`` and ``K.<rule>_update``. The compiled ``train_step`` fuses these calls,
    and runs this over its own kernels for any argument its fast checks refuse: the same
    result, or the error worded by the checks.
    """
    checks.step(layout, w, g, X, Y, h, ws, rule, state, lr, hyper, clip, max_norm, masks)
    return _run_step(K.loss_and_grads, K.sumsq, getattr(K, rule + "_update"), layout, w, g,
                     X, Y, h, ws, state, lr, hyper, clip, max_norm, masks)


def train_step(layout, w, g, X, Y, h, ws, rule, state, lr, hyper, clip, max_norm,
               masks=None):
    """One training step: forward and BPTT on a (B, T) chunk, the global gradient norm,
    clipping and one optimizer update, on the flat vectors of ``layout``.

    Parameters
    ----------
    layout : charrnn.layout.Layout   names the parts of ``w`` and ``g``
    w, g : ndarray, (n,)        the parameters (updated in place) and the gradient (output)
    X, Y : ndarray of int32, (B, T)   input ids and target ids
    h : ndarray, (B, layout.state_size)   the carried state: h_0 in, h_T out (in place)
    ws : Workspace              scratch sized for at least (B, T) of the layout
    rule : {"sgd", "adagrad", "rmsprop", "adam"}
    state : tuple of ndarray    the rule's state arrays, as ``<rule>_update`` takes them
    lr : float
    hyper : tuple               the rule's arguments between lr and clip in
                                ``<rule>_update`` (Adam's ends with the step, from 1)
    clip : float                element-wise bound (inf for none)
    max_norm : float            global-norm bound: g is scaled by max_norm / ||g|| when
                                ||g|| is larger (inf for none)
    masks : ndarray, (L, T, B, H), optional   dropout, as ``loss_and_grads`` takes it

    Returns
    -------
    (float, float)
        The chunk's loss as ``loss_and_grads`` returns it, and ||g|| before clipping.
        When either is not finite, ``w`` and ``state`` are left as they were.
    """
    checks.step(layout, w, g, X, Y, h, ws, rule, state, lr, hyper, clip, max_norm, masks)
    # composed_step on this module, less the separate kernels' own checks: the ones
    # above cover them
    return _run_step(_loss_and_grads, _sumsq, _UPDATES[rule], layout, w, g, X, Y, h, ws,
                     state, lr, hyper, clip, max_norm, masks)
