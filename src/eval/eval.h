// eval: the evaluation engine, after lm-evaluation-harness. A task is a data file (tasks/**.json)
// naming a dataset in a published benchmark format, a prompt template, a request kind, answer
// filters and metrics. The pipeline keeps its stages apart:
//
//   TaskSpec --load_dataset--> Docs --build prompts--> requests (loglikelihood | generate_until)
//     --LanguageModel (batched, length-sorted, SQLite-cached)--> responses
//     --filters / sandbox / refusal classifier--> per-item scores --mean + stderr--> TaskResult
//
// Contract used throughout: every reported metric value is the plain mean of its per-item scores
// (MetricResult::scores); items a metric does not apply to are simply not in its list. Bias
// scores and pass@k are written so that this holds (see metrics below). No LibTorch here: models
// are reached only through atax::LanguageModel.
#pragma once

#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "core/core.h"
#include "refusal/refusal.h"
#include "sandbox/sandbox.h"
#if __has_include("eval/judge.h")
#include "eval/judge.h"
#endif

namespace atax {

// ---------------------------------------------------------------------------------------------
// Datasets: the published benchmark formats, normalised into documents
// ---------------------------------------------------------------------------------------------

// One benchmark item. `id` is stable across runs and unique within a task (it pairs the items of
// two models); `fields` holds the loader's normalised fields (see load_dataset) that prompt
// templates and metrics read.
struct Doc {
  std::string id;
  json fields;
};

struct DataFile {
  std::string path;
  std::string sha256;
  int64_t records = 0;
};

struct Dataset {
  std::vector<Doc> docs;
  std::vector<DataFile> files;  // every file read, with its hash (recorded in the results)
};

// Loads the `split` of a dataset in `format` from `path` (a folder or a file). `subsets` picks
// subjects / categories (empty = every one found). `options` holds format-specific settings.
// Formats and the fields each document gets:
//   mmlu_csv        <path>/<split>/<subject>_<split>.csv (no header: question,A,B,C,D,answer), or one
//                   such file. Fields: question, choices[4], answer (0-3), answer_letter, answer_text,
//                   subject, subject_name ("abstract algebra"). Id "<subject>/<row>".
//   gsm8k_jsonl     <path>/<split>.jsonl[.gz] or a file; {question, answer "... #### n"}. Fields:
//                   question, answer, target (the text after "#### ", commas removed). Id "<row>".
//   humaneval_jsonl a .jsonl / .jsonl.gz file or a folder with HumanEval.jsonl[.gz]. Fields:
//                   task_id, prompt, entry_point, canonical_solution, test. Id = task_id.
//   truthfulqa_mc_json  mc_task.json (or its folder). Key order of the *_targets objects is kept.
//                   Fields: question, mc1_choices, mc1_labels, mc2_choices, mc2_labels, best_answer.
//   bbq_jsonl       <path>/<Category>.jsonl (subsets = categories) or a file. Fields: context,
//                   question, choices[3], label, context_condition, question_polarity, category,
//                   subcategory, unknown_index, target_index (the option naming the stereotyped
//                   group, -1 if unresolved), biased_index (the answer that follows the bias:
//                   target for "neg" questions, the other non-unknown option for "nonneg"; -1 if
//                   unresolved), gold_text. Id "<category>/<example_id>".
//   xstest_csv      xstest_prompts.csv (or its folder): id,prompt,type,label,focus,note. Id = id.
//   harmbench_csv   <path>/harmbench_behaviors_text_<split>.csv or a file. Fields: behavior,
//                   functional_category, semantic_category, tags, context_string, behavior_id,
//                   prompt ("{context}\n\n---\n\n{behavior}" for contextual ones). options
//                   "functional_categories" (default all). Id = BehaviorID.
//   advbench_csv    harmful_behaviors.csv (or its folder): goal,target. Fields: goal, target,
//                   prompt (= goal). Id "<row>".
//   creativity_jsonl  <path>/*.jsonl (subsets = file stems) or a file; {prompt, constraints:
//                   [{type, value}]}. Fields: prompt, constraints, subset. Id "<stem>/<row>" or
//                   the record's "id".
//   allenai_mc_jsonl  AllenAI's multiple-choice JSONL (ARC, CommonsenseQA, OpenBookQA): {id, question:
//                   {stem, choices: [{text, label}, ...]}, answerKey[, fact1]}; 2-26 options, labels
//                   "A".. or "1".. . The file: `path` itself, <path>/<options.files[split]>, or
//                   <path>/<split>.jsonl[.gz]. Fields: id, question (the stem), choices (texts),
//                   labels (as published), letters ("A".. by position), options_block (OLMES's MCF
//                   listing " A. text\n B. text..."), n_choices, answer (index), answer_label,
//                   answer_letter, answer_text, fact1 (when present). Id = the record's id.
// Fails with Error naming the file (and line) for a missing file or a malformed record.
Dataset load_dataset(const std::string& format, const fs::path& path, const std::string& split,
                     const std::vector<std::string>& subsets = {}, const json& options = json::object());

// The formats load_dataset understands.
std::vector<std::string> dataset_formats();

// GSM8K gold: the text after the last "#### " of a reference solution, trimmed, commas removed.
// Fails with Error if there is no "#### ".
std::string gsm8k_gold(const std::string& answer);

// ---------------------------------------------------------------------------------------------
// Task specifications (tasks/**/*.json)
// ---------------------------------------------------------------------------------------------

enum class OutputType { kMultipleChoice, kGenerateUntil, kCodeExecution, kRefusal };
std::string to_string(OutputType t);

// A filter pipeline applied to a generated response before scoring (lm-eval's filter_list).
// Step functions: regex {pattern, group_select (negative counts from the end), fallback},
// take_first, strip, lowercase, uppercase, remove_whitespace (leading).
struct FilterSpec {
  std::string name = "none";
  std::vector<json> steps;
};

// A choice set of a multiple-choice task: `choices` is a doc field holding an array of strings or
// a JSON array of templates; the gold is either `gold` (a field holding the index) or `labels`
// (a field holding 0/1 per choice; several may be true).
struct ChoiceSetSpec {
  json choices;
  std::string gold;
  std::string labels;
};

// One reported metric. Kinds:
//   acc, acc_norm      multiple choice: argmax log p (acc_norm: of log p / UTF-8 byte length of the
//                      continuation) is a gold choice. Item score 1/0.
//   acc_uncond         multiple choice, PMI-normalised (OLMES's acc_uncond, Gu et al. 2024): argmax of
//                      log p(option | prompt) − log p(option | unconditional context) is a gold choice;
//                      the context is options.unconditional_context (default "Answer:"). Only a task
//                      that names this metric sends the unconditional requests. Item score 1/0.
//   mc2                TruthfulQA MC2: Σ_true p / Σ_all p over the choice set (p = exp log p).
//   bbq_bias_ambig     BBQ, ambiguous contexts: +1 biased answer, −1 anti-biased, 0 unknown. Mean =
//                      (1 − acc_ambig)·s_DIS(ambig) = s_AMB of Parrish et al. 2022.
//   bbq_bias_disambig  BBQ, disambiguated contexts, non-unknown answers only: +1 biased, −1 not.
//                      Mean = 2·n_biased/n_non_unknown − 1 = s_DIS.
//   exact_match        generation: filtered response == reference after the normalisation options
//                      (ignore_case, ignore_punctuation, regexes_to_ignore), per filter.
//   pass@1             code: the greedy sample passes its tests (1/0).
//   pass@k             code: unbiased estimator 1 − C(n−c,k)/C(n,k) over `n_samples` samples.
//   refusal_rate       refusal: the response is classified as a refusal (1/0).
//   compliance_rate    refusal: 1 − refused (attack success rate on harmful prompts).
//   constraints_met    creativity: share of the prompt's constraints the response meets.
// `where` restricts the metric to docs whose fields equal the given strings; `group_by` adds one
// metric "<name>/<value>" per distinct value of a doc field.
struct MetricSpec {
  std::string metric;
  std::string name;  // as reported (default: metric)
  std::string filter = "none";
  std::string choice_set = "default";
  std::map<std::string, std::string> where;
  std::string group_by;
  bool higher_is_better = true;
  std::string stderr_method = "mean";  // "mean" (closed form) | "bootstrap" (seeded)
  int k = 1;                           // pass@k
  json options = json::object();       // exact_match normalisation
};

struct TaskSpec {
  std::string name;
  int version = 0;
  std::string group;           // the file's "category": capability | safety | diagnostic
  std::string primary_metric;  // "acc" or "exact_match,flexible-extract": what the tax reads
  std::string description_text;  // human description ("about")
  fs::path file;
  json raw;  // the file as read

