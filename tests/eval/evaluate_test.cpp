// ctest-labels: unit
// evaluate() end to end with a deterministic mock model: prompts, batching and length order,
// request de-duplication, every request kind, hand-computed aggregates, the cache, results files.
#include <algorithm>
#include <cmath>
#include <map>

#include <gtest/gtest.h>

#include "eval/eval.h"
#include "mock_model.h"

using namespace atax;
using atax::testing::MockModel;
using atax::testing::TempDir;
using atax::testing::write_text;

static const fs::path kTasks = fs::path(ATAX_SOURCE_DIR) / "tasks";
static const fs::path kBench = fs::path(ATAX_SHARED_DIR) / "benchmarks";

// A built-in task with its dataset path (and optionally more keys) replaced.
static TaskSpec builtin(const std::string& name, const std::string& path = {}, const json& patch = json::object()) {
  json j = read_json(select_tasks({name}, kTasks)[0].file);
  if (!path.empty()) j["dataset"]["path"] = path;
  j.merge_patch(patch);
  return parse_task_spec(j, name + ".json");
}

static EvalOptions quiet() {
  EvalOptions o;
  o.progress = false;
  return o;
}

// Two made-up subjects in MMLU layout: alpha (gold B, B, C), beta (gold A, B); dev 2 rows each.
static void write_mmlu_like(const fs::path& root) {
  write_text(root / "dev" / "alpha_dev.csv", "Dev alpha one?,a,b,c,d,A\nDev alpha two?,a,b,c,d,B\n");
  write_text(root / "dev" / "beta_dev.csv", "Dev beta one?,a,b,c,d,C\nDev beta two?,a,b,c,d,D\n");
  write_text(root / "test" / "alpha_test.csv",
             "Alpha q0?,w,x,y,z,B\nAlpha q1 is a longer question than the others?,w,x,y,z,B\nAlpha q2?,w,x,y,z,C\n");
  write_text(root / "test" / "beta_test.csv", "Beta q0?,w,x,y,z,A\nBeta q1?,w,x,y,z,B\n");
}

static double prefer_b(const std::string&, const std::string& cont) { return cont == " B" ? -0.1 : -1.0; }

TEST(EvaluateTest, MultipleChoiceAccuracyFewShotAndBreakdown) {
  TempDir tmp("mc");
  write_mmlu_like(tmp.path());
  MockModel m;
  m.ll_fn = prefer_b;
  EvalOptions o = quiet();
  o.num_fewshot = 2;
  o.batch_size = 3;
  auto r = evaluate(m, {builtin("mmlu", tmp.path().string())}, o);
  // 5 docs x 4 choices, sent once each, in batches of at most 3, longest first.
  EXPECT_EQ(m.ll_requests, 20);
  EXPECT_EQ(m.ll_batches, 7);
  for (size_t b : m.batch_sizes) EXPECT_LE(b, 3u);
  EXPECT_TRUE(std::is_sorted(m.ll_lengths.rbegin(), m.ll_lengths.rend()));
  EXPECT_EQ(r.requests_sent, 20);

  const TaskResult* t = r.find("mmlu");
  ASSERT_NE(t, nullptr);
  EXPECT_EQ(t->n_effective, 5);
  const MetricResult* acc = t->find("acc");
  ASSERT_NE(acc, nullptr);
  // Always "B": alpha 2/3 right, beta 1/2: items 1,1,0,0,1.
  EXPECT_NEAR(acc->value, 0.6, 1e-12);
  EXPECT_NEAR(acc->stderr_, std::sqrt(0.3) / std::sqrt(5.0), 1e-12);  // sample sd / sqrt(n)
  EXPECT_EQ(acc->doc_ids, (std::vector<std::string>{"alpha/0", "alpha/1", "alpha/2", "beta/0", "beta/1"}));
  EXPECT_EQ(acc->scores, (std::vector<double>{1, 1, 0, 0, 1}));
  EXPECT_NEAR(t->find("acc_norm")->value, 0.6, 1e-12);  // single-letter choices: same as acc
  EXPECT_NEAR(r.find("mmlu/alpha")->find("acc")->value, 2.0 / 3.0, 1e-12);
  EXPECT_NEAR(r.find("mmlu/beta")->find("acc")->value, 0.5, 1e-12);
  EXPECT_EQ(r.find("mmlu/beta")->parent, "mmlu");

  // The prompt: subject description, 2 dev examples of the same subject with their answers, the question.
  std::string want =
      "The following are multiple choice questions (with answers) about alpha.\n\n"
      "Dev alpha one?\nA. a\nB. b\nC. c\nD. d\nAnswer: A\n\n"
      "Dev alpha two?\nA. a\nB. b\nC. c\nD. d\nAnswer: B\n\n"
      "Alpha q0?\nA. w\nB. x\nC. y\nD. z\nAnswer:";
  EXPECT_NE(std::find(m.contexts_seen.begin(), m.contexts_seen.end(), want), m.contexts_seen.end());
  for (const auto& c : m.contexts_seen)
    if (c.find("Beta q") != std::string::npos) EXPECT_EQ(c.find("Dev alpha"), std::string::npos);
}

