// Filters, tests, methods and globals as jinja2 3.1 (jinja2/filters.py, tests.py, defaults.py)
// and transformers' chat-template environment define them. Case mapping is ASCII-only.
#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cfenv>
#include <clocale>
#include <ctime>
#include <cwctype>
#include <locale.h>
#include <set>

#include "core/utf8.h"
#include "template/builtins.h"

namespace atax::tmpl {

namespace {

[[noreturn]] void undefined_error(const Value& u, int line) {
  fail(u.s.empty() ? std::string("value is undefined") : u.s, line);
}

bool py_space(const std::string& c) {
  return c == " " || c == "\t" || c == "\n" || c == "\r" || c == "\v" || c == "\f" || c == "\x1c" || c == "\x1d" ||
         c == "\x1e" || c == "\x1f" || c == "\xc2\x85" || c == "\xc2\xa0" || c == "\xe2\x80\xa8" ||
         c == "\xe2\x80\xa9" || c == "\xe3\x80\x80";
}

// str.strip / lstrip / rstrip with Python's default (whitespace) or a set of characters.
std::string py_strip(const std::string& s, const Value& chars, bool left, bool right, int line) {
  auto cs = utf8_chars(s);
  std::set<std::string> strip;
  const bool dflt = chars.is_undefined() || chars.is_none();
  if (!dflt) {
    if (!chars.is_string()) fail("strip arg must be None or str", line);
    for (auto& c : utf8_chars(chars.s)) strip.insert(c);
  }
  auto drop = [&](const std::string& c) { return dflt ? py_space(c) : strip.count(c) > 0; };
  size_t b = 0, e = cs.size();
  if (left)
    while (b < e && drop(cs[b])) ++b;
  if (right)
    while (e > b && drop(cs[e - 1])) --e;
  std::string out;
  for (size_t k = b; k < e; ++k) out += cs[k];
  return out;
}

// Unicode simple case mapping through glibc's C.UTF-8 locale (ASCII only if it is missing);
// Python's special cases that change length (e.g. "ß".upper() == "SS") are not made.
locale_t utf8_locale() {
  static locale_t loc = newlocale(LC_CTYPE_MASK, "C.UTF-8", locale_t(0));
  return loc;
}

uint32_t decode_cp(const std::string& c) {
  const unsigned char b0 = (unsigned char)c[0];
  if (c.size() == 1) return b0;
  uint32_t cp = c.size() == 2 ? (b0 & 0x1F) : c.size() == 3 ? (b0 & 0x0F) : (b0 & 0x07);
  for (size_t k = 1; k < c.size(); ++k) cp = (cp << 6) | ((unsigned char)c[k] & 0x3F);
  return cp;
}


std::string map_case(const std::string& s, bool upper) {
  std::string out;
  out.reserve(s.size());
  const locale_t loc = utf8_locale();
  for (size_t k = 0; k < s.size(); ++k) {
    const unsigned char c = (unsigned char)s[k];
    if (c < 0x80) {
      out += char(upper ? std::toupper(c) : std::tolower(c));
      continue;
    }
    const size_t n = (c >> 5) == 6 ? 2 : (c >> 4) == 14 ? 3 : (c >> 3) == 30 ? 4 : 1;
    if (n == 1 || k + n > s.size() || !loc) {
      out += char(c);
      continue;
    }
    const std::string ch = s.substr(k, n);
    const uint32_t cp = decode_cp(ch);
    const uint32_t m = uint32_t(upper ? towupper_l(wint_t(cp), loc) : towlower_l(wint_t(cp), loc));
    out += m == cp ? ch : encode_cp(m);
    k += n - 1;
  }
  return out;
}
std::string ascii_upper(const std::string& s) { return map_case(s, true); }
std::string ascii_lower(const std::string& s) { return map_case(s, false); }
bool is_alpha(char c) { return std::isalpha((unsigned char)c); }

std::string py_capitalize(const std::string& s) {
  if (s.empty()) return s;
  auto cs = utf8_chars(s);
  std::string out = ascii_upper(cs[0]);
  for (size_t k = 1; k < cs.size(); ++k) out += ascii_lower(cs[k]);
  return out;
}

// str.title(): a cased letter after an uncased character starts a word.
std::string py_title(const std::string& s) {
  std::string out = s;
  bool prev_cased = false;
  for (char& c : out) {
    if (is_alpha(c)) {
      c = prev_cased ? char(std::tolower((unsigned char)c)) : char(std::toupper((unsigned char)c));
      prev_cased = true;
    } else {
      prev_cased = false;
    }
  }
  return out;
}

// jinja2's title filter: words split at runs of "-", whitespace, "(", "{", "[", "<".
std::string jinja_title(const std::string& s) {
  auto delim = [](char c) { return c == '-' || c == '(' || c == '{' || c == '[' || c == '<' || std::isspace((unsigned char)c); };
  std::string out;
  size_t k = 0;
  while (k < s.size()) {
    size_t j = k;
    const bool d = delim(s[k]);
    while (j < s.size() && delim(s[j]) == d) ++j;
    std::string item = s.substr(k, j - k);
    if (!d) item = py_capitalize(item);
    out += item;
    k = j;
  }
  return out;
}

std::string py_replace(const std::string& s, const std::string& old, const std::string& repl, int64_t count) {
  std::string out;
  if (old.empty()) {
    auto cs = utf8_chars(s);
    int64_t n = 0;
    for (size_t k = 0; k <= cs.size(); ++k) {
      if (count < 0 || n < count) {
        out += repl;
        ++n;
      }
      if (k < cs.size()) out += cs[k];
    }
    return out;
  }
  size_t pos = 0;
  int64_t n = 0;
  while (true) {
    size_t f = s.find(old, pos);
    if (f == std::string::npos || (count >= 0 && n >= count)) break;
    out += s.substr(pos, f - pos) + repl;
    pos = f + old.size();
    ++n;
  }
  return out + s.substr(pos);
}

std::vector<std::string> py_split(const std::string& s, const Value& sepv, int64_t maxsplit, int line) {
  std::vector<std::string> out;
  if (sepv.is_undefined() || sepv.is_none()) {
    auto cs = utf8_chars(s);
    size_t k = 0;
    while (k < cs.size()) {
      while (k < cs.size() && py_space(cs[k])) ++k;
      if (k >= cs.size()) break;
      if (maxsplit >= 0 && int64_t(out.size()) >= maxsplit) {
        std::string rest;
        for (size_t j = k; j < cs.size(); ++j) rest += cs[j];
        // Python strips trailing whitespace of the remainder only when it splits it.
        out.push_back(rest);
        return out;
      }
      std::string w;
      while (k < cs.size() && !py_space(cs[k])) w += cs[k++];
      out.push_back(w);
    }
    return out;
  }
  if (!sepv.is_string()) fail("must be str or None, not " + type_name(sepv), line);
  const std::string& sep = sepv.s;
  if (sep.empty()) fail("empty separator", line);
  size_t pos = 0;
  while (true) {
    size_t f = s.find(sep, pos);
    if (f == std::string::npos || (maxsplit >= 0 && int64_t(out.size()) >= maxsplit)) break;
    out.push_back(s.substr(pos, f - pos));
    pos = f + sep.size();
  }
  out.push_back(s.substr(pos));
  return out;
}

std::vector<std::string> splitlines(const std::string& s) {
  std::vector<std::string> out;
  std::string cur;
  for (size_t k = 0; k < s.size(); ++k) {
    const char c = s[k];
    if (c == '\n' || c == '\r' || c == '\v' || c == '\f' || c == '\x1c' || c == '\x1d' || c == '\x1e') {
      if (c == '\r' && k + 1 < s.size() && s[k + 1] == '\n') ++k;
      out.push_back(cur);
      cur.clear();
    } else {
      cur += c;
    }
  }
  if (!cur.empty()) out.push_back(cur);
  return out;
}

Value strings(const std::vector<std::string>& v) {
  List l;
  for (const std::string& s : v) l.push_back(Value::string(s));
  return Value::make_list(std::move(l));
}

int64_t int_arg(const Value& v, int64_t dflt, const std::string& what, int line) {
  if (v.is_undefined() || v.is_none()) return dflt;
  if (v.type == Value::Type::kInt) return v.i;
  if (v.type == Value::Type::kBool) return v.b;
  fail(what + " must be an integer", line);
}

std::string str_arg(const Value& v, const std::string& what, int line) {
  if (!v.is_string()) fail(what + " must be a string, not " + type_name(v), line);
  return v.s;
}

bool starts_or_ends(const std::string& s, const Value& affix, bool start, int line) {
  auto one = [&](const std::string& a) {
    if (a.size() > s.size()) return false;
    return start ? s.compare(0, a.size(), a) == 0 : s.compare(s.size() - a.size(), a.size(), a) == 0;
  };
  if (affix.is_string()) return one(affix.s);
  if (affix.is_list() && affix.tuple) {
    for (const Value& a : *affix.list)
      if (one(str_arg(a, "startswith/endswith arg", line))) return true;
    return false;
  }
  fail(std::string(start ? "startswith" : "endswith") + " first arg must be str or a tuple of str", line);
}

// Python str.format for "{}", "{0}", "{name}" and "{{" / "}}" (no format specs beyond none).
std::string py_format(const std::string& fmt, const CallArgs& a, int line) {
  std::string out;
  size_t auto_index = 0;
  for (size_t k = 0; k < fmt.size(); ++k) {
    const char c = fmt[k];
    if (c == '{') {
      if (k + 1 < fmt.size() && fmt[k + 1] == '{') {
        out += '{';
        ++k;
        continue;
      }
      const size_t close = fmt.find('}', k);
      if (close == std::string::npos) fail("Single '{' encountered in format string", line);
      std::string field = fmt.substr(k + 1, close - k - 1);
      if (field.find(':') != std::string::npos || field.find('!') != std::string::npos)
        fail("format specs in str.format are not supported", line);
      Value v;
      if (field.empty()) {
        if (auto_index >= a.positional.size()) fail("Replacement index out of range for positional args tuple", line);
        v = a.positional[auto_index++];
      } else if (std::all_of(field.begin(), field.end(), [](char d) { return std::isdigit((unsigned char)d); })) {
        const size_t i = std::stoul(field);
        if (i >= a.positional.size()) fail("Replacement index out of range for positional args tuple", line);
        v = a.positional[i];
      } else {
        bool found = false;
        for (const auto& [kk, vv] : a.keyword)
          if (kk == field) {
            v = vv;
            found = true;
          }
        if (!found) fail("KeyError: '" + field + "'", line);
      }
      out += to_str(v, line);
      k = close;
    } else if (c == '}') {
      if (k + 1 < fmt.size() && fmt[k + 1] == '}') ++k;
      else fail("Single '}' encountered in format string", line);
      out += '}';
    } else {
      out += c;
    }
  }
  return out;
}

Value bound(Value self, std::function<Value(const Value&, CallArgs&, int)> f) {
  return Value::callable([self, f](Evaluator&, CallArgs& a, int line) { return f(self, a, line); });
}

Value items_of(const Value& d) {
  List l;
  for (const auto& [k, v] : d.dict->items) l.push_back(Value::make_list({Value::string(k), v}, true));
  return Value::make_list(std::move(l));
}

Value unsafe(const Value& obj, const std::string& name) {
  return Value::undefined("access to attribute '" + name + "' of '" + type_name(obj) + "' object is unsafe.");
}

}  // namespace

std::string encode_cp(uint32_t cp) {
  std::string out;
  utf8_append(out, cp);
  return out;
}

std::optional<Value> Evaluator::method(const Value& obj, const std::string& name, int line) {
  if (obj.is_string()) {
    const std::string& n = name;
    if (n == "strip" || n == "lstrip" || n == "rstrip")
      return bound(obj, [n](const Value& s, CallArgs& a, int l) {
        return Value::string(py_strip(s.s, a.get(0, "chars"), n != "rstrip", n != "lstrip", l));
      });
    if (n == "split" || n == "rsplit")
      return bound(obj, [n](const Value& s, CallArgs& a, int l) {
        const int64_t maxsplit = int_arg(a.get(1, "maxsplit"), -1, "maxsplit", l);
        if (n == "rsplit" && maxsplit >= 0) {
          // Split from the right: reverse, split on the reversed separator, reverse back.
          Value sep = a.get(0, "sep");
          if (!sep.is_string()) fail("rsplit with maxsplit needs a separator", l);
          std::vector<std::string> all = py_split(s.s, sep, -1, l);
          std::vector<std::string> out;
          const size_t keep = all.size() > size_t(maxsplit) ? all.size() - size_t(maxsplit) : 1;
          std::string head;
          for (size_t k = 0; k < keep; ++k) head += (k ? sep.s : "") + all[k];
          out.push_back(head);
          for (size_t k = keep; k < all.size(); ++k) out.push_back(all[k]);
          return strings(out);
        }
        return strings(py_split(s.s, a.get(0, "sep"), maxsplit, l));
      });
    if (n == "startswith" || n == "endswith")
      return bound(obj, [n](const Value& s, CallArgs& a, int l) {
        return Value::boolean(starts_or_ends(s.s, a.get(0, "prefix"), n == "startswith", l));
      });
    if (n == "upper") return bound(obj, [](const Value& s, CallArgs&, int) { return Value::string(ascii_upper(s.s)); });
    if (n == "lower") return bound(obj, [](const Value& s, CallArgs&, int) { return Value::string(ascii_lower(s.s)); });
    if (n == "title") return bound(obj, [](const Value& s, CallArgs&, int) { return Value::string(py_title(s.s)); });
    if (n == "capitalize")
      return bound(obj, [](const Value& s, CallArgs&, int) { return Value::string(py_capitalize(s.s)); });
    if (n == "replace")
      return bound(obj, [](const Value& s, CallArgs& a, int l) {
        return Value::string(py_replace(s.s, str_arg(a.get(0, "old"), "replace arg", l),
                                        str_arg(a.get(1, "new"), "replace arg", l),
                                        int_arg(a.get(2, "count"), -1, "count", l)));
      });
    if (n == "find" || n == "rfind" || n == "index" || n == "rindex")
      return bound(obj, [n](const Value& s, CallArgs& a, int l) {
        const std::string sub = str_arg(a.get(0, "sub"), n + " arg", l);
        const size_t f = n[0] == 'r' ? s.s.rfind(sub) : s.s.find(sub);
        if (f == std::string::npos) {
          if (n == "index" || n == "rindex") fail("substring not found", l);
          return Value::integer(-1);
        }
        return Value::integer(int64_t(utf8_length(s.s.substr(0, f))));
      });
    if (n == "count")
      return bound(obj, [](const Value& s, CallArgs& a, int l) {
        const std::string sub = str_arg(a.get(0, "sub"), "count arg", l);
        if (sub.empty()) return Value::integer(int64_t(utf8_length(s.s)) + 1);
        int64_t c = 0;
        for (size_t p = s.s.find(sub); p != std::string::npos; p = s.s.find(sub, p + sub.size())) ++c;
        return Value::integer(c);
      });
    if (n == "join")
      return bound(obj, [](const Value& s, CallArgs& a, int l) {
        Value seq = a.get(0, "iterable");
        std::string out;
        bool first = true;
        if (!seq.is_list() && !seq.is_string() && !seq.is_dict()) fail("can only join an iterable", l);
        List items = seq.is_list() ? *seq.list : List{};
        if (seq.is_string())
          for (auto& c : utf8_chars(seq.s)) items.push_back(Value::string(c));
        if (seq.is_dict())
          for (auto& kv : seq.dict->items) items.push_back(Value::string(kv.first));
        for (const Value& x : items) {
          if (!x.is_string()) fail("sequence item: expected str instance, " + type_name(x) + " found", l);
          if (!first) out += s.s;
          first = false;
          out += x.s;
        }
        return Value::string(out);
      });
    if (n == "splitlines")
      return bound(obj, [](const Value& s, CallArgs&, int) { return strings(splitlines(s.s)); });
    if (n == "format")
      return bound(obj, [](const Value& s, CallArgs& a, int l) { return Value::string(py_format(s.s, a, l)); });
    if (n == "isdigit" || n == "isalpha" || n == "isspace" || n == "isalnum" || n == "islower" || n == "isupper")
      return bound(obj, [n](const Value& s, CallArgs&, int) {
        if (s.s.empty()) return Value::boolean(false);
        bool any_cased = false, ok = true;
        for (char c : s.s) {
          const unsigned char u = (unsigned char)c;
          if (n == "isdigit") ok = ok && std::isdigit(u);
          else if (n == "isalpha") ok = ok && std::isalpha(u);
          else if (n == "isspace") ok = ok && std::isspace(u);
          else if (n == "isalnum") ok = ok && std::isalnum(u);
          else if (n == "islower") {
            ok = ok && !std::isupper(u);
            any_cased = any_cased || std::islower(u);
          } else {
            ok = ok && !std::islower(u);
            any_cased = any_cased || std::isupper(u);
          }
        }
        if (n == "islower" || n == "isupper") ok = ok && any_cased;
        return Value::boolean(ok);
      });
    static const std::set<std::string> kOtherStr = {"casefold", "center", "encode", "expandtabs", "format_map",
                                                    "isascii", "isdecimal", "isidentifier", "isnumeric",
                                                    "isprintable", "istitle", "ljust", "maketrans", "partition",
                                                    "removeprefix", "removesuffix", "rjust", "rpartition",
                                                    "swapcase", "translate", "zfill"};
    if (kOtherStr.count(n)) return Value::undefined("str." + n + "() is not supported by atax's template engine");
    return std::nullopt;
  }
  if (obj.is_dict()) {
    const std::string& n = name;
    if (n == "items") return bound(obj, [](const Value& d, CallArgs&, int) { return items_of(d); });
    if (n == "keys")
      return bound(obj, [](const Value& d, CallArgs&, int) {
        List l;
        for (const auto& kv : d.dict->items) l.push_back(Value::string(kv.first));
        return Value::make_list(std::move(l));
      });
    if (n == "values")
      return bound(obj, [](const Value& d, CallArgs&, int) {
        List l;
        for (const auto& kv : d.dict->items) l.push_back(kv.second);
        return Value::make_list(std::move(l));
      });
    if (n == "get")
      return bound(obj, [](const Value& d, CallArgs& a, int) {
        Value key = a.get(0, "key");
        if (key.is_string())
          if (const Value* v = d.dict->find(key.s)) return *v;
        return a.has(1, "default") ? a.get(1, "default") : Value::none();
      });
    if (n == "copy")
      return bound(obj, [](const Value& d, CallArgs&, int) {
        Value c = Value::make_dict();
        c.dict->items = d.dict->items;
        return c;
      });
    if (n == "pop" || n == "popitem" || n == "setdefault" || n == "update" || n == "clear") return unsafe(obj, n);
    return std::nullopt;
  }
  if (obj.is_list()) {
    const std::string& n = name;
    if (n == "index" || n == "count")
      return bound(obj, [n](const Value& l, CallArgs& a, int line2) {
        Value x = a.get(0, "value");
        int64_t c = 0;
        for (size_t k = 0; k < l.list->size(); ++k)
          if (equals((*l.list)[k], x)) {
            if (n == "index") return Value::integer(int64_t(k));
            ++c;
          }
        if (n == "index") fail(repr(x) + " is not in list", line2);
        return Value::integer(c);
      });
    if (n == "copy") return bound(obj, [](const Value& l, CallArgs&, int) { return Value::make_list(*l.list, l.tuple); });
    if (!obj.tuple && (n == "append" || n == "extend" || n == "insert" || n == "pop" || n == "remove" ||
                       n == "clear" || n == "sort" || n == "reverse"))
      return unsafe(obj, n);
    return std::nullopt;
  }
  (void)line;
  return std::nullopt;
}

// ---- filters ----

namespace {

std::vector<Value> as_items(Evaluator& ev, const Value& v, int line) { return ev.iterate(v, line); }

// The attribute path "a.b.0" of jinja2's make_attrgetter.
Value attr_path(Evaluator& ev, const Value& item, const std::string& path, int line) {
  Value v = item;
  size_t start = 0;
  while (true) {
    const size_t dot = path.find('.', start);
    std::string part = path.substr(start, dot == std::string::npos ? std::string::npos : dot - start);
    const bool numeric = !part.empty() && std::all_of(part.begin(), part.end(), [](char c) { return std::isdigit((unsigned char)c); });
    v = numeric ? ev.getitem(v, Value::integer(std::stoll(part)), line) : ev.getitem(v, Value::string(part), line);
    if (dot == std::string::npos) return v;
    start = dot + 1;
  }
}

// Sort key with jinja2's case_sensitive=False default: strings compare lowercased.
Value sort_key(const Value& v, bool case_sensitive) {
  if (!case_sensitive && v.is_string()) return Value::string(ascii_lower(v.s));
  return v;
}

std::string html_escape(const std::string& s) {
  std::string out;
  for (char c : s) {
    switch (c) {
      case '&': out += "&amp;"; break;
      case '<': out += "&lt;"; break;
      case '>': out += "&gt;"; break;
      case '"': out += "&#34;"; break;
      case '\'': out += "&#39;"; break;
      default: out += c;
    }
  }
  return out;
}

bool select_test(Evaluator& ev, const Value& item, const CallArgs& a, size_t first, int line) {
  if (a.positional.size() <= first) return truthy(item);
  Value test = a.positional[first];
  if (!test.is_string()) fail("the test name must be a string", line);
  CallArgs rest;
  rest.positional.assign(a.positional.begin() + long(first) + 1, a.positional.end());
  rest.keyword = a.keyword;
  return apply_test(ev, test.s, item, rest, line);
}

const std::set<std::string> kFilters = {
    "abs", "attr", "capitalize", "count", "d", "default", "dictsort", "e", "escape", "first", "float", "format",
    "indent", "int", "items", "join", "last", "length", "list", "lower", "map", "max", "min", "reject",
    "rejectattr", "replace", "reverse", "round", "safe", "select", "selectattr", "sort", "string", "sum",
    "title", "tojson", "trim", "unique", "upper", "wordcount", "center", "batch", "truncate", "striptags",
    "forceescape", "pprint", "filesizeformat", "groupby", "slice", "urlencode", "urlize", "wordwrap", "xmlattr"};

}  // namespace

bool has_filter(const std::string& name) { return kFilters.count(name) > 0; }

Value apply_filter(Evaluator& ev, const std::string& name, const Value& in, CallArgs& a, int line) {
  const std::string& n = name;
  auto need_string = [&](const Value& v) {
    if (v.is_undefined()) return std::string();
    return to_str(v, line);
  };
  if (n == "default" || n == "d") {
    const bool boolean = truthy(a.get(1, "boolean"));
    if (in.is_undefined() || (boolean && !truthy(in))) return a.has(0, "default_value") ? a.get(0, "default_value") : Value::string("");
    return in;
  }
  if (n == "length" || n == "count") {
    switch (in.type) {
      case Value::Type::kUndefined: return Value::integer(0);
      case Value::Type::kString: return Value::integer(int64_t(utf8_length(in.s)));
      case Value::Type::kList: return Value::integer(int64_t(in.list->size()));
      case Value::Type::kDict: return Value::integer(int64_t(in.dict->items.size()));
      default: fail("object of type '" + type_name(in) + "' has no len()", line);
    }
  }
  if (n == "string") return Value::string(to_str(in, line));
  if (n == "safe") return in;
  if (n == "trim") return Value::string(py_strip(need_string(in), a.get(0, "chars"), true, true, line));
  if (n == "upper") return Value::string(ascii_upper(need_string(in)));
  if (n == "lower") return Value::string(ascii_lower(need_string(in)));
  if (n == "capitalize") return Value::string(py_capitalize(need_string(in)));
  if (n == "title") return Value::string(jinja_title(need_string(in)));
  if (n == "escape" || n == "e" || n == "forceescape") return Value::string(html_escape(need_string(in)));
  if (n == "replace") {
    return Value::string(py_replace(need_string(in), to_str(a.get(0, "old"), line), to_str(a.get(1, "new"), line),
                                    int_arg(a.get(2, "count"), -1, "count", line)));
  }
  if (n == "wordcount") return Value::integer(int64_t(py_split(need_string(in), Value::none(), -1, line).size()));
  if (n == "indent") {
    Value w = a.get(0, "width");
    const std::string indention = w.is_string() ? w.s : std::string(size_t(int_arg(w, 4, "width", line)), ' ');
    const bool first = truthy(a.get(1, "first")), blank = truthy(a.get(2, "blank"));
    std::string s = need_string(in) + "\n";
    std::vector<std::string> lines = splitlines(s);
    std::string rv;
    if (blank) {
      for (size_t k = 0; k < lines.size(); ++k) rv += (k ? "\n" + indention : "") + lines[k];
    } else {
      rv = lines.empty() ? "" : lines[0];
      for (size_t k = 1; k < lines.size(); ++k) rv += "\n" + (lines[k].empty() ? "" : indention + lines[k]);
    }
    if (first) rv = indention + rv;
    return Value::string(rv);
  }
  if (n == "join") {
    const std::string sep = a.has(0, "d") ? to_str(a.get(0, "d"), line) : "";
    Value attr = a.get(1, "attribute");
    std::string out;
    bool firsti = true;
    for (const Value& x : as_items(ev, in, line)) {
      if (!firsti) out += sep;
      firsti = false;
      out += to_str(attr.is_undefined() || attr.is_none() ? x : attr_path(ev, x, to_str(attr, line), line), line);
    }
    return Value::string(out);
  }
  if (n == "first" || n == "last") {
    std::vector<Value> items = as_items(ev, in, line);
    if (items.empty()) return Value::undefined("No " + std::string(n == "first" ? "first" : "last") + " item, sequence was empty.");
    return n == "first" ? items.front() : items.back();
  }
  if (n == "list") return Value::make_list(as_items(ev, in, line));
  if (n == "reverse") {
    if (in.is_string()) {
      auto cs = utf8_chars(in.s);
      std::string out;
      for (size_t k = cs.size(); k-- > 0;) out += cs[k];
      return Value::string(out);
    }
    std::vector<Value> items = as_items(ev, in, line);
    std::reverse(items.begin(), items.end());
    return Value::make_list(std::move(items));
  }
  if (n == "items") {
    if (in.is_undefined()) return Value::make_list();
    if (!in.is_dict()) fail("Can only get item pairs from a mapping.", line);
    return items_of(in);
  }
  if (n == "dictsort") {
    if (!in.is_dict()) fail("You can only sort by either \"key\" or \"value\"", line);
    const bool cs = truthy(a.get(0, "case_sensitive"));
    Value by = a.get(1, "by");
    const bool by_value = by.is_string() && by.s == "value";
    const bool rev = truthy(a.get(2, "reverse"));
    std::vector<Value> items = *items_of(in).list;
    std::stable_sort(items.begin(), items.end(), [&](const Value& x, const Value& y) {
      const Value& kx = (*x.list)[by_value ? 1 : 0];
      const Value& ky = (*y.list)[by_value ? 1 : 0];
      const int c = compare(sort_key(kx, cs), sort_key(ky, cs), line);
      return rev ? c > 0 : c < 0;
    });
    return Value::make_list(std::move(items));
  }
  if (n == "sort") {
    const bool rev = truthy(a.get(0, "reverse"));
    const bool cs = truthy(a.get(1, "case_sensitive"));
    Value attr = a.get(2, "attribute");
    std::vector<Value> items = as_items(ev, in, line);
    auto key = [&](const Value& x) {
      return sort_key(attr.is_undefined() || attr.is_none() ? x : attr_path(ev, x, to_str(attr, line), line), cs);
    };
    std::stable_sort(items.begin(), items.end(), [&](const Value& x, const Value& y) {
      const int c = compare(key(x), key(y), line);
      return rev ? c > 0 : c < 0;
    });
    return Value::make_list(std::move(items));
  }
  if (n == "unique") {
    const bool cs = truthy(a.get(0, "case_sensitive"));
    Value attr = a.get(1, "attribute");
    std::vector<Value> out, seen;
    for (const Value& x : as_items(ev, in, line)) {
      Value k = sort_key(attr.is_undefined() || attr.is_none() ? x : attr_path(ev, x, to_str(attr, line), line), cs);
      bool dup = false;
      for (const Value& s : seen) dup = dup || equals(s, k);
      if (!dup) {
        seen.push_back(k);
        out.push_back(x);
      }
    }
    return Value::make_list(std::move(out));
  }
  if (n == "min" || n == "max") {
    const bool cs = truthy(a.get(0, "case_sensitive"));
    Value attr = a.get(1, "attribute");
    std::vector<Value> items = as_items(ev, in, line);
    if (items.empty()) return Value::undefined("No aggregated item, sequence was empty.");
    auto key = [&](const Value& x) {
      return sort_key(attr.is_undefined() || attr.is_none() ? x : attr_path(ev, x, to_str(attr, line), line), cs);
    };
    Value best = items[0];
    for (size_t k = 1; k < items.size(); ++k) {
      const int c = compare(key(items[k]), key(best), line);
      if (n == "min" ? c < 0 : c > 0) best = items[k];
    }
    return best;
  }
  if (n == "sum") {
    Value attr = a.get(0, "attribute");
    Value total = a.has(1, "start") ? a.get(1, "start") : Value::integer(0);
    for (const Value& x : as_items(ev, in, line))
      total = ev.binary("+", total, attr.is_undefined() || attr.is_none() ? x : attr_path(ev, x, to_str(attr, line), line), line);
    return total;
  }
  if (n == "map") {
    std::vector<Value> out;
    Value attr = a.get(999, "attribute");
    for (const Value& x : as_items(ev, in, line)) {
      if (!attr.is_undefined()) {
        Value v = attr_path(ev, x, to_str(attr, line), line);
        if (v.is_undefined() && a.has(999, "default")) v = a.get(999, "default");
        out.push_back(v);
      } else {
        if (a.positional.empty()) fail("map requires a filter argument", line);
        CallArgs rest;
        rest.positional.assign(a.positional.begin() + 1, a.positional.end());
        rest.keyword = a.keyword;
        out.push_back(apply_filter(ev, to_str(a.positional[0], line), x, rest, line));
      }
    }
    return Value::make_list(std::move(out));
  }
  if (n == "select" || n == "reject") {
    std::vector<Value> out;
    for (const Value& x : as_items(ev, in, line))
      if (select_test(ev, x, a, 0, line) == (n == "select")) out.push_back(x);
    return Value::make_list(std::move(out));
  }
  if (n == "selectattr" || n == "rejectattr") {
    if (a.positional.empty()) fail(n + " requires an attribute name", line);
    const std::string attr = to_str(a.positional[0], line);
    std::vector<Value> out;
    for (const Value& x : as_items(ev, in, line))
      if (select_test(ev, attr_path(ev, x, attr, line), a, 1, line) == (n == "selectattr")) out.push_back(x);
    return Value::make_list(std::move(out));
  }
  if (n == "attr") return ev.getattr(in, to_str(a.get(0, "name"), line), line);
  if (n == "int") {
    const int64_t dflt = int_arg(a.get(0, "default"), 0, "default", line);
    if (in.type == Value::Type::kInt) return in;
    if (in.type == Value::Type::kBool) return Value::integer(in.b);
    if (in.type == Value::Type::kFloat) return Value::integer(int64_t(std::trunc(in.f)));
    if (in.is_string()) {
      const std::string s = py_strip(in.s, Value::none(), true, true, line);
      char* end = nullptr;
      const long long v = std::strtoll(s.c_str(), &end, 10);
      if (!s.empty() && end && *end == 0) return Value::integer(v);
      const double d = std::strtod(s.c_str(), &end);
      if (!s.empty() && end && *end == 0 && std::isfinite(d)) return Value::integer(int64_t(std::trunc(d)));
    }
    return Value::integer(dflt);
  }
  if (n == "float") {
    Value d = a.get(0, "default");
    const double dflt = d.is_number() ? (d.type == Value::Type::kFloat ? d.f : double(d.type == Value::Type::kBool ? d.b : d.i)) : 0.0;
    if (in.type == Value::Type::kFloat) return in;
    if (in.type == Value::Type::kInt) return Value::number(double(in.i));
    if (in.type == Value::Type::kBool) return Value::number(in.b);
    if (in.is_string()) {
      const std::string s = py_strip(in.s, Value::none(), true, true, line);
      char* end = nullptr;
      const double v = std::strtod(s.c_str(), &end);
      if (!s.empty() && end && *end == 0) return Value::number(v);
    }
    return Value::number(dflt);
  }
  if (n == "abs") {
    if (in.type == Value::Type::kInt) return Value::integer(in.i < 0 ? -in.i : in.i);
    if (in.type == Value::Type::kFloat) return Value::number(std::fabs(in.f));
    if (in.type == Value::Type::kBool) return Value::integer(in.b);
    fail("bad operand type for abs(): '" + type_name(in) + "'", line);
  }
  if (n == "round") {
    const int64_t prec = int_arg(a.get(0, "precision"), 0, "precision", line);
    Value m = a.get(1, "method");
    const std::string method = m.is_string() ? m.s : "common";
    if (!in.is_number()) fail("round needs a number", line);
    const double x = in.type == Value::Type::kFloat ? in.f : double(in.type == Value::Type::kBool ? in.b : in.i);
    const double scale = std::pow(10.0, double(prec));
    double r;
    if (method == "common") r = std::nearbyint(x * scale) / scale;  // Python's round(): half to even
    else if (method == "ceil") r = std::ceil(x * scale) / scale;
    else if (method == "floor") r = std::floor(x * scale) / scale;
    else fail("method must be common, ceil or floor", line);
    return Value::number(r);
  }
  if (n == "tojson") {
    JsonStyle st;
    Value indent = a.get(1, "indent");
    if (indent.type == Value::Type::kInt) st.indent = int(std::max<int64_t>(0, indent.i));
    else if (indent.is_string()) st.indent_text = indent.s;
    if (st.indent >= 0 || !st.indent_text.empty()) st.item_sep = ",";
    Value seps = a.get(2, "separators");
    if (seps.is_list() && seps.list->size() == 2) {
      st.item_sep = to_str((*seps.list)[0], line);
      st.key_sep = to_str((*seps.list)[1], line);
    }
    st.sort_keys = truthy(a.get(3, "sort_keys"));
    if (truthy(a.get(0, "ensure_ascii"))) fail("tojson(ensure_ascii=True) is not supported", line);
    return Value::string(to_json(in, st, line));
  }
  if (n == "format") {
    if (!a.keyword.empty() && !a.positional.empty())
      fail("can't handle positional and keyword arguments at the same time", line);
    return Value::string(percent_format(need_string(in), Value::make_list(a.positional, true), line));
  }
  if (n == "center") {
    const int64_t width = int_arg(a.get(0, "width"), 80, "width", line);
    std::string s = need_string(in);
    const int64_t len = int64_t(utf8_length(s));
    if (len >= width) return Value::string(s);
    const int64_t total = width - len;
    const int64_t left = total / 2 + (total & width & 1);
    return Value::string(std::string(size_t(left), ' ') + s + std::string(size_t(total - left), ' '));
  }
  if (has_filter(n)) fail("the filter '" + n + "' is not supported by atax's template engine", line);
  fail("No filter named '" + n + "'.", line);
}

// ---- tests ----

namespace {
const std::set<std::string> kTests = {"defined", "undefined", "none", "boolean", "false", "true", "integer", "float",
                                      "number", "string", "mapping", "iterable", "sequence", "callable", "sameas",
                                      "escaped", "in", "eq", "equalto", "==", "ne", "!=", "lt", "lessthan", "<",
                                      "le", "<=", "gt", "greaterthan", ">", "ge", ">=", "odd", "even",
                                      "divisibleby", "lower", "upper", "filter", "test"};
}

bool has_test(const std::string& name) { return kTests.count(name) > 0; }

bool apply_test(Evaluator& ev, const std::string& n, const Value& v, CallArgs& a, int line) {
  using T = Value::Type;
  if (n == "defined") return !v.is_undefined();
  if (n == "undefined") return v.is_undefined();
  if (n == "none") return v.is_none();
  if (n == "boolean") return v.type == T::kBool;
  if (n == "false") return v.type == T::kBool && !v.b;
  if (n == "true") return v.type == T::kBool && v.b;
  if (n == "integer") return v.type == T::kInt;
  if (n == "float") return v.type == T::kFloat;
  if (n == "number") return v.is_number();
  if (n == "string") return v.is_string();
  if (n == "mapping") return v.is_dict();
  if (n == "iterable") return v.is_list() || v.is_dict() || v.is_string() || v.is_undefined();
  if (n == "sequence") return v.is_list() || v.is_dict() || v.is_string() || v.is_undefined();
  if (n == "callable") return v.type == T::kCallable;
  if (n == "escaped") return false;
  if (n == "filter") return has_filter(to_str(v, line));
  if (n == "test") return has_test(to_str(v, line));
  const Value other = a.get(0, "other");
  if (n == "sameas") {
    if (v.type != other.type) return false;
    switch (v.type) {
      case T::kNone:
      case T::kUndefined: return v.type == T::kNone;
      case T::kBool: return v.b == other.b;
      case T::kInt: return v.i == other.i && v.i >= -5 && v.i <= 256;  // CPython's small-int cache
      case T::kList: return v.list == other.list;
      case T::kDict:
      case T::kNamespace: return v.dict == other.dict;
      case T::kCallable: return v.fn == other.fn;
      default: return false;
    }
  }
  if (n == "in") return ev.contains(other, v, line);
  if (n == "eq" || n == "equalto" || n == "==") return equals(v, other);
  if (n == "ne" || n == "!=") return !equals(v, other);
  if (n == "lt" || n == "lessthan" || n == "<" || n == "le" || n == "<=" || n == "gt" || n == "greaterthan" ||
      n == ">" || n == "ge" || n == ">=") {
    if (v.is_undefined()) undefined_error(v, line);
    if (other.is_undefined()) undefined_error(other, line);
    const int c = compare(v, other, line);
    if (n == "lt" || n == "lessthan" || n == "<") return c < 0;
    if (n == "le" || n == "<=") return c <= 0;
    if (n == "gt" || n == "greaterthan" || n == ">") return c > 0;
    return c >= 0;
  }
  if (n == "odd" || n == "even" || n == "divisibleby") {
    if (v.is_undefined()) undefined_error(v, line);
    if (v.type != T::kInt && v.type != T::kBool) fail(n + " needs an integer", line);
    const int64_t x = v.type == T::kBool ? v.b : v.i;
    if (n == "odd") return ((x % 2) + 2) % 2 == 1;
    if (n == "even") return x % 2 == 0;
    const int64_t d = int_arg(other, 1, "divisibleby", line);
    if (d == 0) fail("integer division or modulo by zero", line);
    return x % d == 0;
  }
  if (n == "lower" || n == "upper") {
    if (!v.is_string()) fail(n + " test needs a string", line);
    bool any = false;
    for (char c : v.s) {
      if (n == "lower" && std::isupper((unsigned char)c)) return false;
      if (n == "upper" && std::islower((unsigned char)c)) return false;
      any = any || std::isalpha((unsigned char)c);
    }
    return any;
  }
  fail("No test named '" + n + "'.", line);
}

// ---- globals ----

std::string percent_format(const std::string& fmt, const Value& args, int line) {
  std::vector<Value> items = args.is_list() && args.tuple ? *args.list : std::vector<Value>{args};
  std::string out;
  size_t next = 0;
  for (size_t k = 0; k < fmt.size(); ++k) {
    if (fmt[k] != '%') {
      out += fmt[k];
      continue;
    }
    if (++k >= fmt.size()) fail("incomplete format", line);
    const char c = fmt[k];
    if (c == '%') {
      out += '%';
      continue;
    }
    if (next >= items.size()) fail("not enough arguments for format string", line);
    const Value& v = items[next++];
    if (c == 's') out += to_str(v, line);
    else if (c == 'r') out += repr(v);
    else if (c == 'd' || c == 'i') {
      if (!v.is_number()) fail("%d format: a real number is required, not " + type_name(v), line);
      out += std::to_string(v.type == Value::Type::kFloat ? int64_t(std::trunc(v.f)) : v.type == Value::Type::kBool ? int64_t(v.b) : v.i);
    } else if (c == 'f') {
      if (!v.is_number()) fail("%f format: a real number is required, not " + type_name(v), line);
      char b[64];
      std::snprintf(b, sizeof b, "%f", v.type == Value::Type::kFloat ? v.f : double(v.type == Value::Type::kBool ? v.b : v.i));
      out += b;
    } else {
      fail(std::string("unsupported format character '") + c + "'", line);
    }
  }
  if (next < items.size()) fail("not all arguments converted during string formatting", line);
  return out;
}

void install_globals(Scope& g, const TemplateRenderOptions& opts) {
  g.vars["raise_exception"] = Value::callable([](Evaluator&, CallArgs& a, int line) -> Value {
    throw TemplateError{to_str(a.get(0, "message"), line), line, true};
  });
  const std::optional<std::time_t> fixed = opts.now;
  g.vars["strftime_now"] = Value::callable([fixed](Evaluator&, CallArgs& a, int line) -> Value {
    Value f = a.get(0, "format");
    if (!f.is_string()) fail("strftime_now() takes a format string", line);
    const std::time_t t = fixed ? *fixed : std::time(nullptr);
    std::tm tm{};
    if (fixed) gmtime_r(&t, &tm);  // a fixed time is UTC
    else localtime_r(&t, &tm);     // datetime.now(): local time
    std::string buf(256 + f.s.size() * 8, '\0');
    const size_t n = std::strftime(buf.data(), buf.size(), f.s.c_str(), &tm);
    buf.resize(n);
    return Value::string(buf);
  });
  g.vars["range"] = Value::callable([](Evaluator&, CallArgs& a, int line) -> Value {
    int64_t start = 0, stop = 0, step = 1;
    const size_t n = a.positional.size();
    if (n == 1) stop = int_arg(a.positional[0], 0, "range()", line);
    else if (n == 2 || n == 3) {
      start = int_arg(a.positional[0], 0, "range()", line);
      stop = int_arg(a.positional[1], 0, "range()", line);
      if (n == 3) step = int_arg(a.positional[2], 1, "range()", line);
    } else fail("range expected 1 to 3 arguments", line);
    if (step == 0) fail("range() arg 3 must not be zero", line);
    List out;
    for (int64_t k = start; step > 0 ? k < stop : k > stop; k += step) {
      if (out.size() >= 100000) fail("Range too big. The sandbox blocks ranges larger than MAX_RANGE (100000).", line);
      out.push_back(Value::integer(k));
    }
    return Value::make_list(std::move(out));
  });
  g.vars["dict"] = Value::callable([](Evaluator&, CallArgs& a, int line) -> Value {
    Value d = Value::make_dict();
    for (const Value& p : a.positional) {
      if (!p.is_dict()) fail("dict() takes a mapping", line);
      for (const auto& [k, v] : p.dict->items) d.dict->set(k, v);
    }
    for (const auto& [k, v] : a.keyword) d.dict->set(k, v);
    return d;
  });
  g.vars["namespace"] = Value::callable([](Evaluator&, CallArgs& a, int line) -> Value {
    Value ns = Value::make_namespace();
    for (const Value& p : a.positional) {
      if (!p.is_dict()) fail("namespace() takes a mapping", line);
      for (const auto& [k, v] : p.dict->items) ns.dict->set(k, v);
    }
    for (const auto& [k, v] : a.keyword) ns.dict->set(k, v);
    return ns;
  });
}

}  // namespace atax::tmpl
