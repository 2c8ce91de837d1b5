"""PyTorch side of the gptd inference benchmark (KV-cache generation).

Loads one of our checkpoints (F32 or F16 weights, computed on in float32) into the reference
GPT (tests/reference/gpt_reference.py, float32, eval mode) and generates with a KV cache written
here: per layer, k and v of shape (B, n_head, t, head_size), filled for all prompt positions at
once by a prefill and extended by one position per decode step, in which only the newest token of
each of the B sequences goes through the model (at its position) and attends over the cache.

Prints exactly one line on stdout:
    torch mode=<decode|prefill> batch=<B> tokens_per_s=<float> ms_per_step=<float>
          median_tokens_per_s=<float>

decode:  one untimed warm-up generation of a few tokens, then --repeats timed generations of
         --new-tokens N tokens for each of the B sequences (same prompt for all, independent
         samples). The timed part is the prompt prefill, which yields the first new token, and
         the N-1 decode steps that yield the rest, sampling included. A "step" is one forward
         pass that produces one new token per sequence (the prefill counts as the first), so
         tokens_per_s = B*N / time and ms_per_step = time / N.
past:    decode well past the context under one rule (--context-shift keep|exact, as gptd's):
         when the window holds block_size tokens it starts anew from the last --context-keep
         tokens (keep) or the last block_size tokens (exact), prefilled at positions 0..; only
         the tokens after the first block_size generated ones are timed (as bench-engine's past
         rows), so tokens_per_s = B*(N-block_size) / time.
prefill: --repeats timings of 20 prefills of the P-token prompt for B sequences into an empty
         cache (logits of the last position only, as the C engine computes them), after one
         untimed one; tokens_per_s = 20*B*P / time, ms_per_step = time / 20.

Both report the fastest repeat (the reference at its best: this shared machine slows single runs
by up to 2x) and the median.

--check-logits compares logits of (prefill + cached decode steps) with a plain full forward of
the reference model on the same tokens and prints the max abs difference (must be < 1e-4;
exit status 1 otherwise).

The caller should set GOMP_SPINCOUNT=0 in the environment: idle OpenMP threads otherwise
busy-spin and distort a comparison with the C code. It has to be set before the process starts
(libgomp reads it at load time), so we only warn.
"""
import argparse
import json
import math
import os
import sys
import time

import torch
import torch.nn.functional as F

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)),
                                "..", "tests", "reference"))
import gpt_reference as ref  # noqa: E402
import safetensors_io  # noqa: E402

# Fixed English text the prompt is taken from (its first P characters, repeated if needed).
PROMPT_TEXT = (
    "First Citizen:\n"
    "Before we proceed any further, hear me speak.\n\n"
    "All:\n"
    "Speak, speak.\n\n"
    "First Citizen:\n"
    "You are all resolved rather to die than to famish?\n\n"
    "All:\n"
    "Resolved. resolved.\n\n"
    "First Citizen:\n"
    "First, you know Caius Marcius is chief enemy to the people.\n\n"
)

CHECK_TOLERANCE = 1e-4


# ----------------------------------------------------------------------------- checkpoint


def _meta_int(meta, key):
    try:
        return int(meta[key])
    except KeyError:
        sys.exit("error: checkpoint metadata lacks %r" % key)
    except ValueError:
        sys.exit("error: checkpoint metadata %r=%r is not an integer" % (key, meta[key]))


def _meta_bool(meta, key):
    value = meta.get(key)
    if value not in ("true", "false"):
        sys.exit("error: checkpoint metadata %r=%r is not true|false" % (key, value))
    return value == "true"


