// ctest-labels: dist model
// Data-parallel DPO over two local ranks (each takes its shard of every micro-batch; gradients
// summed through dist::GradSync) follows the single-process run step for step.
#include <sys/wait.h>
#include <unistd.h>

#include <gtest/gtest.h>

#include "tiny.h"

namespace atax {
namespace {

using namespace testing_tiny;

constexpr const char* kChildEnv = "ATAX_TRAIN_DIST_CHILD";

DpoConfig dist_config(const fs::path& dir, const std::string& out) {
  DpoConfig c;
  c.common = quick_common(dir / out);
  c.common.max_steps = 5;
  c.common.batch_size = 6;
  c.common.grad_accum = 2;
  c.model = dir / "base";
  c.data = dir / "prefs.jsonl";
  c.eval_data = dir / "heldout.jsonl";
  c.beta = 0.3;
  c.lambda_reg = 0.2;
  c.nll_data = dir / "sft.jsonl";
  c.nll_weight = 0.3;
  c.ref_cache = dir / "ref_cache";
  return c;  // live frozen reference
}

TEST(DistTrainTest, Child) {
  const char* dir = std::getenv(kChildEnv);
  if (!dir) GTEST_SKIP() << "runs only as a rank of TwoRanksMatchOneProcess";
  train_dpo(dist_config(dir, "two_ranks"));
}

TEST(DistTrainTest, TwoRanksMatchOneProcess) {
  if (std::getenv(kChildEnv)) GTEST_SKIP();
  Tiny t = make_tiny("dist");
  auto single = train_dpo(dist_config(t.dir, "one_rank"));
  const std::string port = std::to_string(20000 + ::getpid() % 20000);
  std::vector<pid_t> pids;
  for (int rank = 0; rank < 2; ++rank) {
    pid_t pid = fork();
    ASSERT_GE(pid, 0);
    if (pid == 0) {
      setenv(kChildEnv, t.dir.c_str(), 1);
      setenv("ATAX_PROGRESS", "0", 1);
      setenv("RANK", std::to_string(rank).c_str(), 1);
      setenv("LOCAL_RANK", std::to_string(rank).c_str(), 1);
      setenv("WORLD_SIZE", "2", 1);
      setenv("LOCAL_WORLD_SIZE", "2", 1);
      setenv("MASTER_ADDR", "127.0.0.1", 1);
      setenv("MASTER_PORT", port.c_str(), 1);
      const char* args[] = {"/proc/self/exe", "--gtest_filter=DistTrainTest.Child", nullptr};
      execv("/proc/self/exe", const_cast<char* const*>(args));
      _exit(127);
    }
    pids.push_back(pid);
  }
  for (pid_t pid : pids) {
    int status = 0;
    waitpid(pid, &status, 0);
    ASSERT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0) << "a rank failed";
  }
  auto lines = read_jsonl(t.dir / "two_ranks" / "train_log.jsonl");
  ASSERT_EQ(lines.size(), single.log.size());
  for (size_t i = 0; i < lines.size(); ++i)
    for (const char* k : {"loss", "dpo_loss", "reg_loss", "nll_loss", "rewards/margins", "grad_norm"})
      EXPECT_NEAR(lines[i][k].get<double>(), single.log[i][k].get<double>(),
                  1e-5 * std::max(1.0, std::abs(single.log[i][k].get<double>())))
          << k << " at step " << i + 1;
  EXPECT_NEAR(lines.back()["eval/rewards/accuracies"].get<double>(),
              single.log.back()["eval/rewards/accuracies"].get<double>(), 1e-9);
  auto w1 = load_safetensors_dir(t.dir / "one_rank"), w2 = load_safetensors_dir(t.dir / "two_ranks");
  EXPECT_LT(max_abs_diff(w1, w2), 0.01 * max_abs_diff(w1, load_safetensors_dir(t.dir / "base")));
  fs::remove_all(t.dir);
}

}  // namespace
}  // namespace atax
