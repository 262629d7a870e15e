// ctest-labels: unit
// OLMES scores (add_olmes_groups): a benchmark evaluated in both formulations gets one entry, the
// better formulation's primary metric with its items, stderr and chance; ties go to CF; different
// item sets give none; its members are counted through it; recomputing is idempotent. End to end:
// mmlu (MCF) + mmlu_cf (CF) on the shared MMLU files give mmlu_olmes = max of the two.
#include <gtest/gtest.h>

#include "eval/eval.h"
#include "mock_model.h"

using namespace atax;
using atax::testing::MockModel;

namespace {

const fs::path kTasks = fs::path(ATAX_SOURCE_DIR) / "tasks";
const fs::path kBench = fs::path(ATAX_SHARED_DIR) / "benchmarks";

TaskResult member(const std::string& name, const std::string& form, const std::string& category,
                  const std::string& metric, std::vector<double> scores, std::vector<std::string> ids = {"a", "b", "c", "d"}) {
  TaskResult t;
  t.task = name;
  t.version = 1;
  t.group = category;
  t.primary_metric = metric;
  t.n_original = t.n_effective = static_cast<int64_t>(ids.size());
  MetricResult m;
  m.name = m.metric = metric;
  m.doc_ids = std::move(ids);
  m.scores = std::move(scores);
  const MeanStderr ms = mean_stderr(m.scores);
  m.value = ms.mean;
  m.stderr_ = ms.stderr_;
  m.chance = 0.25;
  t.metrics = {m};
  t.config = {{"group", category}, {"category", category}, {"olmes", {{"group", "bench_olmes"}, {"formulation", form}}}};
  return t;
}

EvalResults pair(std::vector<double> mcf, std::vector<double> cf) {
  EvalResults r;
  r.tasks = {member("bench", "mcf", "diagnostic", "acc", std::move(mcf)),
             member("bench_cf", "cf", "capability", "acc_norm", std::move(cf)),
             member("other", "", "capability", "acc", {1, 0, 0, 0})};
  r.tasks[2].config.erase("olmes");
  return r;
}

}  // namespace

TEST(OlmesTest, TheBetterFormulationIsTheScore) {
  EvalResults r = pair({1, 0, 0, 0}, {1, 1, 0, 1});
  add_olmes_groups(r);
  ASSERT_EQ(r.tasks.size(), 4u);
  EXPECT_EQ(r.tasks[2].task, "bench_olmes");  // right after the later member
  const TaskResult* g = r.find("bench_olmes");
  ASSERT_NE(g, nullptr);
  EXPECT_EQ(g->primary_metric, "olmes");
  EXPECT_EQ(g->group, "capability");
  const MetricResult* o = g->primary();
  ASSERT_NE(o, nullptr);
  EXPECT_DOUBLE_EQ(o->value, 0.75);
  EXPECT_EQ(o->scores, (std::vector<double>{1, 1, 0, 1}));  // the CF items, for paired tests
  EXPECT_DOUBLE_EQ(o->stderr_, r.find("bench_cf")->primary()->stderr_);
  EXPECT_EQ(o->chance, 0.25);
  EXPECT_EQ(o->metric, "acc_norm");
  EXPECT_EQ(g->config["olmes"]["chosen"], "cf");
  EXPECT_DOUBLE_EQ(g->find("mcf_acc")->value, 0.25);
  EXPECT_DOUBLE_EQ(g->find("cf_acc_norm")->value, 0.75);
  // Members are counted through the group, their declared category kept.
  for (const char* t : {"bench", "bench_cf"}) {
    EXPECT_EQ(r.find(t)->group, "diagnostic") << t;
    EXPECT_EQ(r.find(t)->config["olmes"]["counted_through"], "bench_olmes") << t;
  }
  EXPECT_EQ(r.find("bench_cf")->config["olmes"]["declared_category"], "capability");
  EXPECT_EQ(r.find("other")->group, "capability");
  // Recomputing gives the same entry once.
  const json before = results_to_json(r);
  add_olmes_groups(r);
  EXPECT_EQ(results_to_json(r), before);
  EXPECT_EQ(r.tasks.size(), 4u);
}

