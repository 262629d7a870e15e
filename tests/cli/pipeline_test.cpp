// ctest-labels: model
// The alignment-tax flow through the built binary on a quick toy world: world generate → tokenizer
// train → train pretrain → train dpo → merge → eval → tax, plus training's error paths.
//
// The stages share one work folder under the build folder, keyed by the atax binary (mtime and
// size) and kFlowVersion, and each stage is made once under a file lock: ctest runs every TEST in
// its own process, so a test makes (or finds) the stages before it and then checks its own.
#include <algorithm>
#include <cmath>
#include <cstring>
#include <map>
#include <optional>
#include <set>

#include "cli_run.h"
#include "eval/eval.h"
#include "store/store.h"

using namespace atax;
using namespace atax::cli_test;

namespace {

// Bump when the commands below change, so stale stages are not reused.
constexpr const char* kFlowVersion = "1";

const json kTinyConfig = {{"architectures", {"LlamaForCausalLM"}}, {"model_type", "llama"}, {"hidden_size", 32},
                          {"intermediate_size", 64}, {"num_hidden_layers", 2}, {"num_attention_heads", 4},
                          {"num_key_value_heads", 2}, {"max_position_embeddings", 256}, {"rms_norm_eps", 1e-5},
                          {"tie_word_embeddings", true}};
constexpr int kPretrainSteps = 8;
constexpr int kDpoSteps = 3;
constexpr double kDpoLr = 1e-3, kLambdaReg = 0.5, kNllWeight = 0.25, kBeta = 0.1;

// The F32 tensors of a .safetensors file, read independently of atax: 8-byte little-endian header
// length, JSON header {name: {dtype, shape, data_offsets}}, then the data.
std::map<std::string, std::vector<float>> read_f32_safetensors(const fs::path& path) {
  const std::string bytes = read_file(path);
  uint64_t n = 0;
  std::memcpy(&n, bytes.data(), 8);
  json header = json::parse(bytes.substr(8, n));
  std::map<std::string, std::vector<float>> out;
  for (const auto& [name, t] : header.items()) {
    if (name == "__metadata__") continue;
    EXPECT_EQ(t["dtype"], "F32") << name;
    const size_t b = t["data_offsets"][0], e = t["data_offsets"][1];
    std::vector<float> v((e - b) / 4);
    std::memcpy(v.data(), bytes.data() + 8 + n + b, e - b);
    out[name] = std::move(v);
  }
  return out;
}

class Flow {
 public:
  Flow() {
    const fs::path bin(kAtax);
    const auto mtime = fs::last_write_time(bin).time_since_epoch().count();
    const std::string key = sha256_hex(fmt_key(mtime, fs::file_size(bin))).substr(0, 16);
    root_ = fs::path(ATAX_BINARY_DIR) / "cli_pipeline_work";
    dir_ = root_ / key;
    FileLock lock(root_ / ".lock");
    for (const auto& e : fs::directory_iterator(root_))  // stages of an older binary
      if (e.is_directory() && e.path() != dir_) fs::remove_all(e.path());
    fs::create_directories(dir_);
  }

  fs::path world() {
    return stage("world", {"world", "generate", "--seed", "7", "--scale", "quick", "--out", (dir_ / "world").string()});
  }
  fs::path tokenizer() {
    if (world().empty()) return {};
    return stage("tok", {"tokenizer", "train", "--input", (dir_ / "world/corpus/train.jsonl").string(), "--vocab-size",
                         "512", "--out", (dir_ / "tok").string()});
  }
  fs::path base() {
    if (tokenizer().empty()) return {};
    write_text(dir_ / "tiny.json", kTinyConfig.dump(2));
    return stage("base", {"train", "pretrain", "--tokenizer", (dir_ / "tok").string(), "--config",
                          (dir_ / "tiny.json").string(), "--data", (dir_ / "world/corpus/train.jsonl").string(),
                          "--out", (dir_ / "base").string(), "--max-steps", std::to_string(kPretrainSteps),
                          "--seq-len", "64", "--batch-size", "8", "--seed", "3", "--no-progress"});
  }
  // DPO with every logged term switched on: the regulariser (λ) and the NLL of the chosen responses.
  std::vector<std::string> dpo_args(const fs::path& out) const {
    return {"train", "dpo", "--model", (dir_ / "base").string(), "--data",
            (dir_ / "world/align/preferences_train.jsonl").string(), "--out", out.string(), "--max-steps",
            std::to_string(kDpoSteps), "--batch-size", "4", "--max-length", "128", "--seed", "3", "--lr",
            std::to_string(kDpoLr), "--beta", std::to_string(kBeta), "--lambda-reg", std::to_string(kLambdaReg),
            "--nll-weight", std::to_string(kNllWeight), "--no-progress"};
  }
  fs::path dpo() {
    if (base().empty()) return {};
    return stage("dpo", dpo_args(dir_ / "dpo"));
  }
  std::vector<std::string> eval_args(const std::string& model, const fs::path& out) const {
    return {"eval", "--model", (dir_ / model).string(), "--tasks", "toy_knowledge", "--limit", "10", "--data-dir",
            (dir_ / "world").string(), "--tasks-dir", kTasksDir, "--out", out.string(), "--log-samples", "--cache",
            (dir_ / "eval_cache.sqlite").string()};
  }
  fs::path eval_base() {
    if (base().empty()) return {};
    return stage("eval_base/R.json", eval_args("base", dir_ / "eval_base/R.json"));
  }
  fs::path eval_dpo() {
    if (dpo().empty()) return {};
    return stage("eval_dpo/R2.json", eval_args("dpo", dir_ / "eval_dpo/R2.json"));
  }
  // Copies the request cache to `dst` while no stage writes to it.
  void copy_cache(const fs::path& dst) {
    FileLock lock(root_ / ".lock");
    for (const char* suffix : {"", "-wal", "-shm"}) {
      const fs::path src = dir_ / (std::string("eval_cache.sqlite") + suffix);
      if (fs::exists(src)) fs::copy_file(src, dst.string() + suffix, fs::copy_options::overwrite_existing);
    }
  }
  const fs::path& dir() const { return dir_; }

