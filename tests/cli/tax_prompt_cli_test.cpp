// ctest-labels: unit
// `atax tax` states each side's prompt format in its Markdown and JSON, and warns on standard
// error (and in a note) when base and aligned were prompted differently; never when alike.
#include "cli_run.h"
#include "eval/eval.h"
#include "../analysis/prompted_results.h"

using namespace atax;
using namespace atax::cli_test;

namespace {

// atax results of one capability task (6 items) with the prompt settings `atax eval` records.
void write_side(const std::string& path, const std::string& model, bool chat, std::vector<double> scores) {
  write_results(testing_prompt::prompted_results(model,
                                                 {{"chat", chat},
                                                  {"system_instruction", ""},
                                                  {"fewshot_as_multiturn", false},
                                                  {"runtime", {{"chat_template", "jinja:" + sha256_hex("{{ messages }}")}}}},
                                                 chat, std::move(scores)),
                path);
}

TEST(TaxPromptCliTest, WarnsWhenPromptedDifferentlyAndOnlyThen) {
  TempDir tmp("tax_prompt");
  write_side(tmp / "base.json", "base-m", false, {1, 1, 1, 0, 1, 1});
  write_side(tmp / "chat.json", "chat-m", true, {1, 0, 1, 0, 1, 1});
  write_side(tmp / "plain.json", "plain-m", false, {1, 0, 1, 0, 1, 1});

  RunResult differ = run_atax({"tax", "--base-results", tmp / "base.json", "--aligned-results", tmp / "chat.json"});
  ASSERT_EQ(differ.code, 0) << differ;
  EXPECT_TRUE(contains(differ.out, "- base (base-m): plain (no chat template)")) << differ;
  EXPECT_TRUE(contains(differ.out, "- aligned (chat-m): chat template sha256:")) << differ;
  EXPECT_TRUE(contains(differ.out, "Note: base-m and chat-m were prompted differently")) << differ;
  EXPECT_TRUE(contains(differ.err, "atax: warning: base-m and chat-m were prompted differently")) << differ;
  RunResult js = run_atax({"tax", "--base-results", tmp / "base.json", "--aligned-results", tmp / "chat.json",
                           "--format", "json"});
  ASSERT_EQ(js.code, 0) << js;
  const json j = json::parse(js.out);
  EXPECT_EQ(j["prompt_format"]["prompted_differently"], true);
  EXPECT_EQ(j["prompt_format"]["aligned"]["chat"], true);
  EXPECT_TRUE(contains(js.err, "warning")) << js;  // whatever the output format

  RunResult alike = run_atax({"tax", "--base-results", tmp / "base.json", "--aligned-results", tmp / "plain.json"});
  ASSERT_EQ(alike.code, 0) << alike;
  EXPECT_TRUE(contains(alike.out, "- aligned (plain-m): plain (no chat template)")) << alike;
  EXPECT_FALSE(contains(alike.out, "prompted differently")) << alike;
  EXPECT_FALSE(contains(alike.err, "warning")) << alike;
}

}  // namespace
