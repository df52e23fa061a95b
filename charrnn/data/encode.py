"""Code points to ids: the vocabulary scan and the encoding pass over a file's chunks.

A file is read twice, in chunks (:func:`charrnn.data.text.iter_codepoints`): :func:`scan`
finds its characters, :func:`encode_stream` turns each chunk into ids of a vocabulary in
its smallest unsigned dtype and hands them to a sink (an array being filled, or an id file).
"""

from __future__ import annotations

import numpy as np

from ..errors import CorpusError
from .text import iter_codepoints
from .vocab import Vocab

_NCP = 0x110000                 # the number of Unicode code points


def scan(f, encoding, normalize_newlines, name, chunk_size) -> tuple[str, int]:
    """First pass: the distinct characters of a file, sorted, and its length in characters."""
    seen = np.zeros(_NCP, bool)
    n = 0
    for cps in iter_codepoints(f, encoding, normalize_newlines, name, chunk_size):
        n += cps.size
        if cps.dtype == np.uint8:
            seen[:256] |= np.bincount(cps, minlength=256) > 0
        else:
            seen[cps] = True
    return "".join(chr(c) for c in np.flatnonzero(seen)), n


def _lut(vocab: Vocab) -> np.ndarray:
    """Code point -> id, with V for characters outside the vocabulary."""
    V = len(vocab)
    lut = np.full(_NCP, V, np.uint32)
    lut[vocab._cps] = np.arange(V, dtype=np.uint32)
    return lut


def unknown_error(name: str, chars) -> CorpusError:
    """The error for characters of text ``name`` that the model's vocabulary lacks."""
    chars = sorted(chars)
    return CorpusError(f"{name} has {len(chars)} character(s) not in the model's vocabulary: "
                       + ", ".join(repr(c) for c in chars[:20])
                       + (" ..." if len(chars) > 20 else ""))


def encode_stream(f, vocab, encoding, normalize_newlines, name, chunk_size, sink) -> int:
    """Second pass: write the ids of every chunk to ``sink(ids)``; return the count.

    Raises
    ------
    CorpusError
        A character outside ``vocab`` (see :func:`unknown_error`).
    """
    lut, V, dt = _lut(vocab), len(vocab), vocab.dtype
    n = 0
    for cps in iter_codepoints(f, encoding, normalize_newlines, name, chunk_size):
        ids = lut[cps]
        if ids.max() >= V:
            raise unknown_error(name, {chr(c) for c in cps[ids >= V]})
        sink(ids.astype(dt, copy=False))
        n += ids.size
    return n
