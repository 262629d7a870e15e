// GGUF metadata -> Hugging Face: config.json for llama and qwen2 files, tensor names, llama's q/k
// un-permutation, Llama-3 rope_freqs, and tokenizer.json / tokenizer_config.json for 'llama'
// (SentencePiece) and 'gpt2' (byte-level BPE) vocabularies, on tiny constructed files.
#include <gtest/gtest.h>

#include <sys/resource.h>
#include <unistd.h>

#include <cmath>
#include <fstream>
#include <numbers>

#include "gguf/gguf.h"
#include "gguf_builder.h"
#include "tokenizer/tokenizer.h"

using namespace atax;
using namespace atax::gguf;
using namespace gguf_test;

namespace {

const std::string kSp = "\xE2\x96\x81";  // ▁

std::vector<float> iota(size_t n, float start = 0) {
  std::vector<float> v(n);
  for (size_t i = 0; i < n; ++i) v[i] = start + static_cast<float>(i);
  return v;
}

// A one-layer model: hidden 8, 2 query heads and 1 key/value head of size 4, MLP 12, vocab 12.
// Every tensor holds distinct values (its index plus an offset) so mappings are visible.
Builder tiny_model(const std::string& arch = "llama", bool with_output = false, bool with_bias = false) {
  Builder b;
  b.str("general.architecture", arch);
  b.u32(arch + ".context_length", 64).u32(arch + ".embedding_length", 8).u32(arch + ".block_count", 1);
  b.u32(arch + ".feed_forward_length", 12).u32(arch + ".attention.head_count", 2);
  b.u32(arch + ".attention.head_count_kv", 1).f32(arch + ".attention.layer_norm_rms_epsilon", 1e-5f);
  b.u32(arch + ".rope.dimension_count", 4);
  b.f32_tensor("token_embd.weight", {8, 12}, iota(96, 1000));
  b.f32_tensor("output_norm.weight", {8}, iota(8, 2000));
  if (with_output) b.f32_tensor("output.weight", {8, 12}, iota(96, 3000));
  b.f32_tensor("blk.0.attn_norm.weight", {8}, iota(8, 4000));
  b.f32_tensor("blk.0.attn_q.weight", {8, 8}, iota(64, 5000));
  b.f32_tensor("blk.0.attn_k.weight", {8, 4}, iota(32, 6000));
  b.f32_tensor("blk.0.attn_v.weight", {8, 4}, iota(32, 7000));
  if (with_bias) {
    b.f32_tensor("blk.0.attn_q.bias", {8}, iota(8, 5500));
    b.f32_tensor("blk.0.attn_k.bias", {4}, iota(4, 6500));
    b.f32_tensor("blk.0.attn_v.bias", {4}, iota(4, 7500));
  }
  b.f32_tensor("blk.0.attn_output.weight", {8, 8}, iota(64, 8000));
  b.f32_tensor("blk.0.ffn_norm.weight", {8}, iota(8, 9000));
  b.f32_tensor("blk.0.ffn_gate.weight", {8, 12}, iota(96, 10000));
  b.f32_tensor("blk.0.ffn_up.weight", {8, 12}, iota(96, 11000));
  b.f32_tensor("blk.0.ffn_down.weight", {12, 8}, iota(96, 12000));
  return b;
}

// A 12-piece SentencePiece vocabulary: <unk> <s> </s> <0x0A> then merged pieces and characters
// with scores counting down, as SentencePiece's BPE trainer writes them.
Builder& spm_vocab(Builder& b) {
  b.str("tokenizer.ggml.model", "llama");
  b.strs("tokenizer.ggml.tokens", {"<unk>", "<s>", "</s>", "<0x0A>", kSp + "t", "he", kSp + "the", kSp + "th", kSp,
                                   "t", "h", "e"});
  b.f32s("tokenizer.ggml.scores", {0, 0, 0, 0, -0.f, -1, -2, -3, -4, -5, -6, -7});
  b.i32s("tokenizer.ggml.token_type", {2, 3, 3, 6, 1, 1, 1, 1, 1, 1, 1, 1});
  return b;
}

GgufFile file(const Builder& b, const std::string& name = "tiny.gguf") { return GgufFile::from_bytes(b.build(), name); }

void expect_error(const Builder& b, const std::function<void(const GgufFile&)>& fn, const std::string& needle) {
  GgufFile f = file(b);
  try {
    fn(f);
    ADD_FAILURE() << "no error; expected '" << needle << "'";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find(needle), std::string::npos) << e.what();
    EXPECT_EQ(e.file(), "tiny.gguf");
    EXPECT_FALSE(e.hint().empty());
  }
}

