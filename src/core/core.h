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

// ---------------------------------------------------------------------------------------------
// Output folders: a command writes only into a new folder, an empty one, or one that holds its
// own earlier output (recognised by the manifest kOutputManifest it writes), and holds a lock for
// the duration, so a second writer fails at once with the holder's pid.
// ---------------------------------------------------------------------------------------------

// The manifest an output folder carries: {"atax_output": 1, "command": ..., "pid": ...,
// "started": ..., "finished": ... }. commit_dir() carries it over to the new folder.
inline constexpr const char* kOutputManifest = ".atax_output.json";

// An exclusive claim on an output folder: a flock on the lock file beside it
// ("<parent>/.<name>.atax-lock", holding the owner's pid), released (and the lock file removed)
// on destruction. Movable, not copyable.
class OutputDir {
 public:
  OutputDir() = default;
  OutputDir(fs::path dir, fs::path lock_path, int fd, std::string command);
  OutputDir(OutputDir&& other) noexcept;
  OutputDir& operator=(OutputDir&& other) noexcept;
  OutputDir(const OutputDir&) = delete;
  OutputDir& operator=(const OutputDir&) = delete;
  ~OutputDir();

  const fs::path& path() const { return dir_; }
  bool held() const { return fd_ >= 0; }
  // Records the command's success in the folder's manifest (creating the folder if need be).
  void mark_finished(const json& extra = json::object());
  // Releases the lock now (idempotent). A folder this claim created that the command never
  // finished and that holds nothing but the manifest is removed: a failed command leaves nothing.
  void release();
  void set_created(bool created) { created_ = created; }

 private:
  fs::path dir_, lock_path_;
  int fd_ = -1;
  std::string command_;
  bool created_ = false, finished_ = false;
};

// Claims `dir` as the output folder of `command` (e.g. "train dpo", "world generate"). Accepts a
// missing folder, an empty one, or one whose manifest names the same command; anything else (a
// file, another command's output, a folder of unknown files) fails with Error naming the folder
// and --force, unless `force`. Fails at once, naming the holder's pid, while another process holds
// the claim. Creates the folder, writes its manifest and cleans the staging folders that killed
// runs left beside it. `option` names the command's option in messages.
OutputDir claim_output_dir(const fs::path& dir, const std::string& command, bool force,
                           const std::string& option = "--out");

// Bytes of memory the machine can still give (MemAvailable of /proc/meminfo, capped by
// RLIMIT_AS); -1 when unknown.
int64_t available_memory_bytes();

// Fails with Error naming `what`, the need in GiB and what is available when `bytes` exceeds the
// memory available_memory_bytes() reports; `hint` says how to need less.
void check_memory_need(int64_t bytes, const std::string& what, const std::string& hint);

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
// Creativity constraints
// ---------------------------------------------------------------------------------------------

// For each of `constraints` ([{type, value}]), whether `response` meets it. Types: include_word,
// exclude_word (case-insensitive whole words or phrases), max_words, min_words (whitespace-split
// words), starts_with, ends_with (case-insensitive, after trimming; ends_with also ignores trailing
// . ! ? quotes when the value has none). The one definition: the evaluator's constraints_met and the
// world generator both use it. Error for an unknown type or a malformed constraint.
std::vector<bool> check_constraints(std::string_view response, const json& constraints);

// ---------------------------------------------------------------------------------------------
// Sharding
// ---------------------------------------------------------------------------------------------

// The contiguous share [begin, end) of n items that shard `index` of `count` takes: the first
// n % count shards take one item more; the shards in order concatenate to 0..n. The one shard
// arithmetic of the project (dist's ranks, evaluation shards). Error for count < 1, index
// outside [0, count) or n < 0.
std::pair<int64_t, int64_t> shard_range(int64_t n, int index, int count);

// ---------------------------------------------------------------------------------------------
// Hashing
// ---------------------------------------------------------------------------------------------

class Sha256 {
 public:
  Sha256();
  ~Sha256();
  Sha256(const Sha256& other);
  Sha256& operator=(const Sha256& other);
  Sha256& update(std::string_view data);
  Sha256& update(const void* data, size_t n);
  std::string hex_digest();  // finalises; call once

 private:
  // OpenSSL EVP_MD_CTX (SHA-NI where the CPU has it; bench_sha256 on 2026-12-06: 6.0x a portable reference).
  void* ctx_ = nullptr;
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
  // The model's identity: a stable hash of its weights, config and tokenizer files.
  virtual std::string content_hash() const = 0;
  // Every setting besides the identity that can change an answer (dtype, device kind, context
  // length, chat template); the request cache keys on both (see request_model_key in eval.h).
  virtual json runtime_settings() const { return json::object(); }
  virtual std::string name() const = 0;
  // Number of tokens of `text` (for length-sorting requests).
  virtual int64_t count_tokens(const std::string& text) const = 0;
};

}  // namespace atax
