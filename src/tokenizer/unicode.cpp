// UTF-8 helpers, Unicode properties and normalization (ICU), the byte-level table, and the PCRE2
// regex wrapper.
#define PCRE2_CODE_UNIT_WIDTH 8
#include <pcre2.h>
#include <unicode/uchar.h>
#include <unicode/unorm2.h>
#include <unicode/ustring.h>

#include <cstring>

#include "tokenizer/internal.h"

namespace atax::tok {

// ---------------------------------------------------------------------------------------------
// UTF-8
// ---------------------------------------------------------------------------------------------

namespace {

// Length of the well-formed sequence at s[i], or the length of its maximal ill-formed prefix as
// a negative number (at least -1).
int utf8_check_at(std::string_view s, size_t i) {
  const auto b = [&](size_t k) -> int { return i + k < s.size() ? (unsigned char)s[i + k] : -1; };
  const int c = b(0);
  if (c < 0x80) return 1;
  int need = 0, lo = 0x80, hi = 0xBF;
  if (c >= 0xC2 && c <= 0xDF) {
    need = 1;
  } else if (c >= 0xE0 && c <= 0xEF) {
    need = 2;
    if (c == 0xE0) lo = 0xA0;
    if (c == 0xED) hi = 0x9F;
  } else if (c >= 0xF0 && c <= 0xF4) {
    need = 3;
    if (c == 0xF0) lo = 0x90;
    if (c == 0xF4) hi = 0x8F;
  } else {
    return -1;
  }
  for (int k = 1; k <= need; ++k) {
    const int x = b(k);
    const int l = k == 1 ? lo : 0x80, h = k == 1 ? hi : 0xBF;
    if (x < l || x > h) return -k;
  }
  return need + 1;
}

}  // namespace

bool utf8_valid(std::string_view s) {
  size_t i = 0;
  const size_t n = s.size();
  while (i < n) {
    // ASCII fast path, 8 bytes at a time.
    while (i + 8 <= n) {
      uint64_t w;
      std::memcpy(&w, s.data() + i, 8);
      if (w & 0x8080808080808080ull) break;
      i += 8;
    }
    if (i >= n) break;
    if ((unsigned char)s[i] < 0x80) {
      ++i;
      continue;
    }
    const int len = utf8_check_at(s, i);
    if (len < 0) return false;
    i += len;
  }
  return true;
}

std::string utf8_lossy(std::string_view s) {
  std::string out;
  out.reserve(s.size());
  size_t i = 0;
  while (i < s.size()) {
    const int len = utf8_check_at(s, i);
    if (len > 0) {
      out.append(s.substr(i, len));
      i += len;
    } else {
      out += "\xEF\xBF\xBD";
      i += -len;
    }
  }
  return out;
}

uint32_t utf8_next(std::string_view s, size_t& i) {
  const unsigned char c = s[i];
  if (c < 0x80) {
    ++i;
    return c;
  }
  const size_t len = utf8_seq_len(c);
  uint32_t cp = len == 2 ? (c & 0x1F) : len == 3 ? (c & 0x0F) : (c & 0x07);
  for (size_t k = 1; k < len && i + k < s.size(); ++k) cp = (cp << 6) | ((unsigned char)s[i + k] & 0x3F);
  i += len;
  return cp;
}

size_t utf8_count(std::string_view s) {
  size_t n = 0;
  for (unsigned char c : s) n += (c & 0xC0) != 0x80;
  return n;
}

// ---------------------------------------------------------------------------------------------
// Unicode properties and normalization
// ---------------------------------------------------------------------------------------------

bool is_whitespace(uint32_t cp) { return u_isUWhiteSpace(UChar32(cp)); }

bool is_numeric(uint32_t cp) {
  const int8_t t = u_charType(UChar32(cp));
  return t == U_DECIMAL_DIGIT_NUMBER || t == U_LETTER_NUMBER || t == U_OTHER_NUMBER;
}

bool is_alphanumeric(uint32_t cp) { return u_isUAlphabetic(UChar32(cp)) || is_numeric(cp); }

bool is_combining_mark(uint32_t cp) {
  const int8_t t = u_charType(UChar32(cp));
  return t == U_NON_SPACING_MARK || t == U_COMBINING_SPACING_MARK || t == U_ENCLOSING_MARK;
}

bool is_py_space(uint32_t cp) {
  return (cp >= 0x09 && cp <= 0x0D) || (cp >= 0x1C && cp <= 0x20) || cp == 0x85 || cp == 0xA0 ||
         cp == 0x1680 || (cp >= 0x2000 && cp <= 0x200A) || cp == 0x2028 || cp == 0x2029 ||
         cp == 0x202F || cp == 0x205F || cp == 0x3000;
}

std::string py_strip(std::string_view s) {
  size_t b = 0, e = s.size();
  while (b < e) {
    size_t j = b;
    if (!is_py_space(utf8_next(s, j))) break;
    b = j;
  }
  while (e > b) {
    size_t k = e - 1;
    while (k > b && ((unsigned char)s[k] & 0xC0) == 0x80) --k;
    size_t j = k;
    if (!is_py_space(utf8_next(s, j))) break;
    e = k;
  }
  return std::string(s.substr(b, e - b));
}

namespace {

std::u16string to_u16(std::string_view s) {
  std::u16string out(s.size() + 1, u'\0');
  int32_t len = 0;
  UErrorCode err = U_ZERO_ERROR;
  u_strFromUTF8WithSub(reinterpret_cast<UChar*>(out.data()), int32_t(out.size()), &len, s.data(),
                       int32_t(s.size()), 0xFFFD, nullptr, &err);
  if (U_FAILURE(err)) throw Error(std::string("UTF-8 to UTF-16 conversion failed: ") + u_errorName(err));
  out.resize(len);
  return out;
}

std::string from_u16(std::u16string_view s) {
  std::string out(s.size() * 3 + 1, '\0');
  int32_t len = 0;
  UErrorCode err = U_ZERO_ERROR;
  u_strToUTF8WithSub(out.data(), int32_t(out.size()), &len, reinterpret_cast<const UChar*>(s.data()),
                     int32_t(s.size()), 0xFFFD, nullptr, &err);
  if (U_FAILURE(err)) throw Error(std::string("UTF-16 to UTF-8 conversion failed: ") + u_errorName(err));
  out.resize(len);
  return out;
}

bool is_ascii(std::string_view s) {
  for (unsigned char c : s)
    if (c >= 0x80) return false;
  return true;
}

}  // namespace

std::string unicode_normalize(std::string_view s, NormForm form) {
  // ASCII is invariant under every normalization form.
  if (is_ascii(s)) return std::string(s);
  UErrorCode err = U_ZERO_ERROR;
  const UNormalizer2* n = nullptr;
  switch (form) {
    case NormForm::kNfc: n = unorm2_getNFCInstance(&err); break;
    case NormForm::kNfd: n = unorm2_getNFDInstance(&err); break;
    case NormForm::kNfkc: n = unorm2_getNFKCInstance(&err); break;
    case NormForm::kNfkd: n = unorm2_getNFKDInstance(&err); break;
  }
  if (U_FAILURE(err)) throw Error(std::string("ICU normalizer unavailable: ") + u_errorName(err));
  const std::u16string in = to_u16(s);
  const int32_t span = unorm2_spanQuickCheckYes(n, reinterpret_cast<const UChar*>(in.data()),
                                                int32_t(in.size()), &err);
  if (U_SUCCESS(err) && span == int32_t(in.size())) return std::string(s);
  err = U_ZERO_ERROR;
  std::u16string out(in.size() * 4 + 16, u'\0');
  int32_t len = unorm2_normalize(n, reinterpret_cast<const UChar*>(in.data()), int32_t(in.size()),
                                 reinterpret_cast<UChar*>(out.data()), int32_t(out.size()), &err);
  if (err == U_BUFFER_OVERFLOW_ERROR) {
    err = U_ZERO_ERROR;
    out.assign(len + 1, u'\0');
    len = unorm2_normalize(n, reinterpret_cast<const UChar*>(in.data()), int32_t(in.size()),
                           reinterpret_cast<UChar*>(out.data()), int32_t(out.size()), &err);
  }
  if (U_FAILURE(err)) throw Error(std::string("Unicode normalization failed: ") + u_errorName(err));
  out.resize(len);
  return from_u16(out);
}

std::string unicode_lower(std::string_view s) {
  if (is_ascii(s)) {
    std::string out(s);
    for (char& c : out)
      if (c >= 'A' && c <= 'Z') c = char(c - 'A' + 'a');
    return out;
  }
  const std::u16string in = to_u16(s);
  UErrorCode err = U_ZERO_ERROR;
  std::u16string out(in.size() * 3 + 16, u'\0');
  int32_t len = u_strToLower(reinterpret_cast<UChar*>(out.data()), int32_t(out.size()),
                             reinterpret_cast<const UChar*>(in.data()), int32_t(in.size()), "", &err);
  if (U_FAILURE(err)) throw Error(std::string("lower-casing failed: ") + u_errorName(err));
  out.resize(len);
  return from_u16(out);
}

// ---------------------------------------------------------------------------------------------
// Byte-level table (GPT-2's bytes_to_unicode)
// ---------------------------------------------------------------------------------------------

const ByteLevelTable& byte_level_table() {
  static const ByteLevelTable table = [] {
    ByteLevelTable t;
    uint32_t next = 256;
    for (int b = 0; b < 256; ++b) {
      const bool printable = (b >= 0x21 && b <= 0x7E) || (b >= 0xA1 && b <= 0xAC) || (b >= 0xAE && b <= 0xFF);
      const uint32_t cp = printable ? uint32_t(b) : next++;
      utf8_append(t.byte_to_utf8[b], cp);
      t.char_to_byte[cp] = uint8_t(b);
    }
    return t;
  }();
  return table;
}

std::string byte_level_encode(std::string_view raw) {
  const auto& t = byte_level_table();
  std::string out;
  out.reserve(raw.size() * 2);
  for (unsigned char c : raw) out += t.byte_to_utf8[c];
  return out;
}

// ---------------------------------------------------------------------------------------------
// Regex
// ---------------------------------------------------------------------------------------------

const char* const kGpt2Pattern =
    R"('s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+)";

std::string translate_regex(const std::string& p) {
  // Oniguruma (what HF tokenizers uses) gives \s the Unicode White_Space set: it includes NEL
  // (U+0085) and excludes U+180E/U+FEFF. PCRE2's UCP \s does not include NEL, so spell it out.
  // \h in Oniguruma is a hex digit; in PCRE2 it is horizontal space.
  std::string out;
  out.reserve(p.size() + 32);
  for (size_t i = 0; i < p.size(); ++i) {
    if (p[i] == '\\' && i + 1 < p.size()) {
      const char c = p[i + 1];
      if (c == 's') {
        out += "\\p{White_Space}";
      } else if (c == 'S') {
        out += "\\P{White_Space}";
      } else if (c == 'h') {
        out += "\\p{ASCII_Hex_Digit}";
      } else if (c == 'H') {
        out += "\\P{ASCII_Hex_Digit}";
      } else {
        out += p[i];
        out += c;
      }
      ++i;
      continue;
    }
    out += p[i];
  }
  return out;
}

namespace {

struct MatchScratch {
  pcre2_match_data* md = nullptr;
  pcre2_match_context* mctx = nullptr;
  pcre2_jit_stack* jit_stack = nullptr;
  MatchScratch() {
    md = pcre2_match_data_create(32, nullptr);
    mctx = pcre2_match_context_create(nullptr);
    jit_stack = pcre2_jit_stack_create(32 * 1024, 8 * 1024 * 1024, nullptr);
    if (jit_stack) pcre2_jit_stack_assign(mctx, nullptr, jit_stack);
  }
  ~MatchScratch() {
    pcre2_match_data_free(md);
    pcre2_match_context_free(mctx);
    if (jit_stack) pcre2_jit_stack_free(jit_stack);
  }
};

MatchScratch& scratch() {
  thread_local MatchScratch s;
  return s;
}

}  // namespace

Regex::Regex(const std::string& pattern, const std::string& file) : pattern_(pattern) {
  const std::string translated = translate_regex(pattern);
  int err = 0;
  PCRE2_SIZE off = 0;
  // Oniguruma's Ruby syntax makes ^ and $ match at line breaks.
  pcre2_code* code = pcre2_compile(reinterpret_cast<PCRE2_SPTR>(translated.data()), translated.size(),
                                   PCRE2_UTF | PCRE2_UCP | PCRE2_MULTILINE, &err, &off, nullptr);
  if (!code) {
    PCRE2_UCHAR buf[256];
    pcre2_get_error_message(err, buf, sizeof buf);
    fail(file, "regex `" + pattern + "` does not compile at offset " + std::to_string(off) + ": " +
                   reinterpret_cast<const char*>(buf),
         "the pattern must be an Oniguruma/PCRE-compatible regular expression");
  }
  jit_ = pcre2_jit_compile(code, PCRE2_JIT_COMPLETE) == 0;
  code_ = code;
}

Regex::~Regex() { pcre2_code_free(static_cast<pcre2_code*>(code_)); }

void Regex::find_all(std::string_view s, std::vector<std::pair<size_t, size_t>>& out) const {
  auto* code = static_cast<pcre2_code*>(code_);
  MatchScratch& sc = scratch();
  const auto* subject = reinterpret_cast<PCRE2_SPTR>(s.data());
  size_t pos = 0;
  while (pos <= s.size()) {
    int rc = jit_ ? pcre2_jit_match(code, subject, s.size(), pos, 0, sc.md, sc.mctx)
                  : pcre2_match(code, subject, s.size(), pos, PCRE2_NO_UTF_CHECK, sc.md, sc.mctx);
    if (rc == PCRE2_ERROR_JIT_STACKLIMIT)
      rc = pcre2_match(code, subject, s.size(), pos, PCRE2_NO_UTF_CHECK | PCRE2_NO_JIT, sc.md, sc.mctx);
    if (rc == PCRE2_ERROR_NOMATCH) break;
    if (rc < 0) {
      PCRE2_UCHAR buf[256];
      pcre2_get_error_message(rc, buf, sizeof buf);
      throw Error(std::string("regex match failed: ") + reinterpret_cast<const char*>(buf), {},
                  "the input text may be too long for the pre-tokenizer pattern `" + pattern_ + "`");
    }
    const PCRE2_SIZE* ov = pcre2_get_ovector_pointer(sc.md);
    const size_t b = ov[0], e = ov[1];
    if (e == b) {
      // Empty match: Oniguruma's iterator yields it and moves on by one character.
      out.emplace_back(b, e);
      if (b >= s.size()) break;
      pos = b + utf8_seq_len((unsigned char)s[b]);
      continue;
    }
    out.emplace_back(b, e);
    pos = e;
  }
}

}  // namespace atax::tok
