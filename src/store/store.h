// store: a SQLite run store for sweeps. One row per distinct settings (keyed by their content
// hash) with its status, metrics, artifact paths and timings. A sweep asks find_done(key) before
// training, so a sweep that was killed resumes without redoing the runs it finished; the row of
// the run it was in the middle of stays "running" (shown as interrupted) until begin() retries it.
// WAL journal with synchronous=FULL: a committed finish() survives the process being killed.
// No LibTorch here.
#pragma once

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "core/core.h"

struct sqlite3;

namespace atax::store {

enum class RunStatus { kPending, kRunning, kDone, kFailed };
std::string to_string(RunStatus s);
// Parses "pending" | "running" | "done" | "failed"; Error otherwise.
RunStatus parse_status(const std::string& s);

struct Run {
  int64_t id = 0;
  std::string key;       // settings_key(settings)
  std::string name;      // human label, e.g. "dpo beta=0.1"
  json settings;         // the settings object the key hashes
  RunStatus status = RunStatus::kPending;
  json metrics;          // null until done
  json artifacts;        // null until done: {"checkpoint": "out/...", ...}
  std::string message;   // failure message
  std::string started, finished;  // ISO-8601 UTC, "" if not yet
  double seconds = 0;    // as reported by finish()
  int64_t attempts = 0;  // begin() calls
  int64_t pid = 0;       // process that last began it
  bool interrupted = false;  // status running but that process is gone (this host)
};

struct RunFilter {
  std::optional<RunStatus> status;
  std::string name_contains;  // substring of name
  std::string key_prefix;
  int64_t limit = 0;          // 0 = all
};

// The content hash of a settings object: SHA-256 (hex) of its canonical JSON (keys sorted,
// compact, shortest round-trip numbers), so equal settings give equal keys in any key order.
std::string settings_key(const json& settings);

class RunStore {
 public:
  static constexpr const char* kDefaultPath = "out/runs.sqlite";

  // Opens the store at `path`, creating the file and its folder if missing; WAL mode, a busy
  // timeout of `busy_timeout_ms`. Fails with Error naming the file if it is not an atax store or
  // cannot be opened.
  static RunStore open(const fs::path& path, int busy_timeout_ms = 10000);
  // Opens an existing store; Error with a hint if `path` does not exist (never creates one).
  static RunStore open_existing(const fs::path& path, int busy_timeout_ms = 10000);

  RunStore(RunStore&& other) noexcept;
  RunStore& operator=(RunStore&& other) noexcept;
  RunStore(const RunStore&) = delete;
  RunStore& operator=(const RunStore&) = delete;
  ~RunStore();

  // The finished run with this key, if any.
  std::optional<Run> find_done(const std::string& key);
  // The run with this key in any status, if any.
  std::optional<Run> find(const std::string& key);
  std::optional<Run> get(int64_t id);

  // Adds a pending run (a queued grid point) unless the key exists; returns its id either way.
  int64_t enqueue(const std::string& key, const json& settings, const std::string& name = {});
  // Marks the run with `key` running (inserting it if new) and returns its id. A pending, failed
  // or interrupted row is reused (attempts + 1). Fails with Error if that key is already done.
  int64_t begin(const std::string& key, const json& settings, const std::string& name = {});
  // Marks run `id` done with its metrics, artifact paths and wall time. Error if no such run.
  void finish(int64_t id, const json& metrics, const json& artifacts, double seconds);
  // Marks run `id` failed with `message`. Error if no such run.
  void fail(int64_t id, const std::string& message);

  // Runs matching `filter`, by id.
  std::vector<Run> list(const RunFilter& filter = {});

  const fs::path& path() const { return path_; }

 private:
  RunStore(sqlite3* db, fs::path path);
  sqlite3* db_ = nullptr;
  fs::path path_;
};

// Side by side comparison of runs: settings that differ between them and every metric, keyed by
// dotted paths into the JSON ("train.beta", "tax.mean").
struct RunComparison {
  std::vector<Run> runs;
  std::map<std::string, std::vector<json>> settings_diff;  // only keys whose values differ
  std::map<std::string, std::vector<json>> metrics;        // union of metric keys (null = absent)
  int64_t settings_same = 0;                               // keys equal in all runs
};

// Compares the runs with these ids; Error naming the first id that does not exist.
RunComparison compare(RunStore& store, const std::vector<int64_t>& ids);

// Flattens nested objects to dotted keys (arrays stay values).
std::map<std::string, json> flatten_json(const json& j);

// Text outputs for `atax runs`: an aligned table of runs, and the comparison as a table.
std::string runs_table(const std::vector<Run>& runs);
std::string comparison_table(const RunComparison& cmp);
json run_json(const Run& run);
json comparison_json(const RunComparison& cmp);

}  // namespace atax::store