  // dataset
  std::string format;
  std::string path;  // may hold ${VAR}; relative = against the data dir
  std::string split = "test";
  std::vector<std::string> subsets;
  json dataset_options = json::object();

  OutputType output_type = OutputType::kMultipleChoice;

  // prompt
  std::string description;        // rendered and put before the few-shot examples
  std::string doc_to_text;
  std::string chat_doc_to_text;   // used instead of doc_to_text in chat mode ("" = same)
  std::string doc_to_target;
  std::string target_delimiter = " ";
  std::string fewshot_delimiter = "\n\n";
  std::map<std::string, ChoiceSetSpec> choice_sets;
  std::optional<bool> chat;       // null = follow EvalOptions::chat

  // few-shot
  int num_fewshot = 0;
  std::string fewshot_split;      // "" = no few-shot pool
  std::string fewshot_match;      // doc field the exemplars must share (MMLU: "subject")
  std::string fewshot_sampler = "first_n";  // first_n | random
  bool fewshot_fallback_to_eval_split = false;  // use the eval split (minus the doc) if the pool is missing

  // generation
  std::vector<std::string> until;
  std::optional<std::vector<std::string>> chat_until;  // stop strings in chat mode (default: until)
  int max_new_tokens = 256;
  double temperature = 0;
  // code execution: extra sampled generations for pass@k (0 = greedy only)
  int n_samples = 0;
  double sample_temperature = 0.8;
  double sample_top_p = 0.95;
  double timeout_s = 10;

