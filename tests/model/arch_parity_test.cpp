// ctest-labels: model
// Parity of every supported decoder family against an independent reference: tiny random
// checkpoints (tests/model/fixtures/arch/<arch>/) whose logits were computed by hf_reference.py, a
// PyTorch transcription of Hugging Face's published modeling code (see gen_<arch>.py). Also: the
// KV cache gives the full pass's logits, LoRA / merge / save keep every tensor, and configs that
// atax cannot run or that disagree with the checkpoint fail before the network is allocated.
#include <gtest/gtest.h>

#include <unistd.h>

#include "model/model.h"

using namespace atax;

namespace {

const fs::path kFixtures = fs::path(ATAX_SOURCE_DIR) / "tests/model/fixtures/arch";
constexpr double kTol = 1e-4;  // max |logit difference|, float32 both sides

struct Loaded {
  ModelConfig config;
  CausalLm net{nullptr};
  std::map<std::string, torch::Tensor> ref;
};

Loaded load_fixture(const std::string& arch) {
  fs::path dir = kFixtures / arch;
  Loaded l;
  l.config = ModelConfig::from_json(read_json(dir / "config.json"), (dir / "config.json").string());
  auto weights = load_safetensors_dir(dir);
  l.net = CausalLm(l.config);
  l.net->load_hf_state_dict(weights, dir.string());
  l.net->eval();
  l.ref = load_safetensors(dir / "reference.safetensors");
  return l;
}

double max_diff(const torch::Tensor& a, const torch::Tensor& b) {
  EXPECT_EQ(a.sizes(), b.sizes());
  return (a.to(torch::kFloat32) - b.to(torch::kFloat32)).abs().max().item<double>();
}

fs::path temp_dir(const std::string& name) {
  fs::path d = fs::temp_directory_path() / ("atax_arch_test_" + name + "_" + std::to_string(::getpid()));
  fs::remove_all(d);
  fs::create_directories(d);
  return d;
}

class ArchParityTest : public ::testing::TestWithParam<std::string> {};

TEST_P(ArchParityTest, LogitsMatchReference) {
  torch::NoGradGuard ng;
  auto l = load_fixture(GetParam());
  auto ids = l.ref.at("input_ids");
  auto logits = l.net->forward(ids);
  double d = max_diff(logits, l.ref.at("logits"));
  EXPECT_LT(d, kTol) << GetParam();
  // The logits are not trivially flat: the check above has something to fail on.
  EXPECT_GT(l.ref.at("logits").std().item<double>(), 0.1);
  if (l.ref.count("logits_short")) {
    auto short_logits = l.net->forward(ids.narrow(1, 0, l.ref.at("logits_short").size(1)));
    EXPECT_LT(max_diff(short_logits, l.ref.at("logits_short")), kTol) << GetParam() << " (short)";
  }
}

// Incremental decoding (prefix, then one token at a time) gives the full pass's logits, sliding
// windows and local/global RoPE included.
TEST_P(ArchParityTest, KvCacheMatchesFullPass) {
  torch::NoGradGuard ng;
  auto l = load_fixture(GetParam());
  auto ids = l.ref.at("input_ids");
  if (l.config.rope_scaling.type == "longrope")  // the factor set depends on the length: stay short
    ids = ids.narrow(1, 0, 6);
  const int64_t T = ids.size(1), P = 3;
  auto full = l.net->forward(ids);
  KvCache cache;
  std::vector<torch::Tensor> parts = {l.net->forward(ids.narrow(1, 0, P), {}, &cache)};
  for (int64_t t = P; t < T; ++t) parts.push_back(l.net->forward(ids.narrow(1, t, 1), {}, &cache));
  EXPECT_LT(max_diff(torch::cat(parts, 1), full), 1e-4) << GetParam();
}

// Save -> load round trip keeps config and every tensor (q/k norms, fused projections).
TEST_P(ArchParityTest, SaveLoadKeepsEveryTensor) {
  torch::NoGradGuard ng;
  auto l = load_fixture(GetParam());
  LoadedModel m;
  m.config = l.config;
  m.net = l.net;
  m.source = kFixtures / GetParam();
  auto dir = temp_dir("save_" + GetParam());
  save_model(m, dir / "out");
  auto back = load_model(dir / "out");
  json saved = back.config.to_json(), original = l.config.to_json();
  saved.erase("torch_dtype");  // saved as float32 whatever the fixture's dtype
  original.erase("torch_dtype");
  EXPECT_EQ(saved, original);
  auto a = l.net->hf_state_dict(), b = back.net->hf_state_dict();
  ASSERT_EQ(a.size(), b.size());
  for (const auto& [k, v] : a) {
    ASSERT_TRUE(b.count(k)) << k;
    EXPECT_EQ(max_diff(v, b.at(k)), 0.0) << k;
  }
  EXPECT_LT(max_diff(back.net->forward(l.ref.at("input_ids")), l.ref.at("logits")), kTol);
  fs::remove_all(dir);
}

// LoRA on every projection of the family: a fresh adapter changes nothing, a trained one
// changes the logits, and merging folds it in exactly.
TEST_P(ArchParityTest, LoraTargetsAndMerge) {
  auto l = load_fixture(GetParam());
  LoraOptions lo;
  lo.rank = 2;
  lo.target_modules = l.config.fused_projections
                          ? std::vector<std::string>{"qkv_proj", "o_proj", "gate_up_proj", "down_proj"}
                          : std::vector<std::string>{"q_proj", "k_proj", "v_proj", "o_proj", "gate_proj",
                                                     "up_proj", "down_proj"};
  auto ids = l.ref.at("input_ids");
  l.net->add_lora(lo);
  const int64_t per_layer = static_cast<int64_t>(lo.target_modules.size()) * 2;
  EXPECT_EQ(static_cast<int64_t>(l.net->lora_parameters().size()), per_layer * l.config.num_hidden_layers);
  torch::NoGradGuard ng;
  EXPECT_LT(max_diff(l.net->forward(ids), l.ref.at("logits")), kTol);
  torch::manual_seed(7);
  for (auto& p : l.net->lora_parameters()) p.add_(torch::randn_like(p) * 0.05);
  auto adapted = l.net->forward(ids);
  EXPECT_GT(max_diff(adapted, l.ref.at("logits")), 1e-3);
  auto names_before = l.net->hf_state_dict();
  l.net->merge_lora();
  EXPECT_LT(max_diff(l.net->forward(ids), adapted), 1e-4);
  auto names_after = l.net->hf_state_dict();
  EXPECT_EQ(names_before.size(), names_after.size());
  for (const auto& [k, v] : names_before) EXPECT_TRUE(names_after.count(k)) << k;
}

INSTANTIATE_TEST_SUITE_P(Families, ArchParityTest,
                         ::testing::Values("qwen3", "mistral", "olmo2", "phi3", "gemma2", "gemma3"));

TEST(ArchConfigTest, FamilyFieldsAreRead) {
  auto g2 = ModelConfig::from_json(read_json(kFixtures / "gemma2/config.json"));
  EXPECT_EQ(g2.norm_placement, NormPlacement::kSandwich);
  EXPECT_TRUE(g2.norm_unit_offset && g2.scale_embeddings);
  EXPECT_EQ(g2.sliding_layers, (std::vector<bool>{true, false, true}));
  EXPECT_DOUBLE_EQ(g2.attn_logit_softcapping, 2.0);
  auto g3 = ModelConfig::from_json(read_json(kFixtures / "gemma3/config.json"));
  EXPECT_EQ(g3.architecture, "Gemma3ForCausalLM");
  EXPECT_EQ(g3.sliding_layers, (std::vector<bool>{true, true, false}));
  EXPECT_DOUBLE_EQ(g3.rope_local_theta, 10000.0);
  auto phi = ModelConfig::from_json(read_json(kFixtures / "phi3/config.json"));
  EXPECT_EQ(phi.rotary_dim(), 4);
  EXPECT_EQ(phi.rope_scaling.type, "longrope");
  EXPECT_NEAR(phi.rope_scaling.attention_factor, std::sqrt(1 + std::log(4.0) / std::log(8.0)), 1e-12);
  auto o = ModelConfig::from_json(read_json(kFixtures / "olmo2/config.json"));
  EXPECT_EQ(o.qk_norm, QkNorm::kFull);
  EXPECT_EQ(o.norm_placement, NormPlacement::kPost);
}

std::string error_of(const json& j) {
  try {
    ModelConfig::from_json(j, "cfg.json");
  } catch (const Error& e) {
    return e.what();
  }
  return "";
}

TEST(ArchConfigTest, UnsupportedOrAbsurdFieldsFailNamingTheField) {
  json base = read_json(kFixtures / "qwen3/config.json");
  auto with = [&](const char* key, json v) {
    json j = base;
    j[key] = v;
    return error_of(j);
  };
  EXPECT_NE(with("rope_scaling", {{"rope_type", "yarn"}, {"factor", 4.0}}).find("rope_scaling.rope_type"),
            std::string::npos);
  EXPECT_NE(with("num_hidden_layers", 1000000000).find("num_hidden_layers"), std::string::npos);
  EXPECT_NE(with("rms_norm_eps", -1.0).find("rms_norm_eps"), std::string::npos);
  EXPECT_NE(with("rope_theta", 0).find("rope_theta"), std::string::npos);
  EXPECT_NE(with("hidden_size", 0).find("hidden_size"), std::string::npos);
  EXPECT_NE(with("num_experts", 8).find("num_experts"), std::string::npos);
  EXPECT_NE(with("layer_types", json::array({"full_attention"})).find("layer_types"), std::string::npos);
  EXPECT_NE(with("architectures", {"MambaForCausalLM"}).find("MambaForCausalLM"), std::string::npos);
  json phi = read_json(kFixtures / "phi3/config.json");
  phi["rope_scaling"]["long_factor"] = {1.0};
  EXPECT_NE(error_of(phi).find("long_factor"), std::string::npos);
  EXPECT_EQ(error_of(base), "");
}

// A config whose layer count disagrees with the checkpoint fails before the network exists: an
// absurd-but-bounded count must not allocate layer by layer (it would take gigabytes).
TEST(ArchConfigTest, LayerCountIsCheckedAgainstTheCheckpointFirst) {
  auto dir = temp_dir("layers");
  fs::copy(kFixtures / "qwen3", dir / "m");
  json cfg = read_json(dir / "m/config.json");
  cfg["num_hidden_layers"] = 4000;
  cfg["intermediate_size"] = 1 << 20;
  write_json_atomic(dir / "m/config.json", cfg);
  try {
    load_model(dir / "m");
    FAIL() << "loaded";
  } catch (const Error& e) {
    std::string m = e.what();
    EXPECT_NE(m.find("num_hidden_layers = 4000"), std::string::npos) << m;
    EXPECT_NE(m.find("2 layers"), std::string::npos) << m;
  }
  cfg["num_hidden_layers"] = 2;
  cfg["intermediate_size"] = 64;  // the checkpoint has 48
  write_json_atomic(dir / "m/config.json", cfg);
  try {
    load_model(dir / "m");
    FAIL() << "loaded";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("intermediate_size 64"), std::string::npos) << e.what();
  }
  fs::remove_all(dir);
}

}  // namespace
