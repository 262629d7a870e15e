// pipeline: the jobs that tie the modules together. `atax demo` (world → tokenizer → base model →
// aligned variants → sweeps → interpolation → evaluation → tax, tradeoff, report), `atax sweep`
// (a grid of training settings recorded in the run store), and evaluation of model folders for
// `atax tax --base DIR --aligned DIR`. Every artifact is cached by the content hash of its
// settings and inputs, so a second run reuses it and an interrupted one resumes.
#pragma once

#include <functional>
#include <map>
#include <string>
#include <vector>

#include "analysis/analysis.h"
#include "core/core.h"
#include "eval/eval.h"
#include "model/model.h"

namespace atax::pipeline {

// ---------------------------------------------------------------------------------------------
// Content-addressed artifacts
// ---------------------------------------------------------------------------------------------

// A folder per (kind, settings): root/<kind>-<sha256(kind, settings)[:16]>. A step is done when
// its folder holds ".atax_done"; a folder without it is an interrupted step and is rebuilt (the
// training steps resume from their own checkpoints in it).
class ArtifactCache {
 public:
  explicit ArtifactCache(fs::path root) : root_(std::move(root)) {}
  static std::string key_of(const std::string& kind, const json& settings);
  fs::path path_for(const std::string& kind, const json& settings) const;
  bool done(const fs::path& dir) const;
  // Returns the folder, running make(dir) first unless it is done. `label` is shown in progress.
  fs::path get(const std::string& kind, const json& settings, const std::string& label,
               const std::function<void(const fs::path& dir)>& make);
  int64_t hits() const { return hits_; }
  int64_t builds() const { return builds_; }

