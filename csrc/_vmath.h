/* Element-wise loops that must vectorise: tanh, exp, and the fused clip+update passes.
 *
 * libm's scalar tanhf/expf cost about 8 ns an element; these loops are written so gcc
 * vectorises them (no calls, branch-free selects, integer bit tricks for 2**n), and are
 * compiled for several ISAs with target_clones, picked at load time. No -march=native:
 * a wheel runs on any x86-64, the wide versions only where the CPU has them. setup.py
 * builds with -ffp-contract=off, so every clone rounds exactly like the scalar code and
 * results do not depend on the CPU.
 *
 * Accuracy: exp and tanh are within a few ulps of the true values (the tests hold the
 * kernels to the NumPy reference at rtol 1e-10 in float64, and tanh to 4 ulps in float64
 * and 8 in float32, tests/kernels/test_elementwise.py). Coefficients: Cephes
 * (S. Moshier), but float32 tanh's, fitted for this file (benchmarks/NOTES.md).
 */
#ifndef CHARRNN_VMATH_H
#define CHARRNN_VMATH_H

#include <math.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#if defined(__GNUC__) && !defined(__clang__) && defined(__x86_64__) && defined(__linux__) \
    && !defined(CHARRNN_NO_CLONES)
#define VM_CLONES __attribute__((target_clones("arch=x86-64-v4", "arch=x86-64-v3", "default")))
#else
#define VM_CLONES
#endif

/* ---------------------------------------------------------------- exp for x <= 0 */

/* exp(x) for x <= 0 (softmax after the max is subtracted, tanh's exp(-2|x|)).
 * x = n*ln2 + r, |r| <= ln2/2; exp(r) by a polynomial; 2**n built in the exponent bits.
 * Below -708 (float64) / -87 (float32) the result is 0 (the true value is subnormal). */
static inline double vm_expneg_d(double x) {
    const double magic = 6755399441055744.0;            /* 1.5 * 2**52: rounds to int */
    double xc = x < -708.0 ? -708.0 : x;
    double t = xc * 1.4426950408889634 + magic;          /* n + magic, n = round(x/ln2) */
    double n = t - magic;
    double r = xc - n * 6.93145751953125e-1;             /* ln2 split hi + lo */
    r = r - n * 1.42860682030941723212e-6;
    double p = 1.0 / 6227020800.0;                       /* Taylor to r**13 / 13! */
    p = p * r + 1.0 / 479001600.0;
    p = p * r + 1.0 / 39916800.0;
    p = p * r + 1.0 / 3628800.0;
    p = p * r + 1.0 / 362880.0;
    p = p * r + 1.0 / 40320.0;
    p = p * r + 1.0 / 5040.0;
    p = p * r + 1.0 / 720.0;
    p = p * r + 1.0 / 120.0;
    p = p * r + 1.0 / 24.0;
    p = p * r + 1.0 / 6.0;
    p = p * r + 0.5;
    p = p * r + 1.0;
    p = p * r + 1.0;
    int64_t tb, mb;
    double m = magic;
    memcpy(&tb, &t, 8);
    memcpy(&mb, &m, 8);
    int64_t sb = (tb - mb + 1023) << 52;                 /* the bits of 2**n */
    double s;
    memcpy(&s, &sb, 8);
    return x < -708.0 ? 0.0 : p * s;
}

static inline float vm_expneg_f(float x) {
    const float magic = 12582912.0f;                     /* 1.5 * 2**23 */
    float xc = x < -87.0f ? -87.0f : x;
    float t = xc * 1.44269504088896341f + magic;
    float n = t - magic;
    float r = xc - n * 0.693359375f;
    r = r - n * -2.12194440e-4f;
    float p = 1.9875691500e-4f;
    p = p * r + 1.3981999507e-3f;
    p = p * r + 8.3334519073e-3f;
    p = p * r + 4.1665795894e-2f;
    p = p * r + 1.6666665459e-1f;
    p = p * r + 5.0000001201e-1f;
    p = p * (r * r) + r + 1.0f;
    int32_t tb, mb;
    float m = magic;
    memcpy(&tb, &t, 4);
    memcpy(&mb, &m, 4);
    int32_t sb = (tb - mb + 127) << 23;
    float s;
    memcpy(&s, &sb, 4);
    return x < -87.0f ? 0.0f : p * s;
}

