// ctest-labels: unit
// The run store: keys, the run life cycle, listing and comparing, and a sweep that is SIGKILLed in
// the middle of a run and then resumes without redoing the runs it finished.
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <fstream>
#include <thread>

#include <gtest/gtest.h>
#include <fmt/format.h>
#include <sqlite3.h>

#include "store/store.h"

namespace atax::store {
namespace {

fs::path temp_dir(const std::string& name) {
  fs::path d = fs::temp_directory_path() / ("atax_store_" + name + "_" + std::to_string(getpid()));
  fs::remove_all(d);
  fs::create_directories(d);
  return d;
}

// The grid of a toy sweep: β × λ.
std::vector<json> grid() {
  std::vector<json> g;
  for (double beta : {0.05, 0.1, 0.5, 1.0, 2.0})
    for (double lambda : {0.0, 0.1}) g.push_back({{"method", "rdpo"}, {"beta", beta}, {"lambda", lambda}});
  return g;
}

// What a sweep driver does: skip keys that are done, otherwise begin → work → finish. Returns the
// number of runs it actually executed. Kills its own process (SIGKILL) after beginning run
// number `kill_at` (0-based, counting executed runs), before finishing it.
int run_sweep(const fs::path& db, int kill_at = -1) {
  RunStore store = RunStore::open(db);
  int executed = 0;
  for (const json& s : grid()) {
    const std::string key = settings_key(s);
    if (store.find_done(key)) continue;
    int64_t id = store.begin(key, s, fmt::format("rdpo beta={} lambda={}", s["beta"].get<double>(),
                                                 s["lambda"].get<double>()));
    if (executed == kill_at) raise(SIGKILL);
    ++executed;
    const double beta = s["beta"], lambda = s["lambda"];
    json metrics = {{"tax", {{"mean", 10.0 / (1 + beta) + lambda}}}, {"harmless", beta / (1 + beta)}};
    store.finish(id, metrics, {{"checkpoint", "out/ckpt/" + key.substr(0, 8)}}, 1.5 + beta);
  }
  return executed;
}

TEST(StoreTest, SettingsKeyIsCanonical) {
  json a = json::parse(R"({"beta": 0.1, "method": "dpo", "opt": {"lr": 1e-4, "steps": 100}})");
  json b = json::parse(R"({"opt": {"steps": 100, "lr": 0.0001}, "method": "dpo", "beta": 0.1})");
  EXPECT_EQ(settings_key(a), settings_key(b));
  EXPECT_EQ(settings_key(a).size(), 64u);
  b["beta"] = 0.2;
  EXPECT_NE(settings_key(a), settings_key(b));
  // The key is the SHA-256 of the compact dump.
  EXPECT_EQ(settings_key(json::object()), sha256_hex("{}"));
}

TEST(StoreTest, LifeCycle) {
  fs::path d = temp_dir("life");
  RunStore store = RunStore::open(d / "sub/runs.sqlite");
  json s = {{"beta", 0.1}};
  const std::string key = settings_key(s);
  EXPECT_FALSE(store.find_done(key));
  int64_t id = store.begin(key, s, "dpo");
  auto r = store.get(id);
  ASSERT_TRUE(r);
  EXPECT_EQ(r->status, RunStatus::kRunning);
  EXPECT_EQ(r->attempts, 1);
  EXPECT_FALSE(r->interrupted);  // this process is alive
  EXPECT_FALSE(r->started.empty());
  EXPECT_FALSE(store.find_done(key));
  store.fail(id, "out of memory");
  r = store.get(id);
  EXPECT_EQ(r->status, RunStatus::kFailed);
  EXPECT_EQ(r->message, "out of memory");
  // retrying reuses the row
  EXPECT_EQ(store.begin(key, s), id);
  EXPECT_EQ(store.get(id)->attempts, 2);
  EXPECT_EQ(store.get(id)->name, "dpo");  // an empty name keeps the old one
  store.finish(id, {{"acc", 0.5}}, {{"ckpt", "x"}}, 12.5);
  auto done = store.find_done(key);
  ASSERT_TRUE(done);
  EXPECT_EQ(done->id, id);
  EXPECT_EQ(done->metrics["acc"], 0.5);
  EXPECT_EQ(done->artifacts["ckpt"], "x");
  EXPECT_DOUBLE_EQ(done->seconds, 12.5);
  EXPECT_TRUE(done->message.empty());
  EXPECT_FALSE(done->finished.empty());
  EXPECT_THROW(store.begin(key, s), Error);  // already done
  EXPECT_THROW(store.finish(9999, {}, {}, 0), Error);
  EXPECT_THROW(store.fail(9999, "x"), Error);

  int64_t q = store.enqueue(settings_key({{"beta", 0.2}}), {{"beta", 0.2}}, "queued");
  EXPECT_EQ(store.get(q)->status, RunStatus::kPending);
  EXPECT_EQ(store.enqueue(settings_key({{"beta", 0.2}}), {{"beta", 0.2}}), q);
  EXPECT_EQ(store.begin(settings_key({{"beta", 0.2}}), {{"beta", 0.2}}), q);

  EXPECT_EQ(store.list().size(), 2u);
  RunFilter f;
  f.status = RunStatus::kDone;
  EXPECT_EQ(store.list(f).size(), 1u);
  f = {};
  f.name_contains = "queue";
  ASSERT_EQ(store.list(f).size(), 1u);
  EXPECT_EQ(store.list(f)[0].id, q);
  f = {};
  f.key_prefix = key.substr(0, 6);
  EXPECT_EQ(store.list(f).size(), 1u);
  f = {};
  f.limit = 1;
  EXPECT_EQ(store.list(f).size(), 1u);
  fs::remove_all(d);
}

TEST(StoreTest, PersistsAcrossReopenInWalMode) {
  fs::path d = temp_dir("reopen");
  {
    RunStore store = RunStore::open(d / "runs.sqlite");
    int64_t id = store.begin("k1", {{"a", 1}});
    store.finish(id, {{"m", 1}}, {}, 1);
  }
  sqlite3* db = nullptr;
  ASSERT_EQ(sqlite3_open((d / "runs.sqlite").c_str(), &db), SQLITE_OK);
  sqlite3_stmt* st = nullptr;
  sqlite3_prepare_v2(db, "PRAGMA journal_mode", -1, &st, nullptr);
  ASSERT_EQ(sqlite3_step(st), SQLITE_ROW);
  EXPECT_STREQ(reinterpret_cast<const char*>(sqlite3_column_text(st, 0)), "wal");
  sqlite3_finalize(st);
  sqlite3_close(db);
  RunStore again = RunStore::open_existing(d / "runs.sqlite");
  EXPECT_TRUE(again.find_done("k1"));
  fs::remove_all(d);
}

TEST(StoreTest, KilledSweepResumesWithoutRedoingFinishedRuns) {
  fs::path d = temp_dir("killed");
  const fs::path db = d / "runs.sqlite";
  // 1. A sweep that SIGKILLs itself after beginning its fifth run.
  pid_t child = fork();
  ASSERT_GE(child, 0);
  if (child == 0) {
    run_sweep(db, /*kill_at=*/4);
    _exit(0);  // not reached
  }
  int status = 0;
  ASSERT_EQ(waitpid(child, &status, 0), child);
  ASSERT_TRUE(WIFSIGNALED(status));
  EXPECT_EQ(WTERMSIG(status), SIGKILL);

  std::map<int64_t, store::Run> before;
  {
    RunStore store = RunStore::open_existing(db);
    auto runs = store.list();
    ASSERT_EQ(runs.size(), 5u);
    for (size_t i = 0; i < 4; ++i) {
      EXPECT_EQ(runs[i].status, RunStatus::kDone);
      before[runs[i].id] = runs[i];
    }
    EXPECT_EQ(runs[4].status, RunStatus::kRunning);
    EXPECT_TRUE(runs[4].interrupted);  // its process is gone
    EXPECT_EQ(runs[4].pid, child);
    EXPECT_NE(runs_table(runs).find("interrupted"), std::string::npos);
  }

  // 2. The resumed sweep (another process) executes only the six runs not done.
  pid_t again = fork();
  ASSERT_GE(again, 0);
  if (again == 0) _exit(run_sweep(db));
  ASSERT_EQ(waitpid(again, &status, 0), again);
  ASSERT_TRUE(WIFEXITED(status));
  EXPECT_EQ(WEXITSTATUS(status), 6);

  RunStore store = RunStore::open_existing(db);
  auto runs = store.list();
  ASSERT_EQ(runs.size(), 10u);  // the interrupted row was reused, not duplicated
  for (const auto& r : runs) EXPECT_EQ(r.status, RunStatus::kDone) << r.id;
  for (const auto& [id, old] : before) {
    auto now = store.get(id);
    EXPECT_EQ(now->finished, old.finished);
    EXPECT_EQ(now->attempts, 1);
    EXPECT_EQ(now->metrics, old.metrics);
  }
  EXPECT_EQ(runs[4].attempts, 2);
  // 3. A third pass has nothing left to do.
  EXPECT_EQ(run_sweep(db), 0);
  fs::remove_all(d);
}

TEST(StoreTest, SurvivesKillDuringHeavyWriting) {
  // A child writes runs as fast as it can; the parent kills it once some are done. Whatever moment
  // the kill hits, the store must open cleanly, pass integrity_check, and every done row be whole.
  fs::path d = temp_dir("heavy");
  const fs::path db = d / "runs.sqlite";
  { RunStore::open(db); }
  pid_t child = fork();
  ASSERT_GE(child, 0);
  if (child == 0) {
    RunStore store = RunStore::open(db);
    for (int i = 0; i < 100000; ++i) {
      json s = {{"i", i}};
      int64_t id = store.begin(settings_key(s), s);
      store.finish(id, {{"i", i}, {"sq", i * i}}, {{"path", std::string(200, 'x')}}, 0.01);
    }
    _exit(0);
  }
  int64_t done = 0;
  for (int wait = 0; wait < 6000 && done < 30; ++wait) {  // a guard against a hang, not a timing check
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
    RunStore probe = RunStore::open(db);
    RunFilter f;
    f.status = RunStatus::kDone;
    done = static_cast<int64_t>(probe.list(f).size());
  }
  kill(child, SIGKILL);
  int status = 0;
  waitpid(child, &status, 0);
  ASSERT_GE(done, 30);

  sqlite3* raw = nullptr;
  ASSERT_EQ(sqlite3_open(db.c_str(), &raw), SQLITE_OK);
  sqlite3_stmt* st = nullptr;
  sqlite3_prepare_v2(raw, "PRAGMA integrity_check", -1, &st, nullptr);
  ASSERT_EQ(sqlite3_step(st), SQLITE_ROW);
  EXPECT_STREQ(reinterpret_cast<const char*>(sqlite3_column_text(st, 0)), "ok");
  sqlite3_finalize(st);
  sqlite3_close(raw);

  RunStore store = RunStore::open(db);
  auto runs = store.list();
  EXPECT_GE(static_cast<int64_t>(runs.size()), done);
  int64_t running = 0;
  for (const auto& r : runs) {
    if (r.status == RunStatus::kDone) {
      EXPECT_EQ(r.metrics["sq"].get<int64_t>(), r.metrics["i"].get<int64_t>() * r.metrics["i"].get<int64_t>());
      EXPECT_EQ(r.settings["i"], r.metrics["i"]);
    } else {
      ++running;
    }
  }
  EXPECT_LE(running, 1);  // at most the run it was in the middle of
  fs::remove_all(d);
}

TEST(StoreTest, CompareShowsDifferingSettingsAndAllMetrics) {
  fs::path d = temp_dir("compare");
  RunStore store = RunStore::open(d / "runs.sqlite");
  json s1 = {{"method", "dpo"}, {"train", {{"beta", 0.1}, {"steps", 100}}}};
  json s2 = {{"method", "dpo"}, {"train", {{"beta", 0.5}, {"steps", 100}}}};
  int64_t a = store.begin(settings_key(s1), s1, "a");
  store.finish(a, {{"tax", {{"mean", 3.5}}}, {"harmless", 0.9}}, {}, 10);
  int64_t b = store.begin(settings_key(s2), s2, "b");
  store.finish(b, {{"tax", {{"mean", 1.25}}}, {"helpful", 0.8}}, {}, 20);
  RunComparison c = compare(store, {a, b});
  ASSERT_EQ(c.runs.size(), 2u);
  ASSERT_EQ(c.settings_diff.size(), 1u);
  EXPECT_EQ(c.settings_diff["train.beta"], (std::vector<json>{0.1, 0.5}));
  EXPECT_EQ(c.settings_same, 2);  // method, train.steps
  EXPECT_EQ(c.metrics["tax.mean"], (std::vector<json>{3.5, 1.25}));
  EXPECT_TRUE(c.metrics["helpful"][0].is_null());
  std::string text = comparison_table(c);
  EXPECT_NE(text.find("settings.train.beta"), std::string::npos) << text;
  EXPECT_NE(text.find("metrics.tax.mean"), std::string::npos);
  EXPECT_EQ(comparison_json(c)["settings_diff"]["train.beta"][1], 0.5);
  EXPECT_THROW(compare(store, {a, 424242}), Error);
  fs::remove_all(d);
}

TEST(StoreTest, RejectsForeignOrMissingFiles) {
  fs::path d = temp_dir("foreign");
  EXPECT_THROW(RunStore::open_existing(d / "missing.sqlite"), Error);
  EXPECT_FALSE(fs::exists(d / "missing.sqlite"));
  { std::ofstream(d / "text.sqlite") << "this is not a database, just some text that is long enough......"; }
  EXPECT_THROW(RunStore::open(d / "text.sqlite"), Error);
  sqlite3* raw = nullptr;
  sqlite3_open((d / "other.sqlite").c_str(), &raw);
  sqlite3_exec(raw, "CREATE TABLE people(name TEXT)", nullptr, nullptr, nullptr);
  sqlite3_close(raw);
  try {
    RunStore::open(d / "other.sqlite");
    FAIL() << "expected Error";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("not an atax run store"), std::string::npos);
  }
  fs::remove_all(d);
}

}  // namespace
}  // namespace atax::store
