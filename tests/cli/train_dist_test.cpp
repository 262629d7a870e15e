// ctest-labels: dist model
// `atax launch --nproc 2 -- train ...` through the built binary: only rank 0 prints the summary
// and writes the reference-logprob cache, a cached reference is handed to every rank, and --threads
// reaches the ranks.
#include <regex>

#include "../train/tiny.h"
#include "cli_run.h"

using namespace atax;
using namespace atax::cli_test;

namespace {

int count(const std::string& text, const std::string& needle) {
  int n = 0;
  for (size_t p = text.find(needle); p != std::string::npos; p = text.find(needle, p + 1)) ++n;
  return n;
}

std::vector<std::string> dpo_args(const testing_tiny::Tiny& t, const fs::path& out) {
  return {"launch", "--nproc", "2", "--", "train", "dpo", "--model", t.model.string(), "--data", t.prefs.string(),
          "--out", out.string(), "--max-steps", "2", "--batch-size", "4", "--max-length", "64", "--seed", "3",
          "--precompute-ref", "--ref-cache", (t.dir / "ref_cache").string(), "--no-progress"};
}

}  // namespace

TEST(TrainDistTest, RankZeroAlonePrintsTheSummaryAndWritesTheReferenceCache) {
  testing_tiny::Tiny t = testing_tiny::make_tiny("cli_train_dist");
  RunResult r = run_atax(dpo_args(t, t.dir / "dpo1"), {"ATAX_DIST_TIMEOUT=120", "ATAX_PROGRESS=plain"});
  ASSERT_EQ(r.code, 0) << r;
  // The summary (steps, loss, model) once, from rank 0.
  EXPECT_EQ(count(r.out, "[rank 0] steps 2 "), 1) << r;
  EXPECT_EQ(count(r.out, "[rank 0] model: "), 1) << r;
  EXPECT_EQ(count(r.out, "[rank 1] "), 0) << r;
  // 96 pairs, 18 duplicates dropped; each rank logs where its reference came from.
  EXPECT_EQ(count(r.err, "reference log-probs of 78 pairs computed"), 2) << r;
  // One cache file, written by rank 0 alone (no per-rank copies, no temporary left).
  std::vector<std::string> files;
  for (const auto& e : fs::directory_iterator(t.dir / "ref_cache")) files.push_back(e.path().filename().string());
  ASSERT_EQ(files.size(), 1u) << ::testing::PrintToString(files);
  EXPECT_TRUE(std::regex_match(files[0], std::regex("ref_logps-[0-9a-f]{32}\\.bin"))) << files[0];
  EXPECT_TRUE(fs::exists(t.dir / "dpo1" / "train_result.json"));

  // Again into another folder: rank 0 reads the cache and hands it to rank 1; the run is the same.
  RunResult again = run_atax(dpo_args(t, t.dir / "dpo2"), {"ATAX_DIST_TIMEOUT=120", "ATAX_PROGRESS=plain"});
  ASSERT_EQ(again.code, 0) << again;
  EXPECT_EQ(count(again.err, "reference log-probs of 78 pairs read from the cache"), 2) << again;
  const auto l1 = read_jsonl(t.dir / "dpo1" / "train_log.jsonl"), l2 = read_jsonl(t.dir / "dpo2" / "train_log.jsonl");
  ASSERT_EQ(l1.size(), 2u);
  ASSERT_EQ(l2.size(), 2u);
  for (size_t i = 0; i < l1.size(); ++i) EXPECT_NEAR(l2[i]["loss"].get<double>(), l1[i]["loss"].get<double>(), 1e-6);
  fs::remove_all(t.dir);
}

TEST(TrainDistTest, ThreadsReachTheRanks) {
  testing_tiny::Tiny t = testing_tiny::make_tiny("cli_train_dist_threads");
  // SFT under two ranks with --threads 2: each rank logs the threads it runs with (2 for OpenBLAS,
  // LibTorch's own pool then 1; see configure_threads).
  RunResult r = run_atax({"launch", "--nproc", "2", "--", "train", "sft", "--model", t.model.string(), "--data",
                          t.sft.string(), "--out", (t.dir / "sft").string(), "--max-steps", "1", "--batch-size", "4",
                          "--threads", "2", "--no-progress"},
                         {"ATAX_DIST_TIMEOUT=120", "ATAX_PROGRESS=plain"});
  ASSERT_EQ(r.code, 0) << r;
  EXPECT_EQ(count(r.out, "[rank 0] steps 1 "), 1) << r;
  EXPECT_EQ(count(r.out, "[rank 1] "), 0) << r;
  EXPECT_EQ(count(r.err, ", 2 BLAS threads, 1 intra-op threads"), 2) << r;
  // Without --threads (and without OMP_NUM_THREADS) a multi-rank job runs one thread per rank.
  if (std::getenv("OMP_NUM_THREADS")) GTEST_SKIP() << "OMP_NUM_THREADS is set: the ranks keep it";
  RunResult one = run_atax({"launch", "--nproc", "2", "--", "train", "sft", "--model", t.model.string(), "--data",
                            t.sft.string(), "--out", (t.dir / "sft1").string(), "--max-steps", "1", "--batch-size", "4",
                            "--no-progress"},
                           {"ATAX_DIST_TIMEOUT=120", "ATAX_PROGRESS=plain"});
  ASSERT_EQ(one.code, 0) << one;
  EXPECT_EQ(count(one.err, "1 intra-op threads"), 2) << one;
  fs::remove_all(t.dir);
}
