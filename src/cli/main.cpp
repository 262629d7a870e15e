// The atax program: parses the command line and runs one subcommand.
#include <cstdio>
#include <iostream>
#include <new>

#include <c10/util/Exception.h>

#include "cli/cli.h"
#include "core/core.h"

namespace atax::cli {

std::vector<std::pair<std::string, AddCommand>>& registered_commands() {
  static std::vector<std::pair<std::string, AddCommand>> commands;
  return commands;
}

CommandRegistrar::CommandRegistrar(const char* name, AddCommand add) {
  registered_commands().emplace_back(name, std::move(add));
}

void add_runtime_options(CLI::App* sub, RuntimeOptions& opts) {
  sub->add_option("--device", opts.device, "auto | cpu | cuda | cuda:N (env ATAX_DEVICE)")
      ->envname("ATAX_DEVICE")->capture_default_str();
  sub->add_option("--threads", opts.threads, "threads for matrix products (OpenBLAS; LibTorch's own pool then 1); 0 = the measured default (1 on 2-core machines) or ATAX_THREADS")->capture_default_str();
  sub->add_option("--dtype", opts.dtype, "compute dtype: float32 | bfloat16")
      ->check(CLI::IsMember({"float32", "bfloat16"}))->capture_default_str();
}

void add_weights_option(CLI::App* sub, RuntimeOptions& opts) {
  sub->add_option("--weights", opts.weights,
                  "weight storage for CPU evaluation: f32 | bf16 (bfloat16) | q8_0 (int8 blocks of 32 with a "
                  "scale, as llama.cpp's Q8_0); products stay float32 (env ATAX_WEIGHTS)")
      ->envname("ATAX_WEIGHTS")->check(CLI::IsMember({"f32", "bf16", "q8_0"}))->capture_default_str();
}

void add_config_option(CLI::App* sub) {
  sub->set_config("--config", "", "read options from a config file (TOML/INI: key = value)");
}

}  // namespace atax::cli

int main(int argc, char** argv) {
  atax::tune_allocator();  // before any tensor exists (see core.h)
  CLI::App app{"atax — the alignment-tax lab: measure what alignment costs a language model, "
               "and align with less tax."};
  app.require_subcommand(1);
  app.set_version_flag("--version", atax::atax_version() + " (" + atax::atax_git_hash() + ")");
  auto& commands = atax::cli::registered_commands();
  std::sort(commands.begin(), commands.end(),
            [](const auto& a, const auto& b) { return a.first < b.first; });
  for (auto& [name, add] : commands) add(app);
  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    // CLI11 2.1 checks required options and subcommands before unexpected arguments, so a typo
    // (`atax evl`, `atax info --modle M`) would be reported only as "... is required": name it.
    const std::vector<std::string> extras = app.remaining(true);
    if (dynamic_cast<const CLI::RequiredError*>(&e) && !extras.empty()) return app.exit(CLI::ExtrasError(extras));
    return app.exit(e);
  } catch (const atax::Error& e) {
    std::cerr << "atax: error: " << e.what() << "\n";
    return 2;
  } catch (const c10::Error& e) {
    // LibTorch's message without its C++ stack trace: the first line of what_without_backtrace().
    std::string msg = e.what_without_backtrace();
    if (auto nl = msg.find('\n'); nl != std::string::npos) msg.resize(nl);
    std::cerr << "atax: error: " << msg << "\nhint: the input does not fit the model or the model files are "
                                            "inconsistent; check the files and options given\n";
    return 2;
  } catch (const std::bad_alloc&) {
    std::cerr << "atax: error: out of memory\nhint: the job needs more memory than the machine has; lower "
                 "--batch-size or --max-length, or check the input files for absurd sizes\n";
    return 2;
  } catch (const nlohmann::json::exception& e) {
    // Readers of user JSON files name the file and the field (core/json_fields.h); one that
    // reaches here escaped a reader, so say what is known and ask for the report.
    std::cerr << "atax: error: unexpected JSON content: " << e.what()
              << "\nhint: a JSON input has a field of the wrong type or is missing one; atax did not say which "
                 "file (a bug: please report it with the command line)\n";
    return 2;
  } catch (const std::exception& e) {
    std::cerr << "atax: error: " << e.what() << "\n";
    return 1;
  }
  return 0;
}
