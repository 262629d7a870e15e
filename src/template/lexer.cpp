// Lexer: jinja2's root / variable / block / comment states with trim_blocks and lstrip_blocks
// (jinja2/lexer.py: "-" strips all whitespace on that side, "+" keeps it, lstrip removes the
// spaces before a block or comment tag that starts a line, trim removes one newline after it).
#include <cstring>

#include "template/internal.h"

namespace atax::tmpl {

void fail(const std::string& message, int line) { throw TemplateError{message, line, false}; }

namespace {

bool is_space(char c) { return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\f' || c == '\v'; }
bool is_name_start(char c) { return std::isalpha((unsigned char)c) || c == '_' || (unsigned char)c >= 0x80; }
bool is_name_char(char c) { return is_name_start(c) || std::isdigit((unsigned char)c); }

void append_utf8(std::string& out, uint32_t cp) { out += encode_cp(cp); }

// Python's "unicode-escape" decoding of a string literal's body (jinja2 decodes literals so).
std::string decode_escapes(const std::string& s, int line) {
  std::string out;
  for (size_t k = 0; k < s.size(); ++k) {
    if (s[k] != '\\' || k + 1 >= s.size()) {
      out += s[k];
      continue;
    }
    const char c = s[++k];
    auto hex = [&](size_t n) {
      uint32_t v = 0;
      for (size_t j = 1; j <= n; ++j) {
        if (k + j >= s.size() || !std::isxdigit((unsigned char)s[k + j]))
          fail("truncated \\x/\\u escape in a string literal", line);
        const char h = s[k + j];
        v = v * 16 + uint32_t(std::isdigit((unsigned char)h) ? h - '0' : (std::tolower((unsigned char)h) - 'a' + 10));
      }
      k += n;
      return v;
    };
    switch (c) {
      case '\n': break;
      case '\\': out += '\\'; break;
      case '\'': out += '\''; break;
      case '"': out += '"'; break;
      case 'a': out += '\a'; break;
      case 'b': out += '\b'; break;
      case 'f': out += '\f'; break;
      case 'n': out += '\n'; break;
      case 'r': out += '\r'; break;
      case 't': out += '\t'; break;
      case 'v': out += '\v'; break;
      case 'x': append_utf8(out, hex(2)); break;
      case 'u': append_utf8(out, hex(4)); break;
      case 'U': {
        uint32_t v = hex(8);
        if (v > 0x10FFFF) fail("\\U escape out of range in a string literal", line);
        append_utf8(out, v);
        break;
      }
      default:
        if (c >= '0' && c <= '7') {
          uint32_t v = uint32_t(c - '0');
          for (int j = 0; j < 2 && k + 1 < s.size() && s[k + 1] >= '0' && s[k + 1] <= '7'; ++j) v = v * 8 + uint32_t(s[++k] - '0');
          append_utf8(out, v);
        } else if (c == 'N') {
          fail("\\N{...} escapes are not supported in string literals", line);
        } else {
          out += '\\';
          out += c;
        }
    }
  }
  return out;
}

class Lexer {
 public:
  explicit Lexer(std::string src) : src_(std::move(src)) {}

  std::vector<Token> run() {
    bool line_starting = true;
    while (pos_ < src_.size()) {
      // The next tag opening.
      size_t open = pos_;
      char kind = 0;
      while (true) {
        open = src_.find('{', open);
        if (open == std::string::npos || open + 1 >= src_.size()) {
          open = std::string::npos;
          break;
        }
        const char n = src_[open + 1];
        if (n == '{' || n == '%' || n == '#') {
          kind = n;
          break;
        }
        ++open;
      }
      if (open == std::string::npos) {
        emit_data(src_.substr(pos_));
        pos_ = src_.size();
        break;
      }
      std::string text = src_.substr(pos_, open - pos_);
      size_t p = open + 2;
      char sign = 0;
      if (p < src_.size() && (src_[p] == '-' || src_[p] == '+')) sign = src_[p++];
      if (sign == '-') {
        size_t e = text.size();
        while (e > 0 && is_space(text[e - 1])) --e;
        text.resize(e);
      } else if (sign != '+' && kind != '{') {
        const size_t l_pos = text.rfind('\n') == std::string::npos ? 0 : text.rfind('\n') + 1;
        if (l_pos > 0 || line_starting) {
          bool ws = l_pos < text.size();
          for (size_t k = l_pos; k < text.size(); ++k) ws = ws && is_space(text[k]);
          if (ws) text.resize(l_pos);
        }
      }
      emit_data(text);
      line_ += count_lines(pos_, p);
      pos_ = p;
      if (kind == '#') {
        line_starting = comment();
      } else if (kind == '%' && raw_block()) {
        line_starting = last_ended_newline_;
      } else {
        line_starting = tag(kind == '{');
      }
    }
    out_.push_back({Tok::kEnd, "", line_});
    return std::move(out_);
  }

 private:
  int count_lines(size_t a, size_t b) const {
    int n = 0;
    for (size_t k = a; k < b && k < src_.size(); ++k) n += src_[k] == '\n';
    return n;
  }
  void emit_data(const std::string& text) {
    if (!text.empty()) out_.push_back({Tok::kData, text, line_});
  }
  // After a closing marker at pos_: "-" eats all whitespace; otherwise trim eats one "\n".
  // Returns whether what it consumed ended with a newline (jinja2's line_starting).
  bool after_close(bool dash, bool plus, bool trim) {
    const size_t start = pos_;
    if (dash) {
      while (pos_ < src_.size() && is_space(src_[pos_])) ++pos_;
    } else if (trim && !plus && pos_ < src_.size() && src_[pos_] == '\n') {
      ++pos_;
    }
    line_ += count_lines(start, pos_);
    return pos_ > start && src_[pos_ - 1] == '\n';
  }

  bool comment() {
    const int start_line = line_;
    const size_t end = src_.find("#}", pos_);
    if (end == std::string::npos) fail("missing end of comment tag", start_line);
    const bool dash = end > pos_ && src_[end - 1] == '-';
    const bool plus = end > pos_ && src_[end - 1] == '+';
    line_ += count_lines(pos_, end + 2);
    pos_ = end + 2;
    return after_close(dash, plus, true);
  }

  // {% raw %}...{% endraw %}: the body is data, untouched.
  bool raw_block() {
    size_t p = pos_;
    while (p < src_.size() && is_space(src_[p])) ++p;
    if (src_.compare(p, 3, "raw") != 0 || (p + 3 < src_.size() && is_name_char(src_[p + 3]))) return false;
    p += 3;
    while (p < src_.size() && is_space(src_[p])) ++p;
    bool dash = false;
    if (p < src_.size() && src_[p] == '-') {
      dash = true;
      ++p;
    }
    if (src_.compare(p, 2, "%}") != 0) return false;
    line_ += count_lines(pos_, p + 2);
    pos_ = p + 2;
    if (dash)
      while (pos_ < src_.size() && is_space(src_[pos_])) line_ += src_[pos_++] == '\n';
    // The body runs to {%[-+]? endraw [-+]?%}.
    size_t search = pos_;
    while (true) {
      size_t q = src_.find("{%", search);
      if (q == std::string::npos) fail("missing {% endraw %}", line_);
      size_t r = q + 2;
      char sign = 0;
      if (r < src_.size() && (src_[r] == '-' || src_[r] == '+')) sign = src_[r++];
      while (r < src_.size() && is_space(src_[r])) ++r;
      if (src_.compare(r, 6, "endraw") != 0) {
        search = q + 2;
        continue;
      }
      r += 6;
      while (r < src_.size() && is_space(src_[r])) ++r;
      char close_sign = 0;
      if (r < src_.size() && (src_[r] == '-' || src_[r] == '+')) close_sign = src_[r++];
      if (src_.compare(r, 2, "%}") != 0) fail("malformed {% endraw %}", line_);
      std::string body = src_.substr(pos_, q - pos_);
      if (sign == '-') {
        size_t e = body.size();
        while (e > 0 && is_space(body[e - 1])) --e;
        body.resize(e);
      }
      emit_data(body);
      line_ += count_lines(pos_, r + 2);
      pos_ = r + 2;
      last_ended_newline_ = after_close(close_sign == '-', close_sign == '+', true);
      return true;
    }
  }

  // The inside of {{ ... }} or {% ... %}, up to its closing marker.
  bool tag(bool variable) {
    const int start_line = line_;
    out_.push_back({variable ? Tok::kVarBegin : Tok::kBlockBegin, "", line_});
    int depth = 0;
    const char closer = variable ? '}' : '%';
    while (true) {
      while (pos_ < src_.size() && is_space(src_[pos_])) line_ += src_[pos_++] == '\n';
      if (pos_ >= src_.size())
        fail(std::string("unexpected end of template, expected '") + (variable ? "}}" : "%}") + "'", start_line);
      const char c = src_[pos_];
      if (depth == 0) {
        // Closing marker, optionally preceded by - or +.
        size_t q = pos_;
        char sign = 0;
        if ((src_[q] == '-' || src_[q] == '+') && q + 1 < src_.size()) sign = src_[q++];
        if (q + 1 < src_.size() && src_[q] == closer && src_[q + 1] == '}') {
          pos_ = q + 2;
          out_.push_back({variable ? Tok::kVarEnd : Tok::kBlockEnd, "", line_});
          return after_close(sign == '-', sign == '+', !variable);
        }
      }
      if (c == '\'' || c == '"') {
        size_t q = pos_ + 1;
        std::string body;
        while (q < src_.size() && src_[q] != c) {
          if (src_[q] == '\\' && q + 1 < src_.size()) body += src_[q++];
          body += src_[q++];
        }
        if (q >= src_.size()) fail("unexpected end of string literal", line_);
        out_.push_back({Tok::kString, decode_escapes(body, line_), line_});
        line_ += count_lines(pos_, q);
        pos_ = q + 1;
        continue;
      }
      if (std::isdigit((unsigned char)c)) {
        size_t q = pos_;
        while (q < src_.size() && (std::isdigit((unsigned char)src_[q]) || src_[q] == '_')) ++q;
        bool is_float = false;
        if (q + 1 < src_.size() && src_[q] == '.' && std::isdigit((unsigned char)src_[q + 1])) {
          is_float = true;
          ++q;
          while (q < src_.size() && (std::isdigit((unsigned char)src_[q]) || src_[q] == '_')) ++q;
        }
        if (q < src_.size() && (src_[q] == 'e' || src_[q] == 'E')) {
          size_t r = q + 1;
          if (r < src_.size() && (src_[r] == '+' || src_[r] == '-')) ++r;
          if (r < src_.size() && std::isdigit((unsigned char)src_[r])) {
            is_float = true;
            q = r;
            while (q < src_.size() && std::isdigit((unsigned char)src_[q])) ++q;
          }
        }
        std::string num;
        for (size_t k = pos_; k < q; ++k)
          if (src_[k] != '_') num += src_[k];
        out_.push_back({is_float ? Tok::kFloat : Tok::kInt, num, line_});
        pos_ = q;
        continue;
      }
      if (is_name_start(c)) {
        size_t q = pos_;
        while (q < src_.size() && is_name_char(src_[q])) ++q;
        out_.push_back({Tok::kName, src_.substr(pos_, q - pos_), line_});
        pos_ = q;
        continue;
      }
      static const char* const kOps2[] = {"//", "**", "==", "!=", "<=", ">="};
      std::string op;
      for (const char* o : kOps2)
        if (src_.compare(pos_, 2, o) == 0) op = o;
      if (op.empty()) {
        if (!std::strchr("+-*/%~<>=()[]{}.,:|", c)) fail(std::string("unexpected character '") + c + "'", line_);
        op = std::string(1, c);
      }
      if (op == "(" || op == "[" || op == "{") ++depth;
      if (op == ")" || op == "]" || op == "}") {
        if (depth == 0) fail("unexpected '" + op + "'", line_);
        --depth;
      }
      out_.push_back({Tok::kOp, op, line_});
      pos_ += op.size();
    }
  }

  std::string src_;
  size_t pos_ = 0;
  int line_ = 1;
  bool last_ended_newline_ = false;
  std::vector<Token> out_;
};

}  // namespace

std::vector<Token> lex(const std::string& source) {
  // Newlines normalised to "\n"; one trailing newline dropped (keep_trailing_newline=False).
  std::string src;
  src.reserve(source.size());
  for (size_t k = 0; k < source.size(); ++k) {
    if (source[k] == '\r') {
      src += '\n';
      if (k + 1 < source.size() && source[k + 1] == '\n') ++k;
    } else {
      src += source[k];
    }
  }
  if (!src.empty() && src.back() == '\n') src.pop_back();
  return Lexer(std::move(src)).run();
}

}  // namespace atax::tmpl
