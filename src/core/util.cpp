// The portable seeded generator, progress reporting and string helpers.
#include <sys/ioctl.h>
#ifdef __GLIBC__
#include <malloc.h>
#endif
#include <unistd.h>

#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <ctime>
#include <fstream>
#include <iostream>
#include <mutex>

#include <fmt/format.h>

#include "core/core.h"

#if __has_include("atax_git_hash.h")
#include "atax_git_hash.h"  // written at every build (cmake/git_hash.cmake)
#endif
#ifndef ATAX_GIT_HASH
#define ATAX_GIT_HASH "unknown"
#endif
#ifndef ATAX_VERSION
#define ATAX_VERSION "0.0.0"
#endif

namespace atax {

// ------------------------------------------------------------------------------------------ shards
std::pair<int64_t, int64_t> shard_range(int64_t n, int index, int count) {
  if (count < 1 || index < 0 || index >= count || n < 0)
    throw Error(fmt::format("shard {} of {} over {} items does not exist", index, count, n), "",
                "the shard index must be in [0, count) and the count at least 1");
  const int64_t base = n / count, extra = n % count;
  const int64_t begin = index * base + std::min<int64_t>(index, extra);
  return {begin, begin + base + (index < extra ? 1 : 0)};
}

// ------------------------------------------------------------------------------------------ rng
namespace {
uint64_t splitmix64(uint64_t& x) {
  uint64_t z = (x += 0x9e3779b97f4a7c15ULL);
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
  return z ^ (z >> 31);
}
inline uint64_t rotl(uint64_t x, int k) { return (x << k) | (x >> (64 - k)); }
}  // namespace

Rng::Rng(uint64_t seed) : seed_(seed) {
  uint64_t x = seed;
  for (auto& s : s_) s = splitmix64(x);
}

uint64_t Rng::next_u64() {
  uint64_t result = rotl(s_[1] * 5, 7) * 9;
  uint64_t t = s_[1] << 17;
  s_[2] ^= s_[0]; s_[3] ^= s_[1]; s_[1] ^= s_[2]; s_[0] ^= s_[3];
  s_[2] ^= t;
  s_[3] = rotl(s_[3], 45);
  return result;
}

uint64_t Rng::uniform(uint64_t n) {
  if (n <= 1) return 0;
  uint64_t limit = UINT64_MAX - UINT64_MAX % n;
  uint64_t r;
  do r = next_u64(); while (r >= limit);
  return r % n;
}

int64_t Rng::range(int64_t lo, int64_t hi) {
  return lo + static_cast<int64_t>(uniform(static_cast<uint64_t>(hi - lo + 1)));
}

double Rng::uniform01() { return static_cast<double>(next_u64() >> 11) * 0x1.0p-53; }

bool Rng::bernoulli(double p) { return uniform01() < p; }

Rng Rng::fork(std::string_view salt) const {
  uint64_t h = 1469598103934665603ULL;  // FNV-1a over the salt, mixed with the seed
  for (char c : salt) h = (h ^ static_cast<uint8_t>(c)) * 1099511628211ULL;
  uint64_t x = seed_ ^ h;
  return Rng(splitmix64(x));
}

// ------------------------------------------------------------------------------------------ progress
namespace {
std::mutex g_err_mutex;
std::string progress_mode() {
  const char* m = std::getenv("ATAX_PROGRESS");
  return m ? std::string(m) : std::string();
}
std::string fmt_duration(double s) {
  if (!std::isfinite(s) || s < 0) return "?";
  int64_t t = static_cast<int64_t>(s + 0.5);
  if (t >= 3600) return fmt::format("{}h{:02d}m", t / 3600, (t / 60) % 60);
  if (t >= 60) return fmt::format("{}m{:02d}s", t / 60, t % 60);
  return fmt::format("{}s", t);
}
}  // namespace

double now_seconds() {
  return std::chrono::duration<double>(std::chrono::steady_clock::now().time_since_epoch()).count();
}

std::string iso_datetime_utc() {
  std::time_t t = std::time(nullptr);
  std::tm tm{};
  gmtime_r(&t, &tm);
  char buf[32];
  std::strftime(buf, sizeof(buf), "%Y-%m-%dT%H:%M:%SZ", &tm);
  return buf;
}

Progress::Progress(std::string label, int64_t total, std::string unit)
    : label_(std::move(label)), unit_(std::move(unit)), total_(total), start_(now_seconds()) {
  std::string mode = progress_mode();
  enabled_ = mode != "0";
  tty_ = mode != "plain" && ::isatty(STDERR_FILENO);
}

Progress::~Progress() {
  if (!finished_ && enabled_ && tty_ && done_ > 0) {
    std::lock_guard<std::mutex> lock(g_err_mutex);
    std::cerr << "\n";
  }
}

void Progress::update(int64_t done_now, const std::string& extra) {
  done_ = done_now;
  if (!extra.empty()) extra_ = extra;
  double t = now_seconds();
  double interval = tty_ ? 0.1 : 5.0;
  if (t - last_draw_ >= interval) {
    last_draw_ = t;
    draw(false);
  }
}

void Progress::advance(int64_t n, const std::string& extra) { update(done_ + n, extra); }

void Progress::finish(const std::string& extra) {
  if (finished_) return;
  if (!extra.empty()) extra_ = extra;
  draw(true);
  finished_ = true;
}

void Progress::draw(bool final) {
  if (!enabled_) return;
  double elapsed = now_seconds() - start_;
  double rate = elapsed > 0 ? done_ / elapsed : 0;
  double eta = (rate > 0 && total_ > 0) ? (total_ - done_) / rate : NAN;
  std::string rate_s = rate >= 100 ? fmt::format("{:.0f}", rate) : fmt::format("{:.2f}", rate);
  std::lock_guard<std::mutex> lock(g_err_mutex);
  if (tty_) {
    int width = 30;
    double frac = total_ > 0 ? std::min(1.0, double(done_) / total_) : 0;
    int filled = static_cast<int>(frac * width);
    std::string bar = std::string(filled, '#') + std::string(width - filled, '.');
    std::cerr << fmt::format("\r\033[K{} [{}] {}/{} {:3.0f}% {} {}/s eta {} {}", label_, bar, done_, total_,
                             frac * 100, fmt_duration(elapsed), rate_s, unit_,
                             final ? "0s" : fmt_duration(eta), extra_);
    if (final) std::cerr << "\n";
    std::cerr.flush();
  } else {
    std::cerr << fmt::format("[atax] {}: {}/{} {} ({} {}/s, elapsed {}, eta {}){}{}\n", label_, done_, total_,
                             unit_, rate_s, unit_, fmt_duration(elapsed), final ? "0s" : fmt_duration(eta),
                             extra_.empty() ? "" : " ", extra_);
  }
}

void log_info(const std::string& line) {
  if (progress_mode() == "0") return;
  std::lock_guard<std::mutex> lock(g_err_mutex);
  std::cerr << "[atax] " << line << "\n";
}

// ------------------------------------------------------------------------------------------ strings
std::vector<std::string> split(std::string_view s, char sep) {
  std::vector<std::string> out;
  size_t start = 0;
  while (true) {
    size_t p = s.find(sep, start);
    if (p == std::string_view::npos) {
      out.emplace_back(s.substr(start));
      break;
    }
    out.emplace_back(s.substr(start, p - start));
    start = p + 1;
  }
  return out;
}

std::string join(const std::vector<std::string>& parts, std::string_view sep) {
  std::string out;
  for (size_t i = 0; i < parts.size(); ++i) {
    if (i) out += sep;
    out += parts[i];
  }
  return out;
}

std::string trim(std::string_view s) {
  size_t a = 0, b = s.size();
  while (a < b && std::isspace(static_cast<unsigned char>(s[a]))) ++a;
  while (b > a && std::isspace(static_cast<unsigned char>(s[b - 1]))) --b;
  return std::string(s.substr(a, b - a));
}

std::string to_lower(std::string_view s) {
  std::string out(s);
  for (auto& c : out) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return out;
}

bool starts_with(std::string_view s, std::string_view prefix) { return s.substr(0, prefix.size()) == prefix; }

bool ends_with(std::string_view s, std::string_view suffix) {
  return s.size() >= suffix.size() && s.substr(s.size() - suffix.size()) == suffix;
}

std::string replace_all(std::string s, std::string_view from, std::string_view to) {
  if (from.empty()) return s;
  size_t pos = 0;
  while ((pos = s.find(from, pos)) != std::string::npos) {
    s.replace(pos, from.size(), to);
    pos += to.size();
  }
  return s;
}

std::string format_pm(double value, double err, int digits) {
  if (!std::isfinite(value)) return "n/a";
  if (!std::isfinite(err)) return fmt::format("{:.{}f}", value, digits);
  return fmt::format("{:.{}f} ± {:.{}f}", value, digits, err, digits);
}

bool tune_allocator() {
#ifdef __GLIBC__
  for (const char* v : {"MALLOC_MMAP_THRESHOLD_", "MALLOC_TRIM_THRESHOLD_", "MALLOC_TOP_PAD_", "GLIBC_TUNABLES"})
    if (std::getenv(v)) return false;
  // A training step allocates and frees tensors of 1-32 MB (the demo model's logits are 16 MB,
  // its attention scores 16 MB). By default glibc serves blocks over its dynamic threshold with
  // mmap and trims the heap top after frees, so every step maps, faults in and unmaps the same
  // memory again. Keeping blocks up to 32 MB (the largest threshold glibc accepts) on the heap and
  // never trimming it, measured on the 2-core machine, demo model, 70 pretraining steps of
  // 16 x 256 tokens, 3 runs each, interleaved: 0.337 / 0.339 / 0.359 s per step with glibc's
  // defaults, 0.299 / 0.310 / 0.324 with these (sys time 19-21 s -> 9-11 s). The price is a
  // resident set that stays at its peak instead of shrinking between steps.
  mallopt(M_MMAP_THRESHOLD, 32 << 20);
  mallopt(M_TRIM_THRESHOLD, 1 << 30);
  mallopt(M_TOP_PAD, 256 << 20);
  return true;
#else
  return false;
#endif
}

std::string atax_version() { return ATAX_VERSION; }
std::string atax_git_hash() { return ATAX_GIT_HASH; }

}  // namespace atax
