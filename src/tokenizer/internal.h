// tokenizer internals shared by the .cpp files of this module (not a public header): UTF-8 and
// Unicode helpers (ICU), the PCRE2 regex wrapper, the BPE model, and the pipeline stages of a
// Hugging Face tokenizer.json (normalizer, pre-tokenizer, decoder, post-processor).
#pragma once

#include <array>
#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <unordered_map>
#include <utility>
#include <vector>

#include "core/utf8.h"
#include "tokenizer/tokenizer.h"

namespace atax::tok {

// ---------------------------------------------------------------------------------------------
// UTF-8
// ---------------------------------------------------------------------------------------------

// True when `s` is well-formed UTF-8 (no surrogates, no overlongs, <= U+10FFFF).
bool utf8_valid(std::string_view s);
// Replaces every maximal ill-formed subsequence by U+FFFD (what Rust's from_utf8_lossy does).
std::string utf8_lossy(std::string_view s);
// Decodes the code point at s[i] (s valid UTF-8) and advances i past it.
uint32_t utf8_next(std::string_view s, size_t& i);
using atax::utf8_append;  // core/utf8.h
// Byte length of the sequence introduced by lead byte `c` (1 for continuation/invalid bytes).
inline size_t utf8_seq_len(unsigned char c) {
  return c < 0x80 ? 1 : (c >> 5) == 0x6 ? 2 : (c >> 4) == 0xE ? 3 : (c >> 3) == 0x1E ? 4 : 1;
}
size_t utf8_count(std::string_view s);  // number of code points

// ---------------------------------------------------------------------------------------------
// Unicode properties and normalization (ICU)
// ---------------------------------------------------------------------------------------------

bool is_whitespace(uint32_t cp);    // Unicode White_Space (Rust char::is_whitespace)
bool is_alphanumeric(uint32_t cp);  // Alphabetic or Numeric (Rust char::is_alphanumeric)
bool is_numeric(uint32_t cp);       // general category N* (Rust char::is_numeric)
bool is_combining_mark(uint32_t cp);
bool is_py_space(uint32_t cp);      // Python str.isspace() (Jinja's trim)

enum class NormForm { kNfc, kNfd, kNfkc, kNfkd };
std::string unicode_normalize(std::string_view s, NormForm form);
std::string unicode_lower(std::string_view s);
// Python str.strip() of whitespace.
std::string py_strip(std::string_view s);

// The GPT-2 byte <-> printable-character table used by byte-level BPE.
struct ByteLevelTable {
  std::array<std::string, 256> byte_to_utf8;  // byte -> UTF-8 of its stand-in character
  std::unordered_map<uint32_t, uint8_t> char_to_byte;
};
const ByteLevelTable& byte_level_table();
std::string byte_level_encode(std::string_view raw);

// ---------------------------------------------------------------------------------------------
// Regex (PCRE2, UTF + UCP, JIT when available) with Oniguruma's meaning of \s (White_Space).
// ---------------------------------------------------------------------------------------------

class Regex {
 public:
  // Compiles a tokenizer.json regex. Fails with Error naming `file` if PCRE2 rejects it.
  Regex(const std::string& pattern, const std::string& file);
  ~Regex();
  Regex(const Regex&) = delete;
  Regex& operator=(const Regex&) = delete;
  // Byte ranges [start, end) of the successive non-overlapping matches in `s` (valid UTF-8).
  void find_all(std::string_view s, std::vector<std::pair<size_t, size_t>>& out) const;
  const std::string& pattern() const { return pattern_; }

 private:
  std::string pattern_;
  void* code_ = nullptr;  // pcre2_code_8*
  bool jit_ = false;
};

// Rewrites an Oniguruma/HF pattern into PCRE2 syntax with the same meaning (\s, \S, \h ...).
std::string translate_regex(const std::string& pattern);

// The GPT-2 pre-tokenizer pattern (ByteLevel with use_regex = true).
extern const char* const kGpt2Pattern;

// ---------------------------------------------------------------------------------------------
// Hash helpers
// ---------------------------------------------------------------------------------------------

struct StringHash {
  using is_transparent = void;
  size_t operator()(std::string_view s) const noexcept { return std::hash<std::string_view>{}(s); }
};
using Vocab = std::unordered_map<std::string, int32_t, StringHash, std::equal_to<>>;

// Open-addressing map from a token-id pair to (merge rank, merged id).
class MergeMap {
 public:
  void reserve(size_t n);
  // Inserts or overwrites (later merges of the same pair win, as in HF).
  void insert(int32_t a, int32_t b, int32_t rank, int32_t new_id);
  // Returns false when the pair is no merge.
  bool find(int32_t a, int32_t b, int32_t& rank, int32_t& new_id) const {
    if (slots_.empty()) return false;
    const uint64_t key = pack(a, b);
    size_t i = mix(key) & mask_;
    while (true) {
      const Slot& s = slots_[i];
      if (s.key == kEmpty) return false;
      if (s.key == key) {
        rank = s.rank;
        new_id = s.new_id;
        return true;
      }
      i = (i + 1) & mask_;
    }
  }
  size_t size() const { return size_; }

