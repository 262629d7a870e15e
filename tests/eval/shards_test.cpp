// ctest-labels: unit
// merge_shards(): hand-made shard results merge into the values and standard errors of the
// unsharded item list, and evaluate() over k shards (real benchmark files, a deterministic mock
// model) merges into exactly the single-process results, samples and few-shot prompts included.
#include <cmath>

#include <gtest/gtest.h>

#include "eval/eval.h"
#include "mock_model.h"

using namespace atax;
using atax::testing::MockModel;

static const fs::path kTasks = fs::path(ATAX_SOURCE_DIR) / "tasks";
static const fs::path kBench = fs::path(ATAX_SHARED_DIR) / "benchmarks";

static MetricResult metric(const std::string& name, std::vector<std::string> ids, std::vector<double> scores,
                           std::vector<int64_t> undefined_at = {}, const std::string& method = "mean") {
  MetricResult m;
  m.name = name;
  m.doc_ids = std::move(ids);
  m.scores = std::move(scores);
  m.undefined_at = std::move(undefined_at);
  m.stderr_method = method;
  m.value = mean_stderr(m.scores).mean;  // what a shard reports; merge must not average these
  return m;
}

static TaskResult task(const std::string& name, int64_t n, std::vector<MetricResult> metrics, json notes = json::array()) {
  TaskResult t;
  t.task = name;
  t.parent = name.find('/') == std::string::npos ? "" : name.substr(0, name.find('/'));
  t.version = 2;
  t.group = "capability";
  t.n_original = 10;
  t.n_effective = n;
  t.metrics = std::move(metrics);
  t.config = t.parent.empty() ? json{{"group", "capability"}, {"resolved", {{"notes", notes}}}}
                              : json{{"parent", t.parent}, {"notes", notes}};
  return t;
}

static EvalResults part(int index, int count, std::vector<TaskResult> tasks, int64_t sent, double wall_s) {
  EvalResults r;
  r.model_name = "m";
  r.model_hash = "hash-1";
  r.date = "2026-01-01T00:00:00Z";
  r.settings = {{"seed", 7},
                {"bootstrap_iters", 200},
                {"limit", 0},
                {"shard", {{"index", index}, {"count", count}}},
                {"requests", {{"loglikelihood", sent}, {"sent", sent}, {"cached", 0}}}};
  r.tasks = std::move(tasks);
  r.requests_sent = sent;
  r.wall_s = wall_s;
  return r;
}

static double nanmean(const std::vector<double>& x) {
  double s = 0;
  int n = 0;
  for (double v : x)
    if (!std::isnan(v)) s += v, ++n;
  return n ? s / n : std::nan("");
}

