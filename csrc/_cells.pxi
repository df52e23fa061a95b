# The stacks of design.md section 2b in C: LSTM, GRU and multi-layer models (and the
# 1-layer RNN with dropout), the twin of charrnn/kernels/reference.py's stack driver and
# charrnn/kernels/cells.py's cells. Included by _kernels.pyx.
#
#     layer 0:     A = Wx0[:, X[:, t]].T + bx0           (T, B, G*H)  a column gather
#     layer l > 0: A = in @ Wx.T + bx, in = h^{l-1}[1:] * mask
#                                                        (T*B, H) x (H, G*H): one GEMM
#                  then the cell's recurrence, step by step: h_{t-1} @ Wh.T and one fused
#                  pass over the (B, G*H) block (csrc/_vmath.h, vm_<cell>_fwd)
#     output:      z = (h^{L-1}[1:] * mask) @ Why.T + by          (T*B, V): one GEMM
#
# BPTT mirrors it: the output layer's gradients as GEMMs over all T*B rows, then each layer
# from the top back through time (one fused pass, vm_<cell>_bwd, and da_t @ Wh per step),
# then its dWh, dWx, biases and input gradient as GEMMs over all T*B rows.
#
# The workspace is used as the reference shapes it (Workspace, _chunk_buffers): per layer
# l, hs (T+1, B, H) h_0 .. h_T, cs likewise (LSTM), acts (T, B, G*H) the input side, then
# the gates, then their gradient (rnn: a_t lives in h_t's place), ahs (T, B, G*H) the
# GRU's recurrent side, dhs (T, B, H) dh from above, ins (T, B, H) the masked input of
# layer l+1 (l = L-1: of the output layer).

cdef extern from "_vmath.h" nogil:
    void vm_lstm_fwd_d(double* a, const double* cprev, double* c, double* h, Py_ssize_t B,
                       Py_ssize_t H)
    void vm_lstm_fwd_f(float* a, const float* cprev, float* c, float* h, Py_ssize_t B,
                       Py_ssize_t H)
    void vm_lstm_bwd_d(double* a, const double* cprev, const double* c, const double* dh,
                       const double* dhnext, double* dcnext, Py_ssize_t B, Py_ssize_t H)
    void vm_lstm_bwd_f(float* a, const float* cprev, const float* c, const float* dh,
                       const float* dhnext, float* dcnext, Py_ssize_t B, Py_ssize_t H)
    void vm_gru_fwd_d(double* ax, const double* ah, const double* hprev, double* h,
                      Py_ssize_t B, Py_ssize_t H)
    void vm_gru_fwd_f(float* ax, const float* ah, const float* hprev, float* h,
                      Py_ssize_t B, Py_ssize_t H)
    void vm_gru_bwd_d(double* ax, double* ah, const double* hprev, const double* dh,
                      double* dhnext, Py_ssize_t B, Py_ssize_t H)
    void vm_gru_bwd_f(float* ax, float* ah, const float* hprev, const float* dh,
                      float* dhnext, Py_ssize_t B, Py_ssize_t H)
    void vm_mul_d(double* out, const double* a, const double* m, Py_ssize_t n)
    void vm_mul_f(float* out, const float* a, const float* m, Py_ssize_t n)


cdef struct Bufs:
    # the workspace buffers of one chunk (of the kernel's float type), and the masks
    void* hs
    void* zs
    void* dhs
    void* dhnext
    void* cs
    void* dcnext
    void* acts
    void* ahs
    void* ins
    const void* masks                   # (L, T, B, H), or NULL: no dropout


# ----------------------------------------------------------------------------- where

cdef inline const floating* _param(const Dims* d, const floating* w, int l,
                                   int k) noexcept nogil:
    """Layer l's Wx (k = 0), Wh (1), bx (2) or bh (3, the GRU's) in the flat vector w."""
    if l == 0:
        return w + d.lo[k]
    return w + d.l1 + (l - 1) * d.stride + d.rel[k]


