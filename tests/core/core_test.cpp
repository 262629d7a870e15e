// Tests of the core module: errors, atomic files, JSONL, CSV, SHA-256, Rng.
#include <gtest/gtest.h>

#include <cstdlib>
#ifdef __GLIBC__
#include <malloc.h>
#endif

#include "core/core.h"
#include "../scratch_dir.h"

using namespace atax;

namespace {
fs::path temp_dir(const std::string& name) { return test_support::scratch_dir("atax_core_test", name); }
}  // namespace

TEST(ErrorTest, ComposesFileLineAndHint) {
  Error e("bad thing", "data.jsonl", "fix it", 7);
  EXPECT_EQ(std::string(e.what()), "data.jsonl:7: bad thing\nhint: fix it");
  EXPECT_EQ(Error("plain").what(), std::string("plain"));
}

TEST(FilesTest, AtomicWriteLeavesNoTemporaries) {
  auto d = temp_dir("atomic");
  write_file_atomic(d / "a" / "b.txt", "hello");
  EXPECT_EQ(read_file(d / "a" / "b.txt"), "hello");
  write_file_atomic(d / "a" / "b.txt", "world");
  EXPECT_EQ(read_file(d / "a" / "b.txt"), "world");
  int n = 0;
  for (auto& e : fs::directory_iterator(d / "a")) { (void)e; ++n; }
  EXPECT_EQ(n, 1);
  EXPECT_THROW(read_file(d / "missing"), Error);
}

TEST(FilesTest, CommitDirReplacesFolder) {
  auto d = temp_dir("commit");
  auto s1 = staging_dir_for(d / "ckpt");
  write_file_atomic(s1 / "x", "1");
  commit_dir(s1, d / "ckpt");
  auto s2 = staging_dir_for(d / "ckpt");
  write_file_atomic(s2 / "x", "2");
  commit_dir(s2, d / "ckpt");
  EXPECT_EQ(read_file(d / "ckpt" / "x"), "2");
  int n = 0;
  for (auto& e : fs::directory_iterator(d)) { (void)e; ++n; }
  EXPECT_EQ(n, 1);
}

TEST(JsonlTest, ReportsFileAndLineOfBadLine) {
  auto d = temp_dir("jsonl");
  write_file_atomic(d / "x.jsonl", "{\"a\":1}\n\n{\"a\":2\n[1]\n{\"a\":3}\n");
  try {
    read_jsonl(d / "x.jsonl");
    FAIL() << "expected an error";
  } catch (const Error& e) {
    EXPECT_EQ(e.line(), 3);
    EXPECT_NE(std::string(e.what()).find("x.jsonl:3"), std::string::npos);
  }
  std::vector<int> seen;
  auto stats = for_each_jsonl(d / "x.jsonl", [&](const json& j, int64_t) { seen.push_back(j["a"]); },
                              BadLinePolicy::kSkip);
  EXPECT_EQ(seen, (std::vector<int>{1, 3}));
  EXPECT_EQ(stats.lines_skipped, 2);
}

TEST(CsvTest, ParsesQuotesAndNewlines) {
  auto rows = parse_csv("a,b,c\n\"x, y\",\"he said \"\"hi\"\"\",\"multi\nline\"\n1,,3\n");
  ASSERT_EQ(rows.size(), 3u);
  EXPECT_EQ(rows[1][0], "x, y");
  EXPECT_EQ(rows[1][1], "he said \"hi\"");
  EXPECT_EQ(rows[1][2], "multi\nline");
  EXPECT_EQ(rows[2][1], "");
  EXPECT_EQ(parse_csv(to_csv(rows)), rows);
  EXPECT_THROW(parse_csv("a,\"b\n"), Error);
}

TEST(Sha256Test, KnownVectors) {
  EXPECT_EQ(sha256_hex(""), "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
  EXPECT_EQ(sha256_hex("abc"), "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
  std::string million(1000000, 'a');
  EXPECT_EQ(sha256_hex(million), "cdc76e5c9914fb9281a1c7e284d73e67f1809a48a497200e046d39ccc7112cd0");
}

TEST(RngTest, DeterministicAndUniform) {
  Rng a(42), b(42), c(43);
  for (int i = 0; i < 10; ++i) EXPECT_EQ(a.next_u64(), b.next_u64());
  EXPECT_NE(Rng(42).next_u64(), c.next_u64());
  Rng r(7);
  std::vector<int> counts(4);
  for (int i = 0; i < 40000; ++i) counts[r.uniform(4)]++;
  for (int k : counts) EXPECT_NEAR(k, 10000, 400);  // ~4 sd
  EXPECT_EQ(Rng(1).fork("x").next_u64(), Rng(1).fork("x").next_u64());
  EXPECT_NE(Rng(1).fork("x").next_u64(), Rng(1).fork("y").next_u64());
}

#ifdef __GLIBC__
// tune_allocator leaves a user's own allocator settings alone; otherwise a 20 MB block (the size of
// a training step's logits) comes from the heap instead of a fresh mapping (glibc maps blocks over
// 128 kB by default in a new process).
TEST(CoreTest, AllocatorKeepsLargeTensorsOnTheHeap) {
  ::setenv("GLIBC_TUNABLES", "glibc.malloc.check=0", 1);
  EXPECT_FALSE(tune_allocator());
  ::unsetenv("GLIBC_TUNABLES");
  for (const char* v : {"MALLOC_MMAP_THRESHOLD_", "MALLOC_TRIM_THRESHOLD_", "MALLOC_TOP_PAD_"})
    if (std::getenv(v)) GTEST_SKIP() << v << " is set in this environment";
  ASSERT_TRUE(tune_allocator());
  const size_t mapped_before = mallinfo2().hblkhd;
  void* block = std::malloc(20u << 20);
  ASSERT_NE(block, nullptr);
  static_cast<volatile char*>(block)[0] = 1;
  EXPECT_EQ(mallinfo2().hblkhd, mapped_before);
  std::free(block);
}
#endif
