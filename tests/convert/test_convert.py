"""make test-convert: tools/convert_pt.py against the two layouts it converts, end to end.

For the lecture's gpt.py model (lecture_model.py) and nanoGPT's GPT (nanogpt_model.py, bias=True
and bias=False), a small model (2 layers, 4 heads, width 64, context 32) is trained here in PyTorch
for a few hundred steps on a slice of tiny Shakespeare and saved as those projects save it
(gpt.py: torch.save of the state_dict, or of the whole model; nanoGPT: train.py's ckpt.pt dict,
once with torch.compile's `_orig_mod.` keys, and data/<dataset>/meta.pkl). Each is converted and
run in C (bin/gpt-sample): the logits after each prompt must match PyTorch's within 1e-4, and 100
greedy tokens (temperature 0, the window cropped to the context as both projects' generate does:
--context-shift exact) must be the same text. Then every refusal: exit code 2, a message naming
the file and the key, no traceback.

usage: GOMP_SPINCOUNT=0 /usr/bin/python3 tests/convert/test_convert.py [-v]
       (GPTD_SAMPLE: the gpt-sample binary, default bin/gpt-sample; GPTD_DATA: the text)
"""
import contextlib
import io
import json
import os
import pickle
import subprocess
import sys
import tempfile
import time
import unittest

import numpy as np
import torch

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.normpath(os.path.join(HERE, "..", ".."))
sys.path.insert(0, HERE)
sys.path.insert(0, os.path.join(REPO, "tests", "reference"))
sys.path.insert(0, os.path.join(REPO, "tools"))
import convert_pt  # noqa: E402
import gpt_reference  # noqa: E402
import lecture_model  # noqa: E402
import nanogpt_model  # noqa: E402
import safetensors_io  # noqa: E402

CONVERT = [sys.executable, os.path.join(REPO, "tools", "convert_pt.py")]
SAMPLE = os.environ.get("GPTD_SAMPLE", os.path.join(REPO, "bin", "gpt-sample"))
TOKENIZE = os.environ.get("GPTD_TOKENIZE", os.path.join(REPO, "bin", "gpt-tokenize"))
HP = dict(n_layer=2, n_head=4, n_embd=64, block_size=32)
STEPS, BATCH, LR = 300, 16, 3e-3
TRAIN_CHARS = 200_000
PROMPTS = ["ROMEO:", "\n", "First Citizen:\nBefore we proceed", "KING HENRY VI:\nWhat says my",
           "O, "]
GREEDY_TOKENS = 100
LOGIT_TOLERANCE = 1e-4


def data_path():
    if os.environ.get("GPTD_DATA"):
        return os.environ["GPTD_DATA"]
    for p in (os.path.join(REPO, "..", "shared", "data", "tinyshakespeare.txt"),
              os.path.join(REPO, "data", "tinyshakespeare.txt")):
        if os.path.isfile(p):
            return os.path.normpath(p)
    raise SystemExit("test_convert: no tiny Shakespeare (set GPTD_DATA or run make data)")


def train(model, data, seed):
    """STEPS of AdamW on random windows of the slice, as both projects' loops do."""
    g = torch.Generator().manual_seed(seed)
    opt = torch.optim.AdamW(model.parameters(), lr=LR)
    T = HP["block_size"]
    model.train()
    for _ in range(STEPS):
        ix = torch.randint(len(data) - T, (BATCH,), generator=g)
        x = torch.stack([data[i:i + T] for i in ix])
        y = torch.stack([data[i + 1:i + T + 1] for i in ix])
        _, loss = model(x, y)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
    model.eval()
    return float(loss)


@torch.no_grad()
def reference(model, encode, decode):
    """PyTorch's logits after each prompt, and its greedy continuation of each."""
    out = {}
    for p in PROMPTS:
        idx = torch.tensor([encode(p)])
        logits = model(idx)[0][0, -1].numpy().astype(np.float64)
        margin = np.inf
        for _ in range(GREEDY_TOKENS):
            step = model(idx[:, -HP["block_size"]:])[0][0, -1]
            top = torch.topk(step, 2).values
            margin = min(margin, float(top[0] - top[1]))
            idx = torch.cat([idx, step.argmax().view(1, 1)], dim=1)
        out[p] = (logits, decode(idx[0].tolist()), margin)
    return out