cdef inline floating* _hs(const Dims* d, int l, int B, int T,
                          floating* base) noexcept nogil:
    """Layer l's (T+1, B, H) block of hs or cs (``base``)."""
    return base + <Py_ssize_t>l * (T + 1) * B * d.H


cdef inline floating* _acts(const Bufs* bf, const Dims* d, int l, int B, int T,
                            floating* hs) noexcept nogil:
    """Layer l's input side A (T, B, G*H): its own block of acts, or for the rnn its
    h_1 .. h_T (a_t is computed in h_t's place); hs is bf.hs."""
    if d.cell == _RNN:
        return _hs(d, l, B, T, hs) + <Py_ssize_t>B * d.H
    return <floating*>bf.acts + <Py_ssize_t>l * T * B * d.G * d.H


cdef inline floating* _input(const Bufs* bf, const Dims* d, int l, int B, int T,
                             floating* hs) noexcept nogil:
    """The input of layer l >= 1 (l = L: of the output layer) at every step (T, B, H):
    layer l-1's h_1 .. h_T, or with dropout those times the mask, in ins[l-1]; hs is
    bf.hs."""
    if bf.masks == NULL:
        return _hs(d, l - 1, B, T, hs) + <Py_ssize_t>B * d.H
    return <floating*>bf.ins + <Py_ssize_t>(l - 1) * T * B * d.H


cdef inline void _mask(floating* out, const floating* a, const floating* m,
                       Py_ssize_t n) noexcept nogil:
    # out = a * m
    if floating is float:
        vm_mul_f(out, a, m, n)
    else:
        vm_mul_d(out, a, m, n)


cdef inline void _colsum(const floating* A, Py_ssize_t N, Py_ssize_t M,
                         floating* out) noexcept nogil:
    # out = A.sum(axis=0)                               (M,) of (N, M), row after row
    cdef Py_ssize_t r, j
    memset(out, 0, M * sizeof(floating))
    for r in range(N):
        for j in range(M):
            out[j] += A[r * M + j]


cdef inline void _fill_rows(floating* A, const floating* b, Py_ssize_t N,
                            Py_ssize_t M) noexcept nogil:
    # A[:] = b                                          (N, M) = (M,) broadcast
    cdef Py_ssize_t r
    for r in range(N):
        memcpy(A + r * M, b, M * sizeof(floating))


cdef inline void _recur(bint back, int B, int GH, int H, const floating* Wh,
                        const floating* x, floating beta, floating* y) noexcept nogil:
    """A product with a layer's (GH, H) weight, forward and backward: the sequential
    one of a step (B rows), or the input side of a chunk (T*B rows):
    forward  y = x @ Wh.T + beta*y    (B, GH) = (B, H) @ (H, GH)
    backward y = x @ Wh + beta*y      (B, H) = (B, GH) @ (GH, H)
    One row is a gemv: BLAS's gemm with a dimension of 1 can be several times slower."""
    if B == 1:
        # y = Wh @ x + beta*y  /  Wh.T @ x + beta*y     gemv: one row
        gemv(back, GH, H, <floating>1, Wh, H, x, beta, y)
    elif back:
        # y = x @ Wh + beta*y                           (B, H) = (B, GH) @ (GH, H)
        gemm(False, False, B, H, GH, <floating>1, x, GH, Wh, H, beta, y, H)
    else:
        # y = x @ Wh.T + beta*y                         (B, GH) = (B, H) @ (H, GH)
        gemm(False, True, B, GH, H, <floating>1, x, H, Wh, H, beta, y, GH)


# ----------------------------------------------------------------------------- the state

cdef void _load_state(const Dims* d, const floating* h0, int B, int T,
                      const Bufs* bf) noexcept nogil:
    """Every layer's h_0 (and c_0) from the (B, L*S*H) state h0 (Layout.state_views)."""
    cdef Py_ssize_t H = d.H, SH = <Py_ssize_t>d.S * d.H, b
    cdef Py_ssize_t LSH = <Py_ssize_t>d.L * d.S * d.H            # the state's columns
    cdef int l
    for l in range(d.L):
        for b in range(B):
            memcpy(_hs(d, l, B, T, <floating*>bf.hs) + b * H, h0 + b * LSH + l * SH,
                   H * sizeof(floating))
            if d.cell == _LSTM:
                memcpy(_hs(d, l, B, T, <floating*>bf.cs) + b * H,
                       h0 + b * LSH + l * SH + H, H * sizeof(floating))


