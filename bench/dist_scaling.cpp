// Data-parallel scaling on one machine: throughput of 1 vs 2 local ranks (one intra-op thread per
// rank, Gloo over 127.0.0.1) for
//   train: a DPO training step (policy forward + backward on chosen and rejected sequences,
//          precomputed reference log-probs, GradSync bucketed all-reduce, AdamW) of a ~25M-parameter
//          Llama-shaped atax::CausalLm; per-rank batch fixed (weak scaling), throughput in pairs/s;
//   eval:  forward-only scoring (summed token log-probs) of a fixed set of sequences split with
//          shard_range and gathered on rank 0 (strong scaling), throughput in sequences/s.
// Prints the scaling ratio (2-rank / 1-rank throughput; 2.00 is ideal), the share of the step spent
// in gradient all-reduce (exposed wait and busy time), the bytes all-reduced per step, a plain
// all-reduce of those bytes (bus bandwidth), and the ring all-reduce estimate for N ranks over a
// given link: t = 2(N−1)/N · bytes / bandwidth + 2(N−1) · buckets · latency.
//
// Usage: bench_dist_scaling [--steps 3] [--seq 64] [--pairs 2] [--eval-seqs 32] [--rounds 2]
//                           [--layers 5] [--link-gbps 100] [--latency-us 20] [--quick]
// The program launches itself (dist::launch_local) as the ranks; ATAX_BENCH_DIST_ROLE=worker marks them.
#include <fcntl.h>
#include <sys/resource.h>
#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <iostream>

#include <fmt/format.h>

#include "dist/dist.h"
#include "model/model.h"

using namespace atax;

namespace {

struct Args {
  int steps = 3, seq = 64, pairs = 2, eval_seqs = 32, rounds = 2, layers = 5;
  double link_gbps = 100, latency_us = 20;
  std::vector<std::string> raw;
};

Args parse_args(int argc, char** argv) {
  Args a;
  for (int i = 1; i < argc; ++i) {
    std::string k = argv[i];
    a.raw.push_back(k);
    auto next = [&]() -> std::string {
      if (i + 1 >= argc) throw Error("missing value after " + k, "", "see the usage line in bench/dist_scaling.cpp");
      a.raw.push_back(argv[i + 1]);
      return argv[++i];
    };
    if (k == "--steps") a.steps = std::stoi(next());
    else if (k == "--seq") a.seq = std::stoi(next());
    else if (k == "--pairs") a.pairs = std::stoi(next());
    else if (k == "--eval-seqs") a.eval_seqs = std::stoi(next());
    else if (k == "--rounds") a.rounds = std::stoi(next());
    else if (k == "--layers") a.layers = std::stoi(next());
    else if (k == "--link-gbps") a.link_gbps = std::stod(next());
    else if (k == "--latency-us") a.latency_us = std::stod(next());
    else if (k == "--quick") { a.steps = 2; a.seq = 32; a.eval_seqs = 16; a.rounds = 1; a.layers = 2; }
    else throw Error("unknown option " + k, "", "see the usage line in bench/dist_scaling.cpp");
  }
  return a;
}

// A Llama-shaped model of about 25M parameters (5 layers; embeddings and head untied).
ModelConfig bench_config(int layers) {
  json j = {{"architectures", {"LlamaForCausalLM"}}, {"vocab_size", 8192}, {"hidden_size", 512},
            {"intermediate_size", 1408}, {"num_hidden_layers", layers}, {"num_attention_heads", 8},
            {"num_key_value_heads", 8}, {"max_position_embeddings", 512}, {"tie_word_embeddings", false}};
  return ModelConfig::from_json(j, "<bench>");
}

// Summed log-prob of every next token: ids (B,T) -> (B,).
torch::Tensor sequence_logprobs(CausalLm& net, const torch::Tensor& ids) {
  auto logits = net->forward(ids);                                              // (B,T,V)
  auto logp = torch::log_softmax(logits.slice(1, 0, -1), -1);                   // (B,T-1,V)
  return logp.gather(-1, ids.slice(1, 1).unsqueeze(-1)).squeeze(-1).sum(-1);    // (B,)
}

// CPU seconds (user + system, all threads) this process has used.
double process_cpu_seconds() {
  rusage u{};
  ::getrusage(RUSAGE_SELF, &u);
  return static_cast<double>(u.ru_utime.tv_sec + u.ru_stime.tv_sec) + 1e-6 * (u.ru_utime.tv_usec + u.ru_stime.tv_usec);
}

double load_average() {
  double l = 0;
  if (FILE* f = std::fopen("/proc/loadavg", "r")) {
    if (std::fscanf(f, "%lf", &l) != 1) l = 0;
    std::fclose(f);
  }
  return l;
}

double median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  return v.empty() ? 0 : v[v.size() / 2];
}

