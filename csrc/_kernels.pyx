# The compiled kernels: Cython over BLAS (scipy.linalg.cython_blas), GIL released.
#
# Same functions, signatures and results as charrnn/_numpy_kernels.py, the reference.
# Each def validates its arguments with Python exceptions, then runs a nogil C loop on raw
# pointers. Directives (boundscheck, wraparound, ...) come from setup.py, not from here.

import math

import numpy as np

from charrnn.workspace import Workspace

from cython cimport floating
from libc.math cimport exp, expf, log, sqrt, sqrtf, tanh, tanhf, isfinite, INFINITY
from libc.stdint cimport int32_t, uintptr_t
from libc.stdlib cimport malloc, free
from libc.string cimport memcpy, memset

from _blas cimport gemm, gemv

NAME = "cython"

cdef Py_ssize_t _MAX = 2**31 - 1
cdef object _F32 = np.dtype(np.float32)
cdef object _F64 = np.dtype(np.float64)
cdef object _I32 = np.dtype(np.int32)


# ----------------------------------------------------------------------------- checks

cdef object _array(str name, object a, object dtype=None, int ndim=-1, bint out=False):
    if not isinstance(a, np.ndarray):
        raise TypeError(f"{name} must be a numpy.ndarray, not {type(a).__name__}")
    if dtype is not None and a.dtype != dtype:
        raise TypeError(f"{name} must have dtype {dtype.name}, not {a.dtype}")
    if ndim >= 0 and a.ndim != ndim:
        raise ValueError(f"{name} must be {ndim}-D, got shape {a.shape}")
    if not a.flags.c_contiguous:
        raise ValueError(f"{name} must be C-contiguous")
    if out and not a.flags.writeable:
        raise ValueError(f"{name} is read-only; an output array must be writeable")
    if a.size > _MAX:
        raise ValueError(f"{name} has a dimension of 2**31 or more: {a.shape}")
    return a


cdef _shape(str name, object a, tuple shape):
    if a.shape != shape:
        raise ValueError(f"{name} must have shape {shape}, got {a.shape}")


cdef tuple _check_params(Wxh, Whh, Why, bh, by):
    """Validate the five parameters; return (H, V, dtype)."""
    _array("Wxh", Wxh, None, 2)
    dtype = Wxh.dtype
    if dtype != _F32 and dtype != _F64:
        raise TypeError(f"Wxh must have dtype float32 or float64, not {dtype}")
    H, V = Wxh.shape
    if H < 1 or V < 1:
        raise ValueError(f"Wxh must have shape (H, V) with H, V >= 1, got {Wxh.shape}")
    _array("Whh", Whh, dtype); _shape("Whh", Whh, (H, H))
    _array("Why", Why, dtype); _shape("Why", Why, (V, H))
    _array("bh", bh, dtype); _shape("bh", bh, (H,))
    _array("by", by, dtype); _shape("by", by, (V,))
    return H, V, dtype


cdef _check_ids(str name, object ids, Py_ssize_t V, object shape=None):
    """int32, C-contiguous, the given shape, every id in [0, V), checked in one C pass."""
    _array(name, ids)
    if ids.dtype != _I32:
        raise TypeError(f"{name} must have dtype int32, not {ids.dtype}")
    if shape is not None:
        _shape(name, ids, shape)
    cdef const int32_t[::1] flat = ids.reshape(-1)
    cdef Py_ssize_t i, n = flat.shape[0]
    cdef Py_ssize_t bad = -1
    with nogil:
        for i in range(n):
            if flat[i] < 0 or flat[i] >= V:
                bad = i
                break
    if bad >= 0:
        pos = list(np.unravel_index(bad, ids.shape))
        raise ValueError(f"{name}{[int(p) for p in pos]} = {flat[bad]} is not a valid id "
                         f"in [0, {V})")


cdef inline bint _overlap(object a, object b):
    """True when two arrays' memory ranges intersect (numpy.may_share_memory's test)."""
    cdef uintptr_t a0 = a.__array_interface__["data"][0]
    cdef uintptr_t b0 = b.__array_interface__["data"][0]
    cdef uintptr_t a1 = a0 + <uintptr_t>a.nbytes
    cdef uintptr_t b1 = b0 + <uintptr_t>b.nbytes
    return a0 < b1 and b0 < a1 and a.nbytes > 0 and b.nbytes > 0


