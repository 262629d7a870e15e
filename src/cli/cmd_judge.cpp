// atax judge: classifies prompt/response pairs as refusals (string match, and optionally an LM
// judge) and, where the file carries labels, reports agreement, precision, recall and F1 of
// refusal detection with the disagreements listed for audit.
#include <cstdio>
#include <iostream>
#include <memory>

#include <fmt/format.h>

#include "cli/cli.h"
#include "eval/judge.h"
#include "model/model.h"

namespace atax::cli {
namespace {

struct JudgeCmdOptions {
  std::string input, judge_model, out, label_column;
  bool partial_as_compliance = false;
  bool chat = false;
  int64_t batch_size = 16;
  int max_disagreements = -1;
  RuntimeOptions rt;
};

// The first `n` bytes of `s` on one line (newlines shown as spaces), not cutting a UTF-8 character.
std::string excerpt(const std::string& s, size_t n) {
  std::string t = trim(s);
  bool cut = false;
  if (t.size() > n) {
    while (n > 0 && (static_cast<unsigned char>(t[n]) & 0xC0) == 0x80) --n;
    t = t.substr(0, n);
    cut = true;
  }
  for (char& c : t)
    if (c == '\n' || c == '\r' || c == '\t') c = ' ';
  return cut ? t + "..." : t;
}

std::string verdict_word(bool refused) { return refused ? "refused" : "complied"; }

void print_stats(const std::string& name, const std::vector<bool>& predicted, const std::vector<JudgeItem>& items,
                 const std::vector<size_t>& labelled) {
  int64_t n_refused = 0;
  for (bool p : predicted) n_refused += p;
  std::cout << fmt::format("{}: {} of {} refused ({:.1f}%)\n", name, n_refused, predicted.size(),
                           predicted.empty() ? 0.0 : 100.0 * static_cast<double>(n_refused) / static_cast<double>(predicted.size()));
  if (labelled.empty()) return;
  std::vector<bool> p, g;
  for (size_t i : labelled) {
    p.push_back(predicted[i]);
    g.push_back(*items[i].gold_refused);
  }
  AgreementStats s = refusal_agreement(p, g);
  std::cout << fmt::format("  agreement {}  precision {}  recall {}  F1 {}   (n {}, refusal = positive class)\n",
                           format_pm(s.agreement, s.agreement_se), format_pm(s.precision, s.precision_se),
                           format_pm(s.recall, s.recall_se), format_pm(s.f1, s.f1_se), s.n);
  std::cout << fmt::format("  confusion: tp {}  fp {}  fn {}  tn {}\n", s.tp, s.fp, s.fn, s.tn);
}

void print_disagreements(const std::string& name, const std::vector<bool>& predicted,
                         const std::vector<std::string>& detail, const std::vector<JudgeItem>& items,
                         const std::vector<size_t>& labelled, int max_rows) {
  std::vector<size_t> rows;
  for (size_t i : labelled)
    if (predicted[i] != *items[i].gold_refused) rows.push_back(i);
  std::cout << fmt::format("\ndisagreements, {} vs label: {}\n", name, rows.size());
  size_t shown = 0;
  for (size_t i : rows) {
    if (max_rows >= 0 && shown >= static_cast<size_t>(max_rows)) {
      std::cout << fmt::format("  ... {} more (--max-disagreements, or --out for all)\n", rows.size() - shown);
      break;
    }
    const JudgeItem& it = items[i];
    std::cout << fmt::format("  {:<8} label {:<18} predicted {:<8} {:<22} | {} | {}\n", it.id, it.label,
                             verdict_word(predicted[i]), detail[i], excerpt(it.prompt, 60), excerpt(it.response, 110));
    ++shown;
  }
}

void run_judge(const JudgeCmdOptions& o) {
  JudgeReadOptions ro;
  ro.label_column = o.label_column;
  ro.partial_is_refusal = !o.partial_as_compliance;
  const std::vector<JudgeItem> items = read_judge_items(o.input, ro);
  if (o.batch_size < 1) throw Error("--batch-size must be at least 1", "", "e.g. --batch-size 16");

  std::vector<size_t> labelled;
  int64_t gold_refused = 0;
  for (size_t i = 0; i < items.size(); ++i) {
    if (items[i].gold_refused) {
      labelled.push_back(i);
      gold_refused += *items[i].gold_refused;
    }
  }
  std::cout << fmt::format("atax judge: {} items from {}", items.size(), o.input);
  if (labelled.empty())
    std::cout << " (no labels)\n";
  else
    std::cout << fmt::format(" ({} labelled: {} refused, {} complied; partial refusals count as {})\n",
                             labelled.size(), gold_refused, static_cast<int64_t>(labelled.size()) - gold_refused,
                             o.partial_as_compliance ? "compliance" : "refusals");

  // String match.
  std::vector<bool> sm(items.size());
  std::vector<std::string> sm_matched(items.size()), sm_detail(items.size());
  for (size_t i = 0; i < items.size(); ++i) {
    RefusalVerdict v = classify_refusal(items[i].response);
    sm[i] = v.refused;
    sm_matched[i] = v.matched;
    sm_detail[i] = v.refused ? "[\"" + v.matched + "\"]" : "[no phrase]";
  }
  print_stats("string-match", sm, items, labelled);

  // LM judge.
  std::vector<JudgeVerdict> lm;
  std::vector<bool> lm_refused;
  std::vector<std::string> lm_detail;
  std::string judge_name;
  if (!o.judge_model.empty()) {
    configure_threads(o.rt.threads);
    LoadOptions lo;
    lo.device = o.rt.device;
    lo.dtype = o.rt.dtype == "bfloat16" ? torch::kBFloat16 : torch::kFloat32;
    InferenceOptions io;
    io.batch_size = o.batch_size;
    HfModel model(load_model(o.judge_model, lo), io);
    judge_name = "lm-judge (" + o.judge_model + ")";
    JudgeOptions jo;
    jo.use_chat_template = o.chat;
    jo.batch_size = static_cast<size_t>(o.batch_size);
    Progress progress("judging", static_cast<int64_t>(items.size()), "pairs");
    for (size_t start = 0; start < items.size(); start += jo.batch_size) {
      std::vector<std::pair<std::string, std::string>> pairs;
      for (size_t i = start; i < std::min(items.size(), start + jo.batch_size); ++i)
        pairs.emplace_back(items[i].prompt, items[i].response);
      for (const JudgeVerdict& v : judge_refusals(model, pairs, jo)) lm.push_back(v);
      progress.update(static_cast<int64_t>(lm.size()));
    }
    progress.finish();
    for (const JudgeVerdict& v : lm) {
      lm_refused.push_back(v.refused);
      lm_detail.push_back(fmt::format("[P(yes) {:.3f}]", v.p_refused));
    }
    print_stats(judge_name, lm_refused, items, labelled);
  }

  if (!labelled.empty()) {
    print_disagreements("string-match", sm, sm_detail, items, labelled, o.max_disagreements);
    if (!lm.empty()) print_disagreements(judge_name, lm_refused, lm_detail, items, labelled, o.max_disagreements);
  }

  if (!o.out.empty()) {
    std::vector<json> lines;
    lines.reserve(items.size());
    for (size_t i = 0; i < items.size(); ++i) {
      const JudgeItem& it = items[i];
      json j = {{"id", it.id}, {"prompt", it.prompt}, {"response", it.response},
                {"refused", static_cast<bool>(sm[i])}, {"matched", sm_matched[i]}};
      if (!it.type.empty()) j["type"] = it.type;
      if (!lm.empty()) {
        j["judge_refused"] = lm[i].refused;
        j["judge_p_refused"] = lm[i].p_refused;
        j["judge_logprob_yes"] = lm[i].logprob_yes;
        j["judge_logprob_no"] = lm[i].logprob_no;
      }
      if (it.gold_refused) {
        j["label"] = it.label;
        j["label_refused"] = *it.gold_refused;
        j["agrees"] = static_cast<bool>(sm[i]) == *it.gold_refused;
        if (!lm.empty()) j["judge_agrees"] = lm[i].refused == *it.gold_refused;
      }
      lines.push_back(std::move(j));
    }
    write_jsonl_atomic(o.out, lines);
    std::cout << fmt::format("\nwrote {} records to {}\n", lines.size(), o.out);
  }
}

void add_judge(CLI::App& app) {
  auto o = std::make_shared<JudgeCmdOptions>();
  auto* sub = app.add_subcommand(
      "judge",
      "Classify prompt/response pairs as refusals (string match; an LM judge with --judge-model) and, where "
      "labels are given, report agreement, precision, recall and F1 with the disagreements");
  sub->add_option("--input", o->input,
                  "XSTest completions CSV (prompt, completion, final_label) or JSONL "
                  "{\"prompt\", \"response\", \"label\": refused|complied|true|false}")
      ->required();
  sub->add_option("--judge-model", o->judge_model, "model folder or .gguf file asked \"Does the response refuse?\"");
  sub->add_option("--out", o->out, "write one JSON line per pair (verdicts, labels, agreement) here");
  sub->add_option("--label-column", o->label_column,
                  "label column / field (default: final_label, else label); e.g. gpt4_label, strmatch_label");
  sub->add_flag("--partial-as-compliance", o->partial_as_compliance,
                "count XSTest's 3_partial_refusal as compliance (default: as refusal)");
  sub->add_flag("--chat", o->chat, "ask the judge through its chat template");
  sub->add_option("--batch-size", o->batch_size, "judge pairs per forward batch")->capture_default_str();
  sub->add_option("--max-disagreements", o->max_disagreements, "list at most this many (-1 = all)")
      ->capture_default_str();
  add_runtime_options(sub, o->rt);
  add_config_option(sub);
  sub->callback([o] { run_judge(*o); });
}

}  // namespace

ATAX_COMMAND("judge", add_judge);

}  // namespace atax::cli
