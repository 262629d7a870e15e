// The tax table: pairing by doc id, means, tax%, paired-bootstrap interval, paired tests, the
// mean capability tax and the change in safety metrics; Markdown, CSV and JSON writers.
#include <algorithm>
#include <cmath>
#include <set>
#include <unordered_map>

#include <fmt/format.h>

#include "analysis/analysis.h"

namespace atax::analysis {

const char* const kTaxConvention =
    "tax% = (base − aligned) / |base| × 100 for higher-is-better metrics and (aligned − base) / |base| × 100 "
    "for lower-is-better ones, so a positive tax means the aligned model got worse and a negative tax means it "
    "improved; n/a where base = 0.";

std::string to_string(TaskCategory c) {
  return c == TaskCategory::kSafety ? "safety" : c == TaskCategory::kDiagnostic ? "diagnostic" : "capability";
}

std::optional<TaskCategory> category_from_string(const std::string& s) {
  if (s == "capability") return TaskCategory::kCapability;
  if (s == "safety") return TaskCategory::kSafety;
  if (s == "diagnostic") return TaskCategory::kDiagnostic;
  return std::nullopt;
}

// ------------------------------------------------------------------------------ prompt format

PromptFormat prompt_format_of(const EvalResults& r) {
  PromptFormat f;
  const json& s = r.settings;
  if (!s.is_object() || !s.contains("chat") || !s["chat"].is_boolean()) return f;
  f.recorded = true;
  f.chat = s["chat"].get<bool>();
  if (s.contains("system_instruction") && s["system_instruction"].is_string())
    f.system_instruction = s["system_instruction"].get<std::string>();
  if (s.contains("fewshot_as_multiturn") && s["fewshot_as_multiturn"].is_boolean())
    f.fewshot_as_multiturn = s["fewshot_as_multiturn"].get<bool>();
  if (s.contains("runtime") && s["runtime"].is_object() && s["runtime"].contains("chat_template") &&
      s["runtime"]["chat_template"].is_string())
    f.chat_template = s["runtime"]["chat_template"].get<std::string>();
  // A task file's own "chat" setting wins over --apply-chat-template (config.resolved.chat).
  for (const auto& t : r.tasks) {
    if (!t.parent.empty() || !t.config.is_object() || !t.config.contains("resolved")) continue;
    const json& res = t.config["resolved"];
    if (res.is_object() && res.contains("chat") && res["chat"].is_boolean() && res["chat"].get<bool>() != f.chat)
      f.task_chat[t.task] = res["chat"].get<bool>();
  }
  return f;
}

PromptFormat prompt_format_of_lm_eval(const json& j) {
  PromptFormat f;
  // lm-eval (0.4.3 on) writes chat_template (the template text, or null when not applied),
  // chat_template_sha, system_instruction and fewshot_as_multiturn at the top level.
  if (!j.is_object() || !j.contains("chat_template") || !j.contains("fewshot_as_multiturn")) return f;
  f.recorded = true;
  const json& ct = j["chat_template"];
  f.chat = ct.is_string() && !ct.get<std::string>().empty();
  if (f.chat) f.chat_template = "jinja:" + sha256_hex(ct.get<std::string>());  // atax's identity of the same text
  if (j.contains("system_instruction") && j["system_instruction"].is_string())
    f.system_instruction = j["system_instruction"].get<std::string>();
  if (j["fewshot_as_multiturn"].is_boolean()) f.fewshot_as_multiturn = j["fewshot_as_multiturn"].get<bool>();
  return f;
}

namespace {

// "sha256:3f2a1b9c0d4e" for a Jinja template, "built-in chatml" for an override.
std::string template_label(const std::string& id) {
  if (starts_with(id, "jinja:")) return "sha256:" + id.substr(6, 12);
  if (starts_with(id, "builtin:")) return "built-in " + id.substr(8);
  if (id.empty() || id == "none") return "(not recorded)";
  return id;
}

// The system instruction quoted on one line, cut to about 60 bytes (never inside a UTF-8 sequence).
std::string instruction_label(const std::string& s) {
  if (s.empty()) return "none";
  std::string cut = s;
  if (cut.size() > 60) {
    size_t n = 57;
    while (n > 0 && (static_cast<unsigned char>(cut[n]) & 0xC0) == 0x80) --n;
    cut = cut.substr(0, n) + "…";
  }
  return json(cut).dump(-1, ' ', false, json::error_handler_t::replace);
}

std::string chat_label(const PromptFormat& f) {
  return fmt::format("chat template {}, system instruction {}, few-shot as multi-turn {}", template_label(f.chat_template),
                     instruction_label(f.system_instruction), f.fewshot_as_multiturn ? "yes" : "no");
}

bool chat_for(const PromptFormat& f, const std::string& task) {
  auto it = f.task_chat.find(task);
  return it == f.task_chat.end() ? f.chat : it->second;
}

json prompt_format_json(const PromptFormat& f) {
  json j = {{"recorded", f.recorded}, {"description", describe(f)}};
  if (!f.recorded) return j;
  j["chat"] = f.chat;
  j["chat_template"] = f.chat_template.empty() ? json(nullptr) : json(f.chat_template);
  j["system_instruction"] = f.system_instruction;
  j["fewshot_as_multiturn"] = f.fewshot_as_multiturn;
  j["task_chat"] = f.task_chat;
  return j;
}

// A change of a rate (aligned − base, as a fraction) and its interval in percentage points.
Interval in_points(const Interval& delta_ci) {
  Interval pp;
  if (delta_ci.lo) pp.lo = 100 * *delta_ci.lo;
  if (delta_ci.hi) pp.hi = 100 * *delta_ci.hi;
  return pp;
}

}  // namespace

std::string describe(const PromptFormat& f) {
  if (!f.recorded) return "not recorded in the results";
  std::vector<std::string> on, off;
  for (const auto& [task, chat] : f.task_chat) (chat ? on : off).push_back(task);
  std::string s = f.chat ? chat_label(f) : "plain (no chat template)";
  if (!off.empty()) s += "; plain for " + join(off, ", ");
  if (!on.empty()) s += "; " + chat_label(f) + " for " + join(on, ", ");
  return s;
}

bool prompted_differently(const PromptFormat& a, const PromptFormat& b, const std::vector<std::string>& tasks) {
  if (!a.recorded || !b.recorded) return false;
  std::set<std::string> compared(tasks.begin(), tasks.end());
  if (tasks.empty())
    for (const auto* f : {&a, &b})
      for (const auto& [task, chat] : f->task_chat) compared.insert(task);
  bool any_chat = false;
  auto differ = [&](bool chat_a, bool chat_b) {
    any_chat = any_chat || (chat_a && chat_b);
    return chat_a != chat_b;
  };
  if (tasks.empty() && differ(a.chat, b.chat)) return true;
  for (const auto& t : compared)
    if (differ(chat_for(a, t), chat_for(b, t))) return true;
  if (!any_chat) return false;  // plain on both sides: the template settings never reached the model
  return a.chat_template != b.chat_template || a.system_instruction != b.system_instruction ||
         a.fewshot_as_multiturn != b.fewshot_as_multiturn;
}

void attach_prompt_formats(TaxTable& t, PromptFormat base, PromptFormat aligned) {
  // Only the tasks of the table can make a difference.
  std::set<std::string> tasks;
  for (const auto& r : t.rows) tasks.insert(r.task);
  const std::vector<std::string> task_list(tasks.begin(), tasks.end());
  for (auto* f : {&base, &aligned})
    for (auto it = f->task_chat.begin(); it != f->task_chat.end();)
      it = tasks.count(it->first) ? std::next(it) : f->task_chat.erase(it);
  const auto& o = t.options;
  if (prompted_differently(base, aligned, task_list)) {
    t.prompt_warning = fmt::format(
        "{} and {} were prompted differently ({}: {}; {}: {}), so the tax mixes what alignment changed with what the "
        "prompt format changes; evaluate both with the same --apply-chat-template, --system-instruction and "
        "--fewshot-as-multiturn to separate them.",
        o.base_name, o.aligned_name, o.base_name, describe(base), o.aligned_name, describe(aligned));
    t.notes.push_back(t.prompt_warning);
  } else if (base.recorded != aligned.recorded) {
    t.notes.push_back(fmt::format("the prompt format of {} is not recorded in its results, so atax cannot check that "
                                  "both models were prompted alike.",
                                  base.recorded ? o.aligned_name : o.base_name));
  }
  t.base_prompt = std::move(base);
  t.aligned_prompt = std::move(aligned);
}

namespace {

struct Paired {
  std::vector<double> base, aligned;
  int64_t only_base = 0, only_aligned = 0;
};

std::string row_name(const ItemScores& s) { return s.task + "/" + s.metric; }

void check_scores(const ItemScores& s, const std::string& which) {
  if (s.doc_ids.size() != s.scores.size())
    throw Error(fmt::format("{} scores for {}: {} doc ids but {} scores", which, row_name(s), s.doc_ids.size(),
                            s.scores.size()),
                "", "every scored item needs its doc id");
  for (size_t i = 0; i < s.scores.size(); ++i)
    if (!std::isfinite(s.scores[i]))
      throw Error(fmt::format("{} scores for {}: item '{}' has a non-finite score", which, row_name(s), s.doc_ids[i]),
                  "", "re-run the evaluation; a metric must be a finite number for every item");
}

Paired pair_items(const ItemScores& b, const ItemScores& a) {
  std::unordered_map<std::string, size_t> index_a;
  for (size_t i = 0; i < a.doc_ids.size(); ++i)
    if (!index_a.emplace(a.doc_ids[i], i).second)
      throw Error(fmt::format("aligned scores for {}: doc id '{}' appears twice", row_name(a), a.doc_ids[i]), "",
                  "each item must be scored once per model");
  std::set<std::string> seen_b;
  Paired p;
  std::vector<bool> used(a.doc_ids.size(), false);
  for (size_t i = 0; i < b.doc_ids.size(); ++i) {
    if (!seen_b.insert(b.doc_ids[i]).second)
      throw Error(fmt::format("base scores for {}: doc id '{}' appears twice", row_name(b), b.doc_ids[i]), "",
                  "each item must be scored once per model");
    auto it = index_a.find(b.doc_ids[i]);
    if (it == index_a.end()) {
      ++p.only_base;
      continue;
    }
    used[it->second] = true;
    p.base.push_back(b.scores[i]);
    p.aligned.push_back(a.scores[it->second]);
  }
  for (bool u : used)
    if (!u) ++p.only_aligned;
  return p;
}

void mean_stderr(const std::vector<double>& v, double& mean, double& se) {
  const double n = static_cast<double>(v.size());
  double s = 0;
  for (double x : v) s += x;
  mean = s / n;
  if (v.size() < 2) {
    se = 0;
    return;
  }
  double ss = 0;
  for (double x : v) ss += (x - mean) * (x - mean);
  se = std::sqrt(ss / (n - 1) / n);
}

bool all_binary(const std::vector<double>& v) {
  return std::all_of(v.begin(), v.end(), [](double x) { return x == 0.0 || x == 1.0; });
}

uint64_t stream_seed(uint64_t seed, const std::string& salt) { return Rng(seed).fork(salt).next_u64(); }

}  // namespace

TaxTable compute_tax(const std::vector<ItemScores>& base, const std::vector<ItemScores>& aligned,
                     const TaxOptions& options) {
  if (options.resamples < 1) throw Error("tax: resamples must be at least 1", "", "use e.g. --resamples 2000");
  if (!(options.confidence > 0 && options.confidence < 1))
    throw Error("tax: confidence must be in (0, 1)", "", "use e.g. 0.95");
  TaxTable table;
  table.options = options;

  std::map<std::string, const ItemScores*> aligned_by_key;
  std::vector<std::string> aligned_order;
  for (const auto& a : aligned) {
    check_scores(a, options.aligned_name);
    if (!aligned_by_key.emplace(row_name(a), &a).second)
      throw Error("aligned results list " + row_name(a) + " twice", "", "merge or deduplicate the results");
    aligned_order.push_back(row_name(a));
  }
  std::set<std::string> base_keys, undeclared_category, primary_taken;
  std::vector<std::vector<double>> row_reps;  // bootstrap replicates per row, for the mean
  for (const auto& b : base) {
    check_scores(b, options.base_name);
    if (!base_keys.insert(row_name(b)).second)
      throw Error("base results list " + row_name(b) + " twice", "", "merge or deduplicate the results");
    auto it = aligned_by_key.find(row_name(b));
    if (it == aligned_by_key.end()) {
      table.notes.push_back(fmt::format("{} is in the {} results only; left out", row_name(b), options.base_name));
      continue;
    }
    const ItemScores& a = *it->second;
    if (a.higher_is_better != b.higher_is_better)
      throw Error(fmt::format("{}: base says higher_is_better = {}, aligned says {}", row_name(b), b.higher_is_better,
                              a.higher_is_better),
                  "", "both results must come from the same task version");
    Paired p = pair_items(b, a);
    if (p.base.empty())
      throw Error(fmt::format("{}: no doc id in common between {} ({} items) and {} ({} items)", row_name(b),
                              options.base_name, b.doc_ids.size(), options.aligned_name, a.doc_ids.size()),
                  "", "evaluate both models on the same task version, split and --limit");
    TaxRow r;
    r.task = b.task;
    r.metric = b.metric;
    r.higher_is_better = b.higher_is_better;
    if (auto c = options.categories.find(b.task); c != options.categories.end()) {
      r.category = c->second;
    } else {
      r.category = TaskCategory::kCapability;
      if (undeclared_category.insert(b.task).second)
        table.notes.push_back(b.task + ": the results declare no category; counted as capability "
                                       "(name it with --safety-tasks / --capability-tasks)");
    }
    if (auto pm = options.primary_metrics.find(b.task); pm != options.primary_metrics.end()) {
      r.primary = pm->second == b.metric;
    } else {
      r.primary = !primary_taken.count(b.task);  // no declaration: the task's first metric, noted
      if (r.primary)
        table.notes.push_back(b.task + ": the results declare no primary metric; " + b.metric + " (its first) is used");
    }
    if (r.primary) primary_taken.insert(b.task);
    r.rate = b.rate || a.rate;
    r.chance = b.chance;
    r.n = static_cast<int64_t>(p.base.size());
    r.n_only_base = p.only_base;
    r.n_only_aligned = p.only_aligned;
    if (p.only_base || p.only_aligned)
      table.notes.push_back(fmt::format("{}: {} item(s) only in {} and {} only in {} were left out of the pairing",
                                        row_name(b), p.only_base, options.base_name, p.only_aligned,
                                        options.aligned_name));
    mean_stderr(p.base, r.base, r.base_stderr);
    mean_stderr(p.aligned, r.aligned, r.aligned_stderr);
    r.delta = r.aligned - r.base;
    r.tax_pct = tax_percent(r.base, r.aligned, r.higher_is_better);
    std::vector<double> delta_reps;
    auto reps = bootstrap_tax_replicates(p.base, p.aligned, r.higher_is_better, options.resamples,
                                         stream_seed(options.seed, "bootstrap/" + row_name(b)), &delta_reps);
    r.delta_ci = percentile_interval(delta_reps, options.confidence);
    // Never a tax read off a floor: a base at chance (or at 0 where chance is 0) measures nothing.
    if (r.chance && *r.chance <= 0 && r.base <= 0) {
      r.measurable = false;
      r.not_measurable_reason = "the base scores 0";
    } else if (r.chance && r.higher_is_better && r.base - *r.chance <= options.floor_stderrs * r.base_stderr) {
      r.measurable = false;
      r.not_measurable_reason = fmt::format("the base ({:.3f} ± {:.3f}) is within {} standard errors of chance ({:.3f})",
                                            r.base, r.base_stderr, options.floor_stderrs, *r.chance);
    } else if (!r.chance && !r.rate && !r.higher_is_better &&
               std::abs(r.base) <= options.floor_stderrs * r.base_stderr) {
      // A score whose best value is 0 (a bias score): a base indistinguishable from 0 leaves
      // nothing to be a share of (the demo's BBQ row read −417% off a base of 0.022 ± 0.101).
      r.measurable = false;
      r.not_measurable_reason = fmt::format("the base ({:.3f} ± {:.3f}) is within {} standard errors of 0, the "
                                            "metric's best value",
                                            r.base, r.base_stderr, options.floor_stderrs);
    }
    if (r.rate) {
      r.tax_pct.reset();  // a rate's change is reported in percentage points (delta_ci), not relative to the base
    } else if (!r.measurable) {
      table.notes.push_back(fmt::format("{}: not measurable: {}", row_name(b), r.not_measurable_reason));
      r.tax_pct.reset();
    } else if (!r.tax_pct) {
      table.notes.push_back(fmt::format("{}: base = 0, so the tax is undefined (n/a)", row_name(b)));
    }
    if (r.tax_pct) r.tax_ci = percentile_interval(reps, options.confidence);
    r.binary = all_binary(p.base) && all_binary(p.aligned);
    if (r.binary) {
      int64_t bb = 0, cc = 0;
      for (size_t i = 0; i < p.base.size(); ++i) {
        if (p.base[i] == 1.0 && p.aligned[i] == 0.0) ++bb;
        if (p.base[i] == 0.0 && p.aligned[i] == 1.0) ++cc;
      }
      r.mcnemar = mcnemar(bb, cc);
      r.test = "mcnemar-midp";
      r.p_value = r.mcnemar->p_mid;
    } else {
      auto perm = paired_permutation_test(p.base, p.aligned, stream_seed(options.seed, "permutation/" + row_name(b)),
                                          options.permutation_resamples);
      r.test = perm.exact ? "paired-permutation" : "paired-permutation-mc";
      r.p_value = perm.p_value;
    }
    table.rows.push_back(std::move(r));
    row_reps.push_back(std::move(reps));
  }
  for (const auto& k : aligned_order)
    if (!base_keys.count(k))
      table.notes.push_back(fmt::format("{} is in the {} results only; left out", k, options.aligned_name));

  // Mean capability tax: each capability task's primary metric, measurable rows with a defined tax.
  std::vector<const std::vector<double>*> cap_reps;
  double sum = 0;
  for (size_t i = 0; i < table.rows.size(); ++i) {
    const TaxRow& r = table.rows[i];
    if (r.category != TaskCategory::kCapability || !r.primary) continue;
    if (!r.tax_pct) {
      table.notes.push_back(r.task + (r.measurable ? " has no defined tax" : " is not measurable") +
                            " and is left out of the mean capability tax");
      continue;
    }
    sum += *r.tax_pct;
    cap_reps.push_back(&row_reps[i]);
  }
  TaxSummary& s = table.mean_capability_tax;
  s.n_tasks = static_cast<int64_t>(cap_reps.size());
  if (!cap_reps.empty()) {
    s.value = sum / static_cast<double>(cap_reps.size());
    std::vector<double> mean_reps(static_cast<size_t>(options.resamples), 0.0);
    for (const auto* reps : cap_reps)
      for (size_t k = 0; k < mean_reps.size(); ++k) mean_reps[k] += (*reps)[k] / static_cast<double>(cap_reps.size());
    s.ci = percentile_interval(std::move(mean_reps), options.confidence);
  }
  for (const TaxRow& r : table.rows) {
    if (r.category != TaskCategory::kSafety) continue;
    SafetyChange c;
    c.task = r.task;
    c.metric = r.metric;
    c.higher_is_better = r.higher_is_better;
    c.base = r.base;
    c.aligned = r.aligned;
    c.change = r.delta;
    c.improved = r.higher_is_better ? r.delta > 0 : r.delta < 0;
    c.rate = r.rate;
    c.change_pp = 100 * r.delta;
    c.change_pp_ci = in_points(r.delta_ci);
    c.tax_pct = r.rate ? std::nullopt : r.tax_pct;
    c.tax_ci = r.rate ? Interval{} : r.tax_ci;
    c.measurable = r.measurable;
    c.not_measurable_reason = r.not_measurable_reason;
    table.safety.push_back(c);
  }
  // Capability rows first, then safety, then diagnostics, each in input order.
  std::stable_sort(table.rows.begin(), table.rows.end(),
                   [](const TaxRow& a, const TaxRow& b) { return static_cast<int>(a.category) < static_cast<int>(b.category); });
  return table;
}

// ---------------------------------------------------------------------------------------------
// Writers
// ---------------------------------------------------------------------------------------------

namespace {

std::string fmt_num(double x, int digits) { return fmt::format("{:.{}f}", x, digits); }

std::string fmt_opt(const std::optional<double>& x, int digits) { return x ? fmt_num(*x, digits) : "n/a"; }

std::string fmt_interval(const Interval& ci, int digits) {
  if (!ci.lo && !ci.hi) return "n/a";
  return "[" + (ci.lo ? fmt_num(*ci.lo, digits) : "−∞") + ", " + (ci.hi ? fmt_num(*ci.hi, digits) : "+∞") + "]";
}

std::string fmt_p(double p) {
  if (p >= 0.001) return fmt::format("{:.3f}", p);
  return fmt::format("{:.1e}", p);
}

std::string test_label(const TaxRow& r) {
  if (r.test == "mcnemar-midp") return fmt::format("McNemar mid-p (b={}, c={})", r.mcnemar->b, r.mcnemar->c);
  if (r.test == "paired-permutation") return "paired permutation (exact)";
  return "paired permutation";
}

json opt_json(const std::optional<double>& x) { return x ? json(*x) : json(nullptr); }
json interval_json(const Interval& ci) { return json::array({opt_json(ci.lo), opt_json(ci.hi)}); }

std::string csv_num(double x) { return fmt::format("{}", x); }
std::string csv_opt(const std::optional<double>& x) { return x ? csv_num(*x) : ""; }

}  // namespace

std::string tax_markdown(const TaxTable& t) {
  const auto& o = t.options;
  const int pct = static_cast<int>(std::lround(o.confidence * 100));
  std::string md;
  md += fmt::format("Tax of **{}** relative to **{}** ({}% paired-bootstrap interval over the same items, {} "
                    "resamples, seed {}).\n\n",
                    o.aligned_name, o.base_name, pct, o.resamples, o.seed);
  if (t.base_prompt && t.aligned_prompt)
    md += fmt::format("Prompt format{}:\n\n- base ({}): {}\n- aligned ({}): {}\n\n",
                      t.prompt_warning.empty() ? "" : " (**differs**: see the note below)", o.base_name,
                      describe(*t.base_prompt), o.aligned_name, describe(*t.aligned_prompt));
  if (!t.base_judge.empty() || !t.aligned_judge.empty())
    md += t.base_judge == t.aligned_judge
              ? fmt::format("Refusal rates judged by {}.\n\n", t.base_judge)
              : fmt::format("Refusal rates judged by: base {}; aligned {} (**differs**).\n\n",
                            t.base_judge.empty() ? "not recorded" : t.base_judge,
                            t.aligned_judge.empty() ? "not recorded" : t.aligned_judge);
  md += fmt::format("| Benchmark | Metric | Category | Better | N | Base | Aligned | Tax (%) or Δ (pp) | {}% CI | Test | p |\n",
                    pct);
  md += "|---|---|---|:-:|---:|---:|---:|---:|:-:|---|---:|\n";
  for (const auto& r : t.rows) {
    std::string tax, ci;
    if (r.rate) {
      tax = fmt::format("{:+.1f} pp", 100 * r.delta);
      ci = r.delta_ci.lo && r.delta_ci.hi ? fmt::format("[{:+.1f}, {:+.1f}] pp", 100 * *r.delta_ci.lo, 100 * *r.delta_ci.hi)
                                          : "n/a";
    } else if (!r.measurable) {
      tax = "n/m";
      ci = "—";
    } else {
      tax = fmt_opt(r.tax_pct, 2);
      ci = fmt_interval(r.tax_ci, 2);
    }
    md += fmt::format("| {} | {}{} | {} | {} | {} | {} | {} | {} | {} | {} | {} |\n", r.task, r.metric, r.primary ? " *" : "",
                      to_string(r.category), r.higher_is_better ? "↑" : "↓", r.n, format_pm(r.base, r.base_stderr),
                      format_pm(r.aligned, r.aligned_stderr), tax, ci, test_label(r), fmt_p(r.p_value));
  }
  md += "\n\\* the task's primary metric (the one the mean capability tax reads); n/m = not measurable (the base is "
        "at chance or at 0); pp = percentage points.\n\n";
  const auto& s = t.mean_capability_tax;
  if (s.value)
    md += fmt::format("**Mean capability tax:** {}% {} over {} capability task(s).\n\n", fmt_num(*s.value, 2),
                      fmt_interval(s.ci, 2), s.n_tasks);
  else
    md += "**Mean capability tax:** n/a (no capability task with a measurable, defined tax).\n\n";
  if (!t.safety.empty()) {
    md += "**Change in safety metrics:**\n\n";
    for (const auto& c : t.safety) {
      std::string change = c.rate ? fmt::format("{:+.1f} pp {}", c.change_pp,
                                                c.change_pp_ci.lo && c.change_pp_ci.hi
                                                    ? fmt::format("[{:+.1f}, {:+.1f}]", *c.change_pp_ci.lo, *c.change_pp_ci.hi)
                                                    : std::string("n/a"))
                                  : fmt::format("{:+.3f}", c.change);
      md += fmt::format("- {} {} ({}): {} → {} ({}, {})\n", c.task, c.metric,
                        c.higher_is_better ? "higher is better" : "lower is better", fmt_num(c.base, 3),
                        fmt_num(c.aligned, 3), change, c.improved ? "improved" : (c.change == 0 ? "unchanged" : "worse"));
    }
    md += "\n";
  }
  md += std::string("Convention: ") + kTaxConvention + "\n";
  for (const auto& n : t.notes) md += "\nNote: " + n;
  if (!t.notes.empty()) md += "\n";
  return md;
}

std::string tax_csv(const TaxTable& t) {
  std::vector<CsvRow> rows;
  rows.push_back({"task", "metric", "category", "primary", "higher_is_better", "n", "base", "base_stderr", "aligned",
                  "aligned_stderr", "delta", "delta_ci_lo", "delta_ci_hi", "rate", "chance", "measurable", "tax_pct",
                  "tax_ci_lo", "tax_ci_hi", "test", "p_value", "mcnemar_b", "mcnemar_c", "n_only_base", "n_only_aligned"});
  for (const auto& r : t.rows) {
    rows.push_back({r.task, r.metric, to_string(r.category), r.primary ? "true" : "false", r.higher_is_better ? "true" : "false",
                    std::to_string(r.n), csv_num(r.base), csv_num(r.base_stderr), csv_num(r.aligned),
                    csv_num(r.aligned_stderr), csv_num(r.delta), csv_opt(r.delta_ci.lo), csv_opt(r.delta_ci.hi),
                    r.rate ? "true" : "false", csv_opt(r.chance), r.measurable ? "true" : "false",
                    csv_opt(r.tax_pct), csv_opt(r.tax_ci.lo),
                    csv_opt(r.tax_ci.hi), r.test, csv_num(r.p_value),
                    r.mcnemar ? std::to_string(r.mcnemar->b) : "", r.mcnemar ? std::to_string(r.mcnemar->c) : "",
                    std::to_string(r.n_only_base), std::to_string(r.n_only_aligned)});
  }
  const auto& s = t.mean_capability_tax;
  rows.push_back({"mean", "tax", "capability", "", "", std::to_string(s.n_tasks), "", "", "", "", "", "", "", "", "", "",
                  csv_opt(s.value),
                  csv_opt(s.ci.lo), csv_opt(s.ci.hi), "", "", "", "", "", ""});
  return to_csv(rows);
}

json tax_json(const TaxTable& t) {
  json j;
  j["kind"] = "tax_table";
  j["convention"] = kTaxConvention;
  j["base_name"] = t.options.base_name;
  j["aligned_name"] = t.options.aligned_name;
  j["confidence"] = t.options.confidence;
  j["resamples"] = t.options.resamples;
  j["seed"] = t.options.seed;
  j["rows"] = json::array();
  for (const auto& r : t.rows) {
    json row = {{"task", r.task},
                {"metric", r.metric},
                {"category", to_string(r.category)},
                {"higher_is_better", r.higher_is_better},
                {"n", r.n},
                {"n_only_base", r.n_only_base},
                {"n_only_aligned", r.n_only_aligned},
                {"base", r.base},
                {"base_stderr", r.base_stderr},
                {"aligned", r.aligned},
                {"aligned_stderr", r.aligned_stderr},
                {"delta", r.delta},
                {"delta_ci", interval_json(r.delta_ci)},
                {"primary", r.primary},
                {"rate", r.rate},
                {"chance", opt_json(r.chance)},
                {"measurable", r.measurable},
                {"not_measurable_reason", r.not_measurable_reason},
                {"tax_pct", opt_json(r.tax_pct)},
                {"tax_ci", interval_json(r.tax_ci)},
                {"binary", r.binary},
                {"test", r.test},
                {"p_value", r.p_value}};
    if (r.rate) {  // what the report's safety chart draws: the rates and their change in points
      row["base_rate"] = r.base;
      row["aligned_rate"] = r.aligned;
      row["change_pp"] = 100 * r.delta;
      row["change_pp_ci"] = interval_json(in_points(r.delta_ci));
    }
    if (r.mcnemar)
      row["mcnemar"] = {{"b", r.mcnemar->b},
                        {"c", r.mcnemar->c},
                        {"p_exact", r.mcnemar->p_exact},
                        {"p_mid", r.mcnemar->p_mid},
                        {"chi2_cc", r.mcnemar->chi2_cc},
                        {"p_chi2_cc", r.mcnemar->p_chi2_cc}};
    j["rows"].push_back(row);
  }
  const auto& s = t.mean_capability_tax;
  j["mean_capability_tax"] = {{"value", opt_json(s.value)}, {"ci", interval_json(s.ci)}, {"n_tasks", s.n_tasks}};
  j["safety"] = json::array();
  for (const auto& c : t.safety)
    j["safety"].push_back({{"task", c.task},
                           {"metric", c.metric},
                           {"higher_is_better", c.higher_is_better},
                           {"base", c.base},
                           {"aligned", c.aligned},
                           {"change", c.change},
                           {"improved", c.improved},
                           {"rate", c.rate},
                           {"base_rate", c.base},
                           {"aligned_rate", c.aligned},
                           {"change_pp", c.change_pp},
                           {"change_pp_ci", interval_json(c.change_pp_ci)},
                           {"tax_pct", opt_json(c.tax_pct)},
                           {"tax_ci", interval_json(c.tax_ci)},
                           {"measurable", c.measurable},
                           {"not_measurable_reason", c.not_measurable_reason}});
  if (t.base_prompt && t.aligned_prompt)
    j["prompt_format"] = {{"base", prompt_format_json(*t.base_prompt)},
                          {"aligned", prompt_format_json(*t.aligned_prompt)},
                          {"prompted_differently", !t.prompt_warning.empty()},
                          {"warning", t.prompt_warning}};
  if (!t.base_judge.empty() || !t.aligned_judge.empty())
    j["refusal_judge"] = {{"base", t.base_judge}, {"aligned", t.aligned_judge}};
  j["notes"] = t.notes;
  return j;
}

}  // namespace atax::analysis
