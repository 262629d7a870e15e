// The SQLite run store: schema, statements, and the text/JSON views used by `atax runs`.
#include "store/store.h"

#include <signal.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <set>

#include <fmt/format.h>
#include <sqlite3.h>

namespace atax::store {

namespace {

constexpr int kSchemaVersion = 1;

const char* const kSchema = R"sql(
CREATE TABLE IF NOT EXISTS runs(
  id        INTEGER PRIMARY KEY AUTOINCREMENT,
  key       TEXT NOT NULL UNIQUE,
  name      TEXT NOT NULL DEFAULT '',
  settings  TEXT NOT NULL,
  status    TEXT NOT NULL CHECK(status IN ('pending', 'running', 'done', 'failed')),
  metrics   TEXT,
  artifacts TEXT,
  message   TEXT,
  started   TEXT,
  finished  TEXT,
  seconds   REAL,
  attempts  INTEGER NOT NULL DEFAULT 0,
  pid       INTEGER
);
CREATE INDEX IF NOT EXISTS runs_status ON runs(status);
)sql";

const char* const kColumns =
    "id, key, name, settings, status, metrics, artifacts, message, started, finished, seconds, attempts, pid";

// A prepared statement that finalizes itself; binds by 1-based position.
class Stmt {
 public:
  Stmt(sqlite3* db, const std::string& sql, const fs::path& path) : db_(db), path_(path) {
    if (sqlite3_prepare_v2(db, sql.c_str(), -1, &st_, nullptr) != SQLITE_OK)
      throw Error(fmt::format("run store: cannot prepare statement: {}", sqlite3_errmsg(db)), path.string(),
                  "the file may not be an atax run store");
  }
  ~Stmt() { sqlite3_finalize(st_); }
  Stmt(const Stmt&) = delete;
  Stmt& operator=(const Stmt&) = delete;

  Stmt& bind(int i, const std::string& s) {
    sqlite3_bind_text(st_, i, s.data(), static_cast<int>(s.size()), SQLITE_TRANSIENT);
    return *this;
  }
  Stmt& bind(int i, int64_t v) {
    sqlite3_bind_int64(st_, i, v);
    return *this;
  }
  Stmt& bind(int i, double v) {
    sqlite3_bind_double(st_, i, v);
    return *this;
  }
  Stmt& bind_null(int i) {
    sqlite3_bind_null(st_, i);
    return *this;
  }
  // Steps once; true if a row is available.
  bool step() {
    int rc = sqlite3_step(st_);
    if (rc == SQLITE_ROW) return true;
    if (rc == SQLITE_DONE) return false;
    throw_sqlite(rc);
    return false;
  }
  std::string text(int col) const {
    const unsigned char* p = sqlite3_column_text(st_, col);
    return p ? std::string(reinterpret_cast<const char*>(p), static_cast<size_t>(sqlite3_column_bytes(st_, col)))
             : std::string();
  }
  bool is_null(int col) const { return sqlite3_column_type(st_, col) == SQLITE_NULL; }
  int64_t int64(int col) const { return sqlite3_column_int64(st_, col); }
  double real(int col) const { return sqlite3_column_double(st_, col); }

 private:
  [[noreturn]] void throw_sqlite(int rc) {
    std::string hint = rc == SQLITE_BUSY || rc == SQLITE_LOCKED
                           ? "another process holds the store; wait for it or use another --store"
                           : "check the disk and the file's permissions";
    throw Error(fmt::format("run store: {}", sqlite3_errmsg(db_)), path_.string(), hint);
  }
  sqlite3* db_;
  sqlite3_stmt* st_ = nullptr;
  fs::path path_;
};

void exec(sqlite3* db, const std::string& sql, const fs::path& path) {
  char* err = nullptr;
  if (sqlite3_exec(db, sql.c_str(), nullptr, nullptr, &err) != SQLITE_OK) {
    std::string msg = err ? err : sqlite3_errmsg(db);
    sqlite3_free(err);
    throw Error("run store: " + msg, path.string(),
                msg.find("locked") != std::string::npos || msg.find("busy") != std::string::npos
                    ? "another process holds the store; wait for it or use another --store"
                    : "the file may not be an atax run store, or it is damaged");
  }
}

// BEGIN IMMEDIATE ... COMMIT, rolled back if the body throws.
class Transaction {
 public:
  Transaction(sqlite3* db, const fs::path& path) : db_(db), path_(path) { exec(db, "BEGIN IMMEDIATE", path); }
  void commit() {
    exec(db_, "COMMIT", path_);
    done_ = true;
  }
  ~Transaction() {
    if (!done_) sqlite3_exec(db_, "ROLLBACK", nullptr, nullptr, nullptr);
  }

