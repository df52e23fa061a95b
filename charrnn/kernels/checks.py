"""The argument checks of the kernels, shared by both twins.

Each public kernel's arguments are checked here, in one place, with ``TypeError`` for a
wrong type or dtype and ``ValueError`` for a wrong shape, layout or value. The NumPy
reference calls these before its math. The compiled module runs its own cheap C-level
checks first and calls these only when they refuse something, to word the error (or, for
an unusual but valid argument, to let its slower path run).
"""

from __future__ import annotations

import math
from itertools import combinations, product, starmap

import numpy as np

from ..layout import Layout
from ..limits import INT_MAX as MAX
from ..workspace import Workspace
from .rules import RULES



# ----------------------------------------------------------------------------- arrays

def array(name, a, dtype=None, ndim=None, out=False):
    """An ndarray of ``dtype`` and ``ndim`` (when given), C-contiguous, writeable if an
    ``out``put, no dimension of 2**31 or more."""
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
    if a.size > MAX or (a.size == 0 and any(n > MAX for n in a.shape)):
        raise ValueError(f"{name} has a dimension of 2**31 or more: {a.shape}")
    return a


def shape(name, a, want):
    if a.shape != want:
        raise ValueError(f"{name} must have shape {want}, got {a.shape}")


def vec(name, a, dtype=None, out=False):
    """A 1-D float32 or float64 array (of ``dtype`` when given)."""
    array(name, a, ndim=1, out=out)
    if a.dtype not in (np.float32, np.float64):
        raise TypeError(f"{name} must have dtype float32 or float64, not {a.dtype}")
    if dtype is not None and a.dtype != dtype:
        raise TypeError(f"{name} must have dtype {np.dtype(dtype).name}, not {a.dtype}")
    return a


def ids(name, a, V, want=None):
    """An int32 id array: C-contiguous, of shape ``want`` (when given), every id in
    [0, V)."""
    array(name, a)
    if a.dtype != np.int32:
        raise TypeError(f"{name} must have dtype int32, not {a.dtype}")
    if want is not None:
        shape(name, a, want)
    if a.size and not (a.min() >= 0 and a.max() < V):
        bad = np.flatnonzero((a < 0) | (a >= V))
        pos = [int(p) for p in np.unravel_index(bad[0], a.shape)]
        raise ValueError(f"{name}{pos} = {a.flat[bad[0]]} is not a valid id in [0, {V})")


def theta(layout, w, name="theta", out=False):
    """A flat parameter (or gradient) vector of ``layout``; returns the layout's dtype."""
    if not isinstance(layout, Layout):
        raise TypeError(f"layout must be a charrnn.layout.Layout, not "
                        f"{type(layout).__name__}")
    array(name, w, dtype=layout.dtype, ndim=1, out=out)
    if w.size != layout.size:
        raise ValueError(f"{name} must have {layout.size} elements for {layout!r}, "
                         f"got {w.size}")
    return layout.dtype


# ----------------------------------------------------------------------------- overlaps
#
# Every pair is tested with np.may_share_memory (byte bounds, which is exact for
# C-contiguous arrays). All pairs go through one starmap first, since they are nearly
# always disjoint; only when some pair overlaps does the named loop run to word the error.

def apart(outs, ins):
    """No output of ``outs`` overlaps an input of ``ins`` (lists of (name, array))."""
    if not any(starmap(np.may_share_memory, product([o for _, o in outs],
                                                    [i for _, i in ins]))):
        return
    for oname, o in outs:
        for iname, i in ins:
            if np.may_share_memory(o, i):
                raise ValueError(f"output {oname} overlaps input {iname}")


def outputs_apart(outs):
    """No two outputs share memory."""
    if not any(starmap(np.may_share_memory, combinations([o for _, o in outs], 2))):
        return
    for i, (na, a) in enumerate(outs):
        for nb, b in outs[i + 1:]:
            if np.may_share_memory(a, b):
                raise ValueError(f"output {na} overlaps output {nb}")


# the workspace buffers the forward pass writes, and those BPTT writes besides (ws.ins
# is written only with dropout masks)
FORWARD_BUFFERS = ("hs", "zs", "cs", "acts", "ahs")
BACKWARD_BUFFERS = ("dhs", "dhnext", "dcnext")


def not_in_workspace(ws, arrays, buffers):
    """The workspace is scratch the kernel overwrites: no argument may live in the
    buffers it uses (FORWARD_BUFFERS for the forward pass, BACKWARD_BUFFERS too for
    gradients)."""
    if not any(starmap(np.may_share_memory, product([getattr(ws, w) for w in buffers],
                                                    [a for _, a in arrays]))):
        return
    for wname in buffers:
        for name, a in arrays:
            if np.may_share_memory(getattr(ws, wname), a):
                raise ValueError(f"{name} overlaps the workspace buffer ws.{wname}")


# ----------------------------------------------------------------------------- chunks

