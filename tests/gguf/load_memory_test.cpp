// ctest-labels: model
// A float32 GGUF loads holding about one copy of the weights: its as-stored tensors stay in the
// file's (copy-on-write) mapping and become the parameters, q/k are un-permuted into copies whose
// stored pages are dropped, and the network is not randomly initialised first. Peak resident
// memory of a load is measured in a forked child against the file's size.
#include <gtest/gtest.h>

#include <fstream>

#include "../model/process_memory.h"
#include "gguf/gguf.h"
#include "gguf_builder.h"

using namespace atax;
using namespace gguf_test;
using atax::testing::in_child;
using atax::testing::load_growth_mb;

namespace {

// A one-layer llama GGUF: hidden C, MLP F, 8 query and 2 key/value heads, a 12-piece SentencePiece
// vocabulary; every value distinct enough to see a mix-up ((i % 1000) / 1000 + tensor number).
// With `q8`, the matrices are stored as Q8_0 blocks (a float16 scale and 32 int8 values, 34 bytes);
// `layers` such layers.
std::string wide_gguf(uint64_t C, uint64_t F, bool q8 = false, uint64_t layers = 1) {
  const uint64_t V = 12, H = 8, Hkv = 2, D = C / H;
  Builder b;
  b.str("general.architecture", "llama");
  b.u32("llama.context_length", 64).u32("llama.embedding_length", C).u32("llama.block_count", layers);
  b.u32("llama.feed_forward_length", F).u32("llama.attention.head_count", H);
  b.u32("llama.attention.head_count_kv", Hkv).f32("llama.attention.layer_norm_rms_epsilon", 1e-5f);
  b.u32("llama.rope.dimension_count", D);
  const std::string sp = "\xE2\x96\x81";
  b.str("tokenizer.ggml.model", "llama");
  b.strs("tokenizer.ggml.tokens", {"<unk>", "<s>", "</s>", "<0x0A>", sp + "t", "he", sp + "the", sp + "th", sp,
                                   "t", "h", "e"});
  b.f32s("tokenizer.ggml.scores", {0, 0, 0, 0, -0.f, -1, -2, -3, -4, -5, -6, -7});
  b.i32s("tokenizer.ggml.token_type", {2, 3, 3, 6, 1, 1, 1, 1, 1, 1, 1, 1});
  int tensor_number = 0;
  auto add = [&](const std::string& name, std::vector<uint64_t> ne) {
    uint64_t n = 1;
    for (uint64_t d : ne) n *= d;
    std::string data(n * sizeof(float), '\0');
    auto* f = reinterpret_cast<float*>(data.data());
    for (uint64_t i = 0; i < n; ++i) f[i] = static_cast<float>(i % 1000) / 1000.f + static_cast<float>(tensor_number);
    ++tensor_number;
    if (!q8 || ne.size() != 2) {
      b.tensor(name, std::move(ne), T_F32, std::move(data));
      return;
    }
    std::string blocks;
    for (uint64_t i = 0; i < n; i += 32) {
      float amax = 0;
      for (uint64_t j = 0; j < 32; ++j) amax = std::max(amax, std::fabs(f[i + j]));
      const c10::Half d(amax / 127.f);
      const float id = static_cast<float>(d) != 0.f ? 1.f / static_cast<float>(d) : 0.f;
      blocks.append(reinterpret_cast<const char*>(&d), 2);
      for (uint64_t j = 0; j < 32; ++j)
        blocks += static_cast<char>(std::clamp(std::lround(f[i + j] * id), -127L, 127L));
    }
    b.tensor(name, std::move(ne), T_Q8_0, std::move(blocks));
  };
  add("token_embd.weight", {C, V});
  add("output_norm.weight", {C});
  add("output.weight", {C, V});
  for (uint64_t l = 0; l < layers; ++l) {
    const std::string blk = "blk." + std::to_string(l) + ".";
    add(blk + "attn_norm.weight", {C});
    add(blk + "attn_q.weight", {C, H * D});
    add(blk + "attn_k.weight", {C, Hkv * D});
    add(blk + "attn_v.weight", {C, Hkv * D});
    add(blk + "attn_output.weight", {H * D, C});
    add(blk + "ffn_norm.weight", {C});
    add(blk + "ffn_gate.weight", {C, F});
    add(blk + "ffn_up.weight", {C, F});
    add(blk + "ffn_down.weight", {F, C});
  }
  return b.build();
}

class GgufLoadMemoryTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    root_ = fs::temp_directory_path() / ("atax_gguf_load_memory_" + std::to_string(getpid()));
    fs::remove_all(root_);
    fs::create_directories(root_);
    // Written by a child, so that this process's heap never holds the bytes.
    double ok = in_child([] {
      write_file_atomic(root_ / "wide.gguf", wide_gguf(1024, 4096));
      write_file_atomic(root_ / "small.gguf", wide_gguf(64, 128));
      write_file_atomic(root_ / "wide_q8.gguf", wide_gguf(1024, 4096, /*q8=*/true, /*layers=*/3));
      write_file_atomic(root_ / "small_q8.gguf", wide_gguf(64, 128, /*q8=*/true));
      return 1.0;
    });
    ASSERT_EQ(ok, 1.0);
  }
  static void TearDownTestSuite() { fs::remove_all(root_); }
  static fs::path root_;
};
fs::path GgufLoadMemoryTest::root_;

}  // namespace

