// Scratch folders for tests: fs::temp_directory_path()/<prefix>_<name>_<pid>, emptied when made and
// removed when the test program exits, so runs of the suite leave nothing behind in /tmp.
#pragma once

#include <unistd.h>

#include <filesystem>
#include <mutex>
#include <set>
#include <string>

namespace atax::test_support {

class ScratchDirs {
 public:
  static ScratchDirs& get() {
    static ScratchDirs s;
    return s;
  }
  std::filesystem::path make(const std::string& prefix, const std::string& name) {
    namespace fs = std::filesystem;
    fs::path d = fs::temp_directory_path() /
                 (prefix + (name.empty() ? "" : "_" + name) + "_" + std::to_string(::getpid()));
    std::error_code ec;
    fs::remove_all(d, ec);
    fs::create_directories(d);
    std::lock_guard<std::mutex> lock(mu_);
    dirs_.insert(d);
    return d;
  }

 private:
  ScratchDirs() : owner_(::getpid()) {}
  ~ScratchDirs() {
    if (::getpid() != owner_) return;  // a forked child that exits leaves its parent's folders
    std::error_code ec;
    for (const auto& d : dirs_) std::filesystem::remove_all(d, ec);
  }
  const pid_t owner_;
  std::mutex mu_;
  std::set<std::filesystem::path> dirs_;
};

inline std::filesystem::path scratch_dir(const std::string& prefix, const std::string& name = "") {
  return ScratchDirs::get().make(prefix, name);
}

}  // namespace atax::test_support
