// eval/sandbox: one contained python3 process per sample.
//
// Process tree (one new session; everything in the run's cgroup where there is one):
//   atax ── C1 supervisor (own group): setsid, joins the cgroup, unshare(NEWNS|NEWPID|NEWNET|NEWIPC|
//            │    NEWUTS) (else a user namespace mapping only our uid, else single namespaces),
//            │    reports C2's pid, reaps C2.
//            └─ C2 init (PID 1 of the new PID namespace; leader of the program's group): private
//               │    mounts, fresh /proc, every mount read-only (recursively), size-limited tmpfs
//               │    over the working folder and /dev/shm, writes prog.py, reaps orphans.
//               └─ M monitor (only with a PID namespace): waits for the program and reports its
//                  │    wait status through the status pipe.
//                  └─ C3 python3 -I -B prog.py: rlimits, bounding capabilities dropped, uid nobody
//                          (when we are root), no new privileges, stdin /dev/null, stdout/stderr to
//                          pipes, scrubbed environment.
// The parent polls the pipes against the wall-clock deadline and always ends by SIGKILLing the
// program's group, waiting for C1 (which reaps C2 only after the kernel has killed everything in
// C2's PID namespace), SIGKILLing C1's group and everything left in the cgroup. Python is not a
// child of PID 1 because PID 1 ignores signals from inside its namespace: os.kill(os.getppid(), 9)
// meets the monitor, which as root it cannot signal, and whose death (in a user namespace, where it
// can) fails the run.
//
// Between fork() and execve() only async-signal-safe calls are made (raw syscalls, no allocation):
// everything the children need is prepared in the parent first.
#include "eval/sandbox.h"

#include <fcntl.h>
#include <grp.h>
#include <poll.h>
#include <sched.h>
#include <signal.h>
#include <sys/mount.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <cmath>
#include <cstring>
#include <fstream>
#include <mutex>
#include <sstream>
#include <thread>

#include "core/core.h"