 private:
  fs::path root_;
  int64_t hits_ = 0, builds_ = 0;
};

// ---------------------------------------------------------------------------------------------
// Evaluation of model folders
// ---------------------------------------------------------------------------------------------

// How a model is loaded and run, the same for every command that evaluates (eval, tax, demo,
// sweep, kl, judge): each of these settings is part of the request cache's key (through
// HfModel::runtime_settings).
struct ModelRunOptions {
  std::string device = "auto";     // auto | cpu | cuda | cuda:N
  std::string dtype = "float32";   // compute dtype: float32 | bfloat16
  int64_t max_length = 0;          // context window in tokens; 0 = the model's
  int64_t batch_size = 16;         // requests per model call
  std::string chat_template;       // "" = the model's own; chatml | llama3 | llama2 | plain override it
};

// Loads `model` (an HF folder or a .gguf file) as `run` says. Fails with Error for a bad setting
// (unknown dtype, non-positive batch size, negative max length) before loading.
HfModel open_model(const fs::path& model, const ModelRunOptions& run);

struct ModelEvalOptions {
  std::vector<std::string> tasks;  // task names, groups, "all" or task .json paths
  fs::path tasks_dir;              // "" = find_tasks_dir()
  ModelRunOptions run;
  EvalOptions eval;                // limit, few-shot, chat, seed, cache, samples, bootstrap, workers, shard
};

// The parts of an "eval" artifact's key (the demo's, the sweep's: the caches above the request
// cache) that say how and on what a model was evaluated. run_settings_json: every field of `run`
// (device, dtype, max_length, batch_size, chat_template). task_identities: each task `opts.tasks`
// selects, in order, as {"name", "version", "sha256" of its task file}, so that editing a task
// file, even without raising its version, makes a new artifact. Fails like select_tasks for an
// unknown task.
json run_settings_json(const ModelRunOptions& run);
json task_identities(const ModelEvalOptions& opts);

// The tasks `opts` names, each with its data present: Error naming the task and the path
// otherwise. Called before any model is loaded, so a typo fails fast.
std::vector<TaskSpec> resolve_tasks(const ModelEvalOptions& opts);

// The one evaluation entry point: loads the model at `model_dir` as `opts.run` says, evaluates it
// on `opts.tasks` with `opts.eval` (its batch size is the run's), and records in the results'
// settings the model path and every runtime setting. Per-item scores are kept.
EvalResults evaluate_model(const fs::path& model_dir, const ModelEvalOptions& opts);

// ---------------------------------------------------------------------------------------------
// The demo
// ---------------------------------------------------------------------------------------------

// The settings of one demo scale: world size, model shape, training and sweep grids.
struct DemoPlan {
  std::string name;         // quick | default
  std::string world_scale;  // quick | default
  int32_t vocab_size = 1024;
  json model;               // config.json for pretraining (vocab_size filled from the tokenizer)
  int64_t seq_len = 256;
  int64_t pretrain_steps = 0, pretrain_batch = 16;
  double pretrain_lr = 3e-3;
  int64_t dpo_epochs = 1, dpo_batch = 16;
  int64_t dpo_max_steps = 0;     // > 0 caps every alignment run
  int64_t eval_limit = 0;        // items per task for the main models (0 = all)
  double dpo_lr = 5e-4, beta = 0.1, lambda_reg = 1.0, nll_weight = 1.0;
  double selective_lr = 2e-4;
  double rpo_alpha = 0;          // + α·NLL of the chosen answers in every alignment run
  std::vector<double> betas, lambdas, interp_ts;
  int n_seeds = 3;
  int64_t sweep_eval_limit = 0;  // items per task for sweep models (0 = all)
  // Choose plain DPO's β among `betas` on the world's dev splits of the harmful and borderline
  // suites (choose_dpo_beta) instead of using `beta`; every run that is not a β sweep point uses it.
  bool select_beta = false;
  json to_json() const;
};

DemoPlan demo_plan(const std::string& scale);

// One candidate β of the demo's selection, scored on the dev splits.
struct BetaTrial {
  double beta = 0;
  double refused = 0;   // share of the dev harmful prompts refused
  double answered = 0;  // share of the dev borderline-benign prompts answered
};
// The design's aim, refusing at least `min_refused` of harmful prompts while answering the most
// legitimate ones: the trial with the most answered among those that refuse enough (ties: more
// refused, then the smaller β); when none does, the one that refuses most (ties: more answered).
double choose_dpo_beta(const std::vector<BetaTrial>& trials, double min_refused = 0.9);

struct DemoOptions {
  std::string scale = "default";
  fs::path out = "out/demo";
  uint64_t seed = 1234;
  int seeds = 0;          // 0 = the plan's
  int threads = 0;
  std::string device = "auto";
  fs::path tasks_dir;     // "" = find_tasks_dir()
};

struct DemoResult {
  fs::path report_dir;
  json summary;  // the numbers the demo printed (validity, headline, tradeoff, ...)
  double seconds = 0;
};

DemoResult run_demo(const DemoOptions& opts);

// ---------------------------------------------------------------------------------------------
// Sweeps
// ---------------------------------------------------------------------------------------------

// sweep.json: {"base": DIR, "data": prefs.jsonl, "world": DIR (data dir for tasks), "tasks": [...],
// "out": DIR, "store": runs.sqlite, "tasks_dir": DIR, "defaults": {grid keys and max_steps, epochs,
// batch_size, grad_accum, max_length, weight_decay, warmup_ratio, schedule}, "grid": {"beta": [...],
// "lambda_reg": [...], "selective": [false, true], "nll_weight": [...], "curriculum": [...],
// "interp_t": [...], "lr", "loss_type", "seed", "label_smoothing", "lora_rank"}, "eval_limit": N}
// (examples/sweep.json). Relative paths are relative to the current folder. Each grid point is
// trained (or merged) and evaluated once (cached by content), and recorded in the run store; a
// killed sweep resumes. Error naming the file for a missing field or an unknown key.
struct SweepSummary {
  int64_t runs = 0, reused = 0, trained = 0, failed = 0;
  fs::path store;
};
SweepSummary run_sweep(const fs::path& config_file);

}  // namespace atax::pipeline
