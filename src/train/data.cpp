// Training data: preference pairs, SFT conversations and pretraining corpora read from JSONL,
// chat-formatted, tokenized, truncated and filtered, with a report of what was dropped and why.
#include <unordered_set>

#include <fmt/format.h>

#include "train/train.h"

namespace atax {

// ---------------------------------------------------------------------------------------------
// DataReport
// ---------------------------------------------------------------------------------------------

void DataReport::drop(const std::string& reason, const std::string& where) {
  ++dropped[reason];
  if (examples.size() < 20) examples.push_back(where + ": " + reason);
}

json DataReport::to_json() const {
  json j = {{"file", file}, {"read", read}, {"kept", kept}, {"truncated", truncated}, {"dropped", dropped},
            {"bad_lines", bad_lines}};
  if (!examples.empty()) j["examples"] = examples;
  if (!bad_line_reasons.empty()) j["bad_line_reasons"] = bad_line_reasons;
  return j;
}

std::string DataReport::summary() const {
  std::string s = fmt::format("{}: {} read, {} kept", file, read, kept);
  if (truncated) s += fmt::format(", {} truncated", truncated);
  for (const auto& [reason, n] : dropped) s += fmt::format(", {} dropped ({})", n, reason);
  if (bad_lines) s += fmt::format(", {} bad lines skipped", bad_lines);
  return s;
}

// ---------------------------------------------------------------------------------------------
// Tokenization
// ---------------------------------------------------------------------------------------------

namespace {

// Encodes a rendered prompt, adding the tokenizer's special tokens (BOS) unless the template
// already wrote the BOS text.
std::vector<int32_t> encode_prompt(const Tokenizer& tok, const std::string& text) {
  if (auto bos = tok.bos_id()) {
    if (starts_with(text, tok.id_to_token(*bos))) return tok.encode(text, false);
  }
  return tok.encode(text, true);
}

ChatMessage parse_message(const json& m, const std::string& file, int64_t line) {
  if (!m.is_object()) throw Error("a message is not an object", file, "", line);
  ChatMessage msg;
  msg.role = require_string(m, "role", file, line);
  msg.content = require_string(m, "content", file, line);
  return msg;
}

std::vector<ChatMessage> parse_messages(const json& arr, const std::string& field, const std::string& file,
                                        int64_t line) {
  if (!arr.is_array()) throw Error("field \"" + field + "\" is neither a string nor a message list", file, "", line);
  std::vector<ChatMessage> out;
  for (const auto& m : arr) out.push_back(parse_message(m, file, line));
  return out;
}

// A response given as a string or as a list holding one assistant message.
std::string parse_response(const json& j, const std::string& field, const std::string& file, int64_t line) {
  auto it = j.find(field);
  if (it == j.end()) throw Error("missing field \"" + field + "\"", file, "", line);
  if (it->is_string()) return it->get<std::string>();
  auto msgs = parse_messages(*it, field, file, line);
  if (msgs.size() != 1 || msgs[0].role != "assistant")
    throw Error("field \"" + field + "\" must hold exactly one assistant message", file, "", line);
  return msgs[0].content;
}

ChatPrompt parse_prompt(const json& p, const std::string& file, int64_t line) {
  if (p.is_string()) return {{"user", p.get<std::string>()}};
  return parse_messages(p, "prompt", file, line);
}

bool blank(const std::string& s) { return trim(s).empty(); }

bool prompt_blank(const ChatPrompt& p) {
  for (const auto& m : p)
    if (!blank(m.content)) return false;
  return true;
}

std::string prompt_key(const ChatPrompt& p) {
  std::string k;
  for (const auto& m : p) k += m.role + '\x1e' + m.content + '\x1f';
  return k;
}

}  // namespace

std::pair<std::vector<int32_t>, std::vector<int32_t>> tokenize_prompt_response(const Tokenizer& tok,
                                                                                const ChatPrompt& prompt,
                                                                                const std::string& response) {
  std::string prompt_text = tok.apply_chat_template(prompt, true);
  std::vector<ChatMessage> full = prompt;
  full.push_back({"assistant", response});
  std::string full_text = tok.apply_chat_template(full, false);
  // The response is whatever the template adds after the generation prompt (" text\n" for the
  // plain format, "text<|im_end|>\n" for ChatML).
  std::string response_text =
      starts_with(full_text, prompt_text) ? full_text.substr(prompt_text.size()) : response;
  auto p = encode_prompt(tok, prompt_text);
  auto r = tok.encode(response_text, false);
  if (auto eos = tok.eos_id()) {
    if (r.empty() || r.back() != *eos) r.push_back(*eos);
  }
  return {std::move(p), std::move(r)};
}

TokenSequence PreferencePair::chosen_seq() const {
  TokenSequence s;
  s.ids = prompt;
  s.ids.insert(s.ids.end(), chosen.begin(), chosen.end());
  s.prompt_len = static_cast<int64_t>(prompt.size());
  return s;
}

TokenSequence PreferencePair::rejected_seq() const {
  TokenSequence s;
  s.ids = prompt;
  s.ids.insert(s.ids.end(), rejected.begin(), rejected.end());
  s.prompt_len = static_cast<int64_t>(prompt.size());
  return s;
}

// ---------------------------------------------------------------------------------------------
// Preference pairs
// ---------------------------------------------------------------------------------------------

std::vector<PreferencePair> load_preferences(const fs::path& path, const Tokenizer& tok, const TokenizeOptions& opts,
                                             const PreferenceFilter& filter, DataReport* report_out) {
  DataReport local;
  DataReport& report = report_out ? *report_out : local;
  report = DataReport{};
  report.file = path.string();
  auto has = [](const std::vector<std::string>& v, const std::string& x) {
    return std::find(v.begin(), v.end(), x) != v.end();
  };
  for (const auto& d : filter.drop)
    if (!has({"empty", "identical", "duplicate", "over-length"}, d))
      throw Error("unknown data filter \"" + d + "\"", "", "use some of: empty, identical, duplicate, over-length");
  const bool drop_empty = has(filter.drop, "empty"), drop_identical = has(filter.drop, "identical");
  const bool drop_duplicate = has(filter.drop, "duplicate");
  const bool drop_long = opts.drop_over_length || has(filter.drop, "over-length");
  const std::string file = path.string();
  std::unordered_set<std::string> seen;
  std::vector<PreferencePair> out;
  auto stats = for_each_jsonl(
      path,
      [&](const json& j, int64_t line) {
        ChatPrompt prompt;
        std::string chosen, rejected;
        auto pit = j.find("prompt");
        if (pit != j.end()) {
          prompt = parse_prompt(*pit, file, line);
          chosen = parse_response(j, "chosen", file, line);
          rejected = parse_response(j, "rejected", file, line);
        } else {
          // Implicit prompt: two conversations sharing everything but the final assistant turn.
          if (!j.contains("chosen")) throw Error("missing field \"chosen\"", file, "", line);
          if (!j.contains("rejected")) throw Error("missing field \"rejected\"", file, "", line);
          if (j["chosen"].is_string() || j["rejected"].is_string())
            throw Error("missing field \"prompt\"", file,
                        "string chosen/rejected need a \"prompt\"; conversations may omit it", line);
          auto c = parse_messages(j["chosen"], "chosen", file, line);
          auto r = parse_messages(j["rejected"], "rejected", file, line);
          if (c.empty() || r.empty() || c.back().role != "assistant" || r.back().role != "assistant")
            throw Error("chosen and rejected conversations must end with an assistant message", file, "", line);
          if (prompt_key({c.begin(), c.end() - 1}) != prompt_key({r.begin(), r.end() - 1}))
            throw Error("chosen and rejected conversations differ before their final turn", file, "", line);
          prompt.assign(c.begin(), c.end() - 1);
          chosen = c.back().content;
          rejected = r.back().content;
        }
        PreferencePair pair;
        pair.origin = file + ":" + std::to_string(line);
        pair.category = j.value("category", std::string());
        pair.kind = j.value("kind", std::string());
        if (auto d = j.find("difficulty"); d != j.end() && d->is_number()) pair.difficulty = d->get<int64_t>();
        ++report.read;
        if (!filter.kinds.empty() && !has(filter.kinds, pair.kind)) {
          report.drop("kind not selected", pair.origin);
          return;
        }
        if (!filter.behaviours.empty() && pair.kind == "harmless" && !has(filter.behaviours, pair.category)) {
          report.drop("category not in --behaviours", pair.origin);
          return;
        }
        if (blank(chosen) || blank(rejected) || prompt_blank(prompt)) {
          if (!drop_empty)
            throw Error(prompt_blank(prompt) ? "empty prompt" : "empty response", file,
                        "remove the line, or keep the \"empty\" data filter", line);
          report.drop("empty", pair.origin);
          return;
        }
        if (drop_identical && trim(chosen) == trim(rejected)) {
          report.drop("identical", pair.origin);
          return;
        }
        if (drop_duplicate) {
          std::string key = prompt_key(prompt) + '\x1d' + chosen + '\x1d' + rejected;
          if (!seen.insert(std::move(key)).second) {
            report.drop("duplicate", pair.origin);
            return;
          }
        }
        auto [p_ids, c_ids] = tokenize_prompt_response(tok, prompt, chosen);
        auto r_ids = tokenize_prompt_response(tok, prompt, rejected).second;
        if (opts.max_length > 0) {
          const int64_t P = static_cast<int64_t>(p_ids.size());
          if (P >= opts.max_length) {
            report.drop("over-length (prompt alone fills --max-length)", pair.origin);
            return;
          }
          const int64_t room = opts.max_length - P;
          if (static_cast<int64_t>(std::max(c_ids.size(), r_ids.size())) > room) {
            if (drop_long) {
              report.drop("over-length", pair.origin);
              return;
            }
            if (static_cast<int64_t>(c_ids.size()) > room) c_ids.resize(room);
            if (static_cast<int64_t>(r_ids.size()) > room) r_ids.resize(room);
            ++report.truncated;
          }
        }
        pair.prompt = std::move(p_ids);
        pair.chosen = std::move(c_ids);
        pair.rejected = std::move(r_ids);
        if (pair.chosen == pair.rejected && drop_identical) {  // identical after truncation
          report.drop("identical after truncation", pair.origin);
          return;
        }
        out.push_back(std::move(pair));
      },
      opts.on_bad_line);
  report.kept = static_cast<int64_t>(out.size());
  report.bad_lines = stats.lines_skipped;
  report.bad_line_reasons = stats.skipped_reasons;
  return out;
}

// ---------------------------------------------------------------------------------------------
// SFT / NLL sequences
// ---------------------------------------------------------------------------------------------

std::vector<TokenSequence> load_sft(const fs::path& path, const Tokenizer& tok, const TokenizeOptions& opts,
                                    DataReport* report_out) {
  DataReport local;
  DataReport& report = report_out ? *report_out : local;
  report = DataReport{};
  report.file = path.string();
  const std::string file = path.string();
  std::vector<TokenSequence> out;
  auto stats = for_each_jsonl(
      path,
      [&](const json& j, int64_t line) {
        const std::string where = file + ":" + std::to_string(line);
        TokenSequence seq;
        if (j.contains("messages")) {
          auto msgs = parse_messages(j["messages"], "messages", file, line);
          if (msgs.empty() || msgs.back().role != "assistant")
            throw Error("\"messages\" must end with an assistant message", file, "", line);
          if (blank(msgs.back().content)) throw Error("empty response", file, "", line);
          ChatPrompt prompt(msgs.begin(), msgs.end() - 1);
          auto [p, r] = tokenize_prompt_response(tok, prompt, msgs.back().content);
          seq.prompt_len = static_cast<int64_t>(p.size());
          seq.ids = std::move(p);
          seq.ids.insert(seq.ids.end(), r.begin(), r.end());
        } else if (j.contains("prompt")) {
          ChatPrompt prompt = parse_prompt(j["prompt"], file, line);
          std::string response = j.contains("completion") ? parse_response(j, "completion", file, line)
                                                          : parse_response(j, "chosen", file, line);
          if (blank(response)) throw Error("empty response", file, "", line);
          auto [p, r] = tokenize_prompt_response(tok, prompt, response);
          seq.prompt_len = static_cast<int64_t>(p.size());
          seq.ids = std::move(p);
          seq.ids.insert(seq.ids.end(), r.begin(), r.end());
        } else if (j.contains("text")) {
          std::string text = require_string(j, "text", file, line);
          if (blank(text)) throw Error("empty text", file, "", line);
          seq.ids = tok.encode(text, true);
          if (auto eos = tok.eos_id()) seq.ids.push_back(*eos);
          seq.prompt_len = 0;
        } else {
          throw Error("missing field: expected \"messages\", \"prompt\" + \"completion\", or \"text\"", file, "",
                      line);
        }
        ++report.read;
        if (opts.max_length > 0 && static_cast<int64_t>(seq.ids.size()) > opts.max_length) {
          if (seq.prompt_len + 1 >= opts.max_length) {
            report.drop("over-length (prompt alone fills --max-length)", where);
            return;
          }
          if (opts.drop_over_length) {
            report.drop("over-length", where);
            return;
          }
          seq.ids.resize(opts.max_length);
          ++report.truncated;
        }
        if (static_cast<int64_t>(seq.ids.size()) < 2) {
          report.drop("too short to score", where);
          return;
        }
        out.push_back(std::move(seq));
      },
      opts.on_bad_line);
  report.kept = static_cast<int64_t>(out.size());
  report.bad_lines = stats.lines_skipped;
  report.bad_line_reasons = stats.skipped_reasons;
  return out;
}

// ---------------------------------------------------------------------------------------------
// Pretraining corpora
// ---------------------------------------------------------------------------------------------

std::vector<std::vector<int32_t>> load_corpus_documents(const fs::path& path, const Tokenizer& tok,
                                                        BadLinePolicy policy, DataReport* report_out) {
  DataReport local;
  DataReport& report = report_out ? *report_out : local;
  report = DataReport{};
  report.file = path.string();
  std::vector<std::vector<int32_t>> docs;
  auto eos = tok.eos_id();
  auto add = [&](const std::string& text) {
    auto ids = tok.encode(text, true);
    if (eos) ids.push_back(*eos);
    docs.push_back(std::move(ids));
  };
  std::string name = path.filename().string();
  if (ends_with(name, ".jsonl") || ends_with(name, ".jsonl.gz")) {
    const std::string file = path.string();
    auto stats = for_each_jsonl(
        path,
        [&](const json& j, int64_t line) {
          std::string text = require_string(j, "text", file, line);
          ++report.read;
          if (blank(text)) {
            report.drop("empty", file + ":" + std::to_string(line));
            return;
          }
          add(text);
        },
        policy);
    report.bad_lines = stats.lines_skipped;
    report.bad_line_reasons = stats.skipped_reasons;
  } else {
    std::string text = read_maybe_gzip(path);
    ++report.read;
    if (blank(text)) throw Error("the corpus is empty", path.string());
    add(text);
  }
  report.kept = static_cast<int64_t>(docs.size());
  if (docs.empty()) throw Error("the corpus has no documents", path.string(), "each line needs a non-empty \"text\"");
  return docs;
}

std::vector<TokenSequence> pack_blocks(const std::vector<int32_t>& tokens, int64_t seq_len) {
  TORCH_CHECK(seq_len >= 1, "pack_blocks: seq_len must be positive");
  std::vector<TokenSequence> out;
  const int64_t n = static_cast<int64_t>(tokens.size());
  for (int64_t start = 0; start + seq_len + 1 <= n; start += seq_len) {
    TokenSequence s;
    s.ids.assign(tokens.begin() + start, tokens.begin() + start + seq_len + 1);
    s.prompt_len = 0;
    out.push_back(std::move(s));
  }
  return out;
}

}  // namespace atax
