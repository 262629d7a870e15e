// The "eval" artifact key's description of a model evaluation: runtime settings and task identities.
#include "pipeline/pipeline.h"

namespace atax::pipeline {

json run_settings_json(const ModelRunOptions& run) {
  json j = {{"device", run.device},
            {"dtype", run.dtype},
            {"batch_size", run.batch_size},
            {"max_length", run.max_length},
            {"chat_template", run.chat_template}};
  // The weights' storage format is a process-wide setting (--weights, ATAX_WEIGHTS) that every
  // model opened here takes; named only when not float32, so float32 keys stay as they were.
  if (default_weight_format() != WeightFormat::kF32) j["weights"] = weight_format_name(default_weight_format());
  return j;
}

json task_identities(const ModelEvalOptions& opts) {
  json out = json::array();
  for (const TaskSpec& t : select_tasks(opts.tasks, opts.tasks_dir.empty() ? find_tasks_dir() : opts.tasks_dir))
    out.push_back({{"name", t.name}, {"version", t.version}, {"sha256", sha256_file(t.file)}});
  return out;
}

}  // namespace atax::pipeline
