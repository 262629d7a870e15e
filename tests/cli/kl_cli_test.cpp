// ctest-labels: model
// `atax kl` on the real stories260K model: a model against itself has KL 0 and the same top token
// everywhere; copies with perturbed weights (written here from the safetensors bytes) have KL > 0.
#include <cstring>
#include <functional>
#include <sstream>

#include "cli_run.h"

using namespace atax;
using namespace atax::cli_test;

namespace {

const std::string kStories = kShared + "/models/stories260K/hf";

// Copies stories260K to `dir` and applies `fn` to the float32 values of tensor `name` in place
// (safetensors: 8-byte little-endian header length, JSON header, then the data).
void perturbed_copy(const fs::path& dir, const std::string& name, const std::function<void(std::vector<float>&)>& fn) {
  fs::create_directories(dir);
  for (const auto& e : fs::directory_iterator(kStories)) fs::copy_file(e.path(), dir / e.path().filename());
  std::string bytes = read_file(dir / "model.safetensors");
  uint64_t n = 0;
  std::memcpy(&n, bytes.data(), 8);
  const json header = json::parse(bytes.substr(8, n));
  ASSERT_TRUE(header.contains(name)) << name;
  ASSERT_EQ(header[name]["dtype"], "F32");
  const size_t b = header[name]["data_offsets"][0], e = header[name]["data_offsets"][1];
  std::vector<float> v((e - b) / 4);
  std::memcpy(v.data(), bytes.data() + 8 + n + b, e - b);
  fn(v);
  std::memcpy(bytes.data() + 8 + n + b, v.data(), e - b);
  write_file_atomic(dir / "model.safetensors", bytes);
}

const std::vector<std::string> kTexts = {
    "Once upon a time, there was a little girl named Lily. She loved to play outside in the park.",
    "One day, a big dog came to the park. The dog was very happy and wanted to play with Lily.",
    "Tom had a red ball. He threw the ball to his friend Sam, and they laughed and ran in the sun.",
    "The little bird sat in the tree. It sang a song to the sky, and the sky was blue and warm.",
};

json kl_run(const std::string& base, const std::string& model, const fs::path& data, const fs::path& out,
            const std::vector<std::string>& extra = {}) {
  std::vector<std::string> args = {"kl", "--base", base, "--model", model, "--data", data.string(), "--out", out.string(),
                                   "--device", "cpu"};
  args.insert(args.end(), extra.begin(), extra.end());
  RunResult r = run_atax(args);
  EXPECT_EQ(r.code, 0) << r;
  EXPECT_TRUE(contains(r.out, "| Mean KLD |")) << r;
  EXPECT_TRUE(contains(r.out, "| Same top token |")) << r;
  return r.code == 0 ? read_json(out) : json();
}

void expect_ordered_percentiles(const json& kl) {
  const char* order[] = {"min", "p1", "p5", "p10", "median", "p90", "p99", "p99_9", "max"};
  for (size_t i = 1; i < std::size(order); ++i)
    EXPECT_LE(kl[order[i - 1]].get<double>(), kl[order[i]].get<double>()) << order[i - 1] << " vs " << order[i];
  EXPECT_GE(kl["mean"].get<double>(), kl["min"].get<double>());
  EXPECT_LE(kl["mean"].get<double>(), kl["max"].get<double>());
}

}  // namespace

