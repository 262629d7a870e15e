// The DPO family of losses (TRL's formulas), the L2-to-reference regularizer, and sequence
// log-probs computed at the scored positions only.
//
// Shape legend: B pairs, N sequences, T time, C hidden, V vocab, M scored positions.
#include <cmath>

#include <fmt/format.h>

#include "train/loop.h"

namespace atax {

DpoLossType dpo_loss_type_from_name(const std::string& name) {
  if (name == "sigmoid") return DpoLossType::kSigmoid;
  if (name == "ipo") return DpoLossType::kIpo;
  if (name == "hinge") return DpoLossType::kHinge;
  if (name == "robust") return DpoLossType::kRobust;
  throw Error("unknown DPO loss type \"" + name + "\"", "", "use one of: sigmoid, ipo, hinge, robust");
}

std::string dpo_loss_type_name(DpoLossType type) {
  switch (type) {
    case DpoLossType::kSigmoid: return "sigmoid";
    case DpoLossType::kIpo: return "ipo";
    case DpoLossType::kHinge: return "hinge";
    case DpoLossType::kRobust: return "robust";
  }
  return "sigmoid";
}

DpoLossTerms dpo_loss(const PairLogprobs& policy, const PairLogprobs& reference, DpoLossType type, double beta,
                      double label_smoothing) {
  if (!(beta > 0) || !std::isfinite(beta))
    throw Error(fmt::format("beta must be positive, got {}", beta), "", "pass --beta 0.1 (a typical value)");
  const double eps = label_smoothing;
  if (type == DpoLossType::kRobust && !(eps >= 0 && eps < 0.5))
    throw Error(fmt::format("label smoothing for the robust loss must be in [0, 0.5), got {}", eps));
  if (type == DpoLossType::kSigmoid && !(eps >= 0 && eps <= 0.5))
    throw Error(fmt::format("label smoothing must be in [0, 0.5], got {}", eps));
  auto pi_logratios = policy.chosen - policy.rejected;                            // (B,)
  auto ref_logratios = (reference.chosen - reference.rejected).detach();          // (B,)
  auto h = pi_logratios - ref_logratios.to(pi_logratios.device(), pi_logratios.scalar_type());  // (B,)
  torch::Tensor losses;
  switch (type) {
    case DpoLossType::kSigmoid:
      losses = -torch::log_sigmoid(beta * h) * (1 - eps) - torch::log_sigmoid(-beta * h) * eps;
      break;
    case DpoLossType::kRobust:
      losses = (-torch::log_sigmoid(beta * h) * (1 - eps) + torch::log_sigmoid(-beta * h) * eps) / (1 - 2 * eps);
      break;
    case DpoLossType::kHinge:
      losses = torch::relu(1 - beta * h);
      break;
    case DpoLossType::kIpo:
      losses = (h - 1 / (2 * beta)).pow(2);
      break;
  }
  DpoLossTerms out;
  out.losses = losses;
  auto rc = reference.chosen.detach().to(policy.chosen.device(), policy.chosen.scalar_type());
  auto rr = reference.rejected.detach().to(policy.rejected.device(), policy.rejected.scalar_type());
  out.rewards_chosen = beta * (policy.chosen.detach() - rc);
  out.rewards_rejected = beta * (policy.rejected.detach() - rr);
  return out;
}

torch::Tensor l2_to_reference(const std::vector<torch::Tensor>& params, const std::vector<torch::Tensor>& reference) {
  TORCH_CHECK(params.size() == reference.size(), "l2_to_reference: params and reference differ in length");
  torch::Tensor total;
  for (size_t i = 0; i < params.size(); ++i) {
    auto term = (params[i] - reference[i].detach()).pow(2).sum();
    total = total.defined() ? total + term : term;
  }
  return total.defined() ? total : torch::zeros({});
}

double add_l2_reference_grad(const std::vector<torch::Tensor>& params, const std::vector<torch::Tensor>& reference,
                             double lambda) {
  TORCH_CHECK(params.size() == reference.size(), "add_l2_reference_grad: params and reference differ in length");
  torch::NoGradGuard ng;
  torch::Tensor total = torch::zeros({}, torch::kFloat64);
  for (size_t i = 0; i < params.size(); ++i) {
    auto p = params[i];
    auto d = p.detach() - reference[i];                     // same shape as p
    total += d.pow(2).sum().to(torch::kCPU, torch::kFloat64);
    if (lambda != 0) {
      if (!p.grad().defined()) p.mutable_grad() = torch::zeros_like(p);
      p.mutable_grad().add_(d, 2 * lambda);
    }
  }
  return total.item<double>();
}

TokenBatch make_token_batch(const std::vector<const TokenSequence*>& seqs, int64_t pad_id, torch::Device device) {
  TORCH_CHECK(!seqs.empty(), "make_token_batch: no sequences");
  int64_t T = 2;
  for (const auto* s : seqs) T = std::max<int64_t>(T, static_cast<int64_t>(s->ids.size()));
  const int64_t N = static_cast<int64_t>(seqs.size());
  auto ids = torch::full({N, T}, pad_id, torch::kInt64);         // (N,T)
  auto scored = torch::zeros({N, T - 1}, torch::kBool);          // (N,T-1)
  auto ia = ids.accessor<int64_t, 2>();
  auto sa = scored.accessor<bool, 2>();
  TokenBatch b;
  for (int64_t n = 0; n < N; ++n) {
    const auto& s = *seqs[n];
    const int64_t L = static_cast<int64_t>(s.ids.size());
    for (int64_t t = 0; t < L; ++t) ia[n][t] = s.ids[t];
    // Token t (t ≥ max(1, prompt_len)) is scored; it is predicted at position t − 1.
    for (int64_t t = std::max<int64_t>(1, s.prompt_len); t < L; ++t) sa[n][t - 1] = true;
    b.tokens += L;
  }
  b.input_ids = ids.to(device);
  b.scored = scored.to(device);
  return b;
}

namespace {
// Whether this process's BLAS is slow (Debian's reference libblas: a few GFLOP/s) so that the
// oneDNN 1×1-convolution route wins; with OpenBLAS (scripts/setup) plain linear is ~2× faster
// than the convolution. Decided once by timing a 256³ product; ATAX_LINEAR=blas|onednn forces it.
bool prefer_onednn() {
  static const bool prefer = [] {
    if (const char* env = std::getenv("ATAX_LINEAR"); env && *env) return std::string(env) == "onednn";
    torch::NoGradGuard ng;
    auto a = torch::randn({256, 256}), b = torch::randn({256, 256});
    torch::mm(a, b);  // warm-up
    const double t0 = now_seconds();
    for (int i = 0; i < 4; ++i) torch::mm(a, b);
    const double gflops = 4 * 2.0 * 256 * 256 * 256 / std::max(1e-9, now_seconds() - t0) / 1e9;
    return gflops < 15.0;
  }();
  return prefer;
}
}  // namespace

torch::Tensor fast_linear(const torch::Tensor& x, const torch::Tensor& w) {
  TORCH_CHECK(x.dim() == 2 && w.dim() == 2 && x.size(1) == w.size(1), "fast_linear: x (M,K), w (N,K)");
  const int64_t M = x.size(0), K = x.size(1), N = w.size(0);
  if (x.device().is_cpu() && x.scalar_type() == torch::kFloat32 && w.scalar_type() == torch::kFloat32 && M >= 16 &&
      prefer_onednn()) {
    // A 1×1 convolution over M "images" of K channels is exactly x·wᵀ, run by oneDNN.
    auto y = torch::conv2d(x.contiguous().view({M, K, 1, 1}), w.contiguous().view({N, K, 1, 1}));  // (M,N,1,1)
    return y.reshape({M, N});
  }
  return torch::nn::functional::linear(x, w);
}

SequenceLogprobs sequence_logprobs(CausalLm& net, const TokenBatch& batch) {
  const auto& ids = batch.input_ids;  // (N,T)
  const int64_t N = ids.size(0), T = ids.size(1);
  auto h = net->hidden_states(ids);   // (N,T,C)
  const int64_t C = h.size(2);
  auto pos = batch.scored.nonzero();  // (M,2): (row, position)
  auto rows = pos.select(1, 0);       // (M,)
  auto flat_h = rows * T + pos.select(1, 1);          // index into (N*T)
  auto flat_t = rows * T + pos.select(1, 1) + 1;      // the predicted token
  auto hs = h.reshape({N * T, C}).index_select(0, flat_h);          // (M,C)
  auto targets = ids.reshape({N * T}).index_select(0, flat_t);      // (M,)
  auto w = train_detail::head_of(net);                              // (V,C)
  torch::Tensor logits = hs.scalar_type() == w.scalar_type() ? fast_linear(hs, w) : fast_linear(hs, w.to(hs.scalar_type()));
  logits = logits.to(torch::kFloat32);                              // (M,V)
  auto lp = torch::log_softmax(logits, -1).gather(1, targets.unsqueeze(1)).squeeze(1);  // (M,)
  SequenceLogprobs out;
  out.sum = torch::zeros({N}, lp.options()).index_add(0, rows, lp);  // (N,)
  out.count = batch.scored.sum(1).to(torch::kFloat32);               // (N,)
  return out;
}

}  // namespace atax