/* ---------------------------------------------------------------- tanh */

/* float64: |x| < 0.625: x + x*z*P(z)/Q(z), z = x*x;  else sign(x) * (1 - e) / (1 + e),
 * e = exp(-2|x|) */
static inline double vm_tanh_d(double x) {
    double a = fabs(x);
    double z = x * x;
    double P = (-9.64399179425052238628e-1 * z - 9.92877231001918586564e1) * z
               - 1.61468768441708447952e3;
    double Q = ((z + 1.12811678491632931402e2) * z + 2.23548839060100448583e3) * z
               + 4.84406305325125486048e3;
    double small = x + x * (z * P / Q);
    double e = vm_expneg_d(-2.0 * a);
    double big = (1.0 - e) / (1.0 + e);
    big = x < 0 ? -big : big;
    return a < 0.625 ? small : big;
}

/* float32: x * P(z) / Q(z), z = x*x, x clamped to [-9, 9] (beyond, tanh rounds to +-1),
 * P of degree 6 and Q of degree 3, a relative-error fit over [0, 9]; no exp, no select
 * between two forms, one division: about half the work of the float64 form per element */
static inline float vm_tanh_f(float x) {
    float xc = x > 9.0f ? 9.0f : x;
    xc = xc < -9.0f ? -9.0f : xc;
    float z = xc * xc;
    float P = ((((((-8.4888836e-14f * z + 5.2780304e-11f) * z - 2.0225428e-08f) * z
                 + 1.1154365e-05f) * z + 3.1039622e-03f) * z + 1.3084015e-01f) * z + 1.0f);
    float Q = (((2.5461536e-04f * z + 2.4495203e-02f) * z + 4.6417344e-01f) * z + 1.0f);
    float t = xc * P / Q;
    t = t > 1.0f ? 1.0f : t;                            /* within rounding of 1, not above */
    return t < -1.0f ? -1.0f : t;
}

/* ---------------------------------------------------------------- array loops */

/* out[i] = F(x) with x = in[i], for i < n (out may be in). gcc vectorises the loop over
 * the whole blocks of 8 and leaves the rest to scalar code, which for a short row such
 * as H = 100 or V = 65 costs as much as the vectors. So the last 8 elements are done
 * first as one block of their own, from in, and the part of it past the whole blocks is
 * stored last: every element through the same vector code, whatever n. */
#define VM_MAP(T, n, in, out, F)                                                     \
    do {                                                                             \
        ptrdiff_t n8_ = (n) - (n) % 8, i_;                                           \
        T t_[8];                                                                     \
        if (n8_ == (n) || (n) < 8) {                                                 \
            for (i_ = 0; i_ < (n); i_++) {                                           \
                T x = (in)[i_];                                                      \
                (out)[i_] = (F);                                                     \
            }                                                                        \
            break;                                                                   \
        }                                                                            \
        for (int l_ = 0; l_ < 8; l_++) {                                             \
            T x = (in)[(n) - 8 + l_];                                                \
            t_[l_] = (F);                                                            \
        }                                                                            \
        for (i_ = 0; i_ < n8_; i_++) {                                               \
            T x = (in)[i_];                                                          \
            (out)[i_] = (F);                                                         \
        }                                                                            \
        memcpy((out) + n8_, t_ + 8 - ((n) - n8_), (size_t)((n) - n8_) * sizeof(T));  \
    } while (0)

