"""Reading text files: UTF-8 (a leading BOM dropped) or latin-1 bytes, in chunks.

Line endings are kept unless asked to normalise them (CRLF and lone CR to LF). A file is
read in chunks, never whole, as pieces of text: ``bytes`` where each byte is a character,
else ``str``, what the vocabulary scan and the id encoding (:mod:`charrnn.data.encode`)
consume; or as arrays of code points.
"""

from __future__ import annotations

import codecs
import hashlib
import io
import os
from collections.abc import Iterator

import numpy as np

from ..config import ENCODINGS
from ..errors import CorpusError

READ_CHUNK = 1 << 20            # bytes read per chunk


def check_encoding(encoding: str) -> str:
    """The canonical name of ``encoding`` ("utf-8" or "latin-1"); ``ValueError`` if neither."""
    enc = str(encoding).lower().replace("_", "-")
    enc = {"utf8": "utf-8", "latin1": "latin-1", "iso-8859-1": "latin-1",
           "bytes": "latin-1"}.get(enc, enc)
    if enc not in ENCODINGS:
        raise ValueError(f"encoding must be 'utf-8' or 'latin-1', not {encoding!r}")
    return enc


def _normalize(piece, carry_cr: bool, final: bool):
    """CRLF and lone CR to LF in a str or bytes chunk; a trailing CR waits for the next."""
    cr, lf = ("\r", "\n") if isinstance(piece, str) else (b"\r", b"\n")
    if carry_cr:
        piece = cr + piece
    carry = bool(piece) and piece[-1:] == cr and not final
    if carry:
        piece = piece[:-1]
    return piece.replace(cr + lf, lf).replace(cr, lf), carry


def iter_pieces(f, encoding: str = "utf-8", normalize_newlines: bool = False,
                name: str = "<text>", chunk_size: int = READ_CHUNK) -> Iterator[bytes | str]:
    """The text of a binary file, one piece per chunk read.

    A piece is ``bytes`` when each of its bytes is one character (an ASCII piece of a
    UTF-8 file, or any latin-1 piece), else the decoded ``str``. Pieces are never empty.

    Raises
    ------
    CorpusError
        The file is not valid UTF-8; the message names the byte offset.
    """
    utf8 = check_encoding(encoding) == "utf-8"
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
                if piece.isascii():
                    piece = piece.encode("ascii")
        else:
            piece = b
        offset += len(b)
        if normalize_newlines:
            piece, carry_cr = _normalize(piece, carry_cr, final)
        if piece:
            yield piece
        if final:
            return


def codepoints(piece: bytes | str) -> np.ndarray:
    """The code points of a piece of :func:`iter_pieces`: uint8 for bytes, else ``<u4``."""
    if isinstance(piece, bytes):
        return np.frombuffer(piece, np.uint8)
    return np.frombuffer(piece.encode("utf-32-le"), "<u4")


def iter_codepoints(f, encoding: str = "utf-8", normalize_newlines: bool = False,
                    name: str = "<text>", chunk_size: int = READ_CHUNK
                    ) -> Iterator[np.ndarray]:
    """Code points of a binary file, one array per chunk (uint8 when a chunk is ASCII).

    The pieces of :func:`iter_pieces` as arrays (:func:`codepoints`).

    Raises
    ------
    CorpusError
        The file is not valid UTF-8; the message names the byte offset.
    """
    for piece in iter_pieces(f, encoding, normalize_newlines, name, chunk_size):
        yield codepoints(piece)


def open_text(path) -> tuple[io.BufferedReader, str]:
    """The file at ``path`` opened for binary reading, and its name for messages."""
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
    f, name = open_text(path)
    with f:
        parts = [(c.astype("<u4") if c.dtype != np.dtype("<u4") else c).tobytes()
                 for c in iter_codepoints(f, encoding, normalize_newlines, name)]
    return b"".join(parts).decode("utf-32-le")


def sha256_file(f, chunk_size: int = READ_CHUNK) -> str:
    """The SHA-256 of the rest of the binary file ``f``, read in chunks."""
    h = hashlib.sha256()
    for b in iter(lambda: f.read(chunk_size), b""):
        h.update(b)
    return h.hexdigest()