cdef _no_alias(list outs, list ins):
    for oname, o in outs:
        for iname, i in ins:
            if _overlap(o, i):
                raise ValueError(f"output {oname} overlaps input {iname}")


cdef tuple _check_chunk(Wxh, Whh, Why, bh, by, X, Y, h0, hlast, ws):
    H, V, dtype = _check_params(Wxh, Whh, Why, bh, by)
    _array("X", X, None, 2)
    B, T = X.shape
    if B < 1 or T < 1:
        raise ValueError(f"X must have shape (B, T) with B, T >= 1, got {X.shape}")
    if B * T > _MAX or T * B * max(H, V) > _MAX:
        raise ValueError(f"chunk (B={B}, T={T}) too large for 32-bit BLAS indices")
    _check_ids("X", X, V)
    _check_ids("Y", Y, V, (B, T))
    _array("h0", h0, dtype); _shape("h0", h0, (B, H))
    _array("hlast", hlast, dtype, -1, True); _shape("hlast", hlast, (B, H))
    if not isinstance(ws, Workspace):
        raise TypeError(f"ws must be a charrnn.Workspace, not {type(ws).__name__}")
    if not ws.fits(B, T, H, V, dtype):
        raise ValueError(f"{ws!r} does not fit a chunk B={B}, T={T}, H={H}, V={V}, "
                         f"dtype={dtype.name}")
    _no_alias([("hlast", hlast)], [("Wxh", Wxh), ("Whh", Whh), ("Why", Why), ("bh", bh),
                                   ("by", by), ("X", X), ("Y", Y)])
    return B, T, H, V, dtype


# ----------------------------------------------------------------------------- forward

cdef inline void _tanh(floating* a, Py_ssize_t n) noexcept nogil:
    cdef Py_ssize_t k
    for k in range(n):
        if floating is float:
            a[k] = tanhf(a[k])
        else:
            a[k] = tanh(a[k])


cdef inline floating _exp(floating x) noexcept nogil:
    if floating is float:
        return expf(x)
    else:
        return exp(x)


cdef inline void _step(const floating* Wxh, const floating* Whh, const floating* bh,
                       const int32_t* x, Py_ssize_t xstride, int B, int H, int V,
                       const floating* hprev, floating* h) noexcept nogil:
    """h = tanh(Wxh[:, x].T + hprev @ Whh.T + bh) for B streams; h must not alias hprev."""
    cdef Py_ssize_t b, i, xi
    for b in range(B):
        xi = x[b * xstride]
        for i in range(H):
            # a[b, :] = Wxh[:, x[b]] + bh               a column gather, no one-hot
            h[b * H + i] = Wxh[i * V + xi] + bh[i]
    if B == 1:
        # h += Whh @ hprev                              (H,) += (H, H) @ (H,)
        gemv(False, H, H, <floating>1, Whh, H, hprev, <floating>1, h)
    else:
        # h += hprev @ Whh.T                            (B, H) += (B, H) @ (H, H).T
        gemm(False, True, B, H, H, <floating>1, hprev, H, Whh, H, <floating>1, h, H)
    _tanh(h, B * H)


cdef double _forward(const floating* Wxh, const floating* Whh, const floating* Why,
                     const floating* bh, const floating* by, const int32_t* X,
                     const int32_t* Y, const floating* h0, int B, int T, int H, int V,
                     floating* hs, floating* zs, bint grad) noexcept nogil:
    """Recurrence, output layer, softmax and loss. With grad, leaves dz in zs."""
    cdef Py_ssize_t t, b, j, r, N = <Py_ssize_t>T * B
    cdef floating m, e, s, zy
    cdef floating* row
    cdef double loss = 0
    cdef int y
    memcpy(hs, h0, B * H * sizeof(floating))                # hs[0] = h0
    for t in range(T):
        _step(Wxh, Whh, bh, X + t, T, B, H, V, hs + t * B * H, hs + (t + 1) * B * H)
    for r in range(N):
        memcpy(zs + r * V, by, V * sizeof(floating))
    # Z = Hs @ Why.T + by                               (T*B, V), all steps in one GEMM
    gemm(False, True, <int>N, V, H, <floating>1, hs + B * H, H, Why, H, <floating>1, zs, V)
    # stable softmax; -log p[y] = log(sum exp(z - max)) - (z[y] - max); dz = (p - onehot)/B
    for t in range(T):
        for b in range(B):
            row = zs + (t * B + b) * V
            y = Y[b * T + t]
            m = row[0]
            for j in range(1, V):
                if row[j] > m:
                    m = row[j]
            zy = row[y] - m
            s = 0
            for j in range(V):
                e = _exp(row[j] - m)
                row[j] = e
                s = s + e
            loss += log(<double>s) - <double>zy
            if grad:
                for j in range(V):
                    row[j] = row[j] / s                       # p
                row[y] -= 1
                if B != 1:
                    for j in range(V):
                        row[j] = row[j] / <floating>B
    return loss / B


