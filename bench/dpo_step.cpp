// bench_dpo_step: tokens/s and peak memory of one DPO training step (policy forward of chosen and
// rejected in one batch, reference log-probs, sigmoid loss, backward, AdamW) on a ~25M-parameter
// Llama-shaped model, with a live frozen reference and with precomputed reference log-probs,
// against the same step in eager Python PyTorch (bench/dpo_step_ref.py, run by this program
// through /usr/bin/python3). Every variant runs in its own process, so its VmHWM is its own.
//
//   bench_dpo_step [--threads N] [--steps S] [--pairs B] [--prompt-len P] [--response-len R] [--no-python]
//                  [--thread-sweep]
#include <cstdio>
#include <fstream>
#include <iostream>
#include <sstream>

#include <fmt/format.h>

#include "train/loop.h"
#include "train/train.h"

using namespace atax;

namespace {

struct Args {
  int threads = 0, steps = 5, warmup = 1, pairs = 4, prompt_len = 64, response_len = 64;
  bool python = true, thread_sweep = false;
  std::string variant, config, batch;
};

json model_config() {  // ~25.4M parameters
  return {{"architectures", {"LlamaForCausalLM"}},
          {"model_type", "llama"},
          {"vocab_size", 8192},
          {"hidden_size", 512},
          {"intermediate_size", 1536},
          {"num_hidden_layers", 5},
          {"num_attention_heads", 8},
          {"num_key_value_heads", 8},
          {"max_position_embeddings", 512},
          {"rms_norm_eps", 1e-6},
          {"tie_word_embeddings", false}};
}

double peak_rss_mb() {
  std::ifstream f("/proc/self/status");
  std::string line;
  while (std::getline(f, line))
    if (starts_with(line, "VmHWM:")) return std::stod(line.substr(6)) / 1024.0;
  return 0;
}

// One variant in this process; prints a JSON line.
int run_variant(const Args& a) {
  configure_threads(a.threads);  // as the trainers do: intra-op and BLAS threads
  json cfg = read_json(a.config), b = read_json(a.batch);
  std::vector<PreferencePair> pairs;
  for (size_t i = 0; i < b["prompts"].size(); ++i) {
    PreferencePair p;
    p.prompt = b["prompts"][i].get<std::vector<int32_t>>();
    p.chosen = b["chosen"][i].get<std::vector<int32_t>>();
    p.rejected = b["rejected"][i].get<std::vector<int32_t>>();
    pairs.push_back(std::move(p));
  }
  std::vector<const PreferencePair*> ptrs;
  int64_t tokens = 0;
  for (const auto& p : pairs) {
    ptrs.push_back(&p);
    tokens += static_cast<int64_t>(2 * p.prompt.size() + p.chosen.size() + p.rejected.size());
  }
  torch::manual_seed(0);
  auto mc = ModelConfig::from_json(cfg);
  LoadOptions lo{"cpu"};
  auto policy = make_model(mc, {}, nullptr, lo, "bench");
  for (auto& p : policy.net->parameters()) p.set_requires_grad(true);
  std::optional<LoadedModel> ref;
  std::optional<PairLogprobs> cached;
  if (a.variant == "live") {
    ref = make_model(mc, policy.net->hf_state_dict(), nullptr, lo, "bench-ref");
    for (auto& p : ref->net->parameters()) p.set_requires_grad(false);
  } else {
    cached = pair_logprobs(policy.net, pairs, 0, static_cast<int64_t>(pairs.size())).logprobs(false);
  }
  torch::optim::AdamW opt(policy.net->parameters(), torch::optim::AdamWOptions(1e-6).weight_decay(0));
  std::vector<double> times;
  double loss = 0;
  for (int s = 0; s < a.warmup + a.steps; ++s) {
    double t0 = now_seconds();
    for (auto& p : policy.net->parameters()) p.mutable_grad().reset();
    auto out = dpo_batch(policy.net, ref ? &ref->net : nullptr, ptrs, cached ? &*cached : nullptr,
                         DpoLossType::kSigmoid, 0.1, 0, 0);
    out.loss.backward();
    opt.step();
    loss = out.loss.item<double>();
    if (s >= a.warmup) times.push_back(now_seconds() - t0);
  }
  std::sort(times.begin(), times.end());
  double step_s = times[times.size() / 2];
  std::cout << json({{"impl", "c++"},
                     {"variant", a.variant},
                     {"threads", at::get_num_threads()},
                     {"tokens", tokens},
                     {"step_s", step_s},
                     {"tokens_per_s", tokens / step_s},
                     {"peak_rss_mb", peak_rss_mb()},
                     {"loss", loss},
                     {"params", policy.net->num_parameters()}})
                   .dump()
            << std::endl;
  return 0;
}

json run_child(const std::string& cmd) {
  FILE* p = popen(cmd.c_str(), "r");
  if (!p) throw Error("cannot run: " + cmd);
  std::string out;
  char buf[4096];
  while (size_t n = fread(buf, 1, sizeof(buf), p)) out.append(buf, n);
  int rc = pclose(p);
  std::istringstream in(out);
  std::string line, last;
  while (std::getline(in, line))
    if (starts_with(trim(line), "{")) last = line;
  if (rc != 0 || last.empty()) throw Error("the benchmark child failed (exit " + std::to_string(rc) + "): " + cmd);
  return json::parse(last);
}

}  // namespace

