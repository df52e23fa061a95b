"""Checkpoints: exact round trips, atomic writes, and a loader that rejects bad files."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading

import numpy as np
import pytest

import charrnn
from charrnn import checkpoint as ckpt
from charrnn.api import read as read_checkpoint
from charrnn.errors import CheckpointError

TEXT = ("the cat sat on the mat. the dog ate the log. 中文 😀\r\n" * 40)


@pytest.fixture(autouse=True)
def _cache(tmp_path, monkeypatch):
    monkeypatch.setenv("CHARRNN_CACHE_DIR", str(tmp_path / "cache"))


@pytest.fixture
def trained(tmp_path):
    """A tiny 1-layer RNN (the classic names; the cells' files are
    tests/api/test_cells_api.py's) trained a few steps, saved with its full state."""
    path = tmp_path / "m.ckpt.npz"
    r = charrnn.train(TEXT, hidden_size=12, batch_size=3, seq_length=7, steps=9,
                      eval_every=4, sample_every=5, sample_length=5, verbose=False,
                      checkpoint=path, optimizer="adam", cell="rnn", dropout=0.0)
    return r.model, path


def members(path) -> dict:
    with np.load(path, allow_pickle=False) as z:
        return {k: z[k] for k in z.files}


def rewrite(src, dst, change=None, drop=(), meta=None, digest=True):
    """Write ``src``'s members, changed, to ``dst`` (with a valid digest unless not asked)."""
    a = members(src)
    if meta is not None:
        m = json.loads(a["meta"].tobytes())
        meta(m)
        a["meta"] = np.frombuffer(json.dumps(m).encode(), np.uint8)
    for k in drop:
        del a[k]
    if change:
        a.update(change)
    with open(dst, "w+b") as f:
        np.savez(f, **a)
        if digest:
            ckpt._append_digest(f)
    return dst


# ----------------------------------------------------------------------------- round trips

def test_round_trip_keeps_every_piece_of_state(trained):
    model, path = trained
    st = model._train_state
    m2, st2, meta = read_checkpoint(path)
    assert meta["format"] == ckpt.FORMAT and meta["version"] == ckpt.FORMAT_VERSION
    assert meta["charrnn_version"] == charrnn.__version__
    assert m2.vocab == model.vocab and "😀" in m2.vocab and "\r" in m2.vocab
    assert m2.dtype == model.dtype and m2.hidden_size == 12
    assert m2.theta.tobytes() == model.theta.tobytes()
    for k in model.params:
        assert np.array_equal(m2.params[k], model.params[k])
    assert st2.config == st.config
    assert st2.optimizer.name == "adam" and st2.optimizer.t == st.optimizer.t == 9
    for k in st.optimizer.state:
        assert st2.optimizer.state[k].tobytes() == st.optimizer.state[k].tobytes()
    assert st2.h.tobytes() == st.h.tobytes() and st2.h.shape == (3, 12)
    assert (st2.step, st2.epoch, st2.position, st2.chars_seen) == \
        (st.step, st.epoch, st.position, st.chars_seen)
    assert st2.rng_state == st.rng_state
    g1, g2 = np.random.default_rng(), np.random.default_rng()
    g1.bit_generator.state, g2.bit_generator.state = st.rng_state, st2.rng_state
    assert g1.random() == g2.random()
    assert st2.best_val_loss == st.best_val_loss and st2.best_step == st.best_step
    assert st.best_step in (4, 8, 9) and st.best_val_loss is not None
    assert st2.corpus == st.corpus
    assert not read_checkpoint(path)[0].theta is model.theta


def test_model_only_save_and_load(tmp_path):
    m = charrnn.CharRNN("abcé", hidden_size=5, dtype="float64", seed=3)
    p = m.save(tmp_path / "plain.npz")
    m2 = charrnn.load(p)
    assert isinstance(m2, charrnn.CharRNN) and m2._train_state is None
    assert m2.theta.tobytes() == m.theta.tobytes() and m2.dtype == np.float64
    assert charrnn.CharRNN.load(p).vocab == m.vocab


def test_file_permissions_follow_the_umask(tmp_path):
    m = charrnn.CharRNN("ab", hidden_size=2)
    p = m.save(tmp_path / "x.npz")
    umask = os.umask(0)
    os.umask(umask)
    assert (p.stat().st_mode & 0o777) == (0o666 & ~umask)


# ----------------------------------------------------------------------------- atomic writes

def test_no_temp_files_and_stale_ones_cleaned(tmp_path):
    m = charrnn.CharRNN("ab", hidden_size=2)
    target = tmp_path / "a.ckpt.npz"
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"],
                          capture_output=True, text=True).stdout.strip()
    stale = tmp_path / f".a.ckpt.npz.tmp-{dead}-xyz.tmp"
    stale.write_bytes(b"half a file")
    alive = tmp_path / f".a.ckpt.npz.tmp-{os.getppid()}-xyz.tmp"
    alive.write_bytes(b"another process is writing this")
    other = tmp_path / f".b.ckpt.npz.tmp-{dead}-xyz.tmp"
    other.write_bytes(b"another target")
    m.save(target)
    assert target.is_file() and not stale.exists()
    assert alive.exists() and other.exists()
    left = [p.name for p in tmp_path.iterdir() if p.name.startswith(".a.ckpt.npz.tmp-")
            and p != alive]
    assert left == []


