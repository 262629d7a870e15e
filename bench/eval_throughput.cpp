// Evaluation throughput (items/s) of a multiple-choice task (MMLU format, 4 log-likelihood requests
// per item) and of a generation task (GSM8K format, greedy, fixed length), each batched and one
// request at a time, on a small randomly initialised Llama-shaped model through the whole engine
// (prompts, length sorting, batching, scoring). Also a cached re-run. Data and tokenizer are made
// here (seeded), so nothing outside this program is needed. No reference implementation: the
// ratio printed is batched / one-at-a-time.
//
// Usage: bench_eval_throughput [threads=1] [batch=16] [device=cpu]
#include <cstdio>
#include <iostream>

#include <fmt/format.h>

#include "eval/eval.h"
#include "model/model.h"

using namespace atax;

namespace {

const char* kWords[] = {"the", "model", "answer", "question", "number", "river", "city", "energy", "cell", "law",
                        "market", "theory", "value", "system", "light", "water", "king", "war", "price", "gene",
                        "which", "of", "is", "a", "to", "in", "and", "what", "most", "likely", "when", "how"};

std::string words(Rng& rng, int n) {
  std::string s;
  for (int i = 0; i < n; ++i) s += (i ? " " : "") + std::string(kWords[rng.uniform(sizeof(kWords) / sizeof(kWords[0]))]);
  return s;
}

// MMLU-layout and GSM8K-layout data of varied lengths, plus a BPE tokenizer trained on it.
std::vector<std::string> write_data(const fs::path& dir, int mc_items, int gen_items) {
  Rng rng(42);
  std::vector<std::string> texts;
  std::vector<CsvRow> rows;
  for (int i = 0; i < mc_items; ++i) {
    CsvRow r = {words(rng, static_cast<int>(rng.range(10, 160))) + "?"};
    for (int c = 0; c < 4; ++c) r.push_back(words(rng, static_cast<int>(rng.range(1, 6))));
    r.push_back(std::string(1, "ABCD"[rng.uniform(4)]));
    texts.push_back(r[0]);
    rows.push_back(r);
  }
  write_file_atomic(dir / "mc" / "test" / "synthetic_test.csv", to_csv(rows));
  std::vector<json> gsm;
  for (int i = 0; i < gen_items; ++i) {
    std::string q = words(rng, static_cast<int>(rng.range(10, 80))) + "?";
    texts.push_back(q);
    gsm.push_back({{"question", q}, {"answer", "so it is 4.\n#### 4"}});
  }
  write_jsonl_atomic(dir / "gen" / "test.jsonl", gsm);
  return texts;
}

struct Timing {
  double items_per_s = 0, requests_per_s = 0, wall_s = 0;
  int64_t items = 0, requests = 0;
};

Timing run(LanguageModel& model, const TaskSpec& task, int64_t batch, const fs::path& data, const fs::path& cache = {}) {
  EvalOptions o;
  o.batch_size = batch;
  o.num_fewshot = 0;
  o.data_dir = data;
  o.progress = false;
  o.cache_path = cache;
  double t0 = now_seconds();
  auto r = evaluate(model, {task}, o);
  Timing t;
  t.wall_s = now_seconds() - t0;
  t.items = r.tasks[0].n_effective;
  t.requests = r.requests_sent + r.requests_cached;
  t.items_per_s = static_cast<double>(t.items) / t.wall_s;
  t.requests_per_s = static_cast<double>(t.requests) / t.wall_s;
  return t;
}

}  // namespace

