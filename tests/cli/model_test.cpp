// ctest-labels: model
// The engine's commands through the built binary: `atax init | info | score | generate | convert` on
// a tiny randomly initialised model and on the real stories260K (HF folder, GGUF, converted GGUF)
// against llama.cpp's reference outputs, and malformed model folders.
#include <cmath>

#include "cli_run.h"

using namespace atax;
using namespace atax::cli_test;

namespace {

const std::string kStories = kShared + "/models/stories260K";

// A Llama config small enough to initialise in milliseconds; vocab_size comes from the tokenizer.
const json kTinyConfig = {{"architectures", {"LlamaForCausalLM"}}, {"model_type", "llama"}, {"hidden_size", 32},
                          {"intermediate_size", 64}, {"num_hidden_layers", 2}, {"num_attention_heads", 4},
                          {"num_key_value_heads", 2}, {"max_position_embeddings", 128}, {"rms_norm_eps", 1e-5},
                          {"tie_word_embeddings", false}};

// Parameters of a Llama-family model without biases, counted by hand from its config:
// embeddings V·C, per layer two norms 2C, q H·D·C, k and v 2·Hkv·D·C, o C·H·D, MLP 3·C·F, final
// norm C, and an lm_head V·C unless tied.
int64_t llama_parameters(const json& c) {
  const int64_t V = c["vocab_size"], C = c["hidden_size"], F = c["intermediate_size"], L = c["num_hidden_layers"];
  const int64_t H = c["num_attention_heads"], Hkv = c.value("num_key_value_heads", H);
  const int64_t D = c.contains("head_dim") ? c["head_dim"].get<int64_t>() : C / H;
  const int64_t layer = 2 * C + H * D * C + 2 * Hkv * D * C + C * H * D + 3 * C * F;
  return V * C + L * layer + C + (c.value("tie_word_embeddings", false) ? 0 : V * C);
}

// Trains a 300-piece tokenizer on a seeded toy corpus into `dir`.
void train_tiny_tokenizer(const TempDir& tmp, const std::string& dir) {
  std::vector<json> corpus;
  Rng rng(5);
  const std::vector<std::string> words = {"the", "cat", "sat", "on", "a", "mat", "dog", "ran", "to", "park",
                                          "Lily", "and", "Tom", "played", "with", "ball", "sun", "moon"};
  for (int i = 0; i < 200; ++i) {
    std::string s;
    for (int k = 0; k < 10; ++k) s += (k ? " " : "") + rng.pick(words);
    corpus.push_back({{"text", s + "."}});
  }
  write_jsonl(tmp / "corpus.jsonl", corpus);
  RunResult r = run_atax({"tokenizer", "train", "--input", tmp / "corpus.jsonl", "--vocab-size", "300", "--out", dir});
  ASSERT_EQ(r.code, 0) << r;
}

// A tiny model folder made by `atax init` with `seed`.
void init_tiny_model(const TempDir& tmp, const std::string& out, const std::string& seed) {
  if (!fs::exists(tmp / "tok/tokenizer.json")) train_tiny_tokenizer(tmp, tmp / "tok");
  write_text(tmp / "config.json", kTinyConfig.dump(2));
  RunResult r = run_atax({"init", "--config", tmp / "config.json", "--tokenizer", tmp / "tok", "--out", out, "--seed",
                          seed});
  ASSERT_EQ(r.code, 0) << r;
}

json info(const std::string& model) {
  RunResult r = run_atax({"info", "--model", model});
  EXPECT_EQ(r.code, 0) << r;
  return r.code == 0 ? json::parse(r.out) : json::object();
}

std::string generate(const std::vector<std::string>& extra) {
  std::vector<std::string> args = {"generate"};
  args.insert(args.end(), extra.begin(), extra.end());
  RunResult r = run_atax(args);
  EXPECT_EQ(r.code, 0) << r;
  return r.out;
}

json first_reference() { return read_jsonl(kStories + "/reference.jsonl").at(0); }

}  // namespace

