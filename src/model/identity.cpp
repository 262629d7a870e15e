// HfModel::runtime_settings: the part of a request's cache key that is not the model's identity.
#include "model/model.h"

namespace atax {

json HfModel::runtime_settings() const {
  json s = json::object();
  auto params = model_.net->parameters();
  if (!params.empty()) {
    s["dtype"] = std::string(c10::toString(params.front().scalar_type()));
    s["device"] = params.front().device().is_cuda() ? "cuda" : "cpu";
  }
  // Packed weights (pack_weights): compute stays float32, the weights' format changes answers.
  // f32 adds no key, so float32 runs keep their cached answers.
  if (const auto w = model_.net->weight_format(); w != WeightFormat::kF32) {
    s["dtype"] = std::string(c10::toString(torch::kFloat32));
    s["weights"] = weight_format_name(w);
  }
  s["max_length"] = opts_.max_length;
  if (model_.tokenizer) s["chat_template"] = model_.tokenizer->chat_template_identity();
  return s;
}

}  // namespace atax