cdef double _loss_and_grads(const floating* Wxh, const floating* Whh, const floating* Why,
                            const floating* bh, const floating* by,
                            const int32_t* X, const int32_t* Y, const floating* h0,
                            floating* dWxh, floating* dWhh, floating* dWhy,
                            floating* dbh, floating* dby, floating* hlast,
                            int B, int T, int H, int V,
                            floating* hs, floating* zs, floating* dhs,
                            floating* dhnext) noexcept nogil:
    cdef Py_ssize_t t, b, i, j, k, r, N = <Py_ssize_t>T * B
    cdef floating* da
    cdef const floating* h
    cdef const floating* dz
    cdef double loss = _forward(Wxh, Whh, Why, bh, by, X, Y, h0, B, T, H, V, hs, zs, True)

    # backward, output side: single GEMMs over all T steps
    # dWhy = dZ.T @ Hs                                  (V, H) = (V, T*B) @ (T*B, H)
    gemm(True, False, V, H, <int>N, <floating>1, zs, V, hs + B * H, H, <floating>0, dWhy, H)
    # dby = dZ.sum(axis=0)                              (V,)
    memset(dby, 0, V * sizeof(floating))
    for r in range(N):
        dz = zs + r * V
        for j in range(V):
            dby[j] += dz[j]
    # dH = dZ @ Why                                     (T*B, H) = (T*B, V) @ (V, H)
    gemm(False, False, <int>N, H, V, <floating>1, zs, V, Why, H, <floating>0, dhs, H)

    # backward through time: only da_t @ Whh is sequential
    memset(dhnext, 0, B * H * sizeof(floating))
    for t in range(T - 1, -1, -1):
        da = dhs + t * B * H
        h = hs + (t + 1) * B * H
        for k in range(B * H):
            # da = (1 - h**2) * (dh + dhnext)
            da[k] = (1 - h[k] * h[k]) * (da[k] + dhnext[k])
        if t > 0:
            if B == 1:
                # dhnext = Whh.T @ da                   (H,) = (H, H).T @ (H,)
                gemv(True, H, H, <floating>1, Whh, H, da, <floating>0, dhnext)
            else:
                # dhnext = da @ Whh                     (B, H) = (B, H) @ (H, H)
                gemm(False, False, B, H, H, <floating>1, da, H, Whh, H, <floating>0,
                     dhnext, H)
    # dWhh = dA.T @ hs[:T]                              (H, H) = (H, T*B) @ (T*B, H)
    gemm(True, False, H, H, <int>N, <floating>1, dhs, H, hs, H, <floating>0, dWhh, H)
    # dbh = dA.sum(axis=0);  dWxh[:, x] += da           a scatter, the gather's twin
    memset(dbh, 0, H * sizeof(floating))
    memset(dWxh, 0, <Py_ssize_t>H * V * sizeof(floating))
    for t in range(T):
        for b in range(B):
            da = dhs + (t * B + b) * H
            j = X[b * T + t]
            for i in range(H):
                dbh[i] += da[i]
                dWxh[i * V + j] += da[i]
    memcpy(hlast, hs + <Py_ssize_t>T * B * H, B * H * sizeof(floating))
    return loss


