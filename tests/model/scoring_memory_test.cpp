// ctest-labels: model
// The memory-bounded scoring paths (blocked attention, LM head on scored rows in blocks, token-
// capped batches) against the plain computations they replace, on random tiny models and on the
// real stories260K, at 256- and 2048-token contexts. Tolerance 1e-5 × max(1, |log-prob|) on F32.
#include <gtest/gtest.h>

#include "core/core.h"
#include "model/attention.h"
#include "model/model.h"
#include "tiny_llama.h"

using namespace atax;

namespace {
const fs::path kStories = fs::path(ATAX_SHARED_DIR) / "models/stories260K/hf";

// The one-block attention the blocked kernel replaces.
torch::Tensor plain_attention(const torch::Tensor& q, const torch::Tensor& k, const torch::Tensor& v,
                              const torch::Tensor& add_mask, double scale) {
  auto scores = torch::matmul(q, k.transpose(-2, -1)) * scale + add_mask;
  return torch::matmul(torch::softmax(scores, -1), v);
}

using atax::testing::causal_mask;
using atax::testing::tiny_model;

// log p(cont | ctx) per token by one unbatched forward over the whole vocabulary.
std::vector<double> reference_logprobs(CausalLm& net, const std::vector<int64_t>& ctx, const std::vector<int64_t>& cont) {
  torch::NoGradGuard ng;
  std::vector<int64_t> all = ctx;
  all.insert(all.end(), cont.begin(), cont.end());
  all.pop_back();
  auto logp = torch::log_softmax(net->forward(torch::tensor(all).unsqueeze(0))[0], -1);
  std::vector<double> out;
  const int64_t off = static_cast<int64_t>(all.size() - cont.size());
  for (size_t j = 0; j < cont.size(); ++j) out.push_back(logp[off + static_cast<int64_t>(j)][cont[j]].item<double>());
  return out;
}

// Requests of mixed lengths up to `ctx_len` tokens, some sharing a context (multiple choice).
std::vector<std::pair<std::vector<int64_t>, std::vector<int64_t>>> requests(int64_t V, int64_t ctx_len, uint64_t seed) {
  Rng rng(seed);
  std::vector<std::pair<std::vector<int64_t>, std::vector<int64_t>>> out;
  auto ids = [&](int64_t n) {
    std::vector<int64_t> v;
    for (int64_t i = 0; i < n; ++i) v.push_back(rng.range(0, V - 1));
    return v;
  };
  auto shared = ids(ctx_len / 2);
  for (int c = 0; c < 4; ++c) out.emplace_back(shared, ids(1));                 // one-token choices
  out.emplace_back(ids(ctx_len - 8), ids(8));                                   // a full window
  out.emplace_back(ids(1), ids(ctx_len - 1));                                   // rolling-style: all scored
  out.emplace_back(ids(ctx_len / 3), ids(5));
  out.emplace_back(ids(7), ids(3));
  return out;
}

void expect_same_scores(HfModel& m, int64_t ctx_len, uint64_t seed) {
  const int64_t V = m.model().config.vocab_size;
  auto reqs = requests(V, ctx_len, seed);
  auto got = m.score_tokens(reqs);
  ASSERT_EQ(got.size(), reqs.size());
  double worst = 0;
  for (size_t i = 0; i < reqs.size(); ++i) {
    auto want = reference_logprobs(m.model().net, reqs[i].first, reqs[i].second);
    ASSERT_EQ(got[i].token_logprobs.size(), want.size());
    double sum = 0;
    for (size_t j = 0; j < want.size(); ++j) {
      // 1e-5 relative to the log-prob's size (F32 rounding of a -20 value is ~2e-6 an operation)
      worst = std::max(worst, std::abs(got[i].token_logprobs[j] - want[j]) / std::max(1.0, std::abs(want[j])));
      sum += want[j];
    }
    EXPECT_NEAR(got[i].logprob, sum, 1e-5 * std::max(1.0, std::abs(sum))) << "request " << i;
  }
  EXPECT_LT(worst, 1e-5) << "context " << ctx_len;
  std::cout << "context " << ctx_len << ": max |logprob - reference| / max(1, |reference|) = " << worst << "\n";
}
}  // namespace

TEST(BlockedAttentionTest, EqualsOneBlockForLongWindowsWithPaddingAndCache) {
  torch::manual_seed(3);
  const int64_t B = 2, H = 2, D = 16;
  for (auto [T, S] : {std::pair<int64_t, int64_t>{2048, 2048}, {700, 1500}, {256, 256}}) {
    auto q = torch::randn({B, H, T, D}), k = torch::randn({B, H, S, D}), v = torch::randn({B, H, S, D});
    auto mask = causal_mask(B, T, S, {S, S - 37});
    auto got = causal_attention(q, k, v, mask, 0.25);
    auto want = plain_attention(q, k, v, mask, 0.25);
    // Rows of the padded sequence past its end see no keys at all and are never read.
    auto real = got.index({0}), real_want = want.index({0});
    EXPECT_LT((real - real_want).abs().max().item<double>(), 1e-5) << T << "x" << S;
    auto part = got.index({1}).narrow(1, 0, T - 37);  // query i sits at S - T + i < S - 37
    auto part_want = want.index({1}).narrow(1, 0, part.size(1));
    EXPECT_LT((part - part_want).abs().max().item<double>(), 1e-5) << T << "x" << S;
  }
}

TEST(ScoringMemoryTest, TinyModelsSameLogprobsAt256And2048) {
  for (int64_t V : {512, 5000}) {
    auto lm = tiny_model(V, 11);
    InferenceOptions io;
    io.max_length = 2048;
    io.batch_size = 16;
    HfModel m(std::move(lm), io);
    expect_same_scores(m, 256, 1);
    expect_same_scores(m, 2048, 2);
  }
}

TEST(ScoringMemoryTest, Stories260KSameLogprobsAt256And2048) {
  if (!fs::exists(kStories / "config.json")) GTEST_SKIP() << "../shared/models/stories260K not present";
  InferenceOptions io;
  io.max_length = 2048;  // RoPE has no position table: longer windows than training are computable
  HfModel m(load_model(kStories), io);
  expect_same_scores(m, 256, 3);
  expect_same_scores(m, 2048, 4);
}

TEST(ScoringMemoryTest, RollingWindowsScoreEveryTokenOnce) {
  if (!fs::exists(kStories / "config.json")) GTEST_SKIP() << "../shared/models/stories260K not present";
  InferenceOptions io;
  io.max_length = 256;
  HfModel m(load_model(kStories), io);
  std::string text;
  for (int i = 0; i < 60; ++i) text += "Once upon a time there was a little girl named Lily. She liked to play. ";
  auto r = m.loglikelihood_rolling({text});
  const auto& tok = m.tokenizer();
  auto ids = tok.encode(text, true);
  std::vector<int64_t> seq(ids.begin(), ids.end());
  ASSERT_GT(seq.size(), 600u);
  EXPECT_EQ(r[0].n_tokens, static_cast<int64_t>(seq.size()) - 1);
  // Reference: the same disjoint windows, each by one plain forward pass.
  double want = 0;
  for (int64_t p = 1; p < static_cast<int64_t>(seq.size());) {
    int64_t q = std::min<int64_t>(p + 255, static_cast<int64_t>(seq.size())), s = std::max<int64_t>(0, q - 256);
    auto lp = reference_logprobs(m.model().net, {seq.begin() + s, seq.begin() + p}, {seq.begin() + p, seq.begin() + q});
    for (double x : lp) want += x;
    p = q;
  }
  EXPECT_NEAR(r[0].logprob, want, 1e-3);
}
