//! Batch norm with optional "split" statistics.
//!
//! The authors' CIFAR MoCo code normalizes each of G groups of the batch with its own statistics
//! (group g = samples g, g + G, g + 2G, ..., from their `view(-1, C * G, H, W)`), to mimic G-GPU training on one device (a single-device "shuffle BN"). Running
//! statistics are the mean over the slices. G = 1 is plain batch norm.

use tch::{nn, Tensor};

#[derive(Debug)]
pub struct SplitBatchNorm {
    pub weight: Tensor,
    pub bias: Tensor,
    pub running_mean: Tensor,
    pub running_var: Tensor,
    pub splits: i64,
    pub momentum: f64,
    pub eps: f64,
    /// Training-mode groups are contiguous blocks of the batch (N/G samples each) instead of
    /// samples g, g + G, ...: the channels-last network reorders its batch so that both mean the
    /// same groups, and blocks keep each group's slice in channels-last memory.
    pub blocked: bool,
    /// While set (more than one entry): the batch is that many batches of these sizes forwarded
    /// together, each normalized as if alone ([`SplitBatchNorm::forward_parted`]).
    pub parts: std::cell::RefCell<Vec<i64>>,
}

impl SplitBatchNorm {
    pub fn new(p: &nn::Path, channels: i64, splits: i64) -> Self {
        SplitBatchNorm {
            weight: p.ones("weight", &[channels]),
            bias: p.zeros("bias", &[channels]),
            running_mean: p.zeros_no_train("running_mean", &[channels]),
            running_var: p.ones_no_train("running_var", &[channels]),
            splits: splits.max(1),
            momentum: 0.1,
            eps: 1e-5,
            blocked: false,
            parts: Default::default(),
        }
    }

    pub fn forward_t(&self, x: &Tensor, train: bool) -> Tensor {
        let size = x.size();
        let (n, c) = (size[0], size[1]);
        if !train {
            return x.batch_norm(
                Some(&self.weight),
                Some(&self.bias),
                Some(&self.running_mean),
                Some(&self.running_var),
                false,
                self.momentum,
                self.eps,
                true,
            );
        }
        if self.parts.borrow().len() > 1 {
            return self.forward_parted(x);
        }
        // A batch that does not divide into the groups (a last partial batch) uses plain statistics.
        let g = if n % self.splits == 0 { self.splits } else { 1 };
        if g == 1 {
            return x.batch_norm(
                Some(&self.weight),
                Some(&self.bias),
                Some(&self.running_mean),
                Some(&self.running_var),
                true,
                self.momentum,
                self.eps,
                true,
            );
        }
        if self.blocked {
            return self.forward_blocks(x, g);
        }
        // Fold the groups into channels: (N, C, ...) -> (N/G, G*C, ...), one statistic per group.
        let mut folded = size.clone();
        folded[0] = n / g;
        folded[1] = c * g;
        let rm = self.running_mean.repeat([g]);
        let rv = self.running_var.repeat([g]);
        let y = x.reshape(&folded).batch_norm(
            Some(&self.weight.repeat([g])),
            Some(&self.bias.repeat([g])),
            Some(&rm),
            Some(&rv),
            true,
            self.momentum,
            self.eps,
            true,
        );
        tch::no_grad(|| {
            self.running_mean.shallow_clone().copy_(&rm.view([g, c]).mean_dim(0, false, rm.kind()));
            self.running_var.shallow_clone().copy_(&rv.view([g, c]).mean_dim(0, false, rv.kind()));
        });
        y.reshape(&size)
    }
}

extern "C" {
    fn unmix_parted_batch_norm(
        x: *const torch_sys::C_tensor,
        weight: *const torch_sys::C_tensor,
        bias: *const torch_sys::C_tensor,
        running_mean: *const torch_sys::C_tensor,
        running_var: *const torch_sys::C_tensor,
        sizes: *const i64,
        parts: i64,
        groups: i64,
        blocked: bool,
        momentum: f64,
        eps: f64,
        err: *mut std::os::raw::c_char,
        len: std::os::raw::c_int,
    ) -> *mut torch_sys::C_tensor;
}

