// bench_threads: which thread settings to use on this machine. Measures tokens/s of (a) a DPO-like
// training step (policy forward + backward + AdamW on chosen/rejected sequences, frozen reference
// forward, sigmoid DPO loss) and (b) a scoring forward pass (no grad, log-softmax, gathered
// log-probs), on a ~4M-parameter Llama-shaped atax::CausalLm, batch 16 x 256 tokens, for LibTorch
// intra-op threads {1, 2} x OpenBLAS threads {1, 2}, and with nothing set (both libraries' defaults).
// Each setting runs atax's fast kernels (oneDNN's sgemm for the products and attention, forward and
// backward, split over as many threads as OpenBLAS was given) and, with --plain, also LibTorch's own
// path (set_fast_kernels(false)): the "fast/plain" column is their ratio in the same rounds.
// --demo-model measures the demo's 0.87M-parameter model instead (C 128, L 4, H 4, Hkv 2, F 352,
// V 1024, tied embeddings).
//
// OpenBLAS sizes its pool from OPENBLAS_NUM_THREADS when the library loads, so every setting runs
// in a child process (this program re-executed with --child and that variable set); each child
// reports the thread counts it actually got. The settings are measured round-robin --repeats
// times so that load from other processes spreads over all of them; the table shows the median.
//
//   bench_threads [--repeats R] [--steps S] [--warmup W] [--batch B] [--seq T] [--plain] [--demo-model]
#include <dlfcn.h>
#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <fstream>
#include <iostream>
#include <map>
#include <sstream>

#include <fmt/format.h>

#include "model/attention.h"
#include "model/model.h"

using namespace atax;

namespace {

struct Args {
  int repeats = 3, steps = 4, warmup = 1, batch = 16, seq = 256;
  bool child = false;  // run one setting in this process
  int child_intra = 0;  // its intra-op threads (0 = LibTorch's default)
  bool plain = false;   // child: LibTorch's own path; parent: measure it beside the fast one
  bool demo_model = false;
};

// ~4.0M parameters: embeddings 2 x 2048 x 256 (untied) + 4 layers x (attention 196K + MLP 541K).
ModelConfig bench_config(bool demo_model) {
  if (demo_model)
    return ModelConfig::from_json(json{{"architectures", {"LlamaForCausalLM"}}, {"model_type", "llama"},
                                       {"vocab_size", 1024}, {"hidden_size", 128}, {"intermediate_size", 352},
                                       {"num_hidden_layers", 4}, {"num_attention_heads", 4},
                                       {"num_key_value_heads", 2}, {"max_position_embeddings", 512},
                                       {"rms_norm_eps", 1e-5}, {"tie_word_embeddings", true}});
  json cj = {{"architectures", {"LlamaForCausalLM"}}, {"model_type", "llama"}, {"vocab_size", 2048},
             {"hidden_size", 256}, {"intermediate_size", 704}, {"num_hidden_layers", 4},
             {"num_attention_heads", 8}, {"num_key_value_heads", 4}, {"max_position_embeddings", 512},
             {"rms_norm_eps", 1e-6}, {"tie_word_embeddings", false}};
  return ModelConfig::from_json(cj);
}

double median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  return v.empty() ? 0.0 : v[v.size() / 2];
}

// Log-prob of each next token summed over positions 1..T-1: (B,T) ids -> (B,).
torch::Tensor sequence_logprob(CausalLm& net, const torch::Tensor& ids) {
  auto logits = net->forward(ids.slice(1, 0, ids.size(1) - 1));  // (B,T-1,V)
  auto targets = ids.slice(1, 1).unsqueeze(-1);                   // (B,T-1,1)
  return torch::log_softmax(logits, -1).gather(2, targets).squeeze(-1).sum(1);
}

int openblas_threads() {
  using GetThreads = int (*)();
  auto* get = reinterpret_cast<GetThreads>(dlsym(RTLD_DEFAULT, "openblas_get_num_threads"));
  return get ? get() : -1;  // -1: the BLAS loaded is not OpenBLAS
}

std::string blas_library() {
  std::ifstream maps("/proc/self/maps");
  std::string line;
  while (std::getline(maps, line)) {
    auto pos = line.find('/');
    if (pos == std::string::npos) continue;
    std::string path = line.substr(pos);
    if (path.find("blas") != std::string::npos && path.find(".so") != std::string::npos) return path;
  }
  return "?";
}

