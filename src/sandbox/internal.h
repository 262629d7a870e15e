// sandbox/internal.h: what the files of the sandbox module share (not for other modules).
//
// Process tree (one new session; everything in the run's cgroup where there is one):
//   atax ── C1 supervisor (own group): setsid, joins the cgroup, unshare(NEWNS|NEWPID|NEWNET|NEWIPC|
//            │    NEWUTS) (else the same inside a user namespace mapping only our uid; else refuse),
//            │    reports C2's pid, reaps C2.
//            └─ C2 init (PID 1 of the new PID namespace; leader of the program's group): builds the
//               │    private root (process_tree.cpp -> root_fs.cpp), pivots into it, writes prog.py,
//               │    reaps orphans.
//               └─ M monitor: waits for the program and reports its wait status.
//                  └─ C3 python3 -I -B prog.py: confine.cpp (rlimits, caps, uid nobody, no new
//                          privileges, seccomp), stdin /dev/null, stdout/stderr to pipes.
// The parent (supervise.cpp) polls the pipes against the wall-clock deadline and always ends by
// SIGKILLing the program's group, waiting for C1, SIGKILLing C1's group and the cgroup.
// Between fork() and execve() only async-signal-safe calls are made (raw syscalls, no allocation):
// everything the children need is prepared in the parent first (ChildPlan).
#pragma once

#include <linux/filter.h>
#include <sys/resource.h>
#include <sys/types.h>

#include <cstdint>
#include <string>
#include <vector>

