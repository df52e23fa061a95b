"""The parameter layout (``charrnn.layout.Layout``): where each parameter lives in the flat
vector, immutability, equality, views, the classic initialisation and bad arguments.

The kernels' handling of a layout (a non-Layout, a layout of another dtype or of other
sizes than theta) is in test_bad_input.py, for both backends.
"""

from __future__ import annotations

import math

import numpy as np
import pytest

import charrnn
from charrnn import config, optim
from charrnn.kernels.rules import RULES
from charrnn.layout import Layout, Param, is_classic
from conftest import GRAD_NAMES, PARAM_NAMES

NAMES = ("Wxh", "Whh", "Why", "bh", "by")
SIZES = [(1, 1), (1, 2), (4, 5), (7, 3), (100, 65), (512, 65)]


def shapes(H: int, V: int) -> dict[str, tuple[int, ...]]:
    """min-char-rnn's shapes."""
    return {"Wxh": (H, V), "Whh": (H, H), "Why": (V, H), "bh": (H,), "by": (V,)}


# ----------------------------------------------------------------------------- the layout

@pytest.mark.parametrize("H,V", SIZES)
def test_parameters_lie_one_after_another_in_the_classic_order(dtype, H, V):
    layout = Layout(H, V, dtype)
    assert layout.names == NAMES == PARAM_NAMES
    assert GRAD_NAMES == tuple("d" + n for n in layout.names)
    assert [p.name for p in layout.params] == list(NAMES)
    assert {p.name: p.shape for p in layout.params} == shapes(H, V)
    offset = 0
    for p in layout.params:
        assert isinstance(p, Param)
        assert p.offset == offset, p                            # contiguous, in order
        assert p.size == math.prod(p.shape) and type(p.size) is int
        assert layout[p.name] is p
        offset += p.size
    assert layout.size == offset == H * V + H * H + V * H + H + V
    assert type(layout.size) is int
    assert layout.offsets.dtype == np.int64 and layout.offsets.ndim == 1
    assert layout.offsets.tolist() == [p.offset for p in layout.params]
    assert (layout.hidden_size, layout.vocab_size) == (H, V)
    assert layout.dtype == dtype and isinstance(layout.dtype, np.dtype)
    assert (layout.cell, layout.num_layers) == ("rnn", 1)


def test_initialisation_and_torch_names():
    layout = Layout(3, 4)
    assert {p.name: p.init for p in layout.params} == {
        "Wxh": "randn*0.01", "Whh": "randn*0.01", "Why": "randn*0.01", "bh": "zeros",
        "by": "zeros"}
    # nn.RNN(V, H) + nn.Linear(H, V) of PyTorch's word_language_model, one-hot input
    assert {p.name: p.torch_name for p in layout.params} == {
        "Wxh": "rnn.weight_ih_l0", "Whh": "rnn.weight_hh_l0", "Why": "decoder.weight",
        "bh": "rnn.bias_ih_l0", "by": "decoder.bias"}


@pytest.mark.parametrize("cell", config.CELLS)
@pytest.mark.parametrize("L", [1, 2, 3])
def test_the_classic_names_belong_to_the_classic_model_only(cell, L):
    # is_classic is the one test of "min-char-rnn's model" that the API and the benchmarks use
    names = Layout(3, 4, "float64", cell, L).names
    assert is_classic(cell, L) == (cell == "rnn" and L == 1) == (names == NAMES)


def test_unknown_parameter_name():
    with pytest.raises(KeyError):
        Layout(3, 4)["Wxy"]


def test_defaults_and_accepted_spellings():
    a = Layout(4, 5)
    assert a.dtype == np.float64 and a.cell == "rnn" and a.num_layers == 1
    for b in (Layout(4, 5, "float64"), Layout(4, 5, np.float64), Layout(4, 5, np.dtype("<f8")),
              Layout(np.int64(4), np.int32(5), "f8", "rnn", 1)):
        assert b == a
        assert type(b.hidden_size) is int and type(b.vocab_size) is int
    assert Layout(4, 5, np.float32).dtype == np.float32
    assert Layout(hidden_size=4, vocab_size=5, dtype="float32", cell="rnn",
                  num_layers=1) == Layout(4, 5, "float32")


# ----------------------------------------------------------------------------- immutable

@pytest.mark.parametrize("name", ["hidden_size", "vocab_size", "dtype", "cell", "num_layers",
                                  "params", "size", "offsets", "something_new"])
def test_assignments_raise(name):
    layout = Layout(4, 5)
    before = repr(layout), layout.size, layout.offsets.tolist()
    with pytest.raises(AttributeError, match="immutable"):
        setattr(layout, name, 3)
    assert (repr(layout), layout.size, layout.offsets.tolist()) == before


def test_attributes_cannot_be_deleted():
    """Immutable means no deletion either (a layout without its size would reach the
    kernels' checks as an AttributeError)."""
    layout = Layout(4, 5)
    for name in ("size", "offsets", "hidden_size", "dtype"):
        with pytest.raises(AttributeError):
            delattr(layout, name)
        assert hasattr(layout, name), name


