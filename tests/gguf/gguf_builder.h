// Test helper: writes GGUF files byte by byte (little-endian), so tests construct tiny valid and
// malformed files without any GGUF writer in the product.
#pragma once

#include <cstdint>
#include <cstring>
#include <optional>
#include <string>
#include <vector>

namespace gguf_test {

template <class T>
std::string le(T v) {
  std::string s(sizeof(T), '\0');
  std::memcpy(s.data(), &v, sizeof(T));
  return s;
}
inline std::string gstr(const std::string& s) { return le<uint64_t>(s.size()) + s; }

// Value type numbers of the GGUF spec.
enum : uint32_t { U8 = 0, I8 = 1, U16 = 2, I16 = 3, U32 = 4, I32 = 5, F32 = 6, BOOL = 7, STR = 8, ARR = 9,
                  U64 = 10, I64 = 11, F64 = 12 };
// ggml tensor type numbers.
enum : uint32_t { T_F32 = 0, T_F16 = 1, T_Q4_0 = 2, T_Q8_0 = 8, T_Q4_K = 12, T_Q5_K = 13, T_Q6_K = 14, T_BF16 = 30 };

struct Builder {
  uint32_t version = 3;
  uint64_t alignment = 32;  // used for tensor placement; write general.alignment yourself to change it
  std::vector<std::string> kvs;
  struct Tensor {
    std::string name;
    std::vector<uint64_t> ne;
    uint32_t type;
    std::string data;
    std::optional<uint64_t> offset_override;  // a raw offset; its data is not written
  };
  std::vector<Tensor> tensors;

  // A key with raw value bytes (type + payload).
  Builder& kv_raw(const std::string& key, uint32_t type, const std::string& payload) {
    kvs.push_back(gstr(key) + le<uint32_t>(type) + payload);
    return *this;
  }
  Builder& u32(const std::string& k, uint32_t v) { return kv_raw(k, U32, le(v)); }
  Builder& i32(const std::string& k, int32_t v) { return kv_raw(k, I32, le(v)); }
  Builder& u64(const std::string& k, uint64_t v) { return kv_raw(k, U64, le(v)); }
  Builder& f32(const std::string& k, float v) { return kv_raw(k, F32, le(v)); }
  Builder& boolean(const std::string& k, bool v) { return kv_raw(k, BOOL, le<uint8_t>(v ? 1 : 0)); }
  Builder& str(const std::string& k, const std::string& v) { return kv_raw(k, STR, gstr(v)); }
  Builder& strs(const std::string& k, const std::vector<std::string>& v) {
    std::string p = le<uint32_t>(STR) + le<uint64_t>(v.size());
    for (const auto& s : v) p += gstr(s);
    return kv_raw(k, ARR, p);
  }
  Builder& f32s(const std::string& k, const std::vector<float>& v) {
    std::string p = le<uint32_t>(F32) + le<uint64_t>(v.size());
    for (float x : v) p += le(x);
    return kv_raw(k, ARR, p);
  }
  Builder& i32s(const std::string& k, const std::vector<int32_t>& v) {
    std::string p = le<uint32_t>(I32) + le<uint64_t>(v.size());
    for (int32_t x : v) p += le(x);
    return kv_raw(k, ARR, p);
  }
  Builder& tensor(const std::string& name, std::vector<uint64_t> ne, uint32_t type, std::string data) {
    tensors.push_back({name, std::move(ne), type, std::move(data)});
    return *this;
  }
  Builder& f32_tensor(const std::string& name, std::vector<uint64_t> ne, const std::vector<float>& v) {
    std::string d;
    for (float x : v) d += le(x);
    return tensor(name, std::move(ne), T_F32, d);
  }

  // The file; with pad_end = false it stops right after the last tensor's data (or the metadata).
  std::string build(bool pad_end = true) const {
    std::string out = "GGUF" + le(version) + le<uint64_t>(tensors.size()) + le<uint64_t>(kvs.size());
    for (const auto& kv : kvs) out += kv;
    uint64_t offset = 0;
    std::vector<uint64_t> offsets;
    for (const auto& t : tensors) {
      out += gstr(t.name) + le<uint32_t>(static_cast<uint32_t>(t.ne.size()));
      for (uint64_t n : t.ne) out += le(n);
      out += le(t.type);
      uint64_t off = t.offset_override ? *t.offset_override : offset;
      out += le(off);
      offsets.push_back(off);
      offset += (t.data.size() + alignment - 1) / alignment * alignment;
    }
    if (tensors.empty() && !pad_end) return out;
    while (out.size() % alignment) out += '\0';
    const size_t data_start = out.size();
    for (size_t i = 0; i < tensors.size(); ++i) {
      if (tensors[i].offset_override) continue;
      out.resize(std::max(out.size(), data_start + offsets[i]), '\0');
      out += tensors[i].data;
    }
    while (pad_end && (out.size() - data_start) % alignment) out += '\0';
    return out;
  }
};

inline uint16_t fp16_bits(float v) {
  // Exact only for values representable in fp16 with normal exponents (tests use such values).
  uint32_t b;
  std::memcpy(&b, &v, 4);
  uint32_t sign = (b >> 16) & 0x8000, exp = (b >> 23) & 0xFF, mant = b & 0x7FFFFF;
  if (exp == 0) return static_cast<uint16_t>(sign);
  return static_cast<uint16_t>(sign | ((exp - 112) << 10) | (mant >> 13));
}

}  // namespace gguf_test
