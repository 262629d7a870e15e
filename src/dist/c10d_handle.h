// Internal to src/dist: the c10d objects behind a Context. Other modules include dist/dist.h only.
#pragma once

#ifndef USE_C10D_GLOO
#define USE_C10D_GLOO 1  // Debian's libtorch_cpu.so is built with Gloo; its header needs the switch
#endif
#include <torch/csrc/distributed/c10d/PrefixStore.hpp>
#include <torch/csrc/distributed/c10d/ProcessGroup.hpp>
#include <torch/csrc/distributed/c10d/ProcessGroupGloo.hpp>
#include <torch/csrc/distributed/c10d/TCPStore.hpp>
// A CUDA LibTorch with NCCL: build with -DATAX_DIST_NCCL (Debian's LibTorch is CPU-only and its
// libtorch_cpu.so has no NCCL symbols, so this stays off by default).
#ifdef ATAX_DIST_NCCL
#ifndef USE_C10D_NCCL
#define USE_C10D_NCCL 1
#endif
#include <torch/csrc/distributed/c10d/ProcessGroupNCCL.hpp>
#endif

#include "dist/dist.h"

namespace atax::dist {

class ProcessGroupHandle {
 public:
  c10::intrusive_ptr<c10d::Store> store;
  c10::intrusive_ptr<c10d::ProcessGroup> pg;
  torch::Device comm_device{torch::kCPU};  // where collective buffers must live (cuda for NCCL)
};

// Seconds on a steady clock.
double dist_now();
// The message of an exception without the C++ backtrace that c10::Error appends.
std::string short_what(const std::exception& e);

}  // namespace atax::dist
