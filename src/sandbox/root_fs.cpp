// sandbox/root_fs: the program's private root. The parent plans it once per interpreter (which
// host paths the interpreter needs: the binary and its symlinks, the ELF loader, the folders of
// the shared libraries it maps, its standard library); C2 builds it in its own mount namespace on
// a fresh tmpfs, adds /dev, /proc, /tmp and /dev/shm, and pivots into it.
#include <fcntl.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <filesystem>
#include <map>
#include <mutex>
#include <set>
#include <sstream>

#include "core/core.h"
#include "sandbox/internal.h"

namespace atax::sandbox_detail {
namespace {

namespace fs = std::filesystem;

// Imports the standard library's extension modules (so that their shared libraries are mapped)
// and prints what the interpreter is made of. Run once, unsandboxed: it is our code, not a sample's.
constexpr const char* kProbe = R"PY(
import os, sys, sysconfig
for m in ('_ctypes', '_hashlib', '_ssl', '_sqlite3', '_lzma', '_bz2', '_decimal', 'pyexpat', '_uuid', 'zlib',
          '_multiprocessing', '_posixshmem', 'math', 'cmath', 'select', '_socket', 'array', '_json', '_datetime',
          '_random', '_struct', 'binascii', 'unicodedata', '_csv', 'mmap', 'fcntl', 'resource', '_queue',
          '_elementtree', '_asyncio', '_pickle', '_zoneinfo', '_statistics', '_bisect', '_heapq', 'termios',
          'grp', '_posixsubprocess', '_contextvars', '_opcode', '_md5', '_sha1', '_sha256', '_sha512', '_blake2'):
    try:
        __import__(m)
    except Exception:
        pass
print('file', os.path.abspath(sys.executable))
for key in ('stdlib', 'platstdlib'):
    print('dir', sysconfig.get_path(key))
for p in sys.path:
    if os.path.isdir(p) and 'packages' not in p:
        print('dir', p)
for p in (sysconfig.get_path('stdlib'),):
    for name in os.listdir(p):
        full = os.path.join(p, name)
        if os.path.islink(full) and os.path.exists(full):
            print('file', full)
for line in open('/proc/self/maps'):
    parts = line.split(None, 5)
    if len(parts) == 6 and parts[5].startswith('/') and '.so' in os.path.basename(parts[5]):
        print('dir', os.path.dirname(parts[5].strip()))
)PY";

// Reads PT_INTERP (the ELF loader's path) of a 64-bit ELF file; "" when there is none.
std::string elf_interpreter(const std::string& path) {
  std::string data;
  try {
    data = read_file(path);
  } catch (const std::exception&) {
    return "";
  }
  if (data.size() < 64 || data.compare(0, 4, "\x7f" "ELF") != 0 || data[4] != 2) return "";
  auto u16 = [&](size_t o) { uint16_t v; std::memcpy(&v, data.data() + o, 2); return v; };
  auto u64 = [&](size_t o) { uint64_t v; std::memcpy(&v, data.data() + o, 8); return v; };
  const uint64_t phoff = u64(32);
  const uint16_t phentsize = u16(54), phnum = u16(56);
  for (uint16_t i = 0; i < phnum; ++i) {
    const uint64_t ph = phoff + uint64_t(i) * phentsize;
    if (ph + 56 > data.size()) break;
    uint32_t type;
    std::memcpy(&type, data.data() + ph, 4);
    if (type != 3) continue;  // PT_INTERP
    const uint64_t off = u64(ph + 8), size = u64(ph + 32);
    if (off + size > data.size() || size == 0) return "";
    return std::string(data.data() + off, size - 1);
  }
  return "";
}

// The host mount's flags that a bind remount must keep (a user namespace may not clear them).
unsigned long locked_flags(const std::string& path) {
  struct statvfs sv;
  unsigned long f = 0;
  if (::statvfs(path.c_str(), &sv) != 0) return f;
  if (sv.f_flag & ST_NOEXEC) f |= MS_NOEXEC;
  if (sv.f_flag & ST_NOATIME) f |= MS_NOATIME;
  if (sv.f_flag & ST_NODIRATIME) f |= MS_NODIRATIME;
  if (sv.f_flag & ST_RELATIME) f |= MS_RELATIME;
  return f;
}

// Root entries relative to "/" (dst without the new-root prefix), in creation order.
class RootPlanner {
 public:
  // Makes `path` visible in the new root: its symlinked components recreated, the final object
  // bind-mounted read-only. `dev`: a device node (no MS_NODEV).
  void expose(const std::string& path, bool dev = false, int depth = 0) {
    if (depth > 16 || path.empty() || path[0] != '/') return;
    const fs::path p = fs::path(path).lexically_normal();
    std::string cur;
    auto it = p.begin();
    ++it;  // "/"
    std::vector<std::string> comps;
    for (; it != p.end(); ++it)
      if (!it->empty()) comps.push_back(it->string());
    for (size_t i = 0; i < comps.size(); ++i) {
      cur += "/" + comps[i];
      if (covered(cur)) return;
      struct stat st;
      if (::lstat(cur.c_str(), &st) != 0) return;
      if (S_ISLNK(st.st_mode)) {
        std::error_code ec;
        const fs::path target = fs::read_symlink(cur, ec);
        if (ec) return;
        add({RootOp::kSymlink, target.string(), cur, 0});
        fs::path rest = target.is_absolute() ? target : fs::path(cur).parent_path() / target;
        for (size_t j = i + 1; j < comps.size(); ++j) rest /= comps[j];
        expose(rest.lexically_normal().string(), dev, depth + 1);
        return;
      }
      const bool last = i + 1 == comps.size();
      if (!last) {
        if (!S_ISDIR(st.st_mode)) return;
        add({RootOp::kDir, "", cur, 0});
        continue;
      }
      unsigned long flags = MS_REMOUNT | MS_BIND | MS_RDONLY | MS_NOSUID | locked_flags(cur);
      if (!dev) flags |= MS_NODEV;
      if (S_ISDIR(st.st_mode)) {
        add({RootOp::kBindDir, cur, cur, flags});
        bound_dirs_.insert(cur);
      } else {
        add({RootOp::kBindFile, cur, cur, flags});
      }
    }
  }
  std::vector<RootOp> ops;

