// Blocked causal attention for inference and training alike (autograd flows through the blocks).
#include "model/attention.h"

#include <algorithm>

namespace atax {

namespace {
torch::Tensor one_block(const torch::Tensor& q, const torch::Tensor& k, const torch::Tensor& v,
                        const torch::Tensor& add_mask, double scale) {
  auto scores = torch::matmul(q, k.transpose(-2, -1)).to(torch::kFloat32) * scale + add_mask;  // (B,H,T,S)
  auto probs = torch::softmax(scores, -1).to(v.scalar_type());
  return torch::matmul(probs, v);  // (B,H,T,D)
}
}  // namespace

torch::Tensor causal_attention(const torch::Tensor& q, const torch::Tensor& k, const torch::Tensor& v,
                               const torch::Tensor& add_mask, double scale) {
  const int64_t T = q.size(2), S = k.size(2), past = S - T;
  if (T * S <= kAttentionBlockScores || T == 1) return one_block(q, k, v, add_mask, scale);
  // Query block [t0, t1) sees keys [0, past + t1): later keys are masked for all of its rows.
  const int64_t block = std::max<int64_t>(16, kAttentionBlockScores / S);
  std::vector<torch::Tensor> parts;
  parts.reserve(static_cast<size_t>((T + block - 1) / block));
  for (int64_t t0 = 0; t0 < T; t0 += block) {
    const int64_t n = std::min(block, T - t0), keys = past + t0 + n;
    auto m = add_mask.narrow(2, t0, n).narrow(3, 0, keys);
    parts.push_back(one_block(q.narrow(2, t0, n), k.narrow(2, 0, keys), v.narrow(2, 0, keys), m, scale));
  }
  return torch::cat(parts, 2);
}

}  // namespace atax
