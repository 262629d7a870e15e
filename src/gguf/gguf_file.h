// gguf_file: the LibTorch-free part of the gguf module — llama.cpp's GGUF container (versions 2
// and 3) read through mmap, dequantization to float32, and the mapping of a GGUF's metadata and
// tensor names onto a Hugging Face folder (config.json, tokenizer.json, tokenizer_config.json,
// parameter names). The fuzz target builds on this header alone; gguf.h adds the LibTorch parts.
//
// Layout of a GGUF file (little-endian):
//   "GGUF" | u32 version | u64 n_tensors | u64 n_kv | n_kv × (string key, u32 type, value)
//   | n_tensors × (string name, u32 n_dims, u64 ne[n_dims], u32 ggml type, u64 offset)
//   | padding to general.alignment (default 32) | data section (tensor offsets are relative to it)
// A string is u64 length + bytes; an array is u32 element type + u64 count + elements.
#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "core/core.h"

namespace atax::gguf {

// ---------------------------------------------------------------------------------------------
// Metadata values
// ---------------------------------------------------------------------------------------------

enum class ValueType : uint32_t {
  kUint8 = 0, kInt8 = 1, kUint16 = 2, kInt16 = 3, kUint32 = 4, kInt32 = 5, kFloat32 = 6,
  kBool = 7, kString = 8, kArray = 9, kUint64 = 10, kInt64 = 11, kFloat64 = 12,
};
std::string value_type_name(ValueType t);

// One metadata value. Unsigned integers live in `u`, signed ones in `i`, float32/float64 in `f`
// (a float32 exactly), bool in `b`, strings in `s`, arrays in `items` (all of type `elem_type`;
// arrays may nest).
struct Value {
  ValueType type = ValueType::kUint8;
  uint64_t u = 0;
  int64_t i = 0;
  double f = 0;
  bool b = false;
  std::string s;
  ValueType elem_type = ValueType::kUint8;
  std::vector<Value> items;

  bool is_integer() const;  // any of the 8 integer types (not bool)
  bool is_float() const { return type == ValueType::kFloat32 || type == ValueType::kFloat64; }
  // The value as an int64 (integer types only); nullopt for a uint64 above INT64_MAX.
  std::optional<int64_t> as_int() const;
  // A JSON rendering (arrays as lists) for dumps.
  json to_json() const;
};

// ---------------------------------------------------------------------------------------------
// Tensor types
// ---------------------------------------------------------------------------------------------

// ggml_type numbers as written in GGUF tensor infos.
enum class GgmlType : uint32_t {
  kF32 = 0, kF16 = 1, kQ4_0 = 2, kQ4_1 = 3, kQ5_0 = 6, kQ5_1 = 7, kQ8_0 = 8, kQ8_1 = 9,
  kQ2_K = 10, kQ3_K = 11, kQ4_K = 12, kQ5_K = 13, kQ6_K = 14, kQ8_K = 15,
  kIQ2_XXS = 16, kIQ2_XS = 17, kIQ3_XXS = 18, kIQ1_S = 19, kIQ4_NL = 20, kIQ3_S = 21, kIQ2_S = 22,
  kIQ4_XS = 23, kI8 = 24, kI16 = 25, kI32 = 26, kI64 = 27, kF64 = 28, kIQ1_M = 29, kBF16 = 30,
  kTQ1_0 = 34, kTQ2_0 = 35, kMXFP4 = 39,
};

struct TypeTraits {
  const char* name;
  int64_t block_size;  // elements per block (1 for plain types)
  int64_t type_size;   // bytes per block; 0 = not known to atax (size unchecked, never loaded)
  bool dequantizable;  // atax can turn it into float32
};
// Traits of ggml type number `t`; nullptr for a number ggml does not define.
const TypeTraits* type_traits(uint32_t t);
// "F32, F16, BF16, Q8_0, Q4_0, Q4_K, Q6_K": the types atax dequantizes.
std::string dequantizable_type_names();

// IEEE half and bfloat16 to float32 (exact).
float fp16_to_fp32(uint16_t h);
float bf16_to_fp32(uint16_t h);

// Converts `n` elements of `type` stored at `src` to float32 in `dst`. `n` must be a multiple of
// the type's block size and `src` must hold n / block_size × type_size bytes (the caller checks;
// GgufFile does). Fails with Error for a type atax does not dequantize.
void dequantize(GgmlType type, const uint8_t* src, int64_t n, float* dst);

// ---------------------------------------------------------------------------------------------
// The file
// ---------------------------------------------------------------------------------------------

struct TensorInfo {
  std::string name;
  std::vector<int64_t> ne;  // GGUF order: ne[0] is the contiguous (fastest-varying) dimension
  GgmlType type = GgmlType::kF32;
  uint64_t offset = 0;      // from the start of the data section
  int64_t n_elements = 0;
  uint64_t n_bytes = 0;     // 0 for a type whose size atax does not know
  // The PyTorch shape: ne reversed ([rows, cols] for a matrix).
  std::vector<int64_t> shape() const;
};

class GgufFile {
 public:
  // Memory-maps and parses `path`. Fails with Error naming the file, the byte offset and what is
  // wrong (bad magic, unsupported version, truncated or oversized metadata, bad tensor infos, a
  // tensor running past the end) with a hint. Every length and count is checked against the
  // bytes that are left before anything is allocated.
  static GgufFile open(const fs::path& path);
  // Parses bytes already in memory; `name` stands for the file in errors. The bytes are copied.
  static GgufFile from_bytes(std::string bytes, const std::string& name = "<memory>");
  // Parses `size` bytes at `data` without copying; the caller keeps them alive while the
  // GgufFile (or a copy) is used. For the fuzz target.
  static GgufFile from_memory(const uint8_t* data, size_t size, const std::string& name = "<memory>");

