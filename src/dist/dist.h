// dist: data-parallel training and sharded evaluation over LibTorch's own distributed engine,
// c10d: rendezvous through c10d::TCPStore (rank 0 serves it), collectives through
// ProcessGroupGloo on CPU (ProcessGroupNCCL when LibTorch has CUDA and ATAX_DIST_NCCL is defined).
//
// Launch like torchrun: RANK, WORLD_SIZE, LOCAL_RANK, MASTER_ADDR, MASTER_PORT (or Slurm's
// SLURM_PROCID / SLURM_NTASKS / SLURM_LOCALID) select the rank; none set = one process, and every
// call below is then a cheap no-op, so the single-process code path is the same code.
// `atax launch --nproc N -- <atax command>` starts N local ranks.
//
// Rules every caller keeps (see docs/distributed.md):
//   - collectives (barrier, broadcast, all_reduce, all_gather, gather_to_main, GradSync::finish)
//     are called by every rank in the same order;
//   - only rank 0 writes checkpoints, logs and results, after a successful barrier, atomically
//     (on_main() does exactly that);
//   - a rank that dies or hangs makes the others fail with a dist error (atax::Error) within
//     ATAX_DIST_TIMEOUT seconds (default 60); the CLI turns it into a non-zero exit.
#pragma once

#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include <torch/torch.h>

#include "core/core.h"

namespace atax::dist {

// ---------------------------------------------------------------------------------------------
// The environment
// ---------------------------------------------------------------------------------------------

constexpr int kDefaultMasterPort = 29500;
constexpr double kDefaultTimeoutSeconds = 60;

// Where this process sits in the job, as the launcher described it.
struct DistEnv {
  int rank = 0;
  int world_size = 1;
  int local_rank = 0;
  int local_world_size = 1;
  std::string master_addr = "127.0.0.1";
  int master_port = kDefaultMasterPort;
  double timeout_s = kDefaultTimeoutSeconds;  // ATAX_DIST_TIMEOUT: rendezvous and every collective
  std::string source = "none";                // none | torchrun (RANK/WORLD_SIZE) | slurm

  bool distributed() const { return world_size > 1; }
  bool is_main() const { return rank == 0; }

  // Parses a variable map (names as in the process environment). RANK/WORLD_SIZE take precedence
  // over SLURM_PROCID/SLURM_NTASKS (SLURM_STEP_NUM_TASKS when srun set it); ATAX_DIST=0 forces
  // one process. Fails with Error (naming the variable, with a hint) for a non-integer value, a
  // rank outside [0, WORLD_SIZE), RANK without WORLD_SIZE (or the reverse), a port outside
  // 1..65535, a missing MASTER_ADDR in a multi-process torchrun-style job, or a non-positive
  // ATAX_DIST_TIMEOUT.
  static DistEnv parse(const std::map<std::string, std::string>& vars);
  // parse() of this process's environment.
  static DistEnv from_env();
  std::string describe() const;  // "rank 1/4 (local 1/4) via torchrun, master 127.0.0.1:29500"
};

// ---------------------------------------------------------------------------------------------
// The process-wide context
// ---------------------------------------------------------------------------------------------

struct InitOptions {
  std::string backend = "auto";  // auto (NCCL for a CUDA device when built with it, else gloo) | gloo | nccl
  std::optional<double> timeout_s;  // overrides ATAX_DIST_TIMEOUT
  // Intra-op threads the user chose (--threads); 0 = not chosen: a multi-process job then runs
  // one thread per rank (at::set_num_threads(1)) unless OMP_NUM_THREADS is set.
  int threads = 0;
  std::string device = "cpu";  // the device this rank computes on (NCCL needs cuda:LOCAL_RANK)
  std::optional<DistEnv> env;  // default: DistEnv::from_env()
};

// Bytes and time spent in collectives, accumulated since the last reset.
struct CommStats {
  int64_t all_reduce_calls = 0;
  int64_t all_reduce_bytes = 0;   // payload bytes per rank (a ring moves 2(N−1)/N × this)
  double all_reduce_busy_s = 0;   // sum over calls of launch → completion (may overlap compute)
  double all_reduce_wait_s = 0;   // time the caller was blocked waiting for them (exposed cost)
  int64_t other_calls = 0;        // barrier, broadcast, all_gather
  double other_s = 0;
};

class ProcessGroupHandle;  // c10d objects, kept out of this header

// The job's ranks and their collectives. All collectives throw atax::Error when a peer died or
// did not answer within the timeout; the context is then broken and every later collective
// fails at once with the same message.
class Context {
 public:
  int rank() const { return env_.rank; }
  int world_size() const { return env_.world_size; }
  int local_rank() const { return env_.local_rank; }
  bool is_main() const { return env_.rank == 0; }
  bool distributed() const { return env_.world_size > 1; }
  const DistEnv& env() const { return env_; }
  const std::string& backend() const { return backend_; }  // "none" | "gloo" | "nccl"
  double timeout_s() const { return env_.timeout_s; }

