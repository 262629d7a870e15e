// ctest-labels: model
// stories260K.gguf run as a model (`--model FILE.gguf` goes through load_model's ".gguf" hook) and
// converted to a Hugging Face folder: both reproduce llama.cpp's greedy continuations exactly and
// its per-position log-probs within 1e-3 (../shared/models/stories260K/reference.jsonl).
#include <gtest/gtest.h>

#include "gguf/gguf.h"

using namespace atax;

namespace {

const fs::path kDir = fs::path(ATAX_SHARED_DIR) / "models/stories260K";
const fs::path kGguf = kDir / "stories260K.gguf";

struct Agreement {
  double max_diff = 0;
  int64_t positions = 0, argmax_mismatches = 0;
};

// Per-position log-probs of prompt_ids + continuation_ids (one forward pass per record) against
// the reference, plus the argmax at every position.
Agreement check_logprobs(LoadedModel& m, const std::vector<json>& refs) {
  torch::NoGradGuard ng;
  Agreement a;
  for (const auto& r : refs) {
    auto ids = r["prompt_ids"].get<std::vector<int64_t>>();
    auto cont = r["continuation_ids"].get<std::vector<int64_t>>();
    ids.insert(ids.end(), cont.begin(), cont.end());
    auto logp = torch::log_softmax(m.net->forward(torch::tensor(ids).unsqueeze(0))[0].to(torch::kFloat64), -1);
    auto want = r["logprobs"].get<std::vector<double>>();
    auto argmax = r["argmax_ids"].get<std::vector<int64_t>>();
    EXPECT_EQ(want.size(), ids.size() - 1);
    for (size_t i = 0; i + 1 < ids.size(); ++i) {
      a.max_diff = std::max(a.max_diff, std::abs(logp[static_cast<int64_t>(i)][ids[i + 1]].item<double>() - want[i]));
      ++a.positions;
    }
    for (size_t i = 0; i < ids.size(); ++i)
      a.argmax_mismatches += logp[static_cast<int64_t>(i)].argmax().item<int64_t>() != argmax[i];
  }
  return a;
}

// Greedy continuations with the KV cache (batched) and through text in, text out.
int check_greedy(HfModel& m, const std::vector<json>& refs) {
  std::vector<std::vector<int64_t>> prompts;
  std::vector<GenerateRequest> reqs;
  for (const auto& r : refs) {
    auto ids = m.tokenizer().encode(r["prompt"].get<std::string>(), true);
    EXPECT_EQ(std::vector<int64_t>(ids.begin(), ids.end()), r["prompt_ids"].get<std::vector<int64_t>>()) << r["name"];
    prompts.push_back(r["prompt_ids"].get<std::vector<int64_t>>());
    GenerateRequest g;
    g.context = r["prompt"];
    g.max_new_tokens = 32;
    reqs.push_back(g);
  }
  GenerateRequest g;
  g.max_new_tokens = 32;
  auto gen = m.generate_tokens(prompts, g);
  auto text = m.generate_until(reqs);
  int same = 0;
  for (size_t i = 0; i < refs.size(); ++i) {
    bool ok = gen[i] == refs[i]["continuation_ids"].get<std::vector<int64_t>>();
    EXPECT_TRUE(ok) << refs[i]["name"];
    EXPECT_EQ(text[i], refs[i]["continuation_text"].get<std::string>()) << refs[i]["name"];
    same += ok;
  }
  return same;
}

class StoriesGgufModelTest : public ::testing::Test {
 protected:
  void SetUp() override {
    if (!fs::exists(kGguf)) GTEST_SKIP() << "../shared/models/stories260K not present";
    register_gguf_loader();
    refs_ = read_jsonl(kDir / "reference.jsonl");
    ASSERT_EQ(refs_.size(), 13u);
  }
  std::vector<json> refs_;
};

TEST_F(StoriesGgufModelTest, GgufFileReproducesLlamaCpp) {
  LoadedModel m = load_model(kGguf, LoadOptions{"cpu"});  // through the ".gguf" hook
  EXPECT_EQ(m.source, kGguf);
  EXPECT_EQ(m.config.num_key_value_heads, 4);
  EXPECT_TRUE(m.config.tie_word_embeddings);
  Agreement a = check_logprobs(m, refs_);
  EXPECT_EQ(a.positions, 620);
  EXPECT_EQ(a.argmax_mismatches, 0);
  EXPECT_LT(a.max_diff, 1e-3);
  HfModel hm(std::move(m));
  int same = check_greedy(hm, refs_);
  std::cout << "stories260K.gguf: greedy " << same << "/13 identical, max |logprob - llama.cpp| over " << a.positions
            << " positions = " << a.max_diff << "\n";
  RecordProperty("max_abs_logprob_diff", std::to_string(a.max_diff));
}

TEST_F(StoriesGgufModelTest, ConvertedFolderReproducesLlamaCppAndTheGguf) {
  fs::path out = fs::temp_directory_path() / ("atax_gguf_convert_" + std::to_string(::getpid()));
  fs::remove_all(out);
  convert_gguf_to_hf(kGguf, out);
  for (const char* f : {"config.json", "model.safetensors", "tokenizer.json", "tokenizer_config.json"})
    EXPECT_TRUE(fs::exists(out / f)) << f;
  // Same weights as the reference HF folder (lm_head tied, so not stored).
  auto written = load_safetensors(out / "model.safetensors");
  auto want = load_safetensors(kDir / "hf/model.safetensors");
  for (const auto& [name, w] : want) {
    if (name == "lm_head.weight") continue;
    ASSERT_TRUE(written.count(name)) << name;
    EXPECT_TRUE(torch::equal(written.at(name), w)) << name;
  }
  json cfg = read_json(out / "config.json"), hf_cfg = read_json(kDir / "hf/config.json");
  for (const char* k : {"hidden_size", "num_key_value_heads", "head_dim", "rms_norm_eps", "rope_theta",
                        "tie_word_embeddings", "vocab_size", "max_position_embeddings"})
    EXPECT_EQ(cfg[k], hf_cfg[k]) << k;

  LoadedModel folder = load_model(out, LoadOptions{"cpu"});
  LoadedModel gguf = load_model(kGguf, LoadOptions{"cpu"});
  {
    // Identical outputs: the same logits bit for bit on a reference sequence.
    torch::NoGradGuard ng;
    auto ids = refs_[0]["prompt_ids"].get<std::vector<int64_t>>();
    auto x = torch::tensor(ids).unsqueeze(0);
    EXPECT_TRUE(torch::equal(folder.net->forward(x), gguf.net->forward(x)));
    EXPECT_EQ(folder.tokenizer->tokenizer_json(), gguf.tokenizer->tokenizer_json());
  }
  Agreement a = check_logprobs(folder, refs_);
  EXPECT_EQ(a.argmax_mismatches, 0);
  EXPECT_LT(a.max_diff, 1e-3);
  HfModel hm(std::move(folder));
  int same = check_greedy(hm, refs_);
  std::cout << "converted folder: greedy " << same << "/13 identical, max |logprob - llama.cpp| = " << a.max_diff
            << "\n";
  fs::remove_all(out);
}

TEST_F(StoriesGgufModelTest, Bfloat16ComputeDtypeLoads) {
  LoadOptions o{"cpu"};
  o.dtype = torch::kBFloat16;
  LoadedModel m = load_model(kGguf, o);
  EXPECT_EQ(m.net->hf_state_dict().at("model.embed_tokens.weight").dtype(), torch::kBFloat16);
}

TEST_F(StoriesGgufModelTest, MalformedGgufIsAnErrorThroughLoadModel) {
  fs::path p = fs::temp_directory_path() / ("atax_bad_" + std::to_string(::getpid()) + ".gguf");
  std::string bytes = read_file(kGguf);
  write_file_atomic(p, bytes.substr(0, bytes.size() / 2));  // truncated download
  try {
    load_model(p, LoadOptions{"cpu"});
    ADD_FAILURE() << "no error";
  } catch (const Error& e) {
    EXPECT_EQ(e.file(), p.string());
    EXPECT_NE(std::string(e.what()).find("runs past the end of the file"), std::string::npos) << e.what();
  }
  fs::remove(p);
}

}  // namespace
