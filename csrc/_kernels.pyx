# The compiled kernels: Cython over BLAS (scipy.linalg.cython_blas), GIL released.
#
# Same functions, signatures and results as charrnn/kernels/reference.py, the NumPy
# reference. Each def runs cheap C-level checks of its arguments, then a nogil C loop on
# raw pointers; whatever the C checks refuse goes to charrnn.kernels.checks, which both
# twins share, to word the error. The parameters are one flat vector whose parts lie at
# the offsets its charrnn.layout.Layout gives. Directives (boundscheck, wraparound, ...)
# come from setup.py, not from here.

import sys

import numpy as np

from charrnn import config as _config
from charrnn.kernels import checks as _checks
from charrnn.kernels.reference import composed_step as _composed_step
from charrnn.kernels.rules import RULES as _RULE_TABLE
from charrnn.layout import Layout as _Layout
from charrnn.limits import INT_MAX as _INT_MAX
from charrnn.workspace import Workspace

from cpython.buffer cimport (PyBUF_C_CONTIGUOUS, PyBUF_FORMAT, PyBUF_WRITABLE,
                             PyBuffer_Release, PyObject_GetBuffer)
from cpython.mem cimport PyMem_Free, PyMem_Malloc
from cython cimport floating
from libc.math cimport log, sqrt, isfinite, INFINITY
from libc.stdint cimport int32_t, int64_t, uintptr_t
from libc.string cimport memcpy, memset

from _blas cimport gemm, gemv

NAME = "cython"

cdef Py_ssize_t _MAX = _INT_MAX
cdef object _F32 = np.dtype(np.float32)
cdef object _F64 = np.dtype(np.float64)


# ----------------------------------------------------------------------------- fast checks
#
# The common call runs on typed memoryviews, whose acquisition already checks dtype, ndim,
# C-contiguity and writability; the shapes, ids and overlaps are then checked in C. Any
# failure runs charrnn.kernels.checks, which names the argument and the problem.

class _Invalid(ValueError):
    """Raised by a C-level check; the caller reruns the Python checks for the message."""


cdef inline bint _apart(const void* a, Py_ssize_t na, const void* b, Py_ssize_t nb) noexcept nogil:
    """True when byte ranges [a, a+na) and [b, b+nb) do not intersect."""
    cdef uintptr_t a0 = <uintptr_t>a, b0 = <uintptr_t>b
    return na == 0 or nb == 0 or a0 + <uintptr_t>na <= b0 or b0 + <uintptr_t>nb <= a0


cdef inline bint _ids_ok(const int32_t* ids, Py_ssize_t n, int V) noexcept nogil:
    cdef Py_ssize_t i
    cdef bint ok = True
    for i in range(n):
        ok &= (ids[i] >= 0) & (ids[i] < V)
    return ok


cdef inline bint _sizes_ok(Py_ssize_t B, Py_ssize_t T, Py_ssize_t H, Py_ssize_t V) noexcept nogil:
    return (B >= 1 and T >= 1 and H >= 1 and V >= 1 and B * T <= _MAX
            and T * B * (H if H > V else V) <= _MAX and H * (H if H > V else V) <= _MAX)


cdef enum:                              # the cells, Dims.cell
    _RNN = 0
    _LSTM = 1
    _GRU = 2

_CELL_CODES = {"rnn": _RNN, "lstm": _LSTM, "gru": _GRU}


cdef struct Dims:
    # what a kernel reads of a charrnn.layout.Layout
    int H, V, itemsize
    Py_ssize_t n                        # the length of the flat vector
    Py_ssize_t o[5]                     # the classic model's: offsets of Wxh, Whh, Why, bh, by
    # any model (design.md section 2b; _cells.pxi)
    bint classic                        # the 1-layer rnn: o[] is set
    int cell, L, G, S                   # _RNN/_LSTM/_GRU, layers, gates, state parts
    Py_ssize_t lo[4]                    # layer 0's Wx, Wh, bx, bh (bh: the GRU's, else -1)
    Py_ssize_t l1, stride               # layer l >= 1 starts at l1 + (l-1)*stride,
    Py_ssize_t rel[4]                   # and its Wx, Wh, bx, bh at these offsets from there
    Py_ssize_t why, by                  # the output layer's


cdef bint _layout_dims(object layout, Dims* d) noexcept:
    """Fill ``d`` from ``layout``, any cell and depth; False (for the checks to word) if
    it is no Layout.

    A Layout is immutable, cannot be subclassed and computes its own offsets, so they are
    taken as they are; the regular spacing of the layers above the first is checked
    against them (the kernels compute where layer l lies).
    """
    cdef int i, l, k, P
    cdef Py_ssize_t GH
    cdef const int64_t[::1] off
    if type(layout) is not _Layout:
        return False
    try:
        off = layout.offsets
        d.H, d.V, d.n = layout.hidden_size, layout.vocab_size, layout.size
        d.itemsize = layout.dtype.itemsize
        d.cell, d.L, d.G = _CELL_CODES[layout.cell], layout.num_layers, layout.gates
        d.S = layout.state_parts
        GH = <Py_ssize_t>d.G * d.H
        d.classic = d.cell == _RNN and d.L == 1
        if d.classic:
            if off.shape[0] != 5:
                return False
            for i in range(5):
                d.o[i] = off[i]
            d.lo[:] = [off[0], off[1], off[3], -1]
            d.why, d.by = off[2], off[4]
            d.l1 = d.stride = 0
            d.rel[:] = [0, 0, 0, 0]
            return True
        P = 4 if d.cell == _GRU else 3              # parameters per layer
        if off.shape[0] != P * d.L + 2:
            return False
        for k in range(4):
            d.lo[k] = off[k] if k < P else -1
        d.rel[:] = [0, GH * d.H, 2 * GH * d.H, 2 * GH * d.H + GH]
        d.stride = 2 * GH * d.H + (P - 2) * GH
        d.l1 = off[P] if d.L > 1 else 0
        for l in range(1, d.L):
            for k in range(P):
                if off[l * P + k] != d.l1 + (l - 1) * d.stride + d.rel[k]:
                    return False
        d.why, d.by = off[P * d.L], off[P * d.L + 1]
    except Exception:
        return False
    return True


cdef bint _dims(object layout, Dims* d) noexcept:
    """_layout_dims for the classic model (the 1-layer rnn) only: False for any other."""
    return _layout_dims(layout, d) and d.classic


cdef object _fast_dtype(object first, tuple arrays):
    """``first``'s dtype when every one of ``arrays`` is an ndarray, as the checks
    require; else None, and the call takes the checked path (a typed memoryview would
    take any buffer)."""
    for a in arrays:
        if not isinstance(a, np.ndarray):
            return None
    return first.dtype


cdef _checked_dims(object layout, Dims* d):
    """_layout_dims for a layout the checks have accepted."""
    if not _layout_dims(layout, d):
        raise TypeError(f"layout must be a charrnn.layout.Layout, not "
                        f"{type(layout).__name__}")


# ----------------------------------------------------------------------------- forward

