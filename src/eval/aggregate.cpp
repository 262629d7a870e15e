// Aggregation: per-item values -> one MetricResult per metric (and per group_by value): the mean,
// its standard error (closed form, or a seeded bootstrap that keeps undefined items as draws) and
// the chance level over the same items. aggregate_metric() is the one aggregation: merge_shards()
// reduces the shards' concatenated items through it too.
#include <cmath>

#include "eval/internal.h"

namespace atax::eval_detail {

void aggregate_metric(MetricResult& r, MetricItems items, int bootstrap_iters, uint64_t seed,
                      const std::string& task_name) {
  if (const MetricDef* def = find_metric_def(r.metric)) r.rate = def->rate;
  if (items.chance_n > 0 && items.chance_n == static_cast<int64_t>(items.scores.size()))
    r.chance = std::round(items.chance_sum / static_cast<double>(items.chance_n) * 1e12) / 1e12;
  const MeanStderr ms = mean_stderr(items.scores);
  r.value = ms.mean;
  r.stderr_ = r.stderr_method == "bootstrap"
                  ? bootstrap_stderr(items.draws, nanmean, bootstrap_iters, seed_for(seed, task_name + "|" + r.key()))
                  : ms.stderr_;
  r.doc_ids = std::move(items.doc_ids);
  r.scores = std::move(items.scores);
  r.undefined_at = std::move(items.undefined_at);
}

std::vector<MetricResult> aggregate(const TaskRun& run, const std::vector<size_t>& doc_idx, const ItemValues& values,
                                    const ItemChances& chances, const std::string& task_name, const EvalOptions& opt,
                                    json& notes) {
  const TaskSpec& t = *run.spec;
  std::vector<MetricResult> out;
  for (size_t mi = 0; mi < t.metrics.size(); ++mi) {
    const MetricSpec& m = t.metrics[mi];
    const MetricDef* def = find_metric_def(m.metric);
    // Sub-metrics: one per group_by value (in order of first appearance), or just the metric.
    std::vector<std::string> groups;
    std::map<std::string, MetricItems> by_group;
    for (size_t di : doc_idx) {
      const DocPlan& plan = run.plans[di];
      if (!doc_matches(plan.doc->fields, m.where)) continue;
      std::string g = m.group_by.empty() ? std::string() : field_string(plan.doc->fields, m.group_by);
      if (!by_group.count(g)) groups.push_back(g);
      MetricItems& c = by_group[g];
      const auto& v = values[mi][di];
      const bool applies = v.has_value();
      const bool in_subset = applies || (def->undefined_in_subset && def->undefined_in_subset(plan.doc->fields));
      if (!in_subset) continue;
      if (!applies) c.undefined_at.push_back(static_cast<int64_t>(c.draws.size()));
      c.draws.push_back(applies ? *v : std::nan(""));
      if (applies) {
        c.doc_ids.push_back(plan.doc->id);
        c.scores.push_back(*v);
        if (const auto& ch = chances[mi][di]) {
          c.chance_sum += *ch;
          ++c.chance_n;
        }
      }
    }
    for (const auto& g : groups) {
      MetricItems& c = by_group[g];
      MetricResult r;
      r.name = m.group_by.empty() ? m.name : m.name + "/" + g;
      r.metric = m.metric;
      r.rate = def->rate;
      r.filter = m.filter;
      r.higher_is_better = m.higher_is_better;
      r.stderr_method = m.stderr_method;
      if (c.scores.empty()) {
        notes.push_back(r.key() + ": no items, not reported");
        // A shard still hands on the items without a value: merge_shards needs them in the
        // bootstrap's draw list (it drops the metric again if no shard has an item).
        if (opt.shard_count > 1 && !c.undefined_at.empty()) {
          r.value = r.stderr_ = std::nan("");
          r.undefined_at = std::move(c.undefined_at);
          out.push_back(std::move(r));
        }
        continue;
      }
      aggregate_metric(r, std::move(c), opt.bootstrap_iters, opt.seed, task_name);
      out.push_back(std::move(r));
    }
  }
  return out;
}

}  // namespace atax::eval_detail
