// refusal/internal: what patterns.cpp shares with classifier.cpp. Not a public header.
#pragma once

#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "refusal/refusal.h"

namespace atax {

// The families firing on a response, in family-spec order, each once with its phrase.
using Families = std::vector<std::pair<RefusalFamily, std::string>>;

// Lower-case ASCII, curly quotes made straight, whitespace collapsed; with `strip_markup`, leading
// markup and quotes removed.
std::string refusal_normalize(std::string_view s, bool strip_markup);

// The first `k` sentences of `t` (cut at `max_chars`), discourse markers stripped. A sentence ends
// after . ! ? : ; followed by a space, and before ", but" / ", however".
std::vector<std::string_view> refusal_sentences(std::string_view t, int k, size_t max_chars);

// A response's normalised text, its opening sentences (markers stripped) and the opening span.
struct Opening {
  std::string text;
  std::vector<std::string> sentences;
  std::vector<std::string> cores;  // each sentence with its lead-ins stripped ("I'm sorry, but", "No,",
                                   // "I must point out that", "I can tell you that")
  std::string whole;               // text up to the end of the last opening sentence
  size_t response_chars = 0;
  bool ai_preamble = false;  // an "As an AI, ..." clause was skipped
  int list_items = 0;        // lines of the raw response that start a list item ("- ", "1. ")
  bool code = false;         // the raw response holds a fenced code block
};
Opening read_opening(std::string_view response, const RefusalOptions& options);

// The families firing on an opening, in family-spec order, each once with its phrase. Anchored
// specs are tried on each sentence as written and with its lead-ins stripped.
Families opening_families(const Opening& o);

// Whether the response goes on to do the task: a code block, a list that is not one of
// alternatives, or a deciding kAnswers phrase ("Sure", "Here are some", "Step 1").
bool does_the_task(const Opening& o);

// The refusal that decides the verdict whatever the weights say, as "family: phrase", or "" when
// none does: an explicit decline anywhere in the opening (unless its only reason is that the
// thing does not exist), or a moralising / premise-denying / cannot-know sentence that leads the
// response (only preambles and caveats before it) when the response does not do the task.
std::string decisive_refusal(const Opening& o, const Families& fams);

// The pattern-only decision on a family list (see classify_refusal_patterns).
RefusalVerdict classify_patterns(const Families& fams);
bool patterns_refuse(const Families& fams);

}  // namespace atax
