// The options every evaluating command shares (eval, tax), and the one mapping from the command
// line to the pipeline's runtime and evaluation settings (pipeline::ModelEvalOptions), so that
// `atax eval` and `atax tax --base/--aligned` evaluate a model folder identically.
#pragma once

#include <string>
#include <vector>

#include "cli/cli.h"
#include "pipeline/pipeline.h"

namespace atax::cli {

struct EvalCliOptions {
  std::vector<std::string> tasks;
  std::string tasks_dir, data_dir, cache;
  bool no_cache = false, log_samples = false;
  int64_t limit = 0;
  int num_fewshot = -1;
  int64_t batch_size = 16;
  int64_t max_length = 0;
  bool chat = false;                    // --apply-chat-template (also --chat)
  std::string chat_template;            // --apply-chat-template NAME / --chat-template NAME: a built-in format
  std::string system_instruction;
  bool fewshot_as_multiturn = false;
  uint64_t seed = 1234;
  int bootstrap_iters = 1000;
  int code_workers = 0;
  RuntimeOptions rt;
};

// Adds --tasks, --tasks-dir, --data-dir, --limit, --num-fewshot, --batch-size, --max-length,
// --apply-chat-template [NAME] (alias --chat), --chat-template, --system-instruction,
// --fewshot-as-multiturn, --seed, --cache, --no-cache, --bootstrap-iters, --code-workers and the
// runtime options (--device, --threads, --dtype). `what` prefixes help texts ("with --base/--aligned: ").
void add_eval_options(CLI::App* sub, EvalCliOptions& o, const std::string& what = {});

// The runtime settings the command line gives (device, dtype, max length, batch size, chat template),
// for pipeline::open_model: the one mapping that eval, tax, kl and judge --judge-model share.
pipeline::ModelRunOptions model_run_options(const RuntimeOptions& rt, int64_t batch_size = 16, int64_t max_length = 0,
                                            const std::string& chat_template = {});

// The command line -> the one evaluation entry point's settings. Fails with Error for a value out
// of range (negative --limit, --batch-size < 1, --system-instruction without a chat template, ...).
pipeline::ModelEvalOptions model_eval_options(const EvalCliOptions& o);

}  // namespace atax::cli
