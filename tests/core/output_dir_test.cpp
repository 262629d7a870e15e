// ctest-labels: unit
// Tests of output folders (claim_output_dir: manifest, --force, lock, stale staging) and the
// memory check.
#include <gtest/gtest.h>

#include <sys/wait.h>
#include <unistd.h>

#include "core/core.h"
#include "../scratch_dir.h"

using namespace atax;

namespace {
fs::path temp_dir(const std::string& name) { return test_support::scratch_dir("atax_outdir_test", name); }

std::string error_of(const std::function<void()>& fn) {
  try {
    fn();
  } catch (const Error& e) {
    return e.what();
  }
  return {};
}

pid_t dead_pid() {
  const pid_t pid = ::fork();
  if (pid == 0) ::_exit(0);
  int status = 0;
  ::waitpid(pid, &status, 0);
  return pid;
}
}  // namespace

TEST(OutputDirTest, RefusesAFolderOfOtherFilesUnlessForced) {
  auto d = temp_dir("foreign");
  write_file_atomic(d / "out" / "precious.txt", "keep me");
  const std::string e = error_of([&] { claim_output_dir(d / "out", "world generate", false); });
  EXPECT_NE(e.find("atax did not write"), std::string::npos) << e;
  EXPECT_NE(e.find("--force"), std::string::npos) << e;
  EXPECT_EQ(read_file(d / "out" / "precious.txt"), "keep me");
  EXPECT_FALSE(fs::exists(d / "out" / kOutputManifest));
  OutputDir forced = claim_output_dir(d / "out", "world generate", true);
  EXPECT_TRUE(forced.held());
  EXPECT_TRUE(fs::exists(d / "out" / kOutputManifest));
  // A plain file is refused too.
  write_file_atomic(d / "file", "x");
  EXPECT_NE(error_of([&] { claim_output_dir(d / "file", "init", false); }).find("not a folder"), std::string::npos);
  EXPECT_EQ(read_file(d / "file"), "x");
}

TEST(OutputDirTest, AcceptsItsOwnEarlierOutputAndRefusesAnotherCommands) {
  auto d = temp_dir("own");
  {
    OutputDir c = claim_output_dir(d / "m", "train dpo", false);
    write_file_atomic(d / "m" / "model.safetensors", "weights");
    c.mark_finished({{"steps", 3}});
  }
  json m = read_json(d / "m" / kOutputManifest);
  EXPECT_EQ(m["command"], "train dpo");
  EXPECT_EQ(m["steps"], 3);
  EXPECT_FALSE(m["finished"].is_null());
  EXPECT_NO_THROW(claim_output_dir(d / "m", "train dpo", false));
  const std::string e = error_of([&] { claim_output_dir(d / "m", "world generate", false); });
  EXPECT_NE(e.find("`atax train dpo`"), std::string::npos) << e;
  EXPECT_EQ(read_file(d / "m" / "model.safetensors"), "weights");
  // An empty folder and a missing one are fine; the lock file goes away with the claim.
  fs::create_directories(d / "empty");
  EXPECT_NO_THROW(claim_output_dir(d / "empty", "init", false));
  EXPECT_NO_THROW(claim_output_dir(d / "new" / "deeper", "init", false));
  EXPECT_FALSE(fs::exists(d / ".m.atax-lock"));
}

TEST(OutputDirTest, ASecondWriterFailsAtOnceNamingTheHolder) {
  auto d = temp_dir("lock");
  OutputDir first = claim_output_dir(d / "w", "world generate", false);
  // flock locks belong to open file descriptions, so a second claim in this process conflicts
  // exactly as another process's would.
  const std::string e = error_of([&] { claim_output_dir(d / "w", "world generate", false); });
  EXPECT_NE(e.find("another atax process (pid " + std::to_string(::getpid()) + ")"), std::string::npos) << e;
  first.release();
  EXPECT_NO_THROW(claim_output_dir(d / "w", "world generate", false));
}

TEST(OutputDirTest, StagingFoldersOfKilledRunsAreRemoved) {
  auto d = temp_dir("stale");
  const pid_t gone = dead_pid();
  const fs::path stale = d / (".w.tmp." + std::to_string(gone) + ".0");
  const fs::path stale_old = d / (".w.old.tmp." + std::to_string(gone) + ".3");
  const fs::path live = d / (".w.tmp." + std::to_string(::getppid()) + ".0");
  const fs::path other = d / (".v.tmp." + std::to_string(gone) + ".0");
  for (const auto& p : {stale, stale_old, live, other}) write_file_atomic(p / "x", "1");
  OutputDir c = claim_output_dir(d / "w", "world generate", false);
  EXPECT_FALSE(fs::exists(stale));
  EXPECT_FALSE(fs::exists(stale_old));
  EXPECT_TRUE(fs::exists(live));   // its process still runs
  EXPECT_TRUE(fs::exists(other));  // another folder's
  // staging_dir_for cleans as well.
  write_file_atomic(stale / "x", "1");
  fs::path s = staging_dir_for(d / "w");
  EXPECT_FALSE(fs::exists(stale));
  // commit_dir keeps the manifest with the folder.
  write_file_atomic(s / "data.txt", "new");
  commit_dir(s, d / "w");
  EXPECT_EQ(read_file(d / "w" / "data.txt"), "new");
  EXPECT_EQ(read_json(d / "w" / kOutputManifest)["command"], "world generate");
}

TEST(MemoryTest, AnAbsurdNeedFailsWithAClearError) {
  const int64_t avail = available_memory_bytes();
  ASSERT_GT(avail, 0);
  const std::string e = error_of([] { check_memory_need(int64_t(1) << 60, "a batch", "lower --batch-size"); });
  EXPECT_NE(e.find("a batch needs about"), std::string::npos) << e;
  EXPECT_NE(e.find("lower --batch-size"), std::string::npos) << e;
  EXPECT_NO_THROW(check_memory_need(1 << 20, "a small batch", ""));
}
