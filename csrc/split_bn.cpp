// Split batch norm as one autograd node (src/model/bn.rs): the batch's parts (batches forwarded
// together, e.g. view 1 and its mixture) each normalized on their own, in groups that are contiguous
// blocks (the training-mode form a channels-last network uses: one part) or interleaved samples.
// Composed from tch (split, one batch_norm per block, cat) it copies every activation twice per
// layer -- the cat in the forward pass, and the cat that split's backward makes of the block
// gradients -- and runs ~20 small tensor ops per layer for the running statistics. Here each
// block's output is written straight into one output tensor (a slice of a channels-last tensor
// along the batch is itself channels-last contiguous), and the backward pass writes the blocks'
// input gradients into one tensor, with the same libtorch kernels (native_batch_norm and its
// backward) block by block.
#include <ATen/ATen.h>
#include <torch/csrc/autograd/custom_function.h>

#include "error.h"

namespace {
using torch::autograd::AutogradContext;
using torch::autograd::variable_list;

// Several batches concatenated along dim 0 (the "parts": view 1 and its mixture forwarded in one
// pass), each normalized as if it had been forwarded alone: part p's statistics come from its own
// samples (in `groups` groups when its size divides, as the layer's forward does), and the running
// statistics are updated part after part, as separate passes leave them. A part's groups are
// contiguous blocks (`blocked`: the channels-last network) or interleaved (samples g, g + G, ...),
// the latter normalized through the folded view (n/G, G*C, ...) of the part's contiguous slice.
// Outputs and input gradients are written straight into whole-batch tensors.
struct PartedBatchNorm : public torch::autograd::Function<PartedBatchNorm> {
  // One normalization call: rows [begin, begin + rows) of the batch folded `fold` times into the
  // channels; its statistics are [stat, stat + fold * C) of the saved vectors and [local, local +
  // fold * C) of its part's copies of the running statistics.
  struct Segment {
    int64_t begin, rows, fold, stat, local;
  };

  // A part of n samples is normalized in `groups` groups when they divide it, else as one (as the
  // layer's forward treats a batch).
  static int64_t groups_of(int64_t n, int64_t groups) { return n % groups == 0 ? groups : 1; }

  // The segments of one part of n samples starting at row `begin`, statistics from `stat` on.
  static std::vector<Segment> segments(int64_t begin, int64_t n, int64_t groups, bool blocked, int64_t c, int64_t stat) {
    const int64_t g = groups_of(n, groups);
    std::vector<Segment> out;
    if (!blocked) return {{begin, n, g, stat, 0}};
    for (int64_t k = 0; k < g; ++k) out.push_back({begin + k * (n / g), n / g, 1, stat + k * c, k * c});
    return out;
  }

  // The segment's rows of t, as the folded view when folded (t standard-contiguous).
  static at::Tensor rows(const at::Tensor& t, const Segment& s) {
    auto part = t.narrow(0, s.begin, s.rows);
    if (s.fold == 1) return part;
    auto shape = part.sizes().vec();
    shape[0] /= s.fold;
    shape[1] *= s.fold;
    return part.view(shape);
  }

  static at::Tensor repeated(const at::Tensor& t, int64_t fold) { return fold == 1 ? t : t.repeat({fold}); }

  static at::Tensor forward(AutogradContext* ctx, const at::Tensor& x_in, const at::Tensor& weight, const at::Tensor& bias,
                            at::Tensor running_mean, at::Tensor running_var, std::vector<int64_t> sizes, int64_t groups,
                            bool blocked, double momentum, double eps) {
    int64_t total = 0;
    for (int64_t n : sizes) total += n;
    TORCH_CHECK(x_in.dim() >= 2 && groups > 0 && total == x_in.size(0), "parted batch norm: parts of ", sizes,
                " samples do not make a batch of shape ", x_in.sizes());
    const int64_t c = x_in.size(1);
    // native_batch_norm checks none of these (at::batch_norm does, before calling it), and a
    // parameter shorter than the channels would be read and written past its end.
    for (auto [name, t] : {std::pair{"weight", &weight}, {"bias", &bias}, {"running_mean", &running_mean}, {"running_var", &running_var}}) {
      TORCH_CHECK(t->defined() && t->dim() == 1 && t->numel() == c, name, " should contain ", c, " elements not ", t->numel());
    }
    // Folded views need standard-contiguous memory; blocks keep the input's own layout.
    auto x = blocked ? x_in : x_in.contiguous();
    auto out = at::empty_like(x);
    // Saved statistics in the parameters' type (fp32 for a bf16 input under autocast).
    auto stat = x.options().dtype(weight.scalar_type());
    auto save_mean = at::empty({stat_count(sizes, groups, c)}, stat);
    auto save_invstd = at::empty_like(save_mean);
    int64_t begin = 0, at_stat = 0;
    for (int64_t n : sizes) {
      // Every group of the part updates its own copy of the running statistics, starting from
      // where the previous part left them; the layer keeps their mean.
      const int64_t g = groups_of(n, groups);
      auto means = running_mean.repeat({g});
      auto vars = running_var.repeat({g});
      for (const auto& s : segments(begin, n, groups, blocked, c, at_stat)) {
        const int64_t k = s.fold * c;
        auto ob = rows(out, s);
        auto sm = save_mean.narrow(0, s.stat, k);
        auto si = save_invstd.narrow(0, s.stat, k);
        at::native_batch_norm_out(ob, sm, si, rows(x, s), repeated(weight, s.fold), repeated(bias, s.fold),
                                  means.narrow(0, s.local, k), vars.narrow(0, s.local, k), true, momentum, eps);
      }
      running_mean.copy_(means.view({g, c}).mean(0));
      running_var.copy_(vars.view({g, c}).mean(0));
      begin += n;
      at_stat += g * c;
    }
    ctx->save_for_backward({x, weight, save_mean, save_invstd});
    ctx->saved_data["sizes"] = sizes;
    ctx->saved_data["groups"] = groups;
    ctx->saved_data["blocked"] = blocked;
    ctx->saved_data["eps"] = eps;
    return out;
  }

