// ctest-labels: unit
// Every channel from a sample to the host, tried from inside the sandbox: each program prints
// "blocked" only when its channel is closed, so each test fails where the channel is open. Also:
// leftovers of a killed run are removed, and the sandbox refuses to run code it cannot seal in.
#include <fcntl.h>
#include <linux/filter.h>
#include <linux/seccomp.h>
#include <signal.h>
#include <stddef.h>
#include <sys/ipc.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/shm.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <string>
#include <thread>

#include <gtest/gtest.h>

#include "core/core.h"
#include "sandbox/sandbox.h"

namespace {

namespace fs = std::filesystem;
using atax::run_python_sandboxed;
using atax::SandboxLimits;
using atax::SandboxResult;

SandboxLimits small_limits() {
  SandboxLimits l;
  l.timeout_s = 5;
  l.memory_mb = 256;
  l.cpu_s = 5;
  l.file_mb = 1;
  l.nproc = 16;
  return l;
}

// A host folder every uid may enter (the sample runs as nobody where the test runs as root).
class HostDir {
 public:
  HostDir() {
    std::string tmpl = (fs::temp_directory_path() / "atax-channels-XXXXXX").string();
    path = ::mkdtemp(tmpl.data());
    ::chmod(path.c_str(), 0777);
  }
  ~HostDir() {
    std::error_code ec;
    fs::remove_all(path, ec);
  }
  std::string path;
};

std::string pid_str() { return std::to_string(::getpid()); }

class ChannelsTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    std::cout << "[ sandbox  ] enforced: " << atax::sandbox_capabilities().enforced << "\n";
  }
};

TEST_F(ChannelsTest, HostUnixSocketIsUnreachable) {
  HostDir dir;
  const std::string path = dir.path + "/service.sock";
  int srv = ::socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  ASSERT_GE(srv, 0);
  sockaddr_un addr{};
  addr.sun_family = AF_UNIX;
  std::strncpy(addr.sun_path, path.c_str(), sizeof addr.sun_path - 1);
  ASSERT_EQ(::bind(srv, reinterpret_cast<sockaddr*>(&addr), sizeof addr), 0);
  ASSERT_EQ(::chmod(path.c_str(), 0777), 0);
  ASSERT_EQ(::listen(srv, 8), 0);
  SandboxResult r = run_python_sandboxed(
      "import socket\n"
      "s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)\n"
      "try:\n"
      "    s.connect('" + path + "')\n"
      "    s.sendall(b'secret')\n"
      "    print('connected')\n"
      "except OSError as e:\n"
      "    print('blocked')\n",
      small_limits());
  EXPECT_TRUE(r.passed) << r.reason << r.stderr_text;
  EXPECT_EQ(r.stdout_text, "blocked\n");
  int conn = ::accept(srv, nullptr, nullptr);
  EXPECT_LT(conn, 0) << "the sample reached the host's unix socket";
  if (conn >= 0) ::close(conn);
  ::close(srv);
}

TEST_F(ChannelsTest, HostAbstractSocketIsUnreachable) {
  const std::string name = "atax-abstract-" + pid_str();
  int srv = ::socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  ASSERT_GE(srv, 0);
  sockaddr_un addr{};
  addr.sun_family = AF_UNIX;
  std::memcpy(addr.sun_path + 1, name.data(), name.size());
  const socklen_t len = static_cast<socklen_t>(offsetof(sockaddr_un, sun_path) + 1 + name.size());
  ASSERT_EQ(::bind(srv, reinterpret_cast<sockaddr*>(&addr), len), 0);
  ASSERT_EQ(::listen(srv, 8), 0);
  SandboxResult r = run_python_sandboxed(
      "import socket\n"
      "s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)\n"
      "try:\n"
      "    s.connect('\\0" + name + "')\n"
      "    print('connected')\n"
      "except OSError:\n"
      "    print('blocked')\n",
      small_limits());
  EXPECT_TRUE(r.passed) << r.reason << r.stderr_text;
  EXPECT_EQ(r.stdout_text, "blocked\n");
  int conn = ::accept(srv, nullptr, nullptr);
  EXPECT_LT(conn, 0) << "the sample reached the host's abstract socket";
  if (conn >= 0) ::close(conn);
  ::close(srv);
}

