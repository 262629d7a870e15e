// eval/sandbox: runs untrusted generated Python in a separate, contained process. Nothing a
// sample does can hang or kill the caller: it gets its own process group, session and (where the
// system allows) PID, network, mount and IPC namespaces, a cgroup pids limit, a read-only root with
// a private size-limited tmpfs as its working folder, rlimits, and an unprivileged uid; the whole
// group is SIGKILLed at the end. No LibTorch here.
#pragma once

#include <cstdint>
#include <string>

namespace atax {

struct SandboxLimits {
  double timeout_s = 10;     // wall clock, enforced by the parent (poll + kill of the group)
  int64_t memory_mb = 512;   // RLIMIT_AS (address space) per process
  int64_t cpu_s = 10;        // RLIMIT_CPU per process (SIGXCPU, then SIGKILL one second later)
  int64_t file_mb = 16;      // RLIMIT_FSIZE; the private working tmpfs holds 4 × this (at least 8 MB)
  int nproc = 32;            // processes + threads: cgroup pids.max, and RLIMIT_NPROC where no cgroup
  int64_t output_kb = 1024;  // captured stdout and stderr are each cut at this size (the rest is read and dropped)
};

struct SandboxResult {
  bool passed;        // exit code 0, within every limit, before the timeout
  bool timed_out;     // the wall-clock timeout fired
  int exit_code;      // the program's exit code; -signal when a signal killed it; -1 when unknown
  std::string stdout_text, stderr_text;
  std::string reason;  // "passed", "exit code 1: <last stderr line>", "timed out after 2 s (wall clock)",
                       // "killed by SIGXCPU (cpu limit 1 s)", "could not start ...", ...
  std::string enforced;           // what contained this run: "pidns,netns,mountns,ipcns,proc,ro-root,tmpfs,
                                  // cgroup-pids,uid-nobody,no-caps,no-new-privs,rlimits,nproc-limit" where all held
  bool output_truncated = false;  // stdout or stderr was longer than output_kb
  double wall_s = 0;              // seconds from start to the end of the run
};

// Runs `program` (Python 3 source) in a fresh python3 process (`/usr/bin/python3` if present,
// else `python3` on PATH, started with -I -B) inside a new temporary folder that is removed
// afterwards, with stdin /dev/null, a scrubbed environment, no network where a network namespace
// can be made, and `limits`. Returns passed = exit code 0 within the limits; a sample that cannot
// be contained or run is a failed result, never an exception. Fails with Error only when no
// python3 exists or no temporary folder or pipe can be made. Safe to call from several threads.
SandboxResult run_python_sandboxed(const std::string& program, const SandboxLimits& limits = {});

// What this machine lets the sandbox enforce, as probed by running a trivial program.
struct SandboxCapabilities {
  bool pid_namespace = false;     // a sample sees and signals only its own processes
  bool net_namespace = false;     // no network at all (not even the host's loopback)
  bool mount_namespace = false;   // private mounts
  bool read_only_root = false;    // every mount but the working folder is read-only
  bool private_tmpfs = false;     // the working folder is a size-limited tmpfs of its own
  bool cgroup_pids = false;       // pids.max caps processes (fork bombs), whatever the uid
  bool unprivileged_uid = false;  // runs as nobody: RLIMIT_NPROC is enforced, host files are protected
  bool user_namespace = false;    // the namespaces come from a user namespace (we are not root, or lack CAP_SYS_ADMIN)
  bool nproc_limit = false;       // RLIMIT_NPROC binds (the program does not run as the initial root)
  std::string enforced;           // the list run_python_sandboxed() reports
  std::string python;             // the interpreter used
  // Fork bombs are contained (cgroup pids.max, or RLIMIT_NPROC under a non-root uid).
  bool process_limit() const { return cgroup_pids || nproc_limit; }
};

// Probes (once per process; later calls return the cached answer) what run_python_sandboxed()
// can enforce here. Fails with Error only when no python3 exists.
const SandboxCapabilities& sandbox_capabilities();

// The python3 interpreter the sandbox uses: /usr/bin/python3, else python3 on PATH. Fails with
// Error (and a hint) when there is none.
std::string find_python3();

}  // namespace atax