namespace atax {
namespace {

constexpr uid_t kNobody = 65534;
constexpr int kStatusEnforced = 1;  // value: enforcement bits (written just before execve)
constexpr int kStatusExecErrno = 2;  // value: errno of a failed execve
constexpr int kStatusExit = 3;       // value: the program's raw wait status (written by C2)
constexpr int kStatusSetupErrno = 4; // value: step * 1000 + errno of a failed setup step
constexpr int kStatusInitPid = 5;    // value: C2's pid (the leader of the program's process group)

// Enforcement bits, reported by C3 just before execve.
enum : int32_t {
  kPidNs = 1 << 0, kNetNs = 1 << 1, kMountNs = 1 << 2, kIpcNs = 1 << 3, kRoRoot = 1 << 4,
  kTmpfs = 1 << 5, kCgroupPids = 1 << 6, kUidNobody = 1 << 7, kUserNs = 1 << 8, kRlimits = 1 << 9,
  kNewProc = 1 << 10, kNoNewPrivs = 1 << 11, kCapsDropped = 1 << 12, kNprocLimit = 1 << 13,
  kShm = 1 << 14,
};

struct StatusRecord {
  int32_t tag;
  int32_t value;
};

#ifndef MOUNT_ATTR_RDONLY
#define MOUNT_ATTR_RDONLY 0x00000001
#endif
#ifndef MOUNT_ATTR_NOSUID
#define MOUNT_ATTR_NOSUID 0x00000002
#endif
#ifndef AT_RECURSIVE
#define AT_RECURSIVE 0x8000
#endif
struct SbxMountAttr {  // struct mount_attr (linux/mount.h), spelled out to avoid header clashes
  uint64_t attr_set, attr_clr, propagation, userns_fd;
};

// --- async-signal-safe helpers (children only) ----------------------------------------------

void write_all_raw(int fd, const void* data, size_t n) {
  const char* p = static_cast<const char*>(data);
  while (n > 0) {
    ssize_t w = ::write(fd, p, n);
    if (w < 0) {
      if (errno == EINTR) continue;
      return;
    }
    p += w;
    n -= static_cast<size_t>(w);
  }
}

void send_status(int fd, int32_t tag, int32_t value) {
  StatusRecord r{tag, value};
  write_all_raw(fd, &r, sizeof r);  // 8 bytes < PIPE_BUF: atomic
}

// Writes `v` in decimal into buf (no allocation); returns the length.
size_t format_u64(uint64_t v, char* buf) {
  char tmp[24];
  size_t n = 0;
  do {
    tmp[n++] = static_cast<char>('0' + v % 10);
    v /= 10;
  } while (v > 0);
  for (size_t i = 0; i < n; ++i) buf[i] = tmp[n - 1 - i];
  return n;
}

bool write_small_file(const char* path, const char* text, size_t n) {
  int fd = ::open(path, O_WRONLY | O_CLOEXEC);
  if (fd < 0) return false;
  ssize_t w = ::write(fd, text, n);
  ::close(fd);
  return w == static_cast<ssize_t>(n);
}

// "0 <id> 1" for uid_map / gid_map.
bool write_id_map(const char* path, uint32_t id) {
  char buf[48];
  size_t n = 0;
  buf[n++] = '0';
  buf[n++] = ' ';
  n += format_u64(id, buf + n);
  buf[n++] = ' ';
  buf[n++] = '1';
  buf[n++] = '\n';
  return write_small_file(path, buf, n);
}

// --- everything prepared before fork ---------------------------------------------------------

struct ChildPlan {
  const char* python = nullptr;
  char* const* argv = nullptr;
  char* const* envp = nullptr;
  const char* workdir = nullptr;
  const char* prog_path = nullptr;
  const char* program = nullptr;
  size_t program_len = 0;
  const char* tmpfs_opts_nobody = nullptr;  // size, mode, owned by nobody (we run the program as nobody)
  const char* tmpfs_opts_plain = nullptr;   // size, mode, owned by whoever mounts it
  const char* tmpfs_opts_shm = nullptr;     // size, mode 1777
  const char* cgroup_procs = nullptr;  // nullptr: no cgroup
  const std::vector<std::string>* mount_points = nullptr;  // fallback when mount_setattr is missing
  int out_w = -1, err_w = -1, status_w = -1;
  int out_r = -1, err_r = -1, status_r = -1;
  pid_t parent = 0;
  uid_t outer_uid = 0;
  gid_t outer_gid = 0;
  bool is_root = false;
  rlim_t memory_bytes = 0, cpu_s = 0, file_bytes = 0, nproc = 0;
  rlim_t nproc_userns = 0;  // in a user namespace RLIMIT_NPROC counts only that namespace's processes
};

[[noreturn]] void run_c3(const ChildPlan& p, int32_t bits) {
  // Default signal handling and an empty mask for the program.
  struct sigaction dfl;
  std::memset(&dfl, 0, sizeof dfl);
  dfl.sa_handler = SIG_DFL;
  for (int s = 1; s < NSIG; ++s) ::sigaction(s, &dfl, nullptr);
  sigset_t none;
  sigemptyset(&none);
  ::sigprocmask(SIG_SETMASK, &none, nullptr);

  int devnull = ::open("/dev/null", O_RDONLY | O_CLOEXEC);
  if (devnull < 0 || ::dup2(devnull, 0) < 0 || ::dup2(p.out_w, 1) < 0 || ::dup2(p.err_w, 2) < 0) {
    send_status(p.status_w, kStatusSetupErrno, 1000 * 1 + errno);
    ::_exit(126);
  }
  if (::chdir(p.workdir) != 0) {
    send_status(p.status_w, kStatusSetupErrno, 1000 * 2 + errno);
    ::_exit(126);
  }

  // Resource limits (per process; inherited by anything the program starts).
  bool limits_ok = true;
  auto lim = [&](int res, rlim_t soft, rlim_t hard) {
    struct rlimit r{soft, hard};
    if (::setrlimit(res, &r) != 0) limits_ok = false;
  };
  lim(RLIMIT_AS, p.memory_bytes, p.memory_bytes);
  lim(RLIMIT_CPU, p.cpu_s, p.cpu_s + 1);  // SIGXCPU at the soft limit, SIGKILL a second later
  lim(RLIMIT_FSIZE, p.file_bytes, p.file_bytes);
  const rlim_t nproc = (bits & kUserNs) ? p.nproc_userns : p.nproc;
  lim(RLIMIT_NPROC, nproc, nproc);
  lim(RLIMIT_CORE, 0, 0);
  lim(RLIMIT_NOFILE, 256, 256);
  lim(RLIMIT_MEMLOCK, 0, 0);
  if (limits_ok) bits |= kRlimits;

  // Capabilities: empty the bounding set (needs CAP_SETPCAP, which root and a user-namespace
  // root have) so that no execve can give any back, then change to nobody where we are real root.
  bool caps_ok = true;
  for (int cap = 0; cap <= 63; ++cap) {
    if (::prctl(PR_CAPBSET_DROP, cap, 0, 0, 0) != 0 && errno != EINVAL) caps_ok = false;
  }
  if ((bits & kUserNs) == 0 && p.is_root) {
    if (::setgroups(0, nullptr) == 0 && ::setgid(kNobody) == 0 && ::setuid(kNobody) == 0 &&
        ::getuid() == kNobody && ::geteuid() == kNobody) {
      bits |= kUidNobody;
    } else {
      send_status(p.status_w, kStatusSetupErrno, 1000 * 3 + errno);
      ::_exit(126);  // refusing to run as root without isolation we asked for
    }
  }
  if (caps_ok) bits |= kCapsDropped;
  // RLIMIT_NPROC binds every uid but the initial namespace's root (outside any user namespace).
  if (limits_ok && ((bits & kUidNobody) || p.outer_uid != 0)) bits |= kNprocLimit;
  if (::prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) == 0) bits |= kNoNewPrivs;