  // Blocks until every rank reached the same barrier. `what` names it in errors.
  void barrier(const std::string& what = "barrier");
  // Copies root's tensors into every rank's tensors (same shapes and dtypes on all ranks), in place.
  void broadcast(std::vector<torch::Tensor>& tensors, int root = 0);
  void broadcast(torch::Tensor& tensor, int root = 0);
  // Broadcasts every parameter and buffer of `module` from root (the initial weights).
  void broadcast_module(torch::nn::Module& module, int root = 0);
  // Sums (or averages, with `average`) `tensor` over ranks, in place.
  void all_reduce(torch::Tensor& tensor, bool average = false);
  // Sum of a number over ranks.
  double all_reduce_sum(double value);
  // Every rank's bytes, in rank order, on every rank.
  std::vector<std::string> all_gather(const std::string& bytes);
  // Root's bytes on every rank.
  std::string broadcast_bytes(const std::string& bytes, int root = 0);

  // Runs `fn` on rank 0 only, after a barrier, then tells every rank how it went: when `fn`
  // throws on rank 0, every rank throws an Error with its message (so no rank goes on as if a
  // checkpoint were written). The way to write checkpoints and results.
  void on_main(const std::string& what, const std::function<void()>& fn);

  CommStats stats() const;
  void reset_stats();
  // Records an all-reduce done outside this class (GradSync) in the stats.
  void record_all_reduce(int64_t bytes, double busy_s, double wait_s);

  // Final barrier; later collectives fail. Safe to call more than once.
  void shutdown();

  // Internal: the c10d process group (nullptr in a single-process job).
  ProcessGroupHandle* handle() { return handle_.get(); }
  // Throws the Error for a failed collective `what` (marks the context broken).
  [[noreturn]] void fail(const std::string& what, const std::string& detail);
  void check_usable(const std::string& what) const;

  ~Context();

 private:
  friend Context& init(const InitOptions& opts);
  Context() = default;
  DistEnv env_;
  std::string backend_ = "none";
  std::shared_ptr<ProcessGroupHandle> handle_;
  mutable std::mutex stats_mutex_;
  CommStats stats_;
  std::string broken_;  // first failure, "" while healthy
  bool shut_down_ = false;
};

// Initialises the process-wide context once: reads the environment, rendezvouses through the
// TCPStore (rank 0 serves it on MASTER_ADDR:MASTER_PORT) and creates the process group. Later
// calls return the same context and ignore `opts`. Fails with Error (and a hint) when the peers
// don't all arrive within the timeout, the port is taken, or the backend is unavailable.
Context& init(const InitOptions& opts = {});
// The process-wide context; init() with default options if nobody called it yet.
Context& context();
bool initialized();

// ---------------------------------------------------------------------------------------------
// Data-parallel gradients
// ---------------------------------------------------------------------------------------------

struct GradSyncOptions {
  int64_t bucket_bytes = 25 << 20;  // ~25 MB buckets, like PyTorch DDP
  // Launch a bucket's all-reduce from autograd hooks (grad accumulator post-hooks) as soon as all
  // its gradients are ready, so communication overlaps the rest of backward. false = all buckets
  // are reduced in finish(), after backward.
  bool overlap = true;
  // Divide the summed gradients by the world size (each rank's loss is a mean over its own shard
  // of equal size). false = plain sum (each rank's loss is already divided by the global batch).
  bool average = true;
};

// Keeps the gradients of `params` equal across ranks: after every synced backward, finish()
// leaves in each param.grad() the average (or sum) over ranks of what backward accumulated there.
// Usage per optimiser step:
//     { auto guard = sync.no_sync(); loss_micro_1.backward(); }   // gradient accumulation
//     loss_last.backward();   // buckets all-reduced while backward runs
//     sync.finish();          // waits, writes the reduced gradients back
//     optimizer.step();
// Exactly one backward per step runs outside no_sync(). Parameters without a gradient on every
// rank keep none; one that got a gradient on some rank gets the reduced one everywhere.
// In a single-process job every call is a no-op.
class GradSync {
 public:
  GradSync(std::vector<torch::Tensor> params, GradSyncOptions opts = {}, Context* ctx = nullptr);
  ~GradSync();
  GradSync(const GradSync&) = delete;
  GradSync& operator=(const GradSync&) = delete;