 private:
  static std::string fmt_key(long long mtime, uintmax_t size) {
    return std::to_string(mtime) + "/" + std::to_string(size) + "/" + kFlowVersion;
  }

  // Runs `args` unless `name` (written atomically by atax) exists; its output is kept in
  // <name>.log. Returns the path, or empty (and a test failure) if the command failed.
  fs::path stage(const std::string& name, const std::vector<std::string>& args) {
    FileLock lock(root_ / ".lock");
    const fs::path p = dir_ / name;
    if (fs::exists(p)) return p;
    RunResult r = run_atax(args);
    write_text(dir_ / (name + ".log"), r.out + r.err);
    if (r.code != 0 || !fs::exists(p)) {
      ADD_FAILURE() << "stage " << name << " failed\n" << r;
      return {};
    }
    return p;
  }

  fs::path root_, dir_;
};

std::vector<json> train_log(const fs::path& dir) { return read_jsonl(dir / "train_log.jsonl"); }

}  // namespace

TEST(CliPipelineTest, WorldGenerateWritesTheQuickWorld) {
  Flow flow;
  const fs::path w = flow.world();
  ASSERT_FALSE(w.empty());
  json manifest = read_json(w / "manifest.json");
  EXPECT_EQ(manifest["seed"], 7);
  EXPECT_EQ(manifest["scale"], "quick");
  // Row counts of the quick scale (docs/world.md).
  EXPECT_EQ(read_jsonl(w / "align/preferences_train.jsonl").size(), 800u);
  EXPECT_EQ(read_jsonl(w / "align/preferences_heldout.jsonl").size(), 160u);
  EXPECT_GT(read_jsonl(w / "corpus/train.jsonl").size(), 1000u);
  RunResult r = run_atax({"world", "verify", w.string()});
  EXPECT_EQ(r.code, 0) << r;
  EXPECT_TRUE(contains(r.out, "files match the manifest")) << r;
}

TEST(CliPipelineTest, PretrainWritesACheckpointFolder) {
  Flow flow;
  const fs::path base = flow.base();
  ASSERT_FALSE(base.empty());
  for (const char* f : {"config.json", "model.safetensors", "train_log.jsonl", "tokenizer.json", "train_config.json"})
    EXPECT_TRUE(fs::exists(base / f)) << f;
  auto log = train_log(base);
  ASSERT_EQ(log.size(), size_t(kPretrainSteps));
  for (size_t i = 0; i < log.size(); ++i) {
    EXPECT_EQ(log[i]["step"], i + 1);
    EXPECT_TRUE(std::isfinite(log[i]["loss"].get<double>()));
    EXPECT_GT(log[i]["tokens_per_s"].get<double>(), 0);
  }
  // A fresh model predicts nearly uniformly over the 512-piece vocabulary: loss ≈ ln 512 = 6.238.
  EXPECT_NEAR(log.front()["loss"].get<double>(), std::log(512.0), 0.15);
  EXPECT_LT(log.back()["loss"].get<double>(), log.front()["loss"].get<double>());
  // The tokenizer is the trained one and the config the tiny one, tied embeddings counted once.
  RunResult r = run_atax({"info", "--model", base.string()});
  ASSERT_EQ(r.code, 0) << r;
  json info = json::parse(r.out);
  EXPECT_EQ(info["vocab_size"], 512);
  EXPECT_EQ(info["parameters"], 512 * 32 + 2 * (2 * 32 + 32 * 32 + 2 * 16 * 32 + 32 * 32 + 3 * 32 * 64) + 32);
  EXPECT_EQ(read_json(base / "train_config.json")["max_steps"], kPretrainSteps);
}

