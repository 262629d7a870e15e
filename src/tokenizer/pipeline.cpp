// The stages of a tokenizer.json around the model: normalizers, pre-tokenizers, decoders and
// post-processors, each with HF `tokenizers` semantics. Unsupported types are errors.
#include "tokenizer/internal.h"

namespace atax::tok {

void fail(const std::string& file, const std::string& what, const std::string& hint) {
  throw Error(what, file, hint);
}

namespace {

const std::string kUnsupportedHint =
    "atax supports BPE tokenizers (byte-level as in GPT-2/Llama-3/Qwen, or SentencePiece-style as in "
    "Llama-2/Mistral); convert the tokenizer or use one of those";

std::string type_of(const json& j, const std::string& file, const std::string& where) {
  if (!j.is_object()) fail(file, where + " must be an object or null");
  auto it = j.find("type");
  if (it == j.end() || !it->is_string()) fail(file, where + " has no \"type\"");
  return it->get<std::string>();
}

const json& field(const json& j, const char* key, const std::string& file, const std::string& where) {
  auto it = j.find(key);
  if (it == j.end()) fail(file, where + " has no \"" + key + "\"");
  return *it;
}

std::string string_field(const json& j, const char* key, const std::string& file, const std::string& where) {
  const json& v = field(j, key, file, where);
  if (!v.is_string()) fail(file, where + "." + key + " must be a string");
  return v.get<std::string>();
}

bool bool_field(const json& j, const char* key, bool dflt, const std::string& file, const std::string& where) {
  auto it = j.find(key);
  if (it == j.end() || it->is_null()) return dflt;
  if (!it->is_boolean()) fail(file, where + "." + key + " must be true or false");
  return it->get<bool>();
}

// A HF "pattern": {"String": "..."} (literal) or {"Regex": "..."}.
struct Pattern {
  std::string literal;
  std::shared_ptr<Regex> regex;

