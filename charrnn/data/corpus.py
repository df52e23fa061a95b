"""The corpus: a text as ids over a vocabulary, with the validation split.

:meth:`Corpus.from_text` encodes a string in memory; :meth:`Corpus.from_file` streams a
file (:mod:`charrnn.data.text`) in two passes, the vocabulary scan and the encoding
(:mod:`charrnn.data.encode`), into memory or, for a large file, into a memory-mapped id
file (:mod:`charrnn.data.cache`), so training memory does not grow with the corpus.
:func:`load` takes whatever names a text: a path, a string, a Corpus, or None for the
built-in corpus (:mod:`charrnn.data.stdlib`).
"""

from __future__ import annotations

import hashlib
import mmap
import os
from pathlib import Path

import numpy as np

from ..config import STDLIB_CHARS, VAL_FRACTION
from ..errors import CorpusError
from .cache import CACHE_THRESHOLD, IdCache
from .encode import empty_error, encode_stream, scan, unknown_error
from .stdlib import stdlib_text
from .text import READ_CHUNK, check_encoding, open_text, sha256_file
from .vocab import Vocab


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

    def split(self, val_fraction: float = VAL_FRACTION) -> tuple[np.ndarray, np.ndarray]:
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
            raise empty_error(source)
        sha = hashlib.sha256(text.encode("utf-8", "surrogatepass")).hexdigest()
        if vocab is None:
            vocab = Vocab.from_text(text)
        unknown = vocab.unknown(text)
        if unknown:
            raise unknown_error(source, unknown)
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
            Where id files go (:func:`~charrnn.data.cache.default_cache_dir` by default).
        cache_threshold : int
            Files of at most this many bytes are encoded in memory instead.

        Raises
        ------
        FileNotFoundError, IsADirectoryError
        CorpusError
            Invalid UTF-8 (naming the byte offset), an empty file, unknown characters.
        """
        encoding = check_encoding(encoding)
        f, name = open_text(path)
        with f:
            size = os.fstat(f.fileno()).st_size
            sha = sha256_file(f, chunk_size)
            f.seek(0)
            cache = (IdCache(cache_dir, sha, encoding, normalize_newlines)
                     if size > cache_threshold else None)
            known = cache.read_meta() if cache is not None else None
            if known is None:
                own, n = scan(f, encoding, normalize_newlines, name, chunk_size)
                if n == 0:
                    raise empty_error(name)
                if cache is not None:
                    cache.write_meta(n, own)
                f.seek(0)
            else:
                n, own = known
            if vocab is None:
                vocab = Vocab(own)
            else:
                missing = set(own) - set(vocab.chars)
                if missing:
                    raise unknown_error(name, missing)
            source = os.path.abspath(name)
            if cache is None:
                ids = np.empty(n, vocab.dtype)
                pos = 0

                def sink(chunk):
                    nonlocal pos
                    ids[pos:pos + chunk.size] = chunk
                    pos += chunk.size
                encode_stream(f, vocab, encoding, normalize_newlines, name, chunk_size, sink)
                ids.flags.writeable = False
                return cls(vocab, ids, source, sha, encoding, normalize_newlines)
            mm = cache.map_ids(vocab, n)
            if mm is None:
                cache.write_ids(f, vocab, encoding, normalize_newlines, name, chunk_size)
                mm = cache.map_ids(vocab, n)
                if mm is None:
                    raise CorpusError(f"the id file {cache.ids_path(vocab)} does not hold "
                                      f"{n} ids after encoding {name}")
        return cls(vocab, np.frombuffer(mm, dtype=vocab.dtype), source, sha, encoding,
                   normalize_newlines, cache.ids_path(vocab), mm)

    @classmethod
    def stdlib(cls, max_chars: int = STDLIB_CHARS, vocab: Vocab | None = None) -> "Corpus":
        """The built-in corpus: Python's standard-library source (:func:`stdlib_text`)."""
        return cls.from_text(stdlib_text(max_chars), vocab=vocab, source="<stdlib>")


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
