// ggml tensor types: sizes and dequantization to float32. Block layouts follow ggml's definitions
// (ggml-common.h); every value below is computed from those definitions, not copied code.
#include <cstring>

#include <fmt/format.h>

#include "gguf/gguf_file.h"

namespace atax::gguf {

namespace {

constexpr int64_t kQk = 32;    // elements per Q4_0 / Q8_0 block
constexpr int64_t kQkK = 256;  // elements per K-quant super-block

// Indexed by ggml type number; {nullptr} marks a number ggml does not use.
const TypeTraits kTraits[] = {
    /* 0 */ {"F32", 1, 4, true},
    /* 1 */ {"F16", 1, 2, true},
    /* 2 */ {"Q4_0", 32, 18, true},
    /* 3 */ {"Q4_1", 32, 20, false},
    /* 4 */ {nullptr, 0, 0, false},  // Q4_2, removed from ggml
    /* 5 */ {nullptr, 0, 0, false},  // Q4_3, removed
    /* 6 */ {"Q5_0", 32, 22, false},
    /* 7 */ {"Q5_1", 32, 24, false},
    /* 8 */ {"Q8_0", 32, 34, true},
    /* 9 */ {"Q8_1", 32, 36, false},
    /* 10 */ {"Q2_K", 256, 84, false},
    /* 11 */ {"Q3_K", 256, 110, false},
    /* 12 */ {"Q4_K", 256, 144, true},
    /* 13 */ {"Q5_K", 256, 176, false},
    /* 14 */ {"Q6_K", 256, 210, true},
    /* 15 */ {"Q8_K", 256, 292, false},
    /* 16 */ {"IQ2_XXS", 256, 0, false},
    /* 17 */ {"IQ2_XS", 256, 0, false},
    /* 18 */ {"IQ3_XXS", 256, 0, false},
    /* 19 */ {"IQ1_S", 256, 0, false},
    /* 20 */ {"IQ4_NL", 32, 0, false},
    /* 21 */ {"IQ3_S", 256, 0, false},
    /* 22 */ {"IQ2_S", 256, 0, false},
    /* 23 */ {"IQ4_XS", 256, 0, false},
    /* 24 */ {"I8", 1, 1, false},
    /* 25 */ {"I16", 1, 2, false},
    /* 26 */ {"I32", 1, 4, false},
    /* 27 */ {"I64", 1, 8, false},
    /* 28 */ {"F64", 1, 8, false},
    /* 29 */ {"IQ1_M", 256, 0, false},
    /* 30 */ {"BF16", 1, 2, true},
    /* 31 */ {nullptr, 0, 0, false},  // Q4_0_4_4, removed
    /* 32 */ {nullptr, 0, 0, false},  // Q4_0_4_8, removed
    /* 33 */ {nullptr, 0, 0, false},  // Q4_0_8_8, removed
    /* 34 */ {"TQ1_0", 256, 0, false},
    /* 35 */ {"TQ2_0", 256, 0, false},
    /* 36 */ {nullptr, 0, 0, false},  // IQ4_NL_4_4, removed
    /* 37 */ {nullptr, 0, 0, false},  // IQ4_NL_4_8, removed
    /* 38 */ {nullptr, 0, 0, false},  // IQ4_NL_8_8, removed
    /* 39 */ {"MXFP4", 32, 17, false},
};

inline uint16_t load_u16(const uint8_t* p) {
  uint16_t v;
  std::memcpy(&v, p, 2);
  return v;
}

// Q8_0: fp16 scale d, then 32 int8 quants; x = d · q.
void dequant_q8_0(const uint8_t* src, int64_t n, float* dst) {
  for (int64_t b = 0; b < n / kQk; ++b, src += 34, dst += kQk) {
    const float d = fp16_to_fp32(load_u16(src));
    const int8_t* q = reinterpret_cast<const int8_t*>(src + 2);
    for (int j = 0; j < kQk; ++j) dst[j] = d * static_cast<float>(q[j]);
  }
}

// Q4_0: fp16 scale d, then 16 bytes; byte j holds element j (low nibble) and j + 16 (high
// nibble); x = d · (nibble − 8).
void dequant_q4_0(const uint8_t* src, int64_t n, float* dst) {
  for (int64_t b = 0; b < n / kQk; ++b, src += 18, dst += kQk) {
    const float d = fp16_to_fp32(load_u16(src));
    const uint8_t* q = src + 2;
    for (int j = 0; j < kQk / 2; ++j) {
      dst[j] = d * static_cast<float>(static_cast<int>(q[j] & 0x0F) - 8);
      dst[j + kQk / 2] = d * static_cast<float>(static_cast<int>(q[j] >> 4) - 8);
    }
  }
}

// Q4_K super-block (144 bytes): fp16 d, fp16 dmin, 12 bytes of packed 6-bit (scale, min) pairs
// for the 8 sub-blocks of 32, then 128 bytes of nibbles. Sub-blocks 2c and 2c+1 share bytes
// 32c..32c+31: low nibbles for 2c, high for 2c+1. x = d·scale·q − dmin·min.
// Packing of pair s: s < 4: scale = b[s] & 63, min = b[s+4] & 63; s >= 4: scale = (b[s+4] & 15) |
// (b[s-4] >> 6) << 4, min = (b[s+4] >> 4) | (b[s] >> 6) << 4.
void q4_k_scale_min(const uint8_t* b, int s, int* scale, int* min) {
  if (s < 4) {
    *scale = b[s] & 63;
    *min = b[s + 4] & 63;
  } else {
    *scale = (b[s + 4] & 0x0F) | ((b[s - 4] >> 6) << 4);
    *min = (b[s + 4] >> 4) | ((b[s] >> 6) << 4);
  }
}

void dequant_q4_k(const uint8_t* src, int64_t n, float* dst) {
  for (int64_t b = 0; b < n / kQkK; ++b, src += 144, dst += kQkK) {
    const float d = fp16_to_fp32(load_u16(src));
    const float dmin = fp16_to_fp32(load_u16(src + 2));
    const uint8_t* scales = src + 4;
    const uint8_t* q = src + 16;
    for (int c = 0; c < 4; ++c) {
      int sc0, m0, sc1, m1;
      q4_k_scale_min(scales, 2 * c, &sc0, &m0);
      q4_k_scale_min(scales, 2 * c + 1, &sc1, &m1);
      const float d0 = d * static_cast<float>(sc0), min0 = dmin * static_cast<float>(m0);
      const float d1 = d * static_cast<float>(sc1), min1 = dmin * static_cast<float>(m1);
      const uint8_t* qc = q + 32 * c;
      float* out = dst + 64 * c;
      for (int l = 0; l < 32; ++l) {
        out[l] = d0 * static_cast<float>(qc[l] & 0x0F) - min0;
        out[l + 32] = d1 * static_cast<float>(qc[l] >> 4) - min1;
      }
    }
  }
}

// Q6_K super-block (210 bytes): ql[128] low 4 bits, qh[64] high 2 bits, int8 scales[16] (one per
// 16 elements), fp16 d. x = d · scale · (q − 32). Each half of 128 elements uses 64 bytes of ql
// and 32 of qh: element 32k + l (k = 0..3, l < 32) takes its low bits from ql[l + 32·(k & 1)]
// (low nibble for k < 2, high for k >= 2) and its high bits from qh[l] >> 2k.
void dequant_q6_k(const uint8_t* src, int64_t n, float* dst) {
  for (int64_t b = 0; b < n / kQkK; ++b, src += 210, dst += kQkK) {
    const uint8_t* ql = src;
    const uint8_t* qh = src + 128;
    const int8_t* sc = reinterpret_cast<const int8_t*>(src + 192);
    const float d = fp16_to_fp32(load_u16(src + 208));
    for (int half = 0; half < 2; ++half) {
      const uint8_t* l4 = ql + 64 * half;
      const uint8_t* h2 = qh + 32 * half;
      const int8_t* s = sc + 8 * half;
      float* out = dst + 128 * half;
      for (int k = 0; k < 4; ++k) {
        for (int l = 0; l < 32; ++l) {
          const uint8_t lo_byte = l4[l + 32 * (k & 1)];
          const int lo = k < 2 ? (lo_byte & 0x0F) : (lo_byte >> 4);
          const int hi = (h2[l] >> (2 * k)) & 3;
          const int q = (lo | (hi << 4)) - 32;
          out[32 * k + l] = d * static_cast<float>(s[2 * k + l / 16]) * static_cast<float>(q);
        }
      }
    }
  }
}

}  // namespace

const TypeTraits* type_traits(uint32_t t) {
  if (t >= sizeof(kTraits) / sizeof(kTraits[0]) || kTraits[t].name == nullptr) return nullptr;
  return &kTraits[t];
}

std::string dequantizable_type_names() { return "F32, F16, BF16, Q8_0, Q4_0, Q4_K, Q6_K"; }

float fp16_to_fp32(uint16_t h) {
  const uint32_t sign = static_cast<uint32_t>(h & 0x8000) << 16;
  const uint32_t exp = (h >> 10) & 0x1F;
  uint32_t mant = h & 0x3FF;
  uint32_t bits;
  if (exp == 0x1F) {
    bits = sign | 0x7F800000u | (mant << 13);  // inf / nan
  } else if (exp != 0) {
    bits = sign | ((exp + 112) << 23) | (mant << 13);  // 127 − 15 = 112
  } else if (mant == 0) {
    bits = sign;  // ±0
  } else {
    // Subnormal half: mant · 2^−24; normalise into a float32.
    int e = -1;
    do {
      mant <<= 1;
      ++e;
    } while ((mant & 0x400) == 0);
    bits = sign | static_cast<uint32_t>(112 - e) << 23 | ((mant & 0x3FF) << 13);
  }
  float f;
  std::memcpy(&f, &bits, 4);
  return f;
}

float bf16_to_fp32(uint16_t h) {
  uint32_t bits = static_cast<uint32_t>(h) << 16;
  float f;
  std::memcpy(&f, &bits, 4);
  return f;
}

void dequantize(GgmlType type, const uint8_t* src, int64_t n, float* dst) {
  if (n <= 0) return;  // also: no memcpy from/to the null pointers of empty buffers
  switch (type) {
    case GgmlType::kF32: std::memcpy(dst, src, static_cast<size_t>(n) * 4); return;
    case GgmlType::kF16:
      for (int64_t k = 0; k < n; ++k) dst[k] = fp16_to_fp32(load_u16(src + 2 * k));
      return;
    case GgmlType::kBF16:
      for (int64_t k = 0; k < n; ++k) dst[k] = bf16_to_fp32(load_u16(src + 2 * k));
      return;
    case GgmlType::kQ8_0: dequant_q8_0(src, n, dst); return;
    case GgmlType::kQ4_0: dequant_q4_0(src, n, dst); return;
    case GgmlType::kQ4_K: dequant_q4_k(src, n, dst); return;
    case GgmlType::kQ6_K: dequant_q6_k(src, n, dst); return;
    default: break;
  }
  const TypeTraits* tr = type_traits(static_cast<uint32_t>(type));
  throw Error(fmt::format("atax cannot dequantize ggml type {}", tr ? tr->name : std::to_string(static_cast<uint32_t>(type))),
              "", "atax reads " + dequantizable_type_names());
}

}  // namespace atax::gguf