TEST(MetaTest, LlamaConfigFromMetadataWithLlamaCppDefaults) {
  Builder b = tiny_model();
  json c = hf_config_json(file(spm_vocab(b)));
  json want = {{"architectures", {"LlamaForCausalLM"}},
               {"model_type", "llama"},
               {"vocab_size", 12},
               {"hidden_size", 8},
               {"intermediate_size", 12},
               {"num_hidden_layers", 1},
               {"num_attention_heads", 2},
               {"num_key_value_heads", 1},
               {"head_dim", 4},
               {"hidden_act", "silu"},
               {"max_position_embeddings", 64},
               {"rms_norm_eps", 1e-05},  // float32 9.99999975e-06 written back as the decimal it came from
               {"rope_theta", 10000.0},  // rope.freq_base absent: llama.cpp's default
               {"rope_scaling", nullptr},
               {"attention_bias", false},
               {"mlp_bias", false},
               {"tie_word_embeddings", true},  // no output.weight
               {"bos_token_id", 1},
               {"eos_token_id", 2},
               {"torch_dtype", "float32"}};
  EXPECT_EQ(c, want) << c.dump(1);
  ModelConfig mc = ModelConfig::from_json(c, "tiny.gguf");
  EXPECT_EQ(mc.dim_per_head(), 4);
  EXPECT_TRUE(mc.tie_word_embeddings);
}

TEST(MetaTest, Qwen2ConfigHasBiasesAndItsOwnTheta) {
  Builder b = tiny_model("qwen2", /*with_output=*/true, /*with_bias=*/true);
  b.f32("qwen2.rope.freq_base", 1000000.f).u32("qwen2.attention.key_length", 4);
  b.str("tokenizer.ggml.model", "gpt2").str("tokenizer.ggml.pre", "qwen2");
  b.strs("tokenizer.ggml.tokens", {"a", "b", "ab", "<|endoftext|>"}).strs("tokenizer.ggml.merges", {"a b"});
  b.u32("tokenizer.ggml.eos_token_id", 3).u32("tokenizer.ggml.bos_token_id", 3);
  json c = hf_config_json(file(b));
  EXPECT_EQ(c["architectures"], json({"Qwen2ForCausalLM"}));
  EXPECT_EQ(c["model_type"], "qwen2");
  EXPECT_EQ(c["attention_bias"], true);
  EXPECT_EQ(c["rope_theta"], 1000000.0);
  EXPECT_EQ(c["tie_word_embeddings"], false);  // output.weight differs from the embedding
  EXPECT_EQ(c["eos_token_id"], 3);
  EXPECT_NO_THROW(ModelConfig::from_json(c, "tiny.gguf"));
}