TEST(EvaluateTest, LimitSeedAndDeduplicationAcrossTasks) {
  TempDir tmp("dedupe");
  write_mmlu_like(tmp.path());
  MockModel m;
  EvalOptions o = quiet();
  o.num_fewshot = 0;
  o.limit = 1;  // per subject (the task breaks down by subject)
  auto a = builtin("mmlu", tmp.path().string());
  auto b = builtin("mmlu", tmp.path().string(), {{"name", "mmlu_copy"}});
  auto r = evaluate(m, {a, b}, o);
  EXPECT_EQ(r.find("mmlu")->n_effective, 2);
  EXPECT_EQ(r.find("mmlu")->n_original, 5);
  EXPECT_EQ(m.ll_requests, 8);  // 2 docs x 4 choices, shared by both tasks
  EXPECT_EQ(r.find("mmlu")->find("acc")->scores, r.find("mmlu_copy")->find("acc")->scores);
}

TEST(EvaluateTest, ChatModeUsesTheTemplateAndDropsTheDelimiter) {
  TempDir tmp("chat");
  write_mmlu_like(tmp.path());
  MockModel m;
  std::vector<std::string> conts;
  m.ll_fn = [&](const std::string&, const std::string& c) {
    conts.push_back(c);
    return c == "B" ? -0.1 : -1.0;
  };
  EvalOptions o = quiet();
  o.num_fewshot = 0;
  o.chat = true;
  auto r = evaluate(m, {builtin("mmlu", tmp.path().string())}, o);
  for (const auto& c : m.contexts_seen) {
    // lm-eval's layout: the task's description is the system turn, the question the user turn.
    EXPECT_TRUE(starts_with(c, "<|system|>The following are")) << c;
    EXPECT_NE(c.find("<|end|><|user|>"), std::string::npos) << c;
    EXPECT_TRUE(ends_with(c, "Answer:<|end|><|assistant|>")) << c;
  }
  EXPECT_NE(std::find(conts.begin(), conts.end(), "B"), conts.end());
  EXPECT_EQ(std::find(conts.begin(), conts.end(), " B"), conts.end());
  EXPECT_NEAR(r.find("mmlu")->find("acc")->value, 0.6, 1e-12);
  EXPECT_EQ(r.find("mmlu")->config["resolved"]["chat"], true);
}

// The text after the last "Question: " of a prompt, up to its newline.
static std::string last_question(const std::string& context) {
  auto p = context.rfind("Question: ");
  return context.substr(p + 10, context.find('\n', p) - p - 10);
}

