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

namespace atax {

// The chat formats atax renders itself (a Jinja engine is out of scope: a template is recognised
// and mapped to one of these).
enum class ChatFormat { kChatMl, kLlama3, kLlama2, kPlain };

// "chatml" | "llama3" | "llama2" | "plain" -> format; Error listing the names otherwise.
ChatFormat chat_format_from_name(const std::string& name);
std::string chat_format_name(ChatFormat f);
// Recognises a tokenizer_config.json `chat_template` string. Fails with Error (hint: pass
// --chat-template chatml|llama3|llama2|plain) when it matches none of the built-in formats.
ChatFormat detect_chat_format(const std::string& jinja_template, const std::string& file = {});

class Tokenizer {
 public:
  // Loads `path` = a tokenizer.json file or a folder holding tokenizer.json (and optionally
  // tokenizer_config.json). Fails with Error naming the file for malformed or unsupported content.
  static Tokenizer load(const fs::path& path);
  // Builds from parsed tokenizer.json / tokenizer_config.json documents.
  static Tokenizer from_json(const json& tokenizer_json, const json& tokenizer_config = json::object(),
                             const std::string& name = "tokenizer.json");

  // Encodes like HF `tokenizer(text, add_special_tokens=...)`: normalizer, added tokens split
  // out, pre-tokenizer, model, and the post-processor when add_special_tokens.
  std::vector<int32_t> encode(std::string_view text, bool add_special_tokens = true) const;
  // Decodes like HF `decode(ids, skip_special_tokens=..., clean_up_tokenization_spaces=False)`.
  std::string decode(const std::vector<int32_t>& ids, bool skip_special_tokens = false) const;
  std::vector<std::string> tokens(const std::vector<int32_t>& ids) const;  // vocab pieces

  int32_t vocab_size() const;  // including added tokens
  std::string id_to_token(int32_t id) const;
  std::optional<int32_t> token_to_id(std::string_view token) const;
  bool is_special(int32_t id) const;

  std::optional<int32_t> bos_id() const;
  std::optional<int32_t> eos_id() const;
  std::optional<int32_t> pad_id() const;
  // Ids that end generation: eos and, for chat formats, the end-of-turn token.
  std::vector<int32_t> stop_ids() const;

  // The chat format: the override if set, else detected from tokenizer_config's chat_template
  // (Error if there is none or it is unrecognised).
  ChatFormat chat_format() const;
  void set_chat_format(ChatFormat f);
  // Renders messages; with add_generation_prompt the assistant turn is left open.
  std::string apply_chat_template(const std::vector<ChatMessage>& messages,
                                  bool add_generation_prompt = true) const;

  const json& tokenizer_json() const;
  const json& tokenizer_config() const;
  // Writes tokenizer.json and tokenizer_config.json into `dir` (atomically).
  void save(const fs::path& dir) const;

  struct Impl;

 private:
  std::shared_ptr<const Impl> impl_;
  std::optional<ChatFormat> chat_override_;
};

struct BpeTrainOptions {
  int32_t vocab_size = 2048;  // including the 256 byte symbols and the special tokens
  std::vector<std::string> special_tokens = {"<|endoftext|>", "<|pad|>"};
  int32_t min_frequency = 2;
  std::string bos_token;  // "" = none
  std::string eos_token = "<|endoftext|>";
  std::string pad_token = "<|pad|>";
  ChatFormat chat_format = ChatFormat::kPlain;  // written as chat_template in tokenizer_config
};

// Trains a byte-level BPE tokenizer (GPT-2 pre-tokenizer regex, byte-level decoder) on `texts`.
// Deterministic: ties between equally frequent pairs break by the pair's byte order.
Tokenizer train_bpe(const std::vector<std::string>& texts, const BpeTrainOptions& opts);

}  // namespace atax
