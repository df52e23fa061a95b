"""The kernels: the numerical core of charrnn, in two twins with the same functions.

- ``charrnn._kernels`` (built from ``csrc/_kernels.pyx``): Cython over BLAS, GIL released;
- :mod:`charrnn.kernels.reference`: the NumPy reference, the readable twin and the fallback;
- :mod:`charrnn.kernels.cells`: the reference's recurrent cells (rnn, lstm, gru), each once;
- :mod:`charrnn.kernels.checks`: the argument checks both twins share;
- :mod:`charrnn.kernels.rules`: the update rules' registry;
- :mod:`charrnn.kernels.backend`: which twin runs (``get_kernels``).
"""
