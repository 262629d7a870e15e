// The float32 CPU kernels of the model: oneDNN's sgemm behind linear() and causal attention, in
// inference and (with their own backward) in training, split over a worker pool; LibTorch's own
// path for everything else.
#include "model/attention.h"

#include <dlfcn.h>
#include <unistd.h>
#include <immintrin.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <functional>
#include <span>
#include <cmath>
#include <cstring>
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

// Threads the products split over: the count configure_threads gave OpenBLAS (whose products
// these replace; LibTorch's intra-op pool then has one thread). When LibTorch's pool has more than
// one thread, 1: oneDNN then spreads each product over that pool's OpenMP threads itself (splitting
// beside a spinning OpenMP team was 4-8x slower on 2 cores, bench_threads). Without OpenBLAS, 1.
int product_threads() {
  using GetThreads = int (*)();
  static const auto get_blas = reinterpret_cast<GetThreads>(dlsym(RTLD_DEFAULT, "openblas_get_num_threads"));
  if (at::get_num_threads() > 1) return 1;
  return get_blas ? std::max(1, get_blas()) : 1;
}

// A helper thread's oneDNN call must stay on that thread: a new thread's OpenMP default is one
// thread per core, and each new thread would start a team of its own.
void single_openmp_thread() {
  using SetThreads = void (*)(int);
  static const auto set = reinterpret_cast<SetThreads>(dlsym(RTLD_DEFAULT, "omp_set_num_threads"));
  if (set) set(1);
}

// Worker threads that the split products reuse (starting a thread per product cost ~2-3 ms per
// generated token on the 58M model: 2-thread decoding ran slower than 1-thread). As in ggml's
// threadpool, a worker that finishes its part spins on the generation counter for a bounded time
// (kSpinSeconds) before it blocks on a condition variable: decoding calls the pool ~60 times per
// token with gaps of tens of microseconds, and a futex wake-up on this machine's virtual CPUs cost
// more than those gaps (decode at 2 threads 0.77x llama.cpp's speed with blocking workers). A pool
// that is not used for kSpinSeconds costs nothing, so LibTorch's and OpenMP's threads keep the
// cores between training's products. One pool per process: a child after fork() builds its own
// (the parent's workers do not exist there); the pool is never destroyed, so no exit path joins a
// blocked worker.
class ProductPool {
 public:
  static ProductPool& get() {
    static std::mutex m;
    static ProductPool* pool = nullptr;
    std::lock_guard<std::mutex> lock(m);
    if (!pool || pool->pid_ != getpid()) pool = new ProductPool();  // a fork's child: a fresh pool
    return *pool;
  }

  // Runs part(r) for r in [0, n): r = 0 on the calling thread, the others on workers; returns
  // when all are done and rethrows the first exception. A call made while another is running (a
  // nested or concurrent one) runs its parts in turn on the caller.
  void run(int n, const std::function<void(int)>& part) {
    std::unique_lock<std::mutex> busy(run_mutex_, std::try_to_lock);
    if (!busy.owns_lock() || n <= 1) {
      for (int r = 0; r < n; ++r) part(r);
      return;
    }
    {
      std::lock_guard<std::mutex> lock(m_);
      while (static_cast<int>(workers_.size()) < n - 1) {
        const int id = static_cast<int>(workers_.size()) + 1;
        workers_.emplace_back([this, id, seen = generation_.load()] { work(id, seen); });
      }
    }
    part_ = &part;  // published to the workers by the generation's increment
    n_ = n;
    error_ = nullptr;
    // Every worker reports, those beyond n too, so none lags into the next call's fields.
    pending_.store(static_cast<int>(workers_.size()));
    generation_.fetch_add(1);  // seq_cst, against sleepers_'s increment in work()
    if (sleepers_.load() > 0) {
      std::lock_guard<std::mutex> lock(m_);
      cv_.notify_all();
    }
    std::exception_ptr mine;
    try {
      part(0);  // the caller's OpenMP team has one thread: product_threads() splits only then
    } catch (...) {
      mine = std::current_exception();
    }
    if (!spin_until([&] { return pending_.load(std::memory_order_acquire) == 0; })) {
      std::unique_lock<std::mutex> lock(m_);
      caller_waits_.store(true);
      done_cv_.wait(lock, [&] { return pending_.load() == 0; });
      caller_waits_.store(false);
    }
    part_ = nullptr;
    if (mine) std::rethrow_exception(mine);
    if (error_) std::rethrow_exception(error_);
  }

 private:
  static constexpr double kSpinSeconds = 200e-6;

  ProductPool() : pid_(getpid()) {}

  // Polls `ready` for up to kSpinSeconds; whether it became true.
  template <class F>
  static bool spin_until(F&& ready) {
    const auto until = std::chrono::steady_clock::now() + std::chrono::duration<double>(kSpinSeconds);
    for (int i = 0;; ++i) {
      if (ready()) return true;
      _mm_pause();
      if ((i & 63) == 63 && std::chrono::steady_clock::now() > until) return ready();
    }
  }

  // A worker's loop; `seen` is the generation before its first call.
  void work(int id, uint64_t seen) {
    single_openmp_thread();
    for (;;) {
      if (!spin_until([&] { return generation_.load(std::memory_order_acquire) != seen; })) {
        std::unique_lock<std::mutex> lock(m_);
        sleepers_.fetch_add(1);  // seq_cst: run() either sees it or this sees the new generation
        cv_.wait(lock, [&] { return generation_.load() != seen; });
        sleepers_.fetch_sub(1);
      }
      seen = generation_.load(std::memory_order_acquire);
      std::exception_ptr err;
      if (id < n_) {
        try {
          (*part_)(id);
        } catch (...) {
          err = std::current_exception();
        }
      }
      if (err) {
        std::lock_guard<std::mutex> lock(m_);
        if (!error_) error_ = err;
      }
      if (pending_.fetch_sub(1) == 1 && caller_waits_.load()) {  // seq_cst, against caller_waits_
        std::lock_guard<std::mutex> lock(m_);
        done_cv_.notify_one();
      }
    }
  }

  const pid_t pid_;
  std::mutex run_mutex_, m_;
  std::condition_variable cv_, done_cv_;
  std::vector<std::thread> workers_;
  const std::function<void(int)>* part_ = nullptr;
  int n_ = 0;
  std::atomic<uint64_t> generation_{0};
  std::atomic<int> pending_{0}, sleepers_{0};
  std::atomic<bool> caller_waits_{false};
  std::exception_ptr error_;
};

// Rows of a small x (M ≤ kGemvRows) times the rows of w: y[m][j] = x[m]·w[j] (+ beta·y[m][j]), for
// j in [0, n). Generation's token-by-token products (one row per stream) are bound by reading w
// once; oneDNN's sgemm packs w into its panel layout first, reading and writing it again
// (measured: decode at 0.58x llama.cpp's speed). Here each row of w is read once from memory and
// dotted with every row of x from cache, in AVX2 + FMA (chosen at run time; the build targets
// plain x86-64).
constexpr int64_t kGemvRows = 8;
// Products of up to this many rows with Q8_0 weights run in the int8 × int8 kernel (AVX2), 8 rows
// at a time; more (prefill, scoring) widen the weights for sgemm.
constexpr int64_t kQ8DotRows = 32;