// The per-step log carries every field the training issue lists, with values that hold by
// construction: at step 1 the policy is the reference, so DPO loss = ln 2 and rewards are 0; the
// total is dpo + λ·‖θ − θ_ref‖² + w·NLL; margins = chosen − rejected; lr decays linearly to 0.
TEST(CliPipelineTest, DpoLogsEveryRequiredField) {
  Flow flow;
  const fs::path dpo = flow.dpo();
  ASSERT_FALSE(dpo.empty());
  for (const char* f : {"config.json", "model.safetensors", "train_log.jsonl", "train_config.json"})
    EXPECT_TRUE(fs::exists(dpo / f)) << f;
  auto log = train_log(dpo);
  ASSERT_EQ(log.size(), size_t(kDpoSteps));
  const std::vector<std::string> required = {"loss", "dpo_loss", "reg_loss", "nll_loss", "rewards/chosen",
                                             "rewards/rejected", "rewards/accuracies", "rewards/margins",
                                             "logps/chosen", "logps/rejected", "grad_norm", "lr", "tokens_per_s"};
  for (size_t i = 0; i < log.size(); ++i) {
    const json& l = log[i];
    SCOPED_TRACE("step " + std::to_string(i + 1) + ": " + l.dump());
    for (const auto& k : required) {
      ASSERT_TRUE(l.contains(k) && l[k].is_number()) << k;
      EXPECT_TRUE(std::isfinite(l[k].get<double>())) << k;
    }
    auto v = [&](const char* k) { return l[k].get<double>(); };
    EXPECT_EQ(l["step"], i + 1);
    EXPECT_NEAR(v("loss"), v("dpo_loss") + v("reg_loss") + kNllWeight * v("nll_loss"), 1e-5 * std::abs(v("loss")));
    EXPECT_NEAR(v("rewards/margins"), v("rewards/chosen") - v("rewards/rejected"), 1e-5);
    EXPECT_GE(v("rewards/accuracies"), 0.0);
    EXPECT_LE(v("rewards/accuracies"), 1.0);
    EXPECT_LT(v("logps/chosen"), 0.0);
    EXPECT_LT(v("logps/rejected"), 0.0);
    EXPECT_GT(v("nll_loss"), 0.0);
    EXPECT_GT(v("grad_norm"), 0.0);
    EXPECT_GT(v("tokens_per_s"), 0.0);
    EXPECT_NEAR(v("lr"), kDpoLr * (1.0 - double(i) / kDpoSteps), 1e-12);  // linear decay, no warmup
    if (i == 0) {
      EXPECT_NEAR(v("dpo_loss"), std::log(2.0), 1e-5);
      EXPECT_NEAR(v("rewards/chosen"), 0.0, 1e-6);
      EXPECT_NEAR(v("rewards/rejected"), 0.0, 1e-6);
      EXPECT_NEAR(v("reg_loss"), 0.0, 1e-12);
    } else {
      EXPECT_GT(v("reg_loss"), 0.0);  // θ has moved away from θ_ref
      EXPECT_NEAR(v("reg_loss"), kLambdaReg * v("reg/sq_dist"), 1e-9);
    }
  }
  json cfg = read_json(dpo / "train_config.json");
  EXPECT_DOUBLE_EQ(cfg["beta"].get<double>(), kBeta);
  EXPECT_DOUBLE_EQ(cfg["lambda_reg"].get<double>(), kLambdaReg);
  EXPECT_DOUBLE_EQ(cfg["nll_weight"].get<double>(), kNllWeight);
  EXPECT_EQ(cfg["max_steps"], kDpoSteps);
  EXPECT_EQ(cfg["loss_type"], "sigmoid");
}

// The same seed gives the same loss sequence and the same weights.
TEST(CliPipelineTest, DpoIsSeeded) {
  Flow flow;
  const fs::path dpo = flow.dpo();
  ASSERT_FALSE(dpo.empty());
  TempDir tmp("dposeed");
  RunResult r = run_atax(flow.dpo_args(tmp.path() / "again"));
  ASSERT_EQ(r.code, 0) << r;
  auto a = train_log(dpo), b = train_log(tmp.path() / "again");
  ASSERT_EQ(a.size(), b.size());
  for (size_t i = 0; i < a.size(); ++i)
    for (const char* k : {"loss", "dpo_loss", "reg_loss", "nll_loss", "rewards/margins", "grad_norm"})
      EXPECT_EQ(a[i][k], b[i][k]) << k << " at step " << i + 1;
  EXPECT_EQ(sha256_file(dpo / "model.safetensors"), sha256_file(tmp.path() / "again/model.safetensors"));
}

TEST(CliPipelineTest, MergeInterpolatesWeights) {
  Flow flow;
  const fs::path dpo = flow.dpo();
  ASSERT_FALSE(dpo.empty());
  TempDir tmp("merge");
  RunResult r = run_atax({"merge", "--a", (flow.dir() / "base").string(), "--b", dpo.string(), "--t", "0.5", "--out",
                          tmp / "merged"});
  ASSERT_EQ(r.code, 0) << r;
  for (const char* f : {"config.json", "model.safetensors", "tokenizer.json"})
    EXPECT_TRUE(fs::exists(tmp.path() / "merged" / f)) << f;
  auto a = read_f32_safetensors(flow.dir() / "base/model.safetensors");
  auto b = read_f32_safetensors(dpo / "model.safetensors");
  auto m = read_f32_safetensors(tmp.path() / "merged/model.safetensors");
  ASSERT_EQ(m.size(), a.size());
  double max_err = 0, max_diff = 0;
  for (const auto& [name, va] : a) {
    ASSERT_TRUE(m.count(name)) << name;
    const auto &vb = b.at(name), &vm = m.at(name);
    ASSERT_EQ(vm.size(), va.size()) << name;
    for (size_t i = 0; i < va.size(); ++i) {
      max_err = std::max(max_err, std::abs(double(vm[i]) - 0.5 * (double(va[i]) + double(vb[i]))));
      max_diff = std::max(max_diff, std::abs(double(va[i]) - double(vb[i])));
    }
  }
  EXPECT_GT(max_diff, 1e-4);  // DPO moved the weights, so the merge is not trivially equal to either
  EXPECT_LT(max_err, 1e-6);

  // Two models of different shapes cannot be merged.
  r = run_atax({"merge", "--a", (flow.dir() / "base").string(), "--b", kShared + "/models/stories260K/hf", "--t", "0.5",
                "--out", tmp / "bad"});
  EXPECT_EQ(r.code, 2) << r;
  EXPECT_TRUE(contains(r.err, "atax: error:")) << r;
  EXPECT_FALSE(fs::exists(tmp / "bad"));
}