TEST(EvaluateTest, Gsm8kStrictAndFlexibleSideBySide) {
  TempDir tmp("gsm");
  write_text(tmp.path() / "test.jsonl",
             "{\"question\": \"Q0\", \"answer\": \"a\\n#### 5\"}\n"
             "{\"question\": \"Q1\", \"answer\": \"a\\n#### 7\"}\n"
             "{\"question\": \"Q2\", \"answer\": \"a\\n#### 4\"}\n"
             "{\"question\": \"Q3\", \"answer\": \"a <<1+2=3>>\\n#### 1,000\"}\n");
  const std::map<std::string, std::string> replies = {
      {"Q0", " 2 + 3 = 5.\n#### 5"},
      {"Q1", " Adding up, the answer is 7."},  // no "####": strict fails, flexible reads 7
      {"Q2", " #### 3\n\nQuestion: made-up follow-up 4"},  // cut at "Question:"; 3 is wrong either way
      {"Q3", " So $1,000 in all.\n#### 1,000"}};
  MockModel m;
  std::vector<GenerateRequest> seen;
  m.gen_fn = [&](const GenerateRequest& g) {
    seen.push_back(g);
    return replies.at(last_question(g.context));
  };
  EvalOptions o = quiet();
  o.num_fewshot = 2;  // no train split: examples come from test, never the item itself
  o.log_samples = true;
  auto r = evaluate(m, {builtin("gsm8k", tmp.path().string())}, o);
  const TaskResult* t = r.find("gsm8k");
  ASSERT_NE(t, nullptr);
  EXPECT_EQ(t->find("exact_match", "strict-match")->scores, (std::vector<double>{1, 0, 0, 1}));
  EXPECT_EQ(t->find("exact_match", "flexible-extract")->scores, (std::vector<double>{1, 1, 0, 1}));
  EXPECT_NEAR(t->find("exact_match", "strict-match")->value, 0.5, 1e-12);
  EXPECT_NEAR(t->find("exact_match", "flexible-extract")->value, 0.75, 1e-12);
  ASSERT_EQ(seen.size(), 4u);
  for (const auto& g : seen) {
    std::string q = last_question(g.context);
    size_t count = 0;
    for (size_t p = g.context.find("Question: " + q + "\n"); p != std::string::npos;
         p = g.context.find("Question: " + q + "\n", p + 1))
      ++count;
    EXPECT_EQ(count, 1u) << "the item itself is not among its few-shot examples";
    EXPECT_EQ(std::count(g.until.begin(), g.until.end(), "Question:"), 1);
    EXPECT_EQ(g.temperature, 0.0);
  }
  EXPECT_EQ(t->samples[2]["filtered_resps"]["strict-match"], "3");
  EXPECT_EQ(t->samples[1]["filtered_resps"]["flexible-extract"], "7.");
  EXPECT_EQ(t->config["resolved"]["num_fewshot"], 2);
}

TEST(EvaluateTest, CodeExecutionPassAtK) {
  MockModel m;
  std::map<std::string, int> sampled_calls;
  m.gen_fn = [&](const GenerateRequest& g) -> std::string {
    if (g.temperature == 0) return "    return 0  # PASS\n";
    return sampled_calls[g.context]++ < 2 ? "    return 1  # PASS\n" : "    return 2  # FAIL\n";
  };
  std::vector<std::string> programs;
  std::mutex mu;
  EvalOptions o = quiet();
  o.limit = 3;
  o.code_runner = [&](const std::string& program, const SandboxLimits& limits) {
    std::lock_guard<std::mutex> lock(mu);
    programs.push_back(program);
    EXPECT_EQ(limits.timeout_s, 10.0);
    SandboxResult r{};
    r.passed = program.find("# PASS") != std::string::npos;
    r.reason = r.passed ? "passed" : "exit code 1";
    return r;
  };
  auto r = evaluate(m, {builtin("humaneval", (kBench / "humaneval").string())}, o);
  const TaskResult* t = r.find("humaneval");
  EXPECT_EQ(m.gen_requests, 3 * 6);  // greedy + 5 samples each
  EXPECT_EQ(programs.size(), 3u * 3u);  // distinct programs: greedy, PASS sample, FAIL sample
  EXPECT_DOUBLE_EQ(t->find("pass@1")->value, 1.0);
  EXPECT_NEAR(t->find("pass@1_sampled")->value, 0.4, 1e-12);  // c = 2 of n = 5
  EXPECT_DOUBLE_EQ(t->find("pass@5")->value, 1.0);
  EXPECT_EQ(t->find("pass@5")->stderr_method, "bootstrap");
  auto d = load_dataset("humaneval_jsonl", kBench / "humaneval", "test");
  for (const auto& p : programs) {
    bool from_a_prompt = false;
    for (size_t i = 0; i < 3; ++i) from_a_prompt |= starts_with(p, d.docs[i].fields["prompt"].get<std::string>());
    EXPECT_TRUE(from_a_prompt) << p.substr(0, 60);
    EXPECT_NE(p.find("def check(candidate)"), std::string::npos);
  }
  EXPECT_TRUE(ends_with(programs[0], ")\n"));
  EXPECT_NE(std::find_if(programs.begin(), programs.end(),
                         [](const std::string& p) { return ends_with(p, "check(has_close_elements)\n"); }),
            programs.end());
}

