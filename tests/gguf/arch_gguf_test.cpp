// ctest-labels: model
// GGUF files of Llama, Gemma-2, OLMo-2 and Phi-3 as llama.cpp's converter writes them (tiny random
// F32 checkpoints, tests/gguf/fixtures/arch/, made by gen_gguf_arch.py with llama.cpp's gguf-py):
// atax's logits equal the logits llama.cpp computes on the same files, and stay equal through a
// conversion to a Hugging Face folder and back (every key kept, Gemma's 1 + w norms undone once).
#include <gtest/gtest.h>

#include <unistd.h>

#include "gguf/gguf.h"

using namespace atax;

namespace {

const fs::path kDir = fs::path(ATAX_SOURCE_DIR) / "tests/gguf/fixtures/arch";
// max |logit difference| against llama.cpp: both compute in float32 (llama.cpp's GELU in F32, see
// gen_gguf_arch.py); measured 2e-6..9e-6 between llama.cpp and the PyTorch reference.
constexpr double kTol = 1e-4;

struct Reference {
  std::vector<int64_t> ids;
  torch::Tensor logits;  // (T, V)
};

Reference reference(const std::string& arch) {
  json j = read_json(kDir / (arch + ".logits.json"));
  Reference r;
  r.ids = j.at("input_ids").get<std::vector<int64_t>>();
  std::vector<float> flat;
  for (const auto& row : j.at("logits"))
    for (double v : row.get<std::vector<double>>()) flat.push_back(static_cast<float>(v));
  r.logits = torch::tensor(flat).view({static_cast<int64_t>(r.ids.size()), -1});
  return r;
}

double max_diff_to_llamacpp(LoadedModel& m, const Reference& r) {
  torch::NoGradGuard ng;
  auto logits = m.net->forward(torch::tensor(r.ids).unsqueeze(0))[0];
  EXPECT_EQ(logits.sizes(), r.logits.sizes());
  return (logits - r.logits).abs().max().item<double>();
}

class ArchGgufTest : public ::testing::TestWithParam<std::string> {};

TEST_P(ArchGgufTest, LogitsMatchLlamaCpp) {
  const std::string arch = GetParam();
  Reference r = reference(arch);
  LoadedModel m = load_gguf_model(kDir / (arch + ".gguf"));
  const double d = max_diff_to_llamacpp(m, r);
  std::cout << arch << ": max |atax - llama.cpp| = " << d << "\n";
  EXPECT_LT(d, kTol) << arch;
  // Something to fail on: the logits vary across the vocabulary.
  EXPECT_GT(r.logits.std().item<double>(), 0.5);
}

TEST_P(ArchGgufTest, ConvertedFolderGivesTheSameLogits) {
  const std::string arch = GetParam();
  fs::path out = fs::temp_directory_path() / ("atax_arch_gguf_" + arch + "_" + std::to_string(::getpid()));
  fs::remove_all(out);
  convert_gguf_to_hf(kDir / (arch + ".gguf"), out);
  json cfg = read_json(out / "config.json");
  LoadedModel m = load_model(out, LoadOptions{"cpu"});
  EXPECT_LT(max_diff_to_llamacpp(m, reference(arch)), kTol) << arch << " " << cfg.dump();
  fs::remove_all(out);
}

INSTANTIATE_TEST_SUITE_P(Families, ArchGgufTest, ::testing::Values("llama", "gemma2", "olmo2", "phi3"));

// What the converter encodes per family comes back as Hugging Face config fields.
TEST(ArchGgufConfigTest, FamilyFieldsComeBack) {
  auto cfg = [](const std::string& arch) { return gguf::hf_config_json(gguf::GgufFile::open(kDir / (arch + ".gguf"))); };
  json g = cfg("gemma2");
  EXPECT_EQ(g["architectures"][0], "Gemma2ForCausalLM");
  EXPECT_EQ(g["attn_logit_softcapping"], 2.0);
  EXPECT_EQ(g["final_logit_softcapping"], 5.0);
  EXPECT_EQ(g["sliding_window"], 4);
  EXPECT_EQ(g["query_pre_attn_scalar"], 16);
  EXPECT_EQ(g["tie_word_embeddings"], true);
  json p = cfg("phi3");
  EXPECT_EQ(p["architectures"][0], "Phi3ForCausalLM");
  EXPECT_EQ(p["original_max_position_embeddings"], 8);
  EXPECT_EQ(p["sliding_window"], 6);
  EXPECT_EQ(p["rope_scaling"]["type"], "longrope");
  EXPECT_EQ(p["rope_scaling"]["long_factor"], json({2.0, 5.0, 1.5, 3.0}));
  EXPECT_NEAR(p["rope_scaling"]["attention_factor"].get<double>(), std::sqrt(1 + std::log(4.0) / std::log(8.0)), 1e-6);
  json o = cfg("olmo2");
  EXPECT_EQ(o["architectures"][0], "Olmo2ForCausalLM");
  // Gemma's norms: the file holds 1 + w, the model gets w (a norm weight near 1 would mean the +1 stayed).
  auto w = gguf::hf_weights(gguf::GgufFile::open(kDir / "gemma2.gguf"));
  EXPECT_LT(w.at("model.layers.0.input_layernorm.weight").abs().mean().item<double>(), 0.5);
}

}  // namespace
