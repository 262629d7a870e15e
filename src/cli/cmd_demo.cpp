// atax demo | sweep: the whole experiment on the toy world, and grids of training settings.
#include <iostream>

#include "cli/cli.h"
#include "pipeline/pipeline.h"

namespace atax::cli {
namespace {

void add_demo(CLI::App& app) {
  struct Opts {
    bool quick = false;
    std::string scale = "default", out = "out/demo", tasks_dir;
    uint64_t seed = 1234;
    int seeds = 0;
    RuntimeOptions rt;
  };
  auto o = std::make_shared<Opts>();
  auto* sub = app.add_subcommand(
      "demo", "Run the whole alignment-tax experiment on the built-in toy world: generate the world, train the "
              "tokenizer, pretrain a base model, align it several ways, sweep β and λ, interpolate, evaluate, and "
              "write the tax tables, the tradeoff curve and report.html");
  sub->add_flag("--quick", o->quick, "the small version (same as --scale quick)");
  sub->add_option("--scale", o->scale, "quick | default")->check(CLI::IsMember({"quick", "default"}))->capture_default_str();
  sub->add_option("--out", o->out, "output folder (artifacts are cached here by content)")->capture_default_str();
  sub->add_option("--seed", o->seed, "world and training seed")->capture_default_str();
  sub->add_option("--seeds", o->seeds, "alignment seeds for the headline table (0 = the scale's)");
  sub->add_option("--tasks-dir", o->tasks_dir, "task definitions folder (default: the installed tasks/)");
  add_runtime_options(sub, o->rt);
  sub->callback([o] {
    pipeline::DemoOptions d;
    d.scale = o->quick ? "quick" : o->scale;
    d.out = o->out;
    d.seed = o->seed;
    d.seeds = o->seeds;
    d.threads = o->rt.threads;
    d.device = o->rt.device;
    d.tasks_dir = o->tasks_dir;
    pipeline::run_demo(d);
  });
}

void add_sweep(CLI::App& app) {
  auto config = std::make_shared<std::string>();
  auto* sub = app.add_subcommand("sweep", "Train and evaluate a grid of alignment settings (β, λ, selective, NLL "
                                          "weight, curriculum, interpolation t), recorded in the run store");
  sub->add_option("--config", *config, "sweep.json (see examples/sweep.json)")->required()->check(CLI::ExistingFile);
  sub->callback([config] {
    auto s = pipeline::run_sweep(*config);
    std::cout << json({{"runs", s.runs}, {"reused", s.reused}, {"trained", s.trained}, {"failed", s.failed},
                       {"store", s.store.string()}})
                     .dump()
              << "\n";
  });
}

ATAX_COMMAND("demo", add_demo);
ATAX_COMMAND("sweep", add_sweep);

}  // namespace
}  // namespace atax::cli