TEST(ShardsTest, MergeOfHandMadePartsEqualsTheWholeList) {
  const double nan = std::nan("");
  const std::string none_note = "never,none: no items, not reported";
  // Whole list: acc 1 0 1 1 0 over d0..d4; a bootstrap bias score with draws 1 NaN -1 1 NaN 0.
  // Shard 0 holds d0..d2, shard 1 d3..d4; "rare" has items only in shard 1; group g1 is only in
  // shard 0, g2 only in shard 1.
  EvalResults p0 = part(0, 2,
                        {task("t", 3,
                              {metric("acc", {"d0", "d1", "d2"}, {1, 0, 1}),
                               metric("bias", {"d0", "d2"}, {1, -1}, {1}, "bootstrap")},
                              {"rare,none: no items, not reported", none_note}),
                         task("t/g1", 3, {metric("acc", {"d0", "d1", "d2"}, {1, 0, 1})}),
                         task("u", 1, {metric("acc", {"e0"}, {0})})},
                        20, 1.5);
  EvalResults p1 = part(1, 2,
                        {task("t", 2,
                              {metric("acc", {"d3", "d4"}, {1, 0}), metric("rare", {"d4"}, {0.5}),
                               metric("bias", {"d3", "d5"}, {1, 0}, {1}, "bootstrap")},
                              {none_note}),
                         task("t/g2", 2, {metric("acc", {"d3", "d4"}, {1, 0})}),
                         task("u", 0, {}, {"acc,none: no items, not reported"})},
                        12, 2.5);
  EvalResults m = merge_shards({p0, p1});

  std::vector<std::string> names;
  for (const auto& t : m.tasks) names.push_back(t.task);
  EXPECT_EQ(names, (std::vector<std::string>{"t", "t/g1", "t/g2", "u"}));  // single-process order
  const TaskResult* t = m.find("t");
  ASSERT_NE(t, nullptr);
  EXPECT_EQ(t->n_effective, 5);
  EXPECT_EQ(t->n_original, 10);
  ASSERT_EQ(t->metrics.size(), 3u);
  EXPECT_EQ(t->metrics[0].name, "acc");
  EXPECT_EQ(t->metrics[1].name, "rare");
  EXPECT_EQ(t->metrics[2].name, "bias");

  const MetricResult* acc = t->find("acc");
  EXPECT_EQ(acc->doc_ids, (std::vector<std::string>{"d0", "d1", "d2", "d3", "d4"}));
  EXPECT_EQ(acc->scores, (std::vector<double>{1, 0, 1, 1, 0}));
  EXPECT_NEAR(acc->value, 0.6, 1e-15);
  EXPECT_NEAR(acc->stderr_, std::sqrt(0.3 / 5), 1e-15);  // sample variance 0.3 of the five items

  const MetricResult* bias = t->find("bias");
  EXPECT_EQ(bias->scores, (std::vector<double>{1, -1, 1, 0}));
  EXPECT_EQ(bias->undefined_at, (std::vector<int64_t>{1, 4}));
  EXPECT_NEAR(bias->value, 0.25, 1e-15);
  const double want_se = bootstrap_stderr({1, nan, -1, 1, nan, 0}, nanmean, 200, Rng(7).fork("t|bias,none").next_u64());
  EXPECT_GT(want_se, 0.1);
  EXPECT_NEAR(bias->stderr_, want_se, 1e-15);
  EXPECT_EQ(bias->stderr_method, "bootstrap");

  EXPECT_NEAR(t->find("rare")->value, 0.5, 1e-15);
  EXPECT_EQ(t->find("rare")->stderr_, 0.0);  // one item
  // Only the note that holds for the whole run stays.
  EXPECT_EQ(t->config["resolved"]["notes"], json::array({none_note}));
  EXPECT_EQ(m.find("u")->n_effective, 1);
  EXPECT_EQ(m.find("u")->config["resolved"]["notes"], json::array());
  EXPECT_NEAR(m.find("t/g2")->find("acc")->value, 0.5, 1e-15);
  EXPECT_EQ(m.find("t/g2")->parent, "t");

  EXPECT_EQ(m.requests_sent, 32);
  EXPECT_EQ(m.settings["requests"]["sent"], 32);
  EXPECT_EQ(m.settings["shards"], 2);
  EXPECT_FALSE(m.settings.contains("shard"));
  EXPECT_EQ(m.wall_s, 2.5);
  EXPECT_EQ(m.model_hash, "hash-1");

  // The bootstrap positions survive the results file.
  EvalResults back = results_from_json(results_to_json(m), "merged.json");
  EXPECT_EQ(back.find("t")->find("bias")->undefined_at, (std::vector<int64_t>{1, 4}));
}

TEST(ShardsTest, PartsOfDifferentRunsAreRefused) {
  EvalResults a = part(0, 2, {task("t", 1, {metric("acc", {"d0"}, {1})})}, 1, 1);
  EvalResults b = part(1, 2, {task("t", 1, {metric("acc", {"d1"}, {0})})}, 1, 1);
  EXPECT_THROW(merge_shards({}), Error);
  EXPECT_THROW(merge_shards({b, a}), Error);  // out of shard order
  EXPECT_THROW(merge_shards({a}), Error);     // shard 0 of 2 alone
  EvalResults other_model = b;
  other_model.model_hash = "hash-2";
  EXPECT_THROW(merge_shards({a, other_model}), Error);
  EvalResults other_limit = b;
  other_limit.settings["limit"] = 5;
  try {
    merge_shards({a, other_limit});
    ADD_FAILURE() << "no error";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("other settings"), std::string::npos) << e.what();
  }
  EvalResults no_items = b;
  no_items.tasks[0].metrics[0].scores.clear();
  no_items.tasks[0].metrics[0].doc_ids.clear();
  EXPECT_THROW(merge_shards({a, no_items}), Error);  // a results file without item scores
}

static TaskSpec builtin(const std::string& name, const std::string& path, const json& patch = json::object()) {
  json j = read_json(select_tasks({name}, kTasks)[0].file);
  j["dataset"]["path"] = path;
  j.merge_patch(patch);
  return parse_task_spec(j, name + ".json");
}

