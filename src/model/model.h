// model: the LibTorch transformer engine. Hugging Face model folders (config.json, *.safetensors,
// tokenizer.json) in and out; Llama-family (Llama, Mistral, Qwen2) and GPT-2 decoders; batched
// inference (log-likelihood, rolling log-likelihood, KV-cache generation).
//
// Shape legend: B batch, T time (sequence), C channels (hidden_size), H query heads,
// Hkv key/value heads, D head dim, V vocab, L layers, F intermediate (MLP) size.
#pragma once

#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include <torch/torch.h>

#include "core/core.h"
#include "tokenizer/tokenizer.h"

namespace atax {

// ---------------------------------------------------------------------------------------------
// Configuration (config.json)
// ---------------------------------------------------------------------------------------------

// kLlama covers every Llama-shaped decoder (RMSNorm, RoPE, gated MLP): Llama, Mistral, Qwen2,
// Qwen3, Gemma-2, Gemma-3 (text), OLMo-2 and Phi-3; the fields below say how each one differs.
enum class Arch { kLlama, kGpt2 };

struct RopeScaling {  // config.json "rope_scaling"
  std::string type;   // "" (none) | "llama3" | "linear" | "longrope" (Phi-3's long-RoPE; "su" read as it)
  double factor = 1.0, low_freq_factor = 1.0, high_freq_factor = 4.0;
  int64_t original_max_position_embeddings = 8192;
  // longrope: one divisor per rotary frequency (rotary dim / 2 each), the long set used once a
  // sequence runs past original_max_position_embeddings; cos/sin are scaled by attention_factor.
  std::vector<double> short_factor, long_factor;
  double attention_factor = 1.0;
};

// Where the RMSNorms sit in a block. kPre: x + attn(norm(x)) (Llama); kSandwich: x +
// norm(attn(norm(x))), four per layer (Gemma-2/3); kPost: x + norm(attn(x)) (OLMo-2).
enum class NormPlacement { kPre, kSandwich, kPost };
// q/k RMSNorm before RoPE: per head over D (Qwen3, Gemma-3) or over the whole projection (OLMo-2).
enum class QkNorm { kNone, kPerHead, kFull };

struct ModelConfig {
  Arch arch = Arch::kLlama;
  std::string architecture = "LlamaForCausalLM";  // HF architectures[0]
  std::string model_type = "llama";  // llama | mistral | qwen2 | qwen3 | gemma2 | gemma3_text | olmo2 | phi3 | gpt2
  int64_t vocab_size = 0, hidden_size = 0, intermediate_size = 0, num_hidden_layers = 0;
  int64_t num_attention_heads = 0, num_key_value_heads = 0, head_dim = 0;
  int64_t max_position_embeddings = 2048;
  double rms_norm_eps = 1e-6;       // Llama RMSNorm; GPT-2 uses layer_norm_epsilon
  double rope_theta = 10000.0;
  RopeScaling rope_scaling;
  bool attention_bias = false;      // q/k/v bias (Qwen2: true); o_proj never has one in Llama-family
  bool mlp_bias = false;
  bool tie_word_embeddings = false;
  std::string hidden_act = "silu";  // silu | gelu_new | gelu | gelu_pytorch_tanh | relu
  std::optional<int64_t> bos_token_id, eos_token_id, pad_token_id;
  // Family differences (all off for Llama).
  NormPlacement norm_placement = NormPlacement::kPre;
  QkNorm qk_norm = QkNorm::kNone;
  bool norm_unit_offset = false;     // Gemma: RMSNorm scales by (1 + w)
  bool scale_embeddings = false;     // Gemma: embeddings × √hidden_size
  bool fused_projections = false;    // Phi-3: qkv_proj and gate_up_proj
  double partial_rotary_factor = 1.0;  // Phi-3 / Phi-4-mini: RoPE on the first factor·D dims
  double query_pre_attn_scalar = 0;  // Gemma: scores scaled by scalar^-1/2 (0: head dim)
  double attn_logit_softcapping = 0, final_logit_softcapping = 0;  // Gemma-2: cap·tanh(x/cap); 0 = off
  int64_t sliding_window = 0;        // keys within the last `sliding_window` positions, on sliding layers
  std::vector<bool> sliding_layers;  // per layer: true = sliding-window attention (empty: none)
  double rope_local_theta = 0;       // Gemma-3: RoPE base of the sliding layers (0: rope_theta), unscaled
  int64_t max_window_layers = 0;     // Qwen2/3 config value, written back
  json extra;                        // every other key of config.json, written back unchanged