cdef extern from "_vmath.h" nogil:
    double vm_expneg_d(double x)
    float vm_expneg_f(float x)
    void vm_tanh_inplace_d(double* a, Py_ssize_t n)
    void vm_tanh_inplace_f(float* a, Py_ssize_t n)
    void vm_expsub_inplace_d(double* a, double m, Py_ssize_t n)
    void vm_expsub_inplace_f(float* a, float m, Py_ssize_t n)
    void vm_expscale_d(const double* z, double temp, double m, double* e, Py_ssize_t n)
    void vm_expscale_f(const float* z, float temp, float m, float* e, Py_ssize_t n)
    void vm_dtanh_d(double* da, const double* h, const double* dhnext, Py_ssize_t n)
    void vm_dtanh_f(float* da, const float* h, const float* dhnext, Py_ssize_t n)
    void vm_sgd_d(double* w, const double* g, Py_ssize_t n, double lr, double clip,
                  double scale)
    void vm_sgd_f(float* w, const float* g, Py_ssize_t n, float lr, float clip, float scale)
    void vm_adagrad_d(double* w, const double* g, double* m, Py_ssize_t n, double lr,
                      double eps, double clip, double scale)
    void vm_adagrad_f(float* w, const float* g, float* m, Py_ssize_t n, float lr, float eps,
                      float clip, float scale)
    void vm_rmsprop_d(double* w, const double* g, double* v, Py_ssize_t n, double lr,
                      double rho, double omr, double eps, double clip, double scale)
    void vm_rmsprop_f(float* w, const float* g, float* v, Py_ssize_t n, float lr, float rho,
                      float omr, float eps, float clip, float scale)
    void vm_adam_d(double* w, const double* g, double* m, double* v, Py_ssize_t n, double lr,
                   double b1, double omb1, double b2, double omb2, double c1, double c2,
                   double eps, double clip, double scale)
    void vm_adam_f(float* w, const float* g, float* m, float* v, Py_ssize_t n, float lr,
                   float b1, float omb1, float b2, float omb2, float c1, float c2,
                   float eps, float clip, float scale)
    void vm_clip_d(double* g, Py_ssize_t n, double clip, double scale)
    void vm_clip_f(float* g, Py_ssize_t n, float clip, float scale)
    Py_ssize_t vm_count_le_d(const double* c, Py_ssize_t n, double t)
    Py_ssize_t vm_count_le_f(const float* c, Py_ssize_t n, double t)
    double vm_max_d(const double* z, Py_ssize_t n)
    float vm_max_f(const float* z, Py_ssize_t n)
    double vm_sumsq_d(const double* g, Py_ssize_t n)
    double vm_sumsq_f(const float* g, Py_ssize_t n)


cdef inline void _tanh(floating* a, Py_ssize_t n) noexcept nogil:
    # a = np.tanh(a)
    if floating is float:
        vm_tanh_inplace_f(a, n)
    else:
        vm_tanh_inplace_d(a, n)


cdef inline void _expsub(floating* a, floating m, Py_ssize_t n) noexcept nogil:
    # a = np.exp(a - m)
    if floating is float:
        vm_expsub_inplace_f(a, m, n)
    else:
        vm_expsub_inplace_d(a, m, n)


cdef inline floating _expneg(floating x) noexcept nogil:
    # np.exp(x) for x <= 0
    if floating is float:
        return vm_expneg_f(x)
    else:
        return vm_expneg_d(x)


cdef inline void _step(const floating* Wxh, const floating* Whh, const floating* bh,
                       const int32_t* x, Py_ssize_t xstride, int B, int H, int V,
                       const floating* hprev, floating* h,
                       const floating* WbT=NULL) noexcept nogil:
    """h = tanh(Wxh[:, x].T + hprev @ Whh.T + bh) for B streams; h must not alias hprev.
    Given WbT = Wxh.T + bh (V, H, _fold_bias_T), the gather copies its row x instead:
    the same values, contiguous."""
    cdef Py_ssize_t b, i, xi
    for b in range(B):
        xi = x[b * xstride]
        if WbT != NULL:
            # a[b, :] = WbT[x[b]]                       a row copy
            memcpy(h + b * H, WbT + xi * H, H * sizeof(floating))
        else:
            for i in range(H):
                # a[b, :] = Wxh[:, x[b]] + bh           a column gather, no one-hot
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
    cdef Py_ssize_t t
    memcpy(hs, h0, B * H * sizeof(floating))                # hs[0] = h0
    for t in range(T):
        _step(Wxh, Whh, bh, X + t, T, B, H, V, hs + t * B * H, hs + (t + 1) * B * H)
    return _output_loss(Why, by, hs + B * H, Y, B, T, H, V, zs, grad)


cdef double _output_loss(const floating* Why, const floating* by, const floating* Hs,
                         const int32_t* Y, int B, int T, int H, int V, floating* zs,
                         bint grad) noexcept nogil:
    """The output layer on the top layer's states Hs (T*B, H), softmax and loss. With
    grad, leaves dz in zs."""
    cdef Py_ssize_t t, b, j, r, N = <Py_ssize_t>T * B
    cdef floating m, s
    cdef floating* row
    cdef double loss = 0, sd
    cdef int y
    for r in range(N):
        memcpy(zs + r * V, by, V * sizeof(floating))
    # Z = Hs @ Why.T + by                               (T*B, V), all steps in one GEMM
    gemm(False, True, <int>N, V, H, <floating>1, Hs, H, Why, H, <floating>1, zs, V)
    # stable softmax; -log p[y] = log(sum exp(z - max)) - (z[y] - max); dz = (p - onehot)/B
    for t in range(T):
        for b in range(B):
            row = zs + (t * B + b) * V
            y = Y[b * T + t]
            m = row[0]
            for j in range(1, V):
                if row[j] > m:
                    m = row[j]
            loss -= <double>(row[y] - m)
            _expsub(row, m, V)
            s = 0
            sd = 0
            for j in range(V):
                s = s + row[j]
                # the loss sums the exps in double: for a confident float32 prediction
                # s = 1 + tiny, and rounding s to float would cost -log p its precision
                sd += <double>row[j]
            loss += log(sd)
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
    cdef Py_ssize_t t, b, i, j, r, N = <Py_ssize_t>T * B
    cdef floating* da
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
        # da = (1 - h**2) * (dh + dhnext)
        if floating is float:
            vm_dtanh_f(da, hs + (t + 1) * B * H, dhnext, B * H)
        else:
            vm_dtanh_d(da, hs + (t + 1) * B * H, dhnext, B * H)
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


cdef bint _chunk_ok(const Dims* d, const floating[::1] w, const int32_t[:, ::1] X,
                    const int32_t[:, ::1] Y, const floating[:, ::1] h0,
                    floating[:, ::1] hlast, floating[::1] hs, floating[::1] zs) noexcept:
    """The C-level twin of checks.chunk for memoryviews that were acquired already."""
    cdef Py_ssize_t B = X.shape[0], T = X.shape[1], H = d.H, V = d.V
    cdef Py_ssize_t sz = sizeof(floating)
    if not (d.itemsize == sz and w.shape[0] == d.n and _sizes_ok(B, T, H, V)
            and Y.shape[0] == B and Y.shape[1] == T
            and h0.shape[0] == B and h0.shape[1] == H and hlast.shape[0] == B
            and hlast.shape[1] == H and hs.shape[0] >= (T + 1) * B * H
            and zs.shape[0] >= T * B * V):
        return False
    if not (_ids_ok(&X[0, 0], B * T, <int>V) and _ids_ok(&Y[0, 0], B * T, <int>V)):
        return False
    cdef const void* o = &hlast[0, 0]
    cdef Py_ssize_t no = B * H * sz
    if not (o == <const void*>&h0[0, 0] or _apart(o, no, &h0[0, 0], no)):
        return False
    # no argument in the workspace's hs and zs, which the kernel overwrites
    cdef const void* a[5]
    cdef Py_ssize_t na[5]
    cdef int i
    a[:] = [&w[0], &X[0, 0], &Y[0, 0], &h0[0, 0], o]
    na[:] = [d.n * sz, B * T * 4, B * T * 4, B * H * sz, no]
    for i in range(5):
        if not (_apart(a[i], na[i], &hs[0], hs.shape[0] * sz)
                and _apart(a[i], na[i], &zs[0], zs.shape[0] * sz)):
            return False
    return (_apart(o, no, &w[0], d.n * sz) and _apart(o, no, &X[0, 0], B * T * 4)
            and _apart(o, no, &Y[0, 0], B * T * 4))


