// ctest-labels: unit
// Chat prompts as lm-evaluation-harness builds them (Task.fewshot_context), rendered by a small
// real Jinja template and compared byte for byte: the system turn is --system-instruction and
// the task's description after it, --fewshot-as-multiturn makes each shot a user/assistant pair
// (without it the shots and the question are one user turn), and a template that rejects the
// system role renders without that turn, as lm-eval's HFLM.apply_chat_template does.
#include <set>

#include <gtest/gtest.h>

#include "eval/eval.h"
#include "mock_model.h"
#include "template/template.h"

using namespace atax;
using atax::testing::MockModel;
using atax::testing::TempDir;
using atax::testing::write_text;

namespace {

const fs::path kTasks = fs::path(ATAX_SOURCE_DIR) / "tasks";

// Every turn as <role>content</role> and a newline, then the open assistant turn.
const char* const kSmallTemplate =
    "{% for m in messages %}<{{ m.role }}>{{ m.content }}</{{ m.role }}>\n{% endfor %}"
    "{% if add_generation_prompt %}<assistant>{% endif %}";
// The same, but raising on a system turn as Gemma's template does.
const char* const kNoSystemTemplate =
    "{% if messages[0]['role'] == 'system' %}{{ raise_exception('System role not supported') }}{% endif %}"
    "{% for m in messages %}<{{ m.role }}>{{ m.content }}</{{ m.role }}>\n{% endfor %}"
    "{% if add_generation_prompt %}<assistant>{% endif %}";

// The mock model, prompting through a real chat template.
class TemplateModel : public MockModel {
 public:
  explicit TemplateModel(const std::string& source) : tmpl_(ChatTemplate::parse(source, "small.jinja")) {}
  std::string apply_chat_template(const std::vector<ChatMessage>& messages) const override {
    ordered_json vars = {{"messages", ordered_json::array()}, {"add_generation_prompt", true}};
    for (const auto& m : messages) vars["messages"].push_back({{"role", m.role}, {"content", m.content}});
    return tmpl_.render(vars);
  }

 private:
  ChatTemplate tmpl_;
};

// MMLU's task file on one made-up subject: dev has two shots (gold A, B), test one question.
TaskSpec mmlu_on(const fs::path& root) {
  write_text(root / "dev" / "alpha_dev.csv", "Dev alpha one?,a,b,c,d,A\nDev alpha two?,a,b,c,d,B\n");
  write_text(root / "test" / "alpha_test.csv", "Alpha q0?,w,x,y,z,B\n");
  json j = read_json(select_tasks({"mmlu"}, kTasks)[0].file);
  j["dataset"]["path"] = root.string();
  return parse_task_spec(j, "mmlu.json");
}

// The one prompt the evaluation sent (every choice of the one question shares it).
std::string prompt_of(MockModel& m, const TaskSpec& task, const EvalOptions& o) {
  evaluate(m, {task}, o);
  std::set<std::string> prompts(m.contexts_seen.begin(), m.contexts_seen.end());
  EXPECT_EQ(prompts.size(), 1u);
  return prompts.empty() ? std::string() : *prompts.begin();
}

EvalOptions chat_options(int shots) {
  EvalOptions o;
  o.progress = false;
  o.chat = true;
  o.num_fewshot = shots;
  return o;
}

const std::string kDescription = "The following are multiple choice questions (with answers) about alpha.\n\n";
const std::string kShot1 = "Dev alpha one?\nA. a\nB. b\nC. c\nD. d\nAnswer:";
const std::string kShot2 = "Dev alpha two?\nA. a\nB. b\nC. c\nD. d\nAnswer:";
const std::string kQuestion = "Alpha q0?\nA. w\nB. x\nC. y\nD. z\nAnswer:";

TEST(PromptFormatTest, SystemInstructionIsTheSystemTurnBeforeTheDescription) {
  TempDir tmp("prompt_sys");
  TemplateModel m(kSmallTemplate);
  EvalOptions o = chat_options(0);
  o.system_instruction = "Answer with one letter.";
  EXPECT_EQ(prompt_of(m, mmlu_on(tmp.path()), o),
            "<system>Answer with one letter.\n\n" + kDescription + "</system>\n"
            "<user>" + kQuestion + "</user>\n"
            "<assistant>");
}

TEST(PromptFormatTest, WithoutAnInstructionTheDescriptionIsTheSystemTurn) {
  TempDir tmp("prompt_desc");
  TemplateModel m(kSmallTemplate);
  // Two shots in one user turn, each "question + target delimiter + answer", joined by "\n\n".
  EXPECT_EQ(prompt_of(m, mmlu_on(tmp.path()), chat_options(2)),
            "<system>" + kDescription + "</system>\n"
            "<user>" + kShot1 + " A\n\n" + kShot2 + " B\n\n" + kQuestion + "</user>\n"
            "<assistant>");
}

TEST(PromptFormatTest, FewshotAsMultiturnMakesEachShotATurnPair) {
  TempDir tmp("prompt_multiturn");
  TemplateModel m(kSmallTemplate);
  EvalOptions o = chat_options(2);
  o.fewshot_as_multiturn = true;
  o.system_instruction = "Answer with one letter.";
  // The assistant turns hold the bare answer: no target delimiter inside a turn.
  EXPECT_EQ(prompt_of(m, mmlu_on(tmp.path()), o),
            "<system>Answer with one letter.\n\n" + kDescription + "</system>\n"
            "<user>" + kShot1 + "</user>\n<assistant>A</assistant>\n"
            "<user>" + kShot2 + "</user>\n<assistant>B</assistant>\n"
            "<user>" + kQuestion + "</user>\n"
            "<assistant>");
}

TEST(PromptFormatTest, ATemplateWithoutASystemRoleRendersWithoutThatTurn) {
  TempDir tmp("prompt_nosys");
  TemplateModel m(kNoSystemTemplate);
  EvalOptions o = chat_options(0);
  o.system_instruction = "Answer with one letter.";
  EXPECT_EQ(prompt_of(m, mmlu_on(tmp.path()), o), "<user>" + kQuestion + "</user>\n<assistant>");
  // A template that fails for another reason still fails, naming the template.
  TemplateModel broken("{{ raise_exception('always') }}");
  try {
    evaluate(broken, {mmlu_on(tmp.path())}, o);
    ADD_FAILURE() << "expected the template's error";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("small.jinja"), std::string::npos) << e.what();
  }
}

}  // namespace
