#!/usr/bin/python3
"""Eager Python-PyTorch reference for bench/model_throughput: the same Llama-shaped network
(RMSNorm, RoPE, SwiGLU, GQA) written plainly, timed on the same workloads. Prints one JSON line.
Usage: model_ref.py HIDDEN LAYERS HEADS KV_HEADS FFN VOCAB BATCH SEQ GEN_PROMPT GEN_NEW THREADS"""
import json, math, sys, time
import torch

C, L, H, HKV, F, V, B, T, GP, GN, THREADS = map(int, sys.argv[1:12])
torch.set_num_threads(THREADS)
torch.manual_seed(0)
D = C // H
W = {"embed": torch.randn(V, C) * 0.02, "norm": torch.ones(C), "head": torch.randn(V, C) * 0.02, "layers": []}
for _ in range(L):
    W["layers"].append({k: torch.randn(*s) * 0.02 for k, s in {
        "q": (H * D, C), "k": (HKV * D, C), "v": (HKV * D, C), "o": (C, H * D),
        "g": (F, C), "u": (F, C), "d": (C, F)}.items()} | {"n1": torch.ones(C), "n2": torch.ones(C)})
inv = 1.0 / (10000.0 ** (torch.arange(0, D, 2).float() / D))


def rms(x, w):
    return w * (x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + 1e-6))


def rot(x):
    h = x.shape[-1] // 2
    return torch.cat([-x[..., h:], x[..., :h]], -1)


def forward(ids, cache=None):
    b, t = ids.shape
    past = cache[0][0].shape[2] if cache and cache[0] else 0
    x = W["embed"][ids]
    fr = torch.arange(past, past + t).float()[:, None] * inv[None]
    emb = torch.cat([fr, fr], -1)
    cos, sin = emb.cos(), emb.sin()
    mask = torch.full((t, past + t), float("-inf")).triu(past + 1)
    for i, lw in enumerate(W["layers"]):
        h = rms(x, lw["n1"])
        q = (h @ lw["q"].T).view(b, t, H, D).transpose(1, 2)
        k = (h @ lw["k"].T).view(b, t, HKV, D).transpose(1, 2)
        v = (h @ lw["v"].T).view(b, t, HKV, D).transpose(1, 2)
        q = q * cos + rot(q) * sin
        k = k * cos + rot(k) * sin
        if cache is not None:
            if cache[i]:
                k = torch.cat([cache[i][0], k], 2)
                v = torch.cat([cache[i][1], v], 2)
            cache[i] = (k, v)
        k = k.repeat_interleave(H // HKV, 1)
        v = v.repeat_interleave(H // HKV, 1)
        a = ((q @ k.transpose(-1, -2)) / math.sqrt(D) + mask).softmax(-1) @ v
        x = x + a.transpose(1, 2).reshape(b, t, C) @ lw["o"].T
        h = rms(x, lw["n2"])
        x = x + (torch.nn.functional.silu(h @ lw["g"].T) * (h @ lw["u"].T)) @ lw["d"].T
    return rms(x, W["norm"]) @ W["head"].T


def timeit(fn, reps):
    fn()
    t0 = time.perf_counter()
    for _ in range(reps):
        fn()
    return (time.perf_counter() - t0) / reps


with torch.no_grad():
    ids = torch.randint(0, V, (B, T))
    score_s = timeit(lambda: forward(ids).log_softmax(-1), 3)
    prompt = torch.randint(0, V, (1, GP))

    def gen():
        cache = [None] * L
        logits = forward(prompt, cache)[:, -1]
        for _ in range(GN - 1):
            nxt = logits.argmax(-1, keepdim=True)
            logits = forward(nxt, cache)[:, -1]
    gen_s = timeit(gen, 2)
print(json.dumps({"score_tokens_per_s": B * T / score_s, "gen_tokens_per_s": GN / gen_s, "threads": THREADS}))