 private:
  sqlite3* db_;
  fs::path path_;
  bool done_ = false;
};

json parse_column(const std::string& text, const fs::path& path, int64_t id, const char* what) {
  if (text.empty()) return nullptr;
  try {
    return json::parse(text);
  } catch (const json::parse_error& e) {
    throw Error(fmt::format("run {}: {} is not valid JSON ({})", id, what, e.what()), path.string(),
                "the store was edited by hand or is damaged");
  }
}

bool process_alive(int64_t pid) {
  if (pid <= 0) return true;  // unknown: do not call it interrupted
  if (kill(static_cast<pid_t>(pid), 0) == 0) return true;
  return errno != ESRCH;
}

Run read_run(const Stmt& st, const fs::path& path) {
  Run r;
  r.id = st.int64(0);
  r.key = st.text(1);
  r.name = st.text(2);
  r.settings = parse_column(st.text(3), path, r.id, "settings");
  r.status = parse_status(st.text(4));
  r.metrics = parse_column(st.text(5), path, r.id, "metrics");
  r.artifacts = parse_column(st.text(6), path, r.id, "artifacts");
  r.message = st.text(7);
  r.started = st.text(8);
  r.finished = st.text(9);
  r.seconds = st.is_null(10) ? 0.0 : st.real(10);
  r.attempts = st.int64(11);
  r.pid = st.is_null(12) ? 0 : st.int64(12);
  r.interrupted = r.status == RunStatus::kRunning && !process_alive(r.pid);
  return r;
}

}  // namespace

std::string to_string(RunStatus s) {
  switch (s) {
    case RunStatus::kPending: return "pending";
    case RunStatus::kRunning: return "running";
    case RunStatus::kDone: return "done";
    case RunStatus::kFailed: return "failed";
  }
  return "?";
}

RunStatus parse_status(const std::string& s) {
  if (s == "pending") return RunStatus::kPending;
  if (s == "running") return RunStatus::kRunning;
  if (s == "done") return RunStatus::kDone;
  if (s == "failed") return RunStatus::kFailed;
  throw Error("unknown run status '" + s + "'", "", "use pending, running, done or failed");
}

std::string settings_key(const json& settings) { return sha256_hex(settings.dump()); }

// ------------------------------------------------------------------------------------ RunStore

RunStore::RunStore(sqlite3* db, fs::path path) : db_(db), path_(std::move(path)) {}

RunStore::RunStore(RunStore&& other) noexcept : db_(other.db_), path_(std::move(other.path_)) { other.db_ = nullptr; }

RunStore& RunStore::operator=(RunStore&& other) noexcept {
  if (this != &other) {
    if (db_) sqlite3_close_v2(db_);
    db_ = other.db_;
    path_ = std::move(other.path_);
    other.db_ = nullptr;
  }
  return *this;
}

RunStore::~RunStore() {
  if (db_) sqlite3_close_v2(db_);
}

RunStore RunStore::open(const fs::path& path, int busy_timeout_ms) {
  std::error_code ec;
  if (path.has_parent_path()) fs::create_directories(path.parent_path(), ec);
  sqlite3* db = nullptr;
  int rc = sqlite3_open_v2(path.c_str(), &db, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_FULLMUTEX,
                           nullptr);
  if (rc != SQLITE_OK) {
    std::string msg = db ? sqlite3_errmsg(db) : "out of memory";
    sqlite3_close_v2(db);
    throw Error("cannot open run store: " + msg, path.string(), "check that the folder exists and is writable");
  }
  RunStore store(db, path);
  sqlite3_busy_timeout(db, busy_timeout_ms);
  int64_t version = 0;
  {
    Stmt st(db, "PRAGMA user_version", path);
    if (st.step()) version = st.int64(0);
  }
  if (version > kSchemaVersion)
    throw Error(fmt::format("run store has schema version {}, this atax knows {}", version, kSchemaVersion),
                path.string(), "use a newer atax, or another --store");
  {
    // A store made by something else: refuse rather than add tables to it.
    Stmt st(db, "SELECT count(*) FROM sqlite_master WHERE type = 'table' AND name NOT IN ('runs', 'sqlite_sequence')",
            path);
    if (st.step() && st.int64(0) > 0 && version == 0)
      throw Error("not an atax run store (it has other tables)", path.string(), "pass another --store path");
  }
  exec(db, "PRAGMA journal_mode = WAL", path);
  exec(db, "PRAGMA synchronous = FULL", path);
  exec(db, "PRAGMA foreign_keys = ON", path);
  if (version < kSchemaVersion) {
    Transaction tx(db, path);
    exec(db, kSchema, path);
    exec(db, fmt::format("PRAGMA user_version = {}", kSchemaVersion), path);
    tx.commit();
  }
  return store;
}

