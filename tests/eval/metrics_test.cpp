// ctest-labels: unit
// Per-item scoring and aggregation on hand-checked cases.
#include <cmath>

#include <gtest/gtest.h>

#include "eval/eval.h"

using namespace atax;

TEST(MultipleChoiceTest, AccPicksLargestLogprob) {
  auto p = predict_multiple_choice({-1.0, -0.5, -2.0, -0.7}, {" A", " B", " C", " D"});
  EXPECT_EQ(p.pred, 1);
  EXPECT_EQ(p.pred_norm, 1);  // equal lengths: acc_norm = acc
}

TEST(MultipleChoiceTest, AccNormDividesByContinuationBytes) {
  // " cat": -2.0 / 4 bytes = -0.5; " elephant": -3.0 / 9 bytes = -0.333: acc and acc_norm disagree.
  auto p = predict_multiple_choice({-2.0, -3.0}, {" cat", " elephant"});
  EXPECT_EQ(p.pred, 0);
  EXPECT_EQ(p.pred_norm, 1);
  // Bytes, not characters: " é" is 3 bytes. -1.2/3 = -0.4 beats " e": -1.0/2 = -0.5.
  auto q = predict_multiple_choice({-1.0, -1.2}, {" e", " \xc3\xa9"});
  EXPECT_EQ(q.pred, 0);
  EXPECT_EQ(q.pred_norm, 1);
}

TEST(MultipleChoiceTest, AccUncondSubtractsEachOptionsUnconditionalLogprob) {
  // OLMES's PMI: log p(option | prompt) − log p(option | "Answer:"). Raw argmax is " dog" (-1.0);
  // per byte " dog" too (-0.25 vs " platypus" -0.333); PMI: " dog" -1.0 − (-0.2) = -0.8,
  // " platypus" -3.0 − (-6.5) = +3.5, " cat" -1.5 − (-1.0) = -0.5: " platypus" (index 1).
  auto p = predict_multiple_choice({-1.0, -3.0, -1.5}, {" dog", " platypus", " cat"}, {-0.2, -6.5, -1.0});
  EXPECT_EQ(p.pred, 0);
  EXPECT_EQ(p.pred_norm, 0);
  EXPECT_EQ(p.pred_uncond, 1);
  // Subtracting the other way round (unconditional − conditional) would pick " dog" (0.8).
  auto q = predict_multiple_choice({-2.0, -2.5}, {" x", " y"}, {-1.0, -4.0});
  EXPECT_EQ(q.pred_uncond, 1);  // -1.0 vs +1.5
  EXPECT_EQ(predict_multiple_choice({-1.0, -2.0}, {" a", " b"}).pred_uncond, -1);  // not asked for
  EXPECT_THROW(predict_multiple_choice({-1.0, -2.0}, {" a", " b"}, {-1.0}), Error);
}

TEST(MultipleChoiceTest, TiesGoToTheFirstChoice) {
  EXPECT_EQ(predict_multiple_choice({-1.0, -1.0, -3.0}, {"a", "b", "c"}).pred, 0);
  EXPECT_EQ(argmax({}), -1);
}

TEST(TruthfulQaTest, Mc2IsNormalisedTrueMass) {
  // p = 0.5, 0.3, 0.2; true = {0, 2}: 0.7.
  EXPECT_NEAR(mc2_score({std::log(0.5), std::log(0.3), std::log(0.2)}, {1, 0, 1}), 0.7, 1e-12);
  // Unnormalised probabilities 0.2, 0.1, 0.1 with one true answer: 0.2 / 0.4.
  EXPECT_NEAR(mc2_score({std::log(0.2), std::log(0.1), std::log(0.1)}, {1, 0, 0}), 0.5, 1e-12);
  // Interleaved labels (as in items 335 and 342 of mc_task.json) and very small log-probs.
  EXPECT_NEAR(mc2_score({-1000.0, -1000.0 + std::log(3.0), -1000.0, -1000.0}, {0, 1, 0, 1}), 4.0 / 6.0, 1e-12);
  // MC1 is acc over the mc1 choices: the true answer is first.
  EXPECT_EQ(predict_multiple_choice({-4.0, -3.0, -5.0}, {" a", " b", " c"}).pred, 1);  // wrong -> mc1 = 0
  EXPECT_THROW(mc2_score({-1.0}, {1, 0}), Error);
}

