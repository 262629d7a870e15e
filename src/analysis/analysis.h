// analysis: the alignment tax (what aligning a base model cost, benchmark by benchmark, with a
// paired-bootstrap interval and a paired significance test) and the helpfulness/harmlessness
// tradeoff (utility U = α·helpful + (1 − α)·harmless, the best model per α, the Pareto front).
// Plain data in, plain data out; Markdown / CSV / JSON writers at the end. No LibTorch here.
//
// Tax convention (stated in every table this module writes):
//   higher-is-better metric (accuracy, exact match, pass@1, truthfulness):
//       tax% = (base − aligned) / |base| × 100
//   lower-is-better metric (bias score, attack success rate, over-refusal rate):
//       tax% = (aligned − base) / |base| × 100
//   so a POSITIVE tax always means the aligned model got worse on that metric and a NEGATIVE
//   tax means it improved. With base = 0 the ratio is undefined and reported as "n/a" (null in
//   JSON, empty in CSV), never as NaN or inf.
//   Never a tax read off a floor: where the base is within two standard errors of chance (or at 0
//   where chance is 0, as on generation tasks) the row is "not measurable": shown so, and left out
//   of the mean capability tax. Rates of prompts (refusal, over-refusal) are reported as rates and
//   their change in percentage points, with a paired-bootstrap interval.
//   Which tasks count, and which metric of each: the task file's "category" (capability: the mean
//   capability tax; safety: the safety changes; diagnostic: listed, never taxed) and its
//   "primary_metric", as the results state them. Nothing is inferred from a task's name.
#pragma once

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "core/core.h"
#include "eval/eval.h"

