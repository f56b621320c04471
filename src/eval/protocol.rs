//! The papers' linear evaluation: a linear classifier trained on augmented crops
//! (RandomResizedCrop + horizontal flip) of the train split, passed through the frozen backbone in
//! eval mode every epoch, as the MoCo (`main_lincls_unmix.py`) and SwAV (`eval_linear.py`) scripts
//! of the authors do; test images unaugmented (resized and centre-cropped for variable-size
//! images). Both scripts report the best epoch's top-1; this reports the best and the last.
//!
//! Slower than the cached-features probe ([`super::linear`]) by the backbone forward of every
//! training crop of every epoch.

use crate::data::to_tensor;
use crate::eval::linear::accuracy;
use anyhow::{bail, Result};
use serde::Serialize;
use std::sync::Arc;
use tch::{nn, nn::Module, Device, Kind, Tensor};
use unmix_data::augment::{RandomResizedCrop, ViewRecipe};
use unmix_data::loader::{BadImage, Dataset, Loader, LoaderConfig};

/// Which paper's linear evaluation.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Protocol {
    /// MoCo's `main_lincls`: SGD lr 30, momentum 0.9, wd 0, batch 256, 100 epochs, lr x0.1 at 60
    /// and 80.
    Moco,
    /// SwAV's CIFAR `eval_linear.py`: SGD lr 0.3, momentum 0.9, wd 1e-6, batch 32, 100 epochs,
    /// cosine to 0 (stepped per epoch).
    Swav,
}

impl Protocol {
    pub fn parse(s: &str) -> Option<Protocol> {
        match s {
            "moco" => Some(Protocol::Moco),
            "swav" => Some(Protocol::Swav),
            _ => None,
        }
    }
}

/// Settings of one protocol (the scripts' values; epochs and lr can be overridden).
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct ProtocolConfig {
    pub protocol: Protocol,
    pub epochs: usize,
    pub lr: f64,
    pub batch_size: usize,
    pub momentum: f64,
    pub weight_decay: f64,
    /// Epochs at which lr drops 10x; empty: cosine per epoch to 0 (PyTorch's CosineAnnealingLR
    /// with T_max = epochs, stepped after each epoch).
    pub milestones: Vec<usize>,
    /// RandomResizedCrop's scale range (torchvision's default in both scripts).
    pub crop_scale: (f64, f64),
    pub hflip_p: f64,
    pub seed: u64,
}

impl ProtocolConfig {
    pub fn new(protocol: Protocol) -> ProtocolConfig {
        let (lr, batch_size, weight_decay, milestones) = match protocol {
            Protocol::Moco => (30.0, 256, 0.0, vec![60, 80]),
            Protocol::Swav => (0.3, 32, 1e-6, vec![]),
        };
        ProtocolConfig {
            protocol,
            epochs: 100,
            lr,
            batch_size,
            momentum: 0.9,
            weight_decay,
            milestones,
            crop_scale: (0.08, 1.0),
            hflip_p: 0.5,
            seed: 0,
        }
    }

    pub fn lr_at(&self, epoch: usize) -> f64 {
        if self.milestones.is_empty() {
            self.lr * 0.5 * (1.0 + (std::f64::consts::PI * epoch as f64 / self.epochs as f64).cos())
        } else {
            self.lr * 0.1f64.powi(self.milestones.iter().filter(|&&m| epoch >= m).count() as i32)
        }
    }

    /// One line naming every setting, printed and saved with the result.
    pub fn describe(&self, crop: (usize, usize), dim: i64) -> String {
        format!(
            "{} linear evaluation: linear classifier (init N(0, 0.01), bias 0) on the frozen {dim}-d backbone features (eval mode) of \
             RandomResizedCrop({}x{}, scale {}-{}) + flip p {} crops drawn anew every epoch; SGD lr {} momentum {} wd {}, batch {}, \
             {} epochs, {}; test images unaugmented",
            match self.protocol {
                Protocol::Moco => "MoCo (main_lincls)",
                Protocol::Swav => "SwAV (eval_linear)",
            },
            crop.0,
            crop.1,
            self.crop_scale.0,
            self.crop_scale.1,
            self.hflip_p,
            self.lr,
            self.momentum,
            self.weight_decay,
            self.batch_size,
            self.epochs,
            if self.milestones.is_empty() { "cosine to 0 per epoch".to_string() } else { format!("lr x0.1 at epochs {:?}", self.milestones) },
        )
    }
}