VM_CLONES static void vm_tanh_inplace_d(double* a, ptrdiff_t n) {
    VM_MAP(double, n, a, a, vm_tanh_d(x));
}
VM_CLONES static void vm_tanh_inplace_f(float* a, ptrdiff_t n) {
    VM_MAP(float, n, a, a, vm_tanh_f(x));
}
/* a = exp(a - m) in place; every a - m <= 0 */
VM_CLONES static void vm_expsub_inplace_d(double* a, double m, ptrdiff_t n) {
    VM_MAP(double, n, a, a, vm_expneg_d(x - m));
}
VM_CLONES static void vm_expsub_inplace_f(float* a, float m, ptrdiff_t n) {
    VM_MAP(float, n, a, a, vm_expneg_f(x - m));
}
/* e = exp((z - m) / temp), m = max z */
VM_CLONES static void vm_expscale_d(const double* z, double temp, double m, double* e,
                                    ptrdiff_t n) {
    VM_MAP(double, n, z, e, vm_expneg_d((x - m) / temp));
}
VM_CLONES static void vm_expscale_f(const float* z, float temp, float m, float* e,
                                    ptrdiff_t n) {
    VM_MAP(float, n, z, e, vm_expneg_f((x - m) / temp));
}

/* How many of c[0..n) are <= t: for running sums of non-negative terms (non-decreasing),
 * the index of the first one above t, found without a branch on the data. */
#define VM_COUNT_LE(c, n, t)                                                         \
    do {                                                                             \
        ptrdiff_t k_ = 0;                                                            \
        for (ptrdiff_t i_ = 0; i_ < (n); i_++) k_ += (double)(c)[i_] <= (t);          \
        return k_;                                                                   \
    } while (0)
VM_CLONES static ptrdiff_t vm_count_le_d(const double* c, ptrdiff_t n, double t) {
    VM_COUNT_LE(c, n, t);
}
VM_CLONES static ptrdiff_t vm_count_le_f(const float* c, ptrdiff_t n, double t) {
    VM_COUNT_LE(c, n, t);
}

/* The largest of z[0..n), n >= 1, as the scan "m = z[0]; m = z[i] > m ? z[i] : m" finds
 * it (a NaN is never larger, so only a NaN z[0] gives NaN), with eight independent
 * running maxima instead of one dependent chain; the order does not change a maximum. */
#define VM_MAX(T, z, n)                                                              \
    do {                                                                             \
        T acc[8];                                                                    \
        for (int l = 0; l < 8; l++) acc[l] = z[0];                                   \
        ptrdiff_t i = 0;                                                             \
        for (; i + 8 <= n; i += 8)                                                   \
            for (int l = 0; l < 8; l++) acc[l] = z[i + l] > acc[l] ? z[i + l] : acc[l]; \
        for (; i < n; i++) acc[0] = z[i] > acc[0] ? z[i] : acc[0];                   \
        T m = acc[0];                                                                \
        for (int l = 1; l < 8; l++) m = acc[l] > m ? acc[l] : m;                     \
        return m;                                                                    \
    } while (0)
static inline double vm_max_d(const double* z, ptrdiff_t n) { VM_MAX(double, z, n); }
static inline float vm_max_f(const float* z, ptrdiff_t n) { VM_MAX(float, z, n); }

/* da = (1 - h*h) * (da + dhnext) */
VM_CLONES static void vm_dtanh_d(double* da, const double* h, const double* dhnext,
                                 ptrdiff_t n) {
    for (ptrdiff_t i = 0; i < n; i++) da[i] = (1.0 - h[i] * h[i]) * (da[i] + dhnext[i]);
}
VM_CLONES static void vm_dtanh_f(float* da, const float* h, const float* dhnext,
                                 ptrdiff_t n) {
    for (ptrdiff_t i = 0; i < n; i++) da[i] = (1.0f - h[i] * h[i]) * (da[i] + dhnext[i]);
}

/* ---------------------------------------------------------------- clip + update */

/* g' = clip(g * scale, -clip, clip); a NaN stays NaN */
#define VM_G(g, scale, clip) \
    gi = (g) * (scale); gi = gi > (clip) ? (clip) : gi; gi = gi < -(clip) ? -(clip) : gi;

