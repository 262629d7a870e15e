// config.json <-> ModelConfig, the parameter names and shapes a config implies, and the check of
// a checkpoint against them before anything is allocated.
#include <cmath>
#include <set>

#include <fmt/format.h>

#include "model/model.h"

namespace atax {

namespace {

const std::vector<std::string> kKnownKeys = {
    "architectures", "model_type", "vocab_size", "hidden_size", "intermediate_size", "num_hidden_layers",
    "num_attention_heads", "num_key_value_heads", "head_dim", "max_position_embeddings", "rms_norm_eps",
    "rope_theta", "rope_scaling", "attention_bias", "mlp_bias", "tie_word_embeddings", "hidden_act",
    "bos_token_id", "eos_token_id", "pad_token_id",
    // family fields
    "hidden_activation", "query_pre_attn_scalar", "attn_logit_softcapping", "final_logit_softcapping",
    "sliding_window", "sliding_window_pattern", "layer_types", "use_sliding_window", "max_window_layers",
    "rope_local_base_freq", "partial_rotary_factor", "original_max_position_embeddings",
    // GPT-2 names
    "n_embd", "n_layer", "n_head", "n_positions", "n_inner", "layer_norm_epsilon", "activation_function"};

const char* const kSupported =
    "supported: LlamaForCausalLM, MistralForCausalLM, Qwen2ForCausalLM, Qwen3ForCausalLM, Gemma2ForCausalLM, "
    "Gemma3ForCausalLM (and the text part of Gemma3ForConditionalGeneration), Olmo2ForCausalLM, Phi3ForCausalLM, "
    "GPT2LMHeadModel";

// Upper bounds far above any real model, so that a typo cannot make atax reserve terabytes
// before the checkpoint is compared (the checkpoint then decides exactly).
constexpr int64_t kMaxDim = int64_t{1} << 24;     // hidden, intermediate, vocab, positions
constexpr int64_t kMaxLayers = 4096;
constexpr int64_t kMaxHeads = 8192;

int64_t get_int(const json& j, const char* key, const std::string& file, bool required, int64_t fallback = 0,
                int64_t max = kMaxDim) {
  auto it = j.find(key);
  if (it == j.end() || it->is_null()) {
    if (required) throw Error(fmt::format("missing \"{}\"", key), file, "config.json must give the model's shape");
    return fallback;
  }
  if (!it->is_number_integer())
    throw Error(fmt::format("\"{}\" must be an integer, got {}", key, it->dump()), file);
  int64_t v = it->get<int64_t>();
  if (v <= 0) throw Error(fmt::format("\"{}\" must be positive, got {}", key, v), file);
  if (v > max)
    throw Error(fmt::format("\"{}\" = {} is beyond any model atax can hold (at most {})", key, v, max), file,
                "fix config.json: the value must match the checkpoint");
  return v;
}

// A finite number > 0 (or >= 0 when `allow_zero`), `fallback` when absent or null.
double get_double(const json& j, const char* key, const std::string& file, double fallback, bool allow_zero = false) {
  auto it = j.find(key);
  if (it == j.end() || it->is_null()) return fallback;
  if (!it->is_number()) throw Error(fmt::format("\"{}\" must be a number, got {}", key, it->dump()), file);
  double v = it->get<double>();
  if (!std::isfinite(v) || v < 0 || (v == 0 && !allow_zero))
    throw Error(fmt::format("\"{}\" must be a finite number {} 0, got {}", key, allow_zero ? ">=" : ">", it->dump()),
                file);
  return v;
}

bool get_bool(const json& j, const char* key, const std::string& file, bool fallback) {
  auto it = j.find(key);
  if (it == j.end() || it->is_null()) return fallback;
  if (!it->is_boolean()) throw Error(fmt::format("\"{}\" must be true or false, got {}", key, it->dump()), file);
  return it->get<bool>();
}

std::string get_string(const json& j, const char* key, const std::string& file, const std::string& fallback) {
  auto it = j.find(key);
  if (it == j.end() || it->is_null()) return fallback;
  if (!it->is_string()) throw Error(fmt::format("\"{}\" must be a string, got {}", key, it->dump()), file);
  return it->get<std::string>();
}

std::optional<int64_t> get_token_id(const json& j, const char* key) {
  auto it = j.find(key);
  if (it == j.end() || it->is_null()) return std::nullopt;
  if (it->is_array())
    return it->empty() || !(*it)[0].is_number_integer() ? std::nullopt : std::optional<int64_t>((*it)[0].get<int64_t>());
  if (it->is_number_integer()) return it->get<int64_t>();
  return std::nullopt;
}

std::vector<double> get_factors(const json& rs, const char* key, const std::string& file) {
  std::vector<double> out;
  auto it = rs.find(key);
  if (it == rs.end() || !it->is_array())
    throw Error(fmt::format("rope_scaling \"longrope\" needs a \"{}\" list", key), file);
  for (const auto& v : *it) {
    if (!v.is_number() || !std::isfinite(v.get<double>()) || v.get<double>() <= 0)
      throw Error(fmt::format("rope_scaling.{} holds {}, not a positive finite number", key, v.dump()), file);
    out.push_back(v.get<double>());
  }
  return out;
}

struct Family {
  std::string architecture, model_type;
};

// HF architecture <-> model_type.
const std::vector<Family> kFamilies = {
    {"LlamaForCausalLM", "llama"},   {"MistralForCausalLM", "mistral"}, {"Qwen2ForCausalLM", "qwen2"},
    {"Qwen3ForCausalLM", "qwen3"},   {"Gemma2ForCausalLM", "gemma2"},   {"Gemma3ForCausalLM", "gemma3_text"},
    {"Olmo2ForCausalLM", "olmo2"},   {"Phi3ForCausalLM", "phi3"},       {"GPT2LMHeadModel", "gpt2"}};

}  // namespace

int64_t ModelConfig::rotary_dim() const {
  int64_t d = static_cast<int64_t>(static_cast<double>(dim_per_head()) * partial_rotary_factor);
  return d - d % 2;
}

ModelConfig ModelConfig::from_json(const json& root, const std::string& file) {
  if (!root.is_object()) throw Error("config.json is not a JSON object", file);
  std::string arch;
  if (root.contains("architectures") && root["architectures"].is_array() && !root["architectures"].empty()) {
    if (!root["architectures"][0].is_string())
      throw Error("\"architectures\" must hold strings, got " + root["architectures"].dump(), file);
    arch = root["architectures"][0].get<std::string>();
  }
  std::string model_type = get_string(root, "model_type", file, "");
  // A multimodal Gemma-3 keeps its language model under "text_config": atax runs that part.
  const json* jp = &root;
  if (arch == "Gemma3ForConditionalGeneration" || (arch.empty() && model_type == "gemma3")) {
    auto tc = root.find("text_config");
    if (tc == root.end() || !tc->is_object())
      throw Error("Gemma3ForConditionalGeneration without a \"text_config\" object", file,
                  "atax runs the text model of Gemma-3; its config must be under text_config");
    jp = &*tc;
    arch = "Gemma3ForCausalLM";
    model_type = "gemma3_text";
  }
  const json& j = *jp;
  ModelConfig c;
  if (arch.empty()) {
    for (const auto& f : kFamilies)
      if (f.model_type == model_type) arch = f.architecture;
    if (arch.empty())
      throw Error("no \"architectures\" and unknown model_type \"" + model_type + "\"", file, kSupported);
  }
  const Family* fam = nullptr;
  for (const auto& f : kFamilies)
    if (f.architecture == arch) fam = &f;
  if (!fam) throw Error("unknown architecture \"" + arch + "\"", file, kSupported);
  c.architecture = arch;
  c.model_type = fam->model_type;
  const std::string& mt = c.model_type;
  for (const char* moe : {"num_experts", "num_local_experts", "n_routed_experts"})
    if (j.contains(moe) && j[moe].is_number() && j[moe].get<double>() > 1)
      throw Error(fmt::format("\"{}\" = {}: mixture-of-experts models are not supported", moe, j[moe].dump()), file,
                  "atax runs dense decoders");

  if (mt == "gpt2") {
    c.arch = Arch::kGpt2;
    c.vocab_size = get_int(j, "vocab_size", file, true);
    c.hidden_size = get_int(j, "n_embd", file, true);
    c.num_hidden_layers = get_int(j, "n_layer", file, true, 0, kMaxLayers);
    c.num_attention_heads = get_int(j, "n_head", file, true, 0, kMaxHeads);
    c.num_key_value_heads = c.num_attention_heads;
    c.intermediate_size = get_int(j, "n_inner", file, false, 4 * c.hidden_size);
    c.max_position_embeddings = get_int(j, "n_positions", file, false, 1024);
    c.rms_norm_eps = get_double(j, "layer_norm_epsilon", file, 1e-5);
    c.hidden_act = get_string(j, "activation_function", file, "gelu_new");
    c.tie_word_embeddings = get_bool(j, "tie_word_embeddings", file, true);
    c.attention_bias = true;
    c.mlp_bias = true;
  } else {
    c.arch = Arch::kLlama;
    const bool gemma = mt == "gemma2" || mt == "gemma3_text";
    c.vocab_size = get_int(j, "vocab_size", file, true);
    c.hidden_size = get_int(j, "hidden_size", file, true);
    c.intermediate_size = get_int(j, "intermediate_size", file, true);
    c.num_hidden_layers = get_int(j, "num_hidden_layers", file, true, 0, kMaxLayers);
    c.num_attention_heads = get_int(j, "num_attention_heads", file, true, 0, kMaxHeads);
    c.num_key_value_heads = get_int(j, "num_key_value_heads", file, false, c.num_attention_heads, kMaxHeads);
    c.head_dim = get_int(j, "head_dim", file, false, 0, 65536);
    c.max_position_embeddings = get_int(j, "max_position_embeddings", file, false, 2048, int64_t{1} << 30);
    const double eps_default = mt == "olmo2" || mt == "phi3" ? 1e-5 : 1e-6;
    c.rms_norm_eps = get_double(j, "rms_norm_eps", file, eps_default);
    c.rope_theta = get_double(j, "rope_theta", file, mt == "gemma3_text" ? 1e6 : 10000.0);
    c.attention_bias = get_bool(j, "attention_bias", file, mt == "qwen2");
    c.mlp_bias = get_bool(j, "mlp_bias", file, false);
    c.tie_word_embeddings = get_bool(j, "tie_word_embeddings", file, gemma);
    // Gemma reads hidden_activation (its hidden_act is a legacy key).
    c.hidden_act = gemma ? get_string(j, "hidden_activation", file, get_string(j, "hidden_act", file, "gelu_pytorch_tanh"))
                         : get_string(j, "hidden_act", file, "silu");
    if (mt == "qwen3" || mt == "gemma3_text") c.qk_norm = QkNorm::kPerHead;
    if (mt == "olmo2") c.qk_norm = QkNorm::kFull;
    if (gemma) {
      c.norm_placement = NormPlacement::kSandwich;
      c.norm_unit_offset = true;
      c.scale_embeddings = true;
      if (c.head_dim == 0) c.head_dim = 256;
      c.query_pre_attn_scalar = get_double(j, "query_pre_attn_scalar", file, 256);
      const bool g2 = mt == "gemma2";
      c.attn_logit_softcapping = get_double(j, "attn_logit_softcapping", file, g2 ? 50.0 : 0.0, true);
      c.final_logit_softcapping = get_double(j, "final_logit_softcapping", file, g2 ? 30.0 : 0.0, true);
      if (!g2) c.rope_local_theta = get_double(j, "rope_local_base_freq", file, 10000.0);
    }
    if (mt == "olmo2") c.norm_placement = NormPlacement::kPost;
    if (mt == "phi3") {
      c.fused_projections = true;
      c.partial_rotary_factor = get_double(j, "partial_rotary_factor", file, 1.0);
      if (c.partial_rotary_factor > 1)
        throw Error(fmt::format("\"partial_rotary_factor\" = {} must be in (0, 1]", c.partial_rotary_factor), file);
    } else if (j.contains("partial_rotary_factor") && get_double(j, "partial_rotary_factor", file, 1.0) != 1.0) {
      throw Error("\"partial_rotary_factor\" other than 1 is not supported for " + arch, file);
    }
    // Sliding-window attention: which layers, and how wide.
    const int64_t L = c.num_hidden_layers;
    int64_t window = get_int(j, "sliding_window", file, false, 0, int64_t{1} << 30);
    if (gemma && !j.contains("sliding_window")) window = 4096;  // HF's Gemma default
    bool any_sliding = false;
    if (j.contains("layer_types") && !j["layer_types"].is_null()) {
      const auto& lt = j["layer_types"];
      if (!lt.is_array() || static_cast<int64_t>(lt.size()) != L)
        throw Error(fmt::format("\"layer_types\" must list one entry per layer ({})", L), file);
      for (const auto& t : lt) {
        if (t != "sliding_attention" && t != "full_attention")
          throw Error("\"layer_types\" entry " + t.dump() + " is not supported", file,
                      "atax runs \"sliding_attention\" and \"full_attention\" layers");
        c.sliding_layers.push_back(t == "sliding_attention");
      }
    } else if (mt == "gemma2") {
      for (int64_t l = 0; l < L; ++l) c.sliding_layers.push_back(l % 2 == 0);  // layer 0 local
      if (window == 0) window = 4096;
    } else if (mt == "gemma3_text") {
      int64_t pattern = get_int(j, "sliding_window_pattern", file, false, 6, kMaxLayers);
      for (int64_t l = 0; l < L; ++l) c.sliding_layers.push_back((l + 1) % pattern != 0);  // every pattern-th global
      if (window == 0) window = 4096;
    } else if (mt == "qwen2" || mt == "qwen3") {
      c.max_window_layers = get_int(j, "max_window_layers", file, false, L, kMaxLayers);
      if (get_bool(j, "use_sliding_window", file, false) && window > 0)
        for (int64_t l = 0; l < L; ++l) c.sliding_layers.push_back(l >= c.max_window_layers);
    } else if (mt == "mistral" || mt == "phi3") {
      if (window > 0) c.sliding_layers.assign(static_cast<size_t>(L), true);
    } else if (window > 0) {
      throw Error(fmt::format("\"sliding_window\" is not part of {}", arch), file,
                  "remove it, or give the model_type that has it");
    }
    for (bool b : c.sliding_layers) any_sliding = any_sliding || b;
    if (!any_sliding) c.sliding_layers.clear();
    else if (window <= 0)
      throw Error("sliding-window layers but no positive \"sliding_window\"", file);
    c.sliding_window = window;

    if (j.contains("rope_scaling") && j["rope_scaling"].is_object()) {
      const auto& rs = j["rope_scaling"];
      auto& r = c.rope_scaling;
      r.type = get_string(rs, "rope_type", file, get_string(rs, "type", file, ""));
      if (r.type == "su") r.type = "longrope";
      if (r.type == "default") r.type.clear();
      if (r.type != "" && r.type != "llama3" && r.type != "linear" && r.type != "longrope")
        throw Error("rope_scaling.rope_type \"" + r.type + "\" is not supported", file,
                    "supported: llama3, linear, longrope (su)");
      r.factor = get_double(rs, "factor", file, 1.0);
      if (r.type == "llama3") {
        r.low_freq_factor = get_double(rs, "low_freq_factor", file, 1.0);
        r.high_freq_factor = get_double(rs, "high_freq_factor", file, 4.0);
        r.original_max_position_embeddings = get_int(rs, "original_max_position_embeddings", file, false, 8192,
                                                     int64_t{1} << 30);
        if (!(r.high_freq_factor > r.low_freq_factor))
          throw Error("rope_scaling.high_freq_factor must exceed low_freq_factor", file);
      }
      if (r.type == "longrope") {
        r.short_factor = get_factors(rs, "short_factor", file);
        r.long_factor = get_factors(rs, "long_factor", file);
        // Phi-3 keeps the pretrained context at the top level; the factor follows from it.
        r.original_max_position_embeddings =
            get_int(j, "original_max_position_embeddings", file, false,
                    get_int(rs, "original_max_position_embeddings", file, false, c.max_position_embeddings,
                            int64_t{1} << 30),
                    int64_t{1} << 30);
        double factor = j.contains("original_max_position_embeddings")
                            ? static_cast<double>(c.max_position_embeddings) /
                                  static_cast<double>(r.original_max_position_embeddings)
                            : r.factor;
        r.factor = factor;
        r.attention_factor = get_double(
            rs, "attention_factor", file,
            factor <= 1.0 ? 1.0
                          : std::sqrt(1 + std::log(factor) /
                                              std::log(static_cast<double>(r.original_max_position_embeddings))));
      }
    }
  }
  c.bos_token_id = get_token_id(j, "bos_token_id");
  c.eos_token_id = get_token_id(j, "eos_token_id");
  c.pad_token_id = get_token_id(j, "pad_token_id");
  if (c.head_dim == 0 && c.hidden_size % c.num_attention_heads != 0)
    throw Error(fmt::format("hidden_size {} is not divisible by num_attention_heads {}", c.hidden_size,
                            c.num_attention_heads),
                file, "set head_dim or fix num_attention_heads");
  if (c.num_attention_heads % c.kv_heads() != 0)
    throw Error(fmt::format("num_attention_heads {} is not a multiple of num_key_value_heads {}",
                            c.num_attention_heads, c.kv_heads()),
                file);
  if (c.arch == Arch::kLlama) {
    if (c.rotary_dim() <= 0 || c.dim_per_head() % 2 != 0)
      throw Error(fmt::format("head dim {} (rotary part {}) must be even and positive for rotary embeddings",
                              c.dim_per_head(), c.rotary_dim()),
                  file);
    if (c.rope_scaling.type == "longrope") {
      const size_t half = static_cast<size_t>(c.rotary_dim() / 2);
      if (c.rope_scaling.short_factor.size() != half || c.rope_scaling.long_factor.size() != half)
        throw Error(fmt::format("rope_scaling short_factor / long_factor have {} / {} values, the rotary dim {} "
                                "needs {}",
                                c.rope_scaling.short_factor.size(), c.rope_scaling.long_factor.size(),
                                c.rotary_dim(), half),
                    file);
    }
  }
  if (c.num_attention_heads * c.dim_per_head() > kMaxDim)
    throw Error(fmt::format("num_attention_heads × head_dim = {} is beyond any model atax can hold",
                            c.num_attention_heads * c.dim_per_head()),
                file);
  static const std::vector<std::string> acts = {"silu", "gelu", "gelu_new", "gelu_pytorch_tanh", "relu"};
  if (std::find(acts.begin(), acts.end(), c.hidden_act) == acts.end())
    throw Error("unsupported activation \"" + c.hidden_act + "\"", file,
                "supported: silu, gelu, gelu_new, gelu_pytorch_tanh, relu");
  c.extra = json::object();
  for (auto it = j.begin(); it != j.end(); ++it)
    if (std::find(kKnownKeys.begin(), kKnownKeys.end(), it.key()) == kKnownKeys.end()) c.extra[it.key()] = it.value();
  c.extra.erase("text_config");
  c.extra.erase("vision_config");
  return c;
}

json ModelConfig::to_json() const {
  json j = extra.is_object() ? extra : json::object();
  j["architectures"] = {architecture};
  j["model_type"] = model_type;
  j["vocab_size"] = vocab_size;
  if (arch == Arch::kGpt2) {
    j["n_embd"] = hidden_size;
    j["n_layer"] = num_hidden_layers;
    j["n_head"] = num_attention_heads;
    j["n_inner"] = intermediate_size;
    j["n_positions"] = max_position_embeddings;
    j["layer_norm_epsilon"] = rms_norm_eps;
    j["activation_function"] = hidden_act;
    j["tie_word_embeddings"] = tie_word_embeddings;
  } else {
    j["hidden_size"] = hidden_size;
    j["intermediate_size"] = intermediate_size;
    j["num_hidden_layers"] = num_hidden_layers;
    j["num_attention_heads"] = num_attention_heads;
    j["num_key_value_heads"] = kv_heads();
    j["head_dim"] = dim_per_head();
    j["max_position_embeddings"] = max_position_embeddings;
    j["rms_norm_eps"] = rms_norm_eps;
    j["rope_theta"] = rope_theta;
    const auto& r = rope_scaling;
    if (r.type.empty()) {
      j["rope_scaling"] = nullptr;
    } else if (r.type == "longrope") {
      j["rope_scaling"] = {{"rope_type", r.type}, {"type", r.type}, {"short_factor", r.short_factor},
                           {"long_factor", r.long_factor}, {"attention_factor", r.attention_factor}};
      j["original_max_position_embeddings"] = r.original_max_position_embeddings;
    } else {
      j["rope_scaling"] = {{"rope_type", r.type}, {"factor", r.factor}};
      if (r.type == "llama3") {
        j["rope_scaling"]["low_freq_factor"] = r.low_freq_factor;
        j["rope_scaling"]["high_freq_factor"] = r.high_freq_factor;
        j["rope_scaling"]["original_max_position_embeddings"] = r.original_max_position_embeddings;
      }
    }
    j["attention_bias"] = attention_bias;
    j["mlp_bias"] = mlp_bias;
    j["tie_word_embeddings"] = tie_word_embeddings;
    j["hidden_act"] = hidden_act;
    const bool gemma = norm_unit_offset;
    if (gemma) {
      j["hidden_activation"] = hidden_act;
      j["query_pre_attn_scalar"] = query_pre_attn_scalar;
      j["attn_logit_softcapping"] = attn_logit_softcapping > 0 ? json(attn_logit_softcapping) : json(nullptr);
      j["final_logit_softcapping"] = final_logit_softcapping > 0 ? json(final_logit_softcapping) : json(nullptr);
      if (rope_local_theta > 0) j["rope_local_base_freq"] = rope_local_theta;
    }
    if (fused_projections) j["partial_rotary_factor"] = partial_rotary_factor;
    if (max_window_layers > 0) j["max_window_layers"] = max_window_layers;
    if (!sliding_layers.empty()) {
      j["sliding_window"] = sliding_window;
      json lt = json::array();
      for (bool s : sliding_layers) lt.push_back(s ? "sliding_attention" : "full_attention");
      j["layer_types"] = lt;
      if (model_type == "qwen2" || model_type == "qwen3") j["use_sliding_window"] = true;
    } else {
      j["sliding_window"] = nullptr;
      if (gemma) {  // HF's Gemma defaults would otherwise turn sliding layers on
        json lt = json::array();
        for (int64_t l = 0; l < num_hidden_layers; ++l) lt.push_back("full_attention");
        j["layer_types"] = lt;
      }
      if (model_type == "qwen2" || model_type == "qwen3") j["use_sliding_window"] = false;
    }
  }
  j["bos_token_id"] = bos_token_id ? json(*bos_token_id) : json(nullptr);
  j["eos_token_id"] = eos_token_id ? json(*eos_token_id) : json(nullptr);
  if (pad_token_id) j["pad_token_id"] = *pad_token_id;
  if (!j.contains("torch_dtype")) j["torch_dtype"] = "float32";
  return j;
}

std::map<std::string, std::vector<int64_t>> ModelConfig::expected_shapes() const {
  std::map<std::string, std::vector<int64_t>> s;
  const int64_t C = hidden_size, V = vocab_size, F = intermediate_size, D = dim_per_head();
  const int64_t H = num_attention_heads, Hkv = kv_heads();
  if (arch == Arch::kGpt2) {
    s["transformer.wte.weight"] = {V, C};
    s["transformer.wpe.weight"] = {max_position_embeddings, C};
    for (int64_t l = 0; l < num_hidden_layers; ++l) {
      std::string p = fmt::format("transformer.h.{}.", l);
      s[p + "ln_1.weight"] = {C};
      s[p + "ln_1.bias"] = {C};
      s[p + "attn.c_attn.weight"] = {C, 3 * C};  // Conv1D: (in, out)
      s[p + "attn.c_attn.bias"] = {3 * C};
      s[p + "attn.c_proj.weight"] = {C, C};
      s[p + "attn.c_proj.bias"] = {C};
      s[p + "ln_2.weight"] = {C};
      s[p + "ln_2.bias"] = {C};
      s[p + "mlp.c_fc.weight"] = {C, F};
      s[p + "mlp.c_fc.bias"] = {F};
      s[p + "mlp.c_proj.weight"] = {F, C};
      s[p + "mlp.c_proj.bias"] = {C};
    }
    s["transformer.ln_f.weight"] = {C};
    s["transformer.ln_f.bias"] = {C};
    if (!tie_word_embeddings) s["lm_head.weight"] = {V, C};
    return s;
  }
  s["model.embed_tokens.weight"] = {V, C};
  for (int64_t l = 0; l < num_hidden_layers; ++l) {
    std::string p = fmt::format("model.layers.{}.", l);
    switch (norm_placement) {
      case NormPlacement::kPre:
        s[p + "input_layernorm.weight"] = {C};
        s[p + "post_attention_layernorm.weight"] = {C};
        break;
      case NormPlacement::kSandwich:
        s[p + "input_layernorm.weight"] = {C};
        s[p + "post_attention_layernorm.weight"] = {C};
        s[p + "pre_feedforward_layernorm.weight"] = {C};
        s[p + "post_feedforward_layernorm.weight"] = {C};
        break;
      case NormPlacement::kPost:
        s[p + "post_attention_layernorm.weight"] = {C};
        s[p + "post_feedforward_layernorm.weight"] = {C};
        break;
    }
    if (fused_projections) {
      s[p + "self_attn.qkv_proj.weight"] = {(H + 2 * Hkv) * D, C};
      if (attention_bias) s[p + "self_attn.qkv_proj.bias"] = {(H + 2 * Hkv) * D};
    } else {
      s[p + "self_attn.q_proj.weight"] = {H * D, C};
      s[p + "self_attn.k_proj.weight"] = {Hkv * D, C};
      s[p + "self_attn.v_proj.weight"] = {Hkv * D, C};
      if (attention_bias) {
        s[p + "self_attn.q_proj.bias"] = {H * D};
        s[p + "self_attn.k_proj.bias"] = {Hkv * D};
        s[p + "self_attn.v_proj.bias"] = {Hkv * D};
      }
    }
    s[p + "self_attn.o_proj.weight"] = {C, H * D};
    if (qk_norm == QkNorm::kPerHead) {
      s[p + "self_attn.q_norm.weight"] = {D};
      s[p + "self_attn.k_norm.weight"] = {D};
    } else if (qk_norm == QkNorm::kFull) {
      s[p + "self_attn.q_norm.weight"] = {H * D};
      s[p + "self_attn.k_norm.weight"] = {Hkv * D};
    }
    if (fused_projections) {
      s[p + "mlp.gate_up_proj.weight"] = {2 * F, C};
      if (mlp_bias) s[p + "mlp.gate_up_proj.bias"] = {2 * F};
    } else {
      s[p + "mlp.gate_proj.weight"] = {F, C};
      s[p + "mlp.up_proj.weight"] = {F, C};
      if (mlp_bias) {
        s[p + "mlp.gate_proj.bias"] = {F};
        s[p + "mlp.up_proj.bias"] = {F};
      }
    }
    s[p + "mlp.down_proj.weight"] = {C, F};
    if (mlp_bias) s[p + "mlp.down_proj.bias"] = {C};
  }
  s["model.norm.weight"] = {C};
  if (!tie_word_embeddings) s["lm_head.weight"] = {V, C};
  return s;
}

std::optional<std::string> ModelConfig::canonical_name(const std::string& name) const {
  if (ends_with(name, ".attn.bias") || ends_with(name, ".attn.masked_bias") || ends_with(name, "rotary_emb.inv_freq"))
    return std::nullopt;  // buffers some exporters save; recomputed here
  if (model_type == "gemma3_text") {
    // Gemma3ForConditionalGeneration: language_model.model.* (transformers < 4.52) or
    // model.language_model.* (later); the vision tower and projector are not run.
    for (const char* p : {"vision_tower.", "multi_modal_projector.", "model.vision_tower.", "model.multi_modal_projector."})
      if (starts_with(name, p)) return std::nullopt;
    if (starts_with(name, "language_model.model.")) return "model." + name.substr(21);
    if (starts_with(name, "model.language_model.")) return "model." + name.substr(21);
    if (starts_with(name, "language_model.lm_head.")) return name.substr(15);
  }
  return name;
}

void ModelConfig::check_weights(const std::map<std::string, torch::Tensor>& weights, const std::string& file) const {
  // The layer count first: the shapes map below has one entry per layer and tensor.
  const std::string layer_prefix = arch == Arch::kGpt2 ? "transformer.h." : "model.layers.";
  int64_t layers_found = 0;
  std::string beyond;  // the first tensor of a layer the config does not have
  for (const auto& [raw, t] : weights) {
    auto name = canonical_name(raw);
    if (!name || !starts_with(*name, layer_prefix)) continue;
    size_t start = layer_prefix.size(), end = name->find('.', start);
    if (end == std::string::npos || end == start || end - start > 9) continue;
    std::string digits = name->substr(start, end - start);
    if (!std::all_of(digits.begin(), digits.end(), [](char ch) { return ch >= '0' && ch <= '9'; })) continue;
    layers_found = std::max<int64_t>(layers_found, std::stoll(digits) + 1);
    if (std::stoll(digits) >= num_hidden_layers && beyond.empty()) beyond = raw;
  }
  const char* layers_key = arch == Arch::kGpt2 ? "n_layer" : "num_hidden_layers";
  if (!beyond.empty())
    throw Error(fmt::format("unexpected tensor \"{}\": config.json says {} = {}", beyond, layers_key,
                            num_hidden_layers),
                file, "the checkpoint does not match config.json");
  if (layers_found != num_hidden_layers)
    throw Error(fmt::format("config.json says {} = {}, the checkpoint holds {} layers", layers_key,
                            num_hidden_layers, layers_found),
                file, "config.json does not belong to these weights");
  const std::string fields =
      arch == Arch::kGpt2
          ? fmt::format("vocab_size {}, n_embd {}, n_head {}, n_inner {}, n_positions {}", vocab_size, hidden_size,
                        num_attention_heads, intermediate_size, max_position_embeddings)
          : fmt::format("vocab_size {}, hidden_size {}, num_attention_heads {}, num_key_value_heads {}, head_dim {}, "
                        "intermediate_size {}",
                        vocab_size, hidden_size, num_attention_heads, kv_heads(), dim_per_head(), intermediate_size);
  auto expected = expected_shapes();
  std::set<std::string> seen;
  for (const auto& [raw, t] : weights) {
    auto name = canonical_name(raw);
    if (!name) continue;
    if (*name == "lm_head.weight" && tie_word_embeddings) continue;  // tied: embed is used
    auto it = expected.find(*name);
    if (it == expected.end())
      throw Error("unexpected tensor \"" + raw + "\" for " + architecture, file,
                  "the checkpoint does not match config.json");
    if (t.sizes().vec() != it->second)
      throw Error(fmt::format("tensor \"{}\" has shape {}, config.json implies {} ({})", raw,
                              json(t.sizes().vec()).dump(), json(it->second).dump(), fields),
                  file, "the checkpoint does not match config.json");
    if (!seen.insert(*name).second)
      throw Error("tensor \"" + *name + "\" appears twice (under two names)", file);
  }
  for (const auto& [name, shape] : expected)
    if (!seen.count(name))
      throw Error("missing tensor \"" + name + "\"", file, "the checkpoint is incomplete or of another architecture");
}

}  // namespace atax
