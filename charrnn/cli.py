"""The ``charrnn`` command line: train, sample, score, info, plot (and bench).

Exit codes: 0 success; 1 an error (a missing or bad file, a corrupt checkpoint, a text
that cannot be used); 2 a usage error (a bad flag or flag value); 3 training diverged
(NaN or infinite loss); 130 interrupted by Ctrl-C (the checkpoint is saved first).
Errors are one line on stderr, without a traceback.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import math
import os
import sys
import warnings
from pathlib import Path

from . import __version__
from .atomic import sigint_handler
from .errors import CharRNNError, CheckpointError, TrainingDiverged, TrainingInterrupted
from .limits import INT_MAX

EXIT_OK, EXIT_ERROR, EXIT_USAGE, EXIT_DIVERGED, EXIT_INTERRUPTED = 0, 1, 2, 3, 130
PROG = "charrnn"


class UsageError(Exception):
    """A bad command line: exit code 2."""


class _Parser(argparse.ArgumentParser):
    def error(self, message):                       # one line, no usage block
        raise UsageError(f"{self.prog}: {message} (see {self.prog} --help)")


class _Formatter(argparse.ArgumentDefaultsHelpFormatter):
    """Shows defaults, except None/False ones and where the help text already says."""

    def _get_help_string(self, action):
        if (action.default in (None, False) or action.default is argparse.SUPPRESS
                or "default" in (action.help or "")):
            return action.help
        return super()._get_help_string(action)


# ----------------------------------------------------------------------------- value types

def _type(fn, what):
    def convert(s):
        try:
            v = fn(s)
        except OverflowError:
            raise argparse.ArgumentTypeError(f"{what} below 2**31, got {s!r}") from None
        except (TypeError, ValueError):
            raise argparse.ArgumentTypeError(f"{what}, got {s!r}") from None
        return v
    convert.__name__ = what
    return convert


def _int_from(s, lo):
    v = int(s)
    if v < lo:
        raise ValueError
    if v > INT_MAX:
        raise OverflowError
    return v


def _pos_int(s):
    return _int_from(s, 1)


def _nonneg_int(s):
    return _int_from(s, 0)


def _pos_float(s):
    v = float(s)
    if not (math.isfinite(v) and v > 0):
        raise ValueError
    return v


def _nonneg_float(s):
    v = float(s)
    if not (math.isfinite(v) and v >= 0):
        raise ValueError
    return v


def _fraction(s):
    v = float(s)
    if not 0 <= v < 1:
        raise ValueError
    return v


def _decay(s):
    v = float(s)
    if not 0 < v <= 1:
        raise ValueError
    return v


def _decay_every(s):
    return "epoch" if s == "epoch" else _pos_int(s)


POS_INT = _type(_pos_int, "a positive integer")
NONNEG_INT = _type(_nonneg_int, "an integer >= 0")
POS_FLOAT = _type(_pos_float, "a positive number")
NONNEG_FLOAT = _type(_nonneg_float, "a number >= 0")
FRACTION = _type(_fraction, "a number in [0, 1)")
DECAY = _type(_decay, "a number in (0, 1]")
DECAY_EVERY = _type(_decay_every, "a positive integer or 'epoch'")


# ----------------------------------------------------------------------------- parser

def _default_first(default: str, names) -> tuple[str, ...]:
    """The choices of a flag: its default, then the others in their order."""
    return (default, *(n for n in names if n != default))


def _train_args(p: argparse.ArgumentParser) -> None:
    from . import config as C
    D = C.TrainConfig()
    p.add_argument("file", nargs="?", metavar="FILE",
                   help="the text to train on (UTF-8). Without it: the text of --resume's "
                        "checkpoint, else the built-in corpus (Python's standard library "
                        "source)")
    p.add_argument("-o", "--output", metavar="CKPT",
                   help=f"where to write the checkpoint (default: {C.CHECKPOINT}, or the "
                        f"--resume file); the best-validation state goes beside it as "
                        f"NAME.best.ckpt.npz")
    p.add_argument("--resume", metavar="CKPT",
                   help="continue training from this checkpoint, exactly where it stopped")
    p.add_argument("--overwrite", action="store_true",
                   help="start afresh even if the output checkpoint already exists (it "
                        "is refused otherwise, so an earlier run is never lost by accident)")
    c = C.CLASSIC
    p.add_argument("--classic", action="store_true",
                   help=f"min-char-rnn's settings: H={c['hidden_size']}, T={c['seq_length']}, "
                        f"B={c['batch_size']}, {c['optimizer'].capitalize()} lr {c['lr']:g}, "
                        f"element-wise clipping to {c['clip']:g} (other flags still override)")
    g = p.add_argument_group("model")
    g.add_argument("--hidden-size", type=POS_INT, metavar="H",
                   help=f"hidden units of each layer (default: {D.hidden_size})")
    g.add_argument("--cell", choices=_default_first(D.cell, C.CELLS),
                   help=f"the recurrent cell: min-char-rnn's tanh RNN, LSTM or GRU "
                        f"(default: {D.cell})")
    g.add_argument("--num-layers", type=POS_INT, metavar="L",
                   help=f"layers of the cell stacked (default: {D.num_layers})")
    g.add_argument("--dropout", type=FRACTION, metavar="P",
                   help=f"dropout rate on the input of every layer above the first and "
                        f"of the output layer, in training (default: {D.dropout:g})")
    g.add_argument("--dtype", choices=C.DTYPES,
                   help=f"parameter dtype (default: {D.dtype})")
    g.add_argument("--seed", type=NONNEG_INT,
                   help=f"seed of the initial weights and the samples (default: {D.seed})")
    g.add_argument("--backend", choices=C.BACKENDS, default="auto", help="kernels to run")
    g = p.add_argument_group("optimization")
    g.add_argument("--batch-size", type=POS_INT, metavar="B",
                   help=f"parallel streams (default: {D.batch_size})")
    g.add_argument("--seq-length", type=POS_INT, metavar="T",
                   help=f"characters per stream per step, the BPTT length "
                        f"(default: {D.seq_length})")
    g.add_argument("--optimizer", choices=_default_first(D.optimizer, sorted(C.DEFAULT_LR)),
                   help=f"(default: {D.optimizer})")
    lrs = sorted(C.DEFAULT_LR.items(), key=lambda item: (item[1], item[0]))
    g.add_argument("--lr", type=POS_FLOAT,
                   help="learning rate (default: "
                        + ", ".join(f"{name} {lr:g}" for name, lr in lrs) + ")")
    g.add_argument("--clip-kind", choices=_default_first(
                       D.clip_kind, [k or "none" for k in C.CLIP_KINDS]),
                   help=f"gradient clipping: global norm, element-wise value, or none "
                        f"(default: {D.clip_kind})")
    g.add_argument("--clip", type=POS_FLOAT, help=f"clip threshold (default: {D.clip:g})")
    g.add_argument("--lr-decay", type=DECAY, metavar="GAMMA",
                   help=f"multiply the lr by GAMMA every --lr-decay-every "
                        f"(default: {D.lr_decay:g}" + (", constant)" if D.lr_decay == 1
                                                       else ")"))
    g.add_argument("--lr-decay-every", type=DECAY_EVERY, metavar="N|epoch",
                   help=f"steps between decays, or 'epoch': once per pass over the "
                        f"training text (default: {D.lr_decay_every})")
    g.add_argument("--lr-decay-after", type=NONNEG_INT, metavar="N",
                   help=f"steps (or passes, with --lr-decay-every epoch) at the full lr "
                        f"before the decay starts (default: {D.lr_decay_after})")
    g = p.add_argument_group("length of the run")
    g.add_argument("--steps", type=POS_INT,
                   help="steps to train in this run (default: none, see --time-budget)")
    g.add_argument("--time-budget", type=POS_FLOAT, metavar="SECONDS",
                   help=f"seconds to train in this run (default: {C.TIME_BUDGET:g} when "
                        f"--steps is not given; with both, whichever comes first)")
    g.add_argument("--patience", type=POS_INT, metavar="N",
                   help="stop after N evaluations without a better validation loss "
                        "(default: off)")
    g = p.add_argument_group("evaluation and output")
    g.add_argument("--eval-every", type=NONNEG_INT, metavar="N",
                   help=f"evaluate on the validation text and write the checkpoint every N "
                        f"steps; 0: only at the end (default: {D.eval_every})")
    g.add_argument("--val-fraction", type=FRACTION,
                   help=f"share of the text, from its end, held out for validation "
                        f"(default: {D.val_fraction:g})")
    g.add_argument("--eval-max-chars", type=POS_INT, metavar="N",
                   help="evaluate on at most N validation characters (default: all)")
    g.add_argument("--log-every", type=POS_INT, metavar="N",
                   help=f"steps between progress lines (default: {D.log_every})")
    g.add_argument("--sample-every", type=NONNEG_INT, metavar="N",
                   help=f"print a sample every N steps, 0 for none "
                        f"(default: {D.sample_every})")
    g.add_argument("--sample-length", type=POS_INT, metavar="N",
                   help=f"characters per sample (default: {D.sample_length})")
    g.add_argument("--sample-temperature", type=NONNEG_FLOAT, metavar="T",
                   help=f"temperature of the printed samples (default: "
                        f"{D.sample_temperature:g})")
    g.add_argument("--metrics", metavar="FILE",
                   help="append JSON-lines metrics here (default: NAME.metrics.jsonl "
                        "beside the checkpoint)")
    g.add_argument("--no-metrics", action="store_true", help="write no metrics file")
    g.add_argument("-q", "--quiet", action="store_true",
                   help="print only the summary at the end")
    g = p.add_argument_group("reading the text")
    g.add_argument("--encoding", choices=C.ENCODINGS,
                   help=f"decode the file as UTF-8, or as latin-1 (any bytes, one char per "
                        f"byte) (default: {D.encoding})")
    g.add_argument("--normalize-newlines", action="store_true", default=None,
                   help="turn CRLF and CR line endings into LF (default: keep them)")
    g.add_argument("--cache-dir", metavar="DIR",
                   help="where large texts are encoded to (default: $CHARRNN_CACHE_DIR, "
                        "else $XDG_CACHE_HOME/charrnn or ~/.cache/charrnn)")


def _draw_args(p: argparse.ArgumentParser) -> None:
    from .config import TEMPERATURE
    p.add_argument("--temperature", type=NONNEG_FLOAT, default=TEMPERATURE,
                   help="below 1: more conservative; 0: always the most likely character")
    p.add_argument("--top-k", type=POS_INT, metavar="K",
                   help="draw only among the K most likely characters (default: all)")
    p.add_argument("--seed", type=NONNEG_INT,
                   help="the same seed gives the same text (default: random)")


def build_parser(argv: list[str] | None = None) -> argparse.ArgumentParser:
    """The argument parser. ``argv`` decides whether ``bench``'s own flags are loaded."""
    from . import config as C
    p = _Parser(prog=PROG, formatter_class=_Formatter,
                description="A fast character-level vanilla RNN language model "
                            "(min-char-rnn made real).",
                epilog="Run 'charrnn COMMAND --help' for a command's flags. Exit codes: "
                       "0 ok, 1 error, 2 usage, 3 training diverged, 130 interrupted.")
    p.add_argument("--version", action="version",
                   version=f"{PROG} {__version__}")
    sub = p.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)

    s = sub.add_parser("train", formatter_class=_Formatter, help="train on a text",
                       description="Train a model on a text file (or the built-in corpus) "
                                   "and write a checkpoint. Ctrl-C saves and exits (130).")
    _train_args(s)
    s.set_defaults(handler=cmd_train)

    s = sub.add_parser("sample", formatter_class=_Formatter, help="generate text",
                       description="Stream text sampled from a checkpoint to stdout.")
    s.add_argument("checkpoint", metavar="CKPT")
    s.add_argument("-n", "--length", type=NONNEG_INT, default=500, metavar="N",
                   help="characters to generate")
    g = s.add_mutually_exclusive_group()
    g.add_argument("--prime", metavar="TEXT", default="",
                   help="text to start from (printed first)")
    g.add_argument("--prime-file", metavar="FILE", help="read the prime from a file")
    _draw_args(s)
    s.add_argument("--skip-unknown", action="store_true",
                   help="drop prime characters that are not in the vocabulary")
    s.add_argument("--backend", choices=C.BACKENDS, default="auto")
    s.set_defaults(handler=cmd_sample)

    s = sub.add_parser("score", formatter_class=_Formatter, help="bits per character of a text",
                       description="Print the bits per character of a text under a model.")
    s.add_argument("checkpoint", metavar="CKPT")
    s.add_argument("file", metavar="FILE")
    s.add_argument("--skip-unknown", action="store_true",
                   help="drop characters that are not in the vocabulary")
    s.add_argument("--encoding", choices=C.ENCODINGS,
                   help="how to decode FILE (default: as the training text was)")
    s.add_argument("--normalize-newlines", action="store_true", default=None,
                   help="turn CRLF and CR into LF (default: as the training text was)")
    s.add_argument("--backend", choices=C.BACKENDS, default="auto")
    s.set_defaults(handler=cmd_score)

    s = sub.add_parser("info", formatter_class=_Formatter, help="describe a checkpoint",
                       description="Print a checkpoint's config, vocabulary, step, "
                                   "validation loss and parameter count.")
    s.add_argument("checkpoint", metavar="CKPT")
    s.add_argument("--json", action="store_true", help="print the metadata as JSON")
    s.set_defaults(handler=cmd_info)

    s = sub.add_parser("plot", formatter_class=_Formatter, help="plot a metrics log",
                       description="Draw training and validation loss against steps and "
                                   "time from a metrics file (needs matplotlib).")
    s.add_argument("metrics", metavar="METRICS", help="a .metrics.jsonl file from training")
    s.add_argument("-o", "--output", default="loss.png", metavar="PNG")
    s.set_defaults(handler=cmd_plot)

    s = sub.add_parser("bench", formatter_class=_Formatter, help="run the benchmarks",
                       description="Benchmark the backends (and peers, where installed).")
    s.set_defaults(handler=cmd_bench)
    p.bench_error = None
    if argv and _first_positional(argv) == "bench":
        try:
            from . import bench
            bench.add_arguments(s)
        except Exception as e:                      # missing or broken: say so when run
            p.bench_error = f"{type(e).__name__}: {e}"
    return p


