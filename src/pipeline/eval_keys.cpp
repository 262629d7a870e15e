// The "eval" artifact key's description of a model evaluation: runtime settings and task identities.
#include "pipeline/pipeline.h"

namespace atax::pipeline {

json run_settings_json(const ModelRunOptions& run) {
  return {{"device", run.device},
          {"dtype", run.dtype},
          {"batch_size", run.batch_size},
          {"max_length", run.max_length},
          {"chat_template", run.chat_template}};
}

json task_identities(const ModelEvalOptions& opts) {
  json out = json::array();
  for (const TaskSpec& t : select_tasks(opts.tasks, opts.tasks_dir.empty() ? find_tasks_dir() : opts.tasks_dir))
    out.push_back({{"name", t.name}, {"version", t.version}, {"sha256", sha256_file(t.file)}});
  return out;
}

}  // namespace atax::pipeline
