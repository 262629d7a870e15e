// ctest-labels: unit
// Chat formats: exact rendered strings (hand-written and from Jinja2 via
// fixtures/gen_chat.py), the Jinja templates atax writes, and recognition of real templates.
#include <gtest/gtest.h>

#include <map>

#include "tokenizer/tokenizer.h"

namespace atax {
namespace {

const fs::path kFixtures = fs::path(ATAX_SOURCE_DIR) / "tests" / "tokenizer" / "fixtures";
const fs::path kShared = ATAX_SHARED_DIR;

// The shared tokenizers, loaded once per test program.
const Tokenizer& shared(const std::string& family) {
  static std::map<std::string, Tokenizer> cache;
  auto it = cache.find(family);
  if (it == cache.end()) it = cache.emplace(family, Tokenizer::load(kShared / "tokenizers" / family)).first;
  return it->second;
}

std::vector<ChatMessage> msgs(std::initializer_list<std::pair<const char*, const char*>> list) {
  std::vector<ChatMessage> out;
  for (auto [r, c] : list) out.push_back({r, c});
  return out;
}

TEST(ChatTest, PlainFormatIsFixed) {
  const auto m = msgs({{"system", "Be kind."}, {"user", "Hi there"}, {"assistant", "Hello!"}, {"user", "2+2?"}});
  EXPECT_EQ(render_chat(ChatFormat::kPlain, m, true),
            "System: Be kind.\nUser: Hi there\nAssistant: Hello!\nUser: 2+2?\nAssistant:");
  EXPECT_EQ(render_chat(ChatFormat::kPlain, m, false), "System: Be kind.\nUser: Hi there\nAssistant: Hello!\nUser: 2+2?\n");
  EXPECT_EQ(render_chat(ChatFormat::kPlain, {}, true), "Assistant:");
  EXPECT_THROW(render_chat(ChatFormat::kPlain, msgs({{"tool", "x"}}), true), Error);
}

TEST(ChatTest, ChatMlLlama3Llama2RenderExactly) {
  const auto m = msgs({{"system", "S"}, {"user", " U "}, {"assistant", "A"}, {"user", "V"}});
  EXPECT_EQ(render_chat(ChatFormat::kChatMl, m, true),
            "<|im_start|>system\nS<|im_end|>\n<|im_start|>user\n U <|im_end|>\n<|im_start|>assistant\nA<|im_end|>\n"
            "<|im_start|>user\nV<|im_end|>\n<|im_start|>assistant\n");
  EXPECT_EQ(render_chat(ChatFormat::kLlama3, m, true),
            "<|begin_of_text|><|start_header_id|>system<|end_header_id|>\n\nS<|eot_id|>"
            "<|start_header_id|>user<|end_header_id|>\n\nU<|eot_id|>"
            "<|start_header_id|>assistant<|end_header_id|>\n\nA<|eot_id|>"
            "<|start_header_id|>user<|end_header_id|>\n\nV<|eot_id|>"
            "<|start_header_id|>assistant<|end_header_id|>\n\n");
  EXPECT_EQ(render_chat(ChatFormat::kLlama2, m, true),
            "<s>[INST] <<SYS>>\nS\n<</SYS>>\n\n U [/INST] A </s><s>[INST] V [/INST]");  // strip() after <<SYS>>
  // Llama-2 needs alternating user/assistant turns.
  EXPECT_THROW(render_chat(ChatFormat::kLlama2, msgs({{"user", "a"}, {"user", "b"}}), true), Error);
  EXPECT_THROW(render_chat(ChatFormat::kLlama2, msgs({{"assistant", "a"}}), true), Error);
}

TEST(ChatTest, MatchesJinjaRenderingOfBuiltinAndRealTemplates) {
  const json fx = read_json(kFixtures / "chat_render.json");
  for (const char* name : {"chatml", "llama3", "llama2", "plain"})
    EXPECT_EQ(chat_template_jinja(chat_format_from_name(name)), fx["builtin_templates"][name].get<std::string>())
        << "src/tokenizer/chat.cpp and fixtures/gen_chat.py disagree on the " << name << " template";
  int n = 0;
  for (const json& c : fx["cases"]) {
    std::vector<ChatMessage> m;
    for (const json& e : c["messages"]) m.push_back({e["role"].get<std::string>(), e["content"].get<std::string>()});
    const std::string got = render_chat(chat_format_from_name(c["format"].get<std::string>()), m,
                                        c["add_generation_prompt"].get<bool>());
    EXPECT_EQ(got, c["expected"].get<std::string>()) << c["template"] << " " << c["messages"].dump();
    ++n;
  }
  EXPECT_EQ(n, 70);
}

TEST(ChatTest, FormatNamesRoundTrip) {
  for (auto f : {ChatFormat::kChatMl, ChatFormat::kLlama3, ChatFormat::kLlama2, ChatFormat::kPlain}) {
    EXPECT_EQ(chat_format_from_name(chat_format_name(f)), f);
    EXPECT_EQ(detect_chat_format(chat_template_jinja(f)), f);
  }
  EXPECT_THROW(chat_format_from_name("vicuna"), Error);
}

TEST(ChatTest, DetectsRealTemplates) {
  const json fx = read_json(kFixtures / "chat_render.json");
  for (auto& [name, d] : fx["detect"].items())
    EXPECT_EQ(chat_format_name(detect_chat_format(d["template"].get<std::string>())), d["format"].get<std::string>())
        << name;
  if (!fs::exists(kShared / "tokenizers")) GTEST_SKIP() << "../shared not present";
  // The real Llama-3 and Qwen3 templates (read from the configs; the loader uses the same call).
  for (auto [family, format] : {std::pair{"llama3", ChatFormat::kLlama3}, std::pair{"qwen3", ChatFormat::kChatMl}}) {
    const json cfg = read_json(kShared / "tokenizers" / family / "tokenizer_config.json");
    EXPECT_EQ(detect_chat_format(cfg["chat_template"].get<std::string>()), format) << family;
  }
  // Mistral-7B-v0.1 (base) ships no chat template: an error that names the flag.
  const Tokenizer mistral = shared("mistral");
  try {
    mistral.chat_format();
    FAIL() << "expected Error";
  } catch (const Error& e) {
    EXPECT_NE(e.hint().find("--chat-template chatml|llama3|llama2|plain"), std::string::npos) << e.what();
    EXPECT_NE(e.file().find("tokenizer_config.json"), std::string::npos);
  }
  Tokenizer with_flag = mistral;
  with_flag.set_chat_format(ChatFormat::kLlama2);
  EXPECT_EQ(with_flag.apply_chat_template(msgs({{"user", "Hi"}})), "<s>[INST] Hi [/INST]");
}

TEST(ChatTest, UnknownTemplateIsAnErrorNamingTheFlag) {
  // Zephyr-style template: not one of ours.
  const std::string zephyr =
      "{% for message in messages %}{% if message['role'] == 'user' %}{{ '<|user|>\n' + message['content'] + eos_token }}"
      "{% endif %}{% endfor %}{% if add_generation_prompt %}{{ '<|assistant|>' }}{% endif %}";
  try {
    detect_chat_format(zephyr, "some/tokenizer_config.json");
    FAIL() << "expected Error";
  } catch (const Error& e) {
    EXPECT_EQ(e.file(), "some/tokenizer_config.json");
    EXPECT_NE(e.hint().find("--chat-template chatml|llama3|llama2|plain"), std::string::npos);
  }
  EXPECT_THROW(detect_chat_format(""), Error);
}

TEST(ChatTest, StopIdsIncludeEndOfTurnTokens) {
  if (!fs::exists(kShared / "tokenizers")) GTEST_SKIP() << "../shared not present";
  EXPECT_EQ(shared("llama3").stop_ids(), (std::vector<int32_t>{128001, 128009}));
  EXPECT_EQ(shared("qwen3").stop_ids(), (std::vector<int32_t>{151645}));
  EXPECT_EQ(shared("mistral").stop_ids(), (std::vector<int32_t>{2}));
}

TEST(ChatTest, ChatPromptEncodesWithSpecialTokens) {
  if (!fs::exists(kShared / "tokenizers")) GTEST_SKIP() << "../shared not present";
  const Tokenizer tok = shared("llama3");
  const std::string prompt = tok.apply_chat_template(msgs({{"user", "Hi"}}));
  const auto ids = tok.encode(prompt, false);
  ASSERT_GE(ids.size(), 4u);
  EXPECT_EQ(ids[0], 128000);  // <|begin_of_text|> written as text, matched as the added token
  EXPECT_EQ(ids[1], 128006);  // <|start_header_id|>
  EXPECT_EQ(tok.decode(ids), prompt);
}

}  // namespace
}  // namespace atax
