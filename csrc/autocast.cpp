// A small C ABI over libtorch's autocast state, for any device type (tch 0.26 only exposes the
// CUDA one). Compiled by build.rs against the headers of the project's libtorch.
#include <ATen/autocast_mode.h>
#include <c10/core/DeviceType.h>
#include <c10/core/ScalarType.h>

namespace {
c10::DeviceType device_type(int d) { return d == 1 ? c10::DeviceType::CUDA : c10::DeviceType::CPU; }
c10::ScalarType scalar_type(int t) { return t == 1 ? c10::ScalarType::Half : c10::ScalarType::BFloat16; }
int scalar_code(c10::ScalarType t) { return t == c10::ScalarType::Half ? 1 : 0; }
}  // namespace

extern "C" {

// Sets autocast for a device type (0 = CPU, 1 = CUDA) to `enabled` with `dtype` (0 = bfloat16,
// 1 = float16) and enters one nesting level. Writes the previous state for unmix_autocast_exit.
// Returns 0, or -1 when libtorch threw (the state is then unchanged).
int unmix_autocast_enter(int device, int enabled, int dtype, int* prev_enabled, int* prev_dtype) {
  try {
    auto d = device_type(device);
    *prev_enabled = at::autocast::is_autocast_enabled(d) ? 1 : 0;
    *prev_dtype = scalar_code(at::autocast::get_autocast_dtype(d));
    at::autocast::set_autocast_dtype(d, scalar_type(dtype));
    at::autocast::set_autocast_enabled(d, enabled != 0);
    at::autocast::increment_nesting();
    return 0;
  } catch (...) {
    return -1;
  }
}

// Leaves the nesting level entered by unmix_autocast_enter and restores the previous state; the
// cast cache is cleared when the outermost level is left, as torch.autocast does.
int unmix_autocast_exit(int device, int prev_enabled, int prev_dtype) {
  try {
    auto d = device_type(device);
    if (at::autocast::decrement_nesting() == 0) {
      at::autocast::clear_cache();
    }
    at::autocast::set_autocast_enabled(d, prev_enabled != 0);
    at::autocast::set_autocast_dtype(d, scalar_type(prev_dtype));
    return 0;
  } catch (...) {
    return -1;
  }
}

int unmix_autocast_is_enabled(int device) {
  try {
    return at::autocast::is_autocast_enabled(device_type(device)) ? 1 : 0;
  } catch (...) {
    return -1;
  }
}
}
