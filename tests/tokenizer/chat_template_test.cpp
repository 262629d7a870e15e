// ctest-labels: unit
// The tokenizer's chat API: the model's own Jinja template renders by default (byte-identical to
// jinja2, fixtures from tests/template/fixtures/gen_renders.py), built-in formats as overrides,
// named templates, the cache identity, and BOS exactly once when a template writes it.
#include <gtest/gtest.h>

#include "tokenizer/tokenizer.h"
#include "bos_tokenizer.h"

namespace atax {
namespace {

const fs::path kShared = ATAX_SHARED_DIR;
const fs::path kRenders = fs::path(ATAX_SOURCE_DIR) / "tests" / "template" / "fixtures" / "renders.json";

TEST(ChatTemplateTest, ModelTemplateRendersLikeTransformers) {
  const Tokenizer tok = Tokenizer::load(kShared / "tokenizers" / "qwen3");
  const ordered_json doc = ordered_json::parse(read_file(kRenders));
  int checked = 0;
  for (const ordered_json& c : doc["cases"]) {
    if (c["source"] != "tokenizers/qwen3/tokenizer_config.json" || !c.contains("text")) continue;
    const ordered_json& v = c["vars"];
    ordered_json extra = ordered_json::object();
    if (v.contains("enable_thinking")) extra["enable_thinking"] = v["enable_thinking"];
    EXPECT_EQ(tok.apply_chat_template(v["messages"], v["add_generation_prompt"].get<bool>(), v["tools"], extra),
              c["text"].get<std::string>())
        << c["conversation"];
    ++checked;
  }
  EXPECT_GE(checked, 15);
  // The ChatMessage overload renders the same template.
  EXPECT_EQ(tok.apply_chat_template(std::vector<ChatMessage>{{"user", "Hello!"}}, true),
            "<|im_start|>user\nHello!<|im_end|>\n<|im_start|>assistant\n");
}

TEST(ChatTemplateTest, BuiltinFormatsOverrideAndIdentityNamesTheRenderer) {
  Tokenizer tok = Tokenizer::load(kShared / "tokenizers" / "qwen3");
  const std::string text = tok.tokenizer_config()["chat_template"].get<std::string>();
  EXPECT_EQ(tok.chat_template_identity(), "jinja:" + sha256_hex(text));
  tok.set_chat_format(ChatFormat::kPlain);
  EXPECT_EQ(tok.chat_template_identity(), "builtin:plain");
  const ordered_json m = ordered_json::parse(R"([{"role": "user", "content": "Hi"}])");
  EXPECT_EQ(tok.apply_chat_template(m, true), "User: Hi\nAssistant:");
  EXPECT_THROW(tok.apply_chat_template(m, true, ordered_json::parse(R"([{"type": "function"}])")), Error);
}

TEST(ChatTemplateTest, NamedTemplatesAndErrors) {
  const json tj = Tokenizer::load(kShared / "tokenizers" / "qwen3").tokenizer_json();
  json cfg = {{"eos_token", "<|im_end|>"},
              {"chat_template", json::array({{{"name", "default"}, {"template", "D{{ eos_token }}"}},
                                             {{"name", "tool_use"}, {"template", "T{{ tools | length }}"}},
                                             {{"name", "strict"}, {"template", "{{ raise_exception('no') }}"}}})}};
  Tokenizer tok = Tokenizer::from_json(tj, cfg, "/m/tokenizer.json");
  const ordered_json m = ordered_json::array();
  EXPECT_EQ(tok.apply_chat_template(m, true), "D<|im_end|>");
  EXPECT_EQ(tok.apply_chat_template(m, true, ordered_json::parse("[1, 2]")), "T2");
  EXPECT_THROW(tok.set_chat_template_name("nope"), Error);
  tok.set_chat_template_name("strict");
  try {
    tok.apply_chat_template(m, true);
    FAIL();
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("chat_template[strict]"), std::string::npos) << e.what();
    EXPECT_NE(e.message().find("no"), std::string::npos);
  }
  const Tokenizer none = Tokenizer::from_json(tj, json::object(), "/m/tokenizer.json");
  EXPECT_EQ(none.chat_template_identity(), "none");
  EXPECT_FALSE(none.has_chat_template());
  EXPECT_THROW(none.apply_chat_template(m, true), Error);
}

TEST(ChatTemplateTest, BosExactlyOnce) {
  Tokenizer tok = atax::testing::bos_bpe_tokenizer({"hello world", "hi there"});  // post-processor "<s> $A"
  const int32_t bos = *tok.bos_id();
  const auto hf = tok.encode("<s>hi", true);  // HF's encode adds a second BOS
  EXPECT_EQ(std::count(hf.begin(), hf.end(), bos), 2);
  const auto once = tok.encode_prompt("<s>hi");
  EXPECT_EQ(once[0], bos);
  EXPECT_EQ(std::count(once.begin(), once.end(), bos), 1);
  const auto plain = tok.encode_prompt("hi");  // no BOS in the text: the tokenizer adds it
  EXPECT_EQ(plain[0], bos);
  EXPECT_EQ(std::count(plain.begin(), plain.end(), bos), 1);
}

}  // namespace
}  // namespace atax
