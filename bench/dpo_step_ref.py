#!/usr/bin/python3
# The reference for bench/dpo_step.cpp: one DPO training step in eager Python PyTorch, the way
# TRL's DPOTrainer does it (chosen and rejected concatenated, full (N,T,V) logits, log_softmax,
# gather, mask, sum; reference forward under no_grad or precomputed reference log-probs; AdamW).
# A Hugging Face-style Llama written out in plain torch.nn (transformers is not installed).
# Prints one JSON line: tokens/s, seconds per step and peak resident memory (VmHWM).
# Run by bench_dpo_step; by hand: /usr/bin/python3 bench/dpo_step_ref.py --config C --batch B --variant live
import argparse
import json
import math
import time

import torch
import torch.nn as nn
import torch.nn.functional as F


class RMSNorm(nn.Module):
    def __init__(self, dim, eps):
        super().__init__()
        self.weight = nn.Parameter(torch.ones(dim))
        self.eps = eps

    def forward(self, x):
        var = x.pow(2).mean(-1, keepdim=True)
        return self.weight * (x * torch.rsqrt(var + self.eps))


def rotate_half(x):
    h = x.shape[-1] // 2
    return torch.cat((-x[..., h:], x[..., :h]), dim=-1)


class Attention(nn.Module):
    def __init__(self, c):
        super().__init__()
        self.h = c["num_attention_heads"]
        self.kv = c.get("num_key_value_heads", self.h)
        self.d = c["hidden_size"] // self.h
        C = c["hidden_size"]
        self.q_proj = nn.Linear(C, self.h * self.d, bias=False)
        self.k_proj = nn.Linear(C, self.kv * self.d, bias=False)
        self.v_proj = nn.Linear(C, self.kv * self.d, bias=False)
        self.o_proj = nn.Linear(self.h * self.d, C, bias=False)

    def forward(self, x, cos, sin, mask):
        B, T, _ = x.shape
        q = self.q_proj(x).view(B, T, self.h, self.d).transpose(1, 2)
        k = self.k_proj(x).view(B, T, self.kv, self.d).transpose(1, 2)
        v = self.v_proj(x).view(B, T, self.kv, self.d).transpose(1, 2)
        q = q * cos + rotate_half(q) * sin
        k = k * cos + rotate_half(k) * sin
        if self.kv != self.h:
            k = k.repeat_interleave(self.h // self.kv, dim=1)
            v = v.repeat_interleave(self.h // self.kv, dim=1)
        att = (q @ k.transpose(-2, -1)) / math.sqrt(self.d) + mask
        att = att.softmax(-1)
        y = (att @ v).transpose(1, 2).reshape(B, T, self.h * self.d)
        return self.o_proj(y)


class Mlp(nn.Module):
    def __init__(self, c):
        super().__init__()
        C, Fd = c["hidden_size"], c["intermediate_size"]
        self.gate_proj = nn.Linear(C, Fd, bias=False)
        self.up_proj = nn.Linear(C, Fd, bias=False)
        self.down_proj = nn.Linear(Fd, C, bias=False)

    def forward(self, x):
        return self.down_proj(F.silu(self.gate_proj(x)) * self.up_proj(x))


class Block(nn.Module):
    def __init__(self, c):
        super().__init__()
        self.input_layernorm = RMSNorm(c["hidden_size"], c.get("rms_norm_eps", 1e-6))
        self.self_attn = Attention(c)
        self.post_attention_layernorm = RMSNorm(c["hidden_size"], c.get("rms_norm_eps", 1e-6))
        self.mlp = Mlp(c)

    def forward(self, x, cos, sin, mask):
        x = x + self.self_attn(self.input_layernorm(x), cos, sin, mask)
        return x + self.mlp(self.post_attention_layernorm(x))


class Llama(nn.Module):
    def __init__(self, c):
        super().__init__()
        self.c = c
        self.embed_tokens = nn.Embedding(c["vocab_size"], c["hidden_size"])
        self.layers = nn.ModuleList([Block(c) for _ in range(c["num_hidden_layers"])])
        self.norm = RMSNorm(c["hidden_size"], c.get("rms_norm_eps", 1e-6))
        self.lm_head = nn.Linear(c["hidden_size"], c["vocab_size"], bias=False)
        d = c["hidden_size"] // c["num_attention_heads"]
        inv = 1.0 / (c.get("rope_theta", 10000.0) ** (torch.arange(0, d, 2).float() / d))
        self.register_buffer("inv_freq", inv, persistent=False)
        for p in self.parameters():
            if p.dim() == 2:
                nn.init.normal_(p, std=0.02)

    def forward(self, ids):
        B, T = ids.shape
        pos = torch.arange(T).float()
        freqs = torch.outer(pos, self.inv_freq)
        emb = torch.cat((freqs, freqs), -1)
        cos, sin = emb.cos()[None, None], emb.sin()[None, None]
        mask = torch.full((T, T), float("-inf")).triu(1)[None, None]
        x = self.embed_tokens(ids)
        for layer in self.layers:
            x = layer(x, cos, sin, mask)
        return self.lm_head(self.norm(x)).float()


def batch_logps(logits, labels, loss_mask):
    # TRL's get_batch_logps: shift, log_softmax over the vocabulary, gather, mask, sum.
    logits = logits[:, :-1, :]
    labels = labels[:, 1:]
    mask = loss_mask[:, 1:]
    per_token = torch.gather(logits.log_softmax(-1), 2, labels.unsqueeze(2)).squeeze(2)
    return (per_token * mask).sum(-1)


def peak_rss_mb():
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024.0
    return 0.0


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--config", required=True)
    ap.add_argument("--batch", required=True)
    ap.add_argument("--variant", choices=["live", "precompute"], default="live")
    ap.add_argument("--threads", type=int, default=0)
    ap.add_argument("--steps", type=int, default=5)
    ap.add_argument("--warmup", type=int, default=1)
    ap.add_argument("--beta", type=float, default=0.1)
    a = ap.parse_args()
    if a.threads > 0:
        torch.set_num_threads(a.threads)
    c = json.load(open(a.config))
    b = json.load(open(a.batch))
    torch.manual_seed(0)
    policy = Llama(c)
    # Concatenated batch: [chosen..., rejected...], right-padded with 0.
    seqs, masks = [], []
    for key in ("chosen", "rejected"):
        for p, r in zip(b["prompts"], b[key]):
            seqs.append(p + r)
            masks.append([0] * len(p) + [1] * len(r))
    T = max(len(s) for s in seqs)
    ids = torch.tensor([s + [0] * (T - len(s)) for s in seqs])
    loss_mask = torch.tensor([m + [0] * (T - len(m)) for m in masks], dtype=torch.float32)
    n_pairs = len(b["prompts"])
    tokens = sum(len(s) for s in seqs)
    ref = None
    if a.variant == "live":
        ref = Llama(c)
        ref.load_state_dict(policy.state_dict())
        ref.requires_grad_(False)
        ref.eval()
    else:
        with torch.no_grad():
            ref_logps = batch_logps(policy(ids), ids, loss_mask)
    opt = torch.optim.AdamW(policy.parameters(), lr=1e-6, weight_decay=0.0)
    times, loss_value = [], 0.0
    for step in range(a.warmup + a.steps):
        t0 = time.time()
        opt.zero_grad(set_to_none=True)
        logps = batch_logps(policy(ids), ids, loss_mask)
        if ref is not None:
            with torch.no_grad():
                ref_logps = batch_logps(ref(ids), ids, loss_mask)
        pc, pr = logps[:n_pairs], logps[n_pairs:]
        rc, rr = ref_logps[:n_pairs], ref_logps[n_pairs:]
        loss = -F.logsigmoid(a.beta * ((pc - pr) - (rc - rr))).mean()
        loss.backward()
        opt.step()
        loss_value = loss.item()
        if step >= a.warmup:
            times.append(time.time() - t0)
    step_s = sorted(times)[len(times) // 2]
    print(json.dumps({"impl": "python", "variant": a.variant, "threads": torch.get_num_threads(),
                      "tokens": tokens, "step_s": step_s, "tokens_per_s": tokens / step_s,
                      "peak_rss_mb": peak_rss_mb(), "loss": loss_value,
                      "params": sum(p.numel() for p in policy.parameters())}))


if __name__ == "__main__":
    main()
