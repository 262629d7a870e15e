// ctest-labels: model
// Pretraining from scratch (packed sequences, seeded init) lowers held-out loss; SFT scores
// response tokens only; weight interpolation.
#include <gtest/gtest.h>

#include "tiny.h"

namespace atax {
namespace {

using namespace testing_tiny;

class PretrainTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() { tiny_ = new Tiny(make_tiny("pretrain")); }
  static void TearDownTestSuite() {
    fs::remove_all(tiny_->dir);
    delete tiny_;
  }
  PretrainConfig config(const std::string& out) {
    PretrainConfig c;
    c.common = quick_common(tiny_->dir / out);
    c.common.lr = 3e-3;
    c.common.batch_size = 8;
    c.common.epochs = 2;
    c.common.warmup_steps = 5;
    c.common.schedule = "cosine";
    c.tokenizer = tiny_->model;  // the folder holding tokenizer.json
    json mc = tiny_model_config(0);
    mc.erase("vocab_size");  // taken from the tokenizer
    c.model_config = tiny_->dir / "model_config.json";
    write_json_atomic(c.model_config, mc);
    c.data = tiny_->corpus;
    c.eval_data = tiny_->corpus_heldout;
    c.seq_len = 32;
    return c;
  }
  static Tiny* tiny_;
};
Tiny* PretrainTest::tiny_ = nullptr;

TEST_F(PretrainTest, PackBlocksOverlapByOneToken) {
  std::vector<int32_t> t = {1, 2, 3, 4, 5, 6, 7, 8};
  auto b = pack_blocks(t, 3);
  ASSERT_EQ(b.size(), 2u);
  EXPECT_EQ(b[0].ids, (std::vector<int32_t>{1, 2, 3, 4}));
  EXPECT_EQ(b[1].ids, (std::vector<int32_t>{4, 5, 6, 7}));
  auto tok = Tokenizer::load(tiny_->model);
  auto docs = load_corpus_documents(tiny_->corpus, tok, BadLinePolicy::kFail, nullptr);
  ASSERT_FALSE(docs.empty());
  for (const auto& d : docs) EXPECT_EQ(d.back(), *tok.eos_id());  // EOS between documents
}

TEST_F(PretrainTest, LowersHeldOutLoss) {
  auto c = config("pre");
  auto r = pretrain(c);
  ASSERT_TRUE(r.eval_initial.contains("eval_loss"));
  ASSERT_TRUE(r.eval.contains("eval_loss"));
  double before = r.eval_initial["eval_loss"].get<double>(), after = r.eval["eval_loss"].get<double>();
  // A random init scores about ln(V) per token; the corpus is highly regular.
  EXPECT_NEAR(before, std::log(static_cast<double>(Tokenizer::load(tiny_->model).vocab_size())), 0.5);
  EXPECT_LT(after, before - 2.0) << "before " << before << " after " << after;
  EXPECT_LT(r.log.back()["loss"].get<double>(), r.log.front()["loss"].get<double>());
  // The result is a loadable HF folder whose held-out NLL matches the logged one.
  auto m = load_model(c.common.out, LoadOptions{"cpu"});
  auto eval_docs = load_corpus_documents(tiny_->corpus_heldout, *m.tokenizer, BadLinePolicy::kFail, nullptr);
  std::vector<int32_t> stream;
  for (const auto& d : eval_docs) stream.insert(stream.end(), d.begin(), d.end());
  EXPECT_NEAR(mean_nll(m.net, pack_blocks(stream, 32), 0), after, 1e-4);
  EXPECT_TRUE(fs::exists(c.common.out / "train_config.json"));
  EXPECT_FALSE(fs::exists(c.common.out / "checkpoints"));
}

TEST_F(PretrainTest, SeededInitIsReproducible) {
  auto a = config("seed_a"), b = config("seed_b");
  a.common.max_steps = b.common.max_steps = 3;
  pretrain(a);
  pretrain(b);
  EXPECT_EQ(max_abs_diff(load_safetensors_dir(a.common.out), load_safetensors_dir(b.common.out)), 0.0);
  auto c = config("seed_c");
  c.common.max_steps = 3;
  c.common.seed = 99;
  pretrain(c);
  EXPECT_GT(max_abs_diff(load_safetensors_dir(a.common.out), load_safetensors_dir(c.common.out)), 1e-3);
}

// Batches are sized from the data: --batch-size or --grad-accum beyond the training sequences
// trains exactly as the whole data in one micro-batch would (no repeats, no runaway allocation).
TEST_F(PretrainTest, BatchesAreSizedFromTheData) {
  auto whole = config("batch_whole");
  whole.common.max_steps = 2;
  whole.common.epochs = 0;
  auto r = pretrain(whole);
  const int64_t n = r.data_report.value("train_blocks", int64_t{0});
  ASSERT_GT(n, 1);
  whole.common.batch_size = n;  // the reference: every block in one micro-batch
  whole.common.out = tiny_->dir / "batch_ref";
  pretrain(whole);
  auto huge = config("batch_huge");
  huge.common.max_steps = 2;
  huge.common.epochs = 0;
  huge.common.batch_size = 5000;
  pretrain(huge);
  EXPECT_EQ(max_abs_diff(load_safetensors_dir(whole.common.out), load_safetensors_dir(huge.common.out)), 0.0);
  auto accum = config("batch_accum");
  accum.common.max_steps = 2;
  accum.common.epochs = 0;
  accum.common.batch_size = n;
  accum.common.grad_accum = 1000;
  pretrain(accum);
  EXPECT_EQ(max_abs_diff(load_safetensors_dir(whole.common.out), load_safetensors_dir(accum.common.out)), 0.0);
}

TEST_F(PretrainTest, SftScoresResponseTokensOnlyAndLearns) {
  auto tok = Tokenizer::load(tiny_->model);
  TokenizeOptions to;
  auto seqs = load_sft(tiny_->sft, tok, to, nullptr);
  ASSERT_EQ(seqs.size(), 64u);
  auto first = read_jsonl(tiny_->sft)[0];
  std::string prompt = "User: " + first["messages"][0]["content"].get<std::string>() + "\nAssistant:";
  EXPECT_EQ(seqs[0].prompt_len, static_cast<int64_t>(tok.encode(prompt).size()));
  std::vector<int32_t> response(seqs[0].ids.begin() + seqs[0].prompt_len, seqs[0].ids.end() - 1);
  EXPECT_EQ(tok.decode(response), " " + first["messages"][1]["content"].get<std::string>() + "\n");
  EXPECT_EQ(seqs[0].ids.back(), *tok.eos_id());

  SftConfig c;
  c.common = quick_common(tiny_->dir / "sft");
  c.common.lr = 3e-3;
  c.common.epochs = 3;
  c.model = tiny_->model;
  c.data = tiny_->sft;
  c.eval_data = tiny_->sft;
  auto r = sft(c);
  EXPECT_LT(r.eval["eval_loss"].get<double>(), r.eval_initial["eval_loss"].get<double>() - 1.0);
}

TEST_F(PretrainTest, MergeInterpolatesWeights) {
  auto a = tiny_->model;
  auto c = config("merge_b");
  c.common.max_steps = 2;
  c.common.lr = 1e-2;
  pretrain(c);
  auto b = c.common.out;
  MergeConfig mc;
  mc.a = a;
  mc.b = b;
  mc.t = 0.3;
  mc.out = tiny_->dir / "merged";
  merge_models(mc);
  auto wa = load_safetensors_dir(a), wb = load_safetensors_dir(b), wm = load_safetensors_dir(mc.out);
  for (const auto& [k, v] : wa) EXPECT_TRUE(torch::allclose(wm.at(k), 0.7 * v + 0.3 * wb.at(k), 1e-6, 1e-6)) << k;
  EXPECT_TRUE(fs::exists(mc.out / "merge_config.json"));
  EXPECT_TRUE(fs::exists(mc.out / "tokenizer.json"));
  mc.t_per_layer = {0.0, 1.0};
  mc.out = tiny_->dir / "merged_layers";
  merge_models(mc);
  wm = load_safetensors_dir(mc.out);
  for (const auto& [k, v] : wa) {
    torch::Tensor want = k.find("layers.0.") != std::string::npos   ? v
                         : k.find("layers.1.") != std::string::npos ? wb.at(k)
                                                                    : 0.7 * v + 0.3 * wb.at(k);
    EXPECT_TRUE(torch::allclose(wm.at(k), want, 1e-6, 1e-6)) << k;
  }
  mc.t_per_layer = {0.5};
  EXPECT_THROW(merge_models(mc), Error);
}

}  // namespace
}  // namespace atax
