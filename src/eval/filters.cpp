// Answer extraction from generated text: lm-eval's filter pipelines (regex, strip, case, ...).
#include <cctype>

#include "eval/internal.h"

namespace atax::eval_detail {

std::string apply_filter(const FilterSpec& f, std::string s) {
  for (const auto& step : f.steps) {
    std::string fn = step.value("function", "");
    if (fn == "regex") {
      s = regex_extract(s, step["pattern"].get<std::string>(), step.value("group_select", 0),
                        step.value("fallback", std::string("[invalid]")));
    } else if (fn == "strip") {
      s = trim(s);
    } else if (fn == "lowercase") {
      s = to_lower(s);
    } else if (fn == "uppercase") {
      for (auto& c : s) c = static_cast<char>(std::toupper(static_cast<unsigned char>(c)));
    } else if (fn == "remove_whitespace") {
      size_t i = s.find_first_not_of(" \t\n\r");
      s = i == std::string::npos ? std::string() : s.substr(i);
    }  // take_first: one response per item already
  }
  return s;
}

}  // namespace atax::eval_detail
