// Output folders that are never destroyed by accident: a manifest names the command that wrote a
// folder, a flock on a lock file beside it keeps a second writer out, and staging folders that
// killed runs left behind are removed. Also the machine's available memory.
#include <fcntl.h>
#include <sys/file.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <climits>
#include <cstring>
#include <fstream>
#include <sstream>

#include "core/core.h"

namespace atax {

namespace {

fs::path strip_trailing_slash(fs::path p) {
  if (p.filename().empty() && p.has_parent_path()) p = p.parent_path();
  return p;
}

std::string read_fd(int fd) {
  std::string s;
  char buf[256];
  ssize_t n;
  off_t off = 0;
  while ((n = ::pread(fd, buf, sizeof buf, off)) > 0) {
    s.append(buf, static_cast<size_t>(n));
    off += n;
    if (s.size() > 4096) break;
  }
  return s;
}

// The manifest of `dir`, or null when it has none (or an unreadable one).
json read_manifest(const fs::path& dir) {
  std::error_code ec;
  const fs::path m = dir / kOutputManifest;
  if (!fs::is_regular_file(m, ec)) return nullptr;
  try {
    json j = json::parse(read_file(m));
    if (j.is_object() && j.contains("command") && j["command"].is_string()) return j;
  } catch (const std::exception&) {
  }
  return nullptr;
}

}  // namespace

OutputDir::OutputDir(fs::path dir, fs::path lock_path, int fd, std::string command)
    : dir_(std::move(dir)), lock_path_(std::move(lock_path)), fd_(fd), command_(std::move(command)) {}

OutputDir::OutputDir(OutputDir&& o) noexcept
    : dir_(std::move(o.dir_)),
      lock_path_(std::move(o.lock_path_)),
      fd_(o.fd_),
      command_(std::move(o.command_)),
      created_(o.created_),
      finished_(o.finished_) {
  o.fd_ = -1;
}

OutputDir& OutputDir::operator=(OutputDir&& o) noexcept {
  if (this != &o) {
    release();
    dir_ = std::move(o.dir_);
    lock_path_ = std::move(o.lock_path_);
    fd_ = o.fd_;
    command_ = std::move(o.command_);
    created_ = o.created_;
    finished_ = o.finished_;
    o.fd_ = -1;
  }
  return *this;
}

OutputDir::~OutputDir() { release(); }

void OutputDir::release() {
  if (fd_ < 0) return;
  if (created_ && !finished_) {
    std::error_code ec;
    bool only_manifest = true;
    for (const auto& e : fs::directory_iterator(dir_, ec))
      if (e.path().filename() != kOutputManifest) only_manifest = false;
    if (!ec && only_manifest) fs::remove_all(dir_, ec);
  }
  // Unlinked while still locked; a waiter that opened the old inode notices (claim_output_dir
  // compares inodes after locking) and retries on a fresh file.
  std::error_code ec;
  fs::remove(lock_path_, ec);
  ::flock(fd_, LOCK_UN);
  ::close(fd_);
  fd_ = -1;
}

void OutputDir::mark_finished(const json& extra) {
  json m = read_manifest(dir_);
  if (m.is_null()) m = {{"atax_output", 1}, {"command", command_}};
  m["finished"] = iso_datetime_utc();
  m["pid"] = static_cast<int64_t>(::getpid());
  for (auto it = extra.begin(); it != extra.end(); ++it) m[it.key()] = it.value();
  write_json_atomic(dir_ / kOutputManifest, m);
  finished_ = true;
}

void remove_stale_staging(const fs::path& final_dir);  // files.cpp

OutputDir claim_output_dir(const fs::path& dir_in, const std::string& command, bool force, const std::string& option) {
  const fs::path dir = strip_trailing_slash(dir_in);
  if (dir.empty()) throw Error("no output folder given", "", "pass " + option + " DIR");
  const fs::path parent = dir.has_parent_path() ? dir.parent_path() : fs::path(".");
  std::error_code ec;
  fs::create_directories(parent, ec);
  if (ec) throw Error("cannot create the folder: " + ec.message(), parent.string(), "choose another " + option);
  const fs::path lock_path = parent / ("." + dir.filename().string() + ".atax-lock");

  int fd = -1;
  for (int attempt = 0; attempt < 20; ++attempt) {
    fd = ::open(lock_path.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0644);
    if (fd < 0)
      throw Error(std::string("cannot create the lock file: ") + std::strerror(errno), lock_path.string(),
                  "choose an " + option + " in a folder you can write to");
    if (::flock(fd, LOCK_EX | LOCK_NB) != 0) {
      const int e = errno;
      std::string holder = trim(read_fd(fd));
      ::close(fd);
      if (e == EWOULDBLOCK)
        throw Error("the output folder is being written by another atax process" +
                        (holder.empty() ? std::string() : " (pid " + holder + ")"),
                    dir.string(), "wait for it to finish, or choose another " + option);
      throw Error(std::string("cannot lock: ") + std::strerror(e), lock_path.string());
    }
    struct stat held {}, now {};
    if (::fstat(fd, &held) == 0 && ::stat(lock_path.c_str(), &now) == 0 && held.st_ino == now.st_ino &&
        held.st_dev == now.st_dev)
      break;  // the lock file is still the one at lock_path
    ::close(fd);  // its holder removed it between our open and flock: take the new one
    fd = -1;
  }
  if (fd < 0) throw Error("cannot take the lock", lock_path.string(), "remove the file if no atax process runs");
  const std::string pid = std::to_string(::getpid()) + "\n";
  if (::ftruncate(fd, 0) != 0 || ::pwrite(fd, pid.data(), pid.size(), 0) < 0) {
    // The lock itself holds; the pid is only for messages.
  }
  OutputDir claim(dir, lock_path, fd, command);

  const std::string refuse_hint = "choose another " + option + ", or pass --force to replace it";
  if (fs::exists(fs::symlink_status(dir, ec))) {
    if (!fs::is_directory(dir, ec)) {
      if (!force) throw Error("the output exists and is not a folder", dir.string(), refuse_hint);
      fs::remove(dir, ec);
      if (ec) throw Error("cannot remove: " + ec.message(), dir.string());
    } else if (!fs::is_empty(dir, ec)) {
      const json m = read_manifest(dir);
      if (m.is_null()) {
        if (!force)
          throw Error("the output folder already holds files that atax did not write there (no " +
                          std::string(kOutputManifest) + ")",
                      dir.string(), refuse_hint);
      } else if (m["command"].get<std::string>() != command && !force) {
        throw Error("the output folder holds the output of `atax " + m["command"].get<std::string>() +
                        "`, not of `atax " + command + "`",
                    dir.string(), refuse_hint);
      }
    }
  }
  remove_stale_staging(dir);
  claim.set_created(!fs::exists(dir, ec));
  fs::create_directories(dir, ec);
  if (ec) throw Error("cannot create the output folder: " + ec.message(), dir.string(), "choose another " + option);
  json m = read_manifest(dir);
  json fresh = {{"atax_output", 1},
                {"command", command},
                {"pid", static_cast<int64_t>(::getpid())},
                {"started", iso_datetime_utc()},
                {"finished", nullptr},
                {"atax_version", atax_version()}};
  if (!m.is_null() && m.value("command", "") == command && m.contains("finished") && !m["finished"].is_null())
    fresh["previous_finished"] = m["finished"];
  write_json_atomic(dir / kOutputManifest, fresh);
  return claim;
}

int64_t available_memory_bytes() {
  int64_t best = -1;
  auto take = [&](int64_t v) {
    if (v >= 0 && (best < 0 || v < best)) best = v;
  };
  {
    std::ifstream in("/proc/meminfo");
    std::string key;
    int64_t kb;
    std::string unit;
    while (in >> key >> kb) {
      std::getline(in, unit);
      if (key == "MemAvailable:") {
        take(kb * 1024);
        break;
      }
    }
  }
  {
    // cgroup v2 limit of this process's group.
    std::ifstream max_in("/sys/fs/cgroup/memory.max"), cur_in("/sys/fs/cgroup/memory.current");
    std::string max_s;
    int64_t cur = 0;
    if (max_in >> max_s && max_s != "max" && cur_in >> cur) {
      try {
        take(std::max<int64_t>(0, std::stoll(max_s) - cur));
      } catch (const std::exception&) {
      }
    }
  }
  struct rlimit rl {};
  if (::getrlimit(RLIMIT_AS, &rl) == 0 && rl.rlim_cur != RLIM_INFINITY && rl.rlim_cur < (rlim_t)INT64_MAX) {
    int64_t used = 0;
    std::ifstream st("/proc/self/statm");
    int64_t pages = 0;
    if (st >> pages) used = pages * ::sysconf(_SC_PAGESIZE);
    take(std::max<int64_t>(0, static_cast<int64_t>(rl.rlim_cur) - used));
  }
  return best;
}

void check_memory_need(int64_t bytes, const std::string& what, const std::string& hint) {
  const int64_t avail = available_memory_bytes();
  if (avail < 0 || bytes <= avail) return;
  char buf[160];
  std::snprintf(buf, sizeof buf, "%s needs about %.2f GiB of memory, but only %.2f GiB is available", what.c_str(),
                static_cast<double>(bytes) / (1 << 30), static_cast<double>(avail) / (1 << 30));
  throw Error(buf, "", hint);
}

}  // namespace atax