def _first_positional(argv: list[str]) -> str | None:
    for a in argv:
        if not a.startswith("-"):
            return a
    return None


# ----------------------------------------------------------------------------- helpers

def _err(msg: str) -> None:
    print(f"{PROG}: error: {' '.join(str(msg).split())}", file=sys.stderr, flush=True)


def _os_error(e: OSError) -> str:
    if e.filename is not None and e.strerror:
        return f"{e.filename}: {e.strerror}"
    return str(e)


def _load(path, backend="auto"):
    from .api import load
    return load(path, backend)


def _text_options(model, args) -> tuple[str, bool]:
    st = getattr(model, "_train_state", None)
    enc = st.config.encoding if st is not None else "utf-8"
    norm = st.config.normalize_newlines if st is not None else False
    if getattr(args, "encoding", None):
        enc = args.encoding
    if getattr(args, "normalize_newlines", None):
        norm = True
    return enc, norm


# ----------------------------------------------------------------------------- commands

def cmd_train(args) -> int:
    from . import config as C
    from .api import train
    from .training.report import summary
    from .training.run import default_paths
    from .training.world import follower

    controls = {}
    for name in C.config_fields():
        v = getattr(args, name, None)
        if v is not None:
            controls[name] = None if (name == "clip_kind" and v == "none") else v
    if args.resume and args.classic:
        raise UsageError(f"{PROG} train: --classic cannot be combined with --resume "
                         f"(the checkpoint has its settings)")
    model = None
    if args.resume:
        model = _load(args.resume, args.backend)
        st = model._train_state
        if st is not None:
            name = st.config.changed(st.config.replace(**controls))
            if name is not None:
                raise UsageError(
                    f"{PROG} train: --{name.replace('_', '-')} cannot change when "
                    f"resuming (the checkpoint has {getattr(st.config, name)})")
            base = st.config.continued()
        else:
            base = C.TrainConfig(hidden_size=model.hidden_size, cell=model.cell,
                                 num_layers=model.num_layers, dropout=model.dropout,
                                 dtype=model.dtype.name)
    else:
        base = C.TrainConfig.classic() if args.classic else C.TrainConfig()
    cfg = base.replace(**controls)        # the flags' types checked each value; train() the rest

    out = Path(args.output or args.resume or C.CHECKPOINT)
    if out.is_dir():
        raise UsageError(f"{PROG} train: -o {out} is a directory; give a file name")
    best, metrics = default_paths(out)
    if args.metrics:
        metrics = Path(args.metrics)
    if args.no_metrics:
        metrics = None
    if args.file is not None and not os.path.exists(args.file):
        raise FileNotFoundError(2, "No such file or directory", args.file)
    resumed_here = (args.resume is not None
                    and os.path.abspath(args.resume) == os.path.abspath(out))
    if out.exists() and not resumed_here and not args.overwrite:
        raise UsageError(f"{PROG} train: {out} already exists (an earlier run?); continue "
                         f"it with --resume {out}, write elsewhere with -o, or start afresh "
                         f"over it with --overwrite")
    data = Path(args.file) if args.file is not None else None
    if getattr(args, "noted", None):
        raise KeyboardInterrupt                     # a Ctrl-C an import guard swallowed
    result = train(data, model=model, config=cfg, checkpoint=out, best_checkpoint=best,
                   metrics=metrics, verbose=not args.quiet, backend=args.backend,
                   cache_dir=args.cache_dir)
    if args.quiet and not follower():
        for line in summary(result, best_file=False):
            print(line)
    return EXIT_OK


