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
  s["max_length"] = opts_.max_length;
  if (model_.tokenizer) s["chat_template"] = model_.tokenizer->chat_template_identity();
  return s;
}

}  // namespace atax
