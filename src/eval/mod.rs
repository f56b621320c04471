//! Evaluation of a pretrained encoder: kNN, the cached-features linear probe, the papers' linear
//! evaluation on augmented crops, and the online probe trained alongside pretraining. Evaluation
//! reads networks and checkpoints (through `build`), never the training loop's internals.

pub mod knn;
pub mod linear;
pub mod online;
pub mod protocol;

use crate::config::Config;
use crate::data::{eval_recipes, Split};
use crate::method::Method;
use crate::model::layout::ChannelsLast;
use crate::model::Features;
use anyhow::Result;
use tch::{Device, Tensor};

/// Features of every image of `split`, unaugmented (resized and centre-cropped for variable-size
/// images), through `method`'s network in eval mode, in the split's order; L2-normalized when `l2`.
pub fn embed_split(
    cfg: &Config,
    device: Device,
    method: &dyn Method,
    split: &Split,
    which: Features,
    l2: bool,
) -> Result<Tensor> {
    let _layout = ChannelsLast::for_eval(method.trainable(), device);
    let input = network_input(method);
    knn::extract(&split.data, &eval_recipes(cfg), cfg.eval.batch_size, cfg.data.workers, device, l2, &|x| {
        method.embed(&input(x), which)
    })
}

/// Converts a batch (fp32 from the loader) to the kind of `method`'s weights (float64 ones in
/// the equivalence tests' precision).
pub fn network_input(method: &dyn Method) -> impl Fn(&Tensor) -> Tensor {
    let kind = method.trainable().trainable_variables().first().map_or(tch::Kind::Float, |t| t.kind());
    move |x: &Tensor| if x.kind() == kind { x.shallow_clone() } else { x.to_kind(kind) }
}