// One setting in this process: prints one JSON line.
int run_child(const Args& a) {
  if (a.child_intra > 0) at::set_num_threads(a.child_intra);
  set_fast_kernels(!a.plain);
  torch::manual_seed(0);
  const ModelConfig cfg = bench_config(a.demo_model);
  auto policy = make_model(cfg, {}, nullptr, LoadOptions{"cpu"}, "bench-policy");
  auto ref = make_model(cfg, policy.net->hf_state_dict(), nullptr, LoadOptions{"cpu"}, "bench-ref");
  for (auto& p : policy.net->parameters()) p.set_requires_grad(true);
  for (auto& p : ref.net->parameters()) p.set_requires_grad(false);
  policy.net->train();
  torch::optim::AdamW opt(policy.net->parameters(), torch::optim::AdamWOptions(1e-5).weight_decay(0));
  // Rows 2i and 2i+1 are the chosen and rejected sequences of pair i.
  auto ids = torch::randint(1, cfg.vocab_size, {a.batch, a.seq}, torch::kLong);
  const double tokens = double(a.batch) * a.seq;

  std::vector<double> train_s, score_s;
  double loss_value = 0;
  for (int s = 0; s < a.warmup + a.steps; ++s) {
    const double t0 = now_seconds();
    opt.zero_grad();
    auto pi = sequence_logprob(policy.net, ids);  // (B,)
    torch::Tensor rf;
    {
      torch::NoGradGuard ng;
      rf = sequence_logprob(ref.net, ids);  // (B,)
    }
    auto d = (pi - rf).view({-1, 2});  // (B/2, 2): chosen, rejected
    auto loss = -torch::log_sigmoid(0.1 * (d.select(1, 0) - d.select(1, 1))).mean();
    loss.backward();
    opt.step();
    loss_value = loss.item<double>();
    if (s >= a.warmup) train_s.push_back(now_seconds() - t0);
  }
  {
    torch::NoGradGuard ng;
    policy.net->eval();
    for (int s = 0; s < a.warmup + a.steps; ++s) {
      const double t0 = now_seconds();
      auto lp = sequence_logprob(policy.net, ids);
      lp.sum().item<double>();
      if (s >= a.warmup) score_s.push_back(now_seconds() - t0);
    }
  }
  std::cout << json({{"intra", at::get_num_threads()},
                     {"blas", openblas_threads()},
                     {"blas_library", blas_library()},
                     {"params", policy.net->num_parameters()},
                     {"train_tokens_per_s", tokens / median(train_s)},
                     {"score_tokens_per_s", tokens / median(score_s)},
                     {"loss", loss_value}})
                   .dump()
            << std::endl;
  return 0;
}

std::string load_average() {
  std::ifstream f("/proc/loadavg");
  std::string a, b, c;
  f >> a >> b >> c;
  return a + " " + b + " " + c;
}

// Runs one setting in a child; intra = blas = 0 leaves both to their defaults (no variables set).
json run_setting(const Args& a, int intra, int blas, bool plain) {
  const std::string self = fs::read_symlink("/proc/self/exe").string();
  const std::string env = intra > 0 ? fmt::format("OPENBLAS_NUM_THREADS={} OMP_NUM_THREADS={} ", blas, intra)
                                    : "env -u OPENBLAS_NUM_THREADS -u OMP_NUM_THREADS ";
  const std::string cmd = fmt::format("{}{} --child {} --steps {} --warmup {} --batch {} --seq {}{}{}", env, self,
                                      intra, a.steps, a.warmup, a.batch, a.seq, plain ? " --plain" : "",
                                      a.demo_model ? " --demo-model" : "");
  FILE* p = popen(cmd.c_str(), "r");
  if (!p) throw Error("cannot run: " + cmd);
  std::string out;
  char buf[4096];
  while (size_t n = fread(buf, 1, sizeof(buf), p)) out.append(buf, n);
  const int rc = pclose(p);
  std::istringstream in(out);
  std::string line, last;
  while (std::getline(in, line))
    if (starts_with(trim(line), "{")) last = line;
  if (rc != 0 || last.empty()) throw Error(fmt::format("the child failed (exit {}): {}\n{}", rc, cmd, out));
  return json::parse(last);
}

}  // namespace