TEST(OlmesTest, MultipleChoiceWinsWhenBetterAndTiesGoToCloze) {
  EvalResults r = pair({1, 1, 1, 0}, {0, 1, 0, 0});
  add_olmes_groups(r);
  EXPECT_EQ(r.find("bench_olmes")->config["olmes"]["chosen"], "mcf");
  EXPECT_EQ(r.find("bench_olmes")->primary()->scores, (std::vector<double>{1, 1, 1, 0}));
  EXPECT_EQ(r.find("bench_olmes")->primary()->metric, "acc");
  EvalResults tie = pair({1, 0, 0, 0}, {0, 0, 0, 1});
  add_olmes_groups(tie);
  EXPECT_EQ(tie.find("bench_olmes")->config["olmes"]["chosen"], "cf");
}

TEST(OlmesTest, NoScoreWithoutBothFormulationsOnTheSameItems) {
  EvalResults one = pair({1, 0, 0, 0}, {1, 1, 0, 1});
  one.tasks.erase(one.tasks.begin());  // CF alone
  add_olmes_groups(one);
  EXPECT_EQ(one.find("bench_olmes"), nullptr);
  EXPECT_EQ(one.find("bench_cf")->group, "capability");
  EvalResults other_items = pair({1, 0, 0, 0}, {1, 1, 0, 1});
  other_items.tasks[1] = member("bench_cf", "cf", "capability", "acc_norm", {1, 1, 0, 1}, {"a", "b", "c", "x"});
  add_olmes_groups(other_items);
  EXPECT_EQ(other_items.find("bench_olmes"), nullptr);
}

TEST(OlmesTest, TaskFilesDeclareTheirFormulation) {
  auto specs = select_tasks({"mmlu", "mmlu_cf", "toy_knowledge", "toy_knowledge_cf"}, kTasks);
  ASSERT_EQ(specs.size(), 4u);
  EXPECT_EQ(specs[0].olmes_group, "mmlu_olmes");
  EXPECT_EQ(specs[0].formulation, "mcf");
  EXPECT_EQ(specs[1].formulation, "cf");
  EXPECT_EQ(specs[1].primary_metric, "acc_norm");
  EXPECT_EQ(specs[3].olmes_group, "toy_knowledge_olmes");
  json j = read_json(specs[1].file);
  j["olmes"]["formulation"] = "letters";
  try {
    parse_task_spec(j, "bad_olmes.json");
    FAIL() << "accepted a bad formulation";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("bad_olmes.json"), std::string::npos) << e.what();
    EXPECT_NE(std::string(e.what()).find("formulation"), std::string::npos) << e.what();
  }
}

// Real MMLU files, both formulations, a mock model whose log-probs follow the text: the results
// hold mmlu_olmes = the better of mmlu's acc and mmlu_cf's acc_norm over the same items.
TEST(OlmesTest, MmluInBothFormulationsGivesTheOlmesEntry) {
  auto specs = select_tasks({"mmlu", "mmlu_cf"}, kTasks);
  for (auto& s : specs) s.path = (kBench / "mmlu").string();
  MockModel model;
  EvalOptions o;
  o.progress = false;
  o.limit = 6;
  o.num_fewshot = 1;
  const EvalResults r = evaluate(model, specs, o);
  const TaskResult* g = r.find("mmlu_olmes");
  ASSERT_NE(g, nullptr);
  const double mcf = r.find("mmlu")->primary()->value, cf = r.find("mmlu_cf")->primary()->value;
  EXPECT_DOUBLE_EQ(g->primary()->value, std::max(mcf, cf));
  EXPECT_EQ(g->primary()->doc_ids.size(), r.find("mmlu")->primary()->doc_ids.size());
  EXPECT_EQ(r.find("mmlu")->group, "diagnostic");
  EXPECT_EQ(g->group, "capability");
  // The CF prompt is the question alone; the MCF prompt letters the options.
  EXPECT_EQ(r.find("mmlu_cf")->config["prompt"]["doc_to_text"], "Question: {{question|trim}}\nAnswer:");
  // Through a results file and back.
  const EvalResults back = results_from_json(results_to_json(r));
  ASSERT_NE(back.find("mmlu_olmes"), nullptr);
  EXPECT_DOUBLE_EQ(back.find("mmlu_olmes")->primary()->value, g->primary()->value);
}
