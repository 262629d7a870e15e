// sandbox/process_tree: C1 (supervisor, namespaces), C2 (init of the PID namespace, private
// root), the monitor and C3 (the program). See internal.h for the picture.
#include <fcntl.h>
#include <sched.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include "sandbox/internal.h"

namespace atax::sandbox_detail {
namespace {

[[noreturn]] void refuse(const ChildPlan& p, int code) {
  send_status(p.status_w, kStatusSetupErrno, code);
  ::_exit(126);
}

[[noreturn]] void run_c3(const ChildPlan& p, int32_t bits) {
  // Default signal handling and an empty mask for the program.
  struct sigaction dfl;
  std::memset(&dfl, 0, sizeof dfl);
  dfl.sa_handler = SIG_DFL;
  for (int s = 1; s < NSIG; ++s) ::sigaction(s, &dfl, nullptr);
  sigset_t none;
  sigemptyset(&none);
  ::sigprocmask(SIG_SETMASK, &none, nullptr);

  // The caller may run with 0, 1 or 2 closed, so the pipes (and /dev/null) can sit on those
  // numbers: lift every source above 2 first, then dup2 (which clears close-on-exec on 0-2).
  int devnull = ::open("/dev/null", O_RDONLY | O_CLOEXEC);
  int in = devnull < 0 ? -1 : ::fcntl(devnull, F_DUPFD_CLOEXEC, 3);
  int out = ::fcntl(p.out_w, F_DUPFD_CLOEXEC, 3);
  int err = ::fcntl(p.err_w, F_DUPFD_CLOEXEC, 3);
  if (in < 0 || out < 0 || err < 0 || ::dup2(in, 0) < 0 || ::dup2(out, 1) < 0 || ::dup2(err, 2) < 0)
    refuse(p, kStepStdio * 1000 + errno);
  if (::chdir(p.workdir) != 0) refuse(p, kStepChdir * 1000 + errno);
  if (int code = confine_program(p, bits); code != 0) refuse(p, code);

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

// The monitor: forks the program (C3), waits for it and reports its wait status.
[[noreturn]] void run_monitor(const ChildPlan& p, int32_t bits) {
  pid_t c3 = ::fork();
  if (c3 < 0) refuse(p, kStepFork * 1000 + errno);
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

// C2: PID 1 of the new PID namespace. PID 1 ignores signals from inside its namespace, so a
// monitor sits between it and the program: os.kill(os.getppid(), 9) meets a process whose death
// fails the run.
[[noreturn]] void run_c2(const ChildPlan& p, int32_t bits) {
  ::prctl(PR_SET_PDEATHSIG, SIGKILL, 0, 0, 0);  // C1 gone -> C2 gone -> PID namespace gone
  ::setpgid(0, 0);  // the program's group: the parent kills it while C1 (its own group) waits
  if (int code = build_private_root(p, bits); code != 0) refuse(p, code);
  pid_t monitor = ::fork();
  if (monitor < 0) refuse(p, kStepFork * 1000 + errno);
  if (monitor == 0) run_monitor(p, bits);
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

}  // namespace

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
  // Every namespace or none: the run is refused rather than run with some channel open.
  const int all = CLONE_NEWNS | CLONE_NEWPID | CLONE_NEWNET | CLONE_NEWIPC | CLONE_NEWUTS;
  if (::unshare(all) == 0) {
    bits |= kMountNs | kPidNs | kNetNs | kIpcNs | kUtsNs;
  } else {
    const int first = errno;
    if (::unshare(all | CLONE_NEWUSER) != 0) refuse(p, kStepNamespaces * 1000 + first);
    // Unprivileged: become root of a new user namespace that maps only our own uid.
    write_small_file("/proc/self/setgroups", "deny", 4);
    if (!write_id_map("/proc/self/uid_map", p.outer_uid) || !write_id_map("/proc/self/gid_map", p.outer_gid))
      refuse(p, kStepNamespaces * 1000 + (errno ? errno : EPERM));
    bits |= kUserNs | kMountNs | kPidNs | kNetNs | kIpcNs | kUtsNs;
  }
  pid_t c2 = ::fork();
  if (c2 < 0) refuse(p, kStepForkInit * 1000 + errno);
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

}  // namespace atax::sandbox_detail
