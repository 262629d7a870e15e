// Rolling scoring (perplexity) of one text by atax and by llama.cpp's llama-perplexity on the same
// GGUF file (F32 weights, same vocabulary), at several window lengths, each run a separate process
// (fork; whole-process wall time and peak RSS from wait4), interleaved, medians of --reps.
// atax scores exactly llama-perplexity's windows (the text's tokens with BOS in chunks of the
// window length, the first token of each chunk replaced by BOS, the second half of each chunk's
// predictions scored) through HfModel::score_tokens, the path loglikelihood and
// loglikelihood_rolling use; so both do the same work and their perplexities must agree.
// Unless --plain 0, atax also runs with its fast inference kernels off (LibTorch's own products,
// attention and log_softmax: the path before them), for the ratio of the two; --fast 0 measures
// that plain path in the main columns (the figures before the fast kernels).
//
// Usage: bench_score_vs_llamacpp --gguf MODEL.gguf --text TEXT.txt [--llama-cpp DIR] [--ctx 256,2048]
//        [--threads 2] [--reps 3] [--plain 1] [--fast 1] [--weights f32|bf16|q8_0] [--llama-gguf FILE.gguf]
// --weights stores atax's weights in that format (WeightFormat, model.h); --llama-gguf gives
// llama-perplexity another file of the same model, e.g. the GGUF quantized to Q8_0 or BF16 by
// llama.cpp's llama-quantize, so that both run the same format (default: --gguf).
// DIR (or env ATAX_LLAMA_CPP) is llama.cpp's build/bin holding llama-perplexity, built outside the
// repository (bench/build_llamacpp.sh SRC prints it); without it only atax is measured.
// Make the GGUF from a HF folder with bench/export_gguf.py.
#include <fcntl.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cmath>
#include <fstream>
#include <iostream>

#include <fmt/format.h>

#include "gguf/gguf.h"
#include "model/attention.h"
#include "fork_run.h"
#include "model/model.h"

using namespace atax;

namespace {
using bench::median;
using Run = bench::ForkRun;

template <class F>
Run in_child(F&& child) {
  return bench::run_forked(std::forward<F>(child));
}

// llama-perplexity's windows over `tokens` (BOS first): chunk c is tokens[c·n, (c+1)·n) with its
// first token replaced by BOS; the predictions of its tokens n/2 + 1 .. n - 1 are scored.
std::vector<std::pair<std::vector<int64_t>, std::vector<int64_t>>> llama_cpp_windows(const std::vector<int32_t>& tokens,
                                                                                    int64_t n, int64_t bos) {
  std::vector<std::pair<std::vector<int64_t>, std::vector<int64_t>>> pairs;
  const int64_t first = n / 2;
  for (int64_t c = 0; (c + 1) * n <= static_cast<int64_t>(tokens.size()); ++c) {
    std::vector<int64_t> w(tokens.begin() + c * n, tokens.begin() + (c + 1) * n);
    w[0] = bos;
    pairs.emplace_back(std::vector<int64_t>(w.begin(), w.begin() + first + 1),
                       std::vector<int64_t>(w.begin() + first + 1, w.end()));
  }
  return pairs;
}

// This process's peak resident memory so far (VmHWM), MB.
double peak_rss_mb() {
  rusage ru{};
  getrusage(RUSAGE_SELF, &ru);
  return static_cast<double>(ru.ru_maxrss) / 1024.0;
}

// The number after "Final estimate: PPL = " in llama-perplexity's log, or NaN.
double llama_cpp_ppl(const std::string& log_path) {
  std::string log = read_file(log_path);
  const std::string key = "Final estimate: PPL = ";
  size_t at = log.rfind(key);
  return at == std::string::npos ? std::nan("") : std::atof(log.c_str() + at + key.size());
}
}  // namespace

