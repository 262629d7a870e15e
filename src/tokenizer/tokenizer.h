// tokenizer: Hugging Face tokenizer.json (byte-level BPE as in GPT-2 / Llama-3 / Qwen, and
// SentencePiece-style BPE with byte fallback as in Llama-2 / Mistral), chat templates, and BPE
// training. No LibTorch here.
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "core/core.h"
#include "template/template.h"

namespace atax {

// The four chat formats atax renders itself: named overrides of the model's own Jinja template
// (which src/template renders as transformers does).
enum class ChatFormat { kChatMl, kLlama3, kLlama2, kPlain };

// "chatml" | "llama3" | "llama2" | "plain" -> format; Error listing the names otherwise.
ChatFormat chat_format_from_name(const std::string& name);
std::string chat_format_name(ChatFormat f);
// Recognises a tokenizer_config.json `chat_template` string. Fails with Error (hint: pass
// --chat-template chatml|llama3|llama2|plain) when it matches none of the built-in formats.
ChatFormat detect_chat_format(const std::string& jinja_template, const std::string& file = {});

// Renders `messages` in format `f`, exactly as the format's Jinja template (chat_template_jinja)
// does under transformers' apply_chat_template; with add_generation_prompt the assistant turn is
// left open. The formats write fixed token texts (<|im_start|>, <|begin_of_text|>, <s>, </s>);
// the result already holds the BOS text where the format has one, so encode it with
// add_special_tokens = false. Fails with Error for roles the format cannot express (plain:
// system/user/assistant; llama2: an optional system, then alternating user/assistant).
std::string render_chat(ChatFormat f, const std::vector<ChatMessage>& messages, bool add_generation_prompt = true);
// The Jinja `chat_template` string for tokenizer_config.json that renders format `f`; it is
// recognised by detect_chat_format.
std::string chat_template_jinja(ChatFormat f);

class Tokenizer {
 public:
  // Loads `path` = a tokenizer.json file or a folder holding tokenizer.json, plus the
  // tokenizer_config.json beside it if there is one. Fails with Error naming the file (and a
  // hint) for malformed or unsupported content. Supported: model BPE (merges as "a b" or [a, b],
  // byte_fallback, fuse_unk, ignore_merges, unk); normalizers NFC/NFD/NFKC/NFKD, Lowercase,
  // Prepend, Replace, Strip, StripAccents, Sequence; pre-tokenizers Split, ByteLevel, Metaspace,
  // Digits, Whitespace(Split), Sequence; decoders ByteLevel, Replace, ByteFallback, Fuse, Strip,
  // Metaspace, BPEDecoder, Sequence; post-processors TemplateProcessing, ByteLevel,
  // Roberta/BertProcessing, Sequence. `truncation` and `padding` are ignored. Like
  // transformers, a Llama-class config (or one that sets add_bos_token / add_eos_token)
  // replaces the post-processor by "[bos] $A [eos]".
  static Tokenizer load(const fs::path& path);
  // Builds from parsed tokenizer.json / tokenizer_config.json documents; `name` is the file name
  // errors report.
  static Tokenizer from_json(const json& tokenizer_json, const json& tokenizer_config = json::object(),
                             const std::string& name = "tokenizer.json");

  // Encodes like HF `tokenizer(text, add_special_tokens=...)`: normalizer, added tokens split
  // out, pre-tokenizer, model, and the post-processor when add_special_tokens. Ill-formed UTF-8
  // is read as U+FFFD. Thread-safe (the word cache is locked).
  std::vector<int32_t> encode(std::string_view text, bool add_special_tokens = true) const;
  // Decodes like HF `decode(ids, skip_special_tokens=..., clean_up_tokenization_spaces=False)`.
  // Fails with Error for an id outside [0, vocab_size()).
  std::string decode(const std::vector<int32_t>& ids, bool skip_special_tokens = false) const;
  std::vector<std::string> tokens(const std::vector<int32_t>& ids) const;  // vocab pieces

  int32_t vocab_size() const;  // including added tokens
  std::string id_to_token(int32_t id) const;
  std::optional<int32_t> token_to_id(std::string_view token) const;
  bool is_special(int32_t id) const;

  std::optional<int32_t> bos_id() const;
  std::optional<int32_t> eos_id() const;
  std::optional<int32_t> pad_id() const;
  // Ids that end generation: eos, then <|im_end|> and <|eot_id|> where the vocab has them.
  std::vector<int32_t> stop_ids() const;

