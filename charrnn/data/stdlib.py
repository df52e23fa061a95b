"""The built-in corpus: the Python standard library's own source, which every
installation has, so ``charrnn train`` with no file works offline."""

from __future__ import annotations

import os
import sysconfig
from pathlib import Path

from ..config import STDLIB_CHARS
from ..errors import CorpusError

_STDLIB_SKIP = {"test", "tests", "idle_test", "site-packages", "dist-packages",
                "__pycache__", "turtledemo"}


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
