"""Corpus and batching: reading text, encoding it to ids, the validation split, B streams.

A text is read as UTF-8 (a leading BOM dropped, line endings kept unless asked to
normalise them) or as latin-1 bytes. It is read in chunks, never whole: a first pass
finds the vocabulary, a second writes the ids in the smallest unsigned dtype that holds V.
Files above ``CACHE_THRESHOLD`` bytes are encoded once into an id file in a cache
directory, keyed by a hash of the file's content, and memory-mapped, so training memory
does not grow with the corpus. Smaller texts are held in memory.

:class:`Batches` cuts the training ids into B contiguous streams and hands out the next
T ids of every stream per step: with B = 1 it is exactly min-char-rnn's walk over the text.
"""

from __future__ import annotations

import codecs
import hashlib
import io
import json
import mmap
import os
import sysconfig
from collections.abc import Iterator
from pathlib import Path

import numpy as np

from .atomic import write_atomic
from .config import STDLIB_CHARS
from .errors import CorpusError
from .vocab import Vocab

READ_CHUNK = 1 << 20            # bytes read per chunk
CACHE_THRESHOLD = 8 << 20       # files larger than this go through the id cache
CACHE_FORMAT = 1
ENCODINGS = ("utf-8", "latin-1")
_NCP = 0x110000                 # the number of Unicode code points
_STDLIB_SKIP = {"test", "tests", "idle_test", "site-packages", "dist-packages",
                "__pycache__", "turtledemo"}


def default_cache_dir() -> Path:
    """``$CHARRNN_CACHE_DIR``, else ``$XDG_CACHE_HOME/charrnn``, else ``~/.cache/charrnn``."""
    env = os.environ.get("CHARRNN_CACHE_DIR")
    if env:
        return Path(env)
    xdg = os.environ.get("XDG_CACHE_HOME")
    return (Path(xdg) if xdg else Path.home() / ".cache") / "charrnn"


def _check_encoding(encoding: str) -> str:
    enc = str(encoding).lower().replace("_", "-")
    enc = {"utf8": "utf-8", "latin1": "latin-1", "iso-8859-1": "latin-1",
           "bytes": "latin-1"}.get(enc, enc)
    if enc not in ENCODINGS:
        raise ValueError(f"encoding must be 'utf-8' or 'latin-1', not {encoding!r}")
    return enc


# ----------------------------------------------------------------------------- reading

def _normalize(piece, carry_cr: bool, final: bool):
    """CRLF and lone CR to LF in a str or bytes chunk; a trailing CR waits for the next."""
    cr, lf = ("\r", "\n") if isinstance(piece, str) else (b"\r", b"\n")
    if carry_cr:
        piece = cr + piece
    carry = bool(piece) and piece[-1:] == cr and not final
    if carry:
        piece = piece[:-1]
    return piece.replace(cr + lf, lf).replace(cr, lf), carry


def iter_codepoints(f, encoding: str = "utf-8", normalize_newlines: bool = False,
                    name: str = "<text>", chunk_size: int = READ_CHUNK
                    ) -> Iterator[np.ndarray]:
    """Code points of a binary file, one array per chunk (uint8 when a chunk is ASCII).

    Raises
    ------
    CorpusError
        The file is not valid UTF-8; the message names the byte offset.
    """
    utf8 = _check_encoding(encoding) == "utf-8"
    dec = codecs.getincrementaldecoder("utf-8")("strict") if utf8 else None
    offset = 0                   # file offset of the chunk being decoded
    at_start = True              # nothing decoded yet: a BOM here is dropped
    carry_cr = False
    while True:
        b = f.read(chunk_size)
        final = not b
        if utf8:
            pending = dec.getstate()[0]
            if not pending and not at_start and b.isascii():
                piece = b                                       # fast path: bytes are chars
            else:
                try:
                    piece = dec.decode(b, final)
                except UnicodeDecodeError as e:
                    pos = offset - len(pending) + e.start
                    raise CorpusError(
                        f"{name}: not valid UTF-8 at byte offset {pos} ({e.reason}); "
                        f"decode it as latin-1 bytes instead (--encoding latin-1)") from None
                if at_start and piece:
                    at_start = False
                    if piece[0] == "\ufeff":
                        piece = piece[1:]
        else:
            piece = b
        offset += len(b)
        if normalize_newlines:
            piece, carry_cr = _normalize(piece, carry_cr, final)
        if piece:
            if isinstance(piece, bytes):
                yield np.frombuffer(piece, np.uint8)
            else:
                yield np.frombuffer(piece.encode("utf-32-le"), "<u4")
        if final:
            return