 private:
  bool covered(const std::string& path) const {
    for (const std::string& d : bound_dirs_)
      if (path == d || (path.size() > d.size() && path.compare(0, d.size(), d) == 0 && path[d.size()] == '/')) return true;
    return false;
  }
  void add(RootOp op) {
    if (!seen_.insert(op.dst).second) return;
    ops.push_back(std::move(op));
  }
  std::set<std::string> seen_, bound_dirs_;
};

std::vector<RootOp> plan_for(const std::string& python) {
  std::set<std::string> dirs, files;
  std::string cmd = "'" + replace_all(python, "'", "'\\''") + "' -I -S -B -c '" + replace_all(kProbe, "'", "'\\''") + "'";
  FILE* f = ::popen(cmd.c_str(), "re");
  if (f == nullptr)
    throw Error("sandbox: cannot run " + python + " to find what it needs: " + std::strerror(errno), python,
                "check that the interpreter runs");
  std::string out;
  char buf[4096];
  size_t n;
  while ((n = std::fread(buf, 1, sizeof buf, f)) > 0) out.append(buf, n);
  const int rc = ::pclose(f);
  if (rc != 0 || out.empty())
    throw Error("sandbox: " + python + " failed to describe itself (status " + std::to_string(rc) + ")", python,
                "run `" + python + " -I -S -c 'import sys'` to see why");
  std::istringstream in(out);
  std::string line;
  while (std::getline(in, line)) {
    if (starts_with(line, "dir ")) dirs.insert(fs::path(line.substr(4)).lexically_normal().string());
    if (starts_with(line, "file ")) files.insert(line.substr(5));
  }
  files.insert(python);
  // The binary's realpath and its ELF loader (whose path is fixed in the binary).
  std::error_code ec;
  const std::string real = fs::canonical(python, ec).string();
  if (!ec) {
    files.insert(real);
    const std::string interp = elf_interpreter(real);
    if (!interp.empty()) files.insert(interp);
  }
  RootPlanner planner;
  // Folders first (shortest first: a folder bound later would hide entries made inside it).
  std::vector<std::string> sorted(dirs.begin(), dirs.end());
  std::sort(sorted.begin(), sorted.end(), [](const std::string& a, const std::string& b) {
    return a.size() != b.size() ? a.size() < b.size() : a < b;
  });
  for (const std::string& d : sorted) planner.expose(d);
  for (const std::string& file : files) planner.expose(file);
  for (const char* dev : {"/dev/null", "/dev/zero", "/dev/full", "/dev/random", "/dev/urandom"}) planner.expose(dev, true);
  return planner.ops;
}

// Async-signal-safe path join into a fixed buffer.
bool join_path(char* out, size_t cap, const char* a, const char* b) {
  size_t n = 0;
  for (const char* s : {a, b})
    for (; *s; ++s) {
      if (n + 1 >= cap) return false;
      out[n++] = *s;
    }
  out[n] = '\0';
  return true;
}

}  // namespace

std::vector<RootOp> plan_private_root(const std::string& python, const std::string& new_root) {
  static std::mutex mu;
  static std::map<std::string, std::vector<RootOp>> cache;
  std::vector<RootOp> ops;
  {
    std::lock_guard<std::mutex> lock(mu);
    auto it = cache.find(python);
    if (it == cache.end()) it = cache.emplace(python, plan_for(python)).first;
    ops = it->second;
  }
  for (RootOp& op : ops) op.dst = new_root + op.dst;
  return ops;
}