def run(cmd):
    return subprocess.run(cmd, capture_output=True, text=True, timeout=300)


def gptd_logits(model_file, prompt):
    r = run([SAMPLE, "--model", model_file, "--prompt", prompt, "--logits", "--threads", "1"])
    if r.returncode:
        raise AssertionError("gpt-sample --logits: %s" % r.stderr)
    return np.array([float(x) for x in r.stdout.split()])


def gptd_greedy(model_file, prompt):
    r = run([SAMPLE, "--model", model_file, "--prompt", prompt, "--temperature", "0",
             "--max-tokens", str(GREEDY_TOKENS), "--context-shift", "exact", "--threads", "1"])
    if r.returncode:
        raise AssertionError("gpt-sample: %s" % r.stderr)
    return r.stdout[:-1]  # gpt-sample ends with a newline of its own


class Fixture:
    """Trained models and their files, made once for all the tests."""

    def __init__(self, dir):
        self.dir = dir
        self.data_file = data_path()
        with open(self.data_file, encoding="utf-8") as f:
            text = f.read()
        chars = sorted(set(text))
        self.stoi = {c: i for i, c in enumerate(chars)}
        self.itos = {i: c for i, c in enumerate(chars)}
        self.encode = lambda s: [self.stoi[c] for c in s]
        self.decode = lambda ids: "".join(self.itos[i] for i in ids)
        data = torch.tensor(self.encode(text[:TRAIN_CHARS]), dtype=torch.long)
        V = len(chars)
        self.losses = {}

        # The lecture's gpt.py: both ways it can be saved.
        lecture_model.configure(vocab_size=V, **HP)
        torch.manual_seed(1337)
        self.lecture = lecture_model.GPTLanguageModel()
        self.losses["lecture"] = train(self.lecture, data, 1)
        torch.save(self.lecture.state_dict(), self.path("lecture_state_dict.pt"))
        torch.save(self.lecture, self.path("lecture_model.pt"))

        # nanoGPT: train.py's checkpoint dict and prepare.py's meta.pkl.
        os.makedirs(self.path("data/shakespeare_char"), exist_ok=True)
        with open(self.path("data/shakespeare_char/meta.pkl"), "wb") as f:
            pickle.dump({"vocab_size": V, "itos": self.itos, "stoi": self.stoi}, f)
        self.nanogpt = {}
        for bias, compiled in ((True, True), (False, False)):
            model_args = dict(n_layer=HP["n_layer"], n_head=HP["n_head"], n_embd=HP["n_embd"],
                              block_size=HP["block_size"], bias=bias, vocab_size=V, dropout=0.0)
            torch.manual_seed(1337)
            model = nanogpt_model.GPT(nanogpt_model.GPTConfig(**model_args))
            name = "nanogpt_bias" if bias else "nanogpt_nobias"
            self.losses[name] = train(model, data, 2)
            sd = model.state_dict()
            if compiled:  # what train.py saves after torch.compile (PyTorch 2): every key prefixed
                sd = {"_orig_mod." + k: v for k, v in sd.items()}
            ckpt = {"model": sd, "optimizer": {}, "model_args": model_args, "iter_num": STEPS,
                    "best_val_loss": torch.tensor(self.losses[name]),
                    "config": {"dataset": "shakespeare_char", "compile": compiled, "bias": bias}}
            os.makedirs(self.path(name), exist_ok=True)
            torch.save(ckpt, self.path(name + "/ckpt.pt"))
            self.nanogpt[name] = model

    def path(self, name):
        return os.path.join(self.dir, name)


FIX = None


