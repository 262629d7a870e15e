// Greedy generation with the KV cache by atax and by llama.cpp on the same GGUF file (F32
// weights), one stream and several at once, each run a separate process (fork), interleaved,
// medians of --reps:
//   one stream: atax's HfModel::generate_tokens from BOS, --n-gen new tokens (one forward pass per
//     token, the first on BOS), vs `llama-bench -p 0 -n N` (tg: N decodes of one token from an
//     empty cache), tokens per second;
//   --streams B: atax's generate_tokens on B prompts of --prompt random tokens, --n-gen new tokens
//     each, the generation phase timed as (whole call) - (the call with 1 new token: prefill and
//     its argmax), vs `llama-batched-bench -npp P -ntg N -npl B` (S_TG: B·N tokens over the N batched
//     decodes after the prompts), tokens per second over all streams.
// Both time the work after loading, in process. The ratio is atax / llama.cpp (>= 1: atax as fast).
//
// Usage: bench_generate_vs_llamacpp --gguf MODEL.gguf [--llama-cpp DIR] [--threads 2] [--reps 3]
//        [--n-gen 128] [--prompt 128] [--streams 8] [--weights f32|bf16|q8_0] [--llama-gguf FILE.gguf]
// --weights stores atax's weights in that format (WeightFormat, model.h); --llama-gguf gives
// llama.cpp another file of the same model, e.g. the GGUF quantized to Q8_0 or BF16 by
// llama-quantize, so that both run the same format (default: --gguf).
// DIR (or env ATAX_LLAMA_CPP) is llama.cpp's build/bin holding llama-bench and llama-batched-bench,
// built outside the repository (bench/build_llamacpp.sh SRC prints it); without it only atax is
// measured. Make the GGUF from a HF folder with bench/export_gguf.py.
#include <fcntl.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cmath>
#include <fstream>
#include <iostream>

#include <fmt/format.h>

#include "gguf/gguf.h"
#include "fork_run.h"
#include "model/model.h"

using namespace atax;