def _open(path) -> tuple[io.BufferedReader, str]:
    path = os.fspath(path)
    if os.path.isdir(path):
        raise IsADirectoryError(f"{path} is a directory, not a text file")
    return open(path, "rb"), path


def read_text(path, encoding: str = "utf-8", normalize_newlines: bool = False) -> str:
    """The whole text of a (small) file, read the way corpora are read.

    Parameters
    ----------
    path : str or os.PathLike
    encoding : {"utf-8", "latin-1"}
        UTF-8 drops a leading BOM and rejects invalid bytes naming their offset.
    normalize_newlines : bool
        Turn CRLF and CR into LF.
    """
    f, name = _open(path)
    with f:
        parts = [(c.astype("<u4") if c.dtype != np.dtype("<u4") else c).tobytes()
                 for c in iter_codepoints(f, encoding, normalize_newlines, name)]
    return b"".join(parts).decode("utf-32-le")


def _sha256_file(f, chunk_size: int = READ_CHUNK) -> str:
    h = hashlib.sha256()
    for b in iter(lambda: f.read(chunk_size), b""):
        h.update(b)
    return h.hexdigest()


def _scan(f, encoding, normalize_newlines, name, chunk_size) -> tuple[np.ndarray, int]:
    """First pass: the set of code points (a bool mask) and the number of characters."""
    seen = np.zeros(_NCP, bool)
    n = 0
    for cps in iter_codepoints(f, encoding, normalize_newlines, name, chunk_size):
        n += cps.size
        if cps.dtype == np.uint8:
            seen[:256] |= np.bincount(cps, minlength=256) > 0
        else:
            seen[cps] = True
    return seen, n


def _lut(vocab: Vocab) -> np.ndarray:
    """Code point -> id, with V for characters outside the vocabulary."""
    V = len(vocab)
    lut = np.full(_NCP, V, np.uint32)
    lut[vocab._cps] = np.arange(V, dtype=np.uint32)
    return lut


def _unknown_error(name: str, chars) -> CorpusError:
    chars = sorted(chars)
    return CorpusError(f"{name} has {len(chars)} character(s) not in the model's vocabulary: "
                       + ", ".join(repr(c) for c in chars[:20])
                       + (" ..." if len(chars) > 20 else ""))


def _encode_stream(f, vocab, encoding, normalize_newlines, name, chunk_size, sink) -> int:
    """Second pass: write the ids of every chunk to ``sink(ids)``; return the count."""
    lut, V, dt = _lut(vocab), len(vocab), vocab.dtype
    n = 0
    for cps in iter_codepoints(f, encoding, normalize_newlines, name, chunk_size):
        ids = lut[cps]
        if ids.max() >= V:
            raise _unknown_error(name, {chr(c) for c in cps[ids >= V]})
        sink(ids.astype(dt, copy=False))
        n += ids.size
    return n


# ----------------------------------------------------------------------------- corpus

