// The creativity constraints (IFEval-style), one definition used by the evaluator's
// constraints_met and the world generator.
#include <cctype>

#include "core/core.h"

namespace atax {
namespace {

bool is_word_char(unsigned char c) { return std::isalnum(c) || c == '_' || c >= 0x80; }

// Whole-word (or whole-phrase), case-insensitive containment.
bool contains_word(const std::string& text, const std::string& word) {
  std::string t = to_lower(text), w = to_lower(trim(word));
  if (w.empty()) return true;
  for (size_t pos = t.find(w); pos != std::string::npos; pos = t.find(w, pos + 1)) {
    bool left = pos == 0 || !is_word_char(static_cast<unsigned char>(t[pos - 1]));
    size_t end = pos + w.size();
    bool right = end >= t.size() || !is_word_char(static_cast<unsigned char>(t[end]));
    if (left && right) return true;
  }
  return false;
}

int64_t count_words(const std::string& text) {
  int64_t n = 0;
  bool in_word = false;
  for (unsigned char c : text) {
    bool space = std::isspace(c);
    if (!space && !in_word) ++n;
    in_word = !space;
  }
  return n;
}

int64_t constraint_number(const json& v) {
  if (v.is_number_integer()) return v.get<int64_t>();
  if (v.is_number()) return static_cast<int64_t>(v.get<double>());
  if (v.is_string()) {
    try {
      return std::stoll(v.get<std::string>());
    } catch (...) {
    }
  }
  throw Error("constraint value " + v.dump() + " is not a number", {}, "max_words / min_words take a number");
}

}  // namespace

std::vector<bool> check_constraints(std::string_view response_in, const json& constraints) {
  if (!constraints.is_array()) throw Error("constraints must be an array of {type, value}");
  std::vector<bool> out;
  std::string r = trim(std::string(response_in));
  for (const auto& c : constraints) {
    if (!c.is_object() || !c.contains("type") || !c["type"].is_string() || !c.contains("value"))
      throw Error("constraint " + c.dump() + " is not {type, value}");
    std::string type = c["type"];
    const json& v = c["value"];
    bool ok = false;
    if (type == "include_word" || type == "exclude_word") {
      if (!v.is_string()) throw Error(type + " takes a string value, got " + v.dump());
      bool has = contains_word(r, v.get<std::string>());
      ok = type == "include_word" ? has : !has;
    } else if (type == "max_words") {
      ok = count_words(r) <= constraint_number(v);
    } else if (type == "min_words") {
      ok = count_words(r) >= constraint_number(v);
    } else if (type == "starts_with" || type == "ends_with") {
      if (!v.is_string()) throw Error(type + " takes a string value, got " + v.dump());
      std::string want = to_lower(trim(v.get<std::string>())), have = to_lower(r);
      if (type == "starts_with") {
        ok = starts_with(have, want);
      } else {
        ok = ends_with(have, want);
        if (!ok && !want.empty() && std::string(".!?\"'").find(want.back()) == std::string::npos) {
          while (!have.empty() && std::string(".!?\"' \t\n").find(have.back()) != std::string::npos) have.pop_back();
          ok = ends_with(have, want);
        }
      }
    } else {
      throw Error("unknown constraint type \"" + type + "\"", {},
                  "known: include_word, exclude_word, max_words, min_words, starts_with, ends_with");
    }
    out.push_back(ok);
  }
  return out;
}

}  // namespace atax
