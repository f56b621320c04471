// Split batch norm over contiguous blocks of the batch, as one autograd node: the training-mode
// form that a channels-last network uses (src/model/bn.rs, `forward_blocks`). Composed from tch
// (split, one batch_norm per block, cat) it copies every activation twice per layer -- the cat in
// the forward pass, and the cat that split's backward makes of the block gradients -- and runs
// ~20 small tensor ops per layer for the running statistics. Here the blocks' outputs are written
// straight into one output tensor (a slice of a channels-last tensor along the batch is itself
// channels-last contiguous), and the backward pass writes the blocks' input gradients into one
// tensor, with the same libtorch kernels (native_batch_norm and its backward) block by block.
#include <ATen/ATen.h>
#include <torch/csrc/autograd/custom_function.h>

#include "error.h"

namespace {
using torch::autograd::AutogradContext;
using torch::autograd::variable_list;

struct BlockedBatchNorm : public torch::autograd::Function<BlockedBatchNorm> {
  static at::Tensor forward(AutogradContext* ctx, const at::Tensor& x, const at::Tensor& weight, const at::Tensor& bias,
                            at::Tensor running_mean, at::Tensor running_var, int64_t groups, double momentum, double eps) {
    // native_batch_norm checks none of these (at::batch_norm does, before calling it), and a
    // parameter shorter than the channels would be read and written past its end.
    TORCH_CHECK(x.dim() >= 2 && groups > 0 && x.size(0) % groups == 0, "split batch norm: a batch of shape ", x.sizes(),
                " does not divide into ", groups, " blocks");
    const int64_t c = x.size(1);
    for (auto [name, t] : {std::pair{"weight", &weight}, {"bias", &bias}, {"running_mean", &running_mean}, {"running_var", &running_var}}) {
      TORCH_CHECK(t->defined() && t->dim() == 1 && t->numel() == c, name, " should contain ", c, " elements not ", t->numel());
    }
    const int64_t per = x.size(0) / groups;
    auto out = at::empty_like(x);
    // Per-block saved statistics, in the parameters' type (fp32 for a bf16 input under autocast).
    auto stat = x.options().dtype(weight.scalar_type());
    auto save_mean = at::empty({groups, c}, stat);
    auto save_invstd = at::empty({groups, c}, stat);
    // Each block updates its own copy of the running statistics; the layer keeps their mean.
    auto means = running_mean.unsqueeze(0).repeat({groups, 1});
    auto vars = running_var.unsqueeze(0).repeat({groups, 1});
    for (int64_t g = 0; g < groups; ++g) {
      auto ob = out.narrow(0, g * per, per);
      auto sm = save_mean.select(0, g);
      auto si = save_invstd.select(0, g);
      auto rm = means.select(0, g);
      auto rv = vars.select(0, g);
      at::native_batch_norm_out(ob, sm, si, x.narrow(0, g * per, per), weight, bias, rm, rv, true, momentum, eps);
    }
    running_mean.copy_(means.mean(0));
    running_var.copy_(vars.mean(0));
    ctx->save_for_backward({x, weight, save_mean, save_invstd});
    ctx->saved_data["groups"] = groups;
    ctx->saved_data["eps"] = eps;
    return out;
  }

  static variable_list backward(AutogradContext* ctx, variable_list grads) {
    auto saved = ctx->get_saved_variables();
    const auto& x = saved[0];
    const auto& weight = saved[1];
    const auto& save_mean = saved[2];
    const auto& save_invstd = saved[3];
    const int64_t groups = ctx->saved_data["groups"].toInt();
    const double eps = ctx->saved_data["eps"].toDouble();
    const int64_t per = x.size(0) / groups;
    // The incoming gradient in the input's layout, so every block runs the same (fast) path.
    auto go = grads[0].contiguous(x.suggest_memory_format());
    auto gx = at::empty_like(x);
    at::Tensor gw, gb;
    const bool need_w = weight.defined() && weight.requires_grad();
    for (int64_t g = 0; g < groups; ++g) {
      auto r = at::native_batch_norm_backward(go.narrow(0, g * per, per), x.narrow(0, g * per, per), weight, {}, {},
                                              save_mean.select(0, g), save_invstd.select(0, g), true, eps,
                                              {true, need_w, need_w});
      gx.narrow(0, g * per, per).copy_(std::get<0>(r));
      if (need_w && g == 0) {
        gw = std::get<1>(r);
        gb = std::get<2>(r);
      } else if (need_w) {
        gw.add_(std::get<1>(r));
        gb.add_(std::get<2>(r));
      }
    }
    return {gx, gw, gb, at::Tensor(), at::Tensor(), at::Tensor(), at::Tensor(), at::Tensor()};
  }
};

}  // namespace

extern "C" {

// Training-mode batch norm of x with separate statistics for each of `groups` contiguous blocks
// of its batch (x.size(0) divisible by groups), weight and bias shared, the running statistics
// updated in place to the mean of the blocks' updates. Returns a new tensor (owned by the caller),
// or nullptr with libtorch's message in err.
at::Tensor* unmix_blocked_batch_norm(const at::Tensor* x, const at::Tensor* weight, const at::Tensor* bias,
                                     const at::Tensor* running_mean, const at::Tensor* running_var, int64_t groups,
                                     double momentum, double eps, char* err, int len) {
  at::Tensor* y = nullptr;
  unmix_ffi::guarded(err, len, [&] {
    y = new at::Tensor(BlockedBatchNorm::apply(*x, *weight, *bias, *running_mean, *running_var, groups, momentum, eps));
  });
  return y;
}
}
