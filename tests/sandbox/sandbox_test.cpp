// ctest-labels: unit
// The sandbox against hostile samples: each must be contained (the test process, its files and
// its network are untouched, nothing is left running) and scored as a failure. Limits are small so
// that every test ends within a few seconds.
#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <signal.h>
#include <sys/socket.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <iostream>
#include <string>
#include <thread>
#include <vector>

#include <gtest/gtest.h>

#include "core/core.h"
#include "sandbox/sandbox.h"

namespace {

using atax::run_python_sandboxed;
using atax::SandboxLimits;
using atax::SandboxResult;

SandboxLimits small_limits() {
  SandboxLimits l;
  l.timeout_s = 3;
  l.memory_mb = 256;
  l.cpu_s = 3;
  l.file_mb = 1;
  l.nproc = 16;
  return l;
}

// Processes whose command line contains `marker` (other than this test).
int count_processes_with(const std::string& marker) {
  int n = 0;
  for (const auto& e : std::filesystem::directory_iterator("/proc")) {
    const std::string name = e.path().filename().string();
    if (name.find_first_not_of("0123456789") != std::string::npos) continue;
    std::ifstream f(e.path() / "cmdline", std::ios::binary);
    std::string cmd((std::istreambuf_iterator<char>(f)), std::istreambuf_iterator<char>());
    if (cmd.find(marker) != std::string::npos) ++n;
  }
  return n;
}

class SandboxTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    const auto& caps = atax::sandbox_capabilities();
    std::cout << "[ sandbox  ] python " << caps.python << "; enforced: " << caps.enforced << "\n";
  }
};

TEST_F(SandboxTest, CorrectProgramPasses) {
  SandboxResult r = run_python_sandboxed(
      "def add(a, b):\n    return a + b\n\nassert add(2, 3) == 5\nprint('ok', add(20, 22))\n", small_limits());
  EXPECT_TRUE(r.passed) << r.reason << "\n" << r.stderr_text;
  EXPECT_FALSE(r.timed_out);
  EXPECT_EQ(r.exit_code, 0);
  EXPECT_EQ(r.stdout_text, "ok 42\n");
  EXPECT_EQ(r.reason, "passed");
}

TEST_F(SandboxTest, WrongProgramFails) {
  SandboxResult r = run_python_sandboxed(
      "def add(a, b):\n    return a - b\n\nassert add(2, 3) == 5, 'add is wrong'\n", small_limits());
  EXPECT_FALSE(r.passed);
  EXPECT_FALSE(r.timed_out);
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_NE(r.stderr_text.find("AssertionError: add is wrong"), std::string::npos) << r.stderr_text;
  EXPECT_NE(r.reason.find("exit code 1: AssertionError: add is wrong"), std::string::npos) << r.reason;
}

TEST_F(SandboxTest, SyntaxErrorFails) {
  SandboxResult r = run_python_sandboxed("def f(:\n  pass\n", small_limits());
  EXPECT_FALSE(r.passed);
  EXPECT_NE(r.stderr_text.find("SyntaxError"), std::string::npos);
}

TEST_F(SandboxTest, InfiniteLoopTimesOut) {
  SandboxLimits l = small_limits();
  l.timeout_s = 1.0;
  l.cpu_s = 30;  // the wall clock must fire first
  SandboxResult r = run_python_sandboxed("while True:\n    pass\n", l);
  EXPECT_FALSE(r.passed);
  EXPECT_TRUE(r.timed_out) << r.reason;
  EXPECT_NE(r.reason.find("timed out"), std::string::npos);
  EXPECT_GE(r.wall_s, 1.0);
}

TEST_F(SandboxTest, SleepingProgramTimesOut) {
  SandboxLimits l = small_limits();
  l.timeout_s = 0.5;
  SandboxResult r = run_python_sandboxed("import time\ntime.sleep(60)\n", l);
  EXPECT_FALSE(r.passed);
  EXPECT_TRUE(r.timed_out);
}

TEST_F(SandboxTest, CpuLimitKillsBusyLoop) {
  SandboxLimits l = small_limits();
  l.timeout_s = 8;
  l.cpu_s = 1;
  SandboxResult r = run_python_sandboxed("while True:\n    pass\n", l);
  EXPECT_FALSE(r.passed);
  EXPECT_FALSE(r.timed_out) << r.reason;
  EXPECT_EQ(r.exit_code, -SIGXCPU) << r.reason;
  EXPECT_NE(r.reason.find("SIGXCPU"), std::string::npos);
}

