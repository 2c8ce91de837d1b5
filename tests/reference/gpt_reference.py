"""PyTorch reference GPT that mirrors the C model in gptd exactly.

Parameter names and shapes follow GPT-2's Conv1D layout (y = x @ W + b with
W stored as (in, out)), so a state_dict can be written to safetensors and
loaded by the C side without any transposes.
"""
import math
from dataclasses import dataclass

import torch
import torch.nn as nn
import torch.nn.functional as F

LN_EPS = 1e-5


@dataclass
class GPTConfig:
    vocab_size: int = 65
    n_layer: int = 2
    n_head: int = 4
    n_embd: int = 64
    block_size: int = 32
    activation: str = "gelu"   # 'relu', 'gelu' (tanh approximation) or 'gelu_erf' (exact)
    qkv_bias: bool = False
    tied_head: bool = False
    dropout: float = 0.0


def activation_fn(name):
    if name == "relu":
        return F.relu
    if name == "gelu":
        # tanh approximation: 0.5 x (1 + tanh(sqrt(2/pi) (x + 0.044715 x^3)))
        return lambda x: F.gelu(x, approximate="tanh")
    if name == "gelu_erf":
        return F.gelu  # exact: 0.5 x (1 + erf(x / sqrt(2))), nn.GELU()'s default
    raise ValueError("unknown activation: %r" % name)


def attention(q, k, v, n_head, causal, dropout_p=0.0, training=False):
    """Multi-head scaled dot-product attention.

    q: (B, Tq, C), k and v: (B, Tk, C). Head h uses channels [h*hs, (h+1)*hs).
    With causal=True, key j is masked for query i when j > i (needs Tq == Tk).
    Returns (B, Tq, C) with the heads concatenated in order.
    """
    B, Tq, C = q.shape
    Tk = k.shape[1]
    hs = C // n_head
    q = q.view(B, Tq, n_head, hs).transpose(1, 2)  # (B, nh, Tq, hs)
    k = k.view(B, Tk, n_head, hs).transpose(1, 2)  # (B, nh, Tk, hs)
    v = v.view(B, Tk, n_head, hs).transpose(1, 2)
    att = (q @ k.transpose(-2, -1)) * (1.0 / math.sqrt(hs))  # (B, nh, Tq, Tk)
    if causal:
        mask = torch.ones(Tq, Tk, dtype=torch.bool, device=q.device).triu(1)
        att = att.masked_fill(mask, float("-inf"))
    att = F.softmax(att, dim=-1)
    att = F.dropout(att, dropout_p, training)
    y = att @ v  # (B, nh, Tq, hs)
    return y.transpose(1, 2).contiguous().view(B, Tq, C)


class Conv1D(nn.Module):
    """y = x @ weight + bias, weight stored as (in, out) like GPT-2."""

    def __init__(self, n_in, n_out, bias=True):
        super().__init__()
        self.weight = nn.Parameter(torch.empty(n_in, n_out))
        self.bias = nn.Parameter(torch.zeros(n_out)) if bias else None

    def forward(self, x):
        y = x @ self.weight
        if self.bias is not None:
            y = y + self.bias
        return y


class CausalSelfAttention(nn.Module):
    def __init__(self, cfg):
        super().__init__()
        C = cfg.n_embd
        assert C % cfg.n_head == 0
        self.n_head = cfg.n_head
        self.dropout = cfg.dropout
        self.c_attn = Conv1D(C, 3 * C, bias=cfg.qkv_bias)
        self.c_proj = Conv1D(C, C)

    def forward(self, x):
        C = x.shape[-1]
        q, k, v = self.c_attn(x).split(C, dim=2)  # q first, then k, then v
        y = attention(q, k, v, self.n_head, causal=True,
                      dropout_p=self.dropout, training=self.training)
        y = self.c_proj(y)
        return F.dropout(y, self.dropout, self.training)


class MLP(nn.Module):
    def __init__(self, cfg):
        super().__init__()
        C = cfg.n_embd
        self.act = activation_fn(cfg.activation)
        self.dropout = cfg.dropout
        self.c_fc = Conv1D(C, 4 * C)
        self.c_proj = Conv1D(4 * C, C)

    def forward(self, x):
        m = self.c_proj(self.act(self.c_fc(x)))
        return F.dropout(m, self.dropout, self.training)