def cmd_sample(args) -> int:
    from . import sampling
    from .data.text import read_text

    model = _load(args.checkpoint, args.backend)
    if args.top_k is not None and args.top_k > model.vocab_size:
        raise UsageError(f"{PROG} sample: --top-k must be at most the vocabulary size "
                         f"{model.vocab_size}, got {args.top_k}")
    prime = args.prime
    if args.prime_file is not None:
        enc, norm = _text_options(model, args)
        prime = read_text(args.prime_file, enc, norm)
    ids = sampling.encode_text(model.vocab, prime, "the prime", args.skip_unknown,
                               "--skip-unknown drops them")
    out = sys.stdout
    try:
        out.reconfigure(errors="backslashreplace")
    except (AttributeError, ValueError):
        pass
    out.write(model.vocab.decode(ids) if args.skip_unknown else prime)
    out.flush()
    for chunk in sampling.generate_ids(model, args.length, ids, args.temperature,
                                       args.top_k, args.seed):
        out.write(model.vocab.decode(chunk[:, 0]))
        out.flush()
    return EXIT_OK


def cmd_score(args) -> int:
    from . import sampling
    from .data.corpus import Corpus
    from .data.text import read_text

    model = _load(args.checkpoint, args.backend)
    enc, norm = _text_options(model, args)
    if args.skip_unknown:
        ids = sampling.encode_text(model.vocab, read_text(args.file, enc, norm), args.file,
                                   True)
    else:
        try:
            ids = Corpus.from_file(args.file, vocab=model.vocab, encoding=enc,
                                   normalize_newlines=norm).ids
        except CharRNNError as e:
            if "vocabulary" in str(e):
                raise CharRNNError(f"{e} (--skip-unknown drops them)") from None
            raise
    if ids.size < 2:
        raise CharRNNError(f"{args.file}: scoring needs at least 2 characters, "
                           f"got {ids.size}")
    total, n = sampling.evaluate(model, ids)
    nats = total / n
    print(f"{nats / math.log(2):.4f} bits/char ({nats:.4f} nats/char over {n:,} "
          f"predicted character{'' if n == 1 else 's'})")
    return EXIT_OK