namespace {

// Runs `child` in a forked process; true when it exits with status 0.
template <class F>
bool in_child(F&& child) {
  return bench::run_forked(std::forward<F>(child)).ok;
}

// Runs program `argv[0]` with stdout and stderr into `log`; true on exit status 0.
bool run_logged(const std::vector<std::string>& argv, const std::string& log) {
  return in_child([&] {
    int fd = open(log.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
    dup2(fd, 1);
    dup2(fd, 2);
    std::vector<char*> args;
    for (const auto& a : argv) args.push_back(const_cast<char*>(a.c_str()));
    args.push_back(nullptr);
    execv(args[0], args.data());
    return 127;
  });
}

// The number after `"key": ` on the last line of `log` holding it (llama.cpp's jsonl), or NaN.
double jsonl_number(const std::string& log, const std::string& key) {
  const std::string text = read_file(log), needle = "\"" + key + "\": ";
  size_t at = text.rfind(needle);
  return at == std::string::npos ? std::nan("") : std::atof(text.c_str() + at + needle.size());
}

using bench::median;

std::string ratio(double a, double b) { return std::isnan(a) || std::isnan(b) ? "-" : fmt::format("{:.2f}x", a / b); }

}  // namespace

int main(int argc, char** argv) {
  std::string gguf_path, llama_dir, llama_gguf;
  WeightFormat weights = WeightFormat::kF32;
  int threads = 2, reps = 3;
  int64_t n_gen = 128, n_prompt = 128, streams = 8;
  if (const char* e = std::getenv("ATAX_LLAMA_CPP")) llama_dir = e;
  for (int i = 1; i + 1 < argc; i += 2) {
    std::string a = argv[i], v = argv[i + 1];
    if (a == "--gguf") gguf_path = v;
    else if (a == "--llama-cpp") llama_dir = v;
    else if (a == "--threads") threads = std::stoi(v);
    else if (a == "--reps") reps = std::stoi(v);
    else if (a == "--n-gen") n_gen = std::stoll(v);
    else if (a == "--prompt") n_prompt = std::stoll(v);
    else if (a == "--streams") streams = std::stoll(v);
    else if (a == "--weights") weights = parse_weight_format(v);
    else if (a == "--llama-gguf") llama_gguf = v;
    else {
      std::cerr << "unknown option " << a << "\n";
      return 2;
    }
  }
  if (gguf_path.empty() || n_gen < 2 || n_prompt < 1 || streams < 1) {
    std::cerr << "usage: bench_generate_vs_llamacpp --gguf MODEL.gguf [--llama-cpp DIR] [--threads 2] [--reps 3] "
                 "[--n-gen 128] [--prompt 128] [--streams 8] [--weights f32|bf16|q8_0] [--llama-gguf FILE.gguf]\n";
    return 2;
  }
  if (llama_gguf.empty()) llama_gguf = gguf_path;
  std::string bench = llama_dir.empty() ? "" : llama_dir + "/llama-bench";
  std::string batched = llama_dir.empty() ? "" : llama_dir + "/llama-batched-bench";
  if (bench.empty() || access(bench.c_str(), X_OK) != 0 || access(batched.c_str(), X_OK) != 0) {
    std::cout << "llama.cpp not found (pass --llama-cpp DIR or ATAX_LLAMA_CPP=DIR, DIR holding llama-bench and "
                 "llama-batched-bench built from github.com/ggerganov/llama.cpp outside this repository: "
                 "bench/build_llamacpp.sh SRC); measuring atax only\n";
    bench.clear();
  }
  register_gguf_loader();
  const std::string tmp = fmt::format("/tmp/bench_generate_vs_llamacpp.{}", getpid());
  const std::string t = std::to_string(threads);
  std::cout << fmt::format("weights {} (llama.cpp: {})\n", weight_format_name(weights), llama_gguf);
  std::cout << fmt::format("model {}, {} threads, {} reps, fork per run, greedy, {} new tokens; {} streams of {}-token "
                           "prompts\n",
                           gguf_path, threads, reps, n_gen, streams, n_prompt);
  std::vector<double> a1, l1, ab, lb;
  for (int r = 0; r < reps; ++r) {
    // atax: one stream from BOS, then `streams` streams of random prompts; tokens/s into tmp.atax.
    bool ok = in_child([&] {
      configure_threads(threads);
      InferenceOptions io;
      io.batch_size = streams;
      io.max_length = n_prompt + n_gen + 1;
      LoadOptions lo{"cpu"};
      lo.weights = weights;
      HfModel m(load_model(gguf_path, lo), io);
      const int64_t V = m.model().config.vocab_size;
      const int64_t bos = m.tokenizer().bos_id().value_or(1);
      GenerateRequest g;
      g.max_new_tokens = 8;
      m.generate_tokens({{bos}}, g);  // warm-up (llama-bench warms up too)
      g.max_new_tokens = n_gen;
      double t0 = now_seconds();
      auto one = m.generate_tokens({{bos}}, g);
      double t1 = now_seconds();
      const auto n1 = static_cast<int64_t>(one[0].size());
      // Seeded random prompts of ordinary tokens (ids 3.., past <unk> <s> </s>).
      Rng rng(42);
      std::vector<std::vector<int64_t>> prompts(streams);
      for (auto& p : prompts)
        for (int64_t i = 0; i < n_prompt; ++i) p.push_back(rng.range(3, V - 1));
      GenerateRequest first = g;
      first.max_new_tokens = 1;
      std::vector<double> prefill;
      double gen = 0;
      int64_t steps = 0;
      for (int k = 0; k < 2; ++k) {
        double s0 = now_seconds();
        m.generate_tokens(prompts, first);
        double s1 = now_seconds();
        auto many = m.generate_tokens(prompts, g);
        double s2 = now_seconds();
        prefill.push_back(s1 - s0);
        gen = k == 0 ? s2 - s1 : std::min(gen, s2 - s1);
        steps = 0;
        for (const auto& o : many) steps = std::max<int64_t>(steps, static_cast<int64_t>(o.size()));
      }
      const double tg_time = gen - *std::min_element(prefill.begin(), prefill.end());
      std::cerr << fmt::format("atax: one stream {} tokens in {:.3f} s; {} streams: prefill {:.3f} s, generation {:.3f} s "
                               "for {} steps; {}\n",
                               n1, t1 - t0, streams, *std::min_element(prefill.begin(), prefill.end()), tg_time,
                               steps - 1, thread_summary());
      if (n1 < n_gen || steps < n_gen)
        std::cerr << "  (!) a stream stopped at EOS before --n-gen tokens; rates use the tokens made\n";
      std::ofstream(tmp + ".atax") << fmt::format("{:.17g} {:.17g}\n", static_cast<double>(n1) / (t1 - t0),
                                                  static_cast<double>(streams * (steps - 1)) / tg_time);
      return 0;
    });
    if (!ok) return 1;
    {
      std::ifstream in(tmp + ".atax");
      double x = 0, y = 0;
      in >> x >> y;
      a1.push_back(x);
      ab.push_back(y);
    }
    if (bench.empty()) continue;
    const std::string log = tmp + ".llama.log";
    if (run_logged({bench, "-m", llama_gguf, "-p", "0", "-n", std::to_string(n_gen), "-t", t, "-r", "1", "-o", "jsonl"},
                   log))
      l1.push_back(jsonl_number(log, "avg_ts"));
    else
      std::cerr << "llama-bench failed: see " << log << "\n";
    const std::string ctx = std::to_string(streams * (n_prompt + n_gen));
    if (run_logged({batched, "-m", llama_gguf, "-c", ctx, "-b", "2048", "-npp", std::to_string(n_prompt), "-ntg",
                    std::to_string(n_gen), "-npl", std::to_string(streams), "-t", t, "--output-format", "jsonl"},
                   log))
      lb.push_back(jsonl_number(log, "speed_tg"));
    else
      std::cerr << "llama-batched-bench failed: see " << log << "\n";
    std::cerr << fmt::format("rep {}: atax {:.1f} / {:.1f} t/s, llama.cpp {:.1f} / {:.1f} t/s\n", r + 1, a1.back(),
                             ab.back(), l1.empty() ? NAN : l1.back(), lb.empty() ? NAN : lb.back());
  }
  std::remove((tmp + ".atax").c_str());
  std::remove((tmp + ".llama.log").c_str());
  const double ma1 = median(a1), mab = median(ab), ml1 = median(l1), mlb = median(lb);
  auto ts = [](double v) { return std::isnan(v) ? std::string("-") : fmt::format("{:.1f}", v); };
  std::cout << "| work | atax t/s | llama.cpp t/s | ratio |\n|---|---|---|---|\n";
  std::cout << fmt::format("| 1 stream, {} new tokens (llama-bench tg{}) | {} | {} | {} |\n", n_gen, n_gen, ts(ma1),
                           ts(ml1), ratio(ma1, ml1));
  std::cout << fmt::format("| {} streams, {} + {} tokens (llama-batched-bench S_TG) | {} | {} | {} |\n", streams,
                           n_prompt, n_gen, ts(mab), ts(mlb), ratio(mab, mlb));
  std::cout << "ratio = atax tokens/s / llama.cpp tokens/s (medians of the interleaved runs; >= 1: atax as fast)\n";
  return 0;
}
