// ctest-labels: unit
// The "eval" artifact key names every setting that changes a model's answers: the weights'
// storage format (--weights / ATAX_WEIGHTS) among them, so a cached evaluation never answers for
// another format.
#include <gtest/gtest.h>

#include "pipeline/pipeline.h"

namespace atax::pipeline {
namespace {

TEST(EvalKeysTest, RunSettingsNameTheWeightFormatWhenNotFloat32) {
  ModelRunOptions run;
  const WeightFormat before = default_weight_format();
  set_default_weight_format(WeightFormat::kF32);
  const json f32 = run_settings_json(run);
  EXPECT_FALSE(f32.contains("weights")) << f32.dump();  // float32 keys stay as they were
  set_default_weight_format(WeightFormat::kQ8_0);
  const json q8 = run_settings_json(run);
  set_default_weight_format(WeightFormat::kBf16);
  const json bf16 = run_settings_json(run);
  set_default_weight_format(before);
  EXPECT_EQ(q8.value("weights", ""), "q8_0");
  EXPECT_EQ(bf16.value("weights", ""), "bf16");
  EXPECT_NE(f32, q8);
  EXPECT_NE(q8, bf16);
}

}  // namespace
}  // namespace atax::pipeline
