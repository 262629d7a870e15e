// Helpers for the multi-process tests of src/dist: a test program runs some of its own functions
// ("workers") as ranks. The parent test starts the binary again with ATAX_DIST_TEST_WORKER=<name>
// and the rank variables; a static object built after every worker's registration runs the worker
// before GoogleTest's main and exits with its code.
#pragma once

#include <fcntl.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <functional>
#include <iostream>
#include <map>
#include <string>
#include <thread>
#include <vector>

#include "core/core.h"
#include "dist/dist.h"

namespace atax::dist::testing {

using WorkerFn = std::function<int()>;

inline std::map<std::string, WorkerFn>& worker_registry() {
  static std::map<std::string, WorkerFn> registry;
  return registry;
}

struct WorkerRegistrar {
  WorkerRegistrar(const char* name, WorkerFn fn) { worker_registry()[name] = std::move(fn); }
};

// Runs the worker named by ATAX_DIST_TEST_WORKER, if any, and exits the process with its code;
// an atax::Error becomes "atax: error: ..." and exit 2, like the CLI.
struct WorkerDispatch {
  WorkerDispatch() {
    const char* name = std::getenv("ATAX_DIST_TEST_WORKER");
    if (!name) return;
    int code = 0;
    auto it = worker_registry().find(name);
    if (it == worker_registry().end()) {
      std::cerr << "no worker " << name << "\n";
      code = 100;
    } else {
      try {
        code = it->second();
      } catch (const Error& e) {
        std::cerr << "atax: error: " << e.what() << "\n";
        code = 2;
      } catch (const std::exception& e) {
        std::cerr << "atax: error: " << e.what() << "\n";
        code = 1;
      }
    }
    std::cout.flush();
    std::cerr.flush();
    std::exit(code);
  }
};

inline std::string env_or(const char* name, const std::string& fallback) {
  const char* v = std::getenv(name);
  return v ? std::string(v) : fallback;
}

// The folder a worker writes its results to (set by the parent).
inline fs::path worker_dir() { return env_or("ATAX_DIST_TEST_DIR", "."); }

struct RankRun {
  int exit_code = -1;       // exit status, or 128 + signal
  bool timed_out = false;   // the parent had to kill it at the deadline
  std::string output;       // stdout and stderr
};

inline fs::path self_exe() { return fs::read_symlink("/proc/self/exe"); }

inline fs::path make_temp_dir(const std::string& tag) {
  std::string tmpl = (fs::temp_directory_path() / ("atax_dist_" + tag + "_XXXXXX")).string();
  char* d = ::mkdtemp(tmpl.data());
  if (!d) throw std::runtime_error("mkdtemp failed");
  return fs::path(d);
}

struct RunOptions {
  int world = 2;
  std::map<std::string, std::string> env;  // extra variables for every rank
  std::vector<int> ranks;                  // which ranks to start (default all)
  double deadline_s = 120;                 // hang guard: kill everything after this
  // Called every 50 ms with the pids (-1 once exited); may kill one to simulate a crash.
  std::function<void(std::vector<pid_t>&)> monitor;
};

// Starts `worker` as the ranks of a `world`-rank job on 127.0.0.1 (a fresh port) and waits.
inline std::vector<RankRun> run_ranks(const std::string& worker, const fs::path& dir, RunOptions opts) {
  if (opts.ranks.empty())
    for (int r = 0; r < opts.world; ++r) opts.ranks.push_back(r);
  const int port = free_port();
  const fs::path exe = self_exe();
  std::vector<pid_t> pids;
  for (int r : opts.ranks) {
    fs::path log = dir / ("rank" + std::to_string(r) + ".log");
    pid_t pid = ::fork();
    if (pid == 0) {
      int fd = ::open(log.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
      ::dup2(fd, 1);
      ::dup2(fd, 2);
      ::setenv("ATAX_DIST_TEST_WORKER", worker.c_str(), 1);
      ::setenv("ATAX_DIST_TEST_DIR", dir.c_str(), 1);
      ::setenv("RANK", std::to_string(r).c_str(), 1);
      ::setenv("WORLD_SIZE", std::to_string(opts.world).c_str(), 1);
      ::setenv("LOCAL_RANK", std::to_string(r).c_str(), 1);
      ::setenv("MASTER_ADDR", "127.0.0.1", 1);
      ::setenv("MASTER_PORT", std::to_string(port).c_str(), 1);
      ::setenv("ATAX_PROGRESS", "0", 1);
      for (auto& [k, v] : opts.env) ::setenv(k.c_str(), v.c_str(), 1);
      ::execl(exe.c_str(), exe.c_str(), static_cast<char*>(nullptr));
      ::_exit(127);
    }
    pids.push_back(pid);
  }
  std::vector<RankRun> runs(opts.ranks.size());
  auto start = std::chrono::steady_clock::now();
  size_t alive = pids.size();
  std::vector<pid_t> live = pids;
  while (alive > 0) {
    for (size_t i = 0; i < pids.size(); ++i) {
      if (live[i] < 0) continue;
      int status = 0;
      if (::waitpid(pids[i], &status, WNOHANG) == pids[i]) {
        runs[i].exit_code = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
        live[i] = -1;
        --alive;
      }
    }
    if (alive == 0) break;
    if (opts.monitor) opts.monitor(live);
    double elapsed = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
    if (elapsed > opts.deadline_s) {
      for (size_t i = 0; i < pids.size(); ++i) {
        if (live[i] < 0) continue;
        ::kill(pids[i], SIGKILL);
        int status = 0;
        ::waitpid(pids[i], &status, 0);
        runs[i].timed_out = true;
        runs[i].exit_code = 128 + SIGKILL;
        live[i] = -1;
      }
      break;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
  for (size_t i = 0; i < opts.ranks.size(); ++i) {
    std::error_code ec;
    fs::path log = dir / ("rank" + std::to_string(opts.ranks[i]) + ".log");
    if (fs::exists(log, ec)) runs[i].output = read_file(log);
  }
  return runs;
}

inline std::string describe(const std::vector<RankRun>& runs) {
  std::string s;
  for (size_t i = 0; i < runs.size(); ++i)
    s += "--- rank " + std::to_string(i) + " exit " + std::to_string(runs[i].exit_code) +
         (runs[i].timed_out ? " (killed at the deadline)" : "") + "\n" + runs[i].output + "\n";
  return s;
}

}  // namespace atax::dist::testing

#define ATAX_DIST_CONCAT2(a, b) a##b
#define ATAX_DIST_CONCAT(a, b) ATAX_DIST_CONCAT2(a, b)
// Defines a worker function `int name()` run as a rank.
#define ATAX_DIST_WORKER(name)                                                                        \
  static int name();                                                                                 \
  static ::atax::dist::testing::WorkerRegistrar ATAX_DIST_CONCAT(worker_reg_, name)(#name, name);    \
  static int name()
// Must follow every ATAX_DIST_WORKER of the file.
#define ATAX_DIST_WORKER_MAIN() static ::atax::dist::testing::WorkerDispatch atax_dist_worker_dispatch
