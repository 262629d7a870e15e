// ctest-labels: dist
// Two ranks on 127.0.0.1: all-reduce, broadcast, all-gather, gather_to_main and on_main give
// the right values on every rank.
#include <gtest/gtest.h>

#include "dist_test_util.h"

namespace atax::dist {
namespace {

using testing::run_ranks;
using testing::RunOptions;
using testing::worker_dir;

// Each rank runs every collective and writes what it got to rank<k>.json.
ATAX_DIST_WORKER(collectives) {
  Context& ctx = init();
  const int r = ctx.rank(), w = ctx.world_size();
  json out;
  out["rank"] = r;
  out["world"] = w;

  auto t = torch::tensor({1.0f * (r + 1), 10.0f * (r + 1), -0.5f});
  ctx.all_reduce(t);
  out["all_reduce_sum"] = std::vector<float>(t.data_ptr<float>(), t.data_ptr<float>() + 3);
  auto a = torch::full({5}, static_cast<double>(r), torch::kFloat64);
  ctx.all_reduce(a, /*average=*/true);
  out["all_reduce_mean"] = a[0].item<double>();
  auto strided = torch::arange(12, torch::kFloat32).view({3, 4}).t();  // not contiguous
  ctx.all_reduce(strided);
  out["all_reduce_strided_01"] = strided[0][1].item<float>();  // 2 × element (row 1, col 0) = 2 × 4
  out["all_reduce_sum_double"] = ctx.all_reduce_sum(0.25 + r);

  // Broadcast from rank 0 and from the last rank; rank-specific values before.
  torch::manual_seed(100 + r);
  auto b = torch::randn({4, 3});
  auto i = torch::full({2}, 7 + r, torch::kInt64);
  std::vector<torch::Tensor> both{b, i};
  ctx.broadcast(both, 0);
  out["broadcast_f"] = std::vector<float>(b.data_ptr<float>(), b.data_ptr<float>() + 12);
  out["broadcast_i"] = i[1].item<int64_t>();
  auto from_last = torch::full({3}, static_cast<float>(r));
  ctx.broadcast(from_last, w - 1);
  out["broadcast_from_last"] = from_last[2].item<float>();

  torch::manual_seed(200 + r);
  torch::nn::Linear lin(5, 3);
  ctx.broadcast_module(*lin);
  out["module_weight_00"] = lin->weight[0][0].item<float>();
  out["module_bias_2"] = lin->bias[2].item<float>();

  // Bytes of different lengths, one empty.
  const std::string mine = r == 0 ? std::string("aaa\0x", 5) : std::string();
  auto gathered = ctx.all_gather(mine);
  json sizes = json::array();
  for (auto& g : gathered) sizes.push_back(g.size());
  out["all_gather_sizes"] = sizes;
  out["all_gather_mine_ok"] = gathered[r] == mine;
  out["broadcast_bytes"] = ctx.broadcast_bytes(r == 0 ? "hello from 0" : "ignored", 0);

  // JSON gathered on rank 0, in rank order; doubles exact.
  json part = {{"rank", r}, {"x", 0.1 * (r + 1)}, {"name", std::string("r") + std::to_string(r)}};
  json g = gather_to_main(part);
  out["gather_to_main"] = g;
  std::vector<json> items;
  auto [begin, end] = my_shard(7);
  for (int64_t k = begin; k < end; ++k) items.push_back(json{{"item", k}});
  out["gather_lists"] = gather_lists_to_main(items);
  out["per_rank_path"] = per_rank_path("/tmp/cache.sqlite").string();

  // on_main: rank 0 writes; a failure on rank 0 reaches every rank.
  ctx.on_main("write marker", [&] { write_file_atomic(worker_dir() / "marker.txt", "written by rank 0"); });
  std::string on_main_error;
  try {
    ctx.on_main("failing write", [] { throw Error("disk full", "/tmp/x", "free some space"); });
  } catch (const Error& e) {
    on_main_error = e.what();
  }
  out["on_main_error"] = on_main_error;
  out["stats_calls"] = ctx.stats().all_reduce_calls;
  ctx.barrier("end");
  write_json_atomic(worker_dir() / ("rank" + std::to_string(r) + ".json"), out);
  ctx.shutdown();
  return 0;
}

ATAX_DIST_WORKER_MAIN();

TEST(DistCollectivesTest, TwoRanksAgree) {
  fs::path dir = testing::make_temp_dir("collectives");
  auto runs = run_ranks("collectives", dir, RunOptions{});
  ASSERT_EQ(runs.size(), 2u);
  ASSERT_EQ(runs[0].exit_code, 0) << testing::describe(runs);
  ASSERT_EQ(runs[1].exit_code, 0) << testing::describe(runs);
  json r0 = read_json(dir / "rank0.json"), r1 = read_json(dir / "rank1.json");

  // Expected values computed independently of the code under test.
  torch::manual_seed(100);
  auto b0 = torch::randn({4, 3});
  torch::manual_seed(200);
  torch::nn::Linear lin0(5, 3);

  for (const json& r : {r0, r1}) {
    SCOPED_TRACE("rank " + r["rank"].dump());
    EXPECT_EQ(r["world"], 2);
    EXPECT_EQ(r["all_reduce_sum"], json::array({3.0, 30.0, -1.0}));
    EXPECT_DOUBLE_EQ(r["all_reduce_mean"].get<double>(), 0.5);
    EXPECT_FLOAT_EQ(r["all_reduce_strided_01"].get<float>(), 8.0f);
    EXPECT_DOUBLE_EQ(r["all_reduce_sum_double"].get<double>(), 1.5);
    auto bf = r["broadcast_f"].get<std::vector<float>>();
    ASSERT_EQ(bf.size(), 12u);
    for (int k = 0; k < 12; ++k) EXPECT_EQ(bf[k], b0.view(-1)[k].item<float>());  // bit-exact copy
    EXPECT_EQ(r["broadcast_i"], 7);
    EXPECT_EQ(r["broadcast_from_last"], 1.0);
    EXPECT_EQ(r["module_weight_00"].get<float>(), lin0->weight[0][0].item<float>());
    EXPECT_EQ(r["module_bias_2"].get<float>(), lin0->bias[2].item<float>());
    EXPECT_EQ(r["all_gather_sizes"], json::array({5, 0}));
    EXPECT_EQ(r["all_gather_mine_ok"], true);
    EXPECT_EQ(r["broadcast_bytes"], "hello from 0");
    EXPECT_NE(r["on_main_error"].get<std::string>().find("disk full"), std::string::npos);
  }
  // gather_to_main: an array in rank order on rank 0, null elsewhere; doubles survive exactly.
  ASSERT_TRUE(r0["gather_to_main"].is_array());
  ASSERT_EQ(r0["gather_to_main"].size(), 2u);
  EXPECT_EQ(r0["gather_to_main"][1]["name"], "r1");
  EXPECT_EQ(r0["gather_to_main"][0]["x"].get<double>(), 0.1);
  EXPECT_EQ(r0["gather_to_main"][1]["x"].get<double>(), 0.2);
  EXPECT_TRUE(r1["gather_to_main"].is_null());
  // Shards concatenated in rank order give the single-process order 0..6.
  ASSERT_EQ(r0["gather_lists"].size(), 7u);
  for (int k = 0; k < 7; ++k) EXPECT_EQ(r0["gather_lists"][k]["item"], k);
  EXPECT_TRUE(r1["gather_lists"].empty());
  EXPECT_EQ(r0["per_rank_path"], "/tmp/cache.sqlite");
  EXPECT_EQ(r1["per_rank_path"], "/tmp/cache.rank1.sqlite");
  EXPECT_EQ(read_file(dir / "marker.txt"), "written by rank 0");
  EXPECT_NE(r1["on_main_error"].get<std::string>().find("failing write failed on rank 0"), std::string::npos);
  EXPECT_EQ(r0["stats_calls"], 4);  // 3 all_reduce + all_reduce_sum
  fs::remove_all(dir);
}

}  // namespace
}  // namespace atax::dist
