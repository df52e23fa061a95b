"""The PyTorch peer's validation loss after a training time budget, for the Quality table.

The vanilla RNN as a PyTorch user would train it: ``nn.RNN(V, H, tanh)`` over one-hot
inputs and ``nn.Linear(H, V)`` (``torch_peer.make_model``), B contiguous streams of the
training text with the state carried (truncated BPTT), cross-entropy averaged over the
B*T predictions (PyTorch's default; ``--loss sum`` uses charrnn's sum over T, mean over
B), ``clip_grad_norm_`` and Adam. With ``--embedding``, the textbook model instead (PyTorch's
``word_language_model`` example and most character-RNN tutorials): ``nn.Embedding(V, H)``
then ``nn.RNN(H, H, tanh)`` then ``nn.Linear(H, V)``, PyTorch's default initialisation. The text and its split are charrnn's (``Corpus``, the
last 10% held out), and every ``--eval-every`` steps the weights are copied into a
``CharRNN`` and scored with charrnn's own evaluation, so the validation loss means
exactly what ``charrnn train`` reports. Evaluation time is not counted in the budget.

    env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE \\
        python benchmarks/torch_quality.py ../shared/data/tinyshakespeare.txt \\
        --time-budget 600 --metrics torch.jsonl

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


def to_charrnn(rnn, out, vocab, encoder=None) -> CharRNN:
    """A float32 CharRNN holding the torch model's weights (its two hidden biases summed;
    with an embedding E, the input weights ``W_ih @ E.T``: the same function)."""
    m = CharRNN(vocab, rnn.hidden_size, "float32")
    with torch_peer.torch.no_grad():
        Wih = rnn.weight_ih_l0.double()
        if encoder is not None:
            Wih = Wih @ encoder.weight.double().T                # (H, V)
        m.params["Wxh"][...] = Wih.numpy()
        m.params["Whh"][...] = rnn.weight_hh_l0.numpy()
        m.params["bh"][...] = (rnn.bias_ih_l0 + rnn.bias_hh_l0).numpy()
        m.params["Why"][...] = out.weight.numpy()
        m.params["by"][...] = out.bias.numpy()
    return m


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
                   help="the textbook model: nn.Embedding(V, H) -> nn.RNN(H, H) -> nn.Linear")
    p.add_argument("--time-budget", type=float, default=600.0)
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
    if args.embedding:
        torch.manual_seed(args.seed)
        encoder = nn.Embedding(V, H)
        rnn, out = nn.RNN(H, H, nonlinearity="tanh"), nn.Linear(H, V)
    else:
        encoder = None
        rnn, out = torch_peer.make_model(V, H, "float32", args.seed)
    params = (list(rnn.parameters()) + list(out.parameters())
              + (list(encoder.parameters()) if encoder is not None else []))
    opt = torch.optim.Adam(params, lr=args.lr)

    log = open(args.metrics, "w", encoding="utf-8") if args.metrics else None
    h = torch.zeros(1, B, H)
    pos = step = 0
    best = (math.inf, 0)
    spent = 0.0                                            # training seconds only
    while spent < args.time_budget:
        t0 = time.perf_counter()
        if pos + T > L:                                     # a new pass: reset the state
            pos, h = 0, torch.zeros(1, B, H)
        X, Y = xs[pos:pos + T], ys[pos:pos + T]
        hs, h_last = rnn(encoder(X) if encoder is not None else F.one_hot(X, V).float(), h)
        loss = F.cross_entropy(out(hs).reshape(T * B, V), Y.reshape(T * B))
        opt.zero_grad()
        (loss if args.loss == "mean" else loss * T).backward()
        nn.utils.clip_grad_norm_(params, args.clip)
        opt.step()
        h = h_last.detach()
        pos += T
        step += 1
        spent += time.perf_counter() - t0
        if step % args.eval_every == 0:
            nats, n = evaluate(to_charrnn(rnn, out, corpus.vocab, encoder), val_ids)
            val = nats / n
            best = min(best, (val, step))
            rec = {"step": step, "train_loss": loss.item(), "val_loss": val,
                   "elapsed": round(spent, 2), "chars_per_s": step * B * T / spent}
            print(json.dumps(rec), flush=True)
            if log:
                log.write(json.dumps(rec) + "\n")
                log.flush()
    nats, n = evaluate(to_charrnn(rnn, out, corpus.vocab, encoder), val_ids)
    best = min(best, (nats / n, step))
    print(f"steps: {step:,} in {spent:.0f} s ({step * B * T / spent:,.0f} chars/s)")
    print(f"best validation loss: {best[0]:.4f} nats/char at step {best[1]:,}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
