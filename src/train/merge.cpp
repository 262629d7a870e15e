// Weight interpolation (model averaging, Lin et al. 2024): θ = (1 − t)·θ_a + t·θ_b, with an
// optional t per layer.
#include <cmath>

#include <fmt/format.h>

#include "train/loop.h"

namespace atax {

using namespace train_detail;

json MergeConfig::to_json() const {
  return {{"a", a.string()}, {"b", b.string()}, {"out", out.string()}, {"t", t}, {"t_per_layer", t_per_layer},
          {"device", device}};
}

void merge_models(const MergeConfig& cfg) {
  if (cfg.a.empty() || cfg.b.empty() || cfg.out.empty())
    throw Error("merge needs two models and an output folder", "", "pass --a DIR --b DIR --out DIR");
  if (!std::isfinite(cfg.t)) throw Error("--t must be a finite number");
  for (double t : cfg.t_per_layer)
    if (!std::isfinite(t)) throw Error("--t-per-layer holds a non-finite number");
  LoadOptions lo;
  lo.device = cfg.device;
  LoadedModel a = load_model(cfg.a, lo);
  LoadedModel b = load_model(cfg.b, lo);
  json ja = a.config.to_json(), jb = b.config.to_json();
  for (auto* j : {&ja, &jb})
    for (const char* k : {"torch_dtype", "transformers_version", "_name_or_path", "bos_token_id", "eos_token_id",
                          "pad_token_id"})
      j->erase(k);
  if (ja != jb)
    throw Error("the two models' config.json differ", (cfg.b / "config.json").string(),
                "interpolation needs two checkpoints of one architecture (e.g. base and aligned)");
  const int64_t L = a.config.num_hidden_layers;
  if (!cfg.t_per_layer.empty() && static_cast<int64_t>(cfg.t_per_layer.size()) != L)
    throw Error(fmt::format("--t-per-layer has {} values, the model has {} layers", cfg.t_per_layer.size(), L), "",
                "give one t per layer, comma-separated");
  auto pa = a.net->named_hf_parameters();
  auto pb = b.net->named_hf_parameters();
  torch::NoGradGuard ng;
  for (auto& [name, ta] : pa) {
    auto it = pb.find(name);
    if (it == pb.end() || it->second.sizes() != ta.sizes())
      throw Error("tensor \"" + name + "\" is missing or has another shape in the second model",
                  cfg.b.string());
    double t = cfg.t;
    int64_t layer = layer_of(name);
    if (!cfg.t_per_layer.empty() && layer >= 0 && layer < L) t = cfg.t_per_layer[layer];
    ta.mul_(1 - t).add_(it->second.to(ta.device(), ta.scalar_type()), t);
  }
  json extra = {{"merge_config.json", cfg.to_json()}};
  extra["merge_config.json"]["a_content_hash"] = a.content_hash;
  extra["merge_config.json"]["b_content_hash"] = b.content_hash;
  save_model(a, cfg.out, torch::kFloat32, extra);
  log_info(fmt::format("merge: θ = (1 − t)·θ_a + t·θ_b with t = {}{} written to {}", cfg.t,
                       cfg.t_per_layer.empty() ? "" : " (per layer)", cfg.out.string()));
}

}  // namespace atax