TEST(MetaTest, TensorNamesAndTiedOutput) {
  Builder b = tiny_model("llama", /*with_output=*/true);
  std::map<std::string, std::string> names;
  GgufFile f = file(b);
  for (const TensorPlan& p : hf_tensor_plan(f)) names[f.tensors()[p.index].name] = p.hf_name;
  std::map<std::string, std::string> want = {
      {"token_embd.weight", "model.embed_tokens.weight"},
      {"output_norm.weight", "model.norm.weight"},
      {"output.weight", "lm_head.weight"},
      {"blk.0.attn_norm.weight", "model.layers.0.input_layernorm.weight"},
      {"blk.0.attn_q.weight", "model.layers.0.self_attn.q_proj.weight"},
      {"blk.0.attn_k.weight", "model.layers.0.self_attn.k_proj.weight"},
      {"blk.0.attn_v.weight", "model.layers.0.self_attn.v_proj.weight"},
      {"blk.0.attn_output.weight", "model.layers.0.self_attn.o_proj.weight"},
      {"blk.0.ffn_norm.weight", "model.layers.0.post_attention_layernorm.weight"},
      {"blk.0.ffn_gate.weight", "model.layers.0.mlp.gate_proj.weight"},
      {"blk.0.ffn_up.weight", "model.layers.0.mlp.up_proj.weight"},
      {"blk.0.ffn_down.weight", "model.layers.0.mlp.down_proj.weight"}};
  EXPECT_EQ(names, want);
  // An output.weight that is a byte copy of the embedding means tied embeddings.
  Builder t = tiny_model();
  t.f32_tensor("output.weight", {8, 12}, iota(96, 1000));
  GgufFile ft = file(t);
  EXPECT_EQ(hf_config_json(ft)["tie_word_embeddings"], true);
  for (const TensorPlan& p : hf_tensor_plan(ft)) EXPECT_NE(p.hf_name, "lm_head.weight");
}

TEST(MetaTest, UnpermuteRowsFormula) {
  // Head size 4: HF row h·4 + j·2 + i comes from GGUF row h·4 + 2i + j.
  EXPECT_EQ(unpermute_rows(4, 1), (std::vector<int64_t>{0, 2, 1, 3}));
  EXPECT_EQ(unpermute_rows(8, 2), (std::vector<int64_t>{0, 2, 1, 3, 4, 6, 5, 7}));
  // Head size 8: [0 2 4 6 1 3 5 7] within each head.
  EXPECT_EQ(unpermute_rows(8, 1), (std::vector<int64_t>{0, 2, 4, 6, 1, 3, 5, 7}));
}

// llama.cpp's convert_hf_to_gguf permute(): w.reshape(heads, 2, D/2, cols).swapaxes(1, 2).
torch::Tensor llama_cpp_permute(const torch::Tensor& w, int64_t heads) {
  auto sizes = w.sizes().vec();
  int64_t rows = w.size(0), cols = w.dim() == 2 ? w.size(1) : 1;
  return w.reshape({heads, 2, rows / heads / 2, cols}).transpose(1, 2).reshape(sizes);
}

TEST(MetaTest, LlamaQkUnpermutedQwen2Untouched) {
  GgufFile f = file(tiny_model("llama", false, /*with_bias=*/true));
  auto w = hf_weights(f);
  torch::Tensor q_gguf = load_tensor(f, *f.find_tensor("blk.0.attn_q.weight"));  // [8, 8]
  torch::Tensor q_hf = w.at("model.layers.0.self_attn.q_proj.weight");
  // Hand-worked: HF rows 0..3 of head 0 are GGUF rows 0, 2, 1, 3; head 1 rows 4, 6, 5, 7.
  std::vector<int64_t> src = {0, 2, 1, 3, 4, 6, 5, 7};
  for (int64_t r = 0; r < 8; ++r) EXPECT_TRUE(torch::equal(q_hf[r], q_gguf[src[r]])) << "row " << r;
  EXPECT_EQ(q_hf[1][0].item<float>(), 5000 + 2 * 8);  // GGUF row 2, column 0
  // The un-permutation inverts llama.cpp's permute for q (2 heads), k (1 head) and their biases.
  EXPECT_TRUE(torch::equal(llama_cpp_permute(q_hf, 2), q_gguf));
  EXPECT_TRUE(torch::equal(llama_cpp_permute(w.at("model.layers.0.self_attn.k_proj.weight"), 1),
                           load_tensor(f, *f.find_tensor("blk.0.attn_k.weight"))));
  EXPECT_TRUE(torch::equal(llama_cpp_permute(w.at("model.layers.0.self_attn.q_proj.bias"), 2),
                           load_tensor(f, *f.find_tensor("blk.0.attn_q.bias"))));
  EXPECT_TRUE(torch::equal(w.at("model.layers.0.self_attn.v_proj.weight"),
                           load_tensor(f, *f.find_tensor("blk.0.attn_v.weight"))));
  EXPECT_EQ(w.count("lm_head.weight"), 0u);
  EXPECT_EQ(w.size(), 14u);  // embedding, final norm, 9 layer weights, 3 biases
  // qwen2 GGUFs keep HF's layout.
  GgufFile g = file(tiny_model("qwen2", false, true));
  auto wq = hf_weights(g, torch::kBFloat16);
  EXPECT_EQ(wq.at("model.layers.0.self_attn.q_proj.weight").dtype(), torch::kBFloat16);
  EXPECT_TRUE(torch::equal(wq.at("model.layers.0.self_attn.q_proj.weight").to(torch::kFloat32),
                           load_tensor(g, *g.find_tensor("blk.0.attn_q.weight")).to(torch::kBFloat16).to(torch::kFloat32)));
}