impl SplitBatchNorm {
    /// Training-mode split statistics over `g` contiguous blocks of the batch: libtorch's batch
    /// norm block by block, each keeping its input's memory layout, running statistics averaged
    /// over the blocks as in the folded form. One autograd node (`csrc/split_bn.cpp`) that writes
    /// the blocks' outputs and input gradients straight into whole-batch tensors: split, per-block
    /// calls and cat copied every activation twice per layer (ResNet-18 CIFAR bf16 step: 2-4 %
    /// slower with 8 groups than with 1).
    fn forward_blocks(&self, x: &Tensor, g: i64) -> Tensor {
        self.parted(x, &[x.size()[0]], g, true)
    }

    /// Training-mode statistics of several batches forwarded as one (the sizes in `parts`): each
    /// part normalized on its own, in its own groups (contiguous blocks when `blocked`, else
    /// interleaved), and the running statistics updated part after part, as that many separate
    /// passes leave them.
    fn forward_parted(&self, x: &Tensor) -> Tensor {
        let sizes = self.parts.borrow().clone();
        self.parted(x, &sizes, self.splits, self.blocked)
    }

    /// Batch norm of the parts of `x` (`sizes`), each in `groups` groups: one autograd node of
    /// the shim (`csrc/split_bn.cpp`, PartedBatchNorm).
    fn parted(&self, x: &Tensor, sizes: &[i64], groups: i64, blocked: bool) -> Tensor {
        let mut err = crate::ffi::error_buffer();
        // SAFETY: every pointer is a live tensor owned by `x` or `self`, and `sizes` a live slice of
        // `sizes.len()` entries, for the whole call; the shim checks sizes and writes at most
        // `err.len()` bytes into `err`.
        let p = unsafe {
            unmix_parted_batch_norm(
                x.as_ptr(),
                self.weight.as_ptr(),
                self.bias.as_ptr(),
                self.running_mean.as_ptr(),
                self.running_var.as_ptr(),
                sizes.as_ptr(),
                sizes.len() as i64,
                groups,
                blocked,
                self.momentum,
                self.eps,
                err.as_mut_ptr(),
                err.len() as std::os::raw::c_int,
            )
        };
        if p.is_null() {
            panic!(
                "batch norm of parts {sizes:?} in {groups} groups of a batch of shape {:?} failed in libtorch: {}",
                x.size(),
                crate::ffi::message(&err)
            );
        }
        // SAFETY: a non-null result is a new tensor the shim allocated for us to own.
        unsafe { Tensor::from_ptr(p) }
    }
}

/// Marks every layer in `norms` as seeing the batches of `sizes` forwarded together, until dropped.
pub struct Parts<'a> {
    norms: Vec<&'a SplitBatchNorm>,
}

impl<'a> Parts<'a> {
    pub fn set(norms: Vec<&'a SplitBatchNorm>, sizes: &[i64]) -> Self {
        for n in &norms {
            *n.parts.borrow_mut() = sizes.to_vec();
        }
        Parts { norms }
    }
}

