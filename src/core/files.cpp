// Files, JSON, JSON lines and errors.
#include <fcntl.h>
#include <signal.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <cstring>
#include <fstream>
#include <sstream>

#include <zlib.h>

#include "core/core.h"

namespace atax {

namespace {
std::string compose(const std::string& message, const std::string& file, const std::string& hint,
                    int64_t line) {
  std::string out;
  if (!file.empty()) {
    out += file;
    if (line > 0) out += ":" + std::to_string(line);
    out += ": ";
  }
  out += message;
  if (!hint.empty()) out += "\nhint: " + hint;
  return out;
}

std::atomic<uint64_t> g_tmp_counter{0};

std::string tmp_suffix() {
  return ".tmp." + std::to_string(::getpid()) + "." + std::to_string(g_tmp_counter.fetch_add(1));
}
}  // namespace

Error::Error(std::string message, std::string file, std::string hint, int64_t line)
    : std::runtime_error(compose(message, file, hint, line)),
      message_(std::move(message)),
      file_(std::move(file)),
      hint_(std::move(hint)),
      line_(line) {}

std::string read_file(const fs::path& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) {
    std::error_code ec;
    if (!fs::exists(path, ec)) throw Error("no such file", path.string(), "check the path");
    throw Error(std::string("cannot read: ") + std::strerror(errno), path.string());
  }
  if (fs::is_directory(path)) throw Error("is a folder, expected a file", path.string());
  std::ostringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

void write_file_atomic(const fs::path& path, std::string_view content) {
  if (path.has_parent_path()) fs::create_directories(path.parent_path());
  fs::path tmp = path;
  tmp += tmp_suffix();
  int fd = ::open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
  if (fd < 0) throw Error(std::string("cannot write: ") + std::strerror(errno), tmp.string());
  size_t off = 0;
  while (off < content.size()) {
    ssize_t n = ::write(fd, content.data() + off, content.size() - off);
    if (n < 0) {
      if (errno == EINTR) continue;
      int e = errno;
      ::close(fd);
      fs::remove(tmp);
      throw Error(std::string("write failed: ") + std::strerror(e), path.string());
    }
    off += static_cast<size_t>(n);
  }
  ::fsync(fd);
  ::close(fd);
  std::error_code ec;
  fs::rename(tmp, path, ec);
  if (ec) {
    fs::remove(tmp);
    throw Error("cannot rename into place: " + ec.message(), path.string());
  }
}

void write_json_atomic(const fs::path& path, const json& doc, int indent) {
  std::string s = indent < 0 ? doc.dump() : doc.dump(indent);
  s += "\n";
  write_file_atomic(path, s);
}

json read_json(const fs::path& path) {
  std::string text = read_file(path);
  try {
    return json::parse(text);
  } catch (const json::parse_error& e) {
    throw Error(std::string("not valid JSON: ") + e.what(), path.string(),
                "the file may be truncated or not JSON");
  }
}

// Removes the staging and parked-old folders ("."<name>".tmp.<pid>.<n>", "."<name>".old.tmp.<pid>.<n>")
// beside `final_dir` whose process no longer runs: the leftovers of killed runs.
void remove_stale_staging(const fs::path& final_dir) {
  fs::path p = final_dir;
  if (p.filename().empty()) p = p.parent_path();
  const fs::path parent = p.has_parent_path() ? p.parent_path() : fs::path(".");
  const std::string name = p.filename().string();
  std::error_code ec;
  if (name.empty() || !fs::is_directory(parent, ec)) return;
  for (const std::string& prefix : {"." + name + ".tmp.", "." + name + ".old.tmp."}) {
    for (fs::directory_iterator it(parent, ec), end; !ec && it != end; it.increment(ec)) {
      const std::string entry = it->path().filename().string();
      if (!starts_with(entry, prefix)) continue;
      const std::string rest = entry.substr(prefix.size());
      const size_t dot = rest.find('.');
      if (dot == 0 || dot == std::string::npos) continue;
      long long pid = 0;
      try {
        pid = std::stoll(rest.substr(0, dot));
      } catch (const std::exception&) {
        continue;
      }
      if (pid <= 0 || pid == ::getpid()) continue;
      if (::kill(static_cast<pid_t>(pid), 0) == 0 || errno != ESRCH) continue;  // still running (or not ours)
      std::error_code rm;
      fs::remove_all(it->path(), rm);
      if (!rm) log_info("removed " + it->path().string() + ", left by a run that was stopped");
    }
  }
}

fs::path staging_dir_for(const fs::path& final_dir) {
  fs::path p = final_dir;
  if (p.filename().empty()) p = p.parent_path();
  remove_stale_staging(p);
  fs::path staging = p.parent_path() / ("." + p.filename().string() + tmp_suffix());
  fs::create_directories(staging);
  return staging;
}

void commit_dir(const fs::path& tmp_dir, const fs::path& final_dir) {
  fs::path target = final_dir;
  if (target.filename().empty()) target = target.parent_path();
  std::error_code ec;
  fs::path old;
  if (fs::exists(target, ec)) {
    // The folder's output manifest (claim_output_dir) stays with the folder.
    if (fs::is_regular_file(target / kOutputManifest, ec) && !fs::exists(tmp_dir / kOutputManifest, ec))
      fs::copy_file(target / kOutputManifest, tmp_dir / kOutputManifest, ec);
    old = target.parent_path() / ("." + target.filename().string() + ".old" + tmp_suffix());
    fs::rename(target, old, ec);
    if (ec) throw Error("cannot move the old folder aside: " + ec.message(), target.string());
  }
  fs::rename(tmp_dir, target, ec);
  if (ec) {
    if (!old.empty()) fs::rename(old, target);
    throw Error("cannot move the new folder into place: " + ec.message(), target.string());
  }
  if (!old.empty()) fs::remove_all(old, ec);
}

std::string read_maybe_gzip(const fs::path& path) {
  std::string raw = read_file(path);
  if (raw.size() < 2 || static_cast<uint8_t>(raw[0]) != 0x1f || static_cast<uint8_t>(raw[1]) != 0x8b)
    return raw;
  z_stream zs{};
  if (inflateInit2(&zs, 16 + MAX_WBITS) != Z_OK) throw Error("zlib init failed", path.string());
  zs.next_in = reinterpret_cast<Bytef*>(raw.data());
  zs.avail_in = static_cast<uInt>(raw.size());
  std::string out;
  char buf[1 << 16];
  int rc;
  do {
    zs.next_out = reinterpret_cast<Bytef*>(buf);
    zs.avail_out = sizeof(buf);
    rc = inflate(&zs, Z_NO_FLUSH);
    if (rc != Z_OK && rc != Z_STREAM_END) {
      inflateEnd(&zs);
      throw Error("corrupt gzip data", path.string(), "the file may be truncated");
    }
    out.append(buf, sizeof(buf) - zs.avail_out);
    if (rc != Z_STREAM_END && zs.avail_in == 0 && zs.avail_out != 0) {
      inflateEnd(&zs);
      throw Error("truncated gzip data", path.string());
    }
  } while (rc != Z_STREAM_END);
  inflateEnd(&zs);
  return out;
}

JsonlStats for_each_jsonl(const fs::path& path, const std::function<void(const json&, int64_t)>& fn,
                          BadLinePolicy policy) {
  std::string text = read_maybe_gzip(path);
  JsonlStats stats;
  size_t pos = 0;
  int64_t line_no = 0;
  while (pos < text.size()) {
    size_t end = text.find('\n', pos);
    if (end == std::string::npos) end = text.size();
    std::string_view line(text.data() + pos, end - pos);
    pos = end + 1;
    ++line_no;
    if (!line.empty() && line.back() == '\r') line.remove_suffix(1);
    if (trim(line).empty()) continue;
    std::string reason;
    try {
      json j = json::parse(line);
      if (!j.is_object()) throw Error("line is JSON but not an object", path.string(), "", line_no);
      fn(j, line_no);
      ++stats.lines_read;
      continue;
    } catch (const json::parse_error& e) {
      reason = std::string("not valid JSON (") + e.what() + ")";
    } catch (const json::type_error& e) {
      reason = std::string("field of the wrong type (") + e.what() + ")";
    } catch (const Error& e) {
      reason = e.message();
    }
    if (policy == BadLinePolicy::kFail)
      throw Error(reason, path.string(), "fix the line, or pass --on-bad-line skip to skip bad lines",
                  line_no);
    ++stats.lines_skipped;
    if (stats.skipped_reasons.size() < 20)
      stats.skipped_reasons.push_back(path.string() + ":" + std::to_string(line_no) + ": " + reason);
  }
  return stats;
}

std::vector<json> read_jsonl(const fs::path& path) {
  std::vector<json> out;
  for_each_jsonl(path, [&](const json& j, int64_t) { out.push_back(j); });
  return out;
}

void write_jsonl_atomic(const fs::path& path, const std::vector<json>& records) {
  std::string s;
  for (const auto& r : records) {
    s += r.dump();
    s += '\n';
  }
  write_file_atomic(path, s);
}

std::string require_string(const json& j, const std::string& key, const std::string& file, int64_t line) {
  auto it = j.find(key);
  if (it == j.end()) throw Error("missing field \"" + key + "\"", file, "", line);
  if (!it->is_string()) throw Error("field \"" + key + "\" is not a string", file, "", line);
  return it->get<std::string>();
}

}  // namespace atax