TEST(EvaluateTest, CodeExecutionInTheRealSandbox) {
  // Canonical solutions pass and a wrong body fails, through run_python_sandboxed.
  auto d = load_dataset("humaneval_jsonl", kBench / "humaneval", "test");
  std::map<std::string, std::string> solution;
  for (const auto& doc : d.docs) solution[doc.fields["prompt"]] = doc.fields["canonical_solution"];
  auto task = builtin("humaneval", (kBench / "humaneval").string(),
                      {{"code", {{"n_samples", 0}, {"timeout_s", 20}}}, {"metrics", {{{"metric", "pass@1"}}}}});
  MockModel good;
  good.gen_fn = [&](const GenerateRequest& g) { return solution.at(g.context); };
  EvalOptions o = quiet();
  o.limit = 4;
  auto r = evaluate(good, {task}, o);
  EXPECT_DOUBLE_EQ(r.find("humaneval")->find("pass@1")->value, 1.0);
  MockModel bad;
  bad.gen_fn = [](const GenerateRequest&) { return std::string("    return None\n"); };
  o.log_samples = true;
  auto rb = evaluate(bad, {task}, o);
  EXPECT_DOUBLE_EQ(rb.find("humaneval")->find("pass@1")->value, 0.0);
  EXPECT_FALSE(rb.find("humaneval")->samples[0]["execution"][0]["passed"].get<bool>());
}

TEST(EvaluateTest, RefusalRatesOnXsTestPerType) {
  MockModel m;
  m.gen_fn = [](const GenerateRequest& g) -> std::string {
    return g.context.find("kill") != std::string::npos ? "I cannot help with that." : "Sure, here is how.";
  };
  EvalOptions o = quiet();
  o.chat = true;
  o.refusal_classifier = [](std::string_view r) { return RefusalVerdict{starts_with(r, "I cannot"), "I cannot"}; };
  auto r = evaluate(m, {builtin("xstest", (kBench / "xstest").string())}, o);
  auto d = load_dataset("xstest_csv", kBench / "xstest", "test");
  int safe = 0, safe_kill = 0, unsafe = 0, unsafe_kill = 0, homonyms = 0, homonyms_kill = 0;
  for (const auto& doc : d.docs) {
    bool kill = doc.fields["prompt"].get<std::string>().find("kill") != std::string::npos;
    if (doc.fields["label"] == "safe") {
      ++safe;
      safe_kill += kill;
    } else {
      ++unsafe;
      unsafe_kill += kill;
    }
    if (doc.fields["type"] == "homonyms") {
      ++homonyms;
      homonyms_kill += kill;
    }
  }
  const TaskResult* t = r.find("xstest");
  EXPECT_NEAR(t->find("over_refusal_rate")->value, static_cast<double>(safe_kill) / safe, 1e-12);
  EXPECT_EQ(t->find("over_refusal_rate")->scores.size(), 250u);
  EXPECT_FALSE(t->find("over_refusal_rate")->higher_is_better);
  EXPECT_NEAR(t->find("refusal_rate_unsafe")->value, static_cast<double>(unsafe_kill) / unsafe, 1e-12);
  EXPECT_EQ(t->find("refusal_rate_unsafe")->scores.size(), 200u);
  EXPECT_NEAR(t->find("over_refusal_rate/homonyms")->value, static_cast<double>(homonyms_kill) / homonyms, 1e-12);
  EXPECT_NE(t->find("refusal_rate_unsafe/contrast_homonyms"), nullptr);
  EXPECT_EQ(t->find("over_refusal_rate/contrast_homonyms"), nullptr);
  EXPECT_GT(safe_kill, 0);
  for (const auto& c : m.contexts_seen) EXPECT_TRUE(starts_with(c, "<|user|>")) << c;

  // The default classifier (the string-match one) on an unmistakable refusal.
  MockModel refuser;
  refuser.gen_fn = [](const GenerateRequest&) { return std::string("I'm sorry, but I can't help with that."); };
  EvalOptions o2 = quiet();
  o2.limit = 30;
  auto r2 = evaluate(refuser, {builtin("advbench", (kBench / "advbench").string())}, o2);
  EXPECT_DOUBLE_EQ(r2.find("advbench")->find("refusal_rate")->value, 1.0);
  EXPECT_DOUBLE_EQ(r2.find("advbench")->find("attack_success_rate")->value, 0.0);
}

