// The NCCL process group for CUDA training, behind the same handle as the Gloo group of dist.cpp
// (whose collectives it then shares). Compiled by build.rs only where the CUDA runtime headers
// (with crt/, from the nvidia-cuda-crt wheel) and nccl.h are found; it then sets the cfg
// unmix_nccl that makes src/dist.rs call unmix_dist_new_nccl.
#include "dist.h"

#include <torch/csrc/distributed/c10d/ProcessGroupNCCL.hpp>
#include <c10/cuda/CUDAFunctions.h>

#include <chrono>

extern "C" {

// Connects to the TCPStore at addr:port (rank 0 hosts it), makes `device` this thread's CUDA
// device and builds an NCCL process group bound to it (so barriers use it too); its communicator
// is created here, so a rendezvous failure (two ranks on one GPU, a missing peer) shows now rather
// than at the first collective. Collectives time out after timeout_ms (NCCL's watchdog then ends
// the process).
void* unmix_dist_new_nccl(const char* addr, int port, int rank, int world, int device, int timeout_ms, char* err, int len) {
  using unmix_dist::Group;
  Group* g = nullptr;
  int rc = unmix_dist::guarded(err, len, [&] {
    auto index = static_cast<c10::DeviceIndex>(device);
    c10::cuda::set_device(index);
    auto store = unmix_dist::connect_store(addr, port, rank, world, timeout_ms);
    auto opts = c10d::ProcessGroupNCCL::Options::create();
    opts->timeout = std::chrono::milliseconds(timeout_ms);
    auto pg = c10::make_intrusive<c10d::ProcessGroupNCCL>(store, rank, world, opts);
    at::Device dev(at::kCUDA, index);
    pg->setBoundDeviceId(dev);
    pg->eagerConnectSingleDevice(dev);
    g = new Group{store, pg, device};
  });
  return rc == 0 ? g : nullptr;
}
}