  // Chat. By default the model's own template renders: chat_template.jinja beside the tokenizer,
  // else tokenizer_config.json's chat_template (a string, or the "default" / "tool_use" entry of
  // a named list), rendered by the Jinja engine as transformers does. set_chat_format() replaces
  // it by a built-in format; set_chat_template_name() picks another entry of a named list.
  //
  // The built-in format: the override if set, else the one the template is recognised as
  // (Error if there is no template or it is not one of the four).
  ChatFormat chat_format() const;
  void set_chat_format(ChatFormat f);
  // Chooses the named template NAME of a chat_template list; Error listing the names if absent.
  void set_chat_template_name(const std::string& name);
  // Whether the tokenizer carries a template of its own (a built-in override aside).
  bool has_chat_template() const;
  // Renders `messages` (role / content / tool_calls / ... objects, as transformers takes them) with
  // the override or the model's template. The variables are the tokenizer_config's special tokens
  // (bos_token, eos_token, ...), messages, tools (null if none), documents (null),
  // add_generation_prompt, then `extra` (e.g. date_string, enable_thinking), which wins. Fails
  // with Error naming the template and line when it raises or fails, or when there is none.
  // Encode the result with encode_prompt (BOS exactly once).
  std::string apply_chat_template(const ordered_json& messages, bool add_generation_prompt,
                                  const ordered_json& tools = nullptr,
                                  const ordered_json& extra = ordered_json::object()) const;
  // The same for plain role/content messages.
  std::string apply_chat_template(const std::vector<ChatMessage>& messages,
                                  bool add_generation_prompt = true) const;
  // What renders chats, for cache keys: "builtin:<format>" for an override, "jinja:<sha256 of the
  // template text>" for the model's own template, "none" when there is neither.
  std::string chat_template_identity() const;
  // Encodes a rendered prompt with the special tokens (as encode(text, true)) except the
  // post-processor's prefix (BOS) when the text already starts with its text, so a template that
  // writes BOS itself gets it once, never twice.
  std::vector<int32_t> encode_prompt(std::string_view text) const;

  const json& tokenizer_json() const;
  const json& tokenizer_config() const;
  // Writes tokenizer.json and tokenizer_config.json into `dir` (each atomically); a chat format
  // set with set_chat_format is written as the config's chat_template.
  void save(const fs::path& dir) const;

  struct Impl;

 private:
  static Tokenizer build(json tokenizer_json, json tokenizer_config, const std::string& name);
  std::shared_ptr<const Impl> impl_;
  std::optional<ChatFormat> chat_override_;
  std::string chat_template_name_;  // "" = default / tool_use as transformers chooses
};

struct BpeTrainOptions {
  int32_t vocab_size = 2048;  // including the 256 byte symbols and the special tokens
  std::vector<std::string> special_tokens = {"<|endoftext|>", "<|pad|>"};
  int32_t min_frequency = 2;
  std::string bos_token;  // "" = none
  std::string eos_token = "<|endoftext|>";
  std::string pad_token = "<|pad|>";
  ChatFormat chat_format = ChatFormat::kPlain;  // written as chat_template in tokenizer_config
  // Pre-tokenizer split regex; "" = GPT-2's. A custom one is written as Llama-3 does: a Split
  // (Isolated) followed by ByteLevel without its own regex.
  std::string split_pattern;
};

// A split regex that keeps every newline a token of its own, so a prompt ending in "\n" (a
// HumanEval prompt, a chat turn) ends on the same token boundary as the training text did; and
// numbers in groups of up to three digits that never take the space before them (as Llama 3
// splits them), so "31" is the same token after a space, at a line start or after "=": the
// toy world's arithmetic copies numbers between those places.
extern const char* const kNewlineIsolatingPattern;

// Trains a byte-level BPE tokenizer (GPT-2 pre-tokenizer regex, byte-level decoder) on `texts`.
// Deterministic: ties between equally frequent pairs break by the pair's byte order. Ids: the
// special tokens (the given ones, then bos/eos/pad and the chat format's tokens if missing), the
// 256 bytes, then one per merge; merging stops at vocab_size or below min_frequency. The result
// has a TemplateProcessing "bos $A" post-processor when bos_token is set (none otherwise) and a
// tokenizer_config with bos/eos/pad and chat_template_jinja(chat_format). Fails with Error if
// vocab_size < 256 + the number of special tokens.
Tokenizer train_bpe(const std::vector<std::string>& texts, const BpeTrainOptions& opts);

}  // namespace atax
