"""Generate the reference fixtures for the C tests of gptd.

Everything is computed in float64 and stored as float32. Initial weights are
drawn in float32 and then widened to float64, so the stored F32 weights are
exactly the weights the float64 reference used.

Run: /usr/bin/python3 tests/reference/make_fixtures.py
"""
import copy
import math
import os
import sys

import numpy as np
import torch

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import gpt_reference as ref  # noqa: E402
import safetensors_io as st  # noqa: E402

FIXTURES = os.path.join(HERE, "fixtures")
B = 4
N_STEPS = 20
LR = 1e-3
WEIGHT_DECAY = 0.01


def f32(t):
    return t.detach().to(torch.float32).cpu().numpy()


def i32(t):
    return t.detach().to(torch.int32).cpu().numpy()


def model_config(activation, qkv_bias, tied_head):
    return ref.GPTConfig(vocab_size=65, n_layer=2, n_head=4, n_embd=64, block_size=32,
                         activation=activation, qkv_bias=qkv_bias, tied_head=tied_head,
                         dropout=0.0)


def metadata_for(cfg):
    return {
        "vocab_size": str(cfg.vocab_size), "n_layer": str(cfg.n_layer),
        "n_head": str(cfg.n_head), "n_embd": str(cfg.n_embd),
        "block_size": str(cfg.block_size), "activation": cfg.activation,
        "qkv_bias": "true" if cfg.qkv_bias else "false",
        "tied_head": "true" if cfg.tied_head else "false",
        "lr": "0.001", "weight_decay": "0.01",
    }


def make_model_fixture(path, cfg, seed):
    torch.manual_seed(seed)
    g = torch.Generator().manual_seed(seed)
    model = ref.GPT(cfg)                 # float32
    ref.init_fixture_(model, generator=g)  # draws in float32 ...
    model = model.double()               # ... then widen exactly to float64
    model.eval()                         # dropout is 0 anyway

    V, T = cfg.vocab_size, cfg.block_size
    x = torch.randint(0, V, (B, T), generator=g)
    y = torch.randint(0, V, (B, T), generator=g)
    steps_x = torch.randint(0, V, (N_STEPS, B, T), generator=g)
    steps_y = torch.randint(0, V, (N_STEPS, B, T), generator=g)

    tensors = {}
    for name, p in model.named_parameters():
        tensors[name] = f32(p)

    # Single forward/backward at the initial weights.
    gmodel = copy.deepcopy(model)
    logits, loss = gmodel(x, y)
    loss.backward()
    tensors["x"] = i32(x)
    tensors["y"] = i32(y)
    tensors["logits"] = f32(logits)
    tensors["loss"] = f32(loss.reshape(1))
    for name, p in gmodel.named_parameters():
        assert p.grad is not None and p.grad.abs().max() > 0, name
        tensors["grad." + name] = f32(p.grad)

    # AdamW trajectory from the same initial weights, loss taken before each update.
    tmodel = copy.deepcopy(model)
    opt = ref.make_optimizer(tmodel, lr=LR, weight_decay=WEIGHT_DECAY)
    losses = []
    for s in range(N_STEPS):
        _, l = tmodel(steps_x[s], steps_y[s])
        losses.append(l.item())
        opt.zero_grad(set_to_none=True)
        l.backward()
        opt.step()
    tensors["steps.x"] = i32(steps_x)
    tensors["steps.y"] = i32(steps_y)
    tensors["steps.loss"] = np.array(losses, dtype=np.float32)

    st.save(path, tensors, metadata_for(cfg))
    print("wrote %s (%d bytes) loss=%.6f steps.loss[0]=%.6f steps.loss[-1]=%.6f"
          % (path, os.path.getsize(path), loss.item(), losses[0], losses[-1]))


