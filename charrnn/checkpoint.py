"""The checkpoint file format: one ``.npz`` file, no pickle, written atomically, read and
validated into plain parts (:func:`read`; ``CharRNN.load`` builds the model from them).

Why ``.npz`` and not safetensors: it needs nothing beyond NumPy (the runtime depends on
NumPy and SciPy only), ``numpy.load(..., allow_pickle=False)`` refuses any object array,
so loading never runs code, and every array keeps its exact dtype and shape. Anyone can
open a checkpoint with plain NumPy: the parameters are stored under their classic names.

Layout (the members of the zip):

====================  =========================================================
``meta``              uint8 UTF-8 JSON: format name and version, charrnn version,
                      the vocabulary, the model (H, cell, layers, dropout, dtype,
                      seed) and training config, the optimizer
                      (name, lr, hyper-parameters, step counter ``t``), the step,
                      epoch and data position, chars seen, elapsed seconds, the best
                      validation loss, the sample RNG state, the corpus fingerprint,
                      the world size (the processes the run trained on)
``Wxh Whh Why bh by`` the parameters, in the model's dtype and shapes, under their
                      names (the 1-layer RNN's classic ones, ``Wx0 Wh0 b0 ...
                      Why by`` for the others: :mod:`charrnn.layout`)
``opt.<slot>``        the optimizer state (flat, like ``theta``): ``m``, ``v``
``h``                 the carried state, (world_size * B, state_size): the
                      streams of every rank of a data-parallel run
====================  =========================================================

Format versions: 3 records the cell, the number of layers and the dropout rate; a file
of version 1 or 2 holds a 1-layer tanh RNN without dropout, and still loads and resumes.

The zip's comment holds ``charrnn-sha256:`` and the SHA-256 of the whole file as written
with an empty comment (format version 2). The zip format checks its members' CRCs but not
its headers, so a damaged byte in a timestamp or a version field would otherwise go
unnoticed; with the digest, any damaged byte is an error on load. Version 1 files (no
digest) still load.

A checkpoint is written with :func:`charrnn.atomic.write_atomic` (a temporary file,
fsync, ``os.replace``, fsync of the directory: a reader sees the old file or the new one,
never a mix) with SIGINT held off, so a Ctrl-C during a save lands after it.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from ._version import __version__
from .atomic import sigint_deferred, write_atomic
from .config import CELLS, DTYPES, TrainConfig, check_dropout
from .data.vocab import Vocab
from .errors import CheckpointError
from .layout import Layout
from .optim import OPTIMIZERS, make_optimizer
from .protocol import require_model
from .train_state import TrainState

if TYPE_CHECKING:
    from .model import CharRNN

FORMAT = "charrnn-checkpoint"
FORMAT_VERSION = 3
DIGEST_FROM_VERSION = 2     # versions from this one carry a whole-file SHA-256

# End of central directory record: a 22-byte record ending in a 2-byte comment length,
# followed by the comment.
_EOCD_SIG = b"PK\x05\x06"
_EOCD_LEN = 22
_DIGEST_TAG = b"charrnn-sha256:"
_COMMENT_LEN = len(_DIGEST_TAG) + 64
_CHUNK = 1 << 20

_save_lock = threading.Lock()


# ----------------------------------------------------------------------------- saving

def _meta(model: CharRNN, state: TrainState | None) -> dict:
    meta = {
        "format": FORMAT, "version": FORMAT_VERSION, "charrnn_version": __version__,
        "vocab": model.vocab.chars,
        "model": {"hidden_size": model.hidden_size, "vocab_size": model.vocab_size,
                  "cell": model.cell, "num_layers": model.num_layers,
                  "dropout": model.dropout, "dtype": model.dtype.name,
                  "seed": int(model.seed), "num_params": model.num_params},
        "state": None,
    }
    if state is not None:
        opt = state.optimizer
        meta["config"] = state.config.to_dict()
        meta["optimizer"] = {"name": opt.name, "lr": opt.lr, "hyper": opt.hyper(),
                             "t": int(opt.t), "slots": list(opt.slots)}
        meta["state"] = {
            "step": int(state.step), "epoch": int(state.epoch),
            "position": int(state.position), "chars_seen": int(state.chars_seen),
            "elapsed": float(state.elapsed),
            "best_val_loss": (None if state.best_val_loss is None
                              else float(state.best_val_loss)),
            "best_step": None if state.best_step is None else int(state.best_step),
            "bad_evals": int(state.bad_evals), "rng_state": state.rng_state,
            "corpus": state.corpus, "world_size": int(state.world_size),
        }
    return meta


def save(path, model: CharRNN, state: TrainState | None = None) -> Path:
    """Write ``model`` (and its training ``state``) to ``path`` atomically.

    Parameters
    ----------
    path : str or os.PathLike
        The file to write (any name; ``.ckpt.npz`` is the convention).
    model : CharRNN
    state : TrainState, optional
        Without it the file holds the model only; training from it starts afresh.

    Returns
    -------
    Path
        ``path``.
    """
    require_model(model)
    path = Path(os.fspath(path))
    if path.is_dir():
        raise IsADirectoryError(f"{path} is a directory")
    with _save_lock, model._lock:
        meta = json.dumps(_meta(model, state), allow_nan=False).encode("utf-8")
        arrays = {"meta": np.frombuffer(meta, np.uint8)}
        arrays.update({k: v for k, v in model.params.items()})
        if state is not None:
            for slot, arr in state.optimizer.state.items():
                arrays[f"opt.{slot}"] = arr
            arrays["h"] = state.h

        def write(f) -> None:
            np.savez(f, **arrays)
            _append_digest(f)

        with sigint_deferred():
            write_atomic(path, write)
    return path


def _sha256(f, end: int, zero_tail: int = 0) -> str:
    """SHA-256 of ``f[:end]`` with its last ``zero_tail`` bytes read as zeros."""
    h = hashlib.sha256()
    f.seek(0)
    left = end - zero_tail
    while left > 0:
        chunk = f.read(min(_CHUNK, left))
        if not chunk:
            raise EOFError("file shorter than expected")
        h.update(chunk)
        left -= len(chunk)
    h.update(bytes(zero_tail))
    return h.hexdigest()


def _append_digest(f) -> None:
    """Put the file's SHA-256 into the zip comment of the .npz just written to ``f``."""
    end = f.seek(0, os.SEEK_END)
    f.seek(end - _EOCD_LEN)
    eocd = f.read(_EOCD_LEN)
    if eocd[:4] != _EOCD_SIG or eocd[-2:] != b"\0\0":
        raise RuntimeError("unexpected .npz layout: no empty zip comment at its end")
    digest = _sha256(f, end).encode("ascii")
    f.seek(end - 2)
    f.write(_COMMENT_LEN.to_bytes(2, "little") + _DIGEST_TAG + digest)


