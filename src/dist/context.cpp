// Context: rendezvous through c10d::TCPStore and the collectives of one process group.
#include <chrono>
#include <cstdlib>

#include <fmt/format.h>

#include "dist/c10d_handle.h"
#include "model/model.h"

namespace atax::dist {

double dist_now() {
  return std::chrono::duration<double>(std::chrono::steady_clock::now().time_since_epoch()).count();
}

// The message of an exception without the C++ backtrace c10::Error appends.
std::string short_what(const std::exception& e) {
  if (auto* c = dynamic_cast<const c10::Error*>(&e)) return trim(c->what_without_backtrace());
  std::string s = e.what();
  if (auto pos = s.find("\nException raised from"); pos != std::string::npos) s.resize(pos);
  return trim(s);
}

namespace {

std::mutex g_init_mutex;
// Leaked on purpose: destroying a process group whose peer died can block in Gloo's pair
// destructors, and exit() must never hang. The OS reclaims sockets and threads.
Context* g_context = nullptr;

std::chrono::milliseconds to_ms(double seconds) {
  return std::chrono::milliseconds(static_cast<int64_t>(seconds * 1000.0));
}

bool is_loopback(const std::string& addr) {
  return addr == "localhost" || starts_with(addr, "127.") || addr == "::1";
}

std::string rendezvous_hint(const DistEnv& env) {
  return fmt::format(
      "every rank needs the same MASTER_ADDR, MASTER_PORT and WORLD_SIZE; rank 0 must be able to listen on the "
      "port (pick a free one with MASTER_PORT or `atax launch --master-port`); all {} ranks must start within "
      "ATAX_DIST_TIMEOUT={} s (did one crash before this point?); across machines set GLOO_SOCKET_IFNAME to "
      "the interface that reaches the others",
      env.world_size, env.timeout_s);
}

std::string fail_hint(double timeout_s) {
  return fmt::format(
      "another rank probably exited or hung (a hung rank is noticed after ATAX_DIST_TIMEOUT={} s); look at "
      "the other ranks' output (`atax launch` prefixes it with [rank k]) for the first error",
      timeout_s);
}

}  // namespace

// ---------------------------------------------------------------------------------------------
// init
// ---------------------------------------------------------------------------------------------

Context& init(const InitOptions& opts) {
  std::lock_guard<std::mutex> lock(g_init_mutex);
  if (g_context) return *g_context;
  auto* ctx = new Context();
  ctx->env_ = opts.env ? *opts.env : DistEnv::from_env();
  if (opts.timeout_s) {
    if (!(*opts.timeout_s > 0))
      throw Error(fmt::format("dist: timeout {} s is not positive", *opts.timeout_s), "",
                  "give the seconds a rank may wait for the others");
    ctx->env_.timeout_s = *opts.timeout_s;
  }
  const DistEnv& env = ctx->env_;
  if (opts.threads > 0) {
    configure_threads(opts.threads);  // N BLAS threads (see model.h), as in a single process
  } else if (env.distributed() && std::getenv("OMP_NUM_THREADS") == nullptr) {
    at::set_num_threads(1);  // one thread per rank unless the user chose
  }
  if (!env.distributed()) {
    g_context = ctx;
    return *ctx;
  }

  // Backend.
  torch::Device device(opts.device == "auto" ? std::string("cpu") : opts.device);
  std::string backend = opts.backend;
  if (backend == "auto") backend = device.is_cuda() ? "nccl" : "gloo";
  if (backend != "gloo" && backend != "nccl")
    throw Error(fmt::format("dist: unknown backend '{}'", opts.backend), "", "use auto, gloo or nccl");
#ifndef ATAX_DIST_NCCL
  if (backend == "nccl") {
    if (opts.backend == "auto") {
      backend = "gloo";  // a CUDA device without NCCL in this build: Gloo through host memory
    } else {
      throw Error("dist: the nccl backend is not in this build", "",
                  "use --dist-backend gloo, or rebuild against a CUDA LibTorch with -DATAX_DIST_NCCL");
    }
  }
#else
  if (backend == "nccl" && !torch::cuda::is_available())
    throw Error("dist: the nccl backend needs a CUDA device, and none is available", "", "use the gloo backend");
#endif
  ctx->backend_ = backend;

  auto handle = std::make_shared<ProcessGroupHandle>();
  const auto timeout = to_ms(env.timeout_s);
  c10d::TCPStoreOptions store_opts;
  store_opts.port = static_cast<uint16_t>(env.master_port);
  store_opts.isServer = env.rank == 0;
  store_opts.numWorkers = static_cast<size_t>(env.world_size);
  store_opts.waitWorkers = true;
  store_opts.timeout = timeout;
  try {
    auto tcp = c10::make_intrusive<c10d::TCPStore>(env.master_addr, store_opts);
    handle->store = c10::make_intrusive<c10d::PrefixStore>("atax", tcp);
  } catch (const std::exception& e) {
    throw Error(fmt::format("dist: rank {} of {}: rendezvous at {}:{} failed: {}", env.rank, env.world_size,
                            env.master_addr, env.master_port, short_what(e)),
                "", rendezvous_hint(env));
  }
  try {
    if (backend == "gloo") {
      auto gopts = c10d::ProcessGroupGloo::Options::create(timeout);
      if (const char* ifname = std::getenv("GLOO_SOCKET_IFNAME"); ifname && *ifname) {
        gopts->devices.push_back(c10d::ProcessGroupGloo::createDeviceForInterface(ifname));
      } else if (is_loopback(env.master_addr)) {
        gopts->devices.push_back(c10d::ProcessGroupGloo::createDeviceForHostname("127.0.0.1"));
      } else {
        gopts->devices.push_back(c10d::ProcessGroupGloo::createDefaultDevice());
      }
      gopts->threads = 2;  // two workers: one bucket can reduce while the next is queued
      handle->pg = c10::make_intrusive<c10d::ProcessGroupGloo>(handle->store, env.rank, env.world_size, gopts);
      handle->comm_device = torch::Device(torch::kCPU);
    } else {
#ifdef ATAX_DIST_NCCL
      auto nopts = c10d::ProcessGroupNCCL::Options::create();
      nopts->timeout = timeout;
      handle->pg = c10::make_intrusive<c10d::ProcessGroupNCCL>(handle->store, env.rank, env.world_size, nopts);
      handle->comm_device = device.is_cuda() ? device : torch::Device(torch::kCUDA, env.local_rank);
#endif
    }
  } catch (const std::exception& e) {
    throw Error(fmt::format("dist: rank {} of {}: rendezvous at {}:{} failed while connecting the {} process "
                            "group: {}",
                            env.rank, env.world_size, env.master_addr, env.master_port, backend, short_what(e)),
                "", rendezvous_hint(env));
  }
  ctx->handle_ = handle;
  g_context = ctx;
  ctx->barrier("rendezvous");
  ctx->reset_stats();
  if (env.is_main()) log_info(fmt::format("dist: {} ranks, {} backend, {}", env.world_size, backend, env.describe()));
  return *ctx;
}

Context& context() {
  {
    std::lock_guard<std::mutex> lock(g_init_mutex);
    if (g_context) return *g_context;
  }
  return init();
}

bool initialized() {
  std::lock_guard<std::mutex> lock(g_init_mutex);
  return g_context != nullptr;
}

Context::~Context() = default;

// ---------------------------------------------------------------------------------------------
// Failure handling
// ---------------------------------------------------------------------------------------------

void Context::fail(const std::string& what, const std::string& detail) {
  std::string message;
  {
    std::lock_guard<std::mutex> lock(stats_mutex_);
    if (broken_.empty()) {
      std::string why;
      const std::string lower = to_lower(detail);
      if (lower.find("timeout") != std::string::npos || lower.find("timed out") != std::string::npos)
        why = fmt::format(" (no answer within ATAX_DIST_TIMEOUT={} s: a rank hung, or is far behind)", env_.timeout_s);
      else if (lower.find("connection reset") != std::string::npos || lower.find("connection closed") != std::string::npos ||
               lower.find("broken pipe") != std::string::npos || lower.find("eof") != std::string::npos)
        why = " (a peer closed its connection: a rank exited or was killed)";
      broken_ = fmt::format("dist: rank {} of {}: {} failed: {}{}", env_.rank, env_.world_size, what, detail, why);
    }
    message = broken_;
  }
  throw Error(message, "", fail_hint(env_.timeout_s));
}

void Context::check_usable(const std::string& what) const {
  std::string broken;
  {
    std::lock_guard<std::mutex> lock(stats_mutex_);
    broken = broken_;
  }
  if (!broken.empty())
    throw Error(broken + fmt::format(" (and {} cannot run after that)", what), "", fail_hint(env_.timeout_s));
  if (shut_down_)
    throw Error(fmt::format("dist: {} after shutdown()", what), "", "call shutdown() once, at the very end");
}

namespace {

// Waits for `work`, turning any failure into Context::fail. A margin above the backend's own
// timeout guards against a backend that never notices.
void wait_work(Context& ctx, const c10::intrusive_ptr<c10d::Work>& work, const std::string& what) {
  try {
    work->wait(to_ms(ctx.timeout_s() + 10.0));
  } catch (const std::exception& e) {
    ctx.fail(what, short_what(e));
  }
}

template <class Launch>
void run_collective(Context& ctx, const std::string& what, Launch&& launch) {
  ctx.check_usable(what);
  c10::intrusive_ptr<c10d::Work> work;
  try {
    work = launch(*ctx.handle()->pg);
  } catch (const Error&) {
    throw;
  } catch (const std::exception& e) {
    ctx.fail(what, short_what(e));
  }
  wait_work(ctx, work, what);
}

}  // namespace

// ---------------------------------------------------------------------------------------------
// Collectives
// ---------------------------------------------------------------------------------------------

void Context::barrier(const std::string& what) {
  if (!distributed()) return;
  double t0 = dist_now();
  // A one-element all-reduce: Gloo's barrier has no timeout of its own in some versions.
  auto flag = torch::ones({1}, torch::TensorOptions().dtype(torch::kInt32).device(handle_->comm_device));
  std::vector<torch::Tensor> v{flag};
  run_collective(*this, what, [&](c10d::ProcessGroup& pg) { return pg.allreduce(v); });
  std::lock_guard<std::mutex> lock(stats_mutex_);
  stats_.other_calls++;
  stats_.other_s += dist_now() - t0;
}

void Context::broadcast(torch::Tensor& tensor, int root) {
  std::vector<torch::Tensor> v{tensor};
  broadcast(v, root);
}

void Context::broadcast(std::vector<torch::Tensor>& tensors, int root) {
  if (!distributed() || tensors.empty()) return;
  TORCH_CHECK(root >= 0 && root < world_size(), "broadcast root ", root, " outside the world");
  double t0 = dist_now();
  torch::NoGradGuard no_grad;
  // One flat buffer per dtype: few large messages instead of one per tensor.
  std::map<torch::ScalarType, std::vector<size_t>> by_dtype;
  for (size_t i = 0; i < tensors.size(); ++i) by_dtype[tensors[i].scalar_type()].push_back(i);
  for (auto& [dtype, idx] : by_dtype) {
    std::vector<torch::Tensor> flat_parts;
    for (size_t i : idx) flat_parts.push_back(tensors[i].detach().reshape(-1).to(handle_->comm_device));
    torch::Tensor flat = torch::cat(flat_parts).contiguous();
    std::vector<torch::Tensor> v{flat};
    c10d::BroadcastOptions bopts;
    bopts.rootRank = root;
    run_collective(*this, "broadcast", [&](c10d::ProcessGroup& pg) { return pg.broadcast(v, bopts); });
    if (rank() != root) {
      int64_t offset = 0;
      for (size_t i : idx) {
        auto& t = tensors[i];
        t.detach().copy_(flat.narrow(0, offset, t.numel()).view(t.sizes()));
        offset += t.numel();
      }
    }
  }
  std::lock_guard<std::mutex> lock(stats_mutex_);
  stats_.other_calls++;
  stats_.other_s += dist_now() - t0;
}

void Context::broadcast_module(torch::nn::Module& module, int root) {
  if (!distributed()) return;
  std::vector<torch::Tensor> all = module.parameters(/*recurse=*/true);
  for (auto& b : module.buffers(/*recurse=*/true)) all.push_back(b);
  broadcast(all, root);
}

void Context::all_reduce(torch::Tensor& tensor, bool average) {
  if (!distributed()) return;
  double t0 = dist_now();
  torch::NoGradGuard no_grad;
  bool direct = tensor.is_contiguous() && tensor.device() == handle_->comm_device;
  torch::Tensor buf = direct ? tensor.detach() : tensor.detach().contiguous().to(handle_->comm_device);
  std::vector<torch::Tensor> v{buf};
  run_collective(*this, "all_reduce", [&](c10d::ProcessGroup& pg) { return pg.allreduce(v); });
  if (average) buf.div_(world_size());
  if (!direct) tensor.detach().copy_(buf);
  double dt = dist_now() - t0;
  record_all_reduce(tensor.numel() * static_cast<int64_t>(tensor.element_size()), dt, dt);
}

double Context::all_reduce_sum(double value) {
  if (!distributed()) return value;
  auto t = torch::tensor({value}, torch::kFloat64);
  all_reduce(t);
  return t.item<double>();
}

std::vector<std::string> Context::all_gather(const std::string& bytes) {
  if (!distributed()) return {bytes};
  double t0 = dist_now();
  auto dev = handle_->comm_device;
  // Sizes first, then the payloads padded to the largest.
  std::vector<std::vector<torch::Tensor>> sizes_out(1);
  for (int r = 0; r < world_size(); ++r) sizes_out[0].push_back(torch::zeros({1}, torch::TensorOptions().dtype(torch::kInt64).device(dev)));
  std::vector<torch::Tensor> size_in{torch::full({1}, static_cast<int64_t>(bytes.size()), torch::TensorOptions().dtype(torch::kInt64).device(dev))};
  run_collective(*this, "all_gather", [&](c10d::ProcessGroup& pg) { return pg.allgather(sizes_out, size_in); });
  std::vector<int64_t> sizes;
  int64_t max_size = 0;
  for (auto& s : sizes_out[0]) {
    sizes.push_back(s.cpu().item<int64_t>());
    max_size = std::max(max_size, sizes.back());
  }
  std::vector<std::string> result(world_size());
  if (max_size > 0) {
    auto u8 = torch::TensorOptions().dtype(torch::kUInt8);
    torch::Tensor mine = torch::zeros({max_size}, u8);
    if (!bytes.empty()) std::memcpy(mine.data_ptr(), bytes.data(), bytes.size());
    std::vector<torch::Tensor> in{mine.to(dev)};
    std::vector<std::vector<torch::Tensor>> out(1);
    for (int r = 0; r < world_size(); ++r) out[0].push_back(torch::empty({max_size}, u8.device(dev)));
    run_collective(*this, "all_gather", [&](c10d::ProcessGroup& pg) { return pg.allgather(out, in); });
    for (int r = 0; r < world_size(); ++r) {
      torch::Tensor t = out[0][r].cpu().contiguous();
      result[r].assign(reinterpret_cast<const char*>(t.data_ptr()), static_cast<size_t>(sizes[r]));
    }
  }
  std::lock_guard<std::mutex> lock(stats_mutex_);
  stats_.other_calls++;
  stats_.other_s += dist_now() - t0;
  return result;
}

std::string Context::broadcast_bytes(const std::string& bytes, int root) {
  if (!distributed()) return bytes;
  auto size = torch::full({1}, static_cast<int64_t>(bytes.size()), torch::kInt64);
  broadcast(size, root);
  int64_t n = size.item<int64_t>();
  if (n == 0) return {};
  torch::Tensor buf = torch::zeros({n}, torch::kUInt8);
  if (rank() == root) std::memcpy(buf.data_ptr(), bytes.data(), bytes.size());
  broadcast(buf, root);
  return std::string(reinterpret_cast<const char*>(buf.data_ptr()), static_cast<size_t>(n));
}

void Context::on_main(const std::string& what, const std::function<void()>& fn) {
  if (!distributed()) {
    fn();
    return;
  }
  barrier(what);
  std::string status;
  std::exception_ptr failure;
  if (is_main()) {
    try {
      fn();
    } catch (const std::exception& e) {
      failure = std::current_exception();
      status = e.what();
      if (status.empty()) status = "unknown error";
    }
  }
  status = broadcast_bytes(status, 0);
  if (failure) std::rethrow_exception(failure);
  if (!status.empty())
    throw Error(fmt::format("dist: rank {}: {} failed on rank 0: {}", rank(), what, status), "",
                "see rank 0's error above; nothing was written");
}

void Context::shutdown() {
  if (!distributed() || shut_down_) return;
  barrier("shutdown");
  shut_down_ = true;
}

// ---------------------------------------------------------------------------------------------
// Statistics
// ---------------------------------------------------------------------------------------------

CommStats Context::stats() const {
  std::lock_guard<std::mutex> lock(stats_mutex_);
  return stats_;
}

void Context::reset_stats() {
  std::lock_guard<std::mutex> lock(stats_mutex_);
  stats_ = CommStats{};
}

void Context::record_all_reduce(int64_t bytes, double busy_s, double wait_s) {
  std::lock_guard<std::mutex> lock(stats_mutex_);
  stats_.all_reduce_calls++;
  stats_.all_reduce_bytes += bytes;
  stats_.all_reduce_busy_s += busy_s;
  stats_.all_reduce_wait_s += wait_s;
}

}  // namespace atax::dist
