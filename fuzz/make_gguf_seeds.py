#!/usr/bin/python3
"""Writes the seed corpus for fuzz/gguf_fuzz: small constructed GGUF files covering every metadata
value type, versions 2 and 3, every tensor type atax dequantizes, llama and qwen2 models with
'llama' and 'gpt2' vocabularies, plus stories260K.gguf from ../shared when it is there.

usage: /usr/bin/python3 fuzz/make_gguf_seeds.py OUT_DIR
"""
import os
import random
import shutil
import struct
import sys

U8, I8, U16, I16, U32, I32, F32, BOOL, STR, ARR, U64, I64, F64 = range(13)
T_F32, T_F16, T_Q4_0, T_Q8_0, T_Q4_K, T_Q6_K, T_BF16 = 0, 1, 2, 8, 12, 14, 30
BLOCK = {T_F32: (1, 4), T_F16: (1, 2), T_BF16: (1, 2), T_Q4_0: (32, 18), T_Q8_0: (32, 34), T_Q4_K: (256, 144),
         T_Q6_K: (256, 210)}
SCALAR = {U8: "<B", I8: "<b", U16: "<H", I16: "<h", U32: "<I", I32: "<i", F32: "<f", BOOL: "<?", U64: "<Q",
          I64: "<q", F64: "<d"}


def gstr(s):
    b = s.encode() if isinstance(s, str) else s
    return struct.pack("<Q", len(b)) + b


def value(t, v):
    if t == STR:
        return gstr(v)
    if t == ARR:
        et, items = v
        return struct.pack("<IQ", et, len(items)) + b"".join(value(et, x) for x in items)
    return struct.pack(SCALAR[t], v)


def gguf(kvs, tensors, version=3, align=32):
    out = b"GGUF" + struct.pack("<IQQ", version, len(tensors), len(kvs))
    for k, t, v in kvs:
        out += gstr(k) + struct.pack("<I", t) + value(t, v)
    off, offsets = 0, []
    for name, ne, tt, data in tensors:
        out += gstr(name) + struct.pack("<I", len(ne)) + b"".join(struct.pack("<Q", n) for n in ne)
        out += struct.pack("<IQ", tt, off)
        offsets.append(off)
        off += (len(data) + align - 1) // align * align
    out += b"\0" * (-len(out) % align)
    start = len(out)
    for (name, ne, tt, data), o in zip(tensors, offsets):
        out += b"\0" * (start + o - len(out)) + data
    return out + b"\0" * (-(len(out) - start) % align)