class Corpus:
    """A text as ids over a vocabulary, with the validation split.

    Build one with :meth:`from_text`, :meth:`from_file`, :meth:`stdlib` or :func:`load`.

    Attributes
    ----------
    vocab : Vocab
    ids : ndarray, (n,)
        The ids of the whole text (read-only, memory-mapped for cached files).
    source : str
        The file path, ``"<text>"`` or ``"<stdlib>"``.
    sha256 : str
        A hash of the content (the file's bytes, or the text's UTF-8).
    encoding : str
    normalize_newlines : bool
    cache_path : Path or None
        The id file when the ids are memory-mapped.
    """

    def __init__(self, vocab: Vocab, ids: np.ndarray, source: str, sha256: str,
                 encoding: str = "utf-8", normalize_newlines: bool = False,
                 cache_path: Path | None = None, mm: mmap.mmap | None = None) -> None:
        self.vocab, self.ids, self.source, self.sha256 = vocab, ids, source, sha256
        self.encoding, self.normalize_newlines = encoding, normalize_newlines
        self.cache_path, self._mmap = cache_path, mm

    def __len__(self) -> int:
        return int(self.ids.size)

    def __repr__(self) -> str:
        return (f"Corpus({self.source!r}, {len(self):,} chars, V={len(self.vocab)}"
                f"{', memory-mapped' if self._mmap is not None else ''})")

    @property
    def fingerprint(self) -> dict:
        """What identifies this text in a checkpoint."""
        return {"source": self.source, "sha256": self.sha256, "chars": len(self),
                "encoding": self.encoding, "normalize_newlines": self.normalize_newlines}

    def text(self, start: int = 0, stop: int | None = None) -> str:
        """The characters ``[start:stop]`` (for small ranges)."""
        return self.vocab.decode(self.ids[start:stop])

    def split(self, val_fraction: float = 0.1) -> tuple[np.ndarray, np.ndarray]:
        """``(train_ids, val_ids)``: views; validation is the last ``val_fraction``.

        The cut is at ``int(n * (1 - val_fraction))``, as nanoGPT's shakespeare_char.
        """
        if not 0 <= val_fraction < 1:
            raise ValueError(f"val_fraction must be in [0, 1), got {val_fraction}")
        cut = int(len(self) * (1 - val_fraction))
        return self.ids[:cut], self.ids[cut:]

    def release_pages(self) -> None:
        """Drop this process's mapped pages of the id file (they stay in the page cache).

        Each page fault maps a whole block of the file around it (about 1 MB on current
        Linux kernels), and mapped pages count in the RSS until unmapped: without this, a
        long run over a large file would slowly count the whole file. Training calls it
        every few hundred steps, so the mapped part stays near B such blocks.
        """
        if self._mmap is not None and hasattr(self._mmap, "madvise"):
            try:
                self._mmap.madvise(mmap.MADV_DONTNEED)
            except (OSError, ValueError, AttributeError):
                pass

    # ------------------------------------------------------------------ builders

    @classmethod
    def from_text(cls, text: str, vocab: Vocab | None = None, source: str = "<text>",
                  normalize_newlines: bool = False) -> "Corpus":
        """A corpus of an in-memory string (a leading BOM is kept: it is the caller's).

        Raises ``CorpusError`` for an empty text or, with ``vocab``, characters outside it.
        """
        if not isinstance(text, str):
            raise TypeError(f"text must be a str, not {type(text).__name__}")
        if normalize_newlines:
            text = text.replace("\r\n", "\n").replace("\r", "\n")
        if not text:
            raise CorpusError(f"{source} is empty: there is nothing to train on")
        sha = hashlib.sha256(text.encode("utf-8", "surrogatepass")).hexdigest()
        if vocab is None:
            vocab = Vocab.from_text(text)
        unknown = vocab.unknown(text)
        if unknown:
            raise _unknown_error(source, unknown)
        ids = vocab.encode(text)
        ids.flags.writeable = False
        return cls(vocab, ids, source, sha, "utf-8", normalize_newlines)

    @classmethod
    def from_file(cls, path, vocab: Vocab | None = None, encoding: str = "utf-8",
                  normalize_newlines: bool = False, cache_dir=None,
                  cache_threshold: int = CACHE_THRESHOLD,
                  chunk_size: int = READ_CHUNK) -> "Corpus":
        """A corpus of a text file, streamed; large files are cached and memory-mapped.

        Parameters
        ----------
        path : str or os.PathLike
        vocab : Vocab, optional
            Encode with this vocabulary (a model's); characters outside it are an error.
            By default the vocabulary is the sorted set of the file's code points.
        encoding : {"utf-8", "latin-1"}
        normalize_newlines : bool
        cache_dir : str or os.PathLike, optional
            Where id files go (:func:`default_cache_dir` by default).
        cache_threshold : int
            Files of at most this many bytes are encoded in memory instead.

        Raises
        ------
        FileNotFoundError, IsADirectoryError
        CorpusError
            Invalid UTF-8 (naming the byte offset), an empty file, unknown characters.
        """
        encoding = _check_encoding(encoding)
        f, name = _open(path)
        with f:
            size = os.fstat(f.fileno()).st_size
            sha = _sha256_file(f, chunk_size)
            f.seek(0)
            cached = size > cache_threshold
            if cached:
                cdir = Path(cache_dir) if cache_dir is not None else default_cache_dir()
                key = hashlib.sha256(f"charrnn-ids/{CACHE_FORMAT}/{sha}/{encoding}/"
                                     f"{int(normalize_newlines)}".encode()).hexdigest()[:32]
                meta = _read_meta(cdir / f"{key}.json")
            else:
                meta = None
            if meta is None:
                seen, n = _scan(f, encoding, normalize_newlines, name, chunk_size)
                if n == 0:
                    raise CorpusError(f"{name} is empty: there is nothing to train on")
                own = "".join(chr(c) for c in np.flatnonzero(seen))
                meta = {"format": CACHE_FORMAT, "chars": n, "vocab": own}
                if cached:
                    write_atomic(cdir / f"{key}.json",
                                 lambda out: out.write(json.dumps(meta).encode()),
                                 durable=False)
                f.seek(0)
            n, own = meta["chars"], meta["vocab"]
            if vocab is None:
                vocab = Vocab(own)
            else:
                missing = set(own) - set(vocab.chars)
                if missing:
                    raise _unknown_error(name, missing)
            if not cached:
                ids = np.empty(n, vocab.dtype)
                pos = 0

                def sink(chunk):
                    nonlocal pos
                    ids[pos:pos + chunk.size] = chunk
                    pos += chunk.size
                _encode_stream(f, vocab, encoding, normalize_newlines, name, chunk_size, sink)
                ids.flags.writeable = False
                return cls(vocab, ids, os.path.abspath(name), sha, encoding,
                           normalize_newlines)
            vkey = hashlib.sha256(vocab.chars.encode("utf-32-le")).hexdigest()[:16]
            ids_path = cdir / f"{key}-{vkey}.{vocab.dtype.name}"
            mm = _map_ids(ids_path, n, vocab.dtype)
            if mm is None:
                _encode_to_file(f, ids_path, vocab, encoding, normalize_newlines, name,
                                chunk_size)
                mm = _map_ids(ids_path, n, vocab.dtype)
                if mm is None:
                    raise CorpusError(f"the id file {ids_path} does not hold {n} ids after "
                                      f"encoding {name}")
        ids = np.frombuffer(mm, dtype=vocab.dtype)
        return cls(vocab, ids, os.path.abspath(name), sha, encoding, normalize_newlines,
                   ids_path, mm)

    @classmethod
    def stdlib(cls, max_chars: int = STDLIB_CHARS, vocab: Vocab | None = None) -> "Corpus":
        """The built-in corpus: Python's standard-library source (:func:`stdlib_text`)."""
        return cls.from_text(stdlib_text(max_chars), vocab=vocab, source="<stdlib>")


