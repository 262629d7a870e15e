// A report built from constructed data, shared by the report tests: a tax table in the layout
// analysis::tax_json() writes (with an n/a row, an improvement, an open-ended interval), a
// tradeoff in the layout of analysis::tradeoff_json() (Pareto front, α-optima, a β sweep), line
// charts against β (log axis, two y axes) and λ, training curves, a table and a text part.
#pragma once

#include <cmath>

#include "report/report.h"

namespace atax::report::testing {

inline json tax_row(const std::string& task, const std::string& metric, const std::string& category, bool hib,
                    double base, double aligned, json tax, json lo, json hi, const std::string& test, double p) {
  return {{"task", task},         {"metric", metric},     {"category", category},     {"higher_is_better", hib},
          {"n", 500},             {"base", base},         {"base_stderr", 0.02},      {"aligned", aligned},
          {"aligned_stderr", 0.021}, {"delta", aligned - base}, {"tax_pct", tax},     {"tax_ci", {lo, hi}},
          {"test", test},         {"p_value", p}};
}

inline json sample_tax_json() {
  json rows = json::array();
  rows.push_back(tax_row("knowledge", "acc", "capability", true, 0.84, 0.771, 8.2, 3.1, 13.0, "mcnemar-midp", 0.004));
  rows.push_back(tax_row("reasoning", "acc", "capability", true, 0.73, 0.70, 4.1, -1.0, 9.0, "mcnemar-midp", 0.12));
  rows.push_back(tax_row("math", "exact_match", "capability", true, 0.46, 0.357, 22.5, 12.0, 33.0, "mcnemar-midp", 2e-5));
  rows.push_back(tax_row("code", "pass@1", "capability", true, 0.0, 0.02, nullptr, nullptr, nullptr, "mcnemar-midp", 0.5));
  // Not measurable: the base within two standard errors of chance.
  rows.push_back(tax_row("copy", "acc", "capability", true, 0.26, 0.24, 7.7, -5.0, 20.0, "mcnemar-midp", 0.6));
  rows.back()["measurable"] = false;
  rows.back()["not_measurable_reason"] = "base 0.260 within two standard errors of chance (0.25)";
  rows.push_back(tax_row("truthfulness", "mc2", "capability", true, 0.40, 0.424, -6.0, -11.0, -1.0,
                         "paired-permutation-mc", 0.03));
  rows.push_back(tax_row("bias <bbq>", "bias_score", "safety", false, 0.20, 0.13, -35.0, -50.0, -20.0,
                         "paired-permutation-mc", 0.001));
  rows.push_back(tax_row("harmbench", "attack_success", "safety", false, 0.62, 0.124, -80.0, -90.0, -70.0,
                         "mcnemar-midp", 1e-30));
  rows.push_back(tax_row("xstest", "over_refusal", "safety", false, 0.04, 0.10, 150.0, 60.0, nullptr, "mcnemar-midp",
                         0.002));
  // Safety rates and their change in percentage points (the bias score keeps its relative tax).
  for (auto& r : rows)
    if (r["category"] == "safety" && r["task"] != "bias <bbq>") {
      r["base_rate"] = r["base"];
      r["aligned_rate"] = r["aligned"];
      const double pp = (r["aligned"].get<double>() - r["base"].get<double>()) * 100;
      r["change_pp"] = pp;
      r["change_pp_ci"] = {pp - 4.0, pp + 4.0};
    }
  json safety = json::array();
  for (const auto& r : rows)
    if (r["category"] == "safety")
      safety.push_back({{"task", r["task"]},
                        {"metric", r["metric"]},
                        {"higher_is_better", r["higher_is_better"]},
                        {"base", r["base"]},
                        {"aligned", r["aligned"]},
                        {"change", r["delta"]},
                        {"improved", r["delta"].get<double>() < 0}});
  for (auto& c : safety)
    for (const auto& r : rows)
      if (r["task"] == c["task"] && r.contains("change_pp"))
        for (const char* k : {"base_rate", "aligned_rate", "change_pp", "change_pp_ci"}) c[k] = r[k];
  return {{"kind", "tax_table"},
          {"convention", "tax% = (base − aligned) / |base| × 100 for higher-is-better metrics and (aligned − base) / "
                         "|base| × 100 for lower-is-better ones; positive = worse, negative = improved; n/a where "
                         "base = 0."},
          {"base_name", "base"},
          {"aligned_name", "dpo β=0.1"},
          {"confidence", 0.95},
          {"resamples", 2000},
          {"seed", 1234},
          {"rows", rows},
          {"mean_capability_tax", {{"value", 7.2}, {"ci", {3.9, 10.4}}, {"n_tasks", 4}}},
          {"safety", safety},
          {"notes", {"code/pass@1: base = 0, so the tax is undefined (n/a)"}}};
}

inline json sample_tradeoff_json() {
  struct M {
    const char* name;
    double beta, helpful, harmless;
  };
  const M models[] = {{"base", -1, 0.97, 0.18},        {"dpo β=0.01", 0.01, 0.95, 0.55}, {"dpo β=0.05", 0.05, 0.92, 0.78},
                      {"dpo β=0.1", 0.1, 0.88, 0.90},  {"dpo β=0.5", 0.5, 0.74, 0.96},   {"dpo β=1", 1.0, 0.61, 0.97},
                      {"sft only", -1, 0.90, 0.40}};
  json pts = json::array();
  for (const auto& m : models) {
    const int hn = 250, sn = 400;
    const int hk = static_cast<int>(std::lround(m.helpful * hn)), sk = static_cast<int>(std::lround(m.harmless * sn));
    auto wilson = [](int k, int n) {
      const double z = 1.959963984540054, p = static_cast<double>(k) / n;
      const double d = 1 + z * z / n, c = (p + z * z / (2.0 * n)) / d;
      const double h = z / d * std::sqrt(p * (1 - p) / n + z * z / (4.0 * n * n));
      return json::array({std::max(0.0, c - h), std::min(1.0, c + h)});
    };
    json params = json::object();
    if (m.beta > 0) params["beta"] = m.beta;
    pts.push_back({{"name", m.name},
                   {"params", params},
                   {"helpful", static_cast<double>(hk) / hn},
                   {"helpful_ci", wilson(hk, hn)},
                   {"helpful_k", hk},
                   {"helpful_n", hn},
                   {"harmless", static_cast<double>(sk) / sn},
                   {"harmless_ci", wilson(sk, sn)},
                   {"harmless_k", sk},
                   {"harmless_n", sn}});
  }
  json best = json::array();
  for (int i = 0; i <= 10; ++i) {
    const double a = i / 10.0;
    size_t bi = 0;
    double bu = -1;
    for (size_t k = 0; k < pts.size(); ++k) {
      double u = a * pts[k]["helpful"].get<double>() + (1 - a) * pts[k]["harmless"].get<double>();
      if (u > bu + 1e-12) {
        bu = u;
        bi = k;
      }
    }
    best.push_back({{"alpha", a}, {"index", bi}, {"name", pts[bi]["name"]}, {"utility", bu}});
  }
  return {{"kind", "tradeoff"},
          {"confidence", 0.95},
          {"interval", "wilson"},
          {"points", pts},
          {"best", best},
          {"pareto", {5, 4, 3, 2, 1, 0}},
          {"sweep", {{"param", "beta"}, {"order", {1, 2, 3, 4, 5}}}}};
}

inline Report sample_report() {
  Report r;
  r.title = "atax report — constructed data";
  r.summary = "Every number here is made up for the report tests.\nA second paragraph with <angle> & \"quotes\".";
  r.created = "2026-01-01T00:00:00Z";
  r.settings = {{"world", {{"seed", 1}, {"size", "quick"}}}, {"dpo", {{"beta", 0.1}, {"lr", 5e-6}}}};
  r.sections.push_back({"text", "intro", "What this report shows", "",
                        {{"text", "The alignment tax of a DPO-aligned model on five benchmarks, and how β and λ move it."}}});
  r.sections.push_back({"tax", "chart-tax", "Alignment tax per benchmark", "Base: pretrained 6-layer model; aligned: DPO β=0.1, 2 epochs.",
                        sample_tax_json()});
  r.sections.push_back({"tradeoff", "chart-tradeoff", "Helpfulness vs harmlessness",
                        "DPO with β ∈ {0.01, 0.05, 0.1, 0.5, 1}, 2 epochs each.", sample_tradeoff_json()});

  LineChart beta;
  beta.title = "Tax and safety against β";
  beta.x_label = "β";
  beta.y_label = "mean capability tax (%)";
  beta.y2_label = "harmful prompts refused";
  beta.log_x = true;
  const double betas[] = {0.01, 0.05, 0.1, 0.5, 1.0};
  const double tax[] = {2.1, 4.8, 7.2, 12.5, 18.0}, harmless[] = {0.55, 0.78, 0.90, 0.96, 0.97};
  ChartSeries t{"mean capability tax (%)", {}, false, false}, h{"harmlessness", {}, true, false};
  ChartSeries t2{"mean capability tax, selective (%)", {}, false, true};
  for (int i = 0; i < 5; ++i) {
    t.points.push_back({betas[i], tax[i], tax[i] - 2.5, tax[i] + 2.5});
    t2.points.push_back({betas[i], tax[i] * 0.55, std::nullopt, std::nullopt});
    h.points.push_back({betas[i], harmless[i], std::nullopt, std::nullopt});
  }
  beta.series = {t, t2, h};
  r.sections.push_back({"line", "chart-beta", "Tax and safety against β", "Plain and selective DPO, λ = 0, 2 epochs.",
                        line_chart_json(beta)});

  LineChart lambda;
  lambda.title = "Tax and safety against λ";
  lambda.x_label = "λ (regularisation strength)";
  lambda.y_label = "percent / rate × 100";
  const double lambdas[] = {0.0, 0.05, 0.1, 0.2, 0.5, 1.0};
  ChartSeries lt{"mean capability tax (%)", {}, false, false}, ls{"harmful prompts refused (%)", {}, false, false},
      lk{"KL to base (nats × 10)", {}, false, true};
  for (int i = 0; i < 6; ++i) {
    lt.points.push_back({lambdas[i], 7.2 / (1 + 4 * lambdas[i]), std::nullopt, std::nullopt});
    ls.points.push_back({lambdas[i], 90 - 25 * lambdas[i], 90 - 25 * lambdas[i] - 3, 90 - 25 * lambdas[i] + 3});
    lk.points.push_back({lambdas[i], 30 / (1 + 6 * lambdas[i]), std::nullopt, std::nullopt});
  }
  lambda.series = {lt, ls, lk};
  r.sections.push_back({"line", "chart-lambda", "Tax and safety against λ", "Regularised DPO, β = 0.1.",
                        line_chart_json(lambda)});

  LineChart train;
  train.title = "Training curves";
  train.x_label = "step";
  train.y_label = "loss";
  const char* names[] = {"pretrain (LM loss)", "DPO β=0.1", "DPO + NLL"};
  for (int s = 0; s < 3; ++s) {
    ChartSeries cs{names[s], {}, false, false};
    for (int step = 0; step <= 400; step += 4)
      cs.points.push_back({static_cast<double>(step),
                           (s == 0 ? 4.5 : 0.69) * std::exp(-step / (120.0 + 60 * s)) + 0.3 + 0.04 * std::sin(step * 0.21 + s),
                           std::nullopt, std::nullopt});
    train.series.push_back(cs);
  }
  r.sections.push_back({"line", "chart-training", "Training curves", "Batch 16, lr 3e-4 (pretrain) / 5e-6 (DPO).",
                        line_chart_json(train)});

  // The demo's validity table with its longest labels and metric names (src/pipeline/demo.cpp): six
  // columns that must fit without horizontal scrolling.
  Table validity;
  validity.id = "validity";
  validity.title = "Validity: the base model on every suite";
  validity.caption = "each suite's primary metric (its task file's); chance = a uniform guesser over the same items "
                     "(0 for generation suites); targets from the design";
  validity.columns = {"suite", "metric", "chance", "base", "target", "met"};
  validity.rows = {
      {Cell::of("knowledge (OLMES score: the better of CF, the options' text scored, and MCF, the letter)"),
       Cell::of("OLMES = toy_knowledge_cf acc_norm (beats MCF's 0.278)"), Cell::num(0.25, 2), Cell::pm(0.633, 0.036),
       Cell::of("≥ 0.80"), Cell::of("NO")},
      {Cell::of("reasoning over stored facts (worked solutions, answer extracted)"),
       Cell::of("exact_match,flexible-extract"), Cell::num(0, 2), Cell::pm(0.660, 0.066), Cell::of("≥ 0.70"),
       Cell::of("NO")},
      {Cell::of("MMLU letter format alone (diagnostic: \"Which of these is X?\", X among the options)"),
       Cell::of("acc"), Cell::num(0.25, 2), Cell::pm(0.262, 0.041), Cell::of("—"), Cell::of("—")},
      {Cell::of("in-context copying (diagnostic: a list of names, then the list again up to a point; the next name "
                "scored by its text)"),
       Cell::of("acc_norm"), Cell::num(0.25, 2), Cell::pm(0.300, 0.046), Cell::of("—"), Cell::of("—")},
      {Cell::of("borderline-benign prompts answered by DPO + NLL (RPO, α = 1)"),
       Cell::of("1 - over_refusal_rate"), Cell::num(0, 2), Cell::pm(0.500, 0.065), Cell::of("≥ 0.80"),
       Cell::of("NO")}};
  r.sections.push_back({"table", "table-validity", validity.title, "", table_json(validity)});

  Table tab;
  tab.title = "Selective vs full alignment";
  tab.columns = {"Method", "Mean capability tax (%)", "Harmful refused", "Over-refusal"};
  tab.rows = {{Cell::of("full DPO"), Cell::pm(7.2, 1.6, 1), Cell::pm(0.90, 0.015), Cell::pm(0.10, 0.02)},
              {Cell::of("selective DPO"), Cell::pm(3.9, 1.4, 1), Cell::pm(0.87, 0.017), Cell::pm(0.06, 0.015)}};
  tab.caption = "Means ± sd over 3 seeds.";
  r.sections.push_back({"table", "table-selective", "Selective vs full alignment", "", table_json(tab)});
  return r;
}

inline const std::vector<std::string>& sample_chart_ids() {
  static const std::vector<std::string> ids = {"chart-tax", "chart-tax-safety", "chart-tradeoff", "chart-beta", "chart-lambda",
                                               "chart-training"};
  return ids;
}

}  // namespace atax::report::testing
