// atax merge: weight interpolation θ = (1 − t)·θ_a + t·θ_b between two checkpoints of one
// architecture (optionally one t per layer), the model-averaging mitigation of Lin et al. (2024).
#include <iostream>

#include "cli/cli.h"
#include "cli/validators.h"
#include "train/train.h"

namespace atax::cli {

// In cmd_train.cpp: applies a subcommand's --config file (CLI11 2.1 reads them for the main app only).

namespace {

void add_merge(CLI::App& app) {
  struct Opts {
    MergeConfig cfg;
    std::string a, b, out, config_file;
    RuntimeOptions rt;
    bool force = false;
  };
  auto o = std::make_shared<Opts>();
  o->rt.device = "cpu";
  auto* sub = app.add_subcommand("merge", "Interpolate two models' weights: θ = (1 − t)·θ_a + t·θ_b");
  sub->add_option("--a", o->a, "first model (t = 0), e.g. the base (required)");
  sub->add_option("--b", o->b, "second model (t = 1), e.g. the aligned one (required)");
  sub->add_option("--t", o->cfg.t, "interpolation weight of b")->check(finite())->capture_default_str();
  sub->add_option("--t-per-layer", o->cfg.t_per_layer, "one t per layer, comma-separated (other tensors use --t)")
      ->check(finite())->delimiter(',');
  sub->add_option("--out", o->out, "output HF folder (required)");
  add_runtime_options(sub, o->rt);
  sub->add_flag("--force", o->force, "write into --out even if it holds something else (it is replaced)");
  sub->add_option("--config", o->config_file, "read options from a config file (TOML/INI key = value)");
  sub->callback([o, sub] {
    apply_subcommand_config(sub, o->config_file, {"a", "b", "out"});
    MergeConfig cfg = o->cfg;
    cfg.a = o->a;
    cfg.b = o->b;
    cfg.out = o->out;
    cfg.device = o->rt.device;
    OutputDir claim = claim_output_dir(cfg.out, "merge", o->force);
    merge_models(cfg);
    claim.mark_finished();
    std::cout << "model: " << cfg.out.string() << "\n";
  });
}

ATAX_COMMAND("merge", add_merge);

}  // namespace
}  // namespace atax::cli
