"""Bad input, row by row: every kernel and the public API answer it with a clear error.

Kernel rows run on both backends (the ``kernels`` fixture) and both dtypes, with one
expected exception type per row, so the two backends are held to the same type; the
kernels' messages must name the offending argument. The public API (``CharRNN``,
``Vocab``) converts what it can (lists, other integer dtypes, non-contiguous arrays) and
rejects the rest with ``TypeError`` or ``ValueError``.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from numpy.lib.stride_tricks import as_strided

import charrnn
from charrnn import CharRNN, Vocab, Workspace
from charrnn.layout import Layout
from conftest import flat, make_chunk, make_params

B, T, H, V, N = 2, 3, 4, 5, 6          # small sizes, every dimension > 1
KERNELS = ("loss_and_grads", "loss", "sample", "sumsq", "clip_", "scale_", "sgd_update",
           "adagrad_update", "rmsprop_update", "adam_update")
LAYOUT_KERNELS = ("loss_and_grads", "loss", "sample")     # train_step: the layout tests below
IDS = ("X", "Y", "first_ids")
OUTPUTS = {"loss_and_grads": ("grad", "hlast"),
           "loss": ("hlast",), "sample": ("h",), "sumsq": (), "clip_": ("g",),
           "scale_": ("g",), "sgd_update": ("w",), "adagrad_update": ("w", "m"),
           "rmsprop_update": ("w", "v"), "adam_update": ("w", "m", "v")}
# The arguments whose shape or dtype the others are compared with: an error found by
# changing one of them is reported against the first argument that then disagrees. (The
# parameters' shapes and dtype come from the layout, which no array defines.)
DEFINES = {"w": ("g",), "X": ("Y",), "h": ("uniforms",)}
DEFINES_DTYPE = {"w": ("g",)}


def make_args(kernel: str, dtype, seed: int = 0) -> dict:
    """Valid arguments of ``kernel``, in signature order (call with ``*args.values()``)."""
    dtype = np.dtype(dtype)
    layout, theta = flat(make_params(H, V, dtype, scale="trained", seed=seed))
    X, Y, h0 = make_chunk(B, T, H, V, dtype, seed=seed + 1)
    rng = np.random.default_rng(seed + 2)
    if kernel in ("loss_and_grads", "loss"):
        out = {"layout": layout, "theta": theta}
        if kernel == "loss_and_grads":
            out["grad"] = layout.zeros()
        return {**out, "X": X, "Y": Y, "h0": h0, "hlast": np.zeros((B, H), dtype),
                "ws": Workspace(B, T, H, V, dtype)}
    if kernel == "sample":
        return {"layout": layout, "theta": theta, "h": h0, "first_ids": X[:, 0].copy(),
                "uniforms": rng.random((N, B)), "temperature": 0.8, "top_k": None}
    vec = {name: rng.standard_normal(7).astype(dtype) for name in ("w", "g", "m", "v")}
    vec["m"] = np.abs(vec["m"])
    vec["v"] = np.abs(vec["v"])
    if kernel == "sumsq":
        return {"g": vec["g"]}
    if kernel == "clip_":
        return {"g": vec["g"], "clip": 0.5}
    if kernel == "scale_":
        return {"g": vec["g"], "scale": 0.5}
    hyper = {"sgd_update": ("lr", 0.1), "adagrad_update": ("lr", 0.1),
             "rmsprop_update": ("lr", 0.01), "adam_update": ("lr", 0.01)}[kernel]
    args = {"w": vec["w"], "g": vec["g"]}
    if kernel == "adagrad_update":
        args.update(m=vec["m"], lr=0.1, eps=1e-8)
    elif kernel == "rmsprop_update":
        args.update(v=vec["v"], lr=0.01, rho=0.9, eps=1e-8)
    elif kernel == "adam_update":
        args.update(m=vec["m"], v=vec["v"], lr=0.01, beta1=0.9, beta2=0.999, eps=1e-8,
                    step=3)
    else:
        args[hyper[0]] = hyper[1]
    return {**args, "clip": 1.0, "scale": 0.7}


def call(K, kernel: str, args: dict):
    return getattr(K, kernel)(*args.values())


def run(K, kernel: str, args: dict):
    """Call and return (result, {output name: copy}), for comparing two calls."""
    r = call(K, kernel, args)
    return r, {o: args[o].copy() for o in OUTPUTS[kernel]}


def arrays(kernel: str) -> list[str]:
    return [k for k, v in make_args(kernel, np.float64).items() if isinstance(v, np.ndarray)]


def inputs(kernel: str) -> list[str]:
    return [a for a in arrays(kernel) if a not in OUTPUTS[kernel]]


def floats(kernel: str) -> list[str]:
    return [a for a in arrays(kernel) if a not in IDS and a != "uniforms"]


def names(*args: str) -> str:
    """A regex matching any of the argument names as a word."""
    return r"\b(" + "|".join(re.escape(a) for a in args) + r")\b"


ARRAY_ARGS = [(k, a) for k in KERNELS for a in arrays(k)]
FLOAT_ARGS = [(k, a) for k in KERNELS for a in floats(k)]
ID_ARGS = [(k, a) for k in KERNELS for a in arrays(k) if a in IDS]
OUTPUT_ARGS = [(k, o) for k in KERNELS for o in OUTPUTS[k]]


def other_float(dtype) -> np.dtype:
    return np.dtype(np.float32 if np.dtype(dtype) == np.float64 else np.float64)


def same_values(a: np.ndarray, like: np.ndarray) -> np.ndarray:
    a[...] = like
    return a


def strided(a: np.ndarray) -> np.ndarray:
    """Every other element along the last axis of a twice-as-wide buffer."""
    buf = np.zeros(a.shape[:-1] + (2 * a.shape[-1],), a.dtype)
    return same_values(buf[..., ::2], a)


def transposed(a: np.ndarray) -> np.ndarray:
    """The same shape and values, stored column-major."""
    return np.asfortranarray(a)


def reversed_(a: np.ndarray) -> np.ndarray:
    """The same values read backwards from a reversed buffer (a negative stride)."""
    return same_values(np.empty_like(a)[::-1], a)


def huge(shape: tuple[int, ...], dtype) -> np.ndarray:
    """A C-contiguous view claiming ``shape`` over a one-element buffer.

    Nothing past the first element is real memory, so only a check on the shape, made
    before any element is touched, keeps a kernel from reading out of bounds. The strides
    are the C strides, so the contiguity check passes and the size check is what fires.
    """
    dtype = np.dtype(dtype)
    strides = tuple(int(np.prod(shape[i + 1:], dtype=object)) * dtype.itemsize
                    for i in range(len(shape)))
    a = as_strided(np.zeros(1, dtype), shape=shape, strides=strides)
    assert a.flags.c_contiguous and a.size >= 2**31
    return a


# ============================================================================ kernels

# ---------------------------------------------------------------- not an array at all

@pytest.mark.parametrize("kernel,arg", ARRAY_ARGS + [("loss_and_grads", "ws"),
                                                     ("loss", "ws")]
                         + [(k, "layout") for k in LAYOUT_KERNELS])
def test_none_is_a_type_error(kernels, dtype, kernel, arg):
    args = make_args(kernel, dtype)
    args[arg] = None
    with pytest.raises(TypeError, match=names(arg)):
        call(kernels, kernel, args)


@pytest.mark.parametrize("kernel,arg", ARRAY_ARGS)
def test_list_is_a_type_error(kernels, dtype, kernel, arg):
    args = make_args(kernel, dtype)
    args[arg] = args[arg].tolist()
    with pytest.raises(TypeError, match=names(arg)):
        call(kernels, kernel, args)


@pytest.mark.parametrize("kernel", ["loss_and_grads", "loss"])
@pytest.mark.parametrize("ws", [{}, "ws", np.zeros(100)])
def test_workspace_of_another_type(kernels, dtype, kernel, ws):
    args = make_args(kernel, dtype)
    args["ws"] = ws
    with pytest.raises(TypeError, match=names("ws")):
        call(kernels, kernel, args)


# ---------------------------------------------------------------- wrong dtypes

@pytest.mark.parametrize("kernel,arg", FLOAT_ARGS)
@pytest.mark.parametrize("bad", ["float16", "int64", "int32", "complex128", "bool", ">f8"])
def test_wrong_float_dtype(kernels, dtype, kernel, arg, bad):
    args = make_args(kernel, dtype)
    args[arg] = args[arg].astype(bad)
    with pytest.raises(TypeError, match=names(arg)):
        call(kernels, kernel, args)


@pytest.mark.parametrize("kernel,arg", [(k, a) for k, a in FLOAT_ARGS
                                        if k not in ("sumsq", "clip_", "scale_")])
def test_mixed_float32_float64(kernels, dtype, kernel, arg):
    args = make_args(kernel, dtype)
    args[arg] = args[arg].astype(other_float(dtype))
    with pytest.raises(TypeError, match=names(*DEFINES_DTYPE.get(arg, (arg,)))):
        call(kernels, kernel, args)


@pytest.mark.parametrize("bad", ["float32", "float16", "longdouble", ">f8"])
def test_uniforms_must_be_float64(kernels, dtype, bad):
    args = make_args("sample", dtype)
    args["uniforms"] = args["uniforms"].astype(bad)
    with pytest.raises(TypeError, match=names("uniforms")):
        call(kernels, "sample", args)


@pytest.mark.parametrize("kernel,arg", ID_ARGS)
@pytest.mark.parametrize("bad", ["float64", "float32", "int64", "uint32", "uint8", "int16",
                                 "bool", ">i4"])
def test_ids_must_be_int32(kernels, dtype, kernel, arg, bad):
    args = make_args(kernel, dtype)
    args[arg] = args[arg].astype(bad)
    with pytest.raises(TypeError, match=names(arg)):
        call(kernels, kernel, args)


# ---------------------------------------------------------------- layout

@pytest.mark.parametrize("kernel,arg", ARRAY_ARGS)
@pytest.mark.parametrize("layout", [strided, transposed, reversed_])
def test_non_contiguous_rejected(kernels, dtype, kernel, arg, layout):
    args = make_args(kernel, dtype)
    if layout is transposed and args[arg].ndim < 2:
        pytest.skip("a 1-D array has no transposed layout")
    args[arg] = layout(args[arg])
    assert not args[arg].flags.c_contiguous
    with pytest.raises(ValueError, match=names(arg) + ".*C-contiguous"):
        call(kernels, kernel, args)


def test_unaligned_arrays_give_the_same_result(kernels, dtype):
    """Arrays at an odd byte offset (e.g. a memmap inside a file) are valid input."""
    args = make_args("loss_and_grads", dtype)
    want = run(kernels, "loss_and_grads", args)
    for k, a in list(args.items()):
        if isinstance(a, np.ndarray):
            raw = np.zeros(a.nbytes + 1, np.uint8)
            args[k] = same_values(raw[1:].view(a.dtype).reshape(a.shape), a)
    assert not args["theta"].flags.aligned and not args["grad"].flags.aligned
    got = run(kernels, "loss_and_grads", args)
    assert got[0] == want[0]
    for o in want[1]:
        np.testing.assert_array_equal(got[1][o], want[1][o], err_msg=o)


# ---------------------------------------------------------------- read-only

def read_only(a: np.ndarray, how: str, tmp_path) -> np.ndarray:
    if how == "flag":
        a = a.copy()
        a.flags.writeable = False
        return a
    path = tmp_path / f"a{len(list(tmp_path.iterdir()))}.bin"
    a.tofile(path)
    return np.memmap(path, dtype=a.dtype, mode="r", shape=a.shape)


@pytest.mark.parametrize("kernel", KERNELS)
@pytest.mark.parametrize("how", ["flag", "memmap"])
def test_read_only_inputs_accepted(kernels, dtype, kernel, how, tmp_path):
    want = run(kernels, kernel, make_args(kernel, dtype))
    args = make_args(kernel, dtype)
    for k in inputs(kernel):
        args[k] = read_only(args[k], how, tmp_path)
        assert not args[k].flags.writeable
    got = run(kernels, kernel, args)
    if kernel == "sample":
        np.testing.assert_array_equal(got[0], want[0])
    else:
        assert got[0] == want[0]
    for o in want[1]:
        np.testing.assert_array_equal(got[1][o], want[1][o], err_msg=o)


@pytest.mark.parametrize("kernel,out", OUTPUT_ARGS)
@pytest.mark.parametrize("how", ["flag", "memmap"])
def test_read_only_outputs_rejected(kernels, dtype, kernel, out, how, tmp_path):
    args = make_args(kernel, dtype)
    args[out] = read_only(args[out], how, tmp_path)
    before = np.array(args[out])
    with pytest.raises(ValueError, match=names(out) + ".*read-only"):
        call(kernels, kernel, args)
    np.testing.assert_array_equal(args[out], before)


# ---------------------------------------------------------------- aliasing

def overlapping(a: np.ndarray, b: np.ndarray, shift: int = 0) -> tuple:
    """Copies of a and b placed in one byte buffer, b starting ``shift`` items of a in."""
    start = shift * a.itemsize
    raw = np.zeros(max(a.nbytes, start + b.nbytes), np.uint8)
    a2 = same_values(raw[:a.nbytes].view(a.dtype).reshape(a.shape), a)
    b2 = raw[start:start + b.nbytes].view(b.dtype).reshape(b.shape)
    return a2, b2


def alias_pairs() -> list[tuple[str, str, str]]:
    pairs = []
    for k in KERNELS:
        outs = OUTPUTS[k]
        for i, o in enumerate(outs):
            for other in inputs(k) + list(outs[i + 1:]):
                if (k, o, other) != ("loss_and_grads", "hlast", "h0") and \
                        (k, o, other) != ("loss", "hlast", "h0"):
                    pairs.append((k, o, other))
    return pairs


@pytest.mark.parametrize("kernel,out,other", alias_pairs())
def test_output_overlapping_an_argument_rejected(kernels, dtype, kernel, out, other):
    args = make_args(kernel, dtype)
    # the input is written first, then the output's memory laid over its start
    args[other], args[out] = overlapping(args[other], args[out])
    with pytest.raises(ValueError, match="overlaps"):
        call(kernels, kernel, args)


@pytest.mark.parametrize("kernel", ["loss_and_grads", "loss"])
def test_hlast_may_be_h0(kernels, dtype, kernel):
    """Carrying the state in place (hlast is h0) gives the same result as a fresh hlast."""
    args = make_args(kernel, dtype)
    want = run(kernels, kernel, args)
    args = make_args(kernel, dtype)
    args["hlast"] = args["h0"]
    got = run(kernels, kernel, args)
    assert got[0] == want[0]
    np.testing.assert_array_equal(args["h0"], want[1]["hlast"])


@pytest.mark.parametrize("kernel", ["loss_and_grads", "loss"])
@pytest.mark.parametrize("shift", [1, -1])
def test_hlast_partially_over_h0_rejected(kernels, dtype, kernel, shift):
    args = make_args(kernel, dtype)
    if shift > 0:
        args["h0"], args["hlast"] = overlapping(args["h0"], args["hlast"], shift)
    else:
        args["hlast"], args["h0"] = overlapping(args["hlast"], args["h0"], -shift)
        args["h0"][...] = make_args(kernel, dtype)["h0"]
    with pytest.raises(ValueError, match="hlast.*overlaps"):
        call(kernels, kernel, args)


@pytest.mark.parametrize("kernel,arg", [(k, a) for k in ("loss_and_grads", "loss")
                                        for a in arrays(k)])
@pytest.mark.parametrize("buf", ["hs", "zs", "dhs", "dhnext"])
def test_argument_inside_the_workspace(kernels, dtype, kernel, arg, buf):
    """The workspace is scratch the kernel overwrites: an argument living in a buffer the
    kernel uses would be clobbered (an input) or clobber the scratch (an output) mid-way.
    The forward-only ``loss`` uses hs and zs, not dhs and dhnext."""
    args = make_args(kernel, dtype)
    args["ws"] = ws = Workspace(32, 8, H, V, dtype)          # every buffer holds any argument
    assert min(getattr(ws, b).size for b in ("hs", "zs", "dhs", "dhnext")) >= \
        max(a.size for a in args.values() if isinstance(a, np.ndarray))
    want = run(kernels, kernel, args)
    args = make_args(kernel, dtype)
    args["ws"] = ws = Workspace(32, 8, H, V, dtype)
    a = args[arg]
    raw = getattr(ws, buf).view(np.uint8)
    args[arg] = same_values(raw[:a.nbytes].view(a.dtype).reshape(a.shape), a)
    if kernel == "loss" and buf in ("dhs", "dhnext"):
        got = run(kernels, kernel, args)
        assert got[0] == want[0]
        np.testing.assert_array_equal(got[1]["hlast"], want[1]["hlast"])
        return
    with pytest.raises(ValueError, match=names(arg) + f".*workspace buffer ws.{buf}"):
        call(kernels, kernel, args)


# ---------------------------------------------------------------- shapes

def shape_variants(shape: tuple[int, ...]) -> list[tuple[int, ...]]:
    """Fewer and more dimensions, and each dimension one larger, one smaller, zero."""
    out = [shape[:-1], shape + (1,)]
    for i, n in enumerate(shape):
        for m in (n + 1, n - 1, 0):
            out.append(shape[:i] + (m,) + shape[i + 1:])
    return list(dict.fromkeys(out))


SHAPE_CASES = [(k, a, s) for k, a in ARRAY_ARGS
               for s in shape_variants(make_args(k, np.float64)[a].shape)]


@pytest.mark.parametrize("kernel,arg,shape", SHAPE_CASES)
def test_wrong_shape_rejected(kernels, dtype, kernel, arg, shape):
    args = make_args(kernel, dtype)
    a = args[arg]
    if kernel in ("sumsq", "clip_", "scale_") and len(shape) == 1:
        pytest.skip("any length of a lone vector is valid")
    if kernel == "sample" and arg == "uniforms" and len(shape) == 2 and shape[1] == B:
        pytest.skip("any number of draws is valid")
    new = np.zeros(shape, a.dtype)
    if arg in IDS:
        new[...] = 1
    args[arg] = new
    # Resizing the argument that fixes a size is reported against the first one that
    # then disagrees; a wrong number of dimensions is reported against the argument.
    expect = (arg,) if len(shape) != a.ndim else (arg,) + DEFINES.get(arg, ())
    with pytest.raises(ValueError, match=names(*expect)):
        call(kernels, kernel, args)


@pytest.mark.parametrize("kernel", ["loss_and_grads", "loss"])
@pytest.mark.parametrize("ws_size", [(B, T - 1, H, V), (B - 1, T, H, V), (B, T, H - 1, V),
                                     (B, T, H, V - 1), "dtype"])
def test_workspace_that_does_not_fit(kernels, dtype, kernel, ws_size):
    args = make_args(kernel, dtype)
    args["ws"] = (Workspace(B, T, H, V, other_float(dtype)) if ws_size == "dtype"
                  else Workspace(*ws_size, dtype))
    with pytest.raises(ValueError, match="does not fit"):
        call(kernels, kernel, args)


def test_a_larger_workspace_serves_a_smaller_chunk(kernels, dtype):
    args = make_args("loss_and_grads", dtype)
    want = run(kernels, "loss_and_grads", args)
    args["ws"] = Workspace(B + 3, T + 5, H + 1, V + 2, dtype)
    got = run(kernels, "loss_and_grads", args)
    assert got[0] == want[0]
    for o in want[1]:
        np.testing.assert_array_equal(got[1][o], want[1][o], err_msg=o)


# ---------------------------------------------------------------- ids

@pytest.mark.parametrize("kernel,arg", ID_ARGS)
@pytest.mark.parametrize("value", [-1, V, V + 7, 2**31 - 1, -2**31])
def test_id_out_of_range_names_position_and_value(kernels, dtype, kernel, arg, value):
    args = make_args(kernel, dtype)
    ids = args[arg]
    pos = (1, 1) if ids.ndim == 2 else (0,)
    ids[pos] = value
    ids.flat[-1] = -5                                    # a later bad id is not the one named
    want = f"{arg}[{', '.join(map(str, pos))}] = {value} is not a valid id in [0, {V})"
    with pytest.raises(ValueError, match=re.escape(want)):
        call(kernels, kernel, args)


@pytest.mark.parametrize("kernel,arg", ID_ARGS)
def test_float_ids_are_a_type_error(kernels, dtype, kernel, arg):
    args = make_args(kernel, dtype)
    args[arg] = args[arg] + 0.5
    with pytest.raises(TypeError, match=names(arg)):
        call(kernels, kernel, args)


# ---------------------------------------------------------------- empty and mismatched

@pytest.mark.parametrize("kernel", ["loss_and_grads", "loss"])
@pytest.mark.parametrize("xy", [((B, 0), (B, 0)), ((0, T), (0, T)), ((B, T), (B, T + 1)),
                                ((B, T), (B, T - 1)), ((B, T), (B + 1, T)),
                                ((B, T), (B * T,))])
def test_empty_or_mismatched_sequences(kernels, dtype, kernel, xy):
    args = make_args(kernel, dtype)
    args["X"] = np.ones(xy[0], np.int32)
    args["Y"] = np.ones(xy[1], np.int32)
    with pytest.raises(ValueError, match=names("X", "Y")):
        call(kernels, kernel, args)


def test_sample_with_no_streams(kernels, dtype):
    args = make_args("sample", dtype)
    args.update(h=np.zeros((0, H), dtype), first_ids=np.zeros(0, np.int32),
                uniforms=np.zeros((N, 0)))
    with pytest.raises(ValueError, match=names("h")):
        call(kernels, "sample", args)


def test_sample_zero_draws(kernels, dtype):
    """n = 0 (an empty uniforms array) draws nothing and leaves the state alone."""
    args = make_args("sample", dtype)
    args["uniforms"] = np.zeros((0, B))
    h = args["h"].copy()
    out = call(kernels, "sample", args)
    assert out.shape == (0, B) and out.dtype == np.int32
    np.testing.assert_array_equal(args["h"], h)


@pytest.mark.parametrize("kernel", ["sumsq", "clip_", "scale_", "sgd_update",
                                    "adagrad_update", "rmsprop_update", "adam_update"])
def test_empty_vectors_are_a_no_op(kernels, dtype, kernel):
    args = make_args(kernel, dtype)
    for k, v in args.items():
        if isinstance(v, np.ndarray):
            args[k] = v[:0].copy()
    r = call(kernels, kernel, args)
    assert r == (0.0 if kernel == "sumsq" else None)


# ---------------------------------------------------------------- dimensions >= 2**31

# (Rows that gave one parameter array a huge shape, Wxh (1, 2**31) or (2**16, 2**15 + 1),
# Why (2**31, H), dWhh (2**20, 2**20), by (2**31,), now give theta or grad a huge length;
# a layout too large for 32-bit BLAS cannot be built: test_layout.py.)
HUGE_CASES = [
    ("sumsq", "g", (2**31,)), ("clip_", "g", (2**31,)), ("scale_", "g", (2**32 + 5,)),
    ("sgd_update", "w", (2**31,)), ("sgd_update", "g", (2**31,)),
    ("adagrad_update", "m", (2**31,)), ("adam_update", "v", (2**31,)),
    ("loss", "X", (1, 2**31)), ("loss", "X", (2**16, 2**16)), ("loss", "Y", (B, 2**31)),
    ("loss", "theta", (2**32 + 5,)),
    ("loss_and_grads", "X", (2**31, 1)), ("loss_and_grads", "theta", (2**31,)),
    ("loss_and_grads", "theta", (2**32,)), ("loss_and_grads", "h0", (2**31, H)),
    ("loss_and_grads", "grad", (2**31,)), ("loss_and_grads", "grad", (2**40,)),
    ("loss_and_grads", "hlast", (B, 2**31)), ("sample", "uniforms", (2**31, B)),
    ("sample", "h", (2**31, H)), ("sample", "first_ids", (2**31,)),
    ("sample", "theta", (2**31,)),
]


def huge_outcomes(backend: str, dtype: str) -> None:
    """Child-process side of the next test: try each HUGE_CASES row, print one JSON line."""
    K = charrnn.get_kernels(backend)
    for i, (kernel, arg, shape) in enumerate(HUGE_CASES):
        args = make_args(kernel, dtype)
        args[arg] = huge(shape, args[arg].dtype)
        try:
            call(K, kernel, args)
            out = ["returned", ""]
        except Exception as e:
            out = [type(e).__name__, str(e)]
        print(json.dumps([i] + out), flush=True)


def test_dimensions_of_2_31_or_more(backend, dtype, tmp_path):
    """Rejected from the shape alone: the fake arrays would fault on the first read.

    A missing check is a segfault, so the rows run in a child process, which reports
    each row as it goes: a crash names the row that caused it.
    """
    here = Path(__file__).parent                    # and tests/, for conftest
    code = (f"import sys; sys.path[:0] = [{str(here)!r}, {str(here.parent)!r}]; "
            f"import test_bad_input as t; t.huge_outcomes({backend!r}, {dtype.name!r})")
    p = subprocess.run([sys.executable, "-X", "faulthandler", "-c", code], cwd=tmp_path,
                       capture_output=True, text=True, timeout=600)
    rows = [json.loads(line) for line in p.stdout.splitlines()]
    culprit = HUGE_CASES[len(rows)] if len(rows) < len(HUGE_CASES) else "?"
    assert p.returncode == 0, (f"the child process died (exit {p.returncode}) on "
                               f"{culprit}:\n{p.stderr[-3000:]}")
    assert len(rows) == len(HUGE_CASES)
    wrong = [(case, exc, msg) for case, (_, exc, msg) in zip(HUGE_CASES, rows)
             if exc != "ValueError" or not re.search(names(case[1]) + r".*(2\*\*31|too large)",
                                                     msg)]
    assert not wrong, wrong


def test_chunk_too_large_for_32_bit_blas(kernels, dtype):
    """B*T and each array fit in 2**31, but the (T*B, V) logits would not."""
    Vbig, Tbig = 2**11 + 1, 2**20
    layout = Layout(1, Vbig, dtype)
    X = np.zeros((1, Tbig), np.int32)
    args = {"layout": layout, "theta": layout.zeros(), "X": X, "Y": X.copy(),
            "h0": np.zeros((1, 1), dtype), "hlast": np.zeros((1, 1), dtype),
            "ws": Workspace(1, 1, 1, Vbig, dtype)}
    with pytest.raises(ValueError, match="too large"):
        call(kernels, "loss", args)


# ---------------------------------------------------------------- the layout
#
# The kernels that compute on the parameters take a charrnn.layout.Layout and flat vectors
# of it (theta and grad; w and g in train_step). Every check lives in
# charrnn.kernels.checks, which both twins call, so each refusal below must read the same,
# word for word, on both backends.

def layout_args(kernel: str, dtype) -> dict:
    """Valid arguments of a kernel that takes a layout, train_step included."""
    if kernel != "train_step":
        return make_args(kernel, dtype)
    a = make_args("loss_and_grads", dtype)
    return {"layout": a["layout"], "w": a["theta"], "g": a["grad"], "X": a["X"],
            "Y": a["Y"], "h": a["h0"], "ws": a["ws"], "rule": "sgd", "state": (), "lr": 0.1,
            "hyper": (), "clip": 5.0, "max_norm": float("inf")}


STEP_KERNELS = LAYOUT_KERNELS + ("train_step",)
THETA = {k: "w" if k == "train_step" else "theta" for k in STEP_KERNELS}   # its name
GRAD = {"loss_and_grads": "grad", "train_step": "g"}


def exactly(message: str) -> str:
    return "^" + re.escape(message) + "$"


@pytest.mark.parametrize("kernel", STEP_KERNELS)
@pytest.mark.parametrize("bad", [None, (H, V), "rnn", H, {"hidden_size": H, "vocab_size": V},
                                 np.zeros(3)], ids=lambda b: type(b).__name__)
def test_layout_of_another_type(kernels, dtype, kernel, bad):
    """Anything but a Layout (where the sizes once came from the arrays' shapes)."""
    args = layout_args(kernel, dtype)
    args["layout"] = bad
    with pytest.raises(TypeError, match=exactly(
            f"layout must be a charrnn.layout.Layout, not {type(bad).__name__}")):
        call(kernels, kernel, args)


@pytest.mark.parametrize("kernel", STEP_KERNELS)
def test_layout_of_another_dtype_than_theta(kernels, dtype, kernel):
    """A float32 layout with float64 vectors, or the reverse (where a parameter array of
    the other float dtype was refused): the vector is named, with the layout's dtype."""
    args = layout_args(kernel, dtype)
    other = other_float(dtype)
    args["layout"] = Layout(H, V, other)
    with pytest.raises(TypeError, match=exactly(
            f"{THETA[kernel]} must have dtype {other.name}, not {dtype.name}")):
        call(kernels, kernel, args)


@pytest.mark.parametrize("kernel", STEP_KERNELS)
@pytest.mark.parametrize("which", ["theta", "grad"])
@pytest.mark.parametrize("delta", [1, -1, "empty", "double"])
def test_vector_of_the_wrong_length(kernels, dtype, kernel, which, delta):
    """theta (or grad) one element longer or shorter than its layout, empty, or twice as
    long (where a parameter array had a wrong shape)."""
    if which == "grad" and kernel not in GRAD:
        pytest.skip("no gradient argument")
    args = layout_args(kernel, dtype)
    name = GRAD[kernel] if which == "grad" else THETA[kernel]
    layout, a = args["layout"], args[name]
    n = {1: a.size + 1, -1: a.size - 1, "empty": 0, "double": 2 * a.size}[delta]
    args[name] = np.zeros(n, dtype)
    with pytest.raises(ValueError, match=exactly(
            f"{name} must have {layout.size} elements for {layout!r}, got {n}")):
        call(kernels, kernel, args)


@pytest.mark.parametrize("kernel", STEP_KERNELS)
@pytest.mark.parametrize("other", [(H + 1, V), (H - 1, V), (H, V + 1), (V, H)])
def test_layout_of_other_sizes_than_theta(kernels, dtype, kernel, other):
    """A layout of other sizes than the vectors were made for: theta's length disagrees
    (even where the total agrees: H and V swapped is 2 elements off at H = 4, V = 5)."""
    args = layout_args(kernel, dtype)
    layout = args["layout"] = Layout(*other, dtype)
    n = args[THETA[kernel]].size
    assert layout.size != n
    with pytest.raises(ValueError, match=exactly(
            f"{THETA[kernel]} must have {layout.size} elements for {layout!r}, got {n}")):
        call(kernels, kernel, args)


@pytest.mark.parametrize("kernel", STEP_KERNELS)
def test_layout_of_a_smaller_vocabulary_than_the_ids(kernels, dtype, kernel):
    """A layout (with vectors to match) of V - 2 characters: the ids up to V - 1 no longer
    fit, and the first one named is the first out of range."""
    args = layout_args(kernel, dtype)
    small = Layout(H, V - 2, dtype)
    args["layout"] = small
    for name in ("theta", "w", "grad", "g"):
        if name in args:
            args[name] = small.zeros()
    ids = "first_ids" if kernel == "sample" else "X"
    args[ids][...] = 0
    pos = (1,) if kernel == "sample" else (1, 2)
    args[ids][pos] = V - 1
    if "Y" in args:
        args["Y"][...] = 0
    want = f"{ids}[{', '.join(map(str, pos))}] = {V - 1} is not a valid id in [0, {V - 2})"
    with pytest.raises(ValueError, match=exactly(want)):
        call(kernels, kernel, args)


@pytest.mark.parametrize("kernel", STEP_KERNELS)
def test_an_equal_layout_is_as_good_as_the_same_one(kernels, dtype, kernel):
    """Layouts compare by value: a layout built anew for each call gives the same result
    bit for bit (the kernels hold no per-layout state)."""
    args = layout_args(kernel, dtype)
    want = call(kernels, kernel, args)
    again = layout_args(kernel, dtype)
    again["layout"] = Layout(H, V, dtype)
    assert again["layout"] == args["layout"] and again["layout"] is not args["layout"]
    got = call(kernels, kernel, again)
    np.testing.assert_array_equal(np.asarray(got), np.asarray(want))
    for name in ("grad", "g", "w", "hlast", "h"):
        if name in args:
            np.testing.assert_array_equal(again[name], args[name], err_msg=name)


# ---------------------------------------------------------------- sampling options

@pytest.mark.parametrize("temperature", [float("nan"), -1.0, -1e-300, float("inf"),
                                         -float("inf"), np.float32("nan")])
def test_bad_temperature_value(kernels, dtype, temperature):
    args = make_args("sample", dtype)
    args["temperature"] = temperature
    with pytest.raises(ValueError, match=names("temperature")):
        call(kernels, "sample", args)


@pytest.mark.parametrize("temperature", [None, "1.0", [1.0], True, 1j])
def test_temperature_of_another_type(kernels, dtype, temperature):
    args = make_args("sample", dtype)
    args["temperature"] = temperature
    with pytest.raises(TypeError, match=names("temperature")):
        call(kernels, "sample", args)


@pytest.mark.parametrize("top_k", [0, -1, V + 1, 2**40, np.int64(0)])
def test_bad_top_k_value(kernels, dtype, top_k):
    args = make_args("sample", dtype)
    args["top_k"] = top_k
    with pytest.raises(ValueError, match=names("top_k")):
        call(kernels, "sample", args)


@pytest.mark.parametrize("top_k", [2.0, "2", True, [2], np.float64(2)])
def test_top_k_of_another_type(kernels, dtype, top_k):
    args = make_args("sample", dtype)
    args["top_k"] = top_k
    with pytest.raises(TypeError, match=names("top_k")):
        call(kernels, "sample", args)


@pytest.mark.parametrize("u", [float("nan"), -0.1, 1.5, float("inf")])
def test_uniforms_outside_0_1(kernels, dtype, u):
    args = make_args("sample", dtype)
    args["uniforms"][N - 1, 1] = u
    with pytest.raises(ValueError, match=names("uniforms")):
        call(kernels, "sample", args)


# ---------------------------------------------------------------- optimizer scalars

UPDATES = ("sgd_update", "adagrad_update", "rmsprop_update", "adam_update")
BAD_SCALARS = [(k, name, value) for k in UPDATES
               for name, value in [("lr", float("nan")), ("lr", float("inf")),
                                   ("clip", 0.0), ("clip", -1.0), ("clip", float("nan")),
                                   ("scale", -0.5), ("scale", float("nan")),
                                   ("scale", float("inf"))]]
BAD_SCALARS += [("adam_update", "step", 0), ("adam_update", "step", -3),
                ("adam_update", "beta1", float("nan")), ("adam_update", "beta1", 1.0),
                ("adam_update", "beta1", -0.1), ("adam_update", "beta2", 2.0),
                ("rmsprop_update", "rho", float("inf")),
                ("adagrad_update", "eps", float("nan")), ("clip_", "clip", 0.0),
                ("clip_", "clip", float("nan")), ("scale_", "scale", -1.0),
                ("scale_", "scale", float("inf"))]


@pytest.mark.parametrize("kernel,name,value", BAD_SCALARS)
def test_bad_scalar_value(kernels, dtype, kernel, name, value):
    args = make_args(kernel, dtype)
    before = {k: v.copy() for k, v in args.items() if isinstance(v, np.ndarray)}
    args[name] = value
    with pytest.raises(ValueError, match=names(name)):
        call(kernels, kernel, args)
    for k, v in before.items():                      # nothing was touched
        np.testing.assert_array_equal(args[k], v, err_msg=k)


@pytest.mark.parametrize("kernel,name", [("sgd_update", "lr"), ("adam_update", "beta2"),
                                         ("clip_", "clip"), ("scale_", "scale"),
                                         ("adagrad_update", "clip")])
@pytest.mark.parametrize("value", [None, "0.1", [0.1]])
def test_scalar_of_another_type(kernels, dtype, kernel, name, value):
    args = make_args(kernel, dtype)
    args[name] = value
    with pytest.raises(TypeError):
        call(kernels, kernel, args)


@pytest.mark.parametrize("step", [1.0, 1.5, float("nan"), float("inf"), True, "3", None,
                                  np.float64(2)])
def test_adam_step_must_be_an_int(kernels, dtype, step):
    args = make_args("adam_update", dtype)
    args["step"] = step
    with pytest.raises(TypeError, match=names("step")):
        call(kernels, "adam_update", args)


@pytest.mark.parametrize("step", [10**6, 2**63, 2**100, np.int64(10**6), np.uint64(2**63)])
def test_adam_any_large_step(kernels, dtype, step):
    """Past ~10**6 steps beta**step is 0 in double: every larger step updates alike."""
    want = make_args("adam_update", dtype)
    want["step"] = 10**6
    call(kernels, "adam_update", want)
    args = make_args("adam_update", dtype)
    args["step"] = step
    call(kernels, "adam_update", args)
    for k in ("w", "m", "v"):
        np.testing.assert_array_equal(args[k], want[k], err_msg=k)


# ============================================================================ public API

VOCAB = "abcdefg"


@pytest.fixture
def model(backend, dtype) -> CharRNN:
    return CharRNN(Vocab(VOCAB), hidden_size=H, dtype=dtype, seed=3, backend=backend)


def ids2(seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    return rng.integers(0, len(VOCAB), (B, T + 2)), rng.integers(0, len(VOCAB), (B, T + 2))


def same_result(a, b) -> None:
    """Two ``loss_and_grads`` results are bitwise equal."""
    assert a[0] == b[0]
    for k in a[1]:
        np.testing.assert_array_equal(a[1][k], b[1][k], err_msg=k)
    np.testing.assert_array_equal(a[2], b[2])


@pytest.mark.parametrize("method", ["loss_and_grads", "loss"])
@pytest.mark.parametrize("which", ["inputs", "targets"])
def test_api_none_ids(model, method, which):
    X, Y = ids2()
    kw = {"inputs": X, "targets": Y, which: None}
    with pytest.raises(TypeError, match=which):
        getattr(model, method)(**kw)


def test_api_accepts_lists(model):
    """min-char-rnn passes Python lists of ids; a list hprev works too."""
    X, Y = ids2()
    h = np.tanh(np.arange(B * H).reshape(B, H) / 7.0).astype(model.dtype)
    same_result(model.loss_and_grads(X.tolist(), Y.tolist(), h.tolist()),
                model.loss_and_grads(X, Y, h))
    same_result(model.loss_and_grads(list(X[0]), list(Y[0])),
                model.loss_and_grads(X[0], Y[0]))


@pytest.mark.parametrize("id_dtype", ["int8", "uint8", "int16", "uint16", "int64", "uint64",
                                      ">i4", "<u4"])
def test_api_converts_integer_ids(model, id_dtype):
    X, Y = ids2()
    same_result(model.loss_and_grads(X.astype(id_dtype), Y.astype(id_dtype)),
                model.loss_and_grads(X.astype(np.int32), Y.astype(np.int32)))


@pytest.mark.parametrize("bad", ["float64", "float16", "bool", "complex64", "object", "U1",
                                 "M8[s]"])
@pytest.mark.parametrize("method", ["loss_and_grads", "loss"])
def test_api_rejects_non_integer_ids(model, method, bad):
    X, Y = ids2()
    with pytest.raises(TypeError, match="inputs"):
        getattr(model, method)(X.astype(bad), Y)
    with pytest.raises(TypeError, match="targets"):
        getattr(model, method)(X, Y.astype(bad))


@pytest.mark.parametrize("h_dtype", ["float16", "float32", "float64", "longdouble", "int64"])
def test_api_converts_hprev(model, h_dtype):
    X, Y = ids2()
    h = np.tanh(np.arange(B * H).reshape(B, H) / 7.0).astype(np.float16)
    same_result(model.loss_and_grads(X, Y, h.astype(h_dtype)),
                model.loss_and_grads(X, Y, h.astype(h_dtype).astype(model.dtype)))


@pytest.mark.parametrize("bad", ["complex128", "bool", "object", "U3", "M8[s]"])
def test_api_rejects_non_numeric_hprev(model, bad):
    X, Y = ids2()
    with pytest.raises(TypeError, match="hprev"):
        model.loss_and_grads(X, Y, np.zeros((B, H)).astype(bad))


@pytest.mark.parametrize("layout", [strided, transposed, reversed_])
def test_api_copies_non_contiguous(model, layout):
    X, Y = ids2()
    h = np.tanh(np.arange(B * H).reshape(B, H) / 7.0).astype(model.dtype)
    want = model.loss_and_grads(X, Y, h)
    Xv, Yv, hv = layout(X), layout(Y), layout(h)
    assert not (Xv.flags.c_contiguous or Yv.flags.c_contiguous or hv.flags.c_contiguous)
    same_result(model.loss_and_grads(Xv, Yv, hv), want)
    np.testing.assert_array_equal(Xv, X)                      # the caller's arrays untouched
    np.testing.assert_array_equal(hv, h)
    assert model.loss(Xv, Yv, hv)[0] == model.loss(X, Y, h)[0]


@pytest.mark.parametrize("how", ["flag", "memmap"])
def test_api_read_only_inputs(model, how, tmp_path):
    X, Y = ids2()
    h = np.tanh(np.arange(B * H).reshape(B, H) / 7.0).astype(model.dtype)
    want = model.loss_and_grads(X, Y, h)
    Xr, Yr, hr = (read_only(a, how, tmp_path) for a in (X, Y, h))
    same_result(model.loss_and_grads(Xr, Yr, hr), want)
    assert model.loss(Xr, Yr, hr)[0] == model.loss(X, Y, h)[0]


def test_api_never_writes_or_returns_the_callers_memory(model):
    X, Y = ids2()
    h = np.tanh(np.arange(B * H).reshape(B, H) / 7.0).astype(model.dtype)
    h_before = h.copy()
    L, grads, hlast = model.loss_and_grads(X, Y, h)
    np.testing.assert_array_equal(h, h_before)
    assert not np.shares_memory(hlast, h)
    for g in grads.values():
        assert not np.shares_memory(g, model.grad) and not np.shares_memory(g, model.theta)
    L2, hlast2 = model.loss(X, Y, h)
    np.testing.assert_array_equal(h, h_before)
    assert not np.shares_memory(hlast2, h)


@pytest.mark.parametrize("xshape", [(B, T, 2), ()])
def test_api_ids_of_wrong_rank(model, xshape):
    X = np.ones(xshape, np.int64)
    with pytest.raises(ValueError, match="inputs"):
        model.loss_and_grads(X, X)


@pytest.mark.parametrize("single", [True, False])
@pytest.mark.parametrize("hshape", ["H+1", "B+1", "rank"])
def test_api_hprev_of_wrong_shape(model, single, hshape):
    X, Y = ids2()
    if single:
        X, Y = X[0], Y[0]
    want = (H,) if single else (B, H)
    shape = {"H+1": want[:-1] + (H + 1,), "B+1": (B + 1, H) if not single else (1, H),
             "rank": (B, H) if single else (H,)}[hshape]
    with pytest.raises(ValueError, match="hprev"):
        model.loss_and_grads(X, Y, np.zeros(shape))
    with pytest.raises(ValueError, match="hprev"):
        model.loss(X, Y, np.zeros(shape))


@pytest.mark.parametrize("bad", [float("nan"), float("inf"), -float("inf")])
def test_api_non_finite_hprev(model, bad):
    X, Y = ids2()
    h = np.zeros((B, H))
    h[1, 2] = bad
    with pytest.raises(ValueError, match="hprev"):
        model.loss_and_grads(X, Y, h)


@pytest.mark.parametrize("method", ["loss_and_grads", "loss"])
@pytest.mark.parametrize("value", [-1, len(VOCAB), 2**40, -2**40])
def test_api_bad_id_names_position_and_value(model, method, value):
    X, Y = ids2()
    X1 = X[0].copy()
    X1[3] = value
    with pytest.raises(ValueError, match=re.escape(
            f"inputs[3] = {value} is not a valid id in [0, {len(VOCAB)})")):
        getattr(model, method)(X1, Y[0])
    Y2 = Y.copy()
    Y2[1, 2] = value
    with pytest.raises(ValueError, match=re.escape(
            f"targets[1, 2] = {value} is not a valid id in [0, {len(VOCAB)})")):
        getattr(model, method)(X, Y2)


@pytest.mark.parametrize("method", ["loss_and_grads", "loss"])
@pytest.mark.parametrize("xy", [(np.zeros((B, 0), int), np.zeros((B, 0), int)),
                                (np.zeros((0, T), int), np.zeros((0, T), int)),
                                ([1, 2, 3], [1, 2]), ([[1, 2]], [[1, 2], [3, 4]]),
                                ([1, 2], [[1, 2]])])
def test_api_empty_or_mismatched(model, method, xy):
    with pytest.raises(ValueError, match="empty|differ|inputs|targets"):
        getattr(model, method)(*xy)


@pytest.mark.parametrize("method", ["loss_and_grads", "loss"])
def test_api_empty_lists(model, method):
    """``np.asarray([])`` is float64: emptiness must be reported before the dtype."""
    with pytest.raises(ValueError, match="empty"):
        getattr(model, method)([], [])


# The public API must refuse a chunk the kernels cannot take before it allocates anything
# for it (ids copied to int32, a (T*B, V) workspace), or a long sequence costs gigabytes
# and ends in MemoryError instead of a ValueError. The ids below are zero-stride views:
# no memory behind them, and any copy or scan of them would take seconds and gigabytes.

@pytest.mark.parametrize("method", ["loss_and_grads", "loss"])
def test_api_dimensions_of_2_31_or_more(model, method):
    X = np.broadcast_to(np.zeros(1, np.uint8), (2**31,))       # 0 bytes, 2**31 ids
    with pytest.raises(ValueError, match=r"2\*\*31|too large"):
        getattr(model, method)(X, X)


@pytest.mark.parametrize("method", ["loss_and_grads", "loss"])
def test_api_chunk_too_large(backend, method):
    m = CharRNN(Vocab("".join(chr(0x100 + i) for i in range(2**11 + 1))), hidden_size=1,
                backend=backend)
    X = np.broadcast_to(np.zeros(1, np.uint8), (2**20,))
    with pytest.raises(ValueError, match="too large"):
        getattr(m, method)(X, X)


# ---------------------------------------------------------------- the model's own options

@pytest.mark.parametrize("kw,exc", [
    ({"hidden_size": 0}, ValueError), ({"hidden_size": -3}, ValueError),
    ({"hidden_size": 2**31}, ValueError), ({"hidden_size": 2.5}, TypeError),
    ({"hidden_size": True}, TypeError), ({"hidden_size": "8"}, TypeError),
    ({"dtype": "float16"}, TypeError), ({"dtype": "int64"}, TypeError),
    ({"dtype": "no such dtype"}, TypeError), ({"backend": "fortran"}, ValueError),
    ({"backend": None}, TypeError), ({"vocab": None}, TypeError), ({"vocab": ""}, ValueError),
    ({"vocab": "aab"}, ValueError), ({"vocab": ["a", "b"]}, TypeError),
])
def test_model_options(kw, exc):
    args = {"vocab": "abc", "hidden_size": 4, **kw}
    with pytest.raises(exc):
        CharRNN(**args)


# ---------------------------------------------------------------- vocabulary

def test_prime_characters_outside_the_vocabulary():
    v = Vocab.from_text("hello world")
    with pytest.raises(ValueError, match=r"2 character\(s\) not in the vocabulary: 'X', 'é'"):
        v.encode("hello Xé wé")
    np.testing.assert_array_equal(v.encode("hXeé", errors="skip"), v.encode("he"))
    with pytest.raises(ValueError, match="\\\\ud800"):
        v.encode("he\ud800")                                   # a lone surrogate


@pytest.mark.parametrize("text,exc", [(None, TypeError), (b"hello", TypeError),
                                      (["h", "e"], TypeError), (104, TypeError)])
def test_encode_non_text(text, exc):
    with pytest.raises(exc, match="text"):
        Vocab("helo").encode(text)


def test_encode_bad_errors_option():
    with pytest.raises(ValueError, match="errors"):
        Vocab("helo").encode("hello", errors="replace")


@pytest.mark.parametrize("ids,exc", [([0.0, 1.0], TypeError), ([True], TypeError),
                                     (None, TypeError), ("01", TypeError),
                                     ([2**70], TypeError), ([[0], [1, 2]], ValueError),
                                     ([4], ValueError), ([-1], ValueError),
                                     (np.array([2**64 - 1], np.uint64), ValueError)])
def test_decode_bad_ids(ids, exc):
    with pytest.raises(exc):
        Vocab("helo").decode(ids)


@pytest.mark.parametrize("text", [None, b"hello", 104])
def test_unknown_non_text(text):
    with pytest.raises(TypeError, match="text"):
        Vocab("helo").unknown(text)


def test_the_kernels_module_is_the_one_tested(kernels, backend):
    """Guard: the fixture hands out the backend it names (so both were exercised)."""
    assert kernels.NAME == backend and kernels is charrnn.get_kernels(backend)


@pytest.mark.parametrize("kernel", STEP_KERNELS + ("sumsq", "sgd_update", "adagrad_update",
                                                   "rmsprop_update", "adam_update"))
def test_buffers_that_are_not_ndarrays(kernels, dtype, kernel):
    """A buffer that is not an ndarray (an ``array.array``, a ``memoryview``) is refused
    by both backends, as the shared checks word it: the compiled fast path, which takes
    buffers through typed memoryviews, must not accept what the checks refuse."""
    import array
    args = layout_args(kernel, dtype) if kernel in STEP_KERNELS else make_args(kernel, dtype)
    for name, value in list(args.items()):
        if not isinstance(value, np.ndarray) or name == "layout":
            continue
        for wrap in (memoryview, lambda a: array.array(a.dtype.char, a.ravel())
                     if a.dtype.char in "fdi" else memoryview(a)):
            bad = dict(args)
            bad[name] = wrap(value)
            with pytest.raises(TypeError, match=f"^{name} must be a numpy.ndarray"):
                call(kernels, kernel, bad)


def test_sample_streams_too_many_for_32_bit_indices(kernels):
    """B * max(H, V) of 2**31 or more (the scratch of a step) is refused before any
    allocation, by both backends."""
    layout = Layout(1, 2**11, "float32")
    B = 2**20 + 1
    with pytest.raises(ValueError, match="too many for 32-bit BLAS"):
        kernels.sample(layout, layout.zeros(), np.zeros((B, 1), np.float32),
                       np.zeros(B, np.int32), np.full((1, B), 0.5))
