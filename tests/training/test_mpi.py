"""Data-parallel training over MPI: ``mpiexec -n 2`` on this machine, over loopback.

K ranks with B streams each must train what one process with K*B streams trains (to
rounding: the gradient is summed in another order), stop at the same step, write one
checkpoint from rank 0, resume exactly, and end together on Ctrl-C, divergence or an
error on one rank, never hang. The part that needs no launcher (the stream partition,
the launcher's environment, the scaled clip) is tested directly.
"""

from __future__ import annotations

import importlib.util
import os
import re
import shutil
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest

import charrnn
from charrnn.api import read as read_checkpoint
from charrnn.data.batches import Batches
from charrnn.optim import clip_args
from charrnn.training import world as W

HERE = Path(sys.executable).parent
MPIEXEC = shutil.which("mpiexec", path=f"{HERE}{os.pathsep}{os.environ.get('PATH', '')}")
HAVE_MPI = MPIEXEC is not None and importlib.util.find_spec("mpi4py") is not None
needs_mpi = pytest.mark.skipif(
    not HAVE_MPI, reason="mpiexec or mpi4py is not installed (pip install mpi4py mpich)")
TIMEOUT = 180

SMALL = ["--hidden-size", "16", "--seq-length", "10", "--dtype", "float64",
         "--eval-every", "20", "--log-every", "10", "--sample-every", "25",
         "--sample-length", "20"]