TEST(MetaTest, Llama3RopeFreqsBecomeRopeScaling) {
  // One head of size 128 so that the frequencies span Llama-3's smoothing band.
  Builder b;
  b.str("general.architecture", "llama");
  b.u32("llama.embedding_length", 8).u32("llama.block_count", 1).u32("llama.feed_forward_length", 8);
  b.u32("llama.attention.head_count", 1).u32("llama.attention.key_length", 128);
  b.f32("llama.attention.layer_norm_rms_epsilon", 1e-5f).f32("llama.rope.freq_base", 500000.f);
  b.f32_tensor("token_embd.weight", {8, 4}, iota(32));
  b.f32_tensor("blk.0.attn_q.weight", {8, 128}, iota(1024));
  b.f32_tensor("blk.0.attn_k.weight", {8, 128}, iota(1024));
  // HF's llama3 rope scaling (factor 8, low 1, high 4, original context 8192) as llama.cpp's
  // converter stores it: one divisor per frequency.
  std::vector<float> factors;
  int smoothed = 0;
  for (int i = 0; i < 64; ++i) {
    double freq = std::pow(500000.0, -2.0 * i / 128), wavelen = 2 * std::numbers::pi / freq;
    if (wavelen < 8192.0 / 4) factors.push_back(1.0f);
    else if (wavelen > 8192.0 / 1) factors.push_back(8.0f);
    else {
      double smooth = (8192.0 / wavelen - 1) / (4 - 1);
      factors.push_back(static_cast<float>(1 / ((1 - smooth) / 8 + smooth)));
      ++smoothed;
    }
  }
  ASSERT_GT(smoothed, 0);
  Builder good = b;
  good.f32_tensor("rope_freqs.weight", {64}, factors);
  json c = hf_config_json(file(good));
  EXPECT_EQ(c["rope_scaling"], json({{"rope_type", "llama3"}, {"type", "llama3"}, {"factor", 8.0},
                                     {"low_freq_factor", 1.0}, {"high_freq_factor", 4.0},
                                     {"original_max_position_embeddings", 8192}}));
  EXPECT_EQ(c["rope_theta"], 500000.0);
  for (const TensorPlan& p : hf_tensor_plan(file(good))) EXPECT_EQ(p.hf_name.find("rope"), std::string::npos);
  Builder bad = b;
  bad.f32_tensor("rope_freqs.weight", {64}, std::vector<float>(64, 2.0f));
  expect_error(bad, [](const GgufFile& f) { hf_config_json(f); }, "does not follow Llama-3's rope scaling");
}

