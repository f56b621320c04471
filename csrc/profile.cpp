// libtorch's operator profiler (Kineto, CPU activities) for `unmix bench step --profile`: tch has
// no binding for it. Start records every ATen operator and autograd node run on this thread (the
// forward pass, the loss, the backward pass and the optimizer of a CPU step all run here); stop
// writes the record as a Chrome trace (JSON), which bench/profile_summary.py groups by kind.
#include <torch/csrc/autograd/profiler_kineto.h>

#include "error.h"

namespace {
using torch::profiler::impl::ActivityType;
using torch::profiler::impl::ProfilerConfig;
using torch::profiler::impl::ProfilerState;

ProfilerConfig config() { return ProfilerConfig(ProfilerState::KINETO, /*report_input_shapes=*/true); }
}  // namespace

extern "C" {

// 0, or -1 with libtorch's message in err.
int unmix_profile_start(char* err, int len) {
  return unmix_ffi::guarded(err, len, [] {
    const std::set<ActivityType> activities{ActivityType::CPU};
    torch::autograd::profiler::prepareProfiler(config(), activities);
    torch::autograd::profiler::enableProfiler(config(), activities);
  });
}

// Stops the profiler started above and writes its trace to `path`. 0, or -1 with the message.
int unmix_profile_stop(const char* path, char* err, int len) {
  return unmix_ffi::guarded(err, len, [&] {
    auto result = torch::autograd::profiler::disableProfiler();
    TORCH_CHECK(result, "the profiler returned no result");
    result->save(path);
  });
}
}

extern "C" {

// A named range of the trace (a user annotation, as torch.profiler.record_function makes); end it
// with unmix_profile_range_end. nullptr with the message in err on failure.
void* unmix_profile_range_begin(const char* name, char* err, int len) {
  at::RecordFunction* r = nullptr;
  unmix_ffi::guarded(err, len, [&] {
    r = new at::RecordFunction(at::RecordScope::USER_SCOPE);
    if (r->isActive()) r->before(name);
  });
  return r;
}

void unmix_profile_range_end(void* range) { delete static_cast<at::RecordFunction*>(range); }
}
