// Test helpers for the inference-path tests: an additive causal mask with right padding (and an
// optional sliding window), and a random tiny Llama with sharp output distributions and the
// stories260K tokenizer (the tests drive the token-level API).
#pragma once

#include <memory>
#include <vector>

#include "model/model.h"

namespace atax::testing {

// Additive causal mask (B,1,T,S), query i at key position S - T + i; row b has real[b] real keys
// (right padding) and, with `window` > 0, sees only the last `window` keys (sliding layers).
inline torch::Tensor causal_mask(int64_t B, int64_t T, int64_t S, const std::vector<int64_t>& real,
                                 int64_t window = 0) {
  auto qi = torch::arange(S - T, S).unsqueeze(1), kj = torch::arange(0, S).unsqueeze(0);
  auto ok = kj <= qi;
  if (window > 0) ok = ok & (kj > qi - window);
  auto allowed = ok.unsqueeze(0).unsqueeze(0).expand({B, 1, T, S}).clone();
  for (int64_t b = 0; b < B; ++b) allowed[b].narrow(-1, real[b], S - real[b]).fill_(false);
  return torch::where(allowed, torch::zeros({1}), torch::full({1}, -1e30f));
}

// A 2-layer Llama of width 64 (GQA 4:2) with matrices drawn N(0, 0.3): sharp distributions, log-probs
// from ~0 to ~-40, unlike the 0.02 default.
inline LoadedModel tiny_model(int64_t V, uint64_t seed, int64_t intermediate = 128) {
  json cj = {{"architectures", {"LlamaForCausalLM"}}, {"vocab_size", V}, {"hidden_size", 64},
             {"intermediate_size", intermediate}, {"num_hidden_layers", 2}, {"num_attention_heads", 4},
             {"num_key_value_heads", 2}, {"max_position_embeddings", 4096}, {"rms_norm_eps", 1e-5}};
  torch::manual_seed(seed);
  const fs::path stories = fs::path(ATAX_SHARED_DIR) / "models/stories260K/hf";
  auto tok = std::make_shared<Tokenizer>(Tokenizer::load(stories / "tokenizer.json"));
  auto m = make_model(ModelConfig::from_json(cj), {}, tok, LoadOptions{"cpu"}, "tiny");
  torch::NoGradGuard ng;
  for (auto& [name, t] : m.net->named_hf_parameters())
    if (t.dim() == 2) t.normal_(0.0, 0.3);
  return m;
}

}  // namespace atax::testing