def _check_digest(f, r: "_Reader") -> bool:
    """Verify the digest in the zip comment: True if there is one and it matches.

    False if the file has no digest comment (a version-1 file, or damage to the comment
    itself: the format version then tells which); a CheckpointError if it does not match.
    """
    end = f.seek(0, os.SEEK_END)
    start = end - _COMMENT_LEN - _EOCD_LEN
    if start < 0:
        return False
    f.seek(start)
    tail = f.read(_COMMENT_LEN + _EOCD_LEN)
    eocd, comment = tail[:_EOCD_LEN], tail[_EOCD_LEN:]
    if (eocd[:4] != _EOCD_SIG or int.from_bytes(eocd[-2:], "little") != _COMMENT_LEN
            or not comment.startswith(_DIGEST_TAG)):
        return False
    want = comment[len(_DIGEST_TAG):]
    if _sha256(f, end - _COMMENT_LEN, zero_tail=2).encode("ascii") != want:
        raise r.fail("not a valid checkpoint (corrupt or truncated): its SHA-256 "
                     "does not match the one it was written with")
    return True


# ----------------------------------------------------------------------------- loading

class _Reader:
    """Checks with one error type: everything wrong is a CheckpointError naming the file."""

    def __init__(self, name: str) -> None:
        self.name = name

    def fail(self, msg: str) -> CheckpointError:
        return CheckpointError(f"{self.name}: {msg}")

    def get(self, d: dict, key: str, kind, where: str, optional: bool = False):
        if not isinstance(d, dict) or key not in d:
            if optional:
                return None
            raise self.fail(f"missing {where}{key!r}")
        v = d[key]
        if v is None and optional:
            return None
        ok = {"int": lambda x: isinstance(x, int) and not isinstance(x, bool),
              "num": lambda x: (isinstance(x, (int, float)) and not isinstance(x, bool)
                                and math.isfinite(x)),
              "str": lambda x: isinstance(x, str),
              "dict": lambda x: isinstance(x, dict),
              "list": lambda x: isinstance(x, list)}[kind](v)
        if not ok:
            raise self.fail(f"{where}{key!r} must be a {kind}, got {v!r:.60}")
        return v

    def count(self, d, key, where, optional=False):
        v = self.get(d, key, "int", where, optional)
        if v is not None and v < 0:
            raise self.fail(f"{where}{key!r} must be >= 0, got {v}")
        return v

    def array(self, arrays: dict, key: str, dtype: np.dtype, shape: tuple) -> np.ndarray:
        if key not in arrays:
            raise self.fail(f"missing array {key!r}")
        a = arrays[key]
        if a.dtype != dtype:
            raise self.fail(f"array {key!r} has dtype {a.dtype}, expected {dtype}")
        if a.shape != tuple(shape):
            raise self.fail(f"array {key!r} has shape {a.shape}, expected {tuple(shape)}")
        if not np.all(np.isfinite(a)):
            raise self.fail(f"array {key!r} holds NaN or infinite values")
        return np.ascontiguousarray(a)


