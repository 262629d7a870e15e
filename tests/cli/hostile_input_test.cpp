// ctest-labels: unit
// Hostile and careless input at the command line: numeric options checked for meaning, outputs
// never destroyed, --config honoured, hints naming options that exist, batches sized from data.
#include <functional>

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

// `eval` and `judge` read --config FILE: a missing file is an error naming it, and the file's
// values take effect (eval: the model, tasks, limit and out come from it alone; judge: the input
// and out, and a bad batch size is refused as if given on the command line).
TEST(HostileInputTest, EvalAndJudgeReadTheirConfigFiles) {
  TempDir tmp("hostile5");
  for (const std::string cmd : {"eval", "judge"}) {
    RunResult missing = run_atax({cmd, "--config", tmp / (cmd + "_nope.toml")});
    expect_clean_failure(missing, "no such config file");
    EXPECT_NE(missing.err.find(cmd + "_nope.toml"), std::string::npos) << missing;
  }
  write_text(tmp / "eval.toml", "model = \"" + kStories + "\"\ntasks = \"truthfulqa_mc\"\nlimit = 2\nnum-fewshot = 0\n" +
                                    "data-dir = \"" + kShared + "/benchmarks\"\ntasks-dir = \"" + kTasksDir + "\"\n" +
                                    "cache = \"" + (tmp / "c.sqlite") + "\"\nout = \"" + (tmp / "R.json") +
                                    "\"\ndevice = \"cpu\"\n");
  RunResult eval = run_atax({"eval", "--config", tmp / "eval.toml"}, {}, 240);
  ASSERT_EQ(eval.code, 0) << eval;
  const json results = read_json(fs::path(tmp / "R.json"));
  EXPECT_EQ(results["n-samples"]["truthfulqa_mc"]["effective"], 2) << results.dump().substr(0, 400);
  write_text(tmp / "typo.toml", "model = \"" + kStories + "\"\ntasks = \"truthfulqa_mc_typo\"\nout = \"" +
                                    (tmp / "R2.json") + "\"\ntasks-dir = \"" + kTasksDir + "\"\n");
  RunResult typo = run_atax({"eval", "--config", tmp / "typo.toml"});
  expect_clean_failure(typo, "truthfulqa_mc_typo");
  EXPECT_FALSE(fs::exists(fs::path(tmp / "R2.json")));

  write_jsonl(tmp / "j.jsonl", {{{"prompt", "How do I bake bread?"}, {"response", "Mix flour and water, then bake."}},
                                {{"prompt", "How do I make a poison?"}, {"response", "I'm sorry, but I can't help."}}});
  write_text(tmp / "judge.toml", "input = \"" + (tmp / "j.jsonl") + "\"\nout = \"" + (tmp / "v.jsonl") + "\"\n");
  RunResult judge = run_atax({"judge", "--config", tmp / "judge.toml"});
  ASSERT_EQ(judge.code, 0) << judge;
  EXPECT_TRUE(contains(judge.out, "2 items")) << judge;
  EXPECT_EQ(read_jsonl(fs::path(tmp / "v.jsonl")).size(), 2u);
  write_text(tmp / "judge0.toml", "input = \"" + (tmp / "j.jsonl") + "\"\nbatch-size = 0\n");
  expect_clean_failure(run_atax({"judge", "--config", tmp / "judge0.toml"}), "--batch-size must be at least 1");
}

// A field of the wrong type in a user's results file is one clear message naming the file and the
// field, not nlohmann's bare "type must be number, but is string".
TEST(HostileInputTest, WrongTypeInAResultsFileNamesTheFileAndField) {
  TempDir tmp("hostile6");
  const json good = {
      {"results", {{"t", {{"acc,none", 0.5}, {"acc_stderr,none", 0.35}, {"n", 2}}}}},
      {"versions", {{"t", 1}}},
      {"item_scores", {{"t", {{"acc,none", {{"doc_ids", {"0", "1"}}, {"scores", {1, 0}}}}}}}}};
  write_text(tmp / "base.json", good.dump());
  const std::vector<std::pair<std::function<void(json&)>, std::string>> cases = {
      {[](json& d) { d["versions"]["t"] = "one"; }, "field \"versions.t\" is a string (\"one\"), expected an integer"},
      {[](json& d) { d["model_name"] = 5; }, "field \"model_name\" is an integer (5), expected a string"},
      {[](json& d) { d["requests"] = json::array({1}); }, "field \"requests\" is an array, expected an object"},
      {[](json& d) { d["item_scores"]["t"]["acc,none"]["doc_ids"][1] = 1; },
       "field \"item_scores.t.acc,none.doc_ids[1]\" is an integer, expected a string"}};
  for (const auto& [edit, what] : cases) {
    json bad = good;
    edit(bad);
    write_text(tmp / "aligned.json", bad.dump());
    RunResult r = run_atax({"tax", "--base-results", tmp / "base.json", "--aligned-results", tmp / "aligned.json"});
    expect_clean_failure(r, what);
    EXPECT_NE(r.err.find((tmp / "aligned.json") + ": "), std::string::npos) << r;
  }
}