def _vocab_preview(chars: str, limit: int = 100) -> str:
    s = repr(chars[:limit])
    return s + (" ..." if len(chars) > limit else "")


def cmd_info(args) -> int:
    from .api import read

    model, st, meta = read(args.checkpoint)
    if args.json:
        print(json.dumps(meta, indent=2))
        return EXIT_OK
    L2 = math.log(2)
    print(f"checkpoint: {args.checkpoint} ({meta['format']} v{meta['version']}, "
          f"written by charrnn {meta.get('charrnn_version', '?')})")
    print(f"model: {model.describe()}, V={model.vocab_size}, {model.dtype.name}, "
          f"{model.num_params:,} parameters")
    print(f"vocabulary: {model.vocab_size} characters: {_vocab_preview(model.vocab.chars)}")
    if st is None:
        print("training state: none (an untrained or exported model)")
        return EXIT_OK
    c = st.config
    h = int(st.elapsed)
    print(f"step: {st.step:,} (epoch {st.epoch}, {st.chars_seen:,} characters seen, "
          f"{h // 3600}:{h // 60 % 60:02d}:{h % 60:02d} of training)")
    if st.best_val_loss is not None:
        print(f"validation loss: best {st.best_val_loss:.4f} nats/char "
              f"({st.best_val_loss / L2:.3f} bits/char) at step {st.best_step:,}")
    else:
        print("validation loss: not evaluated")
    clip = "none" if c.clip_kind is None else f"{c.clip_kind} {c.clip:g}"
    print(f"optimizer: {c.optimizer}, {c.describe_lr()}, clip {clip}, "
          f"{st.optimizer.t:,} updates")
    print(f"config: batch_size={c.batch_size}, seq_length={c.seq_length}, "
          f"eval_every={c.eval_every}, val_fraction={c.val_fraction:g}, seed={c.seed}, "
          f"encoding={c.encoding}, normalize_newlines={c.normalize_newlines}")
    if st.world_size > 1:
        print(f"processes: {st.world_size} (MPI), {st.world_size * c.batch_size} streams "
              f"in all")
    src = st.corpus
    if src:
        print(f"text: {src.get('source')} ({src.get('chars', 0):,} characters, "
              f"sha256 {str(src.get('sha256'))[:16]}...)")
    return EXIT_OK


