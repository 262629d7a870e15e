// Numeric option validators (see validators.h).
#include "cli/validators.h"

#include <cerrno>
#include <cmath>
#include <cstdlib>
#include <sstream>

namespace atax::cli {
namespace {

std::string number(double v) {
  std::ostringstream s;
  s << v;
  return s.str();
}

// Parses the option's text as a number; empty optional when it is not one.
bool parse_number(const std::string& text, double& out) {
  const char* begin = text.c_str();
  char* end = nullptr;
  errno = 0;
  out = std::strtod(begin, &end);
  if (end == begin) return false;
  while (*end == ' ') ++end;
  return *end == '\0';
}

CLI::Validator make(const std::string& description, double lo, double hi, bool lo_open, bool hi_open) {
  return CLI::Validator(
      [=](std::string& text) -> std::string {
        double v = 0;
        if (!parse_number(text, v)) return "must be " + description + ", got \"" + text + "\"";
        if (!std::isfinite(v)) return "must be " + description + ", got " + text;
        const bool low_ok = lo_open ? v > lo : v >= lo;
        const bool high_ok = hi_open ? v < hi : v <= hi;
        if (!low_ok || !high_ok) return "must be " + description + ", got " + text;
        return {};
      },
      description);
}

}  // namespace

CLI::Validator finite() { return make("a finite number", -HUGE_VAL, HUGE_VAL, false, false); }

CLI::Validator positive() { return make("a finite number > 0", 0, HUGE_VAL, true, false); }

CLI::Validator non_negative() { return make("a finite number >= 0", 0, HUGE_VAL, false, false); }

CLI::Validator in_range(double lo, double hi, bool lo_open, bool hi_open) {
  const std::string d = "a number in " + std::string(lo_open ? "(" : "[") + number(lo) + ", " + number(hi) +
                        (hi_open ? ")" : "]");
  return make(d, lo, hi, lo_open, hi_open);
}

}  // namespace atax::cli
