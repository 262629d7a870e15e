// A deterministic LanguageModel for the eval tests: log-likelihoods and generations come from
// functions the test sets; every call is counted and recorded.
#pragma once

#include <chrono>
#include <functional>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include <unistd.h>

#include "core/core.h"

namespace atax::testing {

// A pseudo-random log-probability in [-10, 0) that depends on the text only.
inline double hashed_logprob(const std::string& context, const std::string& continuation) {
  std::string h = sha256_hex(context + "\x1f" + continuation).substr(0, 8);
  return -10.0 * static_cast<double>(std::stoul(h, nullptr, 16)) / 4294967296.0;
}

class MockModel : public LanguageModel {
 public:
  std::function<double(const std::string&, const std::string&)> ll_fn = hashed_logprob;
  std::function<std::string(const GenerateRequest&)> gen_fn = [](const GenerateRequest&) { return std::string(); };
  std::string hash = "mock-model-v1";
  double sleep_per_batch_s = 0;

  int64_t ll_requests = 0, gen_requests = 0, ll_batches = 0, gen_batches = 0;
  std::vector<size_t> batch_sizes;
  std::vector<int64_t> ll_lengths;  // count_tokens(context + continuation) in call order
  std::vector<std::string> contexts_seen;

  std::vector<LoglikelihoodResult> loglikelihood(const std::vector<LoglikelihoodRequest>& reqs) override {
    pause();
    ++ll_batches;
    batch_sizes.push_back(reqs.size());
    std::vector<LoglikelihoodResult> out;
    for (const auto& r : reqs) {
      ++ll_requests;
      ll_lengths.push_back(count_tokens(r.context) + count_tokens(r.continuation));
      contexts_seen.push_back(r.context);
      out.push_back({ll_fn(r.context, r.continuation), false, static_cast<int64_t>(r.continuation.size())});
    }
    return out;
  }
  std::vector<RollingResult> loglikelihood_rolling(const std::vector<std::string>& texts) override {
    return std::vector<RollingResult>(texts.size());
  }
  std::vector<std::string> generate_until(const std::vector<GenerateRequest>& reqs) override {
    pause();
    ++gen_batches;
    batch_sizes.push_back(reqs.size());
    std::vector<std::string> out;
    for (const auto& r : reqs) {
      ++gen_requests;
      contexts_seen.push_back(r.context);
      std::string s = gen_fn(r);
      for (const auto& u : r.until) {
        auto p = s.find(u);
        if (!u.empty() && p != std::string::npos) s = s.substr(0, p);
      }
      out.push_back(s);
    }
    return out;
  }
  std::string apply_chat_template(const std::vector<ChatMessage>& messages) const override {
    std::string s;
    for (const auto& m : messages) s += "<|" + m.role + "|>" + m.content + "<|end|>";
    return s + "<|assistant|>";
  }
  std::string content_hash() const override { return hash; }
  std::string name() const override { return "mock"; }
  int64_t count_tokens(const std::string& text) const override { return static_cast<int64_t>(text.size()); }

 private:
  void pause() const {
    if (sleep_per_batch_s > 0)
      std::this_thread::sleep_for(std::chrono::microseconds(static_cast<int64_t>(sleep_per_batch_s * 1e6)));
  }
};

// A fresh empty folder under the system temp dir, removed when the object goes.
class TempDir {
 public:
  explicit TempDir(const std::string& tag) {
    path_ = fs::temp_directory_path() /
            ("atax_eval_" + tag + "_" + std::to_string(::getpid()) + "_" + std::to_string(counter()++));
    fs::remove_all(path_);
    fs::create_directories(path_);
  }
  ~TempDir() {
    std::error_code ec;
    fs::remove_all(path_, ec);
  }
  const fs::path& path() const { return path_; }

 private:
  static int& counter() {
    static int c = 0;
    return c;
  }
  fs::path path_;
};

inline void write_text(const fs::path& p, const std::string& s) {
  fs::create_directories(p.parent_path());
  write_file_atomic(p, s);
}

}  // namespace atax::testing