TEST(CliModelTest, InitThenInfoCountsParametersByHand) {
  TempDir tmp("init");
  init_tiny_model(tmp, tmp / "m", "7");
  json got = info(tmp / "m");
  json cfg = kTinyConfig;
  cfg["vocab_size"] = 300;  // taken from the tokenizer
  EXPECT_EQ(llama_parameters(cfg), 37792);
  EXPECT_EQ(got["parameters"], llama_parameters(cfg)) << got.dump(2);
  EXPECT_EQ(got["vocab_size"], 300);
  EXPECT_EQ(got["tokenizer_vocab"], 300);
  EXPECT_EQ(got["architecture"], "LlamaForCausalLM");
  EXPECT_EQ(got["num_key_value_heads"], 2);
  EXPECT_EQ(got["head_dim"], 8);
  EXPECT_EQ(got["tie_word_embeddings"], false);
  EXPECT_EQ(got["tensors"]["model.layers.1.self_attn.k_proj.weight"], json({16, 32}));
  EXPECT_EQ(got["tensors"]["lm_head.weight"], json({300, 32}));
  int64_t summed = 0;
  for (const auto& [name, shape] : got["tensors"].items()) {
    int64_t n = 1;
    for (const auto& d : shape) n *= d.get<int64_t>();
    summed += n;
  }
  EXPECT_EQ(summed, got["parameters"].get<int64_t>());
  for (const char* f : {"config.json", "model.safetensors", "tokenizer.json", "tokenizer_config.json"})
    EXPECT_TRUE(fs::exists(tmp.path() / "m" / f)) << f;
  EXPECT_EQ(read_json(tmp / "m/config.json")["vocab_size"], 300);
}

TEST(CliModelTest, InitIsSeeded) {
  TempDir tmp("initseed");
  init_tiny_model(tmp, tmp / "a", "7");
  init_tiny_model(tmp, tmp / "b", "7");
  init_tiny_model(tmp, tmp / "c", "8");
  EXPECT_EQ(sha256_file(tmp / "a/model.safetensors"), sha256_file(tmp / "b/model.safetensors"));
  EXPECT_NE(sha256_file(tmp / "a/model.safetensors"), sha256_file(tmp / "c/model.safetensors"));
  EXPECT_EQ(info(tmp / "a")["content_hash"], info(tmp / "b")["content_hash"]);
}

TEST(CliModelTest, ScoreTinyModel) {
  TempDir tmp("score");
  init_tiny_model(tmp, tmp / "m", "7");
  write_jsonl(tmp / "in.jsonl", {{{"context", "the cat"}, {"continuation", " sat"}},
                                 {{"context", "Lily and"}, {"continuation", " Tom played with the ball"}}});
  RunResult r = run_atax({"score", "--model", tmp / "m", "--input", tmp / "in.jsonl"});
  ASSERT_EQ(r.code, 0) << r;
  auto lines = parse_lines(r.out);
  ASSERT_EQ(lines.size(), 2u) << r;
  for (const auto& l : lines) {
    EXPECT_LE(l["logprob"].get<double>(), 0.0) << l;
    EXPECT_TRUE(std::isfinite(l["logprob"].get<double>())) << l;
    EXPECT_TRUE(l["is_greedy"].is_boolean()) << l;
    EXPECT_GE(l["n_tokens"].get<int64_t>(), 1) << l;
  }
  // A longer continuation of the same kind has more tokens; a random model gives each roughly
  // log(1/300), so the sum scales with the count (within a wide margin).
  EXPECT_GT(lines[1]["n_tokens"].get<int64_t>(), lines[0]["n_tokens"].get<int64_t>());
  for (const auto& l : lines) {
    const double per_token = -l["logprob"].get<double>() / l["n_tokens"].get<double>();
    EXPECT_NEAR(per_token, std::log(300.0), 2.0) << l;
  }

  // --output writes the same lines to a file.
  r = run_atax({"score", "--model", tmp / "m", "--input", tmp / "in.jsonl", "--output", tmp / "o.jsonl"});
  ASSERT_EQ(r.code, 0) << r;
  EXPECT_EQ(read_jsonl(tmp / "o.jsonl"), lines);

  // Rolling: log-likelihood ≤ 0 with perplexity = exp(-logprob / n_tokens).
  write_jsonl(tmp / "roll.jsonl", {{{"text", "the cat sat on a mat."}}, {{"text", "a"}}});
  r = run_atax({"score", "--model", tmp / "m", "--input", tmp / "roll.jsonl", "--rolling"});
  ASSERT_EQ(r.code, 0) << r;
  auto rolling = parse_lines(r.out);
  ASSERT_EQ(rolling.size(), 2u) << r;
  for (const auto& l : rolling) {
    const double lp = l["logprob"], n = l["n_tokens"];
    EXPECT_LE(lp, 0.0) << l;
    EXPECT_GE(n, 1) << l;
    EXPECT_NEAR(l["perplexity"].get<double>(), std::exp(-lp / n), 1e-6 * std::exp(-lp / n)) << l;
  }
  EXPECT_LT(rolling[0]["logprob"].get<double>(), rolling[1]["logprob"].get<double>());
}

