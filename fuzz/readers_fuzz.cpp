// libFuzzer target for the readers of user files, the coverage-guided counterpart of the seeded
// harness tests/fuzz/readers_fuzz_test.cpp, on the same reader functions: the first byte of an
// input picks the reader (modulo their count, in the order of kReaders), the rest is the file.
// The LibTorch-free readers only: GGUF, tokenizer.json, every load_dataset format and task JSON.
// safetensors, config.json and preference JSONL live in LibTorch modules, whose headers (1.13)
// clang 14 with libstdc++ 12 does not compile; the seeded harness covers those three.
// Any input must either load or fail with atax::Error; every other exception (std::terminate),
// crash, hang, leak, allocation past -malloc_limit_mb or sanitizer report is a bug.
// Build and run: see fuzz/CMakeLists.txt (seeds: fuzz/make_readers_seeds.py).
#include <unistd.h>

#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <fstream>
#include <string>

#include "eval/eval.h"
#include "gguf/gguf_file.h"
#include "tokenizer/tokenizer.h"

using namespace atax;

namespace {

// Big GGUF tensors are skipped so that each input stays fast; their bounds were checked at parse.
constexpr int64_t kMaxDequantElements = 1 << 16;

fs::path g_dir;  // per-process scratch folder for the inputs' files

void read_gguf(const uint8_t* data, size_t size) {
  gguf::GgufFile f = gguf::GgufFile::from_memory(data, size, "fuzz.gguf");
  for (const auto& [k, v] : f.metadata()) (void)v.to_json().dump();
  (void)gguf::hf_config_json(f).dump();
  (void)gguf::hf_tokenizer_json(f).dump();
  for (const auto& t : f.tensors())
    if (t.n_elements <= kMaxDequantElements) (void)f.dequantize_tensor(t);
}

void read_dataset(const char* format, const fs::path& p) { (void)load_dataset(format, p, "test"); }

struct Reader {
  const char* name;
  const char* file_name;  // the input's file name (some formats need a suffix or a stem)
  void (*read)(const fs::path&);
};

// The harness's LibTorch-free readers, in its order; GGUF (index 0) reads from memory.
const Reader kReaders[] = {
    {"gguf", nullptr, nullptr},
    {"tokenizer.json", "tokenizer.json",
     [](const fs::path& p) {
       Tokenizer t = Tokenizer::load(p);
       (void)t.decode(t.encode("Once upon a time, <s> there was\xff a cat.", true));
     }},
    {"mmlu_csv", "machine_learning_test.csv", [](const fs::path& p) { read_dataset("mmlu_csv", p); }},
    {"gsm8k_jsonl", "test.jsonl", [](const fs::path& p) { read_dataset("gsm8k_jsonl", p); }},
    {"humaneval_jsonl", "HumanEval.jsonl", [](const fs::path& p) { read_dataset("humaneval_jsonl", p); }},
    {"truthfulqa_mc_json", "mc_task.json", [](const fs::path& p) { read_dataset("truthfulqa_mc_json", p); }},
    {"bbq_jsonl", "Religion.jsonl", [](const fs::path& p) { read_dataset("bbq_jsonl", p); }},
    {"xstest_csv", "xstest_prompts.csv", [](const fs::path& p) { read_dataset("xstest_csv", p); }},
    {"harmbench_csv", "harmbench_behaviors_text_test.csv", [](const fs::path& p) { read_dataset("harmbench_csv", p); }},
    {"advbench_csv", "harmful_behaviors.csv", [](const fs::path& p) { read_dataset("advbench_csv", p); }},
    {"creativity_jsonl", "stories.jsonl", [](const fs::path& p) { read_dataset("creativity_jsonl", p); }},
    {"task_json", "task.json", [](const fs::path& p) { (void)parse_task_spec(read_json(p), p); }},
};
constexpr size_t kReaderCount = sizeof(kReaders) / sizeof(kReaders[0]);

}  // namespace

extern "C" int LLVMFuzzerInitialize(int*, char***) {
  setenv("ATAX_PROGRESS", "0", 1);  // log_info warnings about odd inputs would flood the output
  g_dir = fs::temp_directory_path() / ("atax_readers_fuzz_" + std::to_string(::getpid()));
  fs::create_directories(g_dir);
  std::atexit([] {
    std::error_code ec;
    fs::remove_all(g_dir, ec);
  });
  return 0;
}

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size == 0) return 0;
  const Reader& reader = kReaders[data[0] % kReaderCount];
  try {
    if (!reader.read) {
      read_gguf(data + 1, size - 1);
    } else {
      const fs::path path = g_dir / reader.file_name;
      std::ofstream(path, std::ios::binary | std::ios::trunc).write(reinterpret_cast<const char*>(data + 1),
                                                                    static_cast<std::streamsize>(size - 1));
      reader.read(path);
    }
  } catch (const Error&) {
  }
  return 0;
}