class Block(nn.Module):
    def __init__(self, cfg):
        super().__init__()
        # Attribute order fixes the state_dict order (= the documented order).
        self.ln_1 = nn.LayerNorm(cfg.n_embd, eps=LN_EPS)
        self.attn = CausalSelfAttention(cfg)
        self.ln_2 = nn.LayerNorm(cfg.n_embd, eps=LN_EPS)
        self.mlp = MLP(cfg)

    def forward(self, x):
        x = x + self.attn(self.ln_1(x))
        x = x + self.mlp(self.ln_2(x))
        return x


class GPT(nn.Module):
    def __init__(self, cfg):
        super().__init__()
        self.cfg = cfg
        self.transformer = nn.ModuleDict(dict(
            wte=nn.Embedding(cfg.vocab_size, cfg.n_embd),
            wpe=nn.Embedding(cfg.block_size, cfg.n_embd),
            h=nn.ModuleList([Block(cfg) for _ in range(cfg.n_layer)]),
            ln_f=nn.LayerNorm(cfg.n_embd, eps=LN_EPS),
        ))
        if cfg.tied_head:
            self.lm_head = None  # logits = x @ wte.T, no bias
        else:
            self.lm_head = nn.Linear(cfg.n_embd, cfg.vocab_size, bias=True)
        init_gpt2_(self)

    def forward(self, idx, targets=None):
        B, T = idx.shape
        assert T <= self.cfg.block_size
        tr = self.transformer
        pos = torch.arange(T, device=idx.device)
        x = tr.wte(idx) + tr.wpe(pos)  # no embedding dropout (matches C)
        for block in tr.h:
            x = block(x)
        x = tr.ln_f(x)
        if self.lm_head is None:
            logits = x @ tr.wte.weight.t()
        else:
            logits = self.lm_head(x)
        loss = None
        if targets is not None:
            # mean over all B*T positions
            loss = F.cross_entropy(logits.reshape(B * T, -1), targets.reshape(B * T))
        return logits, loss


def _kind(name):
    """Classify a parameter name for initialisation."""
    if ".ln_" in name or name.startswith("transformer.ln_f"):
        return "ln_weight" if name.endswith(".weight") else "ln_bias"
    if name.endswith(".bias"):
        return "bias"
    return "matrix"  # matrices and embeddings


@torch.no_grad()
def init_gpt2_(model, generator=None):
    """GPT-2 init: N(0, 0.02); residual projections N(0, 0.02/sqrt(2L))."""
    resid_std = 0.02 / math.sqrt(2 * model.cfg.n_layer)
    for name, p in model.named_parameters():
        kind = _kind(name)
        if kind == "ln_weight":
            p.fill_(1.0)
        elif kind in ("ln_bias", "bias"):
            p.zero_()
        elif name.endswith("attn.c_proj.weight") or name.endswith("mlp.c_proj.weight"):
            p.normal_(0.0, resid_std, generator=generator)
        else:
            p.normal_(0.0, 0.02, generator=generator)


@torch.no_grad()
def init_fixture_(model, generator=None):
    """Non-trivial init for test fixtures, so that every gradient is nonzero."""
    for name, p in model.named_parameters():
        kind = _kind(name)
        if kind == "ln_weight":
            p.normal_(0.0, 0.1, generator=generator).add_(1.0)
        elif kind in ("ln_bias", "bias"):
            p.normal_(0.0, 0.05, generator=generator)
        else:
            p.normal_(0.0, 0.1, generator=generator)


def make_optimizer(model, lr, weight_decay=0.01):
    # AdamW on all parameters (biases and LN included), as in the lecture.
    return torch.optim.AdamW(model.parameters(), lr=lr, betas=(0.9, 0.999),
                             eps=1e-8, weight_decay=weight_decay)


def warn_if_openmp_spins():
    """Benchmarks want GOMP_SPINCOUNT=0 (set before the process starts: libgomp reads it at
    load time); idle OpenMP threads otherwise spin and skew a comparison on 2 cores."""
    import os
    import sys
    if os.environ.get("GOMP_SPINCOUNT") != "0":
        print("warning: GOMP_SPINCOUNT=0 is not set; OpenMP spin-waiting may skew timings",
              file=sys.stderr)
