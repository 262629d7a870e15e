// template: a Jinja engine written here for chat templates. It renders byte-identically to what
// Hugging Face transformers renders with its chat-template environment: jinja2's
// ImmutableSandboxedEnvironment(trim_blocks=True, lstrip_blocks=True, loopcontrols), with the
// globals raise_exception(msg) and strftime_now(fmt), a tojson filter that keeps non-ASCII
// (json.dumps(x, ensure_ascii=False, indent=..., separators=..., sort_keys=...)) and the
// {% generation %} tag. Undefined values behave like jinja2's default Undefined. No LibTorch.
#pragma once

#include <cstdint>
#include <ctime>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "core/core.h"

namespace atax {

// Variables keep their insertion order (a tool schema's keys are written in the order given),
// as Python dicts do; nlohmann::json would sort them.
using ordered_json = nlohmann::ordered_json;

struct TemplateRenderOptions {
  // The time strftime_now() formats (UTC); unset = now. Tests fix it so renders are stable.
  std::optional<std::time_t> now;
  int64_t max_output_bytes = int64_t(64) << 20;  // a render writing more fails with Error
  int64_t max_steps = 20'000'000;                // loop iterations + macro calls, then Error
};

class ChatTemplate {
 public:
  // Parses Jinja `source`; `name` (a file path, or "tokenizer_config.json:chat_template") is what
  // errors report. Fails with Error naming `name` and the line for a syntax error.
  static ChatTemplate parse(const std::string& source, const std::string& name);

  // Renders with `vars` (an object: messages, tools, add_generation_prompt, bos_token, ...).
  // Fails with Error naming the template and the line for raise_exception(), an undefined
  // value used where jinja2 fails, a type error, or a bound in `opts` exceeded; never crashes.
  std::string render(const ordered_json& vars, const TemplateRenderOptions& opts = {}) const;

  const std::string& source() const;
  const std::string& name() const;
  // "jinja:" + the SHA-256 of the source text: what a request cache keys on.
  std::string identity() const;

  struct Impl;

 private:
  std::shared_ptr<const Impl> impl_;
};

// A template found in a model's files: its text and the name errors report.
struct ChatTemplateSource {
  std::string text;
  std::string name;  // e.g. "/m/tokenizer_config.json:chat_template[tool_use]"
};

// Chooses the template from a tokenizer_config.json `chat_template` value as transformers does:
// a string is the template; a list [{name, template}] gives `wanted` if set (Error listing the
// names if absent), else "tool_use" when `has_tools` and there is one, else "default" (Error if
// there is none). `file` names the config in errors. Returns nullopt when `value` is null/absent.
std::optional<ChatTemplateSource> select_chat_template(const json& value, const std::string& file,
                                                       const std::string& wanted = {}, bool has_tools = false);
// The names of a named-list chat_template (empty for a string).
std::vector<std::string> chat_template_names(const json& value);

// The model's own template from a folder (or a file inside it): chat_template.jinja if present
// (as transformers prefers it), else tokenizer_config.json's chat_template; nullopt if neither.
// A .jinja file path is read as the template itself.
std::optional<ChatTemplateSource> find_chat_template(const fs::path& path, const std::string& wanted = {},
                                                     bool has_tools = false);

// The special-token variables transformers passes to a template, from tokenizer_config.json:
// bos_token, eos_token, unk_token, sep_token, pad_token, cls_token, mask_token (a string, or
// the "content" of an AddedToken object; null ones left out) and additional_special_tokens.
ordered_json special_token_vars(const json& tokenizer_config);

// A template stored in GGUF metadata (`tokenizer.chat_template`); `file` is the GGUF path.
ChatTemplateSource chat_template_from_gguf(const std::string& text, const std::string& file);

}  // namespace atax
