// ctest-labels: model
// PMI-normalised accuracy (acc_uncond, OLMES) on a real tiny model: the evaluator's per-item
// predictions and scores equal a hand computation from the model's own log-likelihoods, each
// request scored alone (no pool, batch or cache): PMI_i = log p(option_i | prompt) −
// log p(option_i | "Answer:"), argmax, gold or not. The three PMI benchmarks' CF tasks on the
// hand-made fixtures (tests/eval/fixtures/olmes_mc), 5-shot, on stories260K.
#include <cmath>

#include <gtest/gtest.h>

#include "eval/eval.h"
#include "model/model.h"

using namespace atax;

namespace {

const fs::path kStories = fs::path(ATAX_SHARED_DIR) / "models/stories260K/hf";
const fs::path kTasks = fs::path(ATAX_SOURCE_DIR) / "tasks";
const fs::path kData = fs::path(ATAX_SOURCE_DIR) / "tests/eval/fixtures/olmes_mc";
constexpr double kTol = 1e-4;  // nats: float32 scoring, batched by the evaluator vs one request here

double logprob(HfModel& m, const std::string& context, const std::string& continuation) {
  return m.loglikelihood({{context, continuation}}).at(0).logprob;
}

}  // namespace

TEST(PmiModelTest, AccUncondEqualsAHandComputationFromTheModelsLogprobs) {
  HfModel m(load_model(kStories));
  EvalOptions o;
  o.progress = false;
  o.data_dir = kData;
  o.log_samples = true;
  const EvalResults r = evaluate(m, select_tasks({"arc_challenge_cf", "csqa_cf", "openbookqa_cf"}, kTasks), o);
  int disagreements = 0;  // items where PMI picks another option than the raw log-prob
  for (const char* name : {"arc_challenge_cf", "csqa_cf", "openbookqa_cf"}) {
    SCOPED_TRACE(name);
    const TaskResult* t = r.find(name);
    ASSERT_NE(t, nullptr);
    const MetricResult* acc_uncond = t->find("acc_uncond");
    ASSERT_NE(acc_uncond, nullptr);
    ASSERT_EQ(t->samples.size(), acc_uncond->scores.size());
    std::vector<double> hand_scores;
    for (const json& s : t->samples) {
      SCOPED_TRACE(s["doc_id"].get<std::string>());
      const std::string prompt = s["prompt"];
      ASSERT_LT(m.count_tokens(prompt), 512);  // the whole 5-shot prompt fits the context
      const auto options = s["arguments"]["default"].get<std::vector<std::string>>();
      const json& logged = s["resps_uncond"]["default"];
      EXPECT_EQ(logged["context"], "Answer:");
      std::vector<double> cond, pmi;
      for (size_t i = 0; i < options.size(); ++i) {
        const double c = logprob(m, prompt, options[i]);
        const double u = logprob(m, "Answer:", options[i]);
        EXPECT_NEAR(s["resps"]["default"][i][0].get<double>(), c, kTol) << options[i];
        EXPECT_NEAR(logged["logprobs"][i].get<double>(), u, kTol) << options[i];
        EXPECT_NEAR(logged["pmi"][i].get<double>(), c - u, 2 * kTol) << options[i];
        cond.push_back(c);
        pmi.push_back(c - u);
      }
      const int want = argmax(pmi);
      std::vector<double> sorted = pmi;
      std::sort(sorted.rbegin(), sorted.rend());
      ASSERT_GT(sorted[0] - sorted[1], 10 * kTol) << "a near-tie: the fixture cannot tell the argmax";
      EXPECT_EQ(s["filtered_resps"]["default"]["pred_uncond"].get<int>(), want);
      const double item = s["filtered_resps"]["default"]["labels"][static_cast<size_t>(want)].get<int>() ? 1.0 : 0.0;
      EXPECT_EQ(s["acc_uncond,none"].get<double>(), item);
      hand_scores.push_back(item);
      disagreements += want != argmax(cond);
    }
    // Value and stderr from the hand-computed items: mean and sample sd / sqrt(n).
    double mean = 0, ss = 0;
    for (double v : hand_scores) mean += v / static_cast<double>(hand_scores.size());
    for (double v : hand_scores) ss += (v - mean) * (v - mean);
    const double n = static_cast<double>(hand_scores.size());
    EXPECT_EQ(acc_uncond->scores, hand_scores);
    EXPECT_NEAR(acc_uncond->value, mean, 1e-12);
    EXPECT_NEAR(acc_uncond->stderr_, std::sqrt(ss / (n - 1)) / std::sqrt(n), 1e-12);
  }
  // On these items PMI changes some predictions, so a PMI that ignored the unconditional
  // log-probs could not pass.
  EXPECT_GT(disagreements, 0);
}
