// Content-addressed artifact folders and model evaluation helpers.
#include <fmt/format.h>

#include "model/model.h"
#include "pipeline/pipeline.h"

namespace atax::pipeline {

std::string ArtifactCache::key_of(const std::string& kind, const json& settings) {
  return sha256_hex(kind + "\n" + settings.dump()).substr(0, 16);
}

fs::path ArtifactCache::path_for(const std::string& kind, const json& settings) const {
  return root_ / (kind + "-" + key_of(kind, settings));
}

bool ArtifactCache::done(const fs::path& dir) const { return fs::exists(dir / ".atax_done"); }

fs::path ArtifactCache::get(const std::string& kind, const json& settings, const std::string& label,
                            const std::function<void(const fs::path& dir)>& make) {
  fs::path dir = path_for(kind, settings);
  if (done(dir)) {
    ++hits_;
    log_info(fmt::format("{}: cached ({})", label, dir.string()));
    return dir;
  }
  fs::create_directories(dir);
  write_json_atomic(dir / "atax_step.json", {{"kind", kind}, {"settings", settings}});
  double t0 = now_seconds();
  log_info(fmt::format("{}: running → {}", label, dir.string()));
  make(dir);
  double secs = now_seconds() - t0;
  write_json_atomic(dir / ".atax_done", {{"kind", kind}, {"seconds", secs}, {"finished", iso_datetime_utc()}});
  log_info(fmt::format("{}: done in {:.1f}s", label, secs));
  ++builds_;
  return dir;
}

HfModel open_model(const fs::path& model, const ModelRunOptions& run) {
  if (run.batch_size < 1) throw Error("--batch-size must be >= 1, got " + std::to_string(run.batch_size), "", "e.g. --batch-size 16");
  if (run.max_length < 0) throw Error("--max-length must be >= 0, got " + std::to_string(run.max_length), "",
                                      "0 uses the model's own context window");
  LoadOptions lo;
  lo.device = run.device;
  if (run.dtype == "float32") lo.dtype = torch::kFloat32;
  else if (run.dtype == "bfloat16") lo.dtype = torch::kBFloat16;
  else throw Error("unknown --dtype \"" + run.dtype + "\"", "", "use float32 or bfloat16");
  std::optional<ChatFormat> override_format;
  if (!run.chat_template.empty()) override_format = chat_format_from_name(run.chat_template);
  InferenceOptions io;
  io.batch_size = run.batch_size;
  io.max_length = run.max_length;
  LoadedModel lm = load_model(model, lo);
  if (override_format && lm.tokenizer) lm.tokenizer->set_chat_format(*override_format);
  return HfModel(std::move(lm), io);
}

std::vector<TaskSpec> resolve_tasks(const ModelEvalOptions& opts) {
  auto specs = select_tasks(opts.tasks, opts.tasks_dir.empty() ? find_tasks_dir() : opts.tasks_dir);
  for (const auto& t : specs) {
    fs::path p = resolve_data_path(t.path, opts.eval.data_dir);
    if (!fs::exists(p))
      throw Error("task " + t.name + ": data not found", p.string(),
                  opts.eval.data_dir.empty() ? "pass --data-dir D (the folder holding " + t.path + ")"
                                             : "is --data-dir the folder holding " + t.path + "?");
  }
  return specs;
}

EvalResults evaluate_model(const fs::path& model_dir, const ModelEvalOptions& opts) {
  auto tasks = resolve_tasks(opts);
  HfModel model = open_model(model_dir, opts.run);
  EvalOptions eo = opts.eval;
  eo.batch_size = opts.run.batch_size;
  EvalResults r = evaluate(model, tasks, eo);
  r.settings["model_path"] = model_dir.string();
  r.settings["device"] = opts.run.device;
  r.settings["dtype"] = opts.run.dtype;
  r.settings["max_length"] = opts.run.max_length;
  r.settings["chat_template"] = opts.run.chat_template;
  r.settings["tasks"] = join(opts.tasks, ",");
  return r;
}

}  // namespace atax::pipeline
