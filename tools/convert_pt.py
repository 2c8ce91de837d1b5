#!/usr/bin/python3
"""tools/convert_pt.py: a PyTorch checkpoint to gptd's own safetensors checkpoint, once, offline.

Two source layouts, told apart by their tensor names:
  - the "Let's build GPT" lecture's gpt.py: torch.save(model.state_dict()) or torch.save(model);
    separate q/k/v per head (nn.Linear, no bias), ReLU, untied head with a bias;
  - nanoGPT's ckpt.pt: the dict train.py saves (model, model_args, ...), keys possibly prefixed
    `_orig_mod.` by torch.compile; fused c_attn, exact GELU (nn.GELU()), head tied to wte, biases
    everywhere or (bias=False) nowhere, LayerNorm included.

gptd's checkpoint (model/checkpoint.c): GPT-2 tensor names with Conv1D layout (in, out), y = x @ W
+ b; q, k, v side by side in c_attn (q first), head h on channels [h hs, (h + 1) hs) of each; the
config, vocabulary and where the model came from in __metadata__. The vocabulary: the characters of
the training text (--text, as the lecture builds it), a string (--vocab), nanoGPT's meta.pkl
(--meta) or GPT-2's BPE files (--tokenizer DIR: vocab.json + merges.txt or encoder.json +
vocab.bpe). A file the converter cannot map exactly onto gptd's model is refused with a message
naming the file and the key, exit code 2; nothing is converted approximately.

usage: convert_pt.py CHECKPOINT --out FILE
                     (--text FILE | --vocab STR | --meta FILE | --tokenizer DIR)
                     [--attention-scale head|n_embd]
"""
import _compat_pickle
import argparse
import json
import math
import os
import pickle
import sys
import types

import numpy as np

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tests",
                                "reference"))
import safetensors_io  # noqa: E402  (gptd's safetensors writer, shared with the reference tests)

LN_EPS = 1e-5        # the only LayerNorm epsilon gptd computes with
GPT_MAX_LAYERS = 64  # model/gpt.h


class Refused(Exception):
    """A checkpoint or an argument the converter will not convert; the message names the key."""


# ------------------------------------------------------------------------------------------------
# Reading the file

def _restricted_pickle_module(torch):
    """A pickle module for torch.load of a whole pickled model (torch.save(model)) whose classes
    are not importable here: torch's own classes and tensor rebuilders load as themselves, any
    other class becomes an empty nn.Module subclass of the same name (so that state_dict() and
    named_modules() work), and every other global is refused."""
    stubs = {}
    allowed_modules = ("torch._utils", "torch._tensor", "torch.nn.parameter", "torch.storage")
    allowed_globals = {("collections", "OrderedDict"), ("copyreg", "_reconstructor"),
                       ("builtins", "object"), ("builtins", "set"), ("torch", "Size")}

    class Unpickler(pickle.Unpickler):
        def find_class(self, module, name):
            # Python 2 names in protocol 2 pickles (torch.save's): __builtin__.set is builtins.set
            if (module, name) in _compat_pickle.NAME_MAPPING:
                module, name = _compat_pickle.NAME_MAPPING[(module, name)]
            module = _compat_pickle.IMPORT_MAPPING.get(module, module)
            if (module, name) in allowed_globals or module in allowed_modules:
                return super().find_class(module, name)
            if module == "torch" and (name.endswith("Storage") or
                                      isinstance(getattr(torch, name, None), torch.dtype)):
                return super().find_class(module, name)
            if module.startswith("torch.nn.modules."):
                cls = super().find_class(module, name)
                if isinstance(cls, type) and issubclass(cls, torch.nn.Module):
                    return cls
            if module.split(".")[0] in ("torch", "builtins", "copyreg", "os", "sys", "subprocess",
                                        "posix", "nt", "io", "shutil", "importlib"):
                raise Refused("the pickle asks for %s.%s, which the converter does not load"
                              % (module, name))
            key = (module, name)
            if key not in stubs:
                stubs[key] = type(name, (torch.nn.Module,), {"__module__": module})
            return stubs[key]

    mod = types.ModuleType("gptd_restricted_pickle")
    mod.__dict__.update(pickle.__dict__)  # UnpicklingError and the rest, as torch may use them
    mod.Unpickler = Unpickler
    mod.load = lambda f, **kw: Unpickler(f, **kw).load()
    mod.__name__ = "gptd_restricted_pickle"
    return mod


