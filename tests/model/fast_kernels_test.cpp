// ctest-labels: model
// The fast inference kernels (oneDNN products split over threads, fused causal attention with GQA,
// the LM head's fused log-softmax, the MLP on row blocks) against LibTorch's own path that they
// replace (set_fast_kernels(false)), on random tensors and a random tiny model, at 256- and
// 2048-token windows. Tolerance 1e-5 × max(1, |value|) in float32.
#include <gtest/gtest.h>

#include <chrono>
#include <thread>

#include "core/core.h"
#include "model/attention.h"
#include "model/model.h"
#include "tiny_llama.h"

using namespace atax;

namespace {
const fs::path kStories = fs::path(ATAX_SHARED_DIR) / "models/stories260K/hf";

// Restores the fast kernels when a test ends, whatever it asserted.
struct FastKernels {
  explicit FastKernels(bool on) { set_fast_kernels(on); }
  ~FastKernels() { set_fast_kernels(true); }
};

double max_rel_diff(const torch::Tensor& got, const torch::Tensor& want) {
  return ((got - want).abs() / want.abs().clamp_min(1.0)).max().item<double>();
}

// Gradients are sums over many rows in a different order: their error is relative to the
// tensor's scale, so max |got − want| / max(1, max |want|).
double max_scaled_diff(const torch::Tensor& got, const torch::Tensor& want) {
  return (got - want).abs().max().item<double>() / std::max(1.0, want.abs().max().item<double>());
}

using atax::testing::causal_mask;

LoadedModel tiny_model(int64_t V, uint64_t seed) { return atax::testing::tiny_model(V, seed, 160); }

std::vector<std::pair<std::vector<int64_t>, std::vector<int64_t>>> requests(int64_t V, int64_t ctx_len, uint64_t seed) {
  Rng rng(seed);
  auto ids = [&](int64_t n) {
    std::vector<int64_t> v;
    for (int64_t i = 0; i < n; ++i) v.push_back(rng.range(0, V - 1));
    return v;
  };
  std::vector<std::pair<std::vector<int64_t>, std::vector<int64_t>>> out;
  auto shared = ids(ctx_len / 2);
  for (int c = 0; c < 3; ++c) out.emplace_back(shared, ids(1));  // multiple choice: one input
  out.emplace_back(ids(1), ids(ctx_len - 1));                     // a whole window scored
  out.emplace_back(ids(ctx_len / 2 + 1), ids(ctx_len / 2 - 1));   // llama-perplexity's half window
  out.emplace_back(ids(9), ids(4));                               // short: padded in its batch
  return out;
}
}  // namespace

TEST(FastKernelsTest, LinearEqualsLibTorchProductsSplitOrNot) {
  torch::NoGradGuard ng;
  torch::manual_seed(5);
  for (int threads : {1, 2}) {
    configure_threads(threads);  // 2: the output columns are split over two threads
    // {1, 64, 5000}, {8, 100, 300}: the matrix-vector path (up to 8 rows); {3, 7, 40}: K below a vector.
    for (auto [M, K, N] : {std::tuple<int64_t, int64_t, int64_t>{37, 96, 1000},
                           {1, 64, 5000},
                           {300, 130, 129},
                           {8, 100, 300},
                           {3, 7, 40}}) {
      auto x = torch::randn({M, 1, K}), w = torch::randn({N, K}), w_io = torch::randn({K, N}), b = torch::randn({N});
      for (bool in_out : {false, true}) {
        const auto& wt = in_out ? w_io : w;
        for (bool bias : {false, true}) {
          torch::Tensor got, want;
          {
            FastKernels on(true);
            got = atax::linear(x, wt, bias ? b : torch::Tensor(), in_out);
          }
          {
            FastKernels off(false);
            want = atax::linear(x, wt, bias ? b : torch::Tensor(), in_out);
          }
          ASSERT_EQ(got.sizes(), want.sizes());
          // A K-term sum in another order: its error is relative to the products' scale, not to
          // an entry that happens to be near 0 (1.9e-5 of max(1, |y|) was seen at K = 130).
          EXPECT_LT(max_scaled_diff(got, want), 1e-5)
              << M << "x" << K << "x" << N << " in_out " << in_out << " bias " << bias << " threads " << threads;
        }
      }
    }
  }
  configure_threads(1);
}

