// ctest-labels: dist
// launch_local (the engine of `atax launch`): starts the ranks with the rendezvous variables,
// prefixes their lines, and stops the others when one fails.
#include <fcntl.h>
#include <unistd.h>

#include <gtest/gtest.h>

#include "dist_test_util.h"

namespace atax::dist {
namespace {

// Prints what the launcher gave it, then all-reduces its rank to prove the rendezvous works.
ATAX_DIST_WORKER(hello) {
  Context& ctx = init();
  auto t = torch::full({1}, static_cast<float>(ctx.rank() + 1));
  ctx.all_reduce(t);
  std::cout << "hello from " << ctx.rank() << "/" << ctx.world_size() << " local " << ctx.local_rank() << " sum "
            << t.item<float>() << "\npartial line without newline" << std::flush;
  std::cerr << "stderr of " << ctx.rank() << std::endl;
  ctx.shutdown();
  return 0;
}

// Rank 1 fails at once; rank 0 ignores everything (no collectives) and would sleep for minutes.
ATAX_DIST_WORKER(one_fails) {
  DistEnv env = DistEnv::from_env();
  if (env.rank == 1) {
    std::cerr << "boom" << std::endl;
    return 3;
  }
  std::this_thread::sleep_for(std::chrono::seconds(300));
  return 0;
}

ATAX_DIST_WORKER_MAIN();

struct Captured {
  LaunchResult result;
  std::string out, err;
};

Captured launch(const std::string& worker, int nproc, double grace_s) {
  fs::path dir = testing::make_temp_dir("launch");
  int out_fd = ::open((dir / "out").c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
  int err_fd = ::open((dir / "err").c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
  LaunchOptions lo;
  lo.nproc = nproc;
  lo.grace_s = grace_s;
  lo.program = testing::self_exe();
  lo.env = {{"ATAX_DIST_TEST_WORKER", worker}, {"ATAX_PROGRESS", "0"}, {"ATAX_DIST_TIMEOUT", "20"}};
  lo.out_fd = out_fd;
  lo.err_fd = err_fd;
  Captured c;
  c.result = launch_local(lo);
  ::close(out_fd);
  ::close(err_fd);
  c.out = read_file(dir / "out");
  c.err = read_file(dir / "err");
  fs::remove_all(dir);
  return c;
}

TEST(DistLaunchTest, StartsRanksAndPrefixesTheirLines) {
  Captured c = launch("hello", 2, 5);
  EXPECT_EQ(c.result.exit_code, 0) << c.out << c.err;
  EXPECT_EQ(c.result.failed_rank, -1);
  EXPECT_NE(c.out.find("[rank 0] hello from 0/2 local 0 sum 3\n"), std::string::npos) << c.out;
  EXPECT_NE(c.out.find("[rank 1] hello from 1/2 local 1 sum 3\n"), std::string::npos) << c.out;
  EXPECT_NE(c.out.find("[rank 1] partial line without newline\n"), std::string::npos) << c.out;
  EXPECT_NE(c.err.find("[rank 0] stderr of 0\n"), std::string::npos) << c.err;
  EXPECT_NE(c.err.find("[rank 1] stderr of 1\n"), std::string::npos) << c.err;
}

TEST(DistLaunchTest, StopsTheOthersWhenOneFails) {
  Captured c = launch("one_fails", 2, 0.5);
  EXPECT_EQ(c.result.failed_rank, 1);
  EXPECT_EQ(c.result.exit_code, 3);
  EXPECT_NE(c.result.message.find("rank 1 exited with status 3"), std::string::npos) << c.result.message;
  EXPECT_NE(c.result.message.find("stopped rank 0"), std::string::npos) << c.result.message;
  EXPECT_NE(c.err.find("[rank 1] boom\n"), std::string::npos) << c.err;
}

TEST(DistLaunchTest, RejectsBadOptions) {
  LaunchOptions lo;
  lo.nproc = 0;
  EXPECT_THROW(launch_local(lo), Error);
  lo.nproc = 1;
  lo.master_port = 70000;
  EXPECT_THROW(launch_local(lo), Error);
}

}  // namespace
}  // namespace atax::dist