cdef double _run_grads(const floating[:, ::1] Wxh, const floating[:, ::1] Whh,
                       const floating[:, ::1] Why, const floating[::1] bh,
                       const floating[::1] by, const int32_t[:, ::1] X,
                       const int32_t[:, ::1] Y, const floating[:, ::1] h0,
                       floating[:, ::1] dWxh, floating[:, ::1] dWhh, floating[:, ::1] dWhy,
                       floating[::1] dbh, floating[::1] dby, floating[:, ::1] hlast,
                       floating[::1] hs, floating[::1] zs, floating[::1] dhs,
                       floating[::1] dhnext):
    cdef int B = X.shape[0], T = X.shape[1], H = Wxh.shape[0], V = Wxh.shape[1]
    cdef double L
    with nogil:
        L = _loss_and_grads(&Wxh[0, 0], &Whh[0, 0], &Why[0, 0], &bh[0], &by[0],
                            &X[0, 0], &Y[0, 0], &h0[0, 0], &dWxh[0, 0], &dWhh[0, 0],
                            &dWhy[0, 0], &dbh[0], &dby[0], &hlast[0, 0], B, T, H, V,
                            &hs[0], &zs[0], &dhs[0], &dhnext[0])
    return L


cdef double _run_forward(const floating[:, ::1] Wxh, const floating[:, ::1] Whh,
                         const floating[:, ::1] Why, const floating[::1] bh,
                         const floating[::1] by, const int32_t[:, ::1] X,
                         const int32_t[:, ::1] Y, const floating[:, ::1] h0,
                         floating[:, ::1] hlast, floating[::1] hs, floating[::1] zs):
    cdef int B = X.shape[0], T = X.shape[1], H = Wxh.shape[0], V = Wxh.shape[1]
    cdef double L
    with nogil:
        L = _forward(&Wxh[0, 0], &Whh[0, 0], &Why[0, 0], &bh[0], &by[0], &X[0, 0],
                     &Y[0, 0], &h0[0, 0], B, T, H, V, &hs[0], &zs[0], False)
        memcpy(&hlast[0, 0], &hs[0] + <Py_ssize_t>T * B * H, B * H * sizeof(floating))
    return L


def loss_and_grads(Wxh not None, Whh not None, Why not None, bh not None, by not None,
                   X not None, Y not None, h0 not None,
                   dWxh not None, dWhh not None, dWhy not None, dbh not None,
                   dby not None, hlast not None, ws not None):
    """Loss of a (B, T) chunk and its gradients; the gradients overwrite dW*, db*.

    See ``charrnn._numpy_kernels.loss_and_grads``, the reference twin.
    """
    B, T, H, V, dtype = _check_chunk(Wxh, Whh, Why, bh, by, X, Y, h0, hlast, ws)
    grads = [("dWxh", dWxh), ("dWhh", dWhh), ("dWhy", dWhy), ("dbh", dbh), ("dby", dby)]
    for (name, g), p in zip(grads, (Wxh, Whh, Why, bh, by)):
        _array(name, g, dtype, -1, True)
        _shape(name, g, p.shape)
    _no_alias(grads + [("hlast", hlast)],
              [("Wxh", Wxh), ("Whh", Whh), ("Why", Why), ("bh", bh), ("by", by),
               ("X", X), ("Y", Y), ("h0", h0)])
    for i in range(5):
        for j in range(i + 1, 5):
            if _overlap(grads[i][1], grads[j][1]):
                raise ValueError(f"output {grads[i][0]} overlaps output {grads[j][0]}")
    if dtype == _F64:
        return _run_grads[double](Wxh, Whh, Why, bh, by, X, Y, h0, dWxh, dWhh, dWhy,
                                  dbh, dby, hlast, ws.hs, ws.zs, ws.dhs, ws.dhnext)
    return _run_grads[float](Wxh, Whh, Why, bh, by, X, Y, h0, dWxh, dWhh, dWhy,
                             dbh, dby, hlast, ws.hs, ws.zs, ws.dhs, ws.dhnext)


def loss(Wxh not None, Whh not None, Why not None, bh not None, by not None,
         X not None, Y not None, h0 not None, hlast not None, ws not None):
    """Forward-only loss of a (B, T) chunk: ``loss_and_grads`` without gradient work."""
    B, T, H, V, dtype = _check_chunk(Wxh, Whh, Why, bh, by, X, Y, h0, hlast, ws)
    if dtype == _F64:
        return _run_forward[double](Wxh, Whh, Why, bh, by, X, Y, h0, hlast, ws.hs, ws.zs)
    return _run_forward[float](Wxh, Whh, Why, bh, by, X, Y, h0, hlast, ws.hs, ws.zs)


# ----------------------------------------------------------------------------- sampling