  // Parses config.json content (a multimodal Gemma-3 config is read from its "text_config").
  // Fails with Error naming `file` and the field for an unknown architecture, a value that is
  // missing, not finite, not positive or inconsistent (e.g. heads not dividing hidden_size), or
  // a feature atax cannot run (e.g. rope_scaling "yarn", mixture-of-experts).
  static ModelConfig from_json(const json& j, const std::string& file = "config.json");
  json to_json() const;
  int64_t kv_heads() const { return num_key_value_heads > 0 ? num_key_value_heads : num_attention_heads; }
  int64_t dim_per_head() const { return head_dim > 0 ? head_dim : hidden_size / num_attention_heads; }
  int64_t rotary_dim() const;  // dims of each head that RoPE rotates (even)
  bool is_sliding(int64_t layer) const { return !sliding_layers.empty() && sliding_layers[layer]; }
  // The HF parameter names and shapes this config implies (the checkpoint must match exactly,
  // except that lm_head.weight may be absent when embeddings are tied).
  std::map<std::string, std::vector<int64_t>> expected_shapes() const;
  // The name under which a checkpoint tensor is loaded ("language_model.model.x" of a multimodal
  // Gemma-3 -> "model.x"), or nullopt for tensors atax skips (saved RoPE buffers, vision tower).
  std::optional<std::string> canonical_name(const std::string& name) const;
  // Checks the checkpoint's tensors against this config WITHOUT allocating the network: layer
  // count first, then every name and shape. Fails with Error naming `file` and the config field.
  void check_weights(const std::map<std::string, torch::Tensor>& weights, const std::string& file) const;
};

// ---------------------------------------------------------------------------------------------
// safetensors
// ---------------------------------------------------------------------------------------------

// Reads one .safetensors file into tensors of their stored dtype (F32/F16/BF16, also
// I64/I32/I8/U8/F64) that view a private copy-on-write mapping of it, no copy: writing to them
// leaves the file alone, the mapping lives while any of them does, and a tensor's own pages are
// dropped from memory when it goes. Fails with Error naming the file and tensor
// when the header is malformed: header length beyond the file, bad JSON, offsets out of range or
// overlapping, byte size not matching dtype × shape, unknown dtype.
// With `sha256`, also stores the sha256 of the whole file, computed over the mapping as it is read;
// that pages the file in, and without `keep_resident` each stretch's pages are dropped once hashed
// (a packing load reads each tensor again when it packs it, so no more than one is resident).
std::map<std::string, torch::Tensor> load_safetensors(const fs::path& path, std::string* sha256 = nullptr,
                                                      bool keep_resident = true);
// Reads model.safetensors or the shards listed in model.safetensors.index.json of `dir`.
// With `file_sha256`, also stores each file's full sha256 under its file name (`keep_resident`
// as load_safetensors').
std::map<std::string, torch::Tensor> load_safetensors_dir(const fs::path& dir,
                                                         std::map<std::string, std::string>* file_sha256 = nullptr,
                                                         bool keep_resident = true);
// Writes tensors (contiguous CPU copies; stored dtype kept) atomically. `metadata` goes into
// "__metadata__" (HF writes {"format": "pt"}).
void save_safetensors(const fs::path& path, const std::map<std::string, torch::Tensor>& tensors,
                      const std::map<std::string, std::string>& metadata = {{"format", "pt"}});

// ---------------------------------------------------------------------------------------------
// The network
// ---------------------------------------------------------------------------------------------

// Per-layer key/value cache for incremental decoding. k, v: (B, Hkv, T_cached, D).
struct KvCache {
  std::vector<torch::Tensor> k, v;
  int64_t length() const { return k.empty() || !k[0].defined() ? 0 : k[0].size(2); }
  void clear() { k.clear(); v.clear(); }
};

// LoRA (Hu et al. 2021): W x + (alpha / r) · B A x on the targeted linear layers. A (r, in) is
// Kaiming-uniform, B (out, r) zero, so a fresh adapter leaves outputs unchanged.
struct LoraOptions {
  int64_t rank = 8;
  double alpha = 16;
  std::vector<std::string> target_modules = {"q_proj", "v_proj"};  // HF leaf names (c_attn for GPT-2)
};

// How a new network's parameters start: kRandom (normal(0, 0.02) matrices, unit norms, zero
// biases; seeded by torch::manual_seed) or kNone (allocated but never written, so untouched pages
// cost no memory: for a network whose every parameter is loaded next).
// How the weights of the products (every nn.Linear-layout projection, the LM head, the token
// embedding) are stored for evaluation on the CPU; products and activations stay float32.
//   kF32: float32 (default; training needs it).
//   kBf16: bfloat16, half the memory; y = x·wᵀ with w rounded to bfloat16 (8 bits of mantissa).
//   kQ8_0: llama.cpp's Q8_0, int8 in blocks of 32 along the input dimension with one float32 scale
//          each (9 bits a weight); a weight whose input dimension is not a multiple of 32, and
//          GPT-2's Conv1D weights, stay float32.
// Norms, biases and GPT-2's position embedding stay float32. A model in kBf16 or kQ8_0 is for
// evaluation: save_model refuses it.
enum class WeightFormat { kF32, kBf16, kQ8_0 };
// "f32" | "bf16" | "q8_0".
std::string weight_format_name(WeightFormat f);
// Parses "f32" | "bf16" | "q8_0". Fails with Error naming the value otherwise.
WeightFormat parse_weight_format(const std::string& name);
// The format load_model and make_model give models whose LoadOptions leave it unset (the CLI's
// --weights, through commands that load via the pipeline); kF32 until set. Process-wide.
void set_default_weight_format(WeightFormat f);
WeightFormat default_weight_format();

enum class WeightInit { kRandom, kNone };

class CausalLmImpl : public torch::nn::Module {
 public:
  explicit CausalLmImpl(ModelConfig config, WeightInit init = WeightInit::kRandom);