int main(int argc, char** argv) {
  std::string gguf_path, text_path, llama_dir, ctx_list = "256,2048", llama_gguf;
  WeightFormat weights = WeightFormat::kF32;
  int threads = 2, reps = 3;
  bool plain = true, fast = true;
  if (const char* e = std::getenv("ATAX_LLAMA_CPP")) llama_dir = e;
  for (int i = 1; i + 1 < argc; i += 2) {
    std::string a = argv[i], v = argv[i + 1];
    if (a == "--gguf") gguf_path = v;
    else if (a == "--text") text_path = v;
    else if (a == "--llama-cpp") llama_dir = v;
    else if (a == "--ctx") ctx_list = v;
    else if (a == "--threads") threads = std::stoi(v);
    else if (a == "--reps") reps = std::stoi(v);
    else if (a == "--plain") plain = v != "0";
    else if (a == "--fast") fast = v != "0";
    else if (a == "--weights") weights = parse_weight_format(v);
    else if (a == "--llama-gguf") llama_gguf = v;
    else {
      std::cerr << "unknown option " << a << "\n";
      return 2;
    }
  }
  if (llama_gguf.empty()) llama_gguf = gguf_path;
  if (gguf_path.empty() || text_path.empty()) {
    std::cerr << "usage: bench_score_vs_llamacpp --gguf MODEL.gguf --text TEXT.txt [--llama-cpp DIR] [--ctx 256,2048] "
                 "[--threads 2] [--reps 3] [--plain 1] [--fast 1] [--weights f32|bf16|q8_0] [--llama-gguf FILE.gguf]\n";
    return 2;
  }
  std::string perplexity = llama_dir.empty() ? "" : llama_dir + "/llama-perplexity";
  if (perplexity.empty() || access(perplexity.c_str(), X_OK) != 0) {
    std::cout << "llama.cpp not found (pass --llama-cpp DIR or ATAX_LLAMA_CPP=DIR, DIR holding llama-perplexity built "
                 "from github.com/ggerganov/llama.cpp outside this repository: bench/build_llamacpp.sh SRC); measuring atax only\n";
    perplexity.clear();
  }
  std::string text = read_file(text_path);
  std::vector<int64_t> ctxs;
  for (const auto& c : split(ctx_list, ',')) ctxs.push_back(std::stoll(c));
  register_gguf_loader();
  const std::string tmp = fmt::format("/tmp/bench_score_vs_llamacpp.{}", getpid());
  std::cout << fmt::format("weights {} (llama.cpp: {})\n", weight_format_name(weights), llama_gguf);
  std::cout << fmt::format("model {}, text {} ({} bytes), {} threads, {} reps, fork per run (wall s, peak RSS MB), "
                           "atax kernels: {}\n",
                           gguf_path, text_path, text.size(), threads, reps, fast ? "fast" : "plain (LibTorch's own)");
  std::cout << "| window | atax s | atax MB | llama.cpp s | llama.cpp MB | speed ratio | memory ratio | vs plain | "
               "PPL atax | PPL llama.cpp | rel. diff |\n|---|---|---|---|---|---|---|---|---|---|---|\n";
  for (int64_t ctx : ctxs) {
    std::vector<double> as, am, ls, lm, ps;
    double ppl_atax = std::nan(""), ppl_llama = std::nan(""), ppl_plain = std::nan("");
    for (int r = 0; r < reps; ++r) {
      auto run_atax = [&](bool fast) {
        return in_child([&] {
          configure_threads(threads);
          set_fast_kernels(fast);
          double t0 = now_seconds();
          InferenceOptions io;
          io.max_length = ctx;
          LoadOptions lo{"cpu"};
          lo.weights = weights;
          HfModel m(load_model(gguf_path, lo), io);
          double t1 = now_seconds(), mb_loaded = peak_rss_mb();
          const auto& tok = m.tokenizer();
          auto ids = tok.encode(text, true);
          auto pairs = llama_cpp_windows(ids, ctx, tok.bos_id().value_or(ids.at(0)));
          if (pairs.empty()) throw Error(fmt::format("the text has {} tokens, fewer than one window", ids.size()));
          double t2 = now_seconds();
          auto scores = m.score_tokens(pairs);
          double sum = 0;
          int64_t n = 0;
          for (size_t i = 0; i < scores.size(); ++i)
            sum += scores[i].logprob, n += static_cast<int64_t>(pairs[i].second.size());
          std::cerr << fmt::format("atax{} ctx {}: load {:.2f} s (peak {:.0f} MB after it), tokenize {:.2f} s, score "
                                   "{:.2f} s ({} windows, {} tokens scored), {}\n",
                                   fast ? "" : " plain", ctx, t1 - t0, mb_loaded, t2 - t1, now_seconds() - t2,
                                   pairs.size(), n, thread_summary());
          std::ofstream(tmp + ".atax") << fmt::format("{:.17g}\n", std::exp(-sum / static_cast<double>(n)));
          return 0;
        });
      };
      if (plain && fast) {
        Run p = run_atax(false);
        if (!p.ok) return 1;
        ps.push_back(p.seconds);
        ppl_plain = std::atof(read_file(tmp + ".atax").c_str());
      }
      Run a = run_atax(fast);
      if (!a.ok) return 1;
      as.push_back(a.seconds);
      am.push_back(a.peak_mb);
      ppl_atax = std::atof(read_file(tmp + ".atax").c_str());
      if (perplexity.empty()) continue;
      const std::string log = tmp + ".llama.log";
      Run l = in_child([&] {
        std::string c = std::to_string(ctx), t = std::to_string(threads);
        int devnull = open("/dev/null", O_WRONLY), logfd = open(log.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
        dup2(devnull, 1);
        dup2(logfd, 2);
        execl(perplexity.c_str(), perplexity.c_str(), "-m", llama_gguf.c_str(), "-f", text_path.c_str(), "-c", c.c_str(),
              "-b", c.c_str(), "-t", t.c_str(), static_cast<char*>(nullptr));
        return 127;
      });
      if (l.ok) {
        ls.push_back(l.seconds);
        lm.push_back(l.peak_mb);
        ppl_llama = llama_cpp_ppl(log);
      }
    }
    std::remove((tmp + ".atax").c_str());
    std::remove((tmp + ".llama.log").c_str());
    double a_s = median(as), a_m = median(am), l_s = median(ls), l_m = median(lm), p_s = median(ps);
    auto or_dash = [](bool ok, const std::string& v) { return ok ? v : std::string("-"); };
    std::cout << fmt::format("| {} | {:.2f} | {:.0f} | {} | {} | {} | {} | {} | {:.4f} | {} | {} |\n", ctx, a_s, a_m,
                             or_dash(!ls.empty(), fmt::format("{:.2f}", l_s)),
                             or_dash(!lm.empty(), fmt::format("{:.0f}", l_m)),
                             or_dash(!ls.empty(), fmt::format("{:.2f}x", l_s / a_s)),
                             or_dash(!lm.empty(), fmt::format("{:.2f}x", a_m / l_m)),
                             or_dash(!ps.empty(), fmt::format("{:.2f}x", p_s / a_s)), ppl_atax,
                             or_dash(!ls.empty(), fmt::format("{:.4f}", ppl_llama)),
                             or_dash(!ls.empty(), fmt::format("{:.1e}", std::abs(ppl_atax - ppl_llama) / ppl_llama)));
    if (!ps.empty() && std::abs(ppl_plain - ppl_atax) > 1e-5 * ppl_plain)
      std::cout << fmt::format("  (!) PPL of the plain path {:.6f} differs from the fast path's\n", ppl_plain);
  }
  std::cout << "speed ratio = llama.cpp time / atax time (>= 1: atax as fast); memory ratio = atax peak / llama.cpp peak "
               "(both whole processes, load included); vs plain = atax time with the fast kernels off / on; rel. diff = |PPL atax - PPL llama.cpp| / PPL llama.cpp on the same "
               "windows\n";
  return 0;
}