def naive_attention(q, k, v, n_head, causal):
    """Deliberately loop-based (independent of gpt_reference.attention)."""
    B, Tq, C = q.shape
    Tk = k.shape[1]
    hs = C // n_head
    scale = 1.0 / math.sqrt(hs)
    rows = []
    for b in range(B):
        for h in range(n_head):
            sl = slice(h * hs, (h + 1) * hs)
            for i in range(Tq):
                keys = range(i + 1) if causal else range(Tk)
                scores = torch.stack([(q[b, i, sl] * k[b, j, sl]).sum() * scale for j in keys])
                w = torch.exp(scores - scores.max())
                w = w / w.sum()
                o = sum(w[n] * v[b, j, sl] for n, j in enumerate(keys))
                rows.append(((b, i, sl), o))
    # assemble without in-place ops on a leaf-dependent tensor, to keep autograd simple
    out = [[[None] * n_head for _ in range(Tq)] for _ in range(B)]
    for (b, i, sl), o in rows:
        out[b][i][sl.start // hs] = o
    return torch.stack([torch.stack([torch.cat(out[b][i]) for i in range(Tq)])
                        for b in range(B)])


def make_attention_fixture(path, seed):
    g = torch.Generator().manual_seed(seed)
    n_head, hs, Bn = 2, 8, 2
    C = n_head * hs

    def rnd(*shape):
        # draw in float32 so the stored inputs are exactly what was used
        return torch.randn(*shape, generator=g).double()

    q, k, v = rnd(Bn, 5, C), rnd(Bn, 7, C), rnd(Bn, 7, C)
    qs, ks, vs = rnd(Bn, 6, C), rnd(Bn, 6, C), rnd(Bn, 6, C)
    dout = rnd(Bn, 5, C)

    q.requires_grad_(True)
    k.requires_grad_(True)
    v.requires_grad_(True)
    out_cross = naive_attention(q, k, v, n_head, causal=False)
    out_cross.backward(dout)
    with torch.no_grad():
        out_causal = naive_attention(qs, ks, vs, n_head, causal=True)
        out_full = naive_attention(qs, ks, vs, n_head, causal=False)

    # Cross-check the naive loops against the vectorised model code.
    with torch.no_grad():
        d = max((out_cross - ref.attention(q, k, v, n_head, False)).abs().max().item(),
                (out_causal - ref.attention(qs, ks, vs, n_head, True)).abs().max().item(),
                (out_full - ref.attention(qs, ks, vs, n_head, False)).abs().max().item())
    print("attention: naive vs vectorised max abs diff %.3g" % d)
    assert d < 1e-12

    tensors = {
        "q": f32(q), "k": f32(k), "v": f32(v), "out_cross": f32(out_cross),
        "qs": f32(qs), "ks": f32(ks), "vs": f32(vs),
        "out_causal": f32(out_causal), "out_full": f32(out_full),
        "dout_cross": f32(dout), "dq_cross": f32(q.grad), "dk_cross": f32(k.grad),
        "dv_cross": f32(v.grad),
    }
    meta = {"n_head": str(n_head), "head_size": str(hs), "n_embd": str(C),
            "scale": "1/sqrt(head_size)"}
    st.save(path, tensors, meta)
    print("wrote %s (%d bytes)" % (path, os.path.getsize(path)))


def self_check(path):
    """Reload a model fixture and re-run forward/backward from the stored weights."""
    t, meta = st.load(path)
    cfg = ref.GPTConfig(vocab_size=int(meta["vocab_size"]), n_layer=int(meta["n_layer"]),
                        n_head=int(meta["n_head"]), n_embd=int(meta["n_embd"]),
                        block_size=int(meta["block_size"]), activation=meta["activation"],
                        qkv_bias=meta["qkv_bias"] == "true",
                        tied_head=meta["tied_head"] == "true", dropout=0.0)
    model = ref.GPT(cfg).double()
    names = [n for n, _ in model.named_parameters()]
    stored = [n for n in t if n in names]
    assert stored == names, "parameter set/order mismatch"
    with torch.no_grad():
        for n, p in model.named_parameters():
            assert tuple(p.shape) == t[n].shape, n
            p.copy_(torch.from_numpy(t[n]).double())
    x = torch.from_numpy(t["x"]).long()
    y = torch.from_numpy(t["y"]).long()
    logits, loss = model(x, y)
    loss.backward()
    dl = np.abs(f32(logits) - t["logits"]).max()
    dloss = abs(loss.item() - float(t["loss"][0]))
    dg = max(np.abs(f32(p.grad) - t["grad." + n]).max() for n, p in model.named_parameters())
    print("self-check %s: logits max abs diff %.3g, loss abs diff %.3g, grads max abs diff %.3g"
          % (os.path.basename(path), dl, dloss, dg))
    assert dl < 1e-6 and dloss < 1e-6 and dg < 1e-6


def main():
    os.makedirs(FIXTURES, exist_ok=True)
    torch.set_num_threads(1)  # deterministic reductions
    relu = os.path.join(FIXTURES, "tiny_relu.safetensors")
    gelu = os.path.join(FIXTURES, "tiny_gelu.safetensors")
    attn = os.path.join(FIXTURES, "attention_cross.safetensors")
    make_model_fixture(relu, model_config("relu", qkv_bias=False, tied_head=False), seed=1234)
    make_model_fixture(gelu, model_config("gelu", qkv_bias=True, tied_head=True), seed=5678)
    make_attention_fixture(attn, seed=42)
    self_check(relu)
    self_check(gelu)


if __name__ == "__main__":
    main()
