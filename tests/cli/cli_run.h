// Helpers for the tests that drive the built `atax` binary: run it with an argument vector (no
// shell), capture its exit code, standard output and standard error, and make scratch folders.
#pragma once

#include <fcntl.h>
#include <signal.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstdlib>
#include <string>
#include <thread>
#include <vector>

#include <gtest/gtest.h>

#include "core/core.h"

#include "../scratch_dir.h"

namespace atax::cli_test {

inline const std::string kAtax = std::string(ATAX_BINARY_DIR) + "/atax";
inline const std::string kShared = ATAX_SHARED_DIR;
inline const std::string kTasksDir = std::string(ATAX_SOURCE_DIR) + "/tasks";

struct RunResult {
  int code = -1;       // exit status; 128 + signal when killed
  std::string out;     // standard output
  std::string err;     // standard error
  bool timed_out = false;
  std::string all() const { return out + err; }
};

inline std::ostream& operator<<(std::ostream& os, const RunResult& r) {
  return os << "exit " << r.code << (r.timed_out ? " (timed out)" : "") << "\n--- stdout ---\n"
            << r.out.substr(0, 4000) << "\n--- stderr ---\n" << r.err.substr(0, 4000);
}

// Runs `atax args...` with stdout and stderr in separate files under a scratch folder; extra
// environment entries ("K=V") are added; the process group is killed after `timeout_s`.
// Progress bars are off and caches go to a private folder, so runs do not touch ~/.cache.
inline RunResult run_atax(const std::vector<std::string>& args, const std::vector<std::string>& env = {},
                          int timeout_s = 300) {
  static int counter = 0;
  static const fs::path dir = test_support::scratch_dir("atax_cli_run");
  const std::string stem = (dir / std::to_string(counter++)).string();
  const std::string out_path = stem + ".out", err_path = stem + ".err";
  std::vector<std::string> full = {kAtax};
  full.insert(full.end(), args.begin(), args.end());
  std::vector<char*> argv;
  for (auto& a : full) argv.push_back(a.data());
  argv.push_back(nullptr);

  RunResult r;
  const pid_t pid = ::fork();
  if (pid < 0) return r;
  if (pid == 0) {
    ::setpgid(0, 0);
    int fo = ::open(out_path.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
    int fe = ::open(err_path.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
    int fi = ::open("/dev/null", O_RDONLY);
    if (fo < 0 || fe < 0 || fi < 0) ::_exit(126);
    ::dup2(fi, 0);
    ::dup2(fo, 1);
    ::dup2(fe, 2);
    ::setenv("ATAX_PROGRESS", "0", 1);
    ::setenv("ATAX_CACHE_DIR", (dir / "cache").c_str(), 1);
    for (const auto& kv : env) {
      auto eq = kv.find('=');
      ::setenv(kv.substr(0, eq).c_str(), kv.substr(eq + 1).c_str(), 1);
    }
    ::execv(argv[0], argv.data());
    ::_exit(127);
  }
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(timeout_s);
  int status = 0;
  while (true) {
    pid_t w = ::waitpid(pid, &status, WNOHANG);
    if (w == pid) break;
    if (std::chrono::steady_clock::now() > deadline) {
      ::kill(-pid, SIGKILL);
      ::waitpid(pid, &status, 0);
      r.timed_out = true;
      break;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  r.code = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
  r.out = fs::exists(out_path) ? read_file(out_path) : "";
  r.err = fs::exists(err_path) ? read_file(err_path) : "";
  fs::remove(out_path);
  fs::remove(err_path);
  return r;
}

// A fresh, empty scratch folder for one test (removed by the destructor).
class TempDir {
 public:
  explicit TempDir(const std::string& tag) {
    path_ = fs::temp_directory_path() / ("atax_cli_" + tag + "_" + std::to_string(::getpid()));
    fs::remove_all(path_);
    fs::create_directories(path_);
  }
  ~TempDir() {
    std::error_code ec;
    fs::remove_all(path_, ec);
  }
  const fs::path& path() const { return path_; }
  std::string operator/(const std::string& name) const { return (path_ / name).string(); }

 private:
  fs::path path_;
};

// Holds an exclusive flock on `path` for its lifetime (serialises tests that share a folder
// when ctest runs them in parallel).
class FileLock {
 public:
  explicit FileLock(const fs::path& path) {
    fs::create_directories(path.parent_path());
    fd_ = ::open(path.c_str(), O_RDWR | O_CREAT, 0644);
    if (fd_ >= 0) ::flock(fd_, LOCK_EX);
  }
  ~FileLock() {
    if (fd_ >= 0) {
      ::flock(fd_, LOCK_UN);
      ::close(fd_);
    }
  }

 private:
  int fd_ = -1;
};

inline void write_text(const fs::path& path, const std::string& text) { write_file_atomic(path, text); }

inline void write_jsonl(const fs::path& path, const std::vector<json>& lines) {
  std::string s;
  for (const auto& l : lines) s += l.dump() + "\n";
  write_file_atomic(path, s);
}

// The JSON lines of `text` (blank lines ignored).
inline std::vector<json> parse_lines(const std::string& text) {
  std::vector<json> out;
  size_t start = 0;
  while (start < text.size()) {
    size_t end = text.find('\n', start);
    if (end == std::string::npos) end = text.size();
    std::string line = text.substr(start, end - start);
    if (!trim(line).empty()) out.push_back(json::parse(line));
    start = end + 1;
  }
  return out;
}

inline bool contains(const std::string& haystack, const std::string& needle) {
  return haystack.find(needle) != std::string::npos;
}

}  // namespace atax::cli_test