#define VM_UPDATES(T, SUF, SQRT)                                                            \
VM_CLONES static void vm_sgd_##SUF(T* w, const T* g, ptrdiff_t n, T lr, T clip, T scale) {  \
    for (ptrdiff_t i = 0; i < n; i++) { T gi; VM_G(g[i], scale, clip) w[i] -= lr * gi; }     \
}                                                                                           \
VM_CLONES static void vm_adagrad_##SUF(T* w, const T* g, T* m, ptrdiff_t n, T lr, T eps,    \
                                       T clip, T scale) {                                   \
    for (ptrdiff_t i = 0; i < n; i++) {                                                     \
        T gi; VM_G(g[i], scale, clip)                                                       \
        m[i] += gi * gi;                                                                    \
        w[i] -= lr * gi / SQRT(m[i] + eps);                                                 \
    }                                                                                       \
}                                                                                           \
VM_CLONES static void vm_rmsprop_##SUF(T* w, const T* g, T* v, ptrdiff_t n, T lr, T rho,    \
                                       T omr, T eps, T clip, T scale) {                     \
    for (ptrdiff_t i = 0; i < n; i++) {                                                     \
        T gi; VM_G(g[i], scale, clip)                                                       \
        v[i] = v[i] * rho + omr * (gi * gi);                                                \
        w[i] -= lr * gi / (SQRT(v[i]) + eps);                                               \
    }                                                                                       \
}                                                                                           \
VM_CLONES static void vm_adam_##SUF(T* w, const T* g, T* m, T* v, ptrdiff_t n, T lr, T b1,  \
                                    T omb1, T b2, T omb2, T c1, T c2, T eps, T clip,        \
                                    T scale) {                                              \
    for (ptrdiff_t i = 0; i < n; i++) {                                                     \
        T gi; VM_G(g[i], scale, clip)                                                       \
        m[i] = m[i] * b1 + omb1 * gi;                                                       \
        v[i] = v[i] * b2 + omb2 * (gi * gi);                                                \
        w[i] -= lr * (m[i] / c1) / (SQRT(v[i] / c2) + eps);                                 \
    }                                                                                       \
}                                                                                           \
VM_CLONES static void vm_clip_##SUF(T* g, ptrdiff_t n, T clip, T scale) {                   \
    for (ptrdiff_t i = 0; i < n; i++) { T gi; VM_G(g[i], scale, clip) g[i] = gi; }           \
}                                                                                           \
/* sum of squares in float64, eight partial sums so the loop vectorises */                  \
VM_CLONES static double vm_sumsq_##SUF(const T* g, ptrdiff_t n) {                           \
    double s[8] = {0, 0, 0, 0, 0, 0, 0, 0};                                                 \
    ptrdiff_t i = 0;                                                                        \
    for (; i + 8 <= n; i += 8)                                                              \
        for (int k = 0; k < 8; k++) s[k] += (double)g[i + k] * (double)g[i + k];           \
    for (; i < n; i++) s[0] += (double)g[i] * (double)g[i];                                 \
    return ((s[0] + s[1]) + (s[2] + s[3])) + ((s[4] + s[5]) + (s[6] + s[7]));               \
}

VM_UPDATES(double, d, sqrt)
VM_UPDATES(float, f, sqrtf)

/* ---------------------------------------------------------------- cells (design 2b)
 *
 * One fused pass per step over a (B, G*H) block of gates, forward and backward side by
 * side, in the order of charrnn/kernels/cells.py (each line names the line it computes).
 * Row b of a block holds the G gate blocks of H values one after another. */

/* sig(x) = 1 / (1 + exp(-x)) from e = exp(-|x|) <= 1, so nothing overflows:
 * x >= 0: 1 / (1 + e);  x < 0: e / (1 + e).  Below the exp cut-off the result is 0. */
