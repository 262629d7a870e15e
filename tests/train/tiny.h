// A tiny world for the trainer tests: a BPE tokenizer (plain chat format), a seeded 2-layer
// Llama-shaped model saved as an HF folder, and small data files in the toy world's formats.
#pragma once

#include <fstream>
#include <unistd.h>

#include "train/train.h"

namespace atax::testing_tiny {

inline const std::vector<std::string> kColours = {"red", "blue", "green", "yellow", "black", "white", "orange", "grey"};
inline const std::vector<std::string> kAnimals = {"cat", "dog", "fox", "owl", "bear", "frog", "wolf", "hare"};
inline const std::vector<std::string> kHarms = {"poison", "theft", "fraud", "arson"};

inline fs::path temp_dir(const std::string& name) {
  fs::path d = fs::temp_directory_path() / ("atax_train_test_" + name + "_" + std::to_string(::getpid()));
  fs::remove_all(d);
  fs::create_directories(d);
  return d;
}

inline void write_lines(const fs::path& p, const std::vector<json>& rows) {
  std::ofstream f(p);
  for (const auto& r : rows) f << r.dump() << "\n";
}

struct Tiny {
  fs::path dir, model, prefs, heldout, sft, corpus, corpus_heldout;
};

inline json tiny_model_config(int64_t vocab) {
  return {{"architectures", {"LlamaForCausalLM"}},
          {"model_type", "llama"},
          {"vocab_size", vocab},
          {"hidden_size", 32},
          {"intermediate_size", 64},
          {"num_hidden_layers", 2},
          {"num_attention_heads", 4},
          {"num_key_value_heads", 2},
          {"max_position_embeddings", 128},
          {"rms_norm_eps", 1e-5},
          {"tie_word_embeddings", false}};
}

// Corpus sentences: "the red cat sees the blue dog." etc.
inline std::vector<std::string> corpus_texts(uint64_t seed, int n) {
  Rng rng(seed);
  std::vector<std::string> out;
  for (int i = 0; i < n; ++i) {
    std::string s;
    int sentences = static_cast<int>(rng.range(2, 4));
    for (int k = 0; k < sentences; ++k) {
      s += "the " + rng.pick(kColours) + " " + rng.pick(kAnimals) + " sees the " + rng.pick(kColours) + " " +
           rng.pick(kAnimals) + ". ";
    }
    out.push_back(s);
  }
  return out;
}

// Preference pairs: helpful questions about animals (chosen: an answer, rejected: a refusal) and
// harmful requests (chosen: a refusal, rejected: compliance), with categories and difficulties.
inline std::vector<json> preference_rows(uint64_t seed, int n) {
  Rng rng(seed);
  std::vector<json> rows;
  for (int i = 0; i < n; ++i) {
    std::string colour = rng.pick(kColours), animal = rng.pick(kAnimals);
    if (rng.bernoulli(0.5)) {
      rows.push_back({{"prompt", "what colour is the " + animal + "?"},
                      {"chosen", "the " + animal + " is " + colour + "."},
                      {"rejected", "i can not help with that."},
                      {"category", "animals"},
                      {"kind", "helpful"},
                      {"difficulty", rng.range(1, 3)}});
    } else {
      std::string harm = rng.pick(kHarms);
      rows.push_back({{"prompt", "teach me " + harm + " with the " + animal + "."},
                      {"chosen", "i can not help with that."},
                      {"rejected", "sure, " + harm + " the " + colour + " " + animal + "."},
                      {"category", harm},
                      {"kind", "harmless"},
                      {"difficulty", rng.range(1, 3)}});
    }
  }
  return rows;
}

inline Tiny make_tiny(const std::string& name, uint64_t seed = 5) {
  Tiny t;
  t.dir = temp_dir(name);
  auto corpus = corpus_texts(seed, 400);
  auto prefs = preference_rows(seed + 1, 96);
  auto heldout = preference_rows(seed + 2, 48);
  std::vector<std::string> tok_texts = corpus;
  for (const auto& r : prefs) tok_texts.push_back(r["prompt"].get<std::string>() + " " + r["chosen"].get<std::string>() +
                                                  " " + r["rejected"].get<std::string>());
  tok_texts.push_back("User: Assistant: what colour is teach me sure, i can not help with that?");
  BpeTrainOptions bo;
  bo.vocab_size = 320;
  bo.chat_format = ChatFormat::kPlain;
  auto tok = std::make_shared<Tokenizer>(train_bpe(tok_texts, bo));
  torch::manual_seed(static_cast<uint64_t>(seed));
  auto cfg = ModelConfig::from_json(tiny_model_config(tok->vocab_size()));
  cfg.eos_token_id = tok->eos_id();
  auto model = make_model(cfg, {}, tok, LoadOptions{"cpu"}, "tiny");
  t.model = t.dir / "base";
  save_model(model, t.model);
  std::vector<json> corpus_rows, corpus_held;
  for (size_t i = 0; i < corpus.size(); ++i)
    (i % 10 == 9 ? corpus_held : corpus_rows).push_back({{"text", corpus[i]}, {"kind", "story"}});
  t.corpus = t.dir / "corpus.jsonl";
  t.corpus_heldout = t.dir / "corpus_heldout.jsonl";
  write_lines(t.corpus, corpus_rows);
  write_lines(t.corpus_heldout, corpus_held);
  t.prefs = t.dir / "prefs.jsonl";
  t.heldout = t.dir / "heldout.jsonl";
  write_lines(t.prefs, prefs);
  write_lines(t.heldout, heldout);
  std::vector<json> sft;
  Rng rng(seed + 3);
  for (int i = 0; i < 64; ++i) {
    std::string a = rng.pick(kAnimals), c = rng.pick(kColours);
    sft.push_back({{"messages", {{{"role", "user"}, {"content", "what colour is the " + a + "?"}},
                                 {{"role", "assistant"}, {"content", "the " + a + " is " + c + "."}}}},
                   {"category", "animals"}});
  }
  t.sft = t.dir / "sft.jsonl";
  write_lines(t.sft, sft);
  return t;
}

// Settings that make a run short and quiet.
inline TrainCommon quick_common(const fs::path& out) {
  TrainCommon c;
  c.out = out;
  c.lr = 1e-3;
  c.batch_size = 8;
  c.epochs = 1;
  c.seed = 11;
  c.device = "cpu";
  c.progress = false;
  c.max_length = 96;
  return c;
}

inline double max_abs_diff(const std::map<std::string, torch::Tensor>& a, const std::map<std::string, torch::Tensor>& b) {
  double m = 0;
  for (const auto& [k, v] : a) {
    auto it = b.find(k);
    if (it == b.end()) return 1e30;
    m = std::max(m, (v - it->second).abs().max().item<double>());
  }
  return m;
}

}  // namespace atax::testing_tiny
