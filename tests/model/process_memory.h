// Test helpers for memory bounds: this process's resident memory from /proc/self/status, and a
// function run in a forked child (a fresh heap and high-water mark) whose number comes back
// through a pipe.
#pragma once

#include <sys/wait.h>
#include <unistd.h>

#include <cmath>
#include <fstream>
#include <iostream>
#include <string>

namespace atax::testing {

// A /proc/self/status figure in MB: "VmRSS" (resident now) or "VmHWM" (peak resident); NaN if absent.
inline double status_mb(const std::string& key) {
  std::ifstream in("/proc/self/status");
  std::string line;
  while (std::getline(in, line))
    if (line.rfind(key + ":", 0) == 0) return std::stod(line.substr(key.size() + 1)) / 1024.0;  // "  123 kB"
  return NAN;
}

// Runs `f` (returning a double) in a forked child and returns its value; NaN if the child threw,
// crashed or wrote nothing.
template <class F>
double in_child(F&& f) {
  int fds[2];
  if (pipe(fds) != 0) return NAN;
  std::cout.flush();
  pid_t pid = fork();
  if (pid == 0) {
    close(fds[0]);
    double v = NAN;
    try {
      v = f();
    } catch (const std::exception& e) {
      std::cerr << "child: " << e.what() << "\n";
    }
    ssize_t n = write(fds[1], &v, sizeof v);
    _exit(n == sizeof v ? 0 : 1);
  }
  close(fds[1]);
  double v = NAN;
  if (read(fds[0], &v, sizeof v) != sizeof v) v = NAN;
  close(fds[0]);
  int status = 0;
  waitpid(pid, &status, 0);
  return v;
}

// The peak resident growth in MB over `load_wide()`, in a forked child, after `load_small()` took the
// same load path once (code and libraries paged in on first use are not counted); NaN on failure.
template <class Small, class Wide>
double load_growth_mb(Small&& load_small, Wide&& load_wide) {
  return in_child([&] {
    load_small();
    const double before = status_mb("VmRSS");
    auto held = load_wide();  // held until the peak is read
    return status_mb("VmHWM") - before;
  });
}

}  // namespace atax::testing
