// Byte-level BPE training: GPT-2 pre-tokenization, word frequencies, then greedy merges over the
// unique words with incremental pair-count updates (a lazy max-heap of pair counts).
#include <algorithm>
#include <queue>
#include <unordered_set>

#include "tokenizer/internal.h"

namespace atax {

using namespace tok;

namespace {

uint64_t pack(int32_t a, int32_t b) { return (uint64_t(uint32_t(a)) << 32) | uint32_t(b); }
int32_t first_of(uint64_t p) { return int32_t(p >> 32); }
int32_t second_of(uint64_t p) { return int32_t(uint32_t(p)); }

struct Word {
  std::vector<int32_t> syms;
  int64_t count = 0;
};

}  // namespace

const char* const kNewlineIsolatingPattern =
    R"('(?:[sdmt]|ll|ve|re)| ?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+|\n|[^\S\n]+(?!\S)|[^\S\n]+)";

Tokenizer train_bpe(const std::vector<std::string>& texts, const BpeTrainOptions& opts) {
  // Special tokens: the given ones, then bos/eos/pad and the chat format's tokens if missing.
  std::vector<std::string> specials;
  auto add_special = [&](const std::string& s) {
    if (!s.empty() && std::find(specials.begin(), specials.end(), s) == specials.end()) specials.push_back(s);
  };
  for (const std::string& s : opts.special_tokens) add_special(s);
  add_special(opts.bos_token);
  add_special(opts.eos_token);
  add_special(opts.pad_token);
  for (const std::string& s : chat_format_tokens(opts.chat_format)) add_special(s);
  for (const std::string& s : specials)
    if (!utf8_valid(s)) throw Error("special token is not valid UTF-8", {}, "pass special tokens as UTF-8 text");

  const int32_t n_special = int32_t(specials.size());
  const int32_t n_base = n_special + 256;
  if (opts.vocab_size < n_base)
    throw Error("vocab size " + std::to_string(opts.vocab_size) + " is smaller than the 256 byte symbols plus " +
                    std::to_string(n_special) + " special tokens",
                {}, "use --vocab-size " + std::to_string(n_base) + " or more");
  if (opts.min_frequency < 1) throw Error("min_frequency must be at least 1", {}, "use 1 or more");

  // 1. Word frequencies (special-token text is cut out, the rest split with the GPT-2 regex).
  const Regex regex(opts.split_pattern.empty() ? kGpt2Pattern : opts.split_pattern.c_str(), "<train_bpe>");
  std::unordered_map<std::string, int64_t, StringHash, std::equal_to<>> freq;
  std::vector<std::pair<size_t, size_t>> matches;
  auto count_gap = [&](std::string_view gap) {
    matches.clear();
    regex.find_all(gap, matches);
    for (auto [b, e] : matches) {
      if (e == b) continue;
      std::string_view w = gap.substr(b, e - b);
      auto it = freq.find(w);
      if (it == freq.end()) freq.emplace(std::string(w), 1);
      else ++it->second;
    }
  };
  for (const std::string& raw : texts) {
    std::string fixed;
    std::string_view text = raw;
    if (!utf8_valid(text)) {
      fixed = utf8_lossy(text);
      text = fixed;
    }
    size_t pos = 0;
    while (pos < text.size()) {
      size_t best = std::string_view::npos, best_len = 0;
      for (const std::string& s : specials) {
        const size_t at = text.find(s, pos);
        if (at < best || (at == best && s.size() > best_len)) {
          best = at;
          best_len = s.size();
        }
      }
      if (best == std::string_view::npos) {
        count_gap(text.substr(pos));
        break;
      }
      count_gap(text.substr(pos, best - pos));
      pos = best + best_len;
    }
  }

  // Unique words in byte order, so nothing depends on hash-table order.
  std::vector<std::pair<std::string, int64_t>> sorted(freq.begin(), freq.end());
  freq.clear();
  std::sort(sorted.begin(), sorted.end());
  std::vector<Word> words(sorted.size());
  for (size_t k = 0; k < sorted.size(); ++k) {
    words[k].count = sorted[k].second;
    words[k].syms.reserve(sorted[k].first.size());
    for (unsigned char c : sorted[k].first) words[k].syms.push_back(n_special + c);
  }
  sorted.clear();

  // 2. Vocabulary: special tokens, the 256 byte symbols, then merges.
  const auto& table = byte_level_table();
  std::vector<std::string> tok_str;   // byte-level string of each id
  std::vector<std::string> tok_raw;   // raw bytes of each id (tie-breaking)
  for (const std::string& s : specials) {
    tok_str.push_back(s);
    tok_raw.push_back(s);
  }
  for (int b = 0; b < 256; ++b) {
    tok_str.push_back(table.byte_to_utf8[b]);
    tok_raw.push_back(std::string(1, char(b)));
  }
  Vocab str_to_id;
  for (int32_t id = 0; id < int32_t(tok_str.size()); ++id) str_to_id.emplace(tok_str[id], id);

  // 3. Pair counts and where each pair occurs.
  std::unordered_map<uint64_t, int64_t> counts;
  std::unordered_map<uint64_t, std::vector<int32_t>> where;
  for (int32_t w = 0; w < int32_t(words.size()); ++w) {
    const auto& s = words[w].syms;
    for (size_t k = 0; k + 1 < s.size(); ++k) {
      const uint64_t p = pack(s[k], s[k + 1]);
      counts[p] += words[w].count;
      auto& list = where[p];
      if (list.empty() || list.back() != w) list.push_back(w);
    }
  }
  struct Entry {
    int64_t count;
    uint64_t pair;
  };
  // Max-heap: higher count first; ties by the pair's bytes (smaller first).
  auto worse = [&](const Entry& x, const Entry& y) {
    if (x.count != y.count) return x.count < y.count;
    const std::string& xa = tok_raw[first_of(x.pair)];
    const std::string& ya = tok_raw[first_of(y.pair)];
    if (xa != ya) return xa > ya;
    return tok_raw[second_of(x.pair)] > tok_raw[second_of(y.pair)];
  };
  std::priority_queue<Entry, std::vector<Entry>, decltype(worse)> heap(worse);
  {
    std::vector<std::pair<uint64_t, int64_t>> init(counts.begin(), counts.end());
    std::sort(init.begin(), init.end());
    for (auto [p, c] : init) heap.push({c, p});
  }

  // 4. Merge until the vocabulary is full or no pair is frequent enough.
  std::vector<std::pair<int32_t, int32_t>> merges;
  std::vector<int32_t> stamp(words.size(), -1);
  std::unordered_set<uint64_t> touched;
  int32_t vocab_count = int32_t(tok_str.size());
  while (vocab_count < opts.vocab_size && !heap.empty()) {
    const Entry top = heap.top();
    heap.pop();
    auto cit = counts.find(top.pair);
    const int64_t now = cit == counts.end() ? 0 : cit->second;
    if (now != top.count) {
      if (now > 0) heap.push({now, top.pair});
      continue;
    }
    if (now < opts.min_frequency || now <= 0) break;
    const int32_t a = first_of(top.pair), b = second_of(top.pair);
    std::string merged = tok_str[a] + tok_str[b];
    int32_t new_id;
    if (auto it = str_to_id.find(merged); it != str_to_id.end()) {
      new_id = it->second;
    } else {
      new_id = int32_t(tok_str.size());
      tok_raw.push_back(tok_raw[a] + tok_raw[b]);
      str_to_id.emplace(merged, new_id);
      tok_str.push_back(std::move(merged));
      ++vocab_count;
    }
    merges.emplace_back(a, b);
    const int32_t merge_index = int32_t(merges.size());
    touched.clear();
    std::vector<int32_t> list = std::move(where[top.pair]);
    where.erase(top.pair);
    for (int32_t w : list) {
      if (stamp[w] == merge_index) continue;
      stamp[w] = merge_index;
      auto& s = words[w].syms;
      const int64_t c = words[w].count;
      bool has = false;
      for (size_t k = 0; k + 1 < s.size() && !has; ++k) has = s[k] == a && s[k + 1] == b;
      if (!has) continue;
      for (size_t k = 0; k + 1 < s.size(); ++k) counts[pack(s[k], s[k + 1])] -= c;
      std::vector<int32_t> out;
      out.reserve(s.size());
      for (size_t k = 0; k < s.size(); ++k) {
        if (k + 1 < s.size() && s[k] == a && s[k + 1] == b) {
          out.push_back(new_id);
          ++k;
        } else {
          out.push_back(s[k]);
        }
      }
      s.swap(out);
      for (size_t k = 0; k + 1 < s.size(); ++k) {
        const uint64_t p = pack(s[k], s[k + 1]);
        counts[p] += c;
        if (s[k] == new_id || s[k + 1] == new_id) {
          auto& wl = where[p];
          if (wl.empty() || wl.back() != w) wl.push_back(w);
          touched.insert(p);
        }
      }
    }
    counts.erase(top.pair);
    std::vector<uint64_t> fresh(touched.begin(), touched.end());
    std::sort(fresh.begin(), fresh.end());
    for (uint64_t p : fresh)
      if (counts[p] > 0) heap.push({counts[p], p});
  }

  // 5. tokenizer.json (byte-level) and tokenizer_config.json.
  json vocab = json::object();
  for (int32_t id = 0; id < int32_t(tok_str.size()); ++id) vocab[tok_str[id]] = id;
  json merge_json = json::array();
  for (auto [a, b] : merges) merge_json.push_back(json::array({tok_str[a], tok_str[b]}));
  json added = json::array();
  for (int32_t id = 0; id < n_special; ++id)
    added.push_back({{"id", id}, {"content", specials[id]}, {"single_word", false}, {"lstrip", false},
                     {"rstrip", false}, {"normalized", false}, {"special", true}});
  json post = nullptr;
  if (!opts.bos_token.empty()) {
    const int32_t bos = str_to_id.find(opts.bos_token)->second;
    post = {{"type", "TemplateProcessing"},
            {"single", json::array({{{"SpecialToken", {{"id", opts.bos_token}, {"type_id", 0}}}},
                                    {{"Sequence", {{"id", "A"}, {"type_id", 0}}}}})},
            {"pair", json::array({{{"SpecialToken", {{"id", opts.bos_token}, {"type_id", 0}}}},
                                  {{"Sequence", {{"id", "A"}, {"type_id", 0}}}},
                                  {{"SpecialToken", {{"id", opts.bos_token}, {"type_id", 1}}}},
                                  {{"Sequence", {{"id", "B"}, {"type_id", 1}}}}})},
            {"special_tokens",
             {{opts.bos_token, {{"id", opts.bos_token}, {"ids", {bos}}, {"tokens", {opts.bos_token}}}}}}};
  }
  json tj = {
      {"version", "1.0"},
      {"truncation", nullptr},
      {"padding", nullptr},
      {"added_tokens", added},
      {"normalizer", nullptr},
      {"pre_tokenizer",
       opts.split_pattern.empty()
           ? json{{"type", "ByteLevel"}, {"add_prefix_space", false}, {"trim_offsets", true}, {"use_regex", true}}
           : json{{"type", "Sequence"},
                  {"pretokenizers",
                   {{{"type", "Split"}, {"pattern", {{"Regex", opts.split_pattern}}}, {"behavior", "Isolated"},
                     {"invert", false}},
                    {{"type", "ByteLevel"}, {"add_prefix_space", false}, {"trim_offsets", true}, {"use_regex", false}}}}}},
      {"post_processor", post},
      {"decoder", {{"type", "ByteLevel"}, {"add_prefix_space", false}, {"trim_offsets", true}, {"use_regex", true}}},
      {"model",
       {{"type", "BPE"},
        {"dropout", nullptr},
        {"unk_token", nullptr},
        {"continuing_subword_prefix", nullptr},
        {"end_of_word_suffix", nullptr},
        {"fuse_unk", false},
        {"byte_fallback", false},
        {"ignore_merges", false},
        {"vocab", vocab},
        {"merges", merge_json}}}};
  auto token_or_null = [](const std::string& s) { return s.empty() ? json(nullptr) : json(s); };
  json added_decoder = json::object();
  for (int32_t id = 0; id < n_special; ++id)
    added_decoder[std::to_string(id)] = {{"content", specials[id]}, {"single_word", false}, {"lstrip", false},
                                         {"rstrip", false},         {"normalized", false},  {"special", true}};
  json config = {{"tokenizer_class", "PreTrainedTokenizerFast"},
                 {"bos_token", token_or_null(opts.bos_token)},
                 {"eos_token", token_or_null(opts.eos_token)},
                 {"pad_token", token_or_null(opts.pad_token)},
                 {"unk_token", nullptr},
                 {"add_bos_token", !opts.bos_token.empty()},
                 {"add_eos_token", false},
                 {"clean_up_tokenization_spaces", false},
                 {"model_max_length", 1 << 20},
                 {"added_tokens_decoder", added_decoder},
                 {"chat_template", chat_template_jinja(opts.chat_format)}};
  return Tokenizer::from_json(tj, config, "<trained tokenizer.json>");
}

}  // namespace atax