  // input_ids (B,T) int64; attention_mask (B,T_total) 1 = real token, 0 = padding (left or right),
  // covering cached + new positions, may be undefined (all real). position_ids (B,T) may be
  // undefined (derived from the mask). With `cache`, appends this step's keys/values.
  // Returns logits (B,T,V) float32.
  torch::Tensor forward(const torch::Tensor& input_ids, const torch::Tensor& attention_mask = {},
                        KvCache* cache = nullptr, const torch::Tensor& position_ids = {});
  // Final hidden states (B,T,C) before lm_head (for memory-light log-prob computations).
  torch::Tensor hidden_states(const torch::Tensor& input_ids, const torch::Tensor& attention_mask = {},
                              KvCache* cache = nullptr, const torch::Tensor& position_ids = {});
  torch::Tensor lm_head(const torch::Tensor& hidden);  // (B,T,C) -> (B,T,V)

  const ModelConfig& config() const { return config_; }
  // Parameters under their Hugging Face names ("model.layers.0.self_attn.q_proj.weight", ...).
  std::map<std::string, torch::Tensor> hf_state_dict() const;
  // Copies `weights` (HF names) into the parameters, converting dtype. Fails with Error naming
  // `file` for missing, unexpected or mis-shaped tensors.
  void load_hf_state_dict(const std::map<std::string, torch::Tensor>& weights, const std::string& file);
  // Makes `weights` (HF names) the parameters, emptying the map tensor by tensor: a tensor that
  // matches its parameter (dtype, device, shape, contiguous, naturally aligned, its storage no
  // larger) and that nothing else references becomes the parameter's storage without a copy (a
  // view of a file mapping stays one, and keeps the mapping alive); any other is copied in and
  // released at once. So loading holds about one copy of the weights. Fails like
  // load_hf_state_dict, before any parameter changes. With `format` not kF32 it also packs as
  // pack_weights(format) does, each weight as it is taken (its float32 or file-dtype tensor freed
  // before the next), so loading a packed model peaks near its packed size; the result equals
  // adopting in float32 and packing after, bit for bit, and it fails like pack_weights. `visit`,
  // when given, sees every tensor of the map (name, tensor as given, in name order) before it is
  // taken: the loader hashes the model's identity there while the bytes are in memory. `read`,
  // when given, supplies the entries that are meta tensors (a shape, no data) as they are taken,
  // before `visit` sees them: a loader converts one tensor at a time instead of all up front.
  using WeightVisitor = std::function<void(const std::string&, const torch::Tensor&)>;
  using WeightReader = std::function<torch::Tensor(const std::string&)>;
  void adopt_hf_state_dict(std::map<std::string, torch::Tensor>&& weights, const std::string& file,
                           WeightFormat format = WeightFormat::kF32, const WeightVisitor& visit = {},
                           const WeightReader& read = {});
  int64_t num_parameters() const;
  // The parameters under their HF names, sharing storage with the module (so callers can set
  // requires_grad or apply updates). LoRA tensors are named "<layer>.lora_A" / ".lora_B".
  std::map<std::string, torch::Tensor> named_hf_parameters();

