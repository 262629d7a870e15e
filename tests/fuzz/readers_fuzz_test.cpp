// ctest-labels: unit
// A fuzzing harness for every reader of user files: safetensors, GGUF, tokenizer.json,
// config.json, each benchmark format of load_dataset, preference JSONL and task JSON. A fixed
// seed corpus (small real files from ../shared and the repository, and built ones) is mutated by
// a seeded mutator (bit flips, truncation, absurd integers, duplicated spans and keys, random
// bytes). Each input runs in a forked child under RLIMIT_AS (1 GiB above the parent) and a 10 s
// alarm; it must either load or fail with atax::Error. A crash, a hang, an allocation past the
// limit (std::bad_alloc) or any other exception fails the test. The libFuzzer counterpart is
// fuzz/readers_fuzz.cpp (its LibTorch-free readers). Measured on a shared 2-core machine (load
// about 4, Release build): 1098 inputs (18 seeds + 60 mutations each) in 59 s, 191 loaded and
// 907 atax::Error, no other exception, bad_alloc, crash or hang.
#include <gtest/gtest.h>

#include <signal.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdlib>
#include <fstream>
#include <array>
#include <functional>
#include <map>
#include <new>

#include <fmt/format.h>

#include "eval/eval.h"
#include "gguf/gguf.h"
#include "gguf/gguf_file.h"
#include "model/model.h"
#include "train/train.h"

using namespace atax;