cdef double _run_grads(const Dims* d, const floating[::1] w, floating[::1] g,
                       const int32_t[:, ::1] X, const int32_t[:, ::1] Y,
                       const floating[:, ::1] h0, floating[:, ::1] hlast,
                       floating[::1] hs, floating[::1] zs, floating[::1] dhs,
                       floating[::1] dhnext) except? -1:
    cdef int B = X.shape[0], T = X.shape[1], H = d.H, V = d.V
    cdef Py_ssize_t sz = sizeof(floating), i, j
    cdef const floating* p
    cdef floating* q
    cdef double L
    if not _chunk_ok(d, w, X, Y, h0, hlast, hs, zs):
        raise _Invalid
    if not (g.shape[0] == d.n and dhs.shape[0] >= T * B * H and dhnext.shape[0] >= B * H):
        raise _Invalid
    p, q = &w[0], &g[0]                 # (the checks above made both non-empty)
    # the gradient apart from every input, from hlast and from the workspace; dhs and
    # dhnext apart from hlast and the inputs (_chunk_ok did hs, zs)
    cdef const void* a[10]
    cdef Py_ssize_t n[10]
    a[:] = [q, &hlast[0, 0], p, &X[0, 0], &Y[0, 0], &h0[0, 0], &hs[0], &zs[0], &dhs[0],
            &dhnext[0]]
    n[:] = [d.n * sz, B * H * sz, d.n * sz, B * T * 4, B * T * 4, B * H * sz,
            hs.shape[0] * sz, zs.shape[0] * sz, dhs.shape[0] * sz, dhnext.shape[0] * sz]
    for j in range(1, 10):
        if not _apart(a[0], n[0], a[j], n[j]):
            raise _Invalid
    for i in range(8, 10):
        for j in range(1, 6):
            if not _apart(a[i], n[i], a[j], n[j]):
                raise _Invalid
    with nogil:
        L = _loss_and_grads(p + d.o[0], p + d.o[1], p + d.o[2], p + d.o[3], p + d.o[4],
                            &X[0, 0], &Y[0, 0], &h0[0, 0],
                            q + d.o[0], q + d.o[1], q + d.o[2], q + d.o[3], q + d.o[4],
                            &hlast[0, 0], B, T, H, V, &hs[0], &zs[0], &dhs[0], &dhnext[0])
    return L


cdef double _run_forward(const Dims* d, const floating[::1] w, const int32_t[:, ::1] X,
                         const int32_t[:, ::1] Y, const floating[:, ::1] h0,
                         floating[:, ::1] hlast, floating[::1] hs,
                         floating[::1] zs) except? -1:
    cdef int B = X.shape[0], T = X.shape[1], H = d.H, V = d.V
    cdef const floating* p
    cdef double L
    if not _chunk_ok(d, w, X, Y, h0, hlast, hs, zs):
        raise _Invalid
    p = &w[0]                           # (non-empty: _chunk_ok checked its length)
    with nogil:
        L = _forward(p + d.o[0], p + d.o[1], p + d.o[2], p + d.o[3], p + d.o[4], &X[0, 0],
                     &Y[0, 0], &h0[0, 0], B, T, H, V, &hs[0], &zs[0], False)
        memcpy(&hlast[0, 0], &hs[0] + <Py_ssize_t>T * B * H, B * H * sizeof(floating))
    return L


def loss_and_grads(layout, theta not None, grad not None, X not None, Y not None,
                   h0 not None, hlast not None, ws not None, masks=None):
    """Loss of a (B, T) chunk and its gradients; the gradient overwrites ``grad``.

    See ``charrnn.kernels.reference.loss_and_grads``, the reference twin.
    """
    cdef Dims d
    dtype = _fast_dtype(theta, (theta, grad, X, Y, h0, hlast))
    if masks is None and _dims(layout, &d) and isinstance(ws, Workspace):
        try:
            if dtype is _F64:
                return _run_grads[double](&d, theta, grad, X, Y, h0, hlast, ws.hs, ws.zs,
                                          ws.dhs, ws.dhnext)
            if dtype is _F32:
                return _run_grads[float](&d, theta, grad, X, Y, h0, hlast, ws.hs, ws.zs,
                                         ws.dhs, ws.dhnext)
        except (_Invalid, ValueError, TypeError, BufferError):
            pass
    elif _layout_dims(layout, &d):                  # any other model, or with dropout
        r = _stack_call(_GRADS, &d, theta, grad, X, Y, h0, hlast, ws, masks, None, True)
        if r is not None:
            return r
    _checks.grads(layout, theta, grad, X, Y, h0, hlast, ws, masks)
    # the checks passed where the fast ones did not (an unusual but valid dtype object,
    # say): run on normalised arrays
    _checked_dims(layout, &d)
    if not d.classic or masks is not None:
        return _stack_call(_GRADS, &d, theta, grad, X, Y, h0, hlast, ws, masks, None, False)
    if theta.dtype == _F64:
        return _run_grads[double](&d, theta, grad, X, Y, h0, hlast, ws.hs, ws.zs, ws.dhs,
                                  ws.dhnext)
    return _run_grads[float](&d, theta, grad, X, Y, h0, hlast, ws.hs, ws.zs, ws.dhs,
                             ws.dhnext)


def loss(layout, theta not None, X not None, Y not None, h0 not None, hlast not None,
         ws not None):
    """Forward-only loss of a (B, T) chunk: ``loss_and_grads`` without gradient work."""
    cdef Dims d
    dtype = _fast_dtype(theta, (theta, X, Y, h0, hlast))
    if _dims(layout, &d) and isinstance(ws, Workspace):
        try:
            if dtype is _F64:
                return _run_forward[double](&d, theta, X, Y, h0, hlast, ws.hs, ws.zs)
            if dtype is _F32:
                return _run_forward[float](&d, theta, X, Y, h0, hlast, ws.hs, ws.zs)
        except (_Invalid, ValueError, TypeError, BufferError):
            pass
    elif _layout_dims(layout, &d):                  # any other model
        r = _stack_call(_LOSS, &d, theta, None, X, Y, h0, hlast, ws, None, None, True)
        if r is not None:
            return r
    _checks.chunk(layout, theta, X, Y, h0, hlast, ws)
    _checked_dims(layout, &d)
    if not d.classic:
        return _stack_call(_LOSS, &d, theta, None, X, Y, h0, hlast, ws, None, None, False)
    if theta.dtype == _F64:
        return _run_forward[double](&d, theta, X, Y, h0, hlast, ws.hs, ws.zs)
    return _run_forward[float](&d, theta, X, Y, h0, hlast, ws.hs, ws.zs)


# ----------------------------------------------------------------------------- sampling

cdef int _draw(const floating* z, int V, double u, floating temperature, int k,
               floating* e, int* top) noexcept nogil:
    """One id from logits z (V,) by inverse CDF, in the exact order of
    charrnn.kernels.reference.draw: e = exp((z - max z) / T), zero outside the top k,
    then the first id whose running sum exceeds u * total. e is scratch for 2V values
    (the exps, then their running sums), top for k ints."""
    cdef int j, i, n = 0, best = 0
    cdef floating m, c
    cdef floating* cs = e + V
    cdef double target
    if temperature == 0:                                  # 0, or 0 in this dtype
        for j in range(1, V):                             # the first maximum
            if z[j] > z[best]:
                best = j
        return best
    # (z - m) / T <= 0 cannot overflow, however small T is; m = z[first maximum]
    if floating is float:
        m = vm_max_f(z, V)
    else:
        m = vm_max_d(z, V)
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
            e[top[i]] = _expneg((z[top[i]] - m) / temperature)
    elif floating is float:
        # e = np.exp((z - m) / temperature)
        vm_expscale_f(z, temperature, m, e, V)
    else:
        vm_expscale_d(z, temperature, m, e, V)
    # one sequential pass for the running sums, then a search without branches: they
    # do not decrease, so the first above the target is the count of those below it
    c = 0
    for j in range(V):
        c = c + e[j]
        cs[j] = c
    target = u * <double>c
    if floating is float:
        j = vm_count_le_f(cs, V, target)
    else:
        j = vm_count_le_d(cs, V, target)
    if j < V and target == target:                        # a NaN target: no draw below
        return j
    for j in range(V - 1, -1, -1):                        # u * total rounded past the end
        if e[j] != 0:
            return j
    return 0