/// Test top-1 after every epoch, the last and the best (the number both scripts report).
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct ProtocolResult {
    pub last_top1: f64,
    pub last_top5: f64,
    pub best_top1: f64,
    /// 1-based epoch of the best top-1.
    pub best_epoch: usize,
    pub per_epoch_top1: Vec<f64>,
    /// Top-1 on the augmented training crops of the last epoch (the classifier's fit).
    pub last_train_top1: f64,
}

/// The training crops' recipe: RandomResizedCrop to `crop` and a flip, then normalization.
pub fn train_recipe(pc: &ProtocolConfig, crop: (usize, usize), mean: Vec<f32>, std: Vec<f32>) -> ViewRecipe {
    ViewRecipe {
        crop: Some(RandomResizedCrop { size: crop, scale: pc.crop_scale, ratio: (3.0 / 4.0, 4.0 / 3.0) }),
        hflip_p: pc.hflip_p,
        mean,
        std,
        ..Default::default()
    }
}

/// Trains the classifier on `train` (augmented with `recipe`) through `embed` (the frozen
/// backbone, eval mode) and scores `test_features` after every epoch. `on_epoch` sees (epoch,
/// lr, mean loss, test top-1).
#[allow(clippy::too_many_arguments)]
pub fn train_and_evaluate(
    train: &Arc<dyn Dataset>,
    recipe: ViewRecipe,
    test_features: &Tensor,
    test_labels: &Tensor,
    classes: i64,
    pc: &ProtocolConfig,
    workers: usize,
    device: Device,
    embed: &dyn Fn(&Tensor) -> Tensor,
    on_epoch: &mut dyn FnMut(usize, f64, f64, f64),
) -> Result<ProtocolResult> {
    if pc.epochs == 0 || !(pc.lr > 0.0 && pc.lr.is_finite()) || pc.batch_size == 0 {
        bail!("the linear evaluation needs at least 1 epoch, a positive finite learning rate and a batch of at least 1 (got {} epochs, lr {})", pc.epochs, pc.lr);
    }
    let (vs, fc) = classifier(device, test_features.size()[1], classes);
    let mut opt = crate::optim::Optimizer::new(crate::model::named_trainable(&vs), pc.momentum, pc.weight_decay);
    let loader = crop_loader(train, recipe, pc, workers);
    let mut per_epoch = Vec::with_capacity(pc.epochs);
    let (mut best, mut best_epoch, mut last5, mut train_top1) = (f64::NEG_INFINITY, 0, 0.0, 0.0);
    for epoch in 0..pc.epochs {
        let lr = pc.lr_at(epoch);
        let last = epoch + 1 == pc.epochs;
        let (mean_loss, fit) = train_epoch(&loader, epoch, last, &fc, &mut opt, lr, device, embed)?;
        if !mean_loss.is_finite() {
            bail!("the linear classifier's loss became {mean_loss} in epoch {}; lower --lr", epoch + 1);
        }
        let (top1, top5) = tch::no_grad(|| accuracy(&fc.forward(test_features), test_labels));
        if top1 > best {
            (best, best_epoch) = (top1, epoch + 1);
        }
        last5 = top5;
        train_top1 = fit.unwrap_or(train_top1);
        per_epoch.push(top1);
        on_epoch(epoch + 1, lr, mean_loss, top1);
    }
    Ok(ProtocolResult {
        last_top1: *per_epoch.last().expect("at least one epoch"),
        last_top5: last5,
        best_top1: best,
        best_epoch,
        per_epoch_top1: per_epoch,
        last_train_top1: train_top1,
    })
}

/// The linear classifier, initialized as both scripts do: fc.weight ~ N(0, 0.01), fc.bias = 0.
fn classifier(device: Device, dim: i64, classes: i64) -> (nn::VarStore, nn::Linear) {
    let vs = nn::VarStore::new(device);
    let init = nn::LinearConfig {
        ws_init: nn::Init::Randn { mean: 0.0, stdev: 0.01 },
        bs_init: Some(nn::Init::Const(0.0)),
        bias: true,
    };
    let fc = nn::linear(vs.root() / "fc", dim, classes, init);
    (vs, fc)
}

