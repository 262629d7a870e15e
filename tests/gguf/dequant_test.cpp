// Dequantization of every type atax reads, against values computed by hand from each format's
// definition (ggml-common.h block layouts) on small constructed blocks. Each test packs its
// block from chosen quants/scales the way the format defines, then checks literal values worked
// out by hand (shown in the comments) and every element against the definition's formula.
#include <gtest/gtest.h>

#include <cmath>
#include <limits>

#include "gguf/gguf.h"
#include "gguf_builder.h"

using namespace atax;
using namespace atax::gguf;
using namespace gguf_test;

namespace {

std::vector<float> run(GgmlType type, const std::string& bytes, int64_t n) {
  std::vector<float> out(static_cast<size_t>(n), std::numeric_limits<float>::quiet_NaN());
  dequantize(type, reinterpret_cast<const uint8_t*>(bytes.data()), n, out.data());
  return out;
}

TEST(DequantTest, HalfPrecisionBitPatterns) {
  EXPECT_EQ(fp16_to_fp32(0x3C00), 1.0f);
  EXPECT_EQ(fp16_to_fp32(0x3800), 0.5f);
  EXPECT_EQ(fp16_to_fp32(0xC000), -2.0f);
  EXPECT_EQ(fp16_to_fp32(0x3555), 0.333251953125f);        // 1.0101010101b × 2^-2 = 1365/4096
  EXPECT_EQ(fp16_to_fp32(0x7BFF), 65504.0f);              // largest normal
  EXPECT_EQ(fp16_to_fp32(0x0400), std::ldexp(1.0f, -14));  // smallest normal
  EXPECT_EQ(fp16_to_fp32(0x0001), std::ldexp(1.0f, -24));  // smallest subnormal
  EXPECT_EQ(fp16_to_fp32(0x03FF), 1023 * std::ldexp(1.0f, -24));
  EXPECT_EQ(fp16_to_fp32(0x8200), -512 * std::ldexp(1.0f, -24));
  EXPECT_TRUE(std::isinf(fp16_to_fp32(0x7C00)) && fp16_to_fp32(0x7C00) > 0);
  EXPECT_TRUE(std::isinf(fp16_to_fp32(0xFC00)) && fp16_to_fp32(0xFC00) < 0);
  EXPECT_TRUE(std::isnan(fp16_to_fp32(0x7E00)));
  EXPECT_TRUE(std::signbit(fp16_to_fp32(0x8000)) && fp16_to_fp32(0x8000) == 0.0f);
  // bf16 is the top half of a float32.
  EXPECT_EQ(bf16_to_fp32(0x3F80), 1.0f);
  EXPECT_EQ(bf16_to_fp32(0xC040), -3.0f);
  EXPECT_EQ(bf16_to_fp32(0x4049), 3.140625f);  // 1.1001001b × 2
}

TEST(DequantTest, F32F16Bf16) {
  EXPECT_EQ(run(GgmlType::kF32, le(1.5f) + le(-0.25f), 2), (std::vector<float>{1.5f, -0.25f}));
  EXPECT_EQ(run(GgmlType::kF16, le<uint16_t>(0x3C00) + le<uint16_t>(0xC000) + le<uint16_t>(0x0001), 3),
            (std::vector<float>{1.0f, -2.0f, std::ldexp(1.0f, -24)}));
  EXPECT_EQ(run(GgmlType::kBF16, le<uint16_t>(0x3F80) + le<uint16_t>(0xC040), 2), (std::vector<float>{1.0f, -3.0f}));
}

// Q8_0 block (34 bytes): fp16 d, int8 q[32]; x[j] = d · q[j].
TEST(DequantTest, Q8_0) {
  std::string blk1 = le<uint16_t>(0x3800);  // d = 0.5
  for (int j = 0; j < 32; ++j) blk1 += le<int8_t>(static_cast<int8_t>(j - 16));
  std::string blk2 = le<uint16_t>(0xC000);  // d = -2
  std::vector<int8_t> q2 = {127, -128, 1, 0};
  for (int j = 0; j < 32; ++j) blk2 += le<int8_t>(j < 4 ? q2[j] : static_cast<int8_t>(j));
  auto y = run(GgmlType::kQ8_0, blk1 + blk2, 64);
  EXPECT_EQ(y[0], -8.0f);    // 0.5 · −16
  EXPECT_EQ(y[17], 0.5f);    // 0.5 · 1
  EXPECT_EQ(y[31], 7.5f);    // 0.5 · 15
  EXPECT_EQ(y[32], -254.0f);  // −2 · 127
  EXPECT_EQ(y[33], 256.0f);   // −2 · −128
  EXPECT_EQ(y[34], -2.0f);
  EXPECT_EQ(y[35], 0.0f);
  EXPECT_EQ(y[63], -62.0f);  // −2 · 31
  for (int j = 0; j < 32; ++j) EXPECT_EQ(y[j], 0.5f * static_cast<float>(j - 16));
}

// Q4_0 block (18 bytes): fp16 d, 16 bytes; byte j: low nibble = element j, high nibble =
// element j + 16; x = d · (nibble − 8).
TEST(DequantTest, Q4_0) {
  std::string blk = le<uint16_t>(0x4000);  // d = 2
  for (int j = 0; j < 16; ++j) blk += static_cast<char>(j | ((15 - j) << 4));
  std::string blk2 = le<uint16_t>(0xB800);  // d = −0.5
  for (int j = 0; j < 16; ++j) blk2 += static_cast<char>(0x8F);  // low 15, high 8
  auto y = run(GgmlType::kQ4_0, blk + blk2, 64);
  EXPECT_EQ(y[0], -16.0f);  // 2 · (0 − 8)
  EXPECT_EQ(y[8], 0.0f);    // 2 · (8 − 8)
  EXPECT_EQ(y[15], 14.0f);  // 2 · (15 − 8)
  EXPECT_EQ(y[16], 14.0f);  // high nibble of byte 0 = 15
  EXPECT_EQ(y[31], -16.0f);  // high nibble of byte 15 = 0
  EXPECT_EQ(y[32], -3.5f);   // −0.5 · (15 − 8)
  EXPECT_EQ(y[48], -0.0f);   // −0.5 · (8 − 8)
  for (int j = 0; j < 16; ++j) {
    EXPECT_EQ(y[j], 2.0f * static_cast<float>(j - 8));
    EXPECT_EQ(y[j + 16], 2.0f * static_cast<float>(7 - j));
  }
}

// Q4_K super-block (144 bytes): fp16 d, fp16 dmin, 12 bytes holding 8 six-bit (scale, min) pairs,
// 128 bytes of nibbles. Element e is in sub-block s = e / 32; sub-blocks 2c, 2c+1 use bytes
// 32c..32c+31 (low nibble for 2c, high for 2c+1); x = d · scale[s] · q − dmin · min[s].
// Pairs 0-3: scale = b[s] & 63, min = b[s+4] & 63. Pairs 4-7: low 4 bits in b[s+4] (scale low
// nibble, min high nibble), top 2 bits in b[s-4] >> 6 (scale) and b[s] >> 6 (min).
struct Q4K {
  int scale[8] = {1, 2, 3, 4, 17, 33, 50, 63};
  int min[8] = {0, 5, 10, 63, 16, 32, 48, 7};
  float d = 1.0f, dmin = 0.5f;
  uint8_t qs[128];
  Q4K() {
    for (int k = 0; k < 128; ++k) qs[k] = static_cast<uint8_t>((k & 15) | ((15 - (k & 15)) << 4));
  }
  std::string pack() const {
    uint8_t b[12];
    for (int s = 0; s < 4; ++s) {
      b[s] = static_cast<uint8_t>(scale[s] | ((scale[s + 4] >> 4) << 6));
      b[s + 4] = static_cast<uint8_t>(min[s] | ((min[s + 4] >> 4) << 6));
      b[s + 8] = static_cast<uint8_t>((scale[s + 4] & 15) | ((min[s + 4] & 15) << 4));
    }
    return le(fp16_bits(d)) + le(fp16_bits(dmin)) + std::string(reinterpret_cast<const char*>(b), 12) +
           std::string(reinterpret_cast<const char*>(qs), 128);
  }
  float expect(int e) const {
    int s = e / 32, c = s / 2, l = e % 32;
    int q = s % 2 == 0 ? (qs[32 * c + l] & 15) : (qs[32 * c + l] >> 4);
    return d * static_cast<float>(scale[s]) * static_cast<float>(q) - dmin * static_cast<float>(min[s]);
  }
};

TEST(DequantTest, Q4_K) {
  Q4K blk;
  std::string bytes = blk.pack();
  ASSERT_EQ(bytes.size(), 144u);
  auto y = run(GgmlType::kQ4_K, bytes, 256);
  EXPECT_EQ(y[0], 0.0f);      // s0: 1·1·0 − 0.5·0
  EXPECT_EQ(y[33], 25.5f);    // s1: byte 1 high nibble 14 → 1·2·14 − 0.5·5
  EXPECT_EQ(y[100], 12.5f);   // s3: byte 36 high nibble 11 → 4·11 − 0.5·63
  EXPECT_EQ(y[130], 26.0f);   // s4: byte 66 low nibble 2 → 17·2 − 0.5·16
  EXPECT_EQ(y[160], 479.0f);  // s5: byte 64 high nibble 15 → 33·15 − 0.5·32
  EXPECT_EQ(y[200], 376.0f);  // s6: byte 104 low nibble 8 → 50·8 − 0.5·48
  EXPECT_EQ(y[255], -3.5f);   // s7: byte 127 high nibble 0 → 63·0 − 0.5·7
  for (int e = 0; e < 256; ++e) EXPECT_EQ(y[e], blk.expect(e)) << "element " << e;
  // A second super-block with other d/dmin follows the first.
  Q4K blk2;
  blk2.d = -0.25f;
  blk2.dmin = 2.0f;
  auto y2 = run(GgmlType::kQ4_K, bytes + blk2.pack(), 512);
  EXPECT_EQ(y2[256 + 33], -0.25f * 2 * 14 - 2.0f * 5);  // −17
  for (int e = 0; e < 256; ++e) EXPECT_EQ(y2[256 + e], blk2.expect(e)) << "element " << e;
}

// Q6_K super-block (210 bytes): ql[128] (low 4 bits), qh[64] (high 2 bits), int8 scales[16],
// fp16 d. Element e = 128h + 32k + l (h half, k = 0..3, l < 32): low bits from
// ql[64h + l + 32(k & 1)] (low nibble for k < 2, high for k >= 2), high bits from
// (qh[32h + l] >> 2k) & 3; x = d · scales[e / 16] · (q − 32).
TEST(DequantTest, Q6_K) {
  int8_t sc[16] = {1, -1, 2, -2, 3, -3, 4, -4, 5, -5, 6, -6, 7, -7, 8, -8};
  auto q_of = [](int e) { return (e * 5) % 64; };
  uint8_t ql[128] = {}, qh[64] = {};
  for (int h = 0; h < 2; ++h)
    for (int k = 0; k < 4; ++k)
      for (int l = 0; l < 32; ++l) {
        int q = q_of(128 * h + 32 * k + l);
        ql[64 * h + l + 32 * (k & 1)] |= static_cast<uint8_t>((q & 15) << (k < 2 ? 0 : 4));
        qh[32 * h + l] |= static_cast<uint8_t>((q >> 4) << (2 * k));
      }
  std::string bytes = std::string(reinterpret_cast<const char*>(ql), 128) +
                      std::string(reinterpret_cast<const char*>(qh), 64) +
                      std::string(reinterpret_cast<const char*>(sc), 16) + le<uint16_t>(0x3800);  // d = 0.5
  ASSERT_EQ(bytes.size(), 210u);
  auto y = run(GgmlType::kQ6_K, bytes, 256);
  EXPECT_EQ(y[0], -16.0f);   // q 0, scale 1: 0.5·1·(0 − 32)
  EXPECT_EQ(y[17], 5.5f);    // q 21, scale −1: 0.5·−1·(21 − 32)
  EXPECT_EQ(y[45], 1.0f);    // q 33, scale 2: 0.5·2·1
  EXPECT_EQ(y[100], 40.0f);  // q 52, scale 4: 0.5·4·20
  EXPECT_EQ(y[140], 70.0f);  // q 60, scale 5: 0.5·5·28
  EXPECT_EQ(y[200], 28.0f);  // q 40, scale 7: 0.5·7·8
  EXPECT_EQ(y[255], -108.0f);  // q 59, scale −8: 0.5·−8·27
  for (int e = 0; e < 256; ++e)
    EXPECT_EQ(y[e], 0.5f * static_cast<float>(sc[e / 16]) * static_cast<float>(q_of(e) - 32)) << "element " << e;
}

TEST(DequantTest, UnsupportedTypeIsAnError) {
  std::string bytes(176, '\0');
  std::vector<float> out(256);
  EXPECT_THROW(dequantize(GgmlType::kQ5_K, reinterpret_cast<const uint8_t*>(bytes.data()), 256, out.data()), Error);
}

// Through a file: a [2, 256] Q4_K matrix (two super-blocks, one per row) and a Q8_0 vector load
// as torch tensors of the reversed shape.
TEST(DequantTest, TensorsFromAFileHaveTorchShapes) {
  Q4K a, b;
  b.d = 2.0f;
  std::string q8 = le<uint16_t>(0x3C00);
  for (int j = 0; j < 32; ++j) q8 += le<int8_t>(static_cast<int8_t>(-j));
  Builder w;
  w.tensor("m", {256, 2}, T_Q4_K, a.pack() + b.pack());
  w.tensor("v", {32}, T_Q8_0, q8);
  w.tensor("h", {2, 1, 1}, T_F16, le<uint16_t>(0x3C00) + le<uint16_t>(0x3800));
  GgufFile f = GgufFile::from_bytes(w.build(), "q.gguf");
  torch::Tensor m = load_tensor(f, *f.find_tensor("m"));
  ASSERT_EQ(m.sizes().vec(), (std::vector<int64_t>{2, 256}));
  EXPECT_EQ(m[0][33].item<float>(), 25.5f);
  EXPECT_EQ(m[1][33].item<float>(), 2.0f * 2 * 14 - 0.5f * 5);
  torch::Tensor v = load_tensor(f, *f.find_tensor("v"));
  ASSERT_EQ(v.sizes().vec(), (std::vector<int64_t>{32}));
  EXPECT_EQ(v[31].item<float>(), -31.0f);
  torch::Tensor h = load_tensor(f, *f.find_tensor("h"));
  ASSERT_EQ(h.sizes().vec(), (std::vector<int64_t>{1, 1, 2}));
  EXPECT_EQ(h[0][0][1].item<float>(), 0.5f);
}

}  // namespace