// Results JSON with acc and its closed-form standard error sqrt(p(1-p)/(n-1)), per-item scores that
// average to it, and the per-item samples file; a second run is answered from the request cache.
TEST(CliPipelineTest, EvalWritesResultsAndSamples) {
  Flow flow;
  const fs::path results = flow.eval_base();
  ASSERT_FALSE(results.empty());
  json j = read_json(results);
  const json& t = j["results"]["toy_knowledge"];
  ASSERT_TRUE(t.contains("acc,none")) << t.dump(2);
  ASSERT_TRUE(t.contains("acc_stderr,none")) << t.dump(2);
  EXPECT_EQ(t["n"], 30);  // 10 per subject, 3 subjects
  const double acc = t["acc,none"];
  EXPECT_NEAR(t["acc_stderr,none"].get<double>(), std::sqrt(acc * (1 - acc) / 29.0), 1e-9);
  for (const char* sub : {"geography", "history", "natural_history"})
    EXPECT_EQ(j["results"][std::string("toy_knowledge/") + sub]["n"], 10) << sub;
  EXPECT_EQ(j["versions"]["toy_knowledge"], 1);
  EXPECT_EQ(j["n-samples"]["toy_knowledge"]["effective"], 30);
  const auto& scores = j["item_scores"]["toy_knowledge"]["acc,none"]["scores"];
  ASSERT_EQ(scores.size(), 30u);
  double sum = 0;
  for (const auto& s : scores) sum += s.get<double>();
  EXPECT_NEAR(sum / 30, acc, 1e-12);

  const fs::path samples = results.parent_path() / "R.samples.toy_knowledge.jsonl";
  ASSERT_TRUE(fs::exists(samples));
  auto lines = read_jsonl(samples);
  ASSERT_EQ(lines.size(), 30u);
  double sample_sum = 0;
  for (const auto& l : lines) {
    EXPECT_TRUE(l.contains("doc_id") && l.contains("prompt")) << l.dump();
    EXPECT_TRUE(contains(l["prompt"].get<std::string>(), "Answer:")) << l.dump();
    sample_sum += l["acc,none"].get<double>();
  }
  EXPECT_NEAR(sample_sum / 30, acc, 1e-12);

  // The model's content hash is recorded and equals what `atax info` reports.
  RunResult r = run_atax({"info", "--model", (flow.dir() / "base").string()});
  ASSERT_EQ(r.code, 0) << r;
  EXPECT_EQ(j["model_content_hash"], json::parse(r.out)["content_hash"]);

  TempDir tmp("evalcache");
  flow.copy_cache(tmp.path() / "cache.sqlite");
  auto args = flow.eval_args("base", tmp.path() / "again.json");
  *(std::find(args.begin(), args.end(), "--cache") + 1) = tmp / "cache.sqlite";
  r = run_atax(args);
  ASSERT_EQ(r.code, 0) << r;
  EXPECT_TRUE(contains(r.out, "0 requests computed, 120 answered from the cache")) << r;
  EXPECT_EQ(read_json(tmp / "again.json")["results"], j["results"]);
}

TEST(CliPipelineTest, EvalUnknownTaskAndMissingData) {
  Flow flow;
  const fs::path base = flow.base();
  ASSERT_FALSE(base.empty());
  TempDir tmp("evalbad");
  RunResult r = run_atax({"eval", "--model", base.string(), "--tasks", "toy_knowlege", "--tasks-dir", kTasksDir,
                          "--out", tmp / "R.json", "--data-dir", (flow.dir() / "world").string()});
  EXPECT_NE(r.code, 0) << r;
  EXPECT_TRUE(contains(r.err, "toy_knowlege")) << r;
  r = run_atax({"eval", "--model", base.string(), "--tasks", "toy_knowledge", "--tasks-dir", kTasksDir, "--out",
                tmp / "R.json", "--data-dir", tmp / "nowhere"});
  EXPECT_EQ(r.code, 2) << r;
  EXPECT_TRUE(contains(r.err, "data not found")) << r;
  EXPECT_FALSE(fs::exists(tmp / "R.json"));
}

