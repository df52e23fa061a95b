"""Checkpoint faults: failed writes and killed writers never cost the previous checkpoint.

A save that fails halfway (an exception, a ``KeyboardInterrupt``, a full disk) must leave
the previous file byte-identical and no temporary file behind. A process saving in a loop
and killed with SIGKILL at random moments must always leave a file that loads and whose
parts belong together (the step, the parameters, the optimizer state and the hidden
state written by one save).
"""

from __future__ import annotations

import errno
import os
import random
import signal
import subprocess
import sys
import textwrap
import time

import numpy as np
import pytest

import charrnn
from charrnn import checkpoint as ckpt
from charrnn.api import read as read_checkpoint
from charrnn.config import TrainConfig
from charrnn.optim import make_optimizer
from charrnn.train_state import TrainState

POSIX = os.name == "posix"


def full_state(model: charrnn.CharRNN, step: int) -> TrainState:
    """A complete training state whose every part is derived from ``step``."""
    cfg = TrainConfig(hidden_size=model.hidden_size, cell=model.cell,
                      num_layers=model.num_layers, dropout=model.dropout,
                      dtype=model.dtype.name, batch_size=2, seq_length=4,
                      optimizer="adam").validate()
    opt = make_optimizer("adam", model.num_params, model.dtype, 1e-3)
    state = TrainState(config=cfg, optimizer=opt,
                       h=np.zeros((2, model.state_size), model.dtype))
    return set_step(state, step)


def set_step(state: TrainState, step: int) -> TrainState:
    """Make every part of ``state`` the one that goes with ``step`` (in place)."""
    state.optimizer.t = step
    for arr in state.optimizer.state.values():
        arr[:] = -step
    state.h[:] = step / 7
    state.step, state.chars_seen = step, step * 8
    state.rng_state = np.random.default_rng(step).bit_generator.state
    return state


def temps(d) -> list[str]:
    return sorted(p.name for p in d.iterdir() if p.name.endswith(".tmp"))


# ----------------------------------------------------------------------------- failed writes

class FailingFile:
    """A file whose writes fail once ``limit`` bytes have gone through (a disk filling up)."""

    def __init__(self, f, limit: int, exc: BaseException) -> None:
        self._f, self._left, self._exc = f, limit, exc
        self.written = 0

    def write(self, b) -> int:
        b = memoryview(b).cast("B")
        if len(b) > self._left:
            self._f.write(b[:self._left])           # a partial write, then the failure
            self.written += self._left
            self._left = 0
            raise self._exc
        self._left -= len(b)
        self.written += len(b)
        return self._f.write(b)

    def __getattr__(self, name):
        return getattr(self._f, name)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self._f.close()
        return False


FAILURES = {
    "exception": lambda: RuntimeError("injected failure"),
    "ctrl-c": lambda: KeyboardInterrupt(),
    "disk full": lambda: OSError(errno.ENOSPC, os.strerror(errno.ENOSPC)),
}


@pytest.fixture
def saved(tmp_path):
    """A model with a full training state, saved once: the file that must survive."""
    m = charrnn.CharRNN("abcdefg", hidden_size=6, seed=3)
    target = tmp_path / "run.ckpt.npz"
    ckpt.save(target, m, full_state(m, 5))
    return m, target, target.read_bytes()


@pytest.mark.parametrize("fraction", [0.0, 0.01, 0.5, 0.99])
@pytest.mark.parametrize("kind", list(FAILURES))
def test_a_write_failing_partway_keeps_the_old_file(saved, monkeypatch, kind, fraction):
    m, target, before = saved
    limit = int(len(before) * fraction)
    real_fdopen = os.fdopen
    opened = []

    def fdopen(fd, *a, **kw):
        f = FailingFile(real_fdopen(fd, *a, **kw), limit, FAILURES[kind]())
        opened.append(f)
        return f

    monkeypatch.setattr(ckpt.os, "fdopen", fdopen)
    m.theta[:] = 0.25                                # the new save differs from the old one
    with pytest.raises(type(FAILURES[kind]())) as e:
        ckpt.save(target, m, full_state(m, 6))
    monkeypatch.undo()
    if kind == "disk full":
        assert e.value.errno == errno.ENOSPC
    assert len(opened) == 1 and opened[0].written == limit   # it did fail partway
    assert target.read_bytes() == before
    assert temps(target.parent) == []
    assert read_checkpoint(target)[1].step == 5
    # the next save works and replaces the file
    ckpt.save(target, m, full_state(m, 6))
    assert read_checkpoint(target)[1].step == 6 and temps(target.parent) == []


@pytest.mark.parametrize("stage", ["fsync", "chmod", "replace"])
@pytest.mark.parametrize("kind", list(FAILURES))
def test_a_failure_after_the_data_is_written_keeps_the_old_file(saved, monkeypatch, stage,
                                                                 kind):
    """The steps between the last byte and the rename fail too: same promise."""
    m, target, before = saved
    calls = []
    real = getattr(os, stage)

    def failing(*a, **kw):
        calls.append(a)
        if len(calls) == 1:                          # only the temporary file's step
            raise FAILURES[kind]()
        return real(*a, **kw)

    monkeypatch.setattr(ckpt.os, stage, failing)
    m.theta[:] = -0.5
    with pytest.raises(type(FAILURES[kind]())):
        ckpt.save(target, m, full_state(m, 9))
    monkeypatch.undo()
    assert calls, f"os.{stage} was never called by save"
    assert target.read_bytes() == before
    assert temps(target.parent) == []


