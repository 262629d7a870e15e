// ctest-labels: unit
// The demo's choice of plain DPO's β on the dev splits (choose_dpo_beta): the most legitimate
// prompts answered among the β that refuse enough harmful ones, else the most refused; and the
// default plan selects among its sweep points.
#include <gtest/gtest.h>

#include "pipeline/pipeline.h"

namespace atax::pipeline {
namespace {

TEST(BetaChoiceTest, MostAnsweredAmongThoseThatRefuseEnough) {
  // The 1.8.0 base's shape: small β refuses everything and over-refuses, large β answers but
  // lets harmful prompts through.
  std::vector<BetaTrial> t = {{0.1, 1.0, 0.47}, {0.3, 0.98, 0.62}, {0.6, 0.93, 0.85}, {1.0, 0.83, 0.90}};
  EXPECT_DOUBLE_EQ(choose_dpo_beta(t), 0.6);
  // A stricter floor moves the choice to a β that refuses more.
  EXPECT_DOUBLE_EQ(choose_dpo_beta(t, 0.95), 0.3);
  // Order does not matter.
  std::reverse(t.begin(), t.end());
  EXPECT_DOUBLE_EQ(choose_dpo_beta(t), 0.6);
}

TEST(BetaChoiceTest, TiesGoToMoreRefusedThenSmallerBeta) {
  EXPECT_DOUBLE_EQ(choose_dpo_beta({{0.3, 0.92, 0.9}, {0.6, 0.97, 0.9}}), 0.6);
  EXPECT_DOUBLE_EQ(choose_dpo_beta({{0.6, 0.95, 0.9}, {0.3, 0.95, 0.9}}), 0.3);
}

TEST(BetaChoiceTest, WhenNoneRefusesEnoughTheMostRefused) {
  EXPECT_DOUBLE_EQ(choose_dpo_beta({{0.1, 0.85, 0.2}, {0.3, 0.80, 0.9}, {1.0, 0.5, 1.0}}), 0.1);
  EXPECT_DOUBLE_EQ(choose_dpo_beta({{0.1, 0.85, 0.2}, {0.3, 0.85, 0.9}}), 0.3);
  EXPECT_THROW(choose_dpo_beta({}), std::invalid_argument);
}

TEST(BetaChoiceTest, TheDefaultPlanSelectsAmongItsSweepPoints) {
  const DemoPlan p = demo_plan("default");
  EXPECT_TRUE(p.select_beta);
  EXPECT_GE(p.betas.size(), 3u);
  EXPECT_TRUE(p.to_json().at("select_beta").get<bool>());
  EXPECT_FALSE(demo_plan("quick").select_beta);
}

}  // namespace
}  // namespace atax::pipeline