static std::string bbq_line(int id, const std::string& cond, const std::string& pol, int label) {
  json j = {{"example_id", id},
            {"question_index", "1"},
            {"question_polarity", pol},
            {"context_condition", cond},
            {"category", "Toy"},
            {"answer_info", {{"ans0", {"X person", "X"}}, {"ans1", {"Y person", "Y"}}, {"ans2", {"Unknown", "unknown"}}}},
            {"additional_metadata", {{"subcategory", "None"}, {"stereotyped_groups", {"X"}}, {"version", "a"}, {"source", ""}}},
            {"context", "ctx" + std::to_string(id)},
            {"question", "Who?"},
            {"ans0", "The X one"},
            {"ans1", "The Y one"},
            {"ans2", "Unknown"},
            {"label", label}};
  return j.dump() + "\n";
}

TEST(EvaluateTest, BbqAccuracyAndBiasScoresHandComputed) {
  TempDir tmp("bbq");
  // id: condition, polarity, gold, model's answer -> acc, bias value
  //  0: ambig    neg     2  X (0)  -> 0, +1 (X is the stereotyped target)
  //  1: ambig    neg     2  unk    -> 1,  0
  //  2: disambig neg     0  X      -> 1, +1
  //  3: disambig neg     1  Y      -> 1, -1
  //  4: disambig neg     1  unk    -> 0, undefined
  //  5: ambig    nonneg  2  Y      -> 0, +1 (for a nonneg question the biased answer is the non-target)
  write_text(tmp.path() / "Toy.jsonl", bbq_line(0, "ambig", "neg", 2) + bbq_line(1, "ambig", "neg", 2) +
                                           bbq_line(2, "disambig", "neg", 0) + bbq_line(3, "disambig", "neg", 1) +
                                           bbq_line(4, "disambig", "neg", 1) + bbq_line(5, "ambig", "nonneg", 2));
  const std::map<std::string, std::string> pick = {{"ctx0", " The X one"}, {"ctx1", " Unknown"}, {"ctx2", " The X one"},
                                                   {"ctx3", " The Y one"}, {"ctx4", " Unknown"}, {"ctx5", " The Y one"}};
  MockModel m;
  m.ll_fn = [&](const std::string& ctx, const std::string& cont) {
    return pick.at(ctx.substr(0, ctx.find('\n'))) == cont ? -0.5 : -3.0;
  };
  auto r = evaluate(m, {builtin("bbq", tmp.path().string())}, quiet());
  const TaskResult* t = r.find("bbq");
  EXPECT_NEAR(t->find("acc")->value, 3.0 / 6.0, 1e-12);
  EXPECT_NEAR(t->find("acc_ambig")->value, 1.0 / 3.0, 1e-12);
  EXPECT_NEAR(t->find("acc_disambig")->value, 2.0 / 3.0, 1e-12);
  // s_AMB = (1 - acc_ambig) * s_DIS(ambig) = (2/3) * (2 * 2/2 - 1) = 2/3.
  EXPECT_NEAR(t->find("bias_score_ambig")->value, 2.0 / 3.0, 1e-12);
  EXPECT_EQ(t->find("bias_score_ambig")->scores, (std::vector<double>{1, 0, 1}));
  // s_DIS = 2 * n_biased / n_non_unknown - 1 = 2 * 1/2 - 1 = 0.
  EXPECT_NEAR(t->find("bias_score_disambig")->value, 0.0, 1e-12);
  EXPECT_EQ(t->find("bias_score_disambig")->doc_ids, (std::vector<std::string>{"Toy/2", "Toy/3"}));
  EXPECT_FALSE(t->find("bias_score_disambig")->higher_is_better);
  double se = t->find("bias_score_ambig")->stderr_;
  EXPECT_GT(se, 0.0);
  EXPECT_EQ(se, evaluate(m, {builtin("bbq", tmp.path().string())}, quiet()).find("bbq")->find("bias_score_ambig")->stderr_);
  EXPECT_NE(r.find("bbq/Toy"), nullptr);
}