def cmd_plot(args) -> int:
    from .plot import plot_metrics
    plot_metrics(args.metrics, args.output)
    print(f"wrote {args.output}")
    return EXIT_OK


def cmd_bench(args) -> int:
    from . import bench
    return int(bench.run(args) or 0)


# ----------------------------------------------------------------------------- main

@contextlib.contextmanager
def _sigint_noted():
    """Python's Ctrl-C behaviour (KeyboardInterrupt), plus a note that it happened.

    A KeyboardInterrupt raised inside an extension module's import can come out as
    another exception (NumPy's import turns it into an ImportError), or be swallowed
    by a guard around an optional import; with the note, the command still stops and
    reports it as an interruption, in one line.
    """
    noted: list[bool] = []

    def on_sigint(signum, frame):
        noted.append(True)
        raise KeyboardInterrupt

    with sigint_handler(on_sigint):
        yield noted


def _follower() -> bool:
    """A rank other than 0 of an MPI training run (whose outcome rank 0 reports)."""
    world = sys.modules.get("charrnn.training.world")
    return world is not None and world.follower()


def _note(message, category, filename, lineno, file=None, line=None) -> None:
    print(f"{PROG}: note: {message}", file=sys.stderr, flush=True)


def main(argv: list[str] | None = None) -> int:
    """Run the command line; returns the exit code."""
    argv = sys.argv[1:] if argv is None else list(argv)
    with _sigint_noted() as noted, warnings.catch_warnings():
        warnings.showwarning = _note               # a warning is a one-line note here
        try:
            return _main(argv, noted)
        except BaseException:
            if not noted:
                raise
        print(f"{PROG}: interrupted", file=sys.stderr, flush=True)
        return EXIT_INTERRUPTED


