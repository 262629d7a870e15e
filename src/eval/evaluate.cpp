// evaluate(): the evaluation's steps in order (the stages themselves live in the files that
// internal.h lists): plan every task's requests -> the model answers (cache first) -> code to the
// sandbox -> filters, refusal judge and per-item metric values -> aggregates -> results.
#include <cmath>

#include "eval/internal.h"

namespace atax {

namespace eval_detail {

double nanmean(const std::vector<double>& x) {
  double s = 0;
  int64_t n = 0;
  for (double v : x)
    if (!std::isnan(v)) {
      s += v;
      ++n;
    }
  return n ? s / static_cast<double>(n) : std::nan("");
}

uint64_t seed_for(uint64_t seed, const std::string& salt) { return Rng(seed).fork(salt).next_u64(); }

}  // namespace eval_detail

using namespace eval_detail;

namespace {

using Classifier = std::function<RefusalVerdict(std::string_view)>;

// What each document's responses came to: predictions per choice set, filtered answers, sandbox
// verdicts, refusal verdicts.
std::vector<DocOutcome> outcomes_of(const TaskRun& run, const Pools& pools, const Classifier& classify) {
  const TaskSpec& t = *run.spec;
  std::vector<DocOutcome> outcomes(run.plans.size());
  for (size_t di = 0; di < run.plans.size(); ++di) {
    const DocPlan& plan = run.plans[di];
    DocOutcome& o = outcomes[di];
    if (t.output_type == OutputType::kMultipleChoice) {
      for (const auto& [name, cs] : plan.choice_sets) {
        std::vector<double> lp, lp_uncond;
        for (size_t r : cs.req) lp.push_back(pools.ll.results[r].logprob);
        for (size_t r : cs.req_uncond) lp_uncond.push_back(pools.ll.results[r].logprob);
        o.preds[name] = predict_multiple_choice(lp, cs.continuations, lp_uncond);
        o.logprobs[name] = std::move(lp);
        if (!cs.req_uncond.empty()) o.logprobs_uncond[name] = std::move(lp_uncond);
      }
      continue;
    }
    o.response = pools.gen.results[plan.gen];
    for (const auto& f : t.filters) o.filtered[f.name] = apply_filter(f, o.response);
    if (t.output_type == OutputType::kCodeExecution) {
      o.greedy_passed = pools.code.results[plan.code[0]].value("passed", false);
      o.code_n = static_cast<int>(plan.code.size()) - 1;
      for (size_t k = 1; k < plan.code.size(); ++k) o.code_c += pools.code.results[plan.code[k]].value("passed", false) ? 1 : 0;
    } else if (t.output_type == OutputType::kRefusal) {
      o.refusal = classify(o.response);
    }
  }
  return outcomes;
}

// Per-item values and chance levels of every metric (registry), [metric][doc].
void score_items(const TaskRun& run, const std::vector<DocOutcome>& outcomes, ItemValues& values, ItemChances& chances) {
  const TaskSpec& t = *run.spec;
  values.assign(t.metrics.size(), std::vector<std::optional<double>>(run.plans.size()));
  chances.assign(t.metrics.size(), std::vector<std::optional<double>>(run.plans.size()));
  for (size_t mi = 0; mi < t.metrics.size(); ++mi) {
    const MetricDef* def = find_metric_def(t.metrics[mi].metric);
    if (!def) throw Error("metric \"" + t.metrics[mi].metric + "\" is not in the metric registry", where_of(t));
    for (size_t di = 0; di < run.plans.size(); ++di) {
      if (!doc_matches(run.plans[di].doc->fields, t.metrics[mi].where)) continue;
      ItemContext c{t, t.metrics[mi], run.plans[di], outcomes[di]};
      values[mi][di] = def->item(c);
      if (def->chance) chances[mi][di] = def->chance(c);
    }
  }
}

// The task's config as results record it: the file, its category and primary metric, and what
// was resolved (paths, files with their hashes, few-shot source, chat settings).
json task_config(const TaskRun& run) {
  const TaskSpec& t = *run.spec;
  json config = t.raw;
  config["group"] = t.group;
  config["category"] = t.group;
  config["primary_metric"] = t.primary_metric;
  config["resolved"] = run.resolved;
  json files = json::array();
  for (const auto& f : run.data.files) files.push_back({{"path", f.path}, {"sha256", f.sha256}, {"records", f.records}});
  config["resolved"]["files"] = files;
  config["resolved"]["notes"] = json::array();
  return config;
}

// One TaskResult per value of the task's breakdown field ("mmlu/abstract_algebra").
void add_breakdowns(const TaskRun& run, const ItemValues& values, const ItemChances& chances, const EvalOptions& opt,
                    EvalResults& results) {
  const TaskSpec& t = *run.spec;
  if (t.breakdown_by.empty()) return;
  std::vector<std::string> order;
  std::map<std::string, std::vector<size_t>> groups;
  for (size_t di = 0; di < run.plans.size(); ++di) {
    const std::string& g = run.plans[di].breakdown;
    if (!groups.count(g)) order.push_back(g);
    groups[g].push_back(di);
  }
  for (const auto& g : order) {
    TaskResult sub;
    sub.task = t.name + "/" + g;
    sub.parent = t.name;
    sub.version = t.version;
    sub.group = t.group;
    sub.primary_metric = t.primary_metric;
    sub.n_effective = static_cast<int64_t>(groups[g].size());
    for (const auto& d : run.data.docs)
      if (field_string(d.fields, t.breakdown_by) == g) ++sub.n_original;
    json notes = json::array();
    sub.metrics = aggregate(run, groups[g], values, chances, sub.task, opt, notes);
    sub.config = {{"parent", t.name}, {"group", t.group}, {"category", t.group}, {"primary_metric", t.primary_metric},
                  {t.breakdown_by, g}, {"notes", notes}};
    results.tasks.push_back(std::move(sub));
  }
}

json settings_of(const EvalOptions& opt) {
  json s = {{"limit", opt.limit},
            {"num_fewshot", opt.num_fewshot},
            {"batch_size", opt.batch_size},
            {"chat", opt.chat},
            {"system_instruction", opt.system_instruction},
            {"fewshot_as_multiturn", opt.fewshot_as_multiturn},
            {"seed", opt.seed},
            {"data_dir", opt.data_dir.string()},
            {"cache", opt.cache_path.empty() ? json(nullptr) : json(opt.cache_path.string())},
            {"bootstrap_iters", opt.bootstrap_iters},
            {"refusal_judge", opt.refusal_classifier ? std::string("custom") : refusal_judge_version()},
            {"sandbox", {{"memory_mb", opt.sandbox.memory_mb}, {"cpu_s", opt.sandbox.cpu_s},
                         {"file_mb", opt.sandbox.file_mb}, {"nproc", opt.sandbox.nproc}}}};
  if (opt.shard_count > 1) s["shard"] = {{"index", opt.shard_index}, {"count", opt.shard_count}};
  return s;
}

}  // namespace

const MetricResult* TaskResult::find(const std::string& name, const std::string& filter) const {
  for (const auto& m : metrics)
    if (m.name == name && m.filter == filter) return &m;
  return nullptr;
}

const MetricResult* TaskResult::find_key(const std::string& key) const {
  auto comma = key.find(',');
  return comma == std::string::npos ? find(key) : find(key.substr(0, comma), key.substr(comma + 1));
}

const MetricResult* TaskResult::primary() const {
  return primary_metric.empty() ? nullptr : find_key(primary_metric);
}

const TaskResult* EvalResults::find(const std::string& task) const {
  for (const auto& t : tasks)
    if (t.task == task) return &t;
  return nullptr;
}

EvalResults evaluate(LanguageModel& model, const std::vector<TaskSpec>& tasks, const EvalOptions& opt) {
  const double t0 = now_seconds();
  if (opt.shard_count < 1 || opt.shard_index < 0 || opt.shard_index >= opt.shard_count)
    throw Error("evaluation shard " + std::to_string(opt.shard_index) + " of " + std::to_string(opt.shard_count) +
                    " does not exist",
                {}, "shard_index must be in [0, shard_count)");
  std::unique_ptr<RequestCache> cache;
  if (!opt.cache_path.empty()) cache = std::make_unique<RequestCache>(opt.cache_path);
  Pools pools;
  Counters cnt;
  std::vector<TaskRun> runs(tasks.size());

  // 1. Documents, prompts and requests.
  for (size_t ti = 0; ti < tasks.size(); ++ti) plan_task(tasks[ti], model, opt, pools, runs[ti]);
  // 2. The model answers.
  run_loglikelihood(model, pools.ll, cache.get(), opt, cnt);
  run_generation(model, pools.gen, cache.get(), opt, cnt);
  // 3. Code goes to the sandbox.
  for (auto& run : runs) plan_code(run, opt, pools);
  run_code(pools.code, cache.get(), opt, cnt);

  // 4. Scores and aggregates.
  const Classifier classify =
      opt.refusal_classifier ? opt.refusal_classifier : Classifier([](std::string_view r) { return classify_refusal(r); });
  EvalResults results;
  results.model_name = model.name();
  results.model_hash = model.content_hash();
  results.atax_version = atax_version();
  results.atax_git_hash = atax_git_hash();
  results.date = iso_datetime_utc();
  results.settings = settings_of(opt);
  results.settings["runtime"] = model.runtime_settings();
  for (auto& run : runs) {
    const TaskSpec& t = *run.spec;
    const std::vector<DocOutcome> outcomes = outcomes_of(run, pools, classify);
    ItemValues values;
    ItemChances chances;
    score_items(run, outcomes, values, chances);
    std::vector<size_t> all(run.plans.size());
    for (size_t i = 0; i < all.size(); ++i) all[i] = i;
    TaskResult tr;
    tr.task = t.name;
    tr.version = t.version;
    tr.group = t.group;
    tr.primary_metric = t.primary_metric;
    tr.n_original = run.n_original;
    tr.n_effective = static_cast<int64_t>(run.plans.size());
    tr.config = task_config(run);
    tr.metrics = aggregate(run, all, values, chances, t.name, opt, tr.config["resolved"]["notes"]);
    if (opt.log_samples)
      for (size_t di = 0; di < run.plans.size(); ++di) tr.samples.push_back(sample_record(run, di, outcomes[di], pools, values));
    results.tasks.push_back(std::move(tr));
    add_breakdowns(run, values, chances, opt, results);
  }
  add_olmes_groups(results);
  results.requests_sent = cnt.sent;
  results.requests_cached = cnt.cached;
  results.wall_s = now_seconds() - t0;
  results.settings["requests"] = {{"loglikelihood", pools.ll.size()}, {"generate_until", pools.gen.size()},
                                  {"code_execution", pools.code.size()}, {"sent", cnt.sent}, {"cached", cnt.cached}};
  return results;
}

}  // namespace atax
