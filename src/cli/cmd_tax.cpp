// atax tax: the alignment-tax table of an aligned model against its base — per benchmark and
// metric: base, aligned, tax% with a paired-bootstrap interval and a paired significance test,
// the mean capability tax and the change in safety metrics — as Markdown, CSV or JSON. Compares
// two results files, or evaluates two model folders first (--base/--aligned) and keeps their
// results files. States how each side was prompted (plain or which chat template, system
// instruction, few-shot as turns) and warns when the two differ.
#include <iostream>

#include <fmt/format.h>

#include "analysis/analysis.h"
#include "cli/cli.h"
#include "cli/eval_options.h"
#include "model/model.h"
#include "pipeline/pipeline.h"

namespace atax::cli {
namespace {

struct TaxCmdOptions {
  // From two results files (what `atax eval` writes, or lm-eval's layout with --log-samples).
  std::string base_results, aligned_results;
  // From two model folders: evaluates both first (see load_tax_inputs).
  std::string base_dir, aligned_dir;
  EvalCliOptions eval;  // how both folders are evaluated: the options of `atax eval`
  std::string format, out;
  int resamples = 2000;
  double confidence = 0.95;
  std::vector<std::string> safety_tasks, capability_tasks;
  bool include_breakdowns = false;
};

struct TaxInputs {
  analysis::ResultsFile base, aligned;
};

// Where the model-folder variant keeps its results: OUT/base.json, OUT/aligned.json (samples
// beside them) and the table as OUT/tax.<md|csv|json>.
fs::path results_dir(const TaxCmdOptions& o) { return fs::path(o.out); }

// The model-folder variant: evaluates --base and --aligned on the same tasks and items (one
// request cache), writes both results files atomically, and reads them back, so the table is
// exactly the one `--base-results OUT/base.json --aligned-results OUT/aligned.json` gives.
TaxInputs evaluate_both(const TaxCmdOptions& o) {
  if (o.base_dir.empty() || o.aligned_dir.empty())
    throw Error("--base and --aligned go together", "", "pass both model folders");
  if (o.eval.tasks.empty())
    throw Error("--base/--aligned need --tasks", "", "e.g. --tasks toy_knowledge,toy_math (see `atax tasks list`)");
  if (o.out.empty())
    throw Error("--base/--aligned need --out DIR", "",
                "the results of both models are saved there as base.json and aligned.json");
  const fs::path dir = results_dir(o);
  if (fs::exists(dir) && !fs::is_directory(dir))
    throw Error("--out must be a folder with --base/--aligned, but it is a file", dir.string(),
                "pass a folder; base.json, aligned.json and the table are written into it");
  for (const auto& [flag, path] : {std::pair<std::string, std::string>{"--base", o.base_dir}, {"--aligned", o.aligned_dir}})
    if (!fs::exists(path))
      throw Error(flag + ": no such model folder or file", path, "pass an HF model folder or a .gguf file");
  // The same mapping and entry point as `atax eval`; everything a typo can break is checked before
  // the (slow) model loads.
  pipeline::ModelEvalOptions mo = model_eval_options(o.eval);
  mo.eval.log_samples = true;
  pipeline::resolve_tasks(mo);
  configure_threads(o.eval.rt.threads);
  fs::create_directories(dir);
  for (const auto& [name, model] : {std::pair<std::string, std::string>{"base", o.base_dir}, {"aligned", o.aligned_dir}}) {
    log_info("evaluating the " + name + " model " + model);
    EvalResults r = pipeline::evaluate_model(model, mo);
    write_results(r, dir / (name + ".json"));
    log_info(fmt::format("{} results written to {} ({} requests computed, {} from the cache)", name,
                         (dir / (name + ".json")).string(), r.requests_sent, r.requests_cached));
  }
  return {analysis::read_results(dir / "base.json", o.include_breakdowns),
          analysis::read_results(dir / "aligned.json", o.include_breakdowns)};
}

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
  if (from_models) return evaluate_both(o);
  throw Error("nothing to compare", "", "pass --base-results BASE.json --aligned-results ALIGNED.json");
}

bool evaluates_models(const TaxCmdOptions& o) { return !o.base_dir.empty() || !o.aligned_dir.empty(); }

std::string output_format(const TaxCmdOptions& o) {
  if (!o.format.empty()) return o.format;
  if (evaluates_models(o)) return "md";  // --out is the results folder
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
  sub->add_option("--base", o->base_dir, "base model folder (evaluated first, with --tasks and --out DIR)");
  sub->add_option("--aligned", o->aligned_dir, "aligned model folder (evaluated first)");
  add_eval_options(sub, o->eval, "with --base/--aligned: ");
  sub->add_option("--format", o->format, "md | csv | json (default: from --out's extension, else md)")
      ->check(CLI::IsMember({"md", "csv", "json"}));
  sub->add_option("--out", o->out, "write the table here (atomically) instead of standard output; with "
                                   "--base/--aligned a folder for base.json, aligned.json and tax.<format>");
  sub->add_option("--resamples", o->resamples, "paired-bootstrap resamples")->check(CLI::Range(1, 10000000))
      ->capture_default_str();
  sub->add_option("--confidence", o->confidence, "interval level")->check(CLI::Range(0.5, 0.9999))
      ->capture_default_str();
  sub->add_option("--safety-tasks", o->safety_tasks, "count these tasks as safety (overrides their group)")
      ->delimiter(',');
  sub->add_option("--capability-tasks", o->capability_tasks, "count these tasks as capability")->delimiter(',');
  sub->add_flag("--include-breakdowns", o->include_breakdowns,
                "also list breakdown tasks (task/part) and per-group metrics (metric/part)");
  sub->callback([o] {
    TaxInputs in = load_tax_inputs(*o);
    analysis::TaxOptions opt;
    opt.resamples = o->resamples;
    opt.seed = o->eval.seed;  // --seed: the bootstrap and permutation seed (and the evaluation's, with --base/--aligned)
    opt.confidence = o->confidence;
    for (const auto& t : o->safety_tasks) opt.categories[t] = analysis::TaskCategory::kSafety;
    for (const auto& t : o->capability_tasks) opt.categories[t] = analysis::TaskCategory::kCapability;
    analysis::TaxTable table = analysis::compute_tax(in.base, in.aligned, opt);
    // Each side's prompt format is in every table; a difference is also said here, whatever the format.
    if (!table.prompt_warning.empty()) std::cerr << "atax: warning: " << table.prompt_warning << "\n";
    const std::string fmt_name = output_format(*o);
    std::string text = fmt_name == "csv"    ? analysis::tax_csv(table)
                       : fmt_name == "json" ? analysis::tax_json(table).dump(2) + "\n"
                                            : analysis::tax_markdown(table);
    if (evaluates_models(*o)) {
      std::cout << text;
      const fs::path table_file = results_dir(*o) / ("tax." + fmt_name);
      write_file_atomic(table_file, text);
      log_info(fmt::format("tax table ({} rows) written to {}", table.rows.size(), table_file.string()));
    } else if (o->out.empty()) {
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
