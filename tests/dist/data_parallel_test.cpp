// ctest-labels: dist
// Data-parallel DPO-style training: 2 ranks with per-rank batch b (optionally in no_sync
// micro-batches) end with the same weights as 1 process with batch 2b, within 1e-5.
#include <gtest/gtest.h>

#include "dist_test_util.h"

namespace atax::dist {
namespace {

using testing::run_ranks;
using testing::RunOptions;
using testing::worker_dir;

constexpr int kSteps = 6;
constexpr int64_t kGlobalBatch = 8;  // pairs per optimiser step: 2b with b = 4 per rank
constexpr int64_t kFeatures = 16;
constexpr double kBeta = 0.5;
constexpr double kTolerance = 1e-5;

// A scorer standing in for a policy's sequence log-prob: x (B,F) -> (B,). `unused` never takes
// part in forward, so its gradient stays undefined (GradSync must keep it so).
struct ScorerImpl : torch::nn::Module {
  ScorerImpl() {
    // Registered first, so it lands in the last bucket and does not hold back the others.
    unused = register_module("unused", torch::nn::Linear(4, 4));
    l1 = register_module("l1", torch::nn::Linear(kFeatures, 32));
    l2 = register_module("l2", torch::nn::Linear(32, 1));
  }
  torch::Tensor forward(const torch::Tensor& x) { return l2(torch::tanh(l1(x))).squeeze(-1); }
  torch::nn::Linear l1{nullptr}, l2{nullptr}, unused{nullptr};
};
TORCH_MODULE(Scorer);

struct Variant {
  std::string optimizer = "adamw";  // adamw | sgd
  bool overlap = true;
  int64_t bucket_bytes = 25 << 20;
  int micro = 1;  // micro-batches per rank and step (all but the last under no_sync)
};

Variant variant_from_env() {
  Variant v;
  v.optimizer = testing::env_or("ATAX_DIST_TEST_OPT", "adamw");
  v.overlap = testing::env_or("ATAX_DIST_TEST_OVERLAP", "1") == "1";
  v.bucket_bytes = std::stoll(testing::env_or("ATAX_DIST_TEST_BUCKET", std::to_string(25 << 20)));
  v.micro = std::stoi(testing::env_or("ATAX_DIST_TEST_MICRO", "1"));
  return v;
}

std::map<std::string, std::string> variant_env(const Variant& v) {
  return {{"ATAX_DIST_TEST_OPT", v.optimizer},
          {"ATAX_DIST_TEST_OVERLAP", v.overlap ? "1" : "0"},
          {"ATAX_DIST_TEST_BUCKET", std::to_string(v.bucket_bytes)},
          {"ATAX_DIST_TEST_MICRO", std::to_string(v.micro)}};
}

struct TrainResult {
  std::vector<float> weights;  // every parameter of the policy, flattened
  bool unused_grad_defined = false;
  int64_t buckets = 0, bytes_per_step = 0, overlapped = 0;
  CommStats stats;
};

// DPO loss of pairs (chosen, rejected) with a frozen reference: summed over the pairs (the caller
// divides by the pairs of its rank).
torch::Tensor dpo_loss_sum(Scorer& policy, Scorer& reference, const torch::Tensor& xc, const torch::Tensor& xr) {
  torch::Tensor ref_c, ref_r;
  {
    torch::NoGradGuard no_grad;
    ref_c = reference->forward(xc);
    ref_r = reference->forward(xr);
  }
  auto margin = (policy->forward(xc) - ref_c) - (policy->forward(xr) - ref_r);  // (B,)
  return -torch::log_sigmoid(kBeta * margin).sum();
}

TrainResult train(Context& ctx, const Variant& v) {
  torch::manual_seed(999);
  Scorer reference;
  for (auto& p : reference->parameters()) p.set_requires_grad(false);
  torch::manual_seed(100 + ctx.rank());  // ranks start different; the broadcast makes them agree
  Scorer policy;
  ctx.broadcast_module(*policy);
  torch::manual_seed(7);
  auto xc = torch::randn({kSteps, kGlobalBatch, kFeatures});
  auto xr = torch::randn({kSteps, kGlobalBatch, kFeatures});

  std::vector<torch::Tensor> params = policy->parameters();
  GradSyncOptions gopts;
  gopts.overlap = v.overlap;
  gopts.bucket_bytes = v.bucket_bytes;
  GradSync sync(params, gopts, &ctx);
  std::unique_ptr<torch::optim::Optimizer> opt;
  if (v.optimizer == "sgd")
    opt = std::make_unique<torch::optim::SGD>(params, torch::optim::SGDOptions(0.1).momentum(0.9));
  else
    opt = std::make_unique<torch::optim::AdamW>(params, torch::optim::AdamWOptions(1e-2).weight_decay(0.01));

  TrainResult result;
  auto [begin, end] = shard_range(kGlobalBatch, ctx.rank(), ctx.world_size());
  const double local_n = static_cast<double>(end - begin);
  for (int step = 0; step < kSteps; ++step) {
    for (int m = 0; m < v.micro; ++m) {
      auto [mb, me] = shard_range(end - begin, m, v.micro);
      auto c = xc[step].slice(0, begin + mb, begin + me);
      auto r = xr[step].slice(0, begin + mb, begin + me);
      auto loss = dpo_loss_sum(policy, reference, c, r) / local_n;
      if (m + 1 < v.micro) {
        auto guard = sync.no_sync();
        loss.backward();
      } else {
        loss.backward();
      }
    }
    sync.finish();
    result.unused_grad_defined = result.unused_grad_defined || policy->unused->weight.grad().defined();
    opt->step();
    for (auto& p : params) p.mutable_grad() = torch::Tensor();
  }
  for (auto& p : params) {
    auto flat = p.detach().reshape(-1).contiguous();
    result.weights.insert(result.weights.end(), flat.data_ptr<float>(), flat.data_ptr<float>() + flat.numel());
  }
  result.buckets = sync.num_buckets();
  result.overlapped = sync.overlapped_buckets();
  result.bytes_per_step = sync.bytes_per_step();
  result.stats = ctx.stats();
  return result;
}

ATAX_DIST_WORKER(data_parallel) {
  Context& ctx = init();
  TrainResult r = train(ctx, variant_from_env());
  json out = {{"weights", r.weights},
              {"unused_grad_defined", r.unused_grad_defined},
              {"buckets", r.buckets},
              {"bytes_per_step", r.bytes_per_step},
              {"overlapped", r.overlapped},
              {"all_reduce_calls", r.stats.all_reduce_calls},
              {"all_reduce_bytes", r.stats.all_reduce_bytes}};
  write_json_atomic(worker_dir() / ("rank" + std::to_string(ctx.rank()) + ".json"), out);
  ctx.shutdown();
  return 0;
}

ATAX_DIST_WORKER_MAIN();

// Runs the variant on 2 ranks and compares with 1 process on the whole batch.
void expect_same_as_one_process(const Variant& v, int64_t min_buckets, int64_t overlapped) {
  InitOptions single;
  single.env = DistEnv{};
  TrainResult ref = train(init(single), Variant{v.optimizer, v.overlap, v.bucket_bytes, /*micro=*/1});
  ASSERT_FALSE(ref.unused_grad_defined);

  fs::path dir = testing::make_temp_dir("dp");
  RunOptions ro;
  ro.env = variant_env(v);
  auto runs = run_ranks("data_parallel", dir, ro);
  ASSERT_EQ(runs[0].exit_code, 0) << testing::describe(runs);
  ASSERT_EQ(runs[1].exit_code, 0) << testing::describe(runs);
  for (int r = 0; r < 2; ++r) {
    SCOPED_TRACE("rank " + std::to_string(r));
    json j = read_json(dir / ("rank" + std::to_string(r) + ".json"));
    auto w = j["weights"].get<std::vector<float>>();
    ASSERT_EQ(w.size(), ref.weights.size());
    double max_diff = 0;
    for (size_t k = 0; k < w.size(); ++k) max_diff = std::max(max_diff, std::abs(double(w[k]) - ref.weights[k]));
    EXPECT_LE(max_diff, kTolerance);
    std::cout << "rank " << r << ": max |w(2 ranks) - w(1 process)| = " << max_diff << "\n";
    EXPECT_FALSE(j["unused_grad_defined"].get<bool>());
    EXPECT_GE(j["buckets"].get<int64_t>(), min_buckets);
    // Buckets whose all-reduce started inside backward (all but the one holding `unused`).
    EXPECT_EQ(j["overlapped"].get<int64_t>(), overlapped);
    EXPECT_EQ(j["all_reduce_calls"].get<int64_t>(), kSteps);
    EXPECT_EQ(j["all_reduce_bytes"].get<int64_t>(), kSteps * j["bytes_per_step"].get<int64_t>());
  }
  // The ranks hold bit-identical weights (same reduced gradients, same optimiser arithmetic).
  EXPECT_EQ(read_json(dir / "rank0.json")["weights"], read_json(dir / "rank1.json")["weights"]);
  // The run really changed the weights (the comparison is not between two initial states).
  torch::manual_seed(100);
  Scorer init_policy;
  const int64_t l1_first = init_policy->unused->weight.numel() + init_policy->unused->bias.numel();
  EXPECT_GT(std::abs(init_policy->l1->weight[0][0].item<float>() - ref.weights[l1_first]), 1e-4);
  fs::remove_all(dir);
}

TEST(DistDataParallelTest, AdamWOverlappedSmallBucketsWithMicroBatches) {
  // 256-byte buckets: [l2], [l1.bias], [l1.weight], [unused]; the first three start in backward.
  expect_same_as_one_process(Variant{"adamw", true, 256, 2}, 4, 3);
}

TEST(DistDataParallelTest, SgdOneBucket) { expect_same_as_one_process(Variant{"sgd", true, 25 << 20, 1}, 1, 0); }

TEST(DistDataParallelTest, AdamWSynchronousAfterBackward) {
  expect_same_as_one_process(Variant{"adamw", false, 512, 2}, 2, 0);
}

}  // namespace
}  // namespace atax::dist
