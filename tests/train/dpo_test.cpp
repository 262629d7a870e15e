// ctest-labels: model
// DPO on a tiny model: log-probs at scored positions, precomputed vs live reference, LoRA,
// regularized / selective / multi-task / curriculum variants, held-out reward accuracy, NaN stop.
#include <gtest/gtest.h>

#include "tiny.h"
#include "train/loop.h"

#include <fmt/format.h>

namespace atax {
namespace {

using namespace testing_tiny;

class DpoTrainTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() { tiny_ = new Tiny(make_tiny("dpo")); }
  static void TearDownTestSuite() {
    fs::remove_all(tiny_->dir);
    delete tiny_;
  }
  DpoConfig base_config(const std::string& out_name) {
    DpoConfig c;
    c.common = quick_common(tiny_->dir / out_name);
    c.model = tiny_->model;
    c.data = tiny_->prefs;
    c.beta = 0.5;
    c.common.max_steps = 6;
    c.ref_cache = tiny_->dir / "ref_cache";
    return c;
  }
  static Tiny* tiny_;
};
Tiny* DpoTrainTest::tiny_ = nullptr;

TEST_F(DpoTrainTest, SequenceLogprobsMatchFullSoftmax) {
  auto m = load_model(tiny_->model, LoadOptions{"cpu"});
  TokenSequence a{{3, 9, 12, 40, 41, 7}, 2}, b{{5, 6, 8}, 1};
  auto batch = make_token_batch({&a, &b}, 0, torch::kCPU);
  torch::NoGradGuard ng;
  auto lp = sequence_logprobs(m.net, batch);
  auto logits = m.net->forward(batch.input_ids);  // (2,T,V)
  auto logp = torch::log_softmax(logits, -1);
  double want_a = 0, want_b = 0;
  for (int t = 2; t < 6; ++t) want_a += logp[0][t - 1][a.ids[t]].item<double>();
  for (int t = 1; t < 3; ++t) want_b += logp[1][t - 1][b.ids[t]].item<double>();
  EXPECT_NEAR(lp.sum[0].item<double>(), want_a, 1e-4);
  EXPECT_NEAR(lp.sum[1].item<double>(), want_b, 1e-4);
  EXPECT_EQ(lp.count[0].item<double>(), 4);
  EXPECT_EQ(lp.count[1].item<double>(), 2);
}

TEST_F(DpoTrainTest, SharedPromptForwardMatchesConcatenatedBatch) {
  auto m = load_model(tiny_->model, LoadOptions{"cpu"});
  auto tok = Tokenizer::load(tiny_->model);
  auto pairs = load_preferences(tiny_->prefs, tok, TokenizeOptions{}, PreferenceFilter{}, nullptr);
  std::vector<const PreferencePair*> batch;
  for (size_t i = 0; i < 9; ++i) batch.push_back(&pairs[i]);  // prompts and responses of mixed lengths
  auto grads = [&](const SequenceLogprobs& lp) {
    for (auto& p : m.net->parameters()) p.mutable_grad().reset();
    (lp.sum * torch::linspace(0.5, 1.5, lp.sum.size(0))).sum().backward();
    std::vector<torch::Tensor> g;
    for (auto& p : m.net->parameters()) g.push_back(p.grad().clone());
    return g;
  };
  auto shared = train_detail::shared_prompt_logprobs(m.net, batch, 0);
  auto concat = train_detail::concatenated_logprobs(m.net, batch, 0);
  EXPECT_TRUE(torch::allclose(shared.sum, concat.sum, 1e-5, 1e-4)) << shared.sum << concat.sum;
  EXPECT_TRUE(torch::equal(shared.count, concat.count));
  auto gs = grads(shared), gc = grads(concat);
  for (size_t i = 0; i < gs.size(); ++i) EXPECT_TRUE(torch::allclose(gs[i], gc[i], 1e-4, 1e-5)) << i;
}

TEST_F(DpoTrainTest, PrecomputedReferenceGivesSameWeightsAsLive) {
  auto live = base_config("live");
  auto pre = base_config("pre");
  pre.precompute_ref = true;
  auto r1 = train_dpo(live);
  auto r2 = train_dpo(pre);
  ASSERT_EQ(r1.log.size(), 6u);
  ASSERT_EQ(r2.log.size(), 6u);
  for (size_t i = 0; i < r1.log.size(); ++i)
    EXPECT_NEAR(r1.log[i]["loss"].get<double>(), r2.log[i]["loss"].get<double>(), 1e-5) << "step " << i + 1;
  auto w1 = load_safetensors_dir(live.common.out), w2 = load_safetensors_dir(pre.common.out);
  auto w0 = load_safetensors_dir(tiny_->model);
  const double moved = max_abs_diff(w1, w0);
  EXPECT_GT(moved, 1e-3);  // training moved the weights
  // Equal up to float rounding: the reference log-probs come from differently padded batches
  // (~1e-6 apart), which Adam's normalisation carries into the last digits of the update.
  EXPECT_LT(max_abs_diff(w1, w2), 0.01 * moved);
  // Step 1: policy == reference, so the sigmoid loss is log 2 and every reward is 0.
  EXPECT_NEAR(r1.log[0]["dpo_loss"].get<double>(), std::log(2.0), 1e-5);
  EXPECT_NEAR(r1.log[0]["rewards/chosen"].get<double>(), 0.0, 1e-5);
  EXPECT_TRUE(fs::exists(pre.common.out / "train_config.json"));
  EXPECT_TRUE(fs::exists(pre.common.out / "train_log.jsonl"));
  EXPECT_TRUE(fs::exists(pre.common.out / "config.json"));
  // The second precomputing run reads the cache: same result again.
  auto pre2 = base_config("pre2");
  pre2.precompute_ref = true;
  auto r3 = train_dpo(pre2);
  EXPECT_LT(max_abs_diff(load_safetensors_dir(pre2.common.out), w2), 1e-7);
}

// The precomputed reference cache carries a SHA-256 of its table: a flipped bit, a cut table, an
// edited checksum or another header is reported as a warning and recomputed (never read), the
// file is rewritten, and a training run on a corrupted cache ends with the weights of a clean one.
TEST_F(DpoTrainTest, CorruptReferenceCacheIsRecomputedWithAWarning) {
  auto m = load_model(tiny_->model, LoadOptions{"cpu"});
  auto tok = Tokenizer::load(tiny_->model);
  auto pairs = load_preferences(tiny_->prefs, tok, TokenizeOptions{}, PreferenceFilter{}, nullptr);
  ASSERT_GE(pairs.size(), 12u);
  pairs.erase(pairs.begin() + 12, pairs.end());
  const int64_t P = static_cast<int64_t>(pairs.size());
  const fs::path cache = tiny_->dir / "ref_cache_corrupt";
  fs::remove_all(cache);
  bool hit = true;
  const PairTable fresh = train_detail::cached_pair_logprobs(m.net, "h", pairs, 0, 8, cache, "v1", &hit);
  EXPECT_FALSE(hit);
  std::vector<fs::path> files;
  for (const auto& e : fs::directory_iterator(cache)) files.push_back(e.path());
  ASSERT_EQ(files.size(), 1u);
  const fs::path file = files[0];
  const std::string good = read_file(file);
  const size_t body = good.size() - static_cast<size_t>(16 * P);  // the table: 4 float columns of P
  // Same results, exactly: the recomputation repeats the same batches on the same CPU.
  auto same = [&](const PairTable& t) {
    return torch::equal(t.chosen_sum, fresh.chosen_sum) && torch::equal(t.chosen_count, fresh.chosen_count) &&
           torch::equal(t.rejected_sum, fresh.rejected_sum) && torch::equal(t.rejected_count, fresh.rejected_count);
  };
  EXPECT_TRUE(same(train_detail::cached_pair_logprobs(m.net, "h", pairs, 0, 8, cache, "v1", &hit)));
  EXPECT_TRUE(hit);

  std::string flipped = good, cut = good.substr(0, good.size() - 4), checksum = good, header = good;
  flipped[body + 3] = static_cast<char>(flipped[body + 3] ^ 0x40);  // chosen_sum[0]'s exponent
  const size_t sha = checksum.find("\"sha256\":\"") + 10;
  checksum[sha] = checksum[sha] == '0' ? '1' : '0';
  header[header.find('\n') + 1] ^= 1;  // the key line
  const std::vector<std::pair<std::string, std::string>> cases = {
      {flipped, "its checksum does not match its contents"},
      {cut, fmt::format("it holds {} bytes, {} pairs need {}", 16 * P - 4, P, 16 * P)},
      {checksum, "its checksum does not match its contents"},
      {header, "its header does not match these settings"}};
  const char* progress = std::getenv("ATAX_PROGRESS");
  const std::string saved = progress ? progress : "";
  setenv("ATAX_PROGRESS", "plain", 1);  // log_info is silent under ATAX_PROGRESS=0
  for (const auto& [bytes, reason] : cases) {
    SCOPED_TRACE(reason);
    write_file_atomic(file, bytes);
    testing::internal::CaptureStderr();
    const PairTable t = train_detail::cached_pair_logprobs(m.net, "h", pairs, 0, 8, cache, "v1", &hit);
    const std::string err = testing::internal::GetCapturedStderr();
    EXPECT_FALSE(hit);
    EXPECT_TRUE(same(t)) << "the corrupt table was read";
    EXPECT_NE(err.find("warning: the reference cache " + file.string() + " is not usable (" + reason + ")"),
              std::string::npos) << err;
    EXPECT_EQ(read_file(file), good);  // rewritten
  }
  if (progress) setenv("ATAX_PROGRESS", saved.c_str(), 1); else unsetenv("ATAX_PROGRESS");

  // End to end: the second run's cache file has a flipped bit; its weights equal the first run's.
  auto first = base_config("corrupt_a");
  first.precompute_ref = true;
  first.ref_cache = tiny_->dir / "ref_cache_corrupt_e2e";
  fs::remove_all(first.ref_cache);
  train_dpo(first);
  for (const auto& e : fs::directory_iterator(first.ref_cache)) {
    std::string b = read_file(e.path());
    b[b.size() - 1] = static_cast<char>(b[b.size() - 1] ^ 0x40);  // the last rejected count
    write_file_atomic(e.path(), b);
  }
  auto second = base_config("corrupt_b");
  second.precompute_ref = true;
  second.ref_cache = first.ref_cache;
  train_dpo(second);
  EXPECT_LT(max_abs_diff(load_safetensors_dir(second.common.out), load_safetensors_dir(first.common.out)), 1e-7);
}

TEST_F(DpoTrainTest, ShortRunRaisesHeldOutRewardAccuracy) {
  auto c = base_config("acc");
  c.eval_data = tiny_->heldout;
  c.common.max_steps = 0;
  c.common.epochs = 3;
  c.common.lr = 3e-3;
  c.beta = 0.1;
  c.precompute_ref = true;
  c.common.eval_every = 6;
  auto r = train_dpo(c);
  ASSERT_TRUE(r.eval.contains("eval/rewards/accuracies"));
  // Before training every reward is 0 (accuracy 0); after 3 epochs the held-out pairs are ranked right.
  EXPECT_GE(r.eval["eval/rewards/accuracies"].get<double>(), 0.85);
  EXPECT_GT(r.eval["eval/rewards/margins"].get<double>(), 0.0);
  EXPECT_LT(r.eval["eval/loss"].get<double>(), std::log(2.0));
  EXPECT_TRUE(r.log[5].contains("eval/rewards/accuracies"));  // the intermediate evaluation
  double first = r.log.front()["loss"].get<double>(), last = r.log.back()["loss"].get<double>();
  EXPECT_LT(last, first);
}

TEST_F(DpoTrainTest, LoraWithZeroBReproducesBaseOutputs) {
  auto m = load_model(tiny_->model, LoadOptions{"cpu"});
  auto ids = torch::tensor({{3, 9, 12, 40, 41, 7, 8, 100}}, torch::kInt64);
  torch::NoGradGuard ng;
  auto before = m.net->forward(ids);
  LoraOptions lo;
  lo.rank = 4;
  lo.target_modules = {"q_proj", "v_proj", "down_proj"};
  m.net->add_lora(lo);
  auto after = m.net->forward(ids);
  EXPECT_EQ((after - before).abs().max().item<double>(), 0.0);
  m.net->set_lora_enabled(false);
  EXPECT_EQ((m.net->forward(ids) - before).abs().max().item<double>(), 0.0);
}

TEST_F(DpoTrainTest, LoraTrainsAdaptersAgainstTheAdaptersOffReference) {
  auto live = base_config("lora_live");
  live.lora.rank = 4;
  live.lora.target_modules = {"q_proj", "v_proj", "up_proj"};
  live.common.lr = 5e-3;
  auto pre = live;
  pre.common.out = tiny_->dir / "lora_pre";
  pre.precompute_ref = true;
  auto r1 = train_dpo(live);
  auto r2 = train_dpo(pre);
  EXPECT_NEAR(r1.log[0]["dpo_loss"].get<double>(), std::log(2.0), 1e-5);
  auto w0 = load_safetensors_dir(tiny_->model);
  auto w1 = load_safetensors_dir(live.common.out), w2 = load_safetensors_dir(pre.common.out);
  EXPECT_LT(max_abs_diff(w1, w2), 0.01 * max_abs_diff(w1, w0));
  // Only the targeted matrices moved (merged adapters); everything else is the base.
  for (const auto& [name, t] : w0) {
    double d = (w1.at(name) - t).abs().max().item<double>();
    bool targeted = name.find("q_proj") != std::string::npos || name.find("v_proj") != std::string::npos ||
                    name.find("up_proj") != std::string::npos;
    if (targeted) EXPECT_GT(d, 1e-6) << name;
    else EXPECT_EQ(d, 0.0) << name;
  }
}

TEST_F(DpoTrainTest, RegularizedRunLogsEachTerm) {
  auto c = base_config("reg");
  c.lambda_reg = 0.5;
  c.precompute_ref = true;
  auto r = train_dpo(c);
  EXPECT_EQ(r.log[0]["reg_loss"].get<double>(), 0.0);  // θ = θ_ref at the first step
  EXPECT_GT(r.log[3]["reg_loss"].get<double>(), 0.0);
  for (const auto& l : r.log) {
    EXPECT_NEAR(l["loss"].get<double>(), l["dpo_loss"].get<double>() + l["reg_loss"].get<double>(), 1e-9);
    EXPECT_NEAR(l["reg_loss"].get<double>(), 0.5 * l["reg/sq_dist"].get<double>(), 1e-12);
  }
  // The squared distance of the final weights from the reference is what the last steps saw, roughly.
  auto w0 = load_safetensors_dir(tiny_->model), w1 = load_safetensors_dir(c.common.out);
  double sq = 0;
  for (const auto& [k, v] : w0) sq += (w1.at(k) - v).pow(2).sum().item<double>();
  EXPECT_GT(sq, r.log.back()["reg/sq_dist"].get<double>());
  // A stronger λ keeps the weights closer to the reference.
  auto weak = base_config("reg_weak");
  weak.precompute_ref = true;
  train_dpo(weak);
  auto strong = base_config("reg_strong");
  strong.precompute_ref = true;
  strong.lambda_reg = 50;
  train_dpo(strong);
  auto dist = [&](const fs::path& p) {
    auto w = load_safetensors_dir(p);
    double s = 0;
    for (const auto& [k, v] : w0) s += (w.at(k) - v).pow(2).sum().item<double>();
    return s;
  };
  EXPECT_LT(dist(strong.common.out), dist(weak.common.out));
}

TEST_F(DpoTrainTest, SelectiveAlignmentFiltersAndPreserves) {
  auto c = base_config("selective");
  c.filter.behaviours = {"poison"};
  c.preserve = tiny_->sft;
  c.preserve_weight = 0.5;
  c.precompute_ref = true;
  auto r = train_dpo(c);
  auto dropped = r.data_report["train"]["dropped"];
  ASSERT_TRUE(dropped.contains("category not in --behaviours"));
  EXPECT_GT(dropped["category not in --behaviours"].get<int64_t>(), 10);
  EXPECT_TRUE(r.data_report.contains("nll"));
  for (const auto& l : r.log) {
    EXPECT_GT(l["nll_loss"].get<double>(), 0.0);
    EXPECT_NEAR(l["loss"].get<double>(), l["dpo_loss"].get<double>() + 0.5 * l["nll_loss"].get<double>(), 1e-9);
  }
  // Parameter-selective: only layer 1's MLP trains.
  auto p = base_config("layers");
  p.train_modules = {"mlp"};
  p.train_layers = {1};
  p.precompute_ref = true;
  train_dpo(p);
  auto w0 = load_safetensors_dir(tiny_->model), w1 = load_safetensors_dir(p.common.out);
  for (const auto& [name, t] : w0) {
    double d = (w1.at(name) - t).abs().max().item<double>();
    if (name.find("layers.1.mlp") != std::string::npos) EXPECT_GT(d, 0.0) << name;
    else EXPECT_EQ(d, 0.0) << name;
  }
}

TEST_F(DpoTrainTest, NllOnChosenAndCurriculumOrder) {
  auto c = base_config("curriculum");
  c.curriculum = "difficulty";
  c.common.batch_size = 1;
  c.common.max_steps = 40;
  c.nll_weight = 0.3;  // without --nll-data: NLL of the chosen responses (rpo)
  c.precompute_ref = true;
  auto r = train_dpo(c);
  double prev = 0;
  for (const auto& l : r.log) {
    double d = l["data/difficulty"].get<double>();
    EXPECT_GE(d, prev);  // easy pairs first
    prev = d;
    EXPECT_GT(l["nll_loss"].get<double>(), 0.0);
  }
  EXPECT_EQ(r.log.front()["data/difficulty"].get<double>(), 1.0);
}

TEST_F(DpoTrainTest, RpoAlphaIsTheChosenNllBesideCapabilityNll) {
  // α·NLL(chosen) through rpo_alpha is the same objective as nll_weight without --nll-data.
  auto via_nll = base_config("rpo_via_nll");
  via_nll.nll_weight = 0.7;
  via_nll.precompute_ref = true;
  auto via_rpo = base_config("rpo_alpha");
  via_rpo.rpo_alpha = 0.7;
  via_rpo.precompute_ref = true;
  auto r1 = train_dpo(via_nll);
  auto r2 = train_dpo(via_rpo);
  ASSERT_EQ(r1.log.size(), r2.log.size());
  for (size_t i = 0; i < r1.log.size(); ++i) {
    EXPECT_NEAR(r1.log[i]["loss"].get<double>(), r2.log[i]["loss"].get<double>(), 1e-6) << "step " << i + 1;
    EXPECT_NEAR(r1.log[i]["nll_loss"].get<double>(), r2.log[i]["rpo_loss"].get<double>(), 1e-6) << "step " << i + 1;
  }
  EXPECT_LT(max_abs_diff(load_safetensors_dir(via_nll.common.out), load_safetensors_dir(via_rpo.common.out)), 1e-6);
  // Both terms at once: loss = dpo + w·NLL(capability) + α·NLL(chosen), each logged.
  auto both = base_config("rpo_and_nll");
  both.nll_data = tiny_->sft;
  both.nll_weight = 0.5;
  both.rpo_alpha = 0.25;
  both.precompute_ref = true;
  auto r3 = train_dpo(both);
  for (const auto& l : r3.log) {
    EXPECT_GT(l["nll_loss"].get<double>(), 0.0);
    EXPECT_GT(l["rpo_loss"].get<double>(), 0.0);
    EXPECT_NEAR(l["loss"].get<double>(),
                l["dpo_loss"].get<double>() + 0.5 * l["nll_loss"].get<double>() + 0.25 * l["rpo_loss"].get<double>(),
                1e-9);
  }
  // Step 1 (policy == reference): the DPO part is log 2, the chosen NLL that of the initial model.
  EXPECT_NEAR(r3.log[0]["dpo_loss"].get<double>(), std::log(2.0), 1e-5);
  EXPECT_NEAR(r3.log[0]["rpo_loss"].get<double>(), r2.log[0]["rpo_loss"].get<double>(), 1e-6);
  DpoConfig bad = base_config("rpo_bad");
  bad.rpo_alpha = -1;
  EXPECT_THROW(train_dpo(bad), Error);
}

TEST_F(DpoTrainTest, LowMarginFilterMarginCurriculumAndLossTypes) {
  // The reference margins of the training pairs, to pick a threshold that drops some of them.
  auto m = load_model(tiny_->model, LoadOptions{"cpu"});
  auto pairs = load_preferences(tiny_->prefs, *m.tokenizer, TokenizeOptions{}, PreferenceFilter{}, nullptr);
  auto lp = pair_logprobs(m.net, pairs, 0).logprobs(false);
  auto margins = (lp.chosen - lp.rejected).abs();
  auto sorted = std::get<0>(margins.sort());
  const int64_t k = sorted.size(0) / 2;  // a threshold midway between two margins: no rounding ties
  const double threshold = 0.5 * (sorted[k - 1].item<double>() + sorted[k].item<double>());
  const int64_t below = (margins < threshold).sum().item<int64_t>();
  auto c = base_config("margin");
  c.filter.min_ref_margin = threshold;
  c.curriculum = "margin";
  c.common.max_steps = 3;
  auto r = train_dpo(c);
  EXPECT_EQ(r.data_report["train"]["dropped"]["low reference margin"].get<int64_t>(), below);
  EXPECT_EQ(r.data_report["train"]["kept"].get<int64_t>(), static_cast<int64_t>(pairs.size()) - below);
  // Every loss type trains end to end; at step 1 (policy = reference) each has its known value.
  const double beta = 0.5;
  std::map<std::string, double> at_start = {{"sigmoid", std::log(2.0)},
                                            {"robust", std::log(2.0)},
                                            {"hinge", 1.0},
                                            {"ipo", 1 / (4 * beta * beta)}};
  for (const auto& [name, want] : at_start) {
    auto d = base_config("loss_" + name);
    d.loss_type = dpo_loss_type_from_name(name);
    d.beta = beta;
    d.label_smoothing = name == "robust" ? 0.1 : 0.0;
    d.curriculum = "category";
    d.curriculum_categories = {"animals"};
    d.common.max_steps = 4;
    auto rr = train_dpo(d);
    EXPECT_NEAR(rr.log[0]["dpo_loss"].get<double>(), want, 1e-4) << name;
    EXPECT_LT(rr.log.back()["dpo_loss"].get<double>(), rr.log[0]["dpo_loss"].get<double>()) << name;
  }
}

TEST_F(DpoTrainTest, FiltersReportWhatWasDroppedAndBadLinesNameFileAndLine) {
  fs::path f = tiny_->dir / "messy.jsonl";
  {
    std::ofstream o(f);
    o << R"({"prompt": "what colour is the cat?", "chosen": "the cat is red.", "rejected": "no."})" << "\n";
    o << R"({"prompt": "what colour is the cat?", "chosen": "the cat is red.", "rejected": "no."})" << "\n";
    o << R"({"prompt": "what colour is the dog?", "chosen": "same", "rejected": "same"})" << "\n";
    o << R"({"prompt": "what colour is the fox?", "chosen": " ", "rejected": "no."})" << "\n";
    o << R"({"prompt": [{"role": "user", "content": "hi"}], "chosen": [{"role": "assistant", "content": "hello."}], "rejected": [{"role": "assistant", "content": "go."}]})" << "\n";
    o << R"({"chosen": [{"role": "user", "content": "hi"}, {"role": "assistant", "content": "hello."}], "rejected": [{"role": "user", "content": "hi"}, {"role": "assistant", "content": "no."}]})" << "\n";
    o << "not json at all\n";
    o << R"({"prompt": "what?", "chosen": "yes."})" << "\n";
  }
  auto tok = Tokenizer::load(tiny_->model);
  TokenizeOptions to;
  to.max_length = 64;
  PreferenceFilter filter;
  try {
    load_preferences(f, tok, to, filter, nullptr);
    FAIL() << "a bad line must fail";
  } catch (const Error& e) {
    EXPECT_EQ(e.line(), 7);
    EXPECT_EQ(e.file(), f.string());
  }
  to.on_bad_line = BadLinePolicy::kSkip;
  DataReport rep;
  auto pairs = load_preferences(f, tok, to, filter, &rep);
  EXPECT_EQ(pairs.size(), 3u);
  EXPECT_EQ(rep.bad_lines, 2);
  EXPECT_EQ(rep.dropped["duplicate"], 1);
  EXPECT_EQ(rep.dropped["identical"], 1);
  EXPECT_EQ(rep.dropped["empty"], 1);
  // Without the empty filter an empty response is a bad line.
  filter.drop = {"identical", "duplicate"};
  to.on_bad_line = BadLinePolicy::kFail;
  try {
    load_preferences(f, tok, to, filter, nullptr);
    FAIL();
  } catch (const Error& e) {
    EXPECT_EQ(e.line(), 4);
    EXPECT_NE(std::string(e.what()).find("empty response"), std::string::npos);
  }
  // The plain template: prompt "User: ...\nAssistant:", response " text\n" + EOS.
  auto [p, resp] = tokenize_prompt_response(tok, {{"user", "hi"}}, "hello.");
  EXPECT_EQ(tok.decode(p), "User: hi\nAssistant:");
  ASSERT_FALSE(resp.empty());
  EXPECT_EQ(resp.back(), *tok.eos_id());
  EXPECT_EQ(tok.decode(std::vector<int32_t>(resp.begin(), resp.end() - 1)), " hello.\n");
  // The conversational and implicit-prompt rows give the same prompt tokens.
  EXPECT_EQ(pairs[1].prompt, pairs[2].prompt);
  // Truncation keeps the start.
  to.max_length = static_cast<int64_t>(pairs[0].prompt.size()) + 2;
  filter.drop = {"empty", "identical", "duplicate"};
  to.on_bad_line = BadLinePolicy::kSkip;
  DataReport rep2;
  auto cut = load_preferences(f, tok, to, filter, &rep2);
  EXPECT_GT(rep2.truncated, 0);
  for (const auto& q : cut) EXPECT_LE(q.prompt.size() + q.chosen.size(), static_cast<size_t>(to.max_length));
  EXPECT_EQ(std::vector<int32_t>(pairs[0].chosen.begin(), pairs[0].chosen.begin() + 2), cut[0].chosen);
}

TEST_F(DpoTrainTest, NonFiniteLossStopsWithAClearMessage) {
  auto c = base_config("nan");
  c.common.lr = 1e30;
  c.common.max_grad_norm = 0;
  c.common.max_steps = 8;
  c.common.save_every = 1;
  c.precompute_ref = true;
  try {
    train_dpo(c);
    FAIL() << "expected the run to stop";
  } catch (const Error& e) {
    std::string what = e.what();
    EXPECT_NE(what.find("became"), std::string::npos) << what;
    EXPECT_NE(what.find("training stopped"), std::string::npos) << what;
    EXPECT_NE(what.find("checkpoint"), std::string::npos) << what;
  }
  // The last good checkpoint is kept and complete.
  bool found = false;
  for (const auto& e : fs::directory_iterator(c.common.out / "checkpoints")) {
    found = true;
    EXPECT_TRUE(fs::exists(e.path() / "model.safetensors"));
    EXPECT_TRUE(fs::exists(e.path() / "trainer_state.json"));
  }
  EXPECT_TRUE(found);
}

}  // namespace
}  // namespace atax