TEST_F(SandboxTest, MemoryBombFails) {
  SandboxResult r = run_python_sandboxed("x = []\nwhile True:\n    x.append(bytearray(16 * 1024 * 1024))\n",
                                         small_limits());
  EXPECT_FALSE(r.passed);
  EXPECT_FALSE(r.timed_out) << r.reason;
  EXPECT_NE(r.stderr_text.find("MemoryError"), std::string::npos) << r.reason;
  SandboxResult big = run_python_sandboxed("b = bytearray(2 * 1024 ** 3)\nprint(len(b))\n", small_limits());
  EXPECT_FALSE(big.passed);
  EXPECT_EQ(big.stdout_text, "");
}

TEST_F(SandboxTest, ForkBombIsContained) {
  const auto& caps = atax::sandbox_capabilities();
  if (!caps.process_limit())
    GTEST_SKIP() << "no process limit on this system (no cgroup pids, root uid): a fork bomb would not be contained";
  const std::string marker = "atax_fork_bomb_" + std::to_string(::getpid());
  SandboxLimits l = small_limits();
  l.timeout_s = 2;
  // Each child exec's a sleeper that carries the marker, so survivors would be visible in /proc.
  std::string bomb =
      "import os, sys\n"
      "count = 0\n"
      "while True:\n"
      "    try:\n"
      "        pid = os.fork()\n"
      "    except OSError:\n"
      "        continue\n"
      "    if pid == 0:\n"
      "        os.setsid()\n"  // try to escape the process group, too
      "        os.execv(sys.executable, [sys.executable, '-c', 'import time; time.sleep(60)', '" + marker + "'])\n"
      "    count += 1\n";
  SandboxResult r = run_python_sandboxed(bomb, l);
  EXPECT_FALSE(r.passed) << r.reason;
  EXPECT_EQ(count_processes_with(marker), 0) << "fork-bomb children survived the run";
  // The next sample runs normally.
  SandboxResult after = run_python_sandboxed("print('fine')\n", small_limits());
  EXPECT_TRUE(after.passed) << after.reason;
}

TEST_F(SandboxTest, BackgroundChildrenAreKilled) {
  const std::string marker = "atax_straggler_" + std::to_string(::getpid());
  std::string prog =
      "import os, sys\n"
      "if os.fork() == 0:\n"
      "    os.setsid()\n"
      "    os.execv(sys.executable, [sys.executable, '-c', 'import time; time.sleep(60)', '" + marker + "'])\n"
      "print('parent done')\n";
  SandboxResult r = run_python_sandboxed(prog, small_limits());
  EXPECT_TRUE(r.passed) << r.reason;  // the program itself succeeded
  EXPECT_FALSE(r.timed_out);
  EXPECT_LT(r.wall_s, 2.5);  // the sleeper holding stdout did not keep the run open
  EXPECT_EQ(count_processes_with(marker), 0);
}

TEST_F(SandboxTest, WritingOutsideItsFolderIsBlocked) {
  // The host's /tmp and the build folder are not in its root; /usr is read-only; its own /tmp is
  // a private tmpfs that the host never sees.
  const std::string tmp_target = "/tmp/atax_escape_" + std::to_string(::getpid());
  const std::string root_owned = std::string(ATAX_BINARY_DIR) + "/atax_escape_" + std::to_string(::getpid());
  std::filesystem::remove(tmp_target);
  std::filesystem::remove(root_owned);
  std::string prog =
      "import os\n"
      "ok = 0\n"
      "for p in ['" + root_owned + "', '/usr/atax_escape', '/atax_escape']:\n"
      "    try:\n"
      "        with open(p, 'w') as f:\n"
      "            f.write('escaped')\n"
      "        ok += 1\n"
      "    except OSError as e:\n"
      "        print('blocked', p, e)\n"
      "with open('inside.txt', 'w') as f:\n"  // its own folder is writable
      "    f.write('fine')\n"
      "assert open('inside.txt').read() == 'fine'\n"
      "open('" + tmp_target + "', 'w').write('private')\n"  // lands in its private /tmp
      "assert ok == 0, 'wrote outside'\n";
  SandboxResult r = run_python_sandboxed(prog, small_limits());
  EXPECT_TRUE(r.passed) << r.reason << "\n" << r.stdout_text << r.stderr_text;
  EXPECT_FALSE(std::filesystem::exists(root_owned));
  EXPECT_FALSE(std::filesystem::exists(tmp_target)) << "the sample wrote to the host's /tmp";
  std::filesystem::remove(tmp_target);
  std::filesystem::remove(root_owned);
}

TEST_F(SandboxTest, HostileWriteIsScoredAsFailure) {
  SandboxResult r = run_python_sandboxed("open('/usr/lib/atax_escape', 'w').write('x')\n", small_limits());
  EXPECT_FALSE(r.passed);
  EXPECT_NE(r.stderr_text.find("Read-only file system"), std::string::npos) << r.stderr_text;
  EXPECT_FALSE(std::filesystem::exists("/usr/lib/atax_escape"));
}