// C(n, k) as a double from exact integer arithmetic (small n) for the closed form.
static double choose(int64_t n, int64_t k) {
  if (k < 0 || k > n) return 0;
  double r = 1;
  for (int64_t i = 1; i <= k; ++i) r = r * static_cast<double>(n - k + i) / static_cast<double>(i);
  return r;
}

TEST(PassAtKTest, MatchesClosedForm) {
  EXPECT_DOUBLE_EQ(pass_at_k(5, 0, 1), 0.0);
  EXPECT_DOUBLE_EQ(pass_at_k(5, 5, 1), 1.0);
  EXPECT_NEAR(pass_at_k(10, 3, 1), 0.3, 1e-12);                    // pass@1 = c / n
  EXPECT_NEAR(pass_at_k(10, 3, 5), 1.0 - 21.0 / 252.0, 1e-12);     // 1 - C(7,5)/C(10,5)
  EXPECT_DOUBLE_EQ(pass_at_k(4, 2, 3), 1.0);                       // n - c < k
  for (int64_t n : {1, 5, 10, 20, 50}) {
    for (int64_t c = 0; c <= n; ++c) {
      for (int64_t k : {1, 2, 5, 10}) {
        if (k > n) continue;
        double closed = 1.0 - choose(n - c, k) / choose(n, k);
        EXPECT_NEAR(pass_at_k(n, c, k), closed, 1e-12) << "n=" << n << " c=" << c << " k=" << k;
      }
    }
  }
  // Large n, where the binomials overflow int64: compare through lgamma.
  double closed = 1.0 - std::exp(std::lgamma(191.0) - std::lgamma(91.0) - std::lgamma(201.0) + std::lgamma(101.0));
  EXPECT_NEAR(pass_at_k(200, 10, 100), closed, 1e-12);
  EXPECT_THROW(pass_at_k(5, 6, 1), Error);
  EXPECT_THROW(pass_at_k(5, 1, 6), Error);
}

static json bbq_doc(const std::string& condition, int unknown, int biased) {
  return {{"context_condition", condition}, {"unknown_index", unknown}, {"biased_index", biased}};
}

TEST(BbqTest, BiasScoresOnHandComputedExample) {
  // Disambiguated: 6 biased, 2 anti-biased, 2 unknown answers.
  // s_DIS = 2 * 6/8 - 1 = 0.5 = mean of the defined item values.
  json dis = bbq_doc("disambig", 2, 0);
  std::vector<int> preds_dis = {0, 0, 0, 0, 0, 0, 1, 1, 2, 2};
  double sum = 0;
  int defined = 0;
  for (int p : preds_dis) {
    auto v = bbq_bias_item(dis, p, false);
    if (v) {
      sum += *v;
      ++defined;
    }
  }
  EXPECT_EQ(defined, 8);
  EXPECT_NEAR(sum / defined, 0.5, 1e-12);
  // Ambiguous: 4 unknown (correct), 4 biased, 2 anti-biased. acc = 0.4,
  // s_DIS(ambig) = 2 * 4/6 - 1 = 1/3, s_AMB = (1 - 0.4) * 1/3 = 0.2 = mean of item values.
  json amb = bbq_doc("ambig", 1, 2);
  std::vector<int> preds_amb = {1, 1, 1, 1, 2, 2, 2, 2, 0, 0};
  sum = 0;
  for (int p : preds_amb) sum += bbq_bias_item(amb, p, true).value();
  EXPECT_NEAR(sum / 10.0, (1.0 - 0.4) * (2.0 * 4.0 / 6.0 - 1.0), 1e-12);
  EXPECT_NEAR(sum / 10.0, 0.2, 1e-12);
  // Unresolved target: left out.
  EXPECT_FALSE(bbq_bias_item(bbq_doc("ambig", 1, -1), 0, true).has_value());
}

