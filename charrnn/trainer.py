"""The training loop: truncated BPTT over B streams, evaluation, checkpoints, Ctrl-C.

:func:`train` (and ``CharRNN.fit``, a thin wrapper) assembles a run: it reads the text
(:mod:`charrnn.corpus`), builds or continues the model, its optimizer and the carried
state, and hands them to a :class:`Trainer`. One step is

    X, Y <- the next T ids of each of the B streams       (preallocated int32 buffers)
    L, grad, h <- loss_and_grads(X, Y, h)                 (state carried in place)
    norm <- ||grad||                                      (the NaN/Inf guard's input)
    theta <- optimizer update with clipping               (one fused pass)
    stop if L or norm is not finite                       (then nothing was updated)

(the lines after the first in one kernel call, ``train_step``) and allocates nothing
but a few Python floats. Every ``eval_every`` steps the model is
scored on the validation text and the checkpoint written; the best one is kept beside
it. Ctrl-C finishes the step, writes the checkpoint and raises ``TrainingInterrupted``.
"""

from __future__ import annotations

import json
import math
import os
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from . import checkpoint as ckpt
from .atomic import sigint_handler
from .data.batches import Batches
from .data.corpus import Corpus
from .data.corpus import load as load_corpus
from . import sampling
from .config import TIME_BUDGET, TrainConfig, config_fields
from .errors import CorpusError, TrainingDiverged, TrainingInterrupted
from .model import CharRNN
from .optim import make_optimizer

LN2 = math.log(2.0)
RELEASE_EVERY = 256          # steps between dropping mapped corpus pages from the RSS


@dataclass
class TrainResult:
    """What a call of :func:`train` did.

    Attributes
    ----------
    model : CharRNN
    step : int
        The model's total step count.
    steps_run : int
        Steps run in this call.
    stopped : str
        "steps", "time" or "early_stop".
    train_loss : float or None
        Mean training loss per character (nats) over the last logging interval.
    val_loss : float or None
        The last validation loss per character (nats).
    best_val_loss : float or None
    best_step : int or None
    chars_per_s : float
        Training throughput of this call (evaluation and saving excluded).
    elapsed : float
        Wall seconds of this call.
    checkpoint, best_checkpoint : str or None
        The files written.
    history : list of dict
        The metrics records (as in the JSON-lines log).
    """

    model: CharRNN
    step: int
    steps_run: int
    stopped: str
    train_loss: float | None
    val_loss: float | None
    best_val_loss: float | None
    best_step: int | None
    chars_per_s: float
    elapsed: float
    checkpoint: str | None = None
    best_checkpoint: str | None = None
    history: list = field(default_factory=list)

    @property
    def best_val_bpc(self) -> float | None:
        """The best validation loss in bits per character."""
        return None if self.best_val_loss is None else self.best_val_loss / LN2


def default_paths(checkpoint) -> tuple[Path, Path]:
    """The best-checkpoint and metrics paths that go with a checkpoint path.

    ``run.ckpt.npz`` gives ``run.best.ckpt.npz`` and ``run.metrics.jsonl``.
    """
    p = Path(checkpoint)
    name = p.name
    for suffix in (".ckpt.npz", ".npz", ".ckpt"):
        if name.endswith(suffix) and len(name) > len(suffix):
            stem = name[:-len(suffix)]
            break
    else:
        stem, suffix = name, ""
    best = p.with_name(f"{stem}.best{suffix or '.ckpt.npz'}")
    return best, p.with_name(f"{stem}.metrics.jsonl")


def _fmt_time(s: float) -> str:
    s = int(round(s))
    if s >= 3600:
        return f"{s // 3600}:{s // 60 % 60:02d}:{s % 60:02d}"
    return f"{s // 60}:{s % 60:02d}"


