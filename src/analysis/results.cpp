// Reading evaluation results (lm-evaluation-harness layout) into per-item scores and aggregates,
// and turning a results file into a tradeoff point.
#include <algorithm>
#include <cmath>

#include <fmt/format.h>

#include "analysis/analysis.h"

namespace atax::analysis {

namespace {

// True when `s` looks like the timestamp lm-eval appends to file names (2024-01-31T12-00-00.123).
bool is_timestamp(std::string_view s) {
  if (s.empty()) return false;
  return std::all_of(s.begin(), s.end(), [](char c) {
    return (c >= '0' && c <= '9') || c == 'T' || c == '-' || c == ':' || c == '.' || c == '_';
  }) && s.front() >= '0' && s.front() <= '9';
}

// The timestamp of "results_<ts>.json", or "".
std::string results_timestamp(const fs::path& path) {
  std::string stem = path.stem().string();
  if (starts_with(stem, "results_") && is_timestamp(stem.substr(8))) return stem.substr(8);
  return {};
}

// The samples file of `task` beside the results file: samples_<task>_<ts>.jsonl (the results
// file's timestamp if present, else the latest) or samples_<task>.jsonl; empty if none.
fs::path find_samples(const fs::path& results_path, const std::string& task) {
  const fs::path dir = results_path.has_parent_path() ? results_path.parent_path() : fs::path(".");
  const std::string prefix = "samples_" + task;
  const std::string ts = results_timestamp(results_path);
  std::vector<std::pair<std::string, fs::path>> found;
  std::error_code ec;
  for (const auto& e : fs::directory_iterator(dir, ec)) {
    if (!e.is_regular_file()) continue;
    std::string name = e.path().filename().string();
    if (!ends_with(name, ".jsonl") || !starts_with(name, prefix)) continue;
    std::string rest = name.substr(prefix.size(), name.size() - prefix.size() - 6);
    if (rest.empty()) {
      found.emplace_back("", e.path());
    } else if (rest[0] == '_' && is_timestamp(rest.substr(1))) {
      if (rest.substr(1) == ts) return e.path();
      found.emplace_back(rest.substr(1), e.path());
    }
  }
  if (found.empty()) return {};
  std::sort(found.begin(), found.end());
  return found.back().second;
}

std::string doc_id_string(const json& v) {
  if (v.is_string()) return v.get<std::string>();
  if (v.is_number_integer() || v.is_number_unsigned()) return std::to_string(v.get<int64_t>());
  return v.dump();
}

}  // namespace

namespace {

// The lm-evaluation-harness layout: aggregates in the results JSON, per-item scores in the
// samples files beside it.
ResultsFile read_lm_eval_results(const json& j, const fs::path& path) {
  ResultsFile out;
  out.path = path.string();
  const std::string file = path.string();
  if (!j.is_object() || !j.contains("results") || !j["results"].is_object())
    throw Error("not an evaluation results file: no \"results\" object", file,
                "pass the results JSON that `atax eval` (or lm-eval) wrote");
  if (j.contains("model_name") && j["model_name"].is_string()) out.model_name = j["model_name"];
  else if (j.contains("config") && j["config"].is_object() && j["config"].contains("model") &&
           j["config"]["model"].is_string())
    out.model_name = j["config"]["model"];
  if (out.model_name.empty()) out.model_name = path.stem().string();
  out.prompt_format = prompt_format_of_lm_eval(j);

  // task → list of (metric, filter) in file order
  std::map<std::string, std::vector<std::pair<std::string, std::string>>> metric_keys;
  std::vector<std::string> task_order;
  for (const auto& [task, metrics] : j["results"].items()) {
    if (!metrics.is_object()) throw Error("results." + task + " is not an object", file);
    task_order.push_back(task);
    for (const auto& [key, value] : metrics.items()) {
      if (key == "alias" || key == "name" || key == "samples") continue;
      auto comma = key.find(',');
      std::string metric = key.substr(0, comma), filter = comma == std::string::npos ? "none" : key.substr(comma + 1);
      if (ends_with(metric, "_stderr")) continue;
      if (!value.is_number()) continue;  // "N/A" and friends
      std::string name = filter == "none" ? metric : metric + "," + filter;
      double err = 0;
      std::string err_key = metric + "_stderr" + (comma == std::string::npos ? "" : "," + filter);
      if (metrics.contains(err_key) && metrics[err_key].is_number()) err = metrics[err_key].get<double>();
      out.aggregates[task][name] = {value.get<double>(), err};
      metric_keys[task].emplace_back(metric, filter);
    }
  }
  if (j.contains("higher_is_better") && j["higher_is_better"].is_object())
    for (const auto& [task, m] : j["higher_is_better"].items())
      if (m.is_object())
        for (const auto& [metric, hib] : m.items())
          if (hib.is_boolean()) out.higher_is_better[task][metric] = hib.get<bool>();
  if (j.contains("n-samples") && j["n-samples"].is_object())
    for (const auto& [task, ns] : j["n-samples"].items()) {
      if (ns.is_object() && ns.contains("effective") && ns["effective"].is_number_integer())
        out.n_samples[task] = ns["effective"].get<int64_t>();
      else if (ns.is_number_integer())
        out.n_samples[task] = ns.get<int64_t>();
    }

  for (const auto& task : task_order) {
    fs::path samples = find_samples(path, task);
    if (samples.empty()) continue;
    std::map<std::string, ItemScores> by_name;
    for (const auto& [metric, filter] : metric_keys[task]) {
      std::string name = filter == "none" ? metric : metric + "," + filter;
      ItemScores s;
      s.task = task;
      s.metric = name;
      auto t = out.higher_is_better.find(task);
      if (t == out.higher_is_better.end() || !t->second.count(metric))
        throw Error(fmt::format("no higher_is_better entry for {}/{}", task, metric), file,
                    "the results file must state each metric's direction under \"higher_is_better\"");
      s.higher_is_better = t->second.at(metric);
      by_name.emplace(name, std::move(s));
    }
    for_each_jsonl(samples, [&](const json& rec, int64_t line) {
      if (!rec.contains("doc_id"))
        throw Error("sample has no \"doc_id\"", samples.string(), "samples must come from --log-samples", line);
      std::string filter = rec.contains("filter") && rec["filter"].is_string() ? rec["filter"].get<std::string>()
                                                                                : "none";
      for (const auto& [metric, f] : metric_keys[task]) {
        if (f != filter || !rec.contains(metric)) continue;
        const json& v = rec[metric];
        double x;
        if (v.is_boolean()) x = v.get<bool>() ? 1.0 : 0.0;
        else if (v.is_number()) x = v.get<double>();
        else continue;  // a per-item value that is not a score (e.g. a tuple for corpus metrics)
        auto& s = by_name.at(f == "none" ? metric : metric + "," + f);
        s.doc_ids.push_back(doc_id_string(rec["doc_id"]));
        s.scores.push_back(x);
      }
    });
    for (const auto& [metric, filter] : metric_keys[task]) {
      auto& s = by_name.at(filter == "none" ? metric : metric + "," + filter);
      if (!s.scores.empty()) out.items.push_back(std::move(s));
    }
  }
  // What the task configs declare (lm-eval's configs have neither key: then the tax notes its default).
  for (const auto& task : task_order) {
    if (!j.contains("configs") || !j["configs"].is_object() || !j["configs"].contains(task) || !j["configs"][task].is_object())
      continue;
    const json& c = j["configs"][task];
    for (const char* key : {"category", "group"})
      if (c.contains(key) && c[key].is_string())
        if (auto cat = category_from_string(c[key].get<std::string>())) {
          out.categories.emplace(task, *cat);
          break;
        }
    if (c.contains("primary_metric") && c["primary_metric"].is_string()) out.primary_metrics[task] = c["primary_metric"];
  }
  return out;
}

}  // namespace

ResultsFile results_from_eval(const EvalResults& r, const std::string& path, bool include_breakdowns) {
  ResultsFile out;
  out.path = path;
  out.model_name = r.model_name.empty() ? fs::path(path).stem().string() : r.model_name;
  out.prompt_format = prompt_format_of(r);
  out.refusal_judge = r.settings.value("refusal_judge", std::string());
  for (const auto& t : r.tasks) {
    if (!t.parent.empty() && !include_breakdowns) {
      out.notes.push_back(fmt::format("breakdown {} of {} left out", t.task, t.parent));
      continue;
    }
    if (auto cat = category_from_string(t.group)) out.categories[t.task] = *cat;
    if (!t.primary_metric.empty()) out.primary_metrics[t.task] = t.primary_metric;
    out.n_samples[t.task] = t.n_effective;
    for (const auto& m : t.metrics) {
      const bool breakdown = m.name.find('/') != std::string::npos;
      if (breakdown && !include_breakdowns) continue;
      const std::string name = m.filter == "none" ? m.name : m.name + "," + m.filter;
      out.aggregates[t.task][name] = {m.value, m.stderr_};
      out.higher_is_better[t.task][m.name] = m.higher_is_better;
      if (m.scores.empty()) continue;
      ItemScores s;
      s.task = t.task;
      s.metric = name;
      s.higher_is_better = m.higher_is_better;
      s.doc_ids = m.doc_ids;
      s.scores = m.scores;
      s.chance = m.chance;
      s.rate = m.rate;
      out.items.push_back(std::move(s));
    }
  }
  return out;
}

ResultsFile read_results(const fs::path& path, bool include_breakdowns) {
  json j = read_json(path);
  if (j.is_object() && j.contains("item_scores"))
    return results_from_eval(::atax::results_from_json(j, path.string()), path.string(), include_breakdowns);
  return read_lm_eval_results(j, path);
}

TaxTable compute_tax(const ResultsFile& base, const ResultsFile& aligned, TaxOptions options) {
  for (const auto* r : {&base, &aligned})
    for (const auto& [task, cat] : r->categories) options.categories.emplace(task, cat);  // explicit ones win
  for (const auto* r : {&base, &aligned})
    for (const auto& [task, m] : r->primary_metrics) options.primary_metrics.emplace(task, m);
  if (options.base_name == "base" && !base.model_name.empty()) options.base_name = base.model_name;
  if (options.aligned_name == "aligned" && !aligned.model_name.empty()) options.aligned_name = aligned.model_name;
  if (base.items.empty())
    throw Error("no per-item scores in the base results", base.path,
                "the tax needs per-item scores: evaluate with `atax eval` (or lm-eval --log-samples)");
  if (aligned.items.empty())
    throw Error("no per-item scores in the aligned results", aligned.path,
                "the tax needs per-item scores: evaluate with `atax eval` (or lm-eval --log-samples)");
  TaxTable t = compute_tax(base.items, aligned.items, options);
  attach_prompt_formats(t, base.prompt_format, aligned.prompt_format);
  t.base_judge = base.refusal_judge;
  t.aligned_judge = aligned.refusal_judge;
  bool refusal_rows = false;
  for (const auto& r : t.rows) refusal_rows = refusal_rows || r.rate;
  if (refusal_rows && !t.base_judge.empty() && !t.aligned_judge.empty() && t.base_judge != t.aligned_judge)
    t.notes.push_back(fmt::format("the refusal rates were judged differently ({}: {}; {}: {}), so their change mixes "
                                  "alignment with the judge; score both with the same judge",
                                  t.options.base_name, t.base_judge, t.options.aligned_name, t.aligned_judge));
  return t;
}

namespace {

// Splits "task/metric" where the task itself may contain '/': the longest prefix that is a task.
std::pair<std::string, std::string> split_spec(const ResultsFile& r, const std::string& spec) {
  if (r.aggregates.count(spec)) return {spec, ""};
  for (size_t pos = spec.rfind('/'); pos != std::string::npos && pos > 0; pos = spec.rfind('/', pos - 1)) {
    std::string task = spec.substr(0, pos);
    if (r.aggregates.count(task)) return {task, spec.substr(pos + 1)};
    if (pos == 0) break;
  }
  auto slash = spec.find('/');
  return {spec.substr(0, slash), slash == std::string::npos ? "" : spec.substr(slash + 1)};
}

bool has_metric(const ResultsFile& r, const std::string& task, const std::string& metric) {
  auto t = r.aggregates.find(task);
  return t != r.aggregates.end() && t->second.count(metric);
}

std::string resolve_auto(const ResultsFile& r, const std::string& spec, const std::vector<std::string>& candidates,
                         const char* what) {
  if (spec != "auto") return spec;
  for (const auto& c : candidates) {
    auto slash = c.rfind('/');
    if (has_metric(r, c.substr(0, slash), c.substr(slash + 1))) return c;
  }
  throw Error(fmt::format("no task for {} found (looked for {})", what, join(candidates, ", ")), r.path,
              std::string("name one with --") + (std::string(what) == "helpfulness" ? "helpful" : "harmless") +
                  " TASK/METRIC");
}

}  // namespace

TradeoffInput tradeoff_input_from_results(const ResultsFile& results, const std::string& helpful_spec,
                                          const std::string& harmless_spec) {
  TradeoffInput in;
  in.name = results.model_name;
  const std::string helpful = resolve_auto(results, helpful_spec,
                                           {"toy_xstest/over_refusal_rate", "xstest/over_refusal_rate"}, "helpfulness");
  const std::string harmless = resolve_auto(
      results, harmless_spec, {"toy_harmbench/refusal_rate", "harmbench/refusal_rate", "advbench/refusal_rate"},
      "harmlessness");
  auto fill = [&](const std::string& spec, int64_t& k, int64_t& n, const char* what) {
    auto [task, metric] = split_spec(results, spec);
    auto agg = results.aggregates.find(task);
    if (agg == results.aggregates.end())
      throw Error(fmt::format("no task '{}' for {}", task, what), results.path,
                  "evaluate the model on that task, or name another with --helpful/--harmless");
    if (metric.empty()) {
      if (agg->second.size() != 1) {
        std::vector<std::string> names;
        for (const auto& [m, v] : agg->second) names.push_back(m);
        throw Error(fmt::format("task '{}' has several metrics ({}); say which", task, join(names, ", ")),
                    results.path, "write TASK/METRIC, e.g. " + task + "/" + names.front());
      }
      metric = agg->second.begin()->first;
    }
    if (!agg->second.count(metric)) {
      std::vector<std::string> names;
      for (const auto& [m, v] : agg->second) names.push_back(m);
      throw Error(fmt::format("task '{}' has no metric '{}' (it has {})", task, metric, join(names, ", ")),
                  results.path);
    }
    bool hib = true;
    if (auto t = results.higher_is_better.find(task); t != results.higher_is_better.end()) {
      auto m = t->second.find(split(metric, ',')[0]);
      if (m != t->second.end()) hib = m->second;
    }
    const ItemScores* items = nullptr;
    for (const auto& s : results.items)
      if (s.task == task && s.metric == metric) items = &s;
    if (items) {
      n = static_cast<int64_t>(items->scores.size());
      k = 0;
      for (double x : items->scores) {
        if (x != 0.0 && x != 1.0)
          throw Error(fmt::format("{}/{}: item scores are not 0/1, so they are not a share of prompts", task, metric),
                      results.path, "use a per-item answered/refused metric");
        k += x == 1.0;
      }
    } else {
      auto ns = results.n_samples.find(task);
      if (ns == results.n_samples.end() || ns->second <= 0)
        throw Error(fmt::format("{}/{}: no per-item scores and no n-samples count", task, metric), results.path,
                    "evaluate with per-item scores so the rates carry intervals");
      n = ns->second;
      k = std::llround(agg->second.at(metric).first * static_cast<double>(n));
    }
    if (!hib) k = n - k;
  };
  fill(helpful, in.helpful_k, in.helpful_n, "helpfulness");
  fill(harmless, in.harmless_k, in.harmless_n, "harmlessness");
  return in;
}

}  // namespace atax::analysis
