"""Atomic writes from several threads of one process: each write either lands whole or
is replaced by another whole write, and no writer removes another's file in flight (the
id cache writes without a lock of its own)."""

from __future__ import annotations

import os
import threading
import time

import charrnn
from charrnn.atomic import write_atomic


def _threads(target, n=3):
    errors = []

    def run():
        try:
            target()
        except Exception as e:                       # noqa: BLE001 (reported below)
            errors.append(repr(e))
    ts = [threading.Thread(target=run) for _ in range(n)]
    for t in ts:
        t.start()
    for t in ts:
        t.join(timeout=120)
    assert not any(t.is_alive() for t in ts), "a writer hung"
    return errors


def test_threads_writing_one_target(tmp_path):
    path = tmp_path / "x.bin"

    def body(f):
        f.write(b"a" * 100_000)
        time.sleep(0.0005)                           # overlap the writers

    def writer():
        for _ in range(100):
            write_atomic(path, body, durable=False)
    assert _threads(writer) == []
    assert path.read_bytes() == b"a" * 100_000
    assert [p for p in os.listdir(tmp_path) if p.endswith(".tmp")] == []


def test_threads_writing_a_relative_target(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)

    def writer():
        for _ in range(100):
            write_atomic("y.bin", lambda f: f.write(b"b" * 1000), durable=False)
    assert _threads(writer) == []
    assert (tmp_path / "y.bin").read_bytes() == b"b" * 1000


def test_threads_opening_one_large_text(tmp_path):
    """Each thread encodes the text and writes the id cache at the same time."""
    text = tmp_path / "t.txt"
    text.write_text("all the world's a stage. " * 4000, encoding="utf-8")
    ids = []

    def opener():
        for i in range(3):
            c = charrnn.Corpus.from_file(text, cache_threshold=0,
                                         cache_dir=tmp_path / "cache")
            ids.append(bytes(c.ids[:1000]))
    assert _threads(opener) == []
    assert len(set(ids)) == 1
