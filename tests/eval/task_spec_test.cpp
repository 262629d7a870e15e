// ctest-labels: unit
// Task files: the built-in ones parse and load their real datasets; templates, paths, selection and
// schema errors.
#include <cstdlib>
#include <set>

#include <gtest/gtest.h>

#include "eval/eval.h"
#include "mock_model.h"

using namespace atax;
using atax::testing::TempDir;
using atax::testing::write_text;

static const fs::path kTasks = fs::path(ATAX_SOURCE_DIR) / "tasks";
static const fs::path kBench = fs::path(ATAX_SHARED_DIR) / "benchmarks";

TEST(TaskSpecTest, BuiltInTasksParse) {
  auto tasks = discover_tasks(kTasks);
  std::set<std::string> names;
  for (const auto& t : tasks) names.insert(t.name);
  for (const char* n : {"mmlu", "gsm8k", "humaneval", "truthfulqa_mc", "bbq", "xstest", "harmbench", "advbench",
                        "toy_knowledge", "toy_math", "toy_code", "toy_truthfulqa", "toy_bbq", "toy_reasoning",
                        "toy_creativity", "toy_harmbench", "toy_xstest", "toy_knowledge_recall", "toy_knowledge_binding",
                        "toy_copy"})
    EXPECT_TRUE(names.count(n)) << n;
  for (const auto& t : tasks) {
    EXPECT_GE(t.version, 1) << t.name;
    EXPECT_TRUE(t.group == "capability" || t.group == "safety" || t.group == "diagnostic") << t.name;
    // Every task declares the metric the tax reads, and it is one of its metrics.
    EXPECT_FALSE(t.primary_metric.empty()) << t.name;
    EXPECT_FALSE(t.metrics.empty()) << t.name;
  }
  auto gsm = select_tasks({"gsm8k"}, kTasks)[0];
  ASSERT_EQ(gsm.metrics.size(), 2u);  // exact_match under both filters, side by side
  EXPECT_EQ(gsm.metrics[0].filter, "strict-match");
  EXPECT_EQ(gsm.metrics[1].filter, "flexible-extract");
}

TEST(TaskSpecTest, RealBenchmarkTasksLoadTheirData) {
  // Every non-toy built-in task finds its data under ../shared/benchmarks laid out as --data-dir.
  const std::map<std::string, size_t> expected = {{"mmlu", 577},   {"gsm8k", 1319},   {"humaneval", 164},
                                                  {"truthfulqa_mc", 790}, {"bbq", 3620}, {"xstest", 450},
                                                  {"harmbench", 240}, {"advbench", 520}};
  for (const auto& [name, n] : expected) {
    auto t = select_tasks({name}, kTasks)[0];
    auto d = load_dataset(t.format, resolve_data_path(t.path, kBench), t.split, t.subsets, t.dataset_options);
    EXPECT_EQ(d.docs.size(), n) << name;
    // Each document renders with the task's templates.
    for (size_t i = 0; i < std::min<size_t>(d.docs.size(), 20); ++i) {
      EXPECT_NO_THROW(render_template(t.description + t.doc_to_text + t.chat_doc_to_text + t.doc_to_target,
                                      d.docs[i].fields, t.name))
          << name << " " << d.docs[i].id;
    }
  }
}

TEST(TemplateTest, FieldsIndexesAndFilters) {
  json f = {{"q", "  Why?  "}, {"choices", {"x", "y"}}, {"n", 3}, {"nested", {{"a", "b"}}}};
  EXPECT_EQ(render_template("Q: {{q|trim}}|{{ choices.1 }}|{{n}}|{{nested.a|upper}}", f), "Q: Why?|y|3|B");
  EXPECT_EQ(render_template("no fields", f), "no fields");
  EXPECT_THROW(render_template("{{missing}}", f, "t.json"), Error);
  EXPECT_THROW(render_template("{{choices.5}}", f), Error);
  EXPECT_THROW(render_template("{{q|reverse}}", f), Error);
  EXPECT_THROW(render_template("{{q", f), Error);
}

