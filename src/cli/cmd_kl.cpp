// atax kl: how far a model's next-token distributions moved from its base on held-out text —
// llama.cpp's --kl-divergence statistics (mean KL(base ‖ model) ± stderr, its percentiles, and the
// share of positions where both models rank the same token first), as a table and as JSON.
#include <iostream>

#include <fmt/format.h>

#include "cli/cli.h"
#include "cli/eval_options.h"
#include "model/model.h"

namespace atax::cli {
namespace {

struct KlCmdOptions {
  std::string base, model, data, out;
  int64_t limit = 0;
  RuntimeOptions rt;
};

// The "text" of every line of `path` (the first `limit`, 0 = all). Error with file:line for a
// line without one.
std::vector<std::string> read_texts(const fs::path& path, int64_t limit) {
  if (!fs::is_regular_file(path))
    throw Error("--data: no such file", path.string(), "pass a JSONL file with one {\"text\": ...} per line");
  std::vector<std::string> texts;
  for_each_jsonl(path, [&](const json& j, int64_t line) {
    if (limit > 0 && static_cast<int64_t>(texts.size()) >= limit) return;
    texts.push_back(require_string(j, "text", path.string(), line));
  });
  if (texts.empty()) throw Error("--data holds no texts", path.string(), "one {\"text\": ...} per line");
  return texts;
}

std::string kl_table(const KlStats& s) {
  auto num = [](double v) { return fmt::format("{:.6f}", v); };
  std::string out = "| statistic | value |\n|---|---:|\n";
  out += fmt::format("| texts | {} |\n| positions | {} |\n", s.n_texts, s.n_positions);
  out += fmt::format("| Mean KLD | {} ± {} |\n", num(s.mean), num(s.stderr_));
  const std::pair<const char*, double> rows[] = {{"Maximum KLD", s.max}, {"99.9% KLD", s.p99_9}, {"99.0% KLD", s.p99},
                                                 {"90.0% KLD", s.p90},   {"Median KLD", s.median}, {"10.0% KLD", s.p10},
                                                 {"5.0% KLD", s.p5},     {"1.0% KLD", s.p1},       {"Minimum KLD", s.min}};
  for (const auto& [name, v] : rows) out += fmt::format("| {} | {} |\n", name, num(v));
  out += fmt::format("| Same top token | {:.3f} ± {:.3f} % |\n", 100 * s.same_top_share, 100 * s.same_top_stderr);
  return out;
}

json kl_json(const KlStats& s) {
  return {{"texts", s.n_texts},
          {"positions", s.n_positions},
          {"kl", {{"mean", s.mean}, {"stderr", s.stderr_}, {"max", s.max}, {"p99_9", s.p99_9}, {"p99", s.p99},
                  {"p90", s.p90}, {"median", s.median}, {"p10", s.p10}, {"p5", s.p5}, {"p1", s.p1}, {"min", s.min}}},
          {"same_top", {{"share", s.same_top_share}, {"stderr", s.same_top_stderr}}}};
}

void add_kl(CLI::App& app) {
  auto o = std::make_shared<KlCmdOptions>();
  auto* sub = app.add_subcommand(
      "kl", "KL divergence of a model's next-token distributions from its base's on held-out text (llama.cpp "
            "--kl-divergence statistics: mean ± stderr, percentiles, same top token)");
  sub->add_option("--base", o->base, "base model (HF folder or .gguf): the reference distribution")->required();
  sub->add_option("--model", o->model, "the model compared with it (same tokenizer)")->required();
  sub->add_option("--data", o->data, "held-out JSONL, one {\"text\": ...} per line")->required();
  sub->add_option("--limit", o->limit, "use the first N texts (0 = all)")->capture_default_str();
  sub->add_option("--out", o->out, "also write the statistics as JSON here (atomically)");
  add_runtime_options(sub, o->rt);
  sub->callback([o] {
    if (o->limit < 0) throw Error(fmt::format("--limit must be >= 0, got {}", o->limit), "", "0 uses every text");
    for (const auto& [flag, path] : {std::pair<std::string, std::string>{"--base", o->base}, {"--model", o->model}})
      if (!fs::exists(path)) throw Error(flag + ": no such model folder or file", path, "pass an HF folder or a .gguf file");
    const std::vector<std::string> texts = read_texts(o->data, o->limit);
    configure_threads(o->rt.threads);
    const pipeline::ModelRunOptions run = model_run_options(o->rt);  // the one mapping (cli/eval_options.h)
    log_info("loading " + o->base + " and " + o->model);
    HfModel base = pipeline::open_model(o->base, run), model = pipeline::open_model(o->model, run);
    const double t0 = now_seconds();
    const KlStats s = kl_divergence(base, model, texts);
    if (s.n_positions == 0)
      throw Error("no position was scored: every text is shorter than two tokens", o->data, "use longer texts");
    std::cout << kl_table(s);
    std::cout << fmt::format("\nKL({} ‖ {}) over {} positions of {} texts ({:.1f} s)\n", o->base, o->model,
                             s.n_positions, s.n_texts, now_seconds() - t0);
    if (!o->out.empty()) {
      json j = kl_json(s);
      j["base"] = {{"path", o->base}, {"content_hash", base.content_hash()}};
      j["model"] = {{"path", o->model}, {"content_hash", model.content_hash()}};
      j["data"] = {{"path", o->data}, {"sha256", sha256_file(o->data)}, {"limit", o->limit}};
      if (fs::path(o->out).has_parent_path()) fs::create_directories(fs::path(o->out).parent_path());
      write_json_atomic(o->out, j);
      log_info("KL statistics written to " + o->out);
    }
  });
}

ATAX_COMMAND("kl", add_kl);

}  // namespace
}  // namespace atax::cli
