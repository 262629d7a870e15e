// ctest-labels: model
// The one evaluation entry point (pipeline::evaluate_model): the request cache answers only for
// the same model run the same way (dtype, context length, chat template, prompt settings).
#include <functional>

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

// A fresh folder per test (removed at the end), so each test starts from an empty request cache.
struct Scratch {
  fs::path dir;
  explicit Scratch(const std::string& name)
      : dir(fs::temp_directory_path() / ("atax_eval_entry_" + name + "_" + std::to_string(::getpid()))) {
    fs::remove_all(dir);
    fs::create_directories(dir);
  }
  ~Scratch() { fs::remove_all(dir); }
};

// Writes truthfulqa_mc's task file, changed by `edit`, to `dir` and returns its path.
fs::path write_task(const fs::path& dir, const std::function<void(json&)>& edit) {
  json j = read_json(fs::path(ATAX_SOURCE_DIR) / "tasks/safety/truthfulqa_mc.json");
  edit(j);
  const fs::path file = dir / "truthfulqa_mc.json";
  write_json_atomic(file, j);
  return file;
}

// Evaluates `mo` twice: the first run sends every request (a miss), the identical rerun answers
// every one from the cache (a full hit). Returns the number of requests.
int64_t expect_miss_then_full_hit(const pipeline::ModelEvalOptions& mo) {
  const EvalResults first = pipeline::evaluate_model(kStories, mo);
  EXPECT_GT(first.requests_sent, 0);
  EXPECT_EQ(first.requests_cached, 0);
  const EvalResults again = pipeline::evaluate_model(kStories, mo);
  EXPECT_EQ(again.requests_sent, 0);
  EXPECT_EQ(again.requests_cached, first.requests_sent);
  return first.requests_sent;
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

// Each prompt setting is part of the request key: a changed few-shot count, task version, system
// instruction or chat template is answered by the model again, never from another setting's cache.
TEST(EvalEntryTest, AFewshotCountChangeIsACacheMiss) {
  Scratch s("fewshot");
  auto mo = options(s.dir / "cache.sqlite");
  // truthfulqa has no few-shot split: draw the examples from the evaluated split (never the item).
  mo.tasks = {write_task(s.dir, [](json& j) { j["fewshot"] = {{"num_fewshot", 0}, {"fallback_to_eval_split", true}}; })
                  .string()};
  const int64_t n = expect_miss_then_full_hit(mo);
  auto one_shot = mo;
  one_shot.eval.num_fewshot = 1;
  const EvalResults r = pipeline::evaluate_model(kStories, one_shot);
  EXPECT_EQ(r.requests_cached, 0);
  EXPECT_EQ(r.requests_sent, n);
  EXPECT_EQ(r.find("truthfulqa_mc")->config["resolved"]["num_fewshot"], 1);
  const EvalResults zero_shot = pipeline::evaluate_model(kStories, mo);  // the 0-shot answers are still there
  EXPECT_EQ(zero_shot.requests_sent, 0);
  EXPECT_EQ(zero_shot.requests_cached, n);
}

TEST(EvalEntryTest, ATaskVersionChangeIsACacheMiss) {
  Scratch s("version");
  auto mo = options(s.dir / "cache.sqlite");
  mo.tasks = {write_task(s.dir, [](json&) {}).string()};
  const int64_t n = expect_miss_then_full_hit(mo);
  // The same prompts under version 2: the version alone must turn every request into a miss.
  write_task(s.dir, [](json& j) { j["version"] = j["version"].get<int>() + 1; });
  const EvalResults v2 = pipeline::evaluate_model(kStories, mo);
  EXPECT_EQ(v2.find("truthfulqa_mc")->version, 2);
  EXPECT_EQ(v2.requests_cached, 0);
  EXPECT_EQ(v2.requests_sent, n);
}

TEST(EvalEntryTest, ASystemInstructionIsACacheMiss) {
  Scratch s("system");
  auto mo = options(s.dir / "cache.sqlite");
  mo.eval.chat = true;
  mo.run.chat_template = "chatml";
  const int64_t n = expect_miss_then_full_hit(mo);
  auto sys = mo;
  sys.eval.system_instruction = "Answer truthfully.";
  const EvalResults r = pipeline::evaluate_model(kStories, sys);
  EXPECT_EQ(r.requests_cached, 0);
  EXPECT_EQ(r.requests_sent, n);
  const EvalResults without = pipeline::evaluate_model(kStories, mo);  // without it again: every answer cached
  EXPECT_EQ(without.requests_sent, 0);
  EXPECT_EQ(without.requests_cached, n);
}

TEST(EvalEntryTest, AChatTemplateIsACacheMiss) {
  Scratch s("chat");
  auto plain = options(s.dir / "cache.sqlite");
  const int64_t n = expect_miss_then_full_hit(plain);
  // Plain prompts -> chatml -> llama3: each one a miss for the ones before it.
  auto chatml = plain;
  chatml.eval.chat = true;
  chatml.run.chat_template = "chatml";
  EXPECT_EQ(expect_miss_then_full_hit(chatml), n);
  auto llama3 = chatml;
  llama3.run.chat_template = "llama3";
  EXPECT_EQ(expect_miss_then_full_hit(llama3), n);
}
