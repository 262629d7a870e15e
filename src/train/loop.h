// Internal to the train module: the optimisation loop every trainer shares (AdamW, schedule,
// gradient accumulation over data-parallel ranks, clipping, logs, checkpoints, exact resume).
#pragma once

#include <map>
#include <string>
#include <vector>

#include "dist/dist.h"
#include "train/train.h"

namespace atax::train_detail {

// Sums of per-step quantities; every rank holds the same keys so they can be all-reduced.
using Metrics = std::map<std::string, double>;

// What a trainer plugs into the loop.
class TrainTask {
 public:
  virtual ~TrainTask() = default;
  virtual std::string name() const = 0;  // "pretrain" | "sft" | "dpo"
  virtual int64_t num_examples() const = 0;
  virtual std::vector<std::string> metric_keys() const = 0;
  // The order in which examples are visited, `length` entries long (several epochs; the
  // curriculum lives here). Default: a fresh seeded shuffle per epoch.
  virtual std::vector<int64_t> example_order(int64_t length, uint64_t seed) const;
  virtual std::vector<std::pair<std::string, torch::Tensor>> trainable() = 0;  // fixed order
  // Called on every rank with the global example indices of the step (all micro-batches).
  virtual void begin_step(int64_t step, const std::vector<int64_t>& step_examples, int64_t micro_batches) {}
  // Forward and backward of this rank's share of micro-batch `micro`; adds its sums into `m`.
  virtual void micro_step(int64_t step, int64_t micro, const std::vector<int64_t>& examples, Metrics& m) = 0;
  // After the gradients (and metrics) were summed over ranks, before clipping.
  virtual void after_sync(Metrics& m) {}
  // The step's log fields from the summed metrics; must include "loss".
  virtual json log_fields(const Metrics& m) const = 0;
  // Held-out metrics ({} if none). Called on every rank.
  virtual json evaluate() { return json::object(); }
  // Whether held-out metrics before the first step mean something (not for DPO: all rewards are 0).
  virtual bool evaluate_at_start() const { return false; }
  // Writes the model as an HF folder at `dir` (atomically), with `extra_files` inside.
  virtual void save_model(const fs::path& dir, const json& extra_files) = 0;
  // Task state beyond the HF weights (e.g. LoRA adapters) into / out of the checkpoint archive.
  virtual void save_state(torch::serialize::OutputArchive& archive) {}
  // Restores the trained weights from checkpoint folder `dir` (and the archive).
  virtual void load_state(const fs::path& dir, torch::serialize::InputArchive& archive) = 0;
};

// The resolved configuration of a run with the run-only settings removed: runs that agree on it
// train the same way (resume and finished-run reuse check it).
json training_identity(const json& config);

// If `common.resume` and OUT holds a finished run of the same configuration, returns its result.
std::optional<TrainResult> finished_run(const TrainCommon& common, const json& config);

// Runs the optimisation and writes OUT (see TrainCommon). `config` is the resolved
// configuration (train_config.json), `data_report` goes into data_report.json.
TrainResult run_training(const TrainCommon& common, TrainTask& task, const json& config, const json& data_report);

// configure_threads(common.threads), then joins the job's ranks (dist::init with --threads and the
// device, so a multi-rank job without --threads runs one thread per rank). Every trainer calls it
// first, on every rank.
dist::Context& setup_runtime(const TrainCommon& common);

// JSON of the fields every config shares.
json common_to_json(const TrainCommon& c);

// Whether HF parameter `name` matches a pattern ('*' wildcard; without '*', a substring).
bool name_matches(const std::string& name, const std::string& pattern);
// Layer index of an HF parameter name ("model.layers.3." / "transformer.h.3."), -1 if none.
int64_t layer_of(const std::string& name);

// Writes a JSON line to OUT/train_log.jsonl-like files (append, flushed).
void append_line(const fs::path& path, const std::string& line);

// The cache folder for reference log-probs.
fs::path default_cache_dir();

// ---------------------------------------------------------------------------------------------
// Forward passes shared by the DPO trainer, evaluation and the benchmark
// ---------------------------------------------------------------------------------------------

struct DpoForward {
  PairLogprobs policy;                         // (B,) as the loss uses them (IPO: averaged)
  PairLogprobs reference;                      // (B,) same form, no gradients
  torch::Tensor chosen_sum, chosen_count;      // (B,) raw sums (for NLL on the chosen responses)
  torch::Tensor extra_sum, extra_count;        // (E,) the extra (NLL) sequences, undefined if none
  int64_t tokens = 0;                          // policy tokens forwarded
};

// One concatenated policy forward over [chosen..., rejected..., extra...]; the reference from
// `cached` (rows of the pair table, already in loss form), else from `reference_net` without
// gradients, else (LoRA) from `policy` with its adapters switched off.
DpoForward dpo_forward(CausalLm& policy, CausalLm* reference_net, const std::vector<const PreferencePair*>& pairs,
                       const std::vector<const TokenSequence*>& extra, const PairLogprobs* cached, bool average,
                       int64_t pad_id);

// Sequence log-probs of the chosen and rejected responses of `pairs`, the prompt forwarded once:
// prompts left-padded (B, P) fill a KV cache that is duplicated for [chosen..., rejected...]
// (2B, R, right-padded), so the shared prompt costs one forward instead of two. Same values as
// the concatenated batch up to float rounding; differentiable. Returns (2B,) sums and counts.
SequenceLogprobs shared_prompt_logprobs(CausalLm& net, const std::vector<const PreferencePair*>& pairs, int64_t pad_id);
// The same through one concatenated (2B, P+R) batch (the reference implementation).
SequenceLogprobs concatenated_logprobs(CausalLm& net, const std::vector<const PreferencePair*>& pairs, int64_t pad_id);

// pair_logprobs over a list of pair pointers.
PairTable pair_logprobs_of(CausalLm& net, const std::vector<const PreferencePair*>& pairs, int64_t pad_id,
                           int64_t batch_size);

// Every rank computes its shard of the pairs; the tables are gathered so each rank holds all.
PairTable gathered_pair_logprobs(CausalLm& net, const std::vector<PreferencePair>& pairs, int64_t pad_id,
                                 int64_t batch_size);

// gathered_pair_logprobs, cached on disk under `cache_dir` keyed by the model's content hash,
// the pairs' tokens and `settings`. `*hit` tells whether the cache answered.
PairTable cached_pair_logprobs(CausalLm& net, const std::string& model_hash, const std::vector<PreferencePair>& pairs,
                               int64_t pad_id, int64_t batch_size, const fs::path& cache_dir,
                               const std::string& settings, bool* hit);

// Rows `idx` of a table in loss form.
PairLogprobs table_rows(const PairTable& table, const std::vector<int64_t>& idx, bool average, torch::Device device);

// Summed NLL and scored-token count of sequences [begin, end) (no gradients).
std::pair<double, double> nll_sums(CausalLm& net, const std::vector<TokenSequence>& seqs, int64_t begin, int64_t end,
                                   int64_t pad_id, int64_t batch_size);

// The output projection (lm_head.weight, or the embeddings when tied), shared storage.
torch::Tensor head_of(CausalLm& net);

// The device of a network's parameters.
torch::Device net_device(CausalLm& net);

}  // namespace atax::train_detail