TEST(TaskSpecTest, SchemaErrorsNameTheFile) {
  json good = read_json(kTasks / "capability" / "mmlu.json");
  EXPECT_NO_THROW(parse_task_spec(good, "mmlu.json"));
  auto expect_error = [&](json j, const std::string& needle) {
    try {
      parse_task_spec(j, "my_task.json");
      ADD_FAILURE() << "no error for " << needle;
    } catch (const Error& e) {
      EXPECT_EQ(e.file(), "my_task.json");
      EXPECT_NE(std::string(e.what()).find(needle), std::string::npos) << e.what();
    }
  };
  json j = good;
  j.erase("primary_metric");
  expect_error(j, "missing \"primary_metric\"");
  j = good;
  j["primary_metric"] = "acc,strict-match";
  expect_error(j, "primary_metric \"acc,strict-match\" is not one of the task's metrics");
  j = good;
  j["category"] = "knowledge";
  expect_error(j, "category \"knowledge\" is not capability, safety or diagnostic");
  j = good;
  j.erase("category");
  expect_error(j, "missing \"category\"");
  j = good;
  j["group"] = "capability";
  expect_error(j, "both \"category\" and its older name \"group\"");
  j = good;
  j["promt"] = {};
  expect_error(j, "unknown key \"promt\"");
  j = good;
  j["metrics"] = {{{"metric", "exact_match"}}};
  expect_error(j, "does not fit output_type");
  j = good;
  j["dataset"]["format"] = "parquet";
  expect_error(j, "unknown dataset.format");
  j = good;
  j.erase("version");
  expect_error(j, "version");
  j = read_json(kTasks / "capability" / "humaneval.json");
  j["code"]["n_samples"] = 2;
  expect_error(j, "pass@k: k must be in");
  j = read_json(kTasks / "capability" / "gsm8k.json");
  j["filters"][0]["steps"][0]["pattern"] = "(unclosed";
  expect_error(j, "invalid regular expression");
  j = read_json(kTasks / "capability" / "gsm8k.json");
  j["metrics"][0]["filters"] = {"strict"};
  expect_error(j, "unknown filter");
  // Which way is better comes from the metric registry: a task may not contradict it, and it
  // must declare it where the registry leaves it to the task (a refusal rate).
  j = good;
  j["metrics"][0]["higher_is_better"] = false;
  expect_error(j, "contradicts the metric registry (acc is higher-is-better)");
  j = read_json(kTasks / "safety" / "xstest.json");
  for (auto& m : j["metrics"]) m.erase("higher_is_better");
  expect_error(j, "must declare \"higher_is_better\"");
}

TEST(TaskSpecTest, DirectionComesFromTheMetricRegistry) {
  // A bias score is lower-is-better even where the task file says nothing.
  json j = read_json(kTasks / "safety" / "bbq.json");
  for (auto& m : j["metrics"]) m.erase("higher_is_better");
  TaskSpec t = parse_task_spec(j, "bbq.json");
  for (const auto& m : t.metrics)
    EXPECT_EQ(m.higher_is_better, m.metric.rfind("bbq_bias", 0) != 0) << m.name;
  // The refusal rate of the same metric is better high on harmful prompts and low on benign ones.
  TaskSpec x = parse_task_spec(read_json(kTasks / "safety" / "xstest.json"), "xstest.json");
  for (const auto& m : x.metrics) EXPECT_EQ(m.higher_is_better, m.name.rfind("refusal_rate_unsafe", 0) == 0) << m.name;
}

TEST(TaskSpecTest, DataPathsAndSelection) {
  EXPECT_EQ(resolve_data_path("mmlu", "/data"), fs::path("/data/mmlu"));
  EXPECT_EQ(resolve_data_path("${ATAX_DATA}/x/../mmlu", "/d"), fs::path("/d/mmlu"));
  EXPECT_EQ(resolve_data_path("/abs/path", "/d"), fs::path("/abs/path"));
  ::setenv("ATAX_EVAL_TEST_ROOT", "/root_from_env", 1);
  EXPECT_EQ(resolve_data_path("${ATAX_EVAL_TEST_ROOT}/a", {}), fs::path("/root_from_env/a"));
  ::unsetenv("ATAX_EVAL_TEST_ROOT");
  EXPECT_THROW(resolve_data_path("${ATAX_EVAL_TEST_ROOT}/a", {}), Error);

  auto safety = select_tasks({"safety"}, kTasks);
  for (const auto& t : safety) EXPECT_EQ(t.group, "safety");
  EXPECT_GE(safety.size(), 7u);
  auto toy = select_tasks({"toy"}, kTasks);
  // the nine toy suites, toy_code_greedy, the cloze knowledge task, four diagnostics, the two safety dev splits
  EXPECT_EQ(toy.size(), 17u);
  for (const auto& t : select_tasks({"diagnostic"}, kTasks)) EXPECT_EQ(t.group, "diagnostic") << t.name;
  // MCF knowledge, recall, letter format, copying, in-context; the harmful and borderline dev splits
  EXPECT_EQ(select_tasks({"diagnostic"}, kTasks).size(), 7u);
  auto two = select_tasks({"mmlu", "gsm8k", "mmlu"}, kTasks);
  ASSERT_EQ(two.size(), 2u);
  EXPECT_EQ(two[0].name, "mmlu");
  try {
    select_tasks({"mmlu_pro"}, kTasks);
    FAIL();
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("known tasks"), std::string::npos);
  }
  // A user task is one more file; a duplicate name is an error.
  TempDir tmp("tasks");
  fs::create_directories(tmp.path() / "capability");
  json j = read_json(kTasks / "capability" / "mmlu.json");
  j["name"] = "my_mmlu";
  write_json_atomic(tmp.path() / "capability" / "my_mmlu.json", j);
  EXPECT_EQ(select_tasks({"all"}, tmp.path()).size(), 1u);
  EXPECT_EQ(select_tasks({(tmp.path() / "capability" / "my_mmlu.json").string()}, kTasks)[0].name, "my_mmlu");
  write_json_atomic(tmp.path() / "capability" / "copy.json", j);
  EXPECT_THROW(discover_tasks(tmp.path()), Error);
  EXPECT_EQ(find_tasks_dir(tmp.path()), tmp.path());
  EXPECT_THROW(find_tasks_dir(tmp.path() / "nope"), Error);
}
