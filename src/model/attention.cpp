// Inference kernels: oneDNN's sgemm behind linear(), blocked causal attention (autograd flows
// through the blocks when it is tracked).
#include "model/attention.h"

#include <dlfcn.h>

#include <algorithm>
#include <atomic>
#include <exception>
#include <mutex>
#include <thread>

namespace atax {

namespace {
std::atomic<bool> g_fast_kernels{true};

// dnnl_sgemm (oneDNN's C API, row-major): C = alpha·op(A)·op(B) + beta·C; 0 = success. LibTorch
// links oneDNN (libdnnl) for its mkldnn ops; found at run time so a LibTorch without it still works.
using DnnlSgemm = int (*)(char transa, char transb, int64_t M, int64_t N, int64_t K, float alpha, const float* A,
                          int64_t lda, const float* B, int64_t ldb, float beta, float* C, int64_t ldc);
DnnlSgemm dnnl_sgemm() {
  static const auto fn = reinterpret_cast<DnnlSgemm>(dlsym(RTLD_DEFAULT, "dnnl_sgemm"));
  return fn;
}

bool tracked(const torch::Tensor& t) { return t.defined() && t.requires_grad(); }

// Threads sgemm_xw splits a product over: the count configure_threads gave OpenBLAS (whose
// products these replace; LibTorch's intra-op pool then has one thread). Without OpenBLAS, 1:
// oneDNN then uses LibTorch's intra-op (OpenMP) threads itself.
int product_threads() {
  using GetThreads = int (*)();
  static const auto get_blas = reinterpret_cast<GetThreads>(dlsym(RTLD_DEFAULT, "openblas_get_num_threads"));
  return get_blas ? std::max(1, get_blas()) : 1;
}

// A helper thread's oneDNN call must stay on that thread: a new thread's OpenMP default is one
// thread per core, and each new thread would start a team of its own.
void single_openmp_thread() {
  using SetThreads = void (*)(int);
  static const auto set = reinterpret_cast<SetThreads>(dlsym(RTLD_DEFAULT, "omp_set_num_threads"));
  if (set) set(1);
}

// y (M,N) = x (M,K) · w (N,K)ᵀ, or · w (K,N) when `w_in_out`, + beta·y. With several threads the
// output columns are split (each thread reads its own rows of w once: the LM head and the token-
// by-token products of generation are bound by reading w); a thread joins instead of spinning,
// so a busy machine does not stall the others.
void sgemm_xw(int64_t M, int64_t N, int64_t K, const float* x, const float* w, bool w_in_out, float beta, float* y) {
  auto sgemm = dnnl_sgemm();
  auto part = [&](int64_t n0, int64_t n) {
    const float* wp = w_in_out ? w + n0 : w + n0 * K;
    int rc = sgemm('N', w_in_out ? 'N' : 'T', M, n, K, 1.0f, x, K, wp, w_in_out ? N : K, beta, y + n0, N);
    TORCH_CHECK(rc == 0, "dnnl_sgemm failed with status ", rc);
  };
  const int64_t threads = std::min<int64_t>(product_threads(), N / 64);
  // Below ~2 MFLOP a thread's start costs more than it saves.
  if (threads <= 1 || M * N * K < (int64_t{1} << 20)) return part(0, N);
  const int64_t per = ((N + threads - 1) / threads + 15) / 16 * 16;  // whole 16-float vectors, covering N
  std::vector<std::thread> pool;
  std::exception_ptr error;
  std::mutex error_mutex;
  for (int64_t i = 1; i < threads; ++i) {
    const int64_t n0 = std::min(N, i * per), n = std::min(N, n0 + per) - n0;
    if (n <= 0) continue;
    pool.emplace_back([&, n0, n] {
      try {
        single_openmp_thread();
        part(n0, n);
      } catch (...) {
        std::lock_guard<std::mutex> lock(error_mutex);
        error = std::current_exception();
      }
    });
  }
  part(0, std::min(N, per));
  for (auto& t : pool) t.join();
  if (error) std::rethrow_exception(error);
}

torch::Tensor torch_linear(const torch::Tensor& x, const torch::Tensor& w, const torch::Tensor& bias, bool w_in_out) {
  if (!w_in_out) return torch::nn::functional::linear(x, w, bias);
  auto x2 = x.reshape({-1, x.size(-1)});
  auto y = bias.defined() ? torch::addmm(bias, x2, w) : x2.mm(w);
  auto sizes = x.sizes().vec();
  sizes.back() = w.size(1);
  return y.view(sizes);
}

torch::Tensor one_block(const torch::Tensor& q, const torch::Tensor& k, const torch::Tensor& v,
                        const torch::Tensor& add_mask, double scale) {
  auto scores = torch::matmul(q, k.transpose(-2, -1)).to(torch::kFloat32) * scale + add_mask;  // (B,H,T,S)
  auto probs = torch::softmax(scores, -1).to(v.scalar_type());
  return torch::matmul(probs, v);  // (B,H,T,D)
}
}  // namespace

bool fast_kernels() { return g_fast_kernels.load(std::memory_order_relaxed); }
void set_fast_kernels(bool on) { g_fast_kernels.store(on, std::memory_order_relaxed); }

torch::Tensor linear(const torch::Tensor& x, const torch::Tensor& w, const torch::Tensor& bias, bool w_in_out) {
  const bool f32 = x.scalar_type() == torch::kFloat32 && w.scalar_type() == torch::kFloat32 &&
                   (!bias.defined() || bias.scalar_type() == torch::kFloat32);
  const bool grad = torch::GradMode::is_enabled() && (tracked(x) || tracked(w) || tracked(bias));
  auto sgemm = dnnl_sgemm();
  if (!fast_kernels() || !sgemm || !f32 || grad || !x.device().is_cpu() || w.dim() != 2 || !w.is_contiguous() ||
      x.dim() < 1)
    return torch_linear(x, w, bias, w_in_out);
  const int64_t K = x.size(-1), N = w_in_out ? w.size(1) : w.size(0);
  TORCH_CHECK(K == (w_in_out ? w.size(0) : w.size(1)), "linear: x has ", K, " features, the weight ", w.sizes());
  auto x2 = x.reshape({-1, K}).contiguous();  // (M,K)
  const int64_t M = x2.size(0);
  torch::Tensor y;  // (M,N)
  float beta = 0;
  if (bias.defined()) {
    y = bias.reshape({1, N}).expand({M, N}).clone(at::MemoryFormat::Contiguous);  // never the bias itself
    beta = 1;
  } else {
    y = torch::empty({M, N}, x2.options());
  }
  if (M > 0 && N > 0) {
    if (K == 0) {
      if (!bias.defined()) y.zero_();
    } else {
      sgemm_xw(M, N, K, x2.data_ptr<float>(), w.data_ptr<float>(), w_in_out, beta, y.data_ptr<float>());
    }
  }
  auto sizes = x.sizes().vec();
  sizes.back() = N;
  return y.view(sizes);
}

namespace {
// The fast path of causal_attention: per query block, for each head, scores = mask + scale·q kᵀ
// by one sgemm into a buffer that stays in cache, softmax over all heads' rows at once, then
// probs·v by a second sgemm written straight into a (B,T,H,D) result (o_proj reads it without a
// copy). k and v keep their Hkv heads (no expanded copy for GQA).
torch::Tensor fused_attention(const torch::Tensor& q_in, const torch::Tensor& k_in, const torch::Tensor& v_in,
                              const torch::Tensor& add_mask, double scale) {
  auto sgemm = dnnl_sgemm();
  auto last_contig = [](const torch::Tensor& t) { return t.stride(-1) == 1 ? t : t.contiguous(); };
  auto q = last_contig(q_in), k = last_contig(k_in), v = last_contig(v_in), mask = last_contig(add_mask);
  const int64_t B = q.size(0), H = q.size(1), T = q.size(2), D = q.size(3);
  const int64_t Hkv = k.size(1), S = k.size(2), past = S - T, group = H / Hkv;
  auto out = torch::empty({B, T, H, D}, q.options());  // (B,T,H,D)
  // Rows per block: the block's scores for all heads, H × rows × S floats, about 2 MB.
  const int64_t rows = std::clamp<int64_t>((int64_t{1} << 19) / std::max<int64_t>(1, H * S), 1, T);
  // Flat buffers: a block's scores are (H,n,keys) contiguous, so softmax reads and writes them in place.
  auto scores = torch::empty({H * rows * S}, q.options()), probs = torch::empty({H * rows * S}, q.options());
  const float* qp = q.data_ptr<float>();
  const float* kp = k.data_ptr<float>();
  const float* vp = v.data_ptr<float>();
  const float* mp = mask.data_ptr<float>();
  float* op = out.data_ptr<float>();
  float* scp = scores.data_ptr<float>();
  const float* prp = probs.data_ptr<float>();
  for (int64_t b = 0; b < B; ++b) {
    const int64_t mb = mask.size(0) == 1 ? 0 : b;
    for (int64_t t0 = 0; t0 < T; t0 += rows) {
      const int64_t n = std::min(rows, T - t0), keys = past + t0 + n;  // later keys are masked for the block
      for (int64_t h = 0; h < H; ++h) {
        float* c = scp + h * n * keys;  // (n,keys)
        for (int64_t i = 0; i < n; ++i)
          std::copy_n(mp + mb * mask.stride(0) + (t0 + i) * mask.stride(2), keys, c + i * keys);
        const float* a = qp + b * q.stride(0) + h * q.stride(1) + t0 * q.stride(2);
        const float* kk = kp + b * k.stride(0) + (h / group) * k.stride(1);
        int rc = sgemm('N', 'T', n, keys, D, static_cast<float>(scale), a, q.stride(2), kk, k.stride(2), 1.0f, c, keys);
        TORCH_CHECK(rc == 0, "dnnl_sgemm failed with status ", rc);
      }
      auto sc = scores.narrow(0, 0, H * n * keys).view({H * n, keys});
      auto pr = probs.narrow(0, 0, H * n * keys).view({H * n, keys});
      at::_softmax_out(pr, sc, 1, false);
      for (int64_t h = 0; h < H; ++h) {
        const float* vv = vp + b * v.stride(0) + (h / group) * v.stride(1);
        float* o = op + ((b * T + t0) * H + h) * D;
        int rc = sgemm('N', 'N', n, D, keys, 1.0f, prp + h * n * keys, keys, vv, v.stride(2), 0.0f, o, H * D);
        TORCH_CHECK(rc == 0, "dnnl_sgemm failed with status ", rc);
      }
    }
  }
  return out.permute({0, 2, 1, 3});  // (B,H,T,D) view
}
}  // namespace

torch::Tensor causal_attention(const torch::Tensor& q, const torch::Tensor& k_in, const torch::Tensor& v_in,
                               const torch::Tensor& add_mask, double scale) {
  const int64_t B = q.size(0), H = q.size(1), T = q.size(2), S = k_in.size(2), D = q.size(3), past = S - T;
  const int64_t Hkv = k_in.size(1);
  TORCH_CHECK(H % Hkv == 0, "causal_attention: ", H, " query heads for ", Hkv, " key/value heads");
  const bool f32 = q.scalar_type() == torch::kFloat32 && k_in.scalar_type() == torch::kFloat32 &&
                   v_in.scalar_type() == torch::kFloat32 && add_mask.scalar_type() == torch::kFloat32;
  const bool grad = torch::GradMode::is_enabled() && (tracked(q) || tracked(k_in) || tracked(v_in));
  if (fast_kernels() && dnnl_sgemm() && f32 && !grad && q.device().is_cpu() && T > 0 && S > 0 && D > 0)
    return fused_attention(q, k_in, v_in, add_mask, scale);
  auto k = k_in, v = v_in;
  if (Hkv != H) {  // GQA: query head h uses kv head h / (H/Hkv)
    k = k.unsqueeze(2).expand({B, Hkv, H / Hkv, S, D}).reshape({B, H, S, D});
    v = v.unsqueeze(2).expand({B, Hkv, H / Hkv, S, D}).reshape({B, H, S, D});
  }
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