cdef void _store_state(const Dims* d, floating* hlast, int B, int T, int t,
                       const Bufs* bf) noexcept nogil:
    """hlast = every layer's h_t (and c_t)."""
    cdef Py_ssize_t H = d.H, SH = <Py_ssize_t>d.S * d.H, b
    cdef Py_ssize_t LSH = <Py_ssize_t>d.L * d.S * d.H            # the state's columns
    cdef Py_ssize_t at = <Py_ssize_t>t * B * H
    cdef int l
    for l in range(d.L):
        for b in range(B):
            memcpy(hlast + b * LSH + l * SH, _hs(d, l, B, T, <floating*>bf.hs) + at + b * H,
                   H * sizeof(floating))
            if d.cell == _LSTM:
                memcpy(hlast + b * LSH + l * SH + H,
                       _hs(d, l, B, T, <floating*>bf.cs) + at + b * H,
                       H * sizeof(floating))


# ----------------------------------------------------------------------------- a layer

cdef void _fold_bias_T(const floating* Wx, const floating* bx, Py_ssize_t GH, Py_ssize_t V,
                       floating* WbT) noexcept nogil:
    """WbT = Wx.T + bx (V, GH): its row x is what the gather of column x yields."""
    cdef Py_ssize_t j, x
    for j in range(GH):
        for x in range(V):
            WbT[x * GH + j] = Wx[j * V + x] + bx[j]


cdef void _gather(const floating* Wx, const floating* bx, const int32_t* X, int B, int T,
                  Py_ssize_t GH, Py_ssize_t V, floating* A, floating* WbT) noexcept nogil:
    """A[t, b] = Wx[:, X[b, t]] + bx  (T, B, GH): a column gather, no one-hot. With
    scratch WbT for (V, GH) values (else NULL), Wx.T + bx made once and its rows copied;
    else in blocks of 64 rows of Wx, which stay in cache while every step reads its
    column of them. The same sums either way."""
    cdef Py_ssize_t j0, j1, j, t, b
    cdef floating* row
    cdef const floating* col
    if WbT != NULL:
        _fold_bias_T(Wx, bx, GH, V, WbT)
        for t in range(T):
            for b in range(B):
                # A[t, b] = WbT[X[b, t]]
                memcpy(A + (t * B + b) * GH, WbT + X[b * T + t] * GH, GH * sizeof(floating))
        return
    for j0 in range(0, GH, 64):
        j1 = j0 + 64 if j0 + 64 < GH else GH
        for t in range(T):
            for b in range(B):
                row = A + (t * B + b) * GH
                col = Wx + X[b * T + t]
                for j in range(j0, j1):
                    row[j] = col[j * V] + bx[j]


cdef void _scatter(const floating* dA, const int32_t* X, int B, int T, Py_ssize_t GH,
                   Py_ssize_t V, floating* dWx, floating* dWxT) noexcept nogil:
    """dWx = 0; dWx[:, X[b, t]] += dA[t, b]: the gather's twin, rows in the order t*B + b
    (the reference's). With scratch dWxT for (V, GH) values (else NULL), into the rows of
    the transpose, contiguous, then transposed; else in the gather's blocks. Either way
    each entry sums its rows in the same order."""
    cdef Py_ssize_t j0, j1, j, t, b, x
    cdef const floating* row
    cdef floating* col
    if dWxT != NULL:
        memset(dWxT, 0, GH * V * sizeof(floating))
        for t in range(T):
            for b in range(B):
                row = dA + (t * B + b) * GH
                col = dWxT + X[b * T + t] * GH
                for j in range(GH):
                    col[j] += row[j]                    # dWx.T[X[b, t]] += dA[t, b]
        for j in range(GH):
            for x in range(V):
                dWx[j * V + x] = dWxT[x * GH + j]       # dWx = dWx.T.T
        return
    memset(dWx, 0, GH * V * sizeof(floating))
    for j0 in range(0, GH, 64):
        j1 = j0 + 64 if j0 + 64 < GH else GH
        for t in range(T):
            for b in range(B):
                row = dA + (t * B + b) * GH
                col = dWx + X[b * T + t]
                for j in range(j0, j1):
                    col[j * V] += row[j]