def convert(*args, separate=False):
    """tools/convert_pt.py ARGS: in a process of its own (separate; importing torch takes about
    two seconds each time), or through its main() here, stderr captured (the module it loads
    gpt.py's classes from is importable here, but the converter never imports: it stubs them)."""
    if separate:
        return run(CONVERT + list(args))
    err = io.StringIO()
    with contextlib.redirect_stderr(err):
        rc = convert_pt.main(list(args))
    return subprocess.CompletedProcess(args, rc, "", err.getvalue())


class ConvertAndCompare(unittest.TestCase):
    def check_parity(self, model_file, model, name):
        ref = reference(model, FIX.encode, FIX.decode)
        worst, margin = 0.0, np.inf
        for p in PROMPTS:
            logits, text, m = ref[p]
            got = gptd_logits(model_file, p)
            self.assertEqual(got.shape, logits.shape)
            diff = float(np.max(np.abs(got - logits)))
            self.assertLess(diff, LOGIT_TOLERANCE, "%s, prompt %r: max |logit diff| %g"
                            % (name, p, diff))
            worst, margin = max(worst, diff), min(margin, m)
            self.assertEqual(gptd_greedy(model_file, p), text, "%s, prompt %r: greedy text"
                             % (name, p))
        print("  %-28s max |logit diff| %.2e over %d prompts; %d greedy tokens each equal "
              "(smallest top-2 gap on the way %.3f)" % (name, worst, len(PROMPTS), GREEDY_TOKENS,
                                                        margin), file=sys.stderr)

    def converted(self, source, out, *opts, separate=False):
        out = FIX.path(out)
        r = convert(FIX.path(source), "--out", out, *opts, separate=separate)
        self.assertEqual(r.returncode, 0, r.stderr)
        return out

    def test_lecture_state_dict(self):
        out = self.converted("lecture_state_dict.pt", "lecture.safetensors",
                             "--text", FIX.data_file, separate=True)
        tensors, meta = safetensors_io.load(out)
        self.assertEqual((meta["activation"], meta["qkv_bias"], meta["tied_head"]),
                         ("relu", "false", "false"))
        self.assertEqual((meta["tokenizer"], meta["vocab"]), ("char", "".join(FIX.stoi)))
        self.check_parity(out, FIX.lecture, "gpt.py state_dict")

    def test_lecture_whole_model(self):
        """torch.save(model): loaded without gpt.py's classes, the same tensors as the
        state_dict, and the activation read from the modules."""
        a = self.converted("lecture_state_dict.pt", "lecture_sd.safetensors", "--text",
                           FIX.data_file)
        b = self.converted("lecture_model.pt", "lecture_model.safetensors", "--text",
                           FIX.data_file)
        ta, ma = safetensors_io.load(a)
        tb, mb = safetensors_io.load(b)
        self.assertEqual(list(ta), list(tb))
        for k in ta:
            np.testing.assert_array_equal(ta[k], tb[k], err_msg=k)
        ma.pop("source.file")
        mb.pop("source.file")
        self.assertEqual(ma, mb)

    def test_lecture_scaled_by_n_embd(self):
        """gpt.py before 2023-01-25 scaled scores by n_embd**-0.5: --attention-scale n_embd."""
        out = self.converted("lecture_state_dict.pt", "lecture_old.safetensors", "--text",
                             FIX.data_file, "--attention-scale", "n_embd")
        lecture_model.ATTENTION_SCALE = "n_embd"
        try:
            self.check_parity(out, FIX.lecture, "gpt.py, scale n_embd**-0.5")
            plain = self.converted("lecture_state_dict.pt", "lecture_new.safetensors", "--text",
                                   FIX.data_file)
            logits = reference(FIX.lecture, FIX.encode, FIX.decode)[PROMPTS[0]][0]
            self.assertGreater(np.max(np.abs(gptd_logits(plain, PROMPTS[0]) - logits)), 1e-2,
                               "the scale should matter")
        finally:
            lecture_model.ATTENTION_SCALE = "head"

    def test_nanogpt_bias_compiled(self):
        out = self.converted("nanogpt_bias/ckpt.pt", "nano_bias.safetensors",
                             "--meta", FIX.path("data/shakespeare_char/meta.pkl"))
        tensors, meta = safetensors_io.load(out)
        self.assertEqual((meta["activation"], meta["qkv_bias"], meta["tied_head"]),
                         ("gelu_erf", "true", "true"))
        self.assertEqual(meta["source.iter_num"], str(STEPS))
        self.assertNotIn("lm_head.weight", tensors)
        self.check_parity(out, FIX.nanogpt["nanogpt_bias"], "nanoGPT bias=True _orig_mod.")

    def test_nanogpt_no_bias(self):
        out = self.converted("nanogpt_nobias/ckpt.pt", "nano_nobias.safetensors",
                             "--meta", FIX.path("data/shakespeare_char/meta.pkl"))
        tensors, meta = safetensors_io.load(out)
        self.assertEqual((meta["qkv_bias"], meta["tied_head"]), ("false", "true"))
        self.assertFalse(np.any(tensors["transformer.h.1.mlp.c_fc.bias"]))
        self.check_parity(out, FIX.nanogpt["nanogpt_nobias"], "nanoGPT bias=False")

    def test_nanogpt_bpe(self):
        """A BPE model (no meta.pkl) with a padded vocabulary (512 rows for a tokenizer of 457: GPT-2's
        bytes, its first 200 merges, <|endoftext|>): the tokenizer's files and its own size in the
        metadata, every row kept, and gptd's logits on a prompt it tokenizes itself equal
        nanoGPT's on the same ids (gpt-tokenize gives them)."""
        tok = os.path.join(REPO, "tests", "reference", "fixtures", "hf_gpt2_f32")
        with open(os.path.join(tok, "vocab.json")) as f:
            vocab = f.read()
        with open(os.path.join(tok, "merges.txt")) as f:
            merges = f.read()
        args = dict(n_layer=2, n_head=4, n_embd=32, block_size=16, bias=True, vocab_size=512,
                    dropout=0.0)
        torch.manual_seed(5)
        model = nanogpt_model.GPT(nanogpt_model.GPTConfig(**args)).eval()
        with torch.no_grad():  # biases and LayerNorms away from their initial 0 and 1
            for name, p in model.named_parameters():
                if name.endswith("bias") or "ln" in name:
                    p.add_(0.1 * torch.randn_like(p))
        torch.save({"model": model.state_dict(), "model_args": args, "iter_num": 0},
                   FIX.path("bpe_ckpt.pt"))
        out = self.converted("bpe_ckpt.pt", "bpe.safetensors", "--tokenizer", tok)
        tensors, meta = safetensors_io.load(out)
        self.assertEqual(meta["tokenizer"], "gpt2-bpe")
        self.assertEqual((meta["tokenizer.vocab"], meta["tokenizer.merges"]), (vocab, merges))
        self.assertEqual((meta["tokenizer.vocab_size"], meta["vocab_size"]), ("457", "512"))
        self.assertNotIn("vocab", meta)
        self.assertEqual(tensors["transformer.wte.weight"].shape, (512, 32))
        prompt = "Thou art 🙂 the king"
        r = subprocess.run([TOKENIZE, tok], input=prompt.encode(), capture_output=True,
                           timeout=60)
        self.assertEqual(r.returncode, 0, r.stderr)
        ids = [int(x) for x in r.stdout.split()]
        self.assertTrue(len(ids) < len(prompt.encode()))  # merges applied
        with torch.no_grad():
            want = model(torch.tensor([ids]))[0][0, -1].double().numpy()
        got = gptd_logits(out, prompt)
        self.assertEqual(got.shape, (512,))
        diff = float(np.abs(want - got).max())
        self.assertLess(diff, 1e-4)
        print("  %-28s max |logit diff| %.2e over %d tokens"
              % ("nanoGPT BPE, vocab 512 > 457", diff, len(ids)), file=sys.stderr)


