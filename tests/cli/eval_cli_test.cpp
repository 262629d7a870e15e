// ctest-labels: model
// `atax tasks list` and `atax eval` through the built binary, on the tiny real model stories260K and
// the real benchmark files in ../shared.
#include <cstdio>
#include <string>

#include <sys/wait.h>
#include <unistd.h>

#include <gtest/gtest.h>

#include "eval/eval.h"

using namespace atax;

namespace {

const std::string kAtax = std::string(ATAX_BINARY_DIR) + "/atax";
const std::string kShared = ATAX_SHARED_DIR;
const std::string kTasks = std::string(ATAX_SOURCE_DIR) + "/tasks";

struct CmdResult {
  int code = -1;
  std::string out;
};

CmdResult run(const std::string& args) {
  std::string cmd = "ATAX_PROGRESS=0 " + kAtax + " " + args + " 2>&1";
  CmdResult r;
  FILE* p = ::popen(cmd.c_str(), "r");
  if (!p) return r;
  char buf[4096];
  size_t n;
  while ((n = std::fread(buf, 1, sizeof(buf), p)) > 0) r.out.append(buf, n);
  int status = ::pclose(p);
  r.code = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
  return r;
}

fs::path temp_dir(const std::string& tag) {
  fs::path p = fs::temp_directory_path() / ("atax_eval_cli_" + tag + "_" + std::to_string(::getpid()));
  fs::remove_all(p);
  fs::create_directories(p);
  return p;
}

}  // namespace

TEST(EvalCliTest, TasksList) {
  CmdResult r = run("tasks list --tasks-dir " + kTasks);
  ASSERT_EQ(r.code, 0) << r.out;
  for (const char* n : {"mmlu", "gsm8k", "humaneval", "truthfulqa_mc", "bbq", "xstest", "harmbench", "advbench",
                        "toy_knowledge", "toy_creativity"})
    EXPECT_NE(r.out.find(n), std::string::npos) << n;
  CmdResult show = run("tasks show gsm8k --tasks-dir " + kTasks);
  EXPECT_EQ(show.code, 0);
  EXPECT_NE(show.out.find("flexible-extract"), std::string::npos);
}

TEST(EvalCliTest, EvalWritesResultsAndSamples) {
  fs::path dir = temp_dir("eval");
  std::string out = (dir / "R.json").string();
  CmdResult r = run("eval --model " + kShared + "/models/stories260K/hf --tasks mmlu,truthfulqa_mc --limit 2 --num-fewshot 0"
              " --data-dir " + kShared + "/benchmarks --tasks-dir " + kTasks + " --cache " + (dir / "c.sqlite").string() +
              " --out " + out + " --log-samples --device cpu");
  ASSERT_EQ(r.code, 0) << r.out;
  EXPECT_NE(r.out.find("| mmlu | 1 | acc | none | 10 |"), std::string::npos) << r.out;
  auto res = read_results(out, true);
  ASSERT_NE(res.find("mmlu"), nullptr);
  EXPECT_EQ(res.find("mmlu")->n_effective, 10);  // 2 per subject, 5 subjects
  EXPECT_EQ(res.find("mmlu")->samples.size(), 10u);
  EXPECT_EQ(res.find("truthfulqa_mc")->n_effective, 2);
  const MetricResult* acc = res.find("mmlu")->find("acc");
  ASSERT_NE(acc, nullptr);
  EXPECT_GE(acc->value, 0.0);
  EXPECT_LE(acc->value, 1.0);
  EXPECT_EQ(acc->scores.size(), 10u);
  EXPECT_FALSE(res.model_hash.empty());
  // Again: every request comes from the cache, the numbers are the same.
  CmdResult again = run("eval --model " + kShared + "/models/stories260K/hf --tasks mmlu,truthfulqa_mc --limit 2 --num-fewshot 0"
                  " --data-dir " + kShared + "/benchmarks --tasks-dir " + kTasks + " --cache " + (dir / "c.sqlite").string() +
                  " --out " + (dir / "R2.json").string() + " --device cpu");
  ASSERT_EQ(again.code, 0) << again.out;
  auto res2 = read_results(dir / "R2.json");
  EXPECT_EQ(res2.requests_sent, 0);
  EXPECT_EQ(res2.find("mmlu")->find("acc")->scores, acc->scores);
  fs::remove_all(dir);
}

TEST(EvalCliTest, UserErrorsAreOneClearMessage) {
  CmdResult typo = run("eval --model x --tasks mmlu_typo --tasks-dir " + kTasks + " --out /tmp/never.json");
  EXPECT_EQ(typo.code, 2);
  EXPECT_NE(typo.out.find("unknown task \"mmlu_typo\""), std::string::npos) << typo.out;
  CmdResult nodata = run("eval --model x --tasks mmlu --tasks-dir " + kTasks + " --data-dir /nonexistent --out /tmp/never.json");
  EXPECT_EQ(nodata.code, 2);
  EXPECT_NE(nodata.out.find("data not found"), std::string::npos) << nodata.out;
  EXPECT_NE(nodata.out.find("hint:"), std::string::npos) << nodata.out;
}