def test_a_failed_write_leaves_the_old_file(tmp_path, monkeypatch):
    m = charrnn.CharRNN("abc", hidden_size=4, seed=1)
    target = tmp_path / "keep.npz"
    m.save(target)
    before = target.read_bytes()

    def broken(f, **arrays):
        f.write(b"PK\x03\x04 partial")
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(ckpt.np, "savez", broken)
    m.theta[:] = 1.0
    with pytest.raises(OSError, match="No space"):
        m.save(target)
    assert target.read_bytes() == before
    assert [p.name for p in tmp_path.iterdir()] == ["keep.npz"]


@pytest.mark.skipif(os.name != "posix", reason="needs POSIX signals")
def test_ctrl_c_during_a_save_lands_after_it(tmp_path, monkeypatch):
    if threading.current_thread() is not threading.main_thread():
        pytest.skip("signals need the main thread")
    m = charrnn.CharRNN("abc", hidden_size=4, seed=1)
    target = tmp_path / "sig.npz"
    m.save(target)
    real = np.savez

    def interrupted(f, **arrays):
        os.kill(os.getpid(), signal.SIGINT)          # Ctrl-C in the middle of the write
        real(f, **arrays)

    monkeypatch.setattr(ckpt.np, "savez", interrupted)
    m.theta[:] = 0.5
    # Python's own handler, whatever this process inherited (a background job ignores SIGINT)
    prev = signal.signal(signal.SIGINT, signal.default_int_handler)
    try:
        with pytest.raises(KeyboardInterrupt):
            m.save(target)
        assert signal.getsignal(signal.SIGINT) is signal.default_int_handler
    finally:
        signal.signal(signal.SIGINT, prev)
    # the interrupt came after the rename: the new file is complete
    assert np.all(charrnn.load(target).theta == 0.5)
    assert [p.name for p in tmp_path.iterdir()] == ["sig.npz"]


# ----------------------------------------------------------------------------- bad files

def expect_bad(path, match=None):
    with pytest.raises(CheckpointError, match=match) as e:
        charrnn.load(path)
    assert isinstance(e.value, ValueError)
    assert str(path) in str(e.value)
    return e.value


