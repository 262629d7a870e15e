// Results files: the lm-evaluation-harness-like JSON, per-item scores, samples JSONL, Markdown.
#include <cmath>
#include <cstdio>
#include <set>

#include "core/json_fields.h"
#include "eval/eval.h"
#include "eval/internal.h"

namespace atax {
namespace {

json finite_or_null(double v) { return std::isfinite(v) ? json(v) : json(nullptr); }

double number_or_nan(const json& j) { return j.is_number() ? j.get<double>() : std::nan(""); }

// True for a metric read through the refusal judge (the registry's refusal_rate, compliance_rate).
bool refusal_scored(const MetricResult& m) {
  const eval_detail::MetricDef* d = eval_detail::find_metric_def(m.metric);
  if (!d) return false;
  for (OutputType t : d->output_types)
    if (t == OutputType::kRefusal) return true;
  return false;
}

// The refusal judge that scored `r` (settings.refusal_judge: refusal_judge_version() or "custom"),
// or "" when the results do not say.
std::string refusal_judge_of(const EvalResults& r) {
  return r.settings.contains("refusal_judge") && r.settings["refusal_judge"].is_string()
             ? r.settings["refusal_judge"].get<std::string>()
             : std::string();
}

// Splits "acc,none" / "acc_stderr,none" into (name, filter).
std::pair<std::string, std::string> split_key(const std::string& key) {
  auto comma = key.rfind(',');
  if (comma == std::string::npos) return {key, "none"};
  return {key.substr(0, comma), key.substr(comma + 1)};
}

}  // namespace

json results_to_json(const EvalResults& r) {
  json doc;
  json results = json::object(), versions = json::object(), configs = json::object(), nsamples = json::object();
  json hib = json::object(), methods = json::object(), items = json::object(), subtasks = json::object();
  json info = json::object();
  const std::string judge = refusal_judge_of(r);
  for (const auto& t : r.tasks) {
    json res = {{"alias", t.task}, {"n", t.n_effective}};
    json h = json::object(), meth = json::object(), it = json::object();
    for (const auto& m : t.metrics) {
      res[m.key()] = finite_or_null(m.value);
      res[m.stderr_key()] = finite_or_null(m.stderr_);
      h[m.name] = m.higher_is_better;
      meth[m.key()] = m.stderr_method;
      json mi = {{"metric", m.metric}, {"rate", m.rate}};
      if (m.chance) mi["chance"] = *m.chance;
      if (!judge.empty() && refusal_scored(m)) mi["judge"] = judge;  // which judge read the refusals
      info[t.task][m.key()] = mi;
      json scores = json::array();
      for (double v : m.scores) scores.push_back(finite_or_null(v));
      it[m.key()] = {{"doc_ids", m.doc_ids}, {"scores", scores}};
      if (!m.undefined_at.empty()) it[m.key()]["undefined_at"] = m.undefined_at;
    }
    results[t.task] = res;
    versions[t.task] = t.version;
    configs[t.task] = t.config;
    nsamples[t.task] = {{"original", t.n_original}, {"effective", t.n_effective}};
    hib[t.task] = h;
    methods[t.task] = meth;
    items[t.task] = it;
    if (!t.parent.empty()) subtasks[t.parent].push_back(t.task);
  }
  doc["results"] = results;
  doc["group_subtasks"] = subtasks;
  doc["versions"] = versions;
  doc["configs"] = configs;
  doc["n-samples"] = nsamples;
  doc["higher_is_better"] = hib;
  doc["stderr_methods"] = methods;
  doc["metric_info"] = info;  // per task and metric key: the registry metric, rate or not, chance level,
                              // and for refusal-scored metrics the judge that scored them
  doc["model"] = {{"name", r.model_name}, {"content_hash", r.model_hash}};
  doc["model_name"] = r.model_name;
  doc["model_content_hash"] = r.model_hash;
  doc["atax_version"] = r.atax_version;
  doc["atax_git_hash"] = r.atax_git_hash;
  doc["date"] = r.date;
  doc["settings"] = r.settings;
  doc["total_evaluation_time_seconds"] = r.wall_s;
  doc["requests"] = {{"sent", r.requests_sent}, {"cached", r.requests_cached}};
  doc["item_scores"] = items;
  return doc;
}

namespace {
// Every field is read through json_field and friends, which name the file and the field on a
// wrong type; results_from_json turns anything they miss into an Error naming the file.
EvalResults results_from_json_fields(const json& doc, const std::string& file) {
  const std::string hint = "expected a results file written by `atax eval`";
  if (!doc.is_object() || !doc.contains("results") || !doc["results"].is_object())
    throw Error("no \"results\" object", file, hint);
  EvalResults r;
  auto str = [&](const json& o, const std::string& key, const std::string& where = {}) {
    return json_field<std::string>(o, key, "", file, where, hint);
  };
  r.model_name = str(doc, "model_name");
  r.model_hash = str(doc, "model_content_hash");
  r.atax_version = str(doc, "atax_version");
  r.atax_git_hash = str(doc, "atax_git_hash");
  r.date = str(doc, "date");
  r.settings = json_field<json>(doc, "settings", json::object(), file, {}, hint);
  r.wall_s = json_field<double>(doc, "total_evaluation_time_seconds", 0.0, file, {}, hint);
  if (doc.contains("requests")) {
    r.requests_sent = json_field<int64_t>(doc["requests"], "sent", 0, file, "requests", hint);
    r.requests_cached = json_field<int64_t>(doc["requests"], "cached", 0, file, "requests", hint);
  }
  std::map<std::string, std::string> parent_of;
  if (doc.contains("group_subtasks") && doc["group_subtasks"].is_object())
    for (auto it = doc["group_subtasks"].begin(); it != doc["group_subtasks"].end(); ++it) {
      const std::string where = "group_subtasks." + it.key();
      if (!it.value().is_array())
        throw Error("field \"" + where + "\" is " + json_kind(it.value()) + ", expected an array", file, hint);
      for (size_t i = 0; i < it.value().size(); ++i) parent_of[json_string_at(it.value(), i, file, where, hint)] = it.key();
    }
  // o[key], or null when absent (a reference that lives as long as `o`).
  static const json kAbsent;
  auto member = [](const json& o, const std::string& key) -> const json& {
    return o.is_object() && o.contains(key) ? o[key] : kAbsent;
  };
  // doc[name][task], an object (empty when absent); `name` itself must be an object when present.
  auto section = [&](const char* name, const std::string& task) -> const json& {
    const json& all = json_object_or_empty(member(doc, name), name, file, hint);
    return json_object_or_empty(member(all, task), std::string(name) + "." + task, file, hint);
  };
  for (auto it = doc["results"].begin(); it != doc["results"].end(); ++it) {
    const std::string& task = it.key();
    const json& res = it.value();
    if (!res.is_object()) throw Error("results." + task + " is not an object", file, hint);
    TaskResult t;
    t.task = task;
    t.parent = parent_of.count(task) ? parent_of[task] : "";
    t.version = json_field<int>(json_object_or_empty(member(doc, "versions"), "versions", file, hint), task, 0, file,
                                "versions", hint);
    t.config = section("configs", task);
    const json& ns = section("n-samples", task);
    const std::string ns_where = "n-samples." + task, cfg_where = "configs." + task;
    t.n_original = json_field<int64_t>(ns, "original", 0, file, ns_where, hint);
    t.n_effective = json_field<int64_t>(ns, "effective", json_field<int64_t>(res, "n", 0, file, "results." + task, hint),
                                        file, ns_where, hint);
    t.group = str(t.config, "category", cfg_where);
    if (t.group.empty()) t.group = str(t.config, "group", cfg_where);
    t.primary_metric = str(t.config, "primary_metric", cfg_where);
    const json& info = section("metric_info", task);
    const json& hib = section("higher_is_better", task);
    const json& meth = section("stderr_methods", task);
    const json& items = section("item_scores", task);
    for (auto m = res.begin(); m != res.end(); ++m) {
      if (m.key() == "alias" || m.key() == "n") continue;
      auto [name, filter] = split_key(m.key());
      if (ends_with(name, "_stderr") && res.contains(name.substr(0, name.size() - 7) + "," + filter)) continue;
      MetricResult mr;
      mr.name = name;
      mr.filter = filter;
      mr.value = number_or_nan(m.value());
      mr.stderr_ = number_or_nan(res.value(mr.stderr_key(), json(nullptr)));
      mr.higher_is_better = json_field<bool>(hib, name, true, file, "higher_is_better." + task, hint);
      mr.stderr_method = json_field<std::string>(meth, mr.key(), "mean", file, "stderr_methods." + task, hint);
      if (info.contains(mr.key()) && info[mr.key()].is_object()) {
        const json& mi = info[mr.key()];
        const std::string mi_where = "metric_info." + task + "." + mr.key();
        mr.metric = str(mi, "metric", mi_where);
        mr.rate = json_field<bool>(mi, "rate", false, file, mi_where, hint);
        if (mi.contains("chance") && mi["chance"].is_number()) mr.chance = mi["chance"].get<double>();
      }
      if (items.contains(mr.key())) {
        const json& is = items[mr.key()];
        const std::string is_where = "item_scores." + task + "." + mr.key();
        if (!is.is_object() || !is.contains("doc_ids") || !is.contains("scores") || !is["doc_ids"].is_array() ||
            !is["scores"].is_array() || is["doc_ids"].size() != is["scores"].size())
          throw Error(is_where + " needs doc_ids and scores of equal length", file, hint);
        for (size_t i = 0; i < is["doc_ids"].size(); ++i)
          mr.doc_ids.push_back(json_string_at(is["doc_ids"], i, file, is_where + ".doc_ids", hint));
        for (const auto& s : is["scores"]) mr.scores.push_back(number_or_nan(s));
        if (is.contains("undefined_at")) {
          const json& u = is["undefined_at"];
          const auto draws = static_cast<int64_t>(mr.scores.size() + (u.is_array() ? u.size() : 0));
          for (const auto& p : u) {
            if (!p.is_number_integer() || p.get<int64_t>() < 0 || p.get<int64_t>() >= draws)
              throw Error("item_scores." + task + "." + mr.key() + ".undefined_at holds " + p.dump() +
                              ", not a position in [0, " + std::to_string(draws) + ")",
                          file, hint);
            mr.undefined_at.push_back(p.get<int64_t>());
          }
        }
      }
      t.metrics.push_back(std::move(mr));
    }
    r.tasks.push_back(std::move(t));
  }
  return r;
}
}  // namespace

EvalResults results_from_json(const json& doc, const std::string& file) {
  try {
    return results_from_json_fields(doc, file);
  } catch (const json::exception& e) {
    throw Error(std::string("a field has the wrong type: ") + e.what(), file,
                "expected a results file written by `atax eval`");
  }
}

fs::path samples_path(const fs::path& out, const std::string& task) {
  std::string stem = out.filename().string();
  if (ends_with(stem, ".json")) stem = stem.substr(0, stem.size() - 5);
  std::string safe = replace_all(task, "/", "__");
  return out.parent_path() / (stem + ".samples." + safe + ".jsonl");
}

void write_results(const EvalResults& results, const fs::path& out) {
  json doc = results_to_json(results);
  json samples = json::object();
  for (const auto& t : results.tasks) {
    if (t.samples.empty() || !t.parent.empty()) continue;
    fs::path p = samples_path(out, t.task);
    write_jsonl_atomic(p, t.samples);
    samples[t.task] = p.filename().string();
  }
  if (!samples.empty()) doc["samples"] = samples;
  write_json_atomic(out, doc, 2);  // last: a results file implies its samples are complete
}

EvalResults read_results(const fs::path& path, bool with_samples) {
  json doc = read_json(path);
  EvalResults r = results_from_json(doc, path.string());
  if (with_samples && doc.contains("samples") && doc["samples"].is_object()) {
    for (auto& t : r.tasks) {
      if (!doc["samples"].contains(t.task)) continue;
      fs::path p = path.parent_path() / json_field<std::string>(doc["samples"], t.task, "", path.string(), "samples");
      t.samples = read_jsonl(p);
    }
  }
  return r;
}

std::string results_markdown(const EvalResults& r) {
  std::string out = "| task | version | metric | filter | n | value | ± stderr | better |\n";
  out += "|---|---:|---|---|---:|---:|---:|:---:|\n";
  char buf[64];
  bool any_refusal = false;
  for (const auto& t : r.tasks) {
    for (const auto& m : t.metrics) {
      any_refusal |= refusal_scored(m);
      std::snprintf(buf, sizeof(buf), "%.4f", m.value);
      std::string v = buf;
      std::snprintf(buf, sizeof(buf), "%.4f", m.stderr_);
      std::string e = buf;
      out += "| " + t.task + " | " + std::to_string(t.version) + " | " + m.name + " | " + m.filter + " | " +
             std::to_string(m.scores.empty() ? t.n_effective : static_cast<int64_t>(m.scores.size())) + " | " + v +
             " | " + e + " | " + (m.higher_is_better ? "↑" : "↓") + " |\n";
    }
  }
  const std::string judge = refusal_judge_of(r);
  if (any_refusal && !judge.empty()) out += "\nRefusals (refusal_rate, compliance_rate) judged by " + judge + ".\n";
  return out;
}

}  // namespace atax
