// Statistics for the tax table and the tradeoff: quantiles, the normal quantile, the exact
// binomial tail, McNemar, the paired permutation test, Wilson intervals and the paired bootstrap.
#include <algorithm>
#include <cmath>
#include <limits>

#include "analysis/analysis.h"

namespace atax::analysis {

std::optional<double> tax_percent(double base, double aligned, bool higher_is_better) {
  if (base == 0) {
    if (aligned == 0) return 0.0;
    return std::nullopt;
  }
  double worse = higher_is_better ? base - aligned : aligned - base;
  return worse / std::fabs(base) * 100.0;
}

double quantile_sorted(const std::vector<double>& sorted, double q) {
  const size_t n = sorted.size();
  if (n == 1) return sorted[0];
  double h = q * static_cast<double>(n - 1);
  size_t i = static_cast<size_t>(std::floor(h));
  if (i >= n - 1) return sorted[n - 1];
  double frac = h - static_cast<double>(i);
  double a = sorted[i], b = sorted[i + 1];
  if (frac == 0) return a;
  if (!std::isfinite(a) || !std::isfinite(b)) return std::isfinite(a) ? b : a;  // towards the infinite end
  return a + (b - a) * frac;
}

double normal_quantile(double p) {
  // Wichura, M. J. (1988) Algorithm AS 241: PPND16.
  const double q = p - 0.5;
  if (std::fabs(q) <= 0.425) {
    const double r = 0.180625 - q * q;
    return q *
           (((((((2.5090809287301226727e+3 * r + 3.3430575583588128105e+4) * r + 6.7265770927008700853e+4) * r +
                4.5921953931549871457e+4) * r + 1.3731693765509461125e+4) * r + 1.9715909503065514427e+3) * r +
             1.3314166789178437745e+2) * r + 3.3871328727963666080e0) /
           (((((((5.2264952788528545610e+3 * r + 2.8729085735721942674e+4) * r + 3.9307895800092710610e+4) * r +
                2.1213794301586595867e+4) * r + 5.3941960214247511077e+3) * r + 6.8718700749205790830e+2) * r +
             4.2313330701600911252e+1) * r + 1.0);
  }
  double r = q < 0 ? p : 1.0 - p;
  if (r <= 0) return q < 0 ? -std::numeric_limits<double>::infinity() : std::numeric_limits<double>::infinity();
  r = std::sqrt(-std::log(r));
  double val;
  if (r <= 5.0) {
    r -= 1.6;
    val = (((((((7.74545014278341407640e-4 * r + 2.27238449892691845833e-2) * r + 2.41780725177450611770e-1) * r +
               1.27045825245236838258e0) * r + 3.64784832476320460504e0) * r + 5.76949722146069140550e0) * r +
            4.63033784615654529590e0) * r + 1.42343711074968357734e0) /
          (((((((1.05075007164441684324e-9 * r + 5.47593808499534494600e-4) * r + 1.51986665636164571966e-2) * r +
               1.48103976427480074590e-1) * r + 6.89767334985100004550e-1) * r + 1.67638483018380384940e0) * r +
            2.05319162663775882187e0) * r + 1.0);
  } else {
    r -= 5.0;
    val = (((((((2.01033439929228813265e-7 * r + 2.71155556874348757815e-5) * r + 1.24266094738807843860e-3) * r +
               2.65321895265761230930e-2) * r + 2.96560571828504891230e-1) * r + 1.78482653991729133580e0) * r +
            5.46378491116411436990e0) * r + 6.65790464350110377720e0) /
          (((((((2.04426310338993978564e-15 * r + 1.42151175831644588870e-7) * r + 1.84631831751005468180e-5) * r +
               7.86869131145613259100e-4) * r + 1.48753612908506148525e-2) * r + 1.36929880922735805310e-1) * r +
            5.99832206555887937690e-1) * r + 1.0);
  }
  return q < 0 ? -val : val;
}

namespace {

// log P(X = i) for X ~ Bin(n, 1/2), i = 0..k, by the ratio recursion (no lgamma cancellation).
std::vector<double> log_binomial_half_pmf(int64_t k, int64_t n) {
  std::vector<double> out(static_cast<size_t>(k + 1));
  double lp = -static_cast<double>(n) * std::log(2.0);
  for (int64_t i = 0; i <= k; ++i) {
    out[static_cast<size_t>(i)] = lp;
    lp += std::log(static_cast<double>(n - i)) - std::log(static_cast<double>(i + 1));
  }
  return out;
}

double log_sum_exp(const std::vector<double>& v) {
  double m = *std::max_element(v.begin(), v.end());
  double s = 0;
  for (double x : v) s += std::exp(x - m);
  return m + std::log(s);
}

}  // namespace

namespace {

// P(X ≤ k) for k < n/2: in linear space while 2^-n is a normal double (exact to a few ulps), in
// log space beyond.
double lower_tail(int64_t k, int64_t n) {
  if (n <= 1000) {
    double p = std::ldexp(1.0, static_cast<int>(-n)), s = 0;
    for (int64_t i = 0; i <= k; ++i) {
      s += p;
      p = p * static_cast<double>(n - i) / static_cast<double>(i + 1);
    }
    return s;
  }
  return std::exp(log_sum_exp(log_binomial_half_pmf(k, n)));
}

double pmf_at(int64_t k, int64_t n) {
  if (n <= 1000) {
    double p = std::ldexp(1.0, static_cast<int>(-n));
    for (int64_t i = 0; i < k; ++i) p = p * static_cast<double>(n - i) / static_cast<double>(i + 1);
    return p;
  }
  return std::exp(log_binomial_half_pmf(k, n).back());
}

}  // namespace

double binomial_half_cdf(int64_t k, int64_t n) {
  if (k < 0) return 0;
  if (k >= n) return 1;
  // Sum the shorter tail for accuracy; P(X ≤ k) = 1 − P(X ≤ n − k − 1) by symmetry.
  if (2 * k < n) return lower_tail(k, n);
  return 1.0 - lower_tail(n - k - 1, n);
}

McNemar mcnemar(int64_t b, int64_t c) {
  McNemar m;
  m.b = b;
  m.c = c;
  const int64_t n = b + c;
  if (n == 0) return m;
  const int64_t k = std::min(b, c);
  const double cdf = binomial_half_cdf(k, n);
  const double pmf_k = pmf_at(k, n);
  m.p_exact = std::min(1.0, 2.0 * cdf);
  m.p_mid = std::min(1.0, 2.0 * (cdf - 0.5 * pmf_k));
  const double diff = std::max(0.0, std::fabs(static_cast<double>(b - c)) - 1.0);
  m.chi2_cc = diff * diff / static_cast<double>(n);
  m.p_chi2_cc = std::erfc(std::sqrt(m.chi2_cc / 2.0));  // χ²(1) upper tail
  return m;
}

PermutationTest paired_permutation_test(const std::vector<double>& base, const std::vector<double>& aligned,
                                        uint64_t seed, int resamples, int exact_max) {
  PermutationTest out;
  std::vector<double> d;
  double scale = 0;
  for (size_t i = 0; i < base.size(); ++i) {
    double x = aligned[i] - base[i];
    if (x != 0) {
      d.push_back(x);
      scale += std::fabs(x);
    }
  }
  out.nonzero = static_cast<int64_t>(d.size());
  if (d.empty()) return out;
  double t_obs = 0;
  for (double x : d) t_obs += x;
  t_obs = std::fabs(t_obs);
  const double eps = 1e-9 * scale;  // ties in floating point count as "as extreme"
  const size_t m = d.size();
  if (static_cast<int>(m) <= exact_max) {
    // Gray-code walk over all sign patterns: one sign flips per step.
    double t = 0;
    for (double x : d) t += x;
    std::vector<int> sign(m, 1);
    uint64_t extreme = 0;
    const uint64_t total = uint64_t{1} << m;
    for (uint64_t g = 0; g < total; ++g) {
      if (g > 0) {
        size_t bit = static_cast<size_t>(__builtin_ctzll(g));
        t -= 2.0 * sign[bit] * d[bit];
        sign[bit] = -sign[bit];
      }
      if (std::fabs(t) >= t_obs - eps) ++extreme;
    }
    out.exact = true;
    out.p_value = static_cast<double>(extreme) / static_cast<double>(total);
    return out;
  }
  Rng rng(seed);
  int64_t extreme = 0;
  for (int r = 0; r < resamples; ++r) {
    double t = 0;
    for (double x : d) t += (rng.next_u64() >> 63) ? x : -x;
    if (std::fabs(t) >= t_obs - eps) ++extreme;
  }
  out.exact = false;
  out.p_value = static_cast<double>(1 + extreme) / static_cast<double>(resamples + 1);
  return out;
}

Interval wilson_interval(int64_t k, int64_t n, double confidence) {
  if (n <= 0) return {0.0, 1.0};
  const double z = normal_quantile(1.0 - (1.0 - confidence) / 2.0);
  const double nn = static_cast<double>(n);
  const double p = static_cast<double>(k) / nn;
  const double z2 = z * z;
  const double denom = 1.0 + z2 / nn;
  const double centre = (p + z2 / (2.0 * nn)) / denom;
  const double half = z / denom * std::sqrt(p * (1.0 - p) / nn + z2 / (4.0 * nn * nn));
  return {std::max(0.0, centre - half), std::min(1.0, centre + half)};
}

std::vector<double> bootstrap_tax_replicates(const std::vector<double>& base, const std::vector<double>& aligned,
                                             bool higher_is_better, int resamples, uint64_t seed,
                                             std::vector<double>* delta_replicates) {
  const size_t n = base.size();
  std::vector<double> reps;
  if (delta_replicates) delta_replicates->clear();
  if (n == 0) return reps;
  reps.reserve(static_cast<size_t>(std::max(resamples, 0)));
  Rng rng(seed);
  const double inf = std::numeric_limits<double>::infinity();
  for (int r = 0; r < resamples; ++r) {
    double sb = 0, sa = 0;
    for (size_t i = 0; i < n; ++i) {
      size_t j = static_cast<size_t>(rng.uniform(n));
      sb += base[j];
      sa += aligned[j];
    }
    const double mb = sb / static_cast<double>(n), ma = sa / static_cast<double>(n);
    if (delta_replicates) delta_replicates->push_back(ma - mb);
    auto t = tax_percent(mb, ma, higher_is_better);
    if (t) {
      reps.push_back(*t);
    } else {
      const double worse = higher_is_better ? -ma : ma;  // base mean is 0 here
      reps.push_back(worse > 0 ? inf : -inf);
    }
  }
  return reps;
}

Interval percentile_interval(std::vector<double> replicates, double confidence) {
  if (replicates.empty()) return {};
  for (double x : replicates)
    if (std::isnan(x)) return {};
  std::sort(replicates.begin(), replicates.end());
  const double a = (1.0 - confidence) / 2.0;
  Interval out;
  double lo = quantile_sorted(replicates, a), hi = quantile_sorted(replicates, 1.0 - a);
  if (std::isfinite(lo)) out.lo = lo;
  if (std::isfinite(hi)) out.hi = hi;
  return out;
}

}  // namespace atax::analysis
