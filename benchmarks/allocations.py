"""The allocation check: does a training step allocate anything after warm-up?

The suite runs it on the compiled step (``run.py``'s ``--alloc``); the tests run it too.
A module without sibling imports, so the tests can load it by path.
"""

from __future__ import annotations

import gc
import os
import tracemalloc
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:
    from charrnn.bench import CharrnnTrain


def _rss_bytes() -> int:
    try:
        with open("/proc/self/statm") as f:
            return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    except (OSError, ValueError):
        import resource
        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


# A step's transient Python objects (argument-check tuples, array views, memoryviews, the
# returned floats) take a few kilobytes whatever B, H, T; any scratch array would add its
# size on top, and the smallest one, the workspace's hidden states ((T+1)*B*H values),
# is larger than this even at B=1, H=100, T=25.
PY_OBJECTS_ALLOWANCE = 8192


def allocation_check(w: CharrnnTrain, steps: int = 1000, warmup_steps: int = 300
                     ) -> dict[str, Any]:
    """Does a training step allocate after warm-up? Runs ``steps`` steps twice.

    First under tracemalloc (which sees numpy's array buffers as well as Python objects):
    the traced memory retained after the steps (``traced_growth``) and the highest point
    above the start during them (``traced_peak_above_start``). Then without it, the
    process RSS before and after as many steps again. ``flat`` means nothing retained, no
    RSS growth, and a transient peak within :data:`PY_OBJECTS_ALLOWANCE` (no array
    allocated). The warm-up runs past 256 steps so counters such as the optimizer's step
    count have left CPython's small-int cache and are replaced in place of equal size.
    """
    w.run(warmup_steps)
    gc.collect()
    tracemalloc.start()
    w.run(warmup_steps)                                     # replace untraced objects
    # what the reading itself retains (the int it returns): measured around no steps
    null0, _ = tracemalloc.get_traced_memory()
    w.run(0)
    null1, _ = tracemalloc.get_traced_memory()
    tracemalloc.reset_peak()
    cur0, _ = tracemalloc.get_traced_memory()
    w.run(steps)
    cur1, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    gc.collect()
    rss0 = _rss_bytes()
    w.run(steps)
    rss1 = _rss_bytes()
    itemsize = np.dtype(w.dtype).itemsize
    res = {"impl": w.name, "B": w.B, "H": w.H, "T": w.T, "dtype": w.dtype, "steps": steps,
           "traced_growth": (cur1 - cur0) - (null1 - null0),
           "traced_peak_above_start": peak - cur0,
           "peak_allowance": PY_OBJECTS_ALLOWANCE,
           "rss_before": rss0, "rss_after": rss1, "rss_growth": rss1 - rss0,
           "array_bytes_BH": w.B * w.H * itemsize,
           "array_bytes_hs": (w.T + 1) * w.B * w.H * itemsize}
    res["flat"] = (res["traced_growth"] <= 0 and res["rss_growth"] <= 0
                   and res["traced_peak_above_start"] <= PY_OBJECTS_ALLOWANCE)
    return res
