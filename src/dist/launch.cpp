// launch_local: N local ranks of one program, their output prefixed, failures propagated.
#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <csignal>
#include <cstring>

#include <fmt/format.h>

#include "dist/dist.h"

namespace atax::dist {
namespace {

volatile std::sig_atomic_t g_forward_signal = 0;

void on_signal(int sig) { g_forward_signal = sig; }

void write_all(int fd, std::string_view s) {
  while (!s.empty()) {
    ssize_t n = ::write(fd, s.data(), s.size());
    if (n < 0) {
      if (errno == EINTR) continue;
      return;  // the reader went away; nothing sensible to do
    }
    s.remove_prefix(static_cast<size_t>(n));
  }
}

struct Stream {
  int fd = -1;       // read end, -1 once closed
  int target = 1;    // where prefixed lines go
  std::string pending;
};

struct Child {
  pid_t pid = -1;
  bool alive = false;
  int status = 0;
  Stream out, err;
};

// Forwards complete lines of `s` (all of it when `flush`) with the rank prefix.
void emit_lines(Stream& s, int rank, bool flush) {
  size_t start = 0;
  std::string block;
  for (;;) {
    size_t nl = s.pending.find('\n', start);
    if (nl == std::string::npos) break;
    block += fmt::format("[rank {}] ", rank);
    block.append(s.pending, start, nl - start + 1);
    start = nl + 1;
  }
  s.pending.erase(0, start);
  if (flush && !s.pending.empty()) {
    block += fmt::format("[rank {}] {}\n", rank, s.pending);
    s.pending.clear();
  }
  if (!block.empty()) write_all(s.target, block);
}

// Reads what is available; closes the stream on EOF.
void drain(Stream& s, int rank) {
  char buf[65536];
  for (;;) {
    ssize_t n = ::read(s.fd, buf, sizeof buf);
    if (n > 0) {
      s.pending.append(buf, static_cast<size_t>(n));
      if (n < static_cast<ssize_t>(sizeof buf)) break;
      continue;
    }
    if (n < 0 && errno == EINTR) continue;
    if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) break;
    ::close(s.fd);  // EOF or error
    s.fd = -1;
    emit_lines(s, rank, /*flush=*/true);
    return;
  }
  emit_lines(s, rank, /*flush=*/false);
}

std::string describe_status(int status) {
  if (WIFEXITED(status)) return fmt::format("exited with status {}", WEXITSTATUS(status));
  if (WIFSIGNALED(status))
    return fmt::format("was killed by signal {} ({})", WTERMSIG(status), strsignal(WTERMSIG(status)));
  return "stopped";
}

int exit_code_of(int status) {
  if (WIFEXITED(status)) return WEXITSTATUS(status);
  if (WIFSIGNALED(status)) return 128 + WTERMSIG(status);
  return 1;
}

fs::path self_exe() {
  std::error_code ec;
  fs::path p = fs::read_symlink("/proc/self/exe", ec);
  if (ec) throw Error("launch: cannot resolve /proc/self/exe: " + ec.message(), "", "pass the program explicitly");
  return p;
}

}  // namespace

int free_port() {
  int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  if (fd < 0) throw Error(std::string("launch: socket(): ") + std::strerror(errno));
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  addr.sin_port = 0;
  socklen_t len = sizeof addr;
  if (::bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0 ||
      ::getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len) != 0) {
    int err = errno;
    ::close(fd);
    throw Error(std::string("launch: cannot find a free port: ") + std::strerror(err), "",
                "pass --master-port");
  }
  ::close(fd);
  return ntohs(addr.sin_port);
}