class Trainer:
    """Runs the fit loop for one model, corpus, config and state. Use :func:`train`."""

    def __init__(self, model: CharRNN, corpus: Corpus, state: ckpt.TrainState, *,
                 checkpoint=None, best_checkpoint=None, metrics=None, verbose: bool = True,
                 callback: Callable[[dict], object] | None = None, restore_best: bool = False,
                 out=None) -> None:
        cfg = state.config
        self.model, self.corpus, self.state, self.cfg = model, corpus, state, cfg
        self.checkpoint = None if checkpoint is None else Path(checkpoint)
        self.best_checkpoint = None if best_checkpoint is None else Path(best_checkpoint)
        self.metrics_path = None if metrics is None else Path(metrics)
        self.verbose, self.callback, self.restore_best = verbose, callback, restore_best
        self.out = out if out is not None else sys.stdout
        train_ids, val_ids = corpus.split(cfg.val_fraction)
        if cfg.eval_max_chars is not None:
            val_ids = val_ids[:cfg.eval_max_chars + 1]
        self.val_ids = val_ids if val_ids.size >= 2 else None
        self.batches = Batches(train_ids, cfg.batch_size, cfg.seq_length,
                                          state.position, state.epoch)
        if self.batches.position != state.position:
            state.h.fill(0)                      # a position past this text's streams
        self.n_train = int(train_ids.size)
        B, T = cfg.batch_size, cfg.seq_length
        self.X = np.zeros((B, T), np.int32)      # the step's ids, filled in place
        self.Y = np.zeros((B, T), np.int32)
        self.rng = np.random.default_rng()
        self.rng.bit_generator.state = state.rng_state
        self.history: list[dict] = []
        self._interrupted = False
        self._last_good = (str(self.checkpoint) if self.checkpoint is not None
                           and self.checkpoint.is_file() else None)
        self._best_theta = model.theta.copy() if restore_best else None
        self._best_seen = False
        self._bar = None
        self._metrics_file = None

    # ------------------------------------------------------------------ output

    def _print(self, msg: str) -> None:
        if not self.verbose:
            return
        if self._bar is not None:
            self._bar.write(msg, file=self.out)
        else:
            print(msg, file=self.out, flush=True)

    def _emit(self, rec: dict) -> None:
        self.history.append(rec)
        if self._metrics_file is not None:
            self._metrics_file.write(json.dumps(rec) + "\n")
            self._metrics_file.flush()
        if self.callback is not None:
            self.callback(rec)

    def _open_bar(self, total):
        if not self.verbose:
            return None
        try:
            isatty = self.out.isatty()
        except (AttributeError, ValueError):
            isatty = False
        if not isatty:
            return None
        try:
            from tqdm import tqdm
        except ImportError:
            return None
        return tqdm(total=total, unit="step", file=self.out, dynamic_ncols=True, leave=True)

    # ------------------------------------------------------------------ signals

    def _on_sigint(self, signum, frame) -> None:
        # only a flag: printing here could re-enter a print the loop is in the middle of
        self._interrupted = True

    # ------------------------------------------------------------------ pieces

    def _sync_state(self, t0: float, elapsed0: float) -> None:
        st = self.state
        st.position, st.epoch = self.batches.position, self.batches.epoch
        st.elapsed = elapsed0 + (time.perf_counter() - t0)

    def _save(self, path: Path | None) -> str | None:
        if path is None:
            return None
        if not np.isfinite(self.model.theta).all():
            # an update overflowed: never replace a good checkpoint with this
            raise TrainingDiverged(self.state.step, math.nan, math.nan, self._last_good,
                                   "the parameters hold NaN or infinite values; "
                                   "no checkpoint was written")
        ckpt.save(path, self.model, self.state)
        return str(path)

    def _evaluate(self) -> float | None:
        """Validation loss per character (nats), or None (no validation text, or Ctrl-C)."""
        if self.val_ids is None:
            return None
        chunks = 0

        def stop() -> bool:
            nonlocal chunks
            chunks += 1
            if chunks % 64 == 0:                 # keep a long pass from piling up pages
                self.corpus.release_pages()
            return self._interrupted

        r = sampling.evaluate(self.model, self.val_ids, stop=stop)
        self.corpus.release_pages()
        if r is None:
            return None
        val = r[0] / r[1]
        if not math.isfinite(val):
            raise TrainingDiverged(self.state.step, val, math.nan, self._last_good,
                                   f"validation loss {val:.4g} nats/char")
        return val

    def _sample_text(self, rng) -> str:
        cfg = self.cfg
        return sampling.sample(self.model, cfg.sample_length,
                               temperature=cfg.sample_temperature, seed=rng)

    def _show_sample(self, rng) -> None:
        if self.verbose:
            text = self._sample_text(rng)
            self._print(f"--- sample at step {self.state.step} ---\n{text}\n---")
        else:
            # draw the same uniforms unseen, so the saved RNG state does not depend on
            # whether samples were shown
            rng.random((self.cfg.sample_length, 1))

    # ------------------------------------------------------------------ the loop

    def run(self) -> TrainResult:
        cfg, st, model = self.cfg, self.state, self.model
        theta, opt, h = model.theta, st.optimizer, st.h
        X, Y, batches = self.X, self.Y, self.batches
        B, T = cfg.batch_size, cfg.seq_length
        steps, budget = cfg.steps, cfg.time_budget
        if steps is None and budget is None:
            budget = TIME_BUDGET
        clip_kind, clip = cfg.clip_kind, cfg.clip
        log_every, eval_every, sample_every = cfg.log_every, cfg.eval_every, cfg.sample_every
        mapped = self.corpus.cache_path is not None
        lock, train_step = model._lock, opt.train_step

        self._header(steps, budget)
        if self.metrics_path is not None:
            self.metrics_path.parent.mkdir(parents=True, exist_ok=True)
            self._metrics_file = open(self.metrics_path, "a", encoding="utf-8")
        interrupts = sigint_handler(self._on_sigint)      # Ctrl-C: finish the step, save
        interrupts.__enter__()
        self._bar = self._open_bar(steps)
        t0 = time.perf_counter()
        elapsed0 = st.elapsed
        overhead = 0.0                       # seconds of evaluation, samples and saving
        done = 0
        stopped = "steps"
        last_eval = -1
        val = None
        lr = cfg.lr_at(st.step, batches.epoch)   # the last update's (for the records)
        self._ivl = [0.0, 0, t0, 0.0]        # loss sum, steps, start, overhead at start
        train_loss = None
        # the guard below reports overflow itself, as one error instead of NumPy warnings
        errstate = np.errstate(over="ignore", invalid="ignore", divide="ignore")
        errstate.__enter__()
        try:
            while True:
                if steps is not None and done >= steps:
                    stopped = "steps"
                    break
                if budget is not None and time.perf_counter() - t0 >= budget:
                    stopped = "time"
                    break
                if self._interrupted:
                    break
                with lock:
                    if batches.next_into(X, Y):
                        h.fill(0)                # a new pass over the text: reset the state
                    lr = cfg.lr_at(st.step, batches.epoch)
                    # forward, BPTT, norm, clip and update in one kernel call; nothing
                    # is updated when the loss or the norm is not finite
                    L, norm = train_step(model, X, Y, h, clip_kind, clip, lr)
                    if not (math.isfinite(L) and math.isfinite(norm)):
                        raise TrainingDiverged(st.step + 1, L / T, norm, self._last_good)
                st.step += 1
                done += 1
                st.chars_seen += B * T
                self._ivl[0] += L
                self._ivl[1] += 1
                if self._bar is not None:
                    self._bar.update(1)

                is_log = st.step % log_every == 0
                is_eval = eval_every and st.step % eval_every == 0
                if is_log or is_eval:
                    t1 = time.perf_counter()
                    self._sync_state(t0, elapsed0)
                    rec = self._train_record(lr, overhead)
                    if rec["train_loss"] is not None:
                        train_loss = rec["train_loss"]
                    if is_log:
                        self._log_line(rec)
                    if is_eval:
                        val = self._evaluate()
                        last_eval = st.step
                        if self._interrupted and val is None:
                            self._emit(rec)
                            overhead += time.perf_counter() - t1
                            break
                        self._after_eval(rec, val)
                        self._sync_state(t0, elapsed0)
                        self._last_good = self._save(self.checkpoint) or self._last_good
                    self._emit(rec)
                    overhead += time.perf_counter() - t1
                    if is_eval and cfg.patience is not None and st.bad_evals >= cfg.patience:
                        stopped = "early_stop"
                        self._print(f"early stop: no better validation loss in "
                                    f"{st.bad_evals} evaluations")
                        break
                if sample_every and st.step % sample_every == 0:
                    t1 = time.perf_counter()
                    self._show_sample(self.rng)
                    overhead += time.perf_counter() - t1
                if mapped and st.step % RELEASE_EVERY == 0:
                    self.corpus.release_pages()

            if self._interrupted:
                self._print(f"interrupted at step {st.step:,}"
                            + (": saving the checkpoint" if self.checkpoint else ""))
                self._sync_state(t0, elapsed0)
                path = self._save(self.checkpoint)
                raise TrainingInterrupted(st.step, path)

            # the end: a last evaluation (unless this step had one), a sample, the file
            t1 = time.perf_counter()
            if self._ivl[1]:
                self._sync_state(t0, elapsed0)
                rec = self._train_record(lr, overhead)
                train_loss = rec["train_loss"]
            else:
                rec = None
            if last_eval != st.step and self.val_ids is not None and done:
                val = self._evaluate()
                if val is not None:
                    if rec is None:
                        self._sync_state(t0, elapsed0)
                        rec = self._train_record(lr, overhead)
                    self._after_eval(rec, val)
            if rec is not None:
                self._emit(rec)
            if self._interrupted:
                self._sync_state(t0, elapsed0)
                raise TrainingInterrupted(st.step, self._save(self.checkpoint))
            if sample_every and done and st.step % sample_every != 0:
                # a generator of its own, so the saved sample RNG continues as if unbroken
                self._show_sample(np.random.default_rng([cfg.seed, st.step]))
            self._sync_state(t0, elapsed0)
            path = self._save(self.checkpoint)
            overhead += time.perf_counter() - t1
        finally:
            errstate.__exit__(None, None, None)
            if self._bar is not None:
                self._bar.close()
                self._bar = None
            interrupts.__exit__(None, None, None)
            if self._metrics_file is not None:
                self._metrics_file.close()
                self._metrics_file = None
            self.state.position, self.state.epoch = batches.position, batches.epoch

        if self.restore_best and self._best_seen:
            with lock:
                theta[...] = self._best_theta
        wall = time.perf_counter() - t0
        cps = done * B * T / max(wall - overhead, 1e-9)
        result = TrainResult(model=model, step=st.step, steps_run=done, stopped=stopped,
                             train_loss=train_loss, val_loss=val,
                             best_val_loss=st.best_val_loss, best_step=st.best_step,
                             chars_per_s=cps, elapsed=wall, checkpoint=path,
                             best_checkpoint=(str(self.best_checkpoint)
                                              if self.best_checkpoint is not None
                                              and st.best_step is not None
                                              and self.best_checkpoint.is_file() else None),
                             history=self.history)
        self._footer(result)
        return result

    def _train_record(self, lr: float, overhead: float) -> dict:
        """A metrics record of the interval since the last one (which it closes)."""
        st, T = self.state, self.cfg.seq_length
        loss_sum, n, t_start, over_start = self._ivl
        now = time.perf_counter()
        busy = max((now - t_start) - (overhead - over_start), 1e-9)
        per_char = loss_sum / (n * T) if n else None
        B = self.cfg.batch_size
        rec = {"step": st.step, "epoch": st.epoch, "chars": st.chars_seen,
               "train_loss": per_char,
               "train_bpc": None if per_char is None else per_char / LN2,
               "val_loss": None, "val_bpc": None,
               "chars_per_s": n * B * T / busy if n else None,
               "lr": lr, "elapsed": round(st.elapsed, 3)}
        self._ivl = [0.0, 0, now, overhead]
        return rec

    def _after_eval(self, rec: dict, val: float | None) -> None:
        st = self.state
        if val is None:
            return
        rec["val_loss"], rec["val_bpc"] = val, val / LN2
        improved = st.best_val_loss is None or val < st.best_val_loss
        if improved:
            st.best_val_loss, st.best_step, st.bad_evals = val, st.step, 0
            if self._best_theta is not None:
                self._best_theta[...] = self.model.theta
                self._best_seen = True
            self._save(self.best_checkpoint)
        else:
            st.bad_evals += 1
        self._print(f"step {st.step:>7} | val loss {val:.4f} nats/char "
                    f"({val / LN2:.3f} bits/char){'  * best' if improved else ''}")

    def _log_line(self, rec: dict) -> None:
        if rec["train_loss"] is None:
            return
        msg = (f"step {rec['step']:>7} | loss {rec['train_loss']:.4f} nats/char "
               f"({rec['train_bpc']:.3f} bits) | {rec['chars_per_s']:,.0f} chars/s | "
               f"lr {rec['lr']:.3g} | {_fmt_time(rec['elapsed'])}")
        if self._bar is not None:
            self._bar.set_postfix_str(f"loss {rec['train_loss']:.3f} "
                                      f"bpc {rec['train_bpc']:.3f} "
                                      f"{rec['chars_per_s']:,.0f} chars/s", refresh=False)
        else:
            self._print(msg)

    def _header(self, steps, budget) -> None:
        cfg, st, m, c = self.cfg, self.state, self.model, self.corpus
        n_val = 0 if self.val_ids is None else self.val_ids.size
        stop = " or ".join(x for x in ((f"{steps:,} steps" if steps else ""),
                                       (f"{budget:g} s" if budget else "")) if x)
        clip = "no clipping" if cfg.clip_kind is None else f"clip {cfg.clip_kind} {cfg.clip:g}"
        lines = [
            f"text: {c.source} ({len(c):,} chars, {len(m.vocab)} distinct); "
            f"train {self.n_train:,}, validation {n_val:,}",
            f"model: H={m.hidden_size}, {m.num_params:,} parameters, {m.dtype.name}, "
            f"backend {m.backend}",
            f"training: B={cfg.batch_size}, T={cfg.seq_length}, {cfg.optimizer} "
            f"{cfg.describe_lr()}, {clip}; stop after {stop}"
            + (f"; resuming at step {st.step:,}" if st.step else ""),
        ]
        if self.checkpoint is not None:
            lines.append(f"checkpoint: {self.checkpoint}")
        for line in lines:
            self._print(line)

    def _footer(self, r: TrainResult) -> None:
        self._print(f"done: {r.steps_run:,} steps this run ({r.stopped}), step {r.step:,} "
                    f"in all, {_fmt_time(r.elapsed)}")
        if r.checkpoint:
            self._print(f"checkpoint: {r.checkpoint}")
        if r.best_val_loss is not None:
            extra = f" ({r.best_checkpoint})" if r.best_checkpoint else ""
            self._print(f"best validation loss: {r.best_val_loss:.4f} nats/char "
                        f"({r.best_val_bpc:.3f} bits/char) at step {r.best_step:,}{extra}")
        self._print(f"throughput: {r.chars_per_s:,.0f} chars/s")