cdef void _sample_loop(const Dims* d, const floating* w, floating* h, int B,
                       const int32_t* first, const double* U, Py_ssize_t n,
                       floating temperature, int k, int32_t* out, floating* a, floating* z,
                       floating* e, int* top, floating* WbT) noexcept nogil:
    """n draws for B streams; a (B, H), z (B, V), e (2V), top (V) and WbT (V, H, or
    NULL: gather from Wxh itself) are scratch. The state moves between h and a, and ends
    in h."""
    cdef Py_ssize_t H = d.H, V = d.V, b, i
    cdef const floating* Wxh = w + d.o[0]
    cdef const floating* Whh = w + d.o[1]
    cdef const floating* Why = w + d.o[2]
    cdef const floating* bh = w + d.o[3]
    cdef const floating* by = w + d.o[4]
    cdef const int32_t* x = first
    cdef floating* hprev = h
    cdef floating* hnew = a
    if WbT != NULL:
        _fold_bias_T(Wxh, bh, H, V, WbT)            # WbT = Wxh.T + bh
    for i in range(n):
        _step(Wxh, Whh, bh, x, 1, B, H, V, hprev, hnew, WbT)
        hprev, hnew = hnew, hprev                   # hprev is h_t
        for b in range(B):
            memcpy(z + b * V, by, V * sizeof(floating))
        if B == 1:
            # z += Why @ h                          (V,) += (V, H) @ (H,)
            gemv(False, V, H, <floating>1, Why, H, hprev, <floating>1, z)
        else:
            # z += h @ Why.T                        (B, V) += (B, H) @ (H, V)
            gemm(False, True, B, V, H, <floating>1, hprev, H, Why, H, <floating>1, z, V)
        for b in range(B):
            out[i * B + b] = _draw(z + b * V, V, U[i * B + b], temperature, k, e, top)
        x = out + i * B
    if hprev != h:
        memcpy(h, hprev, B * H * sizeof(floating))


cdef object _run_sample(const Dims* d, const floating[::1] w, floating[:, ::1] h,
                        const int32_t[::1] first, const double[:, ::1] U,
                        double temperature, int k):
    """Draw into a new (n, B) array: the arguments are checked already."""
    cdef Py_ssize_t B = h.shape[0], H = d.H, V = d.V
    cdef Py_ssize_t n = U.shape[0]
    out = np.empty((n, B), np.int32)
    cdef int32_t[:, ::1] o = out
    if not d.classic:
        _run_stack_sample(d, w, h, first, U, temperature, k, o)
        return out
    # one block of scratch: a (B, H), z (B, V), e (2V), WbT (V, H) of floating, then
    # top (V) ints; WbT only when the n*B gathers it speeds up outnumber its V rows
    cdef bint transposed = n * B >= V
    cdef Py_ssize_t nf = (<Py_ssize_t>B * H + <Py_ssize_t>B * V + 2 * V
                          + (<Py_ssize_t>V * H if transposed else 0))
    cdef char* block = <char*>PyMem_Malloc(nf * sizeof(floating) + V * sizeof(int))
    if block == NULL:
        raise MemoryError
    cdef floating* a = <floating*>block
    try:
        if n:
            with nogil:
                _sample_loop(d, &w[0], &h[0, 0], B, &first[0], &U[0, 0], n,
                             <floating>temperature, k, &o[0, 0], a, a + B * H,
                             a + B * H + B * V, <int*>(block + nf * sizeof(floating)),
                             a + B * H + B * V + 2 * V if transposed else NULL)
    finally:
        PyMem_Free(block)
    return out


cdef void _run_stack_sample(const Dims* d, const floating[::1] w, floating[:, ::1] h,
                            const int32_t[::1] first, const double[:, ::1] U,
                            double temperature, int k, int32_t[:, ::1] o) except *:
    """_run_sample of any layout but the classic: the stack's forward for T = 1 on
    scratch of its own (the Workspace buffers a (B, 1) chunk uses)."""
    cdef Py_ssize_t B = h.shape[0], H = d.H, V = d.V, n = U.shape[0]
    cdef Py_ssize_t GH = <Py_ssize_t>d.G * d.H
    cdef Py_ssize_t nh = <Py_ssize_t>d.L * 2 * B * H            # hs, and cs (lstm)
    cdef Py_ssize_t na = <Py_ssize_t>d.L * B * GH               # acts, and ahs (gru)
    cdef Py_ssize_t nf = nh * (2 if d.cell == _LSTM else 1) + na * (2 if d.cell == _GRU else 1)
    cdef Bufs bf
    # one block of scratch: hs, cs, acts, ahs, then z (B, V), e (2V) of floating, top (V)
    nf += B * V + 2 * V
    cdef char* block = <char*>PyMem_Malloc(nf * sizeof(floating) + V * sizeof(int))
    if block == NULL:
        raise MemoryError
    cdef floating* p = <floating*>block
    memset(&bf, 0, sizeof(Bufs))
    bf.hs = p
    p += nh
    if d.cell == _LSTM:
        bf.cs = p
        p += nh
    bf.acts = p
    p += na
    if d.cell == _GRU:
        bf.ahs = p
        p += na
    try:
        with nogil:
            _stack_sample(d, &w[0], &h[0, 0], <int>B, &first[0], &U[0, 0] if n else NULL,
                          n, <floating>temperature, k, &o[0, 0] if n else NULL, &bf, p,
                          p + B * V, <int*>(block + nf * sizeof(floating)))
    finally:
        PyMem_Free(block)


cdef object _checked_sample(const Dims* d, const floating[::1] w, floating[:, ::1] h,
                            const int32_t[::1] first, const double[:, ::1] U,
                            double temperature, int k):
    """The C-level twin of checks.sample for views acquired already: the draws, or None
    when a check fails (for checks.sample to word)."""
    cdef Py_ssize_t B = h.shape[0], n = U.shape[0], i, sz = sizeof(floating)
    cdef const double* u
    cdef bint ok = True
    cdef Py_ssize_t GH = <Py_ssize_t>d.G * d.H, nh = <Py_ssize_t>d.L * d.S * d.H
    if not (d.itemsize == sz and w.shape[0] == d.n and 1 <= B <= _MAX
            and h.shape[1] == nh and U.shape[1] == B and first.shape[0] == B
            and n * B <= _MAX and B * (GH if GH > d.V else d.V) <= _MAX):
        return None
    if not _ids_ok(&first[0], B, d.V):
        return None
    if n:
        u = &U[0, 0]
        for i in range(n * B):
            ok &= (u[i] >= 0) & (u[i] <= 1)             # (NaN fails both)
        if not ok:
            return None
    if not (_apart(&h[0, 0], B * nh * sz, &w[0], d.n * sz)
            and _apart(&h[0, 0], B * nh * sz, &first[0], B * 4)
            and (n == 0 or _apart(&h[0, 0], B * nh * sz, &U[0, 0], n * B * 8))):
        return None
    return _run_sample(d, w, h, first, U, temperature, k)


def sample(layout, theta not None, h not None, first_ids not None, uniforms not None,
           temperature=_config.TEMPERATURE, top_k=None):
    """Draw n ids for each of B streams, advancing the state ``h`` in place.

    See ``charrnn.kernels.reference.sample``, the reference twin. Returns int32 (n, B).
    """
    cdef Dims d
    cdef int k = 0
    r = None
    dtype = _fast_dtype(theta, (theta, h, first_ids, uniforms))
    if (_layout_dims(layout, &d) and (type(temperature) is float or type(temperature) is int)
            and isfinite(temperature) and temperature >= 0
            and (top_k is None or (type(top_k) is int and 1 <= top_k <= d.V))):
        k = 0 if top_k is None else top_k
        try:
            if dtype is _F64:
                r = _checked_sample[double](&d, theta, h, first_ids, uniforms,
                                            temperature, k)
            elif dtype is _F32:
                r = _checked_sample[float](&d, theta, h, first_ids, uniforms,
                                           temperature, k)
        except (ValueError, TypeError, BufferError):
            r = None
    if r is not None:
        return r
    B, n, k = _checks.sample(layout, theta, h, first_ids, uniforms, temperature, top_k)
    # the checks passed where the fast ones did not (a NumPy scalar temperature, say)
    _checked_dims(layout, &d)
    if theta.dtype == _F64:
        return _run_sample[double](&d, theta, h, first_ids, uniforms, float(temperature), k)
    return _run_sample[float](&d, theta, h, first_ids, uniforms, float(temperature), k)


# ----------------------------------------------------------------------------- clipping

