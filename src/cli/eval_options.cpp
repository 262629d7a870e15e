// The evaluating commands' shared options and their one mapping to pipeline::ModelEvalOptions.
#include "cli/eval_options.h"

namespace atax::cli {

void add_eval_options(CLI::App* sub, EvalCliOptions& o, const std::string& what) {
  sub->add_option("--tasks", o.tasks, "comma-separated task names (see `atax tasks list`), all, capability, safety, "
                                      "diagnostic, toy, or paths to task .json files")
      ->delimiter(',');
  sub->add_option("--tasks-dir", o.tasks_dir, "tasks folder (default: $ATAX_TASKS_DIR or the tasks/ of this build)");
  sub->add_option("--data-dir", o.data_dir, "where datasets live (${ATAX_DATA}; relative dataset paths)")
      ->envname("ATAX_DATA");
  sub->add_option("--limit", o.limit, what + "evaluate the first N items of each task (per subject where tasks break "
                                             "down; 0 = all)");
  sub->add_option("--num-fewshot", o.num_fewshot, what + "few-shot examples (default: each task's own)");
  sub->add_option("--batch-size", o.batch_size, what + "requests per model call")->capture_default_str();
  sub->add_option("--max-length", o.max_length, what + "context window in tokens (0 = the model's)")->capture_default_str();
  auto* act = sub->add_option("--apply-chat-template", o.chat_template,
                              what + "prompt through the model's chat template (lm-eval's --apply_chat_template); "
                                     "with NAME, through a built-in format instead: chatml | llama3 | llama2 | plain");
  act->expected(0, 1);
  sub->add_flag("--chat", o.chat, what + "the same as --apply-chat-template without a name");
  sub->add_option("--chat-template", o.chat_template, what + "override the chat format: chatml | llama3 | llama2 | plain");
  sub->add_option("--system-instruction", o.system_instruction,
                  what + "with a chat template: a system turn first (lm-eval's --system_instruction)");
  sub->add_flag("--fewshot-as-multiturn", o.fewshot_as_multiturn,
                what + "with a chat template: each few-shot example as a user/assistant turn pair");
  sub->add_option("--seed", o.seed, "few-shot sampling, generation sampling and bootstrap seed")->capture_default_str();
  sub->add_option("--cache", o.cache, "request cache file (default: $ATAX_CACHE_DIR or ~/.cache/atax/eval_cache.sqlite)");
  sub->add_flag("--no-cache", o.no_cache, "do not read or write the request cache");
  sub->add_option("--bootstrap-iters", o.bootstrap_iters, "resamples for bootstrap standard errors")->capture_default_str();
  sub->add_option("--code-workers", o.code_workers, "parallel sandboxes for code tasks (0 = CPU count)");
  add_runtime_options(sub, o.rt);
  add_weights_option(sub, o.rt);
  // --apply-chat-template without a value turns chat on; CLI11 leaves the string empty then.
  sub->parse_complete_callback([&o, act] {
    if (act->count() > 0) o.chat = true;
  });
}

pipeline::ModelRunOptions model_run_options(const RuntimeOptions& rt, int64_t batch_size, int64_t max_length,
                                            const std::string& chat_template) {
  pipeline::ModelRunOptions r;
  r.device = rt.device;
  r.dtype = rt.dtype;
  r.batch_size = batch_size;
  r.max_length = max_length;
  r.chat_template = chat_template;
  return r;
}

pipeline::ModelEvalOptions model_eval_options(const EvalCliOptions& o) {
  if (o.limit < 0) throw Error("--limit must be >= 0, got " + std::to_string(o.limit), "", "0 evaluates every item");
  if (o.batch_size < 1) throw Error("--batch-size must be >= 1, got " + std::to_string(o.batch_size), "", "e.g. --batch-size 16");
  if (o.max_length < 0) throw Error("--max-length must be >= 0, got " + std::to_string(o.max_length), "", "0 = the model's");
  if (o.num_fewshot < -1) throw Error("--num-fewshot must be >= 0, got " + std::to_string(o.num_fewshot));
  if (o.bootstrap_iters < 1) throw Error("--bootstrap-iters must be >= 1, got " + std::to_string(o.bootstrap_iters));
  if (o.code_workers < 0) throw Error("--code-workers must be >= 0, got " + std::to_string(o.code_workers), "", "0 = CPU count");
  const bool chat = o.chat || !o.chat_template.empty();
  if (!chat && (!o.system_instruction.empty() || o.fewshot_as_multiturn))
    throw Error("--system-instruction and --fewshot-as-multiturn apply to chat prompts", "",
                "add --apply-chat-template (the model's own template) or --apply-chat-template NAME");
  // The weight format reaches pipeline::open_model as the process default: ModelRunOptions has no
  // field for it. The request cache keys on the loaded model's format (HfModel::runtime_settings).
  set_default_weight_format(parse_weight_format(o.rt.weights));
  pipeline::ModelEvalOptions m;
  m.tasks = o.tasks;
  m.tasks_dir = o.tasks_dir.empty() ? find_tasks_dir() : find_tasks_dir(o.tasks_dir);
  m.run = model_run_options(o.rt, o.batch_size, o.max_length, o.chat_template);
  m.eval.limit = o.limit;
  m.eval.num_fewshot = o.num_fewshot;
  m.eval.batch_size = o.batch_size;
  m.eval.chat = chat;
  m.eval.system_instruction = o.system_instruction;
  m.eval.fewshot_as_multiturn = o.fewshot_as_multiturn;
  m.eval.data_dir = o.data_dir;
  m.eval.seed = o.seed;
  m.eval.log_samples = o.log_samples;
  m.eval.bootstrap_iters = o.bootstrap_iters;
  m.eval.code_workers = o.code_workers;
  if (!o.no_cache) m.eval.cache_path = o.cache.empty() ? default_cache_path() : fs::path(o.cache);
  return m;
}

}  // namespace atax::cli