__attribute__((target("avx2,fma"))) void gemv_rows_avx2(int64_t M, int64_t n, int64_t K, const float* x,
                                                         int64_t ldx, const float* w, int64_t ldw, float beta,
                                                         float* y, int64_t ldy) {
  for (int64_t j = 0; j < n; ++j) {
    const float* wr = w + j * ldw;
    for (int64_t m = 0; m < M; ++m) {
      const float* xr = x + m * ldx;
      __m256 a0 = _mm256_setzero_ps(), a1 = _mm256_setzero_ps(), a2 = _mm256_setzero_ps(), a3 = _mm256_setzero_ps();
      int64_t k = 0;
      for (; k + 32 <= K; k += 32) {
        a0 = _mm256_fmadd_ps(_mm256_loadu_ps(wr + k), _mm256_loadu_ps(xr + k), a0);
        a1 = _mm256_fmadd_ps(_mm256_loadu_ps(wr + k + 8), _mm256_loadu_ps(xr + k + 8), a1);
        a2 = _mm256_fmadd_ps(_mm256_loadu_ps(wr + k + 16), _mm256_loadu_ps(xr + k + 16), a2);
        a3 = _mm256_fmadd_ps(_mm256_loadu_ps(wr + k + 24), _mm256_loadu_ps(xr + k + 24), a3);
      }
      for (; k + 8 <= K; k += 8) a0 = _mm256_fmadd_ps(_mm256_loadu_ps(wr + k), _mm256_loadu_ps(xr + k), a0);
      __m256 a = _mm256_add_ps(_mm256_add_ps(a0, a1), _mm256_add_ps(a2, a3));
      __m128 h = _mm_add_ps(_mm256_castps256_ps128(a), _mm256_extractf128_ps(a, 1));
      h = _mm_add_ps(h, _mm_movehl_ps(h, h));
      h = _mm_add_ss(h, _mm_shuffle_ps(h, h, 1));
      float acc = _mm_cvtss_f32(h);
      for (; k < K; ++k) acc += wr[k] * xr[k];
      float& out = y[m * ldy + j];
      out = beta == 0.0f ? acc : beta * out + acc;
    }
  }
}

bool cpu_has_avx2_fma() {
  static const bool has = __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");
  return has;
}

// Whether an (M,K)·(N,K)ᵀ product of float32 rows runs in gemv_rows_avx2 (decoding's rows).
bool gemv_applies(int64_t M, int64_t K) { return M <= kGemvRows && K >= 8 && cpu_has_avx2_fma(); }

// Runs part(i, n0, n) over the output columns of products i = 0, 1, ... of (M,K)·(K,N_i): each
// product's N_i columns split over product_threads() threads in whole 16-float vectors, each
// thread taking its share of every product (one hand-over for them all), or all of them on the
// caller when the work is too small to pay for a hand-over.
void split_column_groups(int64_t M, std::span<const int64_t> Ns, int64_t K, bool gemv,
                         const std::function<void(size_t, int64_t, int64_t)>& part) {
  int64_t threads = product_threads(), work = 0;
  for (int64_t N : Ns) {
    threads = std::min<int64_t>(threads, N / 64);
    work += gemv ? N * K : M * N * K;
  }
  // Below ~2 MFLOP a thread's start costs more than it saves; a matrix-vector product reads its
  // weight once, and from 64k weights (256 KB of float32, a 512 × 512 projection) a spinning
  // worker's part (~1 µs to hand over) pays (decoding the 58M Llama split only its LM head before:
  // 2 threads 0.80x llama.cpp's speed).
  const int64_t min_work = gemv ? int64_t{1} << 16 : int64_t{1} << 20;
  if (threads <= 1 || work < min_work) {
    for (size_t i = 0; i < Ns.size(); ++i) part(i, 0, Ns[i]);
    return;
  }
  ProductPool::get().run(static_cast<int>(threads), [&](int r) {
    for (size_t i = 0; i < Ns.size(); ++i) {
      const int64_t N = Ns[i], per = ((N + threads - 1) / threads + 15) / 16 * 16;  // whole vectors, covering N
      const int64_t n0 = std::min(N, r * per), n = std::min(N, n0 + per) - n0;
      if (n > 0) part(i, n0, n);
    }
  });
}

// split_column_groups for one product: part(n0, n).
void split_columns(int64_t M, int64_t N, int64_t K, bool gemv, const std::function<void(int64_t, int64_t)>& part) {
  split_column_groups(M, std::span<const int64_t>(&N, 1), K, gemv,
                      [&](size_t, int64_t n0, int64_t n) { part(n0, n); });
}

// C (M,N) = op(A)·op(B) + beta·C, row-major, op = transpose where 'T' (A is (M,K) or (K,M), B is
// (K,N) or (N,K)). With several threads the output columns are split: each thread reads its own
// rows of a (N,K) B once (the LM head and generation's token-by-token products are bound by reading
// the weight), and a thread joins instead of spinning, so a busy machine does not stall the others.
void sgemm_split(char ta, char tb, int64_t M, int64_t N, int64_t K, const float* A, int64_t lda, const float* B,
                 int64_t ldb, float beta, float* C, int64_t ldc) {
  auto sgemm = dnnl_sgemm();
  const bool gemv = ta == 'N' && tb == 'T' && gemv_applies(M, K);
  split_columns(M, N, K, gemv, [&](int64_t n0, int64_t n) {
    const float* bp = tb == 'N' ? B + n0 : B + n0 * ldb;
    if (gemv) return gemv_rows_avx2(M, n, K, A, lda, bp, ldb, beta, C + n0, ldc);
    int rc = sgemm(ta, tb, M, n, K, 1.0f, A, lda, bp, ldb, beta, C + n0, ldc);
    TORCH_CHECK(rc == 0, "dnnl_sgemm failed with status ", rc);
  });
}

// ---- packed weights (bfloat16, Q8_0): see linear_packed in attention.h ----
std::atomic<bool> g_vector_kernels{true};
std::atomic<bool> g_q8_activations{true};

// Q8_0 blocks of 32 floats at v into int8 values q and one scale each (quantize_q8_0's rule):
// d = max|v| / 127, q = round(v / d), q = 0 for an all-zero block.
void quantize_q8_0_rows(const float* v, int64_t blocks, int8_t* q, float* d) {
  for (int64_t b = 0; b < blocks; ++b) {
    const float* x = v + b * kQ8Block;
    float amax = 0;
    for (int64_t i = 0; i < kQ8Block; ++i) amax = std::max(amax, std::fabs(x[i]));
    const float s = amax / 127.0f, is = s != 0.0f ? 1.0f / s : 0.0f;
    for (int64_t i = 0; i < kQ8Block; ++i) q[b * kQ8Block + i] = static_cast<int8_t>(std::round(x[i] * is));
    d[b] = s;
  }
}

