"""The fit loop: training steps, metrics records, evaluation, checkpoints and Ctrl-C.

:class:`Trainer` runs the steps of :class:`~charrnn.training.step.Stepper` over B streams
of the training text. Every ``log_every`` steps it writes a metrics record; every
``eval_every`` steps it scores the model on the validation text and writes the checkpoint,
keeping the best one beside it; every ``sample_every`` steps it prints a sample. Ctrl-C
finishes the step, writes the checkpoint and raises ``TrainingInterrupted``. A run is
assembled by :func:`charrnn.training.run.train`.

On the K ranks of an MPI job (:mod:`charrnn.training.world`) every rank runs this loop
over its own streams. Rank 0 alone evaluates, prints and writes; the validation loss,
the time budget and Ctrl-C are agreed on by all ranks, so every decision below is taken
at the same step everywhere. An error on one rank alone ends the job.
"""

from __future__ import annotations

import contextlib
import json
import math
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from .. import checkpoint as ckpt
from .. import sampling
from ..atomic import sigint_handler
from ..config import TIME_BUDGET
from ..data.batches import Batches
from ..errors import TrainingDiverged, TrainingInterrupted
from .report import Reporter
from .result import LN2, TrainResult
from .step import Stepper
from .world import SINGLE, World

if TYPE_CHECKING:
    from ..data.corpus import Corpus
    from ..model import CharRNN
    from ..train_state import TrainState

RELEASE_EVERY = 256          # steps between dropping mapped corpus pages from the RSS
EVAL_RELEASE_EVERY = 64      # evaluation chunks between the same


