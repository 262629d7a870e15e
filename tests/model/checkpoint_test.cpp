// Malformed checkpoints are rejected with an error that names the file and the tensor.
#include <gtest/gtest.h>

#include "model/model.h"
#include "../scratch_dir.h"

using namespace atax;

namespace {
const fs::path kLlama = fs::path(ATAX_SOURCE_DIR) / "tests/model/fixtures/tiny_llama";

fs::path temp_dir(const std::string& name) { return test_support::scratch_dir("atax_ckpt_test", name); }

std::string safetensors_bytes(const json& header, const std::string& data) {
  std::string h = header.dump();
  std::string out;
  uint64_t n = h.size();
  for (int i = 0; i < 8; ++i) out += static_cast<char>((n >> (8 * i)) & 0xff);
  return out + h + data;
}

// Expects load_safetensors(bytes) to fail with a message containing every fragment.
void expect_rejected(const std::string& bytes, std::vector<std::string> fragments) {
  auto d = temp_dir("st");
  write_file_atomic(d / "model.safetensors", bytes);
  try {
    load_safetensors(d / "model.safetensors");
    FAIL() << "accepted a malformed file";
  } catch (const Error& e) {
    std::string what = e.what();
    EXPECT_NE(what.find("model.safetensors"), std::string::npos) << what;
    for (const auto& f : fragments) EXPECT_NE(what.find(f), std::string::npos) << "missing '" << f << "' in: " << what;
  }
}

TEST(SafetensorsTest, RoundTripsDtypes) {
  auto d = temp_dir("rt");
  std::map<std::string, torch::Tensor> t = {{"a", torch::randn({3, 4})},
                                            {"b", torch::randn({5}).to(torch::kFloat16)},
                                            {"c", torch::randn({2, 2}).to(torch::kBFloat16)}};
  save_safetensors(d / "x.safetensors", t);
  auto back = load_safetensors(d / "x.safetensors");
  ASSERT_EQ(back.size(), 3u);
  for (auto& [k, v] : t) {
    EXPECT_EQ(back[k].scalar_type(), v.scalar_type()) << k;
    EXPECT_TRUE(torch::equal(back[k], v)) << k;
  }
}

TEST(SafetensorsTest, RejectsMalformedHeaders) {
  std::string data(16, '\0');
  expect_rejected(std::string("\x05\x00", 2), {"too short"});
  {  // header length beyond the file
    std::string b = safetensors_bytes({{"w", {{"dtype", "F32"}, {"shape", {4}}, {"data_offsets", {0, 16}}}}}, data);
    b[0] = '\x7f';
    b[1] = '\x7f';
    expect_rejected(b, {"header length", "past the end"});
  }
  expect_rejected(safetensors_bytes(json::parse("{}"), "").substr(0, 8) + "{not json", {"not valid JSON"});
  expect_rejected(safetensors_bytes({{"w", {{"dtype", "F32"}, {"shape", {4}}, {"data_offsets", {0, 32}}}}}, data),
                  {"\"w\"", "out of range"});
  expect_rejected(safetensors_bytes({{"w", {{"dtype", "F32"}, {"shape", {3}}, {"data_offsets", {0, 16}}}}}, data),
                  {"\"w\"", "does not match"});
  expect_rejected(safetensors_bytes({{"w", {{"dtype", "Q9"}, {"shape", {4}}, {"data_offsets", {0, 16}}}}}, data),
                  {"\"w\"", "unknown dtype"});
  expect_rejected(safetensors_bytes({{"a", {{"dtype", "F32"}, {"shape", {3}}, {"data_offsets", {0, 12}}}},
                                     {"b", {{"dtype", "F32"}, {"shape", {2}}, {"data_offsets", {8, 16}}}}},
                                    data),
                  {"overlap"});
}

TEST(CheckpointTest, RejectsMissingUnexpectedAndMisshapedTensors) {
  auto base = load_safetensors_dir(kLlama);
  auto cfg_text = read_file(kLlama / "config.json");
  auto try_load = [&](std::map<std::string, torch::Tensor> w, const std::string& fragment) {
    auto d = temp_dir("ck");
    write_file_atomic(d / "config.json", cfg_text);
    fs::copy_file(kLlama / "tokenizer.json", d / "tokenizer.json");
    std::map<std::string, torch::Tensor> owned;
    for (auto& [k, v] : w) owned[k] = v.clone();
    save_safetensors(d / "model.safetensors", owned);
    try {
      load_model(d);
      FAIL() << "accepted: " << fragment;
    } catch (const Error& e) {
      std::string what = e.what();
      EXPECT_NE(what.find("model.safetensors"), std::string::npos) << what;
      EXPECT_NE(what.find(fragment), std::string::npos) << what;
    }
  };
  auto missing = base;
  missing.erase("model.layers.1.mlp.up_proj.weight");
  try_load(missing, "missing tensor \"model.layers.1.mlp.up_proj.weight\"");
  auto extra = base;
  extra["model.layers.9.foo.weight"] = torch::zeros({2});
  try_load(extra, "unexpected tensor \"model.layers.9.foo.weight\"");
  auto shaped = base;
  shaped["model.norm.weight"] = torch::zeros({31});
  try_load(shaped, "\"model.norm.weight\" has shape [31]");
}

TEST(CheckpointTest, RejectsBadConfigs) {
  auto cfg = read_json(kLlama / "config.json");
  auto bad = cfg;
  bad["architectures"] = {"MambaForCausalLM"};
  EXPECT_THROW(ModelConfig::from_json(bad), Error);
  bad = cfg;
  bad["num_attention_heads"] = 3;
  EXPECT_THROW(ModelConfig::from_json(bad), Error);
  bad = cfg;
  bad.erase("hidden_size");
  try {
    ModelConfig::from_json(bad, "x/config.json");
    FAIL();
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("x/config.json: missing \"hidden_size\""), std::string::npos) << e.what();
  }
  auto d = temp_dir("nofolder");
  EXPECT_THROW(load_model(d / "absent"), Error);
  EXPECT_THROW(load_model(d), Error);  // no config.json
}

TEST(CheckpointTest, ShardedIndexLoads) {
  auto d = temp_dir("shard");
  auto w = load_safetensors_dir(kLlama);
  std::map<std::string, torch::Tensor> a, b;
  json map = json::object();
  int i = 0;
  for (auto& [k, v] : w) {
    bool first = (i++ % 2) == 0;
    (first ? a : b)[k] = v.clone();
    map[k] = first ? "model-00001-of-00002.safetensors" : "model-00002-of-00002.safetensors";
  }
  save_safetensors(d / "model-00001-of-00002.safetensors", a);
  save_safetensors(d / "model-00002-of-00002.safetensors", b);
  write_json_atomic(d / "model.safetensors.index.json", {{"metadata", json::object()}, {"weight_map", map}});
  fs::copy_file(kLlama / "config.json", d / "config.json");
  fs::copy_file(kLlama / "tokenizer.json", d / "tokenizer.json");
  auto m = load_model(d);
  auto ref = load_model(kLlama);
  auto ids = torch::randint(0, 256, {1, 6}, torch::kLong);
  torch::NoGradGuard ng;
  EXPECT_TRUE(torch::equal(m.net->forward(ids), ref.net->forward(ids)));
}

}  // namespace