RunStore RunStore::open_existing(const fs::path& path, int busy_timeout_ms) {
  if (!fs::exists(path))
    throw Error("no run store at this path", path.string(),
                "run a sweep first (atax sweep), or pass the store with --store PATH");
  return open(path, busy_timeout_ms);
}

std::optional<Run> RunStore::find_done(const std::string& key) {
  Stmt st(db_, fmt::format("SELECT {} FROM runs WHERE key = ?1 AND status = 'done'", kColumns), path_);
  st.bind(1, key);
  if (!st.step()) return std::nullopt;
  return read_run(st, path_);
}

std::optional<Run> RunStore::find(const std::string& key) {
  Stmt st(db_, fmt::format("SELECT {} FROM runs WHERE key = ?1", kColumns), path_);
  st.bind(1, key);
  if (!st.step()) return std::nullopt;
  return read_run(st, path_);
}

std::optional<Run> RunStore::get(int64_t id) {
  Stmt st(db_, fmt::format("SELECT {} FROM runs WHERE id = ?1", kColumns), path_);
  st.bind(1, id);
  if (!st.step()) return std::nullopt;
  return read_run(st, path_);
}

int64_t RunStore::enqueue(const std::string& key, const json& settings, const std::string& name) {
  Transaction tx(db_, path_);
  {
    Stmt st(db_, "INSERT INTO runs(key, name, settings, status) VALUES(?1, ?2, ?3, 'pending') "
                 "ON CONFLICT(key) DO NOTHING",
            path_);
    st.bind(1, key).bind(2, name).bind(3, settings.dump());
    st.step();
  }
  Stmt id(db_, "SELECT id FROM runs WHERE key = ?1", path_);
  id.bind(1, key);
  id.step();
  int64_t out = id.int64(0);
  tx.commit();
  return out;
}

int64_t RunStore::begin(const std::string& key, const json& settings, const std::string& name) {
  Transaction tx(db_, path_);
  std::optional<int64_t> existing;
  {
    Stmt st(db_, "SELECT id, status FROM runs WHERE key = ?1", path_);
    st.bind(1, key);
    if (st.step()) {
      if (st.text(1) == "done")
        throw Error(fmt::format("run {} (key {}) is already done", st.int64(0), key.substr(0, 12)), path_.string(),
                    "check find_done() before training; delete the row to redo it");
      existing = st.int64(0);
    }
  }
  const std::string now = iso_datetime_utc();
  const int64_t pid = static_cast<int64_t>(getpid());
  int64_t id;
  if (existing) {
    Stmt st(db_, "UPDATE runs SET status = 'running', settings = ?2, name = CASE WHEN ?3 = '' THEN name ELSE ?3 END, "
                 "started = ?4, finished = NULL, message = NULL, seconds = NULL, attempts = attempts + 1, pid = ?5 "
                 "WHERE id = ?1",
            path_);
    st.bind(1, *existing).bind(2, settings.dump()).bind(3, name).bind(4, now).bind(5, pid);
    st.step();
    id = *existing;
  } else {
    Stmt st(db_, "INSERT INTO runs(key, name, settings, status, started, attempts, pid) "
                 "VALUES(?1, ?2, ?3, 'running', ?4, 1, ?5)",
            path_);
    st.bind(1, key).bind(2, name).bind(3, settings.dump()).bind(4, now).bind(5, pid);
    st.step();
    id = sqlite3_last_insert_rowid(db_);
  }
  tx.commit();
  return id;
}

