// ctest-labels: unit
// Hostile and careless input at the command line: numeric options checked for meaning, outputs
// never destroyed, --config honoured, hints naming options that exist, batches sized from data.
#include "cli_run.h"

using namespace atax;
using namespace atax::cli_test;

namespace {
const std::string kStories = kShared + "/models/stories260K/hf";

// Exited by itself (no signal) with a non-zero status, and the message names `needle`.
void expect_clean_failure(const RunResult& r, const std::string& needle) {
  EXPECT_NE(r.code, 0) << r;
  EXPECT_LT(r.code, 128) << r;  // not killed by a signal
  EXPECT_NE(r.all().find(needle), std::string::npos) << r;
  EXPECT_EQ(r.all().find("Exception raised from"), std::string::npos) << r;  // no LibTorch trace
}
}  // namespace

TEST(HostileInputTest, MeaninglessNumbersAreRefusedNamingTheOption) {
  for (const auto& [opt, value] : std::vector<std::pair<std::string, std::string>>{
           {"--temperature", "nan"}, {"--temperature", "-1"}, {"--top-p", "0"}, {"--top-p", "inf"},
           {"--max-new-tokens", "0"}}) {
    RunResult r = run_atax({"generate", "--model", kStories, "--prompt", "Once", opt, value}, {}, 120);
    expect_clean_failure(r, opt);
  }
  RunResult ok = run_atax({"generate", "--model", kStories, "--prompt", "Once", "--max-new-tokens", "4"}, {}, 120);
  EXPECT_EQ(ok.code, 0) << ok;
}

TEST(HostileInputTest, OutputsOfOthersAreNeverDeleted) {
  TempDir tmp("hostile1");
  write_text(fs::path(tmp / "out") / "precious.txt", "keep");
  RunResult w = run_atax({"world", "generate", "--scale", "quick", "--out", tmp / "out"});
  expect_clean_failure(w, "--force");
  RunResult i = run_atax({"init", "--config", kStories + "/config.json", "--tokenizer", kStories, "--out", tmp / "out"});
  expect_clean_failure(i, "--force");
  EXPECT_EQ(read_file(fs::path(tmp / "out") / "precious.txt"), "keep");
  // Its own earlier output is replaced; another command's is not.
  RunResult a = run_atax({"init", "--config", kStories + "/config.json", "--tokenizer", kStories, "--out", tmp / "m"});
  ASSERT_EQ(a.code, 0) << a;
  RunResult b = run_atax({"init", "--config", kStories + "/config.json", "--tokenizer", kStories, "--out", tmp / "m",
                          "--seed", "2"});
  EXPECT_EQ(b.code, 0) << b;
  EXPECT_EQ(read_json(fs::path(tmp / "m") / kOutputManifest)["command"], "init");
  RunResult t = run_atax({"tokenizer", "train", "--input", tmp / "none.jsonl", "--vocab-size", "300", "--out", tmp / "m"});
  expect_clean_failure(t, "`atax init`");
  EXPECT_TRUE(fs::exists(fs::path(tmp / "m") / "model.safetensors"));
}

TEST(HostileInputTest, WorldReadsItsConfigFile) {
  TempDir tmp("hostile2");
  RunResult missing = run_atax({"world", "generate", "--config", tmp / "nope.toml"});
  expect_clean_failure(missing, "no such config file");
  write_text(tmp / "w.toml", "flip_share = nan\nout = \"" + (tmp / "w") + "\"\n");
  RunResult bad = run_atax({"world", "generate", "--config", tmp / "w.toml"});
  expect_clean_failure(bad, "flip_share");
  EXPECT_FALSE(fs::exists(fs::path(tmp / "w") / "manifest.json"));
}

TEST(HostileInputTest, TokenizerTrainHintsAndHasOnBadLine) {
  TempDir tmp("hostile3");
  std::string corpus;
  for (int i = 0; i < 50; ++i) corpus += R"({"text": "the cat sat on the mat number )" + std::to_string(i) + "\"}\n";
  corpus += "{not json\n";
  write_text(tmp / "c.jsonl", corpus);
  RunResult fail = run_atax({"tokenizer", "train", "--input", tmp / "c.jsonl", "--vocab-size", "300", "--out", tmp / "t"});
  expect_clean_failure(fail, "--on-bad-line");
  RunResult skip = run_atax({"tokenizer", "train", "--input", tmp / "c.jsonl", "--vocab-size", "300", "--out", tmp / "t",
                             "--on-bad-line", "skip"});
  EXPECT_EQ(skip.code, 0) << skip;
  EXPECT_NE(skip.err.find("skipped 1 bad line"), std::string::npos) << skip;
}

TEST(HostileInputTest, DpoBatchIsSizedFromTheData) {
  TempDir tmp("hostile4");
  std::vector<json> pairs;
  for (int i = 0; i < 6; ++i)
    pairs.push_back({{"prompt", "Once upon a time " + std::to_string(i)}, {"chosen", " there was a cat."},
                     {"rejected", " no."}});
  write_jsonl(tmp / "p.jsonl", pairs);
  RunResult r = run_atax({"train", "dpo", "--model", kStories, "--data", tmp / "p.jsonl", "--out", tmp / "d",
                          "--batch-size", "1000000", "--max-steps", "2", "--no-progress", "--chat-template", "plain"},
                         {"ATAX_PROGRESS=plain"}, 240);
  ASSERT_EQ(r.code, 0) << r;
  EXPECT_NE(r.err.find("--batch-size 1000000 is more than the 6 pairs; using 6"), std::string::npos) << r;
  EXPECT_EQ(read_json(fs::path(tmp / "d") / kOutputManifest)["command"], "train dpo");
  RunResult bad = run_atax({"train", "dpo", "--model", kStories, "--data", tmp / "p.jsonl", "--out", tmp / "e",
                            "--beta", "nan"});
  expect_clean_failure(bad, "--beta");
}
