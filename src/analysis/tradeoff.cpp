// The helpfulness / harmlessness tradeoff: rates with Wilson intervals, the best model per α,
// the Pareto front and the curve of a sweep; Markdown, CSV and JSON writers.
#include <algorithm>
#include <cmath>
#include <limits>

#include <fmt/format.h>

#include "analysis/analysis.h"

namespace atax::analysis {

double utility(double alpha, double helpful, double harmless) { return alpha * helpful + (1.0 - alpha) * harmless; }

namespace {

double parse_number(const std::string& s, const std::string& option, const std::string& spec) {
  std::string t = trim(s);
  size_t used = 0;
  double v = 0;
  try {
    v = std::stod(t, &used);
  } catch (const std::exception&) {
    used = 0;
  }
  if (t.empty() || used != t.size() || !std::isfinite(v))
    throw Error(fmt::format("{}: '{}' is not a number (in '{}')", option, t, spec), "",
                "give one α like 0.5 or a grid lo:hi:step like 0:1:0.1");
  return v;
}

}  // namespace

std::vector<double> parse_alpha_grid(const std::string& spec, const std::string& option) {
  auto parts = split(spec, ':');
  std::vector<double> out;
  if (parts.size() == 1) {
    out.push_back(parse_number(parts[0], option, spec));
  } else if (parts.size() == 3) {
    double lo = parse_number(parts[0], option, spec), hi = parse_number(parts[1], option, spec),
           step = parse_number(parts[2], option, spec);
    if (!(step > 0) || hi < lo)
      throw Error(fmt::format("{}: '{}' needs lo ≤ hi and step > 0", option, spec), "", "e.g. 0:1:0.1");
    const double count_f = (hi - lo) / step;
    const int64_t count = static_cast<int64_t>(std::floor(count_f + 1e-9)) + 1;
    if (count > 100000) throw Error(fmt::format("{}: '{}' makes {} values", option, spec, count), "", "use a larger step");
    for (int64_t i = 0; i < count; ++i) {
      double v = lo + static_cast<double>(i) * step;
      v = std::round(v * 1e12) / 1e12;
      out.push_back(std::min(v, hi));
    }
  } else {
    throw Error(fmt::format("{}: '{}' is neither a number nor lo:hi:step", option, spec), "", "e.g. 0.5 or 0:1:0.1");
  }
  for (double a : out)
    if (a < 0 || a > 1)
      throw Error(fmt::format("{}: α = {} is outside [0, 1]", option, a), "", "α weighs helpfulness against harmlessness");
  return out;
}

std::vector<size_t> pareto_front(const std::vector<std::pair<double, double>>& pts) {
  std::vector<size_t> front;
  for (size_t i = 0; i < pts.size(); ++i) {
    bool dominated = false;
    for (size_t j = 0; j < pts.size() && !dominated; ++j) {
      if (j == i) continue;
      const auto& p = pts[i];
      const auto& q = pts[j];
      dominated = q.first >= p.first && q.second >= p.second && (q.first > p.first || q.second > p.second);
    }
    if (!dominated) front.push_back(i);
  }
  std::stable_sort(front.begin(), front.end(), [&](size_t a, size_t b) {
    if (pts[a].first != pts[b].first) return pts[a].first < pts[b].first;
    return pts[a].second > pts[b].second;
  });
  return front;
}

size_t best_for_alpha(const std::vector<std::pair<double, double>>& pts, double alpha) {
  size_t best = 0;
  for (size_t i = 1; i < pts.size(); ++i) {
    const double u = utility(alpha, pts[i].first, pts[i].second);
    const double ub = utility(alpha, pts[best].first, pts[best].second);
    if (u > ub + 1e-12) {
      best = i;
    } else if (u >= ub - 1e-12 &&
               pts[i].first + pts[i].second > pts[best].first + pts[best].second + 1e-12) {
      best = i;  // a tie: the point that is better on the other axis (so the best is never dominated)
    }
  }
  return best;
}

TradeoffResult compute_tradeoff(const std::vector<TradeoffInput>& inputs, const std::vector<double>& alphas,
                                double confidence) {
  if (inputs.empty()) throw Error("tradeoff: no models given", "", "pass at least one results file");
  TradeoffResult out;
  out.confidence = confidence;
  std::vector<std::pair<double, double>> pts;
  for (const auto& in : inputs) {
    for (auto [k, n, what] : {std::tuple{in.helpful_k, in.helpful_n, "helpful"},
                              std::tuple{in.harmless_k, in.harmless_n, "harmless"}}) {
      if (n <= 0 || k < 0 || k > n)
        throw Error(fmt::format("tradeoff: model '{}' has {} count {}/{}", in.name, what, k, n), "",
                    "counts need 0 ≤ k ≤ n and n > 0: evaluate both the legitimate and the harmful prompt sets");
    }
    TradeoffPoint p;
    p.input = in;
    p.helpful = static_cast<double>(in.helpful_k) / static_cast<double>(in.helpful_n);
    p.harmless = static_cast<double>(in.harmless_k) / static_cast<double>(in.harmless_n);
    p.helpful_ci = wilson_interval(in.helpful_k, in.helpful_n, confidence);
    p.harmless_ci = wilson_interval(in.harmless_k, in.harmless_n, confidence);
    pts.emplace_back(p.helpful, p.harmless);
    out.points.push_back(std::move(p));
  }
  for (double a : alphas) {
    size_t i = best_for_alpha(pts, a);
    out.best.push_back({a, i, utility(a, pts[i].first, pts[i].second)});
  }
  out.pareto = pareto_front(pts);
  return out;
}

void sweep_curve(TradeoffResult& result, const std::string& param) {
  result.sweep_param = param;
  result.sweep.clear();
  for (size_t i = 0; i < result.points.size(); ++i)
    if (result.points[i].input.params.count(param)) result.sweep.push_back(i);
  std::stable_sort(result.sweep.begin(), result.sweep.end(), [&](size_t a, size_t b) {
    return result.points[a].input.params.at(param) < result.points[b].input.params.at(param);
  });
}

namespace {

std::string fmt_ci(const Interval& ci) {
  return fmt::format("[{:.3f}, {:.3f}]", ci.lo.value_or(0.0), ci.hi.value_or(1.0));
}

std::string params_text(const std::map<std::string, double>& params) {
  std::vector<std::string> parts;
  for (const auto& [k, v] : params) parts.push_back(fmt::format("{}={}", k, v));
  return join(parts, ", ");
}

}  // namespace

std::string tradeoff_markdown(const TradeoffResult& r) {
  const int pct = static_cast<int>(std::lround(r.confidence * 100));
  std::string md;
  md += fmt::format("Helpfulness = share of legitimate prompts answered; harmlessness = share of harmful prompts "
                    "refused; {}% Wilson intervals. U = α·helpful + (1 − α)·harmless.\n\n",
                    pct);
  md += fmt::format("| Model | Settings | Helpful | {}% CI | Harmless | {}% CI | Pareto |\n", pct, pct);
  md += "|---|---|---:|:-:|---:|:-:|:-:|\n";
  for (size_t i = 0; i < r.points.size(); ++i) {
    const auto& p = r.points[i];
    bool on_front = std::find(r.pareto.begin(), r.pareto.end(), i) != r.pareto.end();
    md += fmt::format("| {} | {} | {:.3f} ({}/{}) | {} | {:.3f} ({}/{}) | {} | {} |\n", p.input.name,
                      params_text(p.input.params), p.helpful, p.input.helpful_k, p.input.helpful_n,
                      fmt_ci(p.helpful_ci), p.harmless, p.input.harmless_k, p.input.harmless_n,
                      fmt_ci(p.harmless_ci), on_front ? "yes" : "");
  }
  if (!r.best.empty()) {
    md += "\n| α | Best model | U |\n|---:|---|---:|\n";
    for (const auto& b : r.best)
      md += fmt::format("| {:.2f} | {} | {:.3f} |\n", b.alpha, r.points[b.index].input.name, b.utility);
  }
  std::vector<std::string> front;
  for (size_t i : r.pareto) front.push_back(r.points[i].input.name);
  md += "\nPareto front (by helpfulness): " + join(front, " → ") + "\n";
  if (!r.sweep_param.empty()) {
    std::vector<std::string> curve;
    for (size_t i : r.sweep)
      curve.push_back(fmt::format("{}={} ({:.3f}, {:.3f})", r.sweep_param, r.points[i].input.params.at(r.sweep_param),
                                  r.points[i].helpful, r.points[i].harmless));
    md += "\nSweep over " + r.sweep_param + ": " + join(curve, " → ") + "\n";
  }
  return md;
}

std::string tradeoff_csv(const TradeoffResult& r) {
  std::vector<CsvRow> rows;
  rows.push_back({"name", "params", "helpful", "helpful_lo", "helpful_hi", "helpful_k", "helpful_n", "harmless",
                  "harmless_lo", "harmless_hi", "harmless_k", "harmless_n", "pareto", "best_for_alphas"});
  for (size_t i = 0; i < r.points.size(); ++i) {
    const auto& p = r.points[i];
    bool on_front = std::find(r.pareto.begin(), r.pareto.end(), i) != r.pareto.end();
    std::vector<std::string> alphas;
    for (const auto& b : r.best)
      if (b.index == i) alphas.push_back(fmt::format("{}", b.alpha));
    rows.push_back({p.input.name, params_text(p.input.params), fmt::format("{}", p.helpful),
                    fmt::format("{}", *p.helpful_ci.lo), fmt::format("{}", *p.helpful_ci.hi),
                    std::to_string(p.input.helpful_k), std::to_string(p.input.helpful_n),
                    fmt::format("{}", p.harmless), fmt::format("{}", *p.harmless_ci.lo),
                    fmt::format("{}", *p.harmless_ci.hi), std::to_string(p.input.harmless_k),
                    std::to_string(p.input.harmless_n), on_front ? "true" : "false", join(alphas, " ")});
  }
  return to_csv(rows);
}

json tradeoff_json(const TradeoffResult& r) {
  json j;
  j["kind"] = "tradeoff";
  j["confidence"] = r.confidence;
  j["interval"] = "wilson";
  j["utility"] = "U = alpha*helpful + (1 - alpha)*harmless";
  j["points"] = json::array();
  for (const auto& p : r.points)
    j["points"].push_back({{"name", p.input.name},
                           {"params", p.input.params},
                           {"helpful", p.helpful},
                           {"helpful_ci", {*p.helpful_ci.lo, *p.helpful_ci.hi}},
                           {"helpful_k", p.input.helpful_k},
                           {"helpful_n", p.input.helpful_n},
                           {"harmless", p.harmless},
                           {"harmless_ci", {*p.harmless_ci.lo, *p.harmless_ci.hi}},
                           {"harmless_k", p.input.harmless_k},
                           {"harmless_n", p.input.harmless_n}});
  j["best"] = json::array();
  for (const auto& b : r.best)
    j["best"].push_back({{"alpha", b.alpha}, {"index", b.index}, {"name", r.points[b.index].input.name},
                         {"utility", b.utility}});
  j["pareto"] = r.pareto;
  if (!r.sweep_param.empty()) j["sweep"] = {{"param", r.sweep_param}, {"order", r.sweep}};
  return j;
}

}  // namespace atax::analysis
