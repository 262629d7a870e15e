// ctest-labels: unit
// The OLMES multiple-choice benchmarks (ARC-Challenge, ARC-Easy, CommonsenseQA, OpenBookQA) in both
// formulations on hand-made fixtures in AllenAI's published layout (tests/eval/fixtures/olmes_mc),
// scored by a mock model whose log-probs are set per continuation: acc, acc_norm and the
// PMI-normalised acc_uncond against hand computations, the unconditional requests (only when a
// task asks, keyed on their context in the cache, logged in the samples) and the OLMES groups.
#include <algorithm>
#include <cmath>
#include <map>

#include <gtest/gtest.h>

#include "eval/eval.h"
#include "mock_model.h"

using namespace atax;
using atax::testing::MockModel;
using atax::testing::TempDir;

namespace {

const fs::path kTasks = fs::path(ATAX_SOURCE_DIR) / "tasks";
const fs::path kData = fs::path(ATAX_SOURCE_DIR) / "tests/eval/fixtures/olmes_mc";

TaskSpec task(const std::string& name, const json& patch = json::object()) {
  json j = read_json(select_tasks({name}, kTasks)[0].file);
  j.merge_patch(patch);
  return parse_task_spec(j, name + ".json");
}

EvalOptions options() {
  EvalOptions o;
  o.progress = false;
  o.data_dir = kData;
  o.log_samples = true;
  return o;
}

// ARC-Challenge fixture, test split (gold: streak, its leaves turn pale, the mantle, distance and
// time). Unlisted continuations score -5 after any context.
const std::map<std::string, double> kCond = {
    {" streak", -4},  {" smell", -3},       {" weight", -6},           {" temperature", -7},
    {" the mantle", -1}, {" the atmosphere", -1.2}, {" distance and time", -4.9},
    {" B", -1},  // MCF: the letter B always wins
};
const std::map<std::string, double> kUncond = {
    {" streak", -9}, {" smell", -2}, {" weight", -5}, {" temperature", -8},
    {" its leaves turn pale", -8}, {" distance and time", -1},
};

double lookup(const std::map<std::string, double>& m, const std::string& k) {
  auto it = m.find(k);
  return it == m.end() ? -5.0 : it->second;
}

double arc_model(const std::string& context, const std::string& continuation) {
  return context == "Answer:" ? lookup(kUncond, continuation) : lookup(kCond, continuation);
}

int64_t count_context(const MockModel& m, const std::string& context) {
  return std::count(m.contexts_seen.begin(), m.contexts_seen.end(), context);
}

}  // namespace

// Hand computation per item (raw argmax; per byte; PMI = cond − uncond):
//   1 streak -4 smell -3 weight -6 temperature -7 | uncond -9 -2 -5 -8: raw smell (0), per byte
//     smell -3/6 (0), PMI streak +5 (1).
//   2 every option -5: raw the first (0), per byte the longest " its leaves turn pale" (1); PMI 0 0 0 0
//     except pale -5 − (-8) = +3 (1).
//   3 the mantle -1, the atmosphere -1.2, the inner core -5: raw mantle (1), per byte atmosphere
//     -1.2/15 > -1/11 (0), PMI mantle +4 vs atmosphere +3.8 (1).
//   4 distance and time -4.9, others -5: raw and per byte distance (1); uncond distance -1 gives it
//     PMI -3.9 < 0 of the others: mass and color (0).
TEST(OlmesTasksTest, ArcChallengeClozeHandComputedWithPmi) {
  MockModel m;
  m.ll_fn = arc_model;
  const EvalResults r = evaluate(m, {task("arc_challenge_cf")}, options());
  const TaskResult* t = r.find("arc_challenge_cf");
  ASSERT_NE(t, nullptr);
  EXPECT_EQ(t->primary_metric, "acc_uncond");
  EXPECT_EQ(t->find("acc")->scores, (std::vector<double>{0, 0, 1, 1}));
  EXPECT_EQ(t->find("acc_norm")->scores, (std::vector<double>{0, 1, 0, 1}));
  const MetricResult* pmi = t->find("acc_uncond");
  ASSERT_NE(pmi, nullptr);
  EXPECT_EQ(pmi->scores, (std::vector<double>{1, 1, 1, 0}));
  EXPECT_NEAR(pmi->value, 0.75, 1e-12);
  EXPECT_NEAR(pmi->stderr_, 0.25, 1e-12);  // sample sd 0.5 / sqrt(4)
  ASSERT_TRUE(pmi->chance.has_value());
  EXPECT_NEAR(*pmi->chance, (0.25 + 0.25 + 1.0 / 3 + 0.2) / 4, 1e-12);  // 4, 4, 3 and 5 options
  EXPECT_EQ(t->primary(), pmi);

  // 16 options, each scored after the prompt and after "Answer:" alone (16 distinct texts).
  EXPECT_EQ(m.ll_requests, 32);
  EXPECT_EQ(count_context(m, "Answer:"), 16);

  // The prompt: five train items (first_n) as "Question: …\nAnswer: <text>", then the question.
  const json& s = t->samples[0];
  EXPECT_TRUE(starts_with(s["prompt"].get<std::string>(),
                          "Question: Which tool is best for measuring the mass of a pebble?\nAnswer: a balance\n\n"));
  EXPECT_TRUE(ends_with(s["prompt"].get<std::string>(),
                        "\n\nQuestion: Which property of a mineral is tested by scratching it on a tile?\nAnswer:"));
  // The samples log shows each option's unconditional log-prob and its PMI score.
  const json& u = s["resps_uncond"]["default"];
  EXPECT_EQ(u["context"], "Answer:");
  EXPECT_EQ(u["logprobs"], json({-9.0, -2.0, -5.0, -8.0}));
  EXPECT_EQ(u["pmi"], json({5.0, -1.0, -1.0, 1.0}));
  EXPECT_EQ(s["filtered_resps"]["default"]["pred_uncond"], 0);
  EXPECT_EQ(s["filtered_resps"]["default"]["pred"], 1);
  EXPECT_EQ(s["acc_uncond,none"], 1.0);
  EXPECT_EQ(t->samples[3]["filtered_resps"]["default"]["pred_uncond"], 1);

  // ... and so does the samples file.
  TempDir tmp("olmes_samples");
  write_results(r, tmp.path() / "R.json");
  const auto lines = read_jsonl(samples_path(tmp.path() / "R.json", "arc_challenge_cf"));
  ASSERT_EQ(lines.size(), 4u);
  EXPECT_EQ(lines[1]["resps_uncond"]["default"]["logprobs"], json({-5.0, -8.0, -5.0, -5.0}));
  const EvalResults back = read_results(tmp.path() / "R.json");
  EXPECT_EQ(back.find("arc_challenge_cf")->find("acc_uncond")->scores, pmi->scores);
}