def load_checkpoint(path):
    """The object torch.save wrote: a state_dict, a whole model, or nanoGPT's dict."""
    import torch
    if not os.path.isfile(path):
        raise Refused("no such file")
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except Exception:
        pass  # a whole pickled model, or not a checkpoint at all: see below
    # PyTorch 1.13 (Debian 12's) replaces any pickle_module by pickle itself when weights_only is
    # False: the restricted one goes in as torch.serialization's `pickle` for this one call.
    import torch.serialization as serialization
    restricted, saved = _restricted_pickle_module(torch), serialization.pickle
    serialization.pickle = restricted
    try:
        return torch.load(path, map_location="cpu", weights_only=False, pickle_module=restricted)
    except Refused:
        raise
    except Exception as e:
        raise Refused("not a PyTorch checkpoint (%s: %s)" % (type(e).__name__, e))
    finally:
        serialization.pickle = saved


def _strip_compile_prefix(sd):
    """torch.compile's wrapper prefixes every key with _orig_mod. (nanoGPT's sample.py strips it
    the same way)."""
    prefix = "_orig_mod."
    return {(k[len(prefix):] if k.startswith(prefix) else k): v for k, v in sd.items()}


class Tensors:
    """The state_dict's tensors as float32 numpy arrays, taken by name with their shapes checked;
    whatever is left untaken at the end was not understood, and is refused."""

    def __init__(self, sd, layout):
        import torch
        self.sd = {}
        for k, v in sd.items():
            if not isinstance(k, str) or not isinstance(v, torch.Tensor):
                raise Refused("entry %r is not a named tensor: not a state_dict of %s"
                              % (k, layout))
            self.sd[k] = v
        self.layout = layout
        self.taken = set()

    def has(self, key):
        return key in self.sd

    def take(self, key, shape):
        if key not in self.sd:
            raise Refused("missing tensor '%s' (%s)" % (key, self.layout))
        t = self.sd[key]
        self.taken.add(key)
        if tuple(t.shape) != tuple(shape):
            raise Refused("tensor '%s' has shape %s, expected %s" % (key, list(t.shape),
                                                                     list(shape)))
        if not t.is_floating_point():
            raise Refused("tensor '%s' is %s, not floating point" % (key, t.dtype))
        a = t.detach().to("cpu").float().numpy().astype(np.float32, copy=True)
        if not np.all(np.isfinite(a)):
            raise Refused("tensor '%s' holds NaN or infinity" % key)
        return a

    def ignore(self, key):
        self.taken.add(key)

    def check_all_taken(self):
        left = sorted(set(self.sd) - self.taken)
        if left:
            raise Refused("unexpected tensor '%s'%s: not %s as gptd can run it"
                          % (left[0], " (and %d more)" % (len(left) - 1) if len(left) > 1 else "",
                             self.layout))


def _count(tensors, fmt):
    n = 0
    while tensors.has(fmt % n):
        n += 1
    return n


# ------------------------------------------------------------------------------------------------
# The lecture's gpt.py

LECTURE = "the lecture's gpt.py model"


def _lecture_activation(modules, layer):
    """relu, gelu or gelu_erf from a whole pickled model's modules; relu for a bare state_dict,
    which does not record it (the lecture's FeedFoward is Linear, ReLU, Linear, Dropout)."""
    if modules is None:
        return "relu"
    import torch
    key = "blocks.%d.ffwd.net.1" % layer
    m = modules.get(key)
    if isinstance(m, torch.nn.ReLU):
        return "relu"
    approximate = getattr(m, "approximate", "none")
    if isinstance(m, torch.nn.GELU) and approximate in ("none", "tanh"):
        return "gelu_erf" if approximate == "none" else "gelu"
    raise Refused("module '%s' is %s: gptd's MLP runs relu or GELU only"
                  % (key, type(m).__name__ if m is not None else "missing"))


def _check_layernorm_eps(modules, key):
    if modules is None:
        return
    m = modules.get(key)
    eps = getattr(m, "eps", None)
    if eps is not None and eps != LN_EPS:
        raise Refused("LayerNorm '%s' has eps %g; gptd computes with %g" % (key, eps, LN_EPS))


