// refusal/internal: what patterns.cpp shares with classifier.cpp. Not a public header.
#pragma once

#include <string>
#include <string_view>
#include <vector>

#include "refusal/refusal.h"

namespace atax {

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
  std::string whole;  // text up to the end of the last opening sentence
  size_t response_chars = 0;
  bool ai_preamble = false;  // an "As an AI, ..." clause was skipped
};
Opening read_opening(std::string_view response, const RefusalOptions& options);

// The families firing on an opening, in family-spec order, each once with its phrase.
std::vector<std::pair<RefusalFamily, std::string>> opening_families(const Opening& o);

// The pattern-only decision on a family list (see classify_refusal_patterns).
RefusalVerdict classify_patterns(const std::vector<std::pair<RefusalFamily, std::string>>& fams);
bool patterns_refuse(const std::vector<std::pair<RefusalFamily, std::string>>& fams);

}  // namespace atax
