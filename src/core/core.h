// core: errors, files, JSON lines, CSV, hashing, seeded random numbers, progress, strings,
// and the LanguageModel interface that evaluation talks to. No LibTorch here.
#pragma once

#include <cstdint>
#include <filesystem>
#include <functional>
#include <optional>
#include <stdexcept>
#include <string>
#include <string_view>
#include <vector>

#include <nlohmann/json.hpp>

namespace atax {

using json = nlohmann::json;
namespace fs = std::filesystem;

// ---------------------------------------------------------------------------------------------
// Errors
// ---------------------------------------------------------------------------------------------

// An error a user can cause (bad file, bad option, bad data). what() reads
// "<file>:<line>: <message>\nhint: <hint>" with the parts that are set; the CLI prints it and
// exits non-zero. Programmer invariants use TORCH_CHECK / assert instead.
class Error : public std::runtime_error {
 public:
  explicit Error(std::string message, std::string file = {}, std::string hint = {}, int64_t line = 0);

  const std::string& message() const { return message_; }
  const std::string& file() const { return file_; }
  const std::string& hint() const { return hint_; }
  int64_t line() const { return line_; }

 private:
  std::string message_, file_, hint_;
  int64_t line_ = 0;
};

// ---------------------------------------------------------------------------------------------
// Files
// ---------------------------------------------------------------------------------------------

// Returns the whole file. Fails with Error naming `path` if it cannot be read.
std::string read_file(const fs::path& path);

// Writes `content` to `path` through a temporary file in the same folder, fsync and rename, so
// a reader never sees a half-written file. Creates missing parent folders.
void write_file_atomic(const fs::path& path, std::string_view content);

// Writes a JSON document atomically (pretty-printed with `indent` spaces, or compact if < 0).
void write_json_atomic(const fs::path& path, const json& doc, int indent = 2);

// Parses a JSON file; Error names the file and the parse position on failure.
json read_json(const fs::path& path);

// Replaces folder `final_dir` by the fully written `tmp_dir` (rename; the old one, if any, is
// removed only after the new one is in place). Used for checkpoints.
void commit_dir(const fs::path& tmp_dir, const fs::path& final_dir);

// A fresh temporary folder beside `final_dir` for building it before commit_dir().
fs::path staging_dir_for(const fs::path& final_dir);

// Reads a possibly gzip-compressed file (by magic bytes) into memory.
std::string read_maybe_gzip(const fs::path& path);

// ---------------------------------------------------------------------------------------------
// JSON lines
// ---------------------------------------------------------------------------------------------

enum class BadLinePolicy { kFail, kSkip };

struct JsonlStats {
  int64_t lines_read = 0;
  int64_t lines_skipped = 0;
  std::vector<std::string> skipped_reasons;  // "file:line: reason", the first 20
};

// Calls `fn(record, line_number)` for every non-blank line of a JSONL file. A line that is not
// a JSON object, or for which `fn` throws Error, fails with file:line (kFail) or is counted and
// skipped (kSkip).
JsonlStats for_each_jsonl(const fs::path& path, const std::function<void(const json&, int64_t)>& fn,
                          BadLinePolicy policy = BadLinePolicy::kFail);

// Reads every record of a JSONL file.
std::vector<json> read_jsonl(const fs::path& path);

// Writes records as JSON lines, atomically.
void write_jsonl_atomic(const fs::path& path, const std::vector<json>& records);

// Field access that names the file and line on failure: required string / number / etc.
std::string require_string(const json& j, const std::string& key, const std::string& file = {},
                           int64_t line = 0);

// ---------------------------------------------------------------------------------------------
// CSV (RFC 4180: quoted fields, doubled quotes, newlines inside quotes)
// ---------------------------------------------------------------------------------------------

using CsvRow = std::vector<std::string>;

// Parses CSV text. Fails with Error naming `name` and the line of an unterminated quote.
std::vector<CsvRow> parse_csv(std::string_view text, const std::string& name = "<csv>");
std::vector<CsvRow> read_csv(const fs::path& path);
std::string csv_escape(std::string_view field);
std::string to_csv(const std::vector<CsvRow>& rows);

// A CSV with a header row, fields accessed by column name.
class CsvTable {
 public:
  static CsvTable read(const fs::path& path);
  static CsvTable parse(std::string_view text, const std::string& name);
  const std::vector<std::string>& header() const { return header_; }
  size_t size() const { return rows_.size(); }
  bool has_column(const std::string& col) const;
  // Field of row i by column name; Error if the column is missing.
  const std::string& at(size_t row, const std::string& col) const;
  const CsvRow& row(size_t i) const { return rows_[i]; }

 private:
  std::string name_;
  std::vector<std::string> header_;
  std::vector<CsvRow> rows_;
};

// ---------------------------------------------------------------------------------------------
// Hashing
// ---------------------------------------------------------------------------------------------

class Sha256 {
 public:
  Sha256();
  Sha256& update(std::string_view data);
  Sha256& update(const void* data, size_t n);
  std::string hex_digest();  // finalises; call once

