// merge_shards(): the results of the shards of one evaluation (EvalOptions::shard_index) ->
// the single-process results. The shards' per-item lists of each metric, concatenated in shard
// order, go through the same aggregation as one process's (eval_detail::aggregate_metric), so the
// merge is exact.
#include <cmath>
#include <map>
#include <set>

#include "eval/eval.h"
#include "eval/internal.h"

namespace atax {
namespace {

// Orders the union of several lists, each a subsequence of one total order, consistently with all
// of them: Kahn's algorithm over "a comes right before b in some list"; among the items free to go
// next, the one seen first (earliest list, then position) goes. For the shards of one evaluation
// this is the single-process order: every top-level task is in every shard's list, and breakdown
// groups and group_by metrics appear in order of their first document.
std::vector<std::string> merge_orders(const std::vector<std::vector<std::string>>& lists) {
  std::vector<std::string> names;
  std::map<std::string, size_t> id;  // name -> first-seen rank
  for (const auto& l : lists)
    for (const auto& n : l)
      if (id.emplace(n, names.size()).second) names.push_back(n);
  const size_t n = names.size();
  std::vector<std::set<size_t>> next(n);
  std::vector<int> indegree(n, 0);
  for (const auto& l : lists)
    for (size_t i = 1; i < l.size(); ++i) {
      size_t a = id[l[i - 1]], b = id[l[i]];
      if (a != b && next[a].insert(b).second) ++indegree[b];
    }
  std::vector<std::string> out;
  std::vector<bool> done(n, false);
  for (size_t k = 0; k < n; ++k) {
    size_t pick = n;
    for (size_t i = 0; i < n && pick == n; ++i)
      if (!done[i] && indegree[i] == 0) pick = i;
    // Lists that contradict each other (not shards of one run): fall back to first-seen order.
    for (size_t i = 0; i < n && pick == n; ++i)
      if (!done[i]) pick = i;
    done[pick] = true;
    out.push_back(names[pick]);
    for (size_t b : next[pick]) --indegree[b];
  }
  return out;
}

// The bootstrap's draw list of a metric: its scores with NaN at the undefined items.
std::vector<double> draws_of(const MetricResult& m, const std::string& where) {
  std::vector<double> out(m.scores.size() + m.undefined_at.size(), std::nan(""));
  std::vector<bool> undefined(out.size(), false);
  for (int64_t p : m.undefined_at) {
    if (p < 0 || static_cast<size_t>(p) >= out.size())
      throw Error(where + ": undefined item position " + std::to_string(p) + " is outside the draw list");
    undefined[static_cast<size_t>(p)] = true;
  }
  size_t s = 0;
  for (size_t i = 0; i < out.size(); ++i)
    if (!undefined[i]) out[i] = m.scores.at(s++);
  return out;
}

json* notes_of(json& config) {
  if (config.contains("resolved") && config["resolved"].is_object() && config["resolved"].contains("notes"))
    return &config["resolved"]["notes"];
  if (config.contains("notes")) return &config["notes"];
  return nullptr;
}

// Settings that must agree between the shards of one evaluation (the rest describe the shard).
json comparable_settings(json s) {
  for (const char* k : {"shard", "shards", "cache", "requests"}) s.erase(k);
  return s;
}

}  // namespace

EvalResults merge_shards(const std::vector<EvalResults>& parts) {
  const std::string hint = "merge the results of shards 0..k-1 of one `atax eval` run, in shard order";
  if (parts.empty()) throw Error("merge_shards: no shard results to merge", {}, hint);
  const EvalResults& first = parts[0];
  const json settings0 = comparable_settings(first.settings);
  for (size_t k = 0; k < parts.size(); ++k) {
    const EvalResults& p = parts[k];
    if (p.model_hash != first.model_hash)
      throw Error("shard " + std::to_string(k) + " was evaluated on model " + p.model_hash + ", shard 0 on " +
                      first.model_hash,
                  {}, hint);
    if (comparable_settings(p.settings) != settings0)
      throw Error("shard " + std::to_string(k) + " was evaluated with other settings than shard 0: " +
                      comparable_settings(p.settings).dump() + " vs " + settings0.dump(),
                  {}, hint);
    if (p.settings.contains("shard")) {
      const json& sh = p.settings["shard"];
      if (sh.value("index", -1) != static_cast<int>(k) || sh.value("count", -1) != static_cast<int>(parts.size()))
        throw Error("part " + std::to_string(k) + " of " + std::to_string(parts.size()) + " is shard " + sh.dump(), {},
                    hint);
    }
  }

  EvalResults out;
  out.model_name = first.model_name;
  out.model_hash = first.model_hash;
  out.atax_version = first.atax_version;
  out.atax_git_hash = first.atax_git_hash;
  out.date = first.date;
  out.settings = first.settings;
  out.settings.erase("shard");
  if (parts.size() > 1) out.settings["shards"] = parts.size();
  json requests = json::object();
  for (const auto& p : parts) {
    out.wall_s = std::max(out.wall_s, p.wall_s);
    out.requests_sent += p.requests_sent;
    out.requests_cached += p.requests_cached;
    if (p.settings.contains("requests") && p.settings["requests"].is_object())
      for (auto it = p.settings["requests"].begin(); it != p.settings["requests"].end(); ++it)
        if (it.value().is_number_integer()) requests[it.key()] = requests.value(it.key(), int64_t{0}) + it.value().get<int64_t>();
  }
  if (first.settings.contains("requests")) out.settings["requests"] = requests;

  std::vector<std::vector<std::string>> task_lists;
  for (const auto& p : parts) {
    task_lists.emplace_back();
    for (const auto& t : p.tasks) task_lists.back().push_back(t.task);
  }
  for (const std::string& name : merge_orders(task_lists)) {
    std::vector<const TaskResult*> have;  // this task in each part that has it, in shard order
    bool olmes_group = false;
    for (const auto& p : parts)
      if (const TaskResult* t = p.find(name)) olmes_group = olmes_group || t->config.value("olmes_group", false);
    if (olmes_group) continue;
    for (const auto& p : parts)
      if (const TaskResult* t = p.find(name)) have.push_back(t);
    TaskResult t;
    t.task = name;
    t.parent = have[0]->parent;
    t.version = have[0]->version;
    t.group = have[0]->group;
    t.primary_metric = have[0]->primary_metric;
    t.config = have[0]->config;
    t.n_original = have[0]->n_original;
    std::vector<std::vector<std::string>> metric_lists, note_lists;
    for (const TaskResult* h : have) {
      t.n_effective += h->n_effective;
      t.samples.insert(t.samples.end(), h->samples.begin(), h->samples.end());
      metric_lists.emplace_back();
      for (const auto& m : h->metrics) metric_lists.back().push_back(m.key());
      json c = h->config;
      note_lists.emplace_back();
      if (json* notes = notes_of(c))
        for (const auto& n : *notes)
          if (n.is_string()) note_lists.back().push_back(n.get<std::string>());
    }
    std::set<std::string> reported;
    for (const std::string& key : merge_orders(metric_lists)) {
      // The shards' items of this metric, concatenated in shard order, then reduced by the one
      // aggregation (aggregate_metric, as in a single process).
      MetricResult m;
      eval_detail::MetricItems items;
      bool any = false;
      for (const TaskResult* h : have) {
        const MetricResult* pm = nullptr;
        for (const auto& x : h->metrics)
          if (x.key() == key) pm = &x;
        if (!pm) continue;
        if (!any) {
          m.name = pm->name;
          m.filter = pm->filter;
          m.higher_is_better = pm->higher_is_better;
          m.stderr_method = pm->stderr_method;
          m.metric = pm->metric;
          m.rate = pm->rate;  // a results file without "metric": as it says (else the registry's)
          any = true;
        }
        if (pm->scores.empty() && pm->undefined_at.empty())
          throw Error(name + " " + key + " has no per-item scores in one of the shards", {},
                      "per-item scores are needed to merge shards (results files of `atax eval` hold them)");
        if (pm->doc_ids.size() != pm->scores.size())
          throw Error(name + " " + key + ": " + std::to_string(pm->doc_ids.size()) + " doc ids for " +
                          std::to_string(pm->scores.size()) + " scores",
                      {}, "per-item scores are needed to merge shards");
        // A shard's chance level is the mean over its items: weighted back into a sum.
        if (pm->chance) {
          items.chance_sum += *pm->chance * static_cast<double>(pm->scores.size());
          items.chance_n += static_cast<int64_t>(pm->scores.size());
        }
        std::vector<double> d = draws_of(*pm, name + " " + key);
        for (int64_t p : pm->undefined_at) items.undefined_at.push_back(static_cast<int64_t>(items.draws.size()) + p);
        items.draws.insert(items.draws.end(), d.begin(), d.end());
        items.doc_ids.insert(items.doc_ids.end(), pm->doc_ids.begin(), pm->doc_ids.end());
        items.scores.insert(items.scores.end(), pm->scores.begin(), pm->scores.end());
      }
      if (items.scores.empty()) continue;  // only items without a value: not reported, as in one process
      if (m.stderr_method == "bootstrap" && (!first.settings.contains("seed") || !first.settings.contains("bootstrap_iters")))
        throw Error(name + " " + key + ": a bootstrap standard error needs settings.seed and settings.bootstrap_iters", {},
                    hint);
      eval_detail::aggregate_metric(m, std::move(items), first.settings.value("bootstrap_iters", 0),
                                    first.settings.value("seed", uint64_t{0}), name);
      reported.insert(key);
      t.metrics.push_back(std::move(m));
    }
    // "<key>: no items, not reported" holds for the whole run only if no shard had an item.
    if (json* notes = notes_of(t.config)) {
      json kept = json::array();
      for (const std::string& n : merge_orders(note_lists)) {
        auto colon = n.find(": ");
        if (colon != std::string::npos && reported.count(n.substr(0, colon))) continue;
        kept.push_back(n);
      }
      *notes = kept;
    }
    out.tasks.push_back(std::move(t));
  }
  add_olmes_groups(out);  // recomputed from the merged members, as one process computes it
  return out;
}

}  // namespace atax
