// GradSync: bucketed gradient all-reduce, launched from the parameters' grad-accumulator
// post-hooks so that communication overlaps the rest of backward (PyTorch DDP's scheme).
//
// Buckets hold parameters in reverse registration order (backward produces the last layers'
// gradients first) and are launched strictly in bucket order on every rank, which keeps the
// collectives matched even if hooks fire in a different order on different ranks.
#include <atomic>
#include <chrono>

#include <fmt/format.h>
#include <torch/csrc/autograd/function.h>
#include <torch/csrc/autograd/function_hook.h>
#include <torch/csrc/autograd/variable.h>

#include "dist/c10d_handle.h"

namespace atax::dist {

struct GradSync::Impl {
  struct Bucket {
    std::vector<int64_t> params;   // indices into Impl::params
    std::vector<int64_t> offsets;  // element offset of each param in `buffer`
    int64_t numel = 0;
    torch::Tensor buffer;          // (numel,) flat, the params' dtype, on the comm device
    int64_t pending = 0;           // params whose gradient has not arrived in this step
    bool launched = false;
    c10::intrusive_ptr<c10d::Work> work;
    double launch_time = 0;
    std::shared_ptr<std::atomic<double>> done_time;
  };

  Context* ctx = nullptr;
  GradSyncOptions opts;
  std::vector<torch::Tensor> params;
  std::vector<int64_t> bucket_of;
  std::vector<char> ready;  // gradient arrived in this step (synced backward only)
  std::vector<Bucket> buckets;
  size_t next_launch = 0;
  int64_t launched_in_backward = 0, last_overlapped = 0;
  bool sync_enabled = true;
  std::mutex mu;  // hooks may run on autograd's device threads
  std::exception_ptr hook_error;
  std::vector<std::shared_ptr<torch::autograd::Node>> accumulators;  // kept alive: hooks live on them
  std::vector<uintptr_t> hook_keys;