def convert_lecture(sd, modules, attention_scale):
    t = Tensors(sd, LECTURE)
    wte = t.take("token_embedding_table.weight", t.sd["token_embedding_table.weight"].shape)
    if wte.ndim != 2:
        raise Refused("tensor 'token_embedding_table.weight' is not a matrix")
    V, C = wte.shape
    if not t.has("position_embedding_table.weight"):
        raise Refused("missing tensor 'position_embedding_table.weight' (%s)" % LECTURE)
    T = t.sd["position_embedding_table.weight"].shape[0]
    wpe = t.take("position_embedding_table.weight", (T, C))
    L = _count(t, "blocks.%d.ln1.weight")
    NH = _count(t, "blocks.0.sa.heads.%d.key.weight")
    if L == 0 or NH == 0:
        raise Refused("missing tensor '%s' (%s)" % (
            "blocks.0.ln1.weight" if L == 0 else "blocks.0.sa.heads.0.key.weight", LECTURE))
    hs = t.sd["blocks.0.sa.heads.0.key.weight"].shape[0]
    if NH * hs != C:
        raise Refused("tensor 'blocks.0.sa.heads.0.key.weight': %d heads of %d make %d channels, "
                      "n_embd is %d; gptd needs n_head * head_size = n_embd" % (NH, hs, NH * hs, C))
    # gptd scales scores by head_size**-0.5, as the final gpt.py does; gpt.py before 2023-01-25
    # scaled by n_embd**-0.5 (C of x.shape): the query weights take the difference.
    q_scale = 1.0 if attention_scale == "head" else math.sqrt(hs / C)
    out = {"transformer.wte.weight": wte, "transformer.wpe.weight": wpe}
    activation = None
    for i in range(L):
        b = "blocks.%d." % i
        h = "transformer.h.%d." % i
        if _count(t, b + "sa.heads.%d.key.weight") != NH:
            raise Refused("block %d has %d heads, block 0 has %d"
                          % (i, _count(t, b + "sa.heads.%d.key.weight"), NH))
        act = _lecture_activation(modules, i)
        if activation not in (None, act):
            raise Refused("module 'blocks.%d.ffwd.net.1' is %s, block 0's is %s"
                          % (i, act, activation))
        activation = act
        _check_layernorm_eps(modules, b + "ln1")
        _check_layernorm_eps(modules, b + "ln2")
        qkv = []
        for which in ("query", "key", "value"):  # gptd's order in c_attn: q, k, v
            w = np.concatenate([t.take(b + "sa.heads.%d.%s.weight" % (n, which), (hs, C))
                                for n in range(NH)], axis=0)  # (out C, in C), heads in order
            qkv.append(w.T * np.float32(q_scale) if which == "query" else w.T)
        for n in range(NH):
            t.ignore(b + "sa.heads.%d.tril" % n)  # the causal mask buffer
        out[h + "ln_1.weight"] = t.take(b + "ln1.weight", (C,))
        out[h + "ln_1.bias"] = t.take(b + "ln1.bias", (C,))
        out[h + "attn.c_attn.weight"] = np.concatenate(qkv, axis=1)
        out[h + "attn.c_proj.weight"] = t.take(b + "sa.proj.weight", (C, C)).T
        out[h + "attn.c_proj.bias"] = t.take(b + "sa.proj.bias", (C,))
        out[h + "ln_2.weight"] = t.take(b + "ln2.weight", (C,))
        out[h + "ln_2.bias"] = t.take(b + "ln2.bias", (C,))
        out[h + "mlp.c_fc.weight"] = t.take(b + "ffwd.net.0.weight", (4 * C, C)).T
        out[h + "mlp.c_fc.bias"] = t.take(b + "ffwd.net.0.bias", (4 * C,))
        out[h + "mlp.c_proj.weight"] = t.take(b + "ffwd.net.2.weight", (C, 4 * C)).T
        out[h + "mlp.c_proj.bias"] = t.take(b + "ffwd.net.2.bias", (C,))
    _check_layernorm_eps(modules, "ln_f")
    out["transformer.ln_f.weight"] = t.take("ln_f.weight", (C,))
    out["transformer.ln_f.bias"] = t.take("ln_f.bias", (C,))
    out["lm_head.weight"] = t.take("lm_head.weight", (V, C))
    out["lm_head.bias"] = t.take("lm_head.bias", (V,))
    t.check_all_taken()
    config = dict(vocab_size=V, n_layer=L, n_head=NH, n_embd=C, block_size=T,
                  activation=activation, qkv_bias=False, tied_head=False)
    facts = {"source": "gpt.py (Let's build GPT)",
             "source.attention_scale": "head_size**-0.5" if attention_scale == "head"
             else "n_embd**-0.5 (folded into the query weights)"}
    assumed = ["attention scaled by %s**-0.5 (%s)" % (
        "head_size" if attention_scale == "head" else "n_embd",
        "the final gpt.py; --attention-scale n_embd for versions before 2023-01-25"
        if attention_scale == "head" else "--attention-scale n_embd")]
    if modules is None:
        assumed.insert(0, "relu (a state_dict does not record the activation)")
    return out, config, facts, assumed