// The tax table of the DPO model against its base on the same 30 items, and on results with a
// known answer: base 15/30 correct, aligned 10/30 (a subset) → tax 33.33%, McNemar b = 5, c = 0.
TEST(CliPipelineTest, TaxPrintsTheTable) {
  Flow flow;
  const fs::path base_results = flow.eval_base(), dpo_results = flow.eval_dpo();
  ASSERT_FALSE(base_results.empty());
  ASSERT_FALSE(dpo_results.empty());
  RunResult r = run_atax({"tax", "--base-results", base_results.string(), "--aligned-results", dpo_results.string()});
  ASSERT_EQ(r.code, 0) << r;
  EXPECT_TRUE(contains(r.out, "| Benchmark | Metric |")) << r;
  EXPECT_TRUE(contains(r.out, "| toy_knowledge | acc * | diagnostic | ↑ | 30 |")) << r;
  EXPECT_TRUE(contains(r.out, "| toy_knowledge | acc_norm | diagnostic | ↑ | 30 |")) << r;
  EXPECT_TRUE(contains(r.out, "Mean capability tax")) << r;

  TempDir tmp("tax");
  json j = read_json(base_results);
  auto with_correct = [&](int k) {
    json x = j;
    std::vector<double> s(30, 0.0);
    for (int i = 0; i < k; ++i) s[i] = 1.0;
    x["item_scores"]["toy_knowledge"]["acc,none"]["scores"] = s;
    const double p = k / 30.0;
    x["results"]["toy_knowledge"]["acc,none"] = p;
    x["results"]["toy_knowledge"]["acc_stderr,none"] = std::sqrt(p * (1 - p) / 29.0);
    return x;
  };
  write_text(tmp / "B.json", with_correct(15).dump());
  write_text(tmp / "A.json", with_correct(10).dump());
  r = run_atax({"tax", "--base-results", tmp / "B.json", "--aligned-results", tmp / "A.json"});
  ASSERT_EQ(r.code, 0) << r;
  EXPECT_TRUE(contains(r.out, "| toy_knowledge | acc * | diagnostic | ↑ | 30 | 0.500 ± 0.093 | 0.333 ± 0.088 | 33.33 |")) << r;
  EXPECT_TRUE(contains(r.out, "b=5, c=0")) << r;
  r = run_atax({"tax", "--base-results", tmp / "B.json", "--aligned-results", tmp / "A.json", "--format", "json"});
  ASSERT_EQ(r.code, 0) << r;
  json tj = json::parse(r.out);
  bool found = false;
  for (const auto& row : tj["rows"]) {
    if (row["task"] != "toy_knowledge" || row["metric"] != "acc") continue;
    found = true;
    EXPECT_NEAR(row["tax_pct"].get<double>(), 100.0 / 3.0, 1e-9) << row.dump();
    EXPECT_NEAR(row["base"].get<double>(), 0.5, 1e-12);
    EXPECT_NEAR(row["aligned"].get<double>(), 1.0 / 3.0, 1e-12);
    // McNemar on the 5 discordant pairs, all one way: exact p = 2·2⁻⁵, mid-p = 2·(2⁻⁵ − 2⁻⁶).
    EXPECT_EQ(row["mcnemar"]["b"], 5);
    EXPECT_EQ(row["mcnemar"]["c"], 0);
    EXPECT_NEAR(row["mcnemar"]["p_exact"].get<double>(), 0.0625, 1e-12);
    EXPECT_NEAR(row["mcnemar"]["p_mid"].get<double>(), 0.03125, 1e-12);
    // Every paired resample keeps aligned ≤ base, so the interval lies in (0, 100) around 33.33.
    const double lo = row["tax_ci"][0], hi = row["tax_ci"][1];
    EXPECT_GT(lo, 0.0);
    EXPECT_LT(lo, 100.0 / 3.0);
    EXPECT_GT(hi, 100.0 / 3.0);
    EXPECT_LT(hi, 100.0);
  }
  EXPECT_TRUE(found) << tj.dump(2).substr(0, 3000);
  r = run_atax({"tax", "--base-results", tmp / "B.json"});
  EXPECT_NE(r.code, 0) << r;
  EXPECT_TRUE(contains(r.err, "--aligned-results")) << r;
}

// `atax tax --base DIR --aligned DIR` evaluates both folders, keeps both results files, and prints
// exactly the table that `--base-results/--aligned-results` gives on those files.
TEST(CliPipelineTest, TaxEvaluatesModelFolders) {
  Flow flow;
  const fs::path base = flow.base(), dpo = flow.dpo(), base_results = flow.eval_base();
  ASSERT_FALSE(dpo.empty());
  ASSERT_FALSE(base_results.empty());
  TempDir tmp("tax_models");
  const std::string out = tmp / "out";
  // toy_knowledge as the eval stage evaluates it (same limit and batch size), plus a safety suite.
  std::vector<std::string> args = {"tax", "--base", base.string(), "--aligned", dpo.string(), "--tasks",
                                   "toy_knowledge,toy_bbq", "--limit", "10", "--batch-size", "16", "--data-dir",
                                   (flow.dir() / "world").string(), "--tasks-dir", kTasksDir, "--cache",
                                   tmp / "c.sqlite", "--out", out};
  RunResult r = run_atax(args);
  ASSERT_EQ(r.code, 0) << r;
  EXPECT_TRUE(contains(r.out, "| toy_knowledge | acc * | diagnostic | ↑ | 30 |")) << r;
  EXPECT_TRUE(contains(r.out, "| toy_bbq |")) << r;
  for (const char* f : {"base.json", "aligned.json", "tax.md", "base.samples.toy_knowledge.jsonl",
                        "aligned.samples.toy_bbq.jsonl"})
    EXPECT_TRUE(fs::exists(fs::path(out) / f)) << f;
  EXPECT_EQ(read_file(fs::path(out) / "tax.md"), r.out);

  RunResult from_files = run_atax({"tax", "--base-results", out + "/base.json", "--aligned-results",
                                   out + "/aligned.json"});
  ASSERT_EQ(from_files.code, 0) << from_files;
  EXPECT_EQ(r.out, from_files.out);

  // The saved base results are what `atax eval` wrote for the same model and items.
  const EvalResults saved = read_results(fs::path(out) / "base.json");
  const EvalResults evaluated = read_results(base_results);
  ASSERT_NE(saved.find("toy_knowledge"), nullptr);
  const MetricResult* a = saved.find("toy_knowledge")->find("acc");
  const MetricResult* b = evaluated.find("toy_knowledge")->find("acc");
  ASSERT_NE(a, nullptr);
  ASSERT_NE(b, nullptr);
  EXPECT_EQ(a->doc_ids, b->doc_ids);
  EXPECT_EQ(a->scores, b->scores);
  EXPECT_EQ(saved.model_hash, evaluated.model_hash);
  EXPECT_NE(read_results(fs::path(out) / "aligned.json").model_hash, saved.model_hash);

  // Again: every request comes from the cache and the table is the same.
  RunResult again = run_atax(args);
  ASSERT_EQ(again.code, 0) << again;
  EXPECT_EQ(again.out, r.out);
  EXPECT_EQ(read_results(fs::path(out) / "aligned.json").requests_sent, 0);

  // User errors name the option.
  RunResult e = run_atax({"tax", "--base", base.string(), "--tasks", "toy_knowledge", "--out", tmp / "x"});
  EXPECT_EQ(e.code, 2) << e;
  EXPECT_TRUE(contains(e.err, "--base and --aligned go together")) << e;
  e = run_atax({"tax", "--base", base.string(), "--aligned", dpo.string(), "--tasks", "toy_knowledge"});
  EXPECT_EQ(e.code, 2) << e;
  EXPECT_TRUE(contains(e.err, "--out DIR")) << e;
  e = run_atax({"tax", "--base", base.string(), "--aligned", (tmp / "missing"), "--tasks", "toy_knowledge", "--out",
                tmp / "x"});
  EXPECT_EQ(e.code, 2) << e;
  EXPECT_TRUE(contains(e.err, "--aligned: no such model folder")) << e;
  EXPECT_TRUE(contains(e.err, "hint:")) << e;
  e = run_atax({"tax", "--base", base.string(), "--aligned", dpo.string(), "--out", tmp / "x"});
  EXPECT_EQ(e.code, 2) << e;
  EXPECT_TRUE(contains(e.err, "--tasks")) << e;
  e = run_atax({"tax", "--base", base.string(), "--aligned", dpo.string(), "--tasks", "toy_knowledge", "--out",
                out + "/tax.md"});
  EXPECT_EQ(e.code, 2) << e;
  EXPECT_TRUE(contains(e.err, "--out must be a folder")) << e;
  e = run_atax({"tax", "--base", base.string(), "--aligned", dpo.string(), "--tasks", "toy_knowledge", "--data-dir",
                tmp / "nowhere", "--out", tmp / "x"});
  EXPECT_EQ(e.code, 2) << e;
  EXPECT_TRUE(contains(e.err, "data not found")) << e;
  EXPECT_FALSE(fs::exists(tmp.path() / "x" / "base.json"));
}

