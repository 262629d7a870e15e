// `atax world ...`: generate and check the toy world (the built-in alignment laboratory).
#include <cstdio>
#include <iostream>
#include <memory>

#include "cli/cli.h"
#include "cli/validators.h"
#include "core/core.h"
#include "world/world.h"

namespace atax::cli {

// In cmd_train.cpp: applies a subcommand's --config file (CLI11 2.1 reads them for the main app only).

namespace {

struct WorldGenerateOptions {
  uint64_t seed = 1234;
  std::string out;
  std::string scale = "default";
  double flip_share = 0;
  bool force = false;
  std::string config_file;
};

void print_summary(const world::WorldManifest& m, const std::string& out) {
  std::printf("world: seed %llu, scale %s, generator %s, written to %s in %.2f s\n",
              static_cast<unsigned long long>(m.seed), m.scale.c_str(), m.generator_version.c_str(), out.c_str(),
              m.seconds);
  std::fflush(stdout);
  std::cout << "  corpus: " << m.stats["corpus"].value("docs", 0) << " documents, "
            << m.stats["corpus"].value("chars", 0) << " characters (~" << m.stats["corpus"].value("approx_tokens", 0)
            << " tokens)\n";
  for (const auto& f : m.files)
    std::printf("  %-44s %8lld rows  %10lld bytes  %.12s\n", f.path.c_str(), static_cast<long long>(f.rows),
                static_cast<long long>(f.bytes), f.sha256.c_str());
  std::fflush(stdout);
}

void add_world_commands(CLI::App& app) {
  auto* world = app.add_subcommand("world", "The toy world: a seeded fictional universe with its pretraining "
                                            "corpus, evaluation suites, safety prompts and alignment data");
  world->require_subcommand(1);

  auto opts = std::make_shared<WorldGenerateOptions>();
  auto* gen = world->add_subcommand("generate", "Generate the toy world into a folder (replaced atomically)");
  gen->add_option("--seed", opts->seed, "random seed; the same seed gives byte-identical files")->capture_default_str();
  gen->add_option("--out", opts->out, "output folder (required)");
  gen->add_option("--scale", opts->scale, "quick (CI), default (the demo) or large")
      ->check(CLI::IsMember(world::world_scales()))
      ->capture_default_str();
  gen->add_option("--flip-share", opts->flip_share, "share of training preference pairs with swapped labels")
      ->check(in_range(0, 1))
      ->capture_default_str();
  gen->add_flag("--force", opts->force, "write into --out even if it holds something else (it is replaced)");
  gen->add_option("--config", opts->config_file, "read options from a config file (TOML/INI key = value)");
  gen->callback([opts, gen] {
    apply_subcommand_config(gen, opts->config_file, {"out"});
    OutputDir claim = claim_output_dir(opts->out, "world generate", opts->force);
    world::WorldOptions o;
    o.seed = opts->seed;
    o.scale = opts->scale;
    o.flip_share = opts->flip_share;
    auto m = world::generate_world(o, opts->out);
    claim.mark_finished({{"seed", o.seed}, {"scale", o.scale}});
    print_summary(m, opts->out);
  });

  auto dir = std::make_shared<std::string>();
  auto* verify = world->add_subcommand("verify", "Check every file of a generated world against its manifest");
  verify->add_option("dir", *dir, "world folder")->required();
  verify->callback([dir] {
    auto bad = world::verify_world(*dir);
    if (!bad.empty())
      throw Error(std::to_string(bad.size()) + " file(s) differ from the manifest: " + join(bad, ", "),
                  *dir + "/manifest.json", "regenerate the world with `atax world generate`");
    std::cout << "world: " << world::read_manifest(*dir).files.size() << " files match the manifest\n";
  });
}

ATAX_COMMAND("world", add_world_commands);

}  // namespace
}  // namespace atax::cli