TEST(KlCliTest, ModelAgainstItselfAndPerturbedCopies) {
  TempDir tmp("kl");
  std::vector<json> lines;
  for (const auto& t : kTexts) lines.push_back({{"text", t}});
  write_jsonl(tmp / "held_out.jsonl", lines);

  // Itself: every position has KL 0 (the same forward pass twice) and the same top token.
  const json self = kl_run(kStories, kStories, tmp / "held_out.jsonl", tmp / "self.json");
  ASSERT_TRUE(self.is_object());
  EXPECT_EQ(self["texts"], 4);
  EXPECT_GT(self["positions"].get<int64_t>(), 60);
  EXPECT_NEAR(self["kl"]["mean"].get<double>(), 0.0, 1e-12);
  EXPECT_NEAR(self["kl"]["max"].get<double>(), 0.0, 1e-12);
  EXPECT_NEAR(self["kl"]["stderr"].get<double>(), 0.0, 1e-12);
  EXPECT_DOUBLE_EQ(self["same_top"]["share"].get<double>(), 1.0);
  EXPECT_EQ(self["base"]["content_hash"], self["model"]["content_hash"]);

  // Logits scaled by 1.5 (the final RMSNorm's weight × 1.5; the output matrix is tied to the
  // embeddings): a sharper distribution, so KL > 0 at every position, but the same ranking, so the
  // top token agrees (up to float rounding at near-ties).
  perturbed_copy(tmp.path() / "sharp", "model.norm.weight", [](std::vector<float>& w) {
    for (float& x : w) x *= 1.5f;
  });
  const json sharp = kl_run(kStories, tmp / "sharp", tmp / "held_out.jsonl", tmp / "sharp.json");
  ASSERT_TRUE(sharp.is_object());
  EXPECT_EQ(sharp["positions"], self["positions"]);
  EXPECT_GT(sharp["kl"]["mean"].get<double>(), 1e-3);
  EXPECT_GT(sharp["kl"]["min"].get<double>(), 0.0);
  EXPECT_GT(sharp["kl"]["stderr"].get<double>(), 0.0);
  EXPECT_LT(sharp["kl"]["stderr"].get<double>(), sharp["kl"]["mean"].get<double>());
  EXPECT_GE(sharp["same_top"]["share"].get<double>(), 0.98);
  EXPECT_NE(sharp["base"]["content_hash"], sharp["model"]["content_hash"]);
  expect_ordered_percentiles(sharp["kl"]);

  // Seeded noise on one MLP matrix: KL > 0.
  perturbed_copy(tmp.path() / "noisy", "model.layers.0.mlp.down_proj.weight", [](std::vector<float>& w) {
    Rng rng(7);
    for (float& x : w) x += static_cast<float>(0.05 * (rng.uniform01() - 0.5));
  });
  const json noisy = kl_run(kStories, tmp / "noisy", tmp / "held_out.jsonl", tmp / "noisy.json");
  ASSERT_TRUE(noisy.is_object());
  EXPECT_GT(noisy["kl"]["mean"].get<double>(), 1e-6);
  EXPECT_LE(noisy["same_top"]["share"].get<double>(), 1.0);
  expect_ordered_percentiles(noisy["kl"]);

  // --limit 1: the first text only.
  const json one = kl_run(kStories, tmp / "sharp", tmp / "held_out.jsonl", tmp / "one.json", {"--limit", "1"});
  ASSERT_TRUE(one.is_object());
  EXPECT_EQ(one["texts"], 1);
  EXPECT_LT(one["positions"].get<int64_t>(), sharp["positions"].get<int64_t>() / 2);
  EXPECT_EQ(one["data"]["limit"], 1);
}

TEST(KlCliTest, UserErrorsNameTheFileAndOption) {
  TempDir tmp("kl_errors");
  RunResult r = run_atax({"kl", "--base", kStories, "--model", kStories, "--data", tmp / "missing.jsonl"});
  EXPECT_EQ(r.code, 2) << r;
  EXPECT_TRUE(contains(r.err, "--data: no such file")) << r;
  EXPECT_TRUE(contains(r.err, "missing.jsonl")) << r;

  write_text(tmp.path() / "bad.jsonl", "{\"text\": \"Once upon a time.\"}\n{\"prompt\": \"no text here\"}\n");
  r = run_atax({"kl", "--base", kStories, "--model", kStories, "--data", tmp / "bad.jsonl"});
  EXPECT_EQ(r.code, 2) << r;
  EXPECT_TRUE(contains(r.err, "bad.jsonl:2")) << r;
  EXPECT_TRUE(contains(r.err, "text")) << r;

  r = run_atax({"kl", "--base", kStories, "--model", tmp / "nowhere", "--data", tmp / "bad.jsonl"});
  EXPECT_EQ(r.code, 2) << r;
  EXPECT_TRUE(contains(r.err, "--model: no such model folder")) << r;

  write_text(tmp.path() / "ok.jsonl", "{\"text\": \"Once upon a time.\"}\n");
  r = run_atax({"kl", "--base", kStories, "--model", kStories, "--data", tmp / "ok.jsonl", "--limit", "-1"});
  EXPECT_EQ(r.code, 2) << r;
  EXPECT_TRUE(contains(r.err, "--limit")) << r;

  // A model with another tokenizer (the ids of two vocabulary entries swapped) is refused, naming it.
  const fs::path other = tmp.path() / "other_tokenizer";
  fs::create_directories(other);
  for (const auto& e : fs::directory_iterator(kStories)) fs::copy_file(e.path(), other / e.path().filename());
  json tok = read_json(other / "tokenizer.json");
  json& vocab = tok["model"]["vocab"];
  ASSERT_TRUE(vocab.contains("▁Lily") && vocab.contains("▁Once"));
  std::swap(vocab["▁Lily"], vocab["▁Once"]);
  write_text(other / "tokenizer.json", tok.dump());
  r = run_atax({"kl", "--base", kStories, "--model", other.string(), "--data", tmp / "ok.jsonl"});
  EXPECT_EQ(r.code, 2) << r;
  EXPECT_TRUE(contains(r.err, "share one tokenizer")) << r;
  EXPECT_TRUE(contains(r.err, "other_tokenizer")) << r;
}
