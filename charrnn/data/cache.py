"""The id cache: large texts encoded once into an id file, then memory-mapped.

A text file above ``CACHE_THRESHOLD`` bytes gets two files in the cache directory, both
named by a hash of the file's content and of how it is read (encoding, newlines):

- ``KEY.json``: its length in characters and its characters (so a second run skips the
  vocabulary scan);
- ``KEY-VKEY.DTYPE``: its ids over one vocabulary (VKEY), raw, in the vocabulary's dtype.

Both are written atomically (:func:`charrnn.atomic.write_atomic`) but not fsynced: a file
lost to a crash is only encoded again. A file of the wrong size or content is ignored and
rewritten, so a damaged cache costs time, never correctness.
"""

from __future__ import annotations

import hashlib
import json
import mmap
import os
from pathlib import Path

from ..atomic import write_atomic
from .encode import encode_stream
from .vocab import Vocab

CACHE_THRESHOLD = 8 << 20       # files larger than this go through the id cache
CACHE_FORMAT = 1


def default_cache_dir() -> Path:
    """``$CHARRNN_CACHE_DIR``, else ``$XDG_CACHE_HOME/charrnn``, else ``~/.cache/charrnn``."""
    env = os.environ.get("CHARRNN_CACHE_DIR")
    if env:
        return Path(env)
    xdg = os.environ.get("XDG_CACHE_HOME")
    return (Path(xdg) if xdg else Path.home() / ".cache") / "charrnn"


class IdCache:
    """The cache entries of one text file.

    Parameters
    ----------
    cache_dir : str, os.PathLike or None
        The cache directory (:func:`default_cache_dir` when None).
    sha256 : str
        The hash of the file's bytes.
    encoding : str
    normalize_newlines : bool
        How the file is read: part of the key, since they change the characters.
    """

    def __init__(self, cache_dir, sha256: str, encoding: str,
                 normalize_newlines: bool) -> None:
        self.dir = Path(cache_dir) if cache_dir is not None else default_cache_dir()
        self.key = hashlib.sha256(f"charrnn-ids/{CACHE_FORMAT}/{sha256}/{encoding}/"
                                  f"{int(normalize_newlines)}".encode()).hexdigest()[:32]

    @property
    def _meta_path(self) -> Path:
        return self.dir / f"{self.key}.json"

    def read_meta(self) -> tuple[int, str] | None:
        """The text's length and characters, if a valid record of them is cached."""
        try:
            meta = json.loads(self._meta_path.read_text("utf-8"))
        except (OSError, ValueError):
            return None
        if (not isinstance(meta, dict) or meta.get("format") != CACHE_FORMAT
                or not isinstance(meta.get("chars"), int) or meta["chars"] < 1
                or not isinstance(meta.get("vocab"), str) or not meta["vocab"]):
            return None
        return meta["chars"], meta["vocab"]

    def write_meta(self, n: int, chars: str) -> None:
        """Record the text's length ``n`` and its sorted characters ``chars``."""
        record = json.dumps({"format": CACHE_FORMAT, "chars": n, "vocab": chars}).encode()
        write_atomic(self._meta_path, lambda out: out.write(record), durable=False)

    def ids_path(self, vocab: Vocab) -> Path:
        """The id file of the text over ``vocab``."""
        vkey = hashlib.sha256(vocab.chars.encode("utf-32-le")).hexdigest()[:16]
        return self.dir / f"{self.key}-{vkey}.{vocab.dtype.name}"

    def map_ids(self, vocab: Vocab, n: int) -> mmap.mmap | None:
        """The id file mapped read-only, if it holds exactly ``n`` ids of ``vocab``."""
        try:
            with open(self.ids_path(vocab), "rb") as f:
                if os.fstat(f.fileno()).st_size != n * vocab.dtype.itemsize:
                    return None
                return mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ)
        except (OSError, ValueError):
            return None

    def write_ids(self, f, vocab: Vocab, encoding: str, normalize_newlines: bool, name: str,
                  chunk_size: int) -> None:
        """Encode the text read from the binary file ``f`` into its id file."""
        def write(out) -> None:
            encode_stream(f, vocab, encoding, normalize_newlines, name, chunk_size,
                          lambda ids: out.write(memoryview(ids).cast("B")))
        write_atomic(self.ids_path(vocab), write, durable=False)