// ---------------------------------------------------------------------------------------------
// A rank
// ---------------------------------------------------------------------------------------------

int worker(const Args& a) {
  const std::string mode = std::getenv("ATAX_BENCH_DIST_MODE") ? std::getenv("ATAX_BENCH_DIST_MODE") : "train";
  dist::InitOptions io;
  io.threads = 1;  // one intra-op thread per rank, in the 1-rank run too
  dist::Context& ctx = dist::init(io);
  const ModelConfig cfg = bench_config(a.layers);
  torch::manual_seed(0);
  CausalLm net(cfg);
  ctx.broadcast_module(*net);
  int64_t n_params = 0;
  for (auto& p : net->parameters()) n_params += p.numel();
  json out = {{"mode", mode}, {"world", ctx.world_size()}, {"params", n_params}, {"threads", at::get_num_threads()}};

  if (mode == "train" || mode == "train_sync") {
    dist::GradSyncOptions go;
    go.overlap = mode == "train";
    dist::GradSync sync(net->parameters(), go, &ctx);
    torch::optim::AdamW opt(net->parameters(), torch::optim::AdamWOptions(1e-4));
    std::vector<double> step_s, wait_s, busy_s, overlapped, cpu_s;
    for (int step = 0; step <= a.steps; ++step) {  // step 0 warms up
      torch::manual_seed(1000 * step + ctx.rank());
      auto ids = torch::randint(cfg.vocab_size, {2 * a.pairs, a.seq}, torch::kInt64);  // chosen ; rejected
      auto ref = torch::randn({2 * a.pairs}) * 10 - 100;  // precomputed reference log-probs
      ctx.barrier("step");
      ctx.reset_stats();
      double t0 = now_seconds(), c0 = process_cpu_seconds();
      auto lp = sequence_logprobs(net, ids);  // (2P,)
      auto margin = (lp.slice(0, 0, a.pairs) - ref.slice(0, 0, a.pairs)) -
                    (lp.slice(0, a.pairs) - ref.slice(0, a.pairs));
      auto loss = -torch::log_sigmoid(0.1 * margin).mean();
      loss.backward();
      sync.finish();
      opt.step();
      opt.zero_grad();
      double dt = now_seconds() - t0;
      double cpu = ctx.all_reduce_sum(process_cpu_seconds() - c0);  // every rank's CPU time
      auto st = ctx.stats();
      if (step == 0) continue;
      cpu_s.push_back(cpu);
      step_s.push_back(dt);
      wait_s.push_back(st.all_reduce_wait_s);
      busy_s.push_back(st.all_reduce_busy_s);
      overlapped.push_back(static_cast<double>(sync.overlapped_buckets()));
    }
    double s = median(step_s);
    out["step_s"] = s;
    out["pairs_per_s"] = a.pairs * ctx.world_size() / s;
    out["cpu_s_per_pair"] = median(cpu_s) / (a.pairs * ctx.world_size());
    out["wait_share"] = median(wait_s) / s;
    out["busy_share"] = median(busy_s) / s;
    out["bytes_per_step"] = sync.bytes_per_step();
    out["buckets"] = sync.num_buckets();
    out["overlapped_buckets"] = median(overlapped);
    // A plain all-reduce of the same bytes: the link's cost without any compute beside it.
    if (ctx.distributed()) {
      auto flat = torch::zeros({sync.bytes_per_step() / 4}, torch::kFloat32);
      std::vector<double> ar;
      for (int i = 0; i < 3; ++i) {
        ctx.barrier("allreduce bench");
        double t0 = now_seconds();
        ctx.all_reduce(flat);
        ar.push_back(now_seconds() - t0);
      }
      out["allreduce_s"] = median(ar);
    }
  } else {  // eval
    torch::NoGradGuard no_grad;
    net->eval();
    torch::manual_seed(77);
    auto all_ids = torch::randint(cfg.vocab_size, {a.eval_seqs, a.seq}, torch::kInt64);
    const int64_t batch = 8;
    ctx.barrier("eval start");
    double t0 = now_seconds(), c0 = process_cpu_seconds();
    auto [begin, end] = dist::my_shard(a.eval_seqs);
    std::vector<json> scores;
    for (int64_t b = begin; b < end; b += batch) {
      auto lp = sequence_logprobs(net, all_ids.slice(0, b, std::min(end, b + batch)));
      for (int64_t k = 0; k < lp.size(0); ++k) scores.push_back(lp[k].item<double>());
    }
    auto gathered = dist::gather_lists_to_main(scores);
    double dt = now_seconds() - t0;
    out["cpu_s_per_seq"] = ctx.all_reduce_sum(process_cpu_seconds() - c0) / a.eval_seqs;
    if (ctx.is_main() && static_cast<int>(gathered.size()) != a.eval_seqs)
      throw Error(fmt::format("gathered {} scores, expected {}", gathered.size(), a.eval_seqs));
    out["eval_s"] = dt;
    out["seqs_per_s"] = a.eval_seqs / dt;
    if (ctx.is_main()) out["first_score"] = gathered.front();
  }
  out["load_average"] = load_average();
  if (ctx.is_main()) std::cout << "BENCH_RESULT " << out.dump() << std::endl;
  ctx.shutdown();
  return 0;
}

