// ctest-labels: unit
// Tokenizer behaviour on small hand-made tokenizer.json documents (merge order, added-token
// options, split behaviours, post-processors, Metaspace, byte fallback) and rejection of
// malformed files with an Error that names the file.
#include <gtest/gtest.h>

#include <fstream>

#include "tokenizer/internal.h"
#include "tokenizer/tokenizer.h"

namespace atax {
namespace {

const fs::path kShared = ATAX_SHARED_DIR;

// A byte-level BPE document: the 256 byte symbols plus `merges` (strings "a b", byte-level
// spelling) whose results are added to the vocab in order.
json byte_level_doc(const std::vector<std::string>& merges = {}) {
  const auto& table = tok::byte_level_table();
  json vocab = json::object();
  int32_t next = 0;
  for (int b = 0; b < 256; ++b) vocab[table.byte_to_utf8[b]] = next++;
  json merge_list = json::array();
  for (const std::string& m : merges) {
    const size_t sp = m.find(' ');
    const std::string merged = m.substr(0, sp) + m.substr(sp + 1);
    if (!vocab.contains(merged)) vocab[merged] = next++;
    merge_list.push_back(m);
  }
  return {{"version", "1.0"},
          {"added_tokens", json::array()},
          {"normalizer", nullptr},
          {"pre_tokenizer", {{"type", "ByteLevel"}, {"add_prefix_space", false}, {"use_regex", true}}},
          {"post_processor", nullptr},
          {"decoder", {{"type", "ByteLevel"}}},
          {"model", {{"type", "BPE"}, {"vocab", vocab}, {"merges", merge_list}}}};
}

json added(int32_t id, const std::string& content, bool special, json extra = json::object()) {
  json t = {{"id", id},        {"content", content}, {"single_word", false}, {"lstrip", false},
            {"rstrip", false}, {"normalized", false}, {"special", special}};
  t.update(extra);
  return t;
}

std::vector<std::string> pieces(const Tokenizer& t, const std::string& text, bool special = false) {
  return t.tokens(t.encode(text, special));
}

using V = std::vector<std::string>;

TEST(TokenizerTest, MergesApplyByRankLeftmostFirst) {
  // "b c" outranks "a b": "abc" -> a + bc -> abc (via "a bc").
  const Tokenizer t = Tokenizer::from_json(byte_level_doc({"b c", "a b", "a bc", "x x"}));
  EXPECT_EQ(pieces(t, "abc"), (V{"abc"}));
  EXPECT_EQ(pieces(t, "ab"), (V{"ab"}));
  EXPECT_EQ(pieces(t, "xxx"), (V{"xx", "x"}));  // leftmost pair first
  EXPECT_EQ(pieces(t, "xxxxx"), (V{"xx", "xx", "x"}));
  // The GPT-2 pre-tokenizer keeps " abc" apart from "abc" (Ġ = space).
  EXPECT_EQ(pieces(t, "abc abc"), (V{"abc", "\xC4\xA0", "abc"}));
  EXPECT_EQ(t.decode(t.encode("abc abc")), "abc abc");
  // Long words (> 64 symbols) take the heap path and must agree with the short path.
  std::string longword(301, 'x');
  const auto ids = t.encode(longword, false);
  EXPECT_EQ(ids.size(), 151u);
  EXPECT_EQ(t.decode(ids), longword);
}

TEST(TokenizerTest, IgnoreMergesEmitsWholeVocabWords) {
  json doc = byte_level_doc({"a b", "c d", "b c"});
  // "abcd" would merge to ab + cd; put "abcd" itself in the vocab.
  doc["model"]["vocab"]["abcd"] = 300;
  Tokenizer plain = Tokenizer::from_json(doc);
  EXPECT_EQ(pieces(plain, "abcd"), (V{"ab", "cd"}));
  doc["model"]["ignore_merges"] = true;
  Tokenizer ignore = Tokenizer::from_json(doc);
  EXPECT_EQ(pieces(ignore, "abcd"), (V{"abcd"}));
}

TEST(TokenizerTest, MergesAsPairsEqualMergesAsStrings) {
  json doc = byte_level_doc({"a b", "ab c"});
  json pairs = json::array({json::array({"a", "b"}), json::array({"ab", "c"})});
  json doc2 = doc;
  doc2["model"]["merges"] = pairs;
  EXPECT_EQ(Tokenizer::from_json(doc).encode("abcabc"), Tokenizer::from_json(doc2).encode("abcabc"));
  EXPECT_EQ(pieces(Tokenizer::from_json(doc2), "abcab"), (V{"abc", "ab"}));
}

TEST(TokenizerTest, AddedTokensStripAndSingleWord) {
  json doc = byte_level_doc();
  doc["added_tokens"] = json::array({added(300, "<mask>", true, {{"lstrip", true}}),
                                     added(301, "<r>", true, {{"rstrip", true}}),
                                     added(302, "[X]", false, {{"single_word", true}, {"normalized", false}}),
                                     added(303, "<m", false)});
  const Tokenizer t = Tokenizer::from_json(doc);
  // lstrip: the spaces before <mask> belong to it.
  EXPECT_EQ(pieces(t, "a  <mask> b"), (V{"a", "<mask>", "\xC4\xA0", "b"}));
  // rstrip: the spaces after <r> belong to it.
  EXPECT_EQ(pieces(t, "a <r>  b"), (V{"a", "\xC4\xA0", "<r>", "b"}));
  // single_word: only when not inside a word.
  EXPECT_EQ(pieces(t, "a [X] b")[2], "[X]");
  EXPECT_EQ(pieces(t, "a[X]b"), (V{"a", "[", "X", "]", "b"}));
  // Leftmost-longest: "<mask>" wins over its prefix "<m"; "<m" alone still matches.
  EXPECT_EQ(pieces(t, "<mask><m"), (V{"<mask>", "<m"}));
  // skip_special_tokens drops special added tokens only.
  EXPECT_EQ(t.decode(t.encode("x<mask>y<m"), true), "xy<m");
  EXPECT_TRUE(t.is_special(300));
  EXPECT_FALSE(t.is_special(303));
}

TEST(TokenizerTest, NormalizedAddedTokensMatchAfterNormalization) {
  json doc = byte_level_doc();
  doc["normalizer"] = {{"type", "Lowercase"}};
  doc["added_tokens"] = json::array({added(300, "hello", false, {{"normalized", true}})});
  const Tokenizer t = Tokenizer::from_json(doc);
  EXPECT_EQ(pieces(t, "HeLLo World"), (V{"hello", "\xC4\xA0", "w", "o", "r", "l", "d"}));
}

TEST(TokenizerTest, SplitBehavioursFollowHf) {
  // The example of HF's SplitDelimiterBehavior documentation.
  const std::string s = "the-final--countdown";
  std::vector<std::pair<size_t, size_t>> m = {{3, 4}, {9, 10}, {10, 11}};
  auto run = [&](tok::SplitBehavior b, bool invert = false) {
    std::vector<std::string> out;
    tok::split_on_matches(s, m, b, invert, out);
    return out;
  };
  EXPECT_EQ(run(tok::SplitBehavior::kRemoved), (V{"the", "final", "countdown"}));
  EXPECT_EQ(run(tok::SplitBehavior::kIsolated), (V{"the", "-", "final", "-", "-", "countdown"}));
  EXPECT_EQ(run(tok::SplitBehavior::kMergedWithPrevious), (V{"the-", "final-", "-", "countdown"}));
  EXPECT_EQ(run(tok::SplitBehavior::kMergedWithNext), (V{"the", "-final", "-", "-countdown"}));
  EXPECT_EQ(run(tok::SplitBehavior::kContiguous), (V{"the", "-", "final", "--", "countdown"}));
  EXPECT_EQ(run(tok::SplitBehavior::kRemoved, true), (V{"-", "-", "-"}));
}

TEST(TokenizerTest, RegexWhitespaceIsUnicodeWhiteSpace) {
  // Oniguruma's \s (what HF uses): NEL U+0085 is whitespace, BOM U+FEFF is not.
  const tok::Regex re(R"(\s+)", "test");
  std::vector<std::pair<size_t, size_t>> m;
  re.find_all("a\xC2\x85 \xEF\xBB\xBF" "b\xE3\x80\x80", m);
  ASSERT_EQ(m.size(), 2u);
  EXPECT_EQ(m[0], (std::pair<size_t, size_t>{1, 4}));
  EXPECT_EQ(m[1], (std::pair<size_t, size_t>{8, 11}));
}

TEST(TokenizerTest, PostProcessors) {
  json doc = byte_level_doc();
  doc["added_tokens"] = json::array({added(300, "<s>", true), added(301, "</s>", true)});
  doc["post_processor"] = {{"type", "TemplateProcessing"},
                           {"single", "<s>:0 $A:0 </s>:0"},
                           {"special_tokens", json::object()}};
  Tokenizer t = Tokenizer::from_json(doc);
  EXPECT_EQ(t.encode("a", true), (std::vector<int32_t>{300, 'a', 301}));  // byte b has id b here
  EXPECT_EQ(t.encode("a", false).size(), 1u);
  doc["post_processor"] = {{"type", "RobertaProcessing"}, {"cls", {"<s>", 300}}, {"sep", {"</s>", 301}}};
  t = Tokenizer::from_json(doc);
  EXPECT_EQ(t.tokens(t.encode("a", true)), (V{"<s>", "a", "</s>"}));
  // A config with add_bos/add_eos rewrites the post-processor (transformers' update_post_processor).
  t = Tokenizer::from_json(doc, {{"bos_token", "<s>"}, {"eos_token", "</s>"}, {"add_bos_token", false},
                                 {"add_eos_token", true}});
  EXPECT_EQ(t.tokens(t.encode("a", true)), (V{"a", "</s>"}));
  EXPECT_EQ(t.bos_id(), 300);
  EXPECT_EQ(t.eos_id(), 301);
}

TEST(TokenizerTest, MetaspacePreTokenizerAndDecoder) {
  json vocab = {{"<unk>", 0}, {"\xE2\x96\x81", 1}, {"H", 2}, {"i", 3}, {"\xE2\x96\x81H", 4}, {"\xE2\x96\x81Hi", 5}};
  json doc = {{"normalizer", nullptr},
              {"pre_tokenizer", {{"type", "Metaspace"}, {"replacement", "\xE2\x96\x81"}, {"prepend_scheme", "always"}, {"split", true}}},
              {"decoder", {{"type", "Metaspace"}, {"replacement", "\xE2\x96\x81"}, {"prepend_scheme", "always"}, {"split", true}}},
              {"model", {{"type", "BPE"}, {"unk_token", "<unk>"}, {"fuse_unk", true}, {"vocab", vocab},
                         {"merges", {"\xE2\x96\x81 H", "\xE2\x96\x81H i"}}}}};
  const Tokenizer t = Tokenizer::from_json(doc);
  EXPECT_EQ(pieces(t, "Hi Hi"), (V{"\xE2\x96\x81Hi", "\xE2\x96\x81Hi"}));
  EXPECT_EQ(t.decode(t.encode("Hi Hi")), "Hi Hi");
  // Unknown characters become one fused <unk>.
  EXPECT_EQ(pieces(t, "Hxyz"), (V{"\xE2\x96\x81H", "<unk>"}));
}

TEST(TokenizerTest, ByteFallbackDecodesInvalidBytesAsReplacementCharacters) {
  if (!fs::exists(kShared / "tokenizers" / "mistral")) GTEST_SKIP() << "../shared not present";
  const Tokenizer t = Tokenizer::load(kShared / "tokenizers" / "mistral");
  // Pending byte tokens that are not valid UTF-8 become one U+FFFD each (HF ByteFallback).
  const auto e2 = *t.token_to_id("<0xE2>"), a = *t.token_to_id("<0x41>"), hello = *t.token_to_id("\xE2\x96\x81Hello");
  EXPECT_EQ(t.decode({e2, e2, a}), "\xEF\xBF\xBD\xEF\xBF\xBD\xEF\xBF\xBD");
  EXPECT_EQ(t.decode({e2, e2, hello}), "\xEF\xBF\xBD\xEF\xBF\xBD Hello");
  EXPECT_EQ(t.decode({a, hello}), "A Hello");
  // A character outside the vocab (U+20000) falls back to its UTF-8 bytes.
  EXPECT_EQ(t.tokens(t.encode("\xF0\xA0\x80\x80", false)), (V{"\xE2\x96\x81", "<0xF0>", "<0xA0>", "<0x80>", "<0x80>"}));
  EXPECT_EQ(t.encode("Hello", true)[0], 1);
}

TEST(TokenizerTest, InvalidUtf8InputIsReplacedNotRejected) {
  const Tokenizer t = Tokenizer::from_json(byte_level_doc());
  // 0xFF and a truncated 3-byte sequence each become U+FFFD.
  EXPECT_EQ(t.decode(t.encode("a\xFF" "b\xE2\x82")), "a\xEF\xBF\xBD" "b\xEF\xBF\xBD");
}

TEST(TokenizerTest, DecodeRejectsIdsOutsideTheVocabulary) {
  const Tokenizer t = Tokenizer::from_json(byte_level_doc());
  EXPECT_EQ(t.vocab_size(), 256);
  EXPECT_THROW(t.decode({256}), Error);
  EXPECT_THROW(t.decode({-1}), Error);
  EXPECT_THROW(t.id_to_token(1000), Error);
}

// ---------------------------------------------------------------------------------------------
// Malformed files
// ---------------------------------------------------------------------------------------------

class MalformedTest : public ::testing::Test {
 protected:
  fs::path dir_;
  void SetUp() override {
    dir_ = fs::temp_directory_path() / ("atax_tok_" + std::to_string(::getpid()) + "_" +
                                        ::testing::UnitTest::GetInstance()->current_test_info()->name());
    fs::create_directories(dir_);
  }
  void TearDown() override { fs::remove_all(dir_); }
  fs::path write(const std::string& name, const std::string& content) {
    std::ofstream(dir_ / name, std::ios::binary) << content;
    return dir_ / name;
  }
  // Loads `dir_` and expects an Error that names `file` and says `what`.
  void expect_error(const std::string& file, const std::string& what) {
    try {
      Tokenizer::load(dir_);
      ADD_FAILURE() << "no error for " << what;
    } catch (const Error& e) {
      const std::string msg = e.what();
      EXPECT_NE(msg.find((dir_ / file).string()), std::string::npos) << msg;
      EXPECT_NE(msg.find(what), std::string::npos) << msg;
      EXPECT_FALSE(e.hint().empty()) << msg;
    }
  }
};

TEST_F(MalformedTest, NotJson) {
  write("tokenizer.json", "{\"model\": {\"type\": \"BPE\", ");
  try {
    Tokenizer::load(dir_);
    ADD_FAILURE() << "no error";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("tokenizer.json"), std::string::npos) << e.what();
  }
}

TEST_F(MalformedTest, StructuralProblems) {
  const std::vector<std::pair<json, std::string>> cases = {
      {json::array(), "not a JSON object"},
      {json{{"version", "1.0"}}, "no \"model\""},
      {[] { json d = byte_level_doc(); d["model"]["type"] = "WordPiece"; return d; }(), "\"WordPiece\" is not supported"},
      {[] { json d = byte_level_doc(); d["model"]["merges"] = {"a zz"}; return d; }(), "references \"zz\""},
      {[] { json d = byte_level_doc(); d["model"]["merges"] = {"a b"}; return d; }(), "produces \"ab\""},
      {[] { json d = byte_level_doc(); d["model"]["merges"] = {"ab"}; return d; }(), "not of the form"},
      {[] { json d = byte_level_doc(); d["model"]["merges"] = {json::array({"a"})}; return d; }(), "neither"},
      {[] { json d = byte_level_doc(); d["model"]["vocab"]["q"] = "x"; return d; }(), "not a non-negative integer id"},
      {[] { json d = byte_level_doc(); d["model"]["vocab"]["zz"] = 5; return d; }(), "gives id 5 to both"},
      {[] { json d = byte_level_doc(); d["model"].erase("vocab"); return d; }(), "model.vocab is missing"},
      {[] { json d = byte_level_doc(); d["model"]["unk_token"] = "<unk>"; return d; }(), "unk_token \"<unk>\""},
      {[] { json d = byte_level_doc(); d["model"]["dropout"] = 0.1; return d; }(), "dropout"},
      {[] { json d = byte_level_doc(); d["pre_tokenizer"] = {{"type", "Split"}, {"pattern", {{"Regex", "(a"}}}, {"behavior", "Isolated"}}; return d; }(), "does not compile"},
      {[] { json d = byte_level_doc(); d["pre_tokenizer"] = {{"type", "Split"}, {"pattern", {{"Regex", "a"}}}, {"behavior", "Sideways"}}; return d; }(), "\"Sideways\""},
      {[] { json d = byte_level_doc(); d["pre_tokenizer"] = {{"type", "BertPreTokenizer"}}; return d; }(), "\"BertPreTokenizer\" is not supported"},
      {[] { json d = byte_level_doc(); d["normalizer"] = {{"type", "Precompiled"}}; return d; }(), "\"Precompiled\" is not supported"},
      {[] { json d = byte_level_doc(); d["decoder"] = {{"type", "CTC"}}; return d; }(), "\"CTC\" is not supported"},
      {[] { json d = byte_level_doc(); d["post_processor"] = {{"type", "TemplateProcessing"}, {"single", "<bos> $A"}}; return d; }(), "\"<bos>\""},
      {[] { json d = byte_level_doc(); d["added_tokens"] = {{{"id", 300}}}; return d; }(), "added_tokens[0]"},
      {[] { json d = byte_level_doc(); d["added_tokens"] = {{{"id", -3}, {"content", "<x>"}}}; return d; }(), "added_tokens[0]"},
  };
  for (const auto& [doc, what] : cases) {
    SCOPED_TRACE(what);
    write("tokenizer.json", doc.dump());
    expect_error("tokenizer.json", what);
  }
}

// An absurd token id (each id reserves a slot for every id below it) is refused naming the field,
// before anything is allocated: never std::bad_alloc. Ids with gaps stay fine up to the bound.
TEST_F(MalformedTest, AbsurdTokenIdsNameTheFieldNotBadAlloc) {
  const std::vector<std::pair<json, std::string>> added_ids = {
      {json(4e9), "added_tokens[1] has no non-negative integer \"id\""},  // a float
      {json(int64_t(4000000000)), "added_tokens[1] has no non-negative integer \"id\""},  // past int32
      {json(int64_t(1) << 40), "added_tokens[1] has no non-negative integer \"id\""},
      {json(uint64_t(18446744073709551615ull)), "added_tokens[1] has no non-negative integer \"id\""},
      {json(int64_t(2147483647)), "added_tokens[1] has id 2147483647, but the file defines only 258 tokens"},
      {json(int64_t(1000000)), "added_tokens[1] has id 1000000"},
  };
  for (const auto& [id, what] : added_ids) {
    SCOPED_TRACE(id.dump());
    json doc = byte_level_doc();
    doc["added_tokens"] = json::array({added(256, "<s>", true), added(0, "<x>", true)});
    doc["added_tokens"][1]["id"] = id;
    write("tokenizer.json", doc.dump());
    EXPECT_NO_THROW({
      try {
        expect_error("tokenizer.json", what);
      } catch (const std::bad_alloc&) {
        ADD_FAILURE() << "std::bad_alloc instead of an error naming the field";
      }
    });
  }
  for (const json& id : {json(int64_t(1) << 40), json(int64_t(2147483647))}) {
    SCOPED_TRACE("model.vocab " + id.dump());
    json doc = byte_level_doc();
    doc["model"]["vocab"]["zz"] = id;
    write("tokenizer.json", doc.dump());
    expect_error("tokenizer.json", "model.vocab[\"zz\"]");
  }
  // A gap within the bound (2 * 258 + 65536) loads, and the id decodes to its token.
  json gap = byte_level_doc();
  gap["added_tokens"] = json::array({added(256, "<s>", true), added(60000, "<x>", true)});
  write("tokenizer.json", gap.dump());
  Tokenizer t = Tokenizer::load(dir_);
  EXPECT_EQ(t.id_to_token(60000), "<x>");
}

TEST_F(MalformedTest, ConfigProblems) {
  json doc = byte_level_doc();
  doc["added_tokens"] = json::array({added(300, "<s>", true)});
  write("tokenizer.json", doc.dump());
  write("tokenizer_config.json", json{{"tokenizer_class", "LlamaTokenizer"}}.dump());
  expect_error("tokenizer_config.json", "add_bos_token is true but there is no bos_token");
  write("tokenizer_config.json", json{{"bos_token", "<bos>"}}.dump());
  expect_error("tokenizer_config.json", "\"<bos>\" is not a token");
  write("tokenizer_config.json", "[1, 2]");
  expect_error("tokenizer_config.json", "not a JSON object");
}

TEST_F(MalformedTest, MissingFiles) {
  try {
    Tokenizer::load(dir_);
    ADD_FAILURE() << "no error";
  } catch (const Error& e) {
    EXPECT_EQ(e.file(), dir_.string());
    EXPECT_NE(e.message().find("no tokenizer.json"), std::string::npos);
  }
  EXPECT_THROW(Tokenizer::load(dir_ / "nope.json"), Error);
}

}  // namespace
}  // namespace atax
