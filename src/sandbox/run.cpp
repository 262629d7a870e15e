// sandbox/run: run_python_sandboxed() as named steps: open the pipes, make the run's folder and
// cgroup, prepare the children's plan, fork, supervise, clean up, and read the outcome.
#include <fcntl.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <filesystem>
#include <sstream>

#include "core/core.h"
#include "sandbox/internal.h"
#include "sandbox/sandbox.h"

namespace atax {
namespace {

using namespace sandbox_detail;
namespace fs = std::filesystem;

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
    case SIGSYS: return "SIGSYS";
    default: return "signal " + std::to_string(sig);
  }
}

bool is_executable(const std::string& path) { return ::access(path.c_str(), X_OK) == 0; }

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

// Three close-on-exec pipes (so that forks in other threads do not inherit them); closes them
// all again when the destructor runs before release().
struct Pipes {
  int out[2] = {-1, -1}, err[2] = {-1, -1}, status[2] = {-1, -1};
  Pipes() {
    for (int* p : {out, err, status}) {
      if (::pipe2(p, O_CLOEXEC) != 0) {
        const int e = errno;
        close_all();
        throw Error(std::string("cannot create a pipe for the sandbox: ") + std::strerror(e), "",
                    "too many open files? raise `ulimit -n`");
      }
      // A caller with 0, 1 or 2 closed would get them here, and the program's stdio would
      // then overwrite a pipe: keep every end above 2.
      for (int k = 0; k < 2; ++k) {
        if (p[k] > 2) continue;
        const int lifted = ::fcntl(p[k], F_DUPFD_CLOEXEC, 3);
        if (lifted < 0) {
          const int e = errno;
          close_all();
          throw Error(std::string("cannot move a sandbox pipe above stdio: ") + std::strerror(e));
        }
        ::close(p[k]);
        p[k] = lifted;
      }
    }
  }
  ~Pipes() { close_all(); }
  void close_write_ends() {
    for (int* p : {out, err, status}) close_fd(p[1]);
  }
  void release_read_ends() { out[0] = err[0] = status[0] = -1; }  // supervise() closes them
  void close_all() {
    for (int* p : {out, err, status}) {
      close_fd(p[0]);
      close_fd(p[1]);
    }
  }
  static void close_fd(int& fd) {
    if (fd >= 0) ::close(fd);
    fd = -1;
  }
};

// The run's host folder (the private root's mount point) and cgroup, removed on every path.
struct RunResources {
  std::string folder;
  std::string cgroup;
  ~RunResources() {
    std::error_code ec;
    if (!folder.empty()) fs::remove_all(folder, ec);
    if (!cgroup.empty()) ::rmdir(cgroup.c_str());
  }
};

// The strings the children use, owned here so that the plan's pointers stay valid.
struct PlanStrings {
  std::string python, root_tmp, root_workdir, root_prog, root_proc, root_shm, workdir, prog;
  std::string tmpfs_root, tmpfs_tmp, tmpfs_shm, cgroup_procs;
  std::vector<std::string> argv_s, env_s;
  std::vector<char*> argv, envp;
  std::vector<RootOp> root_ops;
};

