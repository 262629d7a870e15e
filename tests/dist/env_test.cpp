// ctest-labels: unit
// DistEnv parsing, sharding arithmetic and the single-process context (no second process).
#include <gtest/gtest.h>

#include "dist/dist.h"

namespace atax::dist {
namespace {

using Vars = std::map<std::string, std::string>;

std::string error_of(const Vars& vars) {
  try {
    DistEnv::parse(vars);
  } catch (const Error& e) {
    return e.what();
  }
  return "";
}

TEST(DistEnvTest, NothingSetIsOneProcess) {
  DistEnv env = DistEnv::parse({});
  EXPECT_EQ(env.rank, 0);
  EXPECT_EQ(env.world_size, 1);
  EXPECT_FALSE(env.distributed());
  EXPECT_EQ(env.source, "none");
  EXPECT_DOUBLE_EQ(env.timeout_s, kDefaultTimeoutSeconds);
}

TEST(DistEnvTest, TorchrunVariables) {
  DistEnv env = DistEnv::parse({{"RANK", "3"}, {"WORLD_SIZE", "8"}, {"LOCAL_RANK", "1"}, {"LOCAL_WORLD_SIZE", "2"},
                                {"MASTER_ADDR", "node0"}, {"MASTER_PORT", "1234"}, {"ATAX_DIST_TIMEOUT", "7.5"}});
  EXPECT_EQ(env.rank, 3);
  EXPECT_EQ(env.world_size, 8);
  EXPECT_EQ(env.local_rank, 1);
  EXPECT_EQ(env.local_world_size, 2);
  EXPECT_EQ(env.master_addr, "node0");
  EXPECT_EQ(env.master_port, 1234);
  EXPECT_DOUBLE_EQ(env.timeout_s, 7.5);
  EXPECT_EQ(env.source, "torchrun");
  EXPECT_FALSE(env.is_main());
}

TEST(DistEnvTest, DefaultsPortAndLocalRank) {
  DistEnv env = DistEnv::parse({{"RANK", "1"}, {"WORLD_SIZE", "2"}, {"MASTER_ADDR", "127.0.0.1"}});
  EXPECT_EQ(env.master_port, kDefaultMasterPort);
  EXPECT_EQ(env.local_rank, 1);
}

TEST(DistEnvTest, SlurmVariables) {
  DistEnv env = DistEnv::parse({{"SLURM_PROCID", "5"}, {"SLURM_NTASKS", "8"}, {"SLURM_LOCALID", "1"},
                                {"SLURM_LAUNCH_NODE_IPADDR", "10.0.0.7"}});
  EXPECT_EQ(env.rank, 5);
  EXPECT_EQ(env.world_size, 8);
  EXPECT_EQ(env.local_rank, 1);
  EXPECT_EQ(env.master_addr, "10.0.0.7");
  EXPECT_EQ(env.source, "slurm");
  // srun's step task count wins over the allocation's.
  EXPECT_EQ(DistEnv::parse({{"SLURM_PROCID", "0"}, {"SLURM_NTASKS", "8"}, {"SLURM_STEP_NUM_TASKS", "1"}}).world_size, 1);
  // torchrun-style variables win over Slurm's (torchrun inside an allocation).
  EXPECT_EQ(DistEnv::parse({{"SLURM_PROCID", "5"}, {"SLURM_NTASKS", "8"}, {"RANK", "0"}, {"WORLD_SIZE", "1"}}).rank, 0);
}

TEST(DistEnvTest, AtaxDistOffForcesOneProcess) {
  DistEnv env = DistEnv::parse({{"RANK", "1"}, {"WORLD_SIZE", "2"}, {"ATAX_DIST", "0"}});
  EXPECT_EQ(env.world_size, 1);
  EXPECT_EQ(env.rank, 0);
}

TEST(DistEnvTest, BadValuesFailWithHint) {
  EXPECT_NE(error_of({{"RANK", "x"}, {"WORLD_SIZE", "2"}, {"MASTER_ADDR", "h"}}).find("RANK='x' is not an integer"),
            std::string::npos);
  EXPECT_NE(error_of({{"RANK", "2"}, {"WORLD_SIZE", "2"}, {"MASTER_ADDR", "h"}}).find("RANK=2 is outside [0, 1]"),
            std::string::npos);
  EXPECT_NE(error_of({{"RANK", "0"}}).find("RANK is set but WORLD_SIZE is not"), std::string::npos);
  EXPECT_NE(error_of({{"WORLD_SIZE", "2"}}).find("WORLD_SIZE is set but RANK is not"), std::string::npos);
  EXPECT_NE(error_of({{"RANK", "0"}, {"WORLD_SIZE", "2"}}).find("MASTER_ADDR is not set"), std::string::npos);
  EXPECT_NE(error_of({{"RANK", "0"}, {"WORLD_SIZE", "2"}, {"MASTER_ADDR", "h"}, {"MASTER_PORT", "70000"}})
                .find("MASTER_PORT=70000 is outside [1, 65535]"),
            std::string::npos);
  EXPECT_NE(error_of({{"ATAX_DIST_TIMEOUT", "-3"}}).find("ATAX_DIST_TIMEOUT='-3'"), std::string::npos);
  EXPECT_NE(error_of({{"ATAX_DIST_TIMEOUT", "soon"}}).find("hint:"), std::string::npos);
  EXPECT_NE(error_of({{"RANK", "x"}, {"WORLD_SIZE", "2"}}).find("hint: start the ranks with `atax launch"),
            std::string::npos);
}

TEST(ShardRangeTest, ContiguousBalancedAndComplete) {
  for (int64_t n : {0, 1, 2, 7, 8, 9, 100, 1001}) {
    for (int world : {1, 2, 3, 4, 8, 64}) {
      int64_t expected_begin = 0, smallest = n, largest = 0;
      for (int r = 0; r < world; ++r) {
        auto [b, e] = shard_range(n, r, world);
        EXPECT_EQ(b, expected_begin) << n << " " << r << "/" << world;
        EXPECT_GE(e, b);
        smallest = std::min(smallest, e - b);
        largest = std::max(largest, e - b);
        expected_begin = e;
      }
      EXPECT_EQ(expected_begin, n);
      EXPECT_LE(largest - smallest, 1);
    }
  }
  EXPECT_EQ(shard_range(10, 0, 4), (std::pair<int64_t, int64_t>{0, 3}));
  EXPECT_EQ(shard_range(10, 1, 4), (std::pair<int64_t, int64_t>{3, 6}));
  EXPECT_EQ(shard_range(10, 2, 4), (std::pair<int64_t, int64_t>{6, 8}));
  EXPECT_EQ(shard_range(10, 3, 4), (std::pair<int64_t, int64_t>{8, 10}));
}

TEST(ContextTest, SingleProcessCallsAreNoOps) {
  InitOptions opts;
  opts.env = DistEnv{};
  Context& ctx = init(opts);
  EXPECT_EQ(&ctx, &context());
  EXPECT_FALSE(ctx.distributed());
  EXPECT_TRUE(ctx.is_main());
  ctx.barrier();
  auto t = torch::tensor({1.0f, 2.0f});
  ctx.all_reduce(t, /*average=*/true);
  EXPECT_FLOAT_EQ(t[1].item<float>(), 2.0f);
  EXPECT_DOUBLE_EQ(ctx.all_reduce_sum(2.5), 2.5);
  EXPECT_EQ(ctx.all_gather("abc"), std::vector<std::string>{"abc"});
  EXPECT_EQ(gather_to_main(json{{"a", 1}}), json::array({json{{"a", 1}}}));
  EXPECT_EQ(gather_lists_to_main({json(1), json(2)}).size(), 2u);
  EXPECT_EQ(per_rank_path("/x/cache.sqlite"), fs::path("/x/cache.sqlite"));
  bool ran = false;
  ctx.on_main("write", [&] { ran = true; });
  EXPECT_TRUE(ran);

  // GradSync leaves gradients alone in a single process.
  auto w = torch::ones({3}, torch::requires_grad());
  GradSync sync({w});
  (w * 2).sum().backward();
  sync.finish();
  EXPECT_FLOAT_EQ(w.grad()[0].item<float>(), 2.0f);
  EXPECT_EQ(sync.bytes_per_step(), 12);
}

}  // namespace
}  // namespace atax::dist