def _ids_state_ws(layout, X, Y, hname, h, h_out, ws):
    """The ids, the start state (written in place if ``h_out``) and the workspace of a
    chunk; returns (B, T)."""
    H, V, GH = layout.hidden_size, layout.vocab_size, layout.gates * layout.hidden_size
    array("X", X, ndim=2)
    B, T = X.shape
    if B < 1 or T < 1:
        raise ValueError(f"X must have shape (B, T) with B, T >= 1, got {X.shape}")
    if B * T > MAX or T * B * max(GH, V) > MAX:
        raise ValueError(f"chunk (B={B}, T={T}) too large for 32-bit BLAS indices")
    ids("X", X, V)
    ids("Y", Y, V, (B, T))
    state_array(layout, hname, h, B, out=h_out)
    if not isinstance(ws, Workspace):
        raise TypeError(f"ws must be a charrnn.Workspace, not {type(ws).__name__}")
    if not ws.fits(B, T, H, V, layout.dtype, layout.cell, layout.num_layers):
        raise ValueError(f"{ws!r} does not fit a chunk B={B}, T={T}, H={H}, V={V}, "
                         f"dtype={layout.dtype.name}, cell={layout.cell!r}, "
                         f"num_layers={layout.num_layers}")
    return B, T


def state_array(layout, name, h, B, out=False):
    """A carried state of ``layout`` for B streams: (B, layout.state_size), the layout's
    dtype (the LSTM's h and c of every layer side by side, ``Layout.state_views``)."""
    array(name, h, dtype=layout.dtype, out=out)
    shape(name, h, (B, layout.state_size))


def mask_array(layout, m, B, T):
    """None (no dropout) or the dropout masks of a (B, T) chunk: (L, T, B, H) of the
    layout's dtype, C-contiguous. (Any values are taken: the kernels multiply by them.)"""
    if m is None:
        return
    array("masks", m, dtype=layout.dtype, ndim=4)
    shape("masks", m, (layout.num_layers, T, B, layout.hidden_size))


def chunk(layout, w, X, Y, h0, hlast, ws):
    """The arguments of the forward-only ``loss``; returns (B, T)."""
    theta(layout, w)
    B, T = _ids_state_ws(layout, X, Y, "h0", h0, False, ws)
    state_array(layout, "hlast", hlast, B, out=True)
    apart([("hlast", hlast)], [("theta", w), ("X", X), ("Y", Y)])
    # hlast may be h0 itself (the state carried in place), but not a partial overlap
    if hlast is not h0 and np.may_share_memory(hlast, h0) and not (
            hlast.ctypes.data == h0.ctypes.data and hlast.shape == h0.shape):
        raise ValueError("output hlast partially overlaps input h0")
    not_in_workspace(ws, [("theta", w), ("X", X), ("Y", Y), ("h0", h0), ("hlast", hlast)],
                     FORWARD_BUFFERS)
    return B, T


def grads(layout, w, g, X, Y, h0, hlast, ws, m=None):
    """The arguments of ``loss_and_grads`` (``m``: its masks); returns (B, T)."""
    B, T = chunk(layout, w, X, Y, h0, hlast, ws)
    theta(layout, g, "grad", out=True)
    mask_array(layout, m, B, T)
    ins = [("theta", w), ("X", X), ("Y", Y), ("h0", h0)]
    masks = [("masks", m)] if m is not None else []
    apart([("grad", g)], ins + masks)
    apart([("hlast", hlast)], masks)
    outputs_apart([("grad", g), ("hlast", hlast)])
    backward = BACKWARD_BUFFERS + (("ins",) if m is not None else ())
    not_in_workspace(ws, [("grad", g)] + masks, FORWARD_BUFFERS + backward)
    not_in_workspace(ws, ins + [("hlast", hlast)], backward)
    return B, T


# ----------------------------------------------------------------------------- sampling

def number(name, value):
    """A real number (not a bool)."""
    if isinstance(value, bool) or not isinstance(value, (int, float, np.floating,
                                                         np.integer)):
        raise TypeError(f"{name} must be a number, not {type(value).__name__}")
    return value


def temperature(t):
    """0 (argmax) or a finite positive number."""
    number("temperature", t)
    if not (math.isfinite(t) and t >= 0):
        raise ValueError(f"temperature must be finite and >= 0, got {t}")
    return float(t)


def top_k(k, V):
    """None (every id) or an int in [1, V]; returns it as an int, 0 for None."""
    if k is None:
        return 0
    if isinstance(k, bool) or not isinstance(k, (int, np.integer)):
        raise TypeError(f"top_k must be an int or None, not {type(k).__name__}")
    if not 1 <= k <= V:
        raise ValueError(f"top_k must be in [1, {V}] (the vocabulary size) or None, "
                         f"got {k}")
    return int(k)


