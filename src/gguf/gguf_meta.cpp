// GGUF metadata -> Hugging Face: config.json, parameter names (with llama's q/k un-permutation),
// tokenizer.json and tokenizer_config.json. No tensor data is copied here.
#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <numbers>
#include <unordered_map>

#include <fmt/format.h>

#include "gguf/gguf_file.h"

namespace atax::gguf {

namespace {

const char* const kHintReconvert =
    "convert the model again with llama.cpp's convert_hf_to_gguf.py, or use the Hugging Face folder";

// llama.cpp's token types (tokenizer.ggml.token_type).
enum TokenType : int64_t { kNormal = 1, kUnknown = 2, kControl = 3, kUserDefined = 4, kUnused = 5, kByte = 6 };

// The shortest decimal that reads back as the same float32: 9.9999997e-06f -> 1e-05, as the
// value was written in the original config.json.
double float32_decimal(float v) {
  char buf[64];
  for (int prec = 1; prec <= 9; ++prec) {
    std::snprintf(buf, sizeof buf, "%.*g", prec, static_cast<double>(v));
    if (std::strtof(buf, nullptr) == v) return std::strtod(buf, nullptr);
  }
  return static_cast<double>(v);
}

std::string architecture(const GgufFile& f) {
  auto arch = f.get_string("general.architecture");
  if (!arch)
    throw Error("metadata 'general.architecture' is missing", f.name(),
                "this GGUF holds no model architecture; " + std::string(kHintReconvert));
  if (*arch != "llama" && *arch != "qwen2" && *arch != "gemma2" && *arch != "olmo2" && *arch != "phi3")
    throw Error(fmt::format("unsupported architecture '{}' (atax maps llama, incl. Mistral-style files, "
                            "qwen2, gemma2, olmo2 and phi3)",
                            *arch),
                f.name(),
                "use a GGUF of one of those, or the model's Hugging Face folder (Qwen3 and Gemma-3 load from "
                "their Hugging Face folders)");
  if (auto n = f.get_int("split.count"); n && *n > 1)
    throw Error(fmt::format("this is shard {} of a {}-file split GGUF", f.get_int("split.no").value_or(0) + 1, *n),
                f.name(), "merge the shards first: llama-gguf-split --merge FIRST.gguf OUT.gguf");
  return *arch;
}

int64_t require_int(const GgufFile& f, const std::string& key) {
  auto v = f.get_int(key);
  if (!v) throw Error(fmt::format("metadata '{}' is missing", key), f.name(), kHintReconvert);
  if (*v <= 0) throw Error(fmt::format("metadata '{}' must be positive, found {}", key, *v), f.name(), kHintReconvert);
  return *v;
}

std::optional<double> get_decimal(const GgufFile& f, const std::string& key) {
  if (auto v = f.get_float32(key)) return float32_decimal(*v);
  return f.get_float(key);
}

bool same_bytes(const GgufFile& f, const TensorInfo& a, const TensorInfo& b) {
  return a.type == b.type && a.ne == b.ne && a.n_bytes == b.n_bytes && a.n_bytes > 0 &&
         std::memcmp(f.tensor_data(a), f.tensor_data(b), a.n_bytes) == 0;
}

// output.weight absent, or a byte-identical copy of the embedding (llama2.c's shared classifier).
bool tied_embeddings(const GgufFile& f) {
  const TensorInfo* out = f.find_tensor("output.weight");
  const TensorInfo* emb = f.find_tensor("token_embd.weight");
  return out == nullptr || (emb != nullptr && same_bytes(f, *out, *emb));
}

// The document as a JSON reader gives it back from the written file (non-negative integers
// become unsigned), so consumers see exactly what they would see loading the converted folder.
json as_read_from_file(const json& j) { return json::parse(j.dump()); }

// ------------------------------------------------------------------------------- special tokens

struct Specials {
  std::optional<int64_t> bos, eos, unk, pad;
  bool add_bos = false, add_eos = false, add_space_prefix = true;
};

// The pre-tokenizers llama.cpp knows by tokenizer.ggml.pre, as HF Split regexes (applied in
// sequence, each piece split further by the next).
struct PreTokenizer {
  std::vector<std::string> regexes;
  bool llama3 = false;  // BOS by default and ignore_merges, as llama.cpp's LLAMA3 type
};

const std::string kGpt2Regex = R"('s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+)";
const std::string kGpt2RegexLlamaCpp = R"('s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S))";
const std::string kLlama3Regex =
    R"((?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+)";
const std::string kQwen2Regex =
    R"((?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+)";

PreTokenizer pre_tokenizer_for(const GgufFile& f, const std::string& pre) {
  if (pre == "llama-bpe" || pre == "llama3" || pre == "llama-v3") return {{kLlama3Regex}, true};
  if (pre == "smaug-bpe" || pre == "dbrx") return {{kLlama3Regex}, false};
  if (pre == "qwen2" || pre == "deepseek-r1-qwen" || pre == "stablelm2") return {{kQwen2Regex}, false};
  if (pre == "gpt2" || pre == "mpt" || pre == "olmo" || pre == "jais") return {{kGpt2Regex}, false};
  if (pre == "starcoder" || pre == "refact" || pre == "command-r" || pre == "smollm" || pre == "codeshell" ||
      pre == "exaone" || pre == "minerva-7b")
    return {{R"(\p{N})", kGpt2RegexLlamaCpp}, false};
  if (pre == "falcon") return {{R"([\p{P}\$\+<=>\^~\|`]+)", kGpt2RegexLlamaCpp, "[0-9][0-9][0-9]"}, false};
  if (pre == "default")
    return {{R"([\p{P}\$\+<=>\^~\|]+)", kGpt2RegexLlamaCpp, R"(\p{N}+)", "[0-9][0-9][0-9]"}, false};
  throw Error(fmt::format("unsupported pre-tokenizer tokenizer.ggml.pre = '{}'", pre), f.name(),
              "atax knows llama-bpe/llama3, qwen2, gpt2, default, starcoder-style and falcon; use the model's "
              "Hugging Face folder (its tokenizer.json) instead");
}

std::string tokenizer_model(const GgufFile& f) {
  auto model = f.get_string("tokenizer.ggml.model");
  if (!model)
    throw Error("metadata 'tokenizer.ggml.model' is missing: the file has no tokenizer", f.name(),
                "use a GGUF with its vocabulary, or the model's Hugging Face folder");
  if (*model != "llama" && *model != "gpt2")
    throw Error(fmt::format("unsupported tokenizer model tokenizer.ggml.model = '{}' (atax reads 'llama' "
                            "SentencePiece and 'gpt2' byte-level BPE vocabularies)",
                            *model),
                f.name(), "use the model's Hugging Face folder (its tokenizer.json) instead");
  return *model;
}

std::string pre_name(const GgufFile& f) {
  auto pre = f.get_string("tokenizer.ggml.pre");
  return pre && !pre->empty() ? *pre : "default";
}

std::optional<int64_t> special_id(const GgufFile& f, const std::string& key, std::optional<int64_t> fallback,
                                  int64_t n_vocab) {
  std::optional<int64_t> id = fallback;
  const Value* v = f.find(key);
  if (v) {
    auto r = v->as_int();
    if (!r) throw Error(fmt::format("metadata '{}' must be an integer token id", key), f.name(), kHintReconvert);
    id = *r;
  }
  if (id && (*id == 0xFFFFFFFFll || *id < 0)) return std::nullopt;  // llama.cpp's "none"
  if (id && *id >= n_vocab) {
    if (v)  // llama.cpp's defaults (11 for BPE vocabularies) are often out of range: no warning then
      log_info(fmt::format("{}: {} = {} is outside the {}-token vocabulary; ignored (as llama.cpp does)", f.name(),
                         key, *id, n_vocab));
    return std::nullopt;
  }
  return id;
}

Specials read_specials(const GgufFile& f, const std::string& model, int64_t n_vocab) {
  Specials s;
  const bool spm = model == "llama";
  // llama.cpp's defaults for absent keys: SentencePiece vocabularies <unk> 0, <s> 1, </s> 2 and BOS
  // added; BPE vocabularies id 11 for both (llama.cpp's own choice) and BOS only for Llama-3.
  s.bos = special_id(f, "tokenizer.ggml.bos_token_id", spm ? 1 : 11, n_vocab);
  s.eos = special_id(f, "tokenizer.ggml.eos_token_id", spm ? 2 : 11, n_vocab);
  s.unk = special_id(f, "tokenizer.ggml.unknown_token_id", spm ? std::optional<int64_t>(0) : std::nullopt, n_vocab);
  s.pad = special_id(f, "tokenizer.ggml.padding_token_id", std::nullopt, n_vocab);
  bool default_bos = spm || pre_tokenizer_for(f, pre_name(f)).llama3;
  s.add_bos = f.get_bool("tokenizer.ggml.add_bos_token").value_or(default_bos) && s.bos.has_value();
  s.add_eos = f.get_bool("tokenizer.ggml.add_eos_token").value_or(false) && s.eos.has_value();
  s.add_space_prefix = f.get_bool("tokenizer.ggml.add_space_prefix").value_or(spm);
  return s;
}

// --------------------------------------------------------------------------------------- UTF-8

// Byte lengths of the code points of `s`; nullopt if `s` is not valid UTF-8 (overlong forms,
// surrogates and code points above U+10FFFF included, as JSON writers reject them).
std::optional<std::vector<uint8_t>> utf8_char_lengths(std::string_view s) {
  std::vector<uint8_t> lens;
  size_t i = 0;
  auto cont = [&](size_t k, uint8_t lo, uint8_t hi) {
    if (i + k >= s.size()) return false;
    const auto b = static_cast<uint8_t>(s[i + k]);
    return b >= lo && b <= hi;
  };
  while (i < s.size()) {
    const auto c = static_cast<uint8_t>(s[i]);
    size_t n = 0;
    if (c < 0x80) n = 1;
    else if (c >= 0xC2 && c <= 0xDF) n = cont(1, 0x80, 0xBF) ? 2 : 0;
    else if (c >= 0xE0 && c <= 0xEF) {
      const uint8_t lo = c == 0xE0 ? 0xA0 : 0x80, hi = c == 0xED ? 0x9F : 0xBF;
      n = cont(1, lo, hi) && cont(2, 0x80, 0xBF) ? 3 : 0;
    } else if (c >= 0xF0 && c <= 0xF4) {
      const uint8_t lo = c == 0xF0 ? 0x90 : 0x80, hi = c == 0xF4 ? 0x8F : 0xBF;
      n = cont(1, lo, hi) && cont(2, 0x80, 0xBF) && cont(3, 0x80, 0xBF) ? 4 : 0;
    }
    if (n == 0) return std::nullopt;
    lens.push_back(static_cast<uint8_t>(n));
    i += n;
  }
  return lens;
}

struct Vocab {
  std::vector<std::string> tokens;
  std::vector<double> scores;
  std::vector<int64_t> types;
  std::unordered_map<std::string_view, int64_t> ids;  // first id of each piece
};

Vocab read_vocab(const GgufFile& f) {
  Vocab v;
  auto tokens = f.get_string_array("tokenizer.ggml.tokens");
  if (!tokens || tokens->empty())
    throw Error("metadata 'tokenizer.ggml.tokens' is missing or empty", f.name(),
                "use a GGUF with its vocabulary, or the model's Hugging Face folder");
  v.tokens = std::move(*tokens);
  const size_t n = v.tokens.size();
  v.scores = f.get_float_array("tokenizer.ggml.scores").value_or(std::vector<double>(n, 0.0));
  v.types = f.get_int_array("tokenizer.ggml.token_type").value_or(std::vector<int64_t>(n, kNormal));
  if (v.scores.size() != n || v.types.size() != n)
    throw Error(fmt::format("tokenizer arrays disagree: {} tokens, {} scores, {} token types", n, v.scores.size(),
                            v.types.size()),
                f.name(), kHintReconvert);
  v.ids.reserve(n);
  for (size_t i = 0; i < n; ++i) {
    if (!utf8_char_lengths(v.tokens[i]))
      throw Error(fmt::format("token {} is not valid UTF-8", i), f.name(), kHintReconvert);
    v.ids.emplace(v.tokens[i], static_cast<int64_t>(i));
  }
  return v;
}

json added_token(int64_t id, const std::string& content, bool special) {
  return {{"id", id},          {"content", content}, {"single_word", false}, {"lstrip", false},
          {"rstrip", false},   {"normalized", false}, {"special", special}};
}

// CONTROL and UNKNOWN tokens are special added tokens, USER_DEFINED ones plain added tokens
// (llama.cpp matches both in raw text, as HF does added tokens).
json added_tokens(const Vocab& v) {
  json out = json::array();
  for (size_t i = 0; i < v.tokens.size(); ++i) {
    int64_t t = v.types[i];
    if (t == kControl || t == kUnknown || t == kUserDefined)
      out.push_back(added_token(static_cast<int64_t>(i), v.tokens[i], t != kUserDefined));
  }
  return out;
}

json template_processor(const Vocab& v, const Specials& s) {
  if (!s.add_bos && !s.add_eos) return nullptr;
  auto seq = [&](const char* id, int type_id) { return json{{"Sequence", {{"id", id}, {"type_id", type_id}}}}; };
  auto tok = [&](int64_t id, int type_id) {
    return json{{"SpecialToken", {{"id", v.tokens[static_cast<size_t>(id)]}, {"type_id", type_id}}}};
  };
  json single = json::array(), pair = json::array(), specials = json::object();
  if (s.add_bos) {
    single.push_back(tok(*s.bos, 0));
    pair.push_back(tok(*s.bos, 0));
  }
  single.push_back(seq("A", 0));
  pair.push_back(seq("A", 0));
  if (s.add_eos) {
    single.push_back(tok(*s.eos, 0));
    pair.push_back(tok(*s.eos, 0));
  }
  if (s.add_bos) pair.push_back(tok(*s.bos, 1));
  pair.push_back(seq("B", 1));
  if (s.add_eos) pair.push_back(tok(*s.eos, 1));
  for (auto id : {s.add_bos ? s.bos : std::nullopt, s.add_eos ? s.eos : std::nullopt}) {
    if (!id) continue;
    const std::string& piece = v.tokens[static_cast<size_t>(*id)];
    specials[piece] = {{"id", piece}, {"ids", {*id}}, {"tokens", {piece}}};
  }
  return {{"type", "TemplateProcessing"}, {"single", single}, {"pair", pair}, {"special_tokens", specials}};
}

// "left right", or ["left", "right"] when a piece holds a space (then the string is ambiguous).
json merge_entry(const std::string& l, const std::string& r) {
  if (l.find(' ') != std::string::npos || r.find(' ') != std::string::npos) return json::array({l, r});
  return l + " " + r;
}

// Merges of a SentencePiece vocabulary, derived as transformers' SentencePieceExtractor does:
// every split piece = l + r (at code-point boundaries) with both halves in the vocabulary, the
// splits of one piece ordered by (id(l), id(r)), pieces in id order; then a stable sort by
// (score of the piece, chars of l, chars of r), descending.
json spm_merges(const Vocab& v) {
  struct Merge {
    double score;
    size_t len_l, len_r;
    int64_t id_l, id_r;
    std::string_view l, r;
  };
  std::vector<Merge> merges;
  for (size_t i = 0; i < v.tokens.size(); ++i) {
    if (v.ids.at(v.tokens[i]) != static_cast<int64_t>(i)) continue;  // a duplicate piece
    const std::string& piece = v.tokens[i];
    auto lens = *utf8_char_lengths(piece);
    std::vector<Merge> local;
    size_t cut = 0;
    for (size_t k = 0; k + 1 < lens.size(); ++k) {
      cut += lens[k];
      std::string_view l(piece.data(), cut), r(piece.data() + cut, piece.size() - cut);
      auto il = v.ids.find(l), ir = v.ids.find(r);
      if (il == v.ids.end() || ir == v.ids.end()) continue;
      local.push_back({v.scores[i], k + 1, lens.size() - k - 1, il->second, ir->second, l, r});
    }
    std::sort(local.begin(), local.end(),
              [](const Merge& a, const Merge& b) { return std::tie(a.id_l, a.id_r) < std::tie(b.id_l, b.id_r); });
    merges.insert(merges.end(), local.begin(), local.end());
  }
  std::stable_sort(merges.begin(), merges.end(), [](const Merge& a, const Merge& b) {
    return std::tie(a.score, a.len_l, a.len_r) > std::tie(b.score, b.len_l, b.len_r);
  });
  json out = json::array();
  for (const Merge& m : merges) out.push_back(merge_entry(std::string(m.l), std::string(m.r)));
  return out;
}

json vocab_object(const Vocab& v) {
  json out = json::object();
  for (const auto& [piece, id] : v.ids) out[std::string(piece)] = id;
  return out;
}

json spm_tokenizer_json(const GgufFile& f, const Vocab& v, const Specials& s) {
  const std::string kSpace = "\xE2\x96\x81";  // ▁
  json normalizers = json::array();
  if (s.add_space_prefix) normalizers.push_back({{"type", "Prepend"}, {"prepend", kSpace}});
  normalizers.push_back({{"type", "Replace"}, {"pattern", {{"String", " "}}}, {"content", kSpace}});
  json decoders = json::array({json{{"type", "Replace"}, {"pattern", {{"String", kSpace}}}, {"content", " "}},
                               json{{"type", "ByteFallback"}}, json{{"type", "Fuse"}}});
  if (s.add_space_prefix) decoders.push_back({{"type", "Strip"}, {"content", " "}, {"start", 1}, {"stop", 0}});
  json model = {{"type", "BPE"},
                {"dropout", nullptr},
                {"unk_token", s.unk ? json(v.tokens[static_cast<size_t>(*s.unk)]) : json(nullptr)},
                {"continuing_subword_prefix", nullptr},
                {"end_of_word_suffix", nullptr},
                {"fuse_unk", true},
                {"byte_fallback", true},
                {"ignore_merges", false},
                {"vocab", vocab_object(v)},
                {"merges", spm_merges(v)}};
  return {{"version", "1.0"},
          {"truncation", nullptr},
          {"padding", nullptr},
          {"added_tokens", added_tokens(v)},
          {"normalizer", {{"type", "Sequence"}, {"normalizers", normalizers}}},
          {"pre_tokenizer", nullptr},
          {"post_processor", template_processor(v, s)},
          {"decoder", {{"type", "Sequence"}, {"decoders", decoders}}},
          {"model", model}};
}

json bpe_tokenizer_json(const GgufFile& f, const Vocab& v, const Specials& s) {
  auto merges_in = f.get_string_array("tokenizer.ggml.merges");
  if (!merges_in)
    throw Error("metadata 'tokenizer.ggml.merges' is missing: a 'gpt2' (byte-level BPE) vocabulary needs its merges",
                f.name(), kHintReconvert);
  json merges = json::array();
  for (size_t i = 0; i < merges_in->size(); ++i) {
    const std::string& m = (*merges_in)[i];
    // Byte-level pieces never hold a plain space (it is Ġ), so the first space separates them.
    size_t sp = m.find(' ', 1);
    if (sp == std::string::npos || sp + 1 >= m.size() || !utf8_char_lengths(m))
      throw Error(fmt::format("merge {} ('{}') is not 'left right'", i, utf8_char_lengths(m) ? m : "<bytes>"),
                  f.name(), kHintReconvert);
    merges.push_back(merge_entry(m.substr(0, sp), m.substr(sp + 1)));
  }
  PreTokenizer pre = pre_tokenizer_for(f, pre_name(f));
  json pretoks = json::array();
  for (const std::string& re : pre.regexes)
    pretoks.push_back({{"type", "Split"}, {"pattern", {{"Regex", re}}}, {"behavior", "Isolated"}, {"invert", false}});
  pretoks.push_back({{"type", "ByteLevel"}, {"add_prefix_space", false}, {"trim_offsets", true}, {"use_regex", false}});
  json model = {{"type", "BPE"},
                {"dropout", nullptr},
                {"unk_token", s.unk ? json(v.tokens[static_cast<size_t>(*s.unk)]) : json(nullptr)},
                {"continuing_subword_prefix", nullptr},
                {"end_of_word_suffix", nullptr},
                {"fuse_unk", false},
                {"byte_fallback", false},
                {"ignore_merges", pre.llama3},
                {"vocab", vocab_object(v)},
                {"merges", merges}};
  return {{"version", "1.0"},
          {"truncation", nullptr},
          {"padding", nullptr},
          {"added_tokens", added_tokens(v)},
          {"normalizer", nullptr},  // llama.cpp does not normalise (HF's Qwen2 file has NFC)
          {"pre_tokenizer", {{"type", "Sequence"}, {"pretokenizers", pretoks}}},
          {"post_processor", template_processor(v, s)},
          {"decoder", {{"type", "ByteLevel"}, {"add_prefix_space", true}, {"trim_offsets", true}, {"use_regex", true}}},
          {"model", model}};
}

// --------------------------------------------------------------------------------- rope scaling

// Llama-3.1-style files carry rope_freqs.weight (one divisor per frequency) instead of the
// rope_scaling parameters. Recovers {factor, low_freq_factor 1, high_freq_factor 4,
// original_max_position_embeddings 8192} by checking the divisors against that formula.
json llama3_rope_scaling(const GgufFile& f, const TensorInfo& t, double theta, int64_t rope_dim) {
  const TypeTraits* tr = type_traits(static_cast<uint32_t>(t.type));
  if (t.type != GgmlType::kF32 || t.n_elements != rope_dim / 2 || !tr)
    throw Error(fmt::format("rope_freqs.weight must be {} F32 values", rope_dim / 2), f.name(), kHintReconvert);
  std::vector<float> got = f.dequantize_tensor(t);
  const double factor = *std::max_element(got.begin(), got.end());
  const double low = 1.0, high = 4.0, orig = 8192.0;
  double worst = 0;
  for (int64_t i = 0; i < rope_dim / 2; ++i) {
    const double freq = std::pow(theta, -2.0 * static_cast<double>(i) / static_cast<double>(rope_dim));
    const double wavelen = 2 * std::numbers::pi / freq;
    double want;
    if (wavelen < orig / high) want = 1.0;
    else if (wavelen > orig / low) want = factor;
    else {
      const double smooth = (orig / wavelen - low) / (high - low);
      want = 1.0 / ((1 - smooth) / factor + smooth);
    }
    worst = std::max(worst, std::abs(want - got[static_cast<size_t>(i)]) / want);
  }
  if (!(worst < 1e-4))
    throw Error("rope_freqs.weight does not follow Llama-3's rope scaling (low 1, high 4, original context 8192)",
                f.name(), "atax cannot reproduce this RoPE; use the model's Hugging Face folder");
  return {{"rope_type", "llama3"}, {"type", "llama3"}, {"factor", float32_decimal(static_cast<float>(factor))},
          {"low_freq_factor", low}, {"high_freq_factor", high},
          {"original_max_position_embeddings", static_cast<int64_t>(orig)}};
}

struct Shape {
  std::string arch;
  int64_t n_embd, n_layer, n_ff, n_head, n_head_kv, head_dim, rope_dim;
};

// What llama.cpp's converter does per architecture, undone here. Layer tensors by their GGUF part
// name (blk.N.<part>.weight) -> HF module; Llama's q/k rows are permuted to llama.cpp's
// interleaved RoPE; Gemma's RMSNorm weights are stored as 1 + w.
struct ArchMap {
  const char* hf_arch;
  const char* model_type;
  std::map<std::string, std::string> layer;
  bool permute_qk = false;
  bool norm_plus_one = false;
};

const ArchMap& arch_map(const std::string& arch) {
  static const std::map<std::string, std::string> kCommon = {
      {"attn_q", "self_attn.q_proj"},     {"attn_k", "self_attn.k_proj"}, {"attn_v", "self_attn.v_proj"},
      {"attn_output", "self_attn.o_proj"}, {"ffn_gate", "mlp.gate_proj"}, {"ffn_up", "mlp.up_proj"},
      {"ffn_down", "mlp.down_proj"}};
  auto with = [&](std::map<std::string, std::string> extra) {
    auto m = kCommon;
    for (auto& [k, v] : extra) m[k] = v;
    return m;
  };
  static const std::map<std::string, ArchMap> kMaps = {
      {"llama",
       {"LlamaForCausalLM", "llama",
        with({{"attn_norm", "input_layernorm"}, {"ffn_norm", "post_attention_layernorm"}}), true, false}},
      {"qwen2",
       {"Qwen2ForCausalLM", "qwen2",
        with({{"attn_norm", "input_layernorm"}, {"ffn_norm", "post_attention_layernorm"}}), false, false}},
      {"gemma2",
       {"Gemma2ForCausalLM", "gemma2",
        with({{"attn_norm", "input_layernorm"},
              {"post_attention_norm", "post_attention_layernorm"},
              {"ffn_norm", "pre_feedforward_layernorm"},
              {"post_ffw_norm", "post_feedforward_layernorm"}}),
        false, true}},
      {"olmo2",
       {"Olmo2ForCausalLM", "olmo2",
        with({{"attn_q_norm", "self_attn.q_norm"},
              {"attn_k_norm", "self_attn.k_norm"},
              {"post_attention_norm", "post_attention_layernorm"},
              {"post_ffw_norm", "post_feedforward_layernorm"}}),
        false, false}},
      {"phi3",
       {"Phi3ForCausalLM", "phi3",
        {{"attn_norm", "input_layernorm"},
         {"ffn_norm", "post_attention_layernorm"},
         {"attn_qkv", "self_attn.qkv_proj"},
         {"attn_output", "self_attn.o_proj"},
         {"ffn_up", "mlp.gate_up_proj"},  // gate and up stacked, gate first, as HF's Phi-3
         {"ffn_down", "mlp.down_proj"}},
        false, false}}};
  return kMaps.at(arch);
}

Shape read_shape(const GgufFile& f) {
  Shape s;
  s.arch = architecture(f);
  auto key = [&](const char* k) { return s.arch + "." + k; };
  if (auto n = f.get_int(key("expert_count")); n && *n > 0)
    throw Error(fmt::format("mixture-of-experts models ({} experts) are not supported", *n), f.name(),
                "atax runs dense Llama-family models");
  s.n_embd = require_int(f, key("embedding_length"));
  s.n_layer = require_int(f, key("block_count"));
  {  // before anything is sized by it: the file's blk.N tensors decide how many layers there are
    int64_t found = 0;
    for (const auto& t : f.tensors()) {
      if (!starts_with(t.name, "blk.")) continue;
      size_t dot = t.name.find('.', 4);
      std::string n = dot == std::string::npos ? "" : t.name.substr(4, dot - 4);
      if (!n.empty() && n.size() < 10 && std::all_of(n.begin(), n.end(), [](char ch) { return ch >= '0' && ch <= '9'; }))
        found = std::max<int64_t>(found, std::stoll(n) + 1);
    }
    // More blocks than the metadata says: hf_tensor_plan names the stray tensor.
    if (found < s.n_layer)
      throw Error(fmt::format("metadata '{}' = {}, but the file holds tensors of {} blocks", key("block_count"),
                              s.n_layer, found),
                  f.name(), kHintReconvert);
  }
  s.n_ff = require_int(f, key("feed_forward_length"));
  s.n_head = require_int(f, key("attention.head_count"));
  s.n_head_kv = f.get_int(key("attention.head_count_kv")).value_or(s.n_head);
  if (s.n_head_kv <= 0 || s.n_head % s.n_head_kv != 0)
    throw Error(fmt::format("{} key/value heads do not divide {} query heads", s.n_head_kv, s.n_head), f.name(),
                kHintReconvert);
  auto key_len = f.get_int(key("attention.key_length"));
  auto rope_dim = f.get_int(key("rope.dimension_count"));
  // Phi-3's heads are n_embd / n_head wide whatever part of them rotates (llama.cpp's rule).
  s.head_dim = key_len ? *key_len : (rope_dim && s.arch != "phi3") ? *rope_dim : s.n_embd / s.n_head;
  if (auto vl = f.get_int(key("attention.value_length")); vl && *vl != s.head_dim)
    throw Error(fmt::format("value head size {} differs from key head size {}", *vl, s.head_dim), f.name(),
                "atax's Llama-family model needs equal key and value head sizes");
  if (s.head_dim <= 0 || s.head_dim % 2 != 0)
    throw Error(fmt::format("head size {} must be positive and even", s.head_dim), f.name(), kHintReconvert);
  s.rope_dim = rope_dim ? *rope_dim : s.head_dim;
  // Phi-3 (Phi-4-mini) rotates part of each head; elsewhere that is a file atax cannot run.
  if (s.rope_dim != s.head_dim && (s.arch != "phi3" || s.rope_dim <= 0 || s.rope_dim > s.head_dim || s.rope_dim % 2))
    throw Error(fmt::format("partial RoPE (rope.dimension_count {} < head size {}) is not supported for {}",
                            s.rope_dim, s.head_dim, s.arch),
                f.name(), "use the model's Hugging Face folder");
  return s;
}

void check_matrix(const GgufFile& f, const std::string& name, int64_t rows, int64_t cols) {
  const TensorInfo* t = f.find_tensor(name);
  if (!t) throw Error(fmt::format("tensor '{}' is missing", name), f.name(), kHintReconvert);
  if (t->shape() != std::vector<int64_t>{rows, cols})
    throw Error(fmt::format("tensor '{}' has shape [{}] but the metadata implies [{}, {}]", name,
                            fmt::join(t->shape(), ", "), rows, cols),
                f.name(), kHintReconvert);
}

// Gemma-2 as llama.cpp runs it: soft-capping and the window from the metadata (llama.cpp's
// defaults 50 / 30 / 4096 when absent), queries scaled by 1/sqrt(head size) except in the 46-layer
// 27B model (1/sqrt(n_embd / n_head)), the rule llama.cpp applies by model size.
void add_gemma2_config(const GgufFile& f, const Shape& s, json& c) {
  auto key = [&](const char* k) { return s.arch + "." + k; };
  c["hidden_act"] = "gelu_pytorch_tanh";
  c["hidden_activation"] = "gelu_pytorch_tanh";
  c["attn_logit_softcapping"] = get_decimal(f, key("attn_logit_softcapping")).value_or(50.0);
  c["final_logit_softcapping"] = get_decimal(f, key("final_logit_softcapping")).value_or(30.0);
  c["sliding_window"] = f.get_int(key("attention.sliding_window")).value_or(4096);
  c["query_pre_attn_scalar"] = s.n_layer == 46 ? s.n_embd / s.n_head : s.head_dim;
  if (!tied_embeddings(f))
    throw Error("a Gemma-2 file with its own output.weight: Gemma-2 ties the output to the embedding", f.name(),
                kHintReconvert);
}

// The F32 values of a 1-D tensor of `n` elements (Phi-3's rope_factors_long/short).
std::vector<double> factors(const GgufFile& f, const std::string& name, int64_t n) {
  const TensorInfo* t = f.find_tensor(name);
  if (!t || t->type != GgmlType::kF32 || t->n_elements != n)
    throw Error(fmt::format("tensor '{}' must be {} F32 values (one per rotated frequency)", name, n), f.name(),
                kHintReconvert);
  std::vector<float> v = f.dequantize_tensor(*t);
  std::vector<double> out;
  for (float x : v) out.push_back(float32_decimal(x));
  return out;
}

// Phi-3 / Phi-3.5 / Phi-4-mini: the pretrained context, long-RoPE factors (rope_factors_long /
// rope_factors_short tensors with rope.scaling.attn_factor), partial rotary, and the sliding window
// (0 = none, as Phi-4 writes it; absent: llama.cpp's defaults for the 4k and 128k Phi-3 models).
void add_phi3_config(const GgufFile& f, const Shape& s, json& c) {
  auto key = [&](const char* k) { return s.arch + "." + k; };
  if (s.rope_dim != s.head_dim)
    c["partial_rotary_factor"] = static_cast<double>(s.rope_dim) / static_cast<double>(s.head_dim);
  const int64_t ctx = c.value("max_position_embeddings", int64_t{4096});
  const int64_t orig = f.get_int(key("rope.scaling.original_context_length")).value_or(ctx);
  c["original_max_position_embeddings"] = orig;
  const bool has_long = f.find_tensor("rope_factors_long.weight") != nullptr;
  const bool has_short = f.find_tensor("rope_factors_short.weight") != nullptr;
  if (has_long != has_short)
    throw Error("rope_factors_long.weight and rope_factors_short.weight come as a pair", f.name(), kHintReconvert);
  if (has_long) {
    json rs = {{"type", "longrope"},
               {"long_factor", factors(f, "rope_factors_long.weight", s.rope_dim / 2)},
               {"short_factor", factors(f, "rope_factors_short.weight", s.rope_dim / 2)}};
    if (auto a = get_decimal(f, key("rope.scaling.attn_factor"))) rs["attention_factor"] = *a;
    c["rope_scaling"] = rs;
  } else if (f.find_tensor("rope_freqs.weight")) {
    throw Error("a Phi-3 file with rope_freqs.weight", f.name(), kHintReconvert);
  }
  json window = nullptr;
  if (auto w = f.get_int(key("attention.sliding_window"))) {
    if (*w > 0) window = *w;
  } else if ((s.n_layer == 32 || s.n_layer == 40) && ctx == 4096) {
    window = 2047;
  } else if (s.n_layer == 32 && s.n_head_kv == 32 && ctx == 131072) {
    window = 262144;
  } else if (s.n_layer == 40 && ctx == 131072) {
    window = 131072;
  }
  c["sliding_window"] = window;
}

}  // namespace

std::vector<int64_t> unpermute_rows(int64_t rows, int64_t heads) {
  const int64_t d = rows / heads, half = d / 2;
  std::vector<int64_t> src(static_cast<size_t>(rows));
  for (int64_t h = 0; h < heads; ++h)
    for (int64_t j = 0; j < 2; ++j)
      for (int64_t i = 0; i < half; ++i) src[static_cast<size_t>(h * d + j * half + i)] = h * d + 2 * i + j;
  return src;
}

json hf_config_json(const GgufFile& f) {
  Shape s = read_shape(f);
  auto key = [&](const char* k) { return s.arch + "." + k; };
  const TensorInfo* emb = f.find_tensor("token_embd.weight");
  if (!emb || emb->ne.size() != 2)
    throw Error("tensor 'token_embd.weight' is missing or not a matrix", f.name(), kHintReconvert);
  const int64_t vocab = emb->ne[1];
  check_matrix(f, "token_embd.weight", vocab, s.n_embd);
  if (s.arch == "phi3") {
    check_matrix(f, "blk.0.attn_qkv.weight", (s.n_head + 2 * s.n_head_kv) * s.head_dim, s.n_embd);
  } else {
    check_matrix(f, "blk.0.attn_q.weight", s.n_head * s.head_dim, s.n_embd);
    check_matrix(f, "blk.0.attn_k.weight", s.n_head_kv * s.head_dim, s.n_embd);
  }
  const double theta = get_decimal(f, key("rope.freq_base")).value_or(10000.0);
  auto eps = get_decimal(f, key("attention.layer_norm_rms_epsilon"));
  if (!eps) throw Error(fmt::format("metadata '{}' is missing", key("attention.layer_norm_rms_epsilon")), f.name(), kHintReconvert);

  json rope_scaling = nullptr;
  std::string scaling = f.get_string(key("rope.scaling.type")).value_or("none");
  if (scaling == "linear") {
    auto factor = get_decimal(f, key("rope.scaling.factor"));
    if (!factor || *factor <= 0)
      throw Error("linear rope scaling without a positive rope.scaling.factor", f.name(), kHintReconvert);
    rope_scaling = {{"type", "linear"}, {"rope_type", "linear"}, {"factor", *factor}};
  } else if (scaling != "none" && !scaling.empty()) {
    throw Error(fmt::format("rope scaling '{}' is not supported (atax does linear and Llama-3's)", scaling), f.name(),
                "use the model's Hugging Face folder");
  }
  if (const TensorInfo* rf = f.find_tensor("rope_freqs.weight"); rf && s.arch != "phi3") {
    if (!rope_scaling.is_null())
      throw Error("both rope.scaling.type and rope_freqs.weight are set", f.name(), kHintReconvert);
    rope_scaling = llama3_rope_scaling(f, *rf, theta, s.head_dim);
  }

  const std::string model = f.find("tokenizer.ggml.model") ? tokenizer_model(f) : "llama";
  const int64_t n_vocab_tok =
      f.find("tokenizer.ggml.tokens") ? static_cast<int64_t>(f.find("tokenizer.ggml.tokens")->items.size()) : vocab;
  Specials sp = read_specials(f, model, std::max(n_vocab_tok, vocab));

  const ArchMap& am = arch_map(s.arch);
  json c = {{"architectures", {am.hf_arch}},
            {"model_type", am.model_type},
            {"vocab_size", vocab},
            {"hidden_size", s.n_embd},
            {"intermediate_size", s.n_ff},
            {"num_hidden_layers", s.n_layer},
            {"num_attention_heads", s.n_head},
            {"num_key_value_heads", s.n_head_kv},
            {"head_dim", s.head_dim},
            {"hidden_act", "silu"},
            {"rms_norm_eps", *eps},
            {"rope_theta", theta},
            {"rope_scaling", rope_scaling},
            {"attention_bias", f.find_tensor("blk.0.attn_q.bias") != nullptr},
            {"mlp_bias", false},
            {"tie_word_embeddings", tied_embeddings(f)},
            {"torch_dtype", "float32"}};
  if (auto ctx = f.get_int(key("context_length")); ctx && *ctx > 0) c["max_position_embeddings"] = *ctx;
  if (sp.bos) c["bos_token_id"] = *sp.bos;
  if (sp.eos) c["eos_token_id"] = *sp.eos;
  if (sp.pad) c["pad_token_id"] = *sp.pad;
  if (s.arch == "qwen2") c["use_sliding_window"] = false;
  if (s.arch == "gemma2") add_gemma2_config(f, s, c);
  if (s.arch == "phi3") add_phi3_config(f, s, c);
  return as_read_from_file(c);
}

std::vector<TensorPlan> hf_tensor_plan(const GgufFile& f) {
  Shape s = read_shape(f);
  const ArchMap& am = arch_map(s.arch);
  const bool llama = am.permute_qk;
  const bool tied = tied_embeddings(f);
  const auto& kLayer = am.layer;
  std::vector<TensorPlan> plan;
  const auto& ts = f.tensors();
  for (size_t i = 0; i < ts.size(); ++i) {
    const std::string& name = ts[i].name;
    TensorPlan p;
    p.index = i;
    if (name == "token_embd.weight") p.hf_name = "model.embed_tokens.weight";
    else if (name == "output_norm.weight") p.hf_name = "model.norm.weight";
    else if (name == "output.weight") {
      if (tied) continue;
      p.hf_name = "lm_head.weight";
    } else if (name == "rope_freqs.weight" ||
               (s.arch == "phi3" && (name == "rope_factors_long.weight" || name == "rope_factors_short.weight"))) {
      continue;  // becomes rope_scaling in config.json
    } else if (starts_with(name, "blk.")) {
      size_t dot = name.find('.', 4);
      size_t dot2 = dot == std::string::npos ? dot : name.rfind('.');
      std::string layer = dot == std::string::npos ? "" : name.substr(4, dot - 4);
      bool digits = !layer.empty() && layer.size() < 10 &&
                    std::all_of(layer.begin(), layer.end(), [](char ch) { return ch >= '0' && ch <= '9'; });
      std::string part = digits && dot2 > dot ? name.substr(dot + 1, dot2 - dot - 1) : "";
      std::string suffix = digits && dot2 > dot ? name.substr(dot2 + 1) : "";
      auto it = kLayer.find(part);
      if (part == "attn_rot_embd") continue;  // old files: a RoPE table nobody reads
      if (!digits || it == kLayer.end() || (suffix != "weight" && suffix != "bias") || std::stoll(layer) >= s.n_layer)
        throw Error(fmt::format("tensor '{}' is not part of a dense {} model as atax knows it", name, s.arch), f.name(),
                    "mixture-of-experts and other variants are not supported; use the model's Hugging Face folder");
      p.hf_name = "model.layers." + std::to_string(std::stoll(layer)) + "." + it->second + "." + suffix;
      if (llama && part == "attn_q") p.unpermute_heads = s.n_head;
      if (llama && part == "attn_k") p.unpermute_heads = s.n_head_kv;
      if (p.unpermute_heads > 0) {
        const auto& ne = ts[i].ne;  // weight: [cols, rows]; bias: [rows]
        const int64_t rows = ne.size() == 2 ? ne[1] : ne.size() == 1 ? ne[0] : -1;
        if ((suffix == "weight") != (ne.size() == 2) || rows != p.unpermute_heads * s.head_dim)
          throw Error(fmt::format("tensor '{}' has shape [{}], expected {} rows", name, fmt::join(ts[i].shape(), ", "),
                                  p.unpermute_heads * s.head_dim),
                      f.name(), kHintReconvert);
      }
    } else {
      throw Error(fmt::format("tensor '{}' is not part of a {} model as atax knows it", name, s.arch), f.name(),
                  "use the model's Hugging Face folder");
    }
    // Gemma's RMSNorm multiplies by (1 + w); llama.cpp's converter stores 1 + w.
    if (am.norm_plus_one && ends_with(p.hf_name, "norm.weight")) p.add = -1.0f;
    plan.push_back(std::move(p));
  }
  return plan;
}

json hf_tokenizer_json(const GgufFile& f) {
  const std::string model = tokenizer_model(f);
  Vocab v = read_vocab(f);
  Specials s = read_specials(f, model, static_cast<int64_t>(v.tokens.size()));
  return as_read_from_file(model == "llama" ? spm_tokenizer_json(f, v, s) : bpe_tokenizer_json(f, v, s));
}

json hf_tokenizer_config_json(const GgufFile& f) {
  const std::string model = tokenizer_model(f);
  Vocab v = read_vocab(f);
  Specials s = read_specials(f, model, static_cast<int64_t>(v.tokens.size()));
  auto piece = [&](const std::optional<int64_t>& id) {
    return id ? json(v.tokens[static_cast<size_t>(*id)]) : json(nullptr);
  };
  json decoder = json::object();
  for (const json& t : added_tokens(v)) {
    json e = t;
    e.erase("id");
    decoder[std::to_string(t["id"].get<int64_t>())] = e;
  }
  json c = {{"add_bos_token", s.add_bos},
            {"add_eos_token", s.add_eos},
            {"added_tokens_decoder", decoder},
            {"bos_token", piece(s.bos)},
            {"eos_token", piece(s.eos)},
            {"unk_token", piece(s.unk)},
            {"pad_token", piece(s.pad)},
            {"clean_up_tokenization_spaces", false},
            {"spaces_between_special_tokens", false},
            {"tokenizer_class", model == "llama" ? "LlamaTokenizer" : "PreTrainedTokenizerFast"}};
  if (model == "llama") c["legacy"] = true;
  std::string arch = f.get_string("general.architecture").value_or("");
  if (!arch.empty())
    if (auto ctx = f.get_int(arch + ".context_length"); ctx && *ctx > 0) c["model_max_length"] = *ctx;
  if (auto tmpl = f.get_string("tokenizer.chat_template")) {
    if (!utf8_char_lengths(*tmpl))
      throw Error("tokenizer.chat_template is not valid UTF-8", f.name(), kHintReconvert);
    c["chat_template"] = *tmpl;
  }
  return as_read_from_file(c);
}

}  // namespace atax::gguf
