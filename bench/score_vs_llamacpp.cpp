// Rolling scoring (perplexity) of one text by atax and by llama.cpp's llama-perplexity on the same
// GGUF file (F32 weights, same vocabulary), at several window lengths, each run a separate process
// (fork; whole-process wall time and peak RSS from wait4), interleaved, medians of --reps.
//
// Usage: bench_score_vs_llamacpp --gguf MODEL.gguf --text TEXT.txt [--llama-cpp DIR] [--ctx 256,2048]
//        [--threads 2] [--reps 3]
// DIR (or env ATAX_LLAMA_CPP) is llama.cpp's build/bin holding llama-perplexity, built outside the
// repository (cmake -DGGML_NATIVE=ON, target llama-perplexity); without it only atax is measured.
// Make the GGUF from a HF folder with bench/export_gguf.py.
#include <fcntl.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <iostream>

#include <fmt/format.h>

#include "gguf/gguf.h"
#include "model/model.h"

using namespace atax;

namespace {
struct Run {
  double seconds = 0, peak_mb = 0;
  bool ok = false;
};

// Runs `child` in a forked process; its exit status 0 means success.
template <class F>
Run in_child(F&& child) {
  std::cout.flush();  // the child must not print the parent's buffered lines again
  double t0 = now_seconds();
  pid_t pid = fork();
  if (pid == 0) {
    int rc = 1;
    try {
      rc = child();
    } catch (const std::exception& e) {
      std::cerr << e.what() << "\n";
    }
    std::cout.flush();
    _exit(rc);
  }
  int status = 0;
  rusage ru{};
  wait4(pid, &status, 0, &ru);
  Run r;
  r.seconds = now_seconds() - t0;
  r.peak_mb = static_cast<double>(ru.ru_maxrss) / 1024.0;
  r.ok = WIFEXITED(status) && WEXITSTATUS(status) == 0;
  return r;
}

double median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  return v.empty() ? 0 : v[v.size() / 2];
}
}  // namespace

int main(int argc, char** argv) {
  std::string gguf_path, text_path, llama_dir, ctx_list = "256,2048";
  int threads = 2, reps = 3;
  if (const char* e = std::getenv("ATAX_LLAMA_CPP")) llama_dir = e;
  for (int i = 1; i + 1 < argc; i += 2) {
    std::string a = argv[i], v = argv[i + 1];
    if (a == "--gguf") gguf_path = v;
    else if (a == "--text") text_path = v;
    else if (a == "--llama-cpp") llama_dir = v;
    else if (a == "--ctx") ctx_list = v;
    else if (a == "--threads") threads = std::stoi(v);
    else if (a == "--reps") reps = std::stoi(v);
    else {
      std::cerr << "unknown option " << a << "\n";
      return 2;
    }
  }
  if (gguf_path.empty() || text_path.empty()) {
    std::cerr << "usage: bench_score_vs_llamacpp --gguf MODEL.gguf --text TEXT.txt [--llama-cpp DIR] [--ctx 256,2048] "
                 "[--threads 2] [--reps 3]\n";
    return 2;
  }
  std::string perplexity = llama_dir.empty() ? "" : llama_dir + "/llama-perplexity";
  if (perplexity.empty() || access(perplexity.c_str(), X_OK) != 0) {
    std::cout << "llama.cpp not found (pass --llama-cpp DIR or ATAX_LLAMA_CPP=DIR, DIR holding llama-perplexity built "
                 "from github.com/ggerganov/llama.cpp outside this repository); measuring atax only\n";
    perplexity.clear();
  }
  std::string text = read_file(text_path);
  std::vector<int64_t> ctxs;
  for (const auto& c : split(ctx_list, ',')) ctxs.push_back(std::stoll(c));
  register_gguf_loader();
  std::cout << fmt::format("model {}, text {} ({} bytes), {} threads, {} reps, fork per run (wall s, peak RSS MB)\n",
                           gguf_path, text_path, text.size(), threads, reps);
  std::cout << "| window | atax s | atax MB | llama.cpp s | llama.cpp MB | speed ratio | memory ratio |\n";
  for (int64_t ctx : ctxs) {
    std::vector<double> as, am, ls, lm;
    int64_t n_tokens = 0;
    for (int r = 0; r < reps; ++r) {
      Run a = in_child([&] {
        configure_threads(threads);
        InferenceOptions io;
        io.max_length = ctx;
        HfModel m(load_model(gguf_path, LoadOptions{"cpu"}), io);
        auto res = m.loglikelihood_rolling({text});
        std::cerr << fmt::format("atax ctx {}: {} tokens, ppl {:.4f}\n", ctx, res[0].n_tokens,
                                 std::exp(-res[0].logprob / std::max<int64_t>(1, res[0].n_tokens)));
        return 0;
      });
      if (!a.ok) return 1;
      as.push_back(a.seconds);
      am.push_back(a.peak_mb);
      if (perplexity.empty()) continue;
      Run l = in_child([&] {
        std::string c = std::to_string(ctx), t = std::to_string(threads);
        int devnull = open("/dev/null", O_WRONLY);
        dup2(devnull, 1);
        dup2(devnull, 2);
        execl(perplexity.c_str(), perplexity.c_str(), "-m", gguf_path.c_str(), "-f", text_path.c_str(), "-c", c.c_str(),
              "-b", c.c_str(), "-t", t.c_str(), static_cast<char*>(nullptr));
        return 127;
      });
      if (l.ok) {
        ls.push_back(l.seconds);
        lm.push_back(l.peak_mb);
      }
    }
    (void)n_tokens;
    double a_s = median(as), a_m = median(am), l_s = median(ls), l_m = median(lm);
    if (ls.empty())
      std::cout << fmt::format("| {} | {:.2f} | {:.0f} | - | - | - | - |\n", ctx, a_s, a_m);
    else
      std::cout << fmt::format("| {} | {:.2f} | {:.0f} | {:.2f} | {:.0f} | {:.2f}x | {:.2f}x |\n", ctx, a_s, a_m, l_s,
                               l_m, l_s / a_s, a_m / l_m);
  }
  std::cout << "speed ratio = llama.cpp time / atax time (>= 1: atax as fast); memory ratio = atax peak / llama.cpp peak\n";
  return 0;
}