TEST(OlmesTasksTest, MultipleChoiceFormulationAndTheOlmesGroup) {
  MockModel m;
  m.ll_fn = arc_model;
  const EvalResults r = evaluate(m, {task("arc_challenge"), task("arc_challenge_cf")}, options());
  const TaskResult* mcf = r.find("arc_challenge");
  ASSERT_NE(mcf, nullptr);
  EXPECT_EQ(mcf->find("acc")->scores, (std::vector<double>{0, 1, 0, 0}));  // always B
  EXPECT_EQ(mcf->find("acc_uncond"), nullptr);
  EXPECT_EQ(mcf->samples[0]["prompt"].get<std::string>().substr(mcf->samples[0]["prompt"].get<std::string>().rfind("Question:")),
            "Question: Which property of a mineral is tested by scratching it on a tile?\n"
            " A. streak\n B. smell\n C. weight\n D. temperature\nAnswer:");
  EXPECT_EQ(mcf->samples[3]["arguments"]["default"], json({" A", " B", " C", " D", " E"}));
  EXPECT_FALSE(mcf->samples[0].contains("resps_uncond"));
  const TaskResult* g = r.find("arc_challenge_olmes");
  ASSERT_NE(g, nullptr);
  EXPECT_NEAR(g->primary()->value, 0.75, 1e-12);  // CF's acc_uncond 0.75 beats MCF's acc 0.25
  EXPECT_EQ(g->config["olmes"]["chosen"], "cf");
  EXPECT_EQ(g->config["olmes"]["cf"]["metric"], "acc_uncond");
  // Only the CF task asks for acc_uncond: 16 MCF + 16 CF + 16 unconditional requests.
  EXPECT_EQ(m.ll_requests, 48);
}

TEST(OlmesTasksTest, UnconditionalRequestsOnlyWhenATaskAsks) {
  MockModel m;
  m.ll_fn = arc_model;
  const json no_pmi = {{"primary_metric", "acc_norm"}, {"metrics", {{{"metric", "acc"}}, {{"metric", "acc_norm"}}}}};
  const EvalResults r = evaluate(m, {task("arc_challenge_cf", no_pmi), task("arc_challenge")}, options());
  EXPECT_EQ(m.ll_requests, 32);
  EXPECT_EQ(count_context(m, "Answer:"), 0);
  EXPECT_EQ(r.find("arc_challenge_cf")->find("acc_uncond"), nullptr);
  EXPECT_FALSE(r.find("arc_challenge_cf")->samples[0].contains("resps_uncond"));
}

