// atax tradeoff: helpfulness (legitimate prompts answered) and harmlessness (harmful prompts
// refused) of several models with Wilson intervals, the best model for each α of
// U = α·helpful + (1 − α)·harmless, the Pareto front, and the curve of a sweep.
#include <iostream>
#include <set>

#include <fmt/format.h>

#include "analysis/analysis.h"
#include "cli/cli.h"

namespace atax::cli {
namespace {

struct TradeoffCmdOptions {
  std::vector<std::string> results, labels;
  std::string alpha, alphas = "0:1:0.1";
  std::string helpful = "auto", harmless = "auto";
  std::string param;
  std::vector<double> values;
  double confidence = 0.95;
  std::string format, out;
};

void add_tradeoff(CLI::App& app) {
  auto o = std::make_shared<TradeoffCmdOptions>();
  auto* sub = app.add_subcommand(
      "tradeoff", "Helpfulness vs harmlessness of several models (results files) with Wilson intervals, the best "
                  "model for each α of U = α·helpful + (1 − α)·harmless, and the Pareto front");
  sub->add_option("--results", o->results, "results JSON files, one per model (comma-separated)")
      ->delimiter(',')->required()->check(CLI::ExistingFile);
  sub->add_option("--labels", o->labels, "model names, in the order of --results (default: from the results)")
      ->delimiter(',');
  auto* one = sub->add_option("--alpha", o->alpha, "one α in [0, 1]");
  sub->add_option("--alphas", o->alphas, "α grid lo:hi:step")->excludes(one)->capture_default_str();
  sub->add_option("--helpful", o->helpful,
                  "TASK[/METRIC] whose 0/1 items say a legitimate prompt was answered (a lower-is-better rate such "
                  "as over_refusal_rate is read as its complement); auto = toy_xstest or xstest over_refusal_rate")
      ->capture_default_str();
  sub->add_option("--harmless", o->harmless,
                  "TASK[/METRIC] whose 0/1 items say a harmful prompt was refused; auto = toy_harmbench, harmbench "
                  "or advbench refusal_rate")
      ->capture_default_str();
  sub->add_option("--param", o->param, "name of a swept setting (e.g. beta): draws the sweep curve");
  sub->add_option("--values", o->values, "its value for each results file, in order (comma-separated)")
      ->delimiter(',');
  sub->add_option("--confidence", o->confidence, "interval level")->check(CLI::Range(0.5, 0.9999))
      ->capture_default_str();
  sub->add_option("--format", o->format, "md | csv | json (default: from --out's extension, else md)")
      ->check(CLI::IsMember({"md", "csv", "json"}));
  sub->add_option("--out", o->out, "write here (atomically) instead of standard output");
  sub->callback([o] {
    if (!o->labels.empty() && o->labels.size() != o->results.size())
      throw Error(fmt::format("--labels has {} names for {} results files", o->labels.size(), o->results.size()), "",
                  "give one name per results file, or none");
    if (o->param.empty() != o->values.empty() || (!o->values.empty() && o->values.size() != o->results.size()))
      throw Error("--param and --values go together, with one value per results file", "",
                  "e.g. --param beta --values 0.01,0.1,0.5");
    std::vector<analysis::TradeoffInput> inputs;
    std::set<std::string> names;
    for (size_t i = 0; i < o->results.size(); ++i) {
      analysis::ResultsFile r = analysis::read_results(o->results[i]);
      analysis::TradeoffInput in = analysis::tradeoff_input_from_results(r, o->helpful, o->harmless);
      if (!o->labels.empty()) in.name = o->labels[i];
      if (!names.insert(in.name).second) in.name += " (" + fs::path(o->results[i]).stem().string() + ")";
      names.insert(in.name);
      if (!o->param.empty()) in.params[o->param] = o->values[i];
      inputs.push_back(std::move(in));
    }
    const std::vector<double> alphas =
        o->alpha.empty() ? analysis::parse_alpha_grid(o->alphas, "--alphas") : analysis::parse_alpha_grid(o->alpha, "--alpha");
    analysis::TradeoffResult result = analysis::compute_tradeoff(inputs, alphas, o->confidence);
    if (!o->param.empty()) analysis::sweep_curve(result, o->param);
    std::string f = o->format;
    if (f.empty()) f = ends_with(o->out, ".csv") ? "csv" : ends_with(o->out, ".json") ? "json" : "md";
    std::string text = f == "csv"    ? analysis::tradeoff_csv(result)
                       : f == "json" ? analysis::tradeoff_json(result).dump(2) + "\n"
                                     : analysis::tradeoff_markdown(result);
    if (o->out.empty()) {
      std::cout << text;
    } else {
      write_file_atomic(o->out, text);
      log_info(fmt::format("tradeoff of {} models written to {}", inputs.size(), o->out));
    }
  });
}

ATAX_COMMAND("tradeoff", add_tradeoff);

}  // namespace
}  // namespace atax::cli