/// The augmented training crops, shuffled; both scripts keep the last partial batch
/// (DataLoader's default).
fn crop_loader(train: &Arc<dyn Dataset>, recipe: ViewRecipe, pc: &ProtocolConfig, workers: usize) -> Loader {
    let config = LoaderConfig {
        batch_size: pc.batch_size,
        drop_last: false,
        shuffle: true,
        seed: pc.seed,
        workers,
        prefetch: 2,
        on_bad_image: BadImage::Fail,
    };
    Loader::new(train.clone(), Arc::new(vec![recipe]), config)
}

/// One epoch of the classifier on frozen features of fresh crops: the mean loss, and on the last
/// epoch (`fit`) the top-1 on the training crops.
#[allow(clippy::too_many_arguments)]
fn train_epoch(
    loader: &Loader,
    epoch: usize,
    fit: bool,
    fc: &nn::Linear,
    opt: &mut crate::optim::Optimizer,
    lr: f64,
    device: Device,
    embed: &dyn Fn(&Tensor) -> Tensor,
) -> Result<(f64, Option<f64>)> {
    let (mut loss_sum, mut batches, mut hits, mut seen) = (0.0, 0usize, 0.0, 0usize);
    for b in loader.epoch(epoch as u64, 0) {
        let b = b?;
        let x = to_tensor(&b.views[0], device);
        let y = crate::eval::linear::labels_tensor(&b.labels, device);
        let f = tch::no_grad(|| embed(&x).to_kind(Kind::Float));
        let logits = fc.forward(&f);
        let loss = logits.cross_entropy_for_logits(&y);
        opt.zero_grad();
        loss.backward();
        opt.step(lr);
        loss_sum += loss.double_value(&[]);
        batches += 1;
        if fit {
            let (t1, _) = tch::no_grad(|| accuracy(&logits, &y));
            hits += t1 * b.labels.len() as f64;
            seen += b.labels.len();
        }
        loader.recycle(b);
    }
    Ok((loss_sum / batches.max(1) as f64, (seen > 0).then(|| hits / seen as f64)))
}

/// The SwAV authors' eval_linear.py normalizes CIFAR with its own std (the 50k images' per-pixel
/// std), not the pretraining transform's (0.2023, 0.1994, 0.2010).
const SWAV_CIFAR_STD: [f32; 3] = [0.2470, 0.2435, 0.2616];

/// The config whose data.mean / data.std the protocol normalizes with, and the sentence that
/// names them.
fn normalized(cfg: &crate::config::Config, pc: &ProtocolConfig) -> (crate::config::Config, String) {
    use crate::config::Dataset;
    let mut c = cfg.clone();
    let cifar = matches!(cfg.data.dataset, Dataset::Cifar10 | Dataset::Cifar100);
    let whose = if pc.protocol == Protocol::Swav && cifar {
        c.data.std = SWAV_CIFAR_STD.to_vec();
        "the SwAV authors' eval_linear.py for CIFAR"
    } else {
        "the run's data.mean / data.std"
    };
    let said = format!("normalized with mean {:?} std {:?} ({whose})", c.data.mean, c.data.std);
    (c, said)
}

