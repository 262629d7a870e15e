// Helpers of the bench programs that compare atax with another program run by process: a function
// run in a forked child with its wall time and peak resident memory, and the median of a sample.
#pragma once

#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cmath>
#include <iostream>
#include <vector>

#include "core/core.h"

namespace atax::bench {

struct ForkRun {
  double seconds = 0, peak_mb = 0;  // whole-child wall time; its peak resident set (wait4)
  bool ok = false;                  // exit status 0
};

// Runs `child` (returning an exit status) in a forked process.
template <class F>
ForkRun run_forked(F&& child) {
  std::cout.flush();  // the child must not print the parent's buffered lines again
  const double t0 = now_seconds();
  pid_t pid = fork();
  if (pid == 0) {
    int rc = 1;
    try {
      rc = child();
    } catch (const std::exception& e) {
      std::cerr << e.what() << "\n";
    }
    std::cout.flush();
    _exit(rc);
  }
  int status = 0;
  rusage ru{};
  wait4(pid, &status, 0, &ru);
  ForkRun r;
  r.seconds = now_seconds() - t0;
  r.peak_mb = static_cast<double>(ru.ru_maxrss) / 1024.0;
  r.ok = WIFEXITED(status) && WEXITSTATUS(status) == 0;
  return r;
}

// The median (upper middle) of `v`; NaN when empty.
inline double median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  return v.empty() ? std::nan("") : v[v.size() / 2];
}

}  // namespace atax::bench