  void on_ready(int64_t i);
  void launch(Bucket& b);  // requires mu held
  void reset_step();
};

namespace {

struct ReadyHook : torch::autograd::FunctionPostHook {
  ReadyHook(GradSync::Impl* impl, int64_t index) : impl_(impl), index_(index) {}
  torch::autograd::variable_list operator()(const torch::autograd::variable_list& outputs,
                                            const torch::autograd::variable_list& /*inputs*/) override {
    impl_->on_ready(index_);
    return outputs;
  }
  GradSync::Impl* impl_;
  int64_t index_;
};

}  // namespace

void GradSync::Impl::on_ready(int64_t i) {
  std::lock_guard<std::mutex> lock(mu);
  if (!sync_enabled) return;
  TORCH_CHECK(!ready[i], "GradSync: parameter ", i, " got its gradient twice in one synced step; run the "
              "earlier backward passes under no_sync() and call finish() after the last one");
  ready[i] = 1;
  Bucket& b = buckets[bucket_of[i]];
  if (--b.pending > 0) return;
  // Launch every bucket that is complete, in bucket order.
  while (next_launch < buckets.size() && buckets[next_launch].pending == 0) {
    Bucket& nb = buckets[next_launch++];
    ++launched_in_backward;
    try {
      launch(nb);
    } catch (...) {
      if (!hook_error) hook_error = std::current_exception();  // reported by finish(), not inside backward
    }
  }
}

void GradSync::Impl::launch(Bucket& b) {
  torch::NoGradGuard no_grad;
  b.launched = true;
  for (size_t k = 0; k < b.params.size(); ++k) {
    const torch::Tensor& p = params[b.params[k]];
    torch::Tensor slot = b.buffer.narrow(0, b.offsets[k], p.numel());
    const torch::Tensor& g = p.grad();
    if (g.defined()) {
      slot.copy_(g.reshape(-1));
    } else {
      slot.zero_();
    }
  }
  if (opts.average) b.buffer.div_(ctx->world_size());
  ctx->check_usable("gradient all-reduce");
  std::vector<torch::Tensor> v{b.buffer};
  b.launch_time = dist_now();
  b.done_time = std::make_shared<std::atomic<double>>(0.0);
  b.work = ctx->handle()->pg->allreduce(v);
  auto done = b.done_time;
  try {
    b.work->getFuture()->addCallback([done](c10::ivalue::Future&) { done->store(dist_now()); });
  } catch (const std::exception&) {
    // No future on this backend: busy time then reads as launch → wait end.
  }
}

void GradSync::Impl::reset_step() {
  std::fill(ready.begin(), ready.end(), 0);
  for (auto& b : buckets) {
    b.pending = static_cast<int64_t>(b.params.size());
    b.launched = false;
    b.work.reset();
  }
  next_launch = 0;
  last_overlapped = launched_in_backward;
  launched_in_backward = 0;
  hook_error = nullptr;
}

GradSync::GradSync(std::vector<torch::Tensor> params, GradSyncOptions opts, Context* ctx)
    : opts_(opts), impl_(std::make_unique<Impl>()) {
  Impl& m = *impl_;
  m.ctx = ctx ? ctx : &context();
  m.opts = opts;
  for (auto& p : params)
    if (p.requires_grad()) m.params.push_back(p);
  TORCH_CHECK(opts.bucket_bytes > 0, "GradSync: bucket_bytes must be positive");
  if (!m.ctx->distributed()) return;

  // Every rank must hold the same parameters: compare a signature before anything can deadlock.
  std::string signature;
  for (auto& p : m.params) {
    TORCH_CHECK(p.is_leaf(), "GradSync: parameters must be leaf tensors");
    signature += fmt::format("{}:{};", c10::toString(p.scalar_type()), fmt::join(p.sizes(), "x"));
  }
  std::string digest = sha256_hex(signature);
  auto all = m.ctx->all_gather(digest);
  for (int r = 0; r < m.ctx->world_size(); ++r)
    if (all[r] != digest)
      throw Error(fmt::format("dist: rank {} has different trainable parameters than rank {} ({} tensors here)",
                              r, m.ctx->rank(), m.params.size()),
                  "", "every rank must build the same model with the same trainable parameters (LoRA targets, "
                      "frozen layers)");

  // Buckets over the reverse order, split by dtype and size.
  const auto dev = m.ctx->handle()->comm_device;
  m.bucket_of.assign(m.params.size(), -1);
  Impl::Bucket current;
  int64_t current_bytes = 0;
  torch::ScalarType current_dtype = torch::kFloat32;
  auto close = [&] {
    if (current.params.empty()) return;
    current.buffer = torch::zeros({current.numel}, torch::TensorOptions().dtype(current_dtype).device(dev));
    for (int64_t i : current.params) m.bucket_of[i] = static_cast<int64_t>(m.buckets.size());
    m.buckets.push_back(std::move(current));
    current = Impl::Bucket{};
    current_bytes = 0;
  };
  for (int64_t i = static_cast<int64_t>(m.params.size()) - 1; i >= 0; --i) {
    const auto& p = m.params[i];
    int64_t bytes = p.numel() * static_cast<int64_t>(p.element_size());
    if (!current.params.empty() && (p.scalar_type() != current_dtype || current_bytes + bytes > opts.bucket_bytes))
      close();
    current_dtype = p.scalar_type();
    current.params.push_back(i);
    current.offsets.push_back(current.numel);
    current.numel += p.numel();
    current_bytes += bytes;
  }
  close();
  m.ready.assign(m.params.size(), 0);
  m.reset_step();

  if (opts.overlap) {
    for (size_t i = 0; i < m.params.size(); ++i) {
      auto acc = torch::autograd::impl::grad_accumulator(m.params[i]);
      TORCH_CHECK(acc, "GradSync: no grad accumulator for parameter ", i);
      m.hook_keys.push_back(acc->add_post_hook(std::make_unique<ReadyHook>(&m, static_cast<int64_t>(i))));
      m.accumulators.push_back(std::move(acc));
    }
  }
}

GradSync::~GradSync() {
  if (!impl_) return;
  for (size_t i = 0; i < impl_->accumulators.size(); ++i) impl_->accumulators[i]->del_post_hook(impl_->hook_keys[i]);
  // Outstanding work (an exception skipped finish()) must not write into freed buffers.
  for (auto& b : impl_->buckets) {
    if (b.work) {
      try {
        b.work->wait(std::chrono::milliseconds(static_cast<int64_t>(impl_->ctx->timeout_s() * 1000 + 10000)));
      } catch (...) {
      }
    }
  }
}

GradSync::NoSyncGuard::NoSyncGuard(GradSync* sync) : sync_(sync) {
  std::lock_guard<std::mutex> lock(sync_->impl_->mu);
  previous_ = sync_->impl_->sync_enabled;
  sync_->impl_->sync_enabled = false;
}

GradSync::NoSyncGuard::~NoSyncGuard() {
  std::lock_guard<std::mutex> lock(sync_->impl_->mu);
  sync_->impl_->sync_enabled = previous_;
}

void GradSync::finish() {
  Impl& m = *impl_;
  if (!m.ctx->distributed()) return;
  std::unique_lock<std::mutex> lock(m.mu);
  std::exception_ptr hook_error = m.hook_error;
  double t0 = dist_now();
  try {
    if (hook_error) std::rethrow_exception(hook_error);
    while (m.next_launch < m.buckets.size()) m.launch(m.buckets[m.next_launch++]);
  } catch (const Error&) {
    m.reset_step();
    throw;
  } catch (const std::exception& e) {
    m.reset_step();
    m.ctx->fail("gradient all-reduce", short_what(e));
  }
  // Which parameters have a gradient anywhere (those with none on every rank keep none).
  auto used = torch::zeros({static_cast<int64_t>(m.params.size())}, torch::kFloat32);
  {
    auto acc = used.accessor<float, 1>();
    for (size_t i = 0; i < m.params.size(); ++i) acc[i] = m.params[i].grad().defined() ? 1.f : 0.f;
  }
  torch::Tensor used_dev = used.to(m.ctx->handle()->comm_device);
  std::vector<torch::Tensor> uv{used_dev};
  c10::intrusive_ptr<c10d::Work> used_work;
  int64_t bytes = 0;
  double busy = 0;
  try {
    used_work = m.ctx->handle()->pg->allreduce(uv);
    auto deadline = std::chrono::milliseconds(static_cast<int64_t>(m.ctx->timeout_s() * 1000 + 10000));
    for (auto& b : m.buckets) {
      b.work->wait(deadline);
      double done = b.done_time->load();
      busy += (done > 0 ? done : dist_now()) - b.launch_time;
      bytes += b.numel * static_cast<int64_t>(b.buffer.element_size());
    }
    used_work->wait(deadline);
  } catch (const std::exception& e) {
    m.reset_step();
    m.ctx->fail("gradient all-reduce", short_what(e));
  }
  double wait_s = dist_now() - t0;
  used = used_dev.cpu();
  {
    torch::NoGradGuard no_grad;
    auto acc = used.accessor<float, 1>();
    for (auto& b : m.buckets) {
      for (size_t k = 0; k < b.params.size(); ++k) {
        int64_t i = b.params[k];
        if (acc[i] == 0.f) continue;
        torch::Tensor& p = m.params[i];
        torch::Tensor slot = b.buffer.narrow(0, b.offsets[k], p.numel()).view(p.sizes());
        torch::Tensor& g = p.mutable_grad();
        if (!g.defined()) {
          g = slot.to(p.device()).clone();
        } else {
          g.copy_(slot);
        }
      }
    }
  }
  m.reset_step();
  m.ctx->record_all_reduce(bytes, busy, wait_s);
}

int64_t GradSync::num_buckets() const { return static_cast<int64_t>(impl_->buckets.size()); }

int64_t GradSync::overlapped_buckets() const { return impl_->last_overlapped; }

int64_t GradSync::bytes_per_step() const {
  int64_t bytes = 0;
  for (auto& p : impl_->params) bytes += p.numel() * static_cast<int64_t>(p.element_size());
  return bytes;
}

}  // namespace atax::dist
