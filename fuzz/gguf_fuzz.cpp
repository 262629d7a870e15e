// libFuzzer target for the GGUF reader: container parsing, dequantization and the metadata ->
// Hugging Face mapping (config.json, tensor names, tokenizer.json). Any input must either parse
// or fail with atax::Error; every other exception, crash, leak or sanitizer report is a bug.
// Build and run: see fuzz/CMakeLists.txt.
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <optional>
#include <vector>

#include "gguf/gguf_file.h"

namespace {

// Big tensors are skipped so that each input stays fast; their bounds were checked at parse.
constexpr int64_t kMaxDequantElements = 1 << 20;

template <class Fn>
void expect_ok_or_error(Fn&& fn) {
  try {
    fn();
  } catch (const atax::Error&) {
  }
}

}  // namespace

extern "C" int LLVMFuzzerInitialize(int*, char***) {
  setenv("ATAX_PROGRESS", "0", 1);  // log_info warnings about odd metadata would flood the output
  return 0;
}

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace atax::gguf;
  std::optional<GgufFile> f;
  try {
    f.emplace(GgufFile::from_memory(data, size, "fuzz.gguf"));
  } catch (const atax::Error&) {
    return 0;
  }
  for (const auto& [key, value] : f->metadata()) (void)value.to_json().size();
  for (const TensorInfo& t : f->tensors()) {
    const TypeTraits* tr = type_traits(static_cast<uint32_t>(t.type));
    if (tr && tr->dequantizable && t.n_elements <= kMaxDequantElements)
      expect_ok_or_error([&] {
        std::vector<float> v = f->dequantize_tensor(t);
        volatile float sink = v.empty() ? 0.f : v[v.size() / 2];
        (void)sink;
      });
  }
  // The mapping's JSON must always be writable (valid UTF-8): dump() throws on anything else.
  expect_ok_or_error([&] { (void)hf_config_json(*f).dump(); });
  expect_ok_or_error([&] { (void)hf_tensor_plan(*f); });
  expect_ok_or_error([&] { (void)hf_tokenizer_json(*f).dump(); });
  expect_ok_or_error([&] { (void)hf_tokenizer_config_json(*f).dump(); });
  return 0;
}