def _read_meta(path: Path) -> dict | None:
    try:
        meta = json.loads(path.read_text("utf-8"))
    except (OSError, ValueError):
        return None
    if (not isinstance(meta, dict) or meta.get("format") != CACHE_FORMAT
            or not isinstance(meta.get("chars"), int) or meta["chars"] < 1
            or not isinstance(meta.get("vocab"), str) or not meta["vocab"]):
        return None
    return meta


def _map_ids(path: Path, n: int, dtype: np.dtype) -> mmap.mmap | None:
    """Map an id file read-only if it holds exactly ``n`` ids of ``dtype``."""
    try:
        with open(path, "rb") as f:
            if os.fstat(f.fileno()).st_size != n * dtype.itemsize:
                return None
            return mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ)
    except (OSError, ValueError):
        return None


def _encode_to_file(f, path: Path, vocab, encoding, normalize_newlines, name,
                    chunk_size) -> None:
    """Stream the ids into ``path``, atomically (a cache: no fsync)."""
    def write(out) -> None:
        _encode_stream(f, vocab, encoding, normalize_newlines, name, chunk_size,
                       lambda ids: out.write(memoryview(ids).cast("B")))
    write_atomic(path, write, durable=False)


# ----------------------------------------------------------------------------- stdlib

def stdlib_files(root: str | os.PathLike | None = None) -> list[Path]:
    """The ASCII ``.py`` files of the standard library, in a fixed (sorted) order.

    Tests, site-packages and demo folders are left out. ASCII only keeps the vocabulary
    near 100 characters whatever a few modules' docstrings hold.
    """
    root = Path(root if root is not None else sysconfig.get_paths()["stdlib"])
    found = []
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames[:] = sorted(d for d in dirnames if d not in _STDLIB_SKIP)
        for fn in filenames:
            if fn.endswith(".py"):
                found.append(Path(dirpath, fn))
    return sorted(found, key=lambda p: p.relative_to(root).as_posix())