class Refusals(unittest.TestCase):
    """Each refusal: exit code 2, the message names the file and what is wrong, no traceback."""

    def refused(self, source, want, *opts, separate=False):
        r = convert(source, "--out", FIX.path("refused.safetensors"), *opts, separate=separate)
        self.assertEqual(r.returncode, 2, "exit code %d; stderr: %s" % (r.returncode, r.stderr))
        self.assertNotIn("Traceback", r.stderr)
        self.assertIn(want, r.stderr)
        self.assertIn(source, r.stderr)
        self.assertFalse(os.path.exists(FIX.path("refused.safetensors")))
        return r.stderr

    def saved(self, name, obj):
        path = FIX.path(name)
        torch.save(obj, path)
        return path

    def lecture_sd(self):
        return dict(FIX.lecture.state_dict())

    def nano_ckpt(self, name="nanogpt_bias"):
        return torch.load(FIX.path(name + "/ckpt.pt"))

    def test_not_a_checkpoint(self):
        self.refused(FIX.data_file, "not a PyTorch checkpoint", "--text", FIX.data_file)

    def test_missing_file(self):
        self.refused(FIX.path("none.pt"), "no such file", "--text", FIX.data_file)

    def test_neither_layout(self):
        p = self.saved("other.pt", {"encoder.weight": torch.zeros(3, 3)})
        self.refused(p, "neither the lecture's gpt.py model", "--text", FIX.data_file)

    def test_missing_key(self):
        sd = self.lecture_sd()
        del sd["blocks.1.sa.proj.bias"]
        p = self.saved("missing.pt", sd)
        self.refused(p, "missing tensor 'blocks.1.sa.proj.bias'", "--text", FIX.data_file,
                     separate=True)

    def test_missing_key_nanogpt(self):
        ckpt = self.nano_ckpt()
        del ckpt["model"]["_orig_mod.transformer.h.1.mlp.c_proj.weight"]
        p = self.saved("missing_nano.pt", ckpt)
        self.refused(p, "missing tensor 'transformer.h.1.mlp.c_proj.weight'", "--meta",
                     FIX.path("data/shakespeare_char/meta.pkl"))

    def test_shapes_disagree(self):
        ckpt = self.nano_ckpt()
        ckpt["model_args"]["block_size"] = 64
        p = self.saved("shape.pt", ckpt)
        self.refused(p, "tensor 'transformer.wpe.weight' has shape [32, 64], expected [64, 64]",
                     "--meta", FIX.path("data/shakespeare_char/meta.pkl"))

    def test_heads_do_not_fill_the_width(self):
        sd = self.lecture_sd()
        for i in range(2):
            for h in range(4):
                for w in ("key", "query", "value"):
                    k = "blocks.%d.sa.heads.%d.%s.weight" % (i, h, w)
                    sd[k] = sd[k][:8]
        p = self.saved("heads.pt", sd)
        self.refused(p, "4 heads of 8 make 32 channels, n_embd is 64", "--text", FIX.data_file)

    def test_activation_gptd_cannot_run(self):
        model = torch.load(FIX.path("lecture_model.pt"))
        model.blocks[1].ffwd.net[1] = torch.nn.SiLU()
        p = self.saved("silu.pt", model)
        self.refused(p, "module 'blocks.1.ffwd.net.1' is SiLU", "--text", FIX.data_file)

    def test_layernorm_eps(self):
        model = torch.load(FIX.path("lecture_model.pt"))
        model.blocks[0].ln2.eps = 1e-6
        p = self.saved("eps.pt", model)
        self.refused(p, "LayerNorm 'blocks.0.ln2' has eps 1e-06", "--text", FIX.data_file)

    def test_bias_layouts(self):
        ckpt = self.nano_ckpt()  # bias=True said, c_attn's bias gone
        del ckpt["model"]["_orig_mod.transformer.h.0.attn.c_attn.bias"]
        p = self.saved("bias1.pt", ckpt)
        self.refused(p, "model_args says bias=True but tensor "
                        "'transformer.h.0.attn.c_attn.bias' is missing",
                     "--meta", FIX.path("data/shakespeare_char/meta.pkl"))
        ckpt = self.nano_ckpt("nanogpt_nobias")  # bias=False, yet one bias
        ckpt["model"]["transformer.h.1.mlp.c_fc.bias"] = torch.zeros(256)
        p = self.saved("bias2.pt", ckpt)
        self.refused(p, "unexpected tensor 'transformer.h.1.mlp.c_fc.bias'",
                     "--meta", FIX.path("data/shakespeare_char/meta.pkl"))
        sd = self.lecture_sd()  # a head with a bias: gpt.py's have none
        sd["blocks.0.sa.heads.2.query.bias"] = torch.zeros(16)
        p = self.saved("bias3.pt", sd)
        self.refused(p, "unexpected tensor 'blocks.0.sa.heads.2.query.bias'", "--text",
                     FIX.data_file)

    def test_nanogpt_without_model_args(self):
        p = self.saved("bare_nano.pt", FIX.nanogpt["nanogpt_bias"].state_dict())
        self.refused(p, "without its model_args", "--meta",
                     FIX.path("data/shakespeare_char/meta.pkl"))

    def test_attention_scale_is_for_gpt_py(self):
        self.refused(FIX.path("nanogpt_bias/ckpt.pt"), "--attention-scale is for gpt.py",
                     "--meta", FIX.path("data/shakespeare_char/meta.pkl"),
                     "--attention-scale", "n_embd")

    def test_vocabularies(self):
        sd = FIX.path("lecture_state_dict.pt")
        self.refused(sd, "--vocab: 3 characters, but the model's vocab_size is 65", "--vocab",
                     "abc")
        self.refused(sd, "--vocab: the characters are not sorted and unique at 1", "--vocab",
                     "ba")
        nano = FIX.path("nanogpt_bias/ckpt.pt")
        tok = FIX.path("bpe_small")
        os.makedirs(tok, exist_ok=True)
        with open(os.path.join(tok, "encoder.json"), "w") as f:
            json.dump({chr(0x100 + i): i for i in range(100)}, f)
        with open(os.path.join(tok, "vocab.bpe"), "w") as f:
            f.write("#version: 0.2\n")
        err = self.refused(nano, "the tokenizer has 100 tokens, the model only 65 rows",
                           "--tokenizer", tok)
        self.assertIn(tok, err)
        self.refused(nano, "neither vocab.json + merges.txt nor encoder.json + vocab.bpe",
                     "--tokenizer", FIX.dir)
        bad = FIX.path("bad_meta.pkl")
        with open(bad, "wb") as f:
            pickle.dump({"itos": {0: "ab"}}, f)
        self.refused(nano, "'itos' maps ids to strings of other than one character",
                     "--meta", bad)

    def test_pickle_asking_for_code(self):
        class Evil:
            def __reduce__(self):
                return (os.system, ("echo converted-evil > %s" % FIX.path("evil"),))
        p = self.saved("evil.pt", {"x": Evil()})
        self.refused(p, "the pickle asks for posix.system", "--text", FIX.data_file,
                     separate=True)
        self.assertFalse(os.path.exists(FIX.path("evil")))


def main():
    global FIX
    torch.set_num_threads(1)
    if os.environ.get("GOMP_SPINCOUNT") != "0":
        print("test_convert: run with GOMP_SPINCOUNT=0 (idle OpenMP threads spin otherwise)",
              file=sys.stderr)
    if not os.access(SAMPLE, os.X_OK):
        raise SystemExit("test_convert: %s is not built (make bin/gpt-sample)" % SAMPLE)
    t0 = time.time()
    with tempfile.TemporaryDirectory(prefix="gptd_convert_") as d:
        FIX = Fixture(d)
        losses = ", ".join("%s %.2f" % kv for kv in FIX.losses.items())
        print("test_convert: trained %d models, %d steps each (losses %s) in %.1f s"
              % (len(FIX.losses), STEPS, losses, time.time() - t0), file=sys.stderr)
        result = unittest.main(argv=[sys.argv[0]] + sys.argv[1:], exit=False).result
    print("test_convert: %.1f s in all" % (time.time() - t0), file=sys.stderr)
    return 0 if result.wasSuccessful() else 1


if __name__ == "__main__":
    sys.exit(main())