  const std::string& name() const { return name_; }
  uint32_t version() const { return version_; }
  uint64_t alignment() const { return alignment_; }
  uint64_t data_offset() const { return data_offset_; }
  uint64_t file_size() const { return size_; }

  // Metadata in file order.
  const std::vector<std::pair<std::string, Value>>& metadata() const { return kv_; }
  const Value* find(std::string_view key) const;
  // Typed getters: nullopt / empty when the key is absent; Error naming the file and key when it
  // holds another type. get_int accepts every integer type, get_float also integers.
  std::optional<int64_t> get_int(const std::string& key) const;
  std::optional<double> get_float(const std::string& key) const;
  std::optional<bool> get_bool(const std::string& key) const;
  std::optional<std::string> get_string(const std::string& key) const;
  std::optional<std::vector<std::string>> get_string_array(const std::string& key) const;
  std::optional<std::vector<double>> get_float_array(const std::string& key) const;
  std::optional<std::vector<int64_t>> get_int_array(const std::string& key) const;
  // The raw float32 of a float32 key (for exact decimal rendering); nullopt if absent or another type.
  std::optional<float> get_float32(const std::string& key) const;

  const std::vector<TensorInfo>& tensors() const { return tensors_; }
  const TensorInfo* find_tensor(std::string_view name) const;
  // The tensor's bytes inside the mapping (bounds were checked at open).
  const uint8_t* tensor_data(const TensorInfo& t) const { return data_ + data_offset_ + t.offset; }
  // True for a file opened with open(): its bytes are a private copy-on-write mapping, so a
  // tensor may view (and write) them, holding data_owner() to keep them alive; writes change what
  // this GgufFile reads, never the file.
  bool is_mapped() const { return mapped_; }
  const std::shared_ptr<const void>& data_owner() const { return keep_; }
  // Drops the mapping's resident pages lying wholly inside `t`'s bytes (read again from the file if
  // touched), once the tensor has been converted; nothing for bytes not mapped from a file.
  void release_pages(const TensorInfo& t) const;
  // The tensor dequantized to float32 in GGUF memory order (ne[0] fastest). Error for a type
  // atax does not dequantize.
  std::vector<float> dequantize_tensor(const TensorInfo& t) const;

 private:
  void parse();
  std::shared_ptr<const void> keep_;  // the mapping or owned buffer
  bool mapped_ = false;
  const uint8_t* data_ = nullptr;
  uint64_t size_ = 0;
  std::string name_;
  uint32_t version_ = 0;
  uint64_t alignment_ = 32;
  uint64_t data_offset_ = 0;
  std::vector<std::pair<std::string, Value>> kv_;
  std::map<std::string, size_t, std::less<>> kv_index_;
  std::vector<TensorInfo> tensors_;
  std::map<std::string, size_t, std::less<>> tensor_index_;
};

// ---------------------------------------------------------------------------------------------
// GGUF -> Hugging Face (metadata and names; no tensor data)
// ---------------------------------------------------------------------------------------------

// config.json for ModelConfig::from_json, from `<arch>.*` keys and the tensor infos. Supports
// general.architecture llama (also Mistral-style files) and qwen2. Fails with Error naming the
// file for another architecture, missing keys, or shapes that disagree with the keys.
json hf_config_json(const GgufFile& f);

// tokenizer.json and tokenizer_config.json from tokenizer.ggml.* (model `llama`: SentencePiece
// BPE with byte fallback, merges derived from the scores as transformers' LlamaConverter does;
// model `gpt2`: byte-level BPE with tokenizer.ggml.merges and the pre-tokenizer regexes llama.cpp
// uses for tokenizer.ggml.pre). llama.cpp's defaults apply to absent keys. Fails with Error for
// another tokenizer model, an unknown pre-tokenizer, or inconsistent arrays.
json hf_tokenizer_json(const GgufFile& f);
json hf_tokenizer_config_json(const GgufFile& f);

// Where one GGUF tensor goes in the HF checkpoint.
struct TensorPlan {
  size_t index = 0;          // into GgufFile::tensors()
  std::string hf_name;       // e.g. "model.layers.0.self_attn.q_proj.weight"
  int64_t unpermute_heads = 0;  // > 0: rows are in llama.cpp's interleaved RoPE order over this
                                // many heads and go back to HF's rotate_half order
  float add = 0;                // added to every value (-1: Gemma's norms, stored as 1 + w)
};
// The plan for every tensor of a llama/qwen2/gemma2/olmo2/phi3 file. Fails with Error naming the tensor for a name
// atax does not know (e.g. mixture-of-experts tensors). output.weight is left out when it is
// byte-identical to token_embd.weight (tied embeddings); rope_freqs.weight becomes rope_scaling
// in hf_config_json instead.
std::vector<TensorPlan> hf_tensor_plan(const GgufFile& f);

// Row permutation of llama.cpp's q/k layout undone: row h·D + 2i + j of the GGUF tensor is row
// h·D + j·D/2 + i of the HF tensor (i < D/2, j ∈ {0,1}, D = rows / heads). Returns, for every HF
// row, the GGUF row it comes from.
std::vector<int64_t> unpermute_rows(int64_t rows, int64_t heads);

}  // namespace atax::gguf