 private:
  void block(const uint8_t* p);
  uint32_t h_[8];
  uint8_t buf_[64];
  size_t buf_len_ = 0;
  uint64_t total_ = 0;
};

std::string sha256_hex(std::string_view data);
std::string sha256_file(const fs::path& path);

// ---------------------------------------------------------------------------------------------
// Seeded random numbers: the same on every platform (std distributions are not).
// ---------------------------------------------------------------------------------------------

class Rng {
 public:
  explicit Rng(uint64_t seed);
  uint64_t next_u64();                     // xoshiro256**
  uint64_t uniform(uint64_t n);            // in [0, n), unbiased
  int64_t range(int64_t lo, int64_t hi);   // in [lo, hi], inclusive
  double uniform01();                      // in [0, 1)
  bool bernoulli(double p);
  template <class T> const T& pick(const std::vector<T>& v) { return v[uniform(v.size())]; }
  template <class T> void shuffle(std::vector<T>& v) {
    for (size_t i = v.size(); i > 1; --i) std::swap(v[i - 1], v[uniform(i)]);
  }
  // A child generator whose stream depends on this seed and `salt` only.
  Rng fork(std::string_view salt) const;

 private:
  uint64_t s_[4];
  uint64_t seed_;
};

// ---------------------------------------------------------------------------------------------
// Progress: a bar with rate and ETA on a terminal, plain lines (every few seconds) otherwise.
// Writes to stderr. ATAX_PROGRESS=0 silences it, =plain forces lines.
// ---------------------------------------------------------------------------------------------

class Progress {
 public:
  Progress(std::string label, int64_t total, std::string unit = "it");
  ~Progress();
  void update(int64_t done_now, const std::string& extra = {});  // absolute count
  void advance(int64_t n = 1, const std::string& extra = {});
  void finish(const std::string& extra = {});

 private:
  void draw(bool final);
  std::string label_, unit_, extra_;
  int64_t total_, done_ = 0;
  double start_, last_draw_ = -1e9;
  bool tty_, enabled_, finished_ = false;
};

// Prints a plain status line to stderr ("[atax] ...") unless ATAX_PROGRESS=0.
void log_info(const std::string& line);

// ---------------------------------------------------------------------------------------------
// Strings
// ---------------------------------------------------------------------------------------------

std::vector<std::string> split(std::string_view s, char sep);
std::string join(const std::vector<std::string>& parts, std::string_view sep);
std::string trim(std::string_view s);
std::string to_lower(std::string_view s);
bool starts_with(std::string_view s, std::string_view prefix);
bool ends_with(std::string_view s, std::string_view suffix);
std::string replace_all(std::string s, std::string_view from, std::string_view to);
// "0.412 ± 0.011" with `digits` decimals.
std::string format_pm(double value, double err, int digits = 3);

// Seconds since an arbitrary epoch (steady clock).
double now_seconds();
// ISO-8601 UTC date-time of now.
std::string iso_datetime_utc();

// glibc's allocator settings for tensor workloads, once per process, unless the user set any of
// MALLOC_MMAP_THRESHOLD_ / MALLOC_TRIM_THRESHOLD_ / MALLOC_TOP_PAD_ / GLIBC_TUNABLES. Returns
// whether it changed them (no-op without glibc).
bool tune_allocator();

// Build identity.
std::string atax_version();
std::string atax_git_hash();

// ---------------------------------------------------------------------------------------------
// The LanguageModel interface: lm-evaluation-harness's three request kinds. Implemented by the
// engine's HfModel (src/model) and by test doubles; evaluation depends only on this.
// ---------------------------------------------------------------------------------------------

struct LoglikelihoodRequest {
  std::string context;
  std::string continuation;
};

struct LoglikelihoodResult {
  double logprob = 0;      // sum of log p(continuation tokens | context)
  bool is_greedy = false;  // every continuation token is the argmax
  int64_t n_tokens = 0;    // continuation tokens scored
};

struct RollingResult {
  double logprob = 0;    // sum over all tokens of the text
  int64_t n_tokens = 0;  // tokens scored
};

struct GenerateRequest {
  std::string context;
  std::vector<std::string> until;  // stop strings (not included in the output)
  int max_new_tokens = 256;
  double temperature = 0;  // 0 = greedy
  double top_p = 1.0;
  uint64_t seed = 0;
};

struct ChatMessage {
  std::string role;  // system | user | assistant
  std::string content;
};

class LanguageModel {
 public:
  virtual ~LanguageModel() = default;
  virtual std::vector<LoglikelihoodResult> loglikelihood(const std::vector<LoglikelihoodRequest>& reqs) = 0;
  virtual std::vector<RollingResult> loglikelihood_rolling(const std::vector<std::string>& texts) = 0;
  virtual std::vector<std::string> generate_until(const std::vector<GenerateRequest>& reqs) = 0;
  // Renders a conversation with the model's chat template, ending with the assistant's turn open.
  virtual std::string apply_chat_template(const std::vector<ChatMessage>& messages) const = 0;
  // A stable hash of the weights and tokenizer (the request cache's key).
  virtual std::string content_hash() const = 0;
  virtual std::string name() const = 0;
  // Number of tokens of `text` (for length-sorting requests).
  virtual int64_t count_tokens(const std::string& text) const = 0;
};

}  // namespace atax
