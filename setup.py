"""Extension modules only: csrc/*.pyx compiled into charrnn._kernels.

Everything else about the package lives in pyproject.toml.

Environment switches read at build time:
  CHARRNN_DEBUG=1   boundscheck, wraparound and initializedcheck on, -O0 -g
  CHARRNN_ASAN=1    compile and link the extension with AddressSanitizer
  CHARRNN_NO_EXT=1  build a pure-Python (NumPy backend only) package, an explicit opt-in
  CHARRNN_CANARY=1  also build charrnn._canary, the planted out-of-bounds access that
                    proves the memory checkers work (tools/memcheck.sh --canary)
"""

import os

from setuptools import Extension, setup


def _flag(name: str) -> bool:
    return os.environ.get(name, "") not in ("", "0")


def extensions():
    if _flag("CHARRNN_NO_EXT"):
        return []
    from Cython.Build import cythonize

    debug = _flag("CHARRNN_DEBUG")
    directives = {
        "language_level": 3,
        "boundscheck": debug,
        "wraparound": debug,
        "initializedcheck": debug,
        "cdivision": not debug,
        "embedsignature": True,
    }
    # No -march=native and no -ffast-math: wheels run on other CPUs and the kernels
    # must keep IEEE semantics. -fno-math-errno lets gcc inline sqrt and vectorise;
    # -fno-trapping-math lets it turn the branch-free selects of csrc/_vmath.h's tanh
    # and exp into vector blends (it assumes no floating-point trap is enabled, which
    # changes no value); wide ISAs come from target_clones, picked at load time, and
    # -ffp-contract=off keeps every clone rounding exactly like the baseline code.
    cflags = (["-O0", "-g"] if debug else
              ["-O3", "-fno-math-errno", "-fno-trapping-math", "-ffp-contract=off"])
    ldflags = []
    if _flag("CHARRNN_ASAN"):
        cflags += ["-fsanitize=address", "-fno-omit-frame-pointer", "-g"]
        ldflags += ["-fsanitize=address"]
    if os.name == "nt":
        cflags, ldflags = ["/O2"], []
    ext = Extension(
        "charrnn._kernels",
        sources=["csrc/_kernels.pyx"],
        include_dirs=["csrc"],
        depends=["csrc/_vmath.h", "csrc/_blas.pxd", "csrc/_cells.pxi"],
        extra_compile_args=cflags,
        extra_link_args=ldflags,
        define_macros=[("NPY_NO_DEPRECATED_API", "NPY_1_7_API_VERSION")],
    )
    exts = [ext]
    if _flag("CHARRNN_CANARY"):
        # test-only, never in a wheel: same flags and directives as the kernels
        exts.append(Extension("charrnn._canary", sources=["csrc/_canary.pyx"],
                              extra_compile_args=cflags, extra_link_args=ldflags))
    return cythonize(exts, compiler_directives=directives, include_path=["csrc"],
                     force=debug or _flag("CHARRNN_ASAN"))


setup(ext_modules=extensions())
