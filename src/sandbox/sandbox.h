// sandbox: runs untrusted generated Python (HumanEval-style programs written by models) sealed off
// from every channel to the host. No LibTorch here; evaluation reaches it as EvalOptions::code_runner.
//
// What the sandbox guarantees (each run, or the run is refused: it never runs unsealed):
// - Files: the program sees a root of its own (pivot_root into a fresh tmpfs) holding only
//   read-only bind mounts of the python3 interpreter, its ELF loader and shared-library folders,
//   its standard library, /dev/{null,zero,full,random,urandom}, a fresh /proc of its own PID
//   namespace, and a private size-limited tmpfs as /tmp (its working folder is /tmp/atax-sbx-*)
//   and /dev/shm. No host /tmp, /etc, /home or work tree: no host file beyond what the interpreter
//   needs is readable, nothing outside the private tmpfs is writable, and no filesystem (pathname)
//   unix socket or FIFO of the host can be reached.
// - Namespaces: mount, PID, network, IPC and UTS namespaces of its own (root creates them directly;
//   an unprivileged user gets them inside a user namespace mapping only its own uid). So: no
//   network, not even the host's loopback; abstract unix sockets are per network namespace, so no
//   host ones; no SysV IPC or POSIX shared memory shared with the host; no host pid can be seen,
//   signalled or ptraced.
// - Privileges: an empty capability bounding set, uid/gid nobody where atax runs as root,
//   no_new_privs, and a seccomp filter that fails ptrace, process_vm_*, mount/umount/pivot_root/
//   chroot, unshare/setns and namespace-creating clone flags, keyrings, bpf, perf_event_open,
//   userfaultfd, io_uring, module and kexec calls with EPERM (clone3 with ENOSYS).
// - Limits: wall-clock timeout (the parent kills the whole process group), RLIMIT_AS, RLIMIT_CPU,
//   RLIMIT_FSIZE, RLIMIT_NOFILE, no core files; processes bounded by a per-run cgroup pids.max and
//   RLIMIT_NPROC (fork bombs end); stdout and stderr each captured up to output_kb.
// - Cleanup: every process of the run is killed and its host folder removed on every path; a run
//   killed with atax leaves only an empty folder /tmp/atax-sbx-<pid>-*, removed by the next run
//   once <pid> is dead (remove_sandbox_leftovers()).
// Fails closed: where the system refuses the namespaces or the private root (an unprivileged
// container without user namespaces, say), run_python_sandboxed() throws atax::Error naming what
// failed; the program is not run.
#pragma once

#include <cstdint>
#include <string>

namespace atax {

struct SandboxLimits {
  double timeout_s = 10;     // wall clock, enforced by the parent (poll + kill of the group)
  int64_t memory_mb = 512;   // RLIMIT_AS (address space) per process
  int64_t cpu_s = 10;        // RLIMIT_CPU per process (SIGXCPU, then SIGKILL one second later)
  int64_t file_mb = 16;      // RLIMIT_FSIZE; the private /tmp tmpfs holds 4 × this (at least 8 MB)
  int nproc = 32;            // processes + threads: cgroup pids.max, and RLIMIT_NPROC
  int64_t output_kb = 1024;  // captured stdout and stderr are each cut at this size (the rest is read and dropped)
};

struct SandboxResult {
  bool passed;        // exit code 0, within every limit, before the timeout
  bool timed_out;     // the wall-clock timeout fired
  int exit_code;      // the program's exit code; -signal when a signal killed it; -1 when unknown
  std::string stdout_text, stderr_text;
  std::string reason;  // "passed", "exit code 1: <last stderr line>", "timed out after 2 s (wall clock)",
                       // "killed by SIGXCPU (cpu limit 1 s)", "could not start ...", ...
  std::string enforced;           // what contained this run: "pidns,netns,mountns,ipcns,utsns,proc,
                                  // private-root,ro-root,tmpfs,shm,cgroup-pids,uid-nobody,no-caps,
                                  // no-new-privs,seccomp,rlimits,nproc-limit" where all held
  bool output_truncated = false;  // stdout or stderr was longer than output_kb
  double wall_s = 0;              // seconds from start to the end of the run
};

// Runs `program` (Python 3 source) in a fresh python3 process (`/usr/bin/python3` if present,
// else `python3` on PATH, started with -I -B) sealed as described above, with stdin /dev/null, a
// scrubbed environment and `limits`. Returns passed = exit code 0 within the limits; a program
// that misbehaves (crash, timeout, limit, escape attempt) is a failed result, never an exception.
// Fails with Error when no python3 exists, no temporary folder or pipe can be made, or the system
// does not let the sandbox seal the program in (then the program is not run). Safe to call from
// several threads.
SandboxResult run_python_sandboxed(const std::string& program, const SandboxLimits& limits = {});

// What this machine lets the sandbox enforce, as probed by running a trivial program.
struct SandboxCapabilities {
  bool pid_namespace = false;     // a sample sees and signals only its own processes
  bool net_namespace = false;     // no network at all (not even the host's loopback)
  bool mount_namespace = false;   // private mounts
  bool private_root = false;      // its root holds only the interpreter, its libraries and its tmpfs
  bool read_only_root = false;    // every mount but the private tmpfs is read-only
  bool private_tmpfs = false;     // /tmp is a size-limited tmpfs of its own
  bool cgroup_pids = false;       // pids.max caps processes (fork bombs), whatever the uid
  bool unprivileged_uid = false;  // runs as nobody
  bool user_namespace = false;    // the namespaces come from a user namespace (we are not root, or lack CAP_SYS_ADMIN)
  bool nproc_limit = false;       // RLIMIT_NPROC binds (the program does not run as the initial root)
  bool seccomp = false;           // the seccomp filter is installed
  std::string enforced;           // the list run_python_sandboxed() reports
  std::string python;             // the interpreter used
  // Fork bombs are contained (cgroup pids.max, or RLIMIT_NPROC under a non-root uid).
  bool process_limit() const { return cgroup_pids || nproc_limit; }
};

// Probes (once per process; later calls return the cached answer) what run_python_sandboxed()
// can enforce here. Fails with Error when no python3 exists or the sandbox cannot be sealed.
const SandboxCapabilities& sandbox_capabilities();

// The python3 interpreter the sandbox uses: /usr/bin/python3, else python3 on PATH. Fails with
// Error (and a hint) when there is none.
std::string find_python3();

// Removes what killed runs left: host folders <temp>/atax-sbx-<pid>-* and run cgroups
// atax-sbx-<pid>-* whose <pid> no longer exists and which belong to this uid. Returns how many
// were removed. run_python_sandboxed() calls it once per process, before its first run.
int remove_sandbox_leftovers();

}  // namespace atax