static inline double vm_sig_d(double x) {
    double e = vm_expneg_d(-fabs(x));
    double s = 1.0 / (1.0 + e);
    return x >= 0 ? s : e * s;
}
static inline float vm_sig_f(float x) {
    float e = vm_expneg_f(-fabsf(x));
    float s = 1.0f / (1.0f + e);
    return x >= 0 ? s : e * s;
}

/* The gate blocks of a row are H apart in one array: gcc cannot tell that a store to
 * one block never meets a load from another within a vector, so say so. */
#define VM_IVDEP _Pragma("GCC ivdep")

#define VM_CELLS(T, SUF, ONE)                                                               \
/* LSTM forward: a (B, 4H) holds a_t = Wx.in_t + h_{t-1} @ Wh.T + b; leaves i, f, g, o */   \
VM_CLONES static void vm_lstm_fwd_##SUF(T* a, const T* cprev, T* c, T* h, ptrdiff_t B,      \
                                        ptrdiff_t H) {                                      \
    for (ptrdiff_t b = 0; b < B; b++) {                                                     \
        T* ab = a + b * 4 * H;                                                              \
        const T* cp = cprev + b * H;                                                        \
        T* cb = c + b * H;                                                                  \
        T* hb = h + b * H;                                                                  \
        VM_IVDEP                                                                            \
        for (ptrdiff_t j = 0; j < H; j++) {                                                 \
            T i = vm_sig_##SUF(ab[j]);                  /* i = sig(a[:, :H]) */             \
            T f = vm_sig_##SUF(ab[H + j]);              /* f = sig(a[:, H:2H]) */           \
            T g = vm_tanh_##SUF(ab[2 * H + j]);         /* g = tanh(a[:, 2H:3H]) */         \
            T o = vm_sig_##SUF(ab[3 * H + j]);          /* o = sig(a[:, 3H:]) */            \
            T ct = f * cp[j] + i * g;                   /* c_t = f*c_{t-1} + i*g */         \
            cb[j] = ct;                                                                     \
            hb[j] = vm_tanh_##SUF(ct) * o;              /* h_t = o*tanh(c_t) */             \
            ab[j] = i; ab[H + j] = f; ab[2 * H + j] = g; ab[3 * H + j] = o;                 \
        }                                                                                   \
    }                                                                                       \
}                                                                                           \
/* LSTM backward: a holds i, f, g, o, dh the gradient from above; dhnext, dcnext those     \
 * from step t+1. Leaves da_t in a and dc_{t-1} through f in dcnext. */                     \
VM_CLONES static void vm_lstm_bwd_##SUF(T* a, const T* cprev, const T* c, const T* dh,      \
                                        const T* dhnext, T* dcnext, ptrdiff_t B,            \
                                        ptrdiff_t H) {                                      \
    for (ptrdiff_t b = 0; b < B; b++) {                                                     \
        T* ab = a + b * 4 * H;                                                              \
        const T* cp = cprev + b * H;                                                        \
        const T* cb = c + b * H;                                                            \
        const T* dhb = dh + b * H;                                                          \
        const T* dhn = dhnext + b * H;                                                      \
        T* dcn = dcnext + b * H;                                                            \
        VM_IVDEP                                                                            \
        for (ptrdiff_t j = 0; j < H; j++) {                                                 \
            T i = ab[j], f = ab[H + j], g = ab[2 * H + j], o = ab[3 * H + j];               \
            T d = dhb[j] + dhn[j];                      /* dh_t = dh + dhnext */            \
            T tc = vm_tanh_##SUF(cb[j]);                /* tanh(c_t) */                     \
            T d_o = d * tc;                             /* h_t = o*tanh(c_t) */             \
            T dc = d * o * (ONE - tc * tc) + dcn[j];    /* dc_t = ... + dcnext */           \
            dcn[j] = dc * f;                            /* dc_{t-1} through f */            \
            ab[j] = dc * g * (i * (ONE - i));           /* c_t = f*c_{t-1} + i*g */         \
            ab[H + j] = dc * cp[j] * (f * (ONE - f));                                       \
            ab[2 * H + j] = dc * i * (ONE - g * g);                                         \
            ab[3 * H + j] = d_o * (o * (ONE - o));                                          \
        }                                                                                   \
    }                                                                                       \
}                                                                                           \
/* GRU forward: ax (B, 3H) holds Wx.in_t + bx, ah h_{t-1} @ Wh.T + bh; leaves r, z, n      \
 * in ax */                                                                                 \