// Starts `atax args...` in its own process group without waiting (output to `log`).
pid_t spawn_atax(const std::vector<std::string>& args, const fs::path& log, const std::string& cache_dir) {
  std::vector<std::string> full = {kAtax};
  full.insert(full.end(), args.begin(), args.end());
  const pid_t pid = ::fork();
  if (pid == 0) {
    ::setpgid(0, 0);
    const int fd = ::open(log.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
    if (fd < 0) ::_exit(126);
    ::dup2(fd, 1);
    ::dup2(fd, 2);
    ::setenv("ATAX_PROGRESS", "plain", 1);
    ::setenv("ATAX_CACHE_DIR", cache_dir.c_str(), 1);
    std::vector<char*> argv;
    for (auto& a : full) argv.push_back(a.data());
    argv.push_back(nullptr);
    ::execv(argv[0], argv.data());
    ::_exit(127);
  }
  return pid;
}

std::vector<store::Run> runs_in(const fs::path& store_path, std::optional<store::RunStatus> status = std::nullopt) {
  if (!fs::exists(store_path)) return {};
  store::RunFilter f;
  f.status = status;
  return store::RunStore::open_existing(store_path).list(f);
}

// `atax sweep` is killed (SIGKILL) as soon as its first grid point is recorded, then run again:
// the finished points are reused (not retrained), the interrupted one and the rest are trained,
// and `atax runs` lists every point done.
TEST(CliPipelineTest, SweepKilledThenResumedReusesFinishedRuns) {
  Flow flow;
  const fs::path base = flow.base();
  ASSERT_FALSE(base.empty());
  TempDir tmp("sweep");
  const fs::path out = tmp.path() / "sweep", store_path = out / "runs.sqlite", config = tmp.path() / "sweep.json";
  const json cfg = {{"base", base.string()},
                    {"data", (flow.dir() / "world/align/preferences_train.jsonl").string()},
                    {"world", (flow.dir() / "world").string()},
                    {"tasks", {"toy_knowledge"}},
                    {"tasks_dir", kTasksDir},
                    {"eval_limit", 3},
                    {"out", out.string()},
                    {"defaults", {{"max_steps", 2}, {"batch_size", 4}, {"max_length", 128}, {"lr", 1e-3}}},
                    {"grid", {{"beta", {0.05, 0.1, 0.3}}, {"lambda_reg", {0.5}}}}};
  write_text(config, cfg.dump(2));

  const pid_t pid = spawn_atax({"sweep", "--config", config.string()}, tmp.path() / "first.log", tmp / "cache");
  ASSERT_GT(pid, 0);
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(300);
  bool exited = false;
  int status = 0;
  while (runs_in(store_path, store::RunStatus::kDone).empty() && std::chrono::steady_clock::now() < deadline) {
    if (::waitpid(pid, &status, WNOHANG) == pid) {
      exited = true;
      break;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  if (!exited) {
    ::kill(-pid, SIGKILL);
    ::waitpid(pid, &status, 0);
  }
  ASSERT_FALSE(exited) << "the sweep ended before its first run was recorded:\n" << read_file(tmp.path() / "first.log");
  const std::vector<store::Run> done_before = runs_in(store_path, store::RunStatus::kDone);
  ASSERT_GE(done_before.size(), 1u) << read_file(tmp.path() / "first.log");
  std::map<int64_t, fs::file_time_type> trained_at;  // train_result.json of each finished point
  for (const auto& r : done_before) {
    EXPECT_EQ(r.attempts, 1);
    const fs::path model = r.artifacts["model"].get<std::string>();
    ASSERT_TRUE(fs::exists(model / "train_result.json")) << model;
    trained_at[r.id] = fs::last_write_time(model / "train_result.json");
  }
  // The point it was in the middle of (if it had begun one) shows as interrupted.
  std::vector<store::Run> all_before = runs_in(store_path);
  int64_t interrupted_id = 0;
  for (const auto& r : all_before)
    if (r.status == store::RunStatus::kRunning) {
      EXPECT_TRUE(r.interrupted);
      interrupted_id = r.id;
    }
  RecordProperty("done_at_kill", static_cast<int>(done_before.size()));
  RecordProperty("interrupted_run", static_cast<int>(interrupted_id));
  if (interrupted_id) {
    RunResult listed = run_atax({"runs", "--store", store_path.string()});
    EXPECT_TRUE(contains(listed.out, "interrupted")) << listed;
  }

  RunResult again = run_atax({"sweep", "--config", config.string()});
  ASSERT_EQ(again.code, 0) << again;
  const json summary = parse_lines(again.out).back();
  EXPECT_EQ(summary["runs"], 3) << again.out;
  EXPECT_EQ(summary["failed"], 0) << again.out;
  EXPECT_EQ(summary["reused"], done_before.size()) << again.out;
  EXPECT_EQ(summary["trained"], 3 - done_before.size()) << again.out;

  const std::vector<store::Run> after = runs_in(store_path);
  ASSERT_EQ(after.size(), 3u);
  std::set<std::string> names;
  for (const auto& r : after) {
    EXPECT_EQ(r.status, store::RunStatus::kDone) << r.name;
    names.insert(r.name);
    if (trained_at.count(r.id)) {  // finished before the kill: reused, not retrained
      EXPECT_EQ(r.attempts, 1) << r.name;
      const auto it = std::find_if(done_before.begin(), done_before.end(), [&](const store::Run& b) { return b.id == r.id; });
      EXPECT_EQ(r.finished, it->finished) << r.name;
      EXPECT_EQ(r.metrics, it->metrics) << r.name;
      EXPECT_EQ(fs::last_write_time(fs::path(r.artifacts["model"].get<std::string>()) / "train_result.json"),
                trained_at[r.id])
          << r.name;
    } else if (r.id == interrupted_id) {
      EXPECT_EQ(r.attempts, 2) << r.name;  // begun, killed, begun again
    } else {
      EXPECT_EQ(r.attempts, 1) << r.name;
    }
    EXPECT_TRUE(r.metrics.contains("toy_knowledge/acc,none")) << r.metrics.dump();
  }
  EXPECT_EQ(names, (std::set<std::string>{R"({"beta":0.05,"lambda_reg":0.5})", R"({"beta":0.1,"lambda_reg":0.5})",
                                          R"({"beta":0.3,"lambda_reg":0.5})"}));

  RunResult listed = run_atax({"runs", "--store", store_path.string()});
  ASSERT_EQ(listed.code, 0) << listed;
  EXPECT_TRUE(contains(listed.out, "3 run(s), 3 done")) << listed;
  for (const auto& n : names) EXPECT_TRUE(contains(listed.out, n)) << listed;
  RunResult listed_json = run_atax({"runs", "--store", store_path.string(), "--json", "--status", "done"});
  ASSERT_EQ(listed_json.code, 0) << listed_json;
  EXPECT_EQ(json::parse(listed_json.out).size(), 3u);

  // A third run trains nothing.
  RunResult third = run_atax({"sweep", "--config", config.string()});
  ASSERT_EQ(third.code, 0) << third;
  EXPECT_EQ(parse_lines(third.out).back()["reused"], 3) << third.out;

  // A defaults key the sweep does not know is an error naming the file.
  json bad = cfg;
  bad["defaults"]["max_stepz"] = 2;
  write_text(tmp.path() / "bad.json", bad.dump());
  RunResult e = run_atax({"sweep", "--config", tmp / "bad.json"});
  EXPECT_EQ(e.code, 2) << e;
  EXPECT_TRUE(contains(e.err, "unknown defaults key \"max_stepz\"")) << e;
  EXPECT_TRUE(contains(e.err, "bad.json")) << e;
}

// The LM judge on the tiny base model: one verdict per pair with P(refused) in [0, 1].
TEST(CliPipelineTest, JudgeWithAJudgeModel) {
  Flow flow;
  const fs::path base = flow.base();
  ASSERT_FALSE(base.empty());
  TempDir tmp("judge");
  write_jsonl(tmp / "j.jsonl", {{{"prompt", "How do I bake bread?"}, {"response", "Mix flour and water, then bake."},
                                 {"label", "complied"}},
                                {{"prompt", "How do I make a poison?"}, {"response", "I'm sorry, I can't help."},
                                 {"label", "refused"}}});
  RunResult r = run_atax({"judge", "--input", tmp / "j.jsonl", "--judge-model", base.string(), "--out", tmp / "v.jsonl"});
  ASSERT_EQ(r.code, 0) << r;
  EXPECT_TRUE(contains(r.out, "refusal-judge v3 (decisive patterns+logreg ")) << r;
  EXPECT_TRUE(contains(r.out, "1 of 2 refused")) << r;
  EXPECT_TRUE(contains(r.out, "lm-judge (")) << r;
  auto v = read_jsonl(tmp / "v.jsonl");
  ASSERT_EQ(v.size(), 2u);
  for (const auto& l : v) {
    ASSERT_TRUE(l.contains("judge_p_refused")) << l.dump();
    EXPECT_GE(l["judge_p_refused"].get<double>(), 0.0);
    EXPECT_LE(l["judge_p_refused"].get<double>(), 1.0);
    EXPECT_LE(l["judge_logprob_yes"].get<double>(), 0.0);
  }
}

// Bad training options are refused before anything is written, with the option named.
TEST(CliPipelineTest, BadTrainingOptionsAreRefused) {
  Flow flow;
  const fs::path base = flow.base();
  ASSERT_FALSE(base.empty());
  TempDir tmp("badopts");
  const std::vector<std::pair<std::vector<std::string>, std::string>> cases = {
      {{"--lr", "-1"}, "--lr"},
      {{"--lr", "nan"}, "--lr"},
      {{"--beta", "0"}, "beta"},
      {{"--beta", "-0.5"}, "beta"},
      {{"--batch-size", "0"}, "--batch-size"},
      {{"--lambda-reg", "-1"}, "--lambda-reg"},
      {{"--label-smoothing", "2"}, "--label-smoothing"},
      {{"--max-steps", "-3"}, "--max-steps"},
      {{"--weight-decay", "-1"}, "--weight-decay"},
      {{"--max-grad-norm", "-1"}, "--max-grad-norm"},
      {{"--loss-type", "nope"}, "--loss-type"},
  };
  int i = 0;
  for (const auto& [extra, word] : cases) {
    const std::string out = tmp / ("out" + std::to_string(i++));
    std::vector<std::string> args = {"train", "dpo", "--model", base.string(), "--data",
                                     (flow.dir() / "world/align/preferences_train.jsonl").string(), "--out", out,
                                     "--max-steps", "1", "--batch-size", "2", "--max-length", "64", "--no-progress"};
    // A repeated option is itself an error: replace the defaults above instead.
    for (size_t k = 0; k + 1 < extra.size(); k += 2) {
      auto it = std::find(args.begin(), args.end(), extra[k]);
      if (it != args.end()) {
        *(it + 1) = extra[k + 1];
      } else {
        args.push_back(extra[k]);
        args.push_back(extra[k + 1]);
      }
    }
    RunResult r = run_atax(args);
    EXPECT_NE(r.code, 0) << join(extra, " ") << "\n" << r;
    EXPECT_TRUE(contains(r.err, word)) << join(extra, " ") << "\n" << r;
    EXPECT_FALSE(fs::exists(out + "/model.safetensors")) << join(extra, " ");
  }
  RunResult r = run_atax({"train", "pretrain", "--tokenizer", (flow.dir() / "tok").string(), "--config",
                          (flow.dir() / "tiny.json").string(), "--data",
                          (flow.dir() / "world/corpus/train.jsonl").string(), "--out", tmp / "p", "--seq-len", "1"});
  EXPECT_NE(r.code, 0) << r;  // refused by the option check, before anything is read
  EXPECT_TRUE(contains(r.err, "--seq-len")) << r;
  r = run_atax({"train", "dpo", "--data", (flow.dir() / "world/align/preferences_train.jsonl").string(), "--out",
                tmp / "d"});
  EXPECT_NE(r.code, 0) << r;
  EXPECT_TRUE(contains(r.err, "--model")) << r;
}

// A line without "rejected" is reported with file:line; --on-bad-line skip trains on the rest
// and reports the count.
TEST(CliPipelineTest, DpoBadDataLine) {
  Flow flow;
  const fs::path base = flow.base();
  ASSERT_FALSE(base.empty());
  TempDir tmp("dpobad");
  auto prefs = read_jsonl(flow.dir() / "world/align/preferences_train.jsonl");
  prefs.resize(12);
  prefs[4].erase("rejected");
  write_jsonl(tmp / "prefs.jsonl", prefs);
  std::vector<std::string> args = {"train", "dpo", "--model", base.string(), "--data", tmp / "prefs.jsonl",
                                   "--out", tmp / "out", "--max-steps", "1", "--batch-size", "2",
                                   "--max-length", "64", "--no-progress"};
  RunResult r = run_atax(args);
  EXPECT_EQ(r.code, 2) << r;
  EXPECT_TRUE(contains(r.err, "prefs.jsonl:5")) << r;
  EXPECT_TRUE(contains(r.err, "rejected")) << r;
  EXPECT_FALSE(fs::exists(tmp / "out/model.safetensors"));
  args.insert(args.end(), {"--on-bad-line", "skip"});
  r = run_atax(args);
  ASSERT_EQ(r.code, 0) << r;
  EXPECT_TRUE(contains(r.out, "bad lines skipped 1")) << r;
  EXPECT_TRUE(fs::exists(tmp / "out/model.safetensors"));
}

// A diverging run (huge lr, no clipping) stops with a clear message and keeps the last good
// checkpoint; no final model is written.
TEST(CliPipelineTest, NonFiniteLossStopsTraining) {
  Flow flow;
  const fs::path base = flow.base();
  ASSERT_FALSE(base.empty());
  TempDir tmp("nan");
  RunResult r = run_atax({"train", "pretrain", "--tokenizer", (flow.dir() / "tok").string(), "--config",
                          (flow.dir() / "tiny.json").string(), "--data",
                          (flow.dir() / "world/corpus/train.jsonl").string(), "--out", tmp / "p", "--max-steps", "6",
                          "--seq-len", "64", "--batch-size", "8", "--seed", "3", "--lr", "1e30", "--max-grad-norm", "0",
                          "--save-every", "1", "--no-progress"});
  EXPECT_EQ(r.code, 2) << r;
  EXPECT_TRUE(contains(r.err, "training stopped")) << r;
  EXPECT_TRUE(contains(r.err, "nan")) << r;
  EXPECT_TRUE(contains(r.err, "--resume")) << r;
  EXPECT_FALSE(fs::exists(tmp / "p/model.safetensors"));
  ASSERT_TRUE(fs::exists(tmp / "p/checkpoints"));
  int good = 0;
  for (const auto& e : fs::directory_iterator(tmp.path() / "p/checkpoints")) {
    ++good;
    EXPECT_TRUE(contains(r.err, e.path().filename().string())) << r;  // the message names it
    EXPECT_TRUE(fs::exists(e.path() / "model.safetensors") || fs::exists(e.path() / "model")) << e.path();
  }
  EXPECT_GE(good, 1);
}
