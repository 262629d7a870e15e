// ctest-labels: model
// The inference KV cache appends into buffers with room to grow instead of concatenating the whole
// cache every step: logits equal those of the concatenated layout within 1e-5 (and a full
// recomputation within 1e-4) across the buffer's growth, a step within capacity writes in place
// (no copy of the cached positions), and a copied cache extended differently from the original
// leaves the original intact.
#include <gtest/gtest.h>

#include "model/model.h"
#include "tiny_llama.h"

using namespace atax;
using atax::testing::tiny_model;

namespace {

double max_rel_diff(const torch::Tensor& a, const torch::Tensor& b) {
  return ((a - b).abs() / b.abs().clamp_min(1.0)).max().item<double>();
}

// Last-position logits (V) of one full forward over `seq`.
torch::Tensor full_logits(CausalLm& net, const std::vector<int64_t>& seq) {
  return net->forward(torch::tensor(seq).unsqueeze(0))[0][-1];
}

}  // namespace

TEST(KvCacheTest, StepsEqualTheConcatenatedLayoutAndFullRecomputationAcrossBufferGrowth) {
  torch::NoGradGuard ng;
  LoadedModel m = tiny_model(512, 5);
  auto& net = m.net;
  std::vector<int64_t> seq;
  for (int64_t i = 0; i < 40; ++i) seq.push_back((i * 37 + 11) % 512);
  // `grown` is the cache as decoding keeps it; `concatenated` is made contiguous (B,Hkv,L,D)
  // before every step, the layout torch::cat gave each step before the buffers.
  KvCache grown, concatenated;
  auto logits = net->forward(torch::tensor(seq).unsqueeze(0), {}, &grown)[0][-1];
  net->forward(torch::tensor(seq).unsqueeze(0), {}, &concatenated);
  const void* buffer = grown.k[0].data_ptr();
  int reallocations = 0;
  // 40 + 200 positions: past the first buffer (40 + 128) into a second one.
  for (int step = 0; step < 200; ++step) {
    const int64_t next = logits.argmax().item<int64_t>() * 7 % 512;  // varied tokens, deterministic
    seq.push_back(next);
    for (size_t l = 0; l < concatenated.k.size(); ++l) {
      concatenated.k[l] = concatenated.k[l].contiguous().clone();
      concatenated.v[l] = concatenated.v[l].contiguous().clone();
    }
    logits = net->forward(torch::tensor({next}).unsqueeze(0), {}, &grown)[0][-1];
    auto want = net->forward(torch::tensor({next}).unsqueeze(0), {}, &concatenated)[0][-1];
    ASSERT_LT(max_rel_diff(logits, want), 1e-5) << "step " << step;
    if (grown.k[0].data_ptr() != buffer) {
      ++reallocations;
      buffer = grown.k[0].data_ptr();
    }
    // Against one full pass the products differ in shape (1 row vs all): 1e-4, as before the buffers.
    if (step % 20 == 0 || step == 199)
      EXPECT_LT(max_rel_diff(logits, full_logits(net, seq)), 1e-4) << "step " << step;
  }
  EXPECT_EQ(grown.length(), 240);
  // torch::cat gave every step a new tensor; the buffer moves only when it is full (40 -> 168 -> 338).
  EXPECT_EQ(reallocations, 1);
}

TEST(KvCacheTest, CopiedCacheNeverAliasesTheOriginal) {
  torch::NoGradGuard ng;
  LoadedModel m = tiny_model(512, 6);
  auto& net = m.net;
  std::vector<int64_t> prompt = {3, 14, 15, 92, 65, 35, 89, 79};
  KvCache a;
  net->forward(torch::tensor(prompt).unsqueeze(0), {}, &a);
  KvCache b = a;  // shares a's tensors
  auto la = net->forward(torch::tensor({int64_t{7}}).unsqueeze(0), {}, &a)[0][-1];
  auto lb = net->forward(torch::tensor({int64_t{200}}).unsqueeze(0), {}, &b)[0][-1];
  auto la2 = net->forward(torch::tensor({int64_t{9}}).unsqueeze(0), {}, &a)[0][-1];
  auto seq_a = prompt, seq_b = prompt;
  seq_a.push_back(7);
  seq_b.push_back(200);
  EXPECT_LT(max_rel_diff(la, full_logits(net, seq_a)), 1e-4);
  EXPECT_LT(max_rel_diff(lb, full_logits(net, seq_b)), 1e-4);
  seq_a.push_back(9);
  EXPECT_LT(max_rel_diff(la2, full_logits(net, seq_a)), 1e-4);
}

TEST(KvCacheTest, BatchedGreedyGenerationUnchangedByTheCacheLayout) {
  // Eight left-padded streams generated together equal each stream generated alone (the cache's
  // buffers hold padded rows and grow during the run: prompts up to 30, 150 new tokens).
  LoadedModel lm = tiny_model(512, 8);
  InferenceOptions io;
  io.max_length = 512;
  HfModel m(std::move(lm), io);
  std::vector<std::vector<int64_t>> prompts;
  for (int64_t b = 0; b < 8; ++b) {
    std::vector<int64_t> p;
    for (int64_t i = 0; i < 5 + 3 * b; ++i) p.push_back(3 + (b * 31 + i * 17) % 500);
    prompts.push_back(p);
  }
  GenerateRequest g;
  g.max_new_tokens = 150;
  auto together = m.generate_tokens(prompts, g);
  for (size_t b = 0; b < prompts.size(); ++b) EXPECT_EQ(together[b], m.generate_tokens({prompts[b]}, g)[0]) << b;
}
