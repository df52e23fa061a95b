"""The canary that tools/memcheck.sh --canary runs under each memory checker.

Both tests plant a real out-of-bounds access (one element past the end of a heap buffer,
through a Cython memoryview) in charrnn._canary, a module built only with
CHARRNN_CANARY=1. Under a working checker this run fails: a debug build (boundscheck)
raises IndexError, AddressSanitizer aborts with a heap-buffer-overflow report, valgrind
reports an invalid read and an invalid write. This file is not part of the test suite.
"""

import charrnn._canary as canary


def test_out_of_bounds_read():
    canary.oob_read(8)


def test_out_of_bounds_write():
    canary.oob_write(8)
