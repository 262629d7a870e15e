// atax tax: the alignment-tax table of an aligned model against its base — per benchmark and
// metric: base, aligned, tax% with a paired-bootstrap interval and a paired significance test,
// the mean capability tax and the change in safety metrics — as Markdown, CSV or JSON.
#include <iostream>

#include <fmt/format.h>

#include "analysis/analysis.h"
#include "cli/cli.h"

namespace atax::cli {
namespace {

struct TaxCmdOptions {
  // From two results files (what `atax eval` writes, or lm-eval's layout with --log-samples).
  std::string base_results, aligned_results;
  // From two model folders: evaluates both first (see load_tax_inputs).
  std::string base_dir, aligned_dir;
  std::vector<std::string> tasks;
  std::string format, out;
  int resamples = 2000;
  uint64_t seed = 1234;
  double confidence = 0.95;
  std::vector<std::string> safety_tasks, capability_tasks;
  bool include_breakdowns = false;
  RuntimeOptions rt;
};

struct TaxInputs {
  analysis::ResultsFile base, aligned;
};

TaxInputs load_tax_inputs(const TaxCmdOptions& o) {
  const bool from_files = !o.base_results.empty() || !o.aligned_results.empty();
  const bool from_models = !o.base_dir.empty() || !o.aligned_dir.empty();
  if (from_files && from_models)
    throw Error("give either --base-results/--aligned-results or --base/--aligned, not both", "",
                "results files are compared as they are; model folders are evaluated first");
  if (from_files) {
    if (o.base_results.empty() || o.aligned_results.empty())
      throw Error("--base-results and --aligned-results go together", "", "pass both results files");
    return {analysis::read_results(o.base_results, o.include_breakdowns),
            analysis::read_results(o.aligned_results, o.include_breakdowns)};
  }
  if (from_models) {
    // The model-folder variant: load both models, run atax::evaluate(model, select_tasks(o.tasks,
    // find_tasks_dir()), options) on each, and pass the EvalResults through
    // analysis::results_from_eval(). It is wired in with the evaluation commands.
    throw Error("evaluating --base/--aligned model folders here is not available yet", "",
                "evaluate each model with `atax eval ... --out FILE.json`, then run `atax tax --base-results "
                "BASE.json --aligned-results ALIGNED.json`");
  }
  throw Error("nothing to compare", "", "pass --base-results BASE.json --aligned-results ALIGNED.json");
}

std::string output_format(const TaxCmdOptions& o) {
  if (!o.format.empty()) return o.format;
  if (ends_with(o.out, ".csv")) return "csv";
  if (ends_with(o.out, ".json")) return "json";
  return "md";
}

void add_tax(CLI::App& app) {
  auto o = std::make_shared<TaxCmdOptions>();
  auto* sub = app.add_subcommand(
      "tax", "The alignment tax of an aligned model against its base: per benchmark base, aligned, tax% with a "
             "paired-bootstrap interval and a paired test (McNemar for 0/1 scores), the mean capability tax and the "
             "change in safety metrics. Positive tax = worse, negative = improved, for every metric direction");
  sub->add_option("--base-results", o->base_results, "results JSON of the base model (atax eval / lm-eval)")
      ->check(CLI::ExistingFile);
  sub->add_option("--aligned-results", o->aligned_results, "results JSON of the aligned model")
      ->check(CLI::ExistingFile);
  sub->add_option("--base", o->base_dir, "base model folder (evaluated first; see --tasks)");
  sub->add_option("--aligned", o->aligned_dir, "aligned model folder (evaluated first)");
  sub->add_option("--tasks", o->tasks, "tasks to evaluate with --base/--aligned (names, groups or all)")
      ->delimiter(',');
  sub->add_option("--format", o->format, "md | csv | json (default: from --out's extension, else md)")
      ->check(CLI::IsMember({"md", "csv", "json"}));
  sub->add_option("--out", o->out, "write here (atomically) instead of standard output");
  sub->add_option("--resamples", o->resamples, "paired-bootstrap resamples")->check(CLI::Range(1, 10000000))
      ->capture_default_str();
  sub->add_option("--seed", o->seed, "bootstrap and permutation seed")->capture_default_str();
  sub->add_option("--confidence", o->confidence, "interval level")->check(CLI::Range(0.5, 0.9999))
      ->capture_default_str();
  sub->add_option("--safety-tasks", o->safety_tasks, "count these tasks as safety (overrides their group)")
      ->delimiter(',');
  sub->add_option("--capability-tasks", o->capability_tasks, "count these tasks as capability")->delimiter(',');
  sub->add_flag("--include-breakdowns", o->include_breakdowns,
                "also list breakdown tasks (task/part) and per-group metrics (metric/part)");
  add_runtime_options(sub, o->rt);
  sub->callback([o] {
    TaxInputs in = load_tax_inputs(*o);
    analysis::TaxOptions opt;
    opt.resamples = o->resamples;
    opt.seed = o->seed;
    opt.confidence = o->confidence;
    for (const auto& t : o->safety_tasks) opt.categories[t] = analysis::TaskCategory::kSafety;
    for (const auto& t : o->capability_tasks) opt.categories[t] = analysis::TaskCategory::kCapability;
    analysis::TaxTable table = analysis::compute_tax(in.base, in.aligned, opt);
    const std::string fmt_name = output_format(*o);
    std::string text = fmt_name == "csv"    ? analysis::tax_csv(table)
                       : fmt_name == "json" ? analysis::tax_json(table).dump(2) + "\n"
                                            : analysis::tax_markdown(table);
    if (o->out.empty()) {
      std::cout << text;
    } else {
      write_file_atomic(o->out, text);
      log_info(fmt::format("tax table ({} rows) written to {}", table.rows.size(), o->out));
    }
  });
}

ATAX_COMMAND("tax", add_tax);

}  // namespace
}  // namespace atax::cli