  // While the guard lives, backward only accumulates locally (no communication).
  class NoSyncGuard {
   public:
    explicit NoSyncGuard(GradSync* sync);
    ~NoSyncGuard();
    NoSyncGuard(const NoSyncGuard&) = delete;
    NoSyncGuard& operator=(const NoSyncGuard&) = delete;

   private:
    GradSync* sync_;
    bool previous_;
  };
  NoSyncGuard no_sync() { return NoSyncGuard(this); }

  // Completes the all-reduce of every bucket (launching those the hooks did not) and writes the
  // results into the gradients. Throws Error if a peer failed.
  void finish();

  int64_t num_buckets() const;
  // Buckets of the last finished step whose all-reduce started during backward (from the hooks).
  int64_t overlapped_buckets() const;
  int64_t bytes_per_step() const;  // gradient bytes all-reduced per step on each rank
  const GradSyncOptions& options() const { return opts_; }

  struct Impl;

 private:
  GradSyncOptions opts_;
  std::unique_ptr<Impl> impl_;
};

// ---------------------------------------------------------------------------------------------
// Sharding
// ---------------------------------------------------------------------------------------------

// atax::shard_range (core.h) of `rank` of `world`: the one shard arithmetic of the project.
std::pair<int64_t, int64_t> shard_range(int64_t n, int rank, int world);
// shard_range for the process-wide context.
std::pair<int64_t, int64_t> my_shard(int64_t n);

// Gathers one JSON value per rank: on rank 0 an array of every rank's value in rank order, on
// the others null. A collective.
json gather_to_main(const json& part);
// Gathers lists: on rank 0 the concatenation of every rank's list in rank order (the single-
// process order when each rank holds its shard_range), on the others an empty list.
std::vector<json> gather_lists_to_main(const std::vector<json>& part);

// A per-rank variant of a path (request caches, scratch files): unchanged on rank 0 and in a
// single-process job, "<stem>.rank<k><ext>" on rank k.
fs::path per_rank_path(const fs::path& path);

// ---------------------------------------------------------------------------------------------
// Local launcher (`atax launch`)
// ---------------------------------------------------------------------------------------------

struct LaunchOptions {
  int nproc = 1;                    // ranks to start on this machine
  int master_port = 0;              // 0 = a free port
  std::string master_addr = "127.0.0.1";
  double grace_s = 10;              // after the first failure, how long the others may stop on their own
  fs::path program;                 // default: this executable (/proc/self/exe)
  std::vector<std::string> args;    // argv[1..] of every rank
  std::map<std::string, std::string> env;  // extra environment for every rank
  int out_fd = 1, err_fd = 2;       // where the "[rank k] " prefixed lines go
};

struct LaunchResult {
  int exit_code = 0;     // 0 when every rank exited 0; else the first failed rank's code (128+signal if killed)
  int failed_rank = -1;  // the first rank that exited non-zero or died, -1 if none
  std::string message;   // "rank 1 was killed by signal 9 (Killed); stopped ranks 0" / ""
  int forwarded_signal = 0;  // SIGINT / SIGTERM the launcher received and passed on, 0 if none
};

// Starts `nproc` copies of `program` with RANK, WORLD_SIZE, LOCAL_RANK, LOCAL_WORLD_SIZE,
// MASTER_ADDR and MASTER_PORT set, prefixes each line they print with "[rank k] ", and waits for
// all. When a rank exits non-zero or dies, the others get `grace_s` seconds to stop (they notice
// the failure through their collectives), then SIGTERM, then SIGKILL. SIGINT/SIGTERM sent to the
// launcher are forwarded. Fails with Error if a process cannot be started.
LaunchResult launch_local(const LaunchOptions& opts);

// A TCP port on 127.0.0.1 that was free a moment ago.
int free_port();

}  // namespace atax::dist