TEST_F(ChannelsTest, HostFifoIsUnreachable) {
  HostDir dir;
  const std::string path = dir.path + "/pipe";
  ASSERT_EQ(::mkfifo(path.c_str(), 0666), 0);
  ASSERT_EQ(::chmod(path.c_str(), 0666), 0);
  int rd = ::open(path.c_str(), O_RDONLY | O_NONBLOCK | O_CLOEXEC);
  ASSERT_GE(rd, 0);
  SandboxResult r = run_python_sandboxed(
      "import os\n"
      "try:\n"
      "    fd = os.open('" + path + "', os.O_WRONLY | os.O_NONBLOCK)\n"
      "    os.write(fd, b'secret')\n"
      "    print('open')\n"
      "except OSError:\n"
      "    print('blocked')\n",
      small_limits());
  EXPECT_TRUE(r.passed) << r.reason << r.stderr_text;
  EXPECT_EQ(r.stdout_text, "blocked\n");
  char buf[16];
  EXPECT_LE(::read(rd, buf, sizeof buf), 0) << "the sample wrote into the host's FIFO";
  ::close(rd);
}

TEST_F(ChannelsTest, HostSharedMemoryIsUnreachable) {
  // SysV: a segment with a known key; POSIX: a named object in the host's /dev/shm.
  const key_t key = static_cast<key_t>(0x5a000000 | (::getpid() & 0xffffff));
  int id = ::shmget(key, 4096, IPC_CREAT | IPC_EXCL | 0666);
  ASSERT_GE(id, 0) << std::strerror(errno);
  const std::string posix_name = "/atax_shm_" + pid_str();
  int fd = ::shm_open(posix_name.c_str(), O_CREAT | O_RDWR, 0666);
  ASSERT_GE(fd, 0);
  ::fchmod(fd, 0666);
  ASSERT_EQ(::write(fd, "secret", 6), 6);
  ::close(fd);
  SandboxResult r = run_python_sandboxed(
      "import ctypes\n"
      "libc = ctypes.CDLL(None, use_errno=True)\n"
      "print('blocked' if libc.shmget(" + std::to_string(key) + ", 0, 0) == -1 else 'sysv open')\n"
      "from multiprocessing import shared_memory\n"
      "try:\n"
      "    m = shared_memory.SharedMemory('" + posix_name.substr(1) + "')\n"
      "    print('posix open', bytes(m.buf[:6]))\n"
      "except OSError:\n"
      "    print('blocked')\n",
      small_limits());
  ::shmctl(id, IPC_RMID, nullptr);
  ::shm_unlink(posix_name.c_str());
  EXPECT_TRUE(r.passed) << r.reason << r.stderr_text;
  EXPECT_EQ(r.stdout_text, "blocked\nblocked\n");
}

TEST_F(ChannelsTest, HostProcessesCannotBeSignalledOrTraced) {
  pid_t victim = ::fork();
  ASSERT_GE(victim, 0);
  if (victim == 0) {
    // The sample's own uid (nobody, when the test runs as root): only the PID namespace stops it.
    if (::geteuid() == 0 && (::setgid(65534) != 0 || ::setuid(65534) != 0)) ::_exit(1);
    ::pause();
    ::_exit(0);
  }
  SandboxResult r = run_python_sandboxed(
      "import ctypes, os, signal\n"
      "try:\n"
      "    os.kill(" + std::to_string(victim) + ", signal.SIGKILL)\n"
      "    print('signalled')\n"
      "except OSError:\n"
      "    print('blocked')\n"
      "libc = ctypes.CDLL(None, use_errno=True)\n"
      "print('blocked' if libc.ptrace(16, " + std::to_string(victim) + ", 0, 0) == -1 else 'traced')\n",  // PTRACE_ATTACH
      small_limits());
  int st = 0;
  const pid_t w = ::waitpid(victim, &st, WNOHANG);
  EXPECT_EQ(w, 0) << "the host process was killed from the sandbox";
  ::kill(victim, SIGKILL);
  ::waitpid(victim, &st, 0);
  EXPECT_TRUE(r.passed) << r.reason << r.stderr_text;
  EXPECT_EQ(r.stdout_text, "blocked\nblocked\n");
}

TEST_F(ChannelsTest, HostFilesAreNotReadable) {
  HostDir dir;
  const std::string secret = dir.path + "/secret.txt";
  std::ofstream(secret) << "hunter2\n";
  ::chmod(secret.c_str(), 0644);
  ::chmod(dir.path.c_str(), 0755);
  const std::string source = std::string(ATAX_SOURCE_DIR) + "/CMakeLists.txt";
  ASSERT_TRUE(fs::exists(source));
  SandboxResult r = run_python_sandboxed(
      "import os\n"
      "for p in ['" + secret + "', '/etc/hostname', '/etc/passwd', '/etc/hosts', '" + source + "', '/root',\n"
      "          '/home', '/proc/1/root/etc/hostname']:\n"
      "    try:\n"
      "        if os.path.isdir(p):\n"
      "            os.listdir(p)\n"
      "        else:\n"
      "            open(p).read()\n"
      "        print('read', p)\n"
      "    except OSError:\n"
      "        print('blocked')\n"
      // What it can see at all: the interpreter's folders and its own.
      "print(sorted(n for n in os.listdir('/') if n not in ('bin', 'dev', 'etc', 'lib', 'lib64', 'proc', 'sbin', 'tmp', 'usr')))\n",
      small_limits());
  EXPECT_TRUE(r.passed) << r.reason << r.stderr_text;
  std::string expected;
  for (int i = 0; i < 8; ++i) expected += "blocked\n";
  EXPECT_EQ(r.stdout_text, expected + "[]\n");
}