/// Runs `pc` on a network rebuilt for evaluation (its config's data): test features once, then
/// the classifier's epochs, printing one line per epoch when `progress`. Returns the result and
/// the protocol's description.
pub fn evaluate(
    cfg: &crate::config::Config,
    device: Device,
    method: &dyn crate::method::Method,
    pc: &ProtocolConfig,
    progress: bool,
) -> Result<(ProtocolResult, String)> {
    let (train, test) = crate::data::load_splits(cfg)?;
    let (cfg, normalization) = &normalized(cfg, pc);
    let _layout = crate::model::layout::ChannelsLast::for_eval(method.trainable(), device);
    let input = super::network_input(method);
    let embed = |x: &Tensor| method.embed(&input(x), crate::method::Features::Backbone);
    let recipes = crate::data::eval_recipes(cfg);
    let test_x =
        crate::eval::knn::extract(&test.data, &recipes, cfg.eval.batch_size, cfg.data.workers, device, false, &embed)?;
    let test_y = crate::eval::linear::labels_tensor(&test.labels, device);
    let crop = test_crop(cfg, test.data.as_ref())?;
    let recipe = train_recipe(pc, crop, cfg.data.mean.clone(), cfg.data.std.clone());
    let classes = train.classes.max(test.classes) as i64;
    let description = format!("{}; {normalization}", pc.describe(crop, test_x.size()[1]));
    if progress {
        crate::say!("{description}");
    }
    let mut losses = Vec::new();
    let mut log = |epoch: usize, lr: f64, loss: f64, top1: f64| {
        losses.push(loss);
        if progress {
            crate::say!("linear epoch {epoch}/{}  lr {lr:.4}  loss {loss:.4}  test top-1 {top1:.2}%", pc.epochs);
        }
    };
    let r = train_and_evaluate(
        &train.data,
        recipe,
        &test_x,
        &test_y,
        classes,
        pc,
        cfg.data.workers,
        device,
        &embed,
        &mut log,
    )?;
    warn_if_loss_grew(&losses, pc, &test_x);
    Ok((r, description))
}

/// The training crops' size: the test images' (the centre crop for variable-size images, else
/// the dataset's own: 28 for Fashion-MNIST, 32 for CIFAR, ...).
fn test_crop(cfg: &crate::config::Config, test: &dyn unmix_data::loader::Dataset) -> Result<(usize, usize)> {
    if cfg.data.eval_crop > 0 {
        return Ok((cfg.data.eval_crop, cfg.data.eval_crop));
    }
    let first = test.image(0)?;
    Ok((first.height, first.width))
}

/// Says when the classifier's loss ended above where it started: an lr too large for these
/// features.
fn warn_if_loss_grew(losses: &[f64], pc: &ProtocolConfig, test_x: &Tensor) {
    if let (Some(first), Some(last)) = (losses.first(), losses.last()) {
        if losses.len() > 1 && last > first {
            crate::say!(
                "warning: the classifier's loss grew from {first:.4} (epoch 1) to {last:.4} (epoch {}): lr {} is too large for these \
                 features ({:.2} mean absolute value; the scripts' values suit their ResNet-50 / CIFAR features); try a smaller --lr",
                losses.len(),
                pc.lr,
                test_x.abs().mean(Kind::Float).double_value(&[])
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn protocols_follow_the_scripts() {
        let m = ProtocolConfig::new(Protocol::Moco);
        assert_eq!((m.lr, m.batch_size, m.weight_decay, m.epochs), (30.0, 256, 0.0, 100));
        assert_eq!(m.lr_at(59), 30.0);
        assert!((m.lr_at(60) - 3.0).abs() < 1e-12);
        assert!((m.lr_at(80) - 0.3).abs() < 1e-12);
        let s = ProtocolConfig::new(Protocol::Swav);
        assert_eq!((s.lr, s.batch_size, s.weight_decay), (0.3, 32, 1e-6));
        assert!((s.lr_at(50) - 0.15).abs() < 1e-12);
        assert_eq!(s.lr_at(0), 0.3);
    }

    #[test]
    fn swav_on_cifar_normalizes_with_the_eval_scripts_std() {
        let load = |f: &str| crate::config::Config::load(std::path::Path::new(f), &[]).unwrap();
        let cifar = load("configs/cifar10-swav-unmix.toml");
        let (c, said) = normalized(&cifar, &ProtocolConfig::new(Protocol::Swav));
        assert_eq!(c.data.std, vec![0.2470, 0.2435, 0.2616]);
        assert_eq!(c.data.mean, cifar.data.mean);
        assert!(said.contains("0.247") && said.contains("eval_linear.py"), "{said}");
        let (c, _) = normalized(&cifar, &ProtocolConfig::new(Protocol::Moco));
        assert_eq!(c.data.std, cifar.data.std);
        let fmnist = load("configs/fmnist-swav-unmix.toml");
        assert_eq!(normalized(&fmnist, &ProtocolConfig::new(Protocol::Swav)).0.data.std, fmnist.data.std);
    }
}
