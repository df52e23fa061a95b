"""Step-indexed ablations of the default training run: what makes a model learn faster
per step (``benchmarks/QUALITY.md`` logs the runs and what they showed).

    env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE python benchmarks/ablate.py \\
        ../shared/data/tinyshakespeare.txt --variants default clip500 --steps 1000

Each variant trains the default configuration (``charrnn.train``'s defaults, seed 0)
with one change, for ``--steps`` steps, scoring the whole validation split every
``--eval-every`` steps. Training is deterministic per step, so the losses at fixed steps
compare the variants whatever the machine's speed or load. Prints a table and, with
``--jsonl``, appends one JSON line per variant.

The variants (``VARIANTS``) change the initial weights (drawn after the model's own
initialisation, from a generator of their own) or a training control:

- ``default``: as ``charrnn train``;
- ``clip500``: the global-norm clip at 500 = 5 x T, which is the textbook PyTorch
  model's ``clip_grad_norm_(5)`` on a loss averaged over the T steps (charrnn's loss sums
  them, so its gradient is T times that one);
- ``torch_init``: every parameter uniform in [-1/sqrt(H), 1/sqrt(H)], as PyTorch
  initialises ``nn.RNN`` and ``nn.Linear``;
- ``embed_scale``: ``torch_init``, but ``Wxh`` drawn with the scale the textbook model's
  effective input weights start at: ``weight_ih @ encoder.weight.T`` with an N(0, 1)
  embedding and uniform(+-1/sqrt(H)) weight_ih has entries of variance 1/3;
- ``embed_scale_clip500``: both;
- ``wxh_scale``: the classic initialisation but ``Wxh`` of variance 1/3;
- ``embed_std1``: ``torch_init`` with ``Wxh`` of variance 1;
- ``wxh_std1``, ``wxh_std2``, ``wxh_std4``, ``wxh_std8``: the model's own initialisation
  (the classic one for the classic RNN) but layer 0's input weights (``Wxh``, ``Wx0``)
  of that standard deviation;
- ``fbias1``: an LSTM's forget-gate biases raised by 1 (every layer);
- any other cell or model: ``--controls cell=lstm num_layers=2`` adds controls to every
  variant.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import time
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
DEFAULT_TEXT = HERE.parent.parent / "shared" / "data" / "tinyshakespeare.txt"


def _uniform_all(model, rng) -> None:
    k = 1 / math.sqrt(model.hidden_size)
    model.theta[...] = rng.uniform(-k, k, model.theta.size)


def _embed_scale(model, rng) -> None:
    _uniform_all(model, rng)
    name = model.layout.layers[0].Wx
    model.params[name][...] = rng.standard_normal(model.params[name].shape) / math.sqrt(3)


def _wxh_scale(std):
    def init(model, rng) -> None:
        name = model.layout.layers[0].Wx
        model.params[name][...] = rng.standard_normal(model.params[name].shape) * std
    return init


def _embed_std1(model, rng) -> None:
    _uniform_all(model, rng)
    _wxh_scale(1.0)(model, rng)


def _forget_bias(value):
    def init(model, rng) -> None:
        if model.layout.cell != "lstm":
            raise SystemExit("fbias1: only an LSTM has a forget gate")
        H = model.hidden_size
        for names in model.layout.layers:
            # PyTorch's gate order i, f, g, o: the forget gate's bias is rows H:2H
            model.params[names.bx][H:2 * H] += value
    return init


# name: (what it changes in the initial weights, training controls)
VARIANTS = {
    "default": (None, {}),
    "clip500": (None, {"clip": 500.0}),
    "torch_init": (_uniform_all, {}),
    "embed_scale": (_embed_scale, {}),
    "embed_scale_clip500": (_embed_scale, {"clip": 500.0}),
    "wxh_scale": (_wxh_scale(1 / math.sqrt(3)), {}),
    **{f"wxh_std{x:g}": (_wxh_scale(x), {}) for x in (1, 2, 4, 8)},
    "embed_std1": (_embed_std1, {}),
    "fbias1": (_forget_bias(1.0), {}),
}


def _value(text: str):
    for cast in (int, float):
        try:
            return cast(text)
        except ValueError:
            pass
    return {"none": None, "true": True, "false": False}.get(text.lower(), text)


def run_variant(path: Path, name: str, steps: int, eval_every: int, threads: int,
                controls: dict) -> dict:
    """Train one variant; its validation loss at every ``eval_every`` steps."""
    import charrnn
    from charrnn.bench import pin_threads

    from charrnn.data.corpus import load

    init, extra = VARIANTS[name]
    cfg = charrnn.TrainConfig().replace(**controls)
    model = charrnn.CharRNN(load(path).vocab, cfg.hidden_size, cfg.dtype, cfg.seed, "auto", cfg.cell,
                            cfg.num_layers, cfg.dropout)
    if init is not None:
        init(model, np.random.default_rng(1234))
    t0 = time.perf_counter()
    with pin_threads(threads):
        r = model.fit(path, steps=steps, eval_every=eval_every, sample_every=0,
                      verbose=False, **{**controls, **extra})
    points = [(h["step"], round(h["val_loss"], 4)) for h in r.history
              if h["val_loss"] is not None]
    return {"variant": name, "controls": {**controls, **extra}, "steps": steps,
            "threads": threads, "points": points, "backend": model.backend,
            "seconds": round(time.perf_counter() - t0, 1),
            "when": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("file", type=Path, nargs="?", default=DEFAULT_TEXT)
    ap.add_argument("--variants", nargs="+", choices=sorted(VARIANTS), default=["default"])
    ap.add_argument("--steps", type=int, default=1000)
    ap.add_argument("--eval-every", type=int, default=250)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--controls", nargs="*", default=[], metavar="NAME=VALUE",
                    help="training controls added to every variant (e.g. cell=lstm)")
    ap.add_argument("--jsonl", type=Path, help="append one JSON line per variant here")
    args = ap.parse_args(argv)
    controls = {}
    for item in args.controls:
        name, sep, value = item.partition("=")
        if not sep:
            ap.error(f"--controls takes NAME=VALUE, not {item!r}")
        controls[name] = _value(value)
    rows = []
    for name in args.variants:
        res = run_variant(args.file, name, args.steps, args.eval_every, args.threads,
                          controls)
        rows.append(res)
        print(f"{name}: " + ", ".join(f"{s}: {v:.4f}" for s, v in res["points"])
              + f" ({res['seconds']:.0f} s)", flush=True)
        if args.jsonl:
            with open(args.jsonl, "a") as f:
                f.write(json.dumps(res) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