TEST_F(ChannelsTest, SeccompDeniesNamespacesAndMounts) {
  SandboxResult r = run_python_sandboxed(
      "import ctypes\n"
      "libc = ctypes.CDLL(None, use_errno=True)\n"
      "print(libc.unshare(0x10000000), ctypes.get_errno())\n"  // CLONE_NEWUSER
      "print(libc.mount(b'none', b'/tmp', b'tmpfs', 0, None), ctypes.get_errno())\n",
      small_limits());
  EXPECT_TRUE(r.passed) << r.reason << r.stderr_text;
  EXPECT_EQ(r.stdout_text, "-1 1\n-1 1\n");  // EPERM
}

// The newest host folder of a run by `pid`, or "" (polls for up to 5 s).
std::string wait_for_run_folder(pid_t pid) {
  const std::string prefix = "atax-sbx-" + std::to_string(pid) + "-";
  for (int i = 0; i < 500; ++i) {
    for (const auto& e : fs::directory_iterator(fs::temp_directory_path()))
      if (atax::starts_with(e.path().filename().string(), prefix)) return e.path().string();
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  return "";
}

TEST_F(ChannelsTest, LeftoversOfAKilledRunAreRemoved) {
  atax::sandbox_capabilities();  // the interpreter's layout is probed in this process, before the fork
  pid_t owner = ::fork();
  ASSERT_GE(owner, 0);
  if (owner == 0) {
    SandboxLimits l = small_limits();
    l.timeout_s = 30;
    run_python_sandboxed("import time\ntime.sleep(30)\n", l);
    ::_exit(0);
  }
  const std::string folder = wait_for_run_folder(owner);
  ASSERT_FALSE(folder.empty());
  std::this_thread::sleep_for(std::chrono::milliseconds(300));
  ::kill(owner, SIGKILL);  // atax killed mid-run: no destructor runs
  int st = 0;
  ::waitpid(owner, &st, 0);
  EXPECT_TRUE(fs::exists(folder)) << "nothing was left: the test did not kill a run";
  // A folder of a live process (pid 1) is someone's running sample: it stays.
  const std::string live = (fs::temp_directory_path() / "atax-sbx-1-livetest").string();
  fs::create_directory(live);
  const int removed = atax::remove_sandbox_leftovers();
  EXPECT_GE(removed, 1);
  EXPECT_FALSE(fs::exists(folder)) << folder;
  EXPECT_TRUE(fs::exists(live));
  fs::remove(live);
}

TEST_F(ChannelsTest, RefusesToRunWhereItCannotSeal) {
  // A child process in which unshare() fails, as in an unprivileged container: the sandbox must
  // refuse with an Error instead of running the program unsealed.
  atax::sandbox_capabilities();
  HostDir dir;
  const std::string marker = dir.path + "/ran";
  pid_t child = ::fork();
  ASSERT_GE(child, 0);
  if (child == 0) {
    sock_filter filter[] = {
        BPF_STMT(BPF_LD | BPF_W | BPF_ABS, offsetof(seccomp_data, nr)),
        BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, SYS_unshare, 0, 1),
        BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ERRNO | EPERM),
        BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ALLOW),
    };
    sock_fprog prog{4, filter};
    if (::prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0 || ::prctl(PR_SET_SECCOMP, SECCOMP_MODE_FILTER, &prog) != 0)
      ::_exit(3);
    try {
      // Were it run unsealed, it would write the host folder.
      run_python_sandboxed("open('" + marker + "', 'w').write('ran')\n", small_limits());
      ::_exit(1);
    } catch (const atax::Error& e) {
      const std::string what = e.what();
      ::_exit(what.find("cannot seal") != std::string::npos && what.find("the program was not run") != std::string::npos
                  ? 42 : 2);
    }
  }
  int st = 0;
  ::waitpid(child, &st, 0);
  ASSERT_TRUE(WIFEXITED(st));
  EXPECT_EQ(WEXITSTATUS(st), 42) << "1: ran without an error; 2: another error; 3: no seccomp";
  EXPECT_FALSE(fs::exists(marker));
}

}  // namespace