TEST(OlmesTasksTest, TheUnconditionalContextIsPartOfTheCacheKey) {
  TempDir tmp("olmes_cache");
  EvalOptions o = options();
  o.cache_path = tmp.path() / "cache.sqlite";
  MockModel m;
  m.ll_fn = arc_model;
  const EvalResults first = evaluate(m, {task("arc_challenge_cf")}, o);
  EXPECT_EQ(first.requests_sent, 32);
  const EvalResults again = evaluate(m, {task("arc_challenge_cf")}, o);
  EXPECT_EQ(again.requests_sent, 0);
  EXPECT_EQ(again.requests_cached, 32);
  EXPECT_EQ(again.find("arc_challenge_cf")->find("acc_uncond")->scores, (std::vector<double>{1, 1, 1, 0}));
  // Another unconditional context: the prompts' answers come from the cache, the unconditional ones
  // are new requests. After "Q:" the mock scores each option as after a prompt, so every PMI score
  // is 0 and the first option is picked: gold for items 1, 3 and 4.
  const json other = {{"metrics", {{{"metric", "acc"}}, {{"metric", "acc_norm"}},
                                   {{"metric", "acc_uncond"}, {"options", {{"unconditional_context", "Q:"}}}}}}};
  const EvalResults moved = evaluate(m, {task("arc_challenge_cf", other)}, o);
  EXPECT_EQ(moved.requests_cached, 16);
  EXPECT_EQ(moved.requests_sent, 16);
  EXPECT_EQ(moved.find("arc_challenge_cf")->find("acc_uncond")->scores, (std::vector<double>{1, 0, 1, 1}));
  EXPECT_EQ(moved.find("arc_challenge_cf")->samples[0]["resps_uncond"]["default"]["context"], "Q:");
}

TEST(OlmesTasksTest, TaskFilesCarryOlmesNormalisationPerBenchmark) {
  // OLMES (Gu et al. 2024; olmes' task configs): PMI for ARC-Challenge, CommonsenseQA and
  // OpenBookQA, per character for ARC-Easy.
  const std::map<std::string, std::string> primary = {
      {"arc_challenge_cf", "acc_uncond"}, {"arc_easy_cf", "acc_norm"}, {"csqa_cf", "acc_uncond"},
      {"openbookqa_cf", "acc_uncond"}};
  std::vector<TaskSpec> specs;
  for (const auto& [cf, metric] : primary) {
    const std::string mcf = cf.substr(0, cf.size() - 3);
    TaskSpec c = task(cf), mc = task(mcf);
    EXPECT_EQ(c.primary_metric, metric) << cf;
    EXPECT_EQ(c.formulation, "cf");
    EXPECT_EQ(mc.formulation, "mcf");
    EXPECT_EQ(mc.primary_metric, "acc");
    EXPECT_EQ(c.olmes_group, mcf + "_olmes");
    EXPECT_EQ(mc.olmes_group, mcf + "_olmes");
    specs.push_back(mc);
    specs.push_back(c);
  }
  // All eight on the fixtures (5-shot from train): every CF result carries acc, acc_norm and
  // acc_uncond with standard errors, and each benchmark gets its OLMES entry.
  MockModel m;
  const EvalResults r = evaluate(m, specs, options());
  for (const auto& [cf, metric] : primary) {
    SCOPED_TRACE(cf);
    const TaskResult* t = r.find(cf);
    ASSERT_NE(t, nullptr);
    for (const char* k : {"acc", "acc_norm", "acc_uncond"}) {
      const MetricResult* mr = t->find(k);
      ASSERT_NE(mr, nullptr) << k;
      EXPECT_EQ(mr->scores.size(), static_cast<size_t>(t->n_effective));
      EXPECT_TRUE(std::isfinite(mr->stderr_));
    }
    const TaskResult* g = r.find(cf.substr(0, cf.size() - 3) + "_olmes");
    ASSERT_NE(g, nullptr);
    EXPECT_EQ(g->config["olmes"]["cf"]["metric"], metric);
  }
  EXPECT_EQ(r.find("csqa_cf")->n_effective, 3);  // the validation split (dev_rand_split.jsonl)
}

TEST(OlmesTasksTest, AccUncondOptionsAreValidated) {
  auto bad = [](const json& metrics) {
    json j = read_json(select_tasks({"arc_challenge_cf"}, kTasks)[0].file);
    j["metrics"] = metrics;
    try {
      parse_task_spec(j, "bad_pmi.json");
    } catch (const Error& e) {
      EXPECT_EQ(e.file(), "bad_pmi.json");
      return std::string(e.message());
    }
    return std::string("accepted");
  };
  EXPECT_NE(bad({{{"metric", "acc_uncond"}, {"options", {{"context", "Answer:"}}}}}).find("unknown key \"context\""),
            std::string::npos);
  EXPECT_NE(bad({{{"metric", "acc_uncond"}, {"options", {{"unconditional_context", ""}}}}}).find("non-empty"),
            std::string::npos);
  EXPECT_NE(bad({{{"metric", "acc_uncond"}},
                 {{"metric", "acc_uncond"}, {"name", "acc_q"}, {"options", {{"unconditional_context", "Q:"}}}}})
                .find("already has the unconditional context"),
            std::string::npos);
  // acc_uncond is a multiple-choice metric only.
  json gen = read_json(select_tasks({"gsm8k"}, kTasks)[0].file);
  gen["metrics"].push_back({{"metric", "acc_uncond"}});
  EXPECT_THROW(parse_task_spec(gen, "gen.json"), Error);
}