cdef void _layer_forward(const Dims* d, const floating* w, int l, const int32_t* X, int B,
                         int T, const Bufs* bf) noexcept nogil:
    """Layer l over the chunk, from its h_0 (c_0) in the workspace: h_1 .. h_T (c), and
    what BPTT reads (cells.py's forward)."""
    cdef int H = d.H, GH = d.G * d.H, N = T * B, t
    cdef const floating* Wx = _param(d, w, l, 0)
    cdef const floating* Wh = _param(d, w, l, 1)
    cdef const floating* bx = _param(d, w, l, 2)
    cdef floating* hs = _hs(d, l, B, T, <floating*>bf.hs)      # (T+1, B, H)
    cdef floating* A = _acts(bf, d, l, B, T, <floating*>bf.hs)     # (T, B, GH)
    cdef floating* cs = NULL                                        # (T+1, B, H), lstm
    cdef floating* AH = NULL                                        # (T, B, GH), gru
    if d.cell == _LSTM:
        cs = _hs(d, l, B, T, <floating*>bf.cs)
    elif d.cell == _GRU:
        AH = <floating*>bf.ahs + <Py_ssize_t>l * N * GH
    cdef floating* a
    cdef floating* hprev
    cdef Py_ssize_t BH = <Py_ssize_t>B * H, BGH = <Py_ssize_t>B * GH
    # the input side of every step at once: Wx·in_t + bx                       (T, B, GH)
    if l == 0:
        # A = Wx0[:, X.T].T + bx0                       a column gather (the logits'
        # buffer zs is free until the output layer: scratch for Wx0.T when it fits)
        _gather(Wx, bx, X, B, T, GH, d.V, A, <floating*>bf.zs if N >= GH else NULL)
    else:
        if bf.masks != NULL:
            # ins[l-1] = h^{l-1}[1:] * masks[l-1]       dropout on the layer's input
            _mask(<floating*>bf.ins + <Py_ssize_t>(l - 1) * N * H,
                  _hs(d, l - 1, B, T, <floating*>bf.hs) + BH,
                  <const floating*>bf.masks + <Py_ssize_t>(l - 1) * N * H,
                  <Py_ssize_t>N * H)
        _fill_rows(A, bx, N, GH)
        # A = in @ Wx.T + bx                            (T*B, GH) = (T*B, H) @ (H, GH)
        _recur(False, N, GH, H, Wx, _input(bf, d, l, B, T, <floating*>bf.hs), <floating>1,
               A)
    if d.cell == _GRU:
        _fill_rows(AH, _param(d, w, l, 3), N, GH)                   # ah_t = bh + ...
    # the recurrence: only h_{t-1} @ Wh.T is sequential
    for t in range(T):
        hprev = hs + t * BH                                         # (B, H)
        a = A + t * BGH                                             # (B, GH)
        if d.cell == _RNN:
            # a_t += h_{t-1} @ Wh.T                     (B, H), in h_t's place
            _recur(False, B, GH, H, Wh, hprev, <floating>1, a)
            _tanh(a, BH)                                            # h_t = tanh(a_t)
        elif d.cell == _LSTM:
            # a_t += h_{t-1} @ Wh.T                     (B, 4H)
            _recur(False, B, GH, H, Wh, hprev, <floating>1, a)
            # i, f, g, o; c_t = f*c_{t-1} + i*g; h_t = o*tanh(c_t)
            if floating is float:
                vm_lstm_fwd_f(a, cs + t * BH, cs + (t + 1) * BH, hprev + BH, B, H)
            else:
                vm_lstm_fwd_d(a, cs + t * BH, cs + (t + 1) * BH, hprev + BH, B, H)
        else:
            # ah_t = h_{t-1} @ Wh.T + bh                (B, 3H)
            _recur(False, B, GH, H, Wh, hprev, <floating>1, AH + t * BGH)
            # r, z, n; h_t = (1-z)*n + z*h_{t-1}
            if floating is float:
                vm_gru_fwd_f(a, AH + t * BGH, hprev, hprev + BH, B, H)
            else:
                vm_gru_fwd_d(a, AH + t * BGH, hprev, hprev + BH, B, H)