def _main(argv: list[str], noted: list[bool]) -> int:
    try:
        parser = build_parser(argv)                 # imports NumPy, SciPy, the kernels
        if noted:
            # a Ctrl-C during those imports that an import guard turned into a failed
            # optional import (e.g. of the compiled kernels) still stops the command
            raise KeyboardInterrupt
        if parser.bench_error is not None:
            raise CharRNNError(f"the benchmarks are unavailable here ({parser.bench_error})")
        args = parser.parse_args(argv)
        args.noted = noted
        if args.command is None:
            raise UsageError(f"{PROG}: choose a command: train, sample, score, info, plot, "
                             f"bench (see {PROG} --help)")
        return args.handler(args)
    except UsageError as e:
        print(" ".join(str(e).split()), file=sys.stderr, flush=True)
        return EXIT_USAGE
    except TrainingInterrupted as e:
        if _follower():                             # rank 0 says it for every rank
            return EXIT_INTERRUPTED
        print(f"{PROG}: interrupted at step {e.step:,}"
              + (f"; checkpoint saved to {e.checkpoint}" if e.checkpoint else ""),
              file=sys.stderr, flush=True)
        return EXIT_INTERRUPTED
    except KeyboardInterrupt:
        print(f"{PROG}: interrupted", file=sys.stderr, flush=True)
        return EXIT_INTERRUPTED
    except TrainingDiverged as e:
        if not _follower():
            _err(e)
        return EXIT_DIVERGED
    except CheckpointError as e:
        _err(e)
        return EXIT_ERROR
    except BrokenPipeError:
        # the reader went away (e.g. `charrnn sample ... | head`): stop quietly
        try:
            devnull = os.open(os.devnull, os.O_WRONLY)
            os.dup2(devnull, sys.stdout.fileno())
        except (OSError, ValueError):
            pass
        return EXIT_OK
    except (CharRNNError, ValueError) as e:
        _err(e)
        return EXIT_ERROR
    except OSError as e:
        _err(_os_error(e))
        return EXIT_ERROR
    except MemoryError:
        _err("out of memory")
        return EXIT_ERROR


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
