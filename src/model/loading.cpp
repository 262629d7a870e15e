// Model folders in and out, the device switch, and thread settings.
#include <dlfcn.h>
#include <malloc.h>
#include <fstream>
#include <thread>

#include <fmt/format.h>

#include "model/model.h"

namespace atax {

namespace {
std::map<std::string, ModelFileLoader>& file_loaders() {
  static std::map<std::string, ModelFileLoader> loaders;
  return loaders;
}

// The identity of in-memory parts (GGUF, `atax init`): the config, every tensor as given (name,
// dtype, shape and every byte, before any conversion to the compute dtype), the tokenizer files.
// Tensors are added one by one (in name order) as the model takes them, so a packed load never
// holds every float32 page at once.
struct PartsIdentity {
  Sha256 h;
  explicit PartsIdentity(const ModelConfig& config) {
    h.update(kModelIdentityVersion).update("\nconfig\n").update(config.to_json().dump());
  }
  void tensor(const std::string& name, const torch::Tensor& t) {
    auto c = t.to(torch::kCPU).contiguous();
    h.update("\ntensor\n").update(name).update(std::string(c10::toString(c.scalar_type())));
    for (int64_t d : c.sizes()) h.update(std::to_string(d) + ",");
    h.update(c.data_ptr(), static_cast<size_t>(c.numel()) * c.element_size());
  }
  std::string finish(const Tokenizer* tokenizer) {
    if (tokenizer) {
      h.update("\ntokenizer.json\n").update(tokenizer->tokenizer_json().dump());
      h.update("\ntokenizer_config.json\n").update(tokenizer->tokenizer_config().dump());
    }
    return h.hex_digest();
  }
};

// The weight format a load asks for, checked against its dtype and device before anything is
// read: packed formats are float32 CPU storage for evaluation.
WeightFormat load_format(const LoadOptions& opts) {
  const WeightFormat format = opts.weights.value_or(default_weight_format());
  if (format == WeightFormat::kF32) return format;
  const torch::Device device = resolve_device(opts.device);
  if (opts.dtype != torch::kFloat32 || !device.is_cpu())
    throw Error("--weights " + weight_format_name(format) + " needs a float32 model on the CPU, but this load asks for " +
                    std::string(c10::toString(opts.dtype)) + " on " + device.str(),
                "", "drop --dtype bfloat16 and --device cuda, or use --weights f32");
  return format;
}

}  // namespace

void register_model_file_loader(const std::string& extension, ModelFileLoader loader) {
  file_loaders()[extension] = std::move(loader);
}

torch::Device resolve_device(const std::string& spec_in) {
  std::string spec = spec_in;
  if (spec.empty() || spec == "auto") {
    const char* env = std::getenv("ATAX_DEVICE");
    spec = env && *env ? env : "auto";
  }
  if (spec == "auto") return torch::cuda::is_available() ? torch::Device(torch::kCUDA, 0) : torch::Device(torch::kCPU);
  if (spec == "cpu") return torch::Device(torch::kCPU);
  if (starts_with(spec, "cuda")) {
    if (!torch::cuda::is_available())
      throw Error("device \"" + spec + "\" asked for, but this LibTorch has no usable CUDA", "",
                  "use --device cpu, or build atax against a CUDA LibTorch with -DTorch_DIR=...");
    return torch::Device(spec);
  }
  throw Error("unknown device \"" + spec + "\"", "", "use auto, cpu, cuda or cuda:N");
}

namespace {
// glibc's malloc serves a block of 128 KB or more by mmap at first, and then, once such a block is
// freed, raises that threshold to the block's size and gives memory at the heap's top back to the
// system beyond twice it. A forward pass allocates and frees tensors of megabytes at every layer
// (a 2048-token window's q, k, v, norms and MLP blocks: 4-11 MB each on the 58M Llama), so each
// one came back as fresh pages and each page faulted: 7% of a 2048-token scoring profile was the
// kernel's page faults, under TensorIterator's element-wise loops. Fixed thresholds keep freed
// blocks in the heap for the next layer: scoring on 2 threads 18% faster at 256 tokens and 26% at
// 2048 (bench_score_vs_llamacpp, idle, 2 runs each), peak RSS +17 MB of 460 at 2048. Blocks over
// 256 MB (a large vocabulary's embedding) are still mapped on their own, and the heap's top is
// still trimmed beyond 256 MB free. Not applied when the user tunes malloc (GLIBC_TUNABLES,
// MALLOC_MMAP_THRESHOLD_, MALLOC_TRIM_THRESHOLD_).
void configure_allocator() {
  [[maybe_unused]] static const bool done = [] {
    for (const char* env : {"GLIBC_TUNABLES", "MALLOC_MMAP_THRESHOLD_", "MALLOC_TRIM_THRESHOLD_"})
      if (std::getenv(env)) return true;
    mallopt(M_MMAP_THRESHOLD, 256 << 20);
    mallopt(M_TRIM_THRESHOLD, 256 << 20);
    return true;
  }();
}
}  // namespace

void configure_threads(int threads) {
  configure_allocator();
  if (threads <= 0) {
    const char* env = std::getenv("ATAX_THREADS");
    threads = env ? std::max(0, std::atoi(env)) : 0;
  }
  // A step inside a larger job (the demo's pretraining, a sweep's runs) asks for the default; an
  // explicit count given earlier in the process stays.
  static int explicit_threads = 0;
  if (threads > 0) explicit_threads = threads;
  else if (explicit_threads > 0) return;
  // OpenBLAS (scripts/setup installs it; LibTorch's matrix products run in it) keeps a pool of its
  // own, sized to the cores and spinning in sched_yield between calls, beside LibTorch's intra-op
  // pool. Measured on the 2-core machines (0.87M-parameter demo model; bench/threads for 4M-25M):
  //   pretraining, idle machine: intra 1 + BLAS 1: 10.0k tok/s, 1 + 2: 15.5k, 2 + 1: 11.3k, 2 + 2: 6.2k;
  //   evaluation (206 generations) beside two other busy processes: BLAS 2: 85 s, BLAS 1: 5.3 s.
  // So on machines of up to 2 cores (where it was measured) one BLAS thread by default (a second
  // one only pays on an idle machine, and costs up to 16x when anything else runs); larger
  // machines keep both libraries' defaults. --threads N / ATAX_THREADS=N gives OpenBLAS N threads
  // and LibTorch's own pool one. OPENBLAS_NUM_THREADS, when set, is left alone. Without OpenBLAS
  // (another BLAS, a CUDA build) N goes to LibTorch's intra-op pool.
  using SetThreads = void (*)(int);
  static auto* set_blas_threads = reinterpret_cast<SetThreads>(dlsym(RTLD_DEFAULT, "openblas_set_num_threads"));
  const bool blas_env = std::getenv("OPENBLAS_NUM_THREADS") != nullptr;
  if (set_blas_threads && threads > 0) {
    if (!blas_env) set_blas_threads(threads);
    at::set_num_threads(1);
  } else if (set_blas_threads) {
    if (!blas_env && std::thread::hardware_concurrency() <= 2) set_blas_threads(1);
  } else if (threads > 0) {
    at::set_num_threads(threads);
  }
}

std::string thread_summary() {
  using GetThreads = int (*)();
  static auto* get_blas_threads = reinterpret_cast<GetThreads>(dlsym(RTLD_DEFAULT, "openblas_get_num_threads"));
  std::string s = get_blas_threads ? fmt::format("{} BLAS threads, ", get_blas_threads()) : std::string();
  return s + fmt::format("{} intra-op threads", at::get_num_threads());
}

LoadedModel make_model(const ModelConfig& config, const std::map<std::string, torch::Tensor>& weights,
                       std::shared_ptr<Tokenizer> tokenizer, const LoadOptions& opts, fs::path source) {
  // The copied map shares the caller's tensors, so adoption copies each of them.
  return make_model(config, std::map<std::string, torch::Tensor>(weights), std::move(tokenizer), opts,
                    std::move(source));
}

LoadedModel make_model(const ModelConfig& config, std::map<std::string, torch::Tensor>&& weights,
                       std::shared_ptr<Tokenizer> tokenizer, const LoadOptions& opts, fs::path source,
                       const CausalLmImpl::WeightReader& read) {
  LoadedModel lm;
  lm.config = config;
  const bool load = !weights.empty();
  if (load) config.check_weights(weights, source.string());  // before allocating the network
  const WeightFormat format = load_format(opts);
  // The identity covers the tensors as given, so each is hashed before it becomes a parameter.
  PartsIdentity identity(config);
  // Loaded weights replace every parameter: no random initialisation to pay for and throw away.
  lm.net = CausalLm(config, load ? WeightInit::kNone : WeightInit::kRandom);
  if (load) {
    // A packed format packs each weight as it is taken (the network is float32 on the CPU, which
    // load_format checked the load asks for), so the float32 copies are never all held.
    lm.net->adopt_hf_state_dict(std::move(weights), source.string(), format,
                                [&](const std::string& name, const torch::Tensor& t) { identity.tensor(name, t); },
                                read);
  }
  if (format == WeightFormat::kF32 || !load) lm.net->to(resolve_device(opts.device), opts.dtype);
  lm.net->eval();
  lm.net->pack_weights(format);  // a random network (no weights given); a no-op after a packed load
  lm.tokenizer = std::move(tokenizer);
  lm.source = std::move(source);
  if (lm.tokenizer && lm.tokenizer->vocab_size() > config.vocab_size)
    throw Error(fmt::format("tokenizer has {} tokens but the model's vocab_size is {}", lm.tokenizer->vocab_size(),
                            config.vocab_size),
                lm.source.string(), "the tokenizer does not belong to this model");
  lm.content_hash = identity.finish(lm.tokenizer.get());
  return lm;
}

LoadedModel load_model(const fs::path& path, const LoadOptions& opts) {
  if (!fs::exists(path)) throw Error("no such model folder or file", path.string());
  if (fs::is_regular_file(path)) {
    auto it = file_loaders().find(path.extension().string());
    if (it == file_loaders().end())
      throw Error("not a model folder, and no loader for files of type \"" + path.extension().string() + "\"",
                  path.string(), "pass a Hugging Face folder (config.json + *.safetensors) or a .gguf file");
    return it->second(path, opts);
  }
  fs::path cfg_path = path / "config.json";
  ModelConfig config = ModelConfig::from_json(read_json(cfg_path), cfg_path.string());
  std::map<std::string, std::string> file_sha256;
  const WeightFormat format = load_format(opts);
  // A packed load reads each tensor's pages only when it packs it (and drops them after), so the
  // digest pass leaves none resident; a float32 one keeps them, they are the parameters.
  auto weights = load_safetensors_dir(path, &file_sha256, /*keep_resident=*/format == WeightFormat::kF32);
  std::shared_ptr<Tokenizer> tok;
  if (fs::exists(path / "tokenizer.json")) tok = std::make_shared<Tokenizer>(Tokenizer::load(path));
  std::string weights_file = fs::exists(path / "model.safetensors") ? (path / "model.safetensors").string()
                                                                     : (path / "model.safetensors.index.json").string();
  LoadedModel lm;
  lm.config = config;
  config.check_weights(weights, weights_file);  // before allocating the network
  // The mapped tensors become the parameters (no random initialisation, no copy for float32
  // files): loading holds one copy of the weights.
  lm.net = CausalLm(config, WeightInit::kNone);
  lm.net->adopt_hf_state_dict(std::move(weights), weights_file, format);  // packs as it goes unless kF32
  if (format == WeightFormat::kF32) lm.net->to(resolve_device(opts.device), opts.dtype);
  lm.net->eval();
  lm.tokenizer = tok;
  lm.source = path;
  if (tok && tok->vocab_size() > config.vocab_size)
    throw Error(fmt::format("tokenizer has {} tokens but vocab_size is {}", tok->vocab_size(), config.vocab_size),
                (path / "tokenizer.json").string(), "the tokenizer does not belong to this model");
  lm.content_hash = folder_identity(path, file_sha256);
  return lm;
}

std::string folder_identity(const fs::path& dir, const std::map<std::string, std::string>& weight_file_sha256) {
  Sha256 h;
  h.update(kModelIdentityVersion).update("\nconfig.json\n").update(read_file(dir / "config.json"));
  for (const auto& [name, digest] : weight_file_sha256) h.update("\nweights\n").update(name).update(" ").update(digest);
  for (const char* f : kIdentityFiles)
    if (fs::exists(dir / f)) h.update("\n").update(f).update("\n").update(read_file(dir / f));
  return h.hex_digest();
}

void save_model(const LoadedModel& model, const fs::path& dir, torch::Dtype dtype, const json& extra_files) {
  if (model.net->weight_format() != WeightFormat::kF32)
    throw Error("cannot save a model whose weights are stored as " + weight_format_name(model.net->weight_format()),
                dir.string(), "load it with --weights f32 to save or train it");
  fs::path staging = staging_dir_for(dir);
  try {
    json cfg = model.config.to_json();
    cfg["torch_dtype"] = dtype == torch::kBFloat16 ? "bfloat16" : dtype == torch::kFloat16 ? "float16" : "float32";
    write_json_atomic(staging / "config.json", cfg);
    std::map<std::string, torch::Tensor> tensors;
    for (auto& [k, v] : model.net->hf_state_dict()) tensors[k] = v.to(torch::kCPU, dtype);
    if (model.config.tie_word_embeddings) tensors.erase("lm_head.weight");
    save_safetensors(staging / "model.safetensors", tensors);
    if (model.tokenizer) model.tokenizer->save(staging);
    json gen = {{"_from_model_config", true}};
    if (model.config.bos_token_id) gen["bos_token_id"] = *model.config.bos_token_id;
    if (model.config.eos_token_id) gen["eos_token_id"] = *model.config.eos_token_id;
    write_json_atomic(staging / "generation_config.json", gen);
    for (auto it = extra_files.begin(); it != extra_files.end(); ++it) {
      if (it.value().is_string()) write_file_atomic(staging / it.key(), it.value().get<std::string>());
      else write_json_atomic(staging / it.key(), it.value());
    }
    commit_dir(staging, dir);
  } catch (...) {
    std::error_code ec;
    fs::remove_all(staging, ec);
    throw;
  }
}

}  // namespace atax