TEST(MetaTest, UnsupportedModelsAreErrors) {
  Builder arch = tiny_model();
  arch.kvs[0] = gstr("general.architecture") + le<uint32_t>(STR) + gstr("qwen3");
  expect_error(arch, [](const GgufFile& f) { hf_config_json(f); }, "unsupported architecture 'qwen3'");
  Builder moe = tiny_model();
  moe.u32("llama.expert_count", 8);
  expect_error(moe, [](const GgufFile& f) { hf_config_json(f); }, "mixture-of-experts");
  Builder extra = tiny_model();
  extra.f32_tensor("blk.0.ffn_gate_exps.weight", {8}, iota(8));
  expect_error(extra, [](const GgufFile& f) { hf_tensor_plan(f); }, "tensor 'blk.0.ffn_gate_exps.weight' is not part");
  Builder layer = tiny_model();
  layer.f32_tensor("blk.7.attn_norm.weight", {8}, iota(8));
  expect_error(layer, [](const GgufFile& f) { hf_tensor_plan(f); }, "tensor 'blk.7.attn_norm.weight'");
  Builder missing;
  missing.str("general.architecture", "llama");
  expect_error(missing, [](const GgufFile& f) { hf_config_json(f); }, "metadata 'llama.embedding_length' is missing");
  Builder shape = tiny_model();
  shape.u32("llama.attention.key_length", 3);
  expect_error(shape, [](const GgufFile& f) { hf_config_json(f); }, "head size 3 must be positive and even");
  Builder q = tiny_model();
  q.u32("llama.attention.key_length", 2);
  q.kvs.erase(q.kvs.begin() + 8);  // rope.dimension_count
  expect_error(q, [](const GgufFile& f) { hf_config_json(f); }, "tensor 'blk.0.attn_q.weight' has shape [8, 8]");
  Builder yarn = tiny_model();
  yarn.str("llama.rope.scaling.type", "yarn");
  expect_error(yarn, [](const GgufFile& f) { hf_config_json(f); }, "rope scaling 'yarn' is not supported");
  Builder split = tiny_model();
  split.u32("split.count", 3).u32("split.no", 0);
  expect_error(split, [](const GgufFile& f) { hf_config_json(f); }, "shard 1 of a 3-file split GGUF");
}

// An absurd block_count (10^9 as uint32, 2^40 as uint64) is refused from the file's own blk.N
// tensors, before anything is sized by it. The whole load runs under an address-space limit of
// 1 GiB above what the process holds, so a loader that allocated layer by layer would end in
// bad_alloc (or LibTorch's allocation error) here instead of an atax::Error naming the key.
TEST(MetaTest, AbsurdBlockCountIsRefusedBeforeAllocating) {
  const fs::path dir = fs::temp_directory_path() / ("atax_gguf_blocks_" + std::to_string(::getpid()));
  fs::create_directories(dir);
  for (const std::string& payload : {le<uint32_t>(U32) + le<uint32_t>(1000000000u),
                                     le<uint32_t>(U64) + le<uint64_t>(uint64_t(1) << 40)}) {
    Builder b = tiny_model();
    spm_vocab(b);
    ASSERT_EQ(b.kvs[3].substr(8, 17), "llama.block_count");
    b.kvs[3] = gstr("llama.block_count") + payload;
    const std::string count = payload.size() == 8 ? "1000000000" : "1099511627776";
    const std::string needle = "metadata 'llama.block_count' = " + count + ", but the file holds tensors of 1 blocks";
    expect_error(b, [](const GgufFile& f) { hf_config_json(f); }, needle);
    expect_error(b, [](const GgufFile& f) { hf_tensor_plan(f); }, needle);
    const fs::path path = dir / "absurd.gguf";
    write_file_atomic(path, b.build());
    struct rlimit old {};
    ASSERT_EQ(::getrlimit(RLIMIT_AS, &old), 0);
    std::ifstream statm("/proc/self/statm");
    int64_t pages = 0;
    statm >> pages;
    struct rlimit capped = old;
    capped.rlim_cur = static_cast<rlim_t>(pages * ::sysconf(_SC_PAGESIZE) + (int64_t(1) << 30));
    if (old.rlim_cur != RLIM_INFINITY) capped.rlim_cur = std::min(capped.rlim_cur, old.rlim_cur);
    ASSERT_EQ(::setrlimit(RLIMIT_AS, &capped), 0);
    std::string outcome;
    try {
      LoadOptions lo;
      lo.device = "cpu";
      (void)load_gguf_model(path, lo);
      outcome = "loaded";
    } catch (const Error& e) {
      outcome = e.what();
    } catch (const std::bad_alloc&) {
      outcome = "std::bad_alloc";
    } catch (const std::exception& e) {
      outcome = std::string("other exception: ") + e.what();
    }
    ::setrlimit(RLIMIT_AS, &old);
    EXPECT_NE(outcome.find(needle), std::string::npos) << outcome.substr(0, 400);
    EXPECT_NE(outcome.find(path.string()), std::string::npos) << outcome.substr(0, 400);
  }
  // The same file with the true count loads: the refusal above is the count's alone.
  Builder good = tiny_model();
  spm_vocab(good);
  write_file_atomic(dir / "good.gguf", good.build());
  LoadOptions lo;
  lo.device = "cpu";
  EXPECT_EQ(load_gguf_model(dir / "good.gguf", lo).config.num_hidden_layers, 1);
  fs::remove_all(dir);
}

