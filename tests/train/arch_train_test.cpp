// ctest-labels: model
// Training and KL drift on every decoder family's tiny fixture (tests/model/fixtures/arch/<arch>/):
// one DPO step (loss, backward, Adam) starts at log 2 (policy = reference), gives finite
// gradients, changes the weights and lowers the loss on the same pairs; the KL statistics of the
// stepped model against its start are finite and positive, and zero against itself.
#include <cmath>

#include <gtest/gtest.h>

#include "train/train.h"

using namespace atax;

namespace {

const fs::path kFixtures = fs::path(ATAX_SOURCE_DIR) / "tests/model/fixtures/arch";

// A character-level BPE (no merges) over the fixtures' 96-id vocabulary: <s>, </s>, then
// characters; enough for kl_divergence, which reads texts through the model's tokenizer.
std::shared_ptr<Tokenizer> char_tokenizer() {
  const std::string chars = " abcdefghijklmnopqrstuvwxyz.,";
  json vocab = {{"<s>", 0}, {"</s>", 1}};
  for (size_t i = 0; i < chars.size(); ++i) vocab[std::string(1, chars[i])] = static_cast<int>(i + 2);
  json tj = {{"version", "1.0"},
             {"added_tokens",
              {{{"id", 0}, {"content", "<s>"}, {"special", true}, {"single_word", false}, {"lstrip", false},
                {"rstrip", false}, {"normalized", false}},
               {{"id", 1}, {"content", "</s>"}, {"special", true}, {"single_word", false}, {"lstrip", false},
                {"rstrip", false}, {"normalized", false}}}},
             {"normalizer", nullptr},
             {"pre_tokenizer", nullptr},
             {"post_processor", nullptr},
             {"decoder", nullptr},
             {"model", {{"type", "BPE"}, {"vocab", vocab}, {"merges", json::array()}}}};
  json cfg = {{"bos_token", "<s>"}, {"eos_token", "</s>"}};
  return std::make_shared<Tokenizer>(Tokenizer::from_json(tj, cfg, "char_tokenizer.json"));
}

LoadedModel load_arch(const std::string& arch) {
  const fs::path dir = kFixtures / arch;
  LoadedModel m;
  m.config = ModelConfig::from_json(read_json(dir / "config.json"), (dir / "config.json").string());
  m.net = CausalLm(m.config);
  m.net->load_hf_state_dict(load_safetensors_dir(dir), dir.string());
  m.tokenizer = char_tokenizer();
  m.source = dir;
  m.content_hash = arch;
  return m;
}

std::vector<PreferencePair> random_pairs(int64_t vocab, uint64_t seed) {
  Rng rng(seed);
  auto ids = [&](int n) {
    std::vector<int32_t> v;
    for (int i = 0; i < n; ++i) v.push_back(static_cast<int32_t>(rng.range(2, vocab - 1)));
    return v;
  };
  std::vector<PreferencePair> pairs(4);
  for (auto& p : pairs) {
    p.prompt = ids(5);
    p.chosen = ids(3);
    p.rejected = ids(4);
    p.chosen.push_back(1);
    p.rejected.push_back(1);
  }
  return pairs;
}

class ArchTrainTest : public ::testing::TestWithParam<std::string> {};

TEST_P(ArchTrainTest, OneDpoStepAndKlStatistics) {
  torch::manual_seed(5);
  LoadedModel policy = load_arch(GetParam()), reference = load_arch(GetParam());
  policy.net->train();
  reference.net->eval();
  const auto pairs = random_pairs(policy.config.vocab_size, 17);
  std::vector<const PreferencePair*> batch;
  for (const auto& p : pairs) batch.push_back(&p);

  auto step_loss = [&] {
    return dpo_batch(policy.net, &reference.net, batch, nullptr, DpoLossType::kSigmoid, 0.5, 0.0, /*pad_id=*/1);
  };
  DpoBatchOutput out = step_loss();
  const double loss0 = out.loss.item<double>();
  ASSERT_TRUE(std::isfinite(loss0));
  EXPECT_NEAR(loss0, std::log(2.0), 1e-5);  // policy = reference: −log σ(0)

  auto params = policy.net->named_hf_parameters();
  std::map<std::string, torch::Tensor> before;
  for (const auto& [name, t] : params) before[name] = t.detach().clone();
  torch::optim::Adam opt(policy.net->parameters(), torch::optim::AdamOptions(1e-2));
  opt.zero_grad();
  out.loss.backward();
  double grad_norm = 0;
  for (const auto& p : policy.net->parameters())
    if (p.grad().defined()) {
      ASSERT_TRUE(torch::isfinite(p.grad()).all().item<bool>()) << GetParam();
      grad_norm += p.grad().pow(2).sum().item<double>();
    }
  EXPECT_GT(grad_norm, 0.0);
  opt.step();
  int changed = 0;
  for (const auto& [name, t] : policy.net->named_hf_parameters()) {
    ASSERT_TRUE(torch::isfinite(t).all().item<bool>()) << name;
    changed += !torch::equal(t.detach(), before.at(name));
  }
  EXPECT_GT(changed, static_cast<int>(before.size()) / 2) << GetParam();  // most tensors moved
  const double loss1 = step_loss().loss.item<double>();
  EXPECT_TRUE(std::isfinite(loss1));
  EXPECT_LT(loss1, loss0) << GetParam();  // the step went downhill on its own batch

  // KL drift of the stepped model from its start, on the same character tokenizer.
  policy.net->eval();
  HfModel start(std::move(reference)), stepped(std::move(policy));
  const std::vector<std::string> texts = {"the cat sat on the mat.", "a dog, a fox and an owl."};
  const KlStats kl = kl_divergence(start, stepped, texts);
  EXPECT_EQ(kl.n_texts, 2);
  EXPECT_GT(kl.n_positions, 20);
  EXPECT_TRUE(std::isfinite(kl.mean) && std::isfinite(kl.max) && std::isfinite(kl.stderr_));
  EXPECT_GT(kl.mean, 0.0);
  const KlStats self = kl_divergence(start, start, texts);
  EXPECT_NEAR(self.mean, 0.0, 1e-9);
  EXPECT_DOUBLE_EQ(self.same_top_share, 1.0);
}

INSTANTIATE_TEST_SUITE_P(Families, ArchTrainTest,
                         ::testing::Values("qwen3", "mistral", "olmo2", "phi3", "gemma2", "gemma3"));

}  // namespace