cdef void _layer_backward(const Dims* d, const floating* w, floating* g, int l,
                          const int32_t* X, int B, int T, const Bufs* bf) noexcept nogil:
    """BPTT through layer l, from dh (from above) in its dhs block: its gradients into g,
    and (l > 0) the gradient of its input into layer l-1's dhs block (cells.py's backward,
    then the reference's GEMMs over all T steps)."""
    cdef int H = d.H, GH = d.G * d.H, N = T * B, t
    cdef const floating* Wh = _param(d, w, l, 1)
    cdef floating* hs = _hs(d, l, B, T, <floating*>bf.hs)      # (T+1, B, H)
    cdef floating* A = _acts(bf, d, l, B, T, <floating*>bf.hs)     # (T, B, GH)
    cdef floating* cs = NULL                                        # (T+1, B, H), lstm
    cdef floating* AH = NULL                                        # (T, B, GH), gru
    if d.cell == _LSTM:
        cs = _hs(d, l, B, T, <floating*>bf.cs)
    elif d.cell == _GRU:
        AH = <floating*>bf.ahs + <Py_ssize_t>l * N * GH
    cdef floating* dhs = <floating*>bf.dhs + <Py_ssize_t>l * N * H  # (T, B, H)
    cdef floating* dhnext = <floating*>bf.dhnext                    # (B, H)
    cdef floating* dcnext = <floating*>bf.dcnext                    # (B, H), lstm
    cdef floating* dAx
    cdef floating* dAh
    cdef floating* din
    cdef floating* a
    cdef Py_ssize_t BH = <Py_ssize_t>B * H, BGH = <Py_ssize_t>B * GH
    memset(dhnext, 0, BH * sizeof(floating))
    if d.cell == _LSTM:
        memset(dcnext, 0, BH * sizeof(floating))
    for t in range(T - 1, -1, -1):
        a = A + t * BGH                                             # (B, GH)
        if d.cell == _RNN:
            # da_t = (1 - h_t**2) * (dh_t + dhnext), in dh_t's place
            a = dhs + t * BH
            if floating is float:
                vm_dtanh_f(a, hs + (t + 1) * BH, dhnext, BH)
            else:
                vm_dtanh_d(a, hs + (t + 1) * BH, dhnext, BH)
            if t > 0:
                # dhnext = da_t @ Wh                    (B, H) = (B, H) @ (H, H)
                _recur(True, B, GH, H, Wh, a, <floating>0, dhnext)
        elif d.cell == _LSTM:
            # da_t of i, f, g, o into a; dcnext = dc_t * f
            if floating is float:
                vm_lstm_bwd_f(a, cs + t * BH, cs + (t + 1) * BH, dhs + t * BH, dhnext,
                              dcnext, B, H)
            else:
                vm_lstm_bwd_d(a, cs + t * BH, cs + (t + 1) * BH, dhs + t * BH, dhnext,
                              dcnext, B, H)
            if t > 0:
                # dhnext = da_t @ Wh                    (B, H) = (B, 4H) @ (4H, H)
                _recur(True, B, GH, H, Wh, a, <floating>0, dhnext)
        else:
            # dax_t into a, dah_t into ah_t, dhnext = dh_t * z
            if floating is float:
                vm_gru_bwd_f(a, AH + t * BGH, hs + t * BH, dhs + t * BH, dhnext, B, H)
            else:
                vm_gru_bwd_d(a, AH + t * BGH, hs + t * BH, dhs + t * BH, dhnext, B, H)
            if t > 0:
                # dhnext = dah_t @ Wh + dh_t * z        (B, H) = (B, 3H) @ (3H, H)
                _recur(True, B, GH, H, Wh, AH + t * BGH, <floating>1, dhnext)
    # the gradients of the input side (dAx) and of the recurrent side (dAh)   (T*B, GH)
    dAx = dhs if d.cell == _RNN else A
    dAh = AH if d.cell == _GRU else dAx
    # dWh = dAh.T @ hs[:T]                              (GH, H) = (GH, T*B) @ (T*B, H)
    gemm(True, False, GH, H, N, <floating>1, dAh, GH, hs, H, <floating>0,
         g + (_param(d, w, l, 1) - w), H)
    _colsum(dAx, N, GH, g + (_param(d, w, l, 2) - w))             # dbx = dAx.sum(axis=0)
    if d.cell == _GRU:
        _colsum(dAh, N, GH, g + (_param(d, w, l, 3) - w))         # dbh = dAh.sum(axis=0)
    if l == 0:
        # dWx0[:, X[b, t]] += dax_t[b]                  a scatter, the gather's twin; but
        # for the rnn (whose dAx it is) this layer's dh block (T*B, H) is done with:
        # scratch for dWx0.T when it fits (zs keeps dz, as the reference leaves it)
        _scatter(dAx, X, B, T, GH, d.V, g + (_param(d, w, l, 0) - w),
                 dhs if d.cell != _RNN and <Py_ssize_t>N * H >= <Py_ssize_t>d.V * GH
                 else NULL)
        return
    # dWx = dAx.T @ in                                  (GH, H) = (GH, T*B) @ (T*B, H)
    gemm(True, False, GH, H, N, <floating>1, dAx, GH,
         _input(bf, d, l, B, T, <floating*>bf.hs), H, <floating>0,
         g + (_param(d, w, l, 0) - w), H)
    # din = dAx @ Wx                                    (T*B, H) = (T*B, GH) @ (GH, H)
    din = <floating*>bf.dhs + <Py_ssize_t>(l - 1) * N * H
    _recur(True, N, GH, H, _param(d, w, l, 0), dAx, <floating>0, din)
    if bf.masks != NULL:
        # din *= masks[l-1]                             through the dropout
        _mask(din, din, <const floating*>bf.masks + <Py_ssize_t>(l - 1) * N * H,
              <Py_ssize_t>N * H)


