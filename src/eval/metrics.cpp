// Per-item scoring functions and aggregation statistics (pure; no model, no files).
#include <cctype>
#include <cmath>
#include <mutex>
#include <unordered_map>

#define PCRE2_CODE_UNIT_WIDTH 8
#include <pcre2.h>

#include "eval/eval.h"

namespace atax {
namespace {

// A compiled PCRE2 pattern, cached per thread (patterns come from a handful of task files).
struct Regex {
  pcre2_code* code = nullptr;
  ~Regex() {
    if (code) pcre2_code_free(code);
  }
};

pcre2_code* compiled(const std::string& pattern) {
  thread_local std::unordered_map<std::string, std::unique_ptr<Regex>> cache;
  auto it = cache.find(pattern);
  if (it != cache.end()) return it->second->code;
  int err = 0;
  PCRE2_SIZE off = 0;
  pcre2_code* code = pcre2_compile(reinterpret_cast<PCRE2_SPTR>(pattern.data()), pattern.size(), 0, &err, &off, nullptr);
  if (!code) {
    PCRE2_UCHAR buf[256];
    pcre2_get_error_message(err, buf, sizeof(buf));
    throw Error("invalid regular expression \"" + pattern + "\" at offset " + std::to_string(off) + ": " +
                    reinterpret_cast<char*>(buf),
                {}, "fix the pattern in the task file (PCRE2 syntax)");
  }
  auto r = std::make_unique<Regex>();
  r->code = code;
  cache[pattern] = std::move(r);
  return code;
}

// Every non-overlapping match of `pattern` in `text`: for each, the capture groups (index 0 =
// whole match); an unset group is "".
std::vector<std::vector<std::string>> find_all(const std::string& text, const std::string& pattern) {
  pcre2_code* code = compiled(pattern);
  uint32_t groups = 0;
  pcre2_pattern_info(code, PCRE2_INFO_CAPTURECOUNT, &groups);
  pcre2_match_data* md = pcre2_match_data_create_from_pattern(code, nullptr);
  std::vector<std::vector<std::string>> out;
  PCRE2_SIZE start = 0;
  const auto* subject = reinterpret_cast<PCRE2_SPTR>(text.data());
  while (start <= text.size()) {
    int rc = pcre2_match(code, subject, text.size(), start, 0, md, nullptr);
    if (rc < 0) break;  // PCRE2_ERROR_NOMATCH or a match-limit error: no more matches
    PCRE2_SIZE* ov = pcre2_get_ovector_pointer(md);
    std::vector<std::string> m(groups + 1);
    for (uint32_t g = 0; g <= groups; ++g)
      if (static_cast<int>(g) < rc && ov[2 * g] != PCRE2_UNSET)
        m[g] = text.substr(ov[2 * g], ov[2 * g + 1] - ov[2 * g]);
    out.push_back(std::move(m));
    start = ov[1] > ov[0] ? ov[1] : ov[1] + 1;  // step past an empty match
  }
  pcre2_match_data_free(md);
  return out;
}

std::string regex_remove_all(const std::string& text, const std::string& pattern) {
  pcre2_code* code = compiled(pattern);
  pcre2_match_data* md = pcre2_match_data_create_from_pattern(code, nullptr);
  std::string out;
  PCRE2_SIZE start = 0, copied = 0;
  const auto* subject = reinterpret_cast<PCRE2_SPTR>(text.data());
  while (start <= text.size()) {
    int rc = pcre2_match(code, subject, text.size(), start, 0, md, nullptr);
    if (rc < 0) break;
    PCRE2_SIZE* ov = pcre2_get_ovector_pointer(md);
    out.append(text, copied, ov[0] - copied);
    copied = ov[1];
    if (ov[1] > ov[0]) {
      start = ov[1];
    } else {
      if (ov[1] < text.size()) out.push_back(text[ov[1]]);
      copied = ov[1] + 1;
      start = ov[1] + 1;
    }
  }
  if (copied < text.size()) out.append(text, copied, std::string::npos);
  pcre2_match_data_free(md);
  return out;
}

}  // namespace

int argmax(const std::vector<double>& v) {
  if (v.empty()) return -1;
  int best = 0;
  for (size_t i = 1; i < v.size(); ++i)
    if (v[i] > v[best]) best = static_cast<int>(i);
  return best;
}

McPrediction predict_multiple_choice(const std::vector<double>& logprobs, const std::vector<std::string>& continuations,
                                     const std::vector<double>& uncond_logprobs) {
  McPrediction p;
  if (!uncond_logprobs.empty()) {
    if (uncond_logprobs.size() != logprobs.size())
      throw Error("acc_uncond: " + std::to_string(uncond_logprobs.size()) + " unconditional log-probs for " +
                  std::to_string(logprobs.size()) + " options");
    std::vector<double> pmi(logprobs.size());
    for (size_t i = 0; i < logprobs.size(); ++i) pmi[i] = logprobs[i] - uncond_logprobs[i];
    p.pred_uncond = argmax(pmi);
  }
  p.pred = argmax(logprobs);
  std::vector<double> norm(logprobs.size());
  for (size_t i = 0; i < logprobs.size(); ++i) {
    double bytes = i < continuations.size() ? static_cast<double>(continuations[i].size()) : 0.0;
    norm[i] = logprobs[i] / std::max(bytes, 1.0);
  }
  p.pred_norm = argmax(norm);
  return p;
}

double mc2_score(const std::vector<double>& logprobs, const std::vector<int>& labels) {
  if (logprobs.empty() || logprobs.size() != labels.size())
    throw Error("mc2: " + std::to_string(logprobs.size()) + " log-probs for " + std::to_string(labels.size()) + " labels");
  double mx = *std::max_element(logprobs.begin(), logprobs.end());
  double t = 0, all = 0;
  for (size_t i = 0; i < logprobs.size(); ++i) {
    double p = std::exp(logprobs[i] - mx);  // a common factor cancels in the ratio
    all += p;
    if (labels[i]) t += p;
  }
  return all > 0 ? t / all : 0.0;
}

double pass_at_k(int64_t n, int64_t c, int64_t k) {
  if (n < 1 || c < 0 || c > n || k < 1 || k > n)
    throw Error("pass@k needs 0 <= c <= n and 1 <= k <= n (n=" + std::to_string(n) + ", c=" + std::to_string(c) +
                ", k=" + std::to_string(k) + ")");
  if (n - c < k) return 1.0;
  double prod = 1.0;
  for (int64_t i = n - c + 1; i <= n; ++i) prod *= 1.0 - static_cast<double>(k) / static_cast<double>(i);
  return 1.0 - prod;
}

std::optional<double> bbq_bias_item(const json& f, int pred, bool ambiguous) {
  int biased = f.value("biased_index", -1);
  int unknown = f.value("unknown_index", -1);
  if (biased < 0 || pred < 0) return std::nullopt;
  if (pred == unknown) return ambiguous ? std::optional<double>(0.0) : std::nullopt;
  return pred == biased ? 1.0 : -1.0;
}

std::string regex_extract(const std::string& text, const std::string& pattern, int group_select, const std::string& fallback) {
  auto matches = find_all(text, pattern);
  if (matches.empty()) return fallback;
  int n = static_cast<int>(matches.size());
  int idx = group_select < 0 ? n + group_select : group_select;
  if (idx < 0 || idx >= n) return fallback;
  const auto& m = matches[static_cast<size_t>(idx)];
  std::string value;
  if (m.size() == 1) {
    value = m[0];
  } else if (m.size() == 2) {
    value = m[1];
  } else {
    for (size_t g = 1; g < m.size(); ++g)
      if (!m[g].empty()) {
        value = m[g];
        break;
      }
  }
  return trim(value);
}

std::string gsm8k_strict_extract(const std::string& text) {
  return regex_extract(text, "#### (\\-?[0-9\\.\\,]+)", 0, "[invalid]");
}

std::string gsm8k_flexible_extract(const std::string& text) {
  return regex_extract(text, "(-?[$0-9.,]{2,})|(-?[0-9]+)", -1, "[invalid]");
}

std::string normalize_for_match(std::string s, const json& options) {
  if (options.contains("regexes_to_ignore"))
    for (const auto& p : options["regexes_to_ignore"]) s = regex_remove_all(s, p.get<std::string>());
  if (options.value("ignore_case", false)) s = to_lower(s);
  if (options.value("ignore_punctuation", false)) {
    std::string out;
    for (unsigned char c : s)
      if (!std::ispunct(c)) out.push_back(static_cast<char>(c));
    s = out;
  }
  return s;
}

double constraints_met(const std::string& response, const json& constraints) {
  const std::vector<bool> ok = check_constraints(response, constraints);  // the one rule (core), also the world's
  if (ok.empty()) return 1.0;
  int met = 0;
  for (bool b : ok) met += b ? 1 : 0;
  return static_cast<double>(met) / static_cast<double>(ok.size());
}

MeanStderr mean_stderr(const std::vector<double>& x) {
  MeanStderr r;
  r.n = static_cast<int64_t>(x.size());
  if (x.empty()) return r;
  double s = 0;
  for (double v : x) s += v;
  r.mean = s / static_cast<double>(x.size());
  if (x.size() < 2) return r;
  double ss = 0;
  for (double v : x) ss += (v - r.mean) * (v - r.mean);
  double var = ss / static_cast<double>(x.size() - 1);
  r.stderr_ = std::sqrt(var / static_cast<double>(x.size()));
  return r;
}

double bootstrap_stderr(const std::vector<double>& x, const std::function<double(const std::vector<double>&)>& stat,
                        int iters, uint64_t seed) {
  if (x.size() < 2 || iters < 2) return 0.0;
  Rng rng(seed);
  std::vector<double> reps;
  reps.reserve(static_cast<size_t>(iters));
  std::vector<double> sample(x.size());
  for (int b = 0; b < iters; ++b) {
    for (auto& s : sample) s = x[rng.uniform(x.size())];
    double v = stat(sample);
    if (std::isfinite(v)) reps.push_back(v);
  }
  return mean_stderr(reps).stderr_ * std::sqrt(static_cast<double>(reps.size()));  // = std of replicates
}

}  // namespace atax