TEST(CliModelTest, ScoreBadLine) {
  TempDir tmp("scorebad");
  write_text(tmp / "in.jsonl", "{\"context\": \"Once upon\", \"continuation\": \" a time\"}\n{\"context\": \"x\"}\n");
  RunResult r = run_atax({"score", "--model", kStories + "/hf", "--input", tmp / "in.jsonl"});
  EXPECT_EQ(r.code, 2) << r;
  EXPECT_TRUE(contains(r.err, "in.jsonl:2")) << r;
  EXPECT_TRUE(contains(r.err, "continuation")) << r;
  r = run_atax({"score", "--model", kStories + "/hf", "--input", tmp / "in.jsonl", "--on-bad-line", "skip"});
  ASSERT_EQ(r.code, 0) << r;
  EXPECT_EQ(parse_lines(r.out).size(), 1u) << r;
}

TEST(CliModelTest, GenerateIsDeterministic) {
  TempDir tmp("gen");
  init_tiny_model(tmp, tmp / "m", "7");
  const std::vector<std::string> greedy = {"--model", tmp / "m", "--prompt", "the cat", "--max-new-tokens", "12"};
  const std::string g1 = generate(greedy), g2 = generate(greedy);
  EXPECT_EQ(g1, g2);
  EXPECT_FALSE(g1.empty());
  auto sampled = [&](const std::string& seed) {
    auto args = greedy;
    args.insert(args.end(), {"--temperature", "1.0", "--seed", seed});
    return generate(args);
  };
  const std::string s1 = sampled("3"), s2 = sampled("3"), s3 = sampled("4");
  EXPECT_EQ(s1, s2);
  // With 300 near-uniform choices per token, two seeds agreeing on 12 tokens is (1/300)^12 unlikely.
  EXPECT_NE(s1, s3);
}

// stories260K: 260 032 unique parameters (embedding 32 768 + 5 × 45 440 + final norm 64, see
// SOURCE.md); the lm_head is tied to the embedding and must not be counted twice, in every format.
TEST(CliModelTest, Stories260kInfo) {
  json cfg = read_json(kStories + "/hf/config.json");
  EXPECT_EQ(llama_parameters(cfg), 260032);
  json hf = info(kStories + "/hf");
  EXPECT_EQ(hf["parameters"], 260032) << hf.dump(2);
  EXPECT_EQ(hf["tie_word_embeddings"], true);
  EXPECT_EQ(hf["num_attention_heads"], 8);
  EXPECT_EQ(hf["num_key_value_heads"], 4);
  EXPECT_EQ(hf["head_dim"], 8);
  EXPECT_EQ(hf["vocab_size"], 512);
  EXPECT_EQ(hf["tokenizer_vocab"], 512);
  json gguf = info(kStories + "/stories260K.gguf");
  EXPECT_EQ(gguf["parameters"], 260032) << gguf.dump(2);
  EXPECT_EQ(gguf["tensors"], hf["tensors"]);
}

