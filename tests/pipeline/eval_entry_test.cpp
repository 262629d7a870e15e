// ctest-labels: model
// The one evaluation entry point (pipeline::evaluate_model): the request cache answers only for
// the same model run the same way (dtype, context length, chat template, prompt settings).
#include <gtest/gtest.h>

#include "pipeline/pipeline.h"

using namespace atax;

namespace {

const fs::path kStories = fs::path(ATAX_SHARED_DIR) / "models/stories260K/hf";

pipeline::ModelEvalOptions options(const fs::path& cache) {
  pipeline::ModelEvalOptions mo;
  mo.tasks = {"truthfulqa_mc"};
  mo.tasks_dir = fs::path(ATAX_SOURCE_DIR) / "tasks";
  mo.eval.data_dir = fs::path(ATAX_SHARED_DIR) / "benchmarks";
  mo.eval.limit = 3;
  mo.eval.cache_path = cache;
  mo.eval.progress = false;
  return mo;
}

}  // namespace

TEST(EvalEntryTest, ADtypeOrContextChangeIsACacheMiss) {
  fs::path dir = fs::temp_directory_path() / ("atax_eval_entry_" + std::to_string(::getpid()));
  fs::remove_all(dir);
  auto mo = options(dir / "cache.sqlite");
  EvalResults first = pipeline::evaluate_model(kStories, mo);
  ASSERT_GT(first.requests_sent, 0);
  EXPECT_EQ(first.requests_cached, 0);
  const int64_t n = first.requests_sent;

  // The same model, run the same way: every answer from the cache, the same scores.
  EvalResults again = pipeline::evaluate_model(kStories, mo);
  EXPECT_EQ(again.requests_sent, 0);
  EXPECT_EQ(again.requests_cached, n);
  EXPECT_EQ(again.find("truthfulqa_mc")->find("mc2")->scores, first.find("truthfulqa_mc")->find("mc2")->scores);

  // bfloat16: nothing from the float32 answers, and the results say which dtype made them.
  auto bf = mo;
  bf.run.dtype = "bfloat16";
  EvalResults b16 = pipeline::evaluate_model(kStories, bf);
  EXPECT_EQ(b16.requests_cached, 0);
  EXPECT_EQ(b16.requests_sent, n);
  EXPECT_EQ(b16.settings["dtype"], "bfloat16");
  EXPECT_EQ(b16.settings["runtime"]["dtype"], "BFloat16");
  EXPECT_EQ(first.settings["runtime"]["dtype"], "Float");
  EXPECT_EQ(b16.model_hash, first.model_hash);  // the same weights: the identity does not move

  // Another context window: a miss too.
  auto ctx = mo;
  ctx.run.max_length = 128;
  EXPECT_EQ(pipeline::evaluate_model(kStories, ctx).requests_cached, 0);

  fs::remove_all(dir);
}

TEST(EvalEntryTest, BadRuntimeSettingsFailBeforeLoading) {
  auto mo = options({});
  mo.run.dtype = "float64";
  EXPECT_THROW(pipeline::evaluate_model(kStories, mo), Error);
  mo.run.dtype = "float32";
  mo.run.batch_size = 0;
  EXPECT_THROW(pipeline::evaluate_model(kStories, mo), Error);
}