cdef inline floating* _ptr(const floating[::1] a) noexcept nogil:
    return <floating*>&a[0] if a.shape[0] else NULL


cdef bint _vecs_ok(floating[::1] w, const floating[::1] g, floating[::1] s1,
                   floating[::1] s2, int nstates) noexcept:
    """Same lengths; w, the states and g pairwise apart (s1, s2 unused beyond nstates)."""
    cdef Py_ssize_t n = w.shape[0], nb = w.shape[0] * sizeof(floating)
    if n > _MAX or g.shape[0] != n or (nstates > 0 and s1.shape[0] != n) or (nstates > 1 and s2.shape[0] != n):
        return False
    if not _apart(_ptr(w), nb, _ptr(g), nb):
        return False
    if nstates > 0 and not (_apart(_ptr(s1), nb, _ptr(g), nb) and _apart(_ptr(s1), nb, _ptr(w), nb)):
        return False
    if nstates > 1 and not (_apart(_ptr(s2), nb, _ptr(g), nb) and _apart(_ptr(s2), nb, _ptr(w), nb)
                            and _apart(_ptr(s2), nb, _ptr(s1), nb)):
        return False
    return True


cdef double _sumsq(const floating[::1] g) except? -1:
    cdef double s
    if g.shape[0] > _MAX:
        raise _Invalid
    with nogil:
        if floating is float:
            s = vm_sumsq_f(_ptr(g), g.shape[0])
        else:
            s = vm_sumsq_d(_ptr(g), g.shape[0])
    return s


def sumsq(g not None):
    """Sum of squares of a 1-D array, accumulated in float64 (for the global norm)."""
    dtype = _fast_dtype(g, (g,))
    try:
        if dtype is _F64:
            return _sumsq[double](g)
        if dtype is _F32:
            return _sumsq[float](g)
    except (ValueError, TypeError, BufferError):
        pass
    _checks.vec("g", g)
    return _sumsq[double](g) if g.dtype == _F64 else _sumsq[float](g)


cdef void _clip(floating[::1] g, double clip, double scale) noexcept:
    with nogil:
        # g = np.clip(g * scale, -clip, clip)
        if floating is float:
            vm_clip_f(_ptr(g), g.shape[0], <float>clip, <float>scale)
        else:
            vm_clip_d(_ptr(g), g.shape[0], clip, scale)


def clip_(g not None, double clip):
    """Clip ``g`` element-wise to [-clip, clip] in place."""
    _checks.vec("g", g, out=True)
    _checks.clip(clip, 1.0)
    if g.dtype == _F64:
        _clip[double](g, clip, 1.0)
    else:
        _clip[float](g, clip, 1.0)


def scale_(g not None, double scale):
    """Multiply ``g`` by ``scale`` in place (global-norm clipping)."""
    _checks.vec("g", g, out=True)
    _checks.clip(INFINITY, scale)
    if g.dtype == _F64:
        _clip[double](g, INFINITY, scale)
    else:
        _clip[float](g, INFINITY, scale)


# ----------------------------------------------------------------------------- optimizers
#
# Fused in-place passes (csrc/_vmath.h): g' = clip(g * scale, -clip, clip), then the
# update, in one loop. g is not modified. The arithmetic order follows the NumPy twin.

# each rule's code is its place in charrnn.kernels.rules.RULES
_RULE_NAMES = list(_RULE_TABLE)
cdef int _SGD = _RULE_NAMES.index("sgd")
cdef int _ADAGRAD = _RULE_NAMES.index("adagrad")
cdef int _RMSPROP = _RULE_NAMES.index("rmsprop")
cdef int _ADAM = _RULE_NAMES.index("adam")


cdef void _update(int rule, floating* w, const floating* g, floating* s1, floating* s2,
                  Py_ssize_t n, double lr, double a, double b, double eps, long step,
                  double clip, double scale) noexcept nogil:
    """One rule's fused clip + update pass; a, b are RMSprop's rho or Adam's betas."""
    cdef double c1, c2
    if rule == _SGD:
        # w -= lr * g
        if floating is float:
            vm_sgd_f(w, g, n, <float>lr, <float>clip, <float>scale)
        else:
            vm_sgd_d(w, g, n, lr, clip, scale)
    elif rule == _ADAGRAD:
        # m += g*g;  w -= lr * g / np.sqrt(m + eps)
        if floating is float:
            vm_adagrad_f(w, g, s1, n, <float>lr, <float>eps, <float>clip, <float>scale)
        else:
            vm_adagrad_d(w, g, s1, n, lr, eps, clip, scale)
    elif rule == _RMSPROP:
        # v = rho*v + (1-rho)*g*g;  w -= lr * g / (np.sqrt(v) + eps)
        if floating is float:
            vm_rmsprop_f(w, g, s1, n, <float>lr, <float>a, <float>(1 - a), <float>eps,
                         <float>clip, <float>scale)
        else:
            vm_rmsprop_d(w, g, s1, n, lr, a, 1 - a, eps, clip, scale)
    else:
        # m = b1*m + (1-b1)*g;  v = b2*v + (1-b2)*g*g
        # w -= lr * (m / c1) / (np.sqrt(v / c2) + eps)
        c1 = 1 - a ** step
        c2 = 1 - b ** step
        if floating is float:
            vm_adam_f(w, g, s1, s2, n, <float>lr, <float>a, <float>(1 - a), <float>b,
                      <float>(1 - b), <float>c1, <float>c2, <float>eps, <float>clip,
                      <float>scale)
        else:
            vm_adam_d(w, g, s1, s2, n, lr, a, 1 - a, b, 1 - b, c1, c2, eps, clip, scale)


cdef bint _run_update(int rule, floating[::1] w, const floating[::1] g, floating[::1] s1,
                      floating[::1] s2, int nstates, double lr, double a, double b,
                      double eps, long step, double clip, double scale) noexcept:
    if not _vecs_ok(w, g, s1, s2, nstates):
        return False
    with nogil:
        _update(rule, _ptr(w), _ptr(g), _ptr(s1), _ptr(s2), w.shape[0], lr, a, b, eps,
                step, clip, scale)
    return True


cdef inline bint _hypers_ok(double lr, double a, double b, double c, double clip,
                            double scale) noexcept:
    return (isfinite(lr) and isfinite(a) and isfinite(b) and isfinite(c) and clip > 0
            and isfinite(scale) and scale >= 0)


def sgd_update(w not None, g not None, double lr, double clip=_config.CLIP,
               double scale=1.0):
    """w -= lr * g'"""
    dtype = _fast_dtype(w, (w, g))
    if _hypers_ok(lr, 0, 0, 0, clip, scale):
        try:
            if dtype is _F64 and _run_update[double](_SGD, w, g, w, w, 0, lr, 0, 0, 0, 0,
                                                     clip, scale):
                return
            if dtype is _F32 and _run_update[float](_SGD, w, g, w, w, 0, lr, 0, 0, 0, 0,
                                                    clip, scale):
                return
        except (ValueError, TypeError, BufferError):
            pass
    _checks.update("sgd", w, g, (), lr, (), clip, scale)
    raise ValueError("invalid arguments to sgd_update")


def adagrad_update(w not None, g not None, m not None, double lr,
                   double eps=_config.EPS, double clip=_config.CLIP, double scale=1.0):
    """m += g'*g';  w -= lr * g' / sqrt(m + eps)   (the classic)"""
    dtype = _fast_dtype(w, (w, g, m))
    if _hypers_ok(lr, eps, 0, 0, clip, scale):
        try:
            if dtype is _F64 and _run_update[double](_ADAGRAD, w, g, m, m, 1, lr, 0, 0, eps,
                                                     0, clip, scale):
                return
            if dtype is _F32 and _run_update[float](_ADAGRAD, w, g, m, m, 1, lr, 0, 0, eps,
                                                    0, clip, scale):
                return
        except (ValueError, TypeError, BufferError):
            pass
    _checks.update("adagrad", w, g, (m,), lr, (eps,), clip, scale)
    raise ValueError("invalid arguments to adagrad_update")


