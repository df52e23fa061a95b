"""A training run assembled for a model, and the resume policy.

:func:`prepare` checks the controls, decides what a run continues (the model's training
state, unless ``resume=False``) and what may not change, and loads the text;
:func:`start` makes or continues the training state and hands everything to a
:class:`~charrnn.training.loop.Trainer`. :func:`train` is the two for a model that exists
(``CharRNN.fit``); :func:`charrnn.train` builds the model between them when none is given.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from ..config import TrainConfig, config_fields
from ..data.corpus import Corpus
from ..data.corpus import load as load_corpus
from ..errors import CorpusError
from ..optim import make_optimizer
from ..protocol import require_model
from ..train_state import TrainState
from .loop import Trainer
from .result import TrainResult
from .world import world

if TYPE_CHECKING:
    from ..model import CharRNN


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


def _resume_corpus(state: TrainState | None):
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


@dataclass
class Plan:
    """What a run trains on and how: the resolved config, the text, the state it
    continues (None: a fresh optimizer and walk)."""

    config: TrainConfig
    corpus: Corpus
    state: TrainState | None


def prepare(data=None, model: CharRNN | None = None, *, config: TrainConfig | None = None,
            resume: bool = True, cache_dir=None, **controls) -> Plan:
    """Check the controls against the model and its state, and load the text.

    Parameters are those of :func:`charrnn.train`; ``model`` may be None (a model to be
    built from the plan's corpus and config).

    Raises
    ------
    TypeError, ValueError
        An unknown or bad control, or one the model (or the run it continues) fixes.
    CorpusError
        The text is unusable.
    MPIError
        Under an MPI launcher: mpi4py is missing, or another rank failed here.
    """
    with world().together():          # an error on one rank is an error on all
        return _prepare(data, model, config=config, resume=resume, cache_dir=cache_dir,
                        **controls)


def _prepare(data, model, *, config, resume, cache_dir, **controls) -> Plan:
    bad = sorted(set(controls) - set(config_fields()))
    if bad:
        raise TypeError(f"unknown training control(s): {', '.join(bad)}")
    if model is not None:
        require_model(model)
    if config is not None and not isinstance(config, TrainConfig):
        raise TypeError(f"config must be a TrainConfig, not {type(config).__name__}")
    prior: TrainState | None = getattr(model, "_train_state", None)
    state = prior if resume else None

    if prior is not None:
        base = config if config is not None else prior.config.continued()
    else:
        base = config if config is not None else TrainConfig()
        if model is not None:
            base = base.replace(hidden_size=model.hidden_size, dtype=model.dtype.name,
                                cell=model.cell, num_layers=model.num_layers,
                                dropout=model.dropout, seed=int(model.seed))
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
    return Plan(cfg, corpus, state)


def start(plan: Plan, model: CharRNN, *, checkpoint=None, best_checkpoint=None,
          metrics=None, verbose: bool = True,
          callback: Callable[[dict], object] | None = None, restore_best: bool = False,
          out=None) -> TrainResult:
    """Train ``model`` as ``plan`` says; the other parameters are :func:`charrnn.train`'s.

    The training state (new, or the one the plan continues, with the new config) rides
    on the model as ``model._train_state``, so a later run continues this one.

    Under an MPI launcher the run trains on every rank (:mod:`charrnn.training.world`).
    """
    group = world()
    with group.together():
        trainer = _trainer(plan, model, group, checkpoint, best_checkpoint, metrics,
                           verbose, callback, restore_best, out)
    return trainer.run()


def _trainer(plan, model, group, checkpoint, best_checkpoint, metrics, verbose, callback,
             restore_best, out) -> Trainer:
    cfg, corpus, state = plan.config, plan.corpus, plan.state
    K = group.size
    say = verbose and group.root
    if state is None:
        opt = make_optimizer(cfg.optimizer, model.num_params, model.dtype, cfg.lr)
        state = TrainState(
            config=cfg, optimizer=opt,
            h=np.zeros((K * cfg.batch_size, model.state_size), model.dtype),
            rng_state=np.random.default_rng(cfg.seed).bit_generator.state,
            corpus=corpus.fingerprint, world_size=K)
    else:
        state.config = cfg
        state.optimizer.lr = cfg.learning_rate
        same = (state.corpus.get("sha256") == corpus.sha256
                and state.corpus.get("chars") == len(corpus))
        if not same:
            if say:
                print("note: this text differs from the one the checkpoint was trained on; "
                      "the walk over it starts at its beginning", file=out or sys.stdout)
            state.position, state.epoch = 0, 0
            state.h.fill(0)
        elif state.world_size != K:
            if say:
                print(f"note: this run was trained on {state.world_size} process(es) and "
                      f"continues on {K}: the text is cut into {K * cfg.batch_size} "
                      f"streams instead of {state.world_size * cfg.batch_size}, so the walk "
                      f"starts at its beginning with a zero state (the parameters and the "
                      f"optimizer continue)", file=out or sys.stdout)
            state.position, state.epoch = 0, 0
        if state.world_size != K:
            state.h = np.zeros((K * cfg.batch_size, model.state_size), model.dtype)
            state.world_size = K
        state.corpus = corpus.fingerprint

    if checkpoint is not None and best_checkpoint is None:
        best_checkpoint = default_paths(checkpoint)[0]
    trainer = Trainer(model, corpus, state, checkpoint=checkpoint,
                      best_checkpoint=best_checkpoint, metrics=metrics, verbose=verbose,
                      callback=callback, restore_best=restore_best, out=out, world=group)
    model._train_state = state
    return trainer


def train(data, model: CharRNN, *, config: TrainConfig | None = None, checkpoint=None,
          best_checkpoint=None, metrics=None, resume: bool = True, verbose: bool = True,
          callback: Callable[[dict], object] | None = None, cache_dir=None,
          restore_best: bool = False, out=None, **controls) -> TrainResult:
    """Train an existing ``model`` (``CharRNN.fit``); see :func:`charrnn.train`."""
    plan = prepare(data, model, config=config, resume=resume, cache_dir=cache_dir,
                   **controls)
    return start(plan, model, checkpoint=checkpoint, best_checkpoint=best_checkpoint,
                 metrics=metrics, verbose=verbose, callback=callback,
                 restore_best=restore_best, out=out)
