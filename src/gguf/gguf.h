// gguf: llama.cpp's GGUF model files in atax. A GGUF (v2/v3; F32, F16, BF16, Q8_0, Q4_0, Q4_K,
// Q6_K tensors; llama — Mistral-style files included — qwen2, gemma2, olmo2 and phi3 architectures; 'llama' and
// 'gpt2' vocabularies) loads as the engine's Llama-family model with its tokenizer, wherever a
// Hugging Face folder is accepted (`--model FILE.gguf`), and converts to a HF folder.
//
// The reader, dequantization and the metadata mapping are LibTorch-free (gguf_file.h, included
// here); this header adds the tensors and the model.
#pragma once

#include <map>
#include <string>

#include <torch/torch.h>

#include "gguf/gguf_file.h"
#include "model/model.h"

namespace atax::gguf {

// The tensor dequantized to a float32 CPU tensor of shape t.shape() (ne reversed). Fails with
// Error naming the file and tensor for a type atax does not dequantize.
torch::Tensor load_tensor(const GgufFile& f, const TensorInfo& t);

// Every weight under its Hugging Face name (hf_tensor_plan), llama's q/k rows put back into HF's
// rotate_half order, Gemma's norms back to w, converted to `dtype` one tensor at a time.
// With `share_mapping` and a file from GgufFile::open, float32 tensors needing no change are views
// of the file's (copy-on-write) mapping instead of copies, alive as long as the mapping is, and
// the pages of converted tensors are dropped once converted (the loader's path: one copy).
// With `release_when_freed` too, a shared tensor drops its pages when it goes (a packing load frees
// each float32 view once packed); only for a file no other call shares tensors of, since the pages
// another view wrote (copy-on-write) would go with them.
// With `lazy` too, tensors that need converting (dequantizing, q/k rows, offsets) come as meta
// tensors of their final shape and dtype, read one at a time by hf_weight (make_model's reader).
std::map<std::string, torch::Tensor> hf_weights(const GgufFile& f, torch::Dtype dtype = torch::kFloat32,
                                                bool share_mapping = false, bool release_when_freed = false,
                                                bool lazy = false);
// One tensor of hf_weights under its Hugging Face name, converted (its stored pages dropped after
// when `share_mapping`). Fails with Error for a name the file does not hold.
torch::Tensor hf_weight(const GgufFile& f, const std::string& hf_name, torch::Dtype dtype = torch::kFloat32,
                        bool share_mapping = false);

}  // namespace atax::gguf

namespace atax {

// Loads FILE.gguf as a model: config from the metadata, weights dequantized to opts.dtype on
// opts.device, tokenizer built from tokenizer.ggml.*. Fails with Error naming the file for
// anything malformed or unsupported.
LoadedModel load_gguf_model(const fs::path& path, const LoadOptions& opts = {});

// Writes a Hugging Face folder (config.json, model.safetensors in `dtype`, tokenizer.json,
// tokenizer_config.json, generation_config.json) for `gguf_path` into `out_dir`, atomically.
void convert_gguf_to_hf(const fs::path& gguf_path, const fs::path& out_dir, torch::Dtype dtype = torch::kFloat32);

// Makes load_model() accept paths ending in ".gguf" (register_model_file_loader). Idempotent.
// Runs from a static initialiser of this module too; programs call it explicitly because a
// static library's unreferenced object files are not linked.
void register_gguf_loader();

}  // namespace atax