int main(int argc, char** argv) {
  Args a;
  for (int i = 1; i < argc; ++i) {
    const std::string k = argv[i];
    auto next = [&]() -> int {
      if (i + 1 >= argc) throw std::runtime_error("missing value for " + k);
      return std::stoi(argv[++i]);
    };
    if (k == "--repeats") a.repeats = next();
    else if (k == "--steps") a.steps = next();
    else if (k == "--warmup") a.warmup = next();
    else if (k == "--batch") a.batch = next();
    else if (k == "--seq") a.seq = next();
    else if (k == "--plain") a.plain = true;
    else if (k == "--demo-model") a.demo_model = true;
    else if (k == "--child") {
      a.child = true;
      a.child_intra = next();
    }
    else {
      std::cerr << "usage: bench_threads [--repeats R] [--steps S] [--warmup W] [--batch B] [--seq T] [--plain] "
                   "[--demo-model]\n";
      return 2;
    }
  }
  if (a.batch < 2 || a.batch % 2 || a.seq < 2 || a.steps < 1 || a.repeats < 1) {
    std::cerr << "bench_threads: --batch must be even and >= 2, --seq >= 2, --steps and --repeats >= 1\n";
    return 2;
  }
  try {
    if (a.child) return run_child(a);

    // {0, 0}: what a process gets with nothing set (LibTorch's and OpenBLAS's own defaults).
    const std::vector<std::pair<int, int>> settings = {{1, 1}, {1, 2}, {2, 1}, {2, 2}, {0, 0}};
    std::map<std::pair<int, int>, std::vector<double>> train, score, train_plain, score_plain;
    std::map<std::pair<int, int>, json> seen;
    const std::string load_before = load_average();
    for (int r = 0; r < a.repeats; ++r)
      for (const auto& s : settings) {
        json j = run_setting(a, s.first, s.second, false);
        train[s].push_back(j["train_tokens_per_s"].get<double>());
        score[s].push_back(j["score_tokens_per_s"].get<double>());
        seen[s] = j;
        if (a.plain) {
          json jp = run_setting(a, s.first, s.second, true);
          train_plain[s].push_back(jp["train_tokens_per_s"].get<double>());
          score_plain[s].push_back(jp["score_tokens_per_s"].get<double>());
        }
      }
    const json& any = seen.begin()->second;
    std::cout << fmt::format("bench_threads: device cpu, {} cores online; model {:.2f}M parameters (Llama: {}); batch "
                             "{} x {} tokens; BLAS {}\n",
                             sysconf(_SC_NPROCESSORS_ONLN), any["params"].get<double>() / 1e6,
                             a.demo_model ? "C 128, L 4, H 4, Hkv 2, F 352, V 1024, tied"
                                          : "C 256, L 4, H 8, Hkv 4, F 704, V 2048",
                             a.batch, a.seq,
                             any["blas_library"].get<std::string>());
    std::cout << fmt::format("median over {} rounds (settings round-robin) of the median of {} steps after {} warm-up; "
                             "load average before {}, after {}\n",
                             a.repeats, a.steps, a.warmup, load_before, load_average());
    std::cout << "train = DPO-like step (policy fwd+bwd+AdamW, reference fwd); score = no-grad forward + log-probs\n\n";
    std::cout << fmt::format("{:>9} {:>9} {:>15} {:>9} {:>15} {:>9} {:>12} {:>12}   {}\n", "intra-op", "OpenBLAS",
                             "train tok/s", "vs 1x1", "score tok/s", "vs 1x1", "train f/p", "score f/p",
                             "all rounds (train | score)");
    const double base_train = median(train[{1, 1}]), base_score = median(score[{1, 1}]);
    std::pair<int, int> best_train = settings[0], best_score = settings[0];
    for (const auto& s : settings) {
      const double t = median(train[s]), c = median(score[s]);
      if (s.first > 0 && t > median(train[best_train])) best_train = s;
      if (s.first > 0 && c > median(score[best_score])) best_score = s;
      std::string rounds;
      for (double x : train[s]) rounds += fmt::format("{:.0f} ", x);
      rounds += "| ";
      for (double x : score[s]) rounds += fmt::format("{:.0f} ", x);
      // The thread counts the child actually ran with (OpenBLAS -1 = another BLAS is loaded).
      const std::string tag = s.first == 0 ? " (defaults)" : "";
      const std::string fp_train = a.plain ? fmt::format("{:.2f}x", t / median(train_plain[s])) : "-";
      const std::string fp_score = a.plain ? fmt::format("{:.2f}x", c / median(score_plain[s])) : "-";
      std::cout << fmt::format("{:>9} {:>9} {:>15.0f} {:>8.2f}x {:>15.0f} {:>8.2f}x {:>12} {:>12}   {}{}\n",
                               seen[s]["intra"].get<int>(), seen[s]["blas"].get<int>(), t, t / base_train, c,
                               c / base_score, fp_train, fp_score, rounds, tag);
    }
    std::cout << fmt::format("\nbest for training: intra-op {} x OpenBLAS {} ({:.0f} tok/s); best for scoring: intra-op "
                             "{} x OpenBLAS {} ({:.0f} tok/s)\n",
                             best_train.first, best_train.second, median(train[best_train]), best_score.first,
                             best_score.second, median(score[best_score]));
  } catch (const std::exception& e) {
    std::cerr << "bench_threads: " << e.what() << "\n";
    return 1;
  }
  return 0;
}