TEST(CliModelTest, Stories260kGreedyMatchesLlamaCpp) {
  const json ref = first_reference();
  ASSERT_EQ(ref["prompt"], "Once upon a time");
  const std::string want = ref["continuation_text"].get<std::string>() + "\n";
  EXPECT_EQ(generate({"--model", kStories + "/hf", "--prompt", "Once upon a time", "--max-new-tokens", "32"}), want);
  EXPECT_EQ(generate({"--model", kStories + "/stories260K.gguf", "--prompt", "Once upon a time", "--max-new-tokens",
                      "32"}),
            want);
  // A prompt with a newline (a byte-fallback token) too.
  for (const auto& r : read_jsonl(kStories + "/reference.jsonl")) {
    if (r["name"] != "newline") continue;
    EXPECT_EQ(generate({"--model", kStories + "/hf", "--prompt", r["prompt"], "--max-new-tokens", "32"}),
              r["continuation_text"].get<std::string>() + "\n");
  }
}

TEST(CliModelTest, Stories260kConvertedGgufGeneratesTheSame) {
  TempDir tmp("s260conv");
  RunResult r = run_atax({"convert", "--in", kStories + "/stories260K.gguf", "--out", tmp / "hf"});
  ASSERT_EQ(r.code, 0) << r;
  json summary = json::parse(r.out);
  EXPECT_EQ(summary["architecture"], "LlamaForCausalLM");
  EXPECT_EQ(summary["gguf_tensors"], 48);
  for (const char* f : {"config.json", "model.safetensors", "tokenizer.json", "tokenizer_config.json"})
    EXPECT_TRUE(fs::exists(tmp.path() / "hf" / f)) << f;
  EXPECT_EQ(info(tmp / "hf")["parameters"], 260032);
  const json ref = first_reference();
  EXPECT_EQ(generate({"--model", tmp / "hf", "--prompt", "Once upon a time", "--max-new-tokens", "32"}),
            ref["continuation_text"].get<std::string>() + "\n");

  // A second convert into the same folder (its own earlier output, by its manifest) rewrites it
  // identically; a folder of files atax did not write is refused without --force (CliHostileInputTest).
  const std::string before = sha256_file(tmp / "hf/model.safetensors");
  r = run_atax({"convert", "--in", kStories + "/stories260K.gguf", "--out", tmp / "hf"});
  EXPECT_EQ(r.code, 0) << r;
  EXPECT_EQ(sha256_file(tmp / "hf/model.safetensors"), before);
  r = run_atax({"convert", "--in", kStories + "/hf/config.json", "--out", tmp / "x"});
  EXPECT_EQ(r.code, 2) << r;
  EXPECT_TRUE(contains(r.err, "config.json")) << r;
}

// lm-eval's loglikelihood request on every reference prompt: the continuation's summed log-prob
// equals llama.cpp's (per-position log-probs agree to ~1e-5; 32 of them summed, within 1e-3)
// and it is the greedy continuation. --rolling scores the whole text after BOS.
TEST(CliModelTest, Stories260kScoreMatchesLlamaCpp) {
  TempDir tmp("s260score");
  std::vector<json> reqs, texts, want_cont, want_text;
  for (const auto& r : read_jsonl(kStories + "/reference.jsonl")) {
    const auto& lp = r["logprobs"];
    const size_t n_prompt = r["prompt_ids"].size();
    double cont = 0, all = 0;
    for (size_t i = 0; i < lp.size(); ++i) {
      all += lp[i].get<double>();
      if (i + 1 >= n_prompt) cont += lp[i].get<double>();
    }
    if (!r["prompt"].get<std::string>().empty()) {
      reqs.push_back({{"context", r["prompt"]}, {"continuation", r["continuation_text"]}});
      want_cont.push_back(cont);
    }
    texts.push_back({{"text", r["text"]}});
    want_text.push_back({{"logprob", all}, {"n", lp.size()}});
  }
  write_jsonl(tmp / "req.jsonl", reqs);
  write_jsonl(tmp / "text.jsonl", texts);
  RunResult r = run_atax({"score", "--model", kStories + "/hf", "--input", tmp / "req.jsonl"});
  ASSERT_EQ(r.code, 0) << r;
  auto got = parse_lines(r.out);
  ASSERT_EQ(got.size(), reqs.size());
  for (size_t i = 0; i < got.size(); ++i) {
    EXPECT_NEAR(got[i]["logprob"].get<double>(), want_cont[i].get<double>(), 1e-3) << reqs[i];
    EXPECT_TRUE(got[i]["is_greedy"].get<bool>()) << reqs[i];
    EXPECT_EQ(got[i]["n_tokens"], 32) << reqs[i];
  }
  r = run_atax({"score", "--model", kStories + "/hf", "--input", tmp / "text.jsonl", "--rolling"});
  ASSERT_EQ(r.code, 0) << r;
  got = parse_lines(r.out);
  ASSERT_EQ(got.size(), texts.size());
  for (size_t i = 0; i < got.size(); ++i) {
    EXPECT_NEAR(got[i]["logprob"].get<double>(), want_text[i]["logprob"].get<double>(), 1e-3) << texts[i];
    EXPECT_EQ(got[i]["n_tokens"], want_text[i]["n"]) << texts[i];
  }
}