// --------------------------------------------------------------------------------- tokenizers

TEST(MetaTest, SentencePieceMergesFromScores) {
  Builder b = tiny_model();
  json t = hf_tokenizer_json(file(spm_vocab(b)));
  // Splits of each piece whose halves are in the vocabulary (by code points):
  //   ▁t = ▁+t (score 0), he = h+e (−1), ▁the = ▁t+he and ▁th+e (−2), ▁th = ▁t+h (−3).
  // Sorted by (score, len(l), len(r)) descending: ▁th+e (3,1) comes before ▁t+he (2,2).
  EXPECT_EQ(t["model"]["merges"],
            json({kSp + " t", "h e", kSp + "th e", kSp + "t he", kSp + "t h"}));
  EXPECT_EQ(t["model"]["vocab"].size(), 12u);
  EXPECT_EQ(t["model"]["vocab"][kSp + "the"], 6);
  EXPECT_EQ(t["model"]["type"], "BPE");
  EXPECT_EQ(t["model"]["byte_fallback"], true);
  EXPECT_EQ(t["model"]["fuse_unk"], true);
  EXPECT_EQ(t["model"]["unk_token"], "<unk>");
  ASSERT_EQ(t["added_tokens"].size(), 3u);  // UNKNOWN and CONTROL tokens; BYTE ones are not added
  EXPECT_EQ(t["added_tokens"][1]["content"], "<s>");
  EXPECT_EQ(t["added_tokens"][1]["special"], true);
  EXPECT_EQ(t["normalizer"]["normalizers"][0], json({{"type", "Prepend"}, {"prepend", kSp}}));
  EXPECT_EQ(t["decoder"]["decoders"].size(), 4u);
  EXPECT_EQ(t["decoder"]["decoders"][3], json({{"type", "Strip"}, {"content", " "}, {"start", 1}, {"stop", 0}}));
  EXPECT_EQ(t["post_processor"]["single"][0], json({{"SpecialToken", {{"id", "<s>"}, {"type_id", 0}}}}));
  EXPECT_EQ(t["post_processor"]["single"].size(), 2u);  // add_bos defaults to true, add_eos to false

  // The tokenizer module builds it and tokenizes like llama.cpp would.
  Tokenizer tok = Tokenizer::from_json(t, hf_tokenizer_config_json(file(b)), "tiny.gguf");
  EXPECT_EQ(tok.encode("the"), (std::vector<int32_t>{1, 6}));
  EXPECT_EQ(tok.encode("the\n", false), (std::vector<int32_t>{6, 3}));  // newline: byte fallback
  EXPECT_EQ(tok.decode({1, 6, 6}, true), "the the");
  EXPECT_EQ(tok.bos_id(), 1);
  EXPECT_EQ(tok.eos_id(), 2);
}

