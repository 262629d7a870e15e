// Inference kernels of the model module (not part of its public header): the float32 matrix
// product the layers and the LM head run through, and scaled dot-product attention whose memory
// stays bounded for long windows.
//
// Shape legend: B batch, H heads, T new (query) positions, S = cached + new (key) positions,
// D head dim, M rows, K inner dim, N output features.
#pragma once

#include <torch/torch.h>

namespace atax {

// x (..., K) times w: w (N, K) as nn.Linear stores it, or w (K, N) when `w_in_out` (GPT-2's
// Conv1D), plus `bias` (N) when defined. Returns (..., N). Float32 CPU products that autograd
// does not track run in oneDNN's sgemm (the library LibTorch ships with; ~2x OpenBLAS's sgemm on
// the AVX-512 machines this was measured on, bench/score_vs_llamacpp); everything else, and all
// of it while fast_kernels is off or oneDNN is absent, in LibTorch's own path. Both give the same
// values up to float rounding (summation order).
torch::Tensor linear(const torch::Tensor& x, const torch::Tensor& w, const torch::Tensor& bias, bool w_in_out = false);

// x times each of several weights (N_i, K) in nn.Linear's layout, no bias: the same values as
// linear(x, w_i, {}) each, bit for bit. For a decoded token's rows (up to kGemvRows, float32, not
// tracked) the products share one hand-over to the worker threads, each thread taking its columns
// of every weight (a layer's q, k and v, or gate and up: 4 hand-overs a layer instead of 7);
// otherwise each runs as linear().
std::vector<torch::Tensor> linear_group(const torch::Tensor& x, const std::vector<torch::Tensor>& ws);

// Weights stored in fewer bits for CPU evaluation (WeightFormat, model.h), products in float32:
// y (..., N) = x (..., K) · wᵀ + bias for w (N,K) in nn.Linear's layout, either bfloat16 (`scales`
// undefined) or int8 with one float32 scale per block of kQ8Block along K (`scales` (N, K/32)),
// llama.cpp's Q8_0: w[n][k] = q[n][k] · scales[n][k/32]. x float32, not tracked by autograd.
// Up to kGemvRows (8) rows (decoding, up to 8 streams) read the packed weight once in AVX2
// kernels (a scalar loop without AVX2 or with vector_kernels off); more rows (scoring, prefill)
// widen blocks of weight rows to float32 and run oneDNN's sgemm on them. Columns are split over
// threads as linear()'s. Q8_0 products of up to 32 rows (decoding, batched decoding) run in an
// AVX2 kernel that quantizes x's rows to Q8_0 as well (blocks of 32, d_x = max|x|/127, as
// llama.cpp does) and sums int8 × int8 products, each block scaled by d_w·d_x:
// that adds the activations' rounding, |y − x·ŵᵀ| ≤ Σ_blocks (d_x/2)·Σ_block |ŵ| (ŵ the stored
// weights) beyond float rounding (q8_quantizes_activations says when; set_q8_activations(false)
// keeps x float32).
torch::Tensor linear_packed(const torch::Tensor& x, const torch::Tensor& w, const torch::Tensor& scales,
                            const torch::Tensor& bias);

// Q8_0 blocks of 32 along K, as llama.cpp's.
inline constexpr int64_t kQ8Block = 32;
// Quantizes w (N,K) float32, K a multiple of kQ8Block, into (int8 values (N,K), float32 scales
// (N,K/32)): per block d = max|w| / 127, q = round(w / d) (q = 0 for an all-zero block), as
// llama.cpp's quantize_row_q8_0 does (it keeps d in float16; here float32).
std::pair<torch::Tensor, torch::Tensor> quantize_q8_0(const torch::Tensor& w);
// q (R,K) int8 and scales (R,K/32) back to float32 (R,K).
torch::Tensor dequantize_q8_0(const torch::Tensor& q, const torch::Tensor& scales);

// Whether the packed-weight kernels use AVX2 where the CPU has it; on by default. Tests switch
// it off to compare the scalar loops with the vector ones.
void set_vector_kernels(bool on);
// Whether the AVX2 Q8_0 kernel quantizes the activations (int8 × int8 products); on by default.
// Off, it widens the weights and keeps x float32 (the product as stored, within float rounding).
void set_q8_activations(bool on);
// Whether a Q8_0 linear_packed of `rows` rows quantizes x here and now (rows ≤ 32, AVX2 and FMA
// present, vector kernels and Q8_0 activations on).
bool q8_quantizes_activations(int64_t rows);

// Whether the faster inference paths (oneDNN products, the LM head's fused log-softmax in
// inference.cpp) are used; on by default. Tests switch them off to compare with the plain path.
bool fast_kernels();
void set_fast_kernels(bool on);

// softmax(q kᵀ · scale + add_mask) v for q (B,H,T,D), k and v (B,H,S,D), add_mask (B|1,1,T,S)
// additive (0 or -1e30; query i sits at key position S - T + i and attends causally). Returns
// (B,H,T,D) in v's dtype. Long windows are computed in blocks of queries, each against only the
// keys it can see, so the score matrix held at once is at most kAttentionBlockScores floats per
// head and batch row instead of T × S; the result equals the one-block product up to float
// rounding (masked keys weigh exactly 0 in both).
torch::Tensor causal_attention(const torch::Tensor& q, const torch::Tensor& k, const torch::Tensor& v,
                               const torch::Tensor& add_mask, double scale);

// Fused inference forms of the layers' element-wise steps, for float32 CPU tensors that autograd
// does not track (the caller checks fused_elementwise(); the plain LibTorch expressions stay for
// everything else). Each is one pass instead of a chain of LibTorch ops, so decoding a token calls
// ~20 fewer ops per layer and scoring writes no intermediates:
//   rms_norm_fused: x (..., C), w (C) float32: w · (x / √(mean(x²) + eps)), or (1 + w) · (...)
//     with `unit_offset` (Gemma); the mean accumulated in double.
//   rope_fused: t (B,H,T,D) with unit last stride, cos and sin (B,1,T,D) contiguous (the two
//     halves of the rotary table equal): t·cos + rotate_half(t)·sin, contiguous (B,H,T,D).
// Both equal the LibTorch expressions up to float rounding.
bool fused_elementwise(const torch::Tensor& x);
torch::Tensor rms_norm_fused(const torch::Tensor& x, const torch::Tensor& w, double eps, bool unit_offset);
torch::Tensor rope_fused(const torch::Tensor& t, const torch::Tensor& cos, const torch::Tensor& sin);

// Scores held per head and batch row before the queries are split into blocks (256 × 1024).
inline constexpr int64_t kAttentionBlockScores = 256 * 1024;

}  // namespace atax