cdef int _draw(const floating* z, int V, double u, floating temperature, int k,
               floating* e, int* top) noexcept nogil:
    """One id from logits z (V,) by inverse CDF, in the exact order of
    _numpy_kernels.draw: e = exp(z/T - max(z/T)), zero outside the top k, then the first
    id whose running sum exceeds u * total. top is scratch for k ints."""
    cdef int j, i, n = 0, best = 0
    cdef floating m, c
    cdef double target
    if temperature == 0:
        for j in range(1, V):                             # the first maximum
            if z[j] > z[best]:
                best = j
        return best
    m = z[0] / temperature
    for j in range(1, V):
        if z[j] / temperature > m:
            m = z[j] / temperature
    if 0 < k < V:
        # the k largest z, ties to the lower id: insertion into a sorted list of k
        for j in range(V):
            if n == k and not (z[j] > z[top[k - 1]]):
                continue
            i = n if n < k else k - 1
            while i > 0 and z[j] > z[top[i - 1]]:
                top[i] = top[i - 1]
                i -= 1
            top[i] = j
            if n < k:
                n += 1
        memset(e, 0, V * sizeof(floating))
        for i in range(k):
            e[top[i]] = _exp(z[top[i]] / temperature - m)
    else:
        for j in range(V):
            e[j] = _exp(z[j] / temperature - m)
    c = 0
    for j in range(V):
        c = c + e[j]
    target = u * <double>c
    c = 0
    for j in range(V):
        c = c + e[j]
        if <double>c > target:
            return j
    for j in range(V - 1, -1, -1):                        # u * total rounded past the end
        if e[j] != 0:
            return j
    return 0


cdef _run_sample(const floating[:, ::1] Wxh, const floating[:, ::1] Whh,
                 const floating[:, ::1] Why, const floating[::1] bh, const floating[::1] by,
                 floating[:, ::1] h, const int32_t[::1] first_ids, const double[:, ::1] U,
                 double temperature, int k, int32_t[:, ::1] out, floating[:, ::1] a,
                 floating[:, ::1] z, floating[::1] e, int[::1] top):
    cdef int n = U.shape[0], B = h.shape[0], H = Wxh.shape[0], V = Wxh.shape[1]
    cdef int i, b
    cdef const int32_t* x = &first_ids[0]
    cdef floating temp = <floating>temperature
    with nogil:
        for i in range(n):
            _step(&Wxh[0, 0], &Whh[0, 0], &bh[0], x, 1, B, H, V, &h[0, 0], &a[0, 0])
            memcpy(&h[0, 0], &a[0, 0], B * H * sizeof(floating))
            for b in range(B):
                memcpy(&z[b, 0], &by[0], V * sizeof(floating))
            if B == 1:
                # z += Why @ h                          (V,) += (V, H) @ (H,)
                gemv(False, V, H, <floating>1, &Why[0, 0], H, &h[0, 0], <floating>1,
                     &z[0, 0])
            else:
                # z += h @ Why.T                        (B, V) += (B, H) @ (H, V)
                gemm(False, True, B, V, H, <floating>1, &h[0, 0], H, &Why[0, 0], H,
                     <floating>1, &z[0, 0], V)
            for b in range(B):
                out[i, b] = _draw(&z[b, 0], V, U[i, b], temp, k, &e[0], &top[0])
            x = &out[i, 0]


cdef tuple _check_sample(Wxh, Whh, Why, bh, by, h, first_ids, uniforms, temperature, top_k):
    H, V, dtype = _check_params(Wxh, Whh, Why, bh, by)
    _array("h", h, dtype, 2, True)
    B = h.shape[0]
    if B < 1 or h.shape[1] != H:
        raise ValueError(f"h must have shape (B, {H}) with B >= 1, got {h.shape}")
    _array("uniforms", uniforms, _F64, 2)
    n = uniforms.shape[0]
    if uniforms.shape[1] != B:
        raise ValueError(f"uniforms must have shape (n, {B}), got {uniforms.shape}")
    _check_ids("first_ids", first_ids, V, (B,))
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
    return B, n, H, V, k, dtype