def stdlib_text(max_chars: int = STDLIB_CHARS, root=None) -> str:
    """The built-in corpus: whole standard-library source files up to ``max_chars``.

    Every Python installation has these files, so ``charrnn train`` with no file works
    offline. Files are taken in sorted path order until the total reaches ``max_chars``.
    """
    parts, total = [], 0
    for p in stdlib_files(root):
        if total >= max_chars:
            break
        try:
            b = p.read_bytes()
        except OSError:
            continue
        if not b or not b.isascii():
            continue
        s = b.decode("ascii").replace("\r\n", "\n")
        parts.append(s)
        total += len(s)
    if not parts:
        raise CorpusError("found no Python standard library source files to train on; "
                          "give a text file")
    return "".join(parts)


# ----------------------------------------------------------------------------- loading

def load(data=None, *, vocab: Vocab | None = None, encoding: str = "utf-8",
         normalize_newlines: bool = False, cache_dir=None,
         cache_threshold: int = CACHE_THRESHOLD) -> Corpus:
    """A :class:`Corpus` from whatever names a text.

    Parameters
    ----------
    data : Corpus, str, os.PathLike or None
        A ``Corpus`` as it is; a path (``os.PathLike``, or a ``str`` naming an existing
        file) is read from disk; any other ``str`` is the text itself; ``None`` is the
        built-in standard-library corpus.
    """
    if isinstance(data, Corpus):
        if vocab is not None and data.vocab != vocab:
            raise CorpusError(f"{data.source} was encoded with another vocabulary than "
                              f"the model's")
        return data
    if data is None:
        return Corpus.stdlib(vocab=vocab)
    if isinstance(data, (bytes, bytearray)):
        raise TypeError("give a text as str (or a path), not bytes")
    is_path = isinstance(data, os.PathLike) or (
        isinstance(data, str) and 0 < len(data) < 4096 and "\n" not in data
        and "\0" not in data and os.path.isfile(data))
    if is_path:
        return Corpus.from_file(data, vocab=vocab, encoding=encoding,
                                normalize_newlines=normalize_newlines, cache_dir=cache_dir,
                                cache_threshold=cache_threshold)
    if not isinstance(data, str):
        raise TypeError(f"data must be a text (str), a path or a Corpus, "
                        f"not {type(data).__name__}")
    return Corpus.from_text(data, vocab=vocab, normalize_newlines=normalize_newlines)


# ----------------------------------------------------------------------------- batching

class Batches:
    """The training ids cut into B contiguous streams, T steps at a time.

    Stream ``b`` is ``ids[b*S:(b+1)*S]`` with ``S = len(ids) // B``. Each step takes ids
    ``[p, p+T)`` of every stream as inputs and ``[p+1, p+T+1)`` as targets, then moves
    ``p`` on by T. When ``p + T + 1 >= S`` the walk restarts at 0 and the carried state
    must be reset: min-char-rnn's rule, so with B = 1 this is exactly its walk.

    Parameters
    ----------
    ids : ndarray, (N,)
    batch_size, seq_length : int
        B and T.
    position : int
        Where the next step starts in every stream (from a checkpoint).
    epoch : int
        Completed passes (from a checkpoint).
    """

    def __init__(self, ids: np.ndarray, batch_size: int, seq_length: int,
                 position: int = 0, epoch: int = 0) -> None:
        B, T = int(batch_size), int(seq_length)
        N = int(ids.size)
        S = N // B
        if S < T + 2:
            raise CorpusError(
                f"the training text is too short: {N:,} characters cannot make {B} "
                f"stream(s) of at least seq_length + 2 = {T + 2}; it needs at least "
                f"{B * (T + 2):,} (use a longer text or a smaller --batch-size or "
                f"--seq-length)")
        self.B, self.T, self.S = B, T, S
        self.streams = ids[:B * S].reshape(B, S)              # a view, never a copy
        self.position = int(position) if 0 <= position <= S else 0
        self.epoch = int(epoch)

    @property
    def steps_per_epoch(self) -> int:
        return (self.S - self.T - 2) // self.T + 1

    def next_into(self, X: np.ndarray, Y: np.ndarray) -> bool:
        """Fill the int32 (B, T) buffers with the next chunk; True if the walk restarted
        (the carried state must then be zeroed)."""
        p, T = self.position, self.T
        restart = p + T + 1 >= self.S
        if restart:
            p = 0
            self.epoch += 1
        np.copyto(X, self.streams[:, p:p + T], casting="unsafe")
        np.copyto(Y, self.streams[:, p + 1:p + T + 1], casting="unsafe")
        self.position = p + T
        return restart

