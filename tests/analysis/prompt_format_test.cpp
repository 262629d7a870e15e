// ctest-labels: unit
// The tax table states how each side was prompted (plain, or which chat template, system
// instruction and few-shot layout), read from atax's and lm-eval's results files, and warns when
// base and aligned were prompted differently on the table's tasks: never when they were alike.
#include <unistd.h>

#include <algorithm>

#include <gtest/gtest.h>

#include "analysis/analysis.h"
#include "prompted_results.h"

namespace atax::analysis {
namespace {

fs::path temp_dir(const std::string& name) {
  fs::path d = fs::temp_directory_path() / ("atax_prompt_format_" + name + "_" + std::to_string(getpid()));
  fs::remove_all(d);
  fs::create_directories(d);
  return d;
}

const std::string kTemplate = "{% for m in messages %}<|{{ m.role }}|>{{ m.content }}{% endfor %}";
const std::string kTemplateId = "jinja:" + sha256_hex(kTemplate);

struct Prompting {
  bool chat = false;
  std::string template_id = kTemplateId;
  std::string system_instruction;
  bool multiturn = false;
  std::optional<bool> task_chat;  // the task file's own "chat", as config.resolved.chat records it
};

// One capability task of 6 items, with the settings `atax eval` records about the prompts.
EvalResults results(const std::string& model, const Prompting& p, std::vector<double> scores) {
  return testing_prompt::prompted_results(model,
                                          {{"chat", p.chat},
                                           {"system_instruction", p.system_instruction},
                                           {"fewshot_as_multiturn", p.multiturn},
                                           {"runtime", {{"dtype", "Float"}, {"chat_template", p.template_id}}}},
                                          p.task_chat.value_or(p.chat), std::move(scores));
}

TaxTable tax_of(const Prompting& base, const Prompting& aligned) {
  fs::path d = temp_dir("pair");
  write_results(results("base-m", base, {1, 1, 1, 0, 1, 1}), d / "base.json");
  write_results(results("aligned-m", aligned, {1, 0, 1, 0, 1, 1}), d / "aligned.json");
  TaxTable t = compute_tax(read_results(d / "base.json"), read_results(d / "aligned.json"));
  fs::remove_all(d);
  return t;
}

bool has(const std::string& text, const std::string& part) { return text.find(part) != std::string::npos; }

TEST(TaxPromptFormatTest, PlainAgainstChatIsStatedAndWarned) {
  Prompting base, aligned;
  aligned.chat = true;
  TaxTable t = tax_of(base, aligned);
  ASSERT_TRUE(t.base_prompt && t.aligned_prompt);
  const std::string md = tax_markdown(t);
  EXPECT_TRUE(has(md, "- base (base-m): plain (no chat template)\n")) << md;
  EXPECT_TRUE(has(md, "- aligned (aligned-m): chat template sha256:" + kTemplateId.substr(6, 12) +
                          ", system instruction none, few-shot as multi-turn no\n"))
      << md;
  EXPECT_TRUE(has(md, "Prompt format (**differs**")) << md;
  ASSERT_FALSE(t.prompt_warning.empty());
  EXPECT_TRUE(has(t.prompt_warning, "base-m and aligned-m were prompted differently")) << t.prompt_warning;
  EXPECT_TRUE(has(md, "Note: " + t.prompt_warning)) << md;
  const json j = tax_json(t);
  EXPECT_EQ(j["prompt_format"]["prompted_differently"], true);
  EXPECT_EQ(j["prompt_format"]["base"]["chat"], false);
  EXPECT_EQ(j["prompt_format"]["aligned"]["chat"], true);
  EXPECT_EQ(j["prompt_format"]["aligned"]["chat_template"], kTemplateId);
  EXPECT_EQ(j["prompt_format"]["base"]["description"], "plain (no chat template)");
  EXPECT_EQ(j["prompt_format"]["warning"], t.prompt_warning);
  EXPECT_NE(std::find(j["notes"].begin(), j["notes"].end(), json(t.prompt_warning)), j["notes"].end());
}

TEST(TaxPromptFormatTest, AlikePromptingHasNoWarning) {
  Prompting chat;
  chat.chat = true;
  chat.system_instruction = "You are a careful assistant.";
  chat.multiturn = true;
  for (const auto& [base, aligned] : std::vector<std::pair<Prompting, Prompting>>{{{}, {}}, {chat, chat}}) {
    TaxTable t = tax_of(base, aligned);
    const std::string md = tax_markdown(t);
    EXPECT_TRUE(t.prompt_warning.empty()) << t.prompt_warning;
    EXPECT_FALSE(has(md, "differ")) << md;
    EXPECT_TRUE(has(md, "Prompt format:\n")) << md;
    EXPECT_EQ(tax_json(t)["prompt_format"]["prompted_differently"], false);
    for (const auto& n : t.notes) EXPECT_FALSE(has(n, "prompt")) << n;
  }
  TaxTable t = tax_of(chat, chat);
  EXPECT_TRUE(has(tax_markdown(t), "system instruction \"You are a careful assistant.\", few-shot as multi-turn yes"))
      << tax_markdown(t);
  // Plain on both sides: a different template in the tokenizer never reached the model.
  Prompting other_template;
  other_template.template_id = "builtin:chatml";
  EXPECT_TRUE(tax_of(Prompting{}, other_template).prompt_warning.empty());
}

TEST(TaxPromptFormatTest, EachChatSettingCounts) {
  Prompting chat;
  chat.chat = true;
  Prompting other = chat;
  other.template_id = "builtin:chatml";
  EXPECT_FALSE(tax_of(chat, other).prompt_warning.empty());
  EXPECT_TRUE(has(tax_markdown(tax_of(chat, other)), "chat template built-in chatml"));
  other = chat;
  other.system_instruction = "Be brief.";
  EXPECT_FALSE(tax_of(chat, other).prompt_warning.empty());
  other = chat;
  other.multiturn = true;
  EXPECT_FALSE(tax_of(chat, other).prompt_warning.empty());
}

// A task file's own "chat" wins over --apply-chat-template: what counts is what each task got.
TEST(TaxPromptFormatTest, TaskOverridesAreWhatCounts) {
  Prompting plain, chat_but_task_plain;
  chat_but_task_plain.chat = true;
  chat_but_task_plain.task_chat = false;
  TaxTable t = tax_of(plain, chat_but_task_plain);
  EXPECT_TRUE(t.prompt_warning.empty()) << t.prompt_warning;  // toy_knowledge was plain on both sides
  EXPECT_TRUE(has(tax_markdown(t), "; plain for toy_knowledge")) << tax_markdown(t);
  Prompting plain_but_task_chat;
  plain_but_task_chat.task_chat = true;
  EXPECT_FALSE(tax_of(plain, plain_but_task_chat).prompt_warning.empty());
}

// lm-eval writes the template's text (null when not applied); the same text is the same template.
TEST(TaxPromptFormatTest, ReadsLmEvalResultsAndUnrecordedSides) {
  json doc = {{"chat_template", kTemplate}, {"chat_template_sha", sha256_hex(kTemplate)},
              {"system_instruction", nullptr}, {"fewshot_as_multiturn", false}};
  PromptFormat f = prompt_format_of_lm_eval(doc);
  EXPECT_TRUE(f.recorded);
  EXPECT_TRUE(f.chat);
  EXPECT_EQ(f.chat_template, kTemplateId);
  Prompting chat;
  chat.chat = true;
  EXPECT_FALSE(prompted_differently(f, prompt_format_of(results("m", chat, {1}))));
  EXPECT_TRUE(prompted_differently(f, prompt_format_of(results("m", Prompting{}, {1}))));
  doc["chat_template"] = nullptr;
  EXPECT_FALSE(prompt_format_of_lm_eval(doc).chat);
  EXPECT_FALSE(prompt_format_of_lm_eval(json{{"results", json::object()}}).recorded);  // an older lm-eval

  // Results without the settings: stated as such, nothing compared, and a note when one side has them.
  EvalResults bare = results("bare", Prompting{}, {1, 1, 0, 1, 1, 1});
  bare.settings = json::object();
  EXPECT_FALSE(prompt_format_of(bare).recorded);
  EXPECT_EQ(describe(prompt_format_of(bare)), "not recorded in the results");
  fs::path d = temp_dir("bare");
  write_results(bare, d / "base.json");
  write_results(results("aligned-m", chat, {1, 0, 1, 0, 1, 1}), d / "aligned.json");
  TaxTable t = compute_tax(read_results(d / "base.json"), read_results(d / "aligned.json"));
  EXPECT_TRUE(t.prompt_warning.empty());
  EXPECT_TRUE(has(tax_markdown(t), "- base (bare): not recorded in the results")) << tax_markdown(t);
  EXPECT_TRUE(has(tax_markdown(t), "Note: the prompt format of bare is not recorded")) << tax_markdown(t);
  fs::remove_all(d);
}

}  // namespace
}  // namespace atax::analysis
