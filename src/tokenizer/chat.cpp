// Chat formats: the four built-in renderers, their Jinja templates, and recognition of a
// tokenizer_config.json chat_template (no Jinja engine: a template is mapped to a format).
#include "tokenizer/internal.h"

namespace atax {

namespace {

const char* const kFlagHint = "pass --chat-template chatml|llama3|llama2|plain to choose the chat format";

// Each template renders like render_chat() under transformers (trim_blocks, lstrip_blocks).
const char* const kChatMlJinja =
    R"({%- for message in messages -%})"
    R"({{ '<|im_start|>' + message['role'] + '\n' + message['content'] + '<|im_end|>' + '\n' }})"
    R"({%- endfor -%})"
    R"({%- if add_generation_prompt -%}{{ '<|im_start|>assistant\n' }}{%- endif -%})";

const char* const kLlama3Jinja =
    R"({%- for message in messages -%})"
    R"({%- if loop.first -%}{{ '<|begin_of_text|>' }}{%- endif -%})"
    R"({{ '<|start_header_id|>' + message['role'] + '<|end_header_id|>\n\n' + message['content'] | trim + '<|eot_id|>' }})"
    R"({%- endfor -%})"
    R"({%- if add_generation_prompt -%}{{ '<|start_header_id|>assistant<|end_header_id|>\n\n' }}{%- endif -%})";

const char* const kLlama2Jinja =
    R"({%- if messages[0]['role'] == 'system' -%})"
    R"({%- set loop_messages = messages[1:] -%}{%- set system_message = messages[0]['content'] -%})"
    R"({%- else -%}{%- set loop_messages = messages -%}{%- set system_message = false -%}{%- endif -%})"
    R"({%- for message in loop_messages -%})"
    R"({%- if (message['role'] == 'user') != (loop.index0 % 2 == 0) -%})"
    R"({{ raise_exception('Conversation roles must alternate user/assistant/user/assistant/...') }})"
    R"({%- endif -%})"
    R"({%- if loop.index0 == 0 and system_message != false -%})"
    R"({%- set content = '<<SYS>>\n' + system_message + '\n<</SYS>>\n\n' + message['content'] -%})"
    R"({%- else -%}{%- set content = message['content'] -%}{%- endif -%})"
    R"({%- if message['role'] == 'user' -%}{{ '<s>' + '[INST] ' + content.strip() + ' [/INST]' }})"
    R"({%- elif message['role'] == 'assistant' -%}{{ ' ' + content.strip() + ' ' + '</s>' }}{%- endif -%})"
    R"({%- endfor -%})";

// THE PLAIN FORMAT IS FIXED (the toy world depends on it).
const char* const kPlainJinja =
    R"({%- for message in messages -%})"
    R"({%- if message['role'] == 'system' -%}{{ 'System: ' + message['content'] + '\n' }})"
    R"({%- elif message['role'] == 'user' -%}{{ 'User: ' + message['content'] + '\n' }})"
    R"({%- elif message['role'] == 'assistant' -%}{{ 'Assistant: ' + message['content'] + '\n' }})"
    R"({%- else -%}{{ raise_exception('plain chat format has no role ' + message['role']) }})"
    R"({%- endif -%})"
    R"({%- endfor -%})"
    R"({%- if add_generation_prompt -%}{{ 'Assistant:' }}{%- endif -%})";

bool contains(const std::string& s, std::string_view what) { return s.find(what) != std::string::npos; }

}  // namespace

ChatFormat chat_format_from_name(const std::string& name) {
  if (name == "chatml") return ChatFormat::kChatMl;
  if (name == "llama3") return ChatFormat::kLlama3;
  if (name == "llama2") return ChatFormat::kLlama2;
  if (name == "plain") return ChatFormat::kPlain;
  throw Error("unknown chat format \"" + name + "\"", {}, "use one of chatml, llama3, llama2, plain");
}

std::string chat_format_name(ChatFormat f) {
  switch (f) {
    case ChatFormat::kChatMl: return "chatml";
    case ChatFormat::kLlama3: return "llama3";
    case ChatFormat::kLlama2: return "llama2";
    case ChatFormat::kPlain: return "plain";
  }
  return "plain";
}

ChatFormat detect_chat_format(const std::string& t, const std::string& file) {
  if (trim(t).empty()) throw Error("the chat_template is empty", file, kFlagHint);
  // Recognised by the tokens each family's templates write.
  if (contains(t, "<|im_start|>") && contains(t, "<|im_end|>")) return ChatFormat::kChatMl;
  if (contains(t, "<|start_header_id|>") && contains(t, "<|end_header_id|>") && contains(t, "<|eot_id|>"))
    return ChatFormat::kLlama3;
  if (contains(t, "[INST]") && contains(t, "[/INST]")) return ChatFormat::kLlama2;
  if (contains(t, "'User: '") && contains(t, "'Assistant: '") && contains(t, "'Assistant:'"))
    return ChatFormat::kPlain;
  std::string head = t.substr(0, 120);
  for (char& c : head)
    if (c == '\n') c = ' ';
  throw Error("the chat_template is not one atax knows (ChatML, Llama-3, Llama-2/Mistral [INST], plain): \"" +
                  head + (t.size() > 120 ? "...\"" : "\""),
              file, kFlagHint);
}

std::string chat_template_jinja(ChatFormat f) {
  switch (f) {
    case ChatFormat::kChatMl: return kChatMlJinja;
    case ChatFormat::kLlama3: return kLlama3Jinja;
    case ChatFormat::kLlama2: return kLlama2Jinja;
    case ChatFormat::kPlain: return kPlainJinja;
  }
  return kPlainJinja;
}

std::string render_chat(ChatFormat f, const std::vector<ChatMessage>& messages, bool add_generation_prompt) {
  std::string out;
  switch (f) {
    case ChatFormat::kChatMl:
      for (const ChatMessage& m : messages) out += "<|im_start|>" + m.role + "\n" + m.content + "<|im_end|>\n";
      if (add_generation_prompt) out += "<|im_start|>assistant\n";
      return out;
    case ChatFormat::kLlama3:
      if (!messages.empty()) out += "<|begin_of_text|>";
      for (const ChatMessage& m : messages)
        out += "<|start_header_id|>" + m.role + "<|end_header_id|>\n\n" + tok::py_strip(m.content) + "<|eot_id|>";
      if (add_generation_prompt) out += "<|start_header_id|>assistant<|end_header_id|>\n\n";
      return out;
    case ChatFormat::kLlama2: {
      size_t first = 0;
      std::optional<std::string> system;
      if (!messages.empty() && messages[0].role == "system") {
        system = messages[0].content;
        first = 1;
      }
      for (size_t k = first; k < messages.size(); ++k) {
        const ChatMessage& m = messages[k];
        const bool want_user = (k - first) % 2 == 0;
        if ((m.role == "user") != want_user || (m.role != "user" && m.role != "assistant"))
          throw Error("llama2 chat format: conversation roles must alternate user/assistant/user/... after an "
                      "optional system message (message " + std::to_string(k) + " is \"" + m.role + "\")",
                      {}, "reorder the messages, or use another chat format");
        std::string content = m.content;
        if (k == first && system) content = "<<SYS>>\n" + *system + "\n<</SYS>>\n\n" + content;
        if (m.role == "user") out += "<s>[INST] " + tok::py_strip(content) + " [/INST]";
        else out += " " + tok::py_strip(content) + " </s>";
      }
      return out;
    }
    case ChatFormat::kPlain:
      for (const ChatMessage& m : messages) {
        if (m.role == "system") out += "System: ";
        else if (m.role == "user") out += "User: ";
        else if (m.role == "assistant") out += "Assistant: ";
        else
          throw Error("plain chat format has no role \"" + m.role + "\"", {},
                      "use the roles system, user and assistant");
        out += m.content + "\n";
      }
      if (add_generation_prompt) out += "Assistant:";
      return out;
  }
  return out;
}

namespace tok {

std::vector<std::string> chat_format_tokens(ChatFormat f) {
  switch (f) {
    case ChatFormat::kChatMl: return {"<|im_start|>", "<|im_end|>"};
    case ChatFormat::kLlama3: return {"<|begin_of_text|>", "<|start_header_id|>", "<|end_header_id|>", "<|eot_id|>"};
    case ChatFormat::kLlama2: return {"<s>", "</s>"};
    case ChatFormat::kPlain: return {};
  }
  return {};
}

}  // namespace tok

}  // namespace atax