def test_layout_cannot_be_subclassed():
    """The compiled kernels take a layout's offsets as they are, so no subclass may
    change what they are."""
    with pytest.raises(TypeError, match="cannot be subclassed"):
        type("SubLayout", (Layout,), {"__slots__": ()})


def test_copy_and_pickle_give_an_equal_layout():
    import copy
    import pickle
    layout = Layout(4, 5, "float32")
    for other in (copy.copy(layout), copy.deepcopy(layout),
                  pickle.loads(pickle.dumps(layout))):
        assert other == layout and other.offsets.tolist() == layout.offsets.tolist()


def test_offsets_cannot_be_made_writeable():
    layout = Layout(4, 5)
    off = layout.offsets
    assert not off.flags.writeable
    with pytest.raises(ValueError):
        off[0] = 1
    with pytest.raises(ValueError):
        off.flags.writeable = True
    with pytest.raises(ValueError):
        off.setflags(write=True)
    view = off.view()                                           # nor through a view
    with pytest.raises(ValueError):
        view.flags.writeable = True
    assert layout.offsets.tolist() == [0, 20, 36, 56, 60]


def test_parameters_are_immutable():
    layout = Layout(4, 5)
    assert isinstance(layout.params, tuple)
    with pytest.raises(AttributeError):
        layout.params[0].offset = 3                             # a NamedTuple
    with pytest.raises(TypeError):
        layout.params[0] = layout.params[1]


# ----------------------------------------------------------------------------- equality

def test_equality_and_hash():
    a, b = Layout(4, 5), Layout(4, 5, "float64", "rnn", 1)
    assert a == b and not a != b and hash(a) == hash(b) and a is not b
    others = [Layout(4, 5, "float32"), Layout(5, 4), Layout(4, 6), Layout(3, 5)]
    for o in others:
        assert a != o and not a == o
    assert len({a, b, *others}) == 1 + len(others)
    assert {a: 1}[b] == 1
    for x in [(4, 5), "Layout(4, 5)", None, 60, a.offsets]:
        assert not a == x and a != x


def test_repr_names_every_value_and_rebuilds_the_layout():
    a = Layout(7, 3, "float32")
    assert repr(a) == ("Layout(hidden_size=7, vocab_size=3, dtype='float32', cell='rnn', "
                       "num_layers=1)")
    assert eval(repr(a), {"Layout": Layout}) == a


# ----------------------------------------------------------------------------- vectors

@pytest.mark.parametrize("H,V", SIZES)
def test_zeros_is_an_aligned_zero_vector(dtype, H, V):
    layout = Layout(H, V, dtype)
    z = layout.zeros()
    assert z.shape == (layout.size,) and z.dtype == dtype
    assert z.flags.c_contiguous and z.flags.writeable and not z.any()
    # the recurrent matrix, read twice per step, starts on a 64-byte boundary
    assert layout.views(z)["Whh"].ctypes.data % 64 == 0
    assert not np.shares_memory(z, layout.zeros())              # a fresh vector each call


@pytest.mark.parametrize("H,V", SIZES)
def test_views_share_memory_with_the_vector(dtype, H, V):
    layout = Layout(H, V, dtype)
    flat = layout.zeros()
    views = layout.views(flat)
    assert tuple(views) == NAMES
    for name, v in views.items():
        p = layout[name]
        assert v.shape == p.shape and v.dtype == dtype and v.flags.c_contiguous
        assert v.flags.writeable and np.shares_memory(v, flat)
        assert v.ctypes.data == flat.ctypes.data + p.offset * flat.itemsize
    # writes go both ways, and the views tile the vector exactly once
    flat[:] = np.arange(layout.size)
    np.testing.assert_array_equal(np.concatenate([v.ravel() for v in views.values()]), flat)
    for name, v in views.items():
        v[...] = -1
        assert np.all(flat[layout[name].offset:layout[name].offset + v.size] == -1)
    assert np.all(flat == -1)
    # a model's params are such views into its theta
    m = charrnn.CharRNN("abcde", hidden_size=H, dtype=dtype, backend="numpy")
    assert m.layout == Layout(H, 5, dtype)
    for name, v in m.layout.views(m.theta).items():
        assert m.params[name].ctypes.data == v.ctypes.data and np.shares_memory(
            m.params[name], m.theta)
        assert np.shares_memory(m.grads[name], m.grad)


