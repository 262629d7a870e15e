// stories260K.gguf (llama.cpp's own converter output, ../shared/models/stories260K, see its
// SOURCE.md) against the Hugging Face folder made from it and llama.cpp's tokenization: the
// container, the config, every weight after the name mapping and q/k un-permutation, and the
// tokenizer built from the GGUF metadata.
#include <gtest/gtest.h>

#include "gguf/gguf.h"
#include "tokenizer/tokenizer.h"

using namespace atax;
using namespace atax::gguf;

namespace {

const fs::path kDir = fs::path(ATAX_SHARED_DIR) / "models/stories260K";

class StoriesGgufTest : public ::testing::Test {
 protected:
  void SetUp() override {
    if (!fs::exists(kDir / "stories260K.gguf")) GTEST_SKIP() << "../shared/models/stories260K not present";
    file_ = std::make_unique<GgufFile>(GgufFile::open(kDir / "stories260K.gguf"));
  }
  const GgufFile& f() const { return *file_; }
  std::unique_ptr<GgufFile> file_;
};

TEST_F(StoriesGgufTest, ContainerAndMetadata) {
  EXPECT_EQ(f().version(), 3u);
  EXPECT_EQ(f().file_size(), 1185376u);
  EXPECT_EQ(f().alignment(), 32u);  // general.alignment absent: the default
  EXPECT_EQ(f().metadata().size(), 19u);
  EXPECT_EQ(f().get_string("general.architecture"), "llama");
  EXPECT_EQ(f().get_int("llama.context_length"), 512);
  EXPECT_EQ(f().get_int("llama.embedding_length"), 64);
  EXPECT_EQ(f().get_int("llama.feed_forward_length"), 172);
  EXPECT_EQ(f().get_int("llama.attention.head_count"), 8);
  EXPECT_EQ(f().get_int("llama.attention.head_count_kv"), 4);
  EXPECT_EQ(f().get_int("llama.block_count"), 5);
  EXPECT_EQ(f().get_int("llama.rope.dimension_count"), 8);
  EXPECT_EQ(f().get_float32("llama.attention.layer_norm_rms_epsilon"), 1e-5f);
  EXPECT_EQ(f().get_string("tokenizer.ggml.model"), "llama");
  EXPECT_EQ(f().get_string_array("tokenizer.ggml.tokens")->size(), 512u);
  EXPECT_EQ(f().get_string_array("tokenizer.ggml.tokens")->at(410), "\xE2\x96\x81");
  EXPECT_EQ(f().get_float_array("tokenizer.ggml.scores")->at(300), -41.0);
  EXPECT_EQ(f().get_int_array("tokenizer.ggml.token_type")->at(3), 6);  // <0x00>: BYTE
  EXPECT_EQ(f().get_int("tokenizer.ggml.padding_token_id"), 4294967295ll);
  ASSERT_EQ(f().tensors().size(), 48u);
  for (const TensorInfo& t : f().tensors()) EXPECT_EQ(t.type, GgmlType::kF32) << t.name;
  EXPECT_EQ(f().find_tensor("blk.0.attn_k.weight")->shape(), (std::vector<int64_t>{32, 64}));
  EXPECT_EQ(f().find_tensor("blk.4.ffn_down.weight")->shape(), (std::vector<int64_t>{64, 172}));
}

TEST_F(StoriesGgufTest, ConfigMatchesTheHfFolder) {
  json c = hf_config_json(f());
  json hf = read_json(kDir / "hf/config.json");
  for (const char* k : {"architectures", "model_type", "vocab_size", "hidden_size", "intermediate_size",
                        "num_hidden_layers", "num_attention_heads", "num_key_value_heads", "head_dim", "hidden_act",
                        "max_position_embeddings", "rms_norm_eps", "rope_theta", "rope_scaling", "attention_bias",
                        "mlp_bias", "tie_word_embeddings", "bos_token_id", "eos_token_id", "torch_dtype"})
    EXPECT_EQ(c[k], hf[k]) << k;
  EXPECT_EQ(c["rms_norm_eps"].get<double>(), 1e-05);  // exactly, not 9.9999997e-06
}

TEST_F(StoriesGgufTest, WeightsEqualHfSafetensorsExactly) {
  auto want = load_safetensors(kDir / "hf/model.safetensors");
  ASSERT_EQ(want.size(), 48u);
  auto got = hf_weights(f());
  // output.weight is a byte copy of token_embd.weight: tied, so lm_head is not a separate weight.
  EXPECT_EQ(got.size(), 47u);
  EXPECT_EQ(got.count("lm_head.weight"), 0u);
  for (const auto& [name, w] : want) {
    const torch::Tensor& g = got.count(name) ? got.at(name) : got.at("model.embed_tokens.weight");
    ASSERT_EQ(g.sizes(), w.sizes()) << name;
    EXPECT_TRUE(torch::equal(g, w)) << name << ": max diff " << (g - w).abs().max().item<float>();
  }
  // Negative control: without the un-permutation q differs from the HF layout.
  torch::Tensor raw_q = load_tensor(f(), *f().find_tensor("blk.0.attn_q.weight"));
  EXPECT_FALSE(torch::equal(raw_q, want.at("model.layers.0.self_attn.q_proj.weight")));
}

TEST_F(StoriesGgufTest, TokenizerJsonMatchesTheHfFolder) {
  json got = hf_tokenizer_json(f());
  json want = read_json(kDir / "hf/tokenizer.json");
  EXPECT_EQ(got["model"]["vocab"], want["model"]["vocab"]);
  ASSERT_EQ(got["model"]["merges"].size(), 165u);
  EXPECT_EQ(got["model"]["merges"], want["model"]["merges"]);  // same 165 merges in the same order
  for (const char* k : {"added_tokens", "normalizer", "pre_tokenizer", "post_processor", "decoder"})
    EXPECT_EQ(got[k], want[k]) << k;
  for (const char* k : {"type", "byte_fallback", "fuse_unk", "unk_token", "dropout"})
    EXPECT_EQ(got["model"][k], want["model"][k]) << k;
  json cfg = hf_tokenizer_config_json(f());
  json want_cfg = read_json(kDir / "hf/tokenizer_config.json");
  for (const char* k : {"add_bos_token", "add_eos_token", "bos_token", "eos_token", "unk_token", "pad_token",
                        "added_tokens_decoder", "legacy", "model_max_length", "tokenizer_class",
                        "clean_up_tokenization_spaces", "spaces_between_special_tokens"})
    EXPECT_EQ(cfg[k], want_cfg[k]) << k;
  EXPECT_FALSE(cfg.contains("chat_template"));  // a base model
}

TEST_F(StoriesGgufTest, TokenizerReproducesLlamaCppIds) {
  Tokenizer tok =
      Tokenizer::from_json(hf_tokenizer_json(f()), hf_tokenizer_config_json(f()), f().name());
  EXPECT_EQ(tok.vocab_size(), 512);
  EXPECT_EQ(tok.bos_id(), 1);
  EXPECT_EQ(tok.eos_id(), 2);
  int ids_ok = 0, text_ok = 0, n = 0;
  for (const json& r : read_jsonl(kDir / "reference.jsonl")) {
    ++n;
    auto want = r["prompt_ids"].get<std::vector<int32_t>>();
    auto got = tok.encode(r["prompt"].get<std::string>(), true);
    EXPECT_EQ(got, want) << r["name"];
    ids_ok += got == want;
    std::vector<int32_t> all = want;
    for (int32_t id : r["continuation_ids"].get<std::vector<int32_t>>()) all.push_back(id);
    std::string text = tok.decode(all, true);
    EXPECT_EQ(text, r["text"].get<std::string>()) << r["name"];
    text_ok += text == r["text"].get<std::string>();
    EXPECT_EQ(tok.tokens(want), r["prompt_tokens"].get<std::vector<std::string>>()) << r["name"];
  }
  EXPECT_EQ(n, 13);
  std::cout << "stories260K.gguf tokenizer: prompt ids " << ids_ok << "/" << n << ", decoded text " << text_ok << "/"
            << n << "\n";
}

}  // namespace