# ------------------------------------------------------------------------------------------------
# nanoGPT's ckpt.pt

NANOGPT = "nanoGPT's GPT"


def convert_nanogpt(ckpt):
    margs = ckpt["model_args"]
    if not isinstance(margs, dict):
        raise Refused("'model_args' is not a dict")
    for key in ("n_layer", "n_head", "n_embd", "block_size", "vocab_size"):
        if not isinstance(margs.get(key), int) or isinstance(margs.get(key), bool):
            raise Refused("model_args has no integer '%s'" % key)
    L, NH, C = margs["n_layer"], margs["n_head"], margs["n_embd"]
    T, V = margs["block_size"], margs["vocab_size"]
    if C % NH:
        raise Refused("model_args: n_embd %d is not divisible by n_head %d" % (C, NH))
    if not isinstance(ckpt["model"], dict):
        raise Refused("'model' is not a state_dict")
    t = Tensors(_strip_compile_prefix(ckpt["model"]), NANOGPT)
    # Older nanoGPT had no bias option (biases always); its model_args then lack 'bias'.
    bias = margs.get("bias", True)
    if not isinstance(bias, bool):
        raise Refused("model_args 'bias' is %r, not true or false" % (bias,))
    has_bias = t.has("transformer.h.0.attn.c_attn.bias")
    if has_bias != bias:
        raise Refused("model_args says bias=%s but tensor 'transformer.h.0.attn.c_attn.bias' is "
                      "%s" % (bias, "present" if has_bias else "missing"))

    def bias_or_zeros(key, n):
        # bias=False: no bias anywhere; gptd adds zeros, which is the same function.
        return t.take(key, (n,)) if bias else np.zeros(n, np.float32)

    out = {"transformer.wte.weight": t.take("transformer.wte.weight", (V, C)),
           "transformer.wpe.weight": t.take("transformer.wpe.weight", (T, C))}
    for i in range(L):
        h = "transformer.h.%d." % i
        t.ignore(h + "attn.bias")  # the causal mask buffer of the non-flash path
        out[h + "ln_1.weight"] = t.take(h + "ln_1.weight", (C,))
        out[h + "ln_1.bias"] = bias_or_zeros(h + "ln_1.bias", C)
        out[h + "attn.c_attn.weight"] = t.take(h + "attn.c_attn.weight", (3 * C, C)).T
        if bias:  # split(n_embd) gives q, k, v: gptd's order
            out[h + "attn.c_attn.bias"] = t.take(h + "attn.c_attn.bias", (3 * C,))
        out[h + "attn.c_proj.weight"] = t.take(h + "attn.c_proj.weight", (C, C)).T
        out[h + "attn.c_proj.bias"] = bias_or_zeros(h + "attn.c_proj.bias", C)
        out[h + "ln_2.weight"] = t.take(h + "ln_2.weight", (C,))
        out[h + "ln_2.bias"] = bias_or_zeros(h + "ln_2.bias", C)
        out[h + "mlp.c_fc.weight"] = t.take(h + "mlp.c_fc.weight", (4 * C, C)).T
        out[h + "mlp.c_fc.bias"] = bias_or_zeros(h + "mlp.c_fc.bias", 4 * C)
        out[h + "mlp.c_proj.weight"] = t.take(h + "mlp.c_proj.weight", (C, 4 * C)).T
        out[h + "mlp.c_proj.bias"] = bias_or_zeros(h + "mlp.c_proj.bias", C)
    out["transformer.ln_f.weight"] = t.take("transformer.ln_f.weight", (C,))
    out["transformer.ln_f.bias"] = bias_or_zeros("transformer.ln_f.bias", C)
    head = t.take("lm_head.weight", (V, C))
    tied = np.array_equal(head, out["transformer.wte.weight"])
    if not tied:  # an untied head without a bias: gptd's untied head with a zero bias
        out["lm_head.weight"] = head
        out["lm_head.bias"] = np.zeros(V, np.float32)
    t.check_all_taken()
    config = dict(vocab_size=V, n_layer=L, n_head=NH, n_embd=C, block_size=T,
                  activation="gelu_erf", qkv_bias=bias, tied_head=tied)
    facts = {"source": "nanoGPT ckpt.pt", "source.bias": "true" if bias else "false"}
    for key in ("iter_num", "best_val_loss"):
        v = ckpt.get(key)
        if v is not None:
            facts["source." + key] = str(float(v) if key == "best_val_loss" else v)
    return out, config, facts, []


