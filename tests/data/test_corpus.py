"""Corpus reading, the id cache, the validation split and B-stream batching."""

from __future__ import annotations

import os

import numpy as np
import pytest

from charrnn import data as C
from charrnn.data.vocab import Vocab
from charrnn.errors import CorpusError

MIXED = "Ça va? naïve café — 中文 😀\nline two\r\nline three\rend"


@pytest.fixture(autouse=True)
def _cache(tmp_path, monkeypatch):
    monkeypatch.setenv("CHARRNN_CACHE_DIR", str(tmp_path / "cache"))


def write(path, data: bytes):
    path.write_bytes(data)
    return path


# ----------------------------------------------------------------------------- reading

def test_bom_dropped_and_line_endings_kept(tmp_path):
    p = write(tmp_path / "t.txt", b"\xef\xbb\xbf" + MIXED.encode())
    assert C.read_text(p) == MIXED
    c = C.Corpus.from_file(p)
    assert c.text() == MIXED
    assert "\r" in c.vocab and "\ufeff" not in c.vocab


def test_normalize_newlines(tmp_path):
    p = write(tmp_path / "t.txt", b"\xef\xbb\xbfa\r\nb\rc\nd\r")
    assert C.read_text(p, normalize_newlines=True) == "a\nb\nc\nd\n"
    assert C.read_text(p) == "a\r\nb\rc\nd\r"


@pytest.mark.parametrize("chunk", [1, 2, 3, 5, 7, 4096])
def test_chunking_never_changes_the_text(tmp_path, chunk):
    text = MIXED * 3 + "\r"
    p = write(tmp_path / "t.txt", b"\xef\xbb\xbf" + text.encode())
    for norm in (False, True):
        with open(p, "rb") as f:
            cps = np.concatenate([c.astype(np.uint32) for c in
                                  C.iter_codepoints(f, "utf-8", norm, "t", chunk)])
        want = text.replace("\r\n", "\n").replace("\r", "\n") if norm else text
        assert "".join(map(chr, cps)) == want


@pytest.mark.parametrize("chunk", [1, 3, 1 << 20])
def test_invalid_utf8_names_the_byte_offset(tmp_path, chunk):
    good = "héllo wörld ".encode() * 10
    p = write(tmp_path / "bad.txt", good + b"\xff" + b"more")
    with pytest.raises(CorpusError, match=rf"byte offset {len(good)}\b") as e:
        with open(p, "rb") as f:
            list(C.iter_codepoints(f, "utf-8", False, str(p), chunk))
    assert "latin-1" in str(e.value)
    with pytest.raises(CorpusError, match=rf"byte offset {len(good)}\b"):
        C.Corpus.from_file(p)


def test_truncated_utf8_at_the_end(tmp_path):
    p = write(tmp_path / "cut.txt", b"abc" + "é".encode()[:1])
    with pytest.raises(CorpusError, match="byte offset 3"):
        C.read_text(p)


def test_latin1_reads_any_bytes(tmp_path):
    data = bytes(range(256))
    p = write(tmp_path / "bin.txt", data)
    assert C.read_text(p, encoding="latin-1") == data.decode("latin-1")
    c = C.Corpus.from_file(p, encoding="latin-1")
    assert len(c.vocab) == 256 and c.ids.dtype == np.uint8
    assert c.text() == data.decode("latin-1")


def test_missing_empty_and_directory(tmp_path):
    with pytest.raises(FileNotFoundError):
        C.Corpus.from_file(tmp_path / "nope.txt")
    with pytest.raises(CorpusError, match="empty"):
        C.Corpus.from_file(write(tmp_path / "e.txt", b""))
    with pytest.raises(CorpusError, match="empty"):
        C.Corpus.from_file(write(tmp_path / "bom.txt", b"\xef\xbb\xbf"))
    with pytest.raises(IsADirectoryError):
        C.Corpus.from_file(tmp_path)
    with pytest.raises(CorpusError, match="empty"):
        C.Corpus.from_text("")


# ----------------------------------------------------------------------------- vocabulary, ids

def test_vocab_is_sorted_code_points_and_dtype_smallest(tmp_path):
    c = C.Corpus.from_text(MIXED)
    assert c.vocab.chars == "".join(sorted(set(MIXED)))
    assert c.ids.dtype == np.uint8
    wide = "".join(chr(0x400 + i) for i in range(300))
    c2 = C.Corpus.from_file(write(tmp_path / "w.txt", wide.encode()))
    assert len(c2.vocab) == 300 and c2.ids.dtype == np.uint16
    assert c2.text() == wide


