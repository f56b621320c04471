// Memory-format helpers tch 0.26 does not expose: channels-last (NHWC) copies of 4-d tensors,
// which oneDNN's CPU convolutions run without reordering their input and output.
#include <ATen/ATen.h>

extern "C" {

// A new tensor with t's values in channels-last memory (t itself if it already is), or nullptr
// when libtorch threw. The caller owns the result (tch frees it like any of its tensors).
at::Tensor* unmix_channels_last(const at::Tensor* t) {
  try {
    at::Tensor r = t->contiguous(at::MemoryFormat::ChannelsLast);
    // With one channel (or a 1 x 1 map) the standard and channels-last layouts hold the same bytes,
    // so contiguous() hands the tensor back with its standard strides, and libtorch then suggests
    // the standard layout for it: a convolution of a one-channel image would return a
    // standard-layout output into a channels-last network (every op touching it, forward and
    // backward, then runs on libtorch's strided loops). Give such a tensor the channels-last
    // strides explicitly.
    if (r.dim() == 4 && r.suggest_memory_format() != at::MemoryFormat::ChannelsLast) {
      r = at::empty_like(r, at::MemoryFormat::ChannelsLast).copy_(r);
    }
    return new at::Tensor(r);
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
