// sandbox/confine: what C3 does to itself just before execve: rlimits, an empty capability
// bounding set, uid nobody (when atax is root), no_new_privs and a seccomp filter.
#include <errno.h>
#include <grp.h>
#include <linux/audit.h>
#include <linux/seccomp.h>
#include <sched.h>
#include <stddef.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <vector>

#include "sandbox/internal.h"

namespace atax::sandbox_detail {
namespace {

#if defined(__x86_64__)
constexpr uint32_t kAuditArch = AUDIT_ARCH_X86_64;
#elif defined(__aarch64__)
constexpr uint32_t kAuditArch = AUDIT_ARCH_AARCH64;
#else
#error "sandbox: add this architecture's AUDIT_ARCH_* to confine.cpp"
#endif

// Calls that reach beyond the program's own processes and files, or widen what it may do.
const long kDenied[] = {
#ifdef SYS_ptrace
    SYS_ptrace,
#endif
#ifdef SYS_process_vm_readv
    SYS_process_vm_readv, SYS_process_vm_writev,
#endif
#ifdef SYS_mount
    SYS_mount,
#endif
#ifdef SYS_umount2
    SYS_umount2,
#endif
#ifdef SYS_pivot_root
    SYS_pivot_root,
#endif
#ifdef SYS_chroot
    SYS_chroot,
#endif
#ifdef SYS_unshare
    SYS_unshare,
#endif
#ifdef SYS_setns
    SYS_setns,
#endif
#ifdef SYS_keyctl
    SYS_keyctl, SYS_add_key, SYS_request_key,
#endif
#ifdef SYS_bpf
    SYS_bpf,
#endif
#ifdef SYS_perf_event_open
    SYS_perf_event_open,
#endif
#ifdef SYS_userfaultfd
    SYS_userfaultfd,
#endif
#ifdef SYS_io_uring_setup
    SYS_io_uring_setup, SYS_io_uring_enter, SYS_io_uring_register,
#endif
#ifdef SYS_kexec_load
    SYS_kexec_load,
#endif
#ifdef SYS_kexec_file_load
    SYS_kexec_file_load,
#endif
#ifdef SYS_init_module
    SYS_init_module, SYS_finit_module, SYS_delete_module,
#endif
#ifdef SYS_open_by_handle_at
    SYS_open_by_handle_at, SYS_name_to_handle_at,
#endif
#ifdef SYS_swapon
    SYS_swapon, SYS_swapoff,
#endif
#ifdef SYS_reboot
    SYS_reboot,
#endif
#ifdef SYS_syslog
    SYS_syslog,
#endif
#ifdef SYS_acct
    SYS_acct,
#endif
#ifdef SYS_fanotify_init
    SYS_fanotify_init,
#endif
#ifdef SYS_move_mount
    SYS_move_mount, SYS_open_tree, SYS_fsopen, SYS_fsmount, SYS_fsconfig, SYS_fspick, SYS_mount_setattr,
#endif
#ifdef SYS_iopl
    SYS_iopl, SYS_ioperm,
#endif
};

constexpr uint32_t kNamespaceFlags =
    CLONE_NEWUSER | CLONE_NEWNS | CLONE_NEWPID | CLONE_NEWNET | CLONE_NEWIPC | CLONE_NEWUTS | CLONE_NEWCGROUP;

std::vector<sock_filter> build_filter() {
  std::vector<sock_filter> f;
  auto stmt = [&](uint16_t code, uint32_t k) { f.push_back(BPF_STMT(code, k)); };
  auto jump = [&](uint16_t code, uint32_t k, uint8_t jt, uint8_t jf) { f.push_back(BPF_JUMP(code, k, jt, jf)); };
  const uint32_t deny = SECCOMP_RET_ERRNO | (EPERM & SECCOMP_RET_DATA);
  const uint32_t nosys = SECCOMP_RET_ERRNO | (ENOSYS & SECCOMP_RET_DATA);
  stmt(BPF_LD | BPF_W | BPF_ABS, offsetof(seccomp_data, arch));
  jump(BPF_JMP | BPF_JEQ | BPF_K, kAuditArch, 1, 0);
  stmt(BPF_RET | BPF_K, SECCOMP_RET_KILL_PROCESS);  // another ABI: no table for it
  stmt(BPF_LD | BPF_W | BPF_ABS, offsetof(seccomp_data, nr));
#if defined(__x86_64__)
  jump(BPF_JMP | BPF_JGE | BPF_K, 0x40000000u, 0, 1);  // x32 numbers
  stmt(BPF_RET | BPF_K, deny);
#endif
  for (long nr : kDenied) {
    jump(BPF_JMP | BPF_JEQ | BPF_K, static_cast<uint32_t>(nr), 0, 1);
    stmt(BPF_RET | BPF_K, deny);
  }
#ifdef SYS_clone3
  // clone3 passes its flags in memory, which a filter cannot read: ENOSYS makes libc use clone.
  jump(BPF_JMP | BPF_JEQ | BPF_K, SYS_clone3, 0, 1);
  stmt(BPF_RET | BPF_K, nosys);
#endif
  // clone with a namespace flag (x86-64 and aarch64 both pass the flags first).
  jump(BPF_JMP | BPF_JEQ | BPF_K, SYS_clone, 0, 3);
  stmt(BPF_LD | BPF_W | BPF_ABS, offsetof(seccomp_data, args[0]));
  jump(BPF_JMP | BPF_JSET | BPF_K, kNamespaceFlags, 0, 1);
  stmt(BPF_RET | BPF_K, deny);
  stmt(BPF_RET | BPF_K, SECCOMP_RET_ALLOW);
  return f;
}

}  // namespace

const sock_fprog* seccomp_program() {
  static const std::vector<sock_filter> filter = build_filter();
  static const sock_fprog prog{static_cast<unsigned short>(filter.size()), const_cast<sock_filter*>(filter.data())};
  return &prog;
}

int confine_program(const ChildPlan& p, int32_t& bits) {
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
      return kStepSetuid * 1000 + errno;  // refusing to run as root
    }
  }
  if (caps_ok) bits |= kCapsDropped;
  // RLIMIT_NPROC binds every uid but the initial namespace's root (outside any user namespace).
  if (limits_ok && ((bits & kUidNobody) || p.outer_uid != 0)) bits |= kNprocLimit;
  if (::prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0) return kStepNoNewPrivs * 1000 + errno;
  bits |= kNoNewPrivs;
  if (p.seccomp != nullptr) {
    if (::prctl(PR_SET_SECCOMP, SECCOMP_MODE_FILTER, p.seccomp, 0, 0) != 0) return kStepSeccomp * 1000 + errno;
    bits |= kSeccomp;
  }
  return 0;
}

}  // namespace atax::sandbox_detail
