// ctest-labels: unit
// Byte-level BPE training: deterministic merges (ties by byte order), the tokenizer.json and
// tokenizer_config.json it writes, and encode/decode identity on arbitrary UTF-8 after a
// save/load round trip.
#include <gtest/gtest.h>

#include <algorithm>

#include "tokenizer/tokenizer.h"

namespace atax {
namespace {

// ~`bytes` of seeded text: pseudo-words from syllables (so merges keep finding new pairs), with
// numbers, punctuation, code, CJK and emoji.
std::vector<std::string> corpus(size_t bytes, uint64_t seed) {
  static const std::vector<std::string> syllables = {
      "ka", "lo", "mi", "ne", "su", "ta", "ri", "po", "de", "an", "th", "er", "in", "st", "qu", "ou",
      "ch", "sh", "ee", "ing", "ed", "ly", "al", "or", "is", "on", "at", "en", "es", "re"};
  static const std::vector<std::string> extras = {
      "it's", "don't", "We'll", "42", "3.14", "1999", "x+=1;", "foo()", "日本", "語", "café", "naïve",
      "😀", "🚀", "👩‍💻", "Привет", "мир", "\t", "--", "...", "\"hi\""};
  Rng rng(seed);
  std::vector<std::string> docs;
  size_t total = 0;
  while (total < bytes) {
    std::string d;
    const int n = int(rng.range(20, 120));
    for (int k = 0; k < n; ++k) {
      if (rng.bernoulli(0.1)) {
        d += rng.pick(extras);
      } else {
        // Zipf-like syllable choice: the square of a uniform favours the first ones.
        const int len = int(rng.range(1, 4));
        for (int j = 0; j < len; ++j) {
          const double u = rng.uniform01();
          d += syllables[size_t(u * u * double(syllables.size()))];
        }
      }
      d += rng.bernoulli(0.1) ? ".\n" : " ";
    }
    total += d.size();
    docs.push_back(std::move(d));
  }
  return docs;
}

// Random valid UTF-8: ASCII, whitespace runs, Latin-1, CJK, emoji, any scalar value, and
// special-token text.
std::string random_text(Rng& rng) {
  std::string s;
  const int n = int(rng.range(0, 40));
  for (int k = 0; k < n; ++k) {
    const int kind = int(rng.range(0, 7));
    uint32_t cp;
    if (kind == 0) cp = uint32_t(rng.range(0x20, 0x7E));
    else if (kind == 1) cp = rng.pick(std::vector<uint32_t>{' ', '\n', '\t', '\r', 0xA0, 0x3000, 0x85});
    else if (kind == 2) cp = uint32_t(rng.range(0xA0, 0x17F));
    else if (kind == 3) cp = uint32_t(rng.range(0x4E00, 0x9FFF));
    else if (kind == 4) cp = uint32_t(rng.range(0x1F300, 0x1FAFF));
    else if (kind == 5) {
      do cp = uint32_t(rng.range(0, 0x10FFFF));
      while (cp >= 0xD800 && cp <= 0xDFFF);
    } else {
      s += rng.pick(std::vector<std::string>{"<|endoftext|>", "<|pad|>", "<|im_start|>", "<|im_end|>"});
      continue;
    }
    if (cp < 0x80) s += char(cp);
    else if (cp < 0x800) s += {char(0xC0 | (cp >> 6)), char(0x80 | (cp & 0x3F))};
    else if (cp < 0x10000) s += {char(0xE0 | (cp >> 12)), char(0x80 | ((cp >> 6) & 0x3F)), char(0x80 | (cp & 0x3F))};
    else
      s += {char(0xF0 | (cp >> 18)), char(0x80 | ((cp >> 12) & 0x3F)), char(0x80 | ((cp >> 6) & 0x3F)),
            char(0x80 | (cp & 0x3F))};
  }
  return s;
}

TEST(TrainBpeTest, TiesBreakByByteOrder) {
  BpeTrainOptions opts;
  opts.vocab_size = 1000;
  opts.special_tokens = {};
  opts.eos_token = "";
  opts.pad_token = "";
  const Tokenizer t = train_bpe({"ab ab cd cd"}, opts);
  // Pairs with count 2: (a,b), (Ġ,c), (c,d); " " (0x20) sorts before "a" and "c".
  const json merges = t.tokenizer_json()["model"]["merges"];
  ASSERT_EQ(merges.size(), 3u) << merges.dump();
  EXPECT_EQ(merges[0], json::array({"\xC4\xA0", "c"}));
  EXPECT_EQ(merges[1], json::array({"\xC4\xA0" "c", "d"}));
  EXPECT_EQ(merges[2], json::array({"a", "b"}));
  EXPECT_EQ(t.vocab_size(), 259);
}

TEST(TrainBpeTest, DeterministicWithSpecialTokensAndConfig) {
  const auto docs = corpus(300000, 7);
  BpeTrainOptions opts;
  opts.vocab_size = 1200;
  opts.chat_format = ChatFormat::kChatMl;
  const Tokenizer a = train_bpe(docs, opts);
  const Tokenizer b = train_bpe(docs, opts);
  EXPECT_EQ(a.tokenizer_json().dump(), b.tokenizer_json().dump());
  EXPECT_EQ(a.vocab_size(), 1200);
  // Special tokens first, then the chat format's tokens; all special added tokens.
  EXPECT_EQ(a.token_to_id("<|endoftext|>"), 0);
  EXPECT_EQ(a.token_to_id("<|pad|>"), 1);
  EXPECT_EQ(a.token_to_id("<|im_start|>"), 2);
  EXPECT_EQ(a.token_to_id("<|im_end|>"), 3);
  EXPECT_TRUE(a.is_special(3));
  EXPECT_EQ(a.eos_id(), 0);
  EXPECT_EQ(a.pad_id(), 1);
  EXPECT_FALSE(a.bos_id().has_value());
  EXPECT_EQ(a.stop_ids(), (std::vector<int32_t>{0, 3}));
  EXPECT_EQ(a.chat_format(), ChatFormat::kChatMl);
  EXPECT_EQ(a.tokenizer_config()["eos_token"], "<|endoftext|>");
  EXPECT_EQ(a.tokenizer_config()["chat_template"], chat_template_jinja(ChatFormat::kChatMl));
  // Without a bos, add_special_tokens adds nothing.
  EXPECT_EQ(a.encode("the cat", true), a.encode("the cat", false));
  // Merges compress the kind of text they were trained on.
  size_t n_bytes = 0, n_tokens = 0;
  for (size_t k = 0; k < 50; ++k) {
    n_bytes += docs[k].size();
    n_tokens += a.encode(docs[k], false).size();
  }
  EXPECT_LT(double(n_tokens) / double(n_bytes), 0.35);
}

TEST(TrainBpeTest, SaveLoadRoundTripsArbitraryUtf8) {
  const auto docs = corpus(200000, 11);
  BpeTrainOptions opts;
  opts.vocab_size = 800;
  opts.bos_token = "<|bos|>";
  opts.chat_format = ChatFormat::kPlain;
  const Tokenizer trained = train_bpe(docs, opts);
  const fs::path dir = fs::temp_directory_path() / ("atax_train_test_" + std::to_string(::getpid()));
  trained.save(dir);
  const Tokenizer t = Tokenizer::load(dir);
  fs::remove_all(dir);
  EXPECT_EQ(t.vocab_size(), 800);
  EXPECT_EQ(t.chat_format(), ChatFormat::kPlain);
  ASSERT_TRUE(t.bos_id().has_value());
  EXPECT_EQ(t.id_to_token(*t.bos_id()), "<|bos|>");
  EXPECT_EQ(t.tokenizer_config()["chat_template"], chat_template_jinja(ChatFormat::kPlain));
  Rng rng(3);
  for (int k = 0; k < 2000; ++k) {
    const std::string s = k < 50 ? docs[k] : random_text(rng);
    const auto ids = t.encode(s, false);
    ASSERT_EQ(ids, trained.encode(s, false)) << json(s).dump();
    ASSERT_EQ(t.decode(ids), s) << json(s).dump();
    const auto with_bos = t.encode(s, true);
    ASSERT_EQ(with_bos.size(), ids.size() + 1);
    EXPECT_EQ(with_bos[0], *t.bos_id());
    EXPECT_EQ(t.decode(with_bos, true), t.decode(ids, true));
  }
  // The plain chat prompt tokenizes and decodes back exactly.
  const std::string prompt = t.apply_chat_template({{"user", "Hi there 😀"}});
  EXPECT_EQ(prompt, "User: Hi there 😀\nAssistant:");
  EXPECT_EQ(t.decode(t.encode(prompt, false)), prompt);
}

TEST(TrainBpeTest, NewlineIsolatingSplitKeepsPromptBoundaries) {
  std::vector<std::string> docs;
  for (int i = 0; i < 200; ++i)
    docs.push_back("def f" + std::to_string(i) + "(x):\n    return x + " + std::to_string(i) + "\n\nprint(f(2))\n");
  BpeTrainOptions opts;
  opts.vocab_size = 400;
  opts.split_pattern = kNewlineIsolatingPattern;
  Tokenizer t = train_bpe(docs, opts);
  fs::path dir = fs::temp_directory_path() / ("atax_bpe_split_" + std::to_string(::getpid()));
  t.save(dir);
  Tokenizer back = Tokenizer::load(dir);
  EXPECT_EQ(back.tokenizer_json()["pre_tokenizer"]["type"], "Sequence");
  // A prompt ending in "\n" tokenizes as a prefix of prompt + completion: the completion's
  // indentation never merges with the newline.
  const std::string prompt = "def g(y):\n", completion = "    return y + 7\n";
  auto p = back.encode(prompt, false), whole = back.encode(prompt + completion, false);
  ASSERT_LE(p.size(), whole.size());
  EXPECT_TRUE(std::equal(p.begin(), p.end(), whole.begin()));
  EXPECT_EQ(back.decode(whole), prompt + completion);
  EXPECT_EQ(back.tokens(back.encode("\n", false)).size(), 1u);
  // Numbers never take the space before them, and split in groups of at most three digits.
  EXPECT_EQ(back.tokens(back.encode("x + 12", false)).back(), "12");
  EXPECT_EQ(back.tokens(back.encode("12", false)), std::vector<std::string>{"12"});
  for (const auto& piece : back.tokens(back.encode("f(1234567) = 1234567", false)))
    EXPECT_LE(std::count_if(piece.begin(), piece.end(), [](char c) { return c >= '0' && c <= '9'; }), 3) << piece;
  fs::remove_all(dir);
}

TEST(TrainBpeTest, RejectsTooSmallVocab) {
  BpeTrainOptions opts;
  opts.vocab_size = 100;
  EXPECT_THROW(train_bpe({"abc"}, opts), Error);
}

}  // namespace
}  // namespace atax