def load_hf_gpt2(path):
    """A Hugging Face GPT-2 directory as gptd loads it: config.json, model.safetensors (names with
    or without "transformer.", mask buffers dropped, lm_head tied). Returns (model, None)."""
    try:
        with open(os.path.join(path, "config.json")) as f:
            conf = json.load(f)
        tensors, _ = safetensors_io.load(os.path.join(path, "model.safetensors"))
    except (OSError, ValueError, KeyError) as e:
        sys.exit("error: cannot read %s: %s" % (path, e))
    if conf.get("activation_function", "gelu_new") not in ("gelu_new", "gelu_pytorch_tanh"):
        sys.exit("error: %s: activation_function is not GPT-2's tanh GELU" % path)
    cfg = ref.GPTConfig(vocab_size=conf["vocab_size"], n_layer=conf["n_layer"],
                        n_head=conf["n_head"], n_embd=conf["n_embd"],
                        block_size=conf.get("n_positions", conf.get("n_ctx")), activation="gelu",
                        qkv_bias=True, tied_head=True, dropout=0.0)
    state = {}
    for name, arr in tensors.items():
        bare = name[len("transformer."):] if name.startswith("transformer.") else name
        if bare.endswith(".attn.bias") or bare.endswith(".attn.masked_bias") or \
                bare == "lm_head.weight":
            continue
        state["transformer." + bare] = torch.from_numpy(arr.astype("float32"))
    model = ref.GPT(cfg)
    try:
        model.load_state_dict(state, strict=True)
    except RuntimeError as e:
        sys.exit("error: %s does not match its config.json: %s" % (path, e))
    model.float().eval()
    return model, None


def load_model(path):
    """Returns (model, vocab): the reference GPT in eval mode with the checkpoint's weights; vocab
    is None for a byte-level BPE model (a Hugging Face directory)."""
    if os.path.isdir(path):
        return load_hf_gpt2(path)
    try:
        tensors, meta = safetensors_io.load(path)
    except (OSError, ValueError, KeyError) as e:
        sys.exit("error: cannot read %s: %s" % (path, e))
    activation = meta.get("activation")
    if activation not in ("relu", "gelu"):
        sys.exit("error: checkpoint metadata activation=%r is not relu|gelu" % activation)
    cfg = ref.GPTConfig(vocab_size=_meta_int(meta, "vocab_size"),
                        n_layer=_meta_int(meta, "n_layer"),
                        n_head=_meta_int(meta, "n_head"),
                        n_embd=_meta_int(meta, "n_embd"),
                        block_size=_meta_int(meta, "block_size"),
                        activation=activation,
                        qkv_bias=_meta_bool(meta, "qkv_bias"),
                        tied_head=_meta_bool(meta, "tied_head"),
                        dropout=0.0)
    vocab = meta.get("vocab")
    if vocab is None or len(vocab) != cfg.vocab_size:
        sys.exit("error: checkpoint metadata vocab missing or not vocab_size characters long")
    if cfg.n_embd % cfg.n_head != 0:
        sys.exit("error: n_embd is not a multiple of n_head")
    for name, arr in tensors.items():
        if arr.dtype not in ("float32", "float16"):
            sys.exit("error: tensor %s is %s, expected F32 or F16" % (name, arr.dtype))
    model = ref.GPT(cfg)
    # float16 weights are widened (exactly) and computed on in float32, as the C engine does
    state = {name: torch.from_numpy(arr.astype("float32")) for name, arr in tensors.items()}
    try:
        model.load_state_dict(state, strict=True)
    except RuntimeError as e:
        sys.exit("error: checkpoint does not match its metadata: %s" % e)
    model.float().eval()
    return model, vocab


def encode(text, vocab):
    """Character tokens; characters outside the vocabulary become token 0. Without a vocabulary
    (a BPE model), each character's code point modulo 256: ids of the byte tokens' range, enough
    for timing."""
    if vocab is None:
        return [ord(ch) % 256 for ch in text]
    stoi = {ch: i for i, ch in enumerate(vocab)}
    return [stoi.get(ch, 0) for ch in text]