LaunchResult launch_local(const LaunchOptions& opts) {
  if (opts.nproc < 1 || opts.nproc > 4096)
    throw Error(fmt::format("launch: --nproc {} is outside 1..4096", opts.nproc), "", "give the number of ranks");
  if (opts.master_port < 0 || opts.master_port > 65535)
    throw Error(fmt::format("launch: --master-port {} is outside 0..65535", opts.master_port), "",
                "0 picks a free port");
  const fs::path program = opts.program.empty() ? self_exe() : opts.program;
  const int port = opts.master_port > 0 ? opts.master_port : free_port();

  std::vector<std::string> argv_store;
  argv_store.push_back(program.string());
  for (auto& a : opts.args) argv_store.push_back(a);
  std::vector<char*> argv;
  for (auto& a : argv_store) argv.push_back(a.data());
  argv.push_back(nullptr);

  // Forward SIGINT/SIGTERM to the ranks (they live in their own process groups).
  struct sigaction sa{}, old_int{}, old_term{};
  sa.sa_handler = on_signal;
  sigemptyset(&sa.sa_mask);
  sigaction(SIGINT, &sa, &old_int);
  sigaction(SIGTERM, &sa, &old_term);
  g_forward_signal = 0;

  std::vector<Child> children(static_cast<size_t>(opts.nproc));
  auto kill_all = [&](int sig) {
    for (auto& c : children)
      if (c.alive) ::kill(-c.pid, sig);
  };
  for (int k = 0; k < opts.nproc; ++k) {
    int out_pipe[2], err_pipe[2];
    if (::pipe2(out_pipe, O_CLOEXEC) != 0 || ::pipe2(err_pipe, O_CLOEXEC) != 0) {
      kill_all(SIGKILL);
      throw Error(std::string("launch: pipe(): ") + std::strerror(errno));
    }
    std::map<std::string, std::string> env = opts.env;
    env["RANK"] = std::to_string(k);
    env["WORLD_SIZE"] = std::to_string(opts.nproc);
    env["LOCAL_RANK"] = std::to_string(k);
    env["LOCAL_WORLD_SIZE"] = std::to_string(opts.nproc);
    env["MASTER_ADDR"] = opts.master_addr;
    env["MASTER_PORT"] = std::to_string(port);
    pid_t pid = ::fork();
    if (pid < 0) {
      kill_all(SIGKILL);
      throw Error(std::string("launch: fork(): ") + std::strerror(errno));
    }
    if (pid == 0) {
      ::setpgid(0, 0);
      ::dup2(out_pipe[1], 1);
      ::dup2(err_pipe[1], 2);
      signal(SIGINT, SIG_DFL);
      signal(SIGTERM, SIG_DFL);
      for (auto& [key, value] : env) ::setenv(key.c_str(), value.c_str(), 1);
      ::execv(program.c_str(), argv.data());
      std::string msg = fmt::format("atax launch: cannot run {}: {}\n", program.string(), std::strerror(errno));
      write_all(2, msg);
      ::_exit(127);
    }
    ::setpgid(pid, pid);
    ::close(out_pipe[1]);
    ::close(err_pipe[1]);
    Child& c = children[static_cast<size_t>(k)];
    c.pid = pid;
    c.alive = true;
    c.out.fd = out_pipe[0];
    c.out.target = opts.out_fd;
    c.err.fd = err_pipe[0];
    c.err.target = opts.err_fd;
    ::fcntl(c.out.fd, F_SETFL, O_NONBLOCK);
    ::fcntl(c.err.fd, F_SETFL, O_NONBLOCK);
  }

  LaunchResult result;
  double term_at = -1, kill_at = -1, all_exited_at = -1;
  std::vector<int> stopped;  // ranks we had to signal
  for (;;) {
    std::vector<pollfd> fds;
    std::vector<std::pair<Stream*, int>> streams;
    for (int k = 0; k < opts.nproc; ++k) {
      for (Stream* s : {&children[k].out, &children[k].err}) {
        if (s->fd < 0) continue;
        fds.push_back(pollfd{s->fd, POLLIN, 0});
        streams.emplace_back(s, k);
      }
    }
    if (!fds.empty()) {
      int n = ::poll(fds.data(), fds.size(), 100);
      if (n > 0)
        for (size_t i = 0; i < fds.size(); ++i)
          if (fds[i].revents) drain(*streams[i].first, streams[i].second);
    } else {
      ::usleep(50 * 1000);
    }

    if (int sig = g_forward_signal) {
      g_forward_signal = 0;
      result.forwarded_signal = sig;
      kill_all(sig);
      if (term_at < 0) {
        term_at = now_seconds();  // the ranks were asked to stop; escalate if they don't
        kill_at = term_at + std::max(5.0, opts.grace_s);
      }
    }

    bool any_alive = false;
    for (int k = 0; k < opts.nproc; ++k) {
      Child& c = children[static_cast<size_t>(k)];
      if (!c.alive) continue;
      int status = 0;
      pid_t r = ::waitpid(c.pid, &status, WNOHANG);
      if (r == c.pid) {
        c.alive = false;
        c.status = status;
        bool failed = !(WIFEXITED(status) && WEXITSTATUS(status) == 0);
        if (failed && result.failed_rank < 0) {
          result.failed_rank = k;
          result.exit_code = exit_code_of(status);
          result.message = fmt::format("rank {} {}", k, describe_status(status));
          if (term_at < 0) term_at = now_seconds() + opts.grace_s;
        }
      } else {
        any_alive = true;
      }
    }
    double now = now_seconds();
    if (any_alive && term_at >= 0 && now >= term_at && kill_at < 0) {
      for (int k = 0; k < opts.nproc; ++k)
        if (children[k].alive) stopped.push_back(k);
      kill_all(SIGTERM);
      kill_at = now + 5.0;
    }
    if (any_alive && kill_at >= 0 && now >= kill_at) {
      kill_all(SIGKILL);
      kill_at = now + 1e9;
    }
    if (!any_alive) {
      bool open = false;
      for (auto& c : children) open = open || c.out.fd >= 0 || c.err.fd >= 0;
      if (all_exited_at < 0) all_exited_at = now;
      // A grandchild may still hold a pipe; don't wait for it past a second.
      if (!open || now - all_exited_at > 1.0) break;
    }
  }
  for (int k = 0; k < opts.nproc; ++k) {
    for (Stream* s : {&children[k].out, &children[k].err}) {
      if (s->fd >= 0) {
        ::close(s->fd);
        s->fd = -1;
      }
      emit_lines(*s, k, /*flush=*/true);
    }
  }
  sigaction(SIGINT, &old_int, nullptr);
  sigaction(SIGTERM, &old_term, nullptr);
  if (result.failed_rank >= 0 && !stopped.empty()) {
    std::vector<std::string> names;
    for (int k : stopped) names.push_back(std::to_string(k));
    result.message += fmt::format("; stopped rank{} {} after the {} s grace period", stopped.size() > 1 ? "s" : "",
                                  join(names, ", "), opts.grace_s);
  }
  return result;
}

}  // namespace atax::dist