def text(n: int = 3000) -> str:
    rng = np.random.default_rng(7)
    words = ["the ", "cat ", "sat ", "on ", "a ", "mat, ", "and ", "dog ", "ran.\n"]
    return "".join(rng.choice(words, size=n // 3))[:n]


def env_for(tmp: Path) -> dict:
    env = dict(os.environ)
    env["CHARRNN_CACHE_DIR"] = str(tmp / "cache")
    env["PYTHONIOENCODING"] = "utf-8"
    env["OPENBLAS_NUM_THREADS"] = "1"       # two ranks on two cores
    env.pop("PYTHONWARNINGS", None)
    for name in W.LAUNCHER_SIZE:            # (in case the suite itself runs under one)
        env.pop(name, None)
    return env


def run(tmp: Path, *args, ranks: int = 0, check: int | None = 0):
    """``python -m charrnn ARGS`` in ``tmp``, under ``mpiexec -n ranks`` if ranks."""
    cmd = [sys.executable, "-m", "charrnn", *map(str, args)]
    if ranks:
        cmd = [MPIEXEC, "-n", str(ranks), *cmd]
    p = subprocess.run(cmd, cwd=tmp, env=env_for(tmp), capture_output=True, text=True,
                       encoding="utf-8", timeout=TIMEOUT)
    if check is not None:
        assert p.returncode == check, (p.returncode, p.stdout[-2000:], p.stderr[-3000:])
    return p


def script(tmp: Path, body: str, ranks: int = 2):
    """Run a Python script under ``mpiexec -n ranks``."""
    path = tmp / "job.py"
    path.write_text(textwrap.dedent(body))
    return subprocess.run([MPIEXEC, "-n", str(ranks), sys.executable, str(path)], cwd=tmp,
                          env=env_for(tmp), capture_output=True, text=True,
                          encoding="utf-8", timeout=TIMEOUT)


def state_of(path: Path):
    model, st, _ = read_checkpoint(path)
    return model, st


def rel(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.abs(a - b).max() / max(np.abs(b).max(), 1e-300))


# ----------------------------------------------------------------------------- no launcher

@pytest.mark.parametrize("K,B", [(1, 3), (2, 3), (3, 2)])
def test_ranks_walk_the_streams_of_one_process(K, B):
    ids = np.arange(1000, dtype=np.int32)
    one = Batches(ids, K * B, 10)
    walks = [Batches(ids, B, 10, rank=r, world_size=K) for r in range(K)]
    X1, Y1 = np.zeros((K * B, 10), np.int32), np.zeros((K * B, 10), np.int32)
    Xr, Yr = np.zeros((B, 10), np.int32), np.zeros((B, 10), np.int32)
    for _ in range(2 * one.steps_per_epoch + 3):                # across two restarts
        restart = one.next_into(X1, Y1)
        for r, w in enumerate(walks):
            assert w.next_into(Xr, Yr) == restart
            assert (Xr == X1[r * B:(r + 1) * B]).all() and (Yr == Y1[r * B:(r + 1) * B]).all()
    assert all(w.S == one.S and w.epoch == one.epoch for w in walks)


def test_too_short_a_text_counts_the_streams_of_every_rank():
    with pytest.raises(charrnn.CorpusError, match="cannot make 8 stream"):
        Batches(np.zeros(40, np.int32), 4, 10, rank=1, world_size=2)


def test_the_launchers_environment():
    assert W.launched_size({}) == 1
    assert W.launched_size({"PMI_SIZE": "4"}) == 4
    assert W.launched_size({"OMPI_COMM_WORLD_SIZE": "2"}) == 2
    with pytest.raises(W.MPIError, match="not a process count"):
        W.launched_size({"PMI_SIZE": "many"})


def test_the_clip_of_a_summed_gradient_is_the_clip_of_the_mean(kernels):
    g = np.random.default_rng(0).standard_normal(50)
    for kind, clip in (("norm", 1.0), ("norm", 100.0), ("value", 0.5), (None, 5.0)):
        n1, c1, s1 = clip_args(kernels, g / 4, kind, clip)
        n4, c4, s4 = clip_args(kernels, g, kind, clip, count=4)
        assert n4 == pytest.approx(n1, rel=1e-14) and c4 == c1
        assert s4 * 4 == pytest.approx(s1, rel=1e-14)


def test_a_single_process_has_no_world():
    assert W.world() is W.SINGLE and not W.SINGLE.parallel and W.SINGLE.root
    assert not W.follower()


def test_missing_mpi4py_under_a_launcher_is_a_one_line_error(tmp_path):
    (tmp_path / "t.txt").write_text(text())
    fake = tmp_path / "fake"
    (fake / "mpi4py").mkdir(parents=True)
    (fake / "mpi4py" / "__init__.py").write_text("raise ImportError('no mpi4py here')\n")
    env = env_for(tmp_path)
    env["PMI_SIZE"], env["PYTHONPATH"] = "2", str(fake)
    p = subprocess.run([sys.executable, "-m", "charrnn", "train", "t.txt", "--steps", "2"],
                       cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120)
    assert p.returncode == 1, p.stderr
    assert "Traceback" not in p.stderr
    lines = p.stderr.strip().splitlines()
    assert len(lines) == 1 and "mpi4py" in lines[0] and "charrnn-blas[mpi]" in lines[0]
    assert not (tmp_path / "charrnn.ckpt.npz").exists()


# ----------------------------------------------------------------------------- mpiexec -n 2

@needs_mpi
@pytest.mark.parametrize("optimizer,clip", [("adam", ["--clip-kind", "norm", "--clip", "1"]),
                                            ("adagrad", ["--clip-kind", "value"]),
                                            ("rmsprop", []), ("sgd", [])])
def test_two_ranks_train_what_one_process_with_twice_the_streams_trains(tmp_path, optimizer,
                                                                       clip):
    (tmp_path / "t.txt").write_text(text())
    common = ["train", "t.txt", *SMALL, "--optimizer", optimizer, *clip, "--steps", "50"]
    p = run(tmp_path, *common, "--batch-size", "3", "-o", "two.ckpt.npz", ranks=2)
    run(tmp_path, *common, "--batch-size", "6", "-o", "one.ckpt.npz")
    m2, s2 = state_of(tmp_path / "two.ckpt.npz")
    m1, s1 = state_of(tmp_path / "one.ckpt.npz")
    assert s2.world_size == 2 and s1.world_size == 1
    assert (s2.step, s2.epoch, s2.position, s2.chars_seen) == \
           (s1.step, s1.epoch, s1.position, s1.chars_seen)
    assert s2.epoch >= 1                    # the walk restarted, on both ranks at once
    assert rel(m2.theta, m1.theta) <= 1e-12
    for slot in s1.optimizer.slots:
        assert rel(s2.optimizer.state[slot], s1.optimizer.state[slot]) <= 1e-12
    assert s2.h.shape == s1.h.shape == (6, m1.state_size)
    assert rel(s2.h, s1.h) <= 1e-12         # rank r's streams are rows 3r..3r+2
    assert s2.best_val_loss == pytest.approx(s1.best_val_loss, rel=1e-12)
    assert s2.rng_state == s1.rng_state     # the samples drew the same uniforms
    # rank 0 alone speaks: one header, one footer
    assert p.stdout.count("text: ") == 1 and p.stdout.count("done: ") == 1
    assert "on each of 2 processes (6 streams)" in p.stdout


@needs_mpi
@pytest.mark.parametrize("model", [["--cell", "lstm", "--num-layers", "2", "--dropout", "0.3"],
                                   ["--cell", "gru", "--dropout", "0.2"],
                                   ["--cell", "rnn", "--num-layers", "2"]])
def test_two_ranks_train_what_one_process_trains_for_every_cell_with_dropout(tmp_path,
                                                                            model):
    # each rank draws its own streams' dropout masks, the rows of the one process's
    (tmp_path / "t.txt").write_text(text(1500))
    common = ["train", "t.txt", *SMALL, *model, "--optimizer", "adam", "--steps", "30"]
    run(tmp_path, *common, "--batch-size", "3", "-o", "two.ckpt.npz", ranks=2)
    run(tmp_path, *common, "--batch-size", "6", "-o", "one.ckpt.npz")
    m2, s2 = state_of(tmp_path / "two.ckpt.npz")
    m1, s1 = state_of(tmp_path / "one.ckpt.npz")
    assert (m2.cell, m2.num_layers) == (m1.cell, m1.num_layers) == (model[1], m1.num_layers)
    assert s2.step == s1.step == 30 and s2.epoch >= 1
    assert rel(m2.theta, m1.theta) <= 1e-12
    assert s2.h.shape == s1.h.shape == (6, m1.state_size)
    assert rel(s2.h, s1.h) <= 1e-12
    assert s2.best_val_loss == pytest.approx(s1.best_val_loss, rel=1e-12)


@needs_mpi
def test_resume_under_mpi_equals_an_uninterrupted_run(tmp_path):
    (tmp_path / "t.txt").write_text(text())
    common = ["train", "t.txt", *SMALL, "--batch-size", "2", "--optimizer", "adam"]
    run(tmp_path, *common, "--steps", "50", "-o", "whole.ckpt.npz", ranks=2)
    run(tmp_path, *common, "--steps", "20", "-o", "part.ckpt.npz", ranks=2)
    run(tmp_path, "train", "--resume", "part.ckpt.npz", "--steps", "30", ranks=2)
    (ma, sa), (mb, sb) = state_of(tmp_path / "whole.ckpt.npz"), state_of(tmp_path /
                                                                         "part.ckpt.npz")
    assert sb.step == sa.step == 50
    assert ma.theta.tobytes() == mb.theta.tobytes()
    for slot in sa.optimizer.slots:
        assert sa.optimizer.state[slot].tobytes() == sb.optimizer.state[slot].tobytes()
    assert sa.h.tobytes() == sb.h.tobytes() and sa.rng_state == sb.rng_state
    assert (sa.position, sa.epoch, sa.best_val_loss) == (sb.position, sb.epoch,
                                                         sb.best_val_loss)


@needs_mpi
def test_resume_on_another_world_size_starts_the_walk_again(tmp_path):
    (tmp_path / "t.txt").write_text(text())
    run(tmp_path, "train", "t.txt", *SMALL, "--batch-size", "2", "--steps", "15",
        "-o", "c.ckpt.npz", ranks=2)
    m0, s0 = state_of(tmp_path / "c.ckpt.npz")
    assert "processes: 2 (MPI), 4 streams in all" in run(tmp_path, "info", "c.ckpt.npz").stdout
    p = run(tmp_path, "train", "--resume", "c.ckpt.npz", "--steps", "5")
    assert "trained on 2 process(es) and continues on 1" in p.stdout
    m1, s1 = state_of(tmp_path / "c.ckpt.npz")
    assert s1.world_size == 1 and s1.step == 20 and s1.h.shape == (2, m1.state_size)
    assert s1.position == 5 * 10 and s1.epoch == 0      # the walk began again
    assert s1.optimizer.t == s0.optimizer.t + 5            # the optimizer continued


@needs_mpi
def test_rank_0_alone_writes(tmp_path):
    (tmp_path / "t.txt").write_text(text())
    d0, d1 = tmp_path / "rank0", tmp_path / "rank1"
    d0.mkdir(), d1.mkdir()
    cmd = [sys.executable, "-m", "charrnn", "train", str(tmp_path / "t.txt"), *SMALL,
           "--batch-size", "2", "--steps", "30", "-o", "run.ckpt.npz"]
    p = subprocess.run([MPIEXEC, "-n", "1", "-wdir", str(d0), *cmd, ":",
                        "-n", "1", "-wdir", str(d1), *cmd], env=env_for(tmp_path),
                       capture_output=True, text=True, timeout=TIMEOUT)
    assert p.returncode == 0, p.stderr[-3000:]
    assert sorted(os.listdir(d0)) == ["run.best.ckpt.npz", "run.ckpt.npz",
                                      "run.metrics.jsonl"]
    assert os.listdir(d1) == []
    assert state_of(d0 / "run.ckpt.npz")[1].world_size == 2


@needs_mpi
@pytest.mark.skipif(os.name != "posix", reason="needs POSIX signals")
def test_ctrl_c_under_mpiexec_saves_once_and_exits_130(tmp_path):
    (tmp_path / "t.txt").write_text(text(20000))
    p = subprocess.Popen([MPIEXEC, "-n", "2", sys.executable, "-m", "charrnn", "train",
                          "t.txt", *SMALL, "--batch-size", "2", "--steps", "100000000",
                          "--eval-every", "1000", "-o", "c.ckpt.npz"],
                         cwd=tmp_path, env=env_for(tmp_path), stdout=subprocess.PIPE,
                         stderr=subprocess.PIPE, text=True, encoding="utf-8")
    try:
        for line in p.stdout:
            if line.startswith("step"):
                break
        p.send_signal(signal.SIGINT)
        out, err = p.communicate(timeout=60)
    finally:
        if p.poll() is None:
            p.kill()
            p.wait()
    assert p.returncode == 130, err
    assert "Traceback" not in err
    assert len(re.findall(r"interrupted at step [\d,]+; checkpoint saved to c.ckpt.npz",
                          err)) == 1, err
    st = state_of(tmp_path / "c.ckpt.npz")[1]
    assert st.step >= 10 and st.world_size == 2
    assert not [f for f in os.listdir(tmp_path) if f.endswith(".tmp")]


@needs_mpi
def test_a_script_trains_one_model_and_every_rank_stops_at_rank_0s_time(tmp_path):
    (tmp_path / "t.txt").write_text(text(20000))
    p = script(tmp_path, """
        import hashlib, charrnn
        from charrnn.training.world import world
        r = charrnn.train("t.txt", hidden_size=16, batch_size=2, seq_length=10,
                          time_budget=1.0, eval_every=50, verbose=False)
        w = world()
        digest = hashlib.sha256(r.model.theta.tobytes()).hexdigest()
        print(f"rank {w.rank}/{w.size} step {r.step} theta {digest}", flush=True)
    """)
    assert p.returncode == 0, p.stderr[-3000:]
    lines = sorted(re.findall(r"rank (\d)/2 step (\d+) theta ([0-9a-f]{64})", p.stdout))
    assert [r for r, _, _ in lines] == ["0", "1"], p.stdout
    assert lines[0][1:] == lines[1][1:]     # the same step, the same parameters
    assert int(lines[0][1]) > 0


@needs_mpi
def test_nan_on_one_rank_stops_every_rank_at_the_same_step(tmp_path):
    (tmp_path / "t.txt").write_text(text())
    p = script(tmp_path, """
        import charrnn
        from charrnn.model import CharRNN
        from charrnn.training.world import world
        if world().rank == 1:
            calls = [0]
            plain = CharRNN._loss_and_grads
            def poisoned(self, *a):
                out = plain(self, *a)
                calls[0] += 1
                if calls[0] >= 7:
                    self.grad[3] = float("nan")
                return out
            CharRNN._loss_and_grads = poisoned
        try:
            charrnn.train("t.txt", hidden_size=16, batch_size=2, seq_length=10, steps=50,
                          verbose=False, checkpoint="c.ckpt.npz")
        except charrnn.TrainingDiverged as e:
            print(f"rank {world().rank} diverged at step {e.step}", flush=True)
    """)
    assert p.returncode == 0, p.stderr[-3000:]
    assert sorted(re.findall(r"rank (\d) diverged at step (\d+)", p.stdout)) == \
           [("0", "7"), ("1", "7")], p.stdout


@needs_mpi
def test_an_error_on_one_rank_ends_the_job(tmp_path):
    (tmp_path / "t.txt").write_text(text())
    p = script(tmp_path, """
        import charrnn
        from charrnn.training.step import Stepper
        from charrnn.training.world import world
        if world().rank == 1:
            plain = Stepper.step
            def failing(self, *a):
                if self.state.step == 5:
                    raise RuntimeError("disk on fire")
                return plain(self, *a)
            Stepper.step = failing
        charrnn.train("t.txt", hidden_size=16, batch_size=2, seq_length=10, steps=1000,
                      verbose=False)
    """)
    assert p.returncode != 0
    assert "rank 1 of 2: RuntimeError: disk on fire; ending every rank" in p.stderr


@needs_mpi
def test_a_setup_error_on_one_rank_fails_every_rank(tmp_path):
    (tmp_path / "t.txt").write_text(text())
    p = script(tmp_path, """
        import charrnn
        from charrnn.training.world import world
        rank = world().rank
        try:
            charrnn.train("t.txt" if rank == 0 else "missing.txt", hidden_size=16,
                          batch_size=2, seq_length=10, steps=5, verbose=False)
        except Exception as e:
            print(f"rank {rank}: {type(e).__name__}: {e}", flush=True)
    """)
    assert p.returncode == 0, p.stderr[-3000:]
    assert "rank 0: MPIError: another rank failed while setting up the run" in p.stdout
    assert "rank 1: FileNotFoundError" in p.stdout or "rank 1: CorpusError" in p.stdout


@needs_mpi
def test_a_rank_that_dies_ends_the_job(tmp_path):
    (tmp_path / "t.txt").write_text(text())
    p = script(tmp_path, """
        import os, signal, charrnn
        from charrnn.training.step import Stepper
        from charrnn.training.world import world
        if world().rank == 1:
            plain = Stepper.step
            def dying(self, *a):
                if self.state.step == 5:
                    os.kill(os.getpid(), signal.SIGKILL)
                return plain(self, *a)
            Stepper.step = dying
        charrnn.train("t.txt", hidden_size=16, batch_size=2, seq_length=10, steps=100000,
                      verbose=False)
    """)
    assert p.returncode != 0                # (and within the timeout: no hang)
    assert "KILLED" in p.stdout + p.stderr or "signal 9" in p.stdout + p.stderr