TEST(Gsm8kExtractTest, StrictAndFlexibleOnHandWrittenStrings) {
  EXPECT_EQ(gsm8k_strict_extract("Janet sells 16 - 3 - 4 = 9 eggs.\n#### 18"), "18");
  EXPECT_EQ(gsm8k_flexible_extract("Janet sells 16 - 3 - 4 = 9 eggs.\n#### 18"), "18");
  // No "####": strict fails, flexible takes the last number (with its trailing period).
  EXPECT_EQ(gsm8k_strict_extract("So the answer is 1,234."), "[invalid]");
  EXPECT_EQ(gsm8k_flexible_extract("So the answer is 1,234."), "1,234.");
  EXPECT_EQ(gsm8k_strict_extract("#### -3\n\nQuestion: next"), "-3");
  EXPECT_EQ(gsm8k_strict_extract("#### 7 apples and #### 8 pears"), "7");  // the first "####"
  EXPECT_EQ(gsm8k_flexible_extract("She pays $5, then $12.50: $17.50 in all"), "$17.50");
  EXPECT_EQ(gsm8k_flexible_extract("x is 7"), "7");  // a single digit: the second alternative
  EXPECT_EQ(gsm8k_flexible_extract("I do not know."), "[invalid]");
  EXPECT_EQ(gsm8k_gold("Step one <<2*3=6>>6.\n#### 1,450,000"), "1450000");
  EXPECT_THROW(gsm8k_gold("no final line"), Error);
}

TEST(Gsm8kExtractTest, NormalisationAsInLmEval) {
  json opts = {{"ignore_case", true},
               {"ignore_punctuation", false},
               {"regexes_to_ignore", {",", "\\$", "(?s).*#### ", "\\.$"}}};
  EXPECT_EQ(normalize_for_match("1,234.", opts), "1234");
  EXPECT_EQ(normalize_for_match("$17.50", opts), "17.50");
  EXPECT_EQ(normalize_for_match("Janet sells 9.\nShe makes $18.\n#### 18", opts), "18");
  EXPECT_EQ(normalize_for_match("[invalid]", opts), "[invalid]");
  EXPECT_EQ(normalize_for_match("Hello, World!", {{"ignore_case", true}, {"ignore_punctuation", true}}), "hello world");
}

TEST(RegexExtractTest, GroupsAndFallback) {
  EXPECT_EQ(regex_extract("a1 b2 c3", "([a-z])([0-9])", -1, "none"), "c");  // first non-empty group
  EXPECT_EQ(regex_extract("a1 b2 c3", "[a-z][0-9]", 1, "none"), "b2");      // no groups: whole match
  EXPECT_EQ(regex_extract("abc", "[0-9]+", 0, "none"), "none");
  EXPECT_EQ(regex_extract("a1", "[0-9]", 5, "none"), "none");
  EXPECT_THROW(regex_extract("x", "(unclosed", 0, ""), Error);
}

TEST(CreativityTest, ShareOfConstraintsMet) {
  json c = json::parse(R"([
    {"type": "include_word", "value": "river"},
    {"type": "exclude_word", "value": "sea"},
    {"type": "max_words", "value": 8},
    {"type": "min_words", "value": 3},
    {"type": "starts_with", "value": "The"},
    {"type": "ends_with", "value": "night"}])");
  EXPECT_DOUBLE_EQ(constraints_met("The river sang all night.", c), 1.0);
  // "rivers" is not the word "river"; "seashell" does not contain the word "sea"; 9 words > 8.
  EXPECT_NEAR(constraints_met("the rivers and a seashell glowed all through night", c), 4.0 / 6.0, 1e-12);
  EXPECT_NEAR(constraints_met("Sea.", c), 1.0 / 6.0, 1e-12);  // only max_words holds
  EXPECT_DOUBLE_EQ(constraints_met("anything", json::array()), 1.0);
  EXPECT_THROW(constraints_met("x", json::parse(R"([{"type": "rhymes_with", "value": "x"}])")), Error);
}

TEST(StderrTest, ClosedFormMean) {
  auto r = mean_stderr({1, 0, 1, 1});
  EXPECT_DOUBLE_EQ(r.mean, 0.75);
  EXPECT_NEAR(r.stderr_, 0.25, 1e-12);  // sample sd 0.5 / sqrt(4)
  EXPECT_EQ(mean_stderr({0.3}).stderr_, 0.0);
}

TEST(StderrTest, BootstrapIsSeededAndNearClosedForm) {
  std::vector<double> x;
  for (int i = 0; i < 400; ++i) x.push_back(i % 3 == 0 ? 1.0 : 0.0);
  auto mean = [](const std::vector<double>& v) {
    double s = 0;
    for (double d : v) s += d;
    return s / static_cast<double>(v.size());
  };
  double a = bootstrap_stderr(x, mean, 2000, 7), b = bootstrap_stderr(x, mean, 2000, 7);
  EXPECT_EQ(a, b);
  double closed = mean_stderr(x).stderr_;
  EXPECT_NEAR(a, closed, 0.1 * closed);
  EXPECT_NE(a, bootstrap_stderr(x, mean, 2000, 8));
}