TEST_F(SandboxTest, SharedMemoryIsPrivate) {
  const std::string target = "/dev/shm/atax_escape_" + std::to_string(::getpid());
  SandboxResult r = run_python_sandboxed("open('" + target + "', 'w').write('x')\nprint('wrote')\n", small_limits());
  EXPECT_FALSE(std::filesystem::exists(target)) << "the sample wrote to the host's /dev/shm";
  std::filesystem::remove(target);
}

TEST_F(SandboxTest, LegitimateSubprocessesWork) {
  // Programs may start processes within the limits (multiprocessing needs /dev/shm semaphores).
  SandboxResult r = run_python_sandboxed(
      "import multiprocessing as mp, subprocess, sys\n"
      "if __name__ == '__main__':\n"
      "    with mp.Pool(2) as p:\n"
      "        print(p.map(abs, [-1, -2, -3]))\n"
      "    print(subprocess.run([sys.executable, '-c', 'print(6 * 7)'], capture_output=True, text=True).stdout.strip())\n",
      small_limits());
  EXPECT_TRUE(r.passed) << r.reason << "\n" << r.stderr_text;
  EXPECT_EQ(r.stdout_text, "[1, 2, 3]\n42\n");
}

TEST_F(SandboxTest, FileSizeLimitHolds) {
  SandboxResult r = run_python_sandboxed(
      "with open('big.bin', 'wb') as f:\n    f.write(b'x' * (4 * 1024 * 1024))\n", small_limits());  // file_mb = 1
  EXPECT_FALSE(r.passed) << r.reason;
  EXPECT_NE(r.stderr_text.find("File too large"), std::string::npos) << r.stderr_text;
}

