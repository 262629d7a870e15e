// ctest-labels: unit
// Reproduces every reference vector of ../shared/tokenizers/{llama3,mistral,qwen3}/vectors.jsonl
// (ids of HF's Rust `tokenizers`, tokens, decoded with and without special tokens) and the token
// ids of the real stories260K model's tokenizer.
#include <gtest/gtest.h>

#include <fstream>
#include <iostream>

#include "tokenizer/tokenizer.h"

namespace atax {
namespace {

const fs::path kShared = ATAX_SHARED_DIR;

std::string show_ids(const std::vector<int32_t>& ids) {
  std::string s = "[";
  for (size_t i = 0; i < ids.size(); ++i) s += (i ? ", " : "") + std::to_string(ids[i]);
  return s + "]";
}

// Returns the number of mismatching records and prints the first few.
void check_family(const std::string& family) {
  const fs::path dir = kShared / "tokenizers" / family;
  if (!fs::exists(dir / "vectors.jsonl")) GTEST_SKIP() << "no " << dir << " (../shared not present)";
  const Tokenizer tok = Tokenizer::load(dir);
  const std::vector<json> records = read_jsonl(dir / "vectors.jsonl");
  ASSERT_EQ(records.size(), 412u);
  int matched = 0, shown = 0;
  for (size_t k = 0; k < records.size(); ++k) {
    const json& r = records[k];
    const std::string text = r["text"].get<std::string>();
    const bool add_special = r["add_special_tokens"].get<bool>();
    const auto want_ids = r["ids"].get<std::vector<int32_t>>();
    const auto want_tokens = r["tokens"].get<std::vector<std::string>>();
    const std::string want_decoded = r["decoded"].get<std::string>();
    const std::string want_skip = r["decoded_skip_special"].get<std::string>();

    const std::vector<int32_t> ids = tok.encode(text, add_special);
    // Decoding is checked on the reference ids, so an encoding mismatch does not hide it.
    const std::vector<std::string> tokens = tok.tokens(want_ids);
    const std::string decoded = tok.decode(want_ids, false);
    const std::string skip = tok.decode(want_ids, true);
    const bool ok = ids == want_ids && tokens == want_tokens && decoded == want_decoded && skip == want_skip;
    if (ok) {
      ++matched;
    } else if (shown++ < 8) {
      ADD_FAILURE() << family << " line " << k + 1 << " text " << json(text).dump() << " add_special=" << add_special
                    << "\n  ids      " << show_ids(ids) << "\n  expected " << show_ids(want_ids)
                    << "\n  tokens ok " << (tokens == want_tokens) << ", decoded ok " << (decoded == want_decoded)
                    << " (" << json(decoded).dump() << " vs " << json(want_decoded).dump() << ")"
                    << ", skip ok " << (skip == want_skip);
    }
  }
  std::cout << "[vectors] " << family << ": " << matched << "/" << records.size() << " records match\n";
  EXPECT_EQ(matched, int(records.size())) << family;
}

TEST(VectorsTest, Llama3AllRecordsMatch) { check_family("llama3"); }
TEST(VectorsTest, MistralAllRecordsMatch) { check_family("mistral"); }
TEST(VectorsTest, Qwen3AllRecordsMatch) { check_family("qwen3"); }

// The real stories260K model (llama2.c, SentencePiece BPE with byte fallback): prompt ids with
// the BOS, and the decoded prompt + greedy continuation.
TEST(VectorsTest, Stories260KPromptIdsAndText) {
  const fs::path dir = kShared / "models" / "stories260K";
  if (!fs::exists(dir / "reference.jsonl")) GTEST_SKIP() << "no " << dir;
  const Tokenizer tok = Tokenizer::load(dir / "hf");
  EXPECT_EQ(tok.bos_id(), 1);
  EXPECT_EQ(tok.eos_id(), 2);
  EXPECT_EQ(tok.vocab_size(), 512);
  int n = 0;
  for (const json& r : read_jsonl(dir / "reference.jsonl")) {
    const std::string prompt = r["prompt"].get<std::string>();
    const auto prompt_ids = r["prompt_ids"].get<std::vector<int32_t>>();
    EXPECT_EQ(show_ids(tok.encode(prompt, true)), show_ids(prompt_ids)) << r["name"];
    if (r.contains("prompt_tokens")) EXPECT_EQ(tok.tokens(prompt_ids), r["prompt_tokens"].get<std::vector<std::string>>());
    std::vector<int32_t> all = prompt_ids;
    if (r.contains("continuation_ids")) {
      const auto cont = r["continuation_ids"].get<std::vector<int32_t>>();
      all.insert(all.end(), cont.begin(), cont.end());
      if (r.contains("continuation_tokens"))
        EXPECT_EQ(tok.tokens(cont), r["continuation_tokens"].get<std::vector<std::string>>());
    }
    if (r.contains("text")) EXPECT_EQ(tok.decode(all, true), r["text"].get<std::string>()) << r["name"];
    ++n;
  }
  EXPECT_GT(n, 0);
}

}  // namespace
}  // namespace atax