def sample(layout, w, h, first_ids, uniforms, temp, k):
    """The arguments of ``sample``; returns (B, n, top_k as an int, 0 for none)."""
    theta(layout, w)
    GH, V = layout.gates * layout.hidden_size, layout.vocab_size
    array("h", h, dtype=layout.dtype, ndim=2, out=True)
    B = h.shape[0]
    if B < 1 or h.shape[1] != layout.state_size:
        raise ValueError(f"h must have shape (B, {layout.state_size}) with B >= 1, got "
                         f"{h.shape}")
    if B * max(GH, V) > MAX:
        raise ValueError(f"{B} streams too many for 32-bit BLAS indices (B * max(G*H, V) "
                         f"must be below 2**31)")
    array("uniforms", uniforms, dtype=np.float64, ndim=2)
    n = uniforms.shape[0]
    if uniforms.shape[1] != B:
        raise ValueError(f"uniforms must have shape (n, {B}), got {uniforms.shape}")
    ids("first_ids", first_ids, V, (B,))
    if uniforms.size and not np.all((uniforms >= 0) & (uniforms <= 1)):
        raise ValueError("uniforms must lie in [0, 1]")
    temperature(temp)
    k = top_k(k, V)
    apart([("h", h)], [("theta", w), ("uniforms", uniforms), ("first_ids", first_ids)])
    return B, n, k


# ----------------------------------------------------------------------------- updates

def clip(bound, scale):
    """An element-wise bound > 0 (inf for none) and a finite scale >= 0."""
    if not (bound > 0):
        raise ValueError(f"clip must be > 0 (inf for none), got {bound}")
    if not (math.isfinite(scale) and scale >= 0):
        raise ValueError(f"scale must be finite and >= 0, got {scale}")


def _rule_args(rule, state, lr, hyper):
    """A known rule, its state and hyper tuples of the right length, finite values, and
    Adam's betas and step; returns the state as (name, array) pairs."""
    if not isinstance(rule, str) or rule not in RULES:
        raise ValueError(f"rule must be one of {', '.join(RULES)}, not {rule!r}")
    state_names, hyper_names = RULES[rule].states, RULES[rule].hypers
    for what, seq, names in (("state", state, state_names), ("hyper", hyper, hyper_names)):
        if not isinstance(seq, (tuple, list)):
            raise TypeError(f"{what} must be a tuple, not {type(seq).__name__}")
        if len(seq) != len(names):
            raise ValueError(f"{rule} takes {len(names)} {what} value(s) "
                             f"({', '.join(names) or 'none'}), got {len(seq)}")
    values = dict(zip(hyper_names, hyper))
    # (Adam's step is checked below, not as a finite float)
    for name, value in [("lr", lr)] + [(n, v) for n, v in values.items() if n != "step"]:
        if not math.isfinite(value):
            raise ValueError(f"{name} must be finite, got {value}")
    if "step" in values:
        step = values["step"]
        if isinstance(step, bool) or not isinstance(step, (int, np.integer)):
            raise TypeError(f"step must be an int, not {type(step).__name__}")
        if step < 1:
            raise ValueError(f"step must be >= 1, got {step}")
        for name in ("beta1", "beta2"):
            if not 0 <= values[name] < 1:       # else 1 - b**step is 0 or overflows
                raise ValueError(f"{name} must be in [0, 1), got {values[name]}")
    return list(zip(state_names, state))


def _states(w, states):
    for name, s in states:
        vec(name, s, dtype=w.dtype, out=True)
        shape(name, s, w.shape)


def update(rule, w, g, state, lr, hyper, bound, scale):
    """The arguments of ``<rule>_update(w, g, *state, lr, *hyper, clip, scale)``."""
    states = _rule_args(rule, state, lr, hyper)
    vec("w", w, out=True)
    vec("g", g, dtype=w.dtype)
    shape("g", g, w.shape)
    _states(w, states)
    apart([("w", w)] + states, [("g", g)])
    apart([("w", w)], states)
    outputs_apart(states)                                       # Adam's m and v
    clip(bound, scale)


def step(layout, w, g, X, Y, h, ws, rule, state, lr, hyper, bound, max_norm, m=None):
    """Every check of a training step (``m``: its masks), before anything is written
    (the update's arguments too: a bad one must not leave a half-made step behind)."""
    states = _rule_args(rule, state, lr, hyper)
    theta(layout, w, "w", out=True)
    theta(layout, g, "g", out=True)                             # the gradient goes here
    _states(w, states)
    B, T = _ids_state_ws(layout, X, Y, "h", h, True, ws)        # h carried in place
    mask_array(layout, m, B, T)
    clip(bound, 1.0)
    if not (max_norm > 0):
        raise ValueError(f"max_norm must be > 0 (inf for none), got {max_norm}")
    # every array apart from every other but X from Y (both only read): the parameters
    # are views of w, the gradients of g, and everything but the masks, X and Y is written
    # (the workspace buffers the step writes: ws.ins with masks only, no empty one)
    scratch = [(f"ws.{b}", getattr(ws, b)) for b in FORWARD_BUFFERS + BACKWARD_BUFFERS
               + (("ins",) if m is not None else ()) if getattr(ws, b).size]
    named = [("w", w), ("g", g), ("h", h), *states, *scratch,
             *([("masks", m)] if m is not None else []), ("X", X), ("Y", Y)]
    pairs = list(combinations(named, 2))[:-1]       # the last pair is (X, Y)
    if any(starmap(np.may_share_memory, [(a, b) for (_, a), (_, b) in pairs])):
        for (na, a), (nb, b) in pairs:
            if np.may_share_memory(a, b):
                raise ValueError(f"{na} overlaps {nb}")
