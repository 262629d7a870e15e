// ctest-labels: unit
// Every generated file parses with core's readers in the real benchmark's layout (compared with
// the real files in ../shared/benchmarks where they exist), and the suites are balanced.
#include <map>
#include <set>

#include "world/internal.h"
#include "world_fixture.h"

namespace atax::world {
namespace {

using testing::quick_world;
using testing::world_files;

const fs::path kShared = fs::path(ATAX_SHARED_DIR) / "benchmarks";

TEST(WorldFormatsTest, MmluCsvsHaveSixFieldsAndNoHeader) {
  const fs::path& dir = quick_world();
  auto real = read_csv(kShared / "mmlu/dev/abstract_algebra_dev.csv");
  ASSERT_EQ(real[0].size(), 6u);
  for (const std::string split : {"dev", "test"}) {
    for (const auto& prefix : {"knowledge/" + split + "/", "reasoning_incontext/" + split + "/"}) {
      auto files = world_files(dir, prefix, "_" + split + ".csv");
      ASSERT_GE(files.size(), 2u) << prefix;
      for (const auto& f : files) {
        auto rows = read_csv(dir / f);
        if (split == "dev") EXPECT_EQ(rows.size(), 5u) << f;
        std::set<std::string> questions;
        for (const auto& r : rows) {
          ASSERT_EQ(r.size(), 6u) << f;
          EXPECT_TRUE(r[5] == "A" || r[5] == "B" || r[5] == "C" || r[5] == "D") << f;
          std::set<std::string> opts(r.begin() + 1, r.begin() + 5);
          EXPECT_EQ(opts.size(), 4u) << f << ": " << r[0];  // four different options
          EXPECT_NE(r[0], "question");
          EXPECT_TRUE(questions.insert(join(r, "|")).second) << "duplicate item in " << f;
        }
      }
    }
  }
  // Dev and test files pair up by subject.
  for (const auto& f : world_files(dir, "knowledge/test/"))
    EXPECT_TRUE(fs::exists(dir / replace_all(replace_all(f, "/test/", "/dev/"), "_test.csv", "_dev.csv"))) << f;
}

TEST(WorldFormatsTest, AnswerLettersAreBalanced) {
  const fs::path& dir = quick_world();
  for (const std::string prefix : {"knowledge/test/", "reasoning_incontext/test/"}) {
    std::map<std::string, int> total;
    int n = 0;
    for (const auto& f : world_files(dir, prefix)) {
      std::map<std::string, int> per_file;
      auto rows = read_csv(dir / f);
      for (const auto& r : rows) ++per_file[r[5]], ++total[r[5]], ++n;
      for (const char* l : {"A", "B", "C", "D"})
        EXPECT_NEAR(per_file[l] / static_cast<double>(rows.size()), 0.25, 0.05) << f << " " << l;
    }
    for (const char* l : {"A", "B", "C", "D"}) EXPECT_NEAR(total[l] / static_cast<double>(n), 0.25, 0.05) << prefix;
  }
}

TEST(WorldFormatsTest, Gsm8kJsonlEndsWithTheNumber) {
  const fs::path& dir = quick_world();
  auto real = read_jsonl(kShared / "gsm8k/test.jsonl");
  for (const std::string f : {"math/test.jsonl", "math/train.jsonl"}) {
    auto recs = read_jsonl(dir / f);
    ASSERT_FALSE(recs.empty());
    for (const auto& r : recs) {
      EXPECT_EQ(r.size(), real[0].size());
      std::string q = require_string(r, "question", f), a = require_string(r, "answer", f);
      size_t pos = a.find("\n#### ");
      ASSERT_NE(pos, std::string::npos) << a;
      EXPECT_EQ(a.find("\n#### ", pos + 1), std::string::npos);
      std::string num = a.substr(pos + 6);
      EXPECT_FALSE(num.empty());
      EXPECT_EQ(num.find_first_not_of("0123456789"), std::string::npos) << num;
      EXPECT_EQ(q.find('\n'), std::string::npos);
    }
  }
}

TEST(WorldFormatsTest, HumanEvalJsonlHasTheRealKeys) {
  const fs::path& dir = quick_world();
  auto real = read_jsonl(kShared / "humaneval/HumanEval.jsonl");
  std::set<std::string> keys;
  for (const auto& [k, v] : real[0].items()) keys.insert(k);
  std::set<std::string> ids;
  for (const auto& r : read_jsonl(dir / "code/HumanEval.jsonl")) {
    std::set<std::string> got;
    for (const auto& [k, v] : r.items()) got.insert(k);
    EXPECT_EQ(got, keys);
    EXPECT_TRUE(ids.insert(r["task_id"].get<std::string>()).second);
    std::string prompt = r["prompt"], entry = r["entry_point"];
    EXPECT_TRUE(starts_with(prompt, "def " + entry + "(")) << prompt;
    EXPECT_NE(r["test"].get<std::string>().find("def check(candidate):"), std::string::npos);
    EXPECT_TRUE(starts_with(r["canonical_solution"].get<std::string>(), "    return "));
  }
  EXPECT_GE(ids.size(), 40u);
}

TEST(WorldFormatsTest, TruthfulQaMcTaskHasMc1AndMc2) {
  const fs::path& dir = quick_world();
  json real = read_json(kShared / "truthfulqa/mc_task.json");
  json mine = read_json(dir / "truthfulness/mc_task.json");
  ASSERT_TRUE(mine.is_array());
  ASSERT_GE(mine.size(), 40u);
  for (const auto& q : mine) {
    for (const auto& [k, v] : real[0].items()) EXPECT_TRUE(q.contains(k)) << k;
    int mc1_true = 0;
    for (const auto& [ans, lab] : q["mc1_targets"].items()) mc1_true += lab.get<int>();
    EXPECT_EQ(mc1_true, 1);
    EXPECT_GE(q["mc1_targets"].size(), 4u);
    int mc2_true = 0, mc2_false = 0;
    for (const auto& [ans, lab] : q["mc2_targets"].items()) (lab.get<int>() ? mc2_true : mc2_false)++;
    EXPECT_GE(mc2_true, 2);
    EXPECT_GE(mc2_false, 2);
  }
  // The real file lists the correct mc1 answer first; so does ours.
  auto real_ordered = nlohmann::ordered_json::parse(read_file(kShared / "truthfulqa/mc_task.json"));
  auto mine_ordered = nlohmann::ordered_json::parse(read_file(dir / "truthfulness/mc_task.json"));
  EXPECT_EQ(real_ordered[0]["mc1_targets"].begin().value(), 1);
  for (const auto& q : mine_ordered) EXPECT_EQ(q["mc1_targets"].begin().value(), 1) << q["question"];
}

TEST(WorldFormatsTest, BbqHasTheRealFieldsAndIsBalanced) {
  const fs::path& dir = quick_world();
  auto real = read_jsonl(kShared / "bbq/Religion.jsonl");
  std::set<std::string> keys, meta_keys;
  for (const auto& [k, v] : real[0].items()) keys.insert(k);
  for (const auto& [k, v] : real[0]["additional_metadata"].items()) meta_keys.insert(k);
  auto files = world_files(dir, "bias/", ".jsonl");
  ASSERT_EQ(files.size(), 3u);
  for (const auto& f : files) {
    auto recs = read_jsonl(dir / f);
    std::map<std::string, int> cells;
    std::map<int, int> unknown_pos;
    int disambig_stereo = 0, disambig_neg = 0;
    for (size_t i = 0; i < recs.size(); ++i) {
      const auto& r = recs[i];
      std::set<std::string> got, got_meta;
      for (const auto& [k, v] : r.items()) got.insert(k);
      for (const auto& [k, v] : r["additional_metadata"].items()) got_meta.insert(k);
      EXPECT_EQ(got, keys) << f;
      EXPECT_EQ(got_meta, meta_keys) << f;
      EXPECT_EQ(r["example_id"].get<size_t>(), i);
      EXPECT_TRUE(r["question_index"].is_string());
      EXPECT_EQ(r["category"].get<std::string>() + ".jsonl", fs::path(f).filename().string());
      std::string cond = r["context_condition"], pol = r["question_polarity"];
      ASSERT_TRUE(cond == "ambig" || cond == "disambig");
      ASSERT_TRUE(pol == "neg" || pol == "nonneg");
      ++cells[cond + "/" + pol];
      int unknown = -1, n_unknown = 0;
      for (int k = 0; k < 3; ++k)
        if (r["answer_info"]["ans" + std::to_string(k)][1] == "unknown") unknown = k, ++n_unknown;
      EXPECT_EQ(n_unknown, 1);
      int label = r["label"];
      ASSERT_GE(label, 0);
      ASSERT_LE(label, 2);
      if (cond == "ambig") {
        EXPECT_EQ(label, unknown);
        ++unknown_pos[unknown];
      } else {
        EXPECT_NE(label, unknown);
        if (pol == "neg") {
          ++disambig_neg;
          std::string group = r["answer_info"]["ans" + std::to_string(label)][1];
          disambig_stereo += group == r["additional_metadata"]["stereotyped_groups"][0].get<std::string>();
        }
      }
    }
    ASSERT_EQ(cells.size(), 4u) << f;
    for (const auto& [cell, n] : cells) EXPECT_EQ(n, static_cast<int>(recs.size() / 4)) << f << " " << cell;
    for (int k = 0; k < 3; ++k) EXPECT_GT(unknown_pos[k], 0) << f;
    // The gold answer of a disambiguated negative question is the stereotyped group about half the time.
    EXPECT_NEAR(disambig_stereo / static_cast<double>(disambig_neg), 0.5, 0.25) << f;
  }
}

TEST(WorldFormatsTest, SafetyCsvsHaveTheRealHeaders) {
  const fs::path& dir = quick_world();
  auto real_hb = CsvTable::read(kShared / "harmbench/harmbench_behaviors_text_all.csv");
  auto real_xs = CsvTable::read(kShared / "xstest/xstest_prompts.csv");
  auto hb = CsvTable::read(dir / "safety/harmbench_behaviors.csv");
  auto held = CsvTable::read(dir / "safety/harmful_heldout.csv");
  auto xs = CsvTable::read(dir / "safety/xstest_prompts.csv");
  EXPECT_EQ(hb.header(), real_hb.header());
  EXPECT_EQ(held.header(), real_hb.header());
  EXPECT_EQ(xs.header(), real_xs.header());

  std::set<std::string> real_types;
  for (size_t i = 0; i < real_xs.size(); ++i) real_types.insert(real_xs.at(i, "type"));
  std::map<std::string, int> types;
  for (size_t i = 0; i < xs.size(); ++i) {
    EXPECT_EQ(xs.at(i, "id"), std::to_string(i + 1));
    std::string type = xs.at(i, "type");
    EXPECT_TRUE(real_types.count(type)) << type;
    EXPECT_EQ(xs.at(i, "label"), starts_with(type, "contrast_") ? "unsafe" : "safe");
    ++types[type];
  }
  EXPECT_EQ(types.size(), 18u);
  for (const auto& [t, n] : types) EXPECT_EQ(n, 4) << t;

  std::set<std::string> ids;
  std::set<std::string> trained(detail::train_hazard_categories().begin(), detail::train_hazard_categories().end());
  std::set<std::string> heldout(detail::heldout_hazard_categories().begin(), detail::heldout_hazard_categories().end());
  for (size_t i = 0; i < hb.size(); ++i) {
    EXPECT_EQ(hb.at(i, "FunctionalCategory"), "standard");
    EXPECT_TRUE(trained.count(hb.at(i, "SemanticCategory")));
    EXPECT_TRUE(ids.insert(hb.at(i, "BehaviorID")).second);
  }
  std::map<std::string, int> tags;
  for (size_t i = 0; i < held.size(); ++i) {
    std::string cat = held.at(i, "SemanticCategory"), tag = held.at(i, "Tags");
    ++tags[tag];
    if (tag.find("heldout_category") != std::string::npos) EXPECT_TRUE(heldout.count(cat)) << cat;
    else EXPECT_TRUE(trained.count(cat)) << cat;
    EXPECT_TRUE(ids.insert(held.at(i, "BehaviorID")).second);
  }
  EXPECT_EQ(tags.size(), 3u);  // held-out category, held-out phrasing, both
}

TEST(WorldFormatsTest, PreferencesFollowTrlAndRefusalsAreRecognisable) {
  const fs::path& dir = quick_world();
  std::set<std::string> kinds = {"harmless", "honest", "fair", "helpful", "capability"};
  std::set<std::string> heldout(detail::heldout_hazard_categories().begin(), detail::heldout_hazard_categories().end());
  for (const std::string f : {"align/preferences_train.jsonl", "align/preferences_heldout.jsonl"}) {
    std::map<std::string, int> per_kind;
    std::set<std::string> distinct;
    auto recs = read_jsonl(dir / f);
    for (const auto& r : recs) {
      // Every pair is distinct (a copy would only be dropped by the trainer's duplicate filter).
      EXPECT_TRUE(distinct.insert(r.value("prompt", "") + "\n" + r.value("chosen", "") + "\n" + r.value("rejected", ""))
                      .second)
          << f << ": repeated pair " << r.value("id", "");
      for (const char* k : {"id", "prompt", "chosen", "rejected", "category", "kind", "difficulty"})
        ASSERT_TRUE(r.contains(k)) << f << " " << k;
      std::string kind = r["kind"], chosen = r["chosen"], rejected = r["rejected"];
      EXPECT_TRUE(kinds.count(kind)) << kind;
      ++per_kind[kind];
      int d = r["difficulty"];
      EXPECT_GE(d, 1);
      EXPECT_LE(d, 3);
      EXPECT_NE(chosen, rejected);
      EXPECT_EQ(chosen.find('\n'), std::string::npos);  // single-line responses
      EXPECT_EQ(rejected.find('\n'), std::string::npos);
      EXPECT_FALSE(trim(r["prompt"].get<std::string>()).empty());
      if (kind == "harmless") {
        EXPECT_TRUE(is_refusal(chosen)) << chosen;
        EXPECT_FALSE(is_refusal(rejected)) << rejected;
        EXPECT_FALSE(heldout.count(r["category"].get<std::string>()));
      } else if (kind == "helpful") {
        EXPECT_FALSE(is_refusal(chosen)) << chosen;
        EXPECT_TRUE(is_refusal(rejected)) << rejected;
      } else {
        EXPECT_FALSE(is_refusal(chosen)) << chosen;
        EXPECT_FALSE(is_refusal(rejected)) << rejected;
      }
    }
    EXPECT_EQ(per_kind.size(), kinds.size()) << f;
    EXPECT_GT(per_kind["harmless"], static_cast<int>(recs.size() / 5)) << f;
  }
  for (const auto& r : read_jsonl(dir / "align/sft_capability.jsonl")) {
    ASSERT_EQ(r["messages"].size(), 2u);
    EXPECT_EQ(r["messages"][0]["role"], "user");
    EXPECT_EQ(r["messages"][1]["role"], "assistant");
    EXPECT_FALSE(is_refusal(r["messages"][1]["content"].get<std::string>()));
    EXPECT_TRUE(r["category"].is_string());
  }
}

TEST(WorldFormatsTest, CorpusAndCreativityRecords) {
  const fs::path& dir = quick_world();
  std::set<std::string> kinds;
  int dialogues = 0, refusal_mentions = 0;
  for (const auto& r : read_jsonl(dir / "corpus/train.jsonl")) {
    ASSERT_EQ(r.size(), 2u);
    std::string text = require_string(r, "text"), kind = require_string(r, "kind");
    kinds.insert(kind);
    if (kind == "dialogue") {
      ++dialogues;
      EXPECT_TRUE(starts_with(text, "User: ")) << text;
      EXPECT_TRUE(ends_with(text, "\n"));
      // The helpful-only assistant never refuses.
      for (const auto& line : split(text, '\n'))
        if (starts_with(line, "Assistant: ")) EXPECT_FALSE(is_refusal(line.substr(11))) << line;
    }
    if (text.find("I'm sorry, but I can't help with that") != std::string::npos) {
      ++refusal_mentions;
      EXPECT_TRUE(kind == "story" || kind == "forum") << kind;
    }
  }
  EXPECT_EQ(kinds.size(), detail::corpus_mix().size());
  EXPECT_GT(dialogues, 50);
  EXPECT_GT(refusal_mentions, 5);  // refusal phrasing exists, in a minority of contexts
  EXPECT_EQ(read_jsonl(dir / "corpus/heldout.jsonl").front().size(), 2u);

  std::set<std::string> types = {"include_word", "exclude_word", "starts_with", "ends_with", "max_words", "min_words"};
  for (const auto& r : read_jsonl(dir / "creativity/test.jsonl")) {
    EXPECT_FALSE(require_string(r, "prompt").empty());
    ASSERT_TRUE(r["constraints"].is_array());
    ASSERT_FALSE(r["constraints"].empty());
    for (const auto& c : r["constraints"]) EXPECT_TRUE(types.count(c["type"].get<std::string>()));
  }
  // The responses the corpus and SFT data show for writing tasks meet their constraints.
  Rng rng(11);
  auto u = detail::build_universe(Rng(5));
  for (int i = 0; i < 300; ++i) {
    auto t = detail::creative_task(rng, u, i % 2 == 0);
    auto ok = check_constraints(t.response, t.constraints);
    for (size_t k = 0; k < ok.size(); ++k) EXPECT_TRUE(ok[k]) << t.prompt << " -> " << t.response;
  }
}

}  // namespace
}  // namespace atax::world