namespace atax::analysis {

// ---------------------------------------------------------------------------------------------
// Inputs
// ---------------------------------------------------------------------------------------------

// Per-item scores of one model on one task and metric, in the order the items were evaluated.
// `doc_ids[i]` identifies the item that scored `scores[i]`; base and aligned are paired by it.
struct ItemScores {
  std::string task, metric;
  bool higher_is_better = true;
  std::vector<std::string> doc_ids;
  std::vector<double> scores;
  std::optional<double> chance;  // a uniform guesser's mean score over these items, where defined
  bool rate = false;             // a share of prompts: its change is reported in percentage points
};

// Which part of the tax table a task belongs to (the task file's "category"). Capability tasks
// enter the mean capability tax; safety tasks are summarised as the change in each safety metric;
// diagnostic tasks are listed and never taxed.
enum class TaskCategory { kCapability, kSafety, kDiagnostic };
std::string to_string(TaskCategory c);
// "capability" | "safety" | "diagnostic" -> category; nullopt otherwise.
std::optional<TaskCategory> category_from_string(const std::string& s);

// ---------------------------------------------------------------------------------------------
// Statistics (exposed for tests and for other reports)
// ---------------------------------------------------------------------------------------------

struct Interval {
  std::optional<double> lo, hi;  // a missing bound is unbounded / undefined ("n/a")
};

// Tax in percent for one metric under the convention above; nullopt when base == 0 and the
// aligned value differs (0 when both are 0: nothing changed).
std::optional<double> tax_percent(double base, double aligned, bool higher_is_better);

// Quantile of sorted data by linear interpolation between order statistics (numpy's default,
// "type 7"). `sorted` must be non-empty and ascending; ±inf entries are allowed and propagate.
double quantile_sorted(const std::vector<double>& sorted, double q);

// Standard normal quantile Φ⁻¹(p) for p in (0, 1) (Wichura's AS241, ~1e-16 relative).
double normal_quantile(double p);

// P(X ≤ k) for X ~ Binomial(n, 1/2): a few ulps for n ≤ 1000, ~1e-9 relative (log space) beyond.
double binomial_half_cdf(int64_t k, int64_t n);

// McNemar's test on the discordant pairs of a paired 2×2 table: b = items the base got right
// and the aligned model got wrong, c = the reverse. Two-sided exact p = min(1, 2·P(X ≤ min(b,c)))
// with X ~ Bin(b + c, 1/2); mid-p subtracts P(X = min(b,c)) once (Fagerland et al. 2013);
// chi2_cc = (|b − c| − 1)² / (b + c) with its asymptotic p. All p = 1 when b + c = 0.
struct McNemar {
  int64_t b = 0, c = 0;
  double p_exact = 1, p_mid = 1, chi2_cc = 0, p_chi2_cc = 1;
};
McNemar mcnemar(int64_t b, int64_t c);

// Paired permutation (sign-flip) test of mean(aligned − base) = 0: two-sided, statistic |Σ d|.
// Exact over all 2^m sign patterns of the m non-zero differences when m ≤ `exact_max` (20),
// otherwise `resamples` seeded random patterns with p = (1 + #{|T*| ≥ |T|}) / (resamples + 1).
struct PermutationTest {
  double p_value = 1;
  bool exact = true;
  int64_t nonzero = 0;
};
PermutationTest paired_permutation_test(const std::vector<double>& base, const std::vector<double>& aligned,
                                        uint64_t seed, int resamples = 10000, int exact_max = 20);

// Wilson score interval for k successes out of n at the given confidence; {0, 1} when n = 0.
Interval wilson_interval(int64_t k, int64_t n, double confidence = 0.95);

// Paired bootstrap of the tax: resamples item indices with replacement (same indices for base and
// aligned), computes tax_percent of the resampled means each time. Returns the replicates
// (±inf where a resampled base mean is 0 and the aligned one is not). Seeded, portable. With
// `delta_replicates`, also the same resamples' aligned − base mean differences.
std::vector<double> bootstrap_tax_replicates(const std::vector<double>& base, const std::vector<double>& aligned,
                                             bool higher_is_better, int resamples, uint64_t seed,
                                             std::vector<double>* delta_replicates = nullptr);

// Percentile interval of replicates at `confidence`; a bound that falls on ±inf is nullopt.
Interval percentile_interval(std::vector<double> replicates, double confidence);

// ---------------------------------------------------------------------------------------------
// The tax table
// ---------------------------------------------------------------------------------------------

struct TaxOptions {
  int resamples = 2000;       // paired-bootstrap resamples per row
  double confidence = 0.95;   // interval level
  uint64_t seed = 1234;       // each row forks its own stream from (seed, task/metric)
  int permutation_resamples = 10000;
  std::map<std::string, TaskCategory> categories;       // task → category (from the results, or overrides)
  std::map<std::string, std::string> primary_metrics;   // task → its primary metric ("acc", "exact_match,flexible-extract")
  double floor_stderrs = 2.0;  // a base within this many standard errors of chance is not measurable
  std::string base_name = "base", aligned_name = "aligned";
};

struct TaxRow {
  std::string task, metric;
  bool higher_is_better = true;
  TaskCategory category = TaskCategory::kCapability;
  int64_t n = 0;                        // paired items
  int64_t n_only_base = 0, n_only_aligned = 0;  // items without a partner (left out)
  double base = 0, base_stderr = 0;     // means over the paired items
  double aligned = 0, aligned_stderr = 0;
  double delta = 0;                     // aligned − base, raw
  std::optional<double> tax_pct;        // nullopt = n/a (base = 0)
  Interval tax_ci;
  Interval delta_ci;                    // paired-bootstrap interval of aligned − base (raw)
  bool primary = false;                 // the task's primary metric (the one the mean reads)
  std::optional<double> chance;         // the base items' chance level, where defined
  bool rate = false;                    // a share of prompts: change reported in points
  bool measurable = true;               // false: the base sits on a floor (see the convention)
  std::string not_measurable_reason;
  bool binary = false;                  // every score is 0 or 1
  std::string test;                     // "mcnemar-midp" | "paired-permutation" | "paired-permutation-mc"
  double p_value = 1;
  std::optional<McNemar> mcnemar;       // set when binary
};

struct TaxSummary {
  std::optional<double> value;  // mean tax% over capability tasks' primary metrics, measurable ones only
  Interval ci;                  // from the rows' bootstrap replicates averaged replicate by replicate
  int64_t n_tasks = 0;
};

struct SafetyChange {
  std::string task, metric;
  bool higher_is_better = true;
  double base = 0, aligned = 0, change = 0;  // change = aligned − base
  bool improved = false;                     // moved in the better direction
  bool rate = false;                         // a rate: change_pp = 100 · change
  double change_pp = 0;
  Interval change_pp_ci;                     // paired bootstrap, percentage points
  std::optional<double> tax_pct;             // the relative tax, for safety metrics that are not rates
  Interval tax_ci;
  bool measurable = true;
  std::string not_measurable_reason;
};

// How one model's prompts were built, as its results record it: plain text, or through a chat
// template (which one, the system instruction, few-shot examples as turns). A tax between two
// models prompted differently measures the prompt format as much as the alignment.
struct PromptFormat {
  bool recorded = false;           // false: the results do not say (then nothing is compared)
  bool chat = false;               // prompts went through a chat template (--apply-chat-template)
  std::string chat_template;       // its identity: "jinja:<sha256 of the text>" | "builtin:<name>" | ""
  std::string system_instruction;  // "" = none
  bool fewshot_as_multiturn = false;
  std::map<std::string, bool> task_chat;  // tasks whose own "chat" setting differs from `chat`
};

// From atax results: settings.chat, settings.system_instruction, settings.fewshot_as_multiturn,
// settings.runtime.chat_template (the tokenizer's template identity) and each task's
// config.resolved.chat. Not recorded when settings has no "chat".
PromptFormat prompt_format_of(const EvalResults& results);
// From an lm-evaluation-harness results document: its top-level chat_template (the text, null when
// not applied), system_instruction and fewshot_as_multiturn. Not recorded when those keys are absent.
PromptFormat prompt_format_of_lm_eval(const json& results_doc);
// One line: "plain (no chat template)" or "chat template sha256:3f2a1b9c0d4e, system instruction
// none, few-shot as multi-turn no", with task overrides after it; "not recorded in the results".
std::string describe(const PromptFormat& f);
// True when both are recorded and what reaches the model on `tasks` (empty: the defaults and every
// overridden task) differs: chat on one side and plain on the other, or, where both chat, the
// template, the system instruction or the few-shot layout.
bool prompted_differently(const PromptFormat& a, const PromptFormat& b, const std::vector<std::string>& tasks = {});

struct TaxTable {
  std::vector<TaxRow> rows;  // capability rows first, then safety, each in input order
  TaxSummary mean_capability_tax;
  std::vector<SafetyChange> safety;
  std::vector<std::string> notes;  // tasks present in one model only, dropped items, ...
  TaxOptions options;
  // Each side's prompt format (set when the table comes from two results files); every writer
  // states both, and `prompt_warning` (also a note) says when they differ.
  std::optional<PromptFormat> base_prompt, aligned_prompt;
  std::string prompt_warning;  // "" = prompted alike, or not recorded
  // The refusal judge each side's refusal rates were scored with (from the results' settings; ""
  // = not recorded). Every writer names them beside the safety rows; a note when they differ.
  std::string base_judge, aligned_judge;
};

// Sets the table's prompt formats (task overrides kept for the table's tasks only) and, when the
// two were prompted differently on those tasks, `prompt_warning` and a note saying so.
void attach_prompt_formats(TaxTable& table, PromptFormat base, PromptFormat aligned);

// One sentence stating the sign convention, written into every output.
extern const char* const kTaxConvention;

// Builds the tax table: pairs each (task, metric) of `base` with the same one of `aligned` by doc
// id, computes means, tax, the bootstrap interval and the paired test. Fails with Error if a
// task/metric appears twice in one input, a doc id repeats within one, the two disagree on
// higher_is_better, a score is not finite, or a shared task has no doc id in common.
TaxTable compute_tax(const std::vector<ItemScores>& base, const std::vector<ItemScores>& aligned,
                     const TaxOptions& options = {});

std::string tax_markdown(const TaxTable& table);
std::string tax_csv(const TaxTable& table);
json tax_json(const TaxTable& table);

// ---------------------------------------------------------------------------------------------
// The helpfulness / harmlessness tradeoff
// ---------------------------------------------------------------------------------------------

// One model: helpfulness = share of legitimate prompts answered (k of n), harmlessness = share of
// harmful prompts refused. `params` holds the settings a sweep varied (e.g. {"beta": 0.1}).
struct TradeoffInput {
  std::string name;
  int64_t helpful_k = 0, helpful_n = 0;
  int64_t harmless_k = 0, harmless_n = 0;
  std::map<std::string, double> params;
};

struct TradeoffPoint {
  TradeoffInput input;
  double helpful = 0, harmless = 0;
  Interval helpful_ci, harmless_ci;  // Wilson
};

struct AlphaBest {
  double alpha = 0;
  size_t index = 0;    // into points
  double utility = 0;  // α·helpful + (1 − α)·harmless
};

struct TradeoffResult {
  std::vector<TradeoffPoint> points;
  std::vector<AlphaBest> best;    // one per α, in grid order
  std::vector<size_t> pareto;     // indices of non-dominated points, by helpfulness ascending
  double confidence = 0.95;
  std::string sweep_param;        // set by sweep_curve()
  std::vector<size_t> sweep;      // indices of points with that param, by its value ascending
};

// U = α·helpful + (1 − α)·harmless.
double utility(double alpha, double helpful, double harmless);

// Parses "0.5" or "lo:hi:step" (inclusive, e.g. "0:1:0.1" → 11 values, rounded to 1e-12) into
// α values in [0, 1]. Fails with Error naming `option` on a malformed spec or a value outside.
std::vector<double> parse_alpha_grid(const std::string& spec, const std::string& option = "--alphas");

// Indices of the non-dominated points (no other point is ≥ on both axes and > on one), sorted
// by helpfulness ascending (harmlessness descending). Equal points are all kept.
std::vector<size_t> pareto_front(const std::vector<std::pair<double, double>>& helpful_harmless);

// Index of the point with the highest utility at `alpha`. Ties (within 1e-12) go to the point with
// the larger helpful + harmless (so the choice is never a dominated point), then to the earlier one.
size_t best_for_alpha(const std::vector<std::pair<double, double>>& helpful_harmless, double alpha);

// Computes rates, Wilson intervals, the best model per α and the Pareto front. Fails with Error
// if a count is negative or k > n, or if `inputs` is empty.
TradeoffResult compute_tradeoff(const std::vector<TradeoffInput>& inputs, const std::vector<double>& alphas,
                                double confidence = 0.95);

// Fills result.sweep with the points that have `param`, ordered by its value (the curve of a sweep).
void sweep_curve(TradeoffResult& result, const std::string& param);

std::string tradeoff_markdown(const TradeoffResult& result);
std::string tradeoff_csv(const TradeoffResult& result);
json tradeoff_json(const TradeoffResult& result);

// ---------------------------------------------------------------------------------------------
// Reading evaluation results
// ---------------------------------------------------------------------------------------------

// Per-task aggregates, per-item scores and task categories of one model's evaluation results.
struct ResultsFile {
  std::string path;
  std::string model_name;
  std::vector<ItemScores> items;  // one entry per (task, metric) with per-item scores
  // Aggregates as the results state them: task → metric → (value, stderr). Metric names are
  // "acc" for the "none" filter and "exact_match,strict-match" otherwise.
  std::map<std::string, std::map<std::string, std::pair<double, double>>> aggregates;
  std::map<std::string, std::map<std::string, bool>> higher_is_better;
  std::map<std::string, int64_t> n_samples;  // task → items evaluated ("n-samples" effective)
  std::map<std::string, TaskCategory> categories;  // from the task's category, where the results say
  std::map<std::string, std::string> primary_metrics;  // from the task's primary_metric, where stated
  std::vector<std::string> notes;  // what was left out (breakdowns)
  PromptFormat prompt_format;      // how the prompts were built, where the results say
  std::string refusal_judge;       // the judge that scored refusal rates ("" = not recorded)
};

// Per-item scores from in-memory evaluation results (atax::evaluate): one ItemScores per top-level
// task and metric (breakdown tasks "task/part" and per-group metrics "metric/part" are left out
// unless `include_breakdowns`, so that no item counts twice in the mean capability tax).
ResultsFile results_from_eval(const EvalResults& results, const std::string& path = {},
                              bool include_breakdowns = false);

// Reads a results file. The atax layout (what `atax eval` writes: per-item scores inline under
// "item_scores") goes through eval's reader; otherwise the lm-evaluation-harness layout is read:
// {"results": {task: {"metric,filter": v, "metric_stderr,filter": e}}, "higher_is_better": {task:
// {metric: bool}}} plus the per-item samples written beside it by --log-samples
// (samples_<task>[_<timestamp>].jsonl, one record per item with "doc_id" and one numeric field per
// metric). Fails with Error naming the file and line.
ResultsFile read_results(const fs::path& path, bool include_breakdowns = false);

// The tax table of two results files (same tasks, same items): categories and primary metrics
// from the results' task configs unless `options` says otherwise (a task whose results state
// neither counts as capability with its first metric, and the table notes it), model names from
// the results. The one tax path: `atax tax`, the demo and the sweeps all call this.
TaxTable compute_tax(const ResultsFile& base, const ResultsFile& aligned, TaxOptions options = {});

// Tradeoff input from a results file: helpfulness from the task/metric `helpful` (share of
// legitimate prompts answered), harmlessness from `harmless` (share of harmful prompts refused),
// each "task" or "task/metric" (the metric may be left out when the task has one; task names may
// themselves contain '/'), or "auto": helpful = the first of toy_xstest/over_refusal_rate,
// xstest/over_refusal_rate present; harmless = the first of toy_harmbench/refusal_rate,
// harmbench/refusal_rate, advbench/refusal_rate. Per-item binary scores give k/n; without them,
// round(aggregate × n-samples). A lower-is-better metric is read as its complement (over-refusal
// rate → answered, attack success rate → refused). Fails with Error if a task or metric is
// missing, ambiguous, or its item scores are not 0/1.
TradeoffInput tradeoff_input_from_results(const ResultsFile& results, const std::string& helpful = "auto",
                                          const std::string& harmless = "auto");

}  // namespace atax::analysis
