// Shared between csrc/dist.cpp (TCPStore, Gloo, the collectives) and csrc/dist_nccl.cpp (the NCCL
// process group, compiled only where the CUDA and NCCL headers are found): the process group
// handle behind the C ABI's void* (the error plumbing is error.h's). Needs no CUDA header.
#pragma once

#include <torch/csrc/distributed/c10d/Backend.hpp>
#include <torch/csrc/distributed/c10d/Store.hpp>

#include <string>

#include "error.h"

namespace unmix_dist {

// Both ProcessGroupGloo and ProcessGroupNCCL derive from c10d::Backend, whose virtual
// collectives the C ABI calls.
struct Group {
  c10::intrusive_ptr<c10d::Store> store;
  c10::intrusive_ptr<c10d::Backend> pg;
  // The CUDA device an NCCL group is bound to; -1 for Gloo.
  int cuda_device = -1;
  bool nccl() const { return cuda_device >= 0; }
};

using unmix_ffi::guarded;

// The TCPStore rendezvous at addr:port (rank 0 hosts it), waiting for all `world` processes
// (defined in dist.cpp).
c10::intrusive_ptr<c10d::Store> connect_store(const char* addr, int port, int rank, int world, int timeout_ms);

}  // namespace unmix_dist
