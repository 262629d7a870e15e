// The decoder networks: Llama family (RMSNorm, RoPE, SwiGLU, GQA) with its relatives (Mistral,
// Qwen2/3, Gemma-2/3, OLMo-2, Phi-3: see ModelConfig's family fields) and GPT-2 (learned
// positions, LayerNorm, GELU, Conv1D layout). Parameters live under their Hugging Face names.
// The forward pass is embed -> layers -> final norm (hidden_states) -> lm_head.
//
// Shape legend: B batch, T new positions, S = cached + new positions, C hidden, H query heads,
// Hkv key/value heads, D head dim, V vocab, F MLP size, r LoRA rank.
#include <malloc.h>

#include <atomic>
#include <cmath>

#include <fmt/format.h>

#include "model/attention.h"
#include "model/model.h"

namespace atax {

namespace {

// A linear layer in HF layout: weight (out, in) for nn.Linear, (in, out) for GPT-2's Conv1D.
struct Linear {
  std::string name;       // HF prefix, e.g. "model.layers.0.self_attn.q_proj"
  torch::Tensor weight;   // (out, in) or (in, out) when conv1d
  torch::Tensor bias;     // (out) or undefined
  bool conv1d = false;
  // LoRA adapter: A (r, in), B (out, r).
  torch::Tensor lora_a, lora_b;
  double lora_scale = 0;
  bool lora_enabled = true;
  // pack_weights: weight is bfloat16, or int8 with w_scale (out, in/32) (Q8_0); x stays float32.
  bool packed = false;
  torch::Tensor w_scale;

  // A plain float32 nn.Linear-layout weight without bias or active adapter: linear_group may run it.
  bool groupable() const {
    return !packed && !conv1d && !bias.defined() && !(lora_a.defined() && lora_enabled) && weight.defined();
  }
  torch::Tensor operator()(const torch::Tensor& x) const {  // x (..., in) -> (..., out)
    auto y = packed ? atax::linear_packed(x, weight, w_scale, bias)
                    : atax::linear(x, weight, bias, conv1d);  // oneDNN's sgemm in float32 inference (attention.cpp)
    if (lora_a.defined() && lora_enabled)
      y = y + torch::nn::functional::linear(torch::nn::functional::linear(x, lora_a), lora_b) * lora_scale;
    return y;
  }
  int64_t in_features() const { return conv1d ? weight.size(0) : weight.size(1); }
  int64_t out_features() const { return conv1d ? weight.size(1) : weight.size(0); }
};

struct Layer {
  // Norms by where they act (undefined when the family has none there):
  //   attn_norm: on x before attention   (Llama/Gemma input_layernorm; GPT-2 ln_1)
  //   attn_out_norm: on attention's output (Gemma/OLMo-2 post_attention_layernorm)
  //   mlp_norm: on x before the MLP       (Llama post_attention_layernorm; Gemma
  //             pre_feedforward_layernorm; GPT-2 ln_2)
  //   mlp_out_norm: on the MLP's output    (Gemma/OLMo-2 post_feedforward_layernorm)
  torch::Tensor attn_norm_w, attn_norm_b, mlp_norm_w, mlp_norm_b, attn_out_norm_w, mlp_out_norm_w;
  torch::Tensor q_norm_w, k_norm_w;  // (D) per head or (H·D)/(Hkv·D) over the projection
  Linear q, k, v, o;          // Llama
  Linear qkv;                 // Phi-3 fused q|k|v (rows H·D, Hkv·D, Hkv·D)
  Linear c_attn;              // GPT-2 fused qkv
  Linear gate, up, down;      // Llama MLP (GPT-2: up = c_fc, down = c_proj)
  Linear gate_up;             // Phi-3 fused gate|up (rows F, F)
};

// RMSNorm in float32; Gemma scales by (1 + w) in float32, Llama by w in the input's dtype.
torch::Tensor rms_norm(const torch::Tensor& x, const torch::Tensor& w, double eps, bool unit_offset = false) {
  if (fused_elementwise(x) && w.scalar_type() == torch::kFloat32 && x.dim() >= 1 &&
      x.size(-1) == w.numel())
    return rms_norm_fused(x, w, eps, unit_offset);
  auto xf = x.to(torch::kFloat32);
  auto y = xf * torch::rsqrt(xf.pow(2).mean(-1, true) + eps);
  if (unit_offset) return (y * (1.0 + w.to(torch::kFloat32))).to(x.scalar_type());
  return w * y.to(x.scalar_type());
}

torch::Tensor softcap(const torch::Tensor& x, double cap) { return torch::tanh(x / cap) * cap; }

torch::Tensor activation(const torch::Tensor& x, const std::string& act) {
  if (act == "silu") return torch::silu(x);
  if (act == "gelu") return torch::gelu(x);
  if (act == "relu") return torch::relu(x);
  return torch::gelu(x, "tanh");  // gelu_new, gelu_pytorch_tanh
}

torch::Tensor rotate_half(const torch::Tensor& x) {  // (..., D): [-x2, x1]
  auto half = x.size(-1) / 2;
  return torch::cat({-x.narrow(-1, half, half), x.narrow(-1, 0, half)}, -1);
}

// Appends x (B,Hkv,T,D) to a KV-cache slot (B,Hkv,L,D) and returns the slot, now (B,Hkv,L+T,D).
// The slot is a prefix view (positions [0, L) of dim 2) of a buffer (B,Hkv,cap,D) with room to
// grow, so a decoding step copies its T new positions instead of all L + T (torch::cat per token:
// at 8 streams × 256 positions, 48 MB a step on the 58M Llama, measured). The buffer grows by a
// quarter (at least 128 positions) when full. A slot that is not such a view, or that anything
// else holds (a copied KvCache, a caller's reference), is never written: it is copied into a new
// buffer, so caches never alias. Inference only (no autograd through the in-place copies).
torch::Tensor append_cached(torch::Tensor& slot, const torch::Tensor& x) {
  const int64_t B = x.size(0), Hkv = x.size(1), T = x.size(2), D = x.size(3);
  const int64_t L = slot.defined() ? slot.size(2) : 0;
  bool room = false;
  if (slot.defined() && slot.dim() == 4 && slot.size(0) == B && slot.size(1) == Hkv && slot.size(3) == D &&
      slot.scalar_type() == x.scalar_type() && slot.device() == x.device() && slot.use_count() == 1 &&
      slot.storage().use_count() == 1 && slot.storage_offset() == 0 && slot.stride(3) == 1 && slot.stride(2) == D &&
      D > 0 && slot.stride(1) % D == 0) {
    const int64_t cap = slot.stride(1) / D;
    room = cap >= L + T && slot.stride(0) == Hkv * cap * D &&
           static_cast<int64_t>(slot.storage().nbytes()) >= B * Hkv * cap * D * slot.element_size();
  }
  if (!room) {
    const int64_t cap = L + T + std::max<int64_t>(128, (L + T) / 4);
    auto buf = torch::empty({B, Hkv, cap, D}, x.options());
    if (L > 0) buf.narrow(2, 0, L).copy_(slot);
    slot = buf;
  }
  const int64_t cap = slot.stride(1) / D;
  // The same storage seen with L + T positions, by set_ rather than as a view: a view would keep
  // its base (and so a second reference to the storage) alive.
  auto grown = torch::empty({0}, x.options());
  grown.set_(slot.storage(), 0, {B, Hkv, L + T, D}, {Hkv * cap * D, cap * D, D, 1});
  slot = grown;
  slot.narrow(2, L, T).copy_(x);
  return slot;
}

}  // namespace

struct CausalLmImpl::Impl {
  ModelConfig cfg;
  torch::Tensor embed;      // (V, C)
  torch::Tensor pos_embed;  // GPT-2 (P, C)
  std::vector<Layer> layers;
  torch::Tensor norm_w, norm_b;  // final norm
  torch::Tensor lm_head_w;       // (V, C); undefined when tied
  torch::Tensor inv_freq;        // (Dr/2) float32, Dr = rotary dim (longrope: the short factors)
  torch::Tensor inv_freq_long;   // longrope: with the long factors
  torch::Tensor inv_freq_local;  // Gemma-3 sliding layers (own base, no scaling)
  std::map<std::string, torch::Tensor> params;  // HF name -> parameter (shared storage)
  bool has_lora = false;
  WeightFormat weights = WeightFormat::kF32;  // pack_weights
  torch::Tensor embed_scale, lm_head_scale;   // Q8_0 scales of embed and lm_head_w when packed so