TEST_F(GgufLoadMemoryTest, Float32GgufLoadHoldsOneCopyOfTheWeights) {
  const double file_mb = static_cast<double>(fs::file_size(root_ / "wide.gguf")) / (1 << 20);
  ASSERT_GT(file_mb, 55);
  // The same load path on a small file first (code and libraries paged in on first use are not
  // counted); then the peak over the load against the resident size before it.
  const double growth = load_growth_mb([&] { return load_gguf_model(root_ / "small.gguf", LoadOptions{"cpu"}); },
                                       [&] { return load_gguf_model(root_ / "wide.gguf", LoadOptions{"cpu"}); });
  ASSERT_FALSE(std::isnan(growth));
  std::cout << "float32 GGUF of " << file_mb << " MB: peak resident growth over the load " << growth << " MB\n";
  // One copy plus the un-permuted q/k (8% of this file). The old load held the mapping, the
  // loader's float32 copy and the network's initialised parameters (3x, measured 3.0x).
  EXPECT_LT(growth, 1.25 * file_mb + 16) << "file " << file_mb << " MB";
  EXPECT_GT(growth, 0.9 * file_mb);  // the weights are really resident (the measure works)
}

TEST_F(GgufLoadMemoryTest, SharedMappingGivesTheSameWeightsAndStaysWritable) {
  const fs::path path = root_ / "small.gguf";
  gguf::GgufFile f = gguf::GgufFile::open(path);
  auto copied = gguf::hf_weights(f);
  auto shared = gguf::hf_weights(f, torch::kFloat32, /*share_mapping=*/true);
  ASSERT_EQ(copied.size(), shared.size());
  for (const auto& [k, v] : copied) EXPECT_TRUE(torch::equal(v, shared.at(k))) << k;
  // An as-stored tensor views the mapping; q is un-permuted into a copy.
  const uint8_t* down = f.tensor_data(*f.find_tensor("blk.0.ffn_down.weight"));
  EXPECT_EQ(shared.at("model.layers.0.mlp.down_proj.weight").data_ptr(), down);
  EXPECT_NE(shared.at("model.layers.0.self_attn.q_proj.weight").data_ptr(),
            f.tensor_data(*f.find_tensor("blk.0.attn_q.weight")));
  // The loaded model equals the copying path, trains in place, and leaves the file alone.
  LoadedModel m = load_gguf_model(path, LoadOptions{"cpu"});
  auto params = m.net->named_hf_parameters();
  for (const auto& [k, v] : copied) EXPECT_TRUE(torch::equal(params.at(k), v)) << k;
  {
    torch::NoGradGuard ng;
    for (auto& [k, p] : params) p.add_(1.0f);
  }
  LoadedModel again = load_gguf_model(path, LoadOptions{"cpu"});
  for (const auto& [k, v] : copied) EXPECT_TRUE(torch::equal(again.net->named_hf_parameters().at(k), v)) << k;
  EXPECT_EQ(again.content_hash, m.content_hash);
  // The identity of the parts as given: the same as building the model from the copied tensors.
  EXPECT_EQ(make_model(m.config, copied, m.tokenizer, LoadOptions{"cpu"}, path).content_hash, m.content_hash);
}

// Whether this process maps `path` (a line of /proc/self/maps names it).
bool maps_file(const fs::path& path) {
  std::ifstream maps("/proc/self/maps");
  std::string line;
  while (std::getline(maps, line))
    if (line.find(path.string()) != std::string::npos) return true;
  return false;
}

// A model whose weights are packed (bf16, q8_0) holds nothing of the file's mapping: the float32
// views it adopted are replaced, and what stays float32 (the norms) gets storage of its own, so
// the mapping and its resident pages go. (One norm left a view kept all 211 MB of a 58M model's
// GGUF resident beside its 60 MB of Q8_0 weights.) A float32 model keeps the mapping: its weights.
TEST_F(GgufLoadMemoryTest, PackedWeightsLeaveNoMappingOfTheFile) {
  const fs::path path = root_ / "small.gguf";
  {
    LoadedModel f32 = load_gguf_model(path, LoadOptions{"cpu"});
    EXPECT_TRUE(maps_file(path)) << "the float32 model's weights are the mapping";
  }
  EXPECT_FALSE(maps_file(path));
  for (WeightFormat w : {WeightFormat::kBf16, WeightFormat::kQ8_0}) {
    LoadOptions o{"cpu"};
    o.weights = w;
    LoadedModel m = load_gguf_model(path, o);
    EXPECT_EQ(m.net->weight_format(), w);
    EXPECT_FALSE(maps_file(path)) << weight_format_name(w) << " model still maps " << path;
  }
}

