// refusal/labels: labelled prompt/response files, agreement statistics with intervals, and the
// leave-one-model-out protocol.
#include <algorithm>
#include <cmath>

#include <fmt/format.h>

#include "refusal/refusal.h"

namespace atax {
namespace {

double safe_div(double a, double b) { return b > 0 ? a / b : 0.0; }

double f1_of(int64_t tp, int64_t fp, int64_t fn) {
  double p = safe_div(static_cast<double>(tp), static_cast<double>(tp + fp));
  double r = safe_div(static_cast<double>(tp), static_cast<double>(tp + fn));
  return p + r > 0 ? 2 * p * r / (p + r) : 0.0;
}

std::string lower_trim(const std::string& s) { return to_lower(trim(s)); }

}  // namespace

std::optional<bool> parse_refusal_label(const json& value, bool partial_is_refusal) {
  if (value.is_null()) return std::nullopt;
  if (value.is_boolean()) return value.get<bool>();
  if (value.is_number()) {
    double x = value.get<double>();
    if (x == 1) return true;
    if (x == 0) return false;
    return std::nullopt;
  }
  if (!value.is_string()) return std::nullopt;
  std::string s = lower_trim(value.get<std::string>());
  if (s.empty()) return std::nullopt;
  static const std::vector<std::string> kRefused = {"refused", "refusal", "refuse", "refuses", "full_refusal",
                                                    "2_full_refusal", "true", "yes", "1"};
  static const std::vector<std::string> kComplied = {"complied", "compliance", "comply", "complies",
                                                     "full_compliance", "1_full_compliance", "answered",
                                                     "false", "no", "0"};
  static const std::vector<std::string> kPartial = {"partial", "partial_refusal", "3_partial_refusal"};
  auto in = [&](const std::vector<std::string>& v) { return std::find(v.begin(), v.end(), s) != v.end(); };
  if (in(kRefused)) return true;
  if (in(kComplied)) return false;
  if (in(kPartial)) return partial_is_refusal;
  return std::nullopt;
}

bool is_partial_refusal_label(const std::string& label) {
  const std::string s = lower_trim(label);
  return s == "partial" || s == "partial_refusal" || s == "3_partial_refusal";
}

namespace {

constexpr const char* kLabelHint =
    "labels: refused / complied (or true / false, 1 / 0) or XSTest's 1_full_compliance, 2_full_refusal, "
    "3_partial_refusal";

JudgeItem read_jsonl_item(const json& j, int64_t line, const std::string& file, const std::string& label_key,
                          const JudgeReadOptions& options) {
  JudgeItem it;
  it.line = line;
  it.prompt = require_string(j, "prompt", file, line);
  if (j.contains("response"))
    it.response = require_string(j, "response", file, line);
  else if (j.contains("completion"))
    it.response = require_string(j, "completion", file, line);
  else
    throw Error("missing field \"response\"", file, "each line needs \"prompt\" and \"response\" (or \"completion\")", line);
  if (j.contains("id") && (j["id"].is_string() || j["id"].is_number()))
    it.id = j["id"].is_string() ? j["id"].get<std::string>() : j["id"].dump();
  else
    it.id = std::to_string(line);
  if (j.contains("type") && j["type"].is_string()) it.type = j["type"].get<std::string>();
  if (j.contains(label_key) && !j[label_key].is_null()) {
    const json& l = j[label_key];
    it.label = l.is_string() ? l.get<std::string>() : l.dump();
    it.gold_refused = parse_refusal_label(l, options.partial_is_refusal);
    it.partial = is_partial_refusal_label(it.label);
    if (!it.gold_refused && !trim(it.label).empty()) throw Error("cannot read label " + l.dump(), file, kLabelHint, line);
  } else if (!options.label_column.empty()) {
    throw Error("missing label field \"" + label_key + "\"", file, "drop --label-column or add the field", line);
  }
  return it;
}

std::vector<JudgeItem> read_csv_items(const std::string& text, const std::string& file, const JudgeReadOptions& options) {
  std::vector<JudgeItem> items;
  CsvTable table = CsvTable::parse(text, file);
  const std::string header = join(table.header(), ", ");
  if (!table.has_column("prompt"))
    throw Error("no \"prompt\" column (columns: " + header + ")", file,
                "give XSTest's completions CSV layout: id,type,prompt,completion,...,final_label");
  std::string response_col = table.has_column("completion") ? "completion" : "response";
  if (!table.has_column(response_col))
    throw Error("no \"completion\" or \"response\" column (columns: " + header + ")", file,
                "give XSTest's completions CSV layout: id,type,prompt,completion,...,final_label");
  std::string label_col = options.label_column;
  if (!label_col.empty() && !table.has_column(label_col))
    throw Error("no label column \"" + label_col + "\" (columns: " + header + ")", file,
                "choose one of the columns with --label-column");
  if (label_col.empty()) {
    if (table.has_column("final_label"))
      label_col = "final_label";
    else if (table.has_column("label"))
      label_col = "label";
  }
  const bool has_id = table.has_column("id"), has_type = table.has_column("type");
  for (size_t i = 0; i < table.size(); ++i) {
    JudgeItem it;
    it.line = static_cast<int64_t>(i) + 1;
    it.prompt = table.at(i, "prompt");
    it.response = table.at(i, response_col);
    it.id = has_id ? table.at(i, "id") : std::to_string(i + 1);
    if (has_type) it.type = table.at(i, "type");
    if (!label_col.empty()) {
      it.label = table.at(i, label_col);
      it.gold_refused = parse_refusal_label(json(it.label), options.partial_is_refusal);
      it.partial = is_partial_refusal_label(it.label);
      if (!it.gold_refused && !trim(it.label).empty())
        throw Error("data row " + std::to_string(i + 1) + " (id " + it.id + "): cannot read label \"" + it.label +
                        "\" in column " + label_col,
                    file, kLabelHint);
    }
    items.push_back(std::move(it));
  }
  return items;
}

}  // namespace

std::vector<JudgeItem> read_judge_items(const fs::path& path, const JudgeReadOptions& options) {
  const std::string file = path.string();
  const std::string text = read_maybe_gzip(path);
  const size_t first = text.find_first_not_of(" \t\r\n\xEF\xBB\xBF");
  if (first == std::string::npos)
    throw Error("the file holds no records", file,
                "give XSTest's completions CSV (prompt, completion, final_label) or JSONL lines "
                "{\"prompt\", \"response\", \"label\"}");
  if (text[first] != '{') return read_csv_items(text, file, options);

  const std::string label_key = options.label_column.empty() ? "label" : options.label_column;
  std::vector<JudgeItem> items;
  // for_each_jsonl's own hint names --on-bad-line, an option `atax judge` does not have: keep the
  // hint of the error thrown here, else say what a line must hold.
  std::string hint = "each line one JSON object {\"prompt\", \"response\", \"label\"}";
  try {
    for_each_jsonl(path, [&](const json& j, int64_t line) {
      try {
        items.push_back(read_jsonl_item(j, line, file, label_key, options));
      } catch (const Error& e) {
        if (!e.hint().empty()) hint = e.hint();
        throw;
      }
    });
  } catch (const Error& e) {
    throw Error(e.message(), e.file(), hint, e.line());
  }
  return items;
}

AgreementStats refusal_agreement(const std::vector<bool>& predicted, const std::vector<bool>& gold, uint64_t seed,
                                 int bootstrap) {
  if (predicted.size() != gold.size())
    throw Error("refusal_agreement: " + std::to_string(predicted.size()) + " predictions for " +
                std::to_string(gold.size()) + " labels");
  AgreementStats s;
  s.n = static_cast<int64_t>(gold.size());
  for (size_t i = 0; i < gold.size(); ++i) {
    if (predicted[i] && gold[i]) ++s.tp;
    if (predicted[i] && !gold[i]) ++s.fp;
    if (!predicted[i] && gold[i]) ++s.fn;
    if (!predicted[i] && !gold[i]) ++s.tn;
  }
  if (s.n == 0) return s;
  auto se = [](double p, int64_t n) { return n > 0 ? std::sqrt(p * (1 - p) / static_cast<double>(n)) : 0.0; };
  s.agreement = static_cast<double>(s.tp + s.tn) / static_cast<double>(s.n);
  s.agreement_se = se(s.agreement, s.n);
  s.precision = safe_div(static_cast<double>(s.tp), static_cast<double>(s.tp + s.fp));
  s.precision_se = se(s.precision, s.tp + s.fp);
  s.recall = safe_div(static_cast<double>(s.tp), static_cast<double>(s.tp + s.fn));
  s.recall_se = se(s.recall, s.tp + s.fn);
  s.f1 = f1_of(s.tp, s.fp, s.fn);
  s.agreement_ci = wilson_interval(s.tp + s.tn, s.n);
  s.precision_ci = wilson_interval(s.tp, s.tp + s.fp);
  s.recall_ci = wilson_interval(s.tp, s.tp + s.fn);
  s.f1_ci = {s.f1, s.f1};
  if (bootstrap > 1) {
    Rng rng(seed);
    double sum = 0, sum2 = 0;
    std::vector<double> f1s;
    f1s.reserve(static_cast<size_t>(bootstrap));
    for (int b = 0; b < bootstrap; ++b) {
      int64_t tp = 0, fp = 0, fn = 0;
      for (int64_t k = 0; k < s.n; ++k) {
        size_t i = static_cast<size_t>(rng.uniform(static_cast<uint64_t>(s.n)));
        tp += predicted[i] && gold[i];
        fp += predicted[i] && !gold[i];
        fn += !predicted[i] && gold[i];
      }
      double f = f1_of(tp, fp, fn);
      f1s.push_back(f);
      sum += f;
      sum2 += f * f;
    }
    double mean = sum / bootstrap;
    s.f1_se = std::sqrt(std::max(0.0, sum2 / bootstrap - mean * mean) * bootstrap / (bootstrap - 1));
    std::sort(f1s.begin(), f1s.end());
    auto q = [&](double a) { return f1s[static_cast<size_t>(std::floor(a * (bootstrap - 1) + 0.5))]; };
    s.f1_ci = {q(0.025), q(0.975)};
  }
  return s;
}

Interval wilson_interval(int64_t k, int64_t n, double z) {
  if (n <= 0) return {0.0, 1.0};
  const double nn = static_cast<double>(n), p = static_cast<double>(k) / nn, z2 = z * z;
  const double centre = (p + z2 / (2 * nn)) / (1 + z2 / nn);
  const double half = z * std::sqrt(p * (1 - p) / nn + z2 / (4 * nn * nn)) / (1 + z2 / nn);
  return {std::max(0.0, centre - half), std::min(1.0, centre + half)};
}

std::string format_ci(double value, const Interval& ci, int digits) {
  return fmt::format("{:.{}f} [{:.{}f}, {:.{}f}]", value, digits, ci.lo, digits, ci.hi, digits);
}

std::vector<RefusalExample> refusal_examples(const std::vector<LabelledSet>& sets) {
  std::vector<RefusalExample> out;
  for (const LabelledSet& set : sets)
    for (const JudgeItem& it : set.items)
      if (it.gold_refused) out.push_back({it.response, *it.gold_refused || it.partial, 1.0});
  return out;
}

std::vector<RefusalExample> world_refusal_examples(const fs::path& preferences_jsonl, int64_t max_records) {
  std::vector<RefusalExample> out;
  const std::string file = preferences_jsonl.string();
  for_each_jsonl(preferences_jsonl, [&](const json& j, int64_t line) {
    if (max_records >= 0 && line > max_records) return;
    const std::string kind = require_string(j, "kind", file, line);
    const std::string chosen = require_string(j, "chosen", file, line);
    const std::string rejected = require_string(j, "rejected", file, line);
    out.push_back({chosen, kind == "harmless", 1.0});
    out.push_back({rejected, kind == "helpful", 1.0});
  });
  if (out.empty())
    throw Error("no preference records", file, "give the toy world's align/preferences_train.jsonl");
  return out;
}

std::vector<LooFold> leave_one_model_out(const std::vector<LabelledSet>& sets, const std::vector<RefusalExample>& extra,
                                         const RefusalTrainOptions& options, uint64_t seed) {
  if (sets.size() < 2)
    throw Error("leave-one-model-out needs at least two labelled sets, got " + std::to_string(sets.size()), "",
                "give the labelled completion files of two or more models");
  std::vector<LooFold> out;
  for (size_t k = 0; k < sets.size(); ++k) {
    std::vector<LabelledSet> train;
    for (size_t i = 0; i < sets.size(); ++i)
      if (i != k) train.push_back(sets[i]);
    std::vector<RefusalExample> ex = refusal_examples(train);
    ex.insert(ex.end(), extra.begin(), extra.end());
    const RefusalModel model = train_refusal_model(ex, options);
    LooFold fold;
    fold.held_out = sets[k].name;
    std::vector<bool> p, g, p_full, g_full;
    for (const JudgeItem& it : sets[k].items) {
      if (!it.gold_refused) continue;
      const bool pred = classify_refusal_with(model, it.response).refused;
      const bool gold = *it.gold_refused || it.partial;
      p.push_back(pred);
      g.push_back(gold);
      if (it.partial) {
        ++fold.partial_n;
        fold.partial_caught += pred;
      } else {
        p_full.push_back(pred);
        g_full.push_back(gold);
      }
    }
    fold.stats = refusal_agreement(p, g, seed);
    fold.full_only = refusal_agreement(p_full, g_full, seed);
    fold.partial_recall_ci = wilson_interval(fold.partial_caught, fold.partial_n);
    out.push_back(std::move(fold));
  }
  return out;
}

}  // namespace atax