  // Token embeddings (B,T,C) of input_ids (B,T): packed rows widened to float32.
  torch::Tensor embed_tokens(const torch::Tensor& input_ids) const {
    if (weights == WeightFormat::kF32 || embed.scalar_type() == torch::kFloat32) return torch::embedding(embed, input_ids);
    if (!embed_scale.defined()) return torch::embedding(embed, input_ids).to(torch::kFloat32);  // bfloat16
    auto ids = input_ids.reshape({-1});
    auto rows = dequantize_q8_0(embed.index_select(0, ids), embed_scale.index_select(0, ids));  // (B·T,C)
    auto sizes = input_ids.sizes().vec();
    sizes.push_back(embed.size(1));
    return rows.view(sizes);
  }

  std::vector<Linear*> linears() {
    std::vector<Linear*> out;
    for (auto& l : layers) {
      if (cfg.arch == Arch::kGpt2) {
        out.insert(out.end(), {&l.c_attn, &l.o, &l.up, &l.down});
      } else {
        for (Linear* x : {&l.q, &l.k, &l.v, &l.qkv, &l.o, &l.gate, &l.up, &l.gate_up, &l.down})
          if (x->weight.defined()) out.push_back(x);
      }
    }
    return out;
  }
};

namespace {
torch::Tensor llama3_inv_freq(const ModelConfig& c, torch::Tensor inv_freq) {
  const auto& rs = c.rope_scaling;
  double old_ctx = static_cast<double>(rs.original_max_position_embeddings);
  double low_wavelen = old_ctx / rs.low_freq_factor, high_wavelen = old_ctx / rs.high_freq_factor;
  auto acc = inv_freq.accessor<float, 1>();
  for (int64_t i = 0; i < inv_freq.size(0); ++i) {
    double f = acc[i], wavelen = 2 * M_PI / f;
    if (wavelen < high_wavelen) continue;
    if (wavelen > low_wavelen) {
      acc[i] = static_cast<float>(f / rs.factor);
    } else {
      double smooth = (old_ctx / wavelen - rs.low_freq_factor) / (rs.high_freq_factor - rs.low_freq_factor);
      acc[i] = static_cast<float>((1 - smooth) * f / rs.factor + smooth * f);
    }
  }
  return inv_freq;
}
}  // namespace

CausalLmImpl::CausalLmImpl(ModelConfig config, WeightInit init) : impl_(std::make_shared<Impl>()), config_(std::move(config)) {
  auto& m = *impl_;
  m.cfg = config_;
  const auto& c = config_;
  const int64_t C = c.hidden_size, V = c.vocab_size, F = c.intermediate_size, D = c.dim_per_head();
  const int64_t H = c.num_attention_heads, Hkv = c.kv_heads();
  auto add = [&](const std::string& hf_name, std::vector<int64_t> shape) {
    std::string torch_name = replace_all(hf_name, ".", "__");
    auto t = register_parameter(torch_name, torch::empty(shape));
    m.params[hf_name] = t;
    return t;
  };
  auto linear = [&](const std::string& name, int64_t in, int64_t out, bool bias, bool conv1d) {
    Linear l;
    l.name = name;
    l.conv1d = conv1d;
    l.weight = add(name + ".weight", conv1d ? std::vector<int64_t>{in, out} : std::vector<int64_t>{out, in});
    if (bias) l.bias = add(name + ".bias", {out});
    return l;
  };
  if (c.arch == Arch::kGpt2) {
    m.embed = add("transformer.wte.weight", {V, C});
    m.pos_embed = add("transformer.wpe.weight", {c.max_position_embeddings, C});
    for (int64_t i = 0; i < c.num_hidden_layers; ++i) {
      std::string p = fmt::format("transformer.h.{}.", i);
      Layer l;
      l.attn_norm_w = add(p + "ln_1.weight", {C});
      l.attn_norm_b = add(p + "ln_1.bias", {C});
      l.c_attn = linear(p + "attn.c_attn", C, 3 * C, true, true);
      l.o = linear(p + "attn.c_proj", C, C, true, true);
      l.mlp_norm_w = add(p + "ln_2.weight", {C});
      l.mlp_norm_b = add(p + "ln_2.bias", {C});
      l.up = linear(p + "mlp.c_fc", C, F, true, true);
      l.down = linear(p + "mlp.c_proj", F, C, true, true);
      m.layers.push_back(std::move(l));
    }
    m.norm_w = add("transformer.ln_f.weight", {C});
    m.norm_b = add("transformer.ln_f.bias", {C});
  } else {
    m.embed = add("model.embed_tokens.weight", {V, C});
    for (int64_t i = 0; i < c.num_hidden_layers; ++i) {
      std::string p = fmt::format("model.layers.{}.", i);
      Layer l;
      switch (c.norm_placement) {
        case NormPlacement::kPre:
          l.attn_norm_w = add(p + "input_layernorm.weight", {C});
          l.mlp_norm_w = add(p + "post_attention_layernorm.weight", {C});
          break;
        case NormPlacement::kSandwich:
          l.attn_norm_w = add(p + "input_layernorm.weight", {C});
          l.attn_out_norm_w = add(p + "post_attention_layernorm.weight", {C});
          l.mlp_norm_w = add(p + "pre_feedforward_layernorm.weight", {C});
          l.mlp_out_norm_w = add(p + "post_feedforward_layernorm.weight", {C});
          break;
        case NormPlacement::kPost:
          l.attn_out_norm_w = add(p + "post_attention_layernorm.weight", {C});
          l.mlp_out_norm_w = add(p + "post_feedforward_layernorm.weight", {C});
          break;
      }
      if (c.fused_projections) {
        l.qkv = linear(p + "self_attn.qkv_proj", C, (H + 2 * Hkv) * D, c.attention_bias, false);
      } else {
        l.q = linear(p + "self_attn.q_proj", C, H * D, c.attention_bias, false);
        l.k = linear(p + "self_attn.k_proj", C, Hkv * D, c.attention_bias, false);
        l.v = linear(p + "self_attn.v_proj", C, Hkv * D, c.attention_bias, false);
      }
      l.o = linear(p + "self_attn.o_proj", H * D, C, false, false);
      if (c.qk_norm != QkNorm::kNone) {
        const bool full = c.qk_norm == QkNorm::kFull;
        l.q_norm_w = add(p + "self_attn.q_norm.weight", {full ? H * D : D});
        l.k_norm_w = add(p + "self_attn.k_norm.weight", {full ? Hkv * D : D});
      }
      if (c.fused_projections) {
        l.gate_up = linear(p + "mlp.gate_up_proj", C, 2 * F, c.mlp_bias, false);
      } else {
        l.gate = linear(p + "mlp.gate_proj", C, F, c.mlp_bias, false);
        l.up = linear(p + "mlp.up_proj", C, F, c.mlp_bias, false);
      }
      l.down = linear(p + "mlp.down_proj", F, C, c.mlp_bias, false);
      m.layers.push_back(std::move(l));
    }
    m.norm_w = add("model.norm.weight", {C});
    // RoPE frequencies over the rotary dims Dr (all of D unless partial_rotary_factor < 1).
    const int64_t Dr = c.rotary_dim();
    auto base_freq = [&](double theta) {
      return (1.0 / torch::pow(theta, torch::arange(0, Dr, 2, torch::kFloat64) / double(Dr))).to(torch::kFloat32);
    };
    m.inv_freq = base_freq(c.rope_theta);
    const auto& rs = c.rope_scaling;
    if (rs.type == "llama3") m.inv_freq = llama3_inv_freq(c, m.inv_freq);
    if (rs.type == "linear") m.inv_freq = m.inv_freq / rs.factor;
    if (rs.type == "longrope") {
      auto to_t = [](const std::vector<double>& f) { return torch::tensor(f, torch::kFloat64).to(torch::kFloat32); };
      auto base = m.inv_freq.clone();
      m.inv_freq = base / to_t(rs.short_factor);
      m.inv_freq_long = register_buffer("inv_freq_long", base / to_t(rs.long_factor));
    }
    if (c.rope_local_theta > 0) m.inv_freq_local = register_buffer("inv_freq_local", base_freq(c.rope_local_theta));
    m.inv_freq = register_buffer("inv_freq", m.inv_freq);
  }
  if (!c.tie_word_embeddings) m.lm_head_w = add("lm_head.weight", {V, C});
  // Default init (GPT-2 / Llama style): normal(0, 0.02) for matrices, ones for norm weights
  // (zeros where the norm scales by 1 + w), zeros for biases. With kNone the weights are loaded
  // next, and parameters left unwritten cost no memory until then.
  if (init == WeightInit::kNone) return;
  torch::NoGradGuard ng;
  for (auto& [name, t] : m.params) {
    if (ends_with(name, "bias")) t.zero_();
    else if (t.dim() == 1) t.fill_(c.norm_unit_offset ? 0.0 : 1.0);
    else t.normal_(0.0, 0.02);
  }
}

torch::Tensor CausalLmImpl::hidden_states(const torch::Tensor& input_ids, const torch::Tensor& attention_mask,
                                          KvCache* cache, const torch::Tensor& position_ids) {
  auto& m = *impl_;
  const auto& c = config_;
  TORCH_CHECK(input_ids.dim() == 2, "input_ids must be (B,T)");
  const int64_t B = input_ids.size(0), T = input_ids.size(1);
  const int64_t past = cache ? cache->length() : 0, S = past + T;
  const int64_t H = c.num_attention_heads, Hkv = c.kv_heads(), D = c.dim_per_head();
  auto dev = input_ids.device();
  TORCH_CHECK(!attention_mask.defined() || attention_mask.size(1) == S,
              "attention_mask must cover cached + new positions");
  if (cache && cache->k.empty()) {
    cache->k.resize(m.layers.size());
    cache->v.resize(m.layers.size());
  }
  // Positions (B,T): from the mask when given (left padding), else past + arange.
  torch::Tensor pos = position_ids;
  if (!pos.defined()) {
    if (attention_mask.defined()) {
      auto full = attention_mask.to(torch::kLong).cumsum(1) - 1;  // (B,S)
      full = full.clamp_min(0);
      pos = full.narrow(1, past, T);
    } else {
      pos = torch::arange(past, S, torch::TensorOptions().dtype(torch::kLong).device(dev)).unsqueeze(0).expand({B, T});
    }
  }
  // Additive mask (B,1,T,S): causal and padding.
  auto opts_f = torch::TensorOptions().dtype(torch::kFloat32).device(dev);
  auto qi = torch::arange(past, S, torch::TensorOptions().dtype(torch::kLong).device(dev)).unsqueeze(1);  // (T,1)
  auto kj = torch::arange(0, S, torch::TensorOptions().dtype(torch::kLong).device(dev)).unsqueeze(0);     // (1,S)
  auto allowed = (kj <= qi).unsqueeze(0).unsqueeze(0);  // (1,1,T,S)
  if (attention_mask.defined()) allowed = allowed & attention_mask.to(torch::kBool).view({B, 1, 1, S});
  const float neg = -1e30f;
  auto add_mask = torch::where(allowed, torch::zeros({1}, opts_f), torch::full({1}, neg, opts_f));  // (B|1,1,T,S)
  // Sliding-window layers also hide keys at or before query - window (HF: kv > q - window).
  torch::Tensor add_mask_sliding;
  if (!c.sliding_layers.empty()) {
    auto near = (kj > qi - c.sliding_window).unsqueeze(0).unsqueeze(0);  // (1,1,T,S)
    add_mask_sliding = torch::where(allowed & near, torch::zeros({1}, opts_f), torch::full({1}, neg, opts_f));
  }

  torch::Tensor x;
  if (c.arch == Arch::kGpt2) {
    x = m.embed_tokens(input_ids) + torch::embedding(m.pos_embed, pos);
  } else {
    x = m.embed_tokens(input_ids);
    // Gemma: × √C, the factor rounded to the hidden dtype as HF does.
    if (c.scale_embeddings)
      x = x * torch::tensor(std::sqrt(static_cast<double>(c.hidden_size)), x.options()).to(x.scalar_type());
  }
  // cos/sin (B,1,T,Dr) for the global layers and, with a local base, for the sliding ones.
  torch::Tensor cos, sin, cos_local, sin_local;
  if (c.arch == Arch::kLlama) {
    auto tables = [&](const torch::Tensor& inv_freq, double attention_scale) {
      auto freqs = pos.to(torch::kFloat32).unsqueeze(-1) * inv_freq.to(dev).view({1, 1, -1});  // (B,T,Dr/2)
      auto emb = torch::cat({freqs, freqs}, -1).unsqueeze(1);                                  // (B,1,T,Dr)
      return std::make_pair((emb.cos() * attention_scale).to(x.scalar_type()),
                            (emb.sin() * attention_scale).to(x.scalar_type()));
    };
    torch::Tensor inv = m.inv_freq;
    double att = 1.0;
    if (c.rope_scaling.type == "longrope") {
      // Phi-3: the long factors once the sequence runs past the pretrained context.
      const int64_t seq_len = pos.numel() ? pos.max().item<int64_t>() + 1 : 0;
      if (seq_len > c.rope_scaling.original_max_position_embeddings) inv = m.inv_freq_long;
      att = c.rope_scaling.attention_factor;
    }
    std::tie(cos, sin) = tables(inv, att);
    if (m.inv_freq_local.defined()) std::tie(cos_local, sin_local) = tables(m.inv_freq_local, 1.0);
  }
  const int64_t Dr = c.rotary_dim();
  auto rope = [&](const torch::Tensor& t, const torch::Tensor& cs, const torch::Tensor& sn) {  // (B,*,T,D)
    if (Dr == D && fused_elementwise(t) && cs.scalar_type() == torch::kFloat32) return rope_fused(t, cs, sn);
    if (Dr == D) return t * cs + rotate_half(t) * sn;
    auto rot = t.narrow(-1, 0, Dr), pass = t.narrow(-1, Dr, D - Dr);  // Phi-3 partial rotary
    return torch::cat({rot * cs + rotate_half(rot) * sn, pass}, -1);
  };
  const double scale = 1.0 / std::sqrt(c.query_pre_attn_scalar > 0 ? c.query_pre_attn_scalar : static_cast<double>(D));
  const bool unit = c.norm_unit_offset;
  const double eps = c.rms_norm_eps;
  // Rows per MLP block in inference (0: the whole batch at once, as autograd needs).
  const int64_t mlp_rows = fast_kernels() && !torch::GradMode::is_enabled() ? 256 : 0;
  for (size_t li = 0; li < m.layers.size(); ++li) {
    auto& l = m.layers[li];
    const bool sliding = c.is_sliding(static_cast<int64_t>(li));
    torch::Tensor h, q, k, v;
    if (c.arch == Arch::kGpt2) {
      h = torch::layer_norm(x, {c.hidden_size}, l.attn_norm_w, l.attn_norm_b, c.rms_norm_eps);
      auto qkv = l.c_attn(h).split(c.hidden_size, -1);
      q = qkv[0].view({B, T, H, D}).transpose(1, 2);
      k = qkv[1].view({B, T, H, D}).transpose(1, 2);
      v = qkv[2].view({B, T, H, D}).transpose(1, 2);
    } else {
      h = l.attn_norm_w.defined() ? rms_norm(x, l.attn_norm_w, eps, unit) : x;
      if (l.qkv.weight.defined()) {
        auto qkv = l.qkv(h).split({H * D, Hkv * D, Hkv * D}, -1);  // (B,T,·) each
        q = qkv[0];
        k = qkv[1];
        v = qkv[2];
      } else if (l.q.groupable() && l.k.groupable() && l.v.groupable()) {
        auto qkv = atax::linear_group(h, {l.q.weight, l.k.weight, l.v.weight});  // one hand-over when decoding
        q = qkv[0];
        k = qkv[1];
        v = qkv[2];
      } else {
        q = l.q(h);
        k = l.k(h);
        v = l.v(h);
      }
      if (c.qk_norm == QkNorm::kFull) {  // OLMo-2: over the whole projection
        q = rms_norm(q, l.q_norm_w, eps);
        k = rms_norm(k, l.k_norm_w, eps);
      }
      q = q.view({B, T, H, D}).transpose(1, 2);    // (B,H,T,D)
      k = k.view({B, T, Hkv, D}).transpose(1, 2);  // (B,Hkv,T,D)
      v = v.view({B, T, Hkv, D}).transpose(1, 2);
      if (c.qk_norm == QkNorm::kPerHead) {  // Qwen3, Gemma-3: per head over D
        q = rms_norm(q, l.q_norm_w, eps, unit);
        k = rms_norm(k, l.k_norm_w, eps, unit);
      }
      const bool local = sliding && cos_local.defined();
      q = rope(q, local ? cos_local : cos, local ? sin_local : sin);
      k = rope(k, local ? cos_local : cos, local ? sin_local : sin);
    }
    if (cache && !torch::GradMode::is_enabled()) {  // inference: append into buffers with room
      k = append_cached(cache->k[li], k);
      v = append_cached(cache->v[li], v);
    } else if (cache) {
      if (cache->k[li].defined()) {
        k = torch::cat({cache->k[li], k}, 2);
        v = torch::cat({cache->v[li], v}, 2);
      }
      cache->k[li] = k;
      cache->v[li] = v;
    }
    const auto& mask = sliding ? add_mask_sliding : add_mask;
    torch::Tensor attn;  // (B,H,T,D)
    if (c.attn_logit_softcapping > 0) {  // Gemma-2: cap·tanh(scores/cap) before the mask
      const int64_t kvh = k.size(1);
      if (kvh != H) {  // GQA: query head h uses kv head h / (H/Hkv)
        k = k.unsqueeze(2).expand({B, kvh, H / kvh, S, D}).reshape({B, H, S, D});
        v = v.unsqueeze(2).expand({B, kvh, H / kvh, S, D}).reshape({B, H, S, D});
      }
      auto scores = softcap(torch::matmul(q, k.transpose(-2, -1)).to(torch::kFloat32) * scale,
                            c.attn_logit_softcapping) + mask;  // (B,H,T,S)
      attn = torch::matmul(torch::softmax(scores, -1).to(v.scalar_type()), v);
    } else {
      attn = causal_attention(q, k, v, mask, scale);  // GQA, query blocks, oneDNN (attention.cpp)
    }
    auto out = l.o(attn.transpose(1, 2).reshape({B, T, H * D}));  // (B,T,C)
    if (l.attn_out_norm_w.defined()) out = rms_norm(out, l.attn_out_norm_w, eps, unit);
    x = x + out;
    if (c.arch == Arch::kGpt2) {
      h = torch::layer_norm(x, {c.hidden_size}, l.mlp_norm_w, l.mlp_norm_b, c.rms_norm_eps);
      x = x + l.down(activation(l.up(h), c.hidden_act));
    } else {
      h = l.mlp_norm_w.defined() ? rms_norm(x, l.mlp_norm_w, eps, unit) : x;
      auto mlp = [&](const torch::Tensor& hh) {  // (...,C) -> (...,C)
        if (l.gate_up.weight.defined()) {  // Phi-3: gate = first F rows, up = the rest
          auto gu = l.gate_up(hh).chunk(2, -1);
          return l.down(activation(gu[0], c.hidden_act) * gu[1]);
        }
        if (l.gate.groupable() && l.up.groupable()) {
          auto gu = atax::linear_group(hh, {l.gate.weight, l.up.weight});
          return l.down(activation(gu[0], c.hidden_act) * gu[1]);
        }
        return l.down(activation(l.gate(hh), c.hidden_act) * l.up(hh));
      };
      torch::Tensor y;
      if (mlp_rows > 0 && B * T > mlp_rows) {
        // Inference: the MLP on blocks of rows, so its (rows,F) intermediates stay in cache and
        // in the allocator's heap instead of B·T × F fresh pages per layer (2048-token windows:
        // 11 MB each, their page faults cost a third of the time, measured).
        auto h2 = h.reshape({B * T, h.size(-1)});
        y = torch::empty_like(h2);
        for (int64_t r0 = 0; r0 < B * T; r0 += mlp_rows) {
          const int64_t n = std::min(mlp_rows, B * T - r0);
          y.narrow(0, r0, n).copy_(mlp(h2.narrow(0, r0, n)));
        }
        y = y.view({B, T, -1});
      } else {
        y = mlp(h);
      }
      if (l.mlp_out_norm_w.defined()) y = rms_norm(y, l.mlp_out_norm_w, eps, unit);
      x = x + y;
    }
  }
  if (c.arch == Arch::kGpt2) return torch::layer_norm(x, {c.hidden_size}, m.norm_w, m.norm_b, c.rms_norm_eps);
  return rms_norm(x, m.norm_w, eps, unit);
}

torch::Tensor CausalLmImpl::lm_head(const torch::Tensor& hidden) {
  auto& m = *impl_;
  const auto& w = m.lm_head_w.defined() ? m.lm_head_w : m.embed;
  const auto& scale = m.lm_head_w.defined() ? m.lm_head_scale : m.embed_scale;
  const bool packed = m.weights != WeightFormat::kF32 && w.scalar_type() != torch::kFloat32;
  auto logits = (packed ? atax::linear_packed(hidden, w, scale, {}) : atax::linear(hidden, w, {})).to(torch::kFloat32);
  // Gemma-2: final logits cap·tanh(logits/cap).
  return config_.final_logit_softcapping > 0 ? softcap(logits, config_.final_logit_softcapping) : logits;
}

torch::Tensor CausalLmImpl::forward(const torch::Tensor& input_ids, const torch::Tensor& attention_mask,
                                    KvCache* cache, const torch::Tensor& position_ids) {
  return lm_head(hidden_states(input_ids, attention_mask, cache, position_ids));
}

std::map<std::string, torch::Tensor> CausalLmImpl::hf_state_dict() const {
  std::map<std::string, torch::Tensor> out;
  for (const auto& [k, v] : impl_->params)
    if (k.find("lora_") == std::string::npos) out[k] = v.detach();
  return out;
}

std::map<std::string, torch::Tensor> CausalLmImpl::named_hf_parameters() { return impl_->params; }

void CausalLmImpl::load_hf_state_dict(const std::map<std::string, torch::Tensor>& weights, const std::string& file) {
  config_.check_weights(weights, file);
  torch::NoGradGuard ng;
  for (const auto& [raw, t] : weights) {
    auto name = config_.canonical_name(raw);
    if (!name) continue;
    auto it = impl_->params.find(*name);
    if (it == impl_->params.end()) continue;  // lm_head.weight of a tied model
    it->second.copy_(t.to(it->second.device(), it->second.scalar_type()));
  }
}

void CausalLmImpl::adopt_hf_state_dict(std::map<std::string, torch::Tensor>&& weights, const std::string& file,
                                       WeightFormat format, const WeightVisitor& visit, const WeightReader& read) {
  config_.check_weights(weights, file);
  auto& m = *impl_;
  if (format != WeightFormat::kF32) check_packable(format);
  torch::NoGradGuard ng;
  for (auto it = weights.begin(); it != weights.end(); it = weights.erase(it)) {
    if (it->second.is_meta()) {
      TORCH_CHECK(read, "adopt_hf_state_dict: ", it->first, " has no data and there is no reader");
      const auto sizes = it->second.sizes().vec();
      it->second = read(it->first);
      TORCH_CHECK(it->second.sizes() == sizes, "adopt_hf_state_dict: ", it->first, " read as ", it->second.sizes());
    }
    if (visit) visit(it->first, it->second);
    auto name = config_.canonical_name(it->first);
    if (!name) continue;
    auto p = m.params.find(*name);
    if (p == m.params.end()) continue;  // lm_head.weight of a tied model
    torch::Tensor& param = p->second;
    const torch::Tensor& src = it->second;
    // A weight stored packed is packed from the tensor as read; the float32 (or file-dtype)
    // tensor goes when the map entry does, below (a mapped one drops its pages with it).
    if (format != WeightFormat::kF32 && pack_param(format, param, src)) continue;
    // Nothing else holds the tensor or its storage (a caller's map, a view, another model's
    // parameter), so making it the parameter aliases nothing.
    const bool sole = src.use_count() == 1 && src.storage().use_count() == 1;
    const bool fits = src.device() == param.device() && src.scalar_type() == param.scalar_type() &&
                      src.sizes() == param.sizes() && src.is_contiguous() && !src.requires_grad() &&
                      src.storage().nbytes() == src.nbytes() &&
                      reinterpret_cast<uintptr_t>(src.data_ptr()) % src.element_size() == 0;
    if (sole && fits) param.set_data(src);  // every handle of the parameter (module, Impl, layers) sees it
    else param.copy_(src.to(param.device(), param.scalar_type()));
  }
  if (format != WeightFormat::kF32) finish_packing(format);
}

int64_t CausalLmImpl::num_parameters() const {
  int64_t n = 0;
  for (const auto& [k, v] : impl_->params)
    if (k.find("lora_") == std::string::npos) n += v.numel();
  return n;
}

void CausalLmImpl::add_lora(const LoraOptions& opts) {
  auto& m = *impl_;
  TORCH_CHECK(!m.has_lora, "LoRA adapters are already attached");
  torch::NoGradGuard ng;
  int added = 0;
  for (Linear* l : m.linears()) {
    std::string leaf = l->name.substr(l->name.rfind('.') + 1);
    if (std::find(opts.target_modules.begin(), opts.target_modules.end(), leaf) == opts.target_modules.end()) continue;
    auto o = l->weight.options();
    auto a = torch::empty({opts.rank, l->in_features()}, o);
    torch::nn::init::kaiming_uniform_(a, std::sqrt(5.0));
    l->lora_a = register_parameter(replace_all(l->name, ".", "__") + "__lora_A", a);
    l->lora_b = register_parameter(replace_all(l->name, ".", "__") + "__lora_B",
                                   torch::zeros({l->out_features(), opts.rank}, o));
    l->lora_scale = opts.alpha / static_cast<double>(opts.rank);
    m.params[l->name + ".lora_A"] = l->lora_a;
    m.params[l->name + ".lora_B"] = l->lora_b;
    ++added;
  }
  if (added == 0)
    throw Error("no linear layer matches the LoRA target modules " + json(opts.target_modules).dump(), "",
                "use HF leaf names such as q_proj,k_proj,v_proj,o_proj,gate_proj,up_proj,down_proj");
  m.has_lora = true;
}

bool CausalLmImpl::has_lora() const { return impl_->has_lora; }

void CausalLmImpl::set_lora_enabled(bool enabled) {
  for (Linear* l : impl_->linears()) l->lora_enabled = enabled;
}

std::vector<torch::Tensor> CausalLmImpl::lora_parameters() {
  std::vector<torch::Tensor> out;
  for (Linear* l : impl_->linears())
    if (l->lora_a.defined()) out.insert(out.end(), {l->lora_a, l->lora_b});
  return out;
}

void CausalLmImpl::merge_lora() {
  auto& m = *impl_;
  torch::NoGradGuard ng;
  for (Linear* l : m.linears()) {
    if (!l->lora_a.defined()) continue;
    auto delta = torch::matmul(l->lora_b, l->lora_a) * l->lora_scale;  // (out, in)
    if (l->conv1d) delta = delta.t();
    l->weight.add_(delta.to(l->weight.scalar_type()));
    m.params.erase(l->name + ".lora_A");
    m.params.erase(l->name + ".lora_B");
    l->lora_a = torch::Tensor();
    l->lora_b = torch::Tensor();
  }
  // The registered module parameters of the adapters stay registered but are no longer used;
  // rebuild the registry without them.
  for (const auto& key : parameters_.keys())
    if (key.find("__lora_") != std::string::npos) parameters_.erase(key);
  m.has_lora = false;
}

void CausalLmImpl::check_packable(WeightFormat format) const {
  const auto& m = *impl_;
  if (m.weights != WeightFormat::kF32)
    throw Error("the model's weights are already " + weight_format_name(m.weights), "",
                "load the model again to store its weights as " + weight_format_name(format));
  for (const auto& [name, p] : m.params)
    if (p.scalar_type() != torch::kFloat32 || !p.device().is_cpu())
      throw Error("--weights " + weight_format_name(format) + " needs a float32 model on the CPU, but " + name + " is " +
                      std::string(c10::toString(p.scalar_type())) + " on " + p.device().str(),
                  "", "drop --dtype bfloat16 and --device cuda, or use --weights f32");
  if (m.has_lora) throw Error("cannot pack the weights of a model with LoRA adapters", "", "merge the adapters first");
}

bool CausalLmImpl::pack_param(WeightFormat format, torch::Tensor& param, const torch::Tensor& src) {
  auto& m = *impl_;
  // The products' weights: every nn.Linear-layout layer (GPT-2's Conv1D stays float32), the
  // embedding and an untied LM head. The parameter keeps its name and shape; set_data swaps its
  // storage for the packed one, seen by every handle (the module, Impl::params and the layers
  // share one tensor).
  torch::Tensor* scale = nullptr;
  Linear* layer = nullptr;
  for (Linear* l : m.linears())
    if (!l->conv1d && l->weight.is_same(param)) layer = l, scale = &l->w_scale;
  if (!layer && m.embed.is_same(param)) scale = &m.embed_scale;
  if (!layer && m.lm_head_w.defined() && m.lm_head_w.is_same(param)) scale = &m.lm_head_scale;
  if (!scale) return false;
  TORCH_CHECK(src.dim() == 2 && src.sizes() == param.sizes(), "pack_param: ", src.sizes(), " for ", param.sizes());
  if (format == WeightFormat::kQ8_0 && src.size(1) % kQ8Block != 0) return false;  // stays float32
  param.set_requires_grad(false);
  if (format == WeightFormat::kBf16) {
    // A copy even when `src` is already bfloat16 (it may view a file mapping); rounding a float32
    // source, or widening a bfloat16 one first, gives the same bits.
    param.set_data(src.to(torch::kCPU, torch::kBFloat16, /*non_blocking=*/false, /*copy=*/true).contiguous());
  } else {
    auto [q, s] = quantize_q8_0(src);  // widens a non-float32 source to float32 first
    param.set_data(q);
    *scale = s;
  }
  if (layer) layer->packed = true;
  return true;
}

void CausalLmImpl::finish_packing(WeightFormat format) {
  auto& m = *impl_;
  // What stays float32 (norms, biases, weights left unpacked) gets storage of its own: a loaded
  // parameter may be a view of the model file's mapping, and one such view keeps every page of
  // the mapping resident (q8_0 on a 58M GGUF: 211 MB of file pages beside 60 MB of packed weights).
  for (auto& [name, p] : m.params)
    if (p.scalar_type() == torch::kFloat32) p.set_data(p.clone());
  // The float32 weights that were heap tensors (a safetensors copy, a converted GGUF tensor) and the
  // quantizer's temporaries went back to a heap that the allocator tuning keeps untrimmed: return it.
  malloc_trim(0);
  m.weights = format;
}

void CausalLmImpl::pack_weights(WeightFormat format) {
  auto& m = *impl_;
  if (format == m.weights) return;
  check_packable(format);
  torch::NoGradGuard ng;
  for (auto& [name, p] : m.params) {
    torch::Tensor src = p.detach();  // the float32 storage, freed with the last reference once swapped
    pack_param(format, p, src);
  }
  finish_packing(format);
}

WeightFormat CausalLmImpl::weight_format() const { return impl_->weights; }

std::string weight_format_name(WeightFormat f) {
  switch (f) {
    case WeightFormat::kBf16: return "bf16";
    case WeightFormat::kQ8_0: return "q8_0";
    default: return "f32";
  }
}

WeightFormat parse_weight_format(const std::string& name) {
  if (name == "f32") return WeightFormat::kF32;
  if (name == "bf16") return WeightFormat::kBf16;
  if (name == "q8_0") return WeightFormat::kQ8_0;
  throw Error("unknown weight format \"" + name + "\"", "", "use f32, bf16 or q8_0");
}

namespace {
std::atomic<WeightFormat> g_default_weights{WeightFormat::kF32};
}  // namespace

void set_default_weight_format(WeightFormat f) { g_default_weights.store(f); }
WeightFormat default_weight_format() { return g_default_weights.load(); }

}  // namespace atax
