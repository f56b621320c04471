//! The count behind counted compute (`crate::cost`): every training-mode backbone forward pass
//! reports its images and size here, and whether gradients will flow back through it; a
//! [`Tally`] reads the passes one step made, per image.

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