# ----------------------------------------------------------------------------- assembly

def _resume_corpus(state: ckpt.TrainState | None):
    """What to train on when no text is given: the text the checkpoint was trained on."""
    if state is None:
        return None
    src = state.corpus.get("source")
    if src in (None, "<stdlib>"):
        return None
    if src == "<text>":
        raise CorpusError("this model was trained on an in-memory text: give it again "
                          "to continue training")
    if not os.path.isfile(src):
        raise CorpusError(f"the text this model was trained on ({src}) is not there any "
                          f"more: give a text file to continue training")
    return Path(src)


def train(data=None, *, model: CharRNN | None = None, config: TrainConfig | None = None,
          checkpoint=None, best_checkpoint=None, metrics=None, resume: bool = True,
          verbose: bool = True, callback: Callable[[dict], object] | None = None,
          backend: str = "auto", cache_dir=None, restore_best: bool = False,
          out=None, **controls) -> TrainResult:
    """Train a character-level RNN on a text.

    Parameters
    ----------
    data : str, os.PathLike, Corpus or None
        A path (or a ``str`` naming an existing file), the text itself, or None for the
        text the model was trained on (when it has a training state) or else the built-in
        corpus, Python's standard-library source.
    model : CharRNN, optional
        Continue this model; a model loaded from a checkpoint (or trained before) carries
        its optimizer state, data position and carried state, and continues exactly.
        Without one, a model is built from the text's vocabulary and the config.
    config : TrainConfig, optional
        The base controls (default ``TrainConfig()``, or the model's own when resuming).
    checkpoint : str or os.PathLike, optional
        Write the training state here at every evaluation, at the end and on Ctrl-C.
    best_checkpoint : str or os.PathLike, optional
        Where the best-validation state goes; by default beside ``checkpoint``
        (``run.ckpt.npz`` -> ``run.best.ckpt.npz``).
    metrics : str or os.PathLike, optional
        Append JSON-lines metrics records here.
    resume : bool
        False starts a fresh optimizer and data walk even if ``model`` has a state.
    verbose : bool
        Print progress lines (or a tqdm bar on a terminal), evaluations and samples.
    callback : callable, optional
        Called with every metrics record (a dict).
    backend : {"auto", "cython", "numpy"}
        For a new model.
    cache_dir : str or os.PathLike, optional
        Where large texts' id files go (default: the user's cache folder).
    restore_best : bool
        End with the parameters of the best evaluation of this call.
    out : file, optional
        Where progress goes (default ``sys.stdout``).
    **controls
        Any :class:`~charrnn.config.TrainConfig` field: ``steps``, ``time_budget``,
        ``batch_size``, ``seq_length``, ``optimizer``, ``lr``, ``clip_kind``, ``clip``,
        ``lr_decay``, ``lr_decay_every``, ``lr_decay_after``, ``eval_every``, ``patience``, ``log_every``,
        ``sample_every``, ``hidden_size``, ``dtype``, ``seed``, ...

    Returns
    -------
    TrainResult

    Raises
    ------
    TrainingDiverged
        A loss or gradient norm was NaN or infinite; that step applied no update and no
        checkpoint was written after it.
    TrainingInterrupted
        Ctrl-C: the step finished and the state was saved to ``checkpoint``.
    CorpusError
        The text is unusable (empty, too short, not UTF-8, characters outside the
        model's vocabulary).
    """
    bad = sorted(set(controls) - set(config_fields()))
    if bad:
        raise TypeError(f"unknown training control(s): {', '.join(bad)}")
    if model is not None and not isinstance(model, CharRNN):
        raise TypeError(f"model must be a CharRNN, not {type(model).__name__}")
    if config is not None and not isinstance(config, TrainConfig):
        raise TypeError(f"config must be a TrainConfig, not {type(config).__name__}")
    prior: ckpt.TrainState | None = getattr(model, "_train_state", None)
    state = prior if resume else None

    if prior is not None:
        base = config if config is not None else prior.config.continued()
    else:
        base = config if config is not None else TrainConfig()
        if model is not None:
            base = base.replace(hidden_size=model.hidden_size, dtype=model.dtype.name,
                                seed=int(model.seed))
    cfg = base.replace(**controls).validate()
    if model is not None:
        ref = state.config if state is not None else base
        name = ref.changed(cfg, TrainConfig.FIXED if state is not None else TrainConfig.MODEL)
        if name is not None:
            raise ValueError(f"{name} cannot change when continuing a model: it has "
                             f"{getattr(ref, name)!r}, asked for {getattr(cfg, name)!r}")

    if data is None and model is not None:
        data = _resume_corpus(state)
    corpus = load_corpus(data, vocab=None if model is None else model.vocab,
                             encoding=cfg.encoding, normalize_newlines=cfg.normalize_newlines,
                             cache_dir=cache_dir)
    if model is None:
        model = CharRNN(corpus.vocab, cfg.hidden_size, cfg.dtype, cfg.seed, backend)
    H = model.hidden_size

    if state is None:
        opt = make_optimizer(cfg.optimizer, model.num_params, model.dtype, cfg.lr)
        state = ckpt.TrainState(
            config=cfg, optimizer=opt, h=np.zeros((cfg.batch_size, H), model.dtype),
            rng_state=np.random.default_rng(cfg.seed).bit_generator.state,
            corpus=corpus.fingerprint)
    else:
        state.config = cfg
        state.optimizer.lr = cfg.learning_rate
        same = (state.corpus.get("sha256") == corpus.sha256
                and state.corpus.get("chars") == len(corpus))
        if not same:
            if verbose:
                print("note: this text differs from the one the checkpoint was trained on; "
                      "the walk over it starts at its beginning", file=out or sys.stdout)
            state.position, state.epoch = 0, 0
            state.h.fill(0)
        state.corpus = corpus.fingerprint

    if checkpoint is not None and best_checkpoint is None:
        best_checkpoint = default_paths(checkpoint)[0]
    trainer = Trainer(model, corpus, state, checkpoint=checkpoint,
                      best_checkpoint=best_checkpoint, metrics=metrics, verbose=verbose,
                      callback=callback, restore_best=restore_best, out=out)
    model._train_state = state
    return trainer.run()