// Everything of a results document that does not describe the run itself (time, shards, cache).
static json comparable(const EvalResults& r) {
  json j = results_to_json(r);
  for (const char* k : {"date", "total_evaluation_time_seconds", "settings", "requests"}) j.erase(k);
  return j;
}

TEST(ShardsTest, ShardedEvaluationMergesToTheSingleProcessResults) {
  // Few-shot exemplars drawn at random from the full list (gsm8k falls back to its test split),
  // sampled generations with per-document seeds, breakdowns, bootstrap BBQ bias scores.
  std::vector<TaskSpec> specs = {
      builtin("mmlu", (kBench / "mmlu").string(), {{"fewshot", {{"sampler", "random"}}}}),
      builtin("mmlu_cf", (kBench / "mmlu").string()),  // with mmlu: the OLMES entry, recomputed after merging
      builtin("bbq", (kBench / "bbq").string()),
      builtin("gsm8k", (kBench / "gsm8k").string(), {{"generation", {{"temperature", 0.7}}}}),
  };
  MockModel model;
  // The answer depends on the prompt (hence on the few-shot exemplars) and on the seed.
  model.gen_fn = [](const GenerateRequest& r) {
    return "#### " + std::to_string((std::hash<std::string>{}(r.context) ^ r.seed) % 3);
  };
  EvalOptions o;
  o.progress = false;
  o.limit = 8;  // per MMLU subject / BBQ category: 40 + 24 docs; gsm8k: 8 docs
  o.num_fewshot = 2;
  o.log_samples = true;
  o.bootstrap_iters = 300;
  const EvalResults whole = evaluate(model, specs, o);
  const json want = comparable(whole);
  ASSERT_NE(whole.find("mmlu_olmes"), nullptr);
  // The disambiguated bias score has items with a value and items without one (bootstrap draws).
  ASSERT_NE(whole.find("bbq")->find("bias_score_disambig"), nullptr);
  EXPECT_GT(whole.find("bbq")->find("bias_score_disambig")->scores.size(), 0u);
  EXPECT_GT(whole.find("bbq")->find("bias_score_disambig")->undefined_at.size(), 0u);

  for (int k : {1, 2, 3, 11}) {  // 11 shards: gsm8k's 8 docs leave shards 8..10 empty
    SCOPED_TRACE("shards: " + std::to_string(k));
    std::vector<EvalResults> parts;
    for (int i = 0; i < k; ++i) {
      EvalOptions oi = o;
      oi.shard_index = i;
      oi.shard_count = k;
      parts.push_back(evaluate(model, specs, oi));
    }
    EXPECT_EQ(parts[0].find("gsm8k")->n_effective, (8 + k - 1) / k);
    EXPECT_EQ(parts.back().find("gsm8k")->n_effective, k == 11 ? 0 : 8 / k);
    const EvalResults merged = merge_shards(parts);
    EXPECT_EQ(comparable(merged), want);  // values, stderrs, item scores, configs, exactly
    ASSERT_EQ(merged.tasks.size(), whole.tasks.size());
    for (size_t i = 0; i < whole.tasks.size(); ++i) {
      const TaskResult& a = merged.tasks[i];
      const TaskResult& b = whole.tasks[i];
      EXPECT_EQ(a.task, b.task);  // the in-memory order too (the printed table)
      ASSERT_EQ(a.metrics.size(), b.metrics.size()) << a.task;
      for (size_t j = 0; j < b.metrics.size(); ++j) {
        EXPECT_EQ(a.metrics[j].key(), b.metrics[j].key()) << a.task;
        EXPECT_EQ(a.metrics[j].value, b.metrics[j].value) << a.task << " " << b.metrics[j].key();
        EXPECT_EQ(a.metrics[j].stderr_, b.metrics[j].stderr_) << a.task << " " << b.metrics[j].key();
      }
      // Prompts (few-shot exemplars), generations and per-item scores of every sample.
      EXPECT_EQ(a.samples, b.samples) << a.task;
    }
    EXPECT_EQ(results_markdown(merged), results_markdown(whole));
  }
}

TEST(ShardsTest, ABadShardIsAnError) {
  MockModel model;
  EvalOptions o;
  o.progress = false;
  o.shard_index = 2;
  o.shard_count = 2;
  EXPECT_THROW(evaluate(model, {builtin("gsm8k", (kBench / "gsm8k").string())}, o), Error);
}