  static int64_t stat_count(const std::vector<int64_t>& sizes, int64_t groups, int64_t c) {
    int64_t k = 0;
    for (int64_t n : sizes) k += groups_of(n, groups) * c;
    return k;
  }

  static variable_list backward(AutogradContext* ctx, variable_list grads) {
    auto saved = ctx->get_saved_variables();
    const auto& x = saved[0];
    const auto& weight = saved[1];
    const auto& save_mean = saved[2];
    const auto& save_invstd = saved[3];
    const auto sizes = ctx->saved_data["sizes"].toIntVector();
    const int64_t groups = ctx->saved_data["groups"].toInt();
    const bool blocked = ctx->saved_data["blocked"].toBool();
    const double eps = ctx->saved_data["eps"].toDouble();
    const int64_t c = x.size(1);
    // The incoming gradient in the input's layout, so every block runs the same (fast) path.
    auto go = grads[0].contiguous(x.suggest_memory_format());
    auto gx = at::empty_like(x);
    const bool need_w = weight.defined() && weight.requires_grad();
    at::Tensor gw, gb;
    int64_t begin = 0, at_stat = 0;
    for (int64_t n : sizes) {
      for (const auto& s : segments(begin, n, groups, blocked, c, at_stat)) {
        const int64_t k = s.fold * c;
        auto r = at::native_batch_norm_backward(rows(go, s), rows(x, s), repeated(weight, s.fold), {}, {},
                                                save_mean.narrow(0, s.stat, k), save_invstd.narrow(0, s.stat, k), true,
                                                eps, {true, need_w, need_w});
        rows(gx, s).copy_(std::get<0>(r));
        if (!need_w) continue;
        // A folded segment's parameter gradients come per group copy: their sum is the layer's.
        auto w = std::get<1>(r).view({s.fold, c}).sum(0);
        auto b = std::get<2>(r).view({s.fold, c}).sum(0);
        if (gw.defined()) {
          gw.add_(w);
          gb.add_(b);
        } else {
          gw = w;
          gb = b;
        }
      }
      begin += n;
      at_stat += groups_of(n, groups) * c;
    }
    return {gx, gw, gb, at::Tensor(), at::Tensor(), at::Tensor(), at::Tensor(), at::Tensor(), at::Tensor(), at::Tensor()};
  }
};
}  // namespace

extern "C" {

// Training-mode batch norm of x as `parts` batches of sizes[0..parts) samples forwarded one after
// the other (PartedBatchNorm above): outputs, gradients and running statistics as separate calls
// of the layer would give. Returns a new tensor (owned by the caller), or nullptr with libtorch's
// message in err.
at::Tensor* unmix_parted_batch_norm(const at::Tensor* x, const at::Tensor* weight, const at::Tensor* bias,
                                    const at::Tensor* running_mean, const at::Tensor* running_var, const int64_t* sizes,
                                    int64_t parts, int64_t groups, bool blocked, double momentum, double eps, char* err,
                                    int len) {
  at::Tensor* y = nullptr;
  unmix_ffi::guarded(err, len, [&] {
    std::vector<int64_t> s(sizes, sizes + parts);
    y = new at::Tensor(
        PartedBatchNorm::apply(*x, *weight, *bias, *running_mean, *running_var, s, groups, blocked, momentum, eps));
  });
  return y;
}
}