def _read_arrays(path: Path, r: _Reader) -> tuple[dict[str, np.ndarray], bool]:
    """The arrays of the .npz at ``path``, and whether it carried a (matching) digest."""
    with open(path, "rb") as f:                 # OSError (missing file, ...) passes through
        try:
            head = f.read(4)
            if head[:2] != b"PK":
                raise r.fail("not a charrnn checkpoint (not an .npz file)")
            digested = _check_digest(f, r)
            f.seek(0)
            with np.load(f, allow_pickle=False) as z:
                if not isinstance(z, np.lib.npyio.NpzFile):
                    raise r.fail("not a charrnn checkpoint (not an .npz file)")
                return {k: z[k] for k in z.files}, digested
        except CheckpointError:
            raise
        except Exception as e:                  # zip, zlib, npy header, pickle refusals
            raise r.fail(f"not a valid checkpoint (corrupt or truncated): "
                         f"{type(e).__name__}: {e}") from None


@dataclass
class ModelRecord:
    """The model a checkpoint holds, as plain parts (:meth:`charrnn.CharRNN.load` builds
    the model from them).

    Attributes
    ----------
    vocab : Vocab
    hidden_size : int
    dtype : {"float32", "float64"}
    seed : int
    params : dict of ndarray
        Every parameter of the model's layout, checked against its shape and the dtype.
    cell : {"rnn", "lstm", "gru"}
    num_layers : int
    dropout : float
    """

    vocab: Vocab
    hidden_size: int
    dtype: str
    seed: int
    params: dict[str, np.ndarray]
    cell: str = "rnn"
    num_layers: int = 1
    dropout: float = 0.0


@dataclass
class Checkpoint:
    """A checkpoint file read and validated: its model, its training state (None for a
    model-only file) and its metadata."""

    path: str
    model: ModelRecord
    state: TrainState | None
    meta: dict

    def error(self, msg: str) -> CheckpointError:
        """An error about this file (for what only building the model can find out)."""
        return CheckpointError(f"{self.path}: {msg}")


