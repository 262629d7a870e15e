// ctest-labels: unit
// The request cache survives a killed evaluation: a child process evaluates with a slow mock model
// and is SIGKILLed halfway; the re-run sends only the requests that were not cached, and scores
// exactly as an uninterrupted run does.
#include <csignal>
#include <thread>

#include <sys/wait.h>
#include <unistd.h>

#include <gtest/gtest.h>

#include "eval/eval.h"
#include "mock_model.h"

using namespace atax;
using atax::testing::MockModel;
using atax::testing::TempDir;
using atax::testing::write_text;

static const fs::path kTasks = fs::path(ATAX_SOURCE_DIR) / "tasks";

static TaskSpec mmlu_task(const fs::path& data) {
  json j = read_json(select_tasks({"mmlu"}, kTasks)[0].file);
  j["dataset"]["path"] = data.string();
  return parse_task_spec(j, "mmlu.json");
}

TEST(RequestCacheTest, KilledEvaluationResumesWithoutResending) {
  TempDir tmp("resume");
  std::string csv;
  for (int i = 0; i < 40; ++i) csv += "Question number " + std::to_string(i) + "?,a,b,c,d," + "ABCD"[i % 4] + "\n";
  write_text(tmp.path() / "data" / "test" / "subject_test.csv", csv);
  const TaskSpec task = mmlu_task(tmp.path() / "data");
  const fs::path cache_path = tmp.path() / "cache.sqlite";
  constexpr int64_t kTotal = 160;  // 40 docs x 4 choices
  constexpr int64_t kBatch = 4;

  pid_t pid = ::fork();
  ASSERT_GE(pid, 0);
  if (pid == 0) {  // child: a slow evaluation that will not finish
    MockModel slow;
    slow.sleep_per_batch_s = 0.2;
    EvalOptions o;
    o.progress = false;
    o.num_fewshot = 0;
    o.batch_size = kBatch;
    o.cache_path = cache_path;
    try {
      evaluate(slow, {task}, o);
    } catch (...) {
      ::_exit(3);
    }
    ::_exit(0);
  }
  // Parent: wait until a few batches are committed, then kill the child mid-run.
  int64_t cached = 0;
  bool child_exited = false;
  for (int i = 0; i < 6000 && cached < 3 * kBatch; ++i) {  // at most ~60 s
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
    int status = 0;
    if (::waitpid(pid, &status, WNOHANG) == pid) {
      child_exited = true;
      break;
    }
    if (fs::exists(cache_path)) cached = RequestCache(cache_path).size();
  }
  ASSERT_FALSE(child_exited) << "the child finished or failed before it was killed";
  ASSERT_EQ(::kill(pid, SIGKILL), 0);
  int status = 0;
  ASSERT_EQ(::waitpid(pid, &status, 0), pid);
  ASSERT_TRUE(WIFSIGNALED(status));
  EXPECT_EQ(WTERMSIG(status), SIGKILL);

  cached = RequestCache(cache_path).size();
  ASSERT_GT(cached, 0);
  ASSERT_LT(cached, kTotal);
  EXPECT_EQ(cached % kBatch, 0) << "commits happen per batch";

  // Resume: only the missing requests reach the model.
  MockModel resumed;
  EvalOptions o;
  o.progress = false;
  o.num_fewshot = 0;
  o.batch_size = kBatch;
  o.cache_path = cache_path;
  auto r = evaluate(resumed, {task}, o);
  EXPECT_EQ(resumed.ll_requests, kTotal - cached);
  EXPECT_EQ(r.requests_cached, cached);
  EXPECT_EQ(RequestCache(cache_path).size(), kTotal);

  // Same scores as a run that was never interrupted, and a repeat sends nothing.
  MockModel fresh;
  o.cache_path.clear();
  auto clean = evaluate(fresh, {task}, o);
  EXPECT_EQ(r.find("mmlu")->find("acc")->scores, clean.find("mmlu")->find("acc")->scores);
  EXPECT_EQ(r.find("mmlu")->find("acc_norm")->scores, clean.find("mmlu")->find("acc_norm")->scores);
  MockModel repeat;
  o.cache_path = cache_path;
  evaluate(repeat, {task}, o);
  EXPECT_EQ(repeat.ll_requests, 0);
}

TEST(RequestCacheTest, KeysAndEntries) {
  TempDir tmp("cachekeys");
  RequestCache c(tmp.path() / "sub" / "c.sqlite");
  json req = {{"context", "a"}, {"continuation", " b"}};
  std::string k1 = RequestCache::make_key("m1", "loglikelihood", req);
  EXPECT_EQ(k1.size(), 64u);
  EXPECT_NE(k1, RequestCache::make_key("m2", "loglikelihood", req));
  EXPECT_NE(k1, RequestCache::make_key("m1", "generate_until", req));
  EXPECT_NE(k1, RequestCache::make_key("m1", "loglikelihood", {{"context", "a"}, {"continuation", "b"}}));
  EXPECT_FALSE(c.get(k1).has_value());
  c.put({{k1, "m1", "loglikelihood", req, {{"logprob", -1.25}, {"is_greedy", true}, {"n_tokens", 1}}}});
  auto v = c.get(k1);
  ASSERT_TRUE(v.has_value());
  EXPECT_EQ((*v)["logprob"], -1.25);
  // Doubles survive bit for bit.
  double x = -0.1234567890123456789;
  c.put({{k1, "m1", "loglikelihood", req, {{"logprob", x}}}});
  EXPECT_EQ((*c.get(k1))["logprob"].get<double>(), x);
  EXPECT_EQ(c.size(), 1);
  write_text(tmp.path() / "not_a_db.sqlite", "this is not a database, just text that is long enough to look like a header");
  EXPECT_THROW(RequestCache(tmp.path() / "not_a_db.sqlite"), Error);
}
