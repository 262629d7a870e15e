// Encoding throughput of the BPE tokenizer: tokens/s and MB/s for a large synthetic English-like
// text (with numbers, punctuation, code and some non-Latin script), one thread. Uses the real
// Llama-3 tokenizer from ../shared when present, otherwise one trained here. No reference
// implementation is available offline (no HF `tokenizers`), so no ratio is printed. Also times
// train_bpe on the same text.
//
//   bench_tokenizer_encode [MB=8]
#include <cstdio>
#include <cstdlib>
#include <string>
#include <vector>

#include "tokenizer/tokenizer.h"

using namespace atax;

namespace {

// ~`bytes` of text: Zipf-ish words in sentences and paragraphs, documents of ~2 KB.
std::vector<std::string> make_documents(size_t bytes, uint64_t seed) {
  static const char* kWords[] = {
      "the", "of", "and", "to", "a", "in", "is", "it", "that", "was", "he", "for", "on", "are", "with", "as",
      "his", "they", "be", "at", "one", "have", "this", "from", "or", "had", "by", "word", "but", "what",
      "some", "we", "can", "out", "other", "were", "all", "there", "when", "up", "use", "your", "how",
      "said", "each", "she", "which", "their", "time", "will", "way", "about", "many", "then", "them",
      "would", "write", "like", "so", "these", "her", "long", "make", "thing", "see", "him", "two", "has",
      "look", "more", "day", "could", "go", "come", "did", "number", "sound", "most", "people", "over",
      "know", "water", "than", "call", "first", "who", "may", "down", "side", "been", "now", "find",
      "alignment", "evaluation", "tokenizer", "benchmark", "capability", "preference", "optimization",
      "don't", "it's", "we're", "they've", "I'll", "Lily", "Tom", "Paris", "London", "café", "naïve",
      "Über", "straße", "日本語", "中文", "Привет", "мир", "😀", "🚀", "int", "std::vector<int>", "x += 1;",
      "return", "0x1F", "3.14159", "2024", "1,000,000", "(a + b)", "\"quoted\"", "e.g.", "--flag"};
  const size_t n = sizeof(kWords) / sizeof(kWords[0]);
  Rng rng(seed);
  std::vector<std::string> docs;
  size_t total = 0;
  while (total < bytes) {
    std::string doc;
    while (doc.size() < 2048) {
      const int len = int(rng.range(4, 18));
      for (int w = 0; w < len; ++w) {
        // Zipf-like: square of a uniform favours the first words.
        const double u = rng.uniform01();
        std::string word = kWords[size_t(u * u * double(n)) % n];
        if (w == 0 && word[0] >= 'a' && word[0] <= 'z') word[0] = char(word[0] - 'a' + 'A');
        doc += (w ? " " : "") + word;
        if (rng.bernoulli(0.05)) doc += ",";
      }
      doc += rng.bernoulli(0.1) ? "?" : ".";
      doc += rng.bernoulli(0.2) ? "\n\n" : " ";
    }
    total += doc.size();
    docs.push_back(std::move(doc));
  }
  return docs;
}

}  // namespace

int main(int argc, char** argv) {
  const double mb = argc > 1 ? std::atof(argv[1]) : 8.0;
  const fs::path shared = fs::path(ATAX_SOURCE_DIR) / ".." / "shared" / "tokenizers" / "llama3";
  const std::vector<std::string> docs = make_documents(size_t(mb * 1e6), 1234);
  size_t bytes = 0;
  for (const auto& d : docs) bytes += d.size();

  Tokenizer tok;
  std::string which;
  const double t_load0 = now_seconds();
  if (fs::exists(shared / "tokenizer.json")) {
    tok = Tokenizer::load(shared);
    which = "llama3 (../shared/tokenizers/llama3, 128256 tokens)";
  } else {
    std::vector<std::string> sample(docs.begin(), docs.begin() + std::min<size_t>(docs.size(), 1000));
    BpeTrainOptions opts;
    opts.vocab_size = 8192;
    tok = train_bpe(sample, opts);
    which = "trained byte-level BPE (8192 tokens; ../shared not found)";
  }
  const double t_load = now_seconds() - t_load0;

  std::printf("bench tokenizer_encode\n");
  std::printf("device: cpu, threads: 1\n");
  std::printf("tokenizer: %s, loaded in %.2f s\n", which.c_str(), t_load);
  std::printf("text: %zu documents, %.2f MB\n", docs.size(), double(bytes) / 1e6);

  for (const char* pass : {"cold cache", "warm cache"}) {
    size_t n_tokens = 0;
    const double t0 = now_seconds();
    for (const auto& d : docs) n_tokens += tok.encode(d, false).size();
    const double dt = now_seconds() - t0;
    std::printf("encode (%s): %zu tokens in %.3f s = %.0f tokens/s, %.2f MB/s\n", pass, n_tokens, dt,
                double(n_tokens) / dt, double(bytes) / 1e6 / dt);
  }
  {
    std::vector<int32_t> all;
    const double t0 = now_seconds();
    size_t n_chars = 0;
    for (const auto& d : docs) {
      const auto ids = tok.encode(d, false);
      n_chars += tok.decode(ids).size();
      all.insert(all.end(), ids.begin(), ids.end());
    }
    const double dt = now_seconds() - t0;
    std::printf("encode+decode: %.0f tokens/s, %.2f MB/s (decoded %zu bytes)\n", double(all.size()) / dt,
                double(bytes) / 1e6 / dt, n_chars);
  }
  {
    // Training speed on the same text (the toy world trains its tokenizer with this).
    BpeTrainOptions opts;
    opts.vocab_size = 8192;
    const double t0 = now_seconds();
    const Tokenizer trained = train_bpe(docs, opts);
    const double dt = now_seconds() - t0;
    std::printf("train_bpe: %.2f MB -> vocab %d in %.2f s (%.2f MB/s)\n", double(bytes) / 1e6, trained.vocab_size(),
                dt, double(bytes) / 1e6 / dt);
  }
  return 0;
}