TEST_F(SandboxTest, NoNetwork) {
  const auto& caps = atax::sandbox_capabilities();
  if (!caps.net_namespace) GTEST_SKIP() << "no network namespace here; enforced: " << caps.enforced;
  // A listener on the host's loopback: the sample must not reach it.
  int srv = ::socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  ASSERT_GE(srv, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  addr.sin_port = 0;
  ASSERT_EQ(::bind(srv, reinterpret_cast<sockaddr*>(&addr), sizeof addr), 0);
  ASSERT_EQ(::listen(srv, 8), 0);
  socklen_t len = sizeof addr;
  ASSERT_EQ(::getsockname(srv, reinterpret_cast<sockaddr*>(&addr), &len), 0);
  const int port = ntohs(addr.sin_port);

  SandboxResult local = run_python_sandboxed(
      "import socket\ns = socket.create_connection(('127.0.0.1', " + std::to_string(port) + "), timeout=1)\n"
      "s.sendall(b'leak')\nprint('connected')\n",
      small_limits());
  EXPECT_FALSE(local.passed) << local.reason;
  EXPECT_EQ(local.stdout_text, "");
  int conn = ::accept(srv, nullptr, nullptr);
  EXPECT_LT(conn, 0) << "the sample connected to the host's loopback";
  if (conn >= 0) ::close(conn);
  ::close(srv);

  SandboxResult external = run_python_sandboxed(
      "import socket\ns = socket.create_connection(('1.1.1.1', 53), timeout=1)\nprint('connected')\n", small_limits());
  EXPECT_FALSE(external.passed);
  EXPECT_FALSE(external.timed_out);
  EXPECT_EQ(external.stdout_text, "");
  SandboxResult dns = run_python_sandboxed("import socket\nprint(socket.gethostbyname('example.com'))\n", small_limits());
  EXPECT_FALSE(dns.passed);
}

TEST_F(SandboxTest, KillingItsParentDoesNotKillUs) {
  SandboxResult r = run_python_sandboxed("import os\nos.kill(os.getppid(), 9)\nprint('survived')\n", small_limits());
  EXPECT_FALSE(r.passed) << r.reason;
  // Signalling everything it can: its group, and every pid it can see.
  SandboxResult r2 = run_python_sandboxed(
      "import os, signal\n"
      "for pid in range(1, 4096):\n"
      "    try:\n"
      "        os.kill(pid, signal.SIGKILL)\n"
      "    except OSError:\n"
      "        pass\n"
      "os.killpg(0, signal.SIGKILL)\n",
      small_limits());
  EXPECT_FALSE(r2.passed) << r2.reason;
  // Still here, and still able to run samples.
  SandboxResult ok = run_python_sandboxed("print(1 + 1)\n", small_limits());
  EXPECT_TRUE(ok.passed) << ok.reason;
  EXPECT_EQ(ok.stdout_text, "2\n");
}

TEST_F(SandboxTest, EnvironmentIsScrubbedAndStdinIsEmpty) {
  ::setenv("ATAX_SECRET_TOKEN", "hunter2", 1);
  SandboxResult r = run_python_sandboxed(
      "import os, sys\n"
      "assert 'ATAX_SECRET_TOKEN' not in os.environ, 'secret leaked'\n"
      "assert sys.stdin.read() == ''\n"
      "assert sys.flags.isolated == 1 and sys.flags.dont_write_bytecode == 1\n"
      "print(os.getcwd() == os.environ['HOME'])\n",
      small_limits());
  ::unsetenv("ATAX_SECRET_TOKEN");
  EXPECT_TRUE(r.passed) << r.reason << r.stderr_text;
  EXPECT_EQ(r.stdout_text, "True\n");
}

// ctest under CI may start us with stdin closed; the sandbox's pipes must not land on 0 then.
TEST_F(SandboxTest, ACallerWithStdinClosedStillGivesTheProgramEmptyStdin) {
  const int saved = ::dup(0);  // -1 when it is closed already
  ::close(0);
  SandboxResult r = run_python_sandboxed(
      "import sys\nassert sys.stdin.read() == ''\nprint('ok')\n", small_limits());
  if (saved >= 0) {
    ::dup2(saved, 0);
    ::close(saved);
  }
  EXPECT_TRUE(r.passed) << r.reason << r.stderr_text;
  EXPECT_EQ(r.stdout_text, "ok\n");
}

TEST_F(SandboxTest, OutputIsCapped) {
  SandboxLimits l = small_limits();
  l.output_kb = 4;
  SandboxResult r = run_python_sandboxed("import sys\nsys.stdout.write('x' * 1000000)\nsys.stderr.write('e' * 100000)\n", l);
  EXPECT_TRUE(r.passed) << r.reason;  // exit code 0: the cut is reported, not scored
  EXPECT_TRUE(r.output_truncated);
  EXPECT_EQ(r.stdout_text.size(), 4096u);
  EXPECT_EQ(r.stderr_text.size(), 4096u);
}

TEST_F(SandboxTest, ExitCodesAndSignalsAreReported) {
  SandboxResult r = run_python_sandboxed("import sys\nsys.exit(3)\n", small_limits());
  EXPECT_FALSE(r.passed);
  EXPECT_EQ(r.exit_code, 3);
  SandboxResult s = run_python_sandboxed("import os, signal\nos.kill(os.getpid(), signal.SIGSEGV)\n", small_limits());
  EXPECT_FALSE(s.passed);
  EXPECT_EQ(s.exit_code, -SIGSEGV);
  EXPECT_NE(s.reason.find("SIGSEGV"), std::string::npos);
}

TEST_F(SandboxTest, LeavesNoFoldersBehind) {
  SandboxResult r = run_python_sandboxed("import os\nopen('f.txt', 'w').write('x')\nprint(os.getcwd())\n", small_limits());
  ASSERT_TRUE(r.passed) << r.reason;
  const std::string dir = atax::trim(r.stdout_text);
  EXPECT_NE(dir.find("atax-sbx-"), std::string::npos) << dir;
  EXPECT_FALSE(std::filesystem::exists(dir)) << dir;
  SandboxLimits l = small_limits();
  l.timeout_s = 0.5;
  SandboxResult t = run_python_sandboxed(
      "import os, sys\nprint(os.getcwd(), flush=True)\nopen('f.txt', 'w').write('x')\nwhile True: pass\n", l);
  EXPECT_TRUE(t.timed_out);
  const std::string dir2 = atax::trim(t.stdout_text);
  EXPECT_NE(dir2.find("atax-sbx-"), std::string::npos) << dir2;
  EXPECT_FALSE(std::filesystem::exists(dir2)) << dir2;
}

TEST_F(SandboxTest, ParallelRunsAreIndependent) {
  // What evaluation does: several samples at once, one of them hostile.
  if (!atax::sandbox_capabilities().process_limit()) GTEST_SKIP() << "no process limit on this system";
  std::vector<SandboxResult> results(4);
  std::vector<std::thread> threads;
  for (int i = 0; i < 4; ++i) {
    threads.emplace_back([&, i] {
      SandboxLimits l = small_limits();
      l.timeout_s = 2;
      results[i] = run_python_sandboxed(i == 0 ? "import os\nwhile True:\n    try: os.fork()\n    except OSError: pass\n"
                                               : "print(" + std::to_string(i) + " * 2)\n",
                                        l);
    });
  }
  for (auto& t : threads) t.join();
  EXPECT_FALSE(results[0].passed);
  for (int i = 1; i < 4; ++i) {
    EXPECT_TRUE(results[i].passed) << i << ": " << results[i].reason;
    EXPECT_EQ(results[i].stdout_text, std::to_string(2 * i) + "\n");
  }
}

}  // namespace
