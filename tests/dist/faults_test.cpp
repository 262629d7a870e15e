// ctest-labels: dist
// Faults: a rank that is killed, hangs, or never arrives makes the other stop with a dist error
// and a non-zero exit within ATAX_DIST_TIMEOUT, instead of hanging.
#include <signal.h>

#include <gtest/gtest.h>

#include "dist_test_util.h"

namespace atax::dist {
namespace {

using testing::run_ranks;
using testing::RunOptions;

// Data-parallel steps on a small model; rank 1 announces each step on stdout. With
// ATAX_DIST_TEST_FAULT=hang, rank 1 stops answering after 3 steps (sleeps); with =exit it
// raises SIGKILL on itself; the parent may also kill it from outside.
ATAX_DIST_WORKER(train_until_fault) {
  Context& ctx = init();
  const std::string fault = testing::env_or("ATAX_DIST_TEST_FAULT", "none");
  torch::manual_seed(1);
  torch::nn::Linear net(64, 64);
  ctx.broadcast_module(*net);
  GradSync sync(net->parameters(), GradSyncOptions{}, &ctx);
  torch::optim::SGD opt(net->parameters(), 0.01);
  for (int step = 0; step < 100000; ++step) {
    if (ctx.rank() == 1 && step == 3) {
      if (fault == "hang") std::this_thread::sleep_for(std::chrono::seconds(600));
      if (fault == "exit") ::raise(SIGKILL);
    }
    auto loss = net->forward(torch::randn({8, 64})).pow(2).mean();
    loss.backward();
    sync.finish();
    opt.step();
    opt.zero_grad();
    if (ctx.rank() == 1) std::cout << "step " << step << std::endl;
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  return 0;
}

ATAX_DIST_WORKER(rendezvous_only) {
  init();
  return 0;
}

ATAX_DIST_WORKER_MAIN();

void expect_dist_error(const testing::RankRun& run, const std::string& needle) {
  EXPECT_FALSE(run.timed_out) << run.output;
  EXPECT_EQ(run.exit_code, 2) << run.output;
  EXPECT_NE(run.output.find("atax: error: dist: rank 0 of 2: "), std::string::npos) << run.output;
  EXPECT_NE(run.output.find(needle), std::string::npos) << run.output;
  EXPECT_NE(run.output.find("hint: "), std::string::npos) << run.output;
}

TEST(DistFaultTest, KilledRankStopsTheOther) {
  fs::path dir = testing::make_temp_dir("kill");
  RunOptions ro;
  ro.env = {{"ATAX_DIST_TIMEOUT", "10"}};
  ro.deadline_s = 90;  // hang guard only: the survivor must stop on its own well before
  ro.monitor = [&](std::vector<pid_t>& live) {
    // Kill rank 1 from outside once it has done a few steps.
    if (live[1] < 0) return;
    std::error_code ec;
    if (!fs::exists(dir / "rank1.log", ec)) return;
    if (read_file(dir / "rank1.log").find("step 2\n") != std::string::npos) ::kill(live[1], SIGKILL);
  };
  auto runs = run_ranks("train_until_fault", dir, ro);
  EXPECT_EQ(runs[1].exit_code, 128 + SIGKILL) << testing::describe(runs);
  expect_dist_error(runs[0], "gradient all-reduce failed");
  fs::remove_all(dir);
}

TEST(DistFaultTest, RankThatDiesByItselfStopsTheOther) {
  fs::path dir = testing::make_temp_dir("exit");
  RunOptions ro;
  ro.env = {{"ATAX_DIST_TIMEOUT", "10"}, {"ATAX_DIST_TEST_FAULT", "exit"}};
  ro.deadline_s = 90;
  auto runs = run_ranks("train_until_fault", dir, ro);
  EXPECT_EQ(runs[1].exit_code, 128 + SIGKILL) << testing::describe(runs);
  expect_dist_error(runs[0], "failed");
  fs::remove_all(dir);
}

TEST(DistFaultTest, HungRankTimesOut) {
  fs::path dir = testing::make_temp_dir("hang");
  RunOptions ro;
  ro.env = {{"ATAX_DIST_TIMEOUT", "3"}, {"ATAX_DIST_TEST_FAULT", "hang"}};
  ro.deadline_s = 90;
  ro.monitor = [](std::vector<pid_t>& live) {
    if (live[0] < 0 && live[1] > 0) ::kill(live[1], SIGKILL);  // the survivor has reported; end the hung one
  };
  auto runs = run_ranks("train_until_fault", dir, ro);
  expect_dist_error(runs[0], "gradient all-reduce failed");
  EXPECT_NE(runs[0].output.find("ATAX_DIST_TIMEOUT=3"), std::string::npos) << runs[0].output;
  fs::remove_all(dir);
}

TEST(DistFaultTest, MissingRankFailsRendezvous) {
  fs::path dir = testing::make_temp_dir("missing");
  RunOptions ro;
  ro.env = {{"ATAX_DIST_TIMEOUT", "2"}};
  ro.ranks = {0};  // rank 1 never starts
  ro.deadline_s = 90;
  auto runs = run_ranks("rendezvous_only", dir, ro);
  ASSERT_EQ(runs.size(), 1u);
  EXPECT_FALSE(runs[0].timed_out);
  EXPECT_EQ(runs[0].exit_code, 2) << runs[0].output;
  EXPECT_NE(runs[0].output.find("rendezvous at 127.0.0.1:"), std::string::npos) << runs[0].output;
  EXPECT_NE(runs[0].output.find("hint: every rank needs the same MASTER_ADDR"), std::string::npos) << runs[0].output;
  fs::remove_all(dir);
}

}  // namespace
}  // namespace atax::dist