def test_truncated_files(trained, tmp_path):
    _, path = trained
    data = path.read_bytes()
    cut = tmp_path / "cut.npz"
    for n in list(range(0, len(data), max(1, len(data) // 60))) + [len(data) - 1]:
        cut.write_bytes(data[:n])
        expect_bad(cut)


def test_garbage_files(tmp_path):
    rng = np.random.default_rng(0)
    for i, blob in enumerate([b"", b"hello world\n", rng.bytes(5000),
                              b"PK\x03\x04" + rng.bytes(3000), b"\x93NUMPY" + rng.bytes(100)]):
        p = tmp_path / f"g{i}.npz"
        p.write_bytes(blob)
        expect_bad(p)


def test_flipped_bytes_are_caught(trained, tmp_path):
    _, path = trained
    data = bytearray(path.read_bytes())
    bad = tmp_path / "flip.npz"
    z = members(path)
    # flip a byte inside the Wxh data: the zip CRC check catches it
    off = bytes(data).find(z["Wxh"].tobytes()[:16])
    assert off > 0
    data[off + 3] ^= 0xFF
    bad.write_bytes(bytes(data))
    expect_bad(bad)


def test_every_damaged_byte_is_caught(trained, tmp_path):
    # The zip format checks its members' CRCs, not its headers (timestamps, version
    # fields); the whole-file SHA-256 in the zip comment covers every byte.
    _, path = trained
    data = path.read_bytes()
    bad = tmp_path / "flip.npz"
    for pos in range(len(data)):
        b = bytearray(data)
        b[pos] ^= 1 << (pos % 8)
        bad.write_bytes(bytes(b))
        with pytest.raises(CheckpointError):
            read_checkpoint(bad, backend="numpy")


def test_the_digest_is_a_plain_zip_comment(trained):
    import hashlib
    import zipfile
    _, path = trained
    with zipfile.ZipFile(path) as zf:
        assert zf.testzip() is None
        comment = zf.comment
    assert comment.startswith(b"charrnn-sha256:")
    data = path.read_bytes()
    body = data[:-len(comment) - 2] + b"\0\0"          # the file as written, no comment
    assert hashlib.sha256(body).hexdigest().encode() == comment[len(b"charrnn-sha256:"):]
    assert set(members(path)) >= {"meta", "Wxh", "Whh", "Why", "bh", "by"}


def test_version_1_files_without_a_digest_still_load(trained, tmp_path):
    model, path = trained
    old = rewrite(path, tmp_path / "v1.npz", meta=lambda m: m.update(version=1),
                  digest=False)
    m2 = charrnn.load(old)
    assert m2.theta.tobytes() == model.theta.tobytes()
    expect_bad(rewrite(path, tmp_path / "v2.npz", digest=False), "SHA-256")


def test_not_a_checkpoint(tmp_path):
    np.save(tmp_path / "a.npy", np.arange(3))
    expect_bad(tmp_path / "a.npy", "not a charrnn checkpoint")
    np.savez(tmp_path / "b.npz", x=np.arange(3))
    expect_bad(tmp_path / "b.npz", "no 'meta'")
    np.savez(tmp_path / "c.npz", meta=np.frombuffer(b"{oops", np.uint8))
    expect_bad(tmp_path / "c.npz", "not valid JSON")
    np.savez(tmp_path / "d.npz", meta=np.array([object()], dtype=object))
    expect_bad(tmp_path / "d.npz")                           # pickled: refused


def test_wrong_format_and_versions(trained, tmp_path):
    _, path = trained
    expect_bad(rewrite(path, tmp_path / "f.npz", meta=lambda m: m.update(format="other")),
               "unknown format")
    expect_bad(rewrite(path, tmp_path / "v.npz", meta=lambda m: m.update(version=99)),
               "newer")
    expect_bad(rewrite(path, tmp_path / "v0.npz", meta=lambda m: m.update(version=0)),
               "version")
    expect_bad(rewrite(path, tmp_path / "vs.npz", meta=lambda m: m.update(version="1")),
               "version")


def test_missing_keys_shapes_dtypes_and_values(trained, tmp_path):
    _, path = trained
    z = members(path)
    cases = {
        "noparam": dict(drop=["Why"]),
        "noopt": dict(drop=["opt.m"]),
        "noh": dict(drop=["h"]),
        "shape": dict(change={"Whh": np.zeros((12, 11), z["Whh"].dtype)}),
        "dtype": dict(change={"bh": z["bh"].astype(np.float64)}),
        "nan": dict(change={"by": np.full_like(z["by"], np.nan)}),
        "inf": dict(change={"opt.v": np.full_like(z["opt.v"], np.inf)}),
        "hshape": dict(change={"h": np.zeros((2, 12), z["h"].dtype)}),
        "novocab": dict(meta=lambda m: m.pop("vocab")),
        "badvocab": dict(meta=lambda m: m.update(vocab="ba")),
        "vocabsize": dict(meta=lambda m: m["model"].update(vocab_size=3)),
        "nomodel": dict(meta=lambda m: m.pop("model")),
        "H": dict(meta=lambda m: m["model"].update(hidden_size=0)),
        "mdtype": dict(meta=lambda m: m["model"].update(dtype="float16")),
        "opt": dict(meta=lambda m: m["optimizer"].update(name="lbfgs")),
        "t": dict(meta=lambda m: m["optimizer"].update(t=-1)),
        "step": dict(meta=lambda m: m["state"].pop("step")),
        "rng": dict(meta=lambda m: m["state"].update(rng_state={"bit_generator": "nope"})),
        "config": dict(meta=lambda m: m["config"].update(batch_size=0)),
        "state": dict(meta=lambda m: m.update(state=[1, 2])),
        "best": dict(meta=lambda m: m["state"].update(best_val_loss="low")),
    }
    for name, kw in cases.items():
        expect_bad(rewrite(path, tmp_path / f"{name}.npz", **kw))


def test_a_missing_file_is_an_os_error(tmp_path):
    with pytest.raises(FileNotFoundError):
        charrnn.load(tmp_path / "nope.npz")