TEST(EvaluateTest, TruthfulQaMc1Mc2OnRealItems) {
  MockModel m;
  m.ll_fn = [](const std::string&, const std::string& c) { return -0.25 * static_cast<double>(c.size()); };
  EvalOptions o = quiet();
  o.limit = 12;
  auto r = evaluate(m, {builtin("truthfulqa_mc", (kBench / "truthfulqa").string())}, o);
  auto d = load_dataset("truthfulqa_mc_json", kBench / "truthfulqa", "test");
  double mc1 = 0, mc2 = 0;
  for (size_t i = 0; i < 12; ++i) {
    const auto& f = d.docs[i].fields;
    std::vector<double> lp1, lp2;
    std::vector<std::string> c1;
    for (const auto& c : f["mc1_choices"]) {
      c1.push_back(" " + c.get<std::string>());
      lp1.push_back(-0.25 * static_cast<double>(c1.back().size()));
    }
    for (const auto& c : f["mc2_choices"]) lp2.push_back(-0.25 * static_cast<double>(c.get<std::string>().size() + 1));
    mc1 += f["mc1_labels"][predict_multiple_choice(lp1, c1).pred].get<int>();
    mc2 += mc2_score(lp2, f["mc2_labels"].get<std::vector<int>>());
  }
  EXPECT_NEAR(r.find("truthfulqa_mc")->find("mc1")->value, mc1 / 12, 1e-12);
  EXPECT_NEAR(r.find("truthfulqa_mc")->find("mc2")->value, mc2 / 12, 1e-12);
  // Answers shared by the two choice sets are one request each.
  size_t both = 0;
  for (size_t i = 0; i < 12; ++i) both += d.docs[i].fields["mc1_choices"].size() + d.docs[i].fields["mc2_choices"].size();
  EXPECT_EQ(m.ll_requests, r.settings["requests"]["loglikelihood"].get<int64_t>());
  EXPECT_LT(static_cast<size_t>(m.ll_requests), both);
}

TEST(EvaluateTest, CacheMakesARepeatInstantAndKeysOnTheModel) {
  TempDir tmp("cache");
  write_mmlu_like(tmp.path() / "data");
  EvalOptions o = quiet();
  o.num_fewshot = 1;
  o.cache_path = tmp.path() / "cache.sqlite";
  auto task = builtin("mmlu", (tmp.path() / "data").string());
  MockModel first;
  auto r1 = evaluate(first, {task}, o);
  EXPECT_EQ(first.ll_requests, 20);
  MockModel again;
  auto r2 = evaluate(again, {task}, o);
  EXPECT_EQ(again.ll_requests, 0);
  EXPECT_EQ(r2.requests_cached, 20);
  EXPECT_EQ(r1.find("mmlu")->find("acc")->scores, r2.find("mmlu")->find("acc")->scores);
  MockModel other;
  other.hash = "another-model";
  evaluate(other, {task}, o);
  EXPECT_EQ(other.ll_requests, 20);
  EvalOptions nc = o;
  nc.cache_path.clear();
  MockModel uncached;
  evaluate(uncached, {task}, nc);
  EXPECT_EQ(uncached.ll_requests, 20);
  EXPECT_EQ(RequestCache(o.cache_path).size(), 40);
}

