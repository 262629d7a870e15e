// sandbox/host: what the sandbox keeps on the host: run cgroups (pids.max), the uid's thread count
// (RLIMIT_NPROC), the per-run folder <temp>/atax-sbx-<pid>-XXXXXX, and the removal of what
// killed runs left behind.
#include <signal.h>
#include <sys/stat.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <mutex>
#include <sstream>
#include <thread>

#include "core/core.h"
#include "sandbox/internal.h"
#include "sandbox/sandbox.h"

namespace atax {
namespace sandbox_detail {
namespace {

namespace fs = std::filesystem;

constexpr const char* kPrefix = "atax-sbx-";

// Our cgroup path in the hierarchy named by `controller` ("" = the v2 unified "0::" line).
std::string own_cgroup_path(const std::string& controller) {
  std::istringstream in(read_text("/proc/self/cgroup"));
  std::string line;
  while (std::getline(in, line)) {
    size_t a = line.find(':');
    size_t b = line.find(':', a + 1);
    if (a == std::string::npos || b == std::string::npos) continue;
    std::string ctrls = line.substr(a + 1, b - a - 1);
    std::string path = line.substr(b + 1);
    if (controller.empty() ? (line.compare(0, a, "0") == 0 && ctrls.empty()) : false) return path;
    if (!controller.empty()) {
      for (const std::string& c : split(ctrls, ','))
        if (c == controller) return path;
    }
  }
  return {};
}

bool try_cgroup_dir(const std::string& base) {
  std::string probe = base + "/atax-sbx-probe-" + std::to_string(::getpid());
  if (::mkdir(probe.c_str(), 0755) != 0 && errno != EEXIST) return false;
  bool ok = write_text(probe + "/pids.max", "64");
  ::rmdir(probe.c_str());
  return ok;
}

fs::path temp_root() {
  std::error_code ec;
  fs::path t = fs::temp_directory_path(ec);
  return ec ? fs::path("/tmp") : t;
}

// The owner pid of "atax-sbx-<pid>-..." (0 when the name is not one of ours).
pid_t owner_pid(const std::string& name) {
  if (!starts_with(name, kPrefix)) return 0;
  const std::string rest = name.substr(std::strlen(kPrefix));
  const size_t dash = rest.find('-');
  if (dash == 0 || dash == std::string::npos || rest.find_first_not_of("0123456789") != dash) return 0;
  return static_cast<pid_t>(std::atol(rest.substr(0, dash).c_str()));
}

bool pid_dead(pid_t pid) { return ::kill(pid, 0) != 0 && errno == ESRCH; }

}  // namespace

std::string read_text(const std::string& path) {
  std::ifstream f(path);
  std::stringstream ss;
  ss << f.rdbuf();
  return ss.str();
}

bool write_text(const std::string& path, const std::string& text) {
  return write_small_file(path.c_str(), text.data(), text.size());
}

const CgroupBase& cgroup_base() {
  static CgroupBase base = [] {
    CgroupBase b;
    std::error_code ec;
    if (fs::exists("/sys/fs/cgroup/cgroup.controllers", ec)) {  // pure cgroup v2
      std::string dir = "/sys/fs/cgroup" + own_cgroup_path("");
      std::string sub = read_text(dir + "/cgroup.subtree_control");
      if (sub.find("pids") == std::string::npos) write_text(dir + "/cgroup.subtree_control", "+pids");
      if (try_cgroup_dir(dir)) b.dir = dir;
    } else if (fs::exists("/sys/fs/cgroup/pids/cgroup.procs", ec)) {  // cgroup v1 pids hierarchy
      std::string dir = "/sys/fs/cgroup/pids" + own_cgroup_path("pids");
      if (try_cgroup_dir(dir)) b.dir = dir;
    }
    return b;
  }();
  return base;
}

std::string make_run_cgroup(int64_t pids_max) {
  static std::atomic<uint64_t> run_counter{0};
  const CgroupBase& cg = cgroup_base();
  if (cg.dir.empty()) return "";
  std::string dir = cg.dir + "/" + kPrefix + std::to_string(::getpid()) + "-" + std::to_string(run_counter++);
  if (::mkdir(dir.c_str(), 0755) != 0) return "";
  if (write_text(dir + "/pids.max", std::to_string(pids_max))) return dir;
  ::rmdir(dir.c_str());
  return "";
}

void kill_cgroup(const std::string& dir) {
  // Kill until empty (a fork in flight may add a process after a read), then remove the folder.
  double until = now_seconds() + 2.0;
  for (;;) {
    std::istringstream in(read_text(dir + "/cgroup.procs"));
    bool any = false;
    pid_t pid;
    while (in >> pid) {
      any = true;
      ::kill(pid, SIGKILL);
    }
    if (!any && ::rmdir(dir.c_str()) == 0) return;
    if (now_seconds() > until) {
      if (::rmdir(dir.c_str()) != 0)
        log_info("sandbox: could not remove cgroup " + dir + " (" + std::strerror(errno) + ")");
      return;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  }
}

int64_t count_user_threads(uid_t uid) {
  int64_t total = 0;
  std::error_code ec;
  for (const auto& e : fs::directory_iterator("/proc", ec)) {
    const std::string name = e.path().filename().string();
    if (name.empty() || name.find_first_not_of("0123456789") != std::string::npos) continue;
    std::ifstream f(e.path() / "status");
    std::string line;
    bool mine = false;
    int64_t threads = 0;
    while (std::getline(f, line)) {
      if (starts_with(line, "Uid:")) {
        std::istringstream ls(line.substr(4));
        uid_t real = 0;
        ls >> real;
        mine = real == uid;
      } else if (starts_with(line, "Threads:")) {
        threads = std::atoll(line.c_str() + 8);
      }
    }
    if (mine) total += threads;
  }
  return total;
}

std::string make_work_folder() {
  std::string tmpl = (temp_root() / (std::string(kPrefix) + std::to_string(::getpid()) + "-XXXXXX")).string();
  std::vector<char> buf(tmpl.begin(), tmpl.end());
  buf.push_back('\0');
  if (::mkdtemp(buf.data()) == nullptr)
    throw Error(std::string("cannot create a sandbox folder: ") + std::strerror(errno), tmpl,
                "check that the temporary folder (TMPDIR) exists and is writable");
  return buf.data();
}

void remove_leftovers_once() {
  static std::once_flag once;
  std::call_once(once, [] { remove_sandbox_leftovers(); });
}

}  // namespace sandbox_detail

int remove_sandbox_leftovers() {
  using namespace sandbox_detail;
  int removed = 0;
  std::error_code ec;
  for (const auto& e : fs::directory_iterator(temp_root(), ec)) {
    const std::string name = e.path().filename().string();
    const pid_t pid = owner_pid(name);
    struct stat st;
    if (pid <= 0 || ::lstat(e.path().c_str(), &st) != 0 || !S_ISDIR(st.st_mode) || st.st_uid != ::geteuid()) continue;
    if (!pid_dead(pid)) continue;
    std::error_code rm;
    fs::remove_all(e.path(), rm);
    if (!rm) ++removed;
  }
  const CgroupBase& cg = cgroup_base();
  if (!cg.dir.empty()) {
    for (const auto& e : fs::directory_iterator(cg.dir, ec)) {
      const std::string name = e.path().filename().string();
      const pid_t pid = owner_pid(name);
      if (pid <= 0 || !e.is_directory() || !pid_dead(pid)) continue;
      kill_cgroup(e.path().string());
      if (!fs::exists(e.path())) ++removed;
    }
  }
  return removed;
}

}  // namespace atax