impl Drop for Parts<'_> {
    fn drop(&mut self) {
        for n in &self.norms {
            n.parts.borrow_mut().clear();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tch::{Device, Kind};

    #[test]
    fn split_bn_normalizes_each_group_on_its_own() {
        let vs = nn::VarStore::new(Device::Cpu);
        let bn = SplitBatchNorm::new(&vs.root(), 3, 2);
        tch::manual_seed(0);
        let x = Tensor::randn([8, 3, 4, 4], (Kind::Float, Device::Cpu));
        // As in the authors' view(-1, C * G, H, W), group g holds samples g, g + G, g + 2G, ...
        // Shift group 1 (the odd samples) so shared statistics would not normalize it.
        let shift = Tensor::from_slice(&[0.0f32, 5.0, 0.0, 5.0, 0.0, 5.0, 0.0, 5.0]).view([8, 1, 1, 1]);
        let x = x + shift;
        let y = bn.forward_t(&x, true);
        for gi in 0..2 {
            let g = y.index_select(0, &Tensor::from_slice(&[gi, gi + 2, gi + 4, gi + 6]));
            let mean = g.mean_dim([0i64, 2, 3].as_slice(), false, Kind::Float);
            assert!(mean.abs().max().double_value(&[]) < 1e-5, "group {gi} mean {mean:?}");
        }
        // Running mean moves by momentum 0.1 towards the average of the two group means.
        let gm =
            x.view([4, 2, 3, 16]).mean_dim([0i64, 3].as_slice(), false, Kind::Float).mean_dim(0, false, Kind::Float);
        let expect = gm * 0.1;
        assert!((&bn.running_mean - expect).abs().max().double_value(&[]) < 1e-5);
    }

    #[test]
    fn one_split_is_plain_batch_norm() {
        let vs = nn::VarStore::new(Device::Cpu);
        let bn = SplitBatchNorm::new(&vs.root(), 2, 1);
        let x = Tensor::randn([6, 2, 3, 3], (Kind::Float, Device::Cpu));
        let y = bn.forward_t(&x, true);
        let plain = x.batch_norm(None::<Tensor>, None, None, None, true, 0.1, 1e-5, false);
        assert!((y - plain).abs().max().double_value(&[]) < 1e-5);
    }
}

#[cfg(test)]
mod split_vs_groups {
    use super::*;
    use tch::{Device, Kind};

    #[test]
    fn split_bn_equals_plain_bn_per_group_forward_and_backward() {
        let vs = nn::VarStore::new(Device::Cpu);
        let split = SplitBatchNorm::new(&(vs.root() / "s"), 4, 2);
        let mut plain = SplitBatchNorm::new(&(vs.root() / "p"), 4, 1);
        tch::no_grad(|| {
            split.weight.shallow_clone().copy_(&Tensor::from_slice(&[1.0f32, 2.0, 0.5, 1.5]));
            plain.weight.shallow_clone().copy_(&Tensor::from_slice(&[1.0f32, 2.0, 0.5, 1.5]));
        });
        let x = (Tensor::randn([16, 4, 5, 5], (Kind::Float, Device::Cpu)) * 3.0 + 1.0).set_requires_grad(true);
        let up = Tensor::randn([16, 4, 5, 5], (Kind::Float, Device::Cpu));
        let y = split.forward_t(&x, true);
        (&y * &up).sum(Kind::Float).backward();
        let gx = x.grad().copy();
        let gw = split.weight.grad().copy();
        let mut gw_plain = Tensor::zeros([4], (Kind::Float, Device::Cpu));
        for g in 0..2i64 {
            let idx = Tensor::arange_start_step(g, 16, 2, (Kind::Int64, Device::Cpu));
            let xg = x.index_select(0, &idx).detach().set_requires_grad(true);
            let yg = plain.forward_t(&xg, true);
            plain.weight.zero_grad();
            (&yg * up.index_select(0, &idx)).sum(Kind::Float).backward();
            let dy = (&yg - y.index_select(0, &idx)).abs().max().double_value(&[]);
            let dg = (xg.grad() - gx.index_select(0, &idx)).abs().max().double_value(&[]);
            assert!(dy < 1e-5 && dg < 1e-4, "group {g}: output differs by {dy}, input gradient by {dg}");
            gw_plain += plain.weight.grad();
        }
        assert!((gw - gw_plain).abs().max().double_value(&[]) < 1e-3);
    }
}

#[cfg(test)]
mod blocks {
    use super::*;
    use crate::model::layout::channels_last;
    use tch::{Device, Kind};

    #[test]
    fn blocks_of_the_reordered_batch_are_the_interleaved_groups() {
        // The channels-last network puts group g (samples g, g + G, ...) into block g; blocked
        // statistics on that batch must give the folded form's outputs, running statistics and
        // gradients, sample for sample.
        let vs = nn::VarStore::new(Device::Cpu);
        let folded = SplitBatchNorm::new(&(vs.root() / "f"), 5, 4);
        let mut blocked = SplitBatchNorm::new(&(vs.root() / "b"), 5, 4);
        blocked.blocked = true;
        tch::manual_seed(1);
        let w = Tensor::rand([5], (Kind::Float, Device::Cpu)) + 0.5;
        tch::no_grad(|| {
            folded.weight.shallow_clone().copy_(&w);
            blocked.weight.shallow_clone().copy_(&w);
        });
        let (n, g) = (16i64, 4i64);
        let x = (Tensor::randn([n, 5, 3, 3], (Kind::Float, Device::Cpu)) * 2.0 + 0.7).set_requires_grad(true);
        let up = Tensor::randn([n, 5, 3, 3], (Kind::Float, Device::Cpu));
        let y = folded.forward_t(&x, true);
        (&y * &up).sum(Kind::Float).backward();
        let order: Vec<i64> = (0..n).map(|j| (j % (n / g)) * g + j / (n / g)).collect();
        let order = Tensor::from_slice(&order);
        let xb = channels_last(&x.detach().index_select(0, &order)).set_requires_grad(true);
        let yb = blocked.forward_t(&xb, true);
        assert!(crate::model::layout::is_channels_last(&yb), "blocked output left channels-last memory");
        (&yb * up.index_select(0, &order)).sum(Kind::Float).backward();
        let dy = (&yb - y.index_select(0, &order)).abs().max().double_value(&[]);
        let dx = (xb.grad() - x.grad().index_select(0, &order)).abs().max().double_value(&[]);
        assert!(crate::model::layout::is_channels_last(&xb.grad()), "blocked input gradient left channels-last memory");
        let dw = (blocked.weight.grad() - folded.weight.grad()).abs().max().double_value(&[]);
        let db = (blocked.bias.grad() - folded.bias.grad()).abs().max().double_value(&[]);
        assert!(db < 1e-4, "bias gradients differ by {db}");
        let dm = (&blocked.running_mean - &folded.running_mean).abs().max().double_value(&[]);
        let dv = (&blocked.running_var - &folded.running_var).abs().max().double_value(&[]);
        assert!(
            dy < 1e-5 && dx < 1e-4 && dw < 1e-4,
            "outputs differ by {dy}, input gradients by {dx}, weight gradients by {dw}"
        );
        assert!(dm < 1e-6 && dv < 1e-6, "running mean differs by {dm}, running var by {dv}");
        // The folded form really has per-group statistics: the running mean moved.
        assert!(folded.running_mean.abs().max().double_value(&[]) > 1e-3);
    }

    #[test]
    fn blocked_node_equals_per_block_batch_norm_on_bf16_activations() {
        // Under autocast the activations are bf16 and the parameters fp32. The one-node blocked
        // form must give what libtorch's batch norm gives block by block (split, batch_norm, cat,
        // autograd through all of it): outputs bit for bit, gradients and running statistics to
        // fp32 rounding, layouts kept.
        let vs = nn::VarStore::new(Device::Cpu);
        let mut bn = SplitBatchNorm::new(&(vs.root() / "b"), 6, 4);
        bn.blocked = true;
        let w = Tensor::from_slice(&[0.5f32, 1.0, 1.5, 2.0, 0.25, 1.25]);
        let b = Tensor::from_slice(&[0.1f32, -0.2, 0.3, 0.0, 0.5, -0.4]);
        tch::no_grad(|| {
            bn.weight.shallow_clone().copy_(&w);
            bn.bias.shallow_clone().copy_(&b);
        });
        let n = 16i64;
        // Fixed values, a different offset per sample so the blocks' statistics differ.
        let base = ((Tensor::arange(n * 6 * 25, (Kind::Double, Device::Cpu)) * 12.9898).sin() * 43758.5453)
            .frac()
            .view([n, 6, 5, 5]);
        let x = (base * 3.0 + Tensor::arange(n, (Kind::Double, Device::Cpu)).view([n, 1, 1, 1]) * 0.3)
            .to_kind(Kind::BFloat16);
        let x = channels_last(&x).set_requires_grad(true);
        // Channels-last like the activations, as the gradients in a channels-last network are (with
        // a standard-layout gradient libtorch's per-block backward takes its mixed-layout path,
        // which sums in bf16: ~6e-4 off in the bias gradient).
        let up = channels_last(
            &((Tensor::arange(n * 6 * 25, (Kind::Double, Device::Cpu)) * 7.1).cos())
                .view([n, 6, 5, 5])
                .to_kind(Kind::BFloat16),
        );
        let y = bn.forward_t(&x, true);
        assert_eq!(y.kind(), Kind::BFloat16);
        assert!(crate::model::layout::is_channels_last(&y));
        (&y * &up).to_kind(Kind::Float).sum(Kind::Float).backward();
        // References: the same blocks through libtorch's batch norm, one call each, in bf16 (for
        // the output and the running statistics) and in float64 (for the gradients).
        let blockwise = |xin: &Tensor, kind: Kind| {
            // Parameters and statistics in fp32 next to bf16 activations, as under autocast.
            let pk = if kind == Kind::BFloat16 { Kind::Float } else { kind };
            let (w2, b2) =
                (w.to_kind(pk).detach().set_requires_grad(true), b.to_kind(pk).detach().set_requires_grad(true));
            let x2 = xin.detach().to_kind(kind).set_requires_grad(true);
            let (mut rms, mut rvs) = (Vec::new(), Vec::new());
            let ys: Vec<Tensor> = x2
                .split(n / 4, 0)
                .iter()
                .map(|blk| {
                    let (rm, rv) = (Tensor::zeros([6], (pk, Device::Cpu)), Tensor::ones([6], (pk, Device::Cpu)));
                    let out = blk.batch_norm(Some(&w2), Some(&b2), Some(&rm), Some(&rv), true, 0.1, 1e-5, false);
                    rms.push(rm);
                    rvs.push(rv);
                    out
                })
                .collect();
            let y2 = Tensor::cat(&ys, 0);
            (&y2 * up.to_kind(y2.kind())).to_kind(Kind::Double).sum(Kind::Double).backward();
            let rm = Tensor::stack(&rms, 0).mean_dim(0, false, Kind::Float);
            let rv = Tensor::stack(&rvs, 0).mean_dim(0, false, Kind::Float);
            (y2, x2.grad(), w2.grad(), b2.grad(), rm, rv)
        };
        let (y2, _, _, _, rm, rv) = blockwise(&x, Kind::BFloat16);
        assert!(y.equal(&y2), "outputs differ");
        let (_, gx, gw, gb, _, _) = blockwise(&x, Kind::Double);
        let rel = |a: &Tensor, r: &Tensor| {
            let (a, r) = (a.to_kind(Kind::Double), r.to_kind(Kind::Double));
            (&a - &r).abs().max().double_value(&[]) / r.abs().max().double_value(&[]).max(1e-12)
        };
        // bf16 input gradients (8 bits: ~4e-3 relative per rounding); fp32 parameter gradients.
        // (The composed bf16 form is ~6e-4 off in the bias gradient here, against 1e-5 for the node.)
        let (dx, dw, db) = (rel(&x.grad(), &gx), rel(&bn.weight.grad(), &gw), rel(&bn.bias.grad(), &gb));
        assert!(
            dx < 1e-2 && dw < 1e-4 && db < 1e-4,
            "input gradient {dx}, weight {dw}, bias {db} (relative, against float64)"
        );
        assert!(crate::model::layout::is_channels_last(&x.grad()));
        assert!(rel(&bn.running_mean, &rm) < 1e-6 && rel(&bn.running_var, &rv) < 1e-6, "running statistics differ");
        // No gradient recorded when none is needed (the momentum encoder's forward).
        let z = tch::no_grad(|| bn.forward_t(&x.detach(), true));
        assert!(!z.requires_grad());
    }

    #[test]
    #[should_panic(expected = "failed in libtorch: weight should contain 5 elements not 3")]
    fn parameters_of_the_wrong_size_are_an_error_not_a_heap_overrun() {
        // Three channels of parameters against a five-channel input. native_batch_norm does not
        // check sizes (at::batch_norm did, in the composed form) and wrote past the running mean
        // ("free(): invalid next size"); the node checks them, and the message reaches the panic.
        let vs = nn::VarStore::new(Device::Cpu);
        let mut bn = SplitBatchNorm::new(&vs.root(), 3, 2);
        bn.blocked = true;
        let _ = bn.forward_t(&channels_last(&Tensor::ones([4, 5, 2, 2], (Kind::Float, Device::Cpu))), true);
    }
}

#[cfg(test)]
mod parted {
    use super::*;
    use tch::{Device, Kind};

    /// A layer of `c` channels in `splits` groups with non-trivial weight, bias and running
    /// statistics, in float64.
    fn layer(vs: &nn::VarStore, name: &str, c: i64, splits: i64, blocked: bool) -> SplitBatchNorm {
        let mut bn = SplitBatchNorm::new(&(vs.root() / name), c, splits);
        bn.blocked = blocked;
        let ramp = |a: f64, b: f64| Tensor::linspace(a, b, c, (Kind::Double, Device::Cpu));
        tch::no_grad(|| {
            for (t, v) in [
                (&bn.weight, ramp(0.5, 1.5)),
                (&bn.bias, ramp(-0.2, 0.3)),
                (&bn.running_mean, ramp(-1.0, 1.0)),
                (&bn.running_var, ramp(0.5, 2.0)),
            ] {
                t.shallow_clone().set_data(&v);
            }
        });
        bn
    }

    #[test]
    fn parts_are_normalized_as_separate_batches_one_after_the_other() {
        // Parts [8, 6] (the second does not divide into 4 groups: plain statistics, as a batch of
        // 6 alone), [8, 8] in 4 groups and in 1, interleaved and blocked, images and vectors:
        // outputs, input and parameter gradients, and running statistics equal those of calling
        // the layer on each part in turn, to float64 rounding.
        let cases = [(vec![8i64, 6], 4, false), (vec![8, 6], 4, true), (vec![8, 8], 4, false), (vec![8, 8], 1, true)];
        for (sizes, splits, blocked) in cases {
            for shape in [vec![3, 5, 5], vec![3]] {
                let n: i64 = sizes.iter().sum();
                let full: Vec<i64> = std::iter::once(n).chain(shape.iter().copied()).collect();
                let x = Tensor::randn(full.as_slice(), (Kind::Double, Device::Cpu)) * 2.0 + 0.5;
                let up = Tensor::randn(full.as_slice(), (Kind::Double, Device::Cpu));
                let vs = nn::VarStore::new(Device::Cpu);
                let (one, alone) = (layer(&vs, "one", 3, splits, blocked), layer(&vs, "alone", 3, splits, blocked));
                let x1 = x.detach().set_requires_grad(true);
                let y1 = {
                    let _p = Parts::set(vec![&one], &sizes);
                    one.forward_t(&x1, true)
                };
                (&y1 * &up).sum(Kind::Double).backward();
                let x2 = x.detach().set_requires_grad(true);
                let mut outs = Vec::new();
                let mut first = 0;
                for &k in &sizes {
                    outs.push(alone.forward_t(&x2.narrow(0, first, k), true));
                    first += k;
                }
                let y2 = Tensor::cat(&outs, 0);
                (&y2 * &up).sum(Kind::Double).backward();
                let what = format!("parts {sizes:?}, {splits} groups, blocked {blocked}, shape {shape:?}");
                for (name, a, b) in [
                    ("output", &y1, &y2),
                    ("input gradient", &x1.grad(), &x2.grad()),
                    ("weight gradient", &one.weight.grad(), &alone.weight.grad()),
                    ("bias gradient", &one.bias.grad(), &alone.bias.grad()),
                    ("running mean", &one.running_mean, &alone.running_mean),
                    ("running var", &one.running_var, &alone.running_var),
                ] {
                    let d = (a - b).abs().max().double_value(&[]);
                    assert!(d < 1e-12, "{what}: {name} differs by {d}");
                }
                // Without the marker the layer is back to one batch.
                assert!(one.parts.borrow().is_empty());
            }
        }
    }
}