int main(int argc, char** argv) {
  atax::tune_allocator();  // as the atax binary does (src/core/core.h)
  int threads = argc > 1 ? std::atoi(argv[1]) : 1;
  int64_t batch = argc > 2 ? std::atoll(argv[2]) : 16;
  std::string device = argc > 3 ? argv[3] : "cpu";
  try {
    configure_threads(threads);
    fs::path dir = fs::temp_directory_path() / ("atax_bench_eval_" + std::to_string(::getpid()));
    fs::remove_all(dir);
    auto texts = write_data(dir, 64, 16);

    BpeTrainOptions bo;
    bo.vocab_size = 1024;
    auto tok = std::make_shared<Tokenizer>(train_bpe(texts, bo));
    const int64_t C = 256, L = 4, H = 4, Hkv = 2, F = 688;
    json cj = {{"architectures", {"LlamaForCausalLM"}}, {"vocab_size", tok->vocab_size()}, {"hidden_size", C},
               {"intermediate_size", F}, {"num_hidden_layers", L}, {"num_attention_heads", H},
               {"num_key_value_heads", Hkv}, {"max_position_embeddings", 1024}, {"rms_norm_eps", 1e-6}};
    auto cfg = ModelConfig::from_json(cj);
    if (tok->eos_id()) cfg.eos_token_id = *tok->eos_id();
    torch::manual_seed(0);
    LoadOptions lo;
    lo.device = device;
    InferenceOptions io;
    io.batch_size = batch;
    HfModel batched(make_model(cfg, {}, tok, lo, "bench-random"), io);
    InferenceOptions io1;
    io1.batch_size = 1;
    HfModel single(make_model(cfg, batched.model().net->hf_state_dict(), tok, lo, "bench-random"), io1);

    fs::path tasks_dir = fs::path(ATAX_SOURCE_DIR) / "tasks";
    json mj = read_json(select_tasks({"mmlu"}, tasks_dir)[0].file);
    mj["dataset"]["path"] = "mc";
    auto mc = parse_task_spec(mj, "mmlu.json");
    json gj = read_json(select_tasks({"gsm8k"}, tasks_dir)[0].file);
    gj["dataset"]["path"] = "gen";
    gj["generation"]["max_new_tokens"] = 32;
    gj["generation"]["until"] = json::array();  // fixed length: a random model never emits the stop strings anyway
    auto gen = parse_task_spec(gj, "gsm8k.json");

    std::cout << fmt::format("device {}, intra-op threads {}, random Llama {:.2f}M parameters (C={} L={} H={} Hkv={} F={} V={})\n",
                             device, at::get_num_threads(), batched.model().net->num_parameters() / 1e6, C, L, H, Hkv, F,
                             tok->vocab_size());
    run(batched, mc, batch, dir);  // warm-up
    Timing mc_b = run(batched, mc, batch, dir), mc_1 = run(single, mc, 1, dir);
    std::cout << fmt::format("multiple choice (64 items x 4 choices, prompts 20-330 tokens):\n");
    std::cout << fmt::format("  batched (B={:>2}): {:8.1f} items/s  {:8.1f} requests/s\n", batch, mc_b.items_per_s, mc_b.requests_per_s);
    std::cout << fmt::format("  one at a time : {:8.1f} items/s  {:8.1f} requests/s   batched/single {:.2f}x\n", mc_1.items_per_s,
                             mc_1.requests_per_s, mc_b.items_per_s / mc_1.items_per_s);
    Timing g_b = run(batched, gen, batch, dir), g_1 = run(single, gen, 1, dir);
    std::cout << fmt::format("generation (16 items, greedy, 32 new tokens each):\n");
    std::cout << fmt::format("  batched (B={:>2}): {:8.2f} items/s  {:8.1f} new tokens/s\n", batch, g_b.items_per_s, g_b.items_per_s * 32);
    std::cout << fmt::format("  one at a time : {:8.2f} items/s  {:8.1f} new tokens/s   batched/single {:.2f}x\n", g_1.items_per_s,
                             g_1.items_per_s * 32, g_b.items_per_s / g_1.items_per_s);
    fs::path cache = dir / "cache.sqlite";
    run(batched, mc, batch, dir, cache);
    Timing mc_c = run(batched, mc, batch, dir, cache);
    std::cout << fmt::format("cached re-run of the multiple-choice task: {:8.1f} items/s ({} requests from the cache)\n",
                             mc_c.items_per_s, mc_c.requests);
    fs::remove_all(dir);
  } catch (const std::exception& e) {
    std::cerr << "bench_eval_throughput: " << e.what() << "\n";
    return 1;
  }
  return 0;
}
