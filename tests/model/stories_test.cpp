// ctest-labels: model
// A real trained model: llama2.c's stories260K as a Hugging Face folder, against llama.cpp's
// outputs (../shared/models/stories260K/reference.jsonl, see its SOURCE.md).
#include <gtest/gtest.h>

#include "model/model.h"

using namespace atax;

namespace {
const fs::path kDir = fs::path(ATAX_SHARED_DIR) / "models/stories260K";

class StoriesTest : public ::testing::Test {
 protected:
  void SetUp() override {
    if (!fs::exists(kDir / "hf/config.json")) GTEST_SKIP() << "../shared/models/stories260K not present";
    refs_ = read_jsonl(kDir / "reference.jsonl");
    ASSERT_EQ(refs_.size(), 13u);
  }
  std::vector<json> refs_;
};

TEST_F(StoriesTest, PerPositionLogprobsWithin1e3AndArgmaxIdentical) {
  torch::NoGradGuard ng;
  auto m = load_model(kDir / "hf");
  double worst = 0;
  int64_t positions = 0;
  for (const auto& r : refs_) {
    std::vector<int64_t> ids = r["prompt_ids"].get<std::vector<int64_t>>();
    auto cont = r["continuation_ids"].get<std::vector<int64_t>>();
    ids.insert(ids.end(), cont.begin(), cont.end());
    auto logp = torch::log_softmax(m.net->forward(torch::tensor(ids).unsqueeze(0))[0].to(torch::kFloat64), -1);
    auto want = r["logprobs"].get<std::vector<double>>();
    auto argmax = r["argmax_ids"].get<std::vector<int64_t>>();
    ASSERT_EQ(want.size(), ids.size() - 1);
    for (size_t i = 0; i + 1 < ids.size(); ++i) {
      double got = logp[static_cast<int64_t>(i)][ids[i + 1]].item<double>();
      worst = std::max(worst, std::abs(got - want[i]));
      ++positions;
    }
    for (size_t i = 0; i < ids.size(); ++i)
      EXPECT_EQ(logp[static_cast<int64_t>(i)].argmax().item<int64_t>(), argmax[i]) << r["name"] << " position " << i;
  }
  EXPECT_EQ(positions, 620);
  EXPECT_LT(worst, 1e-3);
  RecordProperty("max_abs_logprob_diff", std::to_string(worst));
  std::cout << "stories260K: max |logprob - llama.cpp| over " << positions << " positions = " << worst << "\n";
}

TEST_F(StoriesTest, GreedyContinuationsIdenticalWithKvCache) {
  HfModel m(load_model(kDir / "hf"));
  std::vector<std::vector<int64_t>> prompts;
  for (const auto& r : refs_) prompts.push_back(r["prompt_ids"].get<std::vector<int64_t>>());
  GenerateRequest g;
  g.max_new_tokens = 32;
  auto gen = m.generate_tokens(prompts, g);  // batched, left-padded
  for (size_t i = 0; i < refs_.size(); ++i)
    EXPECT_EQ(gen[i], refs_[i]["continuation_ids"].get<std::vector<int64_t>>()) << refs_[i]["name"];
}

TEST_F(StoriesTest, TextInTextOutMatchesLlamaCpp) {
  HfModel m(load_model(kDir / "hf"));
  std::vector<GenerateRequest> reqs;
  for (const auto& r : refs_) {
    GenerateRequest g;
    g.context = r["prompt"];
    g.max_new_tokens = 32;
    reqs.push_back(g);
    auto ids = m.tokenizer().encode(r["prompt"].get<std::string>(), true);
    EXPECT_EQ(std::vector<int64_t>(ids.begin(), ids.end()), r["prompt_ids"].get<std::vector<int64_t>>()) << r["name"];
  }
  auto out = m.generate_until(reqs);
  for (size_t i = 0; i < refs_.size(); ++i)
    EXPECT_EQ(out[i], refs_[i]["continuation_text"].get<std::string>()) << refs_[i]["name"];
}

// llama-perplexity -c 128 on perplexity.txt: 4 chunks, BOS first, second half scored.
TEST_F(StoriesTest, PerplexityMatchesLlamaPerplexity) {
  torch::NoGradGuard ng;
  auto m = load_model(kDir / "hf");
  auto ref = read_json(kDir / "perplexity.json");
  std::vector<int64_t> ids;
  for (const char* key : {"tokens", "token_ids", "ids"})
    if (ref.contains(key)) ids = ref[key].get<std::vector<int64_t>>();
  if (ids.empty()) GTEST_SKIP() << "perplexity.json has no token ids field";
  const int64_t n_ctx = 128, first = n_ctx / 2;
  double nll = 0, nll2 = 0;
  int64_t count = 0;
  std::vector<double> cumulative;
  for (int64_t c = 0; (c + 1) * n_ctx <= static_cast<int64_t>(ids.size()); ++c) {
    std::vector<int64_t> chunk(ids.begin() + c * n_ctx, ids.begin() + (c + 1) * n_ctx);
    chunk[0] = 1;  // BOS
    auto logp = torch::log_softmax(m.net->forward(torch::tensor(chunk).unsqueeze(0))[0].to(torch::kFloat64), -1);
    for (int64_t i = first; i < n_ctx - 1; ++i) {
      double v = -logp[i][chunk[i + 1]].item<double>();
      nll += v;
      nll2 += v * v;
      ++count;
    }
    cumulative.push_back(std::exp(nll / count));
  }
  ASSERT_EQ(count, 252);
  std::vector<double> want = {3.2247, 3.9832, 3.9414, 4.1210};
  ASSERT_EQ(cumulative.size(), want.size());
  for (size_t i = 0; i < want.size(); ++i) EXPECT_NEAR(cumulative[i], want[i], 1e-3) << "chunk " << i;
  double mean = nll / count, var = nll2 / count - mean * mean;
  double ppl_err = std::exp(mean) * std::sqrt(var / (count - 1));
  EXPECT_NEAR(ppl_err, 0.44102, 1e-3);
}

// A request for as many new tokens as the window holds keeps its prompt (lm-eval would cut it to
// max_length - max_new_tokens = 0 tokens): the greedy answer starts as the short request's does.
TEST_F(StoriesTest, LongGenerationRequestsKeepTheirPrompt) {
  InferenceOptions o;
  o.max_length = 48;
  HfModel m(load_model(kDir / "hf"), o);
  GenerateRequest shortr, longr;
  shortr.context = longr.context = "Once upon a time, there was a little girl named Lily. She";
  shortr.max_new_tokens = 6;
  longr.max_new_tokens = 48;
  auto a = m.generate_until({shortr})[0];
  auto b = m.generate_until({longr})[0];
  ASSERT_FALSE(a.empty());
  EXPECT_EQ(b.substr(0, a.size()), a);
}

}  // namespace