class Trainer:
    """Runs the fit loop for one model, corpus and state. Use :func:`charrnn.train`.

    Parameters
    ----------
    model : CharRNN
    corpus : Corpus
    state : TrainState
        Updated as the run goes (steps, position, carried state, best loss, ...).
    checkpoint, best_checkpoint : str or os.PathLike, optional
        Where the state goes at every evaluation and at the end, and where the state at
        the best validation loss goes.
    metrics : str or os.PathLike, optional
        Append JSON-lines metrics records here.
    verbose : bool
    callback : callable, optional
        Called with every metrics record.
    restore_best : bool
        End with the parameters of the best evaluation of this run.
    out : file, optional
        Where progress goes (default ``sys.stdout``).
    world : World
        The ranks training together (the state's ``world_size`` must be its size).
    """

    def __init__(self, model: CharRNN, corpus: Corpus, state: TrainState, *,
                 checkpoint=None, best_checkpoint=None, metrics=None, verbose: bool = True,
                 callback: Callable[[dict], object] | None = None, restore_best: bool = False,
                 out=None, world: World = SINGLE) -> None:
        cfg = state.config
        self.model, self.corpus, self.state, self.cfg = model, corpus, state, cfg
        self.world = world
        self.checkpoint = None if checkpoint is None else Path(checkpoint)
        self.best_checkpoint = None if best_checkpoint is None else Path(best_checkpoint)
        self.metrics_path = (None if metrics is None or not world.root
                             else Path(metrics))
        self.callback, self.restore_best = callback, restore_best
        self.verbose = verbose and world.root
        self.report = Reporter(self.verbose, out)
        train_ids, val_ids = corpus.split(cfg.val_fraction)
        if cfg.eval_max_chars is not None:
            val_ids = val_ids[:cfg.eval_max_chars + 1]
        self.val_ids = val_ids if val_ids.size >= 2 else None
        self.batches = Batches(train_ids, cfg.batch_size, cfg.seq_length, state.position,
                               state.epoch, world.rank, world.size)
        if self.batches.position != state.position:
            state.h.fill(0)                      # a position past this text's streams
        self.n_train = int(train_ids.size)
        self.stepper = Stepper(model, state, self.batches, world)
        self.rng = np.random.default_rng()
        self.rng.bit_generator.state = state.rng_state
        self.history: list[dict] = []
        self._interrupted = False
        self._last_good = (str(self.checkpoint) if self.checkpoint is not None
                           and self.checkpoint.is_file() else None)
        self._best_theta = model.theta.copy() if restore_best else None
        self._best_seen = False
        self._metrics_file = None
        self._eval_seconds = 0.0                 # this call's validation passes

    # ------------------------------------------------------------------ records

    @contextlib.contextmanager
    def _metrics_log(self) -> Iterator[None]:
        if self.metrics_path is not None:
            self.metrics_path.parent.mkdir(parents=True, exist_ok=True)
            self._metrics_file = open(self.metrics_path, "a", encoding="utf-8")
        try:
            yield
        finally:
            if self._metrics_file is not None:
                self._metrics_file.close()
                self._metrics_file = None

    def _emit(self, rec: dict) -> None:
        self.history.append(rec)
        if self._metrics_file is not None:
            self._metrics_file.write(json.dumps(rec) + "\n")
            self._metrics_file.flush()
        if self.callback is not None:
            self.callback(rec)

    def _train_record(self, lr: float, overhead: float) -> dict:
        """A metrics record of the interval since the last one (which it closes)."""
        st, chars = self.state, self.stepper.chars
        T = self.cfg.seq_length
        loss_sum, n, t_start, over_start = self._ivl
        now = time.perf_counter()
        busy = max((now - t_start) - (overhead - over_start), 1e-9)
        per_char = loss_sum / (n * T) if n else None
        rec = {"step": st.step, "epoch": st.epoch, "chars": st.chars_seen,
               "train_loss": per_char,
               "train_bpc": None if per_char is None else per_char / LN2,
               "val_loss": None, "val_bpc": None,
               "chars_per_s": n * chars / busy if n else None,
               "lr": lr, "elapsed": round(st.elapsed, 3)}
        self._ivl = [0.0, 0, now, overhead]
        return rec

    # ------------------------------------------------------------------ pieces

    def _on_sigint(self, signum, frame) -> None:
        # only a flag: printing here could re-enter a print the loop is in the middle of
        self._interrupted = True

    def _sync_state(self, t0: float, elapsed0: float) -> None:
        st = self.state
        st.position, st.epoch = self.batches.position, self.batches.epoch
        st.elapsed = elapsed0 + (time.perf_counter() - t0)

    def _agreed_interrupt(self) -> bool:
        """Whether any rank saw Ctrl-C, the same answer on every rank."""
        return self.world.decide(False, self._interrupted)[1]

    def _save(self, path: Path | None) -> str | None:
        """Write the state to ``path`` (rank 0; every rank must call this)."""
        if path is None:
            return None
        if not np.isfinite(self.model.theta).all():
            # an update overflowed: never replace a good checkpoint with this
            raise TrainingDiverged(self.state.step, math.nan, math.nan, self._last_good,
                                   "the parameters hold NaN or infinite values; "
                                   "no checkpoint was written")
        self.world.gather_rows_(self.state.h)    # every rank's streams, on every rank
        if self.world.root:
            ckpt.save(path, self.model, self.state)
        return str(path)

    def _evaluate(self) -> float | None:
        """Validation loss per character (nats), or None (no validation text, or Ctrl-C
        on rank 0): rank 0's, on every rank."""
        if self.val_ids is None:
            return None
        val = self._validation_loss() if self.world.root else None
        val = self.world.share(val)
        if val is not None and not math.isfinite(val):
            raise TrainingDiverged(self.state.step, val, math.nan, self._last_good,
                                   f"validation loss {val:.4g} nats/char")
        return val

    def _validation_loss(self) -> float | None:
        """The validation pass of this process (None on Ctrl-C)."""
        chunks = 0

        def stop() -> bool:
            nonlocal chunks
            chunks += 1
            if chunks % EVAL_RELEASE_EVERY == 0:     # a long pass must not pile up pages
                self.corpus.release_pages()
            return self._interrupted

        t0 = time.perf_counter()
        r = sampling.evaluate(self.model, self.val_ids, stop=stop)
        self.corpus.release_pages()
        self._eval_seconds += time.perf_counter() - t0
        return None if r is None else r[0] / r[1]

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
        self.report.evaluation(st.step, val, improved)

    def _show_sample(self, rng) -> None:
        cfg = self.cfg
        if self.verbose:
            text = sampling.sample(self.model, cfg.sample_length,
                                   temperature=cfg.sample_temperature, seed=rng)
            self.report.sample(self.state.step, text)
        else:
            # draw the same uniforms unseen, so the saved RNG state does not depend on
            # whether samples were shown
            rng.random((cfg.sample_length, 1))

    # ------------------------------------------------------------------ the loop

    def run(self) -> TrainResult:
        """Train until the step count, the time budget or early stopping ends the run."""
        if not self.world.parallel:
            return self._run()
        try:
            return self._run()
        except (TrainingInterrupted, TrainingDiverged):
            raise                                # seen by every rank at the same step
        except BaseException as e:               # this rank's alone: the others would
            self.world.abort(e)                  # wait for it forever
            raise

    def _run(self) -> TrainResult:
        cfg, st, model = self.cfg, self.state, self.model
        steps, budget = cfg.steps, cfg.time_budget
        if steps is None and budget is None:
            budget = TIME_BUDGET
        log_every, eval_every, sample_every = cfg.log_every, cfg.eval_every, cfg.sample_every
        mapped = self.corpus.cache_path is not None
        step, batches = self.stepper.step, self.batches

        n_val = 0 if self.val_ids is None else self.val_ids.size
        self.report.header(model, self.corpus, cfg, st.step, self.n_train, n_val, steps,
                           budget, self.checkpoint, self.world.size)
        with contextlib.ExitStack() as stack:
            stack.enter_context(self._metrics_log())
            stack.enter_context(sigint_handler(self._on_sigint))  # Ctrl-C: finish the step
            stack.enter_context(self.report.progress_bar(steps))
            # the step's guard reports overflow itself, as one error, not NumPy warnings
            stack.enter_context(np.errstate(over="ignore", invalid="ignore",
                                            divide="ignore"))
            stack.callback(self._sync_position)
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
            while True:
                if steps is not None and done >= steps:
                    stopped = "steps"
                    break
                over = budget is not None and time.perf_counter() - t0 >= budget
                over, interrupted = self.world.decide(over, self._interrupted)
                if over:
                    stopped = "time"
                    break
                if interrupted:
                    self._interrupted = True
                    break
                L, lr = step(self._last_good)
                done += 1
                self._ivl[0] += L
                self._ivl[1] += 1
                self.report.stepped()

                is_log = st.step % log_every == 0
                is_eval = eval_every and st.step % eval_every == 0
                if is_log or is_eval:
                    t1 = time.perf_counter()
                    self._sync_state(t0, elapsed0)
                    rec = self._train_record(lr, overhead)
                    if rec["train_loss"] is not None:
                        train_loss = rec["train_loss"]
                    if is_log:
                        self.report.progress(rec)
                    if is_eval:
                        val = self._evaluate()
                        last_eval = st.step
                        if val is None and self._agreed_interrupt():
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
                        self.report.print(f"early stop: no better validation loss in "
                                          f"{st.bad_evals} evaluations")
                        break
                if sample_every and st.step % sample_every == 0:
                    t1 = time.perf_counter()
                    self._show_sample(self.rng)
                    overhead += time.perf_counter() - t1
                if mapped and st.step % RELEASE_EVERY == 0:
                    self.corpus.release_pages()

            if self._agreed_interrupt():
                self.report.print(f"interrupted at step {st.step:,}"
                                  + (": saving the checkpoint" if self.checkpoint else ""))
                self._sync_state(t0, elapsed0)
                raise TrainingInterrupted(st.step, self._save(self.checkpoint))

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
            if self._agreed_interrupt():
                self._sync_state(t0, elapsed0)
                raise TrainingInterrupted(st.step, self._save(self.checkpoint))
            if sample_every and done and st.step % sample_every != 0:
                # a generator of its own, so the saved sample RNG continues as if unbroken
                self._show_sample(np.random.default_rng([cfg.seed, st.step]))
            self._sync_state(t0, elapsed0)
            path = self._save(self.checkpoint)
            overhead += time.perf_counter() - t1

        if self.restore_best and self._best_seen:
            with model._lock:
                model.theta[...] = self._best_theta
        wall = time.perf_counter() - t0
        cps = done * self.stepper.chars / max(wall - overhead, 1e-9)
        best = self.best_checkpoint
        result = TrainResult(model=model, step=st.step, steps_run=done, stopped=stopped,
                             train_loss=train_loss, val_loss=val,
                             best_val_loss=st.best_val_loss, best_step=st.best_step,
                             chars_per_s=cps, elapsed=wall,
                             eval_seconds=self._eval_seconds, checkpoint=path,
                             best_checkpoint=(str(best) if best is not None
                                              and st.best_step is not None
                                              and best.is_file() else None),
                             history=self.history)
        self.report.footer(result)
        return result

    def _sync_position(self) -> None:
        self.state.position, self.state.epoch = self.batches.position, self.batches.epoch