def rmsprop_update(w not None, g not None, v not None, double lr,
                   double rho=_config.RHO, double eps=_config.EPS, double clip=_config.CLIP,
                   double scale=1.0):
    """v = rho*v + (1-rho)*g'*g';  w -= lr * g' / (sqrt(v) + eps)"""
    dtype = _fast_dtype(w, (w, g, v))
    if _hypers_ok(lr, rho, eps, 0, clip, scale):
        try:
            if dtype is _F64 and _run_update[double](_RMSPROP, w, g, v, v, 1, lr, rho, 0, eps,
                                                     0, clip, scale):
                return
            if dtype is _F32 and _run_update[float](_RMSPROP, w, g, v, v, 1, lr, rho, 0, eps,
                                                    0, clip, scale):
                return
        except (ValueError, TypeError, BufferError):
            pass
    _checks.update("rmsprop", w, g, (v,), lr, (rho, eps), clip, scale)
    raise ValueError("invalid arguments to rmsprop_update")


def adam_update(w not None, g not None, m not None, v not None, double lr,
                double beta1=_config.BETA1, double beta2=_config.BETA2,
                double eps=_config.EPS, step=1, double clip=_config.CLIP,
                double scale=1.0):
    """Adam with bias correction; ``step`` counts from 1."""
    cdef long s
    dtype = _fast_dtype(w, (w, g, m, v))
    if (not isinstance(step, bool) and isinstance(step, (int, np.integer)) and step >= 1
            and 0 <= beta1 < 1 and 0 <= beta2 < 1
            and _hypers_ok(lr, beta1, beta2, eps, clip, scale)):
        # past 2**62 steps the bias corrections are 1 already (beta < 1): any int is fine
        s = <long>min(step, 2**62)
        try:
            if dtype is _F64 and _run_update[double](_ADAM, w, g, m, v, 2, lr, beta1, beta2,
                                                     eps, s, clip, scale):
                return
            if dtype is _F32 and _run_update[float](_ADAM, w, g, m, v, 2, lr, beta1, beta2,
                                                    eps, s, clip, scale):
                return
        except (ValueError, TypeError, BufferError):
            pass
    _checks.update("adam", w, g, (m, v), lr, (beta1, beta2, eps, step), clip, scale)
    raise ValueError("invalid arguments to adam_update")


# ----------------------------------------------------------------------------- a whole step
#
# train_step fuses loss_and_grads, the global norm and one update into one nogil call.
# Where the arithmetic is next to nothing, the cost of a step is its argument handling
# (benchmarks/NOTES.md), most of it in acquiring typed memoryviews. Here each array is
# taken through the buffer protocol and checked in C. Whatever these checks refuse runs
# charrnn.kernels.reference.composed_step over this module's own kernels: the same
# arithmetic, and the error worded by the shared checks.

cdef enum:
    _NBUF = 11                          # w, g, X, Y, h, hs, zs, dhs, dhnext, 2 states

# rule -> (code, state arrays, hyper values)
_RULES = {name: (code, len(rule.states), len(rule.hypers))
          for code, (name, rule) in enumerate(_RULE_TABLE.items())}


cdef bint _take(object a, Py_buffer* v, bint out) noexcept:
    """Acquire a C-contiguous buffer (writable if ``out``); False (nothing held) if not."""
    cdef int flags = PyBUF_C_CONTIGUOUS | PyBUF_FORMAT | (PyBUF_WRITABLE if out else 0)
    try:
        PyObject_GetBuffer(a, v, flags)
    except Exception:
        return False
    return True


cdef inline char _kind(const Py_buffer* v) noexcept:
    """'d' float64, 'f' float32, 'i' int32 (native byte order), else 0."""
    cdef const char* f = v.format
    if f == NULL or f[0] == 0 or f[1] != 0:
        return 0
    if f[0] == c'd' and v.itemsize == 8:
        return c'd'
    if f[0] == c'f' and v.itemsize == 4:
        return c'f'
    if (f[0] == c'i' or f[0] == c'l') and v.itemsize == 4:
        return c'i'
    return 0


cdef void _fused(const Dims* d, floating* w, floating* g, floating* s1, floating* s2,
                 const int32_t* X, const int32_t* Y, floating* h, int B, int T,
                 floating* hs, floating* zs, floating* dhs, floating* dhnext,
                 int rule, double lr, double a, double b, double eps, long step,
                 double clip, double max_norm, double* out) noexcept nogil:
    """out = (loss, ||g||); the update only when both are finite."""
    # the state is carried in place: h is h0 and hlast
    cdef double L = _loss_and_grads(w + d.o[0], w + d.o[1], w + d.o[2], w + d.o[3],
                                    w + d.o[4], X, Y, h, g + d.o[0], g + d.o[1], g + d.o[2],
                                    g + d.o[3], g + d.o[4], h, B, T, d.H, d.V, hs, zs, dhs,
                                    dhnext)
    _norm_and_update(d.n, w, g, s1, s2, L, rule, lr, a, b, eps, step, clip, max_norm, out)


cdef inline void _norm_and_update(Py_ssize_t n, floating* w, const floating* g,
                                  floating* s1, floating* s2, double L, int rule, double lr,
                                  double a, double b, double eps, long step, double clip,
                                  double max_norm, double* out) noexcept nogil:
    """The end of a step, after the gradient g of loss L: out = (L, ||g||), then the
    clipped update, only when both are finite."""
    cdef double norm, scale
    # norm = np.sqrt(np.sum(g.astype(np.float64) ** 2))
    if floating is float:
        norm = sqrt(vm_sumsq_f(g, n))
    else:
        norm = sqrt(vm_sumsq_d(g, n))
    out[0] = L
    out[1] = norm
    if not (isfinite(L) and isfinite(norm)):
        return
    scale = max_norm / norm if norm > max_norm else 1.0
    _update(rule, w, g, s1, s2, n, lr, a, b, eps, step, clip, scale)


cdef struct Rule:
    # an update rule's code and values, as train_step takes them (checked)
    int code, nstates
    double lr, a, b, eps, clip, max_norm        # a, b: RMSprop's rho or Adam's betas
    long step


cdef bint _rule_ok(rule, state, hyper, double lr, double clip, double max_norm,
                   Rule* r) noexcept:
    """Fill ``r`` from train_step's scalar arguments; False (for the checks to word) on
    anything they would refuse: an unknown rule, tuples of the wrong length, values out
    of range or not finite."""
    cdef int code, nstates, nhyper
    r.a = r.b = r.eps = 0
    r.step = 0
    if type(state) is not tuple or type(hyper) is not tuple:
        return False
    spec = _RULES.get(rule) if type(rule) is str else None
    if spec is None:
        return False
    code, nstates, nhyper = spec
    if len(state) != nstates or len(hyper) != nhyper:
        return False
    try:
        if code == _ADAGRAD:
            r.eps = hyper[0]
        elif code == _RMSPROP:
            r.a, r.eps = hyper[0], hyper[1]
        elif code == _ADAM:
            r.a, r.b, r.eps = hyper[0], hyper[1], hyper[2]
            if (type(hyper[3]) is not int or hyper[3] < 1
                    or not (0 <= r.a < 1 and 0 <= r.b < 1)):
                return False
            # past 2**62 steps the bias corrections are 1 already (beta < 1)
            r.step = <long>min(hyper[3], 2**62)
    except (TypeError, ValueError, OverflowError):  # not numbers: the checks word it
        return False
    if not (_hypers_ok(lr, r.a, r.b, r.eps, clip, 1.0) and max_norm > 0):
        return False
    r.code, r.nstates, r.lr, r.clip, r.max_norm = code, nstates, lr, clip, max_norm
    return True


