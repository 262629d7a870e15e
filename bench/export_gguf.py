#!/usr/bin/python3
"""Writes a Llama-family Hugging Face folder (config.json, model.safetensors in F32/F16/BF16,
tokenizer.json of a SentencePiece-style BPE such as Mistral's) as an F32 GGUF file for llama.cpp,
so that bench_score_vs_llamacpp runs atax and llama.cpp on the same weights and vocabulary.

Usage: /usr/bin/python3 bench/export_gguf.py HF_DIR OUT.gguf LLAMA_CPP_SOURCE_DIR
The writer is llama.cpp's own gguf-py (LLAMA_CPP_SOURCE_DIR/gguf-py, pure Python + numpy).
Token scores are -id (SentencePiece BPE order), as llama.cpp's SPM tokenizer expects.
"""
import json
import struct
import sys
import types

import numpy as np


def read_safetensors(path):
    with open(path, "rb") as f:
        n = struct.unpack("<Q", f.read(8))[0]
        header = json.loads(f.read(n))
        data = f.read()
    out = {}
    for name, info in header.items():
        if name == "__metadata__":
            continue
        a, b = info["data_offsets"]
        raw = data[a:b]
        dt = info["dtype"]
        if dt == "F32":
            arr = np.frombuffer(raw, dtype=np.float32)
        elif dt == "F16":
            arr = np.frombuffer(raw, dtype=np.float16).astype(np.float32)
        elif dt == "BF16":
            arr = (np.frombuffer(raw, dtype=np.uint16).astype(np.uint32) << 16).view(np.float32)
        else:
            raise SystemExit(f"{path}: tensor {name} has dtype {dt}; export F32/F16/BF16 models")
        out[name] = arr.reshape(info["shape"]).copy()
    return out


def permute(w, heads):  # HF rotate_half rows -> llama.cpp's interleaved rope rows
    return w.reshape(heads, 2, w.shape[0] // heads // 2, *w.shape[1:]).swapaxes(1, 2).reshape(w.shape)


def main():
    if len(sys.argv) != 4:
        raise SystemExit(__doc__)
    hf, out, llama_src = sys.argv[1:]
    sys.modules.setdefault("sentencepiece", types.SimpleNamespace(SentencePieceProcessor=None))
    sys.path.insert(0, llama_src + "/gguf-py")
    import gguf

    cfg = json.load(open(hf + "/config.json"))
    tok = json.load(open(hf + "/tokenizer.json"))
    w = read_safetensors(hf + "/model.safetensors")
    H = cfg["num_attention_heads"]
    Hkv = cfg.get("num_key_value_heads", H)
    C = cfg["hidden_size"]
    D = cfg.get("head_dim") or C // H
    writer = gguf.GGUFWriter(out, "llama")
    writer.add_name("atax-bench")
    writer.add_context_length(cfg.get("max_position_embeddings", 2048))
    writer.add_embedding_length(C)
    writer.add_block_count(cfg["num_hidden_layers"])
    writer.add_feed_forward_length(cfg["intermediate_size"])
    writer.add_head_count(H)
    writer.add_head_count_kv(Hkv)
    writer.add_rope_dimension_count(D)
    writer.add_rope_freq_base(float(cfg.get("rope_theta", 10000.0)))
    writer.add_layer_norm_rms_eps(float(cfg.get("rms_norm_eps", 1e-6)))
    writer.add_file_type(gguf.LlamaFileType.ALL_F32)
    vocab = tok["model"]["vocab"]
    V = cfg["vocab_size"]
    pieces = [""] * V
    for p, i in vocab.items():
        if i < V:
            pieces[i] = p
    special = {t["id"]: t["content"] for t in tok.get("added_tokens", []) if t["id"] < V}
    for i, p in special.items():
        pieces[i] = p
    types_, scores = [], []
    for i, p in enumerate(pieces):
        if i in special:
            types_.append(gguf.TokenType.UNKNOWN if p == "<unk>" else gguf.TokenType.CONTROL)
        elif p.startswith("<0x") and p.endswith(">") and len(p) == 6:
            types_.append(gguf.TokenType.BYTE)
        else:
            types_.append(gguf.TokenType.NORMAL)
        scores.append(0.0 if types_[-1] != gguf.TokenType.NORMAL else -float(i))
    writer.add_tokenizer_model("llama")
    writer.add_tokenizer_pre("default")
    writer.add_token_list(pieces)
    writer.add_token_scores(scores)
    writer.add_token_types(types_)
    for name, idx in (("<s>", "bos"), ("</s>", "eos"), ("<unk>", "unk")):
        if name in vocab:
            getattr(writer, f"add_{idx}_token_id")(vocab[name])
    writer.add_add_bos_token(True)
    writer.add_add_eos_token(False)

    def put(name, arr):
        writer.add_tensor(name, np.ascontiguousarray(arr, dtype=np.float32))

    put("token_embd.weight", w["model.embed_tokens.weight"])
    for l in range(cfg["num_hidden_layers"]):
        p = f"model.layers.{l}."
        put(f"blk.{l}.attn_norm.weight", w[p + "input_layernorm.weight"])
        put(f"blk.{l}.attn_q.weight", permute(w[p + "self_attn.q_proj.weight"], H))
        put(f"blk.{l}.attn_k.weight", permute(w[p + "self_attn.k_proj.weight"], Hkv))
        put(f"blk.{l}.attn_v.weight", w[p + "self_attn.v_proj.weight"])
        put(f"blk.{l}.attn_output.weight", w[p + "self_attn.o_proj.weight"])
        put(f"blk.{l}.ffn_norm.weight", w[p + "post_attention_layernorm.weight"])
        put(f"blk.{l}.ffn_gate.weight", w[p + "mlp.gate_proj.weight"])
        put(f"blk.{l}.ffn_up.weight", w[p + "mlp.up_proj.weight"])
        put(f"blk.{l}.ffn_down.weight", w[p + "mlp.down_proj.weight"])
    put("output_norm.weight", w["model.norm.weight"])
    if "lm_head.weight" in w:
        put("output.weight", w["lm_head.weight"])
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    print(json.dumps({"out": out, "tensors": len(w)}))


if __name__ == "__main__":
    main()