float bf16_to_f32(uint16_t b) {
  const uint32_t u = static_cast<uint32_t>(b) << 16;  // bfloat16 is a float's upper half
  float f;
  std::memcpy(&f, &u, sizeof f);
  return f;
}

__attribute__((target("avx2,fma"))) inline __m256 load_bf16x8(const uint16_t* p) {
  const __m128i h = _mm_loadu_si128(reinterpret_cast<const __m128i*>(p));
  return _mm256_castsi256_ps(_mm256_slli_epi32(_mm256_cvtepu16_epi32(h), 16));
}

__attribute__((target("avx2,fma"))) inline float hsum8(__m256 a) {
  __m128 h = _mm_add_ps(_mm256_castps256_ps128(a), _mm256_extractf128_ps(a, 1));
  h = _mm_add_ps(h, _mm_movehl_ps(h, h));
  h = _mm_add_ss(h, _mm_shuffle_ps(h, h, 1));
  return _mm_cvtss_f32(h);
}

inline void store_out(float* out, float acc, float beta) { *out = beta == 0.0f ? acc : beta * *out + acc; }

// y[m][j] = x[m]·w[j] (+ beta·y[m][j]) for MR rows of x and bfloat16 weight rows j in [0, n): each
// 8-weight vector is widened once and used for every row of x; U independent accumulator sets
// hide the FMA latency when there are few rows.
template <int MR>
__attribute__((target("avx2,fma"))) void gemv_bf16_avx2(int64_t n, int64_t K, const float* x, int64_t ldx,
                                                        const uint16_t* w, int64_t ldw, float beta, float* y,
                                                        int64_t ldy) {
  constexpr int U = MR == 1 ? 4 : MR <= 3 ? 2 : 1;
  for (int64_t j = 0; j < n; ++j) {
    const uint16_t* wr = w + j * ldw;
    __m256 acc[U][MR];
    for (int u = 0; u < U; ++u)
      for (int m = 0; m < MR; ++m) acc[u][m] = _mm256_setzero_ps();
    int64_t k = 0;
    for (; k + 8 * U <= K; k += 8 * U)
      for (int u = 0; u < U; ++u) {
        const __m256 wv = load_bf16x8(wr + k + 8 * u);
        for (int m = 0; m < MR; ++m) acc[u][m] = _mm256_fmadd_ps(wv, _mm256_loadu_ps(x + m * ldx + k + 8 * u), acc[u][m]);
      }
    for (; k + 8 <= K; k += 8) {
      const __m256 wv = load_bf16x8(wr + k);
      for (int m = 0; m < MR; ++m) acc[0][m] = _mm256_fmadd_ps(wv, _mm256_loadu_ps(x + m * ldx + k), acc[0][m]);
    }
    for (int m = 0; m < MR; ++m) {
      for (int u = 1; u < U; ++u) acc[0][m] = _mm256_add_ps(acc[0][m], acc[u][m]);
      float s = hsum8(acc[0][m]);
      for (int64_t kk = k; kk < K; ++kk) s += bf16_to_f32(wr[kk]) * x[m * ldx + kk];
      store_out(y + m * ldy + j, s, beta);
    }
  }
}

// The same for Q8_0 rows: per block of 32, four 8-weight vectors widened from int8 and multiplied
// by the block's scale once, then used for every row of x. K is a multiple of 32.
template <int MR>
__attribute__((target("avx2,fma"))) void gemv_q8_avx2(int64_t n, int64_t K, const float* x, int64_t ldx,
                                                      const int8_t* q, const float* scales, float beta, float* y,
                                                      int64_t ldy) {
  constexpr int A = MR <= 2 ? 4 : MR <= 4 ? 2 : 1;
  const int64_t nb = K / kQ8Block;
  for (int64_t j = 0; j < n; ++j) {
    const int8_t* qr = q + j * K;
    const float* sr = scales + j * nb;
    __m256 acc[A][MR];
    for (int a = 0; a < A; ++a)
      for (int m = 0; m < MR; ++m) acc[a][m] = _mm256_setzero_ps();
    for (int64_t b = 0; b < nb; ++b) {
      const __m256 d = _mm256_set1_ps(sr[b]);
      const __m256i v = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(qr + b * kQ8Block));
      const __m128i lo = _mm256_castsi256_si128(v), hi = _mm256_extracti128_si256(v, 1);
      __m256 wv[4];
      wv[0] = _mm256_mul_ps(_mm256_cvtepi32_ps(_mm256_cvtepi8_epi32(lo)), d);
      wv[1] = _mm256_mul_ps(_mm256_cvtepi32_ps(_mm256_cvtepi8_epi32(_mm_srli_si128(lo, 8))), d);
      wv[2] = _mm256_mul_ps(_mm256_cvtepi32_ps(_mm256_cvtepi8_epi32(hi)), d);
      wv[3] = _mm256_mul_ps(_mm256_cvtepi32_ps(_mm256_cvtepi8_epi32(_mm_srli_si128(hi, 8))), d);
      for (int g = 0; g < 4; ++g)
        for (int m = 0; m < MR; ++m)
          acc[g % A][m] = _mm256_fmadd_ps(wv[g], _mm256_loadu_ps(x + m * ldx + b * kQ8Block + 8 * g), acc[g % A][m]);
    }
    for (int m = 0; m < MR; ++m) {
      for (int a = 1; a < A; ++a) acc[0][m] = _mm256_add_ps(acc[0][m], acc[a][m]);
      store_out(y + m * ldy + j, hsum8(acc[0][m]), beta);
    }
  }
}