# ----------------------------------------------------------------------------- a chunk

cdef void _stack_layers(const Dims* d, const floating* w, const int32_t* X, int B, int T,
                        const Bufs* bf) noexcept nogil:
    """Every layer over the chunk, bottom first, from the state in the workspace."""
    cdef int l
    for l in range(d.L):
        _layer_forward(d, w, l, X, B, T, bf)


cdef double _stack_forward(const Dims* d, const floating* w, const int32_t* X,
                           const int32_t* Y, const floating* h0, int B, int T,
                           const Bufs* bf, bint grad) noexcept nogil:
    """The stack and the output layer; the loss. With grad, leaves dz in zs."""
    cdef int L = d.L, N = T * B
    _load_state(d, h0, B, T, bf)
    _stack_layers(d, w, X, B, T, bf)
    if bf.masks != NULL:
        # ins[L-1] = h^{L-1}[1:] * masks[L-1]           dropout on the output layer's input
        _mask(<floating*>bf.ins + <Py_ssize_t>(L - 1) * N * d.H,
              _hs(d, L - 1, B, T, <floating*>bf.hs) + <Py_ssize_t>B * d.H,
              <const floating*>bf.masks + <Py_ssize_t>(L - 1) * N * d.H,
              <Py_ssize_t>N * d.H)
    return _output_loss(w + d.why, w + d.by, _input(bf, d, L, B, T, <floating*>bf.hs), Y,
                        B, T, d.H, d.V, <floating*>bf.zs, grad)