def test_given_vocab_encodes_and_rejects_unknown(tmp_path):
    v = Vocab("abc xyz")
    p = write(tmp_path / "t.txt", b"abc cab")
    c = C.Corpus.from_file(p, vocab=v)
    assert c.vocab == v and c.text() == "abc cab"
    assert list(c.ids[:3]) == [v.chars.index(ch) for ch in "abc"]
    with pytest.raises(CorpusError, match=r"'q'"):
        C.Corpus.from_file(write(tmp_path / "u.txt", b"abq"), vocab=v)
    with pytest.raises(CorpusError, match=r"'q'"):
        C.Corpus.from_text("abq", vocab=v)


# ----------------------------------------------------------------------------- the id cache

def test_large_files_are_cached_by_content_and_memory_mapped(tmp_path):
    text = (MIXED + "\n") * 50
    a = write(tmp_path / "a.txt", text.encode())
    b = write(tmp_path / "b.txt", text.encode())
    cache = tmp_path / "mycache"
    ca = C.Corpus.from_file(a, cache_dir=cache, cache_threshold=16, chunk_size=64)
    assert ca.cache_path is not None and ca.cache_path.parent == cache
    assert not ca.ids.flags.writeable
    assert ca.text() == text
    files = sorted(p.name for p in cache.iterdir())
    assert len(files) == 2                                   # the metadata and the ids
    # same content under another name: the same id file, not encoded again
    mtime = ca.cache_path.stat().st_mtime_ns
    cb = C.Corpus.from_file(b, cache_dir=cache, cache_threshold=16)
    assert cb.cache_path == ca.cache_path and cb.cache_path.stat().st_mtime_ns == mtime
    assert np.array_equal(cb.ids, ca.ids) and cb.sha256 == ca.sha256
    # changed content: a new entry
    write(b, (text + "!").encode())
    cc = C.Corpus.from_file(b, cache_dir=cache, cache_threshold=16)
    assert cc.cache_path != ca.cache_path and cc.text() == text + "!"
    # the cache stays consistent with the in-memory path
    mem = C.Corpus.from_file(a, cache_threshold=1 << 30)
    assert mem.cache_path is None and np.array_equal(mem.ids, ca.ids)
    ca.release_pages()
    assert ca.text(0, 5) == text[:5]


def test_default_cache_dir_follows_the_environment(tmp_path, monkeypatch):
    monkeypatch.setenv("CHARRNN_CACHE_DIR", str(tmp_path / "x"))
    assert C.default_cache_dir() == tmp_path / "x"
    monkeypatch.delenv("CHARRNN_CACHE_DIR")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert C.default_cache_dir() == tmp_path / "xdg" / "charrnn"
    text = "abcdefgh" * 10
    p = write(tmp_path / "t.txt", text.encode())
    c = C.Corpus.from_file(p, cache_threshold=8)
    assert c.cache_path.parent == tmp_path / "xdg" / "charrnn"


def test_a_damaged_cache_file_is_rebuilt(tmp_path):
    text = "hello cache " * 20
    p = write(tmp_path / "t.txt", text.encode())
    cache = tmp_path / "c"
    c = C.Corpus.from_file(p, cache_dir=cache, cache_threshold=8)
    path = c.cache_path
    del c
    path.write_bytes(path.read_bytes()[:-3])                # truncated
    c2 = C.Corpus.from_file(p, cache_dir=cache, cache_threshold=8)
    assert c2.text() == text
    (cache / (path.name.split("-")[0] + ".json")).write_text("{not json")
    c3 = C.Corpus.from_file(p, cache_dir=cache, cache_threshold=8)
    assert c3.text() == text
    assert not [q for q in cache.iterdir() if q.name.endswith(".tmp")]


# ----------------------------------------------------------------------------- split

@pytest.mark.parametrize("n", [10, 11, 999, 1115394])
def test_validation_is_the_last_tenth(n):
    c = C.Corpus(Vocab("a"), np.zeros(n, np.uint8), "<t>", "")
    tr, va = c.split(0.1)
    assert tr.size == int(n * 0.9) and tr.size + va.size == n
    assert np.shares_memory(tr, c.ids) and np.shares_memory(va, c.ids)
    if n == 1115394:
        assert va.size == 111540                      # nanoGPT's shakespeare_char split


def test_load_dispatch(tmp_path):
    p = write(tmp_path / "t.txt", b"from a file")
    assert C.load(p).text() == "from a file"
    assert C.load(str(p)).text() == "from a file"
    assert C.load("just text").text() == "just text"
    c = C.load("x y")
    assert C.load(c) is c
    with pytest.raises(TypeError):
        C.load(b"bytes")