def sample(Wxh not None, Whh not None, Why not None, bh not None, by not None,
           h not None, first_ids not None, uniforms not None, temperature=1.0, top_k=None):
    """Draw n ids for each of B streams, advancing the state ``h`` in place.

    See ``charrnn._numpy_kernels.sample``, the reference twin. Returns int32 (n, B).
    """
    B, n, H, V, k, dtype = _check_sample(Wxh, Whh, Why, bh, by, h, first_ids, uniforms,
                                         temperature, top_k)
    out = np.empty((n, B), np.int32)
    a = np.empty((B, H), dtype)
    z = np.empty((B, V), dtype)
    e = np.empty(V, dtype)
    top = np.empty(V, np.intc)
    if dtype == _F64:
        _run_sample[double](Wxh, Whh, Why, bh, by, h, first_ids, uniforms,
                            float(temperature), k, out, a, z, e, top)
    else:
        _run_sample[float](Wxh, Whh, Why, bh, by, h, first_ids, uniforms,
                           float(temperature), k, out, a, z, e, top)
    return out


# ----------------------------------------------------------------------------- clipping

cdef object _vec(str name, object a, object dtype=None, bint out=False):
    _array(name, a, None, 1, out)
    if a.dtype != _F32 and a.dtype != _F64:
        raise TypeError(f"{name} must have dtype float32 or float64, not {a.dtype}")
    if dtype is not None and a.dtype != dtype:
        raise TypeError(f"{name} must have dtype {dtype.name}, not {a.dtype}")
    return a


cdef _check_clip(double clip, double scale):
    if not (clip > 0):
        raise ValueError(f"clip must be > 0 (inf for none), got {clip}")
    if not (isfinite(scale) and scale >= 0):
        raise ValueError(f"scale must be finite and >= 0, got {scale}")


cdef _check_update(w, g, list states, list hypers, double clip, double scale):
    _vec("w", w, None, True)
    _vec("g", g, w.dtype)
    _shape("g", g, w.shape)
    for name, s in states:
        _vec(name, s, w.dtype, True)
        _shape(name, s, w.shape)
    _no_alias([("w", w)] + states, [("g", g)])
    _no_alias([("w", w)], states)
    for name, value in hypers:
        if not math.isfinite(value):
            raise ValueError(f"{name} must be finite, got {value}")
    _check_clip(clip, scale)


cdef double _sumsq(const floating[::1] g) noexcept:
    cdef Py_ssize_t i
    cdef double s = 0
    with nogil:
        for i in range(g.shape[0]):
            s += <double>g[i] * <double>g[i]
    return s


def sumsq(g not None):
    """Sum of squares of a 1-D array, accumulated in float64 (for the global norm)."""
    _vec("g", g)
    return _sumsq[double](g) if g.dtype == _F64 else _sumsq[float](g)


cdef void _clip(floating[::1] g, floating lo, floating hi, floating scale) noexcept:
    cdef Py_ssize_t i
    cdef floating x
    with nogil:
        for i in range(g.shape[0]):
            x = g[i] * scale
            if x > hi:
                x = hi
            elif x < lo:
                x = lo
            g[i] = x


def clip_(g not None, double clip):
    """Clip ``g`` element-wise to [-clip, clip] in place."""
    _vec("g", g, None, True)
    _check_clip(clip, 1.0)
    if g.dtype == _F64:
        _clip[double](g, -clip, clip, 1)
    else:
        _clip[float](g, -clip, clip, 1)


def scale_(g not None, double scale):
    """Multiply ``g`` by ``scale`` in place (global-norm clipping)."""
    _vec("g", g, None, True)
    _check_clip(INFINITY, scale)
    if g.dtype == _F64:
        _clip[double](g, -INFINITY, INFINITY, scale)
    else:
        _clip[float](g, -INFINITY, INFINITY, scale)


# ----------------------------------------------------------------------------- optimizers
#
# Fused in-place loops: g' = clip(g * scale, -clip, clip), then the update, in one pass.
# g is not modified. The arithmetic order follows the NumPy twin's expressions.

cdef inline floating _g(floating g, floating scale, floating clip) noexcept nogil:
    if scale != 1:
        g = g * scale
    if g > clip:
        return clip
    if g < -clip:
        return -clip
    return g


cdef void _sgd(floating[::1] w, const floating[::1] g, floating lr, floating clip,
               floating scale) noexcept:
    cdef Py_ssize_t i
    with nogil:
        for i in range(w.shape[0]):
            # w -= lr * g
            w[i] -= lr * _g(g[i], scale, clip)


cdef void _adagrad(floating[::1] w, const floating[::1] g, floating[::1] m, floating lr,
                   floating eps, floating clip, floating scale) noexcept:
    cdef Py_ssize_t i
    cdef floating gi
    with nogil:
        for i in range(w.shape[0]):
            gi = _g(g[i], scale, clip)
            # m += g*g;  w -= lr * g / sqrt(m + eps)
            m[i] += gi * gi
            if floating is float:
                w[i] -= lr * gi / sqrtf(m[i] + eps)
            else:
                w[i] -= lr * gi / sqrt(m[i] + eps)


