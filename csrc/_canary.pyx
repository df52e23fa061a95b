# A planted out-of-bounds access, for proving that the memory checkers catch one.
#
# Built into charrnn._canary only when the build sets CHARRNN_CANARY=1 (never in a wheel),
# with the same flags and directives as charrnn._kernels. tools/memcheck.sh --canary runs it
# under each checker: a debug build (boundscheck) raises IndexError, AddressSanitizer
# reports a heap-buffer-overflow, valgrind an invalid read or write.

from libc.stdlib cimport calloc, free


cdef double* _buffer(Py_ssize_t n) except NULL:
    cdef double* p = <double*>calloc(n, sizeof(double))
    if p == NULL:
        raise MemoryError()
    return p


def oob_read(Py_ssize_t n=8, Py_ssize_t past=0):
    """Read element ``n + past`` of an n-element heap buffer through a memoryview."""
    cdef double* p = _buffer(n)
    cdef double[::1] v = <double[:n]>p
    cdef double x
    try:
        x = v[n + past]                 # one past the end: a runtime index, never folded
    finally:
        free(p)
    return x


def oob_write(Py_ssize_t n=8, Py_ssize_t past=0):
    """Write element ``n + past`` of an n-element heap buffer through a memoryview."""
    cdef double* p = _buffer(n)
    cdef double[::1] v = <double[:n]>p
    try:
        v[n + past] = 1.0
    finally:
        free(p)