// The worker pool's hand-over: workers spin for a bounded time after a part, then block. Products
// back to back (handed to a spinning worker), and after pauses longer than the spin (handed to a
// blocked one), each split over two threads, give the one-thread values exactly (each output
// column is computed by one thread either way).
TEST(FastKernelsTest, SplitProductsEqualOneThreadAcrossSpinAndSleep) {
  torch::NoGradGuard ng;
  torch::manual_seed(11);
  auto w = torch::randn({1024, 512}), x = torch::randn({1, 512});
  configure_threads(1);
  auto want = atax::linear(x, w, {});
  configure_threads(2);
  for (int i = 0; i < 400; ++i) {
    if (i % 50 == 49) std::this_thread::sleep_for(std::chrono::milliseconds(2));  // the workers block
    auto got = atax::linear(x, w, {});
    ASSERT_TRUE(torch::equal(got, want)) << "call " << i;
  }
  configure_threads(1);
}

TEST(FastKernelsTest, GroupedProductsEqualSeparateOnesBitForBit) {
  torch::NoGradGuard ng;
  torch::manual_seed(13);
  // A layer's q, k, v (GQA: k and v narrower) and an MLP's gate and up; 1, 3 and 8 rows share a
  // hand-over, 9 rows (past the matrix-vector kernel) run as separate products.
  std::vector<torch::Tensor> ws = {torch::randn({512, 384}), torch::randn({128, 384}), torch::randn({128, 384}),
                                   torch::randn({1040, 384})};
  for (int threads : {1, 2}) {
    configure_threads(threads);
    for (int64_t rows : {1, 3, 8, 9}) {
      auto x = torch::randn({rows, 1, 384});
      auto got = linear_group(x, ws);
      ASSERT_EQ(got.size(), ws.size());
      for (size_t i = 0; i < ws.size(); ++i) {
        auto want = atax::linear(x, ws[i], {});
        ASSERT_EQ(got[i].sizes(), want.sizes());
        EXPECT_TRUE(torch::equal(got[i], want)) << "weight " << i << ", " << rows << " rows, " << threads << " threads";
      }
    }
  }
  configure_threads(1);
}

TEST(FastKernelsTest, AttentionEqualsPlainWithGqaPaddingCacheAndSlidingWindow) {
  torch::NoGradGuard ng;
  torch::manual_seed(7);
  const int64_t B = 2, H = 4, D = 16;
  struct Case {
    int64_t T, S, Hkv, window;
  };
  // 2048 × 2048: many query blocks; 700 of 1500: a cache before the new positions; T = 1: decoding.
  for (Case c : {Case{2048, 2048, 2, 0}, Case{700, 1500, 4, 0}, Case{256, 256, 1, 0}, Case{1, 300, 2, 0},
                 Case{600, 600, 2, 128}}) {
    auto q = torch::randn({B, H, c.T, D}), k = torch::randn({B, c.Hkv, c.S, D}), v = torch::randn({B, c.Hkv, c.S, D});
    auto mask = causal_mask(B, c.T, c.S, {c.S, c.S - 37}, c.window);
    torch::Tensor want;
    {
      FastKernels off(false);
      want = causal_attention(q, k, v, mask, 0.25);
    }
    // A query that sees no key at all (none here but the padded row's past its end under a
    // sliding window) has no defined output; every other row must agree.
    auto seen = (mask > -1).any(-1, true).expand({B, H, c.T, D});  // (B,H,T,D)
    ASSERT_GT(seen.sum().item<int64_t>(), 0);
    // One thread, and two: a query block's rows are then split between them.
    for (int threads : {1, 2}) {
      configure_threads(threads);
      FastKernels on(true);
      auto got = causal_attention(q, k, v, mask, 0.25);
      ASSERT_EQ(got.sizes(), want.sizes());
      EXPECT_LT(max_rel_diff(got.masked_select(seen), want.masked_select(seen)), 1e-5)
          << c.T << "x" << c.S << " Hkv " << c.Hkv << " window " << c.window << " threads " << threads;
    }
    configure_threads(1);
  }
}