int build_private_root(const ChildPlan& p, int32_t& bits) {
  // Nothing we mount here propagates back to the host.
  if (::mount(nullptr, "/", nullptr, MS_REC | MS_PRIVATE, nullptr) != 0) return kStepPrivateMounts * 1000 + errno;
  if (::mount("tmpfs", p.new_root, "tmpfs", MS_NOSUID | MS_NODEV, p.tmpfs_opts_root) != 0)
    return kStepRootTmpfs * 1000 + errno;
  // The interpreter, its libraries and the device nodes, read-only.
  for (const RootOp& op : *p.root_ops) {
    const char* dst = op.dst.c_str();
    int rc = 0;
    switch (op.kind) {
      case RootOp::kDir:
        rc = ::mkdir(dst, 0755);
        break;
      case RootOp::kSymlink:
        rc = ::symlink(op.src.c_str(), dst);
        break;
      case RootOp::kBindFile:
      case RootOp::kBindDir: {
        if (op.kind == RootOp::kBindDir) {
          rc = ::mkdir(dst, 0755);
        } else {
          int fd = ::open(dst, O_WRONLY | O_CREAT | O_CLOEXEC, 0644);
          rc = fd < 0 ? -1 : ::close(fd);
        }
        if (rc != 0 && errno != EEXIST) break;
        rc = ::mount(op.src.c_str(), dst, nullptr, MS_BIND, nullptr);
        if (rc == 0) rc = ::mount(nullptr, dst, nullptr, op.remount_flags, nullptr);
        break;
      }
    }
    if (rc != 0 && errno != EEXIST) return kStepRootEntry * 1000 + errno;
  }
  // /dev/shm, /dev/fd; /proc of the new PID namespace; the private /tmp with the program's folder.
  char path[4096];
  if (!join_path(path, sizeof path, p.new_root, "/dev")) return kStepDev * 1000 + ENAMETOOLONG;
  if (::mkdir(path, 0755) != 0 && errno != EEXIST) return kStepDev * 1000 + errno;
  if (::mkdir(p.root_shm, 01777) != 0 && errno != EEXIST) return kStepDev * 1000 + errno;
  if (::mount("tmpfs", p.root_shm, "tmpfs", MS_NOSUID | MS_NODEV | MS_NOEXEC, p.tmpfs_opts_shm) != 0)
    return kStepDev * 1000 + errno;
  bits |= kShm;
  static const char* const kLinks[][2] = {
      {"/dev/fd", "/proc/self/fd"}, {"/dev/stdin", "/proc/self/fd/0"}, {"/dev/stdout", "/proc/self/fd/1"},
      {"/dev/stderr", "/proc/self/fd/2"}};
  for (const auto& link : kLinks)
    if (join_path(path, sizeof path, p.new_root, link[0])) ::symlink(link[1], path);
  if (::mkdir(p.root_proc, 0555) == 0 &&
      ::mount("proc", p.root_proc, "proc", MS_NOSUID | MS_NODEV | MS_NOEXEC, nullptr) == 0)
    bits |= kNewProc;  // optional: a user namespace in a container may not mount proc
  if (::mkdir(p.root_tmp, 01777) != 0 && errno != EEXIST) return kStepTmpTmpfs * 1000 + errno;
  if (::mount("tmpfs", p.root_tmp, "tmpfs", MS_NOSUID | MS_NODEV, p.tmpfs_opts_tmp) != 0)
    return kStepTmpTmpfs * 1000 + errno;
  bits |= kTmpfs;
  if (::mkdir(p.root_workdir, 0700) != 0) return kStepTmpTmpfs * 1000 + errno;
  const bool to_nobody = p.is_root && !(bits & kUserNs);
  if (to_nobody && ::chown(p.root_workdir, kNobody, kNobody) != 0) return kStepTmpTmpfs * 1000 + errno;
  int fd = ::open(p.root_prog, O_WRONLY | O_CREAT | O_TRUNC | O_NOFOLLOW | O_CLOEXEC, 0644);
  if (fd < 0) return kStepProgram * 1000 + errno;
  write_all_raw(fd, p.program, p.program_len);
  ::close(fd);

  // Into the new root; the host's root is detached, so nothing of it stays reachable.
  if (::chdir(p.new_root) != 0) return kStepPivot * 1000 + errno;
  if (::syscall(SYS_pivot_root, ".", ".") != 0) return kStepPivot * 1000 + errno;
  if (::umount2(".", MNT_DETACH) != 0) return kStepPivot * 1000 + errno;
  if (::chdir("/") != 0) return kStepPivot * 1000 + errno;
  bits |= kPrivateRoot;
  if (::mount(nullptr, "/", nullptr, MS_REMOUNT | MS_BIND | MS_RDONLY | MS_NOSUID | MS_NODEV, nullptr) != 0)
    return kStepRootReadOnly * 1000 + errno;
  bits |= kRoRoot;
  return 0;
}

}  // namespace atax::sandbox_detail
