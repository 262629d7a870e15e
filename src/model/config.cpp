// config.json <-> ModelConfig, and the parameter names and shapes a config implies.
#include <fmt/format.h>

#include "model/model.h"

namespace atax {

namespace {

const std::vector<std::string> kKnownKeys = {
    "architectures", "model_type", "vocab_size", "hidden_size", "intermediate_size", "num_hidden_layers",
    "num_attention_heads", "num_key_value_heads", "head_dim", "max_position_embeddings", "rms_norm_eps",
    "rope_theta", "rope_scaling", "attention_bias", "mlp_bias", "tie_word_embeddings", "hidden_act",
    "bos_token_id", "eos_token_id", "pad_token_id",
    // GPT-2 names
    "n_embd", "n_layer", "n_head", "n_positions", "n_inner", "layer_norm_epsilon", "activation_function"};

int64_t get_int(const json& j, const char* key, const std::string& file, bool required, int64_t fallback = 0) {
  auto it = j.find(key);
  if (it == j.end() || it->is_null()) {
    if (required) throw Error(fmt::format("missing \"{}\"", key), file, "config.json must give the model's shape");
    return fallback;
  }
  if (!it->is_number_integer())
    throw Error(fmt::format("\"{}\" must be an integer, got {}", key, it->dump()), file);
  int64_t v = it->get<int64_t>();
  if (v < 0) throw Error(fmt::format("\"{}\" must not be negative, got {}", key, v), file);
  return v;
}

std::optional<int64_t> get_token_id(const json& j, const char* key) {
  auto it = j.find(key);
  if (it == j.end() || it->is_null()) return std::nullopt;
  if (it->is_array()) return it->empty() ? std::nullopt : std::optional<int64_t>((*it)[0].get<int64_t>());
  if (it->is_number_integer()) return it->get<int64_t>();
  return std::nullopt;
}

}  // namespace

ModelConfig ModelConfig::from_json(const json& j, const std::string& file) {
  if (!j.is_object()) throw Error("config.json is not a JSON object", file);
  ModelConfig c;
  std::string arch;
  if (j.contains("architectures") && j["architectures"].is_array() && !j["architectures"].empty())
    arch = j["architectures"][0].get<std::string>();
  c.model_type = j.value("model_type", std::string());
  if (arch.empty()) {
    static const std::map<std::string, std::string> by_type = {{"llama", "LlamaForCausalLM"},
                                                               {"mistral", "MistralForCausalLM"},
                                                               {"qwen2", "Qwen2ForCausalLM"},
                                                               {"gpt2", "GPT2LMHeadModel"}};
    auto it = by_type.find(c.model_type);
    if (it == by_type.end())
      throw Error("no \"architectures\" and unknown model_type \"" + c.model_type + "\"", file,
                  "supported: LlamaForCausalLM, MistralForCausalLM, Qwen2ForCausalLM, GPT2LMHeadModel");
    arch = it->second;
  }
  c.architecture = arch;
  if (arch == "LlamaForCausalLM" || arch == "MistralForCausalLM" || arch == "Qwen2ForCausalLM") {
    c.arch = Arch::kLlama;
    if (c.model_type.empty())
      c.model_type = arch == "LlamaForCausalLM" ? "llama" : arch == "MistralForCausalLM" ? "mistral" : "qwen2";
    c.vocab_size = get_int(j, "vocab_size", file, true);
    c.hidden_size = get_int(j, "hidden_size", file, true);
    c.intermediate_size = get_int(j, "intermediate_size", file, true);
    c.num_hidden_layers = get_int(j, "num_hidden_layers", file, true);
    c.num_attention_heads = get_int(j, "num_attention_heads", file, true);
    c.num_key_value_heads = get_int(j, "num_key_value_heads", file, false, c.num_attention_heads);
    c.head_dim = get_int(j, "head_dim", file, false, 0);
    c.max_position_embeddings = get_int(j, "max_position_embeddings", file, false, 2048);
    c.rms_norm_eps = j.value("rms_norm_eps", 1e-6);
    c.rope_theta = j.value("rope_theta", 10000.0);
    c.attention_bias = j.value("attention_bias", arch == "Qwen2ForCausalLM");
    c.mlp_bias = j.value("mlp_bias", false);
    c.tie_word_embeddings = j.value("tie_word_embeddings", false);
    c.hidden_act = j.value("hidden_act", std::string("silu"));
    if (j.contains("rope_scaling") && j["rope_scaling"].is_object()) {
      const auto& rs = j["rope_scaling"];
      c.rope_scaling.type = rs.value("rope_type", rs.value("type", std::string()));
      c.rope_scaling.factor = rs.value("factor", 1.0);
      c.rope_scaling.low_freq_factor = rs.value("low_freq_factor", 1.0);
      c.rope_scaling.high_freq_factor = rs.value("high_freq_factor", 4.0);
      c.rope_scaling.original_max_position_embeddings = rs.value("original_max_position_embeddings", 8192);
      if (c.rope_scaling.type != "llama3" && c.rope_scaling.type != "linear" && c.rope_scaling.type != "default")
        throw Error("unsupported rope_scaling type \"" + c.rope_scaling.type + "\"", file,
                    "supported: llama3, linear");
      if (c.rope_scaling.type == "default") c.rope_scaling.type.clear();
    }
  } else if (arch == "GPT2LMHeadModel") {
    c.arch = Arch::kGpt2;
    c.model_type = "gpt2";
    c.vocab_size = get_int(j, "vocab_size", file, true);
    c.hidden_size = get_int(j, "n_embd", file, true);
    c.num_hidden_layers = get_int(j, "n_layer", file, true);
    c.num_attention_heads = get_int(j, "n_head", file, true);
    c.num_key_value_heads = c.num_attention_heads;
    c.intermediate_size = get_int(j, "n_inner", file, false, 4 * c.hidden_size);
    c.max_position_embeddings = get_int(j, "n_positions", file, false, 1024);
    c.rms_norm_eps = j.value("layer_norm_epsilon", 1e-5);
    c.hidden_act = j.value("activation_function", std::string("gelu_new"));
    c.tie_word_embeddings = j.value("tie_word_embeddings", true);
    c.attention_bias = true;
    c.mlp_bias = true;
  } else {
    throw Error("unknown architecture \"" + arch + "\"", file,
                "supported: LlamaForCausalLM, MistralForCausalLM, Qwen2ForCausalLM, GPT2LMHeadModel");
  }
  c.bos_token_id = get_token_id(j, "bos_token_id");
  c.eos_token_id = get_token_id(j, "eos_token_id");
  c.pad_token_id = get_token_id(j, "pad_token_id");
  if (c.vocab_size <= 0 || c.hidden_size <= 0 || c.num_hidden_layers <= 0 || c.num_attention_heads <= 0)
    throw Error("vocab_size, hidden size, layers and heads must be positive", file);
  if (c.head_dim == 0 && c.hidden_size % c.num_attention_heads != 0)
    throw Error(fmt::format("hidden size {} is not divisible by {} heads", c.hidden_size, c.num_attention_heads),
                file, "set head_dim or fix num_attention_heads");
  if (c.num_attention_heads % c.kv_heads() != 0)
    throw Error(fmt::format("{} attention heads are not a multiple of {} key/value heads", c.num_attention_heads,
                            c.kv_heads()),
                file);
  if (c.dim_per_head() % 2 != 0 && c.arch == Arch::kLlama)
    throw Error("head dim must be even for rotary embeddings", file);
  static const std::vector<std::string> acts = {"silu", "gelu", "gelu_new", "gelu_pytorch_tanh", "relu"};
  if (std::find(acts.begin(), acts.end(), c.hidden_act) == acts.end())
    throw Error("unsupported activation \"" + c.hidden_act + "\"", file, "supported: silu, gelu, gelu_new, relu");
  c.extra = json::object();
  for (auto it = j.begin(); it != j.end(); ++it)
    if (std::find(kKnownKeys.begin(), kKnownKeys.end(), it.key()) == kKnownKeys.end()) c.extra[it.key()] = it.value();
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
    if (rope_scaling.type.empty()) {
      j["rope_scaling"] = nullptr;
    } else {
      j["rope_scaling"] = {{"rope_type", rope_scaling.type}, {"factor", rope_scaling.factor}};
      if (rope_scaling.type == "llama3") {
        j["rope_scaling"]["low_freq_factor"] = rope_scaling.low_freq_factor;
        j["rope_scaling"]["high_freq_factor"] = rope_scaling.high_freq_factor;
        j["rope_scaling"]["original_max_position_embeddings"] = rope_scaling.original_max_position_embeddings;
      }
    }
    j["attention_bias"] = attention_bias;
    j["mlp_bias"] = mlp_bias;
    j["tie_word_embeddings"] = tie_word_embeddings;
    j["hidden_act"] = hidden_act;
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
    s[p + "input_layernorm.weight"] = {C};
    s[p + "self_attn.q_proj.weight"] = {H * D, C};
    s[p + "self_attn.k_proj.weight"] = {Hkv * D, C};
    s[p + "self_attn.v_proj.weight"] = {Hkv * D, C};
    s[p + "self_attn.o_proj.weight"] = {C, H * D};
    if (attention_bias) {
      s[p + "self_attn.q_proj.bias"] = {H * D};
      s[p + "self_attn.k_proj.bias"] = {Hkv * D};
      s[p + "self_attn.v_proj.bias"] = {Hkv * D};
    }
    s[p + "post_attention_layernorm.weight"] = {C};
    s[p + "mlp.gate_proj.weight"] = {F, C};
    s[p + "mlp.up_proj.weight"] = {F, C};
    s[p + "mlp.down_proj.weight"] = {C, F};
    if (mlp_bias) {
      s[p + "mlp.gate_proj.bias"] = {F};
      s[p + "mlp.up_proj.bias"] = {F};
      s[p + "mlp.down_proj.bias"] = {C};
    }
  }
  s["model.norm.weight"] = {C};
  if (!tie_word_embeddings) s["lm_head.weight"] = {V, C};
  return s;
}

}  // namespace atax