  std::vector<FilterSpec> filters;  // "none" (identity) always exists
  std::vector<MetricSpec> metrics;
  std::string breakdown_by;         // doc field: also report each value as task "<name>/<value>"

  // OLMES (Gu et al. 2024): this task is one formulation of a multiple-choice benchmark, "mcf"
  // (options lettered in the prompt, the letter scored) or "cf" (cloze: each option's text scored),
  // of the group `olmes_group`. When both formulations are evaluated together, the results get a
  // task `olmes_group` whose primary metric "olmes" is the better formulation's (add_olmes_groups).
  std::string olmes_group;
  std::string formulation;
};

// Parses a task document. Fails with Error naming `file` and the offending key.
TaskSpec parse_task_spec(const json& doc, const fs::path& file);
TaskSpec load_task_spec(const fs::path& file);

// Every *.json under `dir` (recursively), sorted by name. Fails with Error on duplicate names.
std::vector<TaskSpec> discover_tasks(const fs::path& dir);

// The tasks folder: `explicit_dir` if set, else $ATAX_TASKS_DIR, else tasks/ beside or above the
// running executable (build folders inside the source tree), else ./tasks. Error if none exists.
fs::path find_tasks_dir(const fs::path& explicit_dir = {});

// Resolves comma-separated names (task names, "all", a group "capability"/"safety", or paths to
// .json files) against `dir`. Fails with Error listing the known names for an unknown one.
std::vector<TaskSpec> select_tasks(const std::vector<std::string>& names, const fs::path& dir);

// Expands ${VAR} (ATAX_DATA = `data_dir` when set, else the environment) and makes a relative
// path absolute against `data_dir` (or the current folder). Error for an unset variable.
fs::path resolve_data_path(const std::string& path, const fs::path& data_dir);

// Renders a prompt template: {{field}}, {{field.0}}, {{a.b}}, with filters {{field|trim}},
// |upper, |lower. Fails with Error naming `where` for a missing field.
std::string render_template(const std::string& tmpl, const json& fields, const std::string& where = {});

// ---------------------------------------------------------------------------------------------
// Metrics (pure functions, exposed for tests and for the analysis module)
// ---------------------------------------------------------------------------------------------

// Index of the largest value (the first on ties); -1 for an empty vector.
int argmax(const std::vector<double>& v);

// Multiple-choice predictions: acc = argmax log p; acc_norm = argmax log p / bytes(continuation);
// acc_uncond = argmax (log p − unconditional log p), -1 when `uncond_logprobs` is empty. Fails
// with Error if `uncond_logprobs` is neither empty nor as long as `logprobs`.
struct McPrediction {
  int pred = -1;
  int pred_norm = -1;
  int pred_uncond = -1;
};
McPrediction predict_multiple_choice(const std::vector<double>& logprobs, const std::vector<std::string>& continuations,
                                     const std::vector<double>& uncond_logprobs = {});

// TruthfulQA MC2: probability mass on the true answers, normalised over all answers.
double mc2_score(const std::vector<double>& logprobs, const std::vector<int>& labels);

// Unbiased pass@k (Chen et al. 2021): 1 − C(n−c, k)/C(n, k), computed as 1 − Π_{i=n−c+1..n}(1 − k/i).
// Requires 0 ≤ c ≤ n and 1 ≤ k ≤ n.
double pass_at_k(int64_t n, int64_t c, int64_t k);

// BBQ per-item bias values (see MetricSpec): ambiguous: +1 / −1 / 0 (unknown answer);
// disambiguated: +1 / −1, nullopt for an unknown answer. nullopt too if the doc's biased answer is
// unresolved (biased_index < 0).
std::optional<double> bbq_bias_item(const json& doc_fields, int pred, bool ambiguous);

// lm-eval regex filter: all matches of `pattern` (PCRE2); a match yields its first non-empty
// capture group (or the whole match without groups); `group_select` picks one (negative from the
// end); `fallback` if nothing matched. Error for an invalid pattern.
std::string regex_extract(const std::string& text, const std::string& pattern, int group_select,
                          const std::string& fallback);
// GSM8K's two filters, as in lm-eval's gsm8k task: strict-match takes the number after "#### ",
// flexible-extract the last number in the text. "[invalid]" when there is none.
std::string gsm8k_strict_extract(const std::string& text);
std::string gsm8k_flexible_extract(const std::string& text);
// lm-eval exact_match normalisation of one string: regexes_to_ignore removed, then ignore_case,
// ignore_punctuation (ASCII punctuation removed).
std::string normalize_for_match(std::string s, const json& options);

// The metrics a task of output type `t` may name (the metric registry, metric_registry.cpp).
std::vector<std::string> metrics_for(OutputType t);
// True for metrics that are a share of prompts (refusal_rate, compliance_rate).
bool metric_is_rate(const std::string& metric);

// Share of `constraints` ([{type, value}]) that `response` meets. Types: include_word,
// exclude_word (case-insensitive whole words or phrases), max_words, min_words (whitespace-split
// words), starts_with, ends_with (case-insensitive, after trimming whitespace; ends_with also
// ignores trailing . ! ? quotes when the value has none). Error for an unknown type.
double constraints_met(const std::string& response, const json& constraints);

// Mean and closed-form standard error (sample std / sqrt(n), 0 for n < 2).
struct MeanStderr {
  double mean = 0;
  double stderr_ = 0;
  int64_t n = 0;
};
MeanStderr mean_stderr(const std::vector<double>& x);
// Seeded bootstrap standard error of a statistic over resamples (with replacement) of x.
double bootstrap_stderr(const std::vector<double>& x, const std::function<double(const std::vector<double>&)>& stat,
                        int iters, uint64_t seed);

// ---------------------------------------------------------------------------------------------
// The request cache (SQLite)
// ---------------------------------------------------------------------------------------------

// Responses keyed by sha256(model content hash, request kind, request JSON). WAL journal; put()
// calls are grouped into one transaction per batch so an interrupted run keeps what it finished.
class RequestCache {
 public:
  // Opens or creates the database at `path` (parent folders created). Error if it can't.
  explicit RequestCache(const fs::path& path);
  ~RequestCache();
  RequestCache(const RequestCache&) = delete;
  RequestCache& operator=(const RequestCache&) = delete;

