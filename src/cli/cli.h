// cli: the `atax` program. Each src/cli/cmd_<name>.cpp adds its subcommand(s) through
// ATAX_COMMAND; main.cpp parses, runs the chosen callback, and turns atax::Error into one clear
// message ("atax: error: ..." + hint) and exit code 2. Output files are written atomically.
#pragma once

#include <functional>
#include <string>
#include <vector>

#include <CLI/CLI.hpp>

namespace atax::cli {

using AddCommand = std::function<void(CLI::App& app)>;

// Registers a function that adds subcommands to the root app; called before parsing.
struct CommandRegistrar {
  CommandRegistrar(const char* name, AddCommand add);
};
std::vector<std::pair<std::string, AddCommand>>& registered_commands();

// Adds the options every model-using command shares: --device, --threads, --dtype.
struct RuntimeOptions {
  std::string device = "auto";  // auto | cpu | cuda | cuda:N   (env ATAX_DEVICE)
  int threads = 0;              // threads for matrix products; 0 = atax's measured default (configure_threads)
  std::string dtype = "float32";
  std::string weights = "f32";  // --weights (add_weights_option): f32 | bf16 | q8_0, model.h's WeightFormat
};
void add_runtime_options(CLI::App* sub, RuntimeOptions& opts);
// Adds --weights f32 | bf16 | q8_0 (env ATAX_WEIGHTS): how the products' weights are stored for
// evaluation (model.h's WeightFormat). Only the evaluating commands (eval, tax, generate, score)
// take it; training, merging and the demo keep float32 weights.
void add_weights_option(CLI::App* sub, RuntimeOptions& opts);

// Applies a subcommand's --config FILE (TOML/INI `key = value`, keys = long option names) in its
// callback: options not given on the command line take the file's values (the command line wins);
// then each option named in `required` must have a value. CLI11 reads config files for the main
// app only, so every subcommand's --config goes through this (defined in cmd_train.cpp). Error
// naming the file for a missing file, an unknown key or a bad value.
void apply_subcommand_config(CLI::App* sub, const std::string& path, const std::vector<std::string>& required);

// Adds a --config FILE option: a JSON or TOML-ish "key = value" file whose keys are the
// subcommand's long option names (CLI11's config reader).
void add_config_option(CLI::App* sub);

}  // namespace atax::cli

#define ATAX_CLI_CONCAT2(a, b) a##b
#define ATAX_CLI_CONCAT(a, b) ATAX_CLI_CONCAT2(a, b)
#define ATAX_COMMAND(name, fn) \
  static ::atax::cli::CommandRegistrar ATAX_CLI_CONCAT(atax_cmd_, __LINE__)(name, fn)