int main(int argc, char** argv) {
  atax::tune_allocator();  // as the atax binary does (src/core/core.h)
  Args a;
  for (int i = 1; i < argc; ++i) {
    std::string k = argv[i];
    auto next = [&]() -> std::string {
      if (i + 1 >= argc) throw std::runtime_error("missing value for " + k);
      return argv[++i];
    };
    if (k == "--threads") a.threads = std::stoi(next());
    else if (k == "--steps") a.steps = std::stoi(next());
    else if (k == "--warmup") a.warmup = std::stoi(next());
    else if (k == "--pairs") a.pairs = std::stoi(next());
    else if (k == "--prompt-len") a.prompt_len = std::stoi(next());
    else if (k == "--response-len") a.response_len = std::stoi(next());
    else if (k == "--no-python") a.python = false;
    else if (k == "--thread-sweep") a.thread_sweep = true;
    else if (k == "--variant") a.variant = next();
    else if (k == "--config") a.config = next();
    else if (k == "--batch") a.batch = next();
    else {
      std::cerr << "usage: bench_dpo_step [--threads N] [--steps S] [--pairs B] [--prompt-len P] "
                   "[--response-len R] [--no-python] [--thread-sweep]\n";
      return 2;
    }
  }
  try {
    if (!a.variant.empty()) return run_variant(a);
    // The shared inputs: model config and one batch of token ids.
    fs::path dir = fs::temp_directory_path() / ("atax_bench_dpo_" + std::to_string(::getpid()));
    fs::create_directories(dir);
    write_json_atomic(dir / "config.json", model_config());
    Rng rng(7);
    json batch = {{"prompts", json::array()}, {"chosen", json::array()}, {"rejected", json::array()}};
    auto ids = [&](int n) {
      std::vector<int32_t> v(n);
      for (auto& x : v) x = static_cast<int32_t>(rng.range(1, 8191));
      return v;
    };
    for (int i = 0; i < a.pairs; ++i) {
      batch["prompts"].push_back(ids(a.prompt_len));
      batch["chosen"].push_back(ids(a.response_len));
      batch["rejected"].push_back(ids(a.response_len - i % 7));  // uneven lengths, as in real data
    }
    write_json_atomic(dir / "batch.json", batch);
    std::string self = fs::read_symlink("/proc/self/exe").string();
    std::string common = fmt::format("--config {} --batch {} --steps {} --warmup {}", (dir / "config.json").string(),
                                     (dir / "batch.json").string(), a.steps, a.warmup);
    std::vector<int> thread_settings = {a.threads};
    if (a.thread_sweep) thread_settings = {1, 2};
    std::cout << fmt::format("DPO step, Llama-shaped model ({} layers, hidden 512, vocab 8192), {} pairs x ({} prompt "
                             "+ {} response tokens), tokens/s = pair tokens (prompt counted for chosen and rejected); device cpu; median of {} steps\n",
                             5, a.pairs, a.prompt_len, a.response_len, a.steps);
    std::cout << "python: eager PyTorch as TRL computes it (full (N,T,V) logits); c++: atax's trainer step (prompt "
                 "forwarded once for chosen and rejected, head only at response positions)\n";
    std::cout << fmt::format("{:<8} {:<11} {:>7} {:>11} {:>9} {:>12} {:>10}\n", "impl", "reference", "threads",
                             "tokens/s", "step s", "peak RSS MB", "vs python");
    for (int th : thread_settings) {
      json py[2];
      for (int v = 0; v < 2; ++v) {
        std::string variant = v == 0 ? "live" : "precompute";
        if (a.python) {
          // The same BLAS threads as atax uses (train's setup: one unless --threads says more).
          py[v] = run_child(fmt::format("OPENBLAS_NUM_THREADS={} /usr/bin/python3 {}/bench/dpo_step_ref.py {} --variant {} "
                                        "--threads {}",
                                        th > 0 ? th : 1, ATAX_SOURCE_DIR, common, variant, th));
        }
      }
      for (int v = 0; v < 2; ++v) {
        std::string variant = v == 0 ? "live" : "precompute";
        json r = run_child(fmt::format("{} {} --variant {} --threads {}", self, common, variant, th));
        auto row = [&](const json& x, const std::string& ratio) {
          std::cout << fmt::format("{:<8} {:<11} {:>7} {:>11.0f} {:>9.3f} {:>12.0f} {:>10}\n", x["impl"].get<std::string>(),
                                   variant, x["threads"].get<int>(), x["tokens_per_s"].get<double>(),
                                   x["step_s"].get<double>(), x["peak_rss_mb"].get<double>(), ratio);
        };
        if (a.python) {
          row(py[v], "1.00x");
          row(r, fmt::format("{:.2f}x", r["tokens_per_s"].get<double>() / py[v]["tokens_per_s"].get<double>()));
          if (std::abs(r["loss"].get<double>() - py[v]["loss"].get<double>()) > 1e-3)
            std::cout << fmt::format("  (losses differ: c++ {:.6f}, python {:.6f}; the models' random inits differ, "
                                     "the step's work does not)\n",
                                     r["loss"].get<double>(), py[v]["loss"].get<double>());
        } else {
          row(r, "-");
        }
      }
    }
    fs::remove_all(dir);
  } catch (const std::exception& e) {
    std::cerr << "bench_dpo_step: " << e.what() << "\n";
    return 1;
  }
  return 0;
}