@pytest.mark.parametrize("kind", list(FAILURES))
def test_a_failed_first_save_leaves_nothing(tmp_path, monkeypatch, kind):
    m = charrnn.CharRNN("xyz", hidden_size=3)
    real_fdopen = os.fdopen
    monkeypatch.setattr(ckpt.os, "fdopen",
                        lambda fd, *a, **kw: FailingFile(real_fdopen(fd, *a, **kw), 100,
                                                         FAILURES[kind]()))
    with pytest.raises(type(FAILURES[kind]())):
        m.save(tmp_path / "new.ckpt.npz")
    assert list(tmp_path.iterdir()) == []


# ----------------------------------------------------------------------------- SIGKILL

# A parent that forks one writer per round (so a round costs no interpreter start-up); the
# writer saves step k, k+1, ... forever, every part of each save derived from its step.
WRITER = textwrap.dedent("""
    import os, sys
    import numpy as np
    import charrnn
    from charrnn import checkpoint as ckpt
    sys.path.insert(0, {tests!r})
    from {module} import full_state, pattern, set_step

    path = {path!r}
    model = charrnn.CharRNN("abcdefghij", hidden_size=24, dtype="float64", seed=0)
    for line in sys.stdin:
        start = int(line)
        pid = os.fork()
        if pid == 0:
            k, state = start, full_state(model, start)
            if start == 1:
                # the first writer dies inside its second save, its temp file written, so
                # at least one kill lands inside a save however the others are timed
                real_replace = os.replace

                def replace(src, dst):
                    if k > start:
                        os.kill(os.getpid(), 9)
                    real_replace(src, dst)
                os.replace = replace
            while True:
                model.theta[:] = pattern(k, model.num_params)
                ckpt.save(path, model, set_step(state, k))
                k += 1
        print(pid, flush=True)
        os.waitpid(pid, 0)
        print("reaped", flush=True)
""")


def pattern(step: int, n: int) -> np.ndarray:
    """The parameters that go with ``step``."""
    return step + np.arange(n, dtype=np.float64) / n


def check_consistent(path) -> int:
    model, st, meta = read_checkpoint(path)
    k = st.step
    assert model.theta.tobytes() == pattern(k, model.num_params).tobytes(), k
    assert st.optimizer.t == k and st.chars_seen == 8 * k
    for arr in st.optimizer.state.values():
        assert np.all(arr == -k)
    assert np.all(st.h == k / 7)
    assert st.rng_state == np.random.default_rng(k).bit_generator.state
    assert meta["state"]["step"] == k
    return k


@pytest.mark.skipif(not POSIX or not hasattr(os, "fork"), reason="needs fork and SIGKILL")
def test_sigkill_at_random_moments_never_breaks_the_file(tmp_path):
    kills = 30
    rnd = random.Random(20260)
    path = tmp_path / "loop.ckpt.npz"
    env = dict(os.environ, OPENBLAS_NUM_THREADS="1")
    here = os.path.abspath(__file__)
    script = WRITER.format(tests=os.path.dirname(here), path=str(path),
                           module=os.path.splitext(os.path.basename(here))[0])
    p = subprocess.Popen([sys.executable, "-c", script], cwd=tmp_path, env=env, text=True,
                         stdin=subprocess.PIPE, stdout=subprocess.PIPE)
    try:
        step, mid_write = 0, 0
        for i in range(kills):
            p.stdin.write(f"{step + 1}\n")
            p.stdin.flush()
            pid = int(p.stdout.readline())
            # let this writer finish one save (so every round tests a new file, however
            # loaded the machine), then kill it at a random moment of its save loop
            deadline = time.monotonic() + 60
            while not (path.exists() and read_checkpoint(path)[1].step > step):
                assert time.monotonic() < deadline, "the writer never saved"
                time.sleep(0.002)
            time.sleep(rnd.uniform(0.0, 0.08))
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass                                  # the first writer killed itself
            assert p.stdout.readline().strip() == "reaped"
            left = temps(tmp_path)
            assert len(left) <= 1, left              # only the killed writer's own
            mid_write += len(left)
            k = check_consistent(path)
            assert k >= step                          # never an older file
            step = k
        assert step > kills                          # the writers did make progress
        print(f"{kills} kills, {mid_write} inside a save, last step {step}")
        assert mid_write >= 1                        # the first writer's did, at least
    finally:
        p.stdin.close()
        p.kill()
        p.wait(timeout=30)
    # a later save cleans up what the killed writers left
    m = charrnn.CharRNN("abcdefghij", hidden_size=24, dtype="float64", seed=0)
    m.theta[:] = pattern(step + 1, m.num_params)
    ckpt.save(path, m, full_state(m, step + 1))
    assert check_consistent(path) == step + 1
    assert temps(tmp_path) == []
