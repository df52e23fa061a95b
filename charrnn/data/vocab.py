"""The vocabulary: the sorted set of Unicode code points of a text, and id <-> char maps."""

from __future__ import annotations

from collections.abc import Iterable

import numpy as np


def id_dtype(V: int) -> np.dtype:
    """The smallest unsigned dtype that holds ids in [0, V)."""
    for dt in (np.uint8, np.uint16, np.uint32):
        if V <= np.iinfo(dt).max + 1:
            return np.dtype(dt)
    raise ValueError(f"vocabulary of {V} characters is too large")


def _codepoints(text: str) -> np.ndarray:
    return np.frombuffer(text.encode("utf-32-le", "surrogatepass"), dtype="<u4")


class Vocab:
    """A character vocabulary: id ``i`` is the i-th smallest code point.

    Parameters
    ----------
    chars : str
        The characters, each once. They are sorted by code point.

    Examples
    --------
    >>> v = Vocab.from_text("hello")
    >>> v.chars
    'ehlo'
    >>> v.decode(v.encode("hole"))
    'hole'
    """

    __slots__ = ("chars", "_cps", "dtype")

    def __init__(self, chars: str) -> None:
        if not isinstance(chars, str):
            raise TypeError(f"chars must be a str, not {type(chars).__name__}")
        if not chars:
            raise ValueError("a vocabulary needs at least one character")
        if len(set(chars)) != len(chars):
            raise ValueError("vocabulary characters must be distinct")
        self.chars = "".join(sorted(chars))
        self._cps = _codepoints(self.chars)
        self.dtype = id_dtype(len(self.chars))

    @classmethod
    def from_text(cls, text: str) -> "Vocab":
        """The sorted set of code points of ``text``."""
        if not isinstance(text, str):
            raise TypeError(f"text must be a str, not {type(text).__name__}")
        if not text:
            raise ValueError("cannot build a vocabulary from an empty text")
        return cls("".join(chr(c) for c in np.unique(_codepoints(text))))

    def __len__(self) -> int:
        return len(self.chars)

    @property
    def size(self) -> int:
        """V, the number of characters."""
        return len(self.chars)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Vocab) and other.chars == self.chars

    def __hash__(self) -> int:
        return hash(self.chars)

    def __repr__(self) -> str:
        return f"Vocab({len(self)} chars: {self.chars[:40]!r}{'...' if len(self) > 40 else ''})"

    def __contains__(self, ch: str) -> bool:
        return isinstance(ch, str) and len(ch) == 1 and ch in self.chars

    def unknown(self, text: str) -> list[str]:
        """The distinct characters of ``text`` that are not in the vocabulary, sorted."""
        if not isinstance(text, str):
            raise TypeError(f"text must be a str, not {type(text).__name__}")
        cps = np.unique(_codepoints(text))
        pos = np.clip(np.searchsorted(self._cps, cps), 0, len(self._cps) - 1)
        return [chr(c) for c in cps[self._cps[pos] != cps]]

    def encode(self, text: str, errors: str = "strict") -> np.ndarray:
        """Ids of ``text`` in the smallest unsigned dtype that fits V.

        Parameters
        ----------
        text : str
        errors : {"strict", "skip"}
            "strict" raises ``ValueError`` listing the unknown characters; "skip" drops them.
        """
        if not isinstance(text, str):
            raise TypeError(f"text must be a str, not {type(text).__name__}")
        if errors not in ("strict", "skip"):
            raise ValueError(f"errors must be 'strict' or 'skip', not {errors!r}")
        cps = _codepoints(text)
        pos = np.clip(np.searchsorted(self._cps, cps), 0, len(self._cps) - 1)
        ok = self._cps[pos] == cps
        if not ok.all():
            if errors == "strict":
                bad = sorted({chr(c) for c in cps[~ok]})
                raise ValueError(f"{len(bad)} character(s) not in the vocabulary: "
                                 + ", ".join(repr(c) for c in bad[:20])
                                 + (" ..." if len(bad) > 20 else ""))
            pos = pos[ok]
        return pos.astype(self.dtype)

    def decode(self, ids: Iterable[int] | np.ndarray) -> str:
        """The text of a sequence of ids."""
        ids = np.asarray(ids)
        if ids.size == 0:
            return ""
        if ids.dtype.kind not in "iu":
            raise TypeError(f"ids must be integers, not {ids.dtype}")
        if ids.min() < 0 or ids.max() >= len(self):
            raise ValueError(f"ids must lie in [0, {len(self)})")
        return self._cps[ids.ravel()].astype("<u4").tobytes().decode("utf-32-le",
                                                                     "surrogatepass")