# ------------------------------------------------------------------------------------------------
# Vocabularies

class _DataOnly(pickle.Unpickler):
    """meta.pkl holds dicts, strings and integers: no global is needed, none is loaded."""

    def find_class(self, module, name):
        raise Refused("the pickle asks for %s.%s; meta.pkl holds only dicts of strings and "
                      "integers" % (module, name))


def _read_text(path, what):
    try:
        with open(path, "rb") as f:
            return f.read().decode("utf-8")
    except OSError as e:
        raise Refused("%s: cannot read %s (%s)" % (path, what, e.strerror))
    except UnicodeDecodeError as e:
        raise Refused("%s: %s is not UTF-8 (byte %d)" % (path, what, e.start))


def _char_vocab(chars, where, V):
    if any(b <= a for a, b in zip(chars, chars[1:])):
        i = next(n for n in range(1, len(chars)) if chars[n] <= chars[n - 1])
        raise Refused("%s: the characters are not sorted and unique at %d (%r after %r); gptd's "
                      "character tokenizer is the sorted set" % (where, i, chars[i], chars[i - 1]))
    if len(chars) != V:
        raise Refused("%s: %d characters, but the model's vocab_size is %d"
                      % (where, len(chars), V))
    return {"tokenizer": "char", "vocab": chars}


def vocabulary(args, V):
    """The vocabulary's metadata keys, from whichever option was given."""
    if args.text is not None:
        return _char_vocab("".join(sorted(set(_read_text(args.text, "--text")))), args.text, V)
    if args.vocab is not None:
        return _char_vocab(args.vocab, "--vocab", V)
    if args.meta is not None:
        try:
            with open(args.meta, "rb") as f:
                meta = _DataOnly(f).load()
        except OSError as e:
            raise Refused("%s: cannot read --meta (%s)" % (args.meta, e.strerror))
        except Refused as e:
            raise Refused("%s: %s" % (args.meta, e))
        except Exception as e:
            raise Refused("%s: not a meta.pkl (%s: %s)" % (args.meta, type(e).__name__, e))
        itos = meta.get("itos") if isinstance(meta, dict) else None
        if not isinstance(itos, dict) or sorted(itos) != list(range(len(itos))):
            raise Refused("%s: no 'itos' mapping 0..n-1 to characters" % args.meta)
        if not all(isinstance(c, str) and len(c) == 1 for c in itos.values()):
            raise Refused("%s: 'itos' maps ids to strings of other than one character" % args.meta)
        return _char_vocab("".join(itos[i] for i in range(len(itos))), args.meta, V)
    d = args.tokenizer
    for vocab_name, merges_name in (("vocab.json", "merges.txt"), ("encoder.json", "vocab.bpe")):
        if os.path.isfile(os.path.join(d, vocab_name)):
            vocab = _read_text(os.path.join(d, vocab_name), vocab_name)
            merges = _read_text(os.path.join(d, merges_name), merges_name)
            break
    else:
        raise Refused("%s: neither vocab.json + merges.txt nor encoder.json + vocab.bpe" % d)
    try:
        n = len(json.loads(vocab))
    except ValueError as e:
        raise Refused("%s: %s is not JSON (%s)" % (d, vocab_name, e))
    if n > V:
        raise Refused("%s: the tokenizer has %d tokens, the model only %d rows" % (d, n, V))
    # A padded vocab_size (nanoGPT's 50304) keeps its rows; the tokenizer says its own size.
    return {"tokenizer": "gpt2-bpe", "tokenizer.vocab": vocab, "tokenizer.merges": merges,
            "tokenizer.vocab_size": str(n)}


# ------------------------------------------------------------------------------------------------