 private:
  static constexpr uint64_t kEmpty = ~0ull;
  struct Slot {
    uint64_t key = kEmpty;
    int32_t rank = 0, new_id = 0;
  };
  static uint64_t pack(int32_t a, int32_t b) {
    return (uint64_t(uint32_t(a)) << 32) | uint32_t(b);
  }
  static uint64_t mix(uint64_t x) {
    x ^= x >> 33;
    x *= 0xff51afd7ed558ccdull;
    x ^= x >> 33;
    return x;
  }
  void grow();
  std::vector<Slot> slots_;
  size_t mask_ = 0, size_ = 0;
};

// ---------------------------------------------------------------------------------------------
// BPE model
// ---------------------------------------------------------------------------------------------

struct BpeModel {
  Vocab vocab;
  std::vector<std::string> id_to_token;  // "" for ids the model does not define
  MergeMap merges;
  std::optional<int32_t> unk_id;
  bool byte_fallback = false;
  bool fuse_unk = false;
  bool ignore_merges = false;
  std::string continuing_subword_prefix;  // "" = none
  std::string end_of_word_suffix;         // "" = none
  std::array<int32_t, 256> byte_token_ids{};  // id of "<0xXX>" or -1

  // Appends the ids of one pre-tokenized word (its characters are vocab symbols).
  void encode_word(std::string_view word, std::vector<int32_t>& out) const;
  void merge_word(std::string_view word, std::vector<int32_t>& out) const;  // no cache

  static constexpr size_t kCacheMaxWordBytes = 256;
  static constexpr size_t kCacheMaxEntries = 1 << 18;
  mutable std::mutex cache_mu;
  mutable std::unordered_map<std::string, std::vector<int32_t>, StringHash, std::equal_to<>> cache;
};

// Parses a tokenizer.json "model" object of type BPE. Error names `file`.
// `extra_ids`: how many tokens besides the vocab the file defines (its added_tokens); ids beyond
// vocab size + extra_ids would leave holes and are rejected before anything is allocated.
std::unique_ptr<BpeModel> parse_bpe_model(const json& model, const std::string& file, int64_t extra_ids = 0);

// ---------------------------------------------------------------------------------------------
// Pipeline stages (tokenizer.json "normalizer", "pre_tokenizer", "decoder", "post_processor")
// ---------------------------------------------------------------------------------------------

struct Normalizer {
  virtual ~Normalizer() = default;
  virtual void normalize(std::string& s) const = 0;
};

struct PreTokenizer {
  virtual ~PreTokenizer() = default;
  // Replaces `pieces` by their sub-pieces (empty pieces are dropped). `at_text_start`: the
  // first piece begins the original text (Metaspace's prepend_scheme "first").
  virtual void pre_tokenize(std::vector<std::string>& pieces, bool at_text_start) const = 0;
};

struct Decoder {
  virtual ~Decoder() = default;
  virtual void decode_chain(std::vector<std::string>& tokens) const = 0;
};

// Template post-processing of a single sequence: ids before and after it.
struct PostProcessor {
  std::vector<int32_t> prefix, suffix;
  bool active = false;  // false: add_special_tokens adds nothing
};

std::unique_ptr<Normalizer> parse_normalizer(const json& j, const std::string& file);
std::unique_ptr<PreTokenizer> parse_pre_tokenizer(const json& j, const std::string& file);
std::unique_ptr<Decoder> parse_decoder(const json& j, const std::string& file);
// `token_id` resolves a token string to an id (added tokens and vocab), nullopt if unknown.
PostProcessor parse_post_processor(const json& j, const std::string& file,
                                   const std::function<std::optional<int32_t>(const std::string&)>& token_id);

// Splits `s` on the matches of `re` with a HF SplitDelimiterBehavior.
enum class SplitBehavior { kRemoved, kIsolated, kMergedWithPrevious, kMergedWithNext, kContiguous };
void split_on_matches(std::string_view s, const std::vector<std::pair<size_t, size_t>>& matches,
                      SplitBehavior behavior, bool invert, std::vector<std::string>& out);

// The error thrown for malformed tokenizer files.
[[noreturn]] void fail(const std::string& file, const std::string& what,
                       const std::string& hint = "check that the file is a Hugging Face tokenizer.json "
                                                 "written by the `tokenizers` library");

// Chat-format tokens a trained tokenizer needs as special tokens.
std::vector<std::string> chat_format_tokens(ChatFormat f);

// The largest token id a tokenizer.json defining `n_defined` tokens may use: ids can have gaps
// (vocabularies with reserved or removed ids), but each id reserves a slot, so the range is bounded
// linearly in what the file defines (an absurd id fails before anything is allocated).
inline int64_t max_token_id(int64_t n_defined) { return 2 * n_defined + 65536; }

}  // namespace atax::tok
