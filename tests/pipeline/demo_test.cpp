// ctest-labels: slow
// `atax demo --quick` end to end: the world, the tokenizer, the base model, the aligned variants,
// evaluation, the tax and tradeoff tables and the report; then a second run reuses everything.
#include <gtest/gtest.h>

#include <cmath>
#include <set>

#include "pipeline/pipeline.h"

using namespace atax;

TEST(DemoTest, QuickDemoEndToEndThenFullyCached) {
  fs::path out = fs::temp_directory_path() / ("atax_demo_test_" + std::to_string(::getpid()));
  fs::remove_all(out);
  pipeline::DemoOptions o;
  o.scale = "quick";
  o.out = out;
  o.tasks_dir = fs::path(ATAX_SOURCE_DIR) / "tasks";
  auto first = pipeline::run_demo(o);
  const json& s = first.summary;
  // Every part of the summary is there, with numbers in range.
  ASSERT_TRUE(s.contains("validity"));
  ASSERT_TRUE(s.contains("tax"));
  ASSERT_TRUE(s.contains("headline"));
  ASSERT_TRUE(s.contains("tradeoff"));
  ASSERT_TRUE(s.contains("mitigations"));
  // Validity: every capability suite and the diagnostics of the base (recall, the letter format alone, copying).
  std::set<std::string> valid_tasks;
  for (const auto& v : s["validity"]) {
    valid_tasks.insert(v["task"].get<std::string>());
    if (v.contains("base")) {
      EXPECT_GE(v["base"].get<double>(), 0.0) << v.dump();
      EXPECT_LE(v["base"].get<double>(), 1.0) << v.dump();
    }
  }
  for (const char* t : {"toy_knowledge_olmes", "toy_knowledge_cf", "toy_knowledge", "toy_reasoning", "toy_reasoning_incontext", "toy_math",
                        "toy_code_greedy", "toy_knowledge_recall", "toy_knowledge_binding", "toy_copy", "toy_harmbench",
                        "toy_xstest"})
    EXPECT_TRUE(valid_tasks.count(t)) << t;
  EXPECT_GE(s["tax"]["rows"].size(), 8u);
  for (const auto& row : s["tax"]["rows"]) {
    EXPECT_GE(row["base"].get<double>(), -1.0) << row.dump();
    EXPECT_LE(row["base"].get<double>(), 1.0) << row.dump();
    EXPECT_GT(row["n"].get<int64_t>(), 0) << row.dump();
  }
  // Base, 5 aligned variants, the sweep points and the interpolation are on the tradeoff plane.
  EXPECT_GE(s["tradeoff"]["points"].size(), 8u);
  EXPECT_FALSE(s["tradeoff"]["pareto"].empty());
  for (const auto& p : s["tradeoff"]["points"]) {
    EXPECT_GE(p["helpful"].get<double>(), 0.0);
    EXPECT_LE(p["harmless"].get<double>(), 1.0);
  }
  // The base model of the toy world complies with harmful requests; plain DPO does not refuse
  // less (at the quick scale its 25 steps may not move greedy generations yet).
  double base_harmless = s["tradeoff"]["points"][0]["harmless"];
  double dpo_harmless = s["tradeoff"]["points"][1]["harmless"];
  EXPECT_EQ(s["tradeoff"]["points"][0]["name"], "base");
  EXPECT_EQ(s["tradeoff"]["points"][1]["name"], "dpo");
  EXPECT_GE(dpo_harmless, base_harmless);
  // The report is written with every chart.
  std::string html = read_file(first.report_dir / "report.html");
  for (const char* id : {"chart-tax", "chart-tradeoff", "chart-beta", "chart-lambda"})
    EXPECT_NE(html.find(std::string("<svg class=\"chart\" id=\"") + id + "\""), std::string::npos) << id;
  EXPECT_TRUE(fs::exists(first.report_dir / "report.md"));
  EXPECT_TRUE(fs::exists(first.report_dir / "report.json"));
  EXPECT_GT(s["artifacts_built"].get<int64_t>(), 10);

  // One tax path: `atax tax` on the demo's own results files of the same pair prints the demo's
  // table, its JSON equals the demo's summary, and so does the mean capability tax.
  ASSERT_TRUE(s.contains("results_files"));
  const std::string base_file = s["results_files"]["base"], dpo_file = s["results_files"]["dpo"];
  auto run = [](const std::string& cmd) {
    std::string out;
    FILE* p = ::popen(cmd.c_str(), "r");
    char buf[4096];
    size_t n;
    while ((n = fread(buf, 1, sizeof buf, p)) > 0) out.append(buf, n);
    EXPECT_EQ(::pclose(p), 0) << cmd;
    return out;
  };
  const std::string tax_cmd = std::string(ATAX_BINARY_DIR) + "/atax tax --base-results " + base_file +
                              " --aligned-results " + dpo_file + " --seed " + std::to_string(o.seed);
  EXPECT_EQ(run(tax_cmd + " 2>/dev/null"), s["tax_markdown"].get<std::string>());
  const json cli = json::parse(run(tax_cmd + " --format json 2>/dev/null"));
  EXPECT_EQ(cli["rows"], s["tax"]["rows"]);
  EXPECT_EQ(cli["mean_capability_tax"], s["tax"]["mean_capability_tax"]);
  EXPECT_EQ(cli["safety"], s["tax"]["safety"]);
  // The mitigation table's mean for plain DPO is the same number.
  for (const auto& m : s["mitigations"])
    if (m["model"] == "dpo") {
      const json& v = cli["mean_capability_tax"]["value"];
      if (v.is_null())
        EXPECT_TRUE(m["mean_capability_tax"].is_null() || std::isnan(m["mean_capability_tax"].get<double>())) << m.dump();
      else EXPECT_EQ(m["mean_capability_tax"], v);
    }
  // Every tax row of a task reads its declared primary metric; no floor is taxed.
  for (const auto& row : s["tax"]["rows"])
    if (!row["measurable"].get<bool>()) EXPECT_TRUE(row["tax_pct"].is_null()) << row.dump();

  // A second run reuses every artifact and gives the same numbers.
  auto second = pipeline::run_demo(o);
  EXPECT_EQ(second.summary["artifacts_built"].get<int64_t>(), 0);
  EXPECT_EQ(second.summary["tax"]["rows"], s["tax"]["rows"]);
  fs::remove_all(out);
}
