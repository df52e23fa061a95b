"""``charrnn plot``: the training and validation loss of a metrics log, against steps and
against time (matplotlib, an optional dependency: ``pip install "charrnn-blas[plot]"``)."""

from __future__ import annotations

import json
import math

from .errors import CharRNNError


def read_metrics(path) -> list[dict]:
    """The records of a JSON-lines metrics log written by training.

    Raises
    ------
    CharRNNError
        A line that is not JSON or not a metrics record, or no record at all.
    OSError
        The file cannot be read.
    """
    recs = []
    with open(path, encoding="utf-8") as f:
        for i, line in enumerate(f, 1):
            line = line.strip()
            if not line:
                continue
            try:
                r = json.loads(line)
            except ValueError:
                raise CharRNNError(f"{path}:{i}: not a JSON line") from None
            if not isinstance(r, dict) or "step" not in r:
                raise CharRNNError(f"{path}:{i}: not a charrnn metrics record")
            recs.append(r)
    if not recs:
        raise CharRNNError(f"{path}: no metrics records")
    return recs


def plot_metrics(path, output) -> None:
    """Draw the losses of the metrics log at ``path`` into the image file ``output``.

    Two panels share the loss axis (nats per character): against steps, and against the
    training time in seconds, minutes or hours. The title gives the best validation loss.

    Raises
    ------
    CharRNNError
        matplotlib is not installed, or the log is not a metrics log.
    """
    recs = read_metrics(path)
    try:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        raise CharRNNError("plotting needs matplotlib: pip install 'charrnn-blas[plot]'") \
            from None
    tr = [r for r in recs if r.get("train_loss") is not None]
    va = [r for r in recs if r.get("val_loss") is not None]
    span = max((r.get("elapsed") or 0) for r in recs)
    unit, per = (("hours", 3600) if span > 3 * 3600 else ("minutes", 60) if span > 180
                 else ("seconds", 1))
    fig, axes = plt.subplots(1, 2, figsize=(11, 4), sharey=True)
    for ax, key, label, scale in ((axes[0], "step", "step", 1.0),
                                  (axes[1], "elapsed", f"time ({unit})", 1 / per)):
        if tr:
            ax.plot([r.get(key, 0) * scale for r in tr], [r["train_loss"] for r in tr],
                    label="training", lw=1)
        if va:
            ax.plot([r.get(key, 0) * scale for r in va], [r["val_loss"] for r in va],
                    "o-", label="validation", lw=1.5, ms=3)
        ax.set_xlabel(label)
        ax.grid(alpha=0.3)
    axes[0].set_ylabel("loss (nats per character)")
    axes[0].legend()
    if va:
        best = min(va, key=lambda r: r["val_loss"])
        v = best["val_loss"]
        fig.suptitle(f"best validation loss {v:.4f} nats/char ({v / math.log(2):.3f} "
                     f"bits/char) at step {best['step']:,}")
    fig.tight_layout()
    fig.savefig(output, dpi=110)
    plt.close(fig)
