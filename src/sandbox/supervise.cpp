// sandbox/supervise: the parent's side of one run: read stdout, stderr and the status records
// until the program ends or the deadline passes, then kill everything the run started.
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cmath>
#include <cstring>
#include <thread>

#include "core/core.h"
#include "sandbox/internal.h"

namespace atax::sandbox_detail {
namespace {

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

class Reader {
 public:
  Reader(int out_r, int err_r, int status_r, size_t cap) : out_{{}, cap}, err_{{}, cap} {
    pfd_[0] = {out_r, POLLIN, 0};
    pfd_[1] = {err_r, POLLIN, 0};
    pfd_[2] = {status_r, POLLIN, 0};
  }
  bool any_open() const { return pfd_[0].fd >= 0 || pfd_[1].fd >= 0 || pfd_[2].fd >= 0; }
  // Waits up to `wait_ms` and reads what is ready.
  void poll_once(int wait_ms) {
    int rc = ::poll(pfd_, 3, wait_ms);
    if (rc <= 0) return;
    for (int i = 0; i < 3; ++i) {
      if (pfd_[i].fd < 0 || !(pfd_[i].revents & (POLLIN | POLLHUP | POLLERR))) continue;
      if (read_one(i) == 0) close_one(i);
    }
  }
  // Reads whatever is already there without blocking (every writer may be dead), then closes.
  void drain_and_close() {
    for (auto& p : pfd_)
      if (p.fd >= 0) ::fcntl(p.fd, F_SETFL, O_NONBLOCK);
    for (int round = 0; round < 64 && any_open(); ++round) {
      bool got = false;
      for (int i = 0; i < 3; ++i) {
        if (pfd_[i].fd < 0) continue;
        if (read_one(i) > 0) got = true;
        else close_one(i);
      }
      if (!got) break;
    }
    for (int i = 0; i < 3; ++i) close_one(i);
  }
  // Reads the status pipe without blocking (C2's pid may still sit in it).
  void drain_status() {
    if (pfd_[2].fd < 0) return;
    ::fcntl(pfd_[2].fd, F_SETFL, O_NONBLOCK);
    while (read_one(2) > 0) {
    }
  }
  Observed obs;
  pid_t init_pid = 0;

  void finish() {
    obs.out = std::move(out_.text);
    obs.err = std::move(err_.text);
    obs.out_truncated = out_.truncated;
    obs.err_truncated = err_.truncated;
  }

 private:
  // > 0 bytes read; 0 at the end or on an error; -1 nothing now (EAGAIN / EINTR).
  ssize_t read_one(int i) {
    ssize_t n = ::read(pfd_[i].fd, buf_, sizeof buf_);
    if (n < 0) return (errno == EINTR || errno == EAGAIN) ? -1 : 0;
    if (n == 0) return 0;
    if (i == 0) out_.add(buf_, static_cast<size_t>(n));
    if (i == 1) err_.add(buf_, static_cast<size_t>(n));
    if (i == 2) {
      status_.append(buf_, static_cast<size_t>(n));
      parse_status();
    }
    return n;
  }
  void close_one(int i) {
    if (pfd_[i].fd >= 0) ::close(pfd_[i].fd);
    pfd_[i].fd = -1;
  }
  void parse_status() {
    while (status_.size() >= sizeof(StatusRecord)) {
      StatusRecord r;
      std::memcpy(&r, status_.data(), sizeof r);
      status_.erase(0, sizeof r);
      switch (r.tag) {
        case kStatusEnforced: obs.enforced_bits = r.value; obs.have_enforced = true; break;
        case kStatusExecErrno: obs.exec_errno = r.value; break;
        case kStatusExit: obs.exit_status = r.value; obs.have_exit = true; break;
        case kStatusSetupErrno: obs.setup_errno = r.value; break;
        case kStatusInitPid: init_pid = r.value; break;
        default: break;
      }
    }
  }
  pollfd pfd_[3];
  Capture out_, err_;
  std::string status_;
  char buf_[65536];
};

// C1 has exited (a zombie we have not reaped, so its pid and group id stay ours).
bool exited(pid_t pid) {
  siginfo_t si;
  si.si_pid = 0;
  return ::waitid(P_PID, static_cast<id_t>(pid), &si, WEXITED | WNOHANG | WNOWAIT) == 0 && si.si_pid == pid;
}

}  // namespace

Observed supervise(pid_t c1, int out_r, int err_r, int status_r, double deadline, size_t output_cap,
                   const std::string& cgroup_dir) {
  auto reader = std::make_unique<Reader>(out_r, err_r, status_r, output_cap);  // 64 KiB buffer: not on the stack
  Reader& rd = *reader;
  double drain_deadline = INFINITY;  // set once the program has finished (or C1 is gone)
  bool c1_gone = false;
  while (rd.any_open()) {
    const double now = now_seconds();
    if (!rd.obs.have_exit && now >= deadline) {
      rd.obs.timed_out = true;
      break;
    }
    if (now >= drain_deadline) break;
    const double until = std::min(rd.obs.have_exit ? drain_deadline : deadline, drain_deadline);
    const int wait_ms = std::clamp(static_cast<int>(std::ceil((until - now) * 1000)), 0, 50);  // notice a dead C1
    rd.poll_once(wait_ms);
    if (rd.obs.have_exit && drain_deadline == INFINITY) drain_deadline = now_seconds() + 0.25;
    if (!c1_gone && exited(c1)) {
      c1_gone = true;
      if (drain_deadline == INFINITY) drain_deadline = now_seconds() + 0.25;
    }
  }

  // Always, even after success: kill the program's process group (C2's); C1, in a group of its
  // own, reaps C2 only once C2's PID namespace is gone (the kernel kills every process in it
  // before PID 1 finishes exiting), so waiting for C1 waits for the namespace. Then C1's group,
  // and everything left in the cgroup.
  rd.drain_status();
  if (rd.init_pid > 0 && !exited(c1)) {  // C1 alive: C2 is not reaped, so its pid is still C2's
    ::kill(-rd.init_pid, SIGKILL);
    ::kill(rd.init_pid, SIGKILL);
    const double until = now_seconds() + 2.0;
    while (!exited(c1) && now_seconds() < until) std::this_thread::sleep_for(std::chrono::milliseconds(1));
  }
  ::kill(-c1, SIGKILL);
  ::kill(c1, SIGKILL);
  if (!cgroup_dir.empty()) kill_cgroup(cgroup_dir);
  int c1_status = 0;
  while (::waitpid(c1, &c1_status, 0) < 0 && errno == EINTR) {
  }
  rd.drain_and_close();
  rd.finish();
  return rd.obs;
}

}  // namespace atax::sandbox_detail
