// sandbox/raw: async-signal-safe helpers for the children (no allocation, raw syscalls only),
// and the names of setup steps and enforcement bits for the parent.
#include <fcntl.h>
#include <unistd.h>

#include <cerrno>
#include <vector>

#include "sandbox/internal.h"

namespace atax::sandbox_detail {

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

const char* setup_step_name(int step) {
  switch (step) {
    case kStepStdio: return "redirecting stdin/stdout/stderr";
    case kStepChdir: return "entering the working folder";
    case kStepSetuid: return "changing to uid nobody";
    case kStepProgram: return "writing the program file";
    case kStepFork: return "starting the program";
    case kStepForkInit: return "starting the namespace's init";
    case kStepNamespaces: return "creating mount/PID/network/IPC/UTS namespaces";
    case kStepPrivateMounts: return "making the mounts private";
    case kStepRootTmpfs: return "mounting the private root";
    case kStepRootEntry: return "bind-mounting the interpreter and its libraries";
    case kStepTmpTmpfs: return "mounting the private /tmp";
    case kStepDev: return "making the private /dev";
    case kStepPivot: return "pivot_root into the private root";
    case kStepRootReadOnly: return "making the private root read-only";
    case kStepSeccomp: return "installing the seccomp filter";
    case kStepNoNewPrivs: return "setting no_new_privs";
    default: return "an unknown step";
  }
}

std::string enforced_string(int32_t bits) {
  static const std::pair<int32_t, const char*> kNames[] = {
      {kPidNs, "pidns"}, {kNetNs, "netns"}, {kMountNs, "mountns"}, {kIpcNs, "ipcns"}, {kUtsNs, "utsns"},
      {kUserNs, "userns"}, {kNewProc, "proc"}, {kPrivateRoot, "private-root"}, {kRoRoot, "ro-root"},
      {kTmpfs, "tmpfs"}, {kShm, "shm"}, {kCgroupPids, "cgroup-pids"}, {kUidNobody, "uid-nobody"},
      {kCapsDropped, "no-caps"}, {kNoNewPrivs, "no-new-privs"}, {kSeccomp, "seccomp"}, {kRlimits, "rlimits"},
      {kNprocLimit, "nproc-limit"}};
  std::string out;
  for (const auto& [bit, name] : kNames) {
    if (!(bits & bit)) continue;
    if (!out.empty()) out += ",";
    out += name;
  }
  return out;
}

}  // namespace atax::sandbox_detail
