// ctest-labels: unit
// `atax template render --template FILE --input VARS.jsonl` on real templates of ../shared: a line
// renders byte-identically to jinja2 (the expected texts of tests/template/fixtures/renders.json),
// a line the template rejects gives {"error"} naming the template, the exit status is 1 when any
// line failed and 0 when all rendered, and a missing template file is one clear error.
#include "cli_run.h"

using namespace atax;
using namespace atax::cli_test;

namespace {

const std::string kGemma = kShared + "/chat_templates/google-gemma-2-2b-it.jinja";
const std::string kQwen3Config = kShared + "/tokenizers/qwen3/tokenizer_config.json";

// The fixture case of `source` and `conversation` (vars, and text or error).
json fixture_case(const std::string& source, const std::string& conversation) {
  static const json doc = read_json(fs::path(ATAX_SOURCE_DIR) / "tests/template/fixtures/renders.json");
  for (const json& c : doc["cases"])
    if (c["source"] == source && c["conversation"] == conversation) return c;
  ADD_FAILURE() << "no fixture case " << source << " / " << conversation;
  return json::object();
}

TEST(TemplateCliTest, RendersLinesAndReportsTheFailingOne) {
  TempDir tmp("template_render");
  const json good = fixture_case("chat_templates/google-gemma-2-2b-it.jinja", "single_user");
  const json bad = fixture_case("chat_templates/google-gemma-2-2b-it.jinja", "with_system");
  ASSERT_TRUE(good.contains("text"));
  ASSERT_EQ(bad["error"], "System role not supported");  // the template's raise_exception

  // All lines render: exit 0, one {"text"} per line, byte-identical to jinja2.
  write_jsonl(tmp / "good.jsonl", {good["vars"], good["vars"]});
  RunResult ok = run_atax({"template", "render", "--template", kGemma, "--input", tmp / "good.jsonl"});
  ASSERT_EQ(ok.code, 0) << ok;
  std::vector<json> lines = parse_lines(ok.out);
  ASSERT_EQ(lines.size(), 2u) << ok;
  for (const json& l : lines) {
    ASSERT_TRUE(l.contains("text")) << l.dump();
    EXPECT_EQ(l.size(), 1u) << l.dump();
    EXPECT_EQ(l["text"].get<std::string>(), good["text"].get<std::string>());
  }

  // One line the template raises on, between two good ones: exit 1, an error line in its place.
  write_jsonl(tmp / "mixed.jsonl", {good["vars"], bad["vars"], good["vars"]});
  RunResult mixed = run_atax({"template", "render", "--template", kGemma, "--input", tmp / "mixed.jsonl"});
  EXPECT_EQ(mixed.code, 1) << mixed;
  lines = parse_lines(mixed.out);
  ASSERT_EQ(lines.size(), 3u) << mixed;
  EXPECT_EQ(lines[0]["text"].get<std::string>(), good["text"].get<std::string>());
  EXPECT_EQ(lines[2]["text"].get<std::string>(), good["text"].get<std::string>());
  ASSERT_TRUE(lines[1].contains("error")) << mixed;
  EXPECT_FALSE(lines[1].contains("text"));
  const std::string err = lines[1]["error"];
  EXPECT_TRUE(contains(err, "google-gemma-2-2b-it.jinja")) << err;  // names the template
  EXPECT_TRUE(contains(err, "System role not supported")) << err;   // with its own message
  EXPECT_TRUE(contains(mixed.err, "1 of the lines")) << mixed;

  // A line that is not JSON fails alone, naming the input file and line.
  write_text(tmp / "broken.jsonl", good["vars"].dump() + "\n{not json\n");
  RunResult broken = run_atax({"template", "render", "--template", kGemma, "--input", tmp / "broken.jsonl"});
  EXPECT_EQ(broken.code, 1) << broken;
  lines = parse_lines(broken.out);
  ASSERT_EQ(lines.size(), 2u) << broken;
  EXPECT_TRUE(lines[0].contains("text"));
  EXPECT_TRUE(contains(lines[1].value("error", ""), "broken.jsonl")) << broken;
}

TEST(TemplateCliTest, ReadsTheTemplateOfATokenizerConfig) {
  TempDir tmp("template_config");
  const json c = fixture_case("tokenizers/qwen3/tokenizer_config.json", "single_user");
  ASSERT_TRUE(c.contains("text"));
  write_jsonl(tmp / "in.jsonl", {c["vars"]});
  RunResult r = run_atax({"template", "render", "--template", kQwen3Config, "--input", tmp / "in.jsonl"});
  ASSERT_EQ(r.code, 0) << r;
  std::vector<json> lines = parse_lines(r.out);
  ASSERT_EQ(lines.size(), 1u) << r;
  EXPECT_EQ(lines[0]["text"].get<std::string>(), c["text"].get<std::string>());
}

TEST(TemplateCliTest, MissingTemplateFileIsOneClearError) {
  TempDir tmp("template_missing");
  const json good = fixture_case("chat_templates/google-gemma-2-2b-it.jinja", "single_user");
  write_jsonl(tmp / "in.jsonl", {good["vars"]});
  for (const std::string& missing : {tmp / "nope.jinja", tmp / "tokenizer_config.json"}) {
    RunResult r = run_atax({"template", "render", "--template", missing, "--input", tmp / "in.jsonl"});
    EXPECT_EQ(r.code, 2) << r;
    EXPECT_TRUE(r.out.empty()) << r;  // no line rendered with a template that is not there
    EXPECT_TRUE(contains(r.err, "atax: error:")) << r;
    EXPECT_TRUE(contains(r.err, missing)) << r;
    EXPECT_TRUE(contains(r.err, "no such file")) << r;
  }
}

}  // namespace