cdef double _stack_grads(const Dims* d, const floating* w, floating* g, const int32_t* X,
                         const int32_t* Y, const floating* h0, floating* hlast, int B,
                         int T, const Bufs* bf) noexcept nogil:
    """loss_and_grads of any layout: the loss; gradients into g, the state into hlast
    (which may be h0)."""
    cdef int H = d.H, V = d.V, L = d.L, N = T * B, l
    cdef floating* zs = <floating*>bf.zs
    cdef floating* dh = <floating*>bf.dhs + <Py_ssize_t>(L - 1) * N * H
    cdef const floating* In
    cdef double loss = _stack_forward(d, w, X, Y, h0, B, T, bf, True)
    In = _input(bf, d, L, B, T, <floating*>bf.hs)
    # backward, output side: single GEMMs over all T steps
    # dWhy = dZ.T @ In                                  (V, H) = (V, T*B) @ (T*B, H)
    gemm(True, False, V, H, N, <floating>1, zs, V, In, H, <floating>0, g + d.why, H)
    _colsum(zs, N, V, g + d.by)                                     # dby = dZ.sum(axis=0)
    # dh = dZ @ Why                                     (T*B, H) = (T*B, V) @ (V, H)
    gemm(False, False, N, H, V, <floating>1, zs, V, w + d.why, H, <floating>0, dh, H)
    if bf.masks != NULL:
        # dh *= masks[L-1]                              through the dropout
        _mask(dh, dh, <const floating*>bf.masks + <Py_ssize_t>(L - 1) * N * H,
              <Py_ssize_t>N * H)
    for l in range(L - 1, -1, -1):
        _layer_backward(d, w, g, l, X, B, T, bf)
    _store_state(d, hlast, B, T, T, bf)
    return loss


cdef void _stack_sample(const Dims* d, const floating* w, floating* h, int B,
                        const int32_t* first, const double* U, Py_ssize_t n,
                        floating temperature, int k, int32_t* out, const Bufs* bf,
                        floating* z, floating* e, int* top) noexcept nogil:
    """n draws for B streams of any layout: each a chunk of one step (T = 1) on scratch
    ``bf``, whose h_1 (c_1) is then moved to h_0 (c_0); z (B, V), e (2V), top (V)."""
    cdef Py_ssize_t H = d.H, V = d.V, BH = <Py_ssize_t>B * d.H, b, i
    cdef const int32_t* x = first
    cdef const floating* htop
    cdef int l
    _load_state(d, h, B, 1, bf)
    htop = _hs(d, d.L - 1, B, 1, <floating*>bf.hs) + BH
    for i in range(n):
        _stack_layers(d, w, x, B, 1, bf)
        _fill_rows(z, w + d.by, B, V)
        # z = h @ Why.T + by                            (B, V) = (B, H) @ (H, V)
        if B == 1:
            gemv(False, <int>V, <int>H, <floating>1, w + d.why, <int>H, htop, <floating>1,
                 z)
        else:
            gemm(False, True, B, <int>V, <int>H, <floating>1, htop, <int>H, w + d.why,
                 <int>H, <floating>1, z, <int>V)
        for b in range(B):
            out[i * B + b] = _draw(z + b * V, <int>V, U[i * B + b], temperature, k, e, top)
        x = out + i * B
        for l in range(d.L):                            # h_0 = h_1 (c_0 = c_1)
            memcpy(_hs(d, l, B, 1, <floating*>bf.hs),
                   _hs(d, l, B, 1, <floating*>bf.hs) + BH, BH * sizeof(floating))
            if d.cell == _LSTM:
                memcpy(_hs(d, l, B, 1, <floating*>bf.cs),
                       _hs(d, l, B, 1, <floating*>bf.cs) + BH, BH * sizeof(floating))
    _store_state(d, h, B, 1, 0, bf)
