// atax judge: classifies prompt/response pairs as refusals (the shipped refusal judge, and
// optionally an LM judge) and, where the files carry labels, reports agreement, precision, recall
// and F1 with 95% intervals, the leave-one-model-out figures when several labelled files are
// given, and the disagreements for audit. `atax judge train` retrains the shipped weights.
#include <cstdio>
#include <iostream>
#include <memory>
#include <optional>

#include <fmt/format.h>

#include "cli/cli.h"
#include "cli/eval_options.h"
#include "eval/judge.h"
#include "model/model.h"
#include "pipeline/pipeline.h"

namespace atax::cli {

// Defined in cmd_train.cpp: applies a subcommand's --config file (key = value lines).

namespace {

struct JudgeCmdOptions {
  std::vector<std::string> inputs;
  std::string judge_model, out, label_column, config_file, world;
  bool partial_as_compliance = false;
  bool no_loo = false;
  int64_t world_records = 400;
  bool chat = false;
  int64_t batch_size = 16;
  int64_t max_length = 0;
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
  std::cout << fmt::format("  agreement {}  precision {}  recall {}  F1 {}   (n {}, 95% intervals)\n",
                           format_ci(s.agreement, s.agreement_ci), format_ci(s.precision, s.precision_ci),
                           format_ci(s.recall, s.recall_ci), format_ci(s.f1, s.f1_ci), s.n);
  std::cout << fmt::format("  confusion: tp {}  fp {}  fn {}  tn {}\n", s.tp, s.fp, s.fn, s.tn);
  int64_t partial = 0, caught = 0;
  for (size_t i : labelled)
    if (items[i].partial) {
      ++partial;
      caught += predicted[i];
    }
  if (partial > 0)
    std::cout << fmt::format("  partial refusals judged refused: {} of {} = {}\n", caught, partial,
                             format_ci(static_cast<double>(caught) / static_cast<double>(partial),
                                       wilson_interval(caught, partial)));
}

std::string file_stem(const std::string& path) {
  std::string stem = fs::path(path).stem().string();
  if (ends_with(stem, ".csv") || ends_with(stem, ".jsonl")) stem = fs::path(stem).stem().string();  // x.csv.gz
  const std::string prefix = "xstest_v2_completions_";
  return starts_with(stem, prefix) ? stem.substr(prefix.size()) : stem;
}

std::vector<RefusalExample> world_examples(const std::string& world, int64_t records) {
  if (world.empty()) return {};
  fs::path p = world;
  if (fs::is_directory(p)) p /= "align/preferences_train.jsonl";
  if (!fs::is_regular_file(p))
    throw Error("no toy-world preference file", p.string(),
                "give a folder made by `atax world generate` (it holds align/preferences_train.jsonl) or the file");
  return world_refusal_examples(p, records);
}

void print_loo(const std::vector<LabelledSet>& sets, const std::vector<RefusalExample>& extra) {
  std::cout << fmt::format("\nleave-one-model-out ({}: the classifier retrained on the other files{}, scored on "
                           "the held-out one; partial refusals count as refusals):\n",
                           refusal_judge_version(), extra.empty() ? "" : fmt::format(" + {} toy-world responses", extra.size()));
  std::cout << fmt::format("  {:<18} {:>5}  {:<22} {:<22} {:<22} {:<22} {}\n", "held out", "n", "agreement", "precision",
                           "recall", "F1", "partial caught");
  for (const LooFold& f : leave_one_model_out(sets, extra)) {
    const AgreementStats& s = f.stats;
    std::cout << fmt::format("  {:<18} {:>5}  {:<22} {:<22} {:<22} {:<22} {}/{} {}\n", f.held_out, s.n,
                             format_ci(s.agreement, s.agreement_ci), format_ci(s.precision, s.precision_ci),
                             format_ci(s.recall, s.recall_ci), format_ci(s.f1, s.f1_ci), f.partial_caught, f.partial_n,
                             f.partial_n > 0 ? fmt::format("[{:.3f}, {:.3f}]", f.partial_recall_ci.lo, f.partial_recall_ci.hi) : "");
    const AgreementStats& u = f.full_only;
    std::cout << fmt::format("  {:<18} {:>5}  {:<22} {:<22} {:<22} {:<22} (full labels only)\n", "", u.n,
                             format_ci(u.agreement, u.agreement_ci), format_ci(u.precision, u.precision_ci),
                             format_ci(u.recall, u.recall_ci), format_ci(u.f1, u.f1_ci));
  }
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

void run_judge_file(const JudgeCmdOptions& o, HfModel* judge_model, const std::string& input,
                    const std::vector<JudgeItem>& items, const std::string& out);

void run_judge(const JudgeCmdOptions& o) {
  if (o.inputs.empty()) throw Error("--input is required", "", "give it on the command line or in the --config file");
  if (o.batch_size < 1) throw Error("--batch-size must be at least 1", "", "e.g. --batch-size 16");
  // The LM judge loads once, before any input is read, through the one entry point and the one
  // option mapping that eval, tax and kl use: --dtype, --device and --max-length mean the same
  // here, and a bad value fails before any work.
  std::optional<HfModel> judge_model;
  if (!o.judge_model.empty()) {
    configure_threads(o.rt.threads);
    judge_model.emplace(pipeline::open_model(o.judge_model, model_run_options(o.rt, o.batch_size, o.max_length)));
  }
  JudgeReadOptions ro;
  ro.label_column = o.label_column;
  ro.partial_is_refusal = !o.partial_as_compliance;
  std::vector<LabelledSet> sets;
  for (size_t k = 0; k < o.inputs.size(); ++k) {
    const std::vector<JudgeItem> items = read_judge_items(o.inputs[k], ro);
    std::string out = o.out;
    if (!out.empty() && o.inputs.size() > 1) out = o.out + "." + file_stem(o.inputs[k]) + ".jsonl";
    if (k > 0) std::cout << "\n";
    run_judge_file(o, judge_model ? &*judge_model : nullptr, o.inputs[k], items, out);
    LabelledSet set{file_stem(o.inputs[k]), {}};
    for (const JudgeItem& it : items)
      if (it.gold_refused) set.items.push_back(it);
    if (!set.items.empty()) sets.push_back(std::move(set));
  }
  if (sets.size() >= 2 && !o.no_loo) {
    if (o.partial_as_compliance)
      std::cout << "\n(leave-one-model-out skipped: it follows XSTest's convention, partial refusals as refusals)\n";
    else
      print_loo(sets, world_examples(o.world, o.world_records));
  }
}

void run_judge_file(const JudgeCmdOptions& o, HfModel* judge_model, const std::string& input,
                    const std::vector<JudgeItem>& items, const std::string& out) {

  std::vector<size_t> labelled;
  int64_t gold_refused = 0;
  for (size_t i = 0; i < items.size(); ++i) {
    if (items[i].gold_refused) {
      labelled.push_back(i);
      gold_refused += *items[i].gold_refused;
    }
  }
  std::cout << fmt::format("atax judge: {} items from {}", items.size(), input);
  if (labelled.empty())
    std::cout << " (no labels)\n";
  else
    std::cout << fmt::format(" ({} labelled: {} refused, {} complied; partial refusals count as {})\n",
                             labelled.size(), gold_refused, static_cast<int64_t>(labelled.size()) - gold_refused,
                             o.partial_as_compliance ? "compliance" : "refusals");

  // The shipped judge.
  std::vector<bool> sm(items.size());
  std::vector<std::string> sm_matched(items.size()), sm_detail(items.size());
  for (size_t i = 0; i < items.size(); ++i) {
    RefusalVerdict v = classify_refusal(items[i].response);
    sm[i] = v.refused;
    sm_matched[i] = v.matched;
    sm_detail[i] = fmt::format("[{} p {:.2f}]", v.refused ? v.matched : "-", v.p_refused);
  }
  const std::string judge_version = refusal_judge_version();
  print_stats(judge_version, sm, items, labelled);

  // LM judge.
  std::vector<JudgeVerdict> lm;
  std::vector<bool> lm_refused;
  std::vector<std::string> lm_detail;
  std::string judge_name;
  if (judge_model) {
    HfModel& model = *judge_model;
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
    print_disagreements(judge_version, sm, sm_detail, items, labelled, o.max_disagreements);
    if (!lm.empty()) print_disagreements(judge_name, lm_refused, lm_detail, items, labelled, o.max_disagreements);
  }

  if (!out.empty()) {
    std::vector<json> lines;
    lines.reserve(items.size());
    for (size_t i = 0; i < items.size(); ++i) {
      const JudgeItem& it = items[i];
      json j = {{"id", it.id}, {"prompt", it.prompt}, {"response", it.response},
                {"refused", static_cast<bool>(sm[i])}, {"matched", sm_matched[i]}, {"judge", judge_version}};
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
    write_jsonl_atomic(out, lines);
    std::cout << fmt::format("\nwrote {} records to {}\n", lines.size(), out);
  }
}

struct TrainCmdOptions {
  std::vector<std::string> inputs;
  std::string world, out;
  int64_t world_records = 400;
};

// Retrains the shipped classifier and writes its weights as C++ source (src/refusal/weights.cpp).
void run_judge_train(const TrainCmdOptions& o, const std::string& command_line) {
  if (o.inputs.empty()) throw Error("--input is required", "", "give the labelled completion files, e.g. XSTest's");
  std::vector<LabelledSet> sets;
  std::string provenance = command_line + "\n// inputs (sha256):";
  for (const std::string& in : o.inputs) {
    LabelledSet set{file_stem(in), {}};
    for (JudgeItem& it : read_judge_items(in))
      if (it.gold_refused) set.items.push_back(std::move(it));
    if (set.items.empty()) throw Error("no labelled items", in, "the training files need a label column");
    provenance += "\n//   " + fs::path(in).filename().string() + " " + sha256_file(in).substr(0, 16) + " (" +
                  std::to_string(set.items.size()) + " labelled)";
    sets.push_back(std::move(set));
  }
  std::vector<RefusalExample> ex = refusal_examples(sets);
  const std::vector<RefusalExample> world = world_examples(o.world, o.world_records);
  if (!world.empty()) {
    fs::path p = fs::is_directory(o.world) ? fs::path(o.world) / "align/preferences_train.jsonl" : fs::path(o.world);
    provenance += "\n//   toy world " + p.filename().string() + " " + sha256_file(p).substr(0, 16) + " (" +
                  std::to_string(world.size()) + " responses)";
  }
  ex.insert(ex.end(), world.begin(), world.end());
  const RefusalTrainOptions to;
  const RefusalModel model = train_refusal_model(ex, to);
  provenance += fmt::format("\n// training: {} responses, min_df {}, l2 {}, l2_ngram {}, {} AdaGrad steps, lr {}; "
                            "{} weights, digest {}",
                            ex.size(), to.min_df, to.l2, to.l2_ngram, to.iterations, to.learning_rate,
                            model.weights.size(), refusal_model_digest(model));
  write_file_atomic(o.out, refusal_model_cpp(model, provenance));
  std::cout << fmt::format("trained on {} responses: {} weights, digest {}; wrote {}\n", ex.size(),
                           model.weights.size(), refusal_model_digest(model), o.out);
  std::cout << "rebuild atax to ship them (refusal_judge_version() names the digest)\n";
}

void add_judge(CLI::App& app) {
  auto o = std::make_shared<JudgeCmdOptions>();
  auto* sub = app.add_subcommand(
      "judge",
      "Classify prompt/response pairs as refusals (the shipped refusal judge: decisive refusal patterns, then "
      "pattern families + logistic regression; an LM judge with --judge-model) and, where labels are given, "
      "report agreement, precision, "
      "recall and F1 with 95% intervals (Wilson; F1 by a seeded bootstrap) and the disagreements. With two or "
      "more labelled files (one per model, e.g. XSTest's three completion files) it also prints the "
      "leave-one-model-out figures: the classifier retrained on all files but one and scored on that one, "
      "which is how the judge holds on a model it has not seen. Partial refusals count as refusals and are "
      "also reported on their own.");
  sub->add_option("--input", o->inputs,
                  "labelled or unlabelled pairs: XSTest completions CSV (prompt, completion, final_label) or JSONL "
                  "{\"prompt\", \"response\", \"label\": refused|complied|true|false}; several files "
                  "(repeat --input or separate with commas) are judged one by one")
      ->delimiter(',');
  sub->add_option("--judge-model", o->judge_model, "model folder or .gguf file asked \"Does the response refuse?\"");
  sub->add_option("--out", o->out,
                  "write one JSON line per pair (verdicts, labels, agreement) here (with several inputs: "
                  "OUT.<stem>.jsonl each)");
  sub->add_option("--label-column", o->label_column,
                  "label column / field (default: final_label, else label); e.g. gpt4_label, strmatch_label");
  sub->add_flag("--partial-as-compliance", o->partial_as_compliance,
                "count XSTest's 3_partial_refusal as compliance (default: as refusal)");
  sub->add_flag("--no-loo", o->no_loo, "skip the leave-one-model-out figures when several labelled files are given");
  sub->add_option("--world", o->world,
                  "a toy world (`atax world generate` folder or its align/preferences_train.jsonl) whose preference "
                  "pairs join the training files in leave-one-model-out, as in the shipped weights");
  sub->add_option("--world-records", o->world_records, "preference records read from --world")->capture_default_str();
  sub->add_flag("--chat", o->chat, "ask the judge through its chat template");
  sub->add_option("--batch-size", o->batch_size, "judge pairs per forward batch")->capture_default_str();
  sub->add_option("--max-length", o->max_length, "the judge's context window in tokens (0 = the model's)")
      ->capture_default_str();
  sub->add_option("--max-disagreements", o->max_disagreements, "list at most this many (-1 = all)")
      ->capture_default_str();
  add_runtime_options(sub, o->rt);
  sub->add_option("--config", o->config_file, "read options from a config file (TOML/INI key = value)");

  auto t = std::make_shared<TrainCmdOptions>();
  auto* train = sub->add_subcommand(
      "train",
      "Retrain the shipped refusal classifier (logistic regression over the pattern families and the opening's "
      "n-grams, deterministic) on labelled completion files and the toy world's preference pairs, and write its "
      "weights as C++ source; the shipped src/refusal/weights.cpp was made with: atax judge train --input "
      "../shared/benchmarks/xstest/model_completions/xstest_v2_completions_{gpt4,llama2orig,mistralinstruct}.csv "
      "--world tests/refusal/fixtures/world_preferences_seed7_quick.jsonl --world-records 400 --out "
      "src/refusal/weights.cpp (the fixture: the first 400 pairs of a seed-7 quick world)");
  train->add_option("--input", t->inputs, "labelled completion files (repeat or separate with commas)")
      ->delimiter(',')
      ->required();
  train->add_option("--world", t->world, "toy world folder or its align/preferences_train.jsonl");
  train->add_option("--world-records", t->world_records, "preference records read from --world")->capture_default_str();
  train->add_option("--out", t->out, "C++ source to write (e.g. src/refusal/weights.cpp)")->required();
  train->callback([t, train] {
    std::string cmd = "atax judge train";
    for (const std::string& in : t->inputs) cmd += " --input " + fs::path(in).filename().string();
    if (!t->world.empty())
      cmd += " --world " + fs::path(t->world).filename().string() + " --world-records " +
             std::to_string(t->world_records);
    cmd += " --out " + fs::path(t->out).filename().string();
    (void)train;
    run_judge_train(*t, cmd);
  });

  sub->callback([o, sub, train] {
    if (train->parsed()) return;
    apply_subcommand_config(sub, o->config_file, {});
    run_judge(*o);
  });
}

}  // namespace

ATAX_COMMAND("judge", add_judge);

}  // namespace atax::cli