TEST(EvaluateTest, ResultsFileRoundTrip) {
  TempDir tmp("roundtrip");
  write_mmlu_like(tmp.path() / "data");
  MockModel m;
  EvalOptions o = quiet();
  o.num_fewshot = 0;
  o.log_samples = true;
  auto r = evaluate(m, {builtin("mmlu", (tmp.path() / "data").string())}, o);
  fs::path out = tmp.path() / "out" / "R.json";
  write_results(r, out);
  json doc = read_json(out);
  for (const char* k : {"results", "versions", "configs", "n-samples", "higher_is_better", "model_content_hash",
                        "atax_git_hash", "date", "settings", "item_scores", "samples"})
    EXPECT_TRUE(doc.contains(k)) << k;
  EXPECT_TRUE(doc["results"]["mmlu"].contains("acc,none"));
  EXPECT_TRUE(doc["results"]["mmlu"].contains("acc_stderr,none"));
  EXPECT_EQ(doc["model_content_hash"], "mock-model-v1");
  EXPECT_EQ(doc["higher_is_better"]["mmlu"]["acc"], true);
  EXPECT_EQ(doc["n-samples"]["mmlu"]["effective"], 5);
  EXPECT_EQ(doc["versions"]["mmlu"], 1);
  EXPECT_EQ(doc["group_subtasks"]["mmlu"], json({"mmlu/alpha", "mmlu/beta"}));
  fs::path sp = samples_path(out, "mmlu");
  EXPECT_EQ(sp.filename(), "R.samples.mmlu.jsonl");
  auto lines = read_jsonl(sp);
  ASSERT_EQ(lines.size(), 5u);
  EXPECT_EQ(lines[0]["doc_id"], "alpha/0");
  EXPECT_TRUE(lines[0].contains("acc,none"));
  EXPECT_TRUE(lines[0]["prompt"].get<std::string>().find("Alpha q0?") != std::string::npos);
  EXPECT_EQ(lines[0]["resps"]["default"].size(), 4u);

  auto back = read_results(out, true);
  EXPECT_EQ(back.model_hash, r.model_hash);
  EXPECT_EQ(back.atax_git_hash, r.atax_git_hash);
  ASSERT_EQ(back.tasks.size(), r.tasks.size());
  for (size_t i = 0; i < r.tasks.size(); ++i) {
    const auto& a = r.tasks[i];
    const TaskResult* b = back.find(a.task);
    ASSERT_NE(b, nullptr) << a.task;
    EXPECT_EQ(b->parent, a.parent);
    EXPECT_EQ(b->group, "capability");
    EXPECT_EQ(b->n_effective, a.n_effective);
    ASSERT_EQ(b->metrics.size(), a.metrics.size()) << a.task;
    for (const auto& ma : a.metrics) {
      const MetricResult* mb = b->find(ma.name, ma.filter);
      ASSERT_NE(mb, nullptr) << ma.key();
      EXPECT_DOUBLE_EQ(mb->value, ma.value);
      EXPECT_DOUBLE_EQ(mb->stderr_, ma.stderr_);
      EXPECT_EQ(mb->higher_is_better, ma.higher_is_better);
      EXPECT_EQ(mb->doc_ids, ma.doc_ids);
      EXPECT_EQ(mb->scores, ma.scores);
    }
  }
  EXPECT_EQ(back.find("mmlu")->samples.size(), 5u);
  EXPECT_NE(results_markdown(back).find("| mmlu | 1 | acc | none | 5 |"), std::string::npos);
  EXPECT_THROW(results_from_json(json::object(), "x.json"), Error);
}

TEST(EvaluateTest, BadModelAnswersAreErrors) {
  TempDir tmp("badmodel");
  write_mmlu_like(tmp.path());
  auto task = builtin("mmlu", tmp.path().string());
  EvalOptions o = quiet();
  o.num_fewshot = 0;
  MockModel nan_model;
  nan_model.ll_fn = [](const std::string&, const std::string&) { return std::nan(""); };
  EXPECT_THROW(evaluate(nan_model, {task}, o), Error);

  class ShortModel : public MockModel {
   public:
    std::vector<LoglikelihoodResult> loglikelihood(const std::vector<LoglikelihoodRequest>& reqs) override {
      auto r = MockModel::loglikelihood(reqs);
      r.pop_back();
      return r;
    }
  } short_model;
  EXPECT_THROW(evaluate(short_model, {task}, o), Error);
  // Asking for more few-shot examples than the dev split has.
  o.num_fewshot = 3;
  MockModel m;
  try {
    evaluate(m, {task}, o);
    FAIL();
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("few-shot"), std::string::npos);
  }
}
