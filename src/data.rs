//! Glue between the configuration, the tch-free readers/augmentations of `unmix-data`, and tensors.

use crate::config::{Config, ViewConfig};
use anyhow::{Context, Result};
use std::path::Path;
use std::sync::Arc;
use tch::{Device, Tensor};
use unmix_data::augment::{ColorJitter, RandomResizedCrop, ViewRecipe};
use unmix_data::cifar::{self, Cifar100Label};
use unmix_data::loader::ViewBatch;
use unmix_data::{idx, ImageSet};

/// Loads the train or test split of the configured dataset.
pub fn load_split(cfg: &Config, train: bool) -> Result<ImageSet> {
    let root = Path::new(&cfg.data.root);
    let split = if train { "train" } else { "test" };
    let set = match cfg.data.dataset.as_str() {
        "fashion-mnist" | "mnist" => idx::load_mnist_like(root, train),
        "cifar10" => cifar::load_cifar10(root, train),
        "cifar100" => cifar::load_cifar100(root, train, Cifar100Label::Fine),
        other => anyhow::bail!("data.dataset = \"{other}\" is not supported"),
    }
    .with_context(|| format!("loading the {split} split of {} from data.root = {}", cfg.data.dataset, root.display()))?;
    if set.is_empty() {
        anyhow::bail!("the {split} split of {} in {} has no images", cfg.data.dataset, root.display());
    }
    Ok(set)
}

pub fn recipe(v: &ViewConfig, cfg: &Config) -> ViewRecipe {
    let [b, c, s, h] = v.jitter;
    ViewRecipe {
        crop: (v.crop_size > 0).then(|| RandomResizedCrop {
            size: (v.crop_size, v.crop_size),
            scale: (v.crop_scale[0], v.crop_scale[1]),
            ratio: (v.crop_ratio[0], v.crop_ratio[1]),
        }),
        hflip_p: v.hflip_p,
        jitter: (v.jitter.iter().any(|x| *x > 0.0)).then_some(ColorJitter { brightness: b, contrast: c, saturation: s, hue: h }),
        jitter_p: v.jitter_p,
        grayscale_p: v.grayscale_p,
        // No config keys for these yet: never blurred or solarized.
        blur: None,
        solarize_p: 0.0,
        mean: cfg.data.mean.clone(),
        std: cfg.data.std.clone(),
    }
}

/// The two training views' recipes.
pub fn train_recipes(cfg: &Config) -> Arc<Vec<ViewRecipe>> {
    Arc::new(vec![recipe(&cfg.augment.view1, cfg), recipe(cfg.view2(), cfg)])
}

/// Normalization only: the kNN bank and test images.
pub fn eval_recipes(cfg: &Config) -> Arc<Vec<ViewRecipe>> {
    Arc::new(vec![ViewRecipe::eval(cfg.data.mean.clone(), cfg.data.std.clone())])
}

/// A prepared view batch as an NCHW float tensor on `device`.
pub fn to_tensor(v: &ViewBatch, device: Device) -> Tensor {
    let n = (v.data.len() / (v.channels * v.height * v.width)) as i64;
    Tensor::from_slice(&v.data)
        .view([n, v.channels as i64, v.height as i64, v.width as i64])
        .to_device(device)
}
