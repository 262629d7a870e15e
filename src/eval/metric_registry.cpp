// The metric registry: every metric a task file may name, with the output types it fits, its
// per-item value, its per-item chance level, the subset it applies to and which way is better. Task validation
// (task_spec.cpp), scoring (evaluate.cpp), aggregation and shard merging all read this table.
#include "eval/internal.h"

namespace atax {
namespace eval_detail {
namespace {

using O = OutputType;

const ChoiceSet& choices_of(const ItemContext& c) { return c.plan.choice_sets.at(c.metric.choice_set); }
const McPrediction& pred_of(const ItemContext& c) { return c.outcome.preds.at(c.metric.choice_set); }

// A uniform guesser's expected score on a choice set: the share of gold options.
std::optional<double> gold_share(const ItemContext& c) {
  const ChoiceSet& cs = choices_of(c);
  double gold = 0;
  for (int l : cs.labels) gold += l;
  return cs.labels.empty() ? std::nullopt : std::optional<double>(gold / static_cast<double>(cs.labels.size()));
}
std::optional<double> zero(const ItemContext&) { return 0.0; }

std::optional<double> acc(const ItemContext& c) { return choices_of(c).labels[static_cast<size_t>(pred_of(c).pred)] ? 1.0 : 0.0; }
std::optional<double> acc_norm(const ItemContext& c) {
  return choices_of(c).labels[static_cast<size_t>(pred_of(c).pred_norm)] ? 1.0 : 0.0;
}
std::optional<double> acc_uncond(const ItemContext& c) {
  const int pred = pred_of(c).pred_uncond;
  if (pred < 0) return std::nullopt;
  return choices_of(c).labels[static_cast<size_t>(pred)] ? 1.0 : 0.0;
}
std::optional<double> mc2(const ItemContext& c) {
  return mc2_score(c.outcome.logprobs.at(c.metric.choice_set), choices_of(c).labels);
}
std::optional<double> bias_ambig(const ItemContext& c) {
  if (field_string(c.plan.doc->fields, "context_condition") != "ambig") return std::nullopt;
  return bbq_bias_item(c.plan.doc->fields, pred_of(c).pred, true);
}
std::optional<double> bias_disambig(const ItemContext& c) {
  if (field_string(c.plan.doc->fields, "context_condition") != "disambig") return std::nullopt;
  return bbq_bias_item(c.plan.doc->fields, pred_of(c).pred, false);
}
bool disambig_resolved(const json& f) {
  return field_string(f, "context_condition") == "disambig" && f.value("biased_index", -1) >= 0;
}
std::optional<double> exact_match(const ItemContext& c) {
  const std::string& resp = c.outcome.filtered.at(c.metric.filter);
  const json& o = c.metric.options;
  std::string ref = o.contains("reference")
                        ? render_template(o["reference"].get<std::string>(), c.plan.doc->fields, where_of(c.task))
                        : c.plan.target;
  return normalize_for_match(resp, o) == normalize_for_match(ref, o) ? 1.0 : 0.0;
}
std::optional<double> constraints(const ItemContext& c) {
  return constraints_met(c.outcome.filtered.at(c.metric.filter), c.plan.doc->fields.value("constraints", json::array()));
}
std::optional<double> pass1(const ItemContext& c) { return c.outcome.greedy_passed ? 1.0 : 0.0; }
std::optional<double> passk(const ItemContext& c) { return pass_at_k(c.outcome.code_n, c.outcome.code_c, c.metric.k); }
std::optional<double> refused(const ItemContext& c) { return c.outcome.refusal.refused ? 1.0 : 0.0; }
std::optional<double> complied(const ItemContext& c) { return c.outcome.refusal.refused ? 0.0 : 1.0; }

const std::vector<MetricDef>& registry() {
  static const std::vector<MetricDef> r = {
      {"acc", {O::kMultipleChoice}, acc, gold_share, nullptr, false},
      {"acc_norm", {O::kMultipleChoice}, acc_norm, gold_share, nullptr, false},
      {"acc_uncond", {O::kMultipleChoice}, acc_uncond, gold_share, nullptr, false},
      {"mc2", {O::kMultipleChoice}, mc2, gold_share, nullptr, false},
      {"bbq_bias_ambig", {O::kMultipleChoice}, bias_ambig, nullptr, nullptr, false, MetricDef::Direction::kLower},
      {"bbq_bias_disambig", {O::kMultipleChoice}, bias_disambig, nullptr, disambig_resolved, false,
       MetricDef::Direction::kLower},
      {"exact_match", {O::kGenerateUntil}, exact_match, zero, nullptr, false},
      {"constraints_met", {O::kGenerateUntil}, constraints, nullptr, nullptr, false},
      {"pass@1", {O::kCodeExecution}, pass1, zero, nullptr, false},
      {"pass@k", {O::kCodeExecution}, passk, zero, nullptr, false},
      {"refusal_rate", {O::kRefusal}, refused, nullptr, nullptr, true, MetricDef::Direction::kTaskDeclares},
      {"compliance_rate", {O::kRefusal}, complied, nullptr, nullptr, true, MetricDef::Direction::kTaskDeclares},
  };
  return r;
}

}  // namespace

const MetricDef* find_metric_def(const std::string& metric) {
  for (const auto& d : registry())
    if (d.name == metric) return &d;
  return nullptr;
}

std::string unconditional_context(const MetricSpec& m) {
  return m.options.value("unconditional_context", std::string("Answer:"));
}

std::optional<std::string> unconditional_context_for(const TaskSpec& t, const std::string& choice_set) {
  for (const auto& m : t.metrics)
    if (m.metric == "acc_uncond" && m.choice_set == choice_set) return unconditional_context(m);
  return std::nullopt;
}

bool doc_matches(const json& fields, const std::map<std::string, std::string>& where) {
  for (const auto& [k, v] : where)
    if (field_string(fields, k) != v) return false;
  return true;
}

}  // namespace eval_detail

std::vector<std::string> metrics_for(OutputType t) {
  std::vector<std::string> out;
  for (const auto& d : eval_detail::registry())
    for (auto o : d.output_types)
      if (o == t) out.push_back(d.name);
  return out;
}

bool metric_is_rate(const std::string& metric) {
  const auto* d = eval_detail::find_metric_def(metric);
  return d && d->rate;
}

}  // namespace atax