TEST(MetaTest, SentencePieceSettingsFollowTheKeys) {
  Builder b = tiny_model();
  spm_vocab(b);
  b.boolean("tokenizer.ggml.add_bos_token", false).boolean("tokenizer.ggml.add_eos_token", true);
  b.boolean("tokenizer.ggml.add_space_prefix", false);
  b.u32("tokenizer.ggml.padding_token_id", 4294967295u);  // llama.cpp's "none"
  b.str("tokenizer.chat_template", "{% for m in messages %}{{ m['content'] }}{% endfor %}");
  GgufFile f = file(b);
  json t = hf_tokenizer_json(f);
  EXPECT_EQ(t["post_processor"]["single"],
            json::parse(R"([{"Sequence":{"id":"A","type_id":0}},{"SpecialToken":{"id":"</s>","type_id":0}}])"));
  EXPECT_EQ(t["normalizer"]["normalizers"].size(), 1u);  // no Prepend
  EXPECT_EQ(t["decoder"]["decoders"].size(), 3u);        // no Strip
  json c = hf_tokenizer_config_json(f);
  EXPECT_EQ(c["add_bos_token"], false);
  EXPECT_EQ(c["add_eos_token"], true);
  EXPECT_EQ(c["bos_token"], "<s>");
  EXPECT_EQ(c["eos_token"], "</s>");
  EXPECT_EQ(c["unk_token"], "<unk>");
  EXPECT_TRUE(c["pad_token"].is_null());
  EXPECT_EQ(c["chat_template"], "{% for m in messages %}{{ m['content'] }}{% endfor %}");
  EXPECT_EQ(c["model_max_length"], 64);
  EXPECT_EQ(c["tokenizer_class"], "LlamaTokenizer");
  EXPECT_EQ(c["added_tokens_decoder"]["2"]["content"], "</s>");
  EXPECT_FALSE(hf_config_json(f).contains("pad_token_id"));
}

Builder& bpe_vocab(Builder& b, const std::string& pre) {
  b.str("tokenizer.ggml.model", "gpt2");
  if (!pre.empty()) b.str("tokenizer.ggml.pre", pre);
  // "Ġ" is the byte-level symbol of a space.
  b.strs("tokenizer.ggml.tokens", {"a", "b", "ab", "\xC4\xA0", "\xC4\xA0" "ab", "<|endoftext|>", "1", "2", "12"});
  b.i32s("tokenizer.ggml.token_type", {1, 1, 1, 1, 1, 3, 1, 1, 1});
  b.strs("tokenizer.ggml.merges", {"a b", "\xC4\xA0 ab", "1 2"});
  b.u32("tokenizer.ggml.eos_token_id", 5);
  return b;
}

TEST(MetaTest, ByteLevelBpeWithPreTokenizer) {
  Builder b = tiny_model("qwen2");
  GgufFile f = file(bpe_vocab(b, "qwen2"));
  json t = hf_tokenizer_json(f);
  EXPECT_EQ(t["model"]["merges"], json({"a b", "\xC4\xA0 ab", "1 2"}));
  EXPECT_EQ(t["model"]["byte_fallback"], false);
  EXPECT_EQ(t["model"]["ignore_merges"], false);
  EXPECT_TRUE(t["post_processor"].is_null());  // qwen2: no BOS
  const json& pre = t["pre_tokenizer"]["pretokenizers"];
  ASSERT_EQ(pre.size(), 2u);
  EXPECT_NE(pre[0]["pattern"]["Regex"].get<std::string>().find("+|\\p{N}| ?"), std::string::npos);  // one digit
  EXPECT_EQ(pre[1]["type"], "ByteLevel");
  EXPECT_EQ(t["decoder"]["type"], "ByteLevel");
  ASSERT_EQ(t["added_tokens"].size(), 1u);
  EXPECT_EQ(t["added_tokens"][0]["content"], "<|endoftext|>");
  json c = hf_tokenizer_config_json(f);
  EXPECT_EQ(c["eos_token"], "<|endoftext|>");
  EXPECT_TRUE(c["bos_token"].is_null());  // llama.cpp's default id 11 is outside this vocabulary
  EXPECT_EQ(c["add_bos_token"], false);

  Tokenizer tok = Tokenizer::from_json(t, c, "tiny.gguf");
  EXPECT_EQ(tok.encode("ab ab"), (std::vector<int32_t>{2, 4}));
  EXPECT_EQ(tok.encode("12"), (std::vector<int32_t>{6, 7}));  // qwen2 splits digits one by one
  EXPECT_EQ(tok.encode("ab<|endoftext|>"), (std::vector<int32_t>{2, 5}));
  EXPECT_EQ(tok.decode({2, 4, 5}, true), "ab ab");
}