cdef object _fast_step(layout, w, g, X, Y, h, ws, rule, state, double lr, hyper,
                       double clip, double max_norm):
    """The fused step, or None when a check fails (nothing written then)."""
    cdef Dims d
    cdef Rule r
    cdef Py_buffer v[_NBUF]
    cdef int held = 0, i, j, code, nstates
    cdef char k
    cdef Py_ssize_t n, B, T, H, V, nb[_NBUF]
    cdef double a, b, eps, out[2]
    cdef long step
    # the scalars first: a layout, a known rule, its tuples, finite values
    if not (_dims(layout, &d) and _rule_ok(rule, state, hyper, lr, clip, max_norm, &r)):
        return None
    code, nstates, a, b, eps, step = r.code, r.nstates, r.a, r.b, r.eps, r.step
    if not isinstance(ws, Workspace):
        return None
    n, H, V = d.n, d.H, d.V
    arrays = (w, g, X, Y, h, ws.hs, ws.zs, ws.dhs, ws.dhnext) + state
    if _fast_dtype(w, arrays) is None:
        return None
    try:
        for i in range(9 + nstates):
            if not _take(arrays[i], &v[i], i != 2 and i != 3):   # X, Y are read only
                return None
            held += 1
            nb[i] = v[i].len
        # dtypes (the layout's) and shapes
        k = _kind(&v[0])
        if not ((k == c'd' and d.itemsize == 8) or (k == c'f' and d.itemsize == 4)):
            return None
        for i in range(9 + nstates):
            if _kind(&v[i]) != (c'i' if i == 2 or i == 3 else k):
                return None
        if (v[0].ndim != 1 or v[1].ndim != 1 or v[2].ndim != 2 or v[3].ndim != 2
                or v[4].ndim != 2):
            return None
        B, T = v[2].shape[0], v[2].shape[1]
        if not _sizes_ok(B, T, H, V):
            return None
        if (v[0].shape[0] != n or v[1].shape[0] != n or v[3].shape[0] != B
                or v[3].shape[1] != T or v[4].shape[0] != B or v[4].shape[1] != H):
            return None
        for i in range(5, 9):
            if v[i].ndim != 1:
                return None
        if (v[5].shape[0] < (T + 1) * B * H or v[6].shape[0] < T * B * V
                or v[7].shape[0] < T * B * H or v[8].shape[0] < B * H):
            return None
        for i in range(9, 9 + nstates):
            if v[i].ndim != 1 or v[i].shape[0] != n:
                return None
        # every array apart from every other; the ids in [0, V)
        for i in range(held):
            for j in range(i + 1, held):
                if not _apart(v[i].buf, nb[i], v[j].buf, nb[j]):
                    return None
        if not (_ids_ok(<int32_t*>v[2].buf, B * T, <int>V)
                and _ids_ok(<int32_t*>v[3].buf, B * T, <int>V)):
            return None
        with nogil:
            if k == c'd':
                _fused(&d, <double*>v[0].buf, <double*>v[1].buf,
                       <double*>v[9].buf if nstates > 0 else NULL,
                       <double*>v[10].buf if nstates > 1 else NULL,
                       <int32_t*>v[2].buf, <int32_t*>v[3].buf, <double*>v[4].buf,
                       <int>B, <int>T, <double*>v[5].buf, <double*>v[6].buf,
                       <double*>v[7].buf, <double*>v[8].buf,
                       code, lr, a, b, eps, step, clip, max_norm, out)
            else:
                _fused(&d, <float*>v[0].buf, <float*>v[1].buf,
                       <float*>v[9].buf if nstates > 0 else NULL,
                       <float*>v[10].buf if nstates > 1 else NULL,
                       <int32_t*>v[2].buf, <int32_t*>v[3].buf, <float*>v[4].buf,
                       <int>B, <int>T, <float*>v[5].buf, <float*>v[6].buf,
                       <float*>v[7].buf, <float*>v[8].buf,
                       code, lr, a, b, eps, step, clip, max_norm, out)
        return out[0], out[1]
    finally:
        for i in range(held):
            PyBuffer_Release(&v[i])


def train_step(layout, w not None, g not None, X not None, Y not None, h not None,
               ws not None, rule, state not None, double lr, hyper not None, double clip,
               double max_norm, masks=None):
    """One training step: loss_and_grads, the global norm, clipping and one update.

    See ``charrnn.kernels.reference.train_step``, the reference twin.
    """
    cdef Dims d
    cdef Rule rr
    r = None
    if masks is None:                               # the classic model (else None)
        r = _fast_step(layout, w, g, X, Y, h, ws, rule, state, lr, hyper, clip, max_norm)
    if (r is None and _layout_dims(layout, &d) and (masks is not None or not d.classic)
            and _rule_ok(rule, state, hyper, lr, clip, max_norm, &rr)):
        # any other model, or with dropout
        r = _stack_call(_STEP, &d, w, g, X, Y, h, None, ws, masks, state, True, &rr)
    if r is not None:
        return r
    return _composed_step(_this, layout, w, g, X, Y, h, ws, rule, state, lr, hyper, clip,
                          max_norm, masks)


_this = sys.modules[__name__]


# ----------------------------------------------------------------------------- stacks
#
# LSTM, GRU and multi-layer models, and the 1-layer rnn with dropout: the stack driver
# of _cells.pxi. The arguments of loss, loss_and_grads and train_step are taken through
# the buffer protocol and checked in C, as _fast_step does; whatever these checks refuse
# goes to charrnn.kernels.checks, to word the error or to run on checked arguments.

include "_cells.pxi"

cdef enum:                              # the kernels of _stack_call
    _LOSS = 0
    _GRADS = 1
    _STEP = 2

cdef enum:                              # the arrays of _stack_call, in this order
    _W = 0
    _G = 1
    _X = 2
    _Y = 3
    _H0 = 4
    _HL = 5
    _M = 6
    _HS = 7                             # then the workspace's, in _WS order
    _S1 = 16
    _S2 = 17
    _NA = 18

_WS = ("hs", "zs", "dhs", "dhnext", "cs", "dcnext", "acts", "ahs", "ins")


cdef inline char _kind_unaligned(Py_buffer* v) noexcept:
    """_kind, also of an unaligned array (numpy's format "=d": native order and size)."""
    cdef const char* f = v.format
    cdef char k
    if f != NULL and (f[0] == c'=' or f[0] == c'@'):
        v.format += 1
        k = _kind(v)
        v.format = <char*>f
        return k
    return _kind(v)


cdef void _stack_run(int mode, const Dims* d, floating* w, floating* g, const int32_t* X,
                     const int32_t* Y, floating* h0, floating* hlast, int B, int T,
                     const Bufs* bf, floating* s1, floating* s2, const Rule* r,
                     double* out) noexcept nogil:
    """out = the loss (mode _LOSS, _GRADS) or (loss, ||g||) (_STEP, the state carried in
    place in h0)."""
    if mode == _LOSS:
        out[0] = _stack_forward(d, w, X, Y, h0, B, T, bf, False)
        _store_state(d, hlast, B, T, T, bf)
    elif mode == _GRADS:
        out[0] = _stack_grads(d, w, g, X, Y, h0, hlast, B, T, bf)
    else:
        _norm_and_update(d.n, w, g, s1, s2, _stack_grads(d, w, g, X, Y, h0, h0, B, T, bf),
                         r.code, r.lr, r.a, r.b, r.eps, r.step, r.clip, r.max_norm, out)