void fill_strings(PlanStrings& s, const std::string& python, const std::string& folder, const std::string& cgroup,
                  const SandboxLimits& limits) {
  const std::string base = fs::path(folder).filename().string();
  s.python = python;
  s.workdir = "/tmp/" + base;
  s.prog = s.workdir + "/prog.py";
  s.root_tmp = folder + "/tmp";
  s.root_workdir = folder + s.workdir;
  s.root_prog = folder + s.prog;
  s.root_proc = folder + "/proc";
  s.root_shm = folder + "/dev/shm";
  const int64_t file_mb = std::max<int64_t>(limits.file_mb, 1);
  const std::string size = "size=" + std::to_string(std::max<int64_t>(4 * file_mb, 8)) + "m";
  s.tmpfs_root = "size=1m,nr_inodes=4096,mode=0755";
  s.tmpfs_tmp = size + ",nr_inodes=4096,mode=1777";
  s.tmpfs_shm = size + ",nr_inodes=1024,mode=1777";
  s.cgroup_procs = cgroup.empty() ? "" : cgroup + "/cgroup.procs";
  s.argv_s = {python, "-I", "-B", s.prog};
  s.env_s = {"PATH=/usr/local/bin:/usr/bin:/bin", "HOME=" + s.workdir, "TMPDIR=/tmp", "LANG=C.UTF-8", "LC_ALL=C.UTF-8",
             "PYTHONIOENCODING=utf-8",
             // BLAS thread pools would otherwise size themselves to the machine and run into the
             // address-space and process limits.
             "OPENBLAS_NUM_THREADS=1", "OMP_NUM_THREADS=1", "MKL_NUM_THREADS=1"};
  for (auto& a : s.argv_s) s.argv.push_back(a.data());
  s.argv.push_back(nullptr);
  for (auto& e : s.env_s) s.envp.push_back(e.data());
  s.envp.push_back(nullptr);
  s.root_ops = plan_private_root(python, folder);
}

ChildPlan make_plan(const PlanStrings& s, const std::string& folder, const Pipes& pipes, const SandboxLimits& limits,
                    bool have_cgroup) {
  const bool is_root = ::geteuid() == 0;
  // RLIMIT_NPROC counts every thread of the real uid, across samples: with a cgroup it is only a
  // backstop; without one it gives this sample `nproc` on top of what that uid already runs.
  const int64_t already = count_user_threads(is_root ? kNobody : ::getuid());
  const int64_t nproc_limit = have_cgroup ? already + 4 * static_cast<int64_t>(limits.nproc) + 64
                                          : already + limits.nproc + 2;
  ChildPlan p;
  p.python = s.python.c_str();
  p.argv = s.argv.data();
  p.envp = s.envp.data();
  p.new_root = folder.c_str();
  p.root_ops = &s.root_ops;
  p.root_tmp = s.root_tmp.c_str();
  p.root_workdir = s.root_workdir.c_str();
  p.root_prog = s.root_prog.c_str();
  p.root_proc = s.root_proc.c_str();
  p.root_shm = s.root_shm.c_str();
  p.workdir = s.workdir.c_str();
  p.tmpfs_opts_root = s.tmpfs_root.c_str();
  p.tmpfs_opts_tmp = s.tmpfs_tmp.c_str();
  p.tmpfs_opts_shm = s.tmpfs_shm.c_str();
  p.cgroup_procs = s.cgroup_procs.empty() ? nullptr : s.cgroup_procs.c_str();
  p.seccomp = seccomp_program();
  p.out_r = pipes.out[0];
  p.out_w = pipes.out[1];
  p.err_r = pipes.err[0];
  p.err_w = pipes.err[1];
  p.status_r = pipes.status[0];
  p.status_w = pipes.status[1];
  p.parent = ::getpid();
  p.outer_uid = ::getuid();
  p.outer_gid = ::getgid();
  p.is_root = is_root;
  p.memory_bytes = static_cast<rlim_t>(std::max<int64_t>(limits.memory_mb, 1)) << 20;
  p.cpu_s = static_cast<rlim_t>(std::max<int64_t>(limits.cpu_s, 1));
  p.file_bytes = static_cast<rlim_t>(std::max<int64_t>(limits.file_mb, 1)) << 20;
  p.nproc = static_cast<rlim_t>(nproc_limit);
  p.nproc_userns = static_cast<rlim_t>(std::max(limits.nproc, 1) + 4);  // + C1, C2, the monitor
  return p;
}

