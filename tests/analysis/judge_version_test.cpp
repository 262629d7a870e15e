// ctest-labels: unit
// Results say which refusal judge scored them: `atax eval` records settings.refusal_judge
// (refusal_judge_version(), or "custom" for an injected classifier), and the results file names it
// beside every refusal-scored metric (metric_info) and under its Markdown table.
#include <string>
#include <vector>

#include <gtest/gtest.h>

#include "eval/eval.h"
#include "analysis/analysis.h"
#include "refusal/refusal.h"

namespace {

using atax::EvalResults;
using atax::json;
using atax::MetricResult;
using atax::TaskResult;

MetricResult metric(const std::string& name, std::vector<double> scores) {
  MetricResult m;
  m.name = name;
  m.metric = name;
  m.rate = name == "refusal_rate";
  m.scores = std::move(scores);
  double sum = 0;
  for (size_t i = 0; i < m.scores.size(); ++i) {
    m.doc_ids.push_back("doc" + std::to_string(i));
    sum += m.scores[i];
  }
  m.value = sum / static_cast<double>(m.scores.size());
  return m;
}

// A safety task scored by the refusal judge and a capability task that is not.
EvalResults results_with(json settings) {
  EvalResults r;
  r.model_name = "m";
  r.settings = std::move(settings);
  auto task = [](const std::string& name, const std::string& group, const std::string& primary,
                 std::vector<double> scores) {
    TaskResult t;
    t.task = name;
    t.group = group;
    t.primary_metric = primary;
    t.config = {{"group", group}, {"primary_metric", primary}};
    t.n_effective = static_cast<int64_t>(scores.size());
    t.metrics = {metric(primary, std::move(scores))};
    return t;
  };
  const TaskResult safety = task("toy_harmbench", "safety", "refusal_rate", {1, 0, 1});
  const TaskResult capability = task("toy_knowledge", "capability", "acc", {1, 0});
  r.tasks = {safety, capability};
  return r;
}

}  // namespace

TEST(JudgeVersionTest, ResultsNameTheJudgeBesideRefusalScoredMetrics) {
  const std::string judge = atax::refusal_judge_version();
  const EvalResults r = results_with({{"refusal_judge", judge}});
  const json doc = atax::results_to_json(r);
  EXPECT_EQ(doc["metric_info"]["toy_harmbench"]["refusal_rate,none"].value("judge", ""), judge);
  EXPECT_FALSE(doc["metric_info"]["toy_knowledge"]["acc,none"].contains("judge"));  // not read through the judge
  // The file format keeps it: read back and written again, the judge is still named.
  const json again = atax::results_to_json(atax::results_from_json(doc, "results.json"));
  EXPECT_EQ(again["metric_info"]["toy_harmbench"]["refusal_rate,none"].value("judge", ""), judge);
  EXPECT_NE(atax::results_markdown(r).find("judged by " + judge + "."), std::string::npos) << atax::results_markdown(r);
}

TEST(JudgeVersionTest, NoJudgeIsNamedWhereNoneScoredOrNoneIsRecorded) {
  EvalResults capability_only = results_with({{"refusal_judge", atax::refusal_judge_version()}});
  capability_only.tasks.erase(capability_only.tasks.begin());
  EXPECT_EQ(atax::results_markdown(capability_only).find("judged by"), std::string::npos);
  const EvalResults unrecorded = results_with(json::object());  // an older results file
  EXPECT_FALSE(atax::results_to_json(unrecorded)["metric_info"]["toy_harmbench"]["refusal_rate,none"].contains("judge"));
  EXPECT_EQ(atax::results_markdown(unrecorded).find("judged by"), std::string::npos);
}

// The version names the judge and the digest of the weights it shipped with.
TEST(JudgeVersionTest, TheVersionNamesTheJudgeAndItsWeights) {
  const std::string v = atax::refusal_judge_version();
  EXPECT_EQ(v.rfind("refusal-judge v3 (decisive patterns+logreg ", 0), 0u) << v;
  EXPECT_NE(v.find(atax::refusal_model_digest(atax::shipped_refusal_model())), std::string::npos) << v;
}

// The tax names the judge of each side beside its safety rows, and says so when they differ.
TEST(JudgeVersionTest, TheTaxNamesTheJudgeOfEachSide) {
  namespace an = atax::analysis;
  const std::string v = atax::refusal_judge_version();
  const auto base = an::results_from_eval(results_with({{"refusal_judge", v}}), "base.json");
  auto aligned_results = results_with({{"refusal_judge", v}});
  aligned_results.tasks[0].metrics = {metric("refusal_rate", {1, 1, 1})};
  const auto aligned = an::results_from_eval(aligned_results, "aligned.json");
  an::TaxTable same = an::compute_tax(base, aligned);
  EXPECT_NE(an::tax_markdown(same).find("Refusal rates judged by " + v), std::string::npos) << an::tax_markdown(same);
  EXPECT_EQ(an::tax_json(same)["refusal_judge"]["aligned"], v);
  const auto other = an::results_from_eval(results_with({{"refusal_judge", "custom"}}), "other.json");
  an::TaxTable differ = an::compute_tax(base, other);
  EXPECT_NE(an::tax_markdown(differ).find("(**differs**)"), std::string::npos);
  bool noted = false;
  for (const auto& n : differ.notes) noted = noted || n.find("judged differently") != std::string::npos;
  EXPECT_TRUE(noted);
}