def tensor(rng, name, ne, tt):
    n = 1
    for d in ne:
        n *= d
    bs, ts = BLOCK[tt]
    if tt == T_F32:
        data = b"".join(struct.pack("<f", rng.uniform(-1, 1)) for _ in range(n))
    else:
        data = bytes(rng.randrange(256) for _ in range(n // bs * ts))
        if tt in (T_Q4_0, T_Q8_0):  # keep the fp16 scales finite
            data = bytearray(data)
            for b in range(0, len(data), ts):
                data[b:b + 2] = struct.pack("<e", rng.uniform(-0.1, 0.1))
            data = bytes(data)
    return (name, ne, tt, data)


def llama_model(rng, arch, n_embd, tt=T_F32, output=False, bias=False):
    kv = [("general.architecture", STR, arch), (arch + ".context_length", U32, 64),
          (arch + ".embedding_length", U32, n_embd), (arch + ".block_count", U32, 1),
          (arch + ".feed_forward_length", U32, n_embd), (arch + ".attention.head_count", U32, 2),
          (arch + ".attention.head_count_kv", U32, 1), (arch + ".attention.layer_norm_rms_epsilon", F32, 1e-5),
          (arch + ".rope.dimension_count", U32, n_embd // 2)]
    hd = n_embd // 2
    ts = [tensor(rng, "token_embd.weight", [n_embd, 8], tt), tensor(rng, "output_norm.weight", [n_embd], T_F32),
          tensor(rng, "blk.0.attn_norm.weight", [n_embd], T_F32),
          tensor(rng, "blk.0.attn_q.weight", [n_embd, 2 * hd], tt),
          tensor(rng, "blk.0.attn_k.weight", [n_embd, hd], tt), tensor(rng, "blk.0.attn_v.weight", [n_embd, hd], tt),
          tensor(rng, "blk.0.attn_output.weight", [n_embd, n_embd], tt),
          tensor(rng, "blk.0.ffn_norm.weight", [n_embd], T_F32),
          tensor(rng, "blk.0.ffn_gate.weight", [n_embd, n_embd], tt),
          tensor(rng, "blk.0.ffn_up.weight", [n_embd, n_embd], tt),
          tensor(rng, "blk.0.ffn_down.weight", [n_embd, n_embd], tt)]
    if output:
        ts.append(tensor(rng, "output.weight", [n_embd, 8], tt))
    if bias:
        ts += [tensor(rng, "blk.0.attn_q.bias", [2 * hd], T_F32), tensor(rng, "blk.0.attn_k.bias", [hd], T_F32),
               tensor(rng, "blk.0.attn_v.bias", [hd], T_F32)]
    return kv, ts


SP = "\u2581"
SPM_VOCAB = [
    ("tokenizer.ggml.model", STR, "llama"),
    ("tokenizer.ggml.tokens", ARR, (STR, ["<unk>", "<s>", "</s>", "<0x0A>", SP + "t", "he", SP + "the", "t", "h",
                                          "e"])),
    ("tokenizer.ggml.scores", ARR, (F32, [0, 0, 0, 0, 0, -1, -2, -3, -4, -5])),
    ("tokenizer.ggml.token_type", ARR, (I32, [2, 3, 3, 6, 1, 1, 1, 1, 1, 1])),
    ("tokenizer.ggml.bos_token_id", U32, 1), ("tokenizer.ggml.eos_token_id", U32, 2),
    ("tokenizer.ggml.padding_token_id", U32, 4294967295), ("tokenizer.ggml.add_bos_token", BOOL, True),
    ("tokenizer.chat_template", STR, "{% for m in messages %}{{ m['content'] }}{% endfor %}"),
]
BPE_VOCAB = [
    ("tokenizer.ggml.model", STR, "gpt2"), ("tokenizer.ggml.pre", STR, "qwen2"),
    ("tokenizer.ggml.tokens", ARR, (STR, ["a", "b", "ab", "\u0120", "\u0120ab", "<|endoftext|>", "1", "2"])),
    ("tokenizer.ggml.token_type", ARR, (I32, [1, 1, 1, 1, 1, 3, 1, 1])),
    ("tokenizer.ggml.merges", ARR, (STR, ["a b", "\u0120 ab"])), ("tokenizer.ggml.eos_token_id", U32, 5),
]


def main():
    out = sys.argv[1] if len(sys.argv) > 1 else "fuzz_corpus"
    os.makedirs(out, exist_ok=True)
    rng = random.Random(1234)
    seeds = {}
    every = [("u8", U8, 200), ("i8", I8, -3), ("u16", U16, 60000), ("i16", I16, -300), ("u32", U32, 7),
             ("i32", I32, -7), ("f32", F32, 0.5), ("bool", BOOL, True), ("str", STR, "h\u00e9llo"),
             ("u64", U64, 2**63), ("i64", I64, -2**40), ("f64", F64, 1 / 3),
             ("nested", ARR, (ARR, [(U16, [1, 2]), (STR, ["x"])])), ("general.alignment", U32, 64)]
    seeds["values_v3.gguf"] = gguf(every, [tensor(rng, "w", [4, 2], T_F32)], align=64)
    seeds["values_v2.gguf"] = gguf(every[:-1], [tensor(rng, "w", [3], T_F32)], version=2)
    seeds["types.gguf"] = gguf([], [tensor(rng, "q4_0", [64], T_Q4_0), tensor(rng, "q8_0", [32, 2], T_Q8_0),
                                    tensor(rng, "q4_k", [256], T_Q4_K), tensor(rng, "q6_k", [256], T_Q6_K),
                                    tensor(rng, "f16", [5], T_F16), tensor(rng, "bf16", [3, 1, 1], T_BF16)])
    kv, ts = llama_model(rng, "llama", 8)
    seeds["llama_spm.gguf"] = gguf(kv + SPM_VOCAB, ts)
    kv, ts = llama_model(rng, "llama", 256, T_Q4_K, output=True)
    seeds["llama_q4k.gguf"] = gguf(kv + SPM_VOCAB, ts)
    kv, ts = llama_model(rng, "qwen2", 32, T_Q8_0, bias=True)
    seeds["qwen2_bpe.gguf"] = gguf(kv + BPE_VOCAB + [("qwen2.rope.freq_base", F32, 1e6)], ts)
    kv, ts = llama_model(rng, "llama", 256, T_Q6_K)
    seeds["llama_q6k_bpe.gguf"] = gguf(kv + [(k, t, v) if k != "tokenizer.ggml.pre" else (k, t, "llama-bpe")
                                             for k, t, v in BPE_VOCAB], ts)
    for name, data in seeds.items():
        with open(os.path.join(out, name), "wb") as f:
            f.write(data)
    stories = os.path.join(os.path.dirname(os.path.abspath(__file__)), "../../shared/models/stories260K/stories260K.gguf")
    if os.path.exists(stories):
        shutil.copy(stories, os.path.join(out, "stories260K.gguf"))
    print(f"{len(os.listdir(out))} seeds in {out}")


if __name__ == "__main__":
    main()
