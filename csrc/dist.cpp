// A thin C ABI over libtorch's c10d: a TCPStore rendezvous and a process group (Gloo here; NCCL in
// dist_nccl.cpp, built only where the CUDA and NCCL headers are found), with the collectives
// unmix needs (all-reduce, all-gather, broadcast, barrier). Tensors are passed as the at::Tensor
// pointers tch uses. Compiled by build.rs against the project's libtorch headers and Debian's gloo
// headers (libgloo-dev); only the process group's own out-of-line code runs gloo.
#include "dist.h"

#include <torch/csrc/distributed/c10d/ProcessGroupGloo.hpp>
#include <torch/csrc/distributed/c10d/TCPStore.hpp>
#include <ATen/ATen.h>

#include <chrono>
#include <string>
#include <vector>

namespace unmix_dist {
c10::intrusive_ptr<c10d::Store> connect_store(const char* addr, int port, int rank, int world, int timeout_ms) {
  c10d::TCPStoreOptions o;
  o.port = static_cast<uint16_t>(port);
  o.isServer = rank == 0;
  o.numWorkers = world;
  o.waitWorkers = true;
  o.timeout = std::chrono::milliseconds(timeout_ms);
  return c10::make_intrusive<c10d::TCPStore>(std::string(addr), o);
}
}  // namespace unmix_dist

namespace {
using unmix_dist::Group;
using unmix_dist::guarded;

// NCCL takes dense tensors on its own CUDA device only: anything else (a CPU buffer among the
// weights, a non-contiguous view) goes through a staged copy that is copied back afterwards. Gloo
// takes the tensor as it is.
at::Tensor staged(const Group& g, const at::Tensor& t) {
  if (!g.nccl()) {
    return t;
  }
  at::Device dev(at::kCUDA, static_cast<c10::DeviceIndex>(g.cuda_device));
  if (t.device() == dev && t.is_contiguous()) {
    return t;
  }
  at::NoGradGuard no_grad;
  return t.to(dev).contiguous();
}

// After the collective's wait(): NCCL's stream is ordered before the current stream, so this copy
// (on the current stream) sees the result.
void unstage(const at::Tensor& t, const at::Tensor& s) {
  if (!s.is_same(t)) {
    at::NoGradGuard no_grad;
    at::Tensor dst = t;
    dst.copy_(s);
  }
}
}  // namespace

extern "C" {

// Connects to the TCPStore at addr:port (rank 0 hosts it) and builds a Gloo process group over
// the loopback/hostname device; every collective times out after timeout_ms.
void* unmix_dist_new(const char* addr, int port, int rank, int world, int timeout_ms, char* err, int len) {
  Group* g = nullptr;
  int rc = guarded(err, len, [&] {
    auto store = unmix_dist::connect_store(addr, port, rank, world, timeout_ms);
    auto opts = c10d::ProcessGroupGloo::Options::create(std::chrono::milliseconds(timeout_ms));
    opts->devices.push_back(c10d::ProcessGroupGloo::createDeviceForHostname(std::string(addr)));
    auto pg = c10::make_intrusive<c10d::ProcessGroupGloo>(store, rank, world, opts);
    g = new Group{store, pg, -1};
  });
  return rc == 0 ? g : nullptr;
}

void unmix_dist_free(void* p) {
  auto* g = static_cast<Group*>(p);
  if (g && g->nccl()) {
    // The orderly end (torch.distributed.destroy_process_group): flush and destroy the NCCL
    // communicators instead of the destructor's warning and abort.
    try {
      g->pg->shutdown();
    } catch (...) {
    }
  }
  delete g;
}

// In-place sum over ranks.
int unmix_dist_all_reduce_sum(void* g, at::Tensor* t, char* err, int len) {
  return guarded(err, len, [&] {
    auto* grp = static_cast<Group*>(g);
    at::Tensor s = staged(*grp, *t);
    std::vector<at::Tensor> v{s};
    grp->pg->allreduce(v)->wait();
    unstage(*t, s);
  });
}

// out (world * n, ...) <- the inputs (n, ...) of every rank, in rank order.
int unmix_dist_all_gather(void* g, at::Tensor* in, at::Tensor* out, char* err, int len) {
  return guarded(err, len, [&] {
    auto* grp = static_cast<Group*>(g);
    if (grp->nccl()) {
      // One ncclAllGather straight into the contiguous output.
      at::Tensor i = staged(*grp, *in);
      at::Tensor o = staged(*grp, *out);
      grp->pg->_allgather_base(o, i)->wait();
      unstage(*out, o);
      return;
    }
    int world = grp->pg->getSize();
    std::vector<at::Tensor> outs = out->chunk(world, 0);
    std::vector<std::vector<at::Tensor>> o{outs};
    std::vector<at::Tensor> i{in->contiguous()};
    grp->pg->allgather(o, i)->wait();
  });
}

int unmix_dist_broadcast(void* g, at::Tensor* t, int root, char* err, int len) {
  return guarded(err, len, [&] {
    auto* grp = static_cast<Group*>(g);
    at::Tensor s = staged(*grp, *t);
    std::vector<at::Tensor> v{s};
    c10d::BroadcastOptions o;
    o.rootRank = root;
    grp->pg->broadcast(v, o)->wait();
    unstage(*t, s);
  });
}

int unmix_dist_barrier(void* g, char* err, int len) {
  return guarded(err, len, [&] { static_cast<Group*>(g)->pg->barrier()->wait(); });
}
}
