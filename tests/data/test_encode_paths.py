"""The encoding's byte-level paths give the ids and vocabulary of the plain decoding.

ASCII chunks of a UTF-8 file and latin-1 chunks are scanned and mapped as bytes
(``bytes.translate``); other chunks as code points. Whatever the chunk size, where the
multi-byte characters fall and the vocabulary's id width, a file's corpus must equal the
corpus of its text decoded by Python in one piece.
"""

from __future__ import annotations

import numpy as np
import pytest

from charrnn import data as C
from charrnn.data.encode import encode_stream, scan
from charrnn.data.vocab import Vocab
from charrnn.errors import CorpusError

WIDE = "éßЖж中文😀\u00a0\u07ff\u0800\uffff\U00010000"


def random_text(rng, n: int, wide_share: float) -> str:
    """ASCII with CR, LF and CRLF, and a ``wide_share`` of multi-byte characters."""
    ascii_ = np.array(list("abc xyz\r\n.,!"))
    wide = np.array(list(WIDE))
    chars = rng.choice(ascii_, n)
    mask = rng.random(n) < wide_share
    chars[mask] = rng.choice(wide, int(mask.sum()))
    return "".join(chars)


def expected(data: bytes, encoding: str, normalize: bool) -> str:
    """The text of ``data`` decoded in one piece, the way the corpus reads it."""
    text = data.decode(encoding)
    if encoding == "utf-8" and text.startswith("\ufeff"):
        text = text[1:]
    if normalize:
        text = text.replace("\r\n", "\n").replace("\r", "\n")
    return text


@pytest.mark.parametrize("seed", range(6))
@pytest.mark.parametrize("chunk", [1, 2, 3, 7, 64, 1 << 20])
@pytest.mark.parametrize("normalize", [False, True])
def test_utf8_file_equals_its_decoded_text(tmp_path, seed, chunk, normalize):
    rng = np.random.default_rng(seed)
    # long ASCII stretches (byte-level chunks) between multi-byte ones
    parts = [random_text(rng, int(rng.integers(1, 300)), share)
             for share in rng.choice([0.0, 0.0, 0.05, 0.5], 8)]
    data = (b"\xef\xbb\xbf" if seed % 2 else b"") + "".join(parts).encode()
    p = tmp_path / "t.txt"
    p.write_bytes(data)
    want = expected(data, "utf-8", normalize)
    ref = C.Corpus.from_text(want)
    for threshold in (1 << 30, 0):                   # in memory, and the id cache
        c = C.Corpus.from_file(p, normalize_newlines=normalize, chunk_size=chunk,
                               cache_threshold=threshold, cache_dir=tmp_path / "c")
        assert c.vocab == ref.vocab
        assert c.ids.dtype == ref.ids.dtype and np.array_equal(c.ids, ref.ids)
    with open(p, "rb") as f:
        assert scan(f, "utf-8", normalize, "t", chunk) == (ref.vocab.chars, len(want))


@pytest.mark.parametrize("chunk", [1, 5, 4096])
@pytest.mark.parametrize("normalize", [False, True])
def test_latin1_file_equals_its_decoded_text(tmp_path, chunk, normalize):
    rng = np.random.default_rng(1)
    data = np.concatenate([rng.integers(0, 256, 2000), rng.integers(0, 128, 3000),
                           rng.choice([10, 13, 97], 500)]).astype(np.uint8).tobytes()
    p = tmp_path / "b.txt"
    p.write_bytes(data)
    ref = C.Corpus.from_text(expected(data, "latin-1", normalize))
    c = C.Corpus.from_file(p, encoding="latin-1", normalize_newlines=normalize,
                           chunk_size=chunk)
    assert c.vocab == ref.vocab and np.array_equal(c.ids, ref.ids)


@pytest.mark.parametrize("V", [1, 255, 256, 257, 300])
def test_every_id_width_maps_ascii_and_wide_chunks_alike(tmp_path, V):
    """uint8 ids with V = 256 (no spare value), uint16 ids over ASCII chunks."""
    vocab = Vocab("".join(chr(c) for c in range(V)) if V <= 256
                  else "".join(chr(c) for c in range(128)) + WIDE
                  + "".join(chr(0x5000 + i) for i in range(V - 128 - len(WIDE))))
    rng = np.random.default_rng(V)
    cps = vocab._cps
    picks = np.concatenate([rng.choice(cps[cps < 128], 3000), rng.choice(cps, 5000)])
    text = picks.astype("<u4").tobytes().decode("utf-32-le")
    enc = "latin-1" if V <= 256 else "utf-8"
    p = tmp_path / "t.txt"
    p.write_bytes(text.encode(enc))
    for chunk in (3, 1000):
        ids = []
        with open(p, "rb") as f:
            encode_stream(f, vocab, enc, False, "t", chunk, ids.append)
        got = np.concatenate(ids)
        assert got.dtype == vocab.dtype and np.array_equal(got, vocab.encode(text))


@pytest.mark.parametrize("content", [b"abc abq", "abc ab\u00e9".encode(), "abc ab中".encode()])
def test_unknown_characters_are_named_on_both_paths(tmp_path, content):
    vocab = Vocab("abc ")
    p = tmp_path / "u.txt"
    p.write_bytes(content)
    bad = content.decode()[-1]
    with open(p, "rb") as f, pytest.raises(CorpusError, match=repr(bad)):
        encode_stream(f, vocab, "utf-8", False, "u", 4, lambda ids: None)
