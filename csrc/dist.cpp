// A thin C ABI over libtorch's c10d: a TCPStore rendezvous and a Gloo process group, with the
// collectives unmix needs (all-reduce, all-gather, broadcast, barrier). Tensors are passed as the
// at::Tensor pointers tch uses. Compiled by build.rs against the project's libtorch headers and
// Debian's gloo headers (libgloo-dev); only the process group's own out-of-line code runs gloo.
#include <torch/csrc/distributed/c10d/ProcessGroupGloo.hpp>
#include <torch/csrc/distributed/c10d/TCPStore.hpp>
#include <ATen/ATen.h>

#include <chrono>
#include <cstring>
#include <exception>
#include <string>
#include <vector>

namespace {
struct Group {
  c10::intrusive_ptr<c10d::Store> store;
  c10::intrusive_ptr<c10d::ProcessGroupGloo> pg;
};

void write_error(char* err, int len, const std::string& msg) {
  if (err && len > 0) {
    std::strncpy(err, msg.c_str(), len - 1);
    err[len - 1] = '\0';
  }
}

template <typename F>
int guarded(char* err, int len, F f) {
  try {
    f();
    return 0;
  } catch (const std::exception& e) {
    write_error(err, len, e.what());
  } catch (...) {
    write_error(err, len, "unknown C++ exception");
  }
  return -1;
}
}  // namespace

extern "C" {

// Connects to the TCPStore at addr:port (rank 0 hosts it) and builds a Gloo process group over
// the loopback/hostname device; every collective times out after timeout_ms.
void* unmix_dist_new(const char* addr, int port, int rank, int world, int timeout_ms, char* err, int len) {
  Group* g = nullptr;
  int rc = guarded(err, len, [&] {
    c10d::TCPStoreOptions o;
    o.port = static_cast<uint16_t>(port);
    o.isServer = rank == 0;
    o.numWorkers = world;
    o.waitWorkers = true;
    o.timeout = std::chrono::milliseconds(timeout_ms);
    auto store = c10::make_intrusive<c10d::TCPStore>(std::string(addr), o);
    auto opts = c10d::ProcessGroupGloo::Options::create(std::chrono::milliseconds(timeout_ms));
    opts->devices.push_back(c10d::ProcessGroupGloo::createDeviceForHostname(std::string(addr)));
    auto pg = c10::make_intrusive<c10d::ProcessGroupGloo>(store, rank, world, opts);
    g = new Group{store, pg};
  });
  return rc == 0 ? g : nullptr;
}

void unmix_dist_free(void* g) { delete static_cast<Group*>(g); }

// In-place sum over ranks.
int unmix_dist_all_reduce_sum(void* g, at::Tensor* t, char* err, int len) {
  return guarded(err, len, [&] {
    std::vector<at::Tensor> v{*t};
    static_cast<Group*>(g)->pg->allreduce(v)->wait();
  });
}

// out (world * n, ...) <- the inputs (n, ...) of every rank, in rank order.
int unmix_dist_all_gather(void* g, at::Tensor* in, at::Tensor* out, char* err, int len) {
  return guarded(err, len, [&] {
    auto* grp = static_cast<Group*>(g);
    int world = grp->pg->getSize();
    std::vector<at::Tensor> outs = out->chunk(world, 0);
    std::vector<std::vector<at::Tensor>> o{outs};
    std::vector<at::Tensor> i{in->contiguous()};
    grp->pg->allgather(o, i)->wait();
  });
}

int unmix_dist_broadcast(void* g, at::Tensor* t, int root, char* err, int len) {
  return guarded(err, len, [&] {
    std::vector<at::Tensor> v{*t};
    c10d::BroadcastOptions o;
    o.rootRank = root;
    static_cast<Group*>(g)->pg->broadcast(v, o)->wait();
  });
}

int unmix_dist_barrier(void* g, char* err, int len) {
  return guarded(err, len, [&] { static_cast<Group*>(g)->pg->barrier()->wait(); });
}
}
