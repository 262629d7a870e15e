// eval/judge: refusal judgement by a language model (a yes/no question, read off the
// log-probabilities of " Yes" and " No"). Labelled files, agreement statistics and the shipped
// judge are in refusal/refusal.h, included here. No LibTorch.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "core/core.h"
#include "refusal/refusal.h"

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

}  // namespace atax
