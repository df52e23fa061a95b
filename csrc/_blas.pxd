# Fused-type BLAS shims over scipy.linalg.cython_blas, in row-major terms.
#
# Column-major BLAS reads a row-major (M, N) array as its (N, M) transpose. So the
# row-major product C = op(A) @ op(B) is computed as the column-major C.T = op(B).T @ op(A).T:
# swap the operands and M with N. That trick lives here and nowhere else.

from cython cimport floating
from scipy.linalg.cython_blas cimport sgemm, dgemm, sgemv, dgemv


cdef inline void gemm(bint transA, bint transB, int M, int N, int K,
                      floating alpha, const floating* A, int lda,
                      const floating* B, int ldb,
                      floating beta, floating* C, int ldc) noexcept nogil:
    """C (M, N) = alpha * op(A) @ op(B) + beta * C, all row-major."""
    cdef char ta = b'T' if transA else b'N'
    cdef char tb = b'T' if transB else b'N'
    if floating is float:
        sgemm(&tb, &ta, &N, &M, &K, &alpha, <float*>B, &ldb, <float*>A, &lda,
              &beta, C, &ldc)
    else:
        dgemm(&tb, &ta, &N, &M, &K, &alpha, <double*>B, &ldb, <double*>A, &lda,
              &beta, C, &ldc)


cdef inline void gemv(bint transA, int M, int N, floating alpha,
                      const floating* A, int lda, const floating* x,
                      floating beta, floating* y) noexcept nogil:
    """y = alpha * op(A) @ x + beta * y, A row-major (M, N); op(A) = A.T if transA."""
    # row-major A is column-major A.T, so A @ x is the column-major 'T' product
    cdef char t = b'N' if transA else b'T'
    cdef int one = 1
    if floating is float:
        sgemv(&t, &N, &M, &alpha, <float*>A, &lda, <float*>x, &one, &beta, y, &one)
    else:
        dgemv(&t, &N, &M, &alpha, <double*>A, &lda, <double*>x, &one, &beta, y, &one)