namespace {

const fs::path kShared = ATAX_SHARED_DIR;
const fs::path kSource = ATAX_SOURCE_DIR;

enum Outcome { kLoaded = 0, kUserError = 1, kOtherException = 2, kBadAlloc = 3, kCrash = 4, kHang = 5 };
const char* const kOutcomeNames[] = {"loaded", "atax::Error", "other exception", "bad_alloc", "crash", "hang"};

// The first `max_lines` lines (at most `max_bytes`) of a text file.
std::string head_of(const fs::path& p, int max_lines, size_t max_bytes = 4096) {
  std::string s = read_maybe_gzip(p), out;
  int lines = 0;
  for (size_t i = 0; i < s.size() && out.size() < max_bytes; ++i) {
    out += s[i];
    if (s[i] == '\n' && ++lines == max_lines) break;
  }
  return out;
}

// A reader under test: writes nothing, reads `path` (the input's bytes were written there).
struct Reader {
  std::string name;
  std::string file_name;  // the input's file name (some formats need a suffix or a stem)
  std::vector<std::string> seeds;
  std::function<void(const fs::path&)> read;
  size_t mutate_prefix = 0;  // > 0: mutations land in the first bytes (big binary seeds)
};

// Mutates `s` once or a few times, deterministically from `rng`.
std::string mutate(std::string s, Rng& rng, size_t prefix) {
  static const char* const kAbsurd[] = {"4294967296", "-1", "99999999999999999999", "1e308", "-2147483649",
                                       "2147483647", "9223372036854775807", "0", "nan", "1e-320"};
  const int rounds = 1 + static_cast<int>(rng.uniform(3));
  for (int r = 0; r < rounds; ++r) {
    const size_t span = prefix > 0 ? std::min(prefix, s.size()) : s.size();
    if (span == 0) {
      s += static_cast<char>(rng.uniform(256));
      continue;
    }
    const size_t at = rng.uniform(span);
    switch (rng.uniform(8)) {
      case 0:  // bit flips
        for (int k = 0; k < 1 + static_cast<int>(rng.uniform(8)); ++k)
          s[rng.uniform(span)] ^= static_cast<char>(1u << rng.uniform(8));
        break;
      case 1:  // truncation
        s.resize(at);
        break;
      case 2: {  // a number replaced by an absurd one
        size_t b = s.find_first_of("0123456789", at);
        if (b == std::string::npos) b = at;
        size_t e = s.find_first_not_of("0123456789", b);
        if (e == std::string::npos) e = s.size();
        s.replace(b, e - b, kAbsurd[rng.uniform(std::size(kAbsurd))]);
        break;
      }
      case 3: {  // an absurd binary integer (little-endian u64 / u32)
        uint64_t v = rng.bernoulli(0.5) ? ~0ull - rng.uniform(64) : (1ull << (20 + rng.uniform(44)));
        const size_t n = rng.bernoulli(0.5) ? 8 : 4;
        for (size_t k = 0; k < n && at + k < s.size(); ++k) s[at + k] = static_cast<char>(v >> (8 * k));
        break;
      }
      case 4: {  // a duplicated span (duplicated keys, lines, records)
        const size_t len = 1 + rng.uniform(std::min<size_t>(200, s.size() - at));
        s.insert(at, s.substr(at, len));
        break;
      }
      case 5: {  // a duplicated JSON member: the text from a quote to the next comma, again
        size_t q = s.find('"', at), c = q == std::string::npos ? q : s.find(',', q);
        if (c != std::string::npos && c - q < 400) s.insert(q, s.substr(q, c - q + 1));
        break;
      }
      case 6:  // random bytes
        for (int k = 0; k < 1 + static_cast<int>(rng.uniform(16)); ++k)
          s.insert(s.begin() + static_cast<std::ptrdiff_t>(at), static_cast<char>(rng.uniform(256)));
        break;
      default:  // a structural character swapped for another
        s[at] = "{}[]\",:\n\\0"[rng.uniform(11)];
        break;
    }
  }
  return s;
}

int64_t vm_bytes() {
  std::ifstream in("/proc/self/statm");
  int64_t pages = 0;
  in >> pages;
  return pages * ::sysconf(_SC_PAGESIZE);
}

// Runs `fn` in a forked child with an address-space limit and an alarm; returns the outcome.
Outcome run_isolated(const std::function<void()>& fn, std::string* what) {
  int pipefd[2];
  if (::pipe(pipefd) != 0) return kCrash;
  const pid_t pid = ::fork();
  if (pid == 0) {
    ::close(pipefd[0]);
    struct rlimit rl {};
    rl.rlim_cur = rl.rlim_max = static_cast<rlim_t>(vm_bytes() + (int64_t(1) << 30));
    ::setrlimit(RLIMIT_AS, &rl);
    ::alarm(10);
    int code = kLoaded;
    std::string msg;
    try {
      fn();
    } catch (const Error& e) {
      code = kUserError;
      msg = e.what();
    } catch (const std::bad_alloc&) {
      code = kBadAlloc;
    } catch (const std::exception& e) {
      code = kOtherException;
      msg = e.what();
    } catch (...) {
      code = kOtherException;
      msg = "(not a std::exception)";
    }
    if (!msg.empty()) {
      msg.resize(std::min<size_t>(msg.size(), 300));
      (void)!::write(pipefd[1], msg.data(), msg.size());
    }
    ::_exit(code);
  }
  ::close(pipefd[1]);
  char buf[512];
  ssize_t n;
  while ((n = ::read(pipefd[0], buf, sizeof buf)) > 0) what->append(buf, static_cast<size_t>(n));
  ::close(pipefd[0]);
  int status = 0;
  ::waitpid(pid, &status, 0);
  if (WIFSIGNALED(status)) return WTERMSIG(status) == SIGALRM ? kHang : kCrash;
  if (WIFEXITED(status) && WEXITSTATUS(status) <= kBadAlloc) return static_cast<Outcome>(WEXITSTATUS(status));
  return kCrash;
}

std::string tiny_safetensors() {
  const std::string header = R"({"a":{"dtype":"F32","shape":[2,2],"data_offsets":[0,16]},)"
                             R"("b":{"dtype":"BF16","shape":[3],"data_offsets":[16,22]},"__metadata__":{"format":"pt"}})";
  std::string s;
  const uint64_t n = header.size();
  for (int k = 0; k < 8; ++k) s += static_cast<char>(n >> (8 * k));
  return s + header + std::string(22, '\x3f');
}

std::vector<Reader> readers(const Tokenizer& tok) {
  const fs::path hf = kShared / "models/stories260K/hf", bench = kShared / "benchmarks";
  std::vector<Reader> r;
  r.push_back({"safetensors", "model.safetensors", {tiny_safetensors(), read_file(hf / "model.safetensors")},
               [](const fs::path& p) { (void)load_safetensors(p); }, 4096});
  r.push_back({"gguf", "model.gguf", {read_file(kShared / "models/stories260K/stories260K.gguf")},
               [](const fs::path& p) {
                 gguf::GgufFile f = gguf::GgufFile::open(p);
                 for (const auto& [k, v] : f.metadata()) (void)v.to_json().dump();
                 (void)gguf::hf_config_json(f).dump();
                 (void)gguf::hf_tokenizer_json(f).dump();
                 for (const auto& t : f.tensors())
                   if (t.n_elements <= (1 << 16)) (void)f.dequantize_tensor(t);
               },
               32768});
  r.push_back({"tokenizer.json", "tokenizer.json", {read_file(hf / "tokenizer.json")}, [](const fs::path& p) {
                 Tokenizer t = Tokenizer::load(p);
                 (void)t.decode(t.encode("Once upon a time, <s> there was\xff a cat.", true));
               }});
  r.push_back({"config.json", "config.json", {read_file(hf / "config.json")}, [](const fs::path& p) {
                 ModelConfig c = ModelConfig::from_json(read_json(p), p.string());
                 (void)c.to_json().dump();
               }});
  const auto ds = [](std::string format, std::string split) {
    return [format, split](const fs::path& p) { (void)load_dataset(format, p, split); };
  };
  r.push_back({"mmlu_csv", "machine_learning_test.csv", {head_of(bench / "mmlu/test/machine_learning_test.csv", 6)},
               ds("mmlu_csv", "test")});
  r.push_back({"gsm8k_jsonl", "test.jsonl", {head_of(bench / "gsm8k/test.jsonl", 3)}, ds("gsm8k_jsonl", "test")});
  r.push_back({"humaneval_jsonl", "HumanEval.jsonl", {head_of(bench / "humaneval/HumanEval.jsonl", 2, 8192)},
               ds("humaneval_jsonl", "test")});
  {
    // truthfulqa's mc_task.json is one JSON array: keep its first two records.
    json all = read_json(bench / "truthfulqa/mc_task.json"), two = json::array();
    for (size_t i = 0; i < std::min<size_t>(2, all.size()); ++i) two.push_back(all[i]);
    r.push_back({"truthfulqa_mc_json", "mc_task.json", {two.dump(1)}, ds("truthfulqa_mc_json", "test")});
  }
  r.push_back({"bbq_jsonl", "Religion.jsonl", {head_of(bench / "bbq/Religion.jsonl", 3)}, ds("bbq_jsonl", "test")});
  r.push_back({"xstest_csv", "xstest_prompts.csv", {head_of(bench / "xstest/xstest_prompts.csv", 6)},
               ds("xstest_csv", "test")});
  r.push_back({"harmbench_csv", "harmbench_behaviors_text_test.csv",
               {head_of(bench / "harmbench/harmbench_behaviors_text_test.csv", 6)}, ds("harmbench_csv", "test")});
  r.push_back({"advbench_csv", "harmful_behaviors.csv", {head_of(bench / "advbench/harmful_behaviors.csv", 6)},
               ds("advbench_csv", "test")});
  r.push_back({"creativity_jsonl", "stories.jsonl",
               {R"({"id": "s1", "prompt": "Write a story.", "constraints": [{"type": "max_words", "value": 50}]})"
                "\n"
                R"({"prompt": "A poem", "constraints": [{"type": "include_word", "value": "moon"}]})"
                "\n"},
               ds("creativity_jsonl", "test")});
  r.push_back({"allenai_mc_jsonl", "ARC-Challenge-Test.jsonl",
               {head_of(fs::path(ATAX_SOURCE_DIR) / "tests/eval/fixtures/olmes_mc/arc/ARC-Challenge/ARC-Challenge-Test.jsonl", 4)},
               ds("allenai_mc_jsonl", "test")});
  r.push_back({"preference_jsonl", "prefs.jsonl",
               {R"({"prompt": "Hi", "chosen": " there", "rejected": " no", "category": "c", "kind": "k", "difficulty": 2})"
                "\n"
                R"({"chosen": [{"role": "user", "content": "Q"}, {"role": "assistant", "content": "A"}], "rejected": [{"role": "user", "content": "Q"}, {"role": "assistant", "content": "B"}]})"
                "\n"
                R"({"prompt": [{"role": "user", "content": "Q"}], "chosen": [{"role": "assistant", "content": "yes"}], "rejected": [{"role": "assistant", "content": "n"}]})"
                "\n"},
               [&tok](const fs::path& p) {
                 TokenizeOptions to;
                 to.max_length = 64;
                 DataReport rep;
                 (void)load_preferences(p, tok, to, PreferenceFilter{}, &rep);
               }});
  r.push_back({"task_json", "task.json",
               {read_file(kSource / "tasks/capability/mmlu.json"), read_file(kSource / "tasks/capability/gsm8k.json"),
                read_file(kSource / "tasks/capability/toy_creativity.json")},
               [](const fs::path& p) { (void)parse_task_spec(read_json(p), p); }});
  return r;
}

}  // namespace

