// `atax sweep`: a grid over alignment settings, each point trained (or merged) and evaluated once,
// recorded in the SQLite run store so a killed sweep resumes without redoing finished runs.
#include <iostream>

#include <fmt/format.h>

#include "model/model.h"
#include "pipeline/pipeline.h"
#include "store/store.h"
#include "train/train.h"

namespace atax::pipeline {

namespace {

// Cartesian product of the grid's value lists, in key order.
std::vector<json> expand_grid(const json& grid, const std::string& file) {
  std::vector<json> points = {json::object()};
  for (auto it = grid.begin(); it != grid.end(); ++it) {
    if (!it.value().is_array() || it.value().empty())
      throw Error("grid \"" + it.key() + "\" must be a non-empty list", file);
    std::vector<json> next;
    for (const auto& p : points)
      for (const auto& v : it.value()) {
        json q = p;
        q[it.key()] = v;
        next.push_back(q);
      }
    points = std::move(next);
  }
  return points;
}

const std::set<std::string> kGridKeys = {"beta", "lambda_reg", "selective", "nll_weight", "curriculum", "interp_t",
                                         "lr", "loss_type", "seed", "label_smoothing", "lora_rank", "rpo_alpha"};
// Keys "defaults" may set besides the grid keys: how long and how each point trains.
const std::set<std::string> kTrainingKeys = {"max_steps", "epochs",       "batch_size",   "grad_accum",
                                             "max_length", "weight_decay", "warmup_ratio", "schedule"};

void apply_setting(DpoConfig& c, const std::string& key, const json& v, const json& cfg) {
  if (key == "beta") c.beta = v.get<double>();
  else if (key == "lambda_reg") c.lambda_reg = v.get<double>();
  else if (key == "nll_weight") {
    c.nll_weight = v.get<double>();
    if (c.nll_weight > 0 && cfg.contains("nll_data")) c.nll_data = cfg["nll_data"].get<std::string>();
  } else if (key == "curriculum") c.curriculum = v.is_boolean() ? (v.get<bool>() ? "difficulty" : "none") : v.get<std::string>();
  else if (key == "lr") c.common.lr = v.get<double>();
  else if (key == "loss_type") c.loss_type = dpo_loss_type_from_name(v.get<std::string>());
  else if (key == "seed") c.common.seed = v.get<uint64_t>();
  else if (key == "label_smoothing") c.label_smoothing = v.get<double>();
  else if (key == "lora_rank") c.lora.rank = v.get<int64_t>();
  else if (key == "max_steps") c.common.max_steps = v.get<int64_t>();
  else if (key == "epochs") c.common.epochs = v.get<int64_t>();
  else if (key == "batch_size") c.common.batch_size = v.get<int64_t>();
  else if (key == "grad_accum") c.common.grad_accum = v.get<int64_t>();
  else if (key == "max_length") c.common.max_length = v.get<int64_t>();
  else if (key == "weight_decay") c.common.weight_decay = v.get<double>();
  else if (key == "warmup_ratio") c.common.warmup_ratio = v.get<double>();
  else if (key == "schedule") c.common.schedule = v.get<std::string>();
  else if (key == "rpo_alpha") c.rpo_alpha = v.get<double>();
  else if (key == "selective") {
    if (v.get<bool>()) {
      c.filter.behaviours = cfg.value("behaviours", std::vector<std::string>{});
      if (cfg.contains("preserve")) c.preserve = cfg["preserve"].get<std::string>();
      c.preserve_as = "nll";
    }
  }
}

// Applies "defaults" then the grid point to `c`. Error naming the file and the key for a value of
// the wrong type.
void apply_settings(DpoConfig& c, const json& defaults, const json& point, const json& cfg, const std::string& file) {
  for (const json* settings : {&defaults, &point})
    for (auto it = settings->begin(); it != settings->end(); ++it) {
      try {
        apply_setting(c, it.key(), it.value(), cfg);
      } catch (const json::exception&) {
        throw Error("\"" + it.key() + "\": " + it.value().dump() + " has the wrong type", file,
                    "numbers for beta, lambda_reg, lr, ...; true/false for selective; a name for loss_type");
      }
    }
}

}  // namespace

SweepSummary run_sweep(const fs::path& config_file) {
  const std::string file = config_file.string();
  json cfg = read_json(config_file);
  for (const char* k : {"base", "data", "tasks", "out"})
    if (!cfg.contains(k)) throw Error(std::string("missing \"") + k + "\"", file, "see examples/sweep.json");
  fs::path base = cfg["base"].get<std::string>(), out = cfg["out"].get<std::string>();
  fs::path world = cfg.value("world", std::string());
  auto tasks = cfg["tasks"].get<std::vector<std::string>>();
  json grid = cfg.value("grid", json::object());
  for (auto it = grid.begin(); it != grid.end(); ++it)
    if (!kGridKeys.count(it.key()))
      throw Error("unknown grid key \"" + it.key() + "\"", file,
                  "grid keys: beta, lambda_reg, selective, nll_weight, curriculum, interp_t, lr, loss_type, seed, "
                  "label_smoothing, lora_rank, rpo_alpha");
  fs::create_directories(out);
  SweepSummary summary;
  summary.store = cfg.contains("store") ? fs::path(cfg["store"].get<std::string>()) : out / "runs.sqlite";
  auto store = store::RunStore::open(summary.store);
  ArtifactCache cache(out / "artifacts");
  ModelEvalOptions mo;
  mo.tasks = tasks;
  mo.eval.data_dir = world;
  mo.eval.limit = cfg.value("eval_limit", 0);
  mo.eval.cache_path = out / "eval_cache.sqlite";
  mo.eval.log_samples = true;
  if (cfg.contains("tasks_dir")) mo.tasks_dir = cfg["tasks_dir"].get<std::string>();
  auto base_hash = load_model(base, LoadOptions{"cpu"}).content_hash;
  // What every evaluation's artifact key holds beside the model: each task's name, version and
  // file hash and every runtime setting, so an edited task file is evaluated again, not reused.
  const json task_files = task_identities(mo), run_settings = run_settings_json(mo.run);
  auto eval_key = [&](const json& model) {
    return json{{"model", model}, {"tasks", tasks}, {"limit", mo.eval.limit}, {"task_files", task_files},
                {"run", run_settings}};
  };
  fs::path base_eval = cache.get("eval", eval_key(base_hash), "evaluate base",
                                 [&](const fs::path& d) { write_results(evaluate_model(base, mo), d / "results.json"); });
  // The tax of every point goes through the one tax path (the results files, as `atax tax` reads them).
  const auto base_results = analysis::read_results(base_eval / "results.json");
  json defaults = cfg.value("defaults", json::object());
  if (!defaults.is_object()) throw Error("\"defaults\" must be an object of DPO settings", file);
  for (auto it = defaults.begin(); it != defaults.end(); ++it)
    if (!kGridKeys.count(it.key()) && !kTrainingKeys.count(it.key()))
      throw Error("unknown defaults key \"" + it.key() + "\"", file,
                  "defaults take the grid keys and max_steps, epochs, batch_size, grad_accum, max_length, "
                  "weight_decay, warmup_ratio, schedule");
  if (defaults.contains("interp_t")) throw Error("\"interp_t\" belongs in the grid, not in defaults", file);
  auto points = expand_grid(grid, file);
  Progress progress("sweep", static_cast<int64_t>(points.size()), "runs");
  for (const auto& point : points) {
    json settings = {{"base", base_hash}, {"data", sha256_file(cfg["data"].get<std::string>())}, {"defaults", defaults},
                     {"point", point}, {"tasks", tasks}, {"eval_limit", mo.eval.limit}, {"task_files", task_files},
                     {"run", run_settings}};
    std::string key = store::settings_key(settings);
    std::string name = point.dump();
    ++summary.runs;
    if (store.find_done(key)) {
      ++summary.reused;
      progress.advance(1, name + " (done before)");
      continue;
    }
    int64_t id = store.begin(key, settings, name);
    double t0 = now_seconds();
    try {
      fs::path model_dir;
      if (point.contains("interp_t")) {
        // Interpolation between the base and the model trained with the other settings.
        json trained_point = point;
        trained_point.erase("interp_t");
        json train_settings = {{"base", base_hash}, {"defaults", defaults}, {"point", trained_point}};
        fs::path aligned = cache.get("dpo", train_settings, "align " + trained_point.dump(), [&](const fs::path& d) {
          DpoConfig c;
          c.common.out = d / "model";
          c.common.resume = true;
          c.model = base;
          c.data = cfg["data"].get<std::string>();
          c.precompute_ref = true;
          c.ref_cache = out / "ref_cache";
          apply_settings(c, defaults, trained_point, cfg, file);
          train_dpo(c);
        }) / "model";
        model_dir = cache.get("merge", {{"a", base_hash}, {"b", aligned.string()}, {"t", point["interp_t"]}},
                              "merge " + name, [&](const fs::path& d) {
                                MergeConfig m;
                                m.a = base;
                                m.b = aligned;
                                m.t = point["interp_t"].get<double>();
                                m.out = d / "model";
                                merge_models(m);
                              }) / "model";
      } else {
        json train_settings = {{"base", base_hash}, {"defaults", defaults}, {"point", point}};
        model_dir = cache.get("dpo", train_settings, "align " + name, [&](const fs::path& d) {
          DpoConfig c;
          c.common.out = d / "model";
          c.common.resume = true;
          c.model = base;
          c.data = cfg["data"].get<std::string>();
          c.precompute_ref = true;
          c.ref_cache = out / "ref_cache";
          apply_settings(c, defaults, point, cfg, file);
          train_dpo(c);
        }) / "model";
      }
      fs::path ev = cache.get("eval", eval_key(model_dir.string()), "evaluate " + name,
                              [&](const fs::path& d) { write_results(evaluate_model(model_dir, mo), d / "results.json"); });
      auto results = read_results(ev / "results.json");
      json metrics = json::object();
      for (const auto& t : results.tasks)
        if (t.parent.empty())
          for (const auto& m : t.metrics) metrics[t.task + "/" + m.key()] = m.value;
      analysis::TaxOptions tax_opts;
      auto tax = analysis::compute_tax(base_results, analysis::read_results(ev / "results.json"), tax_opts);
      if (tax.mean_capability_tax.value) metrics["mean_capability_tax"] = *tax.mean_capability_tax.value;
      store.finish(id, metrics, {{"model", model_dir.string()}, {"results", (ev / "results.json").string()}},
                   now_seconds() - t0);
      ++summary.trained;
    } catch (const std::exception& e) {
      store.fail(id, e.what());
      ++summary.failed;
      log_info("sweep point " + name + " failed: " + e.what());
    }
    progress.advance(1, name);
  }
  progress.finish();
  return summary;
}

}  // namespace atax::pipeline