TEST(CliModelTest, TruncatedSafetensorsIsRejectedWithTheFileName) {
  TempDir tmp("trunc");
  fs::copy(kStories + "/hf", tmp / "m", fs::copy_options::recursive);
  const fs::path st = tmp.path() / "m/model.safetensors";
  for (uintmax_t size : {uintmax_t(600000), uintmax_t(100), uintmax_t(4)}) {
    fs::resize_file(st, size);
    for (const char* cmd : {"info", "generate"}) {
      std::vector<std::string> args = {cmd, "--model", tmp / "m"};
      if (std::string(cmd) == "generate") args.insert(args.end(), {"--prompt", "Once"});
      RunResult r = run_atax(args);
      EXPECT_EQ(r.code, 2) << size << " " << r;
      EXPECT_TRUE(contains(r.err, "atax: error: ")) << r;
      EXPECT_TRUE(contains(r.err, "model.safetensors")) << r;
      EXPECT_TRUE(r.out.empty()) << r;
    }
  }
}

TEST(CliModelTest, UnknownArchitectureIsRejected) {
  TempDir tmp("arch");
  fs::copy(kStories + "/hf", tmp / "m", fs::copy_options::recursive);
  json cfg = read_json(tmp / "m/config.json");
  cfg["architectures"] = {"FooForCausalLM"};
  write_text(tmp / "m/config.json", cfg.dump(2));
  RunResult r = run_atax({"info", "--model", tmp / "m"});
  EXPECT_EQ(r.code, 2) << r;
  EXPECT_TRUE(contains(r.err, "config.json")) << r;
  EXPECT_TRUE(contains(r.err, "FooForCausalLM")) << r;
  EXPECT_TRUE(contains(r.err, "LlamaForCausalLM")) << r;  // the hint lists what is supported
}

TEST(CliModelTest, MissingOrIncompleteFolderIsRejected) {
  TempDir tmp("missing");
  RunResult r = run_atax({"info", "--model", tmp / "nope"});
  EXPECT_EQ(r.code, 2) << r;
  EXPECT_TRUE(contains(r.err, tmp / "nope")) << r;
  fs::copy(kStories + "/hf", tmp / "m", fs::copy_options::recursive);
  fs::remove(tmp.path() / "m/config.json");
  r = run_atax({"generate", "--model", tmp / "m", "--prompt", "Once"});
  EXPECT_EQ(r.code, 2) << r;
  EXPECT_TRUE(contains(r.err, "config.json")) << r;
  // A config whose shapes disagree with the weights names the tensor.
  fs::copy_file(kStories + "/hf/config.json", tmp / "m/config.json");
  json cfg = read_json(tmp / "m/config.json");
  cfg["intermediate_size"] = 128;
  write_text(tmp / "m/config.json", cfg.dump(2));
  r = run_atax({"info", "--model", tmp / "m"});
  EXPECT_EQ(r.code, 2) << r;
  EXPECT_TRUE(contains(r.err, "mlp")) << r;
  // A config that is not JSON.
  write_text(tmp / "bad.json", "{\"architectures\": [\"LlamaForCausalLM\"], \"hidden_size\": 32");
  r = run_atax({"init", "--config", tmp / "bad.json", "--tokenizer", kStories + "/hf", "--out", tmp / "x"});
  EXPECT_EQ(r.code, 2) << r;
  EXPECT_TRUE(contains(r.err, "bad.json")) << r;
  EXPECT_FALSE(fs::exists(tmp / "x"));
}