// Q8_0 products of up to kGemvRows rows of x (called per 8 rows up to kQ8DotRows) with the
// activations quantized too, as llama.cpp's CPU path does: x is cut into blocks of 32 with one scale each (quantize_q8_0's rule), and each
// block's dot product is an exact int8 × int8 sum scaled once by d_w·d_x, so the weights are never
// widened to float. AVX2 has no signed × signed byte product: |w| (unsigned, sign_epi8(w, w)) times
// x carrying w's sign (sign_epi8(x, w)) gives the same products in maddubs_epi16 (pairs summed to
// int16: at most 2·127·127 = 32258, no saturation), madd_epi16 with ones sums those to eight
// int32, and one float FMA per block adds them with the block's scale. MR rows of x share each
// loaded weight block; with one or two rows two accumulator sets hide the FMA latency.
template <int MR>
__attribute__((target("avx2,fma"))) void gemv_q8q8_avx2(int64_t n, int64_t K, const int8_t* qx, const float* dx,
                                                        const int8_t* q, const float* scales, float beta, float* y,
                                                        int64_t ldy) {
  constexpr int A = MR <= 2 ? 2 : 1;
  const int64_t nb = K / kQ8Block;
  const __m256i ones = _mm256_set1_epi16(1);
  for (int64_t j = 0; j < n; ++j) {
    const int8_t* qr = q + j * K;
    const float* sr = scales + j * nb;
    __m256 acc[A][MR];
    for (int a = 0; a < A; ++a)
      for (int m = 0; m < MR; ++m) acc[a][m] = _mm256_setzero_ps();
    for (int64_t b = 0; b < nb; ++b) {
      const __m256i wv = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(qr + b * kQ8Block));
      const __m256i wabs = _mm256_sign_epi8(wv, wv);
      const float dw = sr[b];
      for (int m = 0; m < MR; ++m) {
        const __m256i xv = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(qx + m * K + b * kQ8Block));
        const __m256i p16 = _mm256_maddubs_epi16(wabs, _mm256_sign_epi8(xv, wv));
        const __m256 p = _mm256_cvtepi32_ps(_mm256_madd_epi16(p16, ones));
        acc[b % A][m] = _mm256_fmadd_ps(p, _mm256_set1_ps(dw * dx[m * nb + b]), acc[b % A][m]);
      }
    }
    for (int m = 0; m < MR; ++m) {
      for (int a = 1; a < A; ++a) acc[0][m] = _mm256_add_ps(acc[0][m], acc[a][m]);
      store_out(y + m * ldy + j, hsum8(acc[0][m]), beta);
    }
  }
}

// The scalar loops (no AVX2, or vector kernels off): the same sums in plain C++.
void gemv_bf16_scalar(int64_t M, int64_t n, int64_t K, const float* x, int64_t ldx, const uint16_t* w, int64_t ldw,
                      float beta, float* y, int64_t ldy) {
  for (int64_t j = 0; j < n; ++j)
    for (int64_t m = 0; m < M; ++m) {
      float s = 0;
      for (int64_t k = 0; k < K; ++k) s += bf16_to_f32(w[j * ldw + k]) * x[m * ldx + k];
      store_out(y + m * ldy + j, s, beta);
    }
}

void gemv_q8_scalar(int64_t M, int64_t n, int64_t K, const float* x, int64_t ldx, const int8_t* q,
                    const float* scales, float beta, float* y, int64_t ldy) {
  const int64_t nb = K / kQ8Block;
  for (int64_t j = 0; j < n; ++j)
    for (int64_t m = 0; m < M; ++m) {
      float s = 0;
      for (int64_t b = 0; b < nb; ++b) {
        float block = 0;
        for (int64_t i = 0; i < kQ8Block; ++i)
          block += static_cast<float>(q[j * K + b * kQ8Block + i]) * x[m * ldx + b * kQ8Block + i];
        s += scales[j * nb + b] * block;
      }
      store_out(y + m * ldy + j, s, beta);
    }
}

// Dispatches an MR known at compile time (1..kGemvRows) to kernel<MR>.
#define ATAX_GEMV_DISPATCH(kernel, M, ...)                  \
  switch (M) {                                              \
    case 1: return kernel<1>(__VA_ARGS__);                  \
    case 2: return kernel<2>(__VA_ARGS__);                  \
    case 3: return kernel<3>(__VA_ARGS__);                  \
    case 4: return kernel<4>(__VA_ARGS__);                  \
    case 5: return kernel<5>(__VA_ARGS__);                  \
    case 6: return kernel<6>(__VA_ARGS__);                  \
    case 7: return kernel<7>(__VA_ARGS__);                  \
    default: return kernel<8>(__VA_ARGS__);                 \
  }

// Weight rows [r0, r0 + r) widened to float32 (r, K) in `out`.
void widen_rows(bool q8, const void* w, const float* scales, int64_t r0, int64_t r, int64_t K, float* out) {
  if (q8) {
    const int8_t* q = static_cast<const int8_t*>(w) + r0 * K;
    const float* s = scales + r0 * (K / kQ8Block);
    for (int64_t i = 0; i < r * K; ++i) out[i] = static_cast<float>(q[i]) * s[i / kQ8Block];
  } else {
    const uint16_t* b = static_cast<const uint16_t*>(w) + r0 * K;
    for (int64_t i = 0; i < r * K; ++i) out[i] = bf16_to_f32(b[i]);
  }
}

// y (M,N) = x (M,K) · w (N,K)ᵀ + beta·y for a packed w, columns split over threads.
void packed_product(int64_t M, int64_t N, int64_t K, const float* x, bool q8, const void* w, const float* scales,
                    float beta, float* y) {
  const bool gemv = M <= kGemvRows;
  const bool vec = gemv && g_vector_kernels.load(std::memory_order_relaxed) && cpu_has_avx2_fma();
  auto sgemm = dnnl_sgemm();
  // Q8_0 activations for the int8 kernel, quantized once for every thread's columns.
  const bool q8q8 = q8 && q8_quantizes_activations(M);
  std::vector<int8_t> qx;
  std::vector<float> dx;
  if (q8q8) {
    qx.resize(static_cast<size_t>(M * K));
    dx.resize(static_cast<size_t>(M * K / kQ8Block));
    quantize_q8_0_rows(x, M * K / kQ8Block, qx.data(), dx.data());
  }
  split_columns(M, N, K, gemv, [&](int64_t n0, int64_t n) {
    float* yp = y + n0;
    if (q8q8) {
      const int8_t* q = static_cast<const int8_t*>(w) + n0 * K;
      const float* s = scales + n0 * (K / kQ8Block);
      const int64_t nb = K / kQ8Block;
      if (gemv) { ATAX_GEMV_DISPATCH(gemv_q8q8_avx2, M, n, K, qx.data(), dx.data(), q, s, beta, yp, N) }
      // 9-32 rows (batched decoding): 64 weight rows at a time stay in cache while every 8 rows of
      // x pass over them.
      constexpr int64_t kRows = 64;
      for (int64_t c = 0; c < n; c += kRows) {
        const int64_t r = std::min(kRows, n - c);
        for (int64_t m0 = 0; m0 < M; m0 += kGemvRows) {
          const int64_t mr = std::min(kGemvRows, M - m0);
          auto chunk = [&]() {
            ATAX_GEMV_DISPATCH(gemv_q8q8_avx2, mr, r, K, qx.data() + m0 * K, dx.data() + m0 * nb, q + c * K,
                               s + c * nb, beta, yp + m0 * N + c, N)
          };
          chunk();
        }
      }
      return;
    }
    if (gemv && q8) {
      const int8_t* q = static_cast<const int8_t*>(w) + n0 * K;
      const float* s = scales + n0 * (K / kQ8Block);
      if (!vec) return gemv_q8_scalar(M, n, K, x, K, q, s, beta, yp, N);
      ATAX_GEMV_DISPATCH(gemv_q8_avx2, M, n, K, x, K, q, s, beta, yp, N)
    }
    if (gemv) {
      const uint16_t* b = static_cast<const uint16_t*>(w) + n0 * K;
      if (!vec) return gemv_bf16_scalar(M, n, K, x, K, b, K, beta, yp, N);
      ATAX_GEMV_DISPATCH(gemv_bf16_avx2, M, n, K, x, K, b, K, beta, yp, N)
    }
    // Many rows: 64 weight rows at a time widened into a buffer that stays in cache, then sgemm.
    constexpr int64_t kRows = 64;
    std::vector<float> buf(static_cast<size_t>(std::min(kRows, n) * K));
    for (int64_t c = 0; c < n; c += kRows) {
      const int64_t r = std::min(kRows, n - c);
      widen_rows(q8, w, scales, n0 + c, r, K, buf.data());
      int rc = sgemm('N', 'T', M, r, K, 1.0f, x, K, buf.data(), K, beta, yp + c, N);
      TORCH_CHECK(rc == 0, "dnnl_sgemm failed with status ", rc);
    }
  });
}