@pytest.mark.parametrize("H,V", SIZES)
@pytest.mark.parametrize("seed", [0, 1, 12345])
def test_init_is_the_classic_bit_for_bit(dtype, H, V, seed):
    """randn * 0.01 for Wxh, Whh, Why drawn in that order from the generator, then the
    biases zero (whatever the vector held): min-char-rnn's, and the earlier CharRNN's."""
    layout = Layout(H, V, dtype)
    flat = layout.zeros()
    flat[:] = np.nan
    layout.init(flat, np.random.default_rng(seed))
    rng = np.random.default_rng(seed)
    want = {k: rng.standard_normal(shapes(H, V)[k]) * 0.01 for k in ("Wxh", "Whh", "Why")}
    want.update(bh=np.zeros(H), by=np.zeros(V))
    got = layout.views(flat)
    for k in NAMES:
        assert got[k].tobytes() == want[k].astype(dtype).tobytes(), k
    # the generator was advanced by exactly the three draws
    after = np.random.default_rng(seed)
    for k in ("Wxh", "Whh", "Why"):
        after.standard_normal(shapes(H, V)[k])
    g = np.random.default_rng(seed)
    layout.init(layout.zeros(), g)
    assert g.standard_normal() == after.standard_normal()
    # and a model of that seed starts there
    m = charrnn.CharRNN("".join(chr(97 + i) for i in range(V)), hidden_size=H, dtype=dtype,
                        seed=seed, backend="numpy")
    assert m.theta.tobytes() == flat.tobytes()


# ----------------------------------------------------------------------------- bad arguments

@pytest.mark.parametrize("kw,exc", [
    ({"hidden_size": 0}, ValueError), ({"hidden_size": -1}, ValueError),
    ({"hidden_size": 2**31}, ValueError), ({"hidden_size": 2**70}, ValueError),
    ({"hidden_size": 2.0}, TypeError), ({"hidden_size": True}, TypeError),
    ({"hidden_size": "4"}, TypeError), ({"hidden_size": None}, TypeError),
    ({"hidden_size": np.float64(4)}, TypeError),
    ({"vocab_size": 0}, ValueError), ({"vocab_size": -5}, ValueError),
    ({"vocab_size": 2**31}, ValueError), ({"vocab_size": 5.0}, TypeError),
    ({"vocab_size": False}, TypeError), ({"vocab_size": [5]}, TypeError),
    ({"dtype": "float16"}, TypeError), ({"dtype": "int64"}, TypeError),
    ({"dtype": "longdouble"}, TypeError), ({"dtype": np.complex128}, TypeError),
    ({"dtype": "no such dtype"}, TypeError), ({"dtype": "U3"}, TypeError),
    ({"cell": "transformer"}, ValueError), ({"cell": "RNN"}, ValueError),
    ({"cell": "LSTM"}, ValueError), ({"cell": ""}, ValueError),
    ({"cell": None}, (TypeError, ValueError)), ({"cell": 1}, (TypeError, ValueError)),
    ({"num_layers": 0}, ValueError), ({"num_layers": -1}, ValueError),
    ({"num_layers": 1.0}, TypeError), ({"num_layers": True}, TypeError),
])
def test_bad_arguments(kw, exc):
    args = {"hidden_size": 4, "vocab_size": 5, **kw}
    with pytest.raises(exc):
        Layout(**args)


@pytest.mark.parametrize("dtype", [">f8", ">f4"])
def test_a_non_native_byte_order(dtype):
    """A big-endian float dtype is refused (TypeError, as the kernels refuse such arrays)
    or taken as the native dtype of that name: a layout whose dtype is not the one its
    repr and its equality show would have the twins disagree (the compiled kernels read
    only the item size)."""
    try:
        layout = Layout(4, 5, dtype)
    except TypeError:
        return
    assert layout.dtype.isnative and layout.dtype == np.dtype(layout.dtype.name)


@pytest.mark.parametrize("H,V", [(2**16, 2**15 + 1), (46341, 1), (1, 715827882),
                                 (2**15, 2**15)])
def test_too_large_for_32_bit_blas(H, V):
    """2**31 parameters or more (where each dimension fits) is refused by the layout, so
    no kernel ever sees such a vector. (The checks run before any allocation.)"""
    with pytest.raises(ValueError, match="too large for 32-bit"):
        Layout(H, V)


def test_the_largest_layout_that_fits():
    V = (2**31 - 1 - 2) // 3                                    # H = 1: 3V + 2 parameters
    assert Layout(1, V).size == 3 * V + 2 <= 2**31 - 1
    with pytest.raises(ValueError):
        Layout(1, V + 1)


# ----------------------------------------------------------------------------- registries

def test_default_lr_and_the_rules_name_the_same_optimizers():
    """config.DEFAULT_LR, the rules the kernels implement and charrnn.optim's names agree
    (and so do the kernels' <rule>_update functions)."""
    assert set(config.DEFAULT_LR) == set(RULES)
    assert optim.OPTIMIZERS == tuple(RULES)
    assert optim.DEFAULT_LR is config.DEFAULT_LR
    for K in (charrnn.get_kernels(b) for b in charrnn.available_backends()):
        for rule in RULES:
            assert callable(getattr(K, rule + "_update")), (K.NAME, rule)
    for rule in RULES:
        opt = charrnn.make_optimizer(rule, 3, "float64")
        assert opt.lr == config.DEFAULT_LR[rule]
        assert opt.slots == RULES[rule].states
