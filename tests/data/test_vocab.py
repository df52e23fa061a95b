"""Vocab: the sorted code points of a text, encode/decode, id dtypes, unknown characters."""

from __future__ import annotations

import numpy as np
import pytest

from charrnn import Vocab
from charrnn.data.vocab import id_dtype

MIXED = "Hello, wörld! Ça va? Ωμέγα — 漢字 😀𝄞 tab\tcr\r\nend"


def test_from_text_is_the_sorted_code_points():
    v = Vocab.from_text(MIXED)
    assert v.chars == "".join(sorted(set(MIXED)))
    cps = [ord(c) for c in v.chars]
    assert cps == sorted(cps) and len(set(cps)) == len(cps)
    assert len(v) == v.size == len(set(MIXED))
    assert set(v.chars) == set(MIXED)


def test_sorting_is_by_code_point_not_by_utf16_or_locale():
    # U+FFFD sorts before U+1F600, although in UTF-16 the astral char starts with 0xD83D
    v = Vocab.from_text("\U0001F600\uFFFDaZ\u00e9")
    assert v.chars == "Za\u00e9\uFFFD\U0001F600"


@pytest.mark.parametrize("text", [MIXED, "a", "\U0001F600" * 3, "\x00\x01\n", "abcabc"])
def test_encode_decode_round_trip(text):
    v = Vocab.from_text(text)
    ids = v.encode(text)
    assert ids.shape == (len(text),)                           # one id per code point
    assert ids.dtype.kind == "u"
    assert ids.max() < len(v)
    assert v.decode(ids) == text
    assert v.decode(ids.tolist()) == text                       # any sequence of ints
    assert v.decode(ids.astype(np.int64)) == text


def test_ids_are_positions_in_chars():
    v = Vocab.from_text("cab\U0001F600")
    np.testing.assert_array_equal(v.encode("abc\U0001F600"), [0, 1, 2, 3])
    assert [v.chars[i] for i in v.encode("ba")] == ["b", "a"]


def test_encode_of_text_from_another_source():
    v = Vocab.from_text(MIXED)
    part = "wörld 😀"
    assert v.decode(v.encode(part)) == part


@pytest.mark.parametrize("V,dt", [(1, np.uint8), (256, np.uint8), (257, np.uint16),
                                  (65536, np.uint16), (65537, np.uint32)])
def test_smallest_id_dtype(V, dt):
    assert id_dtype(V) == np.dtype(dt)


def test_encode_uses_the_smallest_dtype():
    small = Vocab.from_text("abc")
    assert small.encode("cab").dtype == np.uint8
    big = Vocab("".join(chr(0x4E00 + i) for i in range(300)))
    assert len(big) == 300
    ids = big.encode(big.chars)
    assert ids.dtype == np.uint16
    np.testing.assert_array_equal(ids, np.arange(300))


def test_unknown_characters_raise_and_are_listed():
    v = Vocab.from_text("hello world")
    with pytest.raises(ValueError) as e:
        v.encode("hellö wörld 😀!")
    msg = str(e.value)
    for c in ("ö", "😀", "!"):
        assert repr(c) in msg
    assert "3 character" in msg
    assert repr("h") not in msg                                  # known ones are not listed
    assert v.unknown("hellö wörld 😀!") == sorted(["ö", "😀", "!"])
    assert v.unknown("hello") == []


def test_errors_skip_drops_unknown_characters():
    v = Vocab.from_text("hello world")
    ids = v.encode("hellö wörld 😀!", errors="skip")
    assert v.decode(ids) == "hell wrld "
    assert v.encode("😀", errors="skip").size == 0


@pytest.mark.parametrize("errors", ["ignore", "replace", "", None])
def test_bad_errors_argument(errors):
    with pytest.raises(ValueError, match="errors"):
        Vocab.from_text("ab").encode("ab", errors=errors)


def test_decode_rejects_bad_ids():
    v = Vocab.from_text("abc")
    with pytest.raises(ValueError):
        v.decode([0, 3])
    with pytest.raises(ValueError):
        v.decode([-1])
    with pytest.raises(TypeError):
        v.decode([0.0, 1.0])
    assert v.decode([]) == ""


@pytest.mark.parametrize("bad,exc", [("", ValueError), (None, TypeError), (b"abc", TypeError),
                                     (["a", "b"], TypeError)])
def test_from_text_bad_input(bad, exc):
    with pytest.raises(exc):
        Vocab.from_text(bad)


@pytest.mark.parametrize("bad,exc", [("", ValueError), ("aba", ValueError), (123, TypeError)])
def test_constructor_bad_input(bad, exc):
    with pytest.raises(exc):
        Vocab(bad)


def test_encode_non_str_raises_type_error():
    with pytest.raises(TypeError):
        Vocab.from_text("ab").encode(b"ab")


def test_equality_hash_contains_repr():
    a, b = Vocab.from_text("hello"), Vocab("ohel")
    assert a == b and hash(a) == hash(b)
    assert a != Vocab("hel")
    assert a != "ehlo"
    assert "h" in a and "z" not in a and "he" not in a and 1 not in a
    assert "4 chars" in repr(a)


def test_lone_surrogates_round_trip():
    # text decoded with surrogateescape can carry lone surrogates; they stay code points
    text = "a\udcff b"
    v = Vocab.from_text(text)
    assert v.decode(v.encode(text)) == text