def convert(args):
    obj = load_checkpoint(args.checkpoint)
    import torch
    modules = None
    if isinstance(obj, dict) and "model" in obj and "model_args" in obj:
        if args.attention_scale is not None:
            raise Refused("a nanoGPT checkpoint scales attention by head_size**-0.5 as gptd does; "
                          "--attention-scale is for gpt.py's models")
        tensors, config, facts, assumed = convert_nanogpt(obj)
    else:
        if isinstance(obj, torch.nn.Module):
            modules = dict(obj.named_modules())
            sd = obj.state_dict()
        elif isinstance(obj, dict):
            sd = obj
        else:
            raise Refused("holds a %s: neither a state_dict, a pickled model nor nanoGPT's "
                          "checkpoint dict" % type(obj).__name__)
        sd = _strip_compile_prefix(sd)
        if "token_embedding_table.weight" in sd:
            tensors, config, facts, assumed = convert_lecture(sd, modules,
                                                              args.attention_scale or "head")
        elif "transformer.wte.weight" in sd:
            raise Refused("nanoGPT's tensors without its model_args (n_head cannot be read from "
                          "the shapes): convert the ckpt.pt dict that train.py saves")
        else:
            raise Refused("neither the lecture's gpt.py model (no 'token_embedding_table.weight') "
                          "nor nanoGPT's ckpt.pt (no 'model' and 'model_args')")
    if not 1 <= config["n_layer"] <= GPT_MAX_LAYERS:
        raise Refused("%d layers; gptd runs 1 to %d" % (config["n_layer"], GPT_MAX_LAYERS))
    meta = {"format": "gptd-gpt"}
    for key in ("vocab_size", "n_layer", "n_head", "n_embd", "block_size"):
        meta[key] = str(config[key])
    meta["activation"] = config["activation"]
    meta["qkv_bias"] = "true" if config["qkv_bias"] else "false"
    meta["tied_head"] = "true" if config["tied_head"] else "false"
    meta.update(vocabulary(args, config["vocab_size"]))
    meta["weights"] = "float32"
    meta.update(facts)
    meta["source.file"] = os.path.basename(args.checkpoint)
    tmp = args.out + ".tmp"
    try:
        safetensors_io.save(tmp, tensors, meta)
        os.replace(tmp, args.out)
    except OSError as e:
        raise Refused("%s: cannot write (%s)" % (args.out, e.strerror))
    n_params = sum(a.size for a in tensors.values())
    print("convert_pt: %s -> %s: %s, %d layers, %d heads, width %d, context %d, vocab %d, %s, "
          "%s head, %d parameters" % (
              args.checkpoint, args.out, facts["source"], config["n_layer"], config["n_head"],
              config["n_embd"], config["block_size"], config["vocab_size"], config["activation"],
              "tied" if config["tied_head"] else "untied", n_params), file=sys.stderr)
    for a in assumed:
        print("convert_pt: assumed %s" % a, file=sys.stderr)


def main(argv=None):
    ap = argparse.ArgumentParser(
        prog="convert_pt.py",
        description="Convert the lecture's gpt.py model or nanoGPT's ckpt.pt into gptd's "
                    "safetensors checkpoint.")
    ap.add_argument("checkpoint", help="torch.save output: gpt.py's state_dict or model, or "
                                       "nanoGPT's ckpt.pt")
    ap.add_argument("--out", required=True, help="gptd checkpoint to write (.safetensors)")
    vocab = ap.add_mutually_exclusive_group(required=True)
    vocab.add_argument("--text", help="the training text: its sorted characters (gpt.py)")
    vocab.add_argument("--vocab", help="the characters in token order")
    vocab.add_argument("--meta", help="nanoGPT's meta.pkl of a character-level dataset")
    vocab.add_argument("--tokenizer", help="directory with GPT-2's vocab.json + merges.txt "
                                           "(or encoder.json + vocab.bpe)")
    ap.add_argument("--attention-scale", choices=["head", "n_embd"], default=None,
                    help="gpt.py's attention scale: head_size**-0.5 (the final gpt.py, the "
                         "default) or n_embd**-0.5 (versions before 2023-01-25)")
    args = ap.parse_args(argv)
    try:
        convert(args)
    except Refused as e:  # named by the checkpoint; a message about another file names it too
        print("convert_pt: %s: %s" % (args.checkpoint, e), file=sys.stderr)
        return 2
    except Exception as e:  # anything unforeseen in a foreign file is still a refusal
        print("convert_pt: %s: cannot convert (%s: %s)" % (args.checkpoint, type(e).__name__, e),
              file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
