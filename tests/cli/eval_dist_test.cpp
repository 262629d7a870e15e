// ctest-labels: dist model
// Sharded evaluation: `atax launch --nproc 2 -- eval ...` (each rank evaluates its shard of every
// task, rank 0 merges) writes the same metrics, per-item scores and samples as `atax eval ...`, on
// the real stories260K model and the real benchmark files in ../shared.
#include <cmath>
#include <set>
#include <sstream>

#include "cli_run.h"
#include "eval/eval.h"

using namespace atax;
using namespace atax::cli_test;

namespace {

// Metrics computed from log-probabilities rather than counted (compared with a tolerance).
bool logprob_derived(const std::string& metric) { return metric == "mc2"; }

// The Markdown table lines of `text`, with launch's "[rank 0] " prefix removed.
std::vector<std::string> table_lines(const std::string& text, const std::string& prefix = "") {
  std::vector<std::string> out;
  std::istringstream in(text);
  std::string line;
  while (std::getline(in, line)) {
    if (!prefix.empty()) {
      if (line.rfind(prefix, 0) != 0) continue;
      line = line.substr(prefix.size());
    }
    if (!line.empty() && line[0] == '|') out.push_back(line);
  }
  return out;
}

}  // namespace

TEST(EvalDistTest, TwoRanksWriteTheSingleProcessResults) {
  TempDir tmp("eval_dist");
  // Few-shot prompts (MMLU from the dev split, GSM8K drawn at random from the test split without
  // the item), a breakdown, a log-prob-derived metric (TruthfulQA mc2) and greedy generation.
  // --batch-size 1: a request's log-prob then does not depend on which requests share its padded
  // batch, which differs between a rank's shard and the whole list (see docs/distributed.md).
  const std::vector<std::string> common = {
      "eval", "--model", kShared + "/models/stories260K/hf", "--tasks", "mmlu,truthfulqa_mc,gsm8k", "--limit", "3",
      "--num-fewshot", "2", "--batch-size", "1", "--data-dir", kShared + "/benchmarks", "--tasks-dir", kTasksDir,
      "--device", "cpu", "--log-samples"};
  std::vector<std::string> one = common, two = {"launch", "--nproc", "2", "--"};
  one.insert(one.end(), {"--cache", tmp / "one.sqlite", "--out", tmp / "one.json"});
  two.insert(two.end(), common.begin(), common.end());
  two.insert(two.end(), {"--cache", tmp / "two.sqlite", "--out", tmp / "two.json"});

  RunResult r1 = run_atax(one);
  ASSERT_EQ(r1.code, 0) << r1;
  RunResult r2 = run_atax(two, {"ATAX_DIST_TIMEOUT=120"});
  ASSERT_EQ(r2.code, 0) << r2;
  EXPECT_TRUE(contains(r2.out, "2 ranks")) << r2;
  // Rank 0 alone prints the table, and it is the single-process table.
  EXPECT_FALSE(contains(r2.out, "[rank 1] |")) << r2;
  EXPECT_EQ(table_lines(r2.out, "[rank 0] "), table_lines(r1.out));
  EXPECT_GT(table_lines(r1.out).size(), 10u);
  // One request cache per rank.
  EXPECT_TRUE(fs::exists(tmp / "two.sqlite"));
  EXPECT_TRUE(fs::exists(tmp / "two.rank1.sqlite"));

  const EvalResults a = read_results(tmp / "one.json", true);
  const EvalResults b = read_results(tmp / "two.json", true);
  EXPECT_EQ(b.settings.value("shards", 0), 2);
  EXPECT_EQ(b.model_hash, a.model_hash);
  ASSERT_EQ(b.tasks.size(), a.tasks.size());
  std::set<std::string> seen;
  for (const TaskResult& ta : a.tasks) {
    const TaskResult* tb = b.find(ta.task);
    ASSERT_NE(tb, nullptr) << ta.task;
    EXPECT_EQ(tb->n_effective, ta.n_effective) << ta.task;
    ASSERT_EQ(tb->metrics.size(), ta.metrics.size()) << ta.task;
    for (const MetricResult& ma : ta.metrics) {
      const MetricResult* mb = tb->find(ma.name, ma.filter);
      ASSERT_NE(mb, nullptr) << ta.task << " " << ma.key();
      seen.insert(ma.name);
      EXPECT_EQ(mb->doc_ids, ma.doc_ids) << ta.task << " " << ma.key();
      ASSERT_EQ(mb->scores.size(), ma.scores.size());
      if (logprob_derived(ma.name)) {
        EXPECT_NEAR(mb->value, ma.value, 1e-6) << ta.task << " " << ma.key();
        EXPECT_NEAR(mb->stderr_, ma.stderr_, 1e-6) << ta.task << " " << ma.key();
        for (size_t i = 0; i < ma.scores.size(); ++i) EXPECT_NEAR(mb->scores[i], ma.scores[i], 1e-6) << ma.doc_ids[i];
      } else {  // accuracies and exact matches: counts of 0/1 items
        EXPECT_EQ(mb->value, ma.value) << ta.task << " " << ma.key();
        EXPECT_EQ(mb->stderr_, ma.stderr_) << ta.task << " " << ma.key();
        EXPECT_EQ(mb->scores, ma.scores) << ta.task << " " << ma.key();
      }
    }
    // Samples: the same items in the same order with the same prompts (few-shot exemplars are
    // chosen per document, not per shard position) and the same answers.
    ASSERT_EQ(tb->samples.size(), ta.samples.size()) << ta.task;
    for (size_t i = 0; i < ta.samples.size(); ++i) {
      const json &sa = ta.samples[i], &sb = tb->samples[i];
      EXPECT_EQ(sb["doc_id"], sa["doc_id"]) << ta.task;
      EXPECT_EQ(sb["prompt"], sa["prompt"]) << ta.task << " " << sa["doc_id"];
      EXPECT_EQ(sb["filtered_resps"], sa["filtered_resps"]) << ta.task << " " << sa["doc_id"];
      if (ta.task == "gsm8k") EXPECT_EQ(sb["resps"], sa["resps"]) << sa["doc_id"];
      if (ta.task == "mmlu")
        for (size_t c = 0; c < 4; ++c)
          EXPECT_NEAR(sb["resps"]["default"][c][0].get<double>(), sa["resps"]["default"][c][0].get<double>(), 1e-6)
              << sa["doc_id"] << " choice " << c;
    }
  }
  for (const char* m : {"acc", "acc_norm", "mc1", "mc2", "exact_match"}) EXPECT_TRUE(seen.count(m)) << m;
  EXPECT_EQ(a.find("mmlu")->samples.size(), 15u);  // 3 per subject, 5 subjects
  EXPECT_EQ(a.find("gsm8k")->samples.size(), 3u);
}
