// The samples log: one record per document, as lm-evaluation-harness writes with --log_samples
// (doc, prompt, arguments, resps, filtered_resps, one numeric field per metric key).
#include "eval/internal.h"

namespace atax::eval_detail {

json sample_record(const TaskRun& run, size_t di, const DocOutcome& o, const Pools& pools, const ItemValues& values) {
  const TaskSpec& t = *run.spec;
  const DocPlan& plan = run.plans[di];
  json s = {{"doc_id", plan.doc->id}, {"doc", plan.doc->fields}, {"prompt", plan.prompt}, {"target", plan.target}};
  if (!plan.breakdown.empty()) s["subtask"] = t.name + "/" + plan.breakdown;
  if (t.output_type == OutputType::kMultipleChoice) {
    json args = json::object(), resps = json::object(), preds = json::object(), uncond = json::object();
    for (const auto& [name, cs] : plan.choice_sets) {
      args[name] = cs.continuations;
      json r = json::array();
      for (size_t q : cs.req) r.push_back({pools.ll.results[q].logprob, pools.ll.results[q].is_greedy});
      resps[name] = r;
      preds[name] = {{"pred", o.preds.at(name).pred}, {"pred_norm", o.preds.at(name).pred_norm}, {"labels", cs.labels}};
      if (cs.req_uncond.empty()) continue;
      // acc_uncond: each option's log-prob after the unconditional context, and the PMI scores.
      json lp = json::array(), pmi = json::array();
      for (size_t i = 0; i < cs.req_uncond.size(); ++i) {
        const double u = pools.ll.results[cs.req_uncond[i]].logprob;
        lp.push_back(u);
        pmi.push_back(pools.ll.results[cs.req[i]].logprob - u);
      }
      uncond[name] = {{"context", cs.uncond_context}, {"logprobs", lp}, {"pmi", pmi}};
      preds[name]["pred_uncond"] = o.preds.at(name).pred_uncond;
    }
    s["arguments"] = args;
    s["resps"] = resps;
    if (!uncond.empty()) s["resps_uncond"] = uncond;
    s["filtered_resps"] = preds;
  } else {
    s["arguments"] = pools.gen.keys[plan.gen];
    for (const char* k : {"context", "scope"}) s["arguments"].erase(k);
    s["resps"] = json::array({o.response});
    s["filtered_resps"] = o.filtered;
    if (t.output_type == OutputType::kCodeExecution) {
      json samples = json::array();
      for (size_t g : plan.gen_samples) samples.push_back(pools.gen.results[g]);
      s["sampled_resps"] = samples;
      json exec = json::array();
      for (size_t c : plan.code) exec.push_back(pools.code.results[c]);
      s["execution"] = exec;
      s["n_correct"] = o.code_c;
    } else if (t.output_type == OutputType::kRefusal) {
      s["refused"] = o.refusal.refused;
      s["refusal_match"] = o.refusal.matched;
    }
  }
  for (size_t mi = 0; mi < t.metrics.size(); ++mi) {
    const auto& v = values[mi][di];
    if (!v) continue;
    const MetricSpec& m = t.metrics[mi];
    std::string name = m.group_by.empty() ? m.name : m.name + "/" + field_string(plan.doc->fields, m.group_by);
    s[name + "," + m.filter] = *v;
  }
  return s;
}

}  // namespace atax::eval_detail