VM_CLONES static void vm_gru_fwd_##SUF(T* ax, const T* ah, const T* hprev, T* h,            \
                                       ptrdiff_t B, ptrdiff_t H) {                          \
    for (ptrdiff_t b = 0; b < B; b++) {                                                     \
        T* xb = ax + b * 3 * H;                                                             \
        const T* hb_ = ah + b * 3 * H;                                                      \
        const T* hp = hprev + b * H;                                                        \
        T* hb = h + b * H;                                                                  \
        VM_IVDEP                                                                            \
        for (ptrdiff_t j = 0; j < H; j++) {                                                 \
            T r = vm_sig_##SUF(xb[j] + hb_[j]);             /* r = sig(ax_r + ah_r) */      \
            T z = vm_sig_##SUF(xb[H + j] + hb_[H + j]);     /* z = sig(ax_z + ah_z) */      \
            T n = vm_tanh_##SUF(xb[2 * H + j] + r * hb_[2 * H + j]);                        \
                                                        /* n = tanh(ax_n + r*ah_n) */       \
            hb[j] = (hp[j] - n) * z + n;                /* h_t = (1-z)*n + z*h_{t-1} */     \
            xb[j] = r; xb[H + j] = z; xb[2 * H + j] = n;                                    \
        }                                                                                   \
    }                                                                                       \
}                                                                                           \
/* GRU backward: ax holds r, z, n, ah ah_t, dh the gradient from above, dhnext that from   \
 * step t+1. Leaves dax_t in ax, dah_t in ah, and dh_t * z (the direct path to h_{t-1})    \
 * in dhnext. */                                                                            \
VM_CLONES static void vm_gru_bwd_##SUF(T* ax, T* ah, const T* hprev, const T* dh,           \
                                       T* dhnext, ptrdiff_t B, ptrdiff_t H) {               \
    for (ptrdiff_t b = 0; b < B; b++) {                                                     \
        T* xb = ax + b * 3 * H;                                                             \
        T* hb_ = ah + b * 3 * H;                                                            \
        const T* hp = hprev + b * H;                                                        \
        const T* dhb = dh + b * H;                                                          \
        T* dhn = dhnext + b * H;                                                            \
        VM_IVDEP                                                                            \
        for (ptrdiff_t j = 0; j < H; j++) {                                                 \
            T r = xb[j], z = xb[H + j], n = xb[2 * H + j];                                  \
            T d = dhb[j] + dhn[j];                      /* dh_t = dh + dhnext */            \
            T dz = d * (hp[j] - n);                     /* dh_t/dz = h_{t-1} - n */         \
            T dan = d * (ONE - z) * (ONE - n * n);      /* through n = tanh(...) */         \
            T dar = dan * hb_[2 * H + j] * (r * (ONE - r));   /* ... + r*ah_n, sig' */      \
            T daz = dz * (z * (ONE - z));                                                   \
            dhn[j] = d * z;                             /* h_t = ... + z*h_{t-1} */         \
            xb[j] = dar; xb[H + j] = daz; xb[2 * H + j] = dan;                              \
            hb_[j] = dar; hb_[H + j] = daz; hb_[2 * H + j] = dan * r;                       \
        }                                                                                   \
    }                                                                                       \
}                                                                                           \
/* out = a * m (dropout on a layer's input; out may be a) */                                \
VM_CLONES static void vm_mul_##SUF(T* out, const T* a, const T* m, ptrdiff_t n) {           \
    for (ptrdiff_t i = 0; i < n; i++) out[i] = a[i] * m[i];                                 \
}

VM_CELLS(double, d, 1.0)
VM_CELLS(float, f, 1.0f)

#endif
