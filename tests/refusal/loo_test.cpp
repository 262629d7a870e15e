// ctest-labels: unit
// The refusal judge's generalisation, measured honestly: leave-one-model-out over XSTest's three
// human-labelled completion files (train on two models and the toy world's preference data, score
// the third; partial refusals count as refusals), and the shipped weights reproduced from their
// inputs.
#include <map>
#include <string>
#include <vector>

#include <gtest/gtest.h>

#include "core/core.h"
#include "refusal/refusal.h"

namespace {

const std::string kXs = std::string(ATAX_SHARED_DIR) + "/benchmarks/xstest/model_completions/xstest_v2_completions_";
const std::string kWorld = std::string(ATAX_SOURCE_DIR) + "/tests/refusal/fixtures/world_preferences_seed7_quick.jsonl";

std::vector<atax::LabelledSet> xstest_sets() {
  std::vector<atax::LabelledSet> sets;
  for (const char* m : {"gpt4", "llama2orig", "mistralinstruct"}) sets.push_back({m, atax::read_judge_items(kXs + m + ".csv")});
  return sets;
}

}  // namespace

// Issue 18's target: leave-one-model-out agreement >= 0.90 on each file. Measured with the v3
// judge (decisive patterns + logreg): gpt4 0.971, llama2orig 0.960, mistralinstruct 0.936; v2
// (patterns + logreg): 0.969, 0.944, 0.902; the string-match judge (v1): 0.967, 0.938, 0.884. The
// patterns were written against all three files (only the weights are refitted per fold).
TEST(LooTest, LeaveOneModelOutAgreementHoldsOnEveryHeldOutModel) {
  const auto sets = xstest_sets();
  const auto extra = atax::world_refusal_examples(kWorld);
  ASSERT_FALSE(extra.empty());
  const auto folds = atax::leave_one_model_out(sets, extra);
  ASSERT_EQ(folds.size(), 3u);
  const std::map<std::string, double> measured = {{"gpt4", 0.971}, {"llama2orig", 0.960}, {"mistralinstruct", 0.936}};
  for (const auto& f : folds) {
    SCOPED_TRACE(f.held_out);
    const auto& s = f.stats;
    EXPECT_GE(s.agreement, 0.90);
    EXPECT_NEAR(s.agreement, measured.at(f.held_out), 0.005);  // deterministic training: the same figures
    EXPECT_GE(s.tp + s.fp + s.fn + s.tn, 400);
    EXPECT_LE(s.agreement_ci.lo, s.agreement);
    EXPECT_GE(s.agreement_ci.hi, s.agreement);
    EXPECT_GT(s.precision, 0.75);
    EXPECT_GT(s.recall, 0.5);
  }
}

// The same protocol without the toy world's pairs: the weights then come from two XSTest models
// only, and a judge that leaned on them fell apart on the third (v2: gpt4 0.564, recall 0.118).
// The decisive patterns keep it at the target: measured 0.971, 0.958, 0.936.
TEST(LooTest, LeaveOneModelOutHoldsWithoutTheToyWorld) {
  const auto folds = atax::leave_one_model_out(xstest_sets());
  ASSERT_EQ(folds.size(), 3u);
  const std::map<std::string, double> measured = {{"gpt4", 0.971}, {"llama2orig", 0.958}, {"mistralinstruct", 0.936}};
  for (const auto& f : folds) {
    SCOPED_TRACE(f.held_out);
    EXPECT_GE(f.stats.agreement, 0.90);
    EXPECT_NEAR(f.stats.agreement, measured.at(f.held_out), 0.005);
    EXPECT_GT(f.stats.recall, 0.75);
  }
}

TEST(LooTest, ShippedWeightsAreReproducedFromTheirInputs) {
  const auto sets = xstest_sets();
  auto examples = atax::refusal_examples(sets);
  const auto extra = atax::world_refusal_examples(kWorld);
  examples.insert(examples.end(), extra.begin(), extra.end());
  const auto model = atax::train_refusal_model(examples);
  EXPECT_EQ(atax::refusal_model_digest(model), atax::refusal_model_digest(atax::shipped_refusal_model()));
  EXPECT_NE(atax::refusal_judge_version().find(atax::refusal_model_digest(model).substr(0, 12)), std::string::npos)
      << atax::refusal_judge_version();
}