// y (M,N) = x (M,K) · w (N,K)ᵀ, or · w (K,N) when `w_in_out`, + beta·y.
void sgemm_xw(int64_t M, int64_t N, int64_t K, const float* x, const float* w, bool w_in_out, float beta, float* y) {
  sgemm_split('N', w_in_out ? 'N' : 'T', M, N, K, x, K, w, w_in_out ? N : K, beta, y, N);
}

// y = x·wᵀ for tracked float32 CPU tensors, forward and backward in oneDNN's sgemm: x (M,K)
// contiguous, w (N,K), or (K,N) when w_in_out. The backward computes dx = dy·w and dw = dyᵀ·x
// (xᵀ·dy for (K,N) weights), as LibTorch's linear does. (A bias is added outside: LibTorch 1.13's
// Function::apply cannot take an undefined tensor.)
class SgemmLinear : public torch::autograd::Function<SgemmLinear> {
 public:
  static torch::Tensor forward(torch::autograd::AutogradContext* ctx, const torch::Tensor& x, const torch::Tensor& w,
                               bool w_in_out) {
    ctx->save_for_backward({x, w});
    ctx->saved_data["w_in_out"] = w_in_out;
    const int64_t M = x.size(0), K = x.size(1), N = w_in_out ? w.size(1) : w.size(0);
    if (K == 0 || M == 0 || N == 0) return torch::zeros({M, N}, x.options());
    auto y = torch::empty({M, N}, x.options());
    sgemm_xw(M, N, K, x.data_ptr<float>(), w.data_ptr<float>(), w_in_out, 0.0f, y.data_ptr<float>());
    return y;
  }

  static torch::autograd::variable_list backward(torch::autograd::AutogradContext* ctx,
                                                 torch::autograd::variable_list grads) {
    auto saved = ctx->get_saved_variables();
    const auto& x = saved[0];
    const auto& w = saved[1];
    const bool w_in_out = ctx->saved_data["w_in_out"].toBool();
    auto g = grads[0].contiguous();  // (M,N)
    const int64_t M = x.size(0), K = x.size(1), N = g.size(1);
    const bool empty = M == 0 || N == 0 || K == 0;
    torch::Tensor dx, dw;
    if (ctx->needs_input_grad(0)) {
      dx = empty ? torch::zeros({M, K}, x.options()) : torch::empty({M, K}, x.options());
      if (!empty)  // dx (M,K) = g (M,N) · w (N,K), or · w (K,N)ᵀ
        sgemm_split('N', w_in_out ? 'T' : 'N', M, K, N, g.data_ptr<float>(), N, w.data_ptr<float>(), w_in_out ? N : K,
                    0.0f, dx.data_ptr<float>(), K);
    }
    if (ctx->needs_input_grad(1)) {
      dw = empty ? torch::zeros(w.sizes(), w.options()) : torch::empty(w.sizes(), w.options());
      if (!empty) {
        if (w_in_out)  // dw (K,N) = xᵀ (K,M) · g (M,N)
          sgemm_split('T', 'N', K, N, M, x.data_ptr<float>(), K, g.data_ptr<float>(), N, 0.0f, dw.data_ptr<float>(), N);
        else  // dw (N,K) = gᵀ (N,M) · x (M,K)
          sgemm_split('T', 'N', N, K, M, g.data_ptr<float>(), N, x.data_ptr<float>(), K, 0.0f, dw.data_ptr<float>(), K);
      }
    }
    return {dx, dw, torch::Tensor()};
  }
};

// Runs body(i) for i in [0, n) on product_threads() threads (the calling one included), each
// taking a contiguous range; an exception in any is rethrown here.
template <class F>
void parallel_ranges(int64_t n, F&& body) {
  const int64_t threads = std::min<int64_t>(product_threads(), n);
  if (threads <= 1) {
    for (int64_t i = 0; i < n; ++i) body(i);
    return;
  }
  ProductPool::get().run(static_cast<int>(threads), [&](int r) {
    for (int64_t i = n * r / threads; i < n * (r + 1) / threads; ++i) body(i);
  });
}

void check_sgemm(int rc) { TORCH_CHECK(rc == 0, "dnnl_sgemm failed with status ", rc); }

// softmax(scale·q kᵀ + mask) v with its backward, for tracked float32 CPU tensors, in oneDNN's
// sgemm: q (B,H,T,D), k and v (B,Hkv,S,D) with unit last stride, mask (B|1,1,T,S) additive and
// not tracked. Returns (B,T,H,D) contiguous (the caller's o_proj input without a copy). The
// probabilities (B,H,T,S) are kept for the backward, as LibTorch's own softmax and matmul keep
// them. Backward: dv = Pᵀ·do, dP = do·vᵀ, dS = P ⊙ (dP − Σ_row P ⊙ dP), dq = scale·dS·k,
// dk = scale·dSᵀ·q; a GQA group's heads add into their shared dk and dv, so the work is split
// over (batch, kv head) pairs.
class SgemmAttention : public torch::autograd::Function<SgemmAttention> {
 public:
  static torch::Tensor forward(torch::autograd::AutogradContext* ctx, const torch::Tensor& q_in,
                               const torch::Tensor& k_in, const torch::Tensor& v_in, const torch::Tensor& mask_in,
                               double scale) {
    auto last_contig = [](const torch::Tensor& t) { return t.stride(-1) == 1 ? t : t.contiguous(); };
    auto q = last_contig(q_in), k = last_contig(k_in), v = last_contig(v_in), mask = last_contig(mask_in);
    const int64_t B = q.size(0), H = q.size(1), T = q.size(2), D = q.size(3), Hkv = k.size(1), S = k.size(2);
    auto probs = torch::empty({B, H, T, S}, q.options());
    auto out = torch::empty({B, T, H, D}, q.options());
    const float* qp = q.data_ptr<float>();
    const float* kp = k.data_ptr<float>();
    const float* vp = v.data_ptr<float>();
    const float* mp = mask.data_ptr<float>();
    float* pp = probs.data_ptr<float>();
    float* op = out.data_ptr<float>();
    auto sgemm = dnnl_sgemm();
    parallel_ranges(B * H, [&](int64_t i) {
      const int64_t b = i / H, h = i % H, kh = h / (H / Hkv), mb = mask.size(0) == 1 ? 0 : b;
      float* p = pp + i * T * S;
      auto scores = torch::empty({T, S}, q.options());  // LibTorch's vectorised softmax reads it into p
      float* sc = scores.data_ptr<float>();
      for (int64_t t = 0; t < T; ++t) std::copy_n(mp + mb * mask.stride(0) + t * mask.stride(2), S, sc + t * S);
      const float* a = qp + b * q.stride(0) + h * q.stride(1);
      const float* kk = kp + b * k.stride(0) + kh * k.stride(1);
      check_sgemm(sgemm('N', 'T', T, S, D, static_cast<float>(scale), a, q.stride(2), kk, k.stride(2), 1.0f, sc, S));
      auto pv = probs.view({B * H, T, S}).select(0, i);
      at::_softmax_out(pv, scores, 1, false);
      const float* vv = vp + b * v.stride(0) + kh * v.stride(1);
      check_sgemm(sgemm('N', 'N', T, D, S, 1.0f, p, S, vv, v.stride(2), 0.0f, op + (b * T * H + h) * D, H * D));
    });
    ctx->save_for_backward({q, k, v, probs});
    ctx->saved_data["scale"] = scale;
    return out;
  }