  void find_all(std::string_view s, std::vector<std::pair<size_t, size_t>>& out) const {
    if (regex) {
      regex->find_all(s, out);
      return;
    }
    if (literal.empty()) return;
    size_t pos = 0;
    while ((pos = s.find(literal, pos)) != std::string_view::npos) {
      out.emplace_back(pos, pos + literal.size());
      pos += literal.size();
    }
  }
};

Pattern parse_pattern(const json& j, const std::string& file, const std::string& where) {
  Pattern p;
  if (j.is_object() && j.contains("String") && j["String"].is_string()) {
    p.literal = j["String"].get<std::string>();
  } else if (j.is_object() && j.contains("Regex") && j["Regex"].is_string()) {
    p.regex = std::make_shared<Regex>(j["Regex"].get<std::string>(), file);
  } else if (j.is_string()) {
    p.literal = j.get<std::string>();
  } else {
    fail(file, where + ".pattern must be {\"String\": ...} or {\"Regex\": ...}");
  }
  return p;
}

std::string replace_pattern(std::string_view s, const Pattern& p, const std::string& content) {
  std::vector<std::pair<size_t, size_t>> m;
  p.find_all(s, m);
  if (m.empty()) return std::string(s);
  std::string out;
  out.reserve(s.size() + m.size() * content.size());
  size_t prev = 0;
  for (auto [b, e] : m) {
    out.append(s.substr(prev, b - prev));
    out += content;
    prev = e;
  }
  out.append(s.substr(prev));
  return out;
}

// ---------------------------------------------------------------------------------------------
// Normalizers
// ---------------------------------------------------------------------------------------------

struct SequenceNormalizer : Normalizer {
  std::vector<std::unique_ptr<Normalizer>> parts;
  void normalize(std::string& s) const override {
    for (const auto& p : parts) p->normalize(s);
  }
};

struct UnicodeNormalizer : Normalizer {
  NormForm form;
  explicit UnicodeNormalizer(NormForm f) : form(f) {}
  void normalize(std::string& s) const override { s = unicode_normalize(s, form); }
};

struct LowercaseNormalizer : Normalizer {
  void normalize(std::string& s) const override { s = unicode_lower(s); }
};

struct PrependNormalizer : Normalizer {
  std::string prepend;
  void normalize(std::string& s) const override {
    if (!s.empty()) s.insert(0, prepend);
  }
};

struct ReplaceNormalizer : Normalizer {
  Pattern pattern;
  std::string content;
  void normalize(std::string& s) const override { s = replace_pattern(s, pattern, content); }
};

struct StripNormalizer : Normalizer {
  bool left = true, right = true;
  void normalize(std::string& s) const override {
    size_t b = 0, e = s.size();
    if (left)
      while (b < e) {
        size_t j = b;
        if (!is_whitespace(utf8_next(s, j))) break;
        b = j;
      }
    if (right)
      while (e > b) {
        size_t k = e - 1;
        while (k > b && ((unsigned char)s[k] & 0xC0) == 0x80) --k;
        size_t j = k;
        if (!is_whitespace(utf8_next(s, j))) break;
        e = k;
      }
    s = s.substr(b, e - b);
  }
};

struct StripAccentsNormalizer : Normalizer {
  void normalize(std::string& s) const override {
    std::string out;
    size_t i = 0;
    while (i < s.size()) {
      const uint32_t cp = utf8_next(s, i);
      if (!is_combining_mark(cp)) utf8_append(out, cp);
    }
    s = std::move(out);
  }
};

// ---------------------------------------------------------------------------------------------
// Pre-tokenizers
// ---------------------------------------------------------------------------------------------

struct SequencePreTokenizer : PreTokenizer {
  std::vector<std::unique_ptr<PreTokenizer>> parts;
  void pre_tokenize(std::vector<std::string>& pieces, bool at_text_start) const override {
    for (const auto& p : parts) p->pre_tokenize(pieces, at_text_start);
  }
};

struct SplitPreTokenizer : PreTokenizer {
  Pattern pattern;
  SplitBehavior behavior = SplitBehavior::kIsolated;
  bool invert = false;
  void pre_tokenize(std::vector<std::string>& pieces, bool at_text_start) const override {
    std::vector<std::string> out;
    std::vector<std::pair<size_t, size_t>> m;
    for (const std::string& p : pieces) {
      m.clear();
      pattern.find_all(p, m);
      split_on_matches(p, m, behavior, invert, out);
    }
    pieces.swap(out);
  }
};

struct ByteLevelPreTokenizer : PreTokenizer {
  bool add_prefix_space = false;
  std::shared_ptr<Regex> regex;  // GPT-2 pattern when use_regex
  void pre_tokenize(std::vector<std::string>& pieces, bool at_text_start) const override {
    std::vector<std::string> out;
    std::vector<std::pair<size_t, size_t>> m;
    for (std::string& p : pieces) {
      if (add_prefix_space && (p.empty() || p[0] != ' ')) p.insert(0, " ");
      if (regex) {
        m.clear();
        regex->find_all(p, m);
        std::vector<std::string> parts;
        split_on_matches(p, m, SplitBehavior::kIsolated, false, parts);
        for (const std::string& q : parts) out.push_back(byte_level_encode(q));
      } else if (!p.empty()) {
        out.push_back(byte_level_encode(p));
      }
    }
    pieces.swap(out);
  }
};

struct MetaspacePreTokenizer : PreTokenizer {
  std::string replacement = "\xE2\x96\x81";  // ▁
  enum class Prepend { kAlways, kFirst, kNever } prepend = Prepend::kAlways;
  bool split = true;
  // "first" prepends only to a piece that starts the original text (HF checks offset 0).
  void pre_tokenize(std::vector<std::string>& pieces, bool at_text_start) const override {
    std::vector<std::string> out;
    for (size_t k = 0; k < pieces.size(); ++k) {
      std::string s = replace_all(pieces[k], " ", replacement);
      const bool starts = starts_with(s, replacement);
      if (prepend == Prepend::kAlways && !starts) s.insert(0, replacement);
      if (prepend == Prepend::kFirst && !starts && k == 0 && at_text_start) s.insert(0, replacement);
      if (!split) {
        if (!s.empty()) out.push_back(std::move(s));
        continue;
      }
      std::vector<std::pair<size_t, size_t>> m;
      size_t pos = 0;
      while ((pos = s.find(replacement, pos)) != std::string::npos) {
        m.emplace_back(pos, pos + replacement.size());
        pos += replacement.size();
      }
      split_on_matches(s, m, SplitBehavior::kMergedWithNext, false, out);
    }
    pieces.swap(out);
  }
};

struct DigitsPreTokenizer : PreTokenizer {
  bool individual = false;
  void pre_tokenize(std::vector<std::string>& pieces, bool at_text_start) const override {
    std::vector<std::string> out;
    for (const std::string& p : pieces) {
      std::vector<std::pair<size_t, size_t>> m;
      size_t i = 0;
      while (i < p.size()) {
        const size_t b = i;
        if (is_numeric(utf8_next(p, i))) m.emplace_back(b, i);
      }
      split_on_matches(p, m, individual ? SplitBehavior::kIsolated : SplitBehavior::kContiguous, false, out);
    }
    pieces.swap(out);
  }
};

struct WhitespaceSplitPreTokenizer : PreTokenizer {
  void pre_tokenize(std::vector<std::string>& pieces, bool at_text_start) const override {
    std::vector<std::string> out;
    for (const std::string& p : pieces) {
      std::vector<std::pair<size_t, size_t>> m;
      size_t i = 0;
      while (i < p.size()) {
        const size_t b = i;
        if (is_whitespace(utf8_next(p, i))) m.emplace_back(b, i);
      }
      split_on_matches(p, m, SplitBehavior::kRemoved, false, out);
    }
    pieces.swap(out);
  }
};

// ---------------------------------------------------------------------------------------------
// Decoders
// ---------------------------------------------------------------------------------------------

struct SequenceDecoder : Decoder {
  std::vector<std::unique_ptr<Decoder>> parts;
  void decode_chain(std::vector<std::string>& t) const override {
    for (const auto& p : parts) p->decode_chain(t);
  }
};

struct ByteLevelDecoder : Decoder {
  void decode_chain(std::vector<std::string>& tokens) const override {
    const auto& table = byte_level_table();
    std::string bytes;
    for (const std::string& t : tokens) {
      const size_t mark = bytes.size();
      bool ok = true;
      size_t i = 0;
      while (i < t.size()) {
        const uint32_t cp = utf8_next(t, i);
        auto it = table.char_to_byte.find(cp);
        if (it == table.char_to_byte.end()) {
          ok = false;
          break;
        }
        bytes += char(it->second);
      }
      if (!ok) {
        bytes.resize(mark);
        bytes += t;
      }
    }
    tokens.assign(1, utf8_lossy(bytes));
  }
};

struct ReplaceDecoder : Decoder {
  Pattern pattern;
  std::string content;
  void decode_chain(std::vector<std::string>& tokens) const override {
    for (std::string& t : tokens) t = replace_pattern(t, pattern, content);
  }
};

struct ByteFallbackDecoder : Decoder {
  void decode_chain(std::vector<std::string>& tokens) const override {
    std::vector<std::string> out;
    std::string pending;
    auto flush = [&] {
      if (pending.empty()) return;
      if (utf8_valid(pending)) {
        out.push_back(pending);
      } else {
        for (size_t k = 0; k < pending.size(); ++k) out.emplace_back("\xEF\xBF\xBD");
      }
      pending.clear();
    };
    for (std::string& t : tokens) {
      int byte = -1;
      if (t.size() == 6 && starts_with(t, "<0x") && t[5] == '>' && std::isxdigit((unsigned char)t[3]) &&
          std::isxdigit((unsigned char)t[4]))
        byte = std::stoi(t.substr(3, 2), nullptr, 16);
      if (byte >= 0) {
        pending += char(byte);
      } else {
        flush();
        out.push_back(std::move(t));
      }
    }
    flush();
    tokens.swap(out);
  }
};

struct FuseDecoder : Decoder {
  void decode_chain(std::vector<std::string>& tokens) const override {
    std::string all;
    for (const std::string& t : tokens) all += t;
    tokens.assign(1, std::move(all));
  }
};

struct StripDecoder : Decoder {
  uint32_t content = ' ';
  size_t start = 0, stop = 0;
  void decode_chain(std::vector<std::string>& tokens) const override {
    for (std::string& t : tokens) {
      std::vector<uint32_t> cps;
      size_t i = 0;
      while (i < t.size()) cps.push_back(utf8_next(t, i));
      size_t b = 0, e = cps.size();
      for (size_t k = 0; k < start && k < cps.size() && cps[k] == content; ++k) b = k + 1;
      for (size_t k = 0; k < stop && k < cps.size(); ++k) {
        const size_t idx = cps.size() - k - 1;
        if (cps[idx] != content) break;
        e = idx;
      }
      std::string s;
      for (size_t k = b; k < e; ++k) utf8_append(s, cps[k]);
      t = std::move(s);
    }
  }
};

struct MetaspaceDecoder : Decoder {
  std::string replacement = "\xE2\x96\x81";
  bool strip_first = true;  // prepend_scheme != never
  // HF drops every replacement character of the first token (not only a leading one).
  void decode_chain(std::vector<std::string>& tokens) const override {
    for (size_t k = 0; k < tokens.size(); ++k)
      tokens[k] = replace_all(tokens[k], replacement, k == 0 && strip_first ? "" : " ");
  }
};

struct BpeSuffixDecoder : Decoder {
  std::string suffix = "</w>";
  void decode_chain(std::vector<std::string>& tokens) const override {
    for (size_t k = 0; k < tokens.size(); ++k)
      tokens[k] = replace_all(tokens[k], suffix, k + 1 == tokens.size() ? "" : " ");
  }
};

MetaspacePreTokenizer::Prepend parse_prepend_scheme(const json& j, const std::string& file,
                                                    const std::string& where) {
  using P = MetaspacePreTokenizer::Prepend;
  if (auto it = j.find("prepend_scheme"); it != j.end() && it->is_string()) {
    const std::string s = it->get<std::string>();
    if (s == "always") return P::kAlways;
    if (s == "first") return P::kFirst;
    if (s == "never") return P::kNever;
    fail(file, where + ".prepend_scheme \"" + s + "\" is not always|first|never");
  }
  return bool_field(j, "add_prefix_space", true, file, where) ? P::kAlways : P::kNever;
}

}  // namespace

// ---------------------------------------------------------------------------------------------
// Split behaviour (HF NormalizedString::split)
// ---------------------------------------------------------------------------------------------

void split_on_matches(std::string_view s, const std::vector<std::pair<size_t, size_t>>& matches,
                      SplitBehavior behavior, bool invert, std::vector<std::string>& out) {
  if (s.empty()) return;
  // (start, end, is_match) covering all of s.
  struct Part {
    size_t b, e;
    bool m;
  };
  std::vector<Part> parts;
  parts.reserve(matches.size() * 2 + 1);
  size_t prev = 0;
  for (auto [b, e] : matches) {
    if (prev != b) parts.push_back({prev, b, false});
    parts.push_back({b, e, true});
    prev = e;
  }
  if (prev != s.size()) parts.push_back({prev, s.size(), false});
  if (invert)
    for (Part& p : parts) p.m = !p.m;

  std::vector<Part> res;  // m now means "remove"
  switch (behavior) {
    case SplitBehavior::kIsolated:
      for (const Part& p : parts) res.push_back({p.b, p.e, false});
      break;
    case SplitBehavior::kRemoved:
      res = parts;
      break;
    case SplitBehavior::kContiguous: {
      bool prev_match = false;
      for (const Part& p : parts) {
        if (p.m == prev_match && !res.empty()) {
          res.back().e = p.e;
        } else {
          res.push_back({p.b, p.e, false});
        }
        prev_match = p.m;
      }
      break;
    }
    case SplitBehavior::kMergedWithPrevious: {
      bool prev_match = false;
      for (const Part& p : parts) {
        if (p.m && !prev_match && !res.empty()) {
          res.back().e = p.e;
        } else {
          res.push_back({p.b, p.e, false});
        }
        prev_match = p.m;
      }
      break;
    }
    case SplitBehavior::kMergedWithNext: {
      bool prev_match = false;
      for (auto it = parts.rbegin(); it != parts.rend(); ++it) {
        if (it->m && !prev_match && !res.empty()) {
          res.back().b = it->b;
        } else {
          res.push_back({it->b, it->e, false});
        }
        prev_match = it->m;
      }
      std::reverse(res.begin(), res.end());
      break;
    }
  }
  for (const Part& p : res)
    if (!p.m && p.e > p.b) out.emplace_back(s.substr(p.b, p.e - p.b));
}

// ---------------------------------------------------------------------------------------------
// Parsers
// ---------------------------------------------------------------------------------------------

std::unique_ptr<Normalizer> parse_normalizer(const json& j, const std::string& file) {
  if (j.is_null()) return nullptr;
  const std::string where = "normalizer";
  const std::string type = type_of(j, file, where);
  if (type == "Sequence") {
    auto seq = std::make_unique<SequenceNormalizer>();
    const json& list = field(j, "normalizers", file, where);
    if (!list.is_array()) fail(file, "normalizer.normalizers must be an array");
    for (const json& n : list)
      if (auto p = parse_normalizer(n, file)) seq->parts.push_back(std::move(p));
    return seq;
  }
  if (type == "NFC") return std::make_unique<UnicodeNormalizer>(NormForm::kNfc);
  if (type == "NFD") return std::make_unique<UnicodeNormalizer>(NormForm::kNfd);
  if (type == "NFKC") return std::make_unique<UnicodeNormalizer>(NormForm::kNfkc);
  if (type == "NFKD") return std::make_unique<UnicodeNormalizer>(NormForm::kNfkd);
  if (type == "Lowercase") return std::make_unique<LowercaseNormalizer>();
  if (type == "StripAccents") return std::make_unique<StripAccentsNormalizer>();
  if (type == "Prepend") {
    auto p = std::make_unique<PrependNormalizer>();
    p->prepend = string_field(j, "prepend", file, where);
    return p;
  }
  if (type == "Replace") {
    auto p = std::make_unique<ReplaceNormalizer>();
    p->pattern = parse_pattern(field(j, "pattern", file, where), file, where);
    p->content = string_field(j, "content", file, where);
    return p;
  }
  if (type == "Strip") {
    auto p = std::make_unique<StripNormalizer>();
    p->left = bool_field(j, "strip_left", true, file, where);
    p->right = bool_field(j, "strip_right", true, file, where);
    return p;
  }
  fail(file, "normalizer type \"" + type + "\" is not supported", kUnsupportedHint);
}

std::unique_ptr<PreTokenizer> parse_pre_tokenizer(const json& j, const std::string& file) {
  if (j.is_null()) return nullptr;
  const std::string where = "pre_tokenizer";
  const std::string type = type_of(j, file, where);
  if (type == "Sequence") {
    auto seq = std::make_unique<SequencePreTokenizer>();
    const json& list = field(j, "pretokenizers", file, where);
    if (!list.is_array()) fail(file, "pre_tokenizer.pretokenizers must be an array");
    for (const json& n : list)
      if (auto p = parse_pre_tokenizer(n, file)) seq->parts.push_back(std::move(p));
    return seq;
  }
  if (type == "Split") {
    auto p = std::make_unique<SplitPreTokenizer>();
    p->pattern = parse_pattern(field(j, "pattern", file, where), file, where);
    const std::string b = string_field(j, "behavior", file, where);
    if (b == "Removed") p->behavior = SplitBehavior::kRemoved;
    else if (b == "Isolated") p->behavior = SplitBehavior::kIsolated;
    else if (b == "MergedWithPrevious") p->behavior = SplitBehavior::kMergedWithPrevious;
    else if (b == "MergedWithNext") p->behavior = SplitBehavior::kMergedWithNext;
    else if (b == "Contiguous") p->behavior = SplitBehavior::kContiguous;
    else fail(file, "pre_tokenizer Split behavior \"" + b + "\" is not one of Removed, Isolated, "
                    "MergedWithPrevious, MergedWithNext, Contiguous");
    p->invert = bool_field(j, "invert", false, file, where);
    return p;
  }
  if (type == "ByteLevel") {
    auto p = std::make_unique<ByteLevelPreTokenizer>();
    p->add_prefix_space = bool_field(j, "add_prefix_space", true, file, where);
    if (bool_field(j, "use_regex", true, file, where)) p->regex = std::make_shared<Regex>(kGpt2Pattern, file);
    return p;
  }
  if (type == "Metaspace") {
    auto p = std::make_unique<MetaspacePreTokenizer>();
    if (auto it = j.find("replacement"); it != j.end() && it->is_string()) p->replacement = it->get<std::string>();
    if (p->replacement.empty() || utf8_count(p->replacement) != 1)
      fail(file, "pre_tokenizer Metaspace replacement must be one character");
    p->prepend = parse_prepend_scheme(j, file, where);
    p->split = bool_field(j, "split", true, file, where);
    return p;
  }
  if (type == "Digits") {
    auto p = std::make_unique<DigitsPreTokenizer>();
    p->individual = bool_field(j, "individual_digits", false, file, where);
    return p;
  }
  if (type == "WhitespaceSplit") return std::make_unique<WhitespaceSplitPreTokenizer>();
  if (type == "Whitespace") {
    // HF: the regex \w+|[^\w\s]+, keeping the matches.
    auto p = std::make_unique<SplitPreTokenizer>();
    p->pattern.regex = std::make_shared<Regex>(R"([\p{L}\p{M}\p{Nd}\p{Pc}]+|[^\p{L}\p{M}\p{Nd}\p{Pc}\s]+)", file);
    p->behavior = SplitBehavior::kRemoved;
    p->invert = true;
    return p;
  }
  fail(file, "pre_tokenizer type \"" + type + "\" is not supported", kUnsupportedHint);
}

std::unique_ptr<Decoder> parse_decoder(const json& j, const std::string& file) {
  if (j.is_null()) return nullptr;
  const std::string where = "decoder";
  const std::string type = type_of(j, file, where);
  if (type == "Sequence") {
    auto seq = std::make_unique<SequenceDecoder>();
    const json& list = field(j, "decoders", file, where);
    if (!list.is_array()) fail(file, "decoder.decoders must be an array");
    for (const json& n : list)
      if (auto p = parse_decoder(n, file)) seq->parts.push_back(std::move(p));
    return seq;
  }
  if (type == "ByteLevel") return std::make_unique<ByteLevelDecoder>();
  if (type == "ByteFallback") return std::make_unique<ByteFallbackDecoder>();
  if (type == "Fuse") return std::make_unique<FuseDecoder>();
  if (type == "Replace") {
    auto p = std::make_unique<ReplaceDecoder>();
    p->pattern = parse_pattern(field(j, "pattern", file, where), file, where);
    p->content = string_field(j, "content", file, where);
    return p;
  }
  if (type == "Strip") {
    auto p = std::make_unique<StripDecoder>();
    const std::string c = string_field(j, "content", file, where);
    if (utf8_count(c) != 1) fail(file, "decoder Strip content must be one character");
    size_t i = 0;
    p->content = utf8_next(c, i);
    const json& st = field(j, "start", file, where);
    const json& sp = field(j, "stop", file, where);
    if (!st.is_number_unsigned() || !sp.is_number_unsigned())
      fail(file, "decoder Strip start/stop must be non-negative integers");
    p->start = st.get<size_t>();
    p->stop = sp.get<size_t>();
    return p;
  }
  if (type == "Metaspace") {
    auto p = std::make_unique<MetaspaceDecoder>();
    if (auto it = j.find("replacement"); it != j.end() && it->is_string()) p->replacement = it->get<std::string>();
    p->strip_first = parse_prepend_scheme(j, file, where) != MetaspacePreTokenizer::Prepend::kNever;
    return p;
  }
  if (type == "BPEDecoder") {
    auto p = std::make_unique<BpeSuffixDecoder>();
    if (auto it = j.find("suffix"); it != j.end() && it->is_string()) p->suffix = it->get<std::string>();
    return p;
  }
  fail(file, "decoder type \"" + type + "\" is not supported", kUnsupportedHint);
}

namespace {

void add_template_token(std::vector<int32_t>& out, const std::string& name, const json& special_tokens,
                        const std::string& file,
                        const std::function<std::optional<int32_t>(const std::string&)>& token_id) {
  if (special_tokens.is_object() && special_tokens.contains(name)) {
    const json& st = special_tokens[name];
    if (!st.is_object() || !st.contains("ids") || !st["ids"].is_array())
      fail(file, "post_processor.special_tokens[\"" + name + "\"] has no \"ids\" array");
    for (const json& id : st["ids"]) {
      if (!id.is_number_integer()) fail(file, "post_processor.special_tokens[\"" + name + "\"].ids must be integers");
      out.push_back(id.get<int32_t>());
    }
    return;
  }
  if (auto id = token_id(name)) {
    out.push_back(*id);
    return;
  }
  fail(file, "post_processor template names the special token \"" + name + "\", which is not defined");
}

void parse_template(const json& single, const json& special_tokens, const std::string& file,
                    const std::function<std::optional<int32_t>(const std::string&)>& token_id,
                    PostProcessor& pp) {
  bool seen_a = false;
  auto handle = [&](bool is_seq, const std::string& name) {
    if (is_seq) {
      if (name != "A") fail(file, "post_processor single template uses sequence $" + name + " (only $A allowed)");
      seen_a = true;
      return;
    }
    add_template_token(seen_a ? pp.suffix : pp.prefix, name, special_tokens, file, token_id);
  };
  if (single.is_string()) {
    // "<s>:0 $A:0 </s>:0"
    for (const std::string& part : split(single.get<std::string>(), ' ')) {
      if (part.empty()) continue;
      std::string name = part;
      if (const size_t c = name.rfind(':'); c != std::string::npos && c > 0) name = name.substr(0, c);
      if (name[0] == '$') handle(true, name.size() == 1 ? "A" : name.substr(1));
      else handle(false, name);
    }
  } else if (single.is_array()) {
    for (const json& piece : single) {
      if (piece.contains("Sequence")) {
        handle(true, piece["Sequence"].value("id", "A"));
      } else if (piece.contains("SpecialToken") && piece["SpecialToken"].contains("id") &&
                 piece["SpecialToken"]["id"].is_string()) {
        handle(false, piece["SpecialToken"]["id"].get<std::string>());
      } else {
        fail(file, "post_processor.single has an element that is neither Sequence nor SpecialToken");
      }
    }
  } else {
    fail(file, "post_processor.single must be a list or a string");
  }
  if (!seen_a) fail(file, "post_processor.single has no $A sequence");
  pp.active = true;
}

}  // namespace

PostProcessor parse_post_processor(const json& j, const std::string& file,
                                   const std::function<std::optional<int32_t>(const std::string&)>& token_id) {
  PostProcessor pp;
  if (j.is_null()) return pp;
  const std::string where = "post_processor";
  const std::string type = type_of(j, file, where);
  if (type == "ByteLevel") return pp;  // only trims offsets
  if (type == "TemplateProcessing") {
    parse_template(field(j, "single", file, where), j.value("special_tokens", json::object()), file, token_id, pp);
    return pp;
  }
  if (type == "RobertaProcessing" || type == "BertProcessing") {
    auto pair_id = [&](const char* key) {
      const json& v = field(j, key, file, where);
      if (!v.is_array() || v.size() != 2 || !v[1].is_number_integer())
        fail(file, std::string("post_processor.") + key + " must be [token, id]");
      return v[1].get<int32_t>();
    };
    pp.prefix = {pair_id("cls")};
    pp.suffix = {pair_id("sep")};
    pp.active = true;
    return pp;
  }
  if (type == "Sequence") {
    const json& list = field(j, "processors", file, where);
    if (!list.is_array()) fail(file, "post_processor.processors must be an array");
    for (const json& p : list) {
      PostProcessor sub = parse_post_processor(p, file, token_id);
      if (!sub.active) continue;
      // Applied in order: each wraps the result of the previous one.
      pp.prefix.insert(pp.prefix.begin(), sub.prefix.begin(), sub.prefix.end());
      pp.suffix.insert(pp.suffix.end(), sub.suffix.begin(), sub.suffix.end());
      pp.active = true;
    }
    return pp;
  }
  fail(file, "post_processor type \"" + type + "\" is not supported", kUnsupportedHint);
}

}  // namespace atax::tok
