// train: alignment training on LibTorch. Pretraining (packed sequences), SFT (loss on response
// tokens), the DPO family (sigmoid, IPO, hinge, robust) with regularized, selective, multi-task
// (DPO + w·NLL) and curriculum variants, data-quality filters, a frozen or precomputed reference,
// LoRA, checkpoints that resume exactly, and weight interpolation (merge).
//
// Shape legend: B pairs, N sequences (2B for a concatenated chosen+rejected batch, plus NLL
// sequences), T time, C hidden, V vocab, M scored (target) positions.
#pragma once

#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include <torch/torch.h>

#include "core/core.h"
#include "model/model.h"
#include "tokenizer/tokenizer.h"

namespace atax {

// ---------------------------------------------------------------------------------------------
// Losses (TRL's DPOTrainer.dpo_loss formulas)
// ---------------------------------------------------------------------------------------------

enum class DpoLossType { kSigmoid, kIpo, kHinge, kRobust };

// "sigmoid" | "ipo" | "hinge" | "robust"; Error listing the names otherwise.
DpoLossType dpo_loss_type_from_name(const std::string& name);
std::string dpo_loss_type_name(DpoLossType type);

// Sequence log-probs of the chosen and rejected responses, (B,) each: summed over response
// tokens (IPO: averaged over them, as TRL does).
struct PairLogprobs {
  torch::Tensor chosen, rejected;
};

struct DpoLossTerms {
  torch::Tensor losses;            // (B,) per-pair loss, differentiable wrt the policy log-probs
  torch::Tensor rewards_chosen;    // (B,) β·(π_c − ref_c), detached
  torch::Tensor rewards_rejected;  // (B,) β·(π_r − ref_r), detached
};

// With h = (π_c − π_r) − (ref_c − ref_r) and label smoothing ε:
//   sigmoid: −(1−ε)·log σ(βh) − ε·log σ(−βh)
//   robust:  (−(1−ε)·log σ(βh) + ε·log σ(−βh)) / (1 − 2ε)
//   hinge:   relu(1 − βh)
//   ipo:     (h − 1/(2β))²
// The reference log-probs are treated as constants. Fails with Error for β ≤ 0, ε outside [0, 0.5)
// (robust) or [0, 1] (sigmoid).
DpoLossTerms dpo_loss(const PairLogprobs& policy, const PairLogprobs& reference, DpoLossType type,
                      double beta, double label_smoothing = 0);

// Σ‖θ − θ_ref‖² over matching tensors, differentiable wrt `params` (its gradient is 2(θ − θ_ref)).
torch::Tensor l2_to_reference(const std::vector<torch::Tensor>& params, const std::vector<torch::Tensor>& reference);
// The same term without autograd, for the trainer: adds 2λ(θ − θ_ref) into every param's .grad()
// (creating it if undefined) and returns Σ‖θ − θ_ref‖².
double add_l2_reference_grad(const std::vector<torch::Tensor>& params, const std::vector<torch::Tensor>& reference,
                             double lambda);

// ---------------------------------------------------------------------------------------------
// Token sequences and their log-probs
// ---------------------------------------------------------------------------------------------

// One training sequence: ids[0, prompt_len) are context, ids[prompt_len, end) are scored.
struct TokenSequence {
  std::vector<int32_t> ids;
  int64_t prompt_len = 0;
};

// A right-padded batch. Padding sits after every real token, so with a causal mask it changes
// nothing and no attention mask is needed.
struct TokenBatch {
  torch::Tensor input_ids;  // (N,T) int64
  torch::Tensor scored;     // (N,T-1) bool: position t predicts input_ids[:, t+1], which is scored
  int64_t tokens = 0;       // real (non-pad) tokens in the batch
};

TokenBatch make_token_batch(const std::vector<const TokenSequence*>& seqs, int64_t pad_id, torch::Device device);

struct SequenceLogprobs {
  torch::Tensor sum;    // (N,) Σ log p(scored tokens), float32, differentiable
  torch::Tensor count;  // (N,) number of scored tokens, float32
};

// Log-probs of the scored tokens only: final hidden states at the scored positions go through
// lm_head and log_softmax (no (N,T,V) logits), then are summed per sequence.
SequenceLogprobs sequence_logprobs(CausalLm& net, const TokenBatch& batch);

// x (M,K) · wᵀ (N,K) -> (M,N), differentiable. On CPU float32 with M ≥ 16 and a slow BLAS
// (Debian's reference libblas, ~5 GFLOP/s) it runs as a 1×1 convolution through oneDNN, ~5×
// faster; with OpenBLAS it is torch::linear.
torch::Tensor fast_linear(const torch::Tensor& x, const torch::Tensor& w);

// ---------------------------------------------------------------------------------------------
// Data
// ---------------------------------------------------------------------------------------------

// What was read, kept and dropped (and why) while loading one data file.
struct DataReport {
  std::string file;
  int64_t read = 0;  // records parsed
  int64_t kept = 0;
  int64_t truncated = 0;                  // kept, but cut to --max-length (start kept)
  std::map<std::string, int64_t> dropped;  // reason -> count
  std::vector<std::string> examples;       // "file:line: reason" for the first few drops
  int64_t bad_lines = 0;                   // skipped under --on-bad-line skip
  std::vector<std::string> bad_line_reasons;
  void drop(const std::string& reason, const std::string& where);
  json to_json() const;
  std::string summary() const;  // one line
};

// How prompts and responses become tokens: chat template on the prompt (as the user message, or
// the given messages), the response being whatever the template adds after the generation
// prompt, then EOS; truncated to max_length keeping the start.
struct TokenizeOptions {
  int64_t max_length = 512;        // ≤ 0: no limit
  bool drop_over_length = false;   // drop (instead of truncate) examples longer than max_length
  BadLinePolicy on_bad_line = BadLinePolicy::kFail;
};

// A chat conversation reduced to its prompt (messages before the final assistant turn).
using ChatPrompt = std::vector<ChatMessage>;

// Tokenizes prompt + response: returns prompt tokens (with BOS if the tokenizer adds one) and
// response tokens (the template's assistant turn after the generation prompt, then EOS).
std::pair<std::vector<int32_t>, std::vector<int32_t>> tokenize_prompt_response(const Tokenizer& tok,
                                                                                const ChatPrompt& prompt,
                                                                                const std::string& response);

struct PreferencePair {
  std::vector<int32_t> prompt, chosen, rejected;  // chosen / rejected: response tokens ending in EOS
  std::string category, kind;                     // toy world fields ("" when absent)
  int64_t difficulty = 0;                         // 1..3 in the toy world, 0 when absent
  double weight = 1.0;                            // multiplies the pair's DPO loss
  std::string origin;                             // "file:line"
  TokenSequence chosen_seq() const;
  TokenSequence rejected_seq() const;
};

// Preference-data filters (all but low-margin act while loading).
struct PreferenceFilter {
  // empty: prompt or a response blank (without it, an empty response is a bad line);
  // identical: chosen == rejected; duplicate: a (prompt, chosen, rejected) seen before.
  std::vector<std::string> drop = {"empty", "identical", "duplicate"};
  std::vector<std::string> behaviours;  // non-empty: harmless (refusal) pairs only of these categories
  std::vector<std::string> kinds;       // non-empty: only pairs of these kinds
  double min_ref_margin = 0;            // > 0: drop pairs with |ref_c − ref_r| below it (needs the reference)
};

// Reads a preference JSONL (TRL standard: prompt/chosen/rejected strings; or conversational:
// message lists; or implicit prompt: chosen/rejected conversations sharing a prefix). Fails with
// Error naming file:line for a line that is not JSON or lacks a field (or skips it, per policy).
std::vector<PreferencePair> load_preferences(const fs::path& path, const Tokenizer& tok, const TokenizeOptions& opts,
                                             const PreferenceFilter& filter, DataReport* report);

// Reads SFT / NLL data: {"messages": [...]} (loss on the final assistant turn), {"prompt",
// "completion"} (strings or message lists), {"prompt", "chosen"} (preference files: the chosen
// response) or {"text"} (loss on every token).
std::vector<TokenSequence> load_sft(const fs::path& path, const Tokenizer& tok, const TokenizeOptions& opts,
                                    DataReport* report);

// Reads a pretraining corpus: JSONL with a "text" field per document, or any other file as one
// document. Each document's tokens (with BOS where the tokenizer adds one) end in EOS.
std::vector<std::vector<int32_t>> load_corpus_documents(const fs::path& path, const Tokenizer& tok,
                                                        BadLinePolicy policy, DataReport* report);
// Splits a token stream into blocks of seq_len + 1 tokens overlapping by one (each token is
// predicted once); the tail shorter than a block is dropped.
std::vector<TokenSequence> pack_blocks(const std::vector<int32_t>& tokens, int64_t seq_len);

// ---------------------------------------------------------------------------------------------
// Training configuration shared by every trainer
// ---------------------------------------------------------------------------------------------

struct TrainCommon {
  fs::path out;  // final HF folder; train_log.jsonl, train_config.json and checkpoints/ live in it
  // Optimisation.
  double lr = 5e-5;
  double weight_decay = 0.0;  // AdamW, applied to matrices only (not norms, biases)
  double adam_beta1 = 0.9, adam_beta2 = 0.999, adam_eps = 1e-8;
  std::string schedule = "linear";  // constant | linear | cosine (after warmup)
  int64_t warmup_steps = 0;
  double warmup_ratio = 0;   // used when warmup_steps == 0
  double min_lr_ratio = 0;   // decay floor as a share of lr
  double max_grad_norm = 1.0;  // ≤ 0: no clipping (the norm is still logged)
  int64_t batch_size = 8;      // examples per micro-batch (all ranks together)
  int64_t grad_accum = 1;      // micro-batches per optimizer step
  int64_t epochs = 1;
  int64_t max_steps = 0;       // > 0 overrides epochs
  uint64_t seed = 42;
  // Run.
  int64_t save_every = 0;      // checkpoint interval in steps (0: none during training)
  bool keep_checkpoints = false;  // keep OUT/checkpoints after a successful run
  bool resume = false;         // continue from the last checkpoint in OUT (fresh start if none)
  int64_t eval_every = 0;      // steps between evaluations (0: only at the end)
  std::string device = "auto";
  int threads = 0;             // threads for matrix products (0: atax's measured default; configure_threads)
  BadLinePolicy on_bad_line = BadLinePolicy::kFail;
  int64_t max_length = 512;    // tokens per sequence, longer ones truncated keeping the start
  bool drop_over_length = false;
  std::string chat_template;   // "" = the tokenizer's; or chatml | llama3 | llama2 | plain
  bool progress = true;        // progress bar / lines on stderr
  // Called on rank 0 after every optimizer step with that step's log line (the demo's hook).
  std::function<void(const json& log_line)> on_step;
};

struct TrainResult {
  fs::path out;
  int64_t steps = 0;         // optimizer steps done in total
  bool resumed = false;      // continued from a checkpoint
  bool already_done = false; // --resume found a finished run; nothing was trained
  json final_metrics;        // the last log line
  json eval;                 // final held-out metrics (eval_loss / eval/rewards/...), {} if no eval data
  json eval_initial;         // held-out metrics before training (pretrain / SFT), {} otherwise
  json data_report;          // per file: read, kept, dropped by reason
  std::vector<json> log;     // every step's log line
  double seconds = 0;
  json to_json() const;      // everything but the log
};

// ---------------------------------------------------------------------------------------------
// Trainers
// ---------------------------------------------------------------------------------------------

struct PretrainConfig {
  TrainCommon common;
  fs::path tokenizer;      // tokenizer.json or a folder holding it
  fs::path model_config;   // config.json-style JSON (vocab_size may be 0: taken from the tokenizer)
  fs::path init_model;     // optional: continue pretraining this HF folder instead
  fs::path data;           // corpus (JSONL "text" per line, or plain text)
  fs::path eval_data;      // optional held-out corpus
  double eval_fraction = 0.05;  // without eval_data: share of documents held out
  int64_t seq_len = 256;
  json to_json() const;
};

// Trains a model from scratch (seeded init through make_model) on packed sequences: documents
// joined with EOS, cut into seq_len blocks, next-token loss on every token.
TrainResult pretrain(const PretrainConfig& cfg);

struct SftConfig {
  TrainCommon common;
  fs::path model;
  fs::path data;
  fs::path eval_data;
  json to_json() const;
};

// Supervised fine-tuning with the loss on response tokens only (mean over the step's tokens).
TrainResult sft(const SftConfig& cfg);

struct LoraConfig {
  int64_t rank = 0;  // 0: no LoRA
  double alpha = 16;
  std::vector<std::string> target_modules = {"q_proj", "v_proj"};
};

struct DpoConfig {
  TrainCommon common;
  fs::path model;
  fs::path ref;        // "" = the initial policy (or, with LoRA, the same network with adapters off)
  fs::path data;       // preference pairs
  fs::path eval_data;  // optional held-out pairs (eval/rewards/accuracies, ...)
  DpoLossType loss_type = DpoLossType::kSigmoid;
  double beta = 0.1;
  double label_smoothing = 0;
  double lambda_reg = 0;  // regularized DPO: + λ·Σ‖θ − θ_ref‖² over trainable parameters
  // Selective alignment.
  PreferenceFilter filter;
  fs::path preserve;            // capability-preservation data mixed in
  double preserve_weight = 1.0;
  std::string preserve_as = "auto";  // auto (by the file's fields) | nll | pairs
  std::vector<std::string> train_modules;  // name patterns ('*' wildcard, else substring); empty = all
  std::vector<int64_t> train_layers;       // layer indices; empty = all (non-layer params frozen otherwise)
  LoraConfig lora;
  // Multi-task: + w·NLL on capability data (or, without nll_data, on the chosen responses: TRL's rpo_alpha).
  fs::path nll_data;
  double nll_weight = 0;
  int64_t nll_batch_size = 0;  // NLL sequences per micro-batch (0: batch_size)
  // + α·NLL of the chosen responses (TRL's rpo_alpha; RPO), beside any capability NLL term. It keeps
  // the chosen answers likely: measured on the demo's 0.87M model, plain DPO at lr 5e-4 raised the
  // reward accuracy to 0.95 while greedy answers turned to gibberish (harmful prompts refused 0.5%);
  // with α = 1, 99%.
  double rpo_alpha = 0;
  // Curriculum.
  std::string curriculum = "none";  // none | difficulty | category | margin
  std::string curriculum_mode = "order";  // order (sorted each epoch) | ramp (growing pool, Platanios et al. 2019)
  std::vector<std::string> curriculum_categories;  // category order (unlisted ones follow, sorted)
  double ramp_start = 0.3;     // ramp: share of the (sorted) data available at step 0
  double ramp_fraction = 0.5;  // ramp: share of training after which all data is available
  // Reference.
  bool precompute_ref = false;
  fs::path ref_cache;  // folder of cached reference log-probs ("" = $ATAX_CACHE_DIR or ~/.cache/atax)
  json to_json() const;
};

// Direct preference optimisation and its variants (see DpoConfig). Logs one JSON line per step
// to OUT/train_log.jsonl; writes the aligned model as an HF folder at OUT (LoRA merged).
TrainResult train_dpo(const DpoConfig& cfg);

// Metrics of a policy against reference log-probs on preference pairs (rewards/accuracies etc.,
// prefixed "eval/"), without gradients.
json evaluate_preferences(CausalLm& policy, const std::vector<PreferencePair>& pairs, const PairLogprobs& reference,
                          DpoLossType type, double beta, double label_smoothing, int64_t pad_id,
                          int64_t batch_size = 16);
// Log-probs of every pair under `net` (no gradients), sorted into length buckets for speed.
// Returns sums and counts per pair.
struct PairTable {
  torch::Tensor chosen_sum, chosen_count, rejected_sum, rejected_count;  // (P,) float32, CPU
  PairLogprobs logprobs(bool average) const;
};
PairTable pair_logprobs(CausalLm& net, const std::vector<PreferencePair>& pairs, int64_t pad_id,
                        int64_t batch_size = 16);

// Mean next-token loss of `net` over sequences (scored tokens only), without gradients.
double mean_nll(CausalLm& net, const std::vector<TokenSequence>& seqs, int64_t pad_id, int64_t batch_size = 16);

// ---------------------------------------------------------------------------------------------
// One DPO step's forward, exposed for benchmarks
// ---------------------------------------------------------------------------------------------

struct DpoBatchOutput {
  DpoLossTerms terms;
  PairLogprobs policy;
  torch::Tensor loss;  // mean over pairs of w·loss, differentiable
  int64_t tokens = 0;  // policy tokens forwarded
};

// The policy forward of chosen and rejected in one concatenated batch; the reference from
// `reference_net` (no gradients; nullptr with LoRA = the policy with adapters off) unless
// `cached_reference` is given.
DpoBatchOutput dpo_batch(CausalLm& policy, CausalLm* reference_net, const std::vector<const PreferencePair*>& pairs,
                         const PairLogprobs* cached_reference, DpoLossType type, double beta, double label_smoothing,
                         int64_t pad_id);

// ---------------------------------------------------------------------------------------------
// Weight interpolation
// ---------------------------------------------------------------------------------------------

struct MergeConfig {
  fs::path a, b, out;
  double t = 0.5;                  // θ = (1 − t)·θ_a + t·θ_b
  std::vector<double> t_per_layer; // optional: one t per layer (non-layer tensors use t)
  std::string device = "cpu";
  json to_json() const;
};

// Interpolates two models of identical architecture and writes an HF folder (a's tokenizer) with
// merge_config.json. Fails with Error when configs or tensor shapes differ or the per-layer list
// has the wrong length.
void merge_models(const MergeConfig& cfg);

}  // namespace atax
