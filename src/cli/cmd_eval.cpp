// atax eval: runs evaluation tasks (tasks/**/*.json) on a model and writes lm-evaluation-harness-
// like results JSON (and per-item samples with --log-samples). The only eval file that includes
// the model module: the engine itself talks to models through atax::LanguageModel.
// Under `atax launch --nproc N` (or any RANK/WORLD_SIZE launcher) each rank evaluates its shard of
// every task's documents; rank 0 gathers the shards, merges them and writes the one results file.
#include <algorithm>
#include <iostream>

#include <fmt/format.h>

#include "cli/cli.h"
#include "dist/dist.h"
#include "eval/eval.h"
#include "model/model.h"

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
  std::string model, tasks, out, data_dir, tasks_dir, cache, chat_template;
  int64_t limit = 0;
  int num_fewshot = -1;
  int64_t batch_size = 16;
  int64_t max_length = 0;
  bool chat = false, no_cache = false, log_samples = false;
  uint64_t seed = 1234;
  int bootstrap_iters = 1000;
  int code_workers = 0;
  RuntimeOptions rt;
};

void add_eval(CLI::App& app) {
  auto o = std::make_shared<EvalCmdOptions>();
  auto* sub = app.add_subcommand("eval", "Evaluate a model on tasks; write results JSON with standard errors");
  sub->add_option("--model", o->model, "model folder or .gguf file")->required();
  sub->add_option("--tasks", o->tasks, "comma-separated task names (see `atax tasks list`), all, capability, "
                                       "safety, toy, or paths to task .json files")->required();
  sub->add_option("--out", o->out, "results JSON (samples go beside it as <out>.samples.<task>.jsonl)")->required();
  sub->add_option("--limit", o->limit, "evaluate the first N items of each task (per subject where tasks break down)");
  sub->add_option("--num-fewshot", o->num_fewshot, "few-shot examples (default: each task's own)");
  sub->add_option("--batch-size", o->batch_size, "requests per model call")->capture_default_str();
  sub->add_flag("--chat", o->chat, "send prompts through the model's chat template as one user turn");
  sub->add_option("--chat-template", o->chat_template, "override the chat format: chatml | llama3 | llama2 | plain");
  sub->add_option("--data-dir", o->data_dir, "where datasets live (${ATAX_DATA}; relative dataset paths)")
      ->envname("ATAX_DATA");
  sub->add_option("--tasks-dir", o->tasks_dir, "tasks folder (default: $ATAX_TASKS_DIR or the tasks/ of this build)");
  sub->add_option("--seed", o->seed, "few-shot sampling, generation sampling and bootstrap seed")->capture_default_str();
  sub->add_flag("--no-cache", o->no_cache, "do not read or write the request cache");
  sub->add_option("--cache", o->cache, "request cache file (default: $ATAX_CACHE_DIR or ~/.cache/atax/eval_cache.sqlite)");
  sub->add_flag("--log-samples", o->log_samples, "write one JSONL line per item: prompt, response, extracted answer, scores");
  sub->add_option("--max-length", o->max_length, "context window in tokens (0 = the model's)")->capture_default_str();
  sub->add_option("--bootstrap-iters", o->bootstrap_iters, "resamples for bootstrap standard errors")->capture_default_str();
  sub->add_option("--code-workers", o->code_workers, "parallel sandboxes for code tasks (0 = CPU count)");
  add_runtime_options(sub, o->rt);
  add_config_option(sub);
  sub->callback([o] {
    if (o->batch_size < 1) throw Error("--batch-size must be >= 1");
    if (o->limit < 0) throw Error("--limit must be >= 0");
    // Everything a typo can break is checked before the (slow) model load.
    auto specs = select_tasks(split(o->tasks, ','), find_tasks_dir(o->tasks_dir));
    for (const auto& t : specs) {
      fs::path p = resolve_data_path(t.path, o->data_dir);
      if (!fs::exists(p))
        throw Error("task " + t.name + ": data not found", p.string(),
                    o->data_dir.empty() ? "pass --data-dir D (the folder holding " + t.path + ")"
                                        : "is --data-dir the folder holding " + t.path + "?");
    }
    fs::path out(o->out);
    if (out.has_parent_path()) fs::create_directories(out.parent_path());

    configure_threads(o->rt.threads);
    dist::InitOptions di;
    di.threads = o->rt.threads;
    di.device = o->rt.device;
    auto& ctx = dist::init(di);
    LoadOptions lo;
    lo.device = o->rt.device;
    lo.dtype = o->rt.dtype == "bfloat16" ? torch::kBFloat16 : torch::kFloat32;
    InferenceOptions io;
    io.batch_size = o->batch_size;
    io.max_length = o->max_length;
    log_info("loading " + o->model);
    HfModel model(load_model(o->model, lo), io);
    if (!o->chat_template.empty()) model.model().tokenizer->set_chat_format(chat_format_from_name(o->chat_template));

    EvalOptions eo;
    eo.limit = o->limit;
    eo.num_fewshot = o->num_fewshot;
    eo.batch_size = o->batch_size;
    eo.chat = o->chat;
    eo.data_dir = o->data_dir;
    eo.seed = o->seed;
    eo.log_samples = o->log_samples;
    eo.bootstrap_iters = o->bootstrap_iters;
    eo.code_workers = o->code_workers;
    if (!o->no_cache) eo.cache_path = o->cache.empty() ? default_cache_path() : fs::path(o->cache);
    // One SQLite file per rank: ranks never write the same database.
    if (!eo.cache_path.empty()) eo.cache_path = dist::per_rank_path(eo.cache_path);
    eo.shard_index = ctx.rank();
    eo.shard_count = ctx.world_size();
    if (ctx.distributed()) log_info("evaluating shard " + std::to_string(ctx.rank()) + " of " + std::to_string(ctx.world_size()));
    EvalResults part = evaluate(model, specs, eo);

    // Every rank takes part in the gathers, in the same order: results, then each task's samples.
    json gathered = dist::gather_to_main(shard_message(part));
    std::vector<std::vector<json>> samples(part.tasks.size());
    if (o->log_samples)
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
      results.settings["model_path"] = o->model;
      results.settings["device"] = o->rt.device;
      results.settings["dtype"] = o->rt.dtype;
      results.settings["max_length"] = o->max_length;
      results.settings["tasks"] = o->tasks;
      write_results(results, out);
      std::cout << results_markdown(results);
      std::cout << fmt::format("\nwrote {} ({} requests computed, {} answered from the cache, {:.1f} s{}){}\n",
                               out.string(), results.requests_sent, results.requests_cached, results.wall_s,
                               parts.size() > 1 ? fmt::format(", {} ranks", parts.size()) : std::string(),
                               o->log_samples ? "; samples beside it" : "");
    });
    ctx.shutdown();
  });
}

ATAX_COMMAND("eval", add_eval);

}  // namespace
}  // namespace atax::cli
