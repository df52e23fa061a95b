"""The one bound every count and size obeys: BLAS takes 32-bit sizes.

This module imports nothing, so the command line can check its arguments against the bound
before NumPy is loaded.
"""

INT_MAX = 2**31 - 1     # the largest count, size or dimension; 2**31 and more are refused