  static torch::autograd::variable_list backward(torch::autograd::AutogradContext* ctx,
                                                 torch::autograd::variable_list grads) {
    auto saved = ctx->get_saved_variables();
    const auto &q = saved[0], &k = saved[1], &v = saved[2], &probs = saved[3];
    const float scale = static_cast<float>(ctx->saved_data["scale"].toDouble());
    auto g = grads[0].contiguous();  // (B,T,H,D)
    const int64_t B = q.size(0), H = q.size(1), T = q.size(2), D = q.size(3), Hkv = k.size(1), S = k.size(2);
    const int64_t group = H / Hkv;
    auto dq = torch::empty({B, H, T, D}, q.options());
    auto dk = torch::zeros({B, Hkv, S, D}, q.options()), dv = torch::zeros({B, Hkv, S, D}, q.options());
    const float* qp = q.data_ptr<float>();
    const float* kp = k.data_ptr<float>();
    const float* vp = v.data_ptr<float>();
    const float* pp = probs.data_ptr<float>();
    const float* gp = g.data_ptr<float>();
    float* dqp = dq.data_ptr<float>();
    float* dkp = dk.data_ptr<float>();
    float* dvp = dv.data_ptr<float>();
    auto sgemm = dnnl_sgemm();
    parallel_ranges(B * Hkv, [&](int64_t i) {
      const int64_t b = i / Hkv, kh = i % Hkv;
      std::vector<float> ds(static_cast<size_t>(T * S));
      const float* kk = kp + b * k.stride(0) + kh * k.stride(1);
      const float* vv = vp + b * v.stride(0) + kh * v.stride(1);
      float* dkk = dkp + i * S * D;
      float* dvv = dvp + i * S * D;
      for (int64_t h = kh * group; h < (kh + 1) * group; ++h) {
        const float* p = pp + (b * H + h) * T * S;
        const float* go = gp + (b * T * H + h) * D;  // rows of do, stride H·D
        const float* qq = qp + b * q.stride(0) + h * q.stride(1);
        check_sgemm(sgemm('T', 'N', S, D, T, 1.0f, p, S, go, H * D, 1.0f, dvv, D));            // dv += Pᵀ do
        check_sgemm(sgemm('N', 'T', T, S, D, 1.0f, go, H * D, vv, v.stride(2), 0.0f, ds.data(), S));  // dP
        for (int64_t t = 0; t < T; ++t) {  // dS = P ⊙ (dP − Σ P ⊙ dP)
          const float* pr = p + t * S;
          float* dr = ds.data() + t * S;
          float dot = 0;
          for (int64_t s2 = 0; s2 < S; ++s2) dot += pr[s2] * dr[s2];
          for (int64_t s2 = 0; s2 < S; ++s2) dr[s2] = pr[s2] * (dr[s2] - dot);
        }
        check_sgemm(sgemm('N', 'N', T, D, S, scale, ds.data(), S, kk, k.stride(2), 0.0f,
                          dqp + (b * H + h) * T * D, D));                                      // dq = scale dS k
        check_sgemm(sgemm('T', 'N', S, D, T, scale, ds.data(), S, qq, q.stride(2), 1.0f, dkk, D));  // dk += scale dSᵀ q
      }
    });
    return {dq, dk, dv, torch::Tensor(), torch::Tensor()};
  }

};

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

namespace {
// y (M,N) for x2 (M,K): the bias broadcast over the rows (a copy, never the bias itself) or zeros,
// plus what add(beta, y) accumulates into it (beta 1 over a bias, 0 otherwise); add is not called
// when M, N or K is 0.
torch::Tensor bias_plus(const torch::Tensor& x2, int64_t N, const torch::Tensor& bias,
                        const std::function<void(float, float*)>& add) {
  const int64_t M = x2.size(0), K = x2.size(1);
  torch::Tensor y;
  float beta = 0;
  if (bias.defined()) {
    y = bias.to(torch::kFloat32).reshape({1, N}).expand({M, N}).clone(at::MemoryFormat::Contiguous);
    beta = 1;
  } else {
    y = torch::empty({M, N}, x2.options());
  }
  if (M > 0 && N > 0) {
    if (K == 0) {
      if (!bias.defined()) y.zero_();
    } else {
      add(beta, y.data_ptr<float>());
    }
  }
  return y;
}
}  // namespace

torch::Tensor linear_packed(const torch::Tensor& x, const torch::Tensor& w, const torch::Tensor& scales,
                            const torch::Tensor& bias) {
  const bool q8 = scales.defined();
  TORCH_CHECK(x.scalar_type() == torch::kFloat32 && x.device().is_cpu(), "linear_packed: x must be float32 on the CPU");
  TORCH_CHECK(w.dim() == 2 && w.is_contiguous() && w.scalar_type() == (q8 ? torch::kChar : torch::kBFloat16),
              "linear_packed: w must be a contiguous (N,K) ", q8 ? "int8" : "bfloat16", " tensor, got ", w.sizes(), " ",
              w.scalar_type());
  const int64_t K = x.size(-1), N = w.size(0);
  TORCH_CHECK(w.size(1) == K, "linear_packed: x has ", K, " features, the weight ", w.sizes());
  TORCH_CHECK(!q8 || (K % kQ8Block == 0 && scales.is_contiguous() && scales.scalar_type() == torch::kFloat32 &&
                      scales.sizes() == torch::IntArrayRef({N, K / kQ8Block})),
              "linear_packed: Q8_0 needs K a multiple of 32 and scales (N, K/32) float32");
  auto sizes = x.sizes().vec();
  sizes.back() = N;
  auto x2 = x.reshape({-1, K}).contiguous();  // (M,K)
  const int64_t M = x2.size(0);
  if (!dnnl_sgemm() && M > kGemvRows && !(q8 && q8_quantizes_activations(M))) {  // no oneDNN: LibTorch's product on the widened weight
    auto wf = q8 ? dequantize_q8_0(w, scales) : w.to(torch::kFloat32);
    return torch::nn::functional::linear(x2, wf, bias).view(sizes);
  }
  return bias_plus(x2, N, bias, [&](float beta, float* y) {
           packed_product(M, N, K, x2.data_ptr<float>(), q8, w.data_ptr(), q8 ? scales.data_ptr<float>() : nullptr,
                          beta, y);
         }).view(sizes);
}

