// The request cache: one SQLite table of responses keyed by sha256(model hash, kind, request).
#include <cstdlib>

#include <sqlite3.h>

#include "eval/eval.h"

namespace atax {

struct RequestCache::Impl {
  sqlite3* db = nullptr;
  sqlite3_stmt* get = nullptr;
  sqlite3_stmt* put = nullptr;
  std::string file;

  void check(int rc, const std::string& what) const {
    if (rc != SQLITE_OK && rc != SQLITE_DONE && rc != SQLITE_ROW)
      throw Error("request cache: " + what + ": " + (db ? sqlite3_errmsg(db) : sqlite3_errstr(rc)), file,
                  "delete the cache file or run with --no-cache");
  }
  void exec(const char* sql) const {
    char* err = nullptr;
    int rc = sqlite3_exec(db, sql, nullptr, nullptr, &err);
    if (rc != SQLITE_OK) {
      std::string msg = err ? err : sqlite3_errstr(rc);
      sqlite3_free(err);
      throw Error("request cache: " + msg, file, "delete the cache file or run with --no-cache");
    }
  }
};

RequestCache::RequestCache(const fs::path& path) : path_(path), impl_(std::make_unique<Impl>()) {
  impl_->file = path.string();
  std::error_code ec;
  if (path.has_parent_path()) fs::create_directories(path.parent_path(), ec);
  int rc = sqlite3_open_v2(impl_->file.c_str(), &impl_->db, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_FULLMUTEX,
                           nullptr);
  if (rc != SQLITE_OK) {
    std::string msg = impl_->db ? sqlite3_errmsg(impl_->db) : sqlite3_errstr(rc);
    if (impl_->db) sqlite3_close(impl_->db);
    impl_->db = nullptr;
    throw Error("cannot open the request cache: " + msg, impl_->file, "pass --cache PATH or --no-cache");
  }
  sqlite3_busy_timeout(impl_->db, 10000);  // another evaluation may be writing
  impl_->exec("PRAGMA journal_mode=WAL");
  impl_->exec("PRAGMA synchronous=NORMAL");
  impl_->exec(
      "CREATE TABLE IF NOT EXISTS requests ("
      " key TEXT PRIMARY KEY, model TEXT NOT NULL, kind TEXT NOT NULL,"
      " request TEXT NOT NULL, response TEXT NOT NULL, created REAL NOT NULL)");
  impl_->check(sqlite3_prepare_v2(impl_->db, "SELECT response FROM requests WHERE key = ?1", -1, &impl_->get, nullptr),
               "prepare");
  impl_->check(sqlite3_prepare_v2(impl_->db,
                                  "INSERT OR REPLACE INTO requests(key, model, kind, request, response, created) "
                                  "VALUES (?1, ?2, ?3, ?4, ?5, julianday('now'))",
                                  -1, &impl_->put, nullptr),
               "prepare");
}

RequestCache::~RequestCache() {
  if (!impl_) return;
  if (impl_->get) sqlite3_finalize(impl_->get);
  if (impl_->put) sqlite3_finalize(impl_->put);
  if (impl_->db) sqlite3_close(impl_->db);
}

std::string RequestCache::make_key(const std::string& model_hash, const std::string& kind, const json& request) {
  Sha256 h;
  h.update(model_hash).update(std::string_view("\n", 1)).update(kind).update(std::string_view("\n", 1));
  h.update(request.dump());
  return h.hex_digest();
}

std::optional<json> RequestCache::get(const std::string& key) {
  sqlite3_stmt* s = impl_->get;
  sqlite3_reset(s);
  sqlite3_bind_text(s, 1, key.data(), static_cast<int>(key.size()), SQLITE_TRANSIENT);
  int rc = sqlite3_step(s);
  impl_->check(rc, "lookup");
  if (rc != SQLITE_ROW) return std::nullopt;
  const char* text = reinterpret_cast<const char*>(sqlite3_column_text(s, 0));
  int n = sqlite3_column_bytes(s, 0);
  std::optional<json> out;
  try {
    out = json::parse(std::string_view(text ? text : "", static_cast<size_t>(n)));
  } catch (const std::exception&) {
    out = std::nullopt;  // a damaged entry is recomputed and overwritten
  }
  sqlite3_reset(s);
  return out;
}

void RequestCache::put(const std::vector<Entry>& entries) {
  if (entries.empty()) return;
  impl_->exec("BEGIN IMMEDIATE");
  try {
    sqlite3_stmt* s = impl_->put;
    for (const auto& e : entries) {
      std::string req = e.request.dump(), resp = e.response.dump();
      sqlite3_reset(s);
      sqlite3_bind_text(s, 1, e.key.data(), static_cast<int>(e.key.size()), SQLITE_TRANSIENT);
      sqlite3_bind_text(s, 2, e.model_hash.data(), static_cast<int>(e.model_hash.size()), SQLITE_TRANSIENT);
      sqlite3_bind_text(s, 3, e.kind.data(), static_cast<int>(e.kind.size()), SQLITE_TRANSIENT);
      sqlite3_bind_text(s, 4, req.data(), static_cast<int>(req.size()), SQLITE_TRANSIENT);
      sqlite3_bind_text(s, 5, resp.data(), static_cast<int>(resp.size()), SQLITE_TRANSIENT);
      impl_->check(sqlite3_step(s), "insert");
    }
    sqlite3_reset(s);
    impl_->exec("COMMIT");
  } catch (...) {
    sqlite3_exec(impl_->db, "ROLLBACK", nullptr, nullptr, nullptr);
    throw;
  }
}

int64_t RequestCache::size() {
  sqlite3_stmt* s = nullptr;
  impl_->check(sqlite3_prepare_v2(impl_->db, "SELECT COUNT(*) FROM requests", -1, &s, nullptr), "prepare");
  int64_t n = 0;
  if (sqlite3_step(s) == SQLITE_ROW) n = sqlite3_column_int64(s, 0);
  sqlite3_finalize(s);
  return n;
}

fs::path default_cache_path() {
  if (const char* d = std::getenv("ATAX_CACHE_DIR"); d && *d) return fs::path(d) / "eval_cache.sqlite";
  if (const char* x = std::getenv("XDG_CACHE_HOME"); x && *x) return fs::path(x) / "atax" / "eval_cache.sqlite";
  if (const char* h = std::getenv("HOME"); h && *h) return fs::path(h) / ".cache" / "atax" / "eval_cache.sqlite";
  return fs::path(".cache") / "atax" / "eval_cache.sqlite";
}

}  // namespace atax
