"""Code points to ids: the vocabulary scan and the encoding pass over a file's chunks.

A file is read twice, in chunks (:func:`charrnn.data.text.iter_pieces`): :func:`scan`
finds its characters, :func:`encode_stream` turns each chunk into ids of a vocabulary in
its smallest unsigned dtype and hands them to a sink (an array being filled, or an id file).
"""

from __future__ import annotations

import numpy as np

from ..errors import CorpusError
from .text import codepoints, iter_pieces
from .vocab import Vocab, id_dtype

_NCP = 0x110000                 # the number of Unicode code points


def scan(f, encoding, normalize_newlines, name, chunk_size) -> tuple[str, int]:
    """First pass: the distinct characters of a file, sorted, and its length in characters.

    A ``bytes`` piece is scanned with ``bytes.translate``: deleting the byte values
    already seen leaves only the new ones, usually none.
    """
    seen = np.zeros(_NCP, bool)
    seen_bytes = b""             # the byte values seen in bytes pieces
    n = 0
    for piece in iter_pieces(f, encoding, normalize_newlines, name, chunk_size):
        n += len(piece)
        if isinstance(piece, bytes):
            new = piece.translate(None, seen_bytes)
            if new:
                seen_bytes += bytes(np.flatnonzero(np.bincount(
                    np.frombuffer(new, np.uint8), minlength=256)).astype(np.uint8))
        else:
            seen[codepoints(piece).astype(np.intp)] = True      # faster than a u4 index
    seen[np.frombuffer(seen_bytes, np.uint8)] = True
    return "".join(chr(c) for c in np.flatnonzero(seen)), n


def _lut(vocab: Vocab) -> np.ndarray:
    """Code point -> id, with V for characters outside the vocabulary.

    Its dtype is the smallest that holds V: the vocabulary's own unless V is 256 or 65536.
    """
    V = len(vocab)
    lut = np.full(_NCP, V, id_dtype(V + 1))
    lut[vocab._cps] = np.arange(V)
    return lut


def empty_error(name: str) -> CorpusError:
    """The error for text ``name`` that holds no character (for training or for scoring)."""
    return CorpusError(f"{name} is empty: it holds no text")


def unknown_error(name: str, chars) -> CorpusError:
    """The error for characters of text ``name`` that the model's vocabulary lacks."""
    chars = sorted(chars)
    return CorpusError(f"{name} has {len(chars)} character(s) not in the model's vocabulary: "
                       + ", ".join(repr(c) for c in chars[:20])
                       + (" ..." if len(chars) > 20 else ""))


def encode_stream(f, vocab, encoding, normalize_newlines, name, chunk_size, sink) -> int:
    """Second pass: write the ids of every chunk to ``sink(ids)``; return the count.

    While V < 256, a ``bytes`` piece is mapped by ``bytes.translate`` with the first 256
    entries of the code point -> id table (V marking a byte outside the vocabulary);
    every other piece by indexing the table.

    Raises
    ------
    CorpusError
        A character outside ``vocab`` (see :func:`unknown_error`).
    """
    lut, V, dt = _lut(vocab), len(vocab), vocab.dtype
    byte_table = lut[:256].tobytes() if V < 256 else None
    n = 0
    for piece in iter_pieces(f, encoding, normalize_newlines, name, chunk_size):
        if byte_table is not None and isinstance(piece, bytes):
            cps = None
            ids = piece.translate(byte_table)
            bad = V in ids                                  # a memchr
            ids = np.frombuffer(ids, np.uint8)
        else:
            cps = codepoints(piece)
            ids = lut.take(cps)
            bad = ids.max() >= V
        if bad:
            cps = codepoints(piece) if cps is None else cps
            raise unknown_error(name, {chr(c) for c in cps[ids >= V]})
        sink(ids.astype(dt, copy=False))
        n += ids.size
    return n
