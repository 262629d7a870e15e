// atax eval: runs evaluation tasks (tasks/**/*.json) on a model and writes lm-evaluation-harness-
// like results JSON (and per-item samples with --log-samples). The only eval file that includes
// the model module: the engine itself talks to models through atax::LanguageModel.
// Under `atax launch --nproc N` (or any RANK/WORLD_SIZE launcher) each rank evaluates its shard of
// every task's documents; rank 0 gathers the shards, merges them and writes the one results file.
#include <algorithm>
#include <iostream>

#include <fmt/format.h>

#include "cli/cli.h"
#include "cli/eval_options.h"
#include "dist/dist.h"
#include "eval/eval.h"
#include "model/model.h"
#include "pipeline/pipeline.h"

namespace atax::cli {
namespace {

// A shard's results for the gather: the results document (item scores included), the order of its
// tasks and metrics (JSON objects are sorted by key; the printed table keeps evaluation order).
json shard_message(const EvalResults& part) {
  json order = json::array();
  for (const auto& t : part.tasks) {
    json keys = json::array();
    for (const auto& m : t.metrics) keys.push_back(m.key());
    order.push_back({{"task", t.task}, {"metrics", keys}});
  }
  return {{"results", results_to_json(part)}, {"order", order}};
}

EvalResults shard_from_message(const json& msg, int rank) {
  EvalResults r = results_from_json(msg.at("results"), "results of rank " + std::to_string(rank));
  std::vector<TaskResult> tasks;
  for (const json& o : msg.at("order")) {
    auto it = std::find_if(r.tasks.begin(), r.tasks.end(), [&](const TaskResult& t) { return t.task == o.at("task"); });
    if (it == r.tasks.end()) continue;
    std::vector<MetricResult> metrics;
    for (const json& k : o.at("metrics"))
      for (auto& m : it->metrics)
        if (m.key() == k.get<std::string>()) metrics.push_back(std::move(m));
    it->metrics = std::move(metrics);
    tasks.push_back(std::move(*it));
  }
  r.tasks = std::move(tasks);
  return r;
}

struct EvalCmdOptions {
  std::string model, out, config_file;
  EvalCliOptions eval;
};

void add_eval(CLI::App& app) {
  auto o = std::make_shared<EvalCmdOptions>();
  auto* sub = app.add_subcommand("eval", "Evaluate a model on tasks; write results JSON with standard errors");
  // --model, --out and --tasks are required, from the command line or the --config file.
  sub->add_option("--model", o->model, "model folder or .gguf file (required)");
  sub->add_option("--out", o->out, "results JSON (required; samples go beside it as <out>.samples.<task>.jsonl)");
  add_eval_options(sub, o->eval);
  sub->add_flag("--log-samples", o->eval.log_samples,
                "write one JSONL line per item: prompt, response, extracted answer, scores");
  sub->add_option("--config", o->config_file, "read options from a config file (TOML/INI key = value)");
  sub->callback([o, sub] {
    apply_subcommand_config(sub, o->config_file, {"model", "out", "tasks"});
    pipeline::ModelEvalOptions mo = model_eval_options(o->eval);
    pipeline::resolve_tasks(mo);  // everything a typo can break is checked before the (slow) model load
    fs::path out(o->out);
    if (out.has_parent_path()) fs::create_directories(out.parent_path());

    configure_threads(o->eval.rt.threads);
    dist::InitOptions di;
    di.threads = o->eval.rt.threads;
    di.device = o->eval.rt.device;
    auto& ctx = dist::init(di);
    // One SQLite file per rank: ranks never write the same database.
    if (!mo.eval.cache_path.empty()) mo.eval.cache_path = dist::per_rank_path(mo.eval.cache_path);
    mo.eval.shard_index = ctx.rank();
    mo.eval.shard_count = ctx.world_size();
    if (ctx.distributed()) log_info("evaluating shard " + std::to_string(ctx.rank()) + " of " + std::to_string(ctx.world_size()));
    log_info("loading " + o->model);
    EvalResults part = pipeline::evaluate_model(o->model, mo);

    // Every rank takes part in the gathers, in the same order: results, then each task's samples.
    json gathered = dist::gather_to_main(shard_message(part));
    std::vector<std::vector<json>> samples(part.tasks.size());
    if (mo.eval.log_samples)
      for (size_t i = 0; i < part.tasks.size(); ++i)
        if (part.tasks[i].parent.empty()) samples[i] = dist::gather_lists_to_main(part.tasks[i].samples);
    ctx.on_main("write results", [&] {
      std::vector<EvalResults> parts;
      for (size_t r = 0; r < gathered.size(); ++r) parts.push_back(shard_from_message(gathered[r], static_cast<int>(r)));
      EvalResults results = merge_shards(parts);
      for (size_t i = 0; i < part.tasks.size(); ++i)
        if (!samples[i].empty())
          for (auto& t : results.tasks)
            if (t.task == part.tasks[i].task) t.samples = std::move(samples[i]);
      write_results(results, out);
      std::cout << results_markdown(results);
      std::cout << fmt::format("\nwrote {} ({} requests computed, {} answered from the cache, {:.1f} s{}){}\n",
                               out.string(), results.requests_sent, results.requests_cached, results.wall_s,
                               parts.size() > 1 ? fmt::format(", {} ranks", parts.size()) : std::string(),
                               mo.eval.log_samples ? "; samples beside it" : "");
    });
    ctx.shutdown();
  });
}

ATAX_COMMAND("eval", add_eval);

}  // namespace
}  // namespace atax::cli
