// Scoring (prefill) and generation throughput of a ~25M-parameter Llama-shaped model, each with
// the ratio to the same computation in eager Python PyTorch (bench/model_ref.py, run by this
// program through /usr/bin/python3), and KV-cache generation against recomputing the sequence.
//
// Usage: bench_model_throughput [threads=1]
#include <cstdio>
#include <iostream>

#include <fmt/format.h>

#include "model/model.h"

using namespace atax;

namespace {
template <class F>
double time_it(F&& fn, int reps) {
  fn();  // warm-up
  double t0 = now_seconds();
  for (int i = 0; i < reps; ++i) fn();
  return (now_seconds() - t0) / reps;
}

json run_python(const std::string& args) {
  std::string cmd = "/usr/bin/python3 " + std::string(ATAX_SOURCE_DIR) + "/bench/model_ref.py " + args;
  FILE* p = popen(cmd.c_str(), "r");
  if (!p) return nullptr;
  std::string out;
  char buf[4096];
  while (size_t n = fread(buf, 1, sizeof(buf), p)) out.append(buf, n);
  if (pclose(p) != 0) return nullptr;
  return json::parse(out, nullptr, false);
}
}  // namespace

int main(int argc, char** argv) {
  atax::tune_allocator();  // as the atax binary does (src/core/core.h)
  int threads = argc > 1 ? std::atoi(argv[1]) : 1;
  at::set_num_threads(threads);
  const int64_t C = 512, L = 7, H = 8, Hkv = 4, F = 1408, V = 4096, B = 8, T = 256, GP = 128, GN = 128;
  json cj = {{"architectures", {"LlamaForCausalLM"}}, {"vocab_size", V}, {"hidden_size", C},
             {"intermediate_size", F}, {"num_hidden_layers", L}, {"num_attention_heads", H},
             {"num_key_value_heads", Hkv}, {"max_position_embeddings", 1024}, {"rms_norm_eps", 1e-6}};
  auto cfg = ModelConfig::from_json(cj);
  torch::manual_seed(0);
  auto m = make_model(cfg, {}, nullptr, LoadOptions{"cpu"}, "bench");
  torch::NoGradGuard ng;
  std::cout << fmt::format("device cpu, intra-op threads {}, model {:.1f}M parameters (C={} L={} H={} Hkv={} F={} V={})\n",
                           at::get_num_threads(), m.net->num_parameters() / 1e6, C, L, H, Hkv, F, V);
  auto ids = torch::randint(0, V, {B, T}, torch::kLong);
  double score_s = time_it([&] { torch::log_softmax(m.net->forward(ids), -1); }, 3);
  double score_tps = B * T / score_s;

  auto prompt = torch::randint(0, V, {1, GP}, torch::kLong);
  double gen_s = time_it([&] {
    KvCache cache;
    auto logits = m.net->forward(prompt, {}, &cache).select(1, GP - 1);
    for (int64_t i = 0; i < GN - 1; ++i) logits = m.net->forward(logits.argmax(-1, true), {}, &cache).select(1, 0);
  }, 2);
  double recompute_s = time_it([&] {
    auto seq = prompt;
    for (int64_t i = 0; i < GN; ++i) {
      auto next = m.net->forward(seq).select(1, seq.size(1) - 1).argmax(-1, true);
      seq = torch::cat({seq, next}, 1);
    }
  }, 1);
  double gen_tps = GN / gen_s, recompute_tps = GN / recompute_s;

  json py = run_python(fmt::format("{} {} {} {} {} {} {} {} {} {} {}", C, L, H, Hkv, F, V, B, T, GP, GN, threads));
  std::cout << fmt::format("scoring (B={} T={}):       atax {:9.0f} tokens/s", B, T, score_tps);
  if (py.is_object()) std::cout << fmt::format("   python eager {:9.0f} tokens/s   ratio {:.2f}x", py["score_tokens_per_s"].get<double>(), score_tps / py["score_tokens_per_s"].get<double>());
  std::cout << "\n";
  std::cout << fmt::format("generation (KV cache, prompt {} + {} new): atax {:7.1f} tokens/s", GP, GN, gen_tps);
  if (py.is_object()) std::cout << fmt::format("   python eager {:7.1f} tokens/s   ratio {:.2f}x", py["gen_tokens_per_s"].get<double>(), gen_tps / py["gen_tokens_per_s"].get<double>());
  std::cout << "\n";
  std::cout << fmt::format("generation without cache (recompute): {:7.1f} tokens/s   KV-cache speed-up {:.2f}x\n",
                           recompute_tps, gen_tps / recompute_tps);
  if (!py.is_object()) std::cout << "python reference unavailable (needs /usr/bin/python3 with torch)\n";
  return 0;
}