  // Adds LoRA adapters to every linear layer whose leaf name is in opts.target_modules.
  void add_lora(const LoraOptions& opts);
  bool has_lora() const;
  // With adapters disabled the network computes the base model (the DPO reference for free).
  void set_lora_enabled(bool enabled);
  std::vector<torch::Tensor> lora_parameters();
  // Folds B·A·(alpha/r) into the base weights and removes the adapters.
  void merge_lora();

  // Stores the products' weights in `format` for evaluation (see WeightFormat), freeing their
  // float32 copies; the packed weights no longer require grad. Fails with Error when the model is
  // not float32 on the CPU or has LoRA adapters. kF32 on a float32 model changes nothing.
  void pack_weights(WeightFormat format);
  WeightFormat weight_format() const;

 private:
  // pack_weights' steps, shared with adopt_hf_state_dict: the checks; packing one parameter from
  // `src` (its values, any float dtype) when it is a product's weight the format stores (false:
  // it stays as it is); float32 storage of their own for the rest, and the format recorded.
  void check_packable(WeightFormat format) const;
  bool pack_param(WeightFormat format, torch::Tensor& param, const torch::Tensor& src);
  void finish_packing(WeightFormat format);

  struct Impl;
  std::shared_ptr<Impl> impl_;
  ModelConfig config_;
};
TORCH_MODULE(CausalLm);

// ---------------------------------------------------------------------------------------------
// Loading and saving model folders
// ---------------------------------------------------------------------------------------------

struct LoadOptions {
  std::string device = "auto";          // auto | cpu | cuda | cuda:N (the one device switch)
  torch::Dtype dtype = torch::kFloat32;  // compute dtype: float32 (default) or bfloat16
  std::optional<WeightFormat> weights;   // unset: default_weight_format(); not kF32 needs float32 on the CPU
};

// Resolves "auto"/"cpu"/"cuda[:N]" (env ATAX_DEVICE when "auto"). Error if CUDA is asked for and
// this LibTorch has none.
torch::Device resolve_device(const std::string& spec);
// Threads for the matrix products: N > 0 (or ATAX_THREADS=N) gives OpenBLAS N threads and
// LibTorch's intra-op pool 1 (N intra-op threads when OpenBLAS is not loaded); 0 = the measured
// default (one OpenBLAS thread on machines of up to 2 cores). An explicit N stays for the rest of
// the process: later calls with 0 (a step inside the demo or a sweep) keep it. The first call
// also fixes malloc's mmap and trim thresholds, so a forward pass reuses freed memory instead of
// faulting in fresh pages (unless the user tunes malloc). See loading.cpp.
void configure_threads(int threads);
// "N BLAS threads, M intra-op threads" (BLAS only when OpenBLAS is loaded), for logs.
std::string thread_summary();

// The model's identity (LoadedModel::content_hash), what the request cache and every results file
// name a model by. It is the sha256 of, exactly:
//   - kModelIdentityVersion;
//   - a folder: the bytes of config.json; every weight file's name and the sha256 of ALL its bytes
//     (computed over the memory mapping while the weights are read; no sampling, any file size);
//     the bytes of each of kIdentityFiles present (tokenizer, its config with the chat template,
//     chat_template.jinja, generation_config.json);
//   - parts built in memory (GGUF, `atax init`): the config JSON; every tensor's name, dtype,
//     shape and bytes as given, before conversion to the compute dtype; tokenizer.json and
//     tokenizer_config.json as the tokenizer holds them.
// It does NOT cover how the model is run: dtype, device, context length and chat-template
// overrides are HfModel::runtime_settings(), which the request cache keys on beside it.
inline constexpr const char* kModelIdentityVersion = "atax-model-identity-v2";
inline constexpr const char* kIdentityFiles[] = {"tokenizer.json", "tokenizer_config.json", "chat_template.jinja",
                                                 "generation_config.json"};

struct LoadedModel {
  ModelConfig config;
  CausalLm net{nullptr};
  std::shared_ptr<Tokenizer> tokenizer;
  fs::path source;           // folder or .gguf file it came from
  std::string content_hash;  // the model's identity (see above)
};

// The identity of a model folder from its weight files' digests (file name -> sha256 of the file).
std::string folder_identity(const fs::path& dir, const std::map<std::string, std::string>& weight_file_sha256);

// Loads a HF folder (or a .gguf file, through the gguf module's hook). Fails with Error naming
// the file for any malformed part.
LoadedModel load_model(const fs::path& path, const LoadOptions& opts = {});
// Builds a model from parts already in memory (used by the GGUF loader and `atax init`): empty
// `weights` give a randomly initialised network (torch::manual_seed), otherwise the network is
// built uninitialised and the weights are copied in (the caller keeps its tensors unshared).
LoadedModel make_model(const ModelConfig& config, const std::map<std::string, torch::Tensor>& weights,
                       std::shared_ptr<Tokenizer> tokenizer, const LoadOptions& opts, fs::path source);
// The same, taking the weights over: tensors nothing else references become the parameters
// without a copy (CausalLmImpl::adopt_hf_state_dict), so building holds one copy of the weights.
// Meta tensors among `weights` are read through `read` one at a time as the model takes them.
LoadedModel make_model(const ModelConfig& config, std::map<std::string, torch::Tensor>&& weights,
                       std::shared_ptr<Tokenizer> tokenizer, const LoadOptions& opts, fs::path source,
                       const CausalLmImpl::WeightReader& read = {});
// Writes config.json, model.safetensors (float32 unless `dtype` says otherwise), tokenizer.json,
// tokenizer_config.json and generation_config.json into `dir`, atomically (staging folder + rename).
void save_model(const LoadedModel& model, const fs::path& dir, torch::Dtype dtype = torch::kFloat32,
                const json& extra_files = json::object());

// A hook through which the gguf module makes load_model() accept FILE.gguf.
using ModelFileLoader = std::function<LoadedModel(const fs::path&, const LoadOptions&)>;
void register_model_file_loader(const std::string& extension, ModelFileLoader loader);

// ---------------------------------------------------------------------------------------------
// Inference: the LanguageModel interface on a loaded model
// ---------------------------------------------------------------------------------------------

struct InferenceOptions {
  int64_t batch_size = 16;
  int64_t max_length = 0;  // 0 = config.max_position_embeddings
};

class HfModel : public LanguageModel {
 public:
  HfModel(LoadedModel model, InferenceOptions opts = {});
  std::vector<LoglikelihoodResult> loglikelihood(const std::vector<LoglikelihoodRequest>& reqs) override;
  std::vector<RollingResult> loglikelihood_rolling(const std::vector<std::string>& texts) override;
  std::vector<std::string> generate_until(const std::vector<GenerateRequest>& reqs) override;
  std::string apply_chat_template(const std::vector<ChatMessage>& messages) const override;
  std::string content_hash() const override { return model_.content_hash; }
  // What changes answers besides the weights: {"dtype", "device" (kind), "max_length" (the
  // effective context window), "chat_template" (the tokenizer's chat template identity)}.
  json runtime_settings() const override;
  std::string name() const override { return model_.source.string(); }
  int64_t count_tokens(const std::string& text) const override;

