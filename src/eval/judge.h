// eval/judge: refusal judgement by a language model (a yes/no question, read off the
// log-probabilities of " Yes" and " No"), labelled prompt/response files (XSTest's completions CSV
// layout or JSONL), and the agreement of a classifier with labels. No LibTorch.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "core/core.h"
#include "eval/refusal.h"

namespace atax {

// ---------------------------------------------------------------------------------------------
// LM judge
// ---------------------------------------------------------------------------------------------

struct JudgeOptions {
  bool use_chat_template = false;  // ask through model.apply_chat_template (answers "Yes"/"No" without the space)
  size_t max_response_chars = 4000;  // longer responses are cut (a refusal shows at the start)
  size_t max_prompt_chars = 2000;
  size_t batch_size = 32;  // pairs per loglikelihood() call
};

struct JudgeVerdict {
  bool refused = false;      // P(yes) > P(no)
  double p_refused = 0.5;    // P(yes) / (P(yes) + P(no))
  double logprob_yes = 0;    // log p(" Yes" | question)
  double logprob_no = 0;     // log p(" No" | question)
};

// The judge question for one pair, ending in "Answer:" (the model continues with " Yes" or " No").
std::string refusal_judge_question(std::string_view prompt, std::string_view response,
                                   const JudgeOptions& options = {});

// Asks `model` whether each response refuses its prompt; one verdict per pair, in order.
// Requests go to model.loglikelihood() in batches of options.batch_size.
std::vector<JudgeVerdict> judge_refusals(LanguageModel& model,
                                         const std::vector<std::pair<std::string, std::string>>& pairs,
                                         const JudgeOptions& options = {});
JudgeVerdict judge_refusal(LanguageModel& model, std::string_view prompt, std::string_view response,
                           const JudgeOptions& options = {});

// ---------------------------------------------------------------------------------------------
// Labelled prompt/response files
// ---------------------------------------------------------------------------------------------

struct JudgeItem {
  std::string id;        // the file's id column / field, else the record number (1-based)
  std::string prompt, response;
  std::string type;      // XSTest's prompt type, when present
  std::string label;     // the label as written ("2_full_refusal", "refused", "true", ...); "" = none
  std::optional<bool> gold_refused;  // the label read as refused / complied
  int64_t line = 0;      // record number (CSV data row, JSONL line)
};

struct JudgeReadOptions {
  std::string label_column;        // "" = final_label, else label (CSV); label (JSONL)
  bool partial_is_refusal = true;  // XSTest's 3_partial_refusal counts as a refusal
};

// Reads prompt/response pairs and optional labels from XSTest's completions CSV (columns prompt
// and completion or response; id, type and the label column optional; CRLF and quoted newlines
// allowed; may be gzip-compressed) or JSONL ({"prompt", "response" or "completion", optional "id",
// "label"}). The format is chosen by the first non-blank character ('{' = JSONL). Fails with Error
// naming the file and record for a missing column or field, or a label it cannot read.
std::vector<JudgeItem> read_judge_items(const fs::path& path, const JudgeReadOptions& options = {});

// Reads one label: true/false, 1/0, "refused"/"refusal"/"2_full_refusal"/..., "complied"/
// "compliance"/"1_full_compliance"/..., "3_partial_refusal" (a refusal iff partial_is_refusal).
// Returns nullopt for null or "" and for a text it does not know (the caller reports it).
std::optional<bool> parse_refusal_label(const json& value, bool partial_is_refusal = true);

// ---------------------------------------------------------------------------------------------
// Agreement of a refusal classifier with labels (refusal = the positive class)
// ---------------------------------------------------------------------------------------------

struct AgreementStats {
  int64_t n = 0, tp = 0, fp = 0, fn = 0, tn = 0;
  double agreement = 0, agreement_se = 0;  // (tp + tn) / n; binomial standard error
  double precision = 0, precision_se = 0;  // tp / (tp + fp); 0 when nothing was predicted refused
  double recall = 0, recall_se = 0;        // tp / (tp + fn); 0 when nothing is labelled refused
  double f1 = 0, f1_se = 0;                // 2PR / (P + R); standard error by a seeded bootstrap
};

// Compares `predicted` with `gold` item by item (same length, else Error). The F1 standard error
// comes from `bootstrap` resamples drawn with Rng(seed).
AgreementStats refusal_agreement(const std::vector<bool>& predicted, const std::vector<bool>& gold,
                                 uint64_t seed = 1234, int bootstrap = 1000);

}  // namespace atax
