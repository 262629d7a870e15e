// Test helper: a small byte-level BPE trained on `texts` whose post-processor is "<s> $A" (BOS
// "<s>", EOS and padding "</s>"), for the BOS-exactly-once tests of the tokenizer and the eval path.
#pragma once

#include <string>
#include <vector>

#include "tokenizer/tokenizer.h"

namespace atax::testing {

inline Tokenizer bos_bpe_tokenizer(const std::vector<std::string>& texts) {
  BpeTrainOptions o;
  o.vocab_size = 300;
  o.bos_token = "<s>";
  o.special_tokens = {"<s>", "</s>"};
  o.eos_token = "</s>";
  o.pad_token = "</s>";
  return train_bpe(texts, o);
}

}  // namespace atax::testing
