"""What a training run prints: the header, progress lines (or a tqdm progress bar on a
terminal), evaluations, samples and the footer.

Quiet (``verbose=False``) prints nothing. The metrics records themselves are the loop's
(:mod:`charrnn.training.loop`); this module only words them.
"""

from __future__ import annotations

import contextlib
import sys
from collections.abc import Iterator
from typing import TYPE_CHECKING

from .result import LN2, TrainResult

if TYPE_CHECKING:
    from ..config import TrainConfig
    from ..data.corpus import Corpus
    from ..model import CharRNN


def summary(r: TrainResult, best_file: bool = True) -> list[str]:
    """The last lines of a run: its checkpoint, the best validation loss (and, with
    ``best_file``, the file that holds it), the throughput and the share of the time
    that validation took."""
    lines = [f"checkpoint: {r.checkpoint}"] if r.checkpoint else []
    if r.best_val_loss is not None:
        extra = f" ({r.best_checkpoint})" if best_file and r.best_checkpoint else ""
        lines.append(f"best validation loss: {r.best_val_loss:.4f} nats/char "
                     f"({r.best_val_bpc:.3f} bits/char) at step {r.best_step:,}{extra}")
    lines.append(f"throughput: {r.chars_per_s:,.0f} chars/s")
    if r.eval_seconds and r.elapsed > 0:
        lines.append(f"validation: {r.eval_seconds:,.1f} s, {r.eval_seconds / r.elapsed:.1%} "
                     f"of the run")
    return lines


def fmt_time(s: float) -> str:
    """Seconds as ``M:SS``, or ``H:MM:SS`` from an hour on."""
    s = int(round(s))
    if s >= 3600:
        return f"{s // 3600}:{s // 60 % 60:02d}:{s % 60:02d}"
    return f"{s // 60}:{s % 60:02d}"


class Reporter:
    """The console output of one run.

    Parameters
    ----------
    verbose : bool
        False prints nothing.
    out : file, optional
        Where to print (default ``sys.stdout``).
    """

    def __init__(self, verbose: bool = True, out=None) -> None:
        self.verbose = verbose
        self.out = out if out is not None else sys.stdout
        self._bar = None

    def print(self, msg: str) -> None:
        """One message, above the progress bar if there is one."""
        if not self.verbose:
            return
        if self._bar is not None:
            self._bar.write(msg, file=self.out)
        else:
            print(msg, file=self.out, flush=True)

    @contextlib.contextmanager
    def progress_bar(self, total: int | None) -> Iterator[None]:
        """Show a tqdm bar of ``total`` steps while the body runs, when printing to a
        terminal and tqdm is installed (progress lines otherwise)."""
        self._bar = self._open_bar(total)
        try:
            yield
        finally:
            if self._bar is not None:
                self._bar.close()
                self._bar = None

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

    def stepped(self) -> None:
        """One more step on the progress bar."""
        if self._bar is not None:
            self._bar.update(1)

    def header(self, model: CharRNN, corpus: Corpus, cfg: TrainConfig, step: int,
               n_train: int, n_val: int, steps: int | None, budget: float | None,
               checkpoint, world_size: int = 1) -> None:
        """The text, the model, the training controls and the checkpoint of a run."""
        stop = " or ".join(x for x in ((f"{steps:,} steps" if steps else ""),
                                       (f"{budget:g} s" if budget else "")) if x)
        clip = "no clipping" if cfg.clip_kind is None else f"clip {cfg.clip_kind} {cfg.clip:g}"
        lines = [
            f"text: {corpus.source} ({len(corpus):,} chars, {len(model.vocab)} distinct); "
            f"train {n_train:,}, validation {n_val:,}",
            f"model: {model.describe()}, {model.num_params:,} parameters, "
            f"{model.dtype.name}, backend {model.backend}",
            f"training: B={cfg.batch_size}"
            + (f" on each of {world_size} processes ({world_size * cfg.batch_size} "
               f"streams)" if world_size > 1 else "")
            + f", T={cfg.seq_length}, {cfg.optimizer} "
            f"{cfg.describe_lr()}, {clip}; stop after {stop}"
            + (f"; resuming at step {step:,}" if step else ""),
        ]
        if checkpoint is not None:
            lines.append(f"checkpoint: {checkpoint}")
        for line in lines:
            self.print(line)

    def progress(self, rec: dict) -> None:
        """A metrics record as a progress line, or on the bar."""
        if rec["train_loss"] is None:
            return
        if self._bar is not None:
            self._bar.set_postfix_str(f"loss {rec['train_loss']:.3f} "
                                      f"bpc {rec['train_bpc']:.3f} "
                                      f"{rec['chars_per_s']:,.0f} chars/s", refresh=False)
            return
        self.print(f"step {rec['step']:>7} | loss {rec['train_loss']:.4f} nats/char "
                   f"({rec['train_bpc']:.3f} bits) | {rec['chars_per_s']:,.0f} chars/s | "
                   f"lr {rec['lr']:.3g} | {fmt_time(rec['elapsed'])}")

    def evaluation(self, step: int, val: float, best: bool) -> None:
        """A validation loss, marked when it is the best so far."""
        self.print(f"step {step:>7} | val loss {val:.4f} nats/char "
                   f"({val / LN2:.3f} bits/char){'  * best' if best else ''}")

    def sample(self, step: int, text: str) -> None:
        self.print(f"--- sample at step {step} ---\n{text}\n---")

    def footer(self, r: TrainResult) -> None:
        """Steps, the checkpoint, the best validation loss and the throughput of a run."""
        self.print(f"done: {r.steps_run:,} steps this run ({r.stopped}), step {r.step:,} "
                   f"in all, {fmt_time(r.elapsed)}")
        for line in summary(r):
            self.print(line)
