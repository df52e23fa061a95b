"""The environment record of a benchmark run: the machine, the libraries, the BLAS
thread pools and the variables that change what BLAS does, saved next to the numbers."""

from __future__ import annotations

import contextlib
import os
import platform
import sys
import time
from typing import Any

import numpy as np

from charrnn import available_backends
from charrnn.bench import blas_pools, pinned_pools


def cpu_model() -> str:
    """The CPU model name from /proc/cpuinfo (or what ``platform`` knows)."""
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def _cpu_flags() -> list[str]:
    want = ("sse4_2", "avx", "avx2", "fma", "avx512f", "avx512vl", "avx512_bf16")
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("flags"):
                    have = set(line.split(":", 1)[1].split())
                    return [x for x in want if x in have]
    except OSError:
        pass
    return []


def _version(module: str) -> str | None:
    try:
        from importlib.metadata import version
        return version(module)
    except Exception:
        return None


# environment variables that change what the BLAS and OpenMP libraries do
ENV_PREFIXES = ("OPENBLAS_", "GOTO", "OMP_", "GOMP_", "KMP_", "MKL_", "BLIS_", "VECLIB_",
                "NPY_", "CHARRNN_")


def env_vars() -> dict[str, str]:
    """The threading and BLAS environment variables that are set, e.g. OPENBLAS_CORETYPE,
    which forces OpenBLAS's kernel instead of the one it would detect."""
    return {k: v for k, v in sorted(os.environ.items()) if k.startswith(ENV_PREFIXES)}


def environment() -> dict[str, Any]:
    """The machine and the libraries: CPU, cores, BLAS pools, versions, load average."""
    import scipy

    import charrnn
    try:
        affinity = len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        affinity = None
    env: dict[str, Any] = {
        "date_utc": time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime()),
        "cpu_model": cpu_model(),
        "cpu_flags": _cpu_flags(),
        "logical_cpus": os.cpu_count(),
        "usable_cpus": affinity,
        "platform": platform.platform(),
        "python": platform.python_version(),
        "numpy": np.__version__,
        "scipy": scipy.__version__,
        "charrnn": charrnn.__version__,
        "charrnn_backends": available_backends(),
        "threadpoolctl": _version("threadpoolctl"),
        "matplotlib": _version("matplotlib"),
        "loadavg": list(os.getloadavg()) if hasattr(os, "getloadavg") else None,
        "env_vars": env_vars(),
        "blas": blas_pools(),
        "pinning": pinned_pools(),
    }
    torch = sys.modules.get("torch")
    if torch is not None:
        env["torch"] = torch.__version__
        info = {"default_threads": torch.get_num_threads(),
                "interop_threads": torch.get_num_interop_threads()}
        with contextlib.suppress(Exception):
            info["cpu_capability"] = torch.backends.cpu.get_cpu_capability()
        with contextlib.suppress(Exception):
            info["mkl"] = torch.backends.mkl.is_available()
        with contextlib.suppress(Exception):
            info["mkldnn"] = torch.backends.mkldnn.is_available()
        env["torch_info"] = info
    else:
        env["torch"] = None
    return env
