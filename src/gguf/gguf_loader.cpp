// GGUF tensors as torch tensors, and GGUF files as atax models (load, convert, the ".gguf" hook).
#include <sys/mman.h>
#include <unistd.h>

#include <mutex>

#include <ATen/Parallel.h>
#include <fmt/format.h>

#include "gguf/gguf.h"

namespace atax::gguf {

namespace {
// Drops the resident pages lying wholly inside [p, p + n) of a private file mapping (a page shared
// with a neighbouring tensor stays); a later read faults them in from the file again.
void release_mapped_pages(void* p, size_t n) {
  const uintptr_t page = static_cast<uintptr_t>(sysconf(_SC_PAGESIZE));
  const auto a = reinterpret_cast<uintptr_t>(p);
  const uintptr_t b = (a + page - 1) / page * page, e = (a + n) / page * page;
  if (e > b) madvise(reinterpret_cast<void*>(b), e - b, MADV_DONTNEED);
}
}  // namespace

torch::Tensor load_tensor(const GgufFile& f, const TensorInfo& t) {
  const TypeTraits* tr = type_traits(static_cast<uint32_t>(t.type));
  if (!tr || !tr->dequantizable)
    throw Error(fmt::format("tensor '{}' has type {}, which atax cannot dequantize", t.name, tr ? tr->name : "?"),
                f.name(),
                "atax reads " + dequantizable_type_names() +
                    "; requantize with llama-quantize (e.g. to Q8_0 or Q4_K_M) or use the Hugging Face folder");
  torch::Tensor out = torch::empty(t.shape(), torch::kFloat32);
  if (t.n_elements == 0) return out;
  // Rows (ne[0] elements, a whole number of blocks) are independent: dequantize them in parallel.
  const int64_t row = t.ne.empty() ? 1 : t.ne[0];
  const int64_t rows = t.n_elements / row;
  const int64_t row_bytes = row / tr->block_size * tr->type_size;
  const uint8_t* src = f.tensor_data(t);
  float* dst = out.data_ptr<float>();
  const int64_t grain = std::max<int64_t>(1, (1 << 16) / std::max<int64_t>(row, 1));
  at::parallel_for(0, rows, grain, [&](int64_t begin, int64_t end) {
    dequantize(t.type, src + begin * row_bytes, (end - begin) * row, dst + begin * row);
  });
  return out;
}

namespace {
// One plan entry converted: dequantized to float32, q/k rows put back, offsets applied, in `dtype`.
torch::Tensor convert(const GgufFile& f, const TensorPlan& p, torch::Dtype dtype, bool share_mapping) {
  const TensorInfo& t = f.tensors()[p.index];
  const bool as_stored = t.type == GgmlType::kF32 && p.unpermute_heads == 0 && p.add == 0;
  torch::Tensor w = load_tensor(f, t);
  if (p.unpermute_heads > 0) {
    std::vector<int64_t> src = unpermute_rows(w.size(0), p.unpermute_heads);
    w = w.index_select(0, torch::tensor(src, torch::kInt64)).contiguous();
  }
  if (p.add != 0) w.add_(p.add);
  // The stored bytes are not needed again: quantized, permuted or offset tensors are never
  // shared (an as-stored float32 one may be, by an earlier call, so its pages stay).
  if (share_mapping && !as_stored) f.release_pages(t);
  return dtype == torch::kFloat32 ? w : w.to(dtype);
}
}  // namespace

std::map<std::string, torch::Tensor> hf_weights(const GgufFile& f, torch::Dtype dtype, bool share_mapping,
                                                bool release_when_freed, bool lazy) {
  std::map<std::string, torch::Tensor> out;
  for (const TensorPlan& p : hf_tensor_plan(f)) {
    const TensorInfo& t = f.tensors()[p.index];
    const bool as_stored = t.type == GgmlType::kF32 && p.unpermute_heads == 0 && p.add == 0;
    const uint8_t* bytes = f.tensor_data(t);
    if (share_mapping && as_stored && dtype == torch::kFloat32 && f.is_mapped() && t.n_elements > 0 &&
        reinterpret_cast<uintptr_t>(bytes) % alignof(float) == 0) {
      // The mapping's own bytes, kept alive by the tensor: no copy (a model adopts it as is).
      auto owner = f.data_owner();
      const size_t n = t.n_bytes;
      const bool release = release_when_freed;
      out.emplace(p.hf_name, torch::from_blob(
                                 const_cast<uint8_t*>(bytes), t.shape(),
                                 [owner, n, release](void* at) {
                                   if (release) release_mapped_pages(at, n);
                                 },
                                 torch::kFloat32));
      continue;
    }
    if (lazy) {
      out.emplace(p.hf_name, torch::empty(t.shape(), torch::TensorOptions().dtype(dtype).device(torch::kMeta)));
      continue;
    }
    out.emplace(p.hf_name, convert(f, p, dtype, share_mapping));
  }
  return out;
}

torch::Tensor hf_weight(const GgufFile& f, const std::string& hf_name, torch::Dtype dtype, bool share_mapping) {
  for (const TensorPlan& p : hf_tensor_plan(f))
    if (p.hf_name == hf_name) return convert(f, p, dtype, share_mapping);
  throw Error("no tensor maps to \"" + hf_name + "\"", f.name());
}

}  // namespace atax::gguf

namespace atax {

LoadedModel load_gguf_model(const fs::path& path, const LoadOptions& opts) {
  gguf::GgufFile f = gguf::GgufFile::open(path);
  ModelConfig config = ModelConfig::from_json(gguf::hf_config_json(f), path.string());
  auto tokenizer = std::make_shared<Tokenizer>(
      Tokenizer::from_json(gguf::hf_tokenizer_json(f), gguf::hf_tokenizer_config_json(f), path.string()));
  // Float32 tensors stay in the file's mapping and become the parameters; the others are
  // converted one by one and their stored pages dropped: about one copy of the weights in memory.
  // `f` is this call's own, so its views may drop their pages when freed (a packed load frees
  // each float32 view once packed: about the packed size resident, not the file's).
  // Tensors that need converting are converted one at a time as the model takes them (lazy), so a
  // quantized file is never held dequantized whole.
  const torch::Dtype dtype = opts.dtype;
  return make_model(
      config, gguf::hf_weights(f, dtype, /*share_mapping=*/true, /*release_when_freed=*/true, /*lazy=*/true),
      std::move(tokenizer), opts, path,
      [&f, dtype](const std::string& name) { return gguf::hf_weight(f, name, dtype, /*share_mapping=*/true); });
}

void convert_gguf_to_hf(const fs::path& gguf_path, const fs::path& out_dir, torch::Dtype dtype) {
  LoadOptions opts;
  opts.device = "cpu";
  opts.dtype = torch::kFloat32;
  LoadedModel m = load_gguf_model(gguf_path, opts);
  save_model(m, out_dir, dtype);
}

void register_gguf_loader() {
  static std::once_flag once;
  std::call_once(once, [] { register_model_file_loader(".gguf", load_gguf_model); });
}

namespace {
// Registers the hook when this object file is linked in (always so when register_gguf_loader or
// anything else here is referenced).
const bool kGgufLoaderRegistered = (register_gguf_loader(), true);
}  // namespace

}  // namespace atax