// The outcome of one run. A failed setup step means the system would not let us seal the
// program in: that is refused with an Error (the program did not run), never scored.
void interpret(const Observed& o, const SandboxLimits& limits, const std::string& python, SandboxResult& r) {
  r.stdout_text = o.out;
  r.stderr_text = o.err;
  r.output_truncated = o.out_truncated || o.err_truncated;
  r.enforced = o.have_enforced ? enforced_string(o.enforced_bits) : "";
  if (o.setup_errno != 0) {
    const int step = o.setup_errno / 1000, err = o.setup_errno % 1000;
    throw Error(std::string("sandbox: cannot seal generated code off from the host (") + setup_step_name(step) +
                    " failed: " + std::strerror(err) + "); the program was not run",
                "", "code execution needs mount, PID, network, IPC and UTS namespaces: run as root, or allow "
                    "unprivileged user namespaces (sysctl kernel.unprivileged_userns_clone=1); in a container, "
                    "grant CAP_SYS_ADMIN or a seccomp profile that permits unshare/mount/pivot_root");
  }
  if (o.timed_out) {
    r.timed_out = true;
    r.reason = "timed out after " + format_seconds(limits.timeout_s) + " s (wall clock)";
  } else if (o.exec_errno != 0) {
    r.reason = "could not start " + python + ": " + std::strerror(o.exec_errno);
  } else if (!o.have_exit) {
    r.reason = "the sandbox supervisor died before the program finished";
  } else if (WIFSIGNALED(o.exit_status)) {
    const int sig = WTERMSIG(o.exit_status);
    r.exit_code = -sig;
    r.reason = "killed by " + signal_name(sig);
    if (sig == SIGXCPU) r.reason += " (cpu limit " + std::to_string(limits.cpu_s) + " s)";
    if (sig == SIGXFSZ) r.reason += " (file size limit " + std::to_string(limits.file_mb) + " MB)";
  } else if (WIFEXITED(o.exit_status)) {
    r.exit_code = WEXITSTATUS(o.exit_status);
    if (r.exit_code == 0) {
      r.passed = true;
      r.reason = "passed";
    } else {
      r.reason = "exit code " + std::to_string(r.exit_code);
      std::string line = last_line(r.stderr_text);
      if (!line.empty()) r.reason += ": " + line;
    }
  } else {
    r.reason = "unknown wait status " + std::to_string(o.exit_status);
  }
}

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
  remove_leftovers_once();

  Pipes pipes;
  RunResources res;
  res.folder = make_work_folder();
  res.cgroup = make_run_cgroup(std::max<int64_t>(limits.nproc, 1) + 3);  // + C1, C2 and the monitor
  PlanStrings strings;
  fill_strings(strings, python, res.folder, res.cgroup, limits);
  ChildPlan plan = make_plan(strings, res.folder, pipes, limits, !res.cgroup.empty());
  plan.program = program.data();
  plan.program_len = program.size();

  const pid_t c1 = ::fork();
  if (c1 == 0) run_c1(plan);
  const int fork_errno = errno;
  pipes.close_write_ends();
  if (c1 < 0) {
    result.reason = std::string("could not fork the sandbox: ") + std::strerror(fork_errno);
    result.wall_s = now_seconds() - t0;
    return result;
  }
  const double deadline = t0 + std::max(limits.timeout_s, 0.0);
  const size_t cap = static_cast<size_t>(std::max<int64_t>(limits.output_kb, 1)) * 1024;
  Observed seen = supervise(c1, pipes.out[0], pipes.err[0], pipes.status[0], deadline, cap, res.cgroup);
  pipes.release_read_ends();
  result.wall_s = now_seconds() - t0;
  interpret(seen, limits, python, result);
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
    c.private_root = has("private-root");
    c.read_only_root = has("ro-root");
    c.private_tmpfs = has("tmpfs");
    c.cgroup_pids = has("cgroup-pids");
    c.unprivileged_uid = has("uid-nobody");
    c.user_namespace = has("userns");
    c.nproc_limit = has("nproc-limit");
    c.seccomp = has("seccomp");
    return c;
  }();
  return caps;
}

}  // namespace atax