  // Nothing but 0, 1, 2 survives execve (the status pipe is already close-on-exec).
#ifdef SYS_close_range
  if (::syscall(SYS_close_range, 3u, ~0u, 4u /* CLOSE_RANGE_CLOEXEC */) != 0)
#endif
  {
    for (int fd = 3; fd < 4096; ++fd) ::fcntl(fd, F_SETFD, FD_CLOEXEC);
  }

  send_status(p.status_w, kStatusEnforced, bits);
  ::execve(p.python, p.argv, p.envp);
  send_status(p.status_w, kStatusExecErrno, errno);
  ::_exit(127);
}

// Forks the program (C3), waits for it and reports its wait status through the status pipe.
[[noreturn]] void run_program_and_report(const ChildPlan& p, int32_t bits) {
  pid_t c3 = ::fork();
  if (c3 < 0) {
    send_status(p.status_w, kStatusSetupErrno, 1000 * 5 + errno);
    ::_exit(126);
  }
  if (c3 == 0) run_c3(p, bits);
  ::close(p.out_w);
  ::close(p.err_w);
  for (;;) {
    int st = 0;
    pid_t w = ::waitpid(c3, &st, 0);
    if (w < 0 && errno == EINTR) continue;
    if (w == c3) send_status(p.status_w, kStatusExit, st);
    ::_exit(w == c3 ? 0 : 125);
  }
}

[[noreturn]] void run_c2(const ChildPlan& p, int32_t bits) {
  ::prctl(PR_SET_PDEATHSIG, SIGKILL, 0, 0, 0);  // C1 gone -> C2 gone -> PID namespace gone
  ::setpgid(0, 0);  // the program's group: the parent kills it while C1 (its own group) waits
  if (bits & kMountNs) {
    if (::mount(nullptr, "/", nullptr, MS_REC | MS_PRIVATE, nullptr) == 0) {
      // A /proc of the new PID namespace: the program sees only its own processes.
      if ((bits & kPidNs) && ::mount("proc", "/proc", "proc", MS_NOSUID | MS_NODEV | MS_NOEXEC, nullptr) == 0)
        bits |= kNewProc;
      // Every mount read-only (recursively), then a private tmpfs over the working folder.
      bool ro = false;
#ifdef SYS_mount_setattr
      SbxMountAttr attr{MOUNT_ATTR_RDONLY | MOUNT_ATTR_NOSUID, 0, 0, 0};
      ro = ::syscall(SYS_mount_setattr, AT_FDCWD, "/", AT_RECURSIVE, &attr, sizeof attr) == 0;
#endif
      if (!ro && p.mount_points != nullptr) {  // older kernels: remount each mount point
        ro = true;
        for (const std::string& mp : *p.mount_points) {
          int rc = ::mount(nullptr, mp.c_str(), nullptr, MS_REMOUNT | MS_BIND | MS_RDONLY | MS_NOSUID, nullptr);
          if (rc != 0 && mp == "/") ro = false;
        }
      }
      if (ro) bits |= kRoRoot;
      const bool to_nobody = p.is_root && !(bits & kUserNs);
      if (::mount("tmpfs", p.workdir, "tmpfs", MS_NOSUID | MS_NODEV,
                  to_nobody ? p.tmpfs_opts_nobody : p.tmpfs_opts_plain) == 0)
        bits |= kTmpfs;
      // A private /dev/shm (POSIX semaphores, multiprocessing), as small as the working folder.
      if (::mount("tmpfs", "/dev/shm", "tmpfs", MS_NOSUID | MS_NODEV | MS_NOEXEC, p.tmpfs_opts_shm) == 0) bits |= kShm;
    } else {
      bits &= ~kMountNs;
    }
  }
  // Without a tmpfs the host folder is the working folder: it must belong to the program's uid.
  if (!(bits & kTmpfs) && p.is_root && !(bits & kUserNs)) {
    if (::chown(p.workdir, kNobody, kNobody) != 0) { /* the program then cannot write its folder */ }
  }
  // The program file: written here so that it lands in the private tmpfs when there is one.
  int fd = ::open(p.prog_path, O_WRONLY | O_CREAT | O_TRUNC | O_NOFOLLOW | O_CLOEXEC, 0644);
  if (fd < 0) {
    send_status(p.status_w, kStatusSetupErrno, 1000 * 4 + errno);
    ::_exit(126);
  }
  write_all_raw(fd, p.program, p.program_len);
  ::close(fd);

  if (bits & kPidNs) {
    // C2 is PID 1, which ignores signals from inside its namespace: put a monitor between it and
    // the program, so that os.kill(os.getppid(), 9) meets a process whose death fails the run.
    pid_t monitor = ::fork();
    if (monitor < 0) {
      send_status(p.status_w, kStatusSetupErrno, 1000 * 5 + errno);
      ::_exit(126);
    }
    if (monitor == 0) run_program_and_report(p, bits);
    ::close(p.out_w);
    ::close(p.err_w);
    ::close(p.status_w);
    for (;;) {  // reap everything; leave (tearing the namespace down) when the monitor is done
      int st = 0;
      pid_t w = ::waitpid(-1, &st, 0);
      if (w < 0 && errno == EINTR) continue;
      if (w == monitor || w < 0) ::_exit(0);
    }
  }
  run_program_and_report(p, bits);
}

[[noreturn]] void run_c1(const ChildPlan& p) {
  sigset_t none;
  sigemptyset(&none);
  ::sigprocmask(SIG_SETMASK, &none, nullptr);
  ::close(p.out_r);
  ::close(p.err_r);
  ::close(p.status_r);
  ::setsid();
  ::prctl(PR_SET_PDEATHSIG, SIGKILL, 0, 0, 0);  // atax gone -> the sample is gone
  if (::getppid() != p.parent) ::_exit(125);

  int32_t bits = 0;
  if (p.cgroup_procs != nullptr) {
    char buf[24];
    size_t n = format_u64(static_cast<uint64_t>(::getpid()), buf);
    if (write_small_file(p.cgroup_procs, buf, n)) bits |= kCgroupPids;
  }

  const int all = CLONE_NEWNS | CLONE_NEWPID | CLONE_NEWNET | CLONE_NEWIPC | CLONE_NEWUTS;
  if (::unshare(all) == 0) {
    bits |= kMountNs | kPidNs | kNetNs | kIpcNs;
  } else if (::unshare(all | CLONE_NEWUSER) == 0) {
    // Unprivileged: become root of a new user namespace that maps only our own uid.
    write_small_file("/proc/self/setgroups", "deny", 4);
    if (write_id_map("/proc/self/uid_map", p.outer_uid) && write_id_map("/proc/self/gid_map", p.outer_gid))
      bits |= kUserNs | kMountNs | kPidNs | kNetNs | kIpcNs;
    else
      bits |= kUserNs | kPidNs | kNetNs | kIpcNs;  // no mapping: mounts will fail, the rest holds
  } else {
    if (::unshare(CLONE_NEWNET) == 0) bits |= kNetNs;
    if (::unshare(CLONE_NEWNS) == 0) bits |= kMountNs;
    if (::unshare(CLONE_NEWPID) == 0) bits |= kPidNs;
    if (::unshare(CLONE_NEWIPC) == 0) bits |= kIpcNs;
  }

  pid_t c2 = ::fork();
  if (c2 < 0) {
    send_status(p.status_w, kStatusSetupErrno, 1000 * 6 + errno);
    ::_exit(126);
  }
  if (c2 == 0) run_c2(p, bits);
  send_status(p.status_w, kStatusInitPid, c2);
  ::close(p.out_w);
  ::close(p.err_w);
  ::close(p.status_w);
  for (;;) {
    int st = 0;
    pid_t w = ::waitpid(c2, &st, 0);
    if (w < 0 && errno == EINTR) continue;
    ::_exit(0);
  }
}

// --- parent side -----------------------------------------------------------------------------

std::string enforced_string(int32_t bits) {
  std::vector<std::string> parts;
  if (bits & kPidNs) parts.push_back("pidns");
  if (bits & kNetNs) parts.push_back("netns");
  if (bits & kMountNs) parts.push_back("mountns");
  if (bits & kIpcNs) parts.push_back("ipcns");
  if (bits & kUserNs) parts.push_back("userns");
  if (bits & kNewProc) parts.push_back("proc");
  if (bits & kRoRoot) parts.push_back("ro-root");
  if (bits & kTmpfs) parts.push_back("tmpfs");
  if (bits & kShm) parts.push_back("shm");
  if (bits & kCgroupPids) parts.push_back("cgroup-pids");
  if (bits & kUidNobody) parts.push_back("uid-nobody");
  if (bits & kCapsDropped) parts.push_back("no-caps");
  if (bits & kNoNewPrivs) parts.push_back("no-new-privs");
  if (bits & kRlimits) parts.push_back("rlimits");
  if (bits & kNprocLimit) parts.push_back("nproc-limit");
  std::string out;
  for (size_t i = 0; i < parts.size(); ++i) out += (i ? "," : "") + parts[i];
  return out;
}

std::string signal_name(int sig) {
  switch (sig) {
    case SIGKILL: return "SIGKILL";
    case SIGXCPU: return "SIGXCPU";
    case SIGXFSZ: return "SIGXFSZ";
    case SIGSEGV: return "SIGSEGV";
    case SIGABRT: return "SIGABRT";
    case SIGBUS: return "SIGBUS";
    case SIGFPE: return "SIGFPE";
    case SIGILL: return "SIGILL";
    case SIGTERM: return "SIGTERM";
    case SIGINT: return "SIGINT";
    case SIGHUP: return "SIGHUP";
    case SIGPIPE: return "SIGPIPE";
    case SIGALRM: return "SIGALRM";
    case SIGUSR1: return "SIGUSR1";
    case SIGUSR2: return "SIGUSR2";
    default: return "signal " + std::to_string(sig);
  }
}

bool is_executable(const std::string& path) { return ::access(path.c_str(), X_OK) == 0; }

// Where run cgroups go (a folder in which we may mkdir and set pids.max), or "" when none.
struct CgroupBase {
  std::string dir;
  bool v2 = false;
};

std::string read_text(const std::string& path) {
  std::ifstream f(path);
  std::stringstream ss;
  ss << f.rdbuf();
  return ss.str();
}

bool write_text(const std::string& path, const std::string& text) {
  int fd = ::open(path.c_str(), O_WRONLY | O_CLOEXEC);
  if (fd < 0) return false;
  ssize_t w = ::write(fd, text.data(), text.size());
  ::close(fd);
  return w == static_cast<ssize_t>(text.size());
}

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

const CgroupBase& cgroup_base() {
  static CgroupBase base = [] {
    CgroupBase b;
    std::error_code ec;
    if (fs::exists("/sys/fs/cgroup/cgroup.controllers", ec)) {  // pure cgroup v2
      std::string dir = "/sys/fs/cgroup" + own_cgroup_path("");
      std::string sub = read_text(dir + "/cgroup.subtree_control");
      if (sub.find("pids") == std::string::npos) write_text(dir + "/cgroup.subtree_control", "+pids");
      if (try_cgroup_dir(dir)) {
        b.dir = dir;
        b.v2 = true;
      }
    } else if (fs::exists("/sys/fs/cgroup/pids/cgroup.procs", ec)) {  // cgroup v1 pids hierarchy
      std::string dir = "/sys/fs/cgroup/pids" + own_cgroup_path("pids");
      if (try_cgroup_dir(dir)) b.dir = dir;
    }
    return b;
  }();
  return base;
}

// Threads currently owned by real uid `uid` (what RLIMIT_NPROC counts), from /proc.
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

std::vector<std::string> read_mount_points() {
  std::vector<std::string> out;
  std::istringstream in(read_text("/proc/self/mountinfo"));
  std::string line;
  while (std::getline(in, line)) {
    std::istringstream ls(line);
    std::string id, parent, dev, root, mp;
    if (!(ls >> id >> parent >> dev >> root >> mp)) continue;
    out.push_back(replace_all(replace_all(mp, "\\040", " "), "\\011", "\t"));
  }
  return out;
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

struct Capture {
  std::string text;
  size_t cap;
  bool truncated = false;
  void add(const char* data, size_t n) {
    size_t room = text.size() < cap ? cap - text.size() : 0;
    if (n > room) truncated = true;
    text.append(data, std::min(n, room));
  }
};

std::string last_line(const std::string& s) {
  size_t end = s.find_last_not_of(" \t\r\n");
  if (end == std::string::npos) return {};
  size_t start = s.rfind('\n', end);
  start = start == std::string::npos ? 0 : start + 1;
  std::string line = s.substr(start, end - start + 1);
  if (line.size() > 200) line = line.substr(0, 200) + "...";
  return line;
}

std::string format_seconds(double s) {
  std::ostringstream o;
  o << s;
  return o.str();
}

std::once_flag g_warn_once;

}  // namespace

std::string find_python3() {
  if (is_executable("/usr/bin/python3")) return "/usr/bin/python3";
  const char* path = std::getenv("PATH");
  if (path != nullptr) {
    for (const std::string& dir : split(path, ':')) {
      if (dir.empty()) continue;
      std::string candidate = dir + "/python3";
      if (is_executable(candidate)) return candidate;
    }
  }
  throw Error("no python3 interpreter found (looked for /usr/bin/python3 and python3 on PATH)", "",
              "install Python 3 (e.g. `apt-get install python3`) to run code-execution tasks");
}

SandboxResult run_python_sandboxed(const std::string& program, const SandboxLimits& limits) {
  SandboxResult result{};
  result.passed = false;
  result.timed_out = false;
  result.exit_code = -1;
  const double t0 = now_seconds();
  const std::string python = find_python3();

  // Pipes (close-on-exec, so that forks in other threads do not inherit them) for stdout, stderr
  // and the children's status records.
  int out_p[2], err_p[2], st_p[2];
  if (::pipe2(out_p, O_CLOEXEC) != 0)
    throw Error(std::string("cannot create a pipe for the sandbox: ") + std::strerror(errno), "",
                "too many open files? raise `ulimit -n`");
  if (::pipe2(err_p, O_CLOEXEC) != 0) {
    const int e = errno;
    for (int fd : {out_p[0], out_p[1]}) ::close(fd);
    throw Error(std::string("cannot create a pipe for the sandbox: ") + std::strerror(e), "", "too many open files? raise `ulimit -n`");
  }
  if (::pipe2(st_p, O_CLOEXEC) != 0) {
    const int e = errno;
    for (int fd : {out_p[0], out_p[1], err_p[0], err_p[1]}) ::close(fd);
    throw Error(std::string("cannot create a pipe for the sandbox: ") + std::strerror(e), "", "too many open files? raise `ulimit -n`");
  }

  // A fresh folder for this sample.
  std::error_code ec;
  std::string tmpl = (fs::temp_directory_path(ec) / "atax-sbx-XXXXXX").string();
  if (ec) tmpl = "/tmp/atax-sbx-XXXXXX";
  std::vector<char> tmpl_buf(tmpl.begin(), tmpl.end());
  tmpl_buf.push_back('\0');
  if (::mkdtemp(tmpl_buf.data()) == nullptr) {
    const int e = errno;
    for (int fd : {out_p[0], out_p[1], err_p[0], err_p[1], st_p[0], st_p[1]}) ::close(fd);
    throw Error(std::string("cannot create a sandbox folder: ") + std::strerror(e), tmpl,
                "check that the temporary folder (TMPDIR) exists and is writable");
  }
  const std::string workdir = tmpl_buf.data();
  const bool is_root = ::geteuid() == 0;
  const std::string prog_path = workdir + "/prog.py";

  // The run's cgroup (pids.max), where one can be made.
  static std::atomic<uint64_t> run_counter{0};
  std::string cgroup_dir;
  const CgroupBase& cg = cgroup_base();
  const int64_t pids_max = std::max<int64_t>(limits.nproc, 1) + 2;  // + C1 and C2
  if (!cg.dir.empty()) {
    std::string dir = cg.dir + "/atax-sbx-" + std::to_string(::getpid()) + "-" + std::to_string(run_counter++);
    if (::mkdir(dir.c_str(), 0755) == 0) {
      if (write_text(dir + "/pids.max", std::to_string(pids_max)))
        cgroup_dir = dir;
      else
        ::rmdir(dir.c_str());
    }
  }
  const std::string cgroup_procs = cgroup_dir.empty() ? "" : cgroup_dir + "/cgroup.procs";

  // RLIMIT_NPROC counts every thread of the real uid, across samples: with a cgroup it is only a
  // backstop; without one it gives this sample `nproc` on top of what that uid already runs.
  const uid_t run_uid = is_root ? kNobody : ::getuid();
  const int64_t already = count_user_threads(run_uid);
  const int64_t nproc_limit = cgroup_dir.empty() ? already + limits.nproc + 2
                                                 : already + 4 * static_cast<int64_t>(limits.nproc) + 64;

  const int64_t file_mb = std::max<int64_t>(limits.file_mb, 1);
  const std::string tmpfs_opts = "size=" + std::to_string(std::max<int64_t>(4 * file_mb, 8)) + "m,nr_inodes=4096,mode=0700";
  const std::string tmpfs_opts_nobody = tmpfs_opts + ",uid=65534,gid=65534";
  const std::string tmpfs_opts_shm = "size=" + std::to_string(std::max<int64_t>(4 * file_mb, 8)) + "m,nr_inodes=1024,mode=1777";

  std::vector<std::string> argv_s = {python, "-I", "-B", prog_path};
  std::vector<std::string> env_s = {"PATH=/usr/local/bin:/usr/bin:/bin", "HOME=" + workdir, "TMPDIR=" + workdir,
                                    "LANG=C.UTF-8", "LC_ALL=C.UTF-8", "PYTHONIOENCODING=utf-8",
                                    // BLAS thread pools would otherwise size themselves to the machine
                                    // and run into the address-space and process limits.
                                    "OPENBLAS_NUM_THREADS=1", "OMP_NUM_THREADS=1", "MKL_NUM_THREADS=1"};
  std::vector<char*> argv, envp;
  for (auto& s : argv_s) argv.push_back(s.data());
  argv.push_back(nullptr);
  for (auto& s : env_s) envp.push_back(s.data());
  envp.push_back(nullptr);
  const std::vector<std::string> mount_points = read_mount_points();

  ChildPlan plan;
  plan.python = python.c_str();
  plan.argv = argv.data();
  plan.envp = envp.data();
  plan.workdir = workdir.c_str();
  plan.prog_path = prog_path.c_str();
  plan.program = program.data();
  plan.program_len = program.size();
  plan.tmpfs_opts_nobody = tmpfs_opts_nobody.c_str();
  plan.tmpfs_opts_plain = tmpfs_opts.c_str();
  plan.tmpfs_opts_shm = tmpfs_opts_shm.c_str();
  plan.cgroup_procs = cgroup_procs.empty() ? nullptr : cgroup_procs.c_str();
  plan.mount_points = &mount_points;
  plan.out_r = out_p[0];
  plan.out_w = out_p[1];
  plan.err_r = err_p[0];
  plan.err_w = err_p[1];
  plan.status_r = st_p[0];
  plan.status_w = st_p[1];
  plan.parent = ::getpid();
  plan.outer_uid = ::getuid();
  plan.outer_gid = ::getgid();
  plan.is_root = is_root;
  plan.memory_bytes = static_cast<rlim_t>(std::max<int64_t>(limits.memory_mb, 1)) << 20;
  plan.cpu_s = static_cast<rlim_t>(std::max<int64_t>(limits.cpu_s, 1));
  plan.file_bytes = static_cast<rlim_t>(file_mb) << 20;
  plan.nproc = static_cast<rlim_t>(nproc_limit);
  plan.nproc_userns = static_cast<rlim_t>(std::max(limits.nproc, 1) + 4);  // + C1, C2, the monitor

  pid_t c1 = ::fork();
  if (c1 == 0) run_c1(plan);
  const int fork_errno = errno;
  ::close(out_p[1]);
  ::close(err_p[1]);
  ::close(st_p[1]);

  Capture out{{}, static_cast<size_t>(std::max<int64_t>(limits.output_kb, 1)) * 1024};
  Capture err{{}, out.cap};
  std::string status_bytes;
  int32_t enforced_bits = 0;
  bool have_enforced = false, have_exit = false;
  int exit_status = 0, exec_errno = 0, setup_errno = 0;
  pid_t init_pid = 0;  // C2: leader of the program's process group (PID 1 of its namespace)

  if (c1 < 0) {
    for (int fd : {out_p[0], err_p[0], st_p[0]}) ::close(fd);
    if (!cgroup_dir.empty()) ::rmdir(cgroup_dir.c_str());
    fs::remove_all(workdir, ec);
    result.reason = std::string("could not fork the sandbox: ") + std::strerror(fork_errno);
    result.wall_s = now_seconds() - t0;
    return result;
  }

  auto parse_status = [&] {
    while (status_bytes.size() >= sizeof(StatusRecord)) {
      StatusRecord r;
      std::memcpy(&r, status_bytes.data(), sizeof r);
      status_bytes.erase(0, sizeof r);
      if (r.tag == kStatusEnforced) {
        enforced_bits = r.value;
        have_enforced = true;
      } else if (r.tag == kStatusExecErrno) {
        exec_errno = r.value;
      } else if (r.tag == kStatusExit) {
        exit_status = r.value;
        have_exit = true;
      } else if (r.tag == kStatusSetupErrno) {
        setup_errno = r.value;
      } else if (r.tag == kStatusInitPid) {
        init_pid = r.value;
      }
    }
  };

  struct pollfd pfd[3] = {{out_p[0], POLLIN, 0}, {err_p[0], POLLIN, 0}, {st_p[0], POLLIN, 0}};
  const double deadline = t0 + std::max(limits.timeout_s, 0.0);
  double drain_deadline = INFINITY;  // set once the program has finished (or C1 is gone)
  bool c1_gone = false;
  char buf[65536];
  auto read_ready = [&] {
    for (int i = 0; i < 3; ++i) {
      if (pfd[i].fd < 0 || !(pfd[i].revents & (POLLIN | POLLHUP | POLLERR))) continue;
      ssize_t n = ::read(pfd[i].fd, buf, sizeof buf);
      if (n > 0) {
        if (i == 0) out.add(buf, static_cast<size_t>(n));
        if (i == 1) err.add(buf, static_cast<size_t>(n));
        if (i == 2) {
          status_bytes.append(buf, static_cast<size_t>(n));
          parse_status();
        }
      } else if (n == 0 || (errno != EINTR && errno != EAGAIN)) {
        ::close(pfd[i].fd);
        pfd[i].fd = -1;
      }
    }
  };
  for (;;) {
    const bool open = pfd[0].fd >= 0 || pfd[1].fd >= 0 || pfd[2].fd >= 0;
    if (!open) break;
    const double now = now_seconds();
    if (!have_exit && now >= deadline) {
      result.timed_out = true;
      break;
    }
    if (now >= drain_deadline) break;
    double until = std::min(have_exit ? drain_deadline : deadline, drain_deadline);
    int wait_ms = static_cast<int>(std::ceil((until - now) * 1000));
    wait_ms = std::clamp(wait_ms, 0, 50);  // wake regularly to notice a dead supervisor
    int rc = ::poll(pfd, 3, wait_ms);
    if (rc < 0 && errno != EINTR) break;
    if (rc > 0) read_ready();
    if (have_exit && drain_deadline == INFINITY) drain_deadline = now_seconds() + 0.25;
    if (!c1_gone) {
      siginfo_t si;
      si.si_pid = 0;
      if (::waitid(P_PID, static_cast<id_t>(c1), &si, WEXITED | WNOHANG | WNOWAIT) == 0 && si.si_pid == c1) {
        c1_gone = true;  // C1 is a zombie now (not reaped, so its pid and group id stay ours)
        if (drain_deadline == INFINITY) drain_deadline = now_seconds() + 0.25;
      }
    }
  }

  // Always, even after success: kill the program's process group (C2's); C1, in a group of its
  // own, reaps C2 only once C2's PID namespace is gone (the kernel kills every process in it
  // before PID 1 finishes exiting), so waiting for C1 waits for the namespace. Then C1's group,
  // and everything left in the cgroup.
  if (pfd[2].fd >= 0) {  // C2's pid may still sit in the status pipe
    ::fcntl(pfd[2].fd, F_SETFL, O_NONBLOCK);
    ssize_t n;
    while ((n = ::read(pfd[2].fd, buf, sizeof buf)) > 0) status_bytes.append(buf, static_cast<size_t>(n));
    parse_status();
  }
  auto c1_exited = [&] {
    siginfo_t si;
    si.si_pid = 0;
    return ::waitid(P_PID, static_cast<id_t>(c1), &si, WEXITED | WNOHANG | WNOWAIT) == 0 && si.si_pid == c1;
  };
  if (init_pid > 0 && !c1_exited()) {  // C1 alive: C2 is not reaped, so its pid is still C2's
    ::kill(-init_pid, SIGKILL);
    ::kill(init_pid, SIGKILL);
    const double until = now_seconds() + 2.0;
    while (!c1_exited() && now_seconds() < until) std::this_thread::sleep_for(std::chrono::milliseconds(1));
  }
  ::kill(-c1, SIGKILL);
  ::kill(c1, SIGKILL);
  if (!cgroup_dir.empty()) kill_cgroup(cgroup_dir);
  int c1_status = 0;
  while (::waitpid(c1, &c1_status, 0) < 0 && errno == EINTR) {
  }
  // Whatever is already in the pipes (nothing can block: every writer we started is dead).
  for (auto& p : pfd)
    if (p.fd >= 0) ::fcntl(p.fd, F_SETFL, O_NONBLOCK);
  for (int round = 0; round < 64 && (pfd[0].fd >= 0 || pfd[1].fd >= 0 || pfd[2].fd >= 0); ++round) {
    bool got = false;
    for (int i = 0; i < 3; ++i) {
      if (pfd[i].fd < 0) continue;
      ssize_t n = ::read(pfd[i].fd, buf, sizeof buf);
      if (n > 0) {
        got = true;
        if (i == 0) out.add(buf, static_cast<size_t>(n));
        if (i == 1) err.add(buf, static_cast<size_t>(n));
        if (i == 2) {
          status_bytes.append(buf, static_cast<size_t>(n));
          parse_status();
        }
      } else {
        ::close(pfd[i].fd);
        pfd[i].fd = -1;
      }
    }
    if (!got) break;
  }
  for (auto& p : pfd)
    if (p.fd >= 0) ::close(p.fd);
  fs::remove_all(workdir, ec);

  result.stdout_text = std::move(out.text);
  result.stderr_text = std::move(err.text);
  result.output_truncated = out.truncated || err.truncated;
  result.enforced = have_enforced ? enforced_string(enforced_bits) : "";
  result.wall_s = now_seconds() - t0;

  if (result.timed_out) {
    result.reason = "timed out after " + format_seconds(limits.timeout_s) + " s (wall clock)";
  } else if (exec_errno != 0) {
    result.reason = "could not start " + python + ": " + std::strerror(exec_errno);
  } else if (!have_exit) {
    result.reason = setup_errno != 0
                        ? "sandbox setup failed (step " + std::to_string(setup_errno / 1000) + ": " +
                              std::strerror(setup_errno % 1000) + ")"
                        : "the sandbox supervisor died before the program finished";
  } else if (WIFSIGNALED(exit_status)) {
    const int sig = WTERMSIG(exit_status);
    result.exit_code = -sig;
    result.reason = "killed by " + signal_name(sig);
    if (sig == SIGXCPU) result.reason += " (cpu limit " + std::to_string(limits.cpu_s) + " s)";
    if (sig == SIGXFSZ) result.reason += " (file size limit " + std::to_string(limits.file_mb) + " MB)";
  } else if (WIFEXITED(exit_status)) {
    result.exit_code = WEXITSTATUS(exit_status);
    if (result.exit_code == 0) {
      result.passed = true;
      result.reason = "passed";
    } else {
      result.reason = "exit code " + std::to_string(result.exit_code);
      std::string line = last_line(result.stderr_text);
      if (!line.empty()) result.reason += ": " + line;
    }
  } else {
    result.reason = "unknown wait status " + std::to_string(exit_status);
  }

  if (have_enforced) {
    std::call_once(g_warn_once, [&] {
      std::vector<std::string> missing;
      if (!(enforced_bits & kNetNs)) missing.push_back("network isolation");
      if (!(enforced_bits & (kCgroupPids | kNprocLimit))) missing.push_back("a process limit");
      if (!(enforced_bits & kRoRoot)) missing.push_back("a read-only file system");
      if (!missing.empty())
        log_info("sandbox: this system does not allow " + join(missing, ", ") + "; enforced: " + result.enforced);
    });
  }
  return result;
}

const SandboxCapabilities& sandbox_capabilities() {
  static const SandboxCapabilities caps = [] {
    SandboxCapabilities c;
    c.python = find_python3();
    SandboxLimits probe;
    probe.timeout_s = 20;
    SandboxResult r = run_python_sandboxed("pass\n", probe);
    c.enforced = r.enforced;
    std::vector<std::string> parts = split(r.enforced, ',');
    auto has = [&](const char* name) { return std::find(parts.begin(), parts.end(), name) != parts.end(); };
    c.pid_namespace = has("pidns");
    c.net_namespace = has("netns");
    c.mount_namespace = has("mountns");
    c.read_only_root = has("ro-root");
    c.private_tmpfs = has("tmpfs");
    c.cgroup_pids = has("cgroup-pids");
    c.unprivileged_uid = has("uid-nobody");
    c.user_namespace = has("userns");
    c.nproc_limit = has("nproc-limit");
    return c;
  }();
  return caps;
}

}  // namespace atax