def test_stdlib_corpus_is_deterministic_and_bounded():
    a = C.stdlib_text(200_000)
    b = C.stdlib_text(200_000)
    assert a == b
    assert 200_000 <= len(a) < 200_000 + 500_000
    assert a.isascii() and "def " in a and "import " in a
    files = C.stdlib_files()
    assert files == sorted(files, key=lambda p: p.as_posix())
    assert not any("site-packages" in p.parts or "test" in p.parts for p in files)


# ----------------------------------------------------------------------------- batching

def classic_walk(data, T, steps):
    """min-char-rnn's own loop over the data: (inputs, targets, reset) per step."""
    p, out = 0, []
    for n in range(steps):
        reset = False
        if p + T + 1 >= len(data) or n == 0:
            reset, p = n > 0, 0
        out.append((data[p:p + T], data[p + 1:p + T + 1], reset))
        p += T
    return out


def test_batch_size_one_is_the_classic_walk():
    rng = np.random.default_rng(0)
    ids = rng.integers(0, 7, 103).astype(np.uint8)
    T = 10
    b = C.Batches(ids, 1, T)
    X = np.empty((1, T), np.int32)
    Y = np.empty((1, T), np.int32)
    for want_x, want_y, want_reset in classic_walk(list(ids), T, 35):
        reset = b.next_into(X, Y)
        assert list(X[0]) == list(want_x) and list(Y[0]) == list(want_y)
        assert reset == want_reset
    assert b.epoch == 3


def test_streams_are_contiguous_and_targets_shifted():
    ids = np.arange(100, dtype=np.uint8)
    b = C.Batches(ids, 4, 5)                          # 4 streams of 25
    X = np.empty((4, 5), np.int32)
    Y = np.empty((4, 5), np.int32)
    assert not b.next_into(X, Y)
    assert X.tolist() == [[s * 25 + i for i in range(5)] for s in range(4)]
    assert np.array_equal(Y, X + 1)
    seen = [X.copy()]
    while not b.next_into(X, Y):
        seen.append(X.copy())
    assert len(seen) == b.steps_per_epoch
    assert X[:, 0].tolist() == [0, 25, 50, 75]        # back at the start: a new epoch
    assert b.epoch == 1
    # every target stays inside its own stream
    for x in seen:
        assert np.all((x + 1) // 25 == x[:, :1] // 25)


def test_batches_resume_at_a_position():
    ids = np.arange(200, dtype=np.uint8)
    a = C.Batches(ids, 2, 8)
    X = np.empty((2, 8), np.int32)
    Y = np.empty((2, 8), np.int32)
    for _ in range(5):
        a.next_into(X, Y)
    b = C.Batches(ids, 2, 8, position=a.position, epoch=a.epoch)
    X2, Y2 = X.copy(), Y.copy()
    for _ in range(20):
        ra, rb = a.next_into(X, Y), b.next_into(X2, Y2)
        assert ra == rb and np.array_equal(X, X2) and np.array_equal(Y, Y2)


def test_too_short_for_the_streams():
    with pytest.raises(CorpusError, match="too short"):
        C.Batches(np.zeros(20, np.uint8), 2, 9)
    C.Batches(np.zeros(22, np.uint8), 2, 9)           # exactly B * (T + 2)
    with pytest.raises(CorpusError, match="seq_length"):
        C.Batches(np.zeros(5, np.uint8), 1, 8)


def test_reading_never_loads_the_whole_file_at_once(tmp_path, monkeypatch):
    """Reads are bounded by the chunk size, whatever the file size."""
    text = ("abcdefghij" * 1000).encode()
    p = write(tmp_path / "t.txt", text)
    sizes = []
    real_open = open

    class Spy:
        def __init__(self, f):
            self.f = f

        def read(self, n=-1):
            sizes.append(n)
            return self.f.read(n)

        def __getattr__(self, k):
            return getattr(self.f, k)

        def __enter__(self):
            return self

        def __exit__(self, *a):
            self.f.close()

    monkeypatch.setattr(C.text, "open", lambda *a, **k: Spy(real_open(*a, **k)), raising=False)
    c = C.Corpus.from_file(p, chunk_size=512, cache_threshold=100, cache_dir=tmp_path / "c")
    assert len(c) == len(text)
    assert sizes and all(0 < n <= 512 for n in sizes)
    assert os.path.getsize(c.cache_path) == len(text)
