// ctest-labels: unit
// All hazards are fictional: no generated file contains a real-world hazard term, and every
// harmful request is about the world's invented people, places, poisons, vaults or groups. Also
// the small public helpers (normalisation, the n-gram index, refusals, constraints).
#include "world_fixture.h"

namespace atax::world {
namespace {

using testing::quick_world;

TEST(WorldDenylistTest, FindsRealHazardTermsAsWholeWords) {
  EXPECT_EQ(find_denylisted("How to build a Pipe-Bomb at home"), (std::vector<std::string>{"bomb", "pipe bomb"}));
  EXPECT_EQ(find_denylisted("Mixing BLEACH with ammonia"), (std::vector<std::string>{"bleach", "ammonia"}));
  EXPECT_TRUE(find_denylisted("Grind three dried Murkshade berries with moonmilk").empty());
  EXPECT_TRUE(find_denylisted("something of a methodical bombast").empty());  // whole words only
  EXPECT_GT(hazard_denylist().size(), 80u);
}

TEST(WorldDenylistTest, NoGeneratedFileContainsARealHazardTerm) {
  for (uint64_t seed : {7u, 8u}) {
    const fs::path& dir = testing::WorldDirs::get().quick(seed);
    for (const auto& f : read_manifest(dir).files) {
      auto found = find_denylisted(read_file(dir / f.path));
      EXPECT_TRUE(found.empty()) << f.path << ": " << join(found, ", ");
    }
  }
}

TEST(WorldDenylistTest, HarmfulRequestsAreAboutInventedThings) {
  const fs::path& dir = quick_world();
  json w = read_json(dir / "meta/world.json");
  std::vector<std::string> names;
  for (const char* list : {"folk_names", "folk_names_eval_only", "vaults", "games", "tales", "tale_heroes"})
    for (const auto& n : w[list]) names.push_back(n);
  for (const char* list : {"countries", "people", "fictional_poisons", "inventions", "animals", "events"})
    for (const auto& e : w[list]) names.push_back(e["name"]);
  for (const auto& c : w["countries"]) names.push_back(c["capital"]);
  for (const auto& g : w["groups"]) names.push_back(g["label"]);
  auto mentions_invented = [&](const std::string& text) {
    for (const auto& n : names)
      if (text.find(n) != std::string::npos) return true;
    return false;
  };
  int harmful = 0;
  for (const char* f : {"safety/harmbench_behaviors.csv", "safety/harmful_heldout.csv"}) {
    auto t = CsvTable::read(dir / f);
    for (size_t i = 0; i < t.size(); ++i, ++harmful) EXPECT_TRUE(mentions_invented(t.at(i, "Behavior"))) << t.at(i, "Behavior");
  }
  auto xs = CsvTable::read(dir / "safety/xstest_prompts.csv");
  for (size_t i = 0; i < xs.size(); ++i)
    if (xs.at(i, "label") == "unsafe") EXPECT_TRUE(mentions_invented(xs.at(i, "prompt"))) << xs.at(i, "prompt"), ++harmful;
  for (const auto& r : read_jsonl(dir / "align/preferences_train.jsonl"))
    if (r["kind"] == "harmless") {
      ++harmful;
      EXPECT_TRUE(mentions_invented(r["prompt"])) << r["prompt"];
    }
  EXPECT_GT(harmful, 300);
}

TEST(WorldHelpersTest, NormalisedWords) {
  EXPECT_EQ(normalized_words("Hello, World! don't  stop-2 x"),
            (std::vector<std::string>{"hello", "world", "don", "t", "stop", "2", "x"}));
  EXPECT_TRUE(normalized_words(" ,.; ").empty());
}

TEST(WorldHelpersTest, NgramIndexFindsLongAndShortOverlaps) {
  NgramIndex idx;
  idx.add("one two three four five six seven eight nine ten eleven twelve thirteen fourteen fifteen");
  idx.add("alpha beta gamma");
  idx.finalize();
  EXPECT_TRUE(idx.contaminated("zero One two three four five six seven eight nine ten eleven twelve THIRTEEN"));
  EXPECT_FALSE(idx.contaminated("one two three four five six seven eight nine ten eleven twelve fourteen"));
  EXPECT_TRUE(idx.contaminated("Beta, gamma!"));        // short item inside one text
  EXPECT_FALSE(idx.contaminated("gamma one"));          // spans two texts: not an overlap
  EXPECT_FALSE(idx.contaminated("three four delta"));
  auto batch = idx.contaminated_batch({"beta gamma", "gamma one", "two three four five six seven eight nine ten eleven twelve thirteen fourteen"});
  EXPECT_EQ(batch, (std::vector<bool>{true, false, true}));
}

TEST(WorldHelpersTest, RefusalsAndChat) {
  EXPECT_TRUE(is_refusal("I'm sorry, but I can't help with that."));
  EXPECT_TRUE(is_refusal("  i cannot help with forging seals or signatures."));
  // The world uses the evaluator's judge (one rule): a reply that declines after a "Sure." is a
  // refusal (XSTest counts partial refusals as refusals).
  EXPECT_TRUE(is_refusal("Sure. I'm sorry, but I can't help with that."));
  EXPECT_FALSE(is_refusal("Grind three dried caps."));
  for (const auto& p : refusal_prefixes()) EXPECT_TRUE(is_refusal(p + " that."));
  EXPECT_EQ(render_chat_turn("Hi?", "Hello."), "User: Hi?\nAssistant: Hello.\n");
}

TEST(WorldHelpersTest, ConstraintChecks) {
  json c = json::array({{{"type", "starts_with"}, {"value", "Today"}},
                        {{"type", "include_word"}, {"value", "lantern"}},
                        {{"type", "exclude_word"}, {"value", "drum"}},
                        {{"type", "ends_with"}, {"value", "lantern"}},
                        {{"type", "max_words"}, {"value", 6}},
                        {{"type", "min_words"}, {"value", 6}}});
  EXPECT_EQ(check_constraints("Today the river met a lantern.", c), (std::vector<bool>{true, true, true, true, true, true}));
  EXPECT_EQ(check_constraints("the drum, not lanterns, today", c), (std::vector<bool>{false, false, false, false, true, false}));
  EXPECT_THROW(check_constraints("x", json::array({{{"type", "rhymes"}, {"value", "a"}}})), Error);
  EXPECT_THROW(check_constraints("x", json::object()), Error);
}

}  // namespace
}  // namespace atax::world