std::pair<torch::Tensor, torch::Tensor> quantize_q8_0(const torch::Tensor& w_in) {
  TORCH_CHECK(w_in.dim() == 2 && w_in.size(1) % kQ8Block == 0, "quantize_q8_0: needs (N,K) with K a multiple of 32, got ",
              w_in.sizes());
  auto w = w_in.detach().to(torch::kCPU, torch::kFloat32).contiguous();
  const int64_t N = w.size(0), K = w.size(1), nb = K / kQ8Block;
  auto q = torch::empty({N, K}, torch::kChar);
  auto s = torch::empty({N, nb}, torch::kFloat32);
  const float* wp = w.data_ptr<float>();
  int8_t* qp = q.data_ptr<int8_t>();
  float* sp = s.data_ptr<float>();
  at::parallel_for(0, N * nb, 1024, [&](int64_t b0, int64_t b1) {
    quantize_q8_0_rows(wp + b0 * kQ8Block, b1 - b0, qp + b0 * kQ8Block, sp + b0);
  });
  return {q, s};
}

torch::Tensor dequantize_q8_0(const torch::Tensor& q, const torch::Tensor& scales) {
  const int64_t R = q.size(0), K = q.size(1);
  return (q.to(torch::kFloat32).view({R, K / kQ8Block, kQ8Block}) * scales.unsqueeze(-1)).view({R, K});
}

void set_vector_kernels(bool on) { g_vector_kernels.store(on, std::memory_order_relaxed); }

void set_q8_activations(bool on) { g_q8_activations.store(on, std::memory_order_relaxed); }

bool q8_quantizes_activations(int64_t rows) {
  return rows <= kQ8DotRows && g_vector_kernels.load(std::memory_order_relaxed) &&
         g_q8_activations.load(std::memory_order_relaxed) && cpu_has_avx2_fma();
}

torch::Tensor linear(const torch::Tensor& x, const torch::Tensor& w, const torch::Tensor& bias, bool w_in_out) {
  const bool f32 = x.scalar_type() == torch::kFloat32 && w.scalar_type() == torch::kFloat32 &&
                   (!bias.defined() || bias.scalar_type() == torch::kFloat32);
  const bool grad = torch::GradMode::is_enabled() && (tracked(x) || tracked(w) || tracked(bias));
  auto sgemm = dnnl_sgemm();
  if (!fast_kernels() || !sgemm || !f32 || !x.device().is_cpu() || w.dim() != 2 || !w.is_contiguous() || x.dim() < 1)
    return torch_linear(x, w, bias, w_in_out);
  const int64_t K = x.size(-1), N = w_in_out ? w.size(1) : w.size(0);
  TORCH_CHECK(K == (w_in_out ? w.size(0) : w.size(1)), "linear: x has ", K, " features, the weight ", w.sizes());
  if (grad) {  // training: the same products, with their backward, through autograd
    auto y = SgemmLinear::apply(x.reshape({-1, K}).contiguous(), w, w_in_out);
    if (bias.defined()) y = y + bias;
    auto sizes = x.sizes().vec();
    sizes.back() = N;
    return y.view(sizes);
  }
  auto x2 = x.reshape({-1, K}).contiguous();  // (M,K)
  const int64_t M = x2.size(0);
  auto y = bias_plus(x2, N, bias, [&](float beta, float* yp) {
    sgemm_xw(M, N, K, x2.data_ptr<float>(), w.data_ptr<float>(), w_in_out, beta, yp);
  });
  auto sizes = x.sizes().vec();
  sizes.back() = N;
  return y.view(sizes);
}

std::vector<torch::Tensor> linear_group(const torch::Tensor& x, const std::vector<torch::Tensor>& ws) {
  const int64_t K = x.dim() >= 1 ? x.size(-1) : 0;
  bool tracking = torch::GradMode::is_enabled() && tracked(x);
  bool group = ws.size() > 1 && fast_kernels() && dnnl_sgemm() && x.scalar_type() == torch::kFloat32 &&
               x.device().is_cpu() && x.dim() >= 1 && gemv_applies(x.numel() / std::max<int64_t>(1, K), K);
  for (const auto& w : ws) {
    tracking = tracking || (torch::GradMode::is_enabled() && tracked(w));
    group = group && w.scalar_type() == torch::kFloat32 && w.dim() == 2 && w.is_contiguous() && w.size(1) == K;
  }
  std::vector<torch::Tensor> out;
  if (!group || tracking) {
    for (const auto& w : ws) out.push_back(atax::linear(x, w, torch::Tensor()));
    return out;
  }
  auto x2 = x.reshape({-1, K}).contiguous();  // (M,K), M ≤ kGemvRows
  const int64_t M = x2.size(0);
  std::vector<int64_t> Ns;
  for (const auto& w : ws) {
    Ns.push_back(w.size(0));
    out.push_back(torch::empty({M, w.size(0)}, x2.options()));
  }
  const float* xp = x2.data_ptr<float>();
  split_column_groups(M, Ns, K, true, [&](size_t i, int64_t n0, int64_t n) {
    gemv_rows_avx2(M, n, K, xp, K, ws[i].data_ptr<float>() + n0 * K, K, 0.0f, out[i].data_ptr<float>() + n0, Ns[i]);
  });
  for (size_t i = 0; i < ws.size(); ++i) {
    auto sizes = x.sizes().vec();
    sizes.back() = Ns[i];
    out[i] = out[i].view(sizes);
  }
  return out;
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
  // A block's rows are split over product_threads() threads (each its rows of every head: they
  // see the same keys, so the parts are equal): the attention of a 2048-token window is a tenth of
  // its work, and on one thread of two it was a fifth of the time (measured, bench_score_vs_llamacpp).
  const int64_t threads = product_threads();
  for (int64_t b = 0; b < B; ++b) {
    const int64_t mb = mask.size(0) == 1 ? 0 : b;
    for (int64_t t0 = 0; t0 < T; t0 += rows) {
      const int64_t n = std::min(rows, T - t0), keys = past + t0 + n;  // later keys are masked for the block
      const int64_t parts = threads > 1 && n >= 4 * threads ? threads : 1;  // at least 4 rows a part
      auto part = [&](int r) {
        const int64_t i0 = n * r / parts, m = n * (r + 1) / parts - i0;
        if (m <= 0) return;
        for (int64_t h = 0; h < H; ++h) {
          float* c = scp + (h * n + i0) * keys;  // (m,keys)
          for (int64_t i = 0; i < m; ++i)
            std::copy_n(mp + mb * mask.stride(0) + (t0 + i0 + i) * mask.stride(2), keys, c + i * keys);
          const float* a = qp + b * q.stride(0) + h * q.stride(1) + (t0 + i0) * q.stride(2);
          const float* kk = kp + b * k.stride(0) + (h / group) * k.stride(1);
          int rc = sgemm('N', 'T', m, keys, D, static_cast<float>(scale), a, q.stride(2), kk, k.stride(2), 1.0f, c, keys);
          TORCH_CHECK(rc == 0, "dnnl_sgemm failed with status ", rc);
        }
        for (int64_t h = 0; h < H; ++h) {
          const int64_t off = (h * n + i0) * keys;
          auto pr = probs.narrow(0, off, m * keys).view({m, keys});
          at::_softmax_out(pr, scores.narrow(0, off, m * keys).view({m, keys}), 1, false);
        }
        for (int64_t h = 0; h < H; ++h) {
          const float* vv = vp + b * v.stride(0) + (h / group) * v.stride(1);
          float* o = op + ((b * T + t0 + i0) * H + h) * D;
          int rc = sgemm('N', 'N', m, D, keys, 1.0f, prp + (h * n + i0) * keys, keys, vv, v.stride(2), 0.0f, o, H * D);
          TORCH_CHECK(rc == 0, "dnnl_sgemm failed with status ", rc);
        }
      };
      if (parts > 1) ProductPool::get().run(static_cast<int>(parts), part);
      else part(0);
    }
  }
  return out.permute({0, 2, 1, 3});  // (B,H,T,D) view
}
}  // namespace

