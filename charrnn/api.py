"""The top of the library: :func:`train` and :func:`load`, the functions that make models.

This module sits above :mod:`charrnn.model`, which sits above sampling, checkpoints and
training: those take a model, and models are built only here and in ``CharRNN`` itself.
``charrnn.train`` and ``charrnn.load`` are these functions.
"""

from __future__ import annotations

from collections.abc import Callable

from . import checkpoint as ckpt
from .config import TrainConfig
from .model import CharRNN
from .training import run
from .training.result import TrainResult
from .train_state import TrainState


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
        ``lr_decay``, ``lr_decay_every``, ``lr_decay_after``, ``eval_every``, ``patience``,
        ``log_every``, ``sample_every``, ``hidden_size``, ``cell``, ``num_layers``,
        ``dropout``, ``dtype``, ``seed``, ...

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
    plan = run.prepare(data, model, config=config, resume=resume, cache_dir=cache_dir,
                       **controls)
    if model is None:
        cfg = plan.config
        model = CharRNN(plan.corpus.vocab, cfg.hidden_size, cfg.dtype, cfg.seed, backend,
                        cfg.cell, cfg.num_layers, cfg.dropout)
    return run.start(plan, model, checkpoint=checkpoint, best_checkpoint=best_checkpoint,
                     metrics=metrics, verbose=verbose, callback=callback,
                     restore_best=restore_best, out=out)


def load(path, backend: str = "auto") -> CharRNN:
    """Load a model from a checkpoint written by ``model.save`` or by training.

    The training state, if the file has one, rides along on the model, so ``model.fit``
    on the same text continues the run exactly where it stopped.

    Parameters
    ----------
    path : str or os.PathLike
    backend : {"auto", "cython", "numpy"}

    Returns
    -------
    CharRNN

    Raises
    ------
    CheckpointError
        The file is not a valid checkpoint (see :func:`charrnn.checkpoint.read`).
    OSError
        The file cannot be opened.
    """
    return CharRNN.load(path, backend)


def read(path, backend: str = "auto") -> tuple[CharRNN, TrainState | None, dict]:
    """A checkpoint's model, its training state (None for a model-only file) and its
    metadata (the file's ``meta`` record, as ``charrnn info --json`` prints it).

    Parameters and errors as :func:`load`; the state is also on ``model._train_state``.
    """
    parts = ckpt.read(path)
    return CharRNN.from_checkpoint(parts, backend), parts.state, parts.meta
