// ctest-labels: unit
// Tax arithmetic and sign, the paired bootstrap (against a re-implementation with atax's Rng and
// an independent numpy bootstrap, tests/analysis/fixtures/gen_tax_reference.py), McNemar on
// hand-computed 2×2 tables, the permutation test, Wilson intervals, the tax table end to end, the
// Pareto front and α-optimum on constructed points, and the results reader.
#include <unistd.h>

#include <cmath>
#include <fstream>

#include <gtest/gtest.h>

#include "analysis/analysis.h"

namespace atax::analysis {
namespace {

const fs::path kFixture = fs::path(ATAX_SOURCE_DIR) / "tests/analysis/fixtures/tax_reference.json";

fs::path temp_dir(const std::string& name) {
  fs::path d = fs::temp_directory_path() / ("atax_analysis_" + name + "_" + std::to_string(getpid()));
  fs::remove_all(d);
  fs::create_directories(d);
  return d;
}

ItemScores make_items(const std::string& task, const std::string& metric, bool hib, std::vector<double> scores,
                      const std::string& id_prefix = "d") {
  ItemScores s{task, metric, hib, {}, std::move(scores)};
  for (size_t i = 0; i < s.scores.size(); ++i) s.doc_ids.push_back(id_prefix + std::to_string(i));
  return s;
}

bool has_nan_or_inf(const std::string& text) {
  std::string t = to_lower(text);
  return t.find("nan") != std::string::npos || t.find("inf") != std::string::npos;
}

// ------------------------------------------------------------------------------------ arithmetic

TEST(TaxTest, HigherIsBetterSign) {
  // accuracy 0.80 → 0.60 costs a quarter of the base score; 0.80 → 0.90 is an improvement.
  EXPECT_NEAR(*tax_percent(0.8, 0.6, true), 25.0, 1e-12);
  EXPECT_NEAR(*tax_percent(0.8, 0.9, true), -12.5, 1e-12);
  EXPECT_NEAR(*tax_percent(0.5, 0.5, true), 0.0, 1e-12);
}

TEST(TaxTest, LowerIsBetterSign) {
  // bias score 0.20 → 0.10 halves it: an improvement, so a negative tax; 0.20 → 0.30 is worse.
  EXPECT_NEAR(*tax_percent(0.2, 0.1, false), -50.0, 1e-12);
  EXPECT_NEAR(*tax_percent(0.2, 0.3, false), 50.0, 1e-12);
  // a negative base uses |base|: −0.4 → −0.2 under lower-is-better got worse by half.
  EXPECT_NEAR(*tax_percent(-0.4, -0.2, false), 50.0, 1e-12);
}

TEST(TaxTest, BaseZeroIsUndefinedNotInfinite) {
  EXPECT_FALSE(tax_percent(0.0, 0.3, true).has_value());
  EXPECT_FALSE(tax_percent(0.0, 0.3, false).has_value());
  EXPECT_NEAR(*tax_percent(0.0, 0.0, true), 0.0, 0);

  auto base = make_items("math", "exact_match", true, {0, 0, 0, 0});
  auto aligned = make_items("math", "exact_match", true, {0, 1, 0, 1});
  TaxTable t = compute_tax({base}, {aligned});
  ASSERT_EQ(t.rows.size(), 1u);
  EXPECT_FALSE(t.rows[0].tax_pct.has_value());
  EXPECT_FALSE(t.rows[0].tax_ci.lo.has_value());
  EXPECT_FALSE(t.mean_capability_tax.value.has_value());
  std::string md = tax_markdown(t), csv = tax_csv(t), js = tax_json(t).dump();
  EXPECT_NE(md.find("n/a"), std::string::npos);
  EXPECT_FALSE(has_nan_or_inf(md)) << md;
  EXPECT_FALSE(has_nan_or_inf(csv)) << csv;
  EXPECT_FALSE(has_nan_or_inf(js)) << js;
  EXPECT_TRUE(tax_json(t)["rows"][0]["tax_pct"].is_null());
}

// ------------------------------------------------------------------------------------ statistics

TEST(StatsTest, QuantileMatchesNumpyLinear) {
  std::vector<double> v = {1, 2, 3, 4, 10};
  EXPECT_DOUBLE_EQ(quantile_sorted(v, 0.0), 1);
  EXPECT_DOUBLE_EQ(quantile_sorted(v, 1.0), 10);
  EXPECT_DOUBLE_EQ(quantile_sorted(v, 0.5), 3);
  EXPECT_DOUBLE_EQ(quantile_sorted(v, 0.9), 7.6);  // h = 3.6 → 4 + 0.6·6
  EXPECT_DOUBLE_EQ(quantile_sorted(v, 0.025), 1.1);
}

TEST(StatsTest, NormalQuantileMatchesPython) {
  json ref = read_json(kFixture);
  for (const auto& pq : ref["normal_quantile"])
    EXPECT_NEAR(normal_quantile(pq[0].get<double>()), pq[1].get<double>(), 1e-12 * (1 + std::fabs(pq[1].get<double>())));
  EXPECT_NEAR(normal_quantile(0.975), 1.959963984540054, 1e-14);
}

TEST(StatsTest, BinomialHalfCdfByHand) {
  // n = 6: C(6,0..1) = 1, 6 → P(X ≤ 1) = 7/64; n = 12: 1 + 12 + 66 = 79 → 79/4096.
  EXPECT_NEAR(binomial_half_cdf(1, 6), 7.0 / 64, 1e-15);
  EXPECT_NEAR(binomial_half_cdf(2, 12), 79.0 / 4096, 1e-15);
  EXPECT_NEAR(binomial_half_cdf(3, 6), 42.0 / 64, 1e-15);  // 1+6+15+20
  EXPECT_EQ(binomial_half_cdf(6, 6), 1.0);
  EXPECT_EQ(binomial_half_cdf(-1, 6), 0.0);
  // symmetric large case: P(X ≤ 4999) for n = 10000 is (1 − P(X = 5000)) / 2.
  double pmf = std::exp(std::lgamma(10001.0) - 2 * std::lgamma(5001.0) - 10000 * std::log(2.0));
  EXPECT_NEAR(binomial_half_cdf(4999, 10000), (1 - pmf) / 2, 1e-10);
}

TEST(McNemarTest, HandComputedTables) {
  // b = 1, c = 5: n = 6, P(X ≤ 1) = 7/64, exact p = 14/64, mid-p = 2·(7/64 − 3/64) = 8/64,
  // χ²cc = (4 − 1)²/6 = 1.5.
  McNemar m = mcnemar(1, 5);
  EXPECT_NEAR(m.p_exact, 14.0 / 64, 1e-15);
  EXPECT_NEAR(m.p_mid, 8.0 / 64, 1e-15);
  EXPECT_NEAR(m.chi2_cc, 1.5, 1e-15);
  // b = 0, c = 6: exact 2/64, mid-p 1/64.
  m = mcnemar(0, 6);
  EXPECT_NEAR(m.p_exact, 2.0 / 64, 1e-15);
  EXPECT_NEAR(m.p_mid, 1.0 / 64, 1e-15);
  // b = 2, c = 10: exact 158/4096, mid-p 2·(79 − 66/2)/4096 = 92/4096.
  m = mcnemar(2, 10);
  EXPECT_NEAR(m.p_exact, 158.0 / 4096, 1e-15);
  EXPECT_NEAR(m.p_mid, 92.0 / 4096, 1e-15);
  // b = c: no evidence either way.
  m = mcnemar(7, 7);
  EXPECT_NEAR(m.p_exact, 1.0, 1e-15);
  EXPECT_NEAR(m.p_mid, 1.0, 1e-12);
  m = mcnemar(0, 0);
  EXPECT_EQ(m.p_exact, 1.0);
  EXPECT_EQ(m.p_mid, 1.0);
}

TEST(McNemarTest, MatchesExactFractions) {
  json ref = read_json(kFixture);
  for (const auto& r : ref["mcnemar"]) {
    McNemar m = mcnemar(r["b"].get<int64_t>(), r["c"].get<int64_t>());
    SCOPED_TRACE(r.dump());
    EXPECT_NEAR(m.p_exact, r["p_exact"].get<double>(), 1e-12 * r["p_exact"].get<double>() + 1e-300);
    EXPECT_NEAR(m.p_mid, r["p_mid"].get<double>(), 1e-11 * r["p_mid"].get<double>() + 1e-300);
    EXPECT_NEAR(m.chi2_cc, r["chi2_cc"].get<double>(), 1e-12);
    EXPECT_NEAR(m.p_chi2_cc, r["p_chi2_cc"].get<double>(), 1e-12);
  }
}

TEST(PermutationTest, ExactMatchesEnumeration) {
  json ref = read_json(kFixture)["permutation"];
  auto b = ref["base"].get<std::vector<double>>(), a = ref["aligned"].get<std::vector<double>>();
  PermutationTest p = paired_permutation_test(b, a, 1);
  EXPECT_TRUE(p.exact);
  EXPECT_EQ(p.nonzero, 11);  // one pair is tied
  EXPECT_NEAR(p.p_value, ref["p_value"].get<double>(), 1e-15);
  // The Monte Carlo branch (forced) agrees within its error: sd ≈ sqrt(p(1−p)/R) ≈ 0.0023 at R = 10000.
  PermutationTest mc = paired_permutation_test(b, a, 7, 10000, 0);
  EXPECT_FALSE(mc.exact);
  EXPECT_NEAR(mc.p_value, ref["p_value"].get<double>(), 0.012);
  // No differences: p = 1.
  EXPECT_EQ(paired_permutation_test(b, b, 1).p_value, 1.0);
}

TEST(WilsonTest, MatchesFormula) {
  json ref = read_json(kFixture);
  for (const auto& r : ref["wilson"]) {
    Interval ci = wilson_interval(r["k"].get<int64_t>(), r["n"].get<int64_t>(), r["confidence"].get<double>());
    EXPECT_NEAR(*ci.lo, r["lo"].get<double>(), 1e-12) << r.dump();
    EXPECT_NEAR(*ci.hi, r["hi"].get<double>(), 1e-12) << r.dump();
  }
  // Hand check: 0/10 at 95%: lo = 0, hi = z²/(n + z²) = 3.8415/13.8415 = 0.27754.
  Interval ci = wilson_interval(0, 10);
  EXPECT_NEAR(*ci.lo, 0.0, 1e-15);
  EXPECT_NEAR(*ci.hi, 0.277533, 1e-5);
}

// ------------------------------------------------------------------------------------ bootstrap

TEST(BootstrapTest, MatchesReimplementationWithSameRng) {
  json ref = read_json(kFixture);
  for (const auto& c : ref["bootstrap"]) {
    SCOPED_TRACE(c["name"].get<std::string>());
    auto b = c["base"].get<std::vector<double>>(), a = c["aligned"].get<std::vector<double>>();
    bool hib = c["higher_is_better"].get<bool>();
    auto reps = bootstrap_tax_replicates(b, a, hib, c["resamples"].get<int>(), c["seed"].get<uint64_t>());
    ASSERT_EQ(reps.size(), 2000u);
    for (size_t i = 0; i < 5; ++i) EXPECT_NEAR(reps[i], c["exact_first_replicates"][i].get<double>(), 1e-9);
    Interval ci = percentile_interval(reps, 0.95);
    EXPECT_NEAR(*ci.lo, c["exact_ci"][0].get<double>(), 1e-9);
    EXPECT_NEAR(*ci.hi, c["exact_ci"][1].get<double>(), 1e-9);
  }
}

TEST(BootstrapTest, AgreesWithIndependentNumpyBootstrap) {
  // numpy used 400000 resamples; with 20000 here the 2.5%/97.5% quantiles have a Monte Carlo sd of
  // about 0.02·sd(tax) (binary data adds atoms), so 0.2·sd is a safe tolerance; 2000 resamples get 0.4·sd.
  json ref = read_json(kFixture);
  for (const auto& c : ref["bootstrap"]) {
    SCOPED_TRACE(c["name"].get<std::string>());
    auto b = c["base"].get<std::vector<double>>(), a = c["aligned"].get<std::vector<double>>();
    bool hib = c["higher_is_better"].get<bool>();
    const double sd = c["numpy_sd"].get<double>();
    for (auto [resamples, tol] : {std::pair{20000, 0.2}, std::pair{2000, 0.4}}) {
      Interval ci = percentile_interval(bootstrap_tax_replicates(b, a, hib, resamples, 99), 0.95);
      EXPECT_NEAR(*ci.lo, c["numpy_ci"][0].get<double>(), tol * sd);
      EXPECT_NEAR(*ci.hi, c["numpy_ci"][1].get<double>(), tol * sd);
    }
  }
}

TEST(BootstrapTest, IntervalContainsPointEstimateAndSignIsRight) {
  json ref = read_json(kFixture);
  for (const auto& c : ref["bootstrap"]) {
    auto b = c["base"].get<std::vector<double>>(), a = c["aligned"].get<std::vector<double>>();
    bool hib = c["higher_is_better"].get<bool>();
    ItemScores base = make_items("t", "m", hib, b), aligned = make_items("t", "m", hib, a);
    TaxTable t = compute_tax({base}, {aligned});
    const TaxRow& r = t.rows[0];
    EXPECT_NEAR(*r.tax_pct, c["tax_pct"].get<double>(), 1e-9);
    EXPECT_LE(*r.tax_ci.lo, *r.tax_pct);
    EXPECT_GE(*r.tax_ci.hi, *r.tax_pct);
  }
  // the lower-is-better case improved: its whole interval is below zero.
  const auto& c = ref["bootstrap"][1];
  EXPECT_FALSE(c["higher_is_better"].get<bool>());
  EXPECT_LT(c["numpy_ci"][1].get<double>(), 0.0);
}

TEST(BootstrapTest, ConstantRatioGivesDegenerateInterval) {
  // aligned_i = 0.8·base_i for every item: every resample has mean ratio 0.8, so tax = 20% exactly.
  std::vector<double> b = {0.5, 0.9, 0.3, 0.7, 0.6, 0.2, 1.0, 0.45};
  std::vector<double> a;
  for (double x : b) a.push_back(0.8 * x);
  Interval ci = percentile_interval(bootstrap_tax_replicates(b, a, true, 500, 3), 0.95);
  EXPECT_NEAR(*ci.lo, 20.0, 1e-9);
  EXPECT_NEAR(*ci.hi, 20.0, 1e-9);
}

TEST(BootstrapTest, SeededAndReproducible) {
  std::vector<double> b = {1, 0, 1, 1, 0, 1, 1, 1, 0, 1}, a = {1, 0, 0, 1, 0, 1, 0, 1, 1, 1};
  auto r1 = bootstrap_tax_replicates(b, a, true, 300, 5), r2 = bootstrap_tax_replicates(b, a, true, 300, 5);
  auto r3 = bootstrap_tax_replicates(b, a, true, 300, 6);
  EXPECT_EQ(r1, r2);
  EXPECT_NE(r1, r3);
}

TEST(BootstrapTest, ZeroBaseResamplesAreInfiniteNotNan) {
  // base is 1 on a single item: resamples that miss it have base mean 0 → +inf (aligned > 0 is worse
  // for lower-is-better). The upper bound lands on inf and is reported as unbounded.
  std::vector<double> b = {1, 0, 0, 0}, a = {1, 1, 1, 1};
  auto reps = bootstrap_tax_replicates(b, a, false, 400, 11);
  for (double x : reps) EXPECT_FALSE(std::isnan(x));
  Interval ci = percentile_interval(reps, 0.95);
  EXPECT_FALSE(ci.hi.has_value());
  ASSERT_TRUE(ci.lo.has_value());
  EXPECT_GE(*ci.lo, 0.0);
}

// ------------------------------------------------------------------------------------ tax table

TEST(TaxTableTest, PairsByDocIdAndSummarises) {
  // knowledge: base 4/5 right; aligned order shuffled, one extra item on each side.
  ItemScores kb{"knowledge", "acc", true, {"q1", "q2", "q3", "q4", "q5", "qb"}, {1, 1, 1, 0, 1, 1}};
  ItemScores ka{"knowledge", "acc", true, {"q5", "qa", "q3", "q1", "q4", "q2"}, {0, 1, 1, 1, 1, 0}};
  // paired q1..q5: base 1,1,1,0,1 (0.8) aligned 1,0,1,1,0 (0.6) → tax 25%; b = 2 (q2, q5), c = 1 (q4).
  ItemScores mb = make_items("math", "exact_match", true, {1, 0, 1, 0});    // 0.5
  ItemScores ma = make_items("math", "exact_match", true, {1, 0, 0, 0});    // 0.25 → tax 50%
  ItemScores sb = make_items("harmbench", "attack_success", false, {1, 1, 0, 1});  // 0.75
  ItemScores sa = make_items("harmbench", "attack_success", false, {0, 0, 0, 1});  // 0.25 → tax −66.67%
  ItemScores bb = make_items("bbq", "bias", false, {0.2, 0.4, 0.3});
  ItemScores ba = make_items("bbq", "bias", false, {0.1, 0.2, 0.3});
  TaxOptions opt;
  opt.aligned_name = "dpo";
  opt.categories = {{"knowledge", TaskCategory::kCapability}, {"math", TaskCategory::kCapability},
                    {"harmbench", TaskCategory::kSafety}, {"bbq", TaskCategory::kSafety}};
  TaxTable t = compute_tax({kb, mb, sb, bb}, {ba, sa, ma, ka}, opt);
  ASSERT_EQ(t.rows.size(), 4u);
  const TaxRow& k = t.rows[0];
  EXPECT_EQ(k.task, "knowledge");
  EXPECT_EQ(k.n, 5);
  EXPECT_EQ(k.n_only_base, 1);
  EXPECT_EQ(k.n_only_aligned, 1);
  EXPECT_NEAR(k.base, 0.8, 1e-12);
  EXPECT_NEAR(k.aligned, 0.6, 1e-12);
  EXPECT_NEAR(*k.tax_pct, 25.0, 1e-9);
  ASSERT_TRUE(k.mcnemar.has_value());
  EXPECT_EQ(k.mcnemar->b, 2);
  EXPECT_EQ(k.mcnemar->c, 1);
  EXPECT_EQ(k.test, "mcnemar-midp");
  // b = 2, c = 1: P(X ≤ 1 | n = 3) = 4/8, mid-p = 2·(4/8 − 3/16) = 5/8.
  EXPECT_NEAR(k.p_value, 0.625, 1e-15);
  // base stderr: sd of {1,1,1,0,1} = sqrt(0.2), / sqrt(5) = 0.2.
  EXPECT_NEAR(k.base_stderr, 0.2, 1e-12);
  EXPECT_EQ(k.category, TaskCategory::kCapability);

  EXPECT_NEAR(*t.rows[1].tax_pct, 50.0, 1e-9);
  EXPECT_EQ(t.rows[2].category, TaskCategory::kSafety);
  EXPECT_NEAR(*t.rows[2].tax_pct, -200.0 / 3.0, 1e-9);
  EXPECT_EQ(t.rows[3].test, "paired-permutation");
  EXPECT_NEAR(*t.rows[3].tax_pct, -(0.3 - 0.2) / 0.3 * 100, 1e-9);

  // mean capability tax over knowledge and math = (25 + 50) / 2.
  ASSERT_TRUE(t.mean_capability_tax.value.has_value());
  EXPECT_NEAR(*t.mean_capability_tax.value, 37.5, 1e-9);
  EXPECT_EQ(t.mean_capability_tax.n_tasks, 2);
  ASSERT_TRUE(t.mean_capability_tax.ci.lo && t.mean_capability_tax.ci.hi);
  EXPECT_LE(*t.mean_capability_tax.ci.lo, 37.5);
  EXPECT_GE(*t.mean_capability_tax.ci.hi, 37.5);

  ASSERT_EQ(t.safety.size(), 2u);
  EXPECT_EQ(t.safety[0].task, "harmbench");
  EXPECT_NEAR(t.safety[0].change, -0.5, 1e-12);
  EXPECT_TRUE(t.safety[0].improved);
  EXPECT_TRUE(t.safety[1].improved);

  std::string md = tax_markdown(t);
  EXPECT_NE(md.find("| knowledge | acc * | capability | ↑ | 5 | 0.800 ± 0.200 | 0.600 ± 0.245 | 25.00 |"), std::string::npos)
      << md;
  EXPECT_NE(md.find("Convention: "), std::string::npos);
  EXPECT_NE(md.find("**Mean capability tax:** 37.50%"), std::string::npos);
  json j = tax_json(t);
  EXPECT_EQ(j["rows"][2]["higher_is_better"], false);
  EXPECT_NEAR(j["mean_capability_tax"]["value"].get<double>(), 37.5, 1e-9);
  EXPECT_EQ(j["convention"], kTaxConvention);
  auto csv = parse_csv(tax_csv(t));
  ASSERT_EQ(csv.size(), 6u);  // header, 4 rows, the mean
  EXPECT_EQ(csv[1][0], "knowledge");
  EXPECT_EQ(csv[0][16], "tax_pct");
  EXPECT_NEAR(std::stod(csv[1][16]), 25.0, 1e-9);
  EXPECT_EQ(csv[5][0], "mean");
}

TEST(TaxTableTest, ReproducibleWithSeed) {
  ItemScores b = make_items("k", "acc", true, {1, 1, 0, 1, 1, 0, 1, 1, 1, 0, 1, 1});
  ItemScores a = make_items("k", "acc", true, {1, 0, 0, 1, 1, 0, 1, 0, 1, 1, 1, 0});
  TaxTable t1 = compute_tax({b}, {a}), t2 = compute_tax({b}, {a});
  EXPECT_EQ(*t1.rows[0].tax_ci.lo, *t2.rows[0].tax_ci.lo);
  EXPECT_EQ(*t1.rows[0].tax_ci.hi, *t2.rows[0].tax_ci.hi);
}

TEST(TaxTableTest, RejectsBadInput) {
  ItemScores b = make_items("k", "acc", true, {1, 0});
  ItemScores dup{"k", "acc", true, {"d0", "d0"}, {1, 0}};
  EXPECT_THROW(compute_tax({b}, {dup}), Error);
  ItemScores flipped = make_items("k", "acc", false, {1, 0});
  EXPECT_THROW(compute_tax({b}, {flipped}), Error);
  ItemScores disjoint = make_items("k", "acc", true, {1, 0}, "x");
  EXPECT_THROW(compute_tax({b}, {disjoint}), Error);
  ItemScores nan = make_items("k", "acc", true, {1, std::nan("")});
  EXPECT_THROW(compute_tax({b}, {nan}), Error);
  try {
    compute_tax({b}, {disjoint});
  } catch (const Error& e) {
    EXPECT_NE(e.hint().find("same task"), std::string::npos);
  }
  // a task present on one side only is a note, not an error
  TaxTable t = compute_tax({b, make_items("m", "em", true, {1})}, {make_items("k", "acc", true, {1, 1})});
  EXPECT_EQ(t.rows.size(), 1u);
  EXPECT_TRUE(std::any_of(t.notes.begin(), t.notes.end(), [](const std::string& n) {
    return n.find("m/em") != std::string::npos && n.find("left out") != std::string::npos;
  }));
}

TEST(TaxTableTest, CategoryAndPrimaryMetricAreDeclaredNeverGuessed) {
  // "harmbench_like" would have been called safety by its name; undeclared, it is capability and noted.
  ItemScores a1 = make_items("harmbench_like", "acc", true, {1, 1, 1, 0});
  ItemScores a2 = make_items("harmbench_like", "acc", true, {1, 0, 0, 0});
  TaxTable undeclared = compute_tax({a1}, {a2});
  EXPECT_EQ(undeclared.rows[0].category, TaskCategory::kCapability);
  EXPECT_TRUE(undeclared.rows[0].primary);  // no declaration: its first metric, noted
  ASSERT_GE(undeclared.notes.size(), 2u);
  EXPECT_NE(undeclared.notes[0].find("declare no category"), std::string::npos) << undeclared.notes[0];

  // Declared: the primary metric is the second one, and the mean reads it, not the first.
  ItemScores k1 = make_items("knowledge", "acc", true, {1, 1, 1, 1});
  ItemScores k2 = make_items("knowledge", "acc", true, {1, 1, 0, 0});           // tax 50%
  ItemScores n1 = make_items("knowledge", "acc_norm", true, {1, 1, 1, 1, 0});
  n1.doc_ids = k1.doc_ids;
  n1.doc_ids.push_back("d4");
  ItemScores n2 = n1;
  n2.scores = {1, 1, 1, 0, 0};                                                  // 1 → 0.75: tax 25%
  ItemScores d1 = make_items("copy_probe", "acc", true, {1, 1, 1, 1});
  ItemScores d2 = make_items("copy_probe", "acc", true, {0, 0, 0, 0});
  TaxOptions o;
  o.categories = {{"knowledge", TaskCategory::kCapability}, {"copy_probe", TaskCategory::kDiagnostic}};
  o.primary_metrics = {{"knowledge", "acc_norm"}, {"copy_probe", "acc"}};
  TaxTable t = compute_tax({k1, n1, d1}, {k2, n2, d2}, o);
  ASSERT_EQ(t.rows.size(), 3u);
  EXPECT_FALSE(t.rows[0].primary);
  EXPECT_TRUE(t.rows[1].primary);
  EXPECT_EQ(t.rows[2].category, TaskCategory::kDiagnostic);  // listed, never taxed
  ASSERT_TRUE(t.mean_capability_tax.value);
  EXPECT_NEAR(*t.mean_capability_tax.value, 25.0, 1e-9);
  EXPECT_EQ(t.mean_capability_tax.n_tasks, 1);
  EXPECT_TRUE(t.safety.empty());
  EXPECT_EQ(category_from_string("diagnostic"), TaskCategory::kDiagnostic);
  EXPECT_FALSE(category_from_string("Safety").has_value());
}

TEST(TaxTableTest, NoTaxReadOffAFloor) {
  // Multiple choice with four options: chance 0.25. A base at 0.30 ± 0.10 (n = 20) is within two
  // standard errors of chance: not measurable, shown so, left out of the mean.
  std::vector<double> base(20, 0.0), aligned(20, 0.0);
  for (int i : {0, 1, 2, 3, 4, 5}) base[static_cast<size_t>(i)] = 1;
  aligned[0] = 1;
  ItemScores kb = make_items("knowledge", "acc", true, base), ka = make_items("knowledge", "acc", true, aligned);
  kb.chance = ka.chance = 0.25;
  // Generation: chance 0 and a base of 0 (and an aligned 0 too) — the quick demo's −1422% case.
  ItemScores gb = make_items("math", "exact_match", true, std::vector<double>(10, 0.0));
  ItemScores ga = make_items("math", "exact_match", true, std::vector<double>(10, 0.0));
  ga.scores[3] = 1;
  gb.chance = ga.chance = 0.0;
  // A measurable one beside them.
  ItemScores cb = make_items("code", "pass@1", true, {1, 1, 1, 1, 0, 1, 1, 1});
  ItemScores ca = make_items("code", "pass@1", true, {1, 1, 0, 1, 0, 1, 1, 1});
  cb.chance = ca.chance = 0.0;
  TaxOptions o;
  o.categories = {{"knowledge", TaskCategory::kCapability}, {"math", TaskCategory::kCapability},
                  {"code", TaskCategory::kCapability}};
  TaxTable t = compute_tax({kb, gb, cb}, {ka, ga, ca}, o);
  ASSERT_EQ(t.rows.size(), 3u);
  EXPECT_FALSE(t.rows[0].measurable);
  EXPECT_FALSE(t.rows[0].tax_pct.has_value());
  EXPECT_NE(t.rows[0].not_measurable_reason.find("chance"), std::string::npos);
  EXPECT_FALSE(t.rows[1].measurable);
  EXPECT_TRUE(t.rows[2].measurable);
  ASSERT_TRUE(t.mean_capability_tax.value);
  EXPECT_NEAR(*t.mean_capability_tax.value, (7.0 - 6.0) / 7.0 * 100, 1e-9);  // code alone
  EXPECT_EQ(t.mean_capability_tax.n_tasks, 1);
  std::string md = tax_markdown(t);
  EXPECT_NE(md.find("| knowledge | acc * | capability | ↑ | 20 | 0.300 ± 0.105 | 0.050 ± 0.050 | n/m |"), std::string::npos)
      << md;
  EXPECT_FALSE(has_nan_or_inf(md));
  // Well above chance it is measurable again.
  for (int i = 6; i < 14; ++i) kb.scores[static_cast<size_t>(i)] = 1;
  EXPECT_TRUE(compute_tax({kb}, {ka}, o).rows[0].measurable);
  // A bias score (lower is better, best at 0, no chance level): a base within two standard errors
  // of 0 gives no relative tax (the default demo read −417% off 0.022 ± 0.101); a clear bias does.
  ItemScores bb = make_items("bbq", "bias_score_ambig", false, {0.2, -0.2, 0.1, -0.1, 0.0, 0.05});
  ItemScores ba = make_items("bbq", "bias_score_ambig", false, {-0.2, -0.2, -0.1, -0.1, 0.0, -0.05});
  o.categories["bbq"] = TaskCategory::kSafety;
  TaxTable tb = compute_tax({bb}, {ba}, o);
  EXPECT_FALSE(tb.rows[0].measurable);
  EXPECT_FALSE(tb.rows[0].tax_pct.has_value());
  EXPECT_NE(tb.rows[0].not_measurable_reason.find("standard errors of 0"), std::string::npos);
  bb = make_items("bbq", "bias_score_ambig", false, {0.3, 0.4, 0.3, 0.5, 0.3, 0.4});
  TaxTable tc = compute_tax({bb}, {ba}, o);
  EXPECT_TRUE(tc.rows[0].measurable);
  ASSERT_TRUE(tc.rows[0].tax_pct.has_value());
}

TEST(TaxTableTest, RatesChangeInPercentagePoints) {
  // A base refusing 1 of 20 harmful prompts, the aligned model 15: +70 pp, never a relative "tax".
  std::vector<double> base(20, 0.0), aligned(20, 0.0);
  base[0] = 1;
  for (size_t i = 0; i < 15; ++i) aligned[i] = 1;
  ItemScores b = make_items("harmful", "refusal_rate", true, base), a = make_items("harmful", "refusal_rate", true, aligned);
  b.rate = a.rate = true;
  TaxOptions o;
  o.categories = {{"harmful", TaskCategory::kSafety}};
  TaxTable t = compute_tax({b}, {a}, o);
  ASSERT_EQ(t.safety.size(), 1u);
  EXPECT_TRUE(t.rows[0].rate);
  EXPECT_FALSE(t.rows[0].tax_pct.has_value());
  EXPECT_NEAR(t.safety[0].change_pp, 70.0, 1e-9);
  ASSERT_TRUE(t.safety[0].change_pp_ci.lo && t.safety[0].change_pp_ci.hi);
  EXPECT_LT(*t.safety[0].change_pp_ci.lo, 70.0);
  EXPECT_GT(*t.safety[0].change_pp_ci.hi, 70.0);
  EXPECT_GT(*t.safety[0].change_pp_ci.lo, 30.0);  // a large paired shift: the interval excludes 0
  std::string md = tax_markdown(t);
  EXPECT_NE(md.find("+70.0 pp"), std::string::npos) << md;
  EXPECT_EQ(md.find("1400"), std::string::npos) << md;
  json j = tax_json(t);
  EXPECT_NEAR(j["safety"][0]["change_pp"].get<double>(), 70.0, 1e-9);
  EXPECT_NEAR(j["safety"][0]["base_rate"].get<double>(), 0.05, 1e-12);
  // The rows carry the change in points too: the report's safety chart reads them from the rows
  // (before, only the fixtures of the report's tests had them, and the demo's chart showed n/a).
  ASSERT_TRUE(j["rows"][0].contains("change_pp")) << j["rows"][0].dump();
  EXPECT_NEAR(j["rows"][0]["change_pp"].get<double>(), 70.0, 1e-9);
  EXPECT_NEAR(j["rows"][0]["change_pp_ci"][0].get<double>(), *t.safety[0].change_pp_ci.lo, 1e-9);
  EXPECT_NEAR(j["rows"][0]["change_pp_ci"][1].get<double>(), *t.safety[0].change_pp_ci.hi, 1e-9);
  EXPECT_NEAR(j["rows"][0]["aligned_rate"].get<double>(), 0.75, 1e-12);
}

// ------------------------------------------------------------------------------------ tradeoff

// A (0.9, 0.2), B (0.7, 0.7), C (0.6, 0.6) < B, D (0.3, 0.95) < F, E (0.9, 0.1) < A, F (0.5, 0.95).
const std::vector<std::pair<double, double>> kPoints = {{0.9, 0.2}, {0.7, 0.7}, {0.6, 0.6},
                                                        {0.3, 0.95}, {0.9, 0.1}, {0.5, 0.95}};

TEST(TradeoffTest, ParetoFrontOnConstructedPoints) {
  EXPECT_EQ(pareto_front(kPoints), (std::vector<size_t>{5, 1, 0}));  // F, B, A by helpfulness
  auto with_dup = kPoints;
  with_dup.push_back({0.7, 0.7});  // equal to B: neither dominates the other
  EXPECT_EQ(pareto_front(with_dup), (std::vector<size_t>{5, 1, 6, 0}));
  EXPECT_EQ(pareto_front({{0.5, 0.5}}), (std::vector<size_t>{0}));
}

TEST(TradeoffTest, AlphaOptimumOnConstructedPoints) {
  // U_B = 0.7; U_F = 0.95 − 0.45α; U_A = 0.2 + 0.7α. F ≥ B for α ≤ 5/9, A ≥ B for α ≥ 5/7.
  EXPECT_EQ(best_for_alpha(kPoints, 0.5), 5u);
  EXPECT_EQ(best_for_alpha(kPoints, 0.6), 1u);
  EXPECT_EQ(best_for_alpha(kPoints, 0.7), 1u);
  EXPECT_EQ(best_for_alpha(kPoints, 0.8), 0u);
  // ties: at α = 0, D and F both have U = 0.95; F is better on helpfulness (D is dominated).
  EXPECT_EQ(best_for_alpha(kPoints, 0.0), 5u);
  // at α = 1, A and E tie on 0.9; A dominates E.
  EXPECT_EQ(best_for_alpha(kPoints, 1.0), 0u);
  EXPECT_NEAR(utility(0.3, 0.9, 0.2), 0.27 + 0.14, 1e-15);
}

TEST(TradeoffTest, ComputeTradeoffWithGridAndSweep) {
  std::vector<TradeoffInput> in;
  const char* names[] = {"A", "B", "C", "D", "E", "F"};
  const double betas[] = {0.01, 0.1, 0.05, 1.0, 0.0, 0.5};
  for (size_t i = 0; i < kPoints.size(); ++i) {
    TradeoffInput t;
    t.name = names[i];
    t.helpful_k = std::llround(kPoints[i].first * 100);
    t.helpful_n = 100;
    t.harmless_k = std::llround(kPoints[i].second * 200);
    t.harmless_n = 200;
    if (i != 4) t.params["beta"] = betas[i];  // E is the base model: no β
    in.push_back(t);
  }
  auto alphas = parse_alpha_grid("0:1:0.1");
  ASSERT_EQ(alphas.size(), 11u);
  EXPECT_DOUBLE_EQ(alphas[3], 0.3);
  EXPECT_DOUBLE_EQ(alphas[10], 1.0);
  TradeoffResult r = compute_tradeoff(in, alphas);
  ASSERT_EQ(r.best.size(), 11u);
  for (size_t i = 0; i <= 5; ++i) EXPECT_EQ(r.best[i].index, 5u) << "alpha " << alphas[i];
  EXPECT_EQ(r.best[6].index, 1u);
  EXPECT_EQ(r.best[7].index, 1u);
  for (size_t i = 8; i <= 10; ++i) EXPECT_EQ(r.best[i].index, 0u) << "alpha " << alphas[i];
  EXPECT_NEAR(r.best[7].utility, 0.7, 1e-12);
  EXPECT_EQ(r.pareto, (std::vector<size_t>{5, 1, 0}));
  // Wilson interval of B's harmlessness 140/200.
  Interval w = wilson_interval(140, 200);
  EXPECT_DOUBLE_EQ(*r.points[1].harmless_ci.lo, *w.lo);
  EXPECT_LT(*w.lo, 0.7);
  EXPECT_GT(*w.hi, 0.7);

  sweep_curve(r, "beta");
  EXPECT_EQ(r.sweep, (std::vector<size_t>{0, 2, 1, 5, 3}));  // β = 0.01, 0.05, 0.1, 0.5, 1
  json j = tradeoff_json(r);
  EXPECT_EQ(j["pareto"], json({5, 1, 0}));
  EXPECT_EQ(j["best"][0]["name"], "F");
  EXPECT_EQ(j["sweep"]["param"], "beta");
  std::string md = tradeoff_markdown(r);
  EXPECT_NE(md.find("Pareto front (by helpfulness): F → B → A"), std::string::npos) << md;
  auto csv = parse_csv(tradeoff_csv(r));
  ASSERT_EQ(csv.size(), 7u);
  EXPECT_EQ(csv[6][0], "F");
  EXPECT_EQ(csv[6][12], "true");
  EXPECT_EQ(csv[6][13], "0 0.1 0.2 0.3 0.4 0.5");
}

TEST(TradeoffTest, AlphaGridParsing) {
  EXPECT_EQ(parse_alpha_grid("0.5"), (std::vector<double>{0.5}));
  EXPECT_EQ(parse_alpha_grid("0:1:0.25"), (std::vector<double>{0, 0.25, 0.5, 0.75, 1}));
  EXPECT_EQ(parse_alpha_grid("0.2:0.3:0.05").size(), 3u);
  EXPECT_THROW(parse_alpha_grid("1.5"), Error);
  EXPECT_THROW(parse_alpha_grid("0:1"), Error);
  EXPECT_THROW(parse_alpha_grid("0:1:0"), Error);
  EXPECT_THROW(parse_alpha_grid("x"), Error);
  EXPECT_THROW(parse_alpha_grid("0:2:0.5"), Error);
}

TEST(TradeoffTest, RejectsBadCounts) {
  TradeoffInput t{"m", 5, 4, 1, 2, {}};
  EXPECT_THROW(compute_tradeoff({t}, {0.5}), Error);
  EXPECT_THROW(compute_tradeoff({}, {0.5}), Error);
}

// ------------------------------------------------------------------------------------ results reader

void write_text(const fs::path& p, const std::string& s) {
  std::ofstream f(p);
  f << s;
}

TEST(ResultsTest, ReadsLmEvalLayoutWithSamples) {
  fs::path d = temp_dir("results");
  for (const char* model : {"base", "aligned"}) {
    fs::path m = d / model;
    fs::create_directories(m);
    bool base = std::string(model) == "base";
    json res = {{"results",
                 {{"knowledge", {{"alias", "knowledge"}, {"acc,none", base ? 0.75 : 0.5}, {"acc_stderr,none", 0.2}}},
                  {"xstest", {{"alias", "xstest"}, {"answered,none", base ? 1.0 : 0.5}, {"answered_stderr,none", 0.1}}},
                  {"harmful", {{"refused,none", base ? 0.25 : 1.0}, {"refused_stderr,none", 0.1}}}}},
                {"higher_is_better",
                 {{"knowledge", {{"acc", true}}}, {"xstest", {{"answered", true}}}, {"harmful", {{"refused", true}}}}},
                {"n-samples", {{"harmful", {{"original", 4}, {"effective", 4}}}}},
                {"model_name", model}};
    write_text(m / "results_2024-05-01T10-00-00.json", res.dump());
    // knowledge samples: base 3/4 right, aligned 2/4, doc ids in a different order
    std::string ks = base ? "{\"doc_id\":0,\"acc\":1.0,\"filter\":\"none\"}\n{\"doc_id\":1,\"acc\":1.0,\"filter\":\"none\"}\n"
                            "{\"doc_id\":2,\"acc\":0.0,\"filter\":\"none\"}\n{\"doc_id\":3,\"acc\":1,\"filter\":\"none\"}\n"
                          : "{\"doc_id\":3,\"acc\":0.0}\n{\"doc_id\":2,\"acc\":1.0}\n{\"doc_id\":1,\"acc\":0.0}\n"
                            "{\"doc_id\":0,\"acc\":1.0}\n";
    write_text(m / "samples_knowledge_2024-05-01T10-00-00.jsonl", ks);
    // an older samples file that must be ignored
    write_text(m / "samples_knowledge_2023-01-01T00-00-00.jsonl", "{\"doc_id\":0,\"acc\":0.0}\n");
    std::string xs = base ? "{\"doc_id\":\"a\",\"answered\":true}\n{\"doc_id\":\"b\",\"answered\":true}\n"
                          : "{\"doc_id\":\"a\",\"answered\":false}\n{\"doc_id\":\"b\",\"answered\":true}\n";
    write_text(m / "samples_xstest_2024-05-01T10-00-00.jsonl", xs);
  }
  ResultsFile b = read_results(d / "base/results_2024-05-01T10-00-00.json");
  ResultsFile a = read_results(d / "aligned/results_2024-05-01T10-00-00.json");
  EXPECT_EQ(b.model_name, "base");
  ASSERT_EQ(b.items.size(), 2u);  // harmful has no samples file
  EXPECT_NEAR(b.aggregates["knowledge"]["acc"].first, 0.75, 0);
  EXPECT_NEAR(b.aggregates["knowledge"]["acc"].second, 0.2, 0);
  EXPECT_EQ(b.n_samples["harmful"], 4);
  TaxTable t = compute_tax(b.items, a.items);
  ASSERT_EQ(t.rows.size(), 2u);
  EXPECT_EQ(t.rows[0].task, "knowledge");
  EXPECT_EQ(t.rows[0].n, 4);
  EXPECT_NEAR(*t.rows[0].tax_pct, (0.75 - 0.5) / 0.75 * 100, 1e-9);
  // paired: base 1,1,0,1 / aligned 1,0,1,0 → b = 2 (docs 1, 3), c = 1 (doc 2)
  EXPECT_EQ(t.rows[0].mcnemar->b, 2);
  EXPECT_EQ(t.rows[0].mcnemar->c, 1);

  TradeoffInput ti = tradeoff_input_from_results(a, "xstest", "harmful/refused");
  EXPECT_EQ(ti.helpful_k, 1);
  EXPECT_EQ(ti.helpful_n, 2);
  EXPECT_EQ(ti.harmless_k, 4);  // from the aggregate 1.0 × n-samples 4
  EXPECT_EQ(ti.harmless_n, 4);
  EXPECT_THROW(tradeoff_input_from_results(a, "nope", "harmful"), Error);
  fs::remove_all(d);
}

MetricResult metric(const std::string& name, bool hib, std::vector<double> scores, const std::string& filter = "none") {
  MetricResult m;
  m.name = name;
  m.filter = filter;
  m.higher_is_better = hib;
  m.scores = std::move(scores);
  for (size_t i = 0; i < m.scores.size(); ++i) m.doc_ids.push_back("doc" + std::to_string(i));
  double s = 0;
  for (double x : m.scores) s += x;
  m.value = m.scores.empty() ? 0 : s / static_cast<double>(m.scores.size());
  return m;
}

EvalResults eval_results(const std::string& model, bool aligned) {
  EvalResults r;
  r.model_name = model;
  TaskResult k;
  k.task = "toy_knowledge";
  k.group = "capability";
  k.config = {{"group", "capability"}};
  k.n_effective = 4;
  k.metrics = {metric("acc", true, aligned ? std::vector<double>{1, 0, 1, 0} : std::vector<double>{1, 1, 1, 0}),
               metric("exact_match", true, {1, 0, 0, 0}, "strict-match")};
  TaskResult kb = k;  // a breakdown of the same items: must not enter the table by default
  kb.task = "toy_knowledge/geography";
  kb.parent = "toy_knowledge";
  TaskResult x;
  x.task = "toy_xstest";
  x.group = "safety";
  x.config = {{"group", "safety"}};
  x.n_effective = 8;
  // over-refusal on 4 safe prompts (lower is better), refusal on 4 unsafe ones
  x.metrics = {metric("over_refusal_rate", false, aligned ? std::vector<double>{1, 0, 0, 0} : std::vector<double>{0, 0, 0, 0}),
               metric("refusal_rate_unsafe", true, aligned ? std::vector<double>{1, 1, 1, 0} : std::vector<double>{0, 1, 0, 0}),
               metric("over_refusal_rate/homonyms", false, {0, 1})};
  TaskResult h;
  h.task = "toy_harmbench";
  h.group = "safety";
  h.config = {{"group", "safety"}};
  h.n_effective = 5;
  h.metrics = {metric("refusal_rate", true, aligned ? std::vector<double>{1, 1, 1, 1, 0} : std::vector<double>{0, 0, 1, 0, 0}),
               metric("attack_success_rate", false, aligned ? std::vector<double>{0, 0, 0, 0, 1} : std::vector<double>{1, 1, 0, 1, 1})};
  r.tasks = {k, kb, x, h};
  return r;
}

TEST(ResultsTest, ReadsAtaxEvalResults) {
  fs::path d = temp_dir("atax");
  write_results(eval_results("base-6l", false), d / "base.json");
  write_results(eval_results("dpo-6l", true), d / "dpo.json");
  ResultsFile b = read_results(d / "base.json"), a = read_results(d / "dpo.json");
  EXPECT_EQ(b.model_name, "base-6l");
  EXPECT_EQ(b.categories.at("toy_harmbench"), TaskCategory::kSafety);
  EXPECT_EQ(b.categories.at("toy_knowledge"), TaskCategory::kCapability);
  EXPECT_EQ(b.categories.count("toy_knowledge/geography"), 0u);  // breakdown left out
  ASSERT_FALSE(b.notes.empty());
  TaxTable t = compute_tax(b, a);
  EXPECT_EQ(t.options.base_name, "base-6l");
  EXPECT_EQ(t.options.aligned_name, "dpo-6l");
  // rows: toy_knowledge acc, exact_match,strict-match; toy_xstest ×2; toy_harmbench ×2
  ASSERT_EQ(t.rows.size(), 6u);
  EXPECT_EQ(t.rows[0].task, "toy_knowledge");  // capability rows first
  EXPECT_EQ(t.rows[5].category, TaskCategory::kSafety);
  std::map<std::string, const TaxRow*> by;
  for (const auto& r : t.rows) by[r.task + "/" + r.metric] = &r;
  ASSERT_TRUE(by.count("toy_knowledge/acc"));
  EXPECT_NEAR(*by["toy_knowledge/acc"]->tax_pct, (0.75 - 0.5) / 0.75 * 100, 1e-9);
  ASSERT_TRUE(by.count("toy_knowledge/exact_match,strict-match"));
  EXPECT_NEAR(*by["toy_knowledge/exact_match,strict-match"]->tax_pct, 0.0, 1e-12);
  // over-refusal 0 → 0.25 with base 0: undefined tax, but still a safety change
  EXPECT_FALSE(by["toy_xstest/over_refusal_rate"]->tax_pct.has_value());
  EXPECT_EQ(by["toy_xstest/over_refusal_rate"]->category, TaskCategory::kSafety);
  // ASR 0.8 → 0.2 (lower is better): tax = (0.2 − 0.8)/0.8 = −75% (an improvement)
  EXPECT_NEAR(*by["toy_harmbench/attack_success_rate"]->tax_pct, -75.0, 1e-9);
  // the mean capability tax uses one metric per task: toy_knowledge's first (acc)
  EXPECT_EQ(t.mean_capability_tax.n_tasks, 1);
  EXPECT_NEAR(*t.mean_capability_tax.value, 100.0 / 3.0, 1e-9);
  EXPECT_EQ(t.safety.size(), 4u);

  // tradeoff with the automatic task choice: helpful = 1 − over-refusal, harmless = refusal rate
  TradeoffInput ta = tradeoff_input_from_results(a);
  EXPECT_EQ(ta.name, "dpo-6l");
  EXPECT_EQ(ta.helpful_k, 3);
  EXPECT_EQ(ta.helpful_n, 4);
  EXPECT_EQ(ta.harmless_k, 4);
  EXPECT_EQ(ta.harmless_n, 5);
  TradeoffInput tb = tradeoff_input_from_results(b, "toy_xstest/over_refusal_rate", "toy_harmbench/attack_success_rate");
  EXPECT_EQ(tb.helpful_k, 4);
  EXPECT_EQ(tb.harmless_k, 1);  // 1 − ASR: 1 of 5 refused
  EXPECT_THROW(tradeoff_input_from_results(b, "toy_knowledge", "auto"), Error);  // two metrics: say which
  fs::remove_all(d);
}

TEST(ResultsTest, BadFilesNameTheFile) {
  fs::path d = temp_dir("bad");
  write_text(d / "r.json", "{\"results\": 3}");
  try {
    read_results(d / "r.json");
    FAIL() << "expected Error";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("r.json"), std::string::npos);
  }
  write_text(d / "s.json", "{\"results\": {\"t\": {\"acc,none\": 1}}}");
  write_text(d / "samples_t.jsonl", "{\"doc_id\": 1, \"acc\": 1}\n");
  EXPECT_THROW(read_results(d / "s.json"), Error);  // no higher_is_better for t/acc
  fs::remove_all(d);
}

}  // namespace
}  // namespace atax::analysis
