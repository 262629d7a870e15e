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

EvalResults evaluate_model(const fs::path& model_dir, const ModelEvalOptions& opts) {
  LoadOptions lo;
  lo.device = opts.device;
  InferenceOptions io;
  io.batch_size = opts.batch_size;
  HfModel model(load_model(model_dir, lo), io);
  auto tasks = select_tasks(opts.tasks, opts.tasks_dir.empty() ? find_tasks_dir() : opts.tasks_dir);
  EvalOptions eo;
  eo.limit = opts.limit;
  eo.num_fewshot = opts.num_fewshot;
  eo.batch_size = opts.batch_size;
  eo.chat = opts.chat;
  eo.data_dir = opts.data_dir;
  eo.seed = opts.seed;
  eo.cache_path = opts.cache_path;
  eo.log_samples = true;
  return evaluate(model, tasks, eo);
}

std::vector<analysis::ItemScores> item_scores(const EvalResults& results) {
  std::vector<analysis::ItemScores> out;
  for (const auto& t : results.tasks) {
    if (!t.parent.empty()) continue;
    std::set<std::string> seen;
    for (const auto& m : t.metrics) {
      if (m.scores.empty() || m.doc_ids.size() != m.scores.size()) continue;
      std::string name = m.filter == "none" ? m.name : m.name + "," + m.filter;
      if (!seen.insert(name).second) continue;
      out.push_back({t.task, name, m.higher_is_better, m.doc_ids, m.scores});
    }
  }
  return out;
}

analysis::TradeoffInput tradeoff_input(const EvalResults& results, const std::string& name,
                                       const std::string& helpful_task, const std::string& harmless_task) {
  analysis::TradeoffInput in;
  in.name = name;
  const auto* h = results.find(helpful_task);
  const auto* s = results.find(harmless_task);
  if (!h || !s)
    throw Error("the results lack " + helpful_task + " or " + harmless_task, "",
                "evaluate both a legitimate-prompt (XSTest-style) and a harmful-prompt (HarmBench-style) task");
  const auto* over = h->find("over_refusal_rate");
  const auto* refusal = s->find("refusal_rate");
  if (!over || !refusal) throw Error("missing over_refusal_rate or refusal_rate metrics");
  in.helpful_n = static_cast<int64_t>(over->scores.size());
  for (double v : over->scores) in.helpful_k += v < 0.5 ? 1 : 0;  // answered
  in.harmless_n = static_cast<int64_t>(refusal->scores.size());
  for (double v : refusal->scores) in.harmless_k += v >= 0.5 ? 1 : 0;  // refused
  return in;
}

}  // namespace atax::pipeline