cdef object _stack_call(int mode, const Dims* d, w, g, X, Y, h0, hlast, ws, masks,
                        tuple state, bint strict, const Rule* r=NULL):
    """Run kernel ``mode`` on a layout of any cell and depth: its result, or None when a
    C check fails (nothing written then).

    ``strict``: every array apart from every other (but X from Y, and h0 from hlast when
    they are the same array), as train_step's checks require; the other kernels' checks
    allow more overlaps of inputs, which then take the checked path. With ``strict``
    False the shared checks have passed already: only what memory safety needs is
    checked again (sizes, dtypes), and a failure is a ValueError.
    """
    cdef Py_buffer v[_NA]
    cdef bint used[_NA]
    cdef bint held[_NA]
    cdef Py_ssize_t need[_NA]
    cdef int i, j, nstates = r.nstates if r != NULL else 0
    cdef char k, f = c'd' if d.itemsize == 8 else c'f'
    cdef Py_ssize_t B, T, H = d.H, V = d.V, L = d.L, GH = <Py_ssize_t>d.G * d.H, N
    cdef Bufs bf
    cdef double out[2]
    if not isinstance(ws, Workspace):
        return _stack_refuse(strict)
    objs = [w, g, X, Y, h0, hlast, masks] + [getattr(ws, name) for name in _WS] + [
        state[0] if nstates > 0 else None, state[1] if nstates > 1 else None]
    # which arrays this kernel reads or writes (masks: not in the forward-only loss)
    used[:] = [True, mode != _LOSS, True, True, True, mode != _STEP,
               masks is not None and mode != _LOSS,
               True, True, mode != _LOSS, mode != _LOSS, d.cell == _LSTM,
               d.cell == _LSTM and mode != _LOSS, d.cell != _RNN, d.cell == _GRU,
               masks is not None and mode != _LOSS, nstates > 0, nstates > 1]
    for i in range(_NA):
        held[i] = False
        if used[i] and not isinstance(objs[i], np.ndarray):
            return _stack_refuse(strict)
    try:
        for i in range(_NA):
            if not used[i]:
                continue
            # read only: the parameters (but in a step), the ids, h0 (but in a step), masks
            if not _take(objs[i], &v[i], not (i == _X or i == _Y or i == _M or (
                    mode != _STEP and (i == _W or i == _H0)))):
                return _stack_refuse(strict)
            held[i] = True
            k = _kind_unaligned(&v[i])
            if k != (c'i' if i == _X or i == _Y else f):
                return _stack_refuse(strict)
        # shapes and sizes (checks._ids_state_ws's bounds: every BLAS size below 2**31)
        if v[_X].ndim != 2 or v[_Y].ndim != 2:
            return _stack_refuse(strict)
        B, T = v[_X].shape[0], v[_X].shape[1]
        N = B * T
        if not (B >= 1 and T >= 1 and N <= _MAX and N * (GH if GH > V else V) <= _MAX
                and v[_Y].shape[0] == B and v[_Y].shape[1] == T):
            return _stack_refuse(strict)
        for i in (_W, _G, _S1, _S2):
            if used[i] and not (v[i].ndim == 1 and v[i].shape[0] == d.n):
                return _stack_refuse(strict)
        for i in (_H0, _HL):
            if used[i] and not (v[i].ndim == 2 and v[i].shape[0] == B
                                and v[i].shape[1] == L * d.S * H):
                return _stack_refuse(strict)
        if used[_M] and not (v[_M].ndim == 4 and v[_M].shape[0] == L and v[_M].shape[1] == T
                             and v[_M].shape[2] == B and v[_M].shape[3] == H):
            return _stack_refuse(strict)
        # the workspace (charrnn.workspace.buffer_sizes)
        need[:] = [0, 0, 0, 0, 0, 0, 0, L * (T + 1) * B * H, N * V, L * N * H, B * H,
                   L * (T + 1) * B * H, B * H, L * N * GH, L * N * GH, L * N * H, 0, 0]
        for i in range(_HS, _HS + 9):
            if used[i] and not (v[i].ndim == 1 and v[i].shape[0] >= need[i]):
                return _stack_refuse(strict)
        if not (_ids_ok(<int32_t*>v[_X].buf, N, <int>V)
                and _ids_ok(<int32_t*>v[_Y].buf, N, <int>V)):
            return _stack_refuse(strict)
        if strict:
            for i in range(_NA):
                for j in range(i + 1, _NA):
                    if not (used[i] and used[j]) or (i == _X and j == _Y):
                        continue
                    if (i == _H0 and j == _HL and v[i].buf == v[j].buf
                            and v[i].len == v[j].len):
                        continue                    # the state carried in place
                    if not _apart(v[i].buf, v[i].len, v[j].buf, v[j].len):
                        return None
        for i in range(_HS, _HS + 9):
            if not used[i]:
                v[i].buf = NULL
        bf.hs, bf.zs, bf.dhs = v[_HS].buf, v[_HS + 1].buf, v[_HS + 2].buf
        bf.dhnext, bf.cs, bf.dcnext = v[_HS + 3].buf, v[_HS + 4].buf, v[_HS + 5].buf
        bf.acts, bf.ahs, bf.ins = v[_HS + 6].buf, v[_HS + 7].buf, v[_HS + 8].buf
        bf.masks = v[_M].buf if used[_M] else NULL
        with nogil:
            if f == c'd':
                _stack_run(mode, d, <double*>v[_W].buf,
                           <double*>v[_G].buf if used[_G] else NULL,
                           <int32_t*>v[_X].buf, <int32_t*>v[_Y].buf, <double*>v[_H0].buf,
                           <double*>v[_HL].buf if used[_HL] else NULL, <int>B, <int>T, &bf,
                           <double*>v[_S1].buf if used[_S1] else NULL,
                           <double*>v[_S2].buf if used[_S2] else NULL, r, out)
            else:
                _stack_run(mode, d, <float*>v[_W].buf,
                           <float*>v[_G].buf if used[_G] else NULL,
                           <int32_t*>v[_X].buf, <int32_t*>v[_Y].buf, <float*>v[_H0].buf,
                           <float*>v[_HL].buf if used[_HL] else NULL, <int>B, <int>T, &bf,
                           <float*>v[_S1].buf if used[_S1] else NULL,
                           <float*>v[_S2].buf if used[_S2] else NULL, r, out)
        if mode == _STEP:
            return out[0], out[1]
        return out[0]
    finally:
        for i in range(_NA):
            if held[i]:
                PyBuffer_Release(&v[i])


cdef object _stack_refuse(bint strict):
    """A C check failed: None for the checks to word, or (after they passed) an error."""
    if strict:
        return None
    raise ValueError("the arguments passed charrnn.kernels.checks but not the compiled "
                     "kernel's own checks (a workspace buffer replaced by a different "
                     "array?)")


# ----------------------------------------------------------------------------- BLAS shims
#
# The shims of csrc/_blas.pxd (the row-major transpose trick) made callable, so the tests
# can hold each one to NumPy at every transpose combination, as scikit-learn tests its
# own BLAS wrappers. The kernels call the shims directly; nothing else calls these.

cdef _run_gemm(bint ta, bint tb, floating alpha, const floating[:, ::1] A,
               const floating[:, ::1] B, floating beta, floating[:, ::1] C):
    cdef int M = C.shape[0], N = C.shape[1], K = A.shape[0] if ta else A.shape[1]
    if ((A.shape[1] if ta else A.shape[0]) != M or (B.shape[1] if tb else B.shape[0]) != K
            or (B.shape[0] if tb else B.shape[1]) != N or M < 1 or N < 1 or K < 1):
        raise ValueError("gemm: shapes do not match, or an empty dimension")
    with nogil:
        gemm(ta, tb, M, N, K, alpha, &A[0, 0], <int>A.shape[1], &B[0, 0], <int>B.shape[1],
             beta, &C[0, 0], N)


def _gemm(bint transA, bint transB, double alpha, A not None, B not None, double beta,
          C not None):
    """C = alpha * op(A) @ op(B) + beta * C in place (op(X) = X.T if trans), 2-D
    C-contiguous arrays of one float dtype: the ``gemm`` shim."""
    if C.dtype == _F64:
        _run_gemm[double](transA, transB, alpha, A, B, beta, C)
    else:
        _run_gemm[float](transA, transB, <float>alpha, A, B, <float>beta, C)


cdef _run_gemv(bint ta, floating alpha, const floating[:, ::1] A, const floating[::1] x,
               floating beta, floating[::1] y):
    cdef int M = A.shape[0], N = A.shape[1]
    if (x.shape[0] != (M if ta else N) or y.shape[0] != (N if ta else M) or M < 1
            or N < 1):
        raise ValueError("gemv: shapes do not match, or an empty dimension")
    with nogil:
        gemv(ta, M, N, alpha, &A[0, 0], N, &x[0], beta, &y[0])


def _gemv(bint transA, double alpha, A not None, x not None, double beta, y not None):
    """y = alpha * op(A) @ x + beta * y in place (op(A) = A.T if transA), A 2-D
    C-contiguous, one float dtype: the ``gemv`` shim."""
    if y.dtype == _F64:
        _run_gemv[double](transA, alpha, A, x, beta, y)
    else:
        _run_gemv[float](transA, <float>alpha, A, x, <float>beta, y)