cdef void _rmsprop(floating[::1] w, const floating[::1] g, floating[::1] v, floating lr,
                   floating rho, floating omr, floating eps, floating clip,
                   floating scale) noexcept:
    cdef Py_ssize_t i
    cdef floating gi
    with nogil:
        for i in range(w.shape[0]):
            gi = _g(g[i], scale, clip)
            # v = rho*v + (1-rho)*g*g;  w -= lr * g / (sqrt(v) + eps)
            v[i] = v[i] * rho + omr * (gi * gi)
            if floating is float:
                w[i] -= lr * gi / (sqrtf(v[i]) + eps)
            else:
                w[i] -= lr * gi / (sqrt(v[i]) + eps)


cdef void _adam(floating[::1] w, const floating[::1] g, floating[::1] m, floating[::1] v,
                floating lr, floating b1, floating omb1, floating b2, floating omb2,
                floating c1, floating c2, floating eps, floating clip,
                floating scale) noexcept:
    cdef Py_ssize_t i
    cdef floating gi
    with nogil:
        for i in range(w.shape[0]):
            gi = _g(g[i], scale, clip)
            # m = b1*m + (1-b1)*g;  v = b2*v + (1-b2)*g*g
            m[i] = m[i] * b1 + omb1 * gi
            v[i] = v[i] * b2 + omb2 * (gi * gi)
            # w -= lr * (m / c1) / (sqrt(v / c2) + eps)
            if floating is float:
                w[i] -= lr * (m[i] / c1) / (sqrtf(v[i] / c2) + eps)
            else:
                w[i] -= lr * (m[i] / c1) / (sqrt(v[i] / c2) + eps)


def sgd_update(w not None, g not None, double lr, double clip=5.0, double scale=1.0):
    """w -= lr * g'"""
    _check_update(w, g, [], [("lr", lr)], clip, scale)
    if w.dtype == _F64:
        _sgd[double](w, g, lr, clip, scale)
    else:
        _sgd[float](w, g, lr, clip, scale)


def adagrad_update(w not None, g not None, m not None, double lr, double eps=1e-8,
                   double clip=5.0, double scale=1.0):
    """m += g'*g';  w -= lr * g' / sqrt(m + eps)   (the classic)"""
    _check_update(w, g, [("m", m)], [("lr", lr), ("eps", eps)], clip, scale)
    if w.dtype == _F64:
        _adagrad[double](w, g, m, lr, eps, clip, scale)
    else:
        _adagrad[float](w, g, m, lr, eps, clip, scale)


def rmsprop_update(w not None, g not None, v not None, double lr, double rho=0.99,
                   double eps=1e-8, double clip=5.0, double scale=1.0):
    """v = rho*v + (1-rho)*g'*g';  w -= lr * g' / (sqrt(v) + eps)"""
    _check_update(w, g, [("v", v)], [("lr", lr), ("rho", rho), ("eps", eps)], clip, scale)
    if w.dtype == _F64:
        _rmsprop[double](w, g, v, lr, rho, 1 - rho, eps, clip, scale)
    else:
        _rmsprop[float](w, g, v, lr, rho, 1 - rho, eps, clip, scale)


def adam_update(w not None, g not None, m not None, v not None, double lr,
                double beta1=0.9, double beta2=0.999, double eps=1e-8, long step=1,
                double clip=5.0, double scale=1.0):
    """Adam with bias correction; ``step`` counts from 1."""
    _check_update(w, g, [("m", m), ("v", v)],
                  [("lr", lr), ("beta1", beta1), ("beta2", beta2), ("eps", eps)],
                  clip, scale)
    if step < 1:
        raise ValueError(f"step must be >= 1, got {step}")
    c1 = 1 - beta1 ** step
    c2 = 1 - beta2 ** step
    if w.dtype == _F64:
        _adam[double](w, g, m, v, lr, beta1, 1 - beta1, beta2, 1 - beta2, c1, c2, eps,
                      clip, scale)
    else:
        _adam[float](w, g, m, v, lr, beta1, 1 - beta1, beta2, 1 - beta2, c1, c2, eps,
                     clip, scale)