bool fused_elementwise(const torch::Tensor& x) {
  return fast_kernels() && !torch::GradMode::is_enabled() && x.defined() && !x.requires_grad() &&
         x.scalar_type() == torch::kFloat32 && x.device().is_cpu();
}

torch::Tensor rms_norm_fused(const torch::Tensor& x_in, const torch::Tensor& w_in, double eps, bool unit_offset) {
  auto x = x_in.contiguous();
  auto w = w_in.contiguous();
  const int64_t C = x.size(-1), rows = C > 0 ? x.numel() / C : 0;
  TORCH_CHECK(w.numel() == C, "rms_norm_fused: weight of ", w.numel(), " for rows of ", C);
  auto y = torch::empty_like(x);
  const float* xp = x.data_ptr<float>();
  const float* wp = w.data_ptr<float>();
  float* yp = y.data_ptr<float>();
  auto run = [&](int64_t r0, int64_t r1) {
    for (int64_t r = r0; r < r1; ++r) {
      const float* xr = xp + r * C;
      float* yr = yp + r * C;
      double ss = 0;
      for (int64_t i = 0; i < C; ++i) ss += static_cast<double>(xr[i]) * xr[i];
      const float inv = 1.0f / std::sqrt(static_cast<float>(ss / static_cast<double>(C)) + static_cast<float>(eps));
      if (unit_offset)
        for (int64_t i = 0; i < C; ++i) yr[i] = (xr[i] * inv) * (1.0f + wp[i]);
      else
        for (int64_t i = 0; i < C; ++i) yr[i] = wp[i] * (xr[i] * inv);
    }
  };
  // Rows over the product threads when there are enough of them (scoring; not a decoded token).
  const int64_t threads = rows * C >= (int64_t{1} << 16) ? std::min<int64_t>(product_threads(), rows) : 1;
  if (threads <= 1) {
    run(0, rows);
  } else {
    ProductPool::get().run(static_cast<int>(threads), [&](int r) { run(rows * r / threads, rows * (r + 1) / threads); });
  }
  return y;
}

torch::Tensor rope_fused(const torch::Tensor& t_in, const torch::Tensor& cos_in, const torch::Tensor& sin_in) {
  auto t = t_in.stride(-1) == 1 ? t_in : t_in.contiguous();
  auto cs = cos_in.contiguous(), sn = sin_in.contiguous();
  const int64_t B = t.size(0), H = t.size(1), T = t.size(2), D = t.size(3), half = D / 2;
  TORCH_CHECK(D % 2 == 0 && cs.size(-1) == D && sn.sizes() == cs.sizes() && cs.size(2) == T &&
                  (cs.size(0) == B || cs.size(0) == 1),
              "rope_fused: tables ", cs.sizes(), " for ", t.sizes());
  auto y = torch::empty({B, H, T, D}, t.options());
  const float* tp = t.data_ptr<float>();
  const float* cp = cs.data_ptr<float>();
  const float* sp = sn.data_ptr<float>();
  float* yp = y.data_ptr<float>();
  const int64_t st0 = t.stride(0), st1 = t.stride(1), st2 = t.stride(2);
  for (int64_t b = 0; b < B; ++b) {
    const int64_t tb = cs.size(0) == 1 ? 0 : b;
    for (int64_t h = 0; h < H; ++h)
      for (int64_t i = 0; i < T; ++i) {
        const float* x = tp + b * st0 + h * st1 + i * st2;
        const float* c = cp + (tb * T + i) * D;
        const float* s = sp + (tb * T + i) * D;
        float* o = yp + ((b * H + h) * T + i) * D;
        for (int64_t j = 0; j < half; ++j) o[j] = x[j] * c[j] + (-x[j + half]) * s[j];
        for (int64_t j = half; j < D; ++j) o[j] = x[j] * c[j] + x[j - half] * s[j];
      }
  }
  return y;
}

torch::Tensor causal_attention(const torch::Tensor& q, const torch::Tensor& k_in, const torch::Tensor& v_in,
                               const torch::Tensor& add_mask, double scale) {
  const int64_t B = q.size(0), H = q.size(1), T = q.size(2), S = k_in.size(2), D = q.size(3), past = S - T;
  const int64_t Hkv = k_in.size(1);
  TORCH_CHECK(H % Hkv == 0, "causal_attention: ", H, " query heads for ", Hkv, " key/value heads");
  const bool f32 = q.scalar_type() == torch::kFloat32 && k_in.scalar_type() == torch::kFloat32 &&
                   v_in.scalar_type() == torch::kFloat32 && add_mask.scalar_type() == torch::kFloat32;
  const bool grad = torch::GradMode::is_enabled() && (tracked(q) || tracked(k_in) || tracked(v_in));
  if (fast_kernels() && dnnl_sgemm() && f32 && q.device().is_cpu() && T > 0 && S > 0 && D > 0) {
    if (!grad) return fused_attention(q, k_in, v_in, add_mask, scale);
    return SgemmAttention::apply(q, k_in, v_in, add_mask.detach(), scale).permute({0, 2, 1, 3});
  }
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
