// eval internals: the stages of evaluate() and the types they hand on. Only src/eval/*.cpp
// include this; other modules use eval.h. One file per stage (docs/DEVELOPING.md has the picture):
//
//   instances.cpp   documents -> prompts and requests per output type (TaskRun, DocPlan)
//   requests.cpp    one request pool per request kind, the SQLite cache, batching -> responses
//   filters.cpp     answer extraction from generated text (lm-eval's filter_list)
//   metric_registry.cpp  metric name -> output types, per-item value, chance, direction, subset
//   aggregate.cpp   per-item values -> MetricResult (mean, stderr, bootstrap), also for shards
//   samples.cpp     the per-item samples log
//   evaluate.cpp    the steps in order
#pragma once

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <unordered_map>
#include <utility>
#include <vector>

#include "eval/eval.h"

namespace atax::eval_detail {

// The seed of one consumer (a bootstrap, a sampled generation) derived from the run's seed and a
// salt naming it ("<task>|acc,none", "<task>/<doc id>"): independent of evaluation order.
uint64_t seed_for(uint64_t seed, const std::string& salt);

// Mean of the non-NaN values; NaN when there are none.
double nanmean(const std::vector<double>& x);

constexpr size_t kNone = static_cast<size_t>(-1);

// ---- requests ---------------------------------------------------------------------------------

// Distinct requests of one kind: identical ones from different items (or tasks) are sent once.
// `keys[i]` is the request's cache key material: the request itself and, under "scope", the
// prompt settings of the task that first asked for it (task, version, few-shot, chat settings);
// identity within a run ignores the scope (the same text gets the same answer), the cache does not.
// `results` is filled by the runner.
template <class Request, class Response>
struct RequestPool {
  std::vector<Request> reqs;
  std::vector<json> keys;
  std::vector<Response> results;
  std::unordered_map<std::string, size_t> index;
  size_t add(Request r, json key) {
    json request_only = key;
    request_only.erase("scope");
    std::string k = request_only.dump();
    auto it = index.find(k);
    if (it != index.end()) return it->second;
    reqs.push_back(std::move(r));
    keys.push_back(std::move(key));
    index.emplace(std::move(k), reqs.size() - 1);
    return reqs.size() - 1;
  }
  size_t size() const { return reqs.size(); }
};

struct CodeRequest {
  std::string program;
  SandboxLimits limits;
};

using LlPool = RequestPool<LoglikelihoodRequest, LoglikelihoodResult>;
using GenPool = RequestPool<GenerateRequest, std::string>;
using CodePool = RequestPool<CodeRequest, json>;  // results: {passed, timed_out, exit_code, reason, stderr}

struct Counters {
  int64_t sent = 0, cached = 0;
};

// The cache's name for "this model, run this way": sha256 of the model's identity and its
// runtime settings (dtype, device kind, context length, chat template).
std::string model_key(const LanguageModel& model);

void run_loglikelihood(LanguageModel& model, LlPool& pool, RequestCache* cache, const EvalOptions& opt, Counters& cnt);
void run_generation(LanguageModel& model, GenPool& pool, RequestCache* cache, const EvalOptions& opt, Counters& cnt);
// Runs programs through opt.code_runner (default: the sandbox), `opt.code_workers` at a time.
void run_code(CodePool& pool, RequestCache* cache, const EvalOptions& opt, Counters& cnt);

// ---- instances --------------------------------------------------------------------------------

struct ChoiceSet {
  std::vector<std::string> continuations;
  std::vector<int> labels;  // 1 = a gold answer
  std::vector<size_t> req;  // into LlPool
  // acc_uncond (PMI): each continuation after `uncond_context` alone, into LlPool; empty unless a
  // metric of the task asks for acc_uncond on this choice set.
  std::string uncond_context;
  std::vector<size_t> req_uncond;
};

struct DocPlan {
  const Doc* doc = nullptr;
  std::string prompt;  // the context sent to the model
  std::string target;  // rendered doc_to_target
  std::string breakdown;
  std::map<std::string, ChoiceSet> choice_sets;
  size_t gen = kNone;               // greedy generation
  std::vector<size_t> gen_samples;  // sampled generations (pass@k)
  std::vector<size_t> code;         // code pool entries: [greedy, samples...]
};

struct TaskRun {
  const TaskSpec* spec = nullptr;
  Dataset data;
  int64_t n_original = 0;
  std::vector<const Doc*> docs;  // after --limit and sharding
  std::vector<DocPlan> plans;
  bool chat = false;
  int num_fewshot = 0;
  json resolved = json::object();
};

struct Pools {
  LlPool ll;
  GenPool gen;
  CodePool code;
};

std::string where_of(const TaskSpec& t);
// A doc field as a string ("" when absent; non-strings as JSON).
std::string field_string(const json& fields, const std::string& key);

// Loads the task's documents, applies --limit and the shard, picks few-shot examples, renders
// every prompt and adds each document's requests to the pools.
void plan_task(const TaskSpec& t, LanguageModel& model, const EvalOptions& opt, Pools& pools, TaskRun& run);
// After generation: each code task's programs (HumanEval: prompt + completion + tests) to the pool.
void plan_code(TaskRun& run, const EvalOptions& opt, Pools& pools);

// HumanEval program: prompt + completion + test + check(entry_point).
std::string humaneval_program(const json& fields, const std::string& completion);

// ---- filters ----------------------------------------------------------------------------------

std::string apply_filter(const FilterSpec& f, std::string s);

// ---- metrics ----------------------------------------------------------------------------------

// What one document's responses came to, per choice set / filter.
struct DocOutcome {
  std::map<std::string, std::vector<double>> logprobs;         // per choice set
  std::map<std::string, std::vector<double>> logprobs_uncond;  // per choice set with acc_uncond
  std::map<std::string, McPrediction> preds;
  std::string response;
  std::map<std::string, std::string> filtered;  // per filter
  int code_n = 0, code_c = 0;
  bool greedy_passed = false;
  RefusalVerdict refusal{false, {}};
};

struct ItemContext {
  const TaskSpec& task;
  const MetricSpec& metric;
  const DocPlan& plan;
  const DocOutcome& outcome;
};

// One entry of the metric registry.
struct MetricDef {
  std::string name;
  std::vector<OutputType> output_types;
  // The item's value; nullopt when the metric does not apply to the item.
  std::optional<double> (*item)(const ItemContext&) = nullptr;
  // The item's value under a uniform guess (multiple choice: the share of gold options); nullopt
  // when chance is not defined for the metric (rates of refusals, bias scores).
  std::optional<double> (*chance)(const ItemContext&) = nullptr;
  // Items of the metric's own subset that have no value still count as bootstrap draws (BBQ's
  // unknown answers in disambiguated contexts).
  bool (*undefined_in_subset)(const json& fields) = nullptr;
  // A share of prompts (refusal, compliance): its change is reported in percentage points.
  bool rate = false;
  // Which way is better: fixed for most metrics; a refusal rate is good on harmful prompts and bad
  // on benign ones, so its task declares it. Task validation fills in and checks the declaration.
  enum class Direction { kHigher, kLower, kTaskDeclares } direction = Direction::kHigher;
};

// The registry entry of `metric`; nullptr when there is none.
const MetricDef* find_metric_def(const std::string& metric);

// The unconditional context of an acc_uncond metric (options.unconditional_context, else OLMES's
// "Answer:").
std::string unconditional_context(const MetricSpec& m);
// The unconditional context the task's acc_uncond metrics on `choice_set` use; nullopt when none
// asks for acc_uncond there (then no unconditional request is made).
std::optional<std::string> unconditional_context_for(const TaskSpec& t, const std::string& choice_set);

bool doc_matches(const json& fields, const std::map<std::string, std::string>& where);

// ---- aggregation ------------------------------------------------------------------------------

// values[metric][doc]: each metric's per-item value (nullopt = not applicable).
using ItemValues = std::vector<std::vector<std::optional<double>>>;
using ItemChances = std::vector<std::vector<std::optional<double>>>;

// Every metric of the task over the documents `doc_idx`: one MetricResult per metric (per group_by
// value), its value the mean of its per-item scores, its stderr closed-form or bootstrapped.
std::vector<MetricResult> aggregate(const TaskRun& run, const std::vector<size_t>& doc_idx, const ItemValues& values,
                                    const ItemChances& chances, const std::string& task_name, const EvalOptions& opt,
                                    json& notes);

// One metric's items over some documents, in evaluation order: what aggregate_metric() reduces.
// evaluate() collects them from the per-item values; merge_shards() concatenates the shards' lists.
struct MetricItems {
  std::vector<std::string> doc_ids;   // the items with a value
  std::vector<double> scores;         // their values
  std::vector<double> draws;          // the bootstrap's draw list: `scores` with NaN at the undefined items
  std::vector<int64_t> undefined_at;  // positions of those NaNs in `draws`
  double chance_sum = 0;              // the items' chance levels summed ...
  int64_t chance_n = 0;               // ... over this many items (a chance level only if every item has one)
};

// The one aggregation, for single-process and sharded runs alike: `items` -> r.value (the mean of
// the scores), r.stderr_ (closed form, or a bootstrap over `draws` seeded by task and metric key),
// r.chance (rounded to 12 decimals, so shards merged by item-weighted means give exactly the
// single-process value), the per-item lists, and r.rate from the metric registry. r's name,
// metric, filter, direction and stderr method must already be set; `items.scores` is non-empty.
void aggregate_metric(MetricResult& r, MetricItems items, int bootstrap_iters, uint64_t seed,
                      const std::string& task_name);

// ---- samples ----------------------------------------------------------------------------------

// The samples-log record of one document (lm-eval's --log_samples layout).
json sample_record(const TaskRun& run, size_t doc, const DocOutcome& outcome, const Pools& pools,
                   const ItemValues& values);

}  // namespace atax::eval_detail
