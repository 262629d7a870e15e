// ctest-labels: unit
// The world generator: determinism, seeds, the flip-label knob, the manifest, atomic output, errors.
#include <set>

#include "world_fixture.h"

namespace atax::world {
namespace {

using testing::WorldDirs;

TEST(WorldGenerateTest, SameSeedGivesByteIdenticalFiles) {
  const fs::path& a = WorldDirs::get().quick(7);
  WorldOptions o;
  o.seed = 7;
  o.scale = "quick";
  fs::path b = WorldDirs::get().scratch("again_7");
  generate_world(o, b);
  EXPECT_EQ(read_file(a / "manifest.json"), read_file(b / "manifest.json"));
  for (const auto& f : read_manifest(a).files) EXPECT_EQ(sha256_file(a / f.path), sha256_file(b / f.path)) << f.path;
}

TEST(WorldGenerateTest, DifferentSeedsGiveDifferentWorlds) {
  auto a = read_manifest(WorldDirs::get().quick(7));
  auto b = read_manifest(WorldDirs::get().quick(8));
  ASSERT_EQ(a.files.size(), b.files.size());
  int differ = 0;
  for (size_t i = 0; i < a.files.size(); ++i) {
    ASSERT_EQ(a.files[i].path, b.files[i].path);
    differ += a.files[i].sha256 != b.files[i].sha256;
  }
  // Every file but the empty flip list differs: new names, new facts, new draws.
  EXPECT_EQ(differ, static_cast<int>(a.files.size()) - 1);
  json wa = read_json(WorldDirs::get().quick(7) / "meta/world.json");
  json wb = read_json(WorldDirs::get().quick(8) / "meta/world.json");
  EXPECT_NE(wa["countries"][0]["name"], wb["countries"][0]["name"]);
}

TEST(WorldGenerateTest, ManifestListsEveryFileWithRowsAndHashes) {
  const fs::path& dir = WorldDirs::get().quick(7);
  WorldManifest m = read_manifest(dir);
  EXPECT_EQ(m.seed, 7u);
  EXPECT_EQ(m.scale, "quick");
  EXPECT_EQ(m.generator_version, kGeneratorVersion);
  std::set<std::string> listed;
  for (const auto& f : m.files) {
    listed.insert(f.path);
    EXPECT_EQ(f.sha256, sha256_file(dir / f.path)) << f.path;
    EXPECT_EQ(f.bytes, static_cast<int64_t>(fs::file_size(dir / f.path))) << f.path;
    EXPECT_GT(f.rows, f.path == "align/flips.json" ? -1 : 0) << f.path;
    if (ends_with(f.path, ".jsonl")) EXPECT_EQ(f.rows, static_cast<int64_t>(read_jsonl(dir / f.path).size())) << f.path;
    if (ends_with(f.path, ".csv")) {
      bool header = starts_with(f.path, "safety/");
      EXPECT_EQ(f.rows, static_cast<int64_t>(read_csv(dir / f.path).size()) - (header ? 1 : 0)) << f.path;
    }
  }
  size_t on_disk = 0;
  for (const auto& e : fs::recursive_directory_iterator(dir))
    if (e.is_regular_file() && e.path().filename() != "manifest.json") {
      ++on_disk;
      EXPECT_TRUE(listed.count(fs::relative(e.path(), dir).generic_string())) << e.path();
    }
  EXPECT_EQ(on_disk, m.files.size());
  for (const char* p : {"corpus/train.jsonl", "corpus/heldout.jsonl", "knowledge/dev/geography_dev.csv",
                        "knowledge/test/history_test.csv", "reasoning_incontext/test/comparisons_test.csv", "reasoning/test.jsonl",
                        "reasoning/train.jsonl", "math/test.jsonl",
                        "math/train.jsonl", "code/HumanEval.jsonl", "truthfulness/mc_task.json", "bias/Religion.jsonl",
                        "creativity/test.jsonl", "safety/harmbench_behaviors.csv", "safety/xstest_prompts.csv",
                        "safety/harmful_heldout.csv", "align/preferences_train.jsonl",
                        "align/preferences_heldout.jsonl", "align/sft_capability.jsonl"})
    EXPECT_TRUE(listed.count(p)) << p;
  EXPECT_TRUE(verify_world(dir).empty());
}

TEST(WorldGenerateTest, VerifyFindsATamperedFile) {
  fs::path dir = WorldDirs::get().scratch("tampered");
  WorldOptions o;
  o.seed = 3;
  o.scale = "quick";
  generate_world(o, dir);
  std::string s = read_file(dir / "math/test.jsonl");
  s[s.size() / 2] = s[s.size() / 2] == '1' ? '2' : '1';
  write_file_atomic(dir / "math/test.jsonl", s);
  EXPECT_EQ(verify_world(dir), std::vector<std::string>{"math/test.jsonl"});
}

TEST(WorldGenerateTest, ReplacesTheOutputFolderAtomically) {
  fs::path parent = WorldDirs::get().scratch("atomic");
  fs::path dir = parent / "world";
  fs::create_directories(dir);
  write_file_atomic(dir / "stale.txt", "old");
  WorldOptions o;
  o.seed = 5;
  o.scale = "quick";
  generate_world(o, dir);
  EXPECT_FALSE(fs::exists(dir / "stale.txt"));
  EXPECT_TRUE(fs::exists(dir / "manifest.json"));
  std::vector<std::string> entries;
  for (const auto& e : fs::directory_iterator(parent)) entries.push_back(e.path().filename().string());
  EXPECT_EQ(entries, std::vector<std::string>{"world"});  // no staging folder left behind
}

TEST(WorldGenerateTest, FlipShareSwapsThatShareOfTrainingPairsOnly) {
  const fs::path& plain = WorldDirs::get().quick(7, 0);
  const fs::path& flipped = WorldDirs::get().quick(7, 0.25);
  auto mp = read_manifest(plain), mf = read_manifest(flipped);
  EXPECT_DOUBLE_EQ(mf.flip_share, 0.25);
  for (const char* same : {"corpus/train.jsonl", "align/preferences_heldout.jsonl", "math/test.jsonl"})
    EXPECT_EQ(mp.file(same).sha256, mf.file(same).sha256) << same;
  auto a = read_jsonl(plain / "align/preferences_train.jsonl");
  auto b = read_jsonl(flipped / "align/preferences_train.jsonl");
  ASSERT_EQ(a.size(), b.size());
  json flips = read_json(flipped / "align/flips.json");
  std::set<std::string> ids;
  for (const auto& id : flips["ids"]) ids.insert(id.get<std::string>());
  EXPECT_EQ(ids.size(), static_cast<size_t>(0.25 * a.size() + 0.5));
  EXPECT_EQ(mf.file("align/flips.json").rows, static_cast<int64_t>(ids.size()));
  size_t swapped = 0;
  for (size_t i = 0; i < a.size(); ++i) {
    ASSERT_EQ(a[i]["id"], b[i]["id"]);
    ASSERT_EQ(a[i]["prompt"], b[i]["prompt"]);
    bool is_flipped = ids.count(a[i]["id"].get<std::string>()) > 0;
    if (is_flipped) {
      EXPECT_EQ(a[i]["chosen"], b[i]["rejected"]);
      EXPECT_EQ(a[i]["rejected"], b[i]["chosen"]);
      ++swapped;
    } else {
      EXPECT_EQ(a[i], b[i]);
    }
  }
  EXPECT_EQ(swapped, ids.size());
  EXPECT_TRUE(read_json(plain / "align/flips.json")["ids"].empty());
}

TEST(WorldGenerateTest, RejectsBadOptions) {
  WorldOptions o;
  o.scale = "huge";
  EXPECT_THROW(generate_world(o, WorldDirs::get().scratch("bad1")), Error);
  o.scale = "quick";
  o.flip_share = 1.5;
  EXPECT_THROW(generate_world(o, WorldDirs::get().scratch("bad2")), Error);
  o.flip_share = -0.1;
  EXPECT_THROW(generate_world(o, WorldDirs::get().scratch("bad3")), Error);
  EXPECT_FALSE(fs::exists(WorldDirs::get().scratch("bad1")));
  EXPECT_THROW(read_manifest(WorldDirs::get().scratch("nothing_here")), Error);
}

TEST(WorldGenerateTest, QuickScaleIsSmallEnoughForCi) {
  const auto& m = WorldDirs::get().manifest(7);
  int64_t tokens = m.stats["corpus"]["approx_tokens"].get<int64_t>();
  EXPECT_GE(tokens, 100'000);
  EXPECT_LE(tokens, 200'000);
  const fs::path& dir = WorldDirs::get().quick(7);
  auto rows = [&](const std::string& prefix) {
    int64_t n = 0;
    for (const auto& p : testing::world_files(dir, prefix)) n += m.file(p).rows;
    return n;
  };
  // Each evaluation suite holds about 40-80 items at the quick scale.
  for (const char* suite : {"knowledge/test/", "reasoning/test.jsonl", "reasoning_incontext/test/", "math/test", "code/", "truthfulness/", "bias/",
                            "creativity/", "safety/harmbench", "safety/xstest", "safety/harmful_heldout"}) {
    EXPECT_GE(rows(suite), 40) << suite;
    EXPECT_LE(rows(suite), 80) << suite;
  }
}

}  // namespace
}  // namespace atax::world
