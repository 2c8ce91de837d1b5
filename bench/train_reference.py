"""PyTorch side of the gptd training-speed benchmark.

Trains the reference GPT (tests/reference/gpt_reference.py) on a character-level
text file and prints exactly one line on stdout:
    torch tokens_per_s=<float> ms_per_step=<float> params=<int>

The caller should set GOMP_SPINCOUNT=0 in the environment: idle OpenMP threads
otherwise busy-spin and distort a comparison with the C code. It has to be set
before the process starts (libgomp reads it at load time), so we only warn.
"""
import argparse
import os
import sys
import time

import torch

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)),
                                "..", "tests", "reference"))
import gpt_reference as ref  # noqa: E402


def parse_args():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", required=True, help="training text file")
    ap.add_argument("--n-layer", type=int, default=4)
    ap.add_argument("--n-head", type=int, default=4)
    ap.add_argument("--n-embd", type=int, default=128)
    ap.add_argument("--block-size", type=int, default=64)
    ap.add_argument("--batch-size", type=int, default=16)
    ap.add_argument("--steps", type=int, default=50, help="timed steps")
    ap.add_argument("--warmup", type=int, default=5, help="untimed steps before timing")
    ap.add_argument("--activation", choices=["relu", "gelu"], default="gelu")
    ap.add_argument("--dropout", type=float, default=0.0)
    ap.add_argument("--lr", type=float, default=1e-3)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--qkv-bias", action="store_true", help="bias on c_attn (default off)")
    ap.add_argument("--tied-head", action="store_true", help="logits = x @ wte.T (default off)")
    ap.add_argument("--seed", type=int, default=1337)
    return ap.parse_args()


def main():
    args = parse_args()
    ref.warn_if_openmp_spins()
    torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)

    with open(args.data, "r", encoding="utf-8") as f:
        text = f.read()
    chars = sorted(set(text))
    stoi = {ch: i for i, ch in enumerate(chars)}
    data = torch.tensor([stoi[c] for c in text], dtype=torch.long)
    n_train = int(0.9 * len(data))
    train = data[:n_train]  # the last 10% is validation; unused when only timing
    T, B = args.block_size, args.batch_size
    if len(train) <= T + 1:
        sys.exit("error: training split shorter than block_size + 1")

    def get_batch():
        ix = torch.randint(len(train) - T, (B,))
        x = torch.stack([train[i:i + T] for i in ix])
        y = torch.stack([train[i + 1:i + 1 + T] for i in ix])
        return x, y

    cfg = ref.GPTConfig(vocab_size=len(chars), n_layer=args.n_layer, n_head=args.n_head,
                        n_embd=args.n_embd, block_size=T, activation=args.activation,
                        qkv_bias=args.qkv_bias, tied_head=args.tied_head,
                        dropout=args.dropout)
    model = ref.GPT(cfg)  # GPT-2 init, float32
    model.train()
    opt = ref.make_optimizer(model, lr=args.lr)
    n_params = sum(p.numel() for p in model.parameters())  # tied wte counted once

    def step():
        x, y = get_batch()
        _, loss = model(x, y)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        return loss

    for _ in range(args.warmup):
        step()
    t0 = time.perf_counter()
    for _ in range(args.steps):
        loss = step()
    loss.item()  # make sure all work is done before stopping the clock
    elapsed = time.perf_counter() - t0

    steps = max(args.steps, 1)
    print("torch tokens_per_s=%.1f ms_per_step=%.3f params=%d"
          % (args.steps * B * T / elapsed, 1000.0 * elapsed / steps, n_params))


if __name__ == "__main__":
    main()
