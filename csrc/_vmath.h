/* Element-wise loops that must vectorise: tanh, exp, and the fused clip+update passes.
 *
 * libm's scalar tanhf/expf cost about 8 ns an element; these loops are written so gcc
 * vectorises them (no calls, branch-free selects, integer bit tricks for 2**n), and are
 * compiled for several ISAs with target_clones, picked at load time. No -march=native:
 * a wheel runs on any x86-64, the wide versions only where the CPU has them. setup.py
 * builds with -ffp-contract=off, so every clone rounds exactly like the scalar code and
 * results do not depend on the CPU.
 *
 * Accuracy: exp and tanh are within a few ulps of libm (the tests hold the kernels to
 * the NumPy reference at rtol 1e-10 in float64). Coefficients: Cephes (S. Moshier).
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

/* |x| < 0.625: x + x*z*P(z)/Q(z), z = x*x;  else sign(x) * (1 - e) / (1 + e), e = exp(-2|x|) */
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

static inline float vm_tanh_f(float x) {
    float a = fabsf(x);
    float z = x * x;
    float small = ((((-5.70498872745e-3f * z + 2.06390887954e-2f) * z - 5.37397155531e-2f) * z
                    + 1.33314422036e-1f) * z - 3.33332819422e-1f) * z * x + x;
    float e = vm_expneg_f(-2.0f * a);
    float big = (1.0f - e) / (1.0f + e);
    big = x < 0 ? -big : big;
    return a < 0.625f ? small : big;
}

/* ---------------------------------------------------------------- array loops */

VM_CLONES static void vm_tanh_inplace_d(double* a, ptrdiff_t n) {
    for (ptrdiff_t i = 0; i < n; i++) a[i] = vm_tanh_d(a[i]);
}
VM_CLONES static void vm_tanh_inplace_f(float* a, ptrdiff_t n) {
    for (ptrdiff_t i = 0; i < n; i++) a[i] = vm_tanh_f(a[i]);
}
/* a = exp(a - m) in place; every a - m <= 0 */
VM_CLONES static void vm_expsub_inplace_d(double* a, double m, ptrdiff_t n) {
    for (ptrdiff_t i = 0; i < n; i++) a[i] = vm_expneg_d(a[i] - m);
}
VM_CLONES static void vm_expsub_inplace_f(float* a, float m, ptrdiff_t n) {
    for (ptrdiff_t i = 0; i < n; i++) a[i] = vm_expneg_f(a[i] - m);
}
/* e = exp((z - m) / temp), m = max z */
VM_CLONES static void vm_expscale_d(const double* z, double temp, double m, double* e,
                                    ptrdiff_t n) {
    for (ptrdiff_t i = 0; i < n; i++) e[i] = vm_expneg_d((z[i] - m) / temp);
}
VM_CLONES static void vm_expscale_f(const float* z, float temp, float m, float* e,
                                    ptrdiff_t n) {
    for (ptrdiff_t i = 0; i < n; i++) e[i] = vm_expneg_f((z[i] - m) / temp);
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

#endif
