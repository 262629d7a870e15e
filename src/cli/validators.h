// cli: checks of numeric option values for their meaning, shared by every command. Each returns a
// CLI11 validator (run at parse time, and for --config values), so the error names the option and
// what is accepted: "--temperature: must be a finite number >= 0, got nan".
#pragma once

#include <string>

#include <CLI/CLI.hpp>

namespace atax::cli {

// A finite number (not nan, not inf).
CLI::Validator finite();
// A finite number > 0.
CLI::Validator positive();
// A finite number >= 0.
CLI::Validator non_negative();
// A finite number in [lo, hi] (the ends excluded where lo_open / hi_open).
CLI::Validator in_range(double lo, double hi, bool lo_open = false, bool hi_open = false);

}  // namespace atax::cli
