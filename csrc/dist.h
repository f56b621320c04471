// Shared between csrc/dist.cpp (TCPStore, Gloo, the collectives) and csrc/dist_nccl.cpp (the NCCL
// process group, compiled only where the CUDA and NCCL headers are found): the process group
// handle behind the C ABI's void*, and the error plumbing. Needs no CUDA header.
#pragma once

#include <torch/csrc/distributed/c10d/Backend.hpp>
#include <torch/csrc/distributed/c10d/Store.hpp>

#include <cstring>
#include <exception>
#include <string>

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

inline void write_error(char* err, int len, const std::string& msg) {
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

// The TCPStore rendezvous at addr:port (rank 0 hosts it), waiting for all `world` processes
// (defined in dist.cpp).
c10::intrusive_ptr<c10d::Store> connect_store(const char* addr, int port, int rank, int world, int timeout_ms);

}  // namespace unmix_dist