// ---------------------------------------------------------------------------------------------
// The driver
// ---------------------------------------------------------------------------------------------

json run_ranks(const Args& a, const std::string& mode, int nproc) {
  fs::path log = fs::temp_directory_path() / fmt::format("atax_bench_dist_{}_{}.log", ::getpid(), nproc);
  int fd = ::open(log.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
  dist::LaunchOptions lo;
  lo.nproc = nproc;
  lo.args = a.raw;
  lo.env = {{"ATAX_BENCH_DIST_ROLE", "worker"}, {"ATAX_BENCH_DIST_MODE", mode}, {"ATAX_PROGRESS", "0"},
            {"ATAX_DIST_TIMEOUT", "300"}};
  lo.out_fd = fd;
  lo.err_fd = fd;
  dist::LaunchResult r = dist::launch_local(lo);
  ::close(fd);
  std::string text = read_file(log);
  fs::remove(log);
  if (r.failed_rank >= 0) throw Error("bench ranks failed: " + r.message + "\n" + text);
  const std::string tag = "[rank 0] BENCH_RESULT ";
  auto pos = text.find(tag);
  if (pos == std::string::npos) throw Error("no result from rank 0:\n" + text);
  auto eol = text.find('\n', pos);
  return json::parse(text.substr(pos + tag.size(), eol - pos - tag.size()));
}

// Keeps the faster of two runs of the same configuration (other load on the machine only slows).
json best(const json& a, const json& b, const char* key) {
  if (a.is_null()) return b;
  return b[key].get<double>() > a[key].get<double>() ? b : a;
}

int driver(const Args& a) {
  json train1, train2, sync2, eval1, eval2;
  for (int round = 0; round < a.rounds; ++round) {  // interleaved, so drifting load hits both sides
    train1 = best(train1, run_ranks(a, "train", 1), "pairs_per_s");
    train2 = best(train2, run_ranks(a, "train", 2), "pairs_per_s");
    sync2 = best(sync2, run_ranks(a, "train_sync", 2), "pairs_per_s");
    eval1 = best(eval1, run_ranks(a, "eval", 1), "seqs_per_s");
    eval2 = best(eval2, run_ranks(a, "eval", 2), "seqs_per_s");
  }
  const double bytes = train2["bytes_per_step"].get<double>();
  const int64_t buckets = train2["buckets"].get<int64_t>();
  fmt::print("device cpu, {} intra-op thread per rank, Gloo over 127.0.0.1, {} hardware threads on this machine\n",
             train1["threads"].get<int>(), std::thread::hardware_concurrency());
  fmt::print("load average during the runs: {:.1f} .. {:.1f} (wall-clock ratios are only meaningful when it is "
             "below the core count)\n",
             std::min({train1["load_average"].get<double>(), train2["load_average"].get<double>(), eval2["load_average"].get<double>()}),
             std::max({train1["load_average"].get<double>(), train2["load_average"].get<double>(), eval2["load_average"].get<double>()}));
  fmt::print("model: Llama-shaped CausalLm, {:.1f}M parameters (L={} C=512 F=1408 V=8192), T={}, best of {} round(s)\n",
             train1["params"].get<double>() / 1e6, a.layers, a.seq, a.rounds);
  fmt::print("\nDPO train step, {} pairs per rank (weak scaling), AdamW, {} buckets of <= 25 MB\n", a.pairs, buckets);
  auto train_line = [&](const char* name, const json& r) {
    fmt::print("  {:<24} {:7.3f} pairs/s   step {:6.3f} s   CPU {:6.3f} s/pair", name, r["pairs_per_s"].get<double>(),
               r["step_s"].get<double>(), r["cpu_s_per_pair"].get<double>());
    if (r.contains("wait_share"))
      fmt::print("   all-reduce: wait {:5.1f}% of step, busy {:5.1f}%", 100 * r["wait_share"].get<double>(),
                 100 * r["busy_share"].get<double>());
    fmt::print("\n");
  };
  train_line("1 rank", train1);
  train_line("2 ranks (overlapped)", train2);
  train_line("2 ranks (after backward)", sync2);
  const double ratio_train = train2["pairs_per_s"].get<double>() / train1["pairs_per_s"].get<double>();
  fmt::print("  scaling ratio 2/1 ranks: {:.2f} (ideal 2.00); after-backward variant {:.2f}; {} of {} buckets "
             "started inside backward\n",
             ratio_train, sync2["pairs_per_s"].get<double>() / train1["pairs_per_s"].get<double>(),
             train2["overlapped_buckets"].get<double>(), buckets);
  fmt::print("  CPU-time efficiency 2 ranks vs 1 (CPU s per pair, 1 over 2): {:.2f} (1.00 = no overhead from "
             "distribution; independent of other load on the machine)\n",
             train1["cpu_s_per_pair"].get<double>() / train2["cpu_s_per_pair"].get<double>());
  fmt::print("  gradient bytes all-reduced per step per rank: {:.1f} MB\n", bytes / 1e6);
  const double ar = train2["allreduce_s"].get<double>();
  fmt::print("  plain all-reduce of those bytes, 2 local ranks: {:.1f} ms (bus bandwidth {:.2f} GB/s)\n", ar * 1e3,
             bytes / ar / 1e9);

  fmt::print("\nEvaluation (forward only), {} sequences split over the ranks (strong scaling)\n", a.eval_seqs);
  for (auto* r : {&eval1, &eval2})
    fmt::print("  {} rank{}  {:7.2f} seqs/s ({:.2f} s)   CPU {:.3f} s/seq\n", (*r)["world"].get<int>(),
               (*r)["world"].get<int>() > 1 ? "s" : " ", (*r)["seqs_per_s"].get<double>(), (*r)["eval_s"].get<double>(),
               (*r)["cpu_s_per_seq"].get<double>());
  fmt::print("  scaling ratio 2/1 ranks: {:.2f} (ideal 2.00); CPU-time efficiency {:.2f}; same first score: {}\n",
             eval2["seqs_per_s"].get<double>() / eval1["seqs_per_s"].get<double>(),
             eval1["cpu_s_per_seq"].get<double>() / eval2["cpu_s_per_seq"].get<double>(),
             std::abs(eval1["first_score"].get<double>() - eval2["first_score"].get<double>()) < 1e-3 ? "yes" : "NO");

  // Ring all-reduce estimate from the measured 1-rank compute (its CPU time: what the step costs on
  // an otherwise idle core) and the bytes per step, for this compute and for 10x / 100x faster ranks
  // (a many-core node, a GPU) whose communication volume is the same.
  const double compute = train1["cpu_s_per_pair"].get<double>() * a.pairs;
  const double bw = a.link_gbps * 1e9 / 8;
  fmt::print("\nEstimate, ring all-reduce over {:.0f} Gb/s links, {:.0f} us per hop, per-rank batch fixed:\n",
             a.link_gbps, a.latency_us);
  fmt::print("  t_comm(N) = 2(N-1)/N * {:.1f} MB / {:.2f} GB/s + 2(N-1) * {} buckets * {:.0f} us\n", bytes / 1e6,
             bw / 1e9, buckets, a.latency_us);
  fmt::print("  efficiency = compute / (compute + t_comm) with no overlap .. compute / max(compute, t_comm) with full "
             "overlap\n");
  for (int n : {2, 8, 64}) {
    double comm = 2.0 * (n - 1) / n * bytes / bw + 2.0 * (n - 1) * static_cast<double>(buckets) * a.latency_us * 1e-6;
    fmt::print("  N={:<3} t_comm {:6.2f} ms |", n, comm * 1e3);
    for (double speed : {1.0, 10.0, 100.0}) {
      double c = compute / speed;
      fmt::print(" compute {:7.1f} ms: {:5.1f}% .. {:5.1f}% |", c * 1e3, 100 * c / (c + comm),
                 100 * c / std::max(c, comm));
    }
    fmt::print("\n");
  }
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  try {
    Args a = parse_args(argc, argv);
    const char* role = std::getenv("ATAX_BENCH_DIST_ROLE");
    if (role && std::string(role) == "worker") return worker(a);
    return driver(a);
  } catch (const std::exception& e) {
    std::cerr << "bench_dist_scaling: error: " << e.what() << "\n";
    return 1;
  }
}