def read(path) -> Checkpoint:
    """Read and validate a checkpoint file into its parts.

    Parameters
    ----------
    path : str or os.PathLike

    Returns
    -------
    Checkpoint

    Raises
    ------
    CheckpointError
        Not a checkpoint, corrupt or truncated, an unknown format, a newer format
        version, missing keys, wrong shapes or dtypes, non-finite values.
    OSError
        The file cannot be opened (missing, a directory, no permission).
    """
    path = Path(os.fspath(path))
    r = _Reader(str(path))
    arrays, digested = _read_arrays(path, r)
    if "meta" not in arrays:
        raise r.fail("not a charrnn checkpoint (no 'meta' record)")
    m = arrays["meta"]
    if m.dtype != np.uint8 or m.ndim != 1:
        raise r.fail("not a charrnn checkpoint (bad 'meta' record)")
    try:
        meta = json.loads(m.tobytes().decode("utf-8"))
    except (UnicodeDecodeError, ValueError) as e:
        raise r.fail(f"its 'meta' record is not valid JSON: {e}") from None
    if not isinstance(meta, dict) or meta.get("format") != FORMAT:
        fmt = meta.get("format") if isinstance(meta, dict) else None
        raise r.fail(f"unknown format {fmt!r} (expected {FORMAT!r})")
    version = r.get(meta, "version", "int", "")
    if version > FORMAT_VERSION:
        raise r.fail(f"format version {version} is newer than this charrnn "
                     f"({__version__}) reads (<= {FORMAT_VERSION}); upgrade charrnn")
    if version < 1:
        raise r.fail(f"bad format version {version}")
    if version >= DIGEST_FROM_VERSION and not digested:
        raise r.fail("not a valid checkpoint (corrupt or truncated): its SHA-256 "
                     "record is missing or damaged")

    chars = r.get(meta, "vocab", "str", "")
    try:
        vocab = Vocab(chars)
    except (TypeError, ValueError) as e:
        raise r.fail(f"bad vocabulary: {e}") from None
    if vocab.chars != chars:
        raise r.fail("bad vocabulary: characters not in sorted order")
    mm = r.get(meta, "model", "dict", "")
    H = r.get(mm, "hidden_size", "int", "model.")
    V = len(vocab)
    if r.get(mm, "vocab_size", "int", "model.") != V:
        raise r.fail(f"model.vocab_size {mm['vocab_size']} != {V} vocabulary chars")
    dt = r.get(mm, "dtype", "str", "model.")
    if dt not in DTYPES:
        raise r.fail(f"bad model dtype {dt!r}")
    dtype = np.dtype(dt)
    seed = r.count(mm, "seed", "model.", optional=True) or 0
    if version >= 3:
        cell = r.get(mm, "cell", "str", "model.")
        if cell not in CELLS:
            raise r.fail(f"unknown cell {cell!r} (this charrnn ({__version__}) knows "
                         f"{', '.join(CELLS)}); upgrade charrnn")
        num_layers = r.get(mm, "num_layers", "int", "model.")
        try:
            dropout = check_dropout(r.get(mm, "dropout", "num", "model."))
        except (TypeError, ValueError) as e:
            raise r.fail(f"bad model: {e}") from None
    else:                                           # before version 3: min-char-rnn's cell
        cell, num_layers, dropout = "rnn", 1, 0.0
    try:
        layout = Layout(H, V, dt, cell, num_layers)
    except (TypeError, ValueError) as e:
        raise r.fail(f"bad model: {e}") from None
    params = {p.name: r.array(arrays, p.name, dtype, p.shape) for p in layout.params}
    record = ModelRecord(vocab, H, dt, seed, params, cell, num_layers, dropout)

    st = meta.get("state")
    if st is None:
        return Checkpoint(str(path), record, None, meta)
    if not isinstance(st, dict):
        raise r.fail("'state' must be a dict or null")
    # a config of version 1 or 2 has no cell, layers or dropout: the model's
    model_controls = {"cell": cell, "num_layers": num_layers, "dropout": dropout}
    try:
        config = TrainConfig.from_dict({**model_controls, **r.get(meta, "config", "dict", "")}
                                       ).validate()
    except (TypeError, ValueError) as e:
        raise r.fail(f"bad training config: {e}") from None
    if any(getattr(config, k) != v for k, v in
           dict(model_controls, hidden_size=H, dtype=dt).items()):
        raise r.fail("the training config does not match the model")
    om = r.get(meta, "optimizer", "dict", "")
    oname = r.get(om, "name", "str", "optimizer.")
    if oname not in OPTIMIZERS:
        raise r.fail(f"unknown optimizer {oname!r}")
    if oname != config.optimizer:
        raise r.fail(f"optimizer {oname!r} does not match the config's "
                     f"{config.optimizer!r}")
    lr = r.get(om, "lr", "num", "optimizer.")
    hyper = r.get(om, "hyper", "dict", "optimizer.")
    n = layout.size
    try:
        opt = make_optimizer(oname, n, dtype, lr, **{k: float(v) for k, v in hyper.items()})
    except (TypeError, ValueError) as e:
        raise r.fail(f"bad optimizer settings: {e}") from None
    opt.t = r.count(om, "t", "optimizer.")
    for slot in opt.slots:
        opt.state[slot] = r.array(arrays, f"opt.{slot}", dtype, (n,))
    world_size = r.count(st, "world_size", "state.", optional=True)
    if world_size is None:                          # written by a single process
        world_size = 1
    if world_size < 1:
        raise r.fail(f"state.'world_size' must be >= 1, got {world_size}")
    h = r.array(arrays, "h", dtype, (world_size * config.batch_size, layout.state_size))
    rng_state = r.get(st, "rng_state", "dict", "state.")
    try:
        np.random.default_rng().bit_generator.state = rng_state
    except Exception as e:
        raise r.fail(f"bad RNG state: {e}") from None
    best = r.get(st, "best_val_loss", "num", "state.", optional=True)
    state = TrainState(
        config=config, optimizer=opt, h=h,
        step=r.count(st, "step", "state."), epoch=r.count(st, "epoch", "state."),
        position=r.count(st, "position", "state."),
        chars_seen=r.count(st, "chars_seen", "state."),
        elapsed=float(r.get(st, "elapsed", "num", "state.")),
        best_val_loss=None if best is None else float(best),
        best_step=r.count(st, "best_step", "state.", optional=True),
        bad_evals=r.count(st, "bad_evals", "state."),
        rng_state=rng_state, corpus=r.get(st, "corpus", "dict", "state."),
        world_size=world_size)
    return Checkpoint(str(path), record, state, meta)