def prompt_tokens(n, vocab, offset=0):
    """The n characters of PROMPT_TEXT starting at offset (cyclically), encoded."""
    text = PROMPT_TEXT * ((offset + n) // len(PROMPT_TEXT) + 1)
    return encode(text[offset:offset + n], vocab)


# ----------------------------------------------------------------------------- KV cache


class KVCache:
    """Per layer k and v of shape (B, n_head, t, head_size) for the first t positions.

    Storage for block_size positions is allocated once; appending writes the new positions in
    place, and k(l)/v(l) are views of the filled prefix (no copy of the cache per step).
    """

    def __init__(self, cfg, batch):
        hs = cfg.n_embd // cfg.n_head
        shape = (batch, cfg.n_head, cfg.block_size, hs)
        self.k_store = [torch.zeros(shape) for _ in range(cfg.n_layer)]
        self.v_store = [torch.zeros(shape) for _ in range(cfg.n_layer)]
        self.t = 0  # positions held

    def reset(self):
        self.t = 0

    def append(self, layer, k, v):
        """k, v: (B, n_head, T, hs) for positions [t, t+T); returns the full (k, v) views.
        The caller advances t once all layers are done (advance)."""
        t0, t1 = self.t, self.t + k.shape[2]
        self.k_store[layer][:, :, t0:t1] = k
        self.v_store[layer][:, :, t0:t1] = v
        return self.k_store[layer][:, :, :t1], self.v_store[layer][:, :, :t1]

    def advance(self, n):
        self.t += n


def forward_cached(model, idx, cache, last_only=True):
    """Runs tokens idx (B, T) at positions [cache.t, cache.t + T) against the cache.

    Appends their keys/values to the cache and returns logits (B, V) of the last position
    (last_only) or (B, T, V) of all of them. T > 1 is a prefill (causal within the new tokens),
    T == 1 a decode step (the new token attends over everything cached).
    """
    cfg = model.cfg
    B, T = idx.shape
    t0 = cache.t
    if t0 + T > cfg.block_size:
        raise ValueError("positions up to %d exceed block_size %d" % (t0 + T, cfg.block_size))
    nh = cfg.n_head
    C = cfg.n_embd
    hs = C // nh
    scale = 1.0 / math.sqrt(hs)
    tr = model.transformer
    pos = torch.arange(t0, t0 + T)
    x = tr.wte(idx) + tr.wpe(pos)
    mask = None
    if T > 1:
        # query i (position t0+i) must not see key j (position j) when j > t0 + i
        mask = torch.ones(T, t0 + T, dtype=torch.bool).triu(t0 + 1)
    for layer, block in enumerate(tr.h):
        attn = block.attn
        q, k, v = attn.c_attn(block.ln_1(x)).split(C, dim=2)
        q = q.view(B, T, nh, hs).transpose(1, 2)  # (B, nh, T, hs)
        k = k.view(B, T, nh, hs).transpose(1, 2)
        v = v.view(B, T, nh, hs).transpose(1, 2)
        k_all, v_all = cache.append(layer, k, v)  # (B, nh, t0+T, hs)
        att = (q @ k_all.transpose(-2, -1)) * scale  # (B, nh, T, t0+T)
        if mask is not None:
            att = att.masked_fill(mask, float("-inf"))
        att = F.softmax(att, dim=-1)
        y = (att @ v_all).transpose(1, 2).contiguous().view(B, T, C)
        x = x + attn.c_proj(y)
        x = x + block.mlp(block.ln_2(x))
    cache.advance(T)
    if last_only:
        x = x[:, -1, :]
    x = tr.ln_f(x)
    if model.lm_head is None:
        return x @ tr.wte.weight.t()
    return model.lm_head(x)


def sample(logits, temperature, gen):
    """logits (B, V) -> next tokens (B, 1)."""
    if temperature == 0.0:
        return logits.argmax(dim=-1, keepdim=True)
    probs = F.softmax(logits / temperature, dim=-1)
    return torch.multinomial(probs, 1, generator=gen)


def generate(model, cache, prompt, n_new, temperature, gen):
    """prompt (B, P) -> (B, n_new) new tokens: one prefill, then n_new - 1 decode steps."""
    cache.reset()
    out = []
    tok = sample(forward_cached(model, prompt, cache), temperature, gen)
    out.append(tok)
    for _ in range(n_new - 1):
        tok = sample(forward_cached(model, tok, cache), temperature, gen)
        out.append(tok)
    return torch.cat(out, dim=1)


def generate_past(model, cache, prompt, n_new, temperature, gen, kept, timed_from):
    """Like generate, going past the context: a full window restarts from its last `kept`
    tokens. Returns the seconds spent after `timed_from` tokens were generated."""
    T = model.cfg.block_size
    cache.reset()
    out = [prompt]
    tok = sample(forward_cached(model, prompt, cache), temperature, gen)
    out.append(tok)
    t0 = time.perf_counter() if timed_from <= 1 else None
    for i in range(1, n_new):
        if cache.t == T:  # full: a new window of the last `kept` tokens, at positions 0..
            window = torch.cat(out, dim=1)[:, -kept:]
            cache.reset()
            logits = forward_cached(model, window, cache)
        else:
            logits = forward_cached(model, tok, cache)
        tok = sample(logits, temperature, gen)
        out.append(tok)
        if i + 1 == timed_from:
            t0 = time.perf_counter()
    tok[0, 0].item()
    return time.perf_counter() - t0


def bench_past(model, vocab, args):
    cfg = model.cfg
    T = cfg.block_size
    B, N = args.batch, args.new_tokens
    kept = T if args.context_shift == "exact" else (args.context_keep or max(T // 4, 1))
    prompt = torch.tensor([prompt_tokens(args.prompt_len, vocab)] * B, dtype=torch.long)
    cache = KVCache(cfg, B)
    gen = torch.Generator().manual_seed(args.seed)
    generate_past(model, cache, prompt, min(N, T + 2), args.temperature, gen, kept, T)  # warm-up
    seconds = []
    for _ in range(args.repeats):
        gen.manual_seed(args.seed)
        seconds.append(generate_past(model, cache, prompt, N, args.temperature, gen, kept, T))
    report("past-" + args.context_shift, B, B * (N - T), seconds, N - T)


# ----------------------------------------------------------------------------- modes


def check_logits(model, vocab, batch, prefill_len):
    """Max abs difference between cached (prefill + decode) and full-forward logits."""
    cfg = model.cfg
    S = min(32, cfg.block_size)
    P = prefill_len if prefill_len is not None and 1 <= prefill_len < S else max(1, S // 2)
    # different text in each row, so that mixing up rows would show
    idx = torch.tensor([prompt_tokens(S, vocab, offset=7 * b) for b in range(batch)],
                       dtype=torch.long)
    full, _ = model(idx)  # (B, S, V)
    cache = KVCache(cfg, batch)
    parts = [forward_cached(model, idx[:, :P], cache, last_only=False)]  # (B, P, V)
    for t in range(P, S):
        parts.append(forward_cached(model, idx[:, t:t + 1], cache, last_only=False))
    cached = torch.cat(parts, dim=1)
    diff = (cached - full).abs().max().item()
    ok = diff < CHECK_TOLERANCE
    print("torch check-logits batch=%d tokens=%d prefill=%d max_abs_diff=%.3e %s"
          % (batch, S, P, diff, "ok" if ok else "FAIL"))
    return ok


def report(mode, batch, tokens, seconds, steps):
    """Prints the fastest of the timed repeats (and the median, for the spread)."""
    rates = sorted(tokens / t for t in seconds)
    best = min(seconds)
    print("torch mode=%s batch=%d tokens_per_s=%.1f ms_per_step=%.3f median_tokens_per_s=%.1f"
          % (mode, batch, tokens / best, 1000.0 * best / steps, rates[len(rates) // 2]))


def bench_decode(model, vocab, args):
    cfg = model.cfg
    B, N = args.batch, args.new_tokens
    prompt = torch.tensor([prompt_tokens(args.prompt_len, vocab)] * B, dtype=torch.long)
    cache = KVCache(cfg, B)
    gen = torch.Generator().manual_seed(args.seed)
    generate(model, cache, prompt, min(N, 4), args.temperature, gen)  # warm-up, untimed
    seconds = []
    for _ in range(args.repeats):
        gen.manual_seed(args.seed)
        t0 = time.perf_counter()
        out = generate(model, cache, prompt, N, args.temperature, gen)
        out[0, -1].item()  # make sure all work is done before stopping the clock
        seconds.append(time.perf_counter() - t0)
    if args.show:
        for row in out[:args.show].tolist():
            print(repr("".join(vocab[i] for i in row) if vocab else row), file=sys.stderr)
    report("decode", B, B * N, seconds, N)


def bench_prefill(model, vocab, args):
    cfg = model.cfg
    B, P, R = args.batch, args.prompt_len, 20
    prompt = torch.tensor([prompt_tokens(P, vocab)] * B, dtype=torch.long)
    cache = KVCache(cfg, B)
    cache.reset()
    forward_cached(model, prompt, cache)  # warm-up, untimed
    seconds = []
    for _ in range(args.repeats):
        t0 = time.perf_counter()
        for _ in range(R):
            cache.reset()
            logits = forward_cached(model, prompt, cache)
        logits[0, 0].item()
        seconds.append(time.perf_counter() - t0)
    report("prefill", B, R * B * P, seconds, R)


def parse_args():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", required=True, help="checkpoint (.safetensors)")
    ap.add_argument("--mode", choices=["decode", "prefill", "past"], default="decode")
    ap.add_argument("--context-shift", choices=["keep", "exact"], default="keep",
                    help="past: the rule past the context")
    ap.add_argument("--context-keep", type=int, default=0,
                    help="past, keep: tokens a full window keeps (0 = a quarter of the context, as gptd)")
    ap.add_argument("--batch", type=int, default=1, help="sequences generated at once")
    ap.add_argument("--new-tokens", type=int, default=200, help="tokens per sequence (decode)")
    ap.add_argument("--prompt-len", type=int, default=None,
                    help="prompt tokens: the first P characters of a fixed text (default 1; "
                         "with --check-logits: tokens prefilled before the decode steps)")
    ap.add_argument("--repeats", type=int, default=5,
                    help="timed repeats (a generation, or 20 prefills); the fastest is reported")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--temperature", type=float, default=1.0, help="0 = argmax")
    ap.add_argument("--seed", type=int, default=1337)
    ap.add_argument("--show", type=int, default=0,
                    help="print the first K generated sequences on stderr (decode)")
    ap.add_argument("--check-logits", action="store_true",
                    help="compare cached logits with a full forward instead of timing")
    return ap.parse_args()


def main():
    args = parse_args()
    ref.warn_if_openmp_spins()
    if args.batch < 1:
        sys.exit("error: --batch must be >= 1")
    if args.threads < 1:
        sys.exit("error: --threads must be >= 1")
    if args.repeats < 1:
        sys.exit("error: --repeats must be >= 1")
    if args.temperature < 0 or not math.isfinite(args.temperature):
        sys.exit("error: --temperature must be >= 0")
    torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)

    with torch.inference_mode():
        model, vocab = load_model(args.model)
        T = model.cfg.block_size
        if args.check_logits:
            sys.exit(0 if check_logits(model, vocab, args.batch, args.prompt_len) else 1)
        if args.prompt_len is None:
            args.prompt_len = 1
        if args.prompt_len < 1:
            sys.exit("error: --prompt-len must be >= 1")
        if args.mode == "past":
            if args.new_tokens <= T or args.prompt_len > T:
                sys.exit("error: past: --new-tokens must exceed block_size %d" % T)
            if not 0 <= args.context_keep <= T:
                sys.exit("error: --context-keep must be in 0..%d" % T)
            bench_past(model, vocab, args)
        elif args.mode == "decode":
            if args.new_tokens < 1:
                sys.exit("error: --new-tokens must be >= 1")
            if args.prompt_len + args.new_tokens > T:
                sys.exit("error: --prompt-len + --new-tokens = %d exceeds block_size %d"
                         % (args.prompt_len + args.new_tokens, T))
            bench_decode(model, vocab, args)
        else:
            if args.prompt_len > T:
                sys.exit("error: --prompt-len %d exceeds block_size %d" % (args.prompt_len, T))
            bench_prefill(model, vocab, args)


if __name__ == "__main__":
    main()