// A packed load of a float32 GGUF packs each weight as it is read and drops its pages from the
// mapping before the next (the identity is hashed per tensor on the way), so its peak is near the
// packed size: the file's seven matrices (largest 16 MB) pack to 15 MB (Q8_0) or 29 MB
// (bfloat16), plus the un-permuted q/k copies (5 MB). The old load hashed every tensor (paging the
// whole file in), adopted them and packed after: growth >= the file's 58 MB plus the packed copy.
TEST_F(GgufLoadMemoryTest, PackedGgufLoadPeaksNearThePackedSize) {
  const double file_mb = static_cast<double>(fs::file_size(root_ / "wide.gguf")) / (1 << 20);
  for (WeightFormat w : {WeightFormat::kQ8_0, WeightFormat::kBf16}) {
    LoadOptions o{"cpu"};
    o.weights = w;
    const double growth = load_growth_mb([&] { return load_gguf_model(root_ / "small.gguf", o); },
                                         [&] { return load_gguf_model(root_ / "wide.gguf", o); });
    ASSERT_FALSE(std::isnan(growth));
    const double packed_mb = file_mb * (w == WeightFormat::kQ8_0 ? 34.0 / 128 : 0.5);
    std::cout << weight_format_name(w) << " GGUF load of " << file_mb << " MB: peak resident growth " << growth
              << " MB (packed " << packed_mb << " MB)\n";
    // The packed weights, one float32 matrix being packed (16 MB), the q/k copies (5 MB) and 12 MB
    // for allocator noise.
    EXPECT_LT(growth, packed_mb + 16 + 5 + 12) << weight_format_name(w);
    EXPECT_GT(growth, 0.9 * packed_mb) << weight_format_name(w);  // the packed weights are resident
  }
}

// Packing while loading a GGUF gives what loading in float32 and packing after gives, bit for bit,
// with the same identity.
TEST_F(GgufLoadMemoryTest, PackedGgufLoadEqualsPackingAfterTheLoad) {
  const fs::path path = root_ / "small.gguf";
  for (WeightFormat w : {WeightFormat::kBf16, WeightFormat::kQ8_0}) {
    LoadOptions o{"cpu"};
    o.weights = w;
    LoadedModel packed = load_gguf_model(path, o);
    LoadedModel after = load_gguf_model(path, LoadOptions{"cpu"});
    after.net->pack_weights(w);
    EXPECT_EQ(packed.content_hash, after.content_hash);
    auto pp = packed.net->named_hf_parameters(), pa = after.net->named_hf_parameters();
    ASSERT_EQ(pp.size(), pa.size());
    for (const auto& [k, v] : pa) {
      EXPECT_EQ(pp.at(k).scalar_type(), v.scalar_type()) << k;
      EXPECT_TRUE(torch::equal(pp.at(k), v)) << k;
    }
    torch::NoGradGuard ng;
    auto ids = torch::tensor({{1, 5, 9, 3, 7}}, torch::kInt64);
    EXPECT_TRUE(torch::equal(packed.net->forward(ids), after.net->forward(ids))) << weight_format_name(w);
  }
}

// A GGUF already quantized (llama.cpp's Q8_0; three of the wide layers, 46 MB, 174 MB as float32)
// loaded with --weights q8_0 converts each tensor as the model takes it (dequantize, pack, free),
// never the whole file dequantized: measured peak growth 93 MB (the packed 46 MB, a float32
// matrix being packed, and the heap's holes between packed pieces). The old load dequantized every
// tensor first: growth >= the 174 MB of float32 (measured 185 MB, failing).
TEST_F(GgufLoadMemoryTest, QuantizedGgufPackedLoadNeverHoldsItDequantized) {
  const double file_mb = static_cast<double>(fs::file_size(root_ / "wide_q8.gguf")) / (1 << 20);
  const double float_mb = file_mb * 128 / 34;
  LoadOptions o{"cpu"};
  o.weights = WeightFormat::kQ8_0;
  const double growth = load_growth_mb([&] { return load_gguf_model(root_ / "small_q8.gguf", o); },
                                       [&] { return load_gguf_model(root_ / "wide_q8.gguf", o); });
  ASSERT_FALSE(std::isnan(growth));
  std::cout << "Q8_0 GGUF of " << file_mb << " MB (" << float_mb << " MB as float32) loaded as q8_0: peak resident growth "
            << growth << " MB\n";
  EXPECT_LT(growth, 0.7 * float_mb);  // far from the dequantized whole
  EXPECT_GT(growth, 0.9 * file_mb);
  // The same parameters as the eager path (hf_weights converting everything, then packing).
  LoadedModel lazy = load_gguf_model(root_ / "small_q8.gguf", o);
  gguf::GgufFile f = gguf::GgufFile::open(root_ / "small_q8.gguf");
  LoadedModel eager = make_model(lazy.config, gguf::hf_weights(f), lazy.tokenizer, LoadOptions{"cpu"}, "eager");
  eager.net->pack_weights(WeightFormat::kQ8_0);
  EXPECT_EQ(lazy.content_hash, eager.content_hash);
  for (const auto& [k, v] : eager.net->named_hf_parameters())
    EXPECT_TRUE(torch::equal(lazy.net->named_hf_parameters().at(k), v)) << k;
}