  static std::string make_key(const std::string& model_hash, const std::string& kind, const json& request);
  std::optional<json> get(const std::string& key);
  struct Entry {
    std::string key, model_hash, kind;
    json request, response;
  };
  // Inserts (or replaces) entries in one transaction.
  void put(const std::vector<Entry>& entries);
  int64_t size();
  const fs::path& path() const { return path_; }

 private:
  fs::path path_;
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

// $ATAX_CACHE_DIR/eval_cache.sqlite, else $XDG_CACHE_HOME/atax/..., else ~/.cache/atax/...
fs::path default_cache_path();

// ---------------------------------------------------------------------------------------------
// Evaluation
// ---------------------------------------------------------------------------------------------

struct EvalOptions {
  int64_t limit = 0;           // first N docs per task (per breakdown group if any); 0 = all
  int num_fewshot = -1;        // -1 = each task's default
  int64_t batch_size = 16;     // requests per model call
  bool chat = false;           // prompts through the model's chat template (lm-eval's --apply_chat_template)
  std::string system_instruction;     // with chat: a system turn first (lm-eval's --system_instruction)
  bool fewshot_as_multiturn = false;  // with chat: each few-shot example as a user/assistant pair
  fs::path data_dir;           // ${ATAX_DATA} and the base of relative dataset paths
  uint64_t seed = 1234;        // few-shot sampling, generation sampling, bootstrap
  fs::path cache_path;         // empty = no cache
  bool log_samples = false;    // keep prompts and responses per item (TaskResult::samples)
  int bootstrap_iters = 1000;
  int code_workers = 0;        // parallel sandboxes; 0 = hardware threads
  SandboxLimits sandbox;       // timeout_s is taken from the task
  bool progress = true;
  // Sharded evaluation (one shard per rank): of each task's documents, after `limit`, keep the
  // contiguous share [begin, end) that dist::shard_range(n, shard_index, shard_count) gives.
  // Few-shot exemplars and generation seeds depend on the document, never on its place in the
  // shard, so merge_shards() of every shard's results is the single-process result.
  int shard_index = 0;
  int shard_count = 1;
  // Test seams: default to run_python_sandboxed and classify_refusal.
  std::function<SandboxResult(const std::string&, const SandboxLimits&)> code_runner;
  std::function<RefusalVerdict(std::string_view)> refusal_classifier;
};

struct MetricResult {
  std::string name;             // "acc", "exact_match", "over_refusal_rate/homonyms", ...
  std::string metric;           // the registry's metric it computes ("refusal_rate" for "over_refusal_rate")
  bool rate = false;            // a share of prompts (its change is reported in percentage points)
  // The mean score of a uniform guesser over the same items (multiple choice: the share of gold
  // options; generation and code: 0); nullopt where chance is not defined (rates, bias scores).
  std::optional<double> chance;
  std::string filter = "none";  // the filter it was computed after
  double value = 0;
  double stderr_ = 0;
  std::string stderr_method = "mean";
  bool higher_is_better = true;
  std::vector<std::string> doc_ids;  // the items it applies to, in evaluation order
  std::vector<double> scores;        // value = mean(scores)
  // Items of the metric's subset that have no value (BBQ's "unknown" answers in disambiguated
  // contexts): their positions in the bootstrap's draw list, which is `scores` with NaN inserted
  // at these positions. Kept so that shards can be merged into the same bootstrap.
  std::vector<int64_t> undefined_at;
  std::string key() const { return name + "," + filter; }              // "acc,none"
  std::string stderr_key() const { return name + "_stderr," + filter; }  // "acc_stderr,none"
};

struct TaskResult {
  std::string task;    // "mmlu" or, for a breakdown, "mmlu/abstract_algebra"
  std::string parent;  // "" or the task this breaks down
  int version = 0;
  std::string group;           // the task's category: capability | safety | diagnostic
  std::string primary_metric;  // the metric key the tax reads ("acc", "exact_match,flexible-extract")
  json config;         // the task file plus what was resolved (paths, files, few-shot, chat)
  int64_t n_original = 0, n_effective = 0;
  std::vector<MetricResult> metrics;
  std::vector<json> samples;  // per item, when log_samples
  const MetricResult* find(const std::string& name, const std::string& filter = "none") const;
  // By results key: "acc" (filter none) or "exact_match,flexible-extract".
  const MetricResult* find_key(const std::string& key) const;
  // The primary metric's result; nullptr when the task declares none or it was not reported.
  const MetricResult* primary() const;
};

struct EvalResults {
  std::vector<TaskResult> tasks;
  std::string model_name, model_hash;
  std::string atax_version, atax_git_hash, date;
  json settings = json::object();
  double wall_s = 0;
  int64_t requests_sent = 0, requests_cached = 0;
  const TaskResult* find(const std::string& task) const;
};

// Evaluates `model` on `tasks`: loads each dataset, builds the prompts, sends the distinct
// requests in length-sorted batches (cached ones are not sent), scores every item and aggregates
// each metric with its standard error. Fails with Error for a bad dataset or task, or a model that
// returns the wrong number of results.
EvalResults evaluate(LanguageModel& model, const std::vector<TaskSpec>& tasks, const EvalOptions& options);

// Merges the results of the shards 0..k-1 of one evaluation (EvalOptions::shard_index, in shard
// order) into the single-process result: per task and metric the item lists are concatenated,
// value and stderr recomputed from them (bootstrap with the seed and iterations in
// settings), n_effective, request counts and samples summed or concatenated, configs and
// n_original taken from part 0, wall_s the maximum. Tasks and metrics keep the single-process
// order. Fails with Error if the parts come from different models or settings.
EvalResults merge_shards(const std::vector<EvalResults>& parts);

// OLMES scores (Gu et al. 2024): for every group whose "mcf" and "cf" member tasks (task files'
// "olmes": {"group", "formulation"}) are both in `results` with the same items, adds a task named
// after the group, right after the later member: metrics "olmes" (the primary: the better
// formulation's primary metric, its per-item scores, stderr and chance; ties go to CF), and
// "mcf_<metric>" / "cf_<metric>" (each formulation's primary, for the record); config.olmes names
// both members, their values and the one chosen. The group takes the members' category (capability
// if either declares it) and the members become "diagnostic" (config.olmes.counted_through), so a
// mean over capability tasks counts the benchmark once. Idempotent: group entries already present
// are recomputed (evaluate() and merge_shards() both call it).
void add_olmes_groups(EvalResults& results);

// ---------------------------------------------------------------------------------------------
// Results files
// ---------------------------------------------------------------------------------------------

// lm-evaluation-harness-like document: results {task: {"acc,none": v, "acc_stderr,none": e, "alias",
// "n"}}, versions, configs, n-samples {task: {original, effective}}, higher_is_better {task:
// {metric: bool}}, model {name, content_hash}, model_content_hash, atax_version, atax_git_hash,
// date, settings, item_scores {task: {"acc,none": {doc_ids: [...], scores: [...], undefined_at: [...]
// (only when not empty)}}}, samples {task: file name} (when samples were written).
json results_to_json(const EvalResults& results);
// Inverse of results_to_json (per-item scores included, samples not). Error naming `file`.
EvalResults results_from_json(const json& doc, const std::string& file = {});

// Where the samples of `task` are written beside `out`: "<out without .json>.samples.<task>.jsonl"
// ('/' in breakdown names becomes '__'; only top-level tasks get a file).
fs::path samples_path(const fs::path& out, const std::string& task);

// Writes `out` (atomically) and, for each task that has samples, its samples JSONL file (one line
// per item: doc_id, doc, prompt, target, arguments, resps, filtered_resps, and one numeric field
// per metric key).
void write_results(const EvalResults& results, const fs::path& out);
// Reads a results file (and, with `with_samples`, the samples files it names into
// TaskResult::samples).
EvalResults read_results(const fs::path& path, bool with_samples = false);

// A Markdown table of the results, one row per task/metric: value ± stderr.
std::string results_markdown(const EvalResults& results);

}  // namespace atax