void RunStore::finish(int64_t id, const json& metrics, const json& artifacts, double seconds) {
  Stmt st(db_, "UPDATE runs SET status = 'done', metrics = ?2, artifacts = ?3, seconds = ?4, finished = ?5, "
               "message = NULL WHERE id = ?1",
          path_);
  st.bind(1, id).bind(2, metrics.dump()).bind(3, artifacts.dump()).bind(4, seconds).bind(5, iso_datetime_utc());
  st.step();
  if (sqlite3_changes(db_) != 1)
    throw Error(fmt::format("run store: no run with id {}", id), path_.string(), "use the id begin() returned");
}

void RunStore::fail(int64_t id, const std::string& message) {
  Stmt st(db_, "UPDATE runs SET status = 'failed', message = ?2, finished = ?3 WHERE id = ?1", path_);
  st.bind(1, id).bind(2, message).bind(3, iso_datetime_utc());
  st.step();
  if (sqlite3_changes(db_) != 1)
    throw Error(fmt::format("run store: no run with id {}", id), path_.string(), "use the id begin() returned");
}

std::vector<Run> RunStore::list(const RunFilter& f) {
  std::string sql = fmt::format("SELECT {} FROM runs WHERE 1", kColumns);
  if (f.status) sql += " AND status = ?1";
  if (!f.name_contains.empty()) sql += " AND instr(name, ?2) > 0";
  if (!f.key_prefix.empty()) sql += " AND substr(key, 1, length(?3)) = ?3";
  sql += " ORDER BY id";
  if (f.limit > 0) sql += " LIMIT ?4";
  Stmt st(db_, sql, path_);
  if (f.status) st.bind(1, to_string(*f.status));
  if (!f.name_contains.empty()) st.bind(2, f.name_contains);
  if (!f.key_prefix.empty()) st.bind(3, f.key_prefix);
  if (f.limit > 0) st.bind(4, f.limit);
  std::vector<Run> out;
  while (st.step()) out.push_back(read_run(st, path_));
  return out;
}

// ------------------------------------------------------------------------------------ compare

std::map<std::string, json> flatten_json(const json& j) {
  std::map<std::string, json> out;
  std::function<void(const json&, const std::string&)> walk = [&](const json& v, const std::string& prefix) {
    if (v.is_object() && !v.empty()) {
      for (const auto& [k, x] : v.items()) walk(x, prefix.empty() ? k : prefix + "." + k);
    } else if (!prefix.empty()) {
      out[prefix] = v;
    }
  };
  walk(j, "");
  return out;
}

RunComparison compare(RunStore& store, const std::vector<int64_t>& ids) {
  RunComparison cmp;
  for (int64_t id : ids) {
    auto r = store.get(id);
    if (!r)
      throw Error(fmt::format("no run with id {}", id), store.path().string(), "list the runs with `atax runs`");
    cmp.runs.push_back(std::move(*r));
  }
  std::vector<std::map<std::string, json>> settings, metrics;
  std::set<std::string> skeys, mkeys;
  for (const auto& r : cmp.runs) {
    settings.push_back(flatten_json(r.settings));
    metrics.push_back(flatten_json(r.metrics));
    for (const auto& [k, v] : settings.back()) skeys.insert(k);
    for (const auto& [k, v] : metrics.back()) mkeys.insert(k);
  }
  auto column = [](const std::vector<std::map<std::string, json>>& maps, const std::string& k) {
    std::vector<json> col;
    for (const auto& m : maps) {
      auto it = m.find(k);
      col.push_back(it == m.end() ? json(nullptr) : it->second);
    }
    return col;
  };
  for (const auto& k : skeys) {
    auto col = column(settings, k);
    bool same = std::all_of(col.begin(), col.end(), [&](const json& v) { return v == col.front(); });
    if (same) ++cmp.settings_same;
    else cmp.settings_diff[k] = col;
  }
  for (const auto& k : mkeys) cmp.metrics[k] = column(metrics, k);
  return cmp;
}

// ------------------------------------------------------------------------------------ views