TEST(FastKernelsTest, FusedNormAndRopeEqualTheLibTorchExpressions) {
  torch::NoGradGuard ng;
  torch::manual_seed(5);
  const int64_t B = 2, T = 300, H = 3, D = 32, C = H * D;
  // rms_norm: rows of a (B,T,C) tensor, one row (a decoded token), the weight plain and unit-offset.
  auto w = 1 + 0.1 * torch::randn({C});
  for (int threads : {1, 2}) {
    configure_threads(threads);
    for (auto x : {torch::randn({B, T, C}) * 3, torch::randn({1, 1, C})}) {
      for (bool unit : {false, true}) {
        auto r = torch::rsqrt(x.pow(2).mean(-1, true) + 1e-6);
        auto want = unit ? (x * r) * (1.0 + w) : w * (x * r);
        auto got = rms_norm_fused(x, w, 1e-6, unit);
        ASSERT_EQ(got.sizes(), want.sizes());
        EXPECT_LT(max_rel_diff(got, want), 1e-6) << "unit " << unit << " threads " << threads;
      }
    }
  }
  configure_threads(1);
  // rope: t a (B,H,T,D) view of a (B,T,H,D) projection (as the layers give it), tables per row
  // (B,1,T,D) and shared (1,1,T,D); the halves of a table are equal, as the model builds them.
  auto t = torch::randn({B, T, H, D}).transpose(1, 2);
  for (int64_t tb : {B, int64_t{1}}) {
    auto f = torch::rand({tb, 1, T, D / 2}) * 6;
    auto cs = torch::cat({f.cos(), f.cos()}, -1), sn = torch::cat({f.sin(), f.sin()}, -1);
    auto rot = torch::cat({-t.narrow(-1, D / 2, D / 2), t.narrow(-1, 0, D / 2)}, -1);
    auto want = t * cs + rot * sn;
    auto got = rope_fused(t, cs, sn);
    ASSERT_EQ(got.sizes(), want.sizes());
    EXPECT_LT(max_rel_diff(got, want), 1e-6) << "tables for " << tb << " rows";
  }
}

TEST(FastKernelsTest, ScoredLogprobsAndGreedyFlagsEqualPlainPathAt256And2048) {
  if (!fs::exists(kStories / "tokenizer.json")) GTEST_SKIP() << "../shared/models/stories260K not present";
  for (int64_t V : {512, 5000}) {
    InferenceOptions io;
    io.max_length = 2048;
    HfModel m(tiny_model(V, 13), io);
    for (int64_t ctx : {256, 2048}) {
      auto reqs = requests(V, ctx, static_cast<uint64_t>(ctx + V));
      std::vector<HfModel::TokenScore> got, want;
      {
        FastKernels on(true);
        got = m.score_tokens(reqs);
      }
      {
        FastKernels off(false);
        want = m.score_tokens(reqs);
      }
      ASSERT_EQ(got.size(), want.size());
      double worst = 0;
      for (size_t i = 0; i < reqs.size(); ++i) {
        ASSERT_EQ(got[i].token_logprobs.size(), want[i].token_logprobs.size());
        for (size_t j = 0; j < want[i].token_logprobs.size(); ++j) {
          double w = want[i].token_logprobs[j];
          worst = std::max(worst, std::abs(got[i].token_logprobs[j] - w) / std::max(1.0, std::abs(w)));
        }
        EXPECT_NEAR(got[i].logprob, want[i].logprob, 1e-5 * std::max(1.0, std::abs(want[i].logprob))) << "request " << i;
        EXPECT_EQ(got[i].is_greedy, want[i].is_greedy) << "request " << i;
      }
      EXPECT_LT(worst, 1e-5) << "V " << V << " context " << ctx;
      std::cout << "V " << V << " context " << ctx << ": max |fast - plain| / max(1, |plain|) = " << worst << "\n";
    }
  }
}

TEST(FastKernelsTest, GreedyGenerationEqualsPlainPath) {
  if (!fs::exists(kStories / "tokenizer.json")) GTEST_SKIP() << "../shared/models/stories260K not present";
  InferenceOptions io;
  io.max_length = 512;
  HfModel m(tiny_model(512, 17), io);
  GenerateRequest g;
  g.max_new_tokens = 40;
  g.temperature = 0;
  Rng rng(3);
  std::vector<std::vector<int64_t>> prompts;
  for (int64_t n : {5, 30, 12}) {  // different lengths: left padding in one batch
    prompts.emplace_back();
    for (int64_t i = 0; i < n; ++i) prompts.back().push_back(rng.range(3, 511));
  }
  std::vector<std::vector<int64_t>> got, want;
  {
    FastKernels on(true);
    got = m.generate_tokens(prompts, g);
  }
  {
    FastKernels off(false);
    want = m.generate_tokens(prompts, g);
  }
  EXPECT_EQ(got, want);
  size_t total = 0;
  for (const auto& o : got) total += o.size();
  EXPECT_GT(total, 20u);  // the comparison covers real decoding steps, not only stops
}

