// Reference log-probs (live, precomputed, cached on disk), the concatenated DPO forward, and
// held-out evaluation.
//
// Shape legend: B pairs, P pairs in a table, E extra (NLL) sequences.
#include <cstring>
#include <numeric>

#include <fmt/format.h>

#include "dist/dist.h"
#include "train/loop.h"

namespace atax {

using namespace train_detail;

PairLogprobs PairTable::logprobs(bool average) const {
  if (average) return {chosen_sum / chosen_count.clamp_min(1), rejected_sum / rejected_count.clamp_min(1)};
  return {chosen_sum, rejected_sum};
}

namespace train_detail {

torch::Device net_device(CausalLm& net) {
  auto params = net->parameters();
  return params.empty() ? torch::Device(torch::kCPU) : params.front().device();
}

namespace {
// Restores LoRA adapters when the reference pass ends, even on an exception.
struct LoraOff {
  CausalLm& net;
  explicit LoraOff(CausalLm& n) : net(n) { net->set_lora_enabled(false); }
  ~LoraOff() { net->set_lora_enabled(true); }
};
}  // namespace

torch::Tensor head_of(CausalLm& net) {
  auto params = net->named_hf_parameters();
  auto it = params.find("lm_head.weight");
  if (it != params.end()) return it->second;
  for (const char* name : {"model.embed_tokens.weight", "transformer.wte.weight"})  // tied embeddings
    if ((it = params.find(name)) != params.end()) return it->second;
  TORCH_CHECK(false, "the model has no lm_head weight");
  return {};
}

namespace {
bool prompt_sharing_enabled() {
  static const bool on = [] {
    const char* env = std::getenv("ATAX_DPO_SHARE_PROMPT");
    return !(env && std::string(env) == "0");
  }();
  return on;
}

int64_t pair_tokens(const std::vector<const PreferencePair*>& pairs) {
  int64_t n = 0;
  for (const auto* p : pairs) n += static_cast<int64_t>(2 * p->prompt.size() + p->chosen.size() + p->rejected.size());
  return n;
}
}  // namespace

SequenceLogprobs concatenated_logprobs(CausalLm& net, const std::vector<const PreferencePair*>& pairs, int64_t pad_id) {
  std::vector<TokenSequence> storage;
  storage.reserve(2 * pairs.size());
  for (const auto* p : pairs) storage.push_back(p->chosen_seq());
  for (const auto* p : pairs) storage.push_back(p->rejected_seq());
  std::vector<const TokenSequence*> seqs;
  for (const auto& s : storage) seqs.push_back(&s);
  return sequence_logprobs(net, make_token_batch(seqs, pad_id, net_device(net)));
}

SequenceLogprobs shared_prompt_logprobs(CausalLm& net, const std::vector<const PreferencePair*>& pairs, int64_t pad_id) {
  const int64_t B = static_cast<int64_t>(pairs.size());
  int64_t P = 0, R = 0;
  for (const auto* p : pairs) {
    if (p->prompt.empty() || p->chosen.empty() || p->rejected.empty()) return concatenated_logprobs(net, pairs, pad_id);
    P = std::max<int64_t>(P, static_cast<int64_t>(p->prompt.size()));
    R = std::max<int64_t>(R, static_cast<int64_t>(std::max(p->chosen.size(), p->rejected.size())));
  }
  const auto device = net_device(net);
  // Prompts, left-padded so every prompt ends at column P − 1.
  auto prompt_ids = torch::full({B, P}, pad_id, torch::kInt64);   // (B,P)
  auto prompt_mask = torch::zeros({B, P}, torch::kInt64);         // (B,P)
  auto resp_ids = torch::full({2 * B, R}, pad_id, torch::kInt64);  // (2B,R)
  auto resp_mask = torch::zeros({2 * B, R}, torch::kInt64);       // (2B,R)
  {
    auto pi = prompt_ids.accessor<int64_t, 2>(), pm = prompt_mask.accessor<int64_t, 2>();
    auto ri = resp_ids.accessor<int64_t, 2>(), rm = resp_mask.accessor<int64_t, 2>();
    for (int64_t b = 0; b < B; ++b) {
      const auto& p = *pairs[b];
      const int64_t off = P - static_cast<int64_t>(p.prompt.size());
      for (size_t t = 0; t < p.prompt.size(); ++t) {
        pi[b][off + t] = p.prompt[t];
        pm[b][off + t] = 1;
      }
      for (int side = 0; side < 2; ++side) {
        const auto& r = side == 0 ? p.chosen : p.rejected;
        const int64_t row = side * B + b;
        for (size_t t = 0; t < r.size(); ++t) {
          ri[row][t] = r[t];
          rm[row][t] = 1;
        }
      }
    }
  }
  prompt_ids = prompt_ids.to(device);
  prompt_mask = prompt_mask.to(device);
  resp_ids = resp_ids.to(device);
  resp_mask = resp_mask.to(device);
  KvCache cache;
  auto hp = net->hidden_states(prompt_ids, prompt_mask, &cache);  // (B,P,C)
  for (size_t l = 0; l < cache.k.size(); ++l) {                   // (B,..) -> (2B,..): chosen rows, then rejected
    cache.k[l] = torch::cat({cache.k[l], cache.k[l]}, 0);
    cache.v[l] = torch::cat({cache.v[l], cache.v[l]}, 0);
  }
  auto full_mask = torch::cat({torch::cat({prompt_mask, prompt_mask}, 0), resp_mask}, 1);  // (2B,P+R)
  auto hr = net->hidden_states(resp_ids, full_mask, &cache);                               // (2B,R,C)
  const int64_t C = hr.size(2);
  // Response token j is predicted by the prompt's last state (j = 0) or by response state j − 1.
  auto last = hp.select(1, P - 1).unsqueeze(1);                                    // (B,1,C)
  auto pred = torch::cat({torch::cat({last, last}, 0), hr.narrow(1, 0, R - 1)}, 1);  // (2B,R,C)
  auto pos = resp_mask.to(torch::kBool).nonzero();                                  // (M,2)
  auto rows = pos.select(1, 0);
  auto flat = rows * R + pos.select(1, 1);
  auto hs = pred.reshape({2 * B * R, C}).index_select(0, flat);                      // (M,C)
  auto targets = resp_ids.reshape({2 * B * R}).index_select(0, flat);                // (M,)
  auto w = head_of(net);
  auto logits = fast_linear(hs, w.scalar_type() == hs.scalar_type() ? w : w.to(hs.scalar_type())).to(torch::kFloat32);
  auto lp = torch::log_softmax(logits, -1).gather(1, targets.unsqueeze(1)).squeeze(1);  // (M,)
  SequenceLogprobs out;
  out.sum = torch::zeros({2 * B}, lp.options()).index_add(0, rows, lp);
  out.count = resp_mask.sum(1).to(torch::kFloat32);
  return out;
}

namespace {
SequenceLogprobs pair_forward(CausalLm& net, const std::vector<const PreferencePair*>& pairs, int64_t pad_id) {
  return prompt_sharing_enabled() ? shared_prompt_logprobs(net, pairs, pad_id) : concatenated_logprobs(net, pairs, pad_id);
}
}  // namespace

DpoForward dpo_forward(CausalLm& policy, CausalLm* reference_net, const std::vector<const PreferencePair*>& pairs,
                       const std::vector<const TokenSequence*>& extra, const PairLogprobs* cached, bool average,
                       int64_t pad_id) {
  const int64_t B = static_cast<int64_t>(pairs.size());
  const auto device = net_device(policy);
  DpoForward out;
  out.tokens = pair_tokens(pairs);
  auto lp = pair_forward(policy, pairs, pad_id);  // (2B,)
  out.chosen_sum = lp.sum.narrow(0, 0, B);
  out.chosen_count = lp.count.narrow(0, 0, B);
  auto rejected_sum = lp.sum.narrow(0, B, B), rejected_count = lp.count.narrow(0, B, B);
  if (!extra.empty()) {
    auto batch = make_token_batch(extra, pad_id, device);
    out.tokens += batch.tokens;
    auto e = sequence_logprobs(policy, batch);
    out.extra_sum = e.sum;
    out.extra_count = e.count;
  }
  if (average) {
    out.policy = {out.chosen_sum / out.chosen_count.clamp_min(1), rejected_sum / rejected_count.clamp_min(1)};
  } else {
    out.policy = {out.chosen_sum, rejected_sum};
  }
  if (cached) {
    out.reference = *cached;
    return out;
  }
  torch::NoGradGuard ng;
  SequenceLogprobs ref;
  if (reference_net) {
    ref = pair_forward(*reference_net, pairs, pad_id);
  } else {
    TORCH_CHECK(policy->has_lora(), "dpo_forward: no reference (pass a reference network, a cache, or use LoRA)");
    LoraOff off(policy);
    ref = pair_forward(policy, pairs, pad_id);
  }
  auto rs = ref.sum.detach(), rc = ref.count;
  if (average) rs = rs / rc.clamp_min(1);
  out.reference = {rs.narrow(0, 0, B), rs.narrow(0, B, B)};
  return out;
}

PairTable pair_logprobs_of(CausalLm& net, const std::vector<const PreferencePair*>& pairs, int64_t pad_id,
                           int64_t batch_size) {
  const int64_t P = static_cast<int64_t>(pairs.size());
  PairTable t;
  t.chosen_sum = torch::zeros({P});
  t.chosen_count = torch::zeros({P});
  t.rejected_sum = torch::zeros({P});
  t.rejected_count = torch::zeros({P});
  if (P == 0) return t;
  // Length buckets: sort by the longer sequence so batches carry little padding.
  std::vector<int64_t> idx(P);
  std::iota(idx.begin(), idx.end(), 0);
  auto len = [&](int64_t i) {
    return pairs[i]->prompt.size() + std::max(pairs[i]->chosen.size(), pairs[i]->rejected.size());
  };
  std::stable_sort(idx.begin(), idx.end(), [&](int64_t a, int64_t b) { return len(a) < len(b); });
  torch::NoGradGuard ng;
  batch_size = std::max<int64_t>(1, batch_size);
  for (int64_t s = 0; s < P; s += batch_size) {
    const int64_t e = std::min(P, s + batch_size);
    std::vector<const PreferencePair*> chunk;
    for (int64_t i = s; i < e; ++i) chunk.push_back(pairs[idx[i]]);
    auto lp = pair_forward(net, chunk, pad_id);
    auto sum = lp.sum.to(torch::kCPU), count = lp.count.to(torch::kCPU);
    const int64_t b = e - s;
    auto rows = torch::tensor(std::vector<int64_t>(idx.begin() + s, idx.begin() + e), torch::kInt64);
    t.chosen_sum.index_put_({rows}, sum.narrow(0, 0, b));
    t.chosen_count.index_put_({rows}, count.narrow(0, 0, b));
    t.rejected_sum.index_put_({rows}, sum.narrow(0, b, b));
    t.rejected_count.index_put_({rows}, count.narrow(0, b, b));
  }
  return t;
}

namespace {
std::string table_bytes(const PairTable& t) {
  std::string s;
  for (const auto* x : {&t.chosen_sum, &t.chosen_count, &t.rejected_sum, &t.rejected_count}) {
    auto c = x->contiguous();
    s.append(reinterpret_cast<const char*>(c.data_ptr<float>()), c.numel() * sizeof(float));
  }
  return s;
}

PairTable table_from_bytes(const std::string& s, int64_t P) {
  TORCH_CHECK(static_cast<int64_t>(s.size()) == 4 * P * static_cast<int64_t>(sizeof(float)), "pair table size");
  PairTable t;
  torch::Tensor* parts[] = {&t.chosen_sum, &t.chosen_count, &t.rejected_sum, &t.rejected_count};
  for (int i = 0; i < 4; ++i) {
    *parts[i] = torch::empty({P});
    std::memcpy(parts[i]->data_ptr<float>(), s.data() + i * P * sizeof(float), P * sizeof(float));
  }
  return t;
}
}  // namespace

PairTable gathered_pair_logprobs(CausalLm& net, const std::vector<PreferencePair>& pairs, int64_t pad_id,
                                 int64_t batch_size) {
  auto& ctx = dist::context();
  const int64_t P = static_cast<int64_t>(pairs.size());
  auto [b, e] = dist::shard_range(P, ctx.rank(), ctx.world_size());
  std::vector<const PreferencePair*> mine;
  for (int64_t i = b; i < e; ++i) mine.push_back(&pairs[i]);
  PairTable local = pair_logprobs_of(net, mine, pad_id, batch_size);
  if (!ctx.distributed()) return local;
  auto parts = ctx.all_gather(table_bytes(local));
  std::vector<PairTable> tables;
  for (int r = 0; r < ctx.world_size(); ++r) {
    auto [rb, re] = dist::shard_range(P, r, ctx.world_size());
    tables.push_back(table_from_bytes(parts[r], re - rb));
  }
  PairTable t;
  auto cat = [&](auto member) {
    std::vector<torch::Tensor> v;
    for (auto& x : tables) v.push_back(x.*member);
    return torch::cat(v);
  };
  t.chosen_sum = cat(&PairTable::chosen_sum);
  t.chosen_count = cat(&PairTable::chosen_count);
  t.rejected_sum = cat(&PairTable::rejected_sum);
  t.rejected_count = cat(&PairTable::rejected_count);
  return t;
}

namespace {
constexpr const char* kRefCacheMagic = "atax-ref-logps-v2";
}  // namespace

PairTable cached_pair_logprobs(CausalLm& net, const std::string& model_hash, const std::vector<PreferencePair>& pairs,
                               int64_t pad_id, int64_t batch_size, const fs::path& cache_dir,
                               const std::string& settings, bool* hit) {
  Sha256 h;
  h.update(kRefCacheMagic).update("|").update(model_hash).update("|").update(settings).update("|");
  auto dev = net_device(net);
  h.update(dev.is_cpu() ? "cpu" : "cuda").update("|");
  auto params = net->parameters();
  h.update(params.empty() ? "" : std::string(c10::toString(params.front().scalar_type()))).update("|");
  for (const auto& p : pairs) {
    for (const auto* v : {&p.prompt, &p.chosen, &p.rejected}) {
      uint64_t n = v->size();
      h.update(&n, sizeof(n));
      h.update(v->data(), v->size() * sizeof(int32_t));
    }
  }
  const std::string key = h.hex_digest();
  const int64_t P = static_cast<int64_t>(pairs.size());
  fs::path file = cache_dir / ("ref_logps-" + key.substr(0, 32) + ".bin");
  // Only rank 0 reads and writes the cache; it hands a hit to the other ranks, so they all take
  // the same branch (the miss branch is a collective) even without a shared file system.
  auto& ctx = dist::context();
  std::string cached;  // the table's bytes on a hit, "" on a miss
  if (ctx.is_main() && fs::exists(file)) {
    // The file: "atax-ref-logps-v2\n" KEY "\n" {settings, model, pairs, bytes, sha256} "\n" then the
    // table. Anything that does not match (another key, a damaged or cut table) is recomputed.
    std::string problem;
    try {
      const std::string s = read_file(file);
      const std::string head = std::string(kRefCacheMagic) + "\n" + key + "\n";
      const size_t meta_end = s.find('\n', head.size());
      if (!starts_with(s, head) || meta_end == std::string::npos) {
        problem = "its header does not match these settings";
      } else {
        const json meta = json::parse(s.substr(head.size(), meta_end - head.size()));
        const std::string body = s.substr(meta_end + 1);
        if (meta.value("pairs", int64_t(-1)) != P || static_cast<int64_t>(body.size()) != 4 * P * int64_t(sizeof(float)))
          problem = fmt::format("it holds {} bytes, {} pairs need {}", body.size(), P, 4 * P * sizeof(float));
        else if (meta.value("sha256", std::string()) != sha256_hex(body))
          problem = "its checksum does not match its contents";
        else
          cached = body;
      }
    } catch (const std::exception& e) {
      problem = e.what();
    }
    if (cached.empty()) log_info("warning: the reference cache " + file.string() + " is not usable (" + problem +
                                 "); recomputing the reference log-probs");
  }
  if (ctx.distributed()) cached = ctx.broadcast_bytes(cached, 0);
  if (hit) *hit = !cached.empty();
  if (!cached.empty()) return table_from_bytes(cached, P);
  PairTable t = gathered_pair_logprobs(net, pairs, pad_id, batch_size);
  ctx.on_main("write the reference cache", [&] {
    try {
      const std::string body = table_bytes(t);
      const json meta = {{"settings", settings}, {"model", model_hash}, {"pairs", P},
                         {"bytes", body.size()}, {"sha256", sha256_hex(body)}};
      write_file_atomic(file, std::string(kRefCacheMagic) + "\n" + key + "\n" + meta.dump() + "\n" + body);
    } catch (const std::exception& e) {
      log_info(std::string("could not write the reference cache: ") + e.what());
    }
  });
  return t;
}

PairLogprobs table_rows(const PairTable& table, const std::vector<int64_t>& idx, bool average, torch::Device device) {
  auto rows = torch::tensor(idx, torch::kInt64);
  auto lp = table.logprobs(average);
  return {lp.chosen.index_select(0, rows).to(device), lp.rejected.index_select(0, rows).to(device)};
}

std::pair<double, double> nll_sums(CausalLm& net, const std::vector<TokenSequence>& seqs, int64_t begin, int64_t end,
                                   int64_t pad_id, int64_t batch_size) {
  torch::NoGradGuard ng;
  std::vector<int64_t> idx;
  for (int64_t i = begin; i < end; ++i) idx.push_back(i);
  std::stable_sort(idx.begin(), idx.end(), [&](int64_t a, int64_t b) { return seqs[a].ids.size() < seqs[b].ids.size(); });
  const auto device = net_device(net);
  double sum = 0, count = 0;
  batch_size = std::max<int64_t>(1, batch_size);
  for (size_t s = 0; s < idx.size(); s += batch_size) {
    std::vector<const TokenSequence*> b;
    for (size_t i = s; i < std::min(idx.size(), s + batch_size); ++i) b.push_back(&seqs[idx[i]]);
    auto lp = sequence_logprobs(net, make_token_batch(b, pad_id, device));
    sum -= lp.sum.sum().item<double>();
    count += lp.count.sum().item<double>();
  }
  return {sum, count};
}

}  // namespace train_detail

PairTable pair_logprobs(CausalLm& net, const std::vector<PreferencePair>& pairs, int64_t pad_id, int64_t batch_size) {
  std::vector<const PreferencePair*> ptrs;
  for (const auto& p : pairs) ptrs.push_back(&p);
  return pair_logprobs_of(net, ptrs, pad_id, batch_size);
}

double mean_nll(CausalLm& net, const std::vector<TokenSequence>& seqs, int64_t pad_id, int64_t batch_size) {
  auto [sum, count] = nll_sums(net, seqs, 0, static_cast<int64_t>(seqs.size()), pad_id, batch_size);
  return count > 0 ? sum / count : 0.0;
}

json evaluate_preferences(CausalLm& policy, const std::vector<PreferencePair>& pairs, const PairLogprobs& reference,
                          DpoLossType type, double beta, double label_smoothing, int64_t pad_id, int64_t batch_size) {
  if (pairs.empty()) return json::object();
  PairTable t = gathered_pair_logprobs(policy, pairs, pad_id, batch_size);
  auto pol = t.logprobs(type == DpoLossType::kIpo);
  auto terms = dpo_loss(pol, reference, type, beta, label_smoothing);
  auto margin = terms.rewards_chosen - terms.rewards_rejected;
  return {{"eval/loss", terms.losses.mean().item<double>()},
          {"eval/rewards/chosen", terms.rewards_chosen.mean().item<double>()},
          {"eval/rewards/rejected", terms.rewards_rejected.mean().item<double>()},
          {"eval/rewards/accuracies", (margin > 0).to(torch::kFloat64).mean().item<double>()},
          {"eval/rewards/margins", margin.mean().item<double>()},
          {"eval/logps/chosen", pol.chosen.mean().item<double>()},
          {"eval/logps/rejected", pol.rejected.mean().item<double>()},
          {"eval/pairs", static_cast<int64_t>(pairs.size())}};
}

DpoBatchOutput dpo_batch(CausalLm& policy, CausalLm* reference_net, const std::vector<const PreferencePair*>& pairs,
                         const PairLogprobs* cached_reference, DpoLossType type, double beta, double label_smoothing,
                         int64_t pad_id) {
  auto fwd = dpo_forward(policy, reference_net, pairs, {}, cached_reference, type == DpoLossType::kIpo, pad_id);
  DpoBatchOutput out;
  out.terms = dpo_loss(fwd.policy, fwd.reference, type, beta, label_smoothing);
  out.policy = fwd.policy;
  out.loss = out.terms.losses.mean();
  out.tokens = fwd.tokens;
  return out;
}

}  // namespace atax