namespace {

std::string cell(const json& v) {
  if (v.is_null()) return "—";
  if (v.is_string()) return v.get<std::string>();
  if (v.is_number_float()) return fmt::format("{:.4g}", v.get<double>());
  return v.dump();
}

std::string status_text(const Run& r) { return r.interrupted ? "interrupted" : to_string(r.status); }

// Renders rows as a left-aligned text table with a header rule.
std::string text_table(const std::vector<std::vector<std::string>>& rows) {
  std::vector<size_t> width;
  auto display_len = [](const std::string& s) {
    size_t n = 0;
    for (unsigned char c : s) n += (c & 0xC0) != 0x80;  // count UTF-8 code points
    return n;
  };
  for (const auto& row : rows)
    for (size_t i = 0; i < row.size(); ++i) {
      if (width.size() <= i) width.push_back(0);
      width[i] = std::max(width[i], display_len(row[i]));
    }
  std::string out;
  for (size_t r = 0; r < rows.size(); ++r) {
    std::string line;
    for (size_t i = 0; i < rows[r].size(); ++i) {
      line += rows[r][i];
      if (i + 1 < rows[r].size()) line += std::string(width[i] - display_len(rows[r][i]) + 2, ' ');
    }
    while (!line.empty() && line.back() == ' ') line.pop_back();
    out += line + "\n";
    if (r == 0) {
      size_t total = 0;
      for (size_t w : width) total += w + 2;
      out += std::string(total > 2 ? total - 2 : 0, '-') + "\n";
    }
  }
  return out;
}

}  // namespace

std::string runs_table(const std::vector<Run>& runs) {
  if (runs.empty()) return "no runs\n";
  std::vector<std::vector<std::string>> rows = {{"id", "status", "name", "key", "started", "seconds", "metrics"}};
  for (const auto& r : runs) {
    std::vector<std::string> m;
    for (const auto& [k, v] : flatten_json(r.metrics)) {
      if (m.size() == 4) {
        m.push_back("…");
        break;
      }
      m.push_back(k + "=" + cell(v));
    }
    rows.push_back({std::to_string(r.id), status_text(r), r.name.empty() ? "—" : r.name, r.key.substr(0, 12),
                    r.started.empty() ? "—" : r.started,
                    r.status == RunStatus::kDone ? fmt::format("{:.1f}", r.seconds) : "—",
                    r.status == RunStatus::kFailed ? "error: " + r.message : join(m, " ")});
  }
  return text_table(rows);
}

std::string comparison_table(const RunComparison& cmp) {
  std::vector<std::vector<std::string>> rows;
  std::vector<std::string> header = {"field"};
  for (const auto& r : cmp.runs) header.push_back(fmt::format("run {}", r.id));
  rows.push_back(header);
  std::vector<std::string> names = {"name"}, status = {"status"}, secs = {"seconds"};
  for (const auto& r : cmp.runs) {
    names.push_back(r.name.empty() ? "—" : r.name);
    status.push_back(status_text(r));
    secs.push_back(r.status == RunStatus::kDone ? fmt::format("{:.1f}", r.seconds) : "—");
  }
  rows.push_back(names);
  rows.push_back(status);
  rows.push_back(secs);
  for (const auto& [k, col] : cmp.settings_diff) {
    std::vector<std::string> row = {"settings." + k};
    for (const auto& v : col) row.push_back(cell(v));
    rows.push_back(row);
  }
  for (const auto& [k, col] : cmp.metrics) {
    std::vector<std::string> row = {"metrics." + k};
    for (const auto& v : col) row.push_back(cell(v));
    rows.push_back(row);
  }
  return text_table(rows) + fmt::format("({} setting(s) equal in all runs not shown)\n", cmp.settings_same);
}

json run_json(const Run& r) {
  return {{"id", r.id},
          {"key", r.key},
          {"name", r.name},
          {"settings", r.settings},
          {"status", to_string(r.status)},
          {"interrupted", r.interrupted},
          {"metrics", r.metrics},
          {"artifacts", r.artifacts},
          {"message", r.message},
          {"started", r.started},
          {"finished", r.finished},
          {"seconds", r.seconds},
          {"attempts", r.attempts}};
}

json comparison_json(const RunComparison& cmp) {
  json j;
  j["runs"] = json::array();
  for (const auto& r : cmp.runs) j["runs"].push_back(run_json(r));
  j["settings_diff"] = cmp.settings_diff;
  j["metrics"] = cmp.metrics;
  j["settings_same"] = cmp.settings_same;
  return j;
}

}  // namespace atax::store
