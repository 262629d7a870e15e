// Inference kernels of the model module (not part of its public header): scaled dot-product
// attention whose memory stays bounded for long windows.
//
// Shape legend: B batch, H heads, T new (query) positions, S = cached + new (key) positions,
// D head dim.
#pragma once

#include <torch/torch.h>

namespace atax {

// softmax(q kᵀ · scale + add_mask) v for q (B,H,T,D), k and v (B,H,S,D), add_mask (B|1,1,T,S)
// additive (0 or -1e30; query i sits at key position S - T + i and attends causally). Returns
// (B,H,T,D) in v's dtype. Long windows are computed in blocks of queries, each against only the
// keys it can see, so the score matrix held at once is at most kAttentionBlockScores floats per
// head and batch row instead of T × S; the result equals the one-block product up to float
// rounding (masked keys weigh exactly 0 in both).
torch::Tensor causal_attention(const torch::Tensor& q, const torch::Tensor& k, const torch::Tensor& v,
                               const torch::Tensor& add_mask, double scale);

// Scores held per head and batch row before the queries are split into blocks (256 × 1024).
inline constexpr int64_t kAttentionBlockScores = 256 * 1024;

}  // namespace atax