namespace atax::sandbox_detail {

constexpr uid_t kNobody = 65534;
constexpr int kStatusEnforced = 1;   // value: enforcement bits (written just before execve)
constexpr int kStatusExecErrno = 2;  // value: errno of a failed execve
constexpr int kStatusExit = 3;       // value: the program's raw wait status
constexpr int kStatusSetupErrno = 4; // value: step * 1000 + errno of a failed setup step (the run is refused)
constexpr int kStatusInitPid = 5;    // value: C2's pid (the leader of the program's process group)

// Setup steps (reported as step * 1000 + errno); setup_step_name() spells them out.
enum SetupStep : int {
  kStepStdio = 1, kStepChdir = 2, kStepSetuid = 3, kStepProgram = 4, kStepFork = 5, kStepForkInit = 6,
  kStepNamespaces = 7, kStepPrivateMounts = 8, kStepRootTmpfs = 9, kStepRootEntry = 10,
  kStepTmpTmpfs = 11, kStepDev = 12, kStepPivot = 13, kStepRootReadOnly = 14, kStepSeccomp = 15,
  kStepNoNewPrivs = 16,
};
const char* setup_step_name(int step);

// Enforcement bits, reported by C3 just before execve.
enum : int32_t {
  kPidNs = 1 << 0, kNetNs = 1 << 1, kMountNs = 1 << 2, kIpcNs = 1 << 3, kRoRoot = 1 << 4,
  kTmpfs = 1 << 5, kCgroupPids = 1 << 6, kUidNobody = 1 << 7, kUserNs = 1 << 8, kRlimits = 1 << 9,
  kNewProc = 1 << 10, kNoNewPrivs = 1 << 11, kCapsDropped = 1 << 12, kNprocLimit = 1 << 13,
  kShm = 1 << 14, kPrivateRoot = 1 << 15, kUtsNs = 1 << 16, kSeccomp = 1 << 17,
};
std::string enforced_string(int32_t bits);

struct StatusRecord {
  int32_t tag;
  int32_t value;
};

// One step of building the private root, with every path already absolute (under the new root).
struct RootOp {
  enum Kind { kDir, kSymlink, kBindFile, kBindDir } kind;
  std::string src;       // kBind*: the host path; kSymlink: the link's target
  std::string dst;       // the path in the new root, as seen before pivot_root
  unsigned long remount_flags = 0;  // kBind*: MS_REMOUNT|MS_BIND|MS_RDONLY|... keeping the host mount's locked flags
};

// --- async-signal-safe helpers (raw.cpp) ------------------------------------------------------
void write_all_raw(int fd, const void* data, size_t n);
void send_status(int fd, int32_t tag, int32_t value);
size_t format_u64(uint64_t v, char* buf);
bool write_small_file(const char* path, const char* text, size_t n);
bool write_id_map(const char* path, uint32_t id);  // "0 <id> 1"

// --- everything prepared before fork -----------------------------------------------------------
struct ChildPlan {
  const char* python = nullptr;
  char* const* argv = nullptr;
  char* const* envp = nullptr;
  const char* new_root = nullptr;     // host folder the private root is mounted on (empty on the host)
  const std::vector<RootOp>* root_ops = nullptr;
  const char* root_tmp = nullptr;     // <new_root>/tmp
  const char* root_workdir = nullptr; // <new_root>/tmp/atax-sbx-...: the program's folder, before the pivot
  const char* root_prog = nullptr;    // <new_root>/tmp/atax-sbx-.../prog.py
  const char* root_proc = nullptr;    // <new_root>/proc
  const char* root_shm = nullptr;     // <new_root>/dev/shm
  const char* workdir = nullptr;      // /tmp/atax-sbx-...: the program's folder, after the pivot
  const char* program = nullptr;
  size_t program_len = 0;
  const char* tmpfs_opts_root = nullptr;  // the root skeleton (mount points only)
  const char* tmpfs_opts_tmp = nullptr;   // size-limited /tmp, mode 1777
  const char* tmpfs_opts_shm = nullptr;   // size-limited /dev/shm, mode 1777
  const char* cgroup_procs = nullptr;     // nullptr: no cgroup
  const sock_fprog* seccomp = nullptr;
  int out_w = -1, err_w = -1, status_w = -1;
  int out_r = -1, err_r = -1, status_r = -1;
  pid_t parent = 0;
  uid_t outer_uid = 0;
  gid_t outer_gid = 0;
  bool is_root = false;
  rlim_t memory_bytes = 0, cpu_s = 0, file_bytes = 0, nproc = 0;
  rlim_t nproc_userns = 0;  // in a user namespace RLIMIT_NPROC counts only that namespace's processes
};

// C1 (process_tree.cpp): never returns.
[[noreturn]] void run_c1(const ChildPlan& p);

// Child side of root_fs.cpp: builds the private root and pivots into it. Returns 0, or
// step * 1000 + errno of the first step that failed. Async-signal-safe.
int build_private_root(const ChildPlan& p, int32_t& bits);

// Child side of confine.cpp: rlimits, capabilities, uid, no_new_privs, seccomp (in that order).
// Returns 0, or step * 1000 + errno of a step whose failure must refuse the run.
int confine_program(const ChildPlan& p, int32_t& bits);

// --- parent side -------------------------------------------------------------------------------
// The root entries (parent side of root_fs.cpp) for `python`: cached per interpreter; `new_root`
// is prefixed to every destination.
std::vector<RootOp> plan_private_root(const std::string& python, const std::string& new_root);

// The seccomp program (confine.cpp); static storage, built once.
const sock_fprog* seccomp_program();

// host.cpp: cgroups, the uid's thread count, work folders and leftovers.
struct CgroupBase {
  std::string dir;  // a folder in which we may mkdir a run cgroup and set pids.max; "" when none
};
const CgroupBase& cgroup_base();
std::string make_run_cgroup(int64_t pids_max);  // "" when none could be made
void kill_cgroup(const std::string& dir);
int64_t count_user_threads(uid_t uid);
std::string make_work_folder();  // <temp>/atax-sbx-<pid>-XXXXXX; Error when it cannot be made
void remove_leftovers_once();
std::string read_text(const std::string& path);
bool write_text(const std::string& path, const std::string& text);

// supervise.cpp: what the parent saw of one run.
struct Observed {
  std::string out, err;
  bool out_truncated = false, err_truncated = false;
  bool timed_out = false;
  bool have_enforced = false, have_exit = false;
  int32_t enforced_bits = 0;
  int exit_status = 0, exec_errno = 0, setup_errno = 0;
};
// Reads the pipes until the program ends or `deadline` (now_seconds() clock) passes, then kills
// everything of the run (C2's group, C1's group, the cgroup) and reaps C1. Closes the read ends.
Observed supervise(pid_t c1, int out_r, int err_r, int status_r, double deadline, size_t output_cap,
                   const std::string& cgroup_dir);

}  // namespace atax::sandbox_detail