  // Token-level API.
  // For each (context ids, continuation ids): summed log-prob, greedy flag, per-token log-probs.
  struct TokenScore {
    double logprob = 0;
    bool is_greedy = false;
    std::vector<float> token_logprobs;
  };
  std::vector<TokenScore> score_tokens(const std::vector<std::pair<std::vector<int64_t>, std::vector<int64_t>>>& pairs);
  // Generates up to max_new_tokens per prompt with the KV cache; stops at EOS or a stop string.
  std::vector<std::vector<int64_t>> generate_tokens(const std::vector<std::vector<int64_t>>& prompts,
                                                    const GenerateRequest& settings);
  LoadedModel& model() { return model_; }
  const Tokenizer& tokenizer() const { return *model_.tokenizer; }

 private:
  LoadedModel model_;
  InferenceOptions opts_;
};

// Mean KL(base || other) of next-token distributions over `texts` and the share of positions
// whose top token agrees (llama.cpp's --kl-divergence statistics). Percentiles are of the
// per-position values (nearest rank); stderrs are of the mean (sample sd / sqrt(n)) and of the
// share (binomial).
struct KlStats {
  double mean = 0, stderr_ = 0, median = 0, p90 = 0, p99 = 0, max = 0;
  double min = 0, p1 = 0, p5 = 0, p10 = 0, p99_9 = 0;
  double same_top_share = 0, same_top_stderr = 0;
  int64_t n_positions = 0;
  int64_t n_texts = 0;  // texts that gave at least one position
};
// Fails with Error if the models use different tokenizers or vocabularies.
KlStats kl_divergence(HfModel& base, HfModel& other, const std::vector<std::string>& texts);

}  // namespace atax