// Every reader, on its seeds and kMutations seeded mutations of each: loaded or atax::Error only.
TEST(ReadersFuzzTest, EveryInputLoadsOrFailsWithAtaxError) {
  setenv("ATAX_PROGRESS", "0", 1);
  constexpr int kMutations = 60;
  Tokenizer tok = Tokenizer::load(kShared / "models/stories260K/hf/tokenizer.json");
  tok.set_chat_format(chat_format_from_name("plain"));  // stories260K has no chat template
  const fs::path dir = fs::temp_directory_path() / ("atax_readers_fuzz_" + std::to_string(::getpid()));
  fs::create_directories(dir);
  std::map<std::string, std::array<int64_t, 6>> counts;
  std::vector<std::string> failures;
  int64_t total = 0;
  const double t0 = now_seconds();
  for (const Reader& reader : readers(tok)) {
    Rng rng = Rng(20261202).fork(reader.name);
    auto& c = counts[reader.name];
    c.fill(0);
    for (size_t s = 0; s < reader.seeds.size(); ++s) {
      for (int m = -1; m < kMutations; ++m) {
        const std::string input = m < 0 ? reader.seeds[s] : mutate(reader.seeds[s], rng, reader.mutate_prefix);
        const fs::path path = dir / reader.file_name;
        write_file_atomic(path, input);
        std::string what;  // the message of a failure (also of an atax::Error)
        const Outcome o = run_isolated([&] { reader.read(path); }, &what);
        ++c[o];
        ++total;
        if (o >= kOtherException) {
          const fs::path keep = dir / fmt::format("{}-seed{}-mut{}.bad", reader.name, s, m);
          write_file_atomic(keep, input);
          failures.push_back(fmt::format("{}: {} on {} {}", reader.name, kOutcomeNames[o], keep.string(), what));
        }
        // A seed (m < 0) is a valid file: it must load.
        if (m < 0) EXPECT_EQ(o, kLoaded) << reader.name << " seed " << s << " did not load: " << what;
      }
    }
  }
  const double seconds = now_seconds() - t0;
  std::cout << fmt::format("readers fuzz: {} inputs in {:.1f} s\n", total, seconds);
  for (const auto& [name, c] : counts)
    std::cout << fmt::format("  {:<20} loaded {:4}  error {:4}  other {:3}  bad_alloc {:3}  crash {:3}  hang {:3}\n",
                             name, c[0], c[1], c[2], c[3], c[4], c[5]);
  for (const auto& f : failures) ADD_FAILURE() << f;
  if (failures.empty()) fs::remove_all(dir);
}