TEST(MetaTest, Llama3PreTokenizerAddsBosAndIgnoresMerges) {
  Builder b = tiny_model();
  bpe_vocab(b, "llama-bpe");
  b.u32("tokenizer.ggml.bos_token_id", 5);
  GgufFile f = file(b);
  json t = hf_tokenizer_json(f);
  EXPECT_EQ(t["model"]["ignore_merges"], true);
  EXPECT_NE(t["pre_tokenizer"]["pretokenizers"][0]["pattern"]["Regex"].get<std::string>().find("\\p{N}{1,3}"),
            std::string::npos);
  EXPECT_EQ(t["post_processor"]["single"][0]["SpecialToken"]["id"], "<|endoftext|>");
  Tokenizer tok = Tokenizer::from_json(t, hf_tokenizer_config_json(f), "tiny.gguf");
  EXPECT_EQ(tok.encode("12"), (std::vector<int32_t>{5, 8}));  // BOS, then "12" whole (up to 3 digits)
  // No tokenizer.ggml.pre: llama.cpp's 'default' splits.
  Builder d = tiny_model();
  bpe_vocab(d, "");
  EXPECT_EQ(hf_tokenizer_json(file(d))["pre_tokenizer"]["pretokenizers"].size(), 5u);
}

TEST(MetaTest, TokenizerErrors) {
  Builder pre = tiny_model();
  bpe_vocab(pre, "tekken-v9");
  expect_error(pre, [](const GgufFile& f) { hf_tokenizer_json(f); }, "unsupported pre-tokenizer tokenizer.ggml.pre = 'tekken-v9'");
  Builder model = tiny_model();
  model.str("tokenizer.ggml.model", "bert").strs("tokenizer.ggml.tokens", {"a"});
  expect_error(model, [](const GgufFile& f) { hf_tokenizer_json(f); }, "unsupported tokenizer model");
  Builder none = tiny_model();
  expect_error(none, [](const GgufFile& f) { hf_tokenizer_json(f); }, "'tokenizer.ggml.model' is missing");
  Builder merges = tiny_model();
  merges.str("tokenizer.ggml.model", "gpt2").strs("tokenizer.ggml.tokens", {"a", "b"});
  expect_error(merges, [](const GgufFile& f) { hf_tokenizer_json(f); }, "'tokenizer.ggml.merges' is missing");
  Builder bad_merge = tiny_model();
  bad_merge.str("tokenizer.ggml.model", "gpt2").strs("tokenizer.ggml.tokens", {"a", "b"});
  bad_merge.strs("tokenizer.ggml.merges", {"ab"});
  expect_error(bad_merge, [](const GgufFile& f) { hf_tokenizer_json(f); }, "merge 0 ('ab') is not 'left right'");
  Builder lengths = tiny_model();
  lengths.str("tokenizer.ggml.model", "llama").strs("tokenizer.ggml.tokens", {"a", "b"});
  lengths.f32s("tokenizer.ggml.scores", {0});
  expect_error(lengths, [](const GgufFile& f) { hf_tokenizer_json(f); }, "2 tokens, 1 scores");
  Builder utf8 = tiny_model();
  utf8.str("tokenizer.ggml.model", "llama").strs("tokenizer.ggml.tokens", {"a", "\xC0\xAF"});
  expect_error(utf8, [](const GgufFile& f) { hf_tokenizer_json(f); }, "token 1 is not valid UTF-8");
}

}  // namespace
