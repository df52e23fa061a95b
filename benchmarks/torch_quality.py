"""The PyTorch peer's validation loss after a training time budget, for the Quality table.

The model as a PyTorch user would train it: ``nn.RNN(V, H, tanh)`` (``--cell lstm``:
``nn.LSTM``, ``--cell gru``: ``nn.GRU``; ``--num-layers L``, ``--dropout p``) over one-hot
inputs and ``nn.Linear(H, V)`` (``torch_peer.make_model``), B contiguous streams of the
training text with the state carried (truncated BPTT), cross-entropy averaged over the
B*T predictions (PyTorch's default; ``--loss sum`` uses charrnn's sum over T, mean over
B), ``clip_grad_norm_`` and Adam. With ``--embedding``, the textbook model instead (PyTorch's
``word_language_model`` example and most character-RNN tutorials): ``nn.Embedding(V, H)``
then ``nn.LSTM(H, H, L, dropout=p)`` (or the cell chosen) then ``nn.Linear(H, V)``,
PyTorch's default initialisation. Dropout is PyTorch's between the layers and, as
charrnn's, on the top layer's states before the output layer. The text and its split are
charrnn's (``Corpus``, the last 10% held out), and every ``--eval-every`` steps the
weights are copied into a ``CharRNN`` of the same cell and depth and scored with
charrnn's own evaluation, so the validation loss means exactly what ``charrnn train``
reports. Evaluation time is not counted in the budget.

    env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE \\
        python benchmarks/torch_quality.py ../shared/data/tinyshakespeare.txt \\
        --time-budget 600 --metrics torch.jsonl
    # the textbook model of the quality target: Embedding -> LSTM -> Linear, Adam 2e-3, clip 5
    python benchmarks/torch_quality.py ../shared/data/tinyshakespeare.txt \
        --embedding --cell lstm --time-budget 600

Prints the best validation loss and writes one JSON line per evaluation.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

import torch_peer  # noqa: E402

from charrnn import CharRNN, Corpus  # noqa: E402
from charrnn.sampling import evaluate  # noqa: E402


def to_charrnn(rnn, out, vocab, encoder=None, backend: str = "auto") -> CharRNN:
    """A float32 CharRNN of the torch model's cell and depth holding its weights
    (``CharRNN.from_torch_state``: the two hidden biases of a cell with one summed; with
    an embedding E, layer 0's input weights ``W_ih @ E.T``: the same function)."""
    return CharRNN.from_torch_state(torch_peer.state_dict(rnn, out, encoder), vocab,
                                    "float32", backend=backend)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("file", type=Path)
    p.add_argument("--hidden-size", type=int, default=512)
    p.add_argument("--batch-size", type=int, default=64)
    p.add_argument("--seq-length", type=int, default=100)
    p.add_argument("--lr", type=float, default=2e-3)
    p.add_argument("--clip", type=float, default=5.0, help="global-norm clip")
    p.add_argument("--loss", choices=("mean", "sum"), default="mean")
    p.add_argument("--embedding", action="store_true",
                   help="the textbook model: nn.Embedding(V, H) -> nn.RNN/LSTM/GRU(H, H) "
                        "-> nn.Linear")
    p.add_argument("--cell", choices=torch_peer.CELLS, default="rnn")
    p.add_argument("--num-layers", type=int, default=1)
    p.add_argument("--dropout", type=float, default=0.0,
                   help="rate between the layers and before the output layer")
    p.add_argument("--time-budget", type=float, default=600.0)
    p.add_argument("--steps", type=int, default=None,
                   help="stop after this many steps (as well as after the time budget)")
    p.add_argument("--eval-every", type=int, default=500)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--metrics", type=Path, default=None)
    args = p.parse_args(argv)
    if not torch_peer.available():
        print(f"torch_quality: {torch_peer.IMPORT_ERROR}", file=sys.stderr)
        return 1
    torch, F, nn = torch_peer.torch, torch_peer.F, torch_peer.nn
    torch.set_num_threads(args.threads)

    corpus = Corpus.from_file(args.file)
    train_ids, val_ids = corpus.split(0.1)
    V, H, B, T = len(corpus.vocab), args.hidden_size, args.batch_size, args.seq_length
    L = (len(train_ids) - 1) // B                          # B contiguous streams
    ids = torch.from_numpy(np.asarray(train_ids, np.int64))
    xs = ids[:B * L].reshape(B, L).T.contiguous()          # (L, B): nn.RNN's layout
    ys = ids[1:B * L + 1].reshape(B, L).T.contiguous()
    model = dict(cell=args.cell, num_layers=args.num_layers, dropout=args.dropout)
    if args.embedding:
        torch.manual_seed(args.seed)
        encoder = nn.Embedding(V, H)
        rnn, out = torch_peer.recurrent(input_size=H, H=H, **model), nn.Linear(H, V)
    else:
        encoder = None
        rnn, out = torch_peer.make_model(V, H, "float32", args.seed, **model)
    params = (list(rnn.parameters()) + list(out.parameters())
              + (list(encoder.parameters()) if encoder is not None else []))
    opt = torch.optim.Adam(params, lr=args.lr)

    def validation_loss() -> float:
        nats, n = evaluate(to_charrnn(rnn, out, corpus.vocab, encoder), val_ids)
        return nats / n

    log = open(args.metrics, "w", encoding="utf-8") if args.metrics else None
    h = torch_peer.zero_state(rnn, B)
    pos = step = 0
    best = (math.inf, 0)
    spent = 0.0                                            # training seconds only
    while spent < args.time_budget and (args.steps is None or step < args.steps):
        t0 = time.perf_counter()
        if pos + T > L:                                     # a new pass: reset the state
            pos, h = 0, torch_peer.zero_state(rnn, B)
        X, Y = xs[pos:pos + T], ys[pos:pos + T]
        hs, h_last = rnn(encoder(X) if encoder is not None else F.one_hot(X, V).float(), h)
        z = out(torch_peer.top(rnn, hs))
        loss = F.cross_entropy(z.reshape(T * B, V), Y.reshape(T * B))
        opt.zero_grad()
        (loss if args.loss == "mean" else loss * T).backward()
        nn.utils.clip_grad_norm_(params, args.clip)
        opt.step()
        h = torch_peer.detach_state(h_last)
        pos += T
        step += 1
        spent += time.perf_counter() - t0
        if step % args.eval_every == 0:
            val = validation_loss()
            best = min(best, (val, step))
            rec = {"step": step, "train_loss": loss.item(), "val_loss": val,
                   "elapsed": round(spent, 2), "chars_per_s": step * B * T / spent}
            print(json.dumps(rec), flush=True)
            if log:
                log.write(json.dumps(rec) + "\n")
                log.flush()
    best = min(best, (validation_loss(), step))
    print(f"steps: {step:,} in {spent:.0f} s ({step * B * T / spent:,.0f} chars/s)")
    print(f"best validation loss: {best[0]:.4f} nats/char at step {best[1]:,}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