// Training: the same products and attention with their backward in oneDNN's sgemm (tracked
// tensors). Values and gradients equal LibTorch's own within 1e-5 of the tensor's scale, for both
// weight layouts, a bias, GQA, padding and a sliding window, on one and two threads.
TEST(FastKernelsTest, TrackedLinearAndAttentionGradientsEqualLibTorch) {
  torch::manual_seed(11);
  for (int threads : {1, 2}) {
    configure_threads(threads);
    for (bool in_out : {false, true}) {
      const int64_t M = 300, K = 130, N = 257;
      auto x0 = torch::randn({3, M / 3, K}), w0 = in_out ? torch::randn({K, N}) : torch::randn({N, K});
      auto b0 = torch::randn({N}), gy = torch::randn({3, M / 3, N});
      std::vector<torch::Tensor> got, want;
      for (bool fast : {true, false}) {
        FastKernels mode(fast);
        auto x = x0.clone().requires_grad_(), w = w0.clone().requires_grad_(), b = b0.clone().requires_grad_();
        auto y = linear(x, w, b, in_out);
        (y * gy).sum().backward();
        (fast ? got : want) = {y.detach(), x.grad(), w.grad(), b.grad()};
      }
      for (size_t i = 0; i < got.size(); ++i)
        EXPECT_LT(max_scaled_diff(got[i], want[i]), 1e-5) << "linear part " << i << " in_out " << in_out << " threads "
                                                      << threads;
    }
    const int64_t B = 2, H = 4, D = 16;
    for (auto [T, Hkv, window] : {std::tuple<int64_t, int64_t, int64_t>{64, 2, 0}, {96, 4, 0}, {80, 1, 24}}) {
      auto q0 = torch::randn({B, H, T, D}), k0 = torch::randn({B, Hkv, T, D}), v0 = torch::randn({B, Hkv, T, D});
      auto go = torch::randn({B, H, T, D});
      auto mask = causal_mask(B, T, T, {T, T - 5}, window);
      std::vector<torch::Tensor> got, want;
      for (bool fast : {true, false}) {
        FastKernels mode(fast);
        auto q = q0.clone().requires_grad_(), k = k0.clone().requires_grad_(), v = v0.clone().requires_grad_();
        auto o = causal_attention(q, k, v, mask, 0.25);
        (o * go).sum().backward();
        (fast ? got : want) = {o.detach(), q.grad(), k.grad(), v.grad()};
      }
      for (size_t i = 0; i < got.size(); ++i)
        EXPECT_LT(max_scaled_diff(got[i], want[i]), 1e-5) << "attention part " << i << " T " << T << " Hkv " << Hkv
                                                      << " window " << window << " threads " << threads;
    }
  }
  configure_threads(0);
}

// A training step of a whole (tiny) model: the loss and every parameter's gradient through the
// fast path equal the plain path's.
TEST(FastKernelsTest, ModelParameterGradientsEqualPlainPath) {
  if (!fs::exists(kStories / "tokenizer.json")) GTEST_SKIP() << "../shared/models/stories260K not present";
  auto m = tiny_model(512, 21);
  for (auto& [name, t] : m.net->named_hf_parameters()) t.requires_grad_(true);
  torch::manual_seed(3);
  auto ids = torch::randint(0, 512, {3, 40});
  std::map<std::string, torch::Tensor> grads[2];
  double losses[2];
  for (int fast : {1, 0}) {
    FastKernels mode(fast == 1);
    m.net->zero_grad();
    auto logits = m.net->forward(ids);  // (B,T,V)
    auto loss = torch::nn::functional::cross_entropy(logits.narrow(1, 0, 39).reshape({-1, 512}),
                                                     ids.narrow(1, 1, 39).reshape({-1}));
    loss.backward();
    losses[fast] = loss.item<double>();
    for (auto& [name, t] : m.net->named_hf_parameters()) grads[fast][name] = t.grad().clone();
  }
  EXPECT_NEAR(losses[1], losses[0], 1e-5 * std::max(1.0, std::abs(losses[0])));
  ASSERT_FALSE(grads[1].empty());
  for (auto& [name, g] : grads[1]) EXPECT_LT(max_scaled_diff(g, grads[0][name]), 1e-5) << name;
}
