// Memory-format helpers tch 0.26 does not expose: channels-last (NHWC) copies of 4-d tensors,
// which oneDNN's CPU convolutions run without reordering their input and output.
#include <ATen/ATen.h>

extern "C" {

// A new tensor with t's values in channels-last memory (t itself if it already is), or nullptr
// when libtorch threw. The caller owns the result (tch frees it like any of its tensors).
at::Tensor* unmix_channels_last(const at::Tensor* t) {
  try {
    return new at::Tensor(t->contiguous(at::MemoryFormat::ChannelsLast));
  } catch (...) {
    return nullptr;
  }
}

int unmix_is_channels_last(const at::Tensor* t) {
  try {
    return t->dim() == 4 && t->is_contiguous(at::MemoryFormat::ChannelsLast) ? 1 : 0;
  } catch (...) {
    return -1;
  }
}
}
