//! The count behind counted compute (`crate::cost`): every training-mode backbone forward pass
//! reports its images and size here, and whether gradients will flow back through it; a
//! [`Tally`] reads the passes one step made, per image. Every convolution of the backbone also
//! reports its floating-point operations ([`record_conv`]), which [`forward_flops`] reads for
//! one image: the FLOPs behind a benchmark's achieved GFLOP/s.

use std::cell::Cell;

thread_local! {
    /// Pixel-passes counted on this thread since the last [`Tally::start`]: forward-only and
    /// forward-plus-backward, in images x height x width.
    static COUNTED: Cell<(u128, u128)> = const { Cell::new((0, 0)) };
}

/// Called by every training-mode backbone forward pass: `images` of `height` x `width`, and
/// whether gradients will flow back through it (its output requires grad).
pub fn record(images: i64, height: i64, width: i64, backward: bool) {
    let pixels = (images.max(0) * height.max(0) * width.max(0)) as u128;
    COUNTED.with(|c| {
        let (fwd, bwd) = c.get();
        c.set(if backward { (fwd, bwd + pixels) } else { (fwd + pixels, bwd) });
    });
}

thread_local! {
    /// Convolution FLOPs (2 x multiply-adds) counted on this thread, per image.
    static CONV_FLOPS: Cell<f64> = const { Cell::new(0.0) };
}

/// Called by every convolution of the backbone with its weight and output: 2 x (the weight's
/// elements, Cout x Cin / groups x kh x kw) x the output's height x width FLOPs per image.
pub fn record_conv(weight: &tch::Tensor, out: &tch::Tensor) {
    let (w, o) = (weight.size(), out.size());
    let macs = w.iter().product::<i64>() as f64 * (o[2] * o[3]) as f64;
    CONV_FLOPS.with(|c| c.set(c.get() + 2.0 * macs));
}

/// The convolution FLOPs of one forward pass of `forward` over one image: what the backbone
/// reports through [`record_conv`] while it runs (batch norm, ReLU and pooling not counted: a
/// few percent).
pub fn forward_flops(forward: impl FnOnce()) -> f64 {
    CONV_FLOPS.with(|c| c.set(0.0));
    forward();
    CONV_FLOPS.with(|c| c.get())
}

/// The passes counted on this thread between [`Tally::start`] and [`Tally::per_image`].
#[derive(Clone, Copy, Debug)]
pub struct Tally;

impl Tally {
    /// Starts counting (from zero) on this thread.
    pub fn start() -> Tally {
        COUNTED.with(|c| c.set((0, 0)));
        Tally
    }

    /// The passes counted since [`Tally::start`], per image of a batch of `images` images of
    /// `height` x `width` (view 1's): forward 1, forward plus backward 3.
    pub fn per_image(self, images: i64, height: i64, width: i64) -> f64 {
        let (fwd, bwd) = COUNTED.with(|c| c.get());
        (fwd as f64 + 3.0 * bwd as f64) / (images * height * width) as f64
    }
}
