//! Run configuration: TOML, typed, with `--set key=value` overrides, validated before any work.
//!
//! Every choice is a serde enum (kebab-case names, so an unknown one is an error that names the key
//! and lists the choices); unknown keys are errors (`deny_unknown_fields`). Each section's settings
//! live with the code that owns them: the method's in its file under `method/` (the `[method]`
//! table is a [`MethodConfig`] tagged by `name`), Un-Mix's in `mix.rs`, the optimizer's choices
//! in `optim.rs`, the network's in `model/`. This file puts them together, holds the data,
//! augmentation, training and evaluation sections, and checks what spans sections. The resolved
//! configuration is written into the run folder and every checkpoint.

use crate::method::{MethodConfig, RunContext};
use crate::mix::{IMixConfig, MixCoConfig, MixtureKind, MixtureSettings, UnMixConfig};
use crate::model::{Arch, ConvInit, Features, MemoryFormat};
use crate::optim::{LarsScope, OptimizerKind, ScheduleKind, WarmupShape};
use crate::precision::Precision;
use anyhow::{anyhow, bail, Context, Result};
use serde::{Deserialize, Serialize};
use std::path::Path;

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// Seed of everything random: weights, data order, views, Un-Mix draws.
    #[serde(default)]
    pub seed: u64,
    /// "cpu", "cuda" or "cuda:N".
    #[serde(default)]
    pub device: DeviceSpec,
    /// libtorch intra-op threads (0 = the number of cores).
    #[serde(default)]
    pub threads: usize,
    pub data: DataConfig,
    pub augment: AugmentConfig,
    pub model: ModelConfig,
    pub method: MethodConfig,
    #[serde(default)]
    pub unmix: UnMixConfig,
    /// i-Mix, a rival mixture (`[imix] enabled = true` with `unmix.enabled = false`).
    #[serde(default, skip_serializing_if = "IMixConfig::is_default")]
    pub imix: IMixConfig,
    /// MixCo, a rival mixture (`[mixco] enabled = true` with `unmix.enabled = false`).
    #[serde(default, skip_serializing_if = "MixCoConfig::is_default")]
    pub mixco: MixCoConfig,
    pub train: TrainConfig,
    #[serde(default)]
    pub eval: EvalConfig,
}

/// `device`: where tensors live, written "cpu", "cuda" or "cuda:N".
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum DeviceSpec {
    #[default]
    Cpu,
    /// Plain "cuda": cuda:LOCAL_RANK in a multi-process run, else cuda:0.
    Cuda,
    CudaIndex(usize),
}

impl std::str::FromStr for DeviceSpec {
    type Err = anyhow::Error;
    fn from_str(s: &str) -> Result<DeviceSpec> {
        match s {
            "cpu" => Ok(DeviceSpec::Cpu),
            "cuda" => Ok(DeviceSpec::Cuda),
            _ => match s.strip_prefix("cuda:").and_then(|n| n.parse::<usize>().ok()) {
                Some(n) => Ok(DeviceSpec::CudaIndex(n)),
                None => bail!("\"{s}\" is not a device: use \"cpu\", \"cuda\" or \"cuda:N\""),
            },
        }
    }
}

impl std::fmt::Display for DeviceSpec {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            DeviceSpec::Cpu => write!(f, "cpu"),
            DeviceSpec::Cuda => write!(f, "cuda"),
            DeviceSpec::CudaIndex(i) => write!(f, "cuda:{i}"),
        }
    }
}

impl Serialize for DeviceSpec {
    fn serialize<S: serde::Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
        s.serialize_str(&self.to_string())
    }
}

impl<'de> Deserialize<'de> for DeviceSpec {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> std::result::Result<DeviceSpec, D::Error> {
        let s = String::deserialize(d)?;
        s.parse().map_err(|e: anyhow::Error| serde::de::Error::custom(e.to_string()))
    }
}

impl DeviceSpec {
    pub fn is_cuda(self) -> bool {
        !matches!(self, DeviceSpec::Cpu)
    }

    /// The tch device (plain "cuda" is cuda:0 here; the runtime picks cuda:LOCAL_RANK).
    pub fn device(self) -> tch::Device {
        match self {
            DeviceSpec::Cpu => tch::Device::Cpu,
            DeviceSpec::Cuda => tch::Device::Cuda(0),
            DeviceSpec::CudaIndex(i) => tch::Device::Cuda(i),
        }
    }
}

/// `data.dataset`: which reader and layout `data.root` holds (see README).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Dataset {
    FashionMnist,
    Mnist,
    Cifar10,
    Cifar100,
    Stl10,
    TinyImagenet,
    ImageFolder,
    /// A folder of unlabeled images at any depth (one's own photos); evaluation needs
    /// `data.eval_root`.
    UnlabeledFolder,
}

impl Dataset {
    /// Image channels the dataset delivers.
    pub fn channels(self) -> i64 {
        match self {
            Dataset::FashionMnist | Dataset::Mnist => 1,
            _ => 3,
        }
    }

    /// The name in the config.
    pub fn name(self) -> &'static str {
        match self {
            Dataset::FashionMnist => "fashion-mnist",
            Dataset::Mnist => "mnist",
            Dataset::Cifar10 => "cifar10",
            Dataset::Cifar100 => "cifar100",
            Dataset::Stl10 => "stl10",
            Dataset::TinyImagenet => "tiny-imagenet",
            Dataset::ImageFolder => "image-folder",
            Dataset::UnlabeledFolder => "unlabeled-folder",
        }
    }
}

impl Dataset {
    /// Folders of image files, whose images vary in size.
    pub fn is_folder(self) -> bool {
        matches!(self, Dataset::ImageFolder | Dataset::UnlabeledFolder)
    }
}

impl std::fmt::Display for Dataset {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// `data.on_bad_image`: what a damaged or unreadable image does.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum OnBadImage {
    /// Stop, naming the file.
    #[default]
    Fail,
    /// Drop it from its batch with one warning line, and count it.
    Skip,
}

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct DataConfig {
    pub dataset: Dataset,
    /// Folder holding the dataset's files (see README for each layout).
    pub root: String,
    /// Use only the first N training images for pretraining (0 = all).
    #[serde(default)]
    pub limit: usize,
    /// Data-preparation threads (0 = prepare in the training thread).
    #[serde(default = "one")]
    pub workers: usize,
    /// Batches prepared ahead per worker.
    #[serde(default = "two")]
    pub prefetch: usize,
    /// Per-channel normalization.
    pub mean: Vec<f32>,
    pub std: Vec<f32>,
    #[serde(default)]
    pub on_bad_image: OnBadImage,
    /// Evaluation of variable-size images: resize the shorter side to this, then center-crop
    /// `eval_crop` (0 = images used as they are; required for image-folder).
    #[serde(default)]
    pub eval_resize: usize,
    #[serde(default)]
    pub eval_crop: usize,
    /// A labeled folder for kNN, probes and embedding maps (`ROOT/CLASS/IMAGE`, or `ROOT/train/CLASS/IMAGE`
    /// and `ROOT/val/CLASS/IMAGE`) when pretraining on a folder; without it an unlabeled-folder run
    /// is not evaluated.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub eval_root: Option<String>,
}

/// The augmentation recipe of one view (torchvision semantics).
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct ViewConfig {
    /// RandomResizedCrop output side (0 = no crop).
    pub crop_size: usize,
    #[serde(default = "default_scale")]
    pub crop_scale: [f64; 2],
    #[serde(default = "default_ratio")]
    pub crop_ratio: [f64; 2],
    #[serde(default = "half")]
    pub hflip_p: f64,
    /// ColorJitter strengths: brightness, contrast, saturation, hue.
    #[serde(default)]
    pub jitter: [f64; 4],
    #[serde(default)]
    pub jitter_p: f64,
    #[serde(default)]
    pub grayscale_p: f64,
    /// RandomGrayscale before ColorJitter (MoCo v1's ImageNet code) instead of after it.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub grayscale_before_jitter: bool,
    /// Gaussian blur (PIL's, as MoCo v2/BYOL): probability and sigma range.
    #[serde(default)]
    pub blur_p: f64,
    #[serde(default = "default_sigma")]
    pub blur_sigma: [f64; 2],
    /// Solarization probability (BYOL: 0 for view 1, 0.2 for view 2).
    #[serde(default)]
    pub solarize_p: f64,
}

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct AugmentConfig {
    /// A paper's view recipes as the starting point: "moco-v1", "moco-v2", "simclr", "byol",
    /// "swav" or "unmix-cifar" (the Un-Mix authors' CIFAR MoCo views); keys given under
    /// `[augment.view1]`, `[augment.view2]` and `[augment.small]` override it (see [`PRESETS`]).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub preset: Option<String>,
    /// With a preset: the output side of both views' crops (e.g. 32 for CIFAR, 224 for ImageNet).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub crop_size: Option<usize>,
    /// Multi-crop (SwAV): this many small crops per image besides the two views, each drawn with
    /// the `[augment.small]` recipe.
    #[serde(default)]
    pub small_crops: usize,
    pub view1: ViewConfig,
    /// View 2's recipe; the same as view 1 when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub view2: Option<ViewConfig>,
    /// The small crops' recipe (e.g. crop_size 96, crop_scale [0.05, 0.14] at 224 px).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub small: Option<ViewConfig>,
}

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct ModelConfig {
    /// "resnet18", "resnet34", "resnet50" or "resnet18-bottleneck" (SwAV's CIFAR "resnet18").
    pub arch: Arch,
    #[serde(default = "default_widths")]
    pub widths: [i64; 4],
    #[serde(default = "three")]
    pub in_channels: i64,
    /// 3x3 stride-1 stem, no max-pool (CIFAR-sized inputs).
    #[serde(default)]
    pub cifar_stem: bool,
    /// Batch-norm groups (1 = plain batch norm).
    #[serde(default = "one_i64")]
    pub bn_splits: i64,
    /// Convolution weight init: "torchvision" (kaiming normal, fan out, as torchvision's ResNet and
    /// so the authors' code) or "pytorch" (nn.Conv2d's own default, U(+-1/sqrt(fan_in)), as a
    /// ResNet written from plain nn.Conv2d layers gets).
    #[serde(default)]
    pub conv_init: ConvInit,
    /// Memory layout of the network: "auto" (the default: channels-last on the CPU, contiguous on
    /// CUDA), "channels-last" (NHWC, which oneDNN's CPU convolutions use directly) or
    /// "contiguous". Same values up to float rounding (see the ResNet tests).
    #[serde(default)]
    pub memory_format: MemoryFormat,
    /// Zero pixels added around the input before the stem (1: the SwAV authors' CIFAR ResNet,
    /// whose 3x3 stride-1 stem then sees 34 x 34 and its stages 34, 17, 9, 5).
    #[serde(default)]
    pub input_padding: i64,
    /// The stem convolution's init, "torchvision" or "pytorch". Absent: the CIFAR stem keeps
    /// nn.Conv2d's default (the MoCo CIFAR code replaces the stem after torchvision's init), the
    /// ImageNet stem follows `conv_init`. The SwAV CIFAR ResNet initializes its stem as the rest.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stem_init: Option<ConvInit>,
    /// Start a new run's encoders from these weights (`--init-from`): an unmix checkpoint or
    /// export, or a torchvision-named ResNet state dict (.safetensors or .pth). Applied once,
    /// when the run starts; a resume continues from its own checkpoint.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub init_from: Option<String>,
    /// With `init_from`: a file without this method's projection head leaves the head at its
    /// random start instead of being refused.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub init_allow_missing_head: bool,
}

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct TrainConfig {
    pub epochs: usize,
    /// Optimizer steps of the run (0: `epochs` whole epochs). Set, the run stops after this many
    /// steps, inside its last epoch (`epochs` must be the epochs they touch), and the schedule
    /// spans them: how `unmix compare` gives an arm the compute of another.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub steps: usize,
    pub batch_size: usize,
    /// "sgd", "lars", "adam" or "adamw".
    #[serde(default = "default_optimizer")]
    pub optimizer: OptimizerKind,
    pub lr: f64,
    /// LARS trust coefficient.
    #[serde(default = "d0001")]
    pub lars_eta: f64,
    /// LARS with clipping (LARC's clip mode, solo-learn's `clip_lr`): a layer's rate is
    /// min(trust ratio, lr) instead of trust ratio x lr.
    #[serde(default)]
    pub lars_clip: bool,
    /// Which variables LARS adapts: "weights" (biases and norm parameters, the 1-D tensors, get
    /// plain SGD without weight decay, as solo-learn's `exclude_bias_n_norm`) or "all" (LARC over
    /// every parameter with weight decay on all of them, as the SwAV authors' scripts).
    #[serde(default)]
    pub lars_scope: LarsScope,
    #[serde(default = "d09")]
    pub momentum: f64,
    #[serde(default)]
    pub weight_decay: f64,
    /// "cosine-epoch" (lr * 0.5 * (1 + cos(pi e / E)), fixed within epoch e = 0..E-1),
    /// "cosine-epoch-to-zero" (the same for e = 1..E, as the authors' CIFAR loop numbers its
    /// epochs: the last epoch trains at lr 0) or "cosine-step" (per step, after `warmup_epochs`
    /// of linear warmup).
    #[serde(default = "default_schedule")]
    pub schedule: ScheduleKind,
    #[serde(default)]
    pub warmup_epochs: f64,
    /// How "cosine-step" warms up: "ramp" (step i of W at lr (i + 1) / W) or "linspace"
    /// (`np.linspace(warmup_start_lr, lr, W)`, the SwAV scripts' form: the first step at
    /// `warmup_start_lr`).
    #[serde(default)]
    pub warmup_shape: WarmupShape,
    /// The first warmup step's lr with `warmup_shape = "linspace"` (SwAV's `start_warmup`); 0 by default.
    #[serde(default)]
    pub warmup_start_lr: f64,
    /// Final learning rate of the cosine (SwAV ends at 0.0006); 0 by default.
    #[serde(default)]
    pub min_lr: f64,
    #[serde(default = "yes")]
    pub drop_last: bool,
    /// Read the loss back (progress, steps.jsonl, NaN check) every N steps.
    #[serde(default = "d10")]
    pub log_every: usize,
    /// Forward-pass precision: "fp32" or "bf16" (autocast: convolutions and matrix products in
    /// bfloat16; weights, optimizer state, batch-norm statistics and losses in fp32).
    #[serde(default)]
    pub precision: Precision,
    /// Parameter groups (`[[train.param_groups]]`), e.g. SimSiam's fixed-lr predictor:
    /// `prefix = "predictor."`, `lr = 0.05` (fixed) or `lr_scale = 0.1`, `weight_decay = 0`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub param_groups: Vec<ParamGroupConfig>,
}

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct ParamGroupConfig {
    /// Variables whose names start with this (e.g. "predictor.", "head.", "backbone.").
    pub prefix: String,
    /// A fixed learning rate that ignores the schedule.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lr: Option<f64>,
    /// Otherwise the scheduled learning rate times this.
    #[serde(default = "one_f")]
    pub lr_scale: f64,
    /// The group's weight decay (train.weight_decay when absent).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub weight_decay: Option<f64>,
}

/// `eval.knn_metric`: the kNN rule.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum KnnMetric {
    /// Cosine similarity on L2-normalized features, votes weighted by exp(sim / t) (Wu et al.;
    /// the authors' MoCo monitor).
    #[default]
    Cosine,
    /// Euclidean distance on raw features, one vote per neighbour (the W-MSE authors' k = 5).
    Euclidean,
}

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct EvalConfig {
    /// Run kNN every N epochs (0 = only after the last epoch).
    #[serde(default = "one")]
    pub knn_every: usize,
    #[serde(default = "d200")]
    pub knn_k: usize,
    #[serde(default = "d01")]
    pub knn_t: f64,
    /// Batch size of feature extraction.
    #[serde(default = "d512")]
    pub batch_size: usize,
    /// kNN features: "head" (projection output, the authors' monitor) or "backbone".
    #[serde(default = "default_features")]
    pub features: Features,
    /// kNN rule: "cosine" (weighted by exp(sim / t)) or "euclidean" (majority vote, e.g. k 5 as
    /// the W-MSE authors).
    #[serde(default)]
    pub knn_metric: KnnMetric,
    /// Train a linear classifier on detached backbone features alongside pretraining and report
    /// its test accuracy every epoch (not for STL-10, whose pretraining set is mostly unlabeled).
    #[serde(default = "yes")]
    pub online_probe: bool,
    /// Its learning rate (SGD, momentum 0.9), following the main schedule's shape.
    #[serde(default = "d01")]
    pub online_probe_lr: f64,
}

impl Default for EvalConfig {
    fn default() -> Self {
        EvalConfig {
            knn_every: 1,
            knn_k: 200,
            knn_t: 0.1,
            batch_size: 512,
            features: default_features(),
            knn_metric: KnnMetric::Cosine,
            online_probe: true,
            online_probe_lr: 0.1,
        }
    }
}

fn default_scale() -> [f64; 2] {
    [0.08, 1.0]
}
fn default_ratio() -> [f64; 2] {
    [3.0 / 4.0, 4.0 / 3.0]
}
fn default_widths() -> [i64; 4] {
    [64, 128, 256, 512]
}
fn default_schedule() -> ScheduleKind {
    ScheduleKind::CosineEpoch
}
fn default_sigma() -> [f64; 2] {
    [0.1, 2.0]
}
fn default_optimizer() -> OptimizerKind {
    OptimizerKind::Sgd
}
fn default_features() -> Features {
    Features::Head
}
fn d0001() -> f64 {
    0.001
}
fn one() -> usize {
    1
}
fn two() -> usize {
    2
}
fn three() -> i64 {
    3
}
fn one_i64() -> i64 {
    1
}
fn one_f() -> f64 {
    1.0
}
fn half() -> f64 {
    0.5
}
fn is_zero(v: &usize) -> bool {
    *v == 0
}

fn yes() -> bool {
    true
}
fn d09() -> f64 {
    0.9
}
fn d01() -> f64 {
    0.1
}
fn d10() -> usize {
    10
}
fn d200() -> usize {
    200
}
fn d512() -> usize {
    512
}

/// The view recipes of the papers, by preset name: (view 1, view 2 if different, small crops for
/// multi-crop), as TOML tables of [`ViewConfig`] keys without `crop_size`.
/// - moco-v1 (He et al. 2020): crop 0.2-1, grayscale 0.2 then jitter 0.4 (all four) always, flip
///   (the order of MoCo v1's ImageNet code: RandomGrayscale before ColorJitter).
/// - moco-v2 (Chen et al. 2020): crop 0.2-1, jitter (0.4, 0.4, 0.4, 0.1) p 0.8, grayscale 0.2,
///   blur sigma 0.1-2 p 0.5, flip.
/// - simclr (Chen et al. 2020): crop 0.08-1, flip, jitter (0.8, 0.8, 0.8, 0.2) p 0.8, grayscale
///   0.2, blur p 0.5.
/// - byol (Grill et al. 2020): crop 0.08-1, flip, jitter (0.4, 0.4, 0.2, 0.1) p 0.8, grayscale
///   0.2; blur p 1.0 / 0.1 and solarize p 0 / 0.2 for views 1 / 2.
/// - swav (Caron et al. 2020): large crops 0.14-1, small crops 0.05-0.14, both with SimCLR's
///   jitter, grayscale and blur.
/// - unmix-cifar (the Un-Mix authors' CIFAR MoCo): crop 0.08-1, flip, jitter (0.4, 0.4, 0.4, 0.1)
///   p 0.8, grayscale 0.2, no blur.
pub const PRESETS: &[(&str, &str, Option<&str>, Option<&str>)] = &[
    ("moco-v1", "crop_scale = [0.2, 1.0]\njitter = [0.4, 0.4, 0.4, 0.4]\njitter_p = 1.0\ngrayscale_p = 0.2\ngrayscale_before_jitter = true", None, None),
    (
        "moco-v2",
        "crop_scale = [0.2, 1.0]\njitter = [0.4, 0.4, 0.4, 0.1]\njitter_p = 0.8\ngrayscale_p = 0.2\nblur_p = 0.5\nblur_sigma = [0.1, 2.0]",
        None,
        None,
    ),
    (
        "simclr",
        "crop_scale = [0.08, 1.0]\njitter = [0.8, 0.8, 0.8, 0.2]\njitter_p = 0.8\ngrayscale_p = 0.2\nblur_p = 0.5\nblur_sigma = [0.1, 2.0]",
        None,
        None,
    ),
    (
        "byol",
        "crop_scale = [0.08, 1.0]\njitter = [0.4, 0.4, 0.2, 0.1]\njitter_p = 0.8\ngrayscale_p = 0.2\nblur_p = 1.0\nblur_sigma = [0.1, 2.0]\nsolarize_p = 0.0",
        Some("crop_scale = [0.08, 1.0]\njitter = [0.4, 0.4, 0.2, 0.1]\njitter_p = 0.8\ngrayscale_p = 0.2\nblur_p = 0.1\nblur_sigma = [0.1, 2.0]\nsolarize_p = 0.2"),
        None,
    ),
    (
        "swav",
        "crop_scale = [0.14, 1.0]\njitter = [0.8, 0.8, 0.8, 0.2]\njitter_p = 0.8\ngrayscale_p = 0.2\nblur_p = 0.5\nblur_sigma = [0.1, 2.0]",
        None,
        Some("crop_scale = [0.05, 0.14]\njitter = [0.8, 0.8, 0.8, 0.2]\njitter_p = 0.8\ngrayscale_p = 0.2\nblur_p = 0.5\nblur_sigma = [0.1, 2.0]"),
    ),
    ("unmix-cifar", "crop_scale = [0.08, 1.0]\njitter = [0.4, 0.4, 0.4, 0.1]\njitter_p = 0.8\ngrayscale_p = 0.2", None, None),
];

/// Expands `augment.preset` in a parsed document: each view table becomes the preset's table with
/// `augment.crop_size` and then the user's own keys on top. Symmetric presets leave view 2 to
/// follow view 1 (unless the user writes `[augment.view2]`); BYOL's asymmetric views are both set.
fn expand_preset(doc: &mut toml::Table) -> Result<()> {
    let Some(aug) = doc.get_mut("augment").and_then(|a| a.as_table_mut()) else { return Ok(()) };
    let Some(name) = aug.get("preset").map(|p| p.as_str().map(str::to_string)) else { return Ok(()) };
    let name = name.ok_or_else(|| anyhow!("augment.preset must be a string, e.g. \"moco-v2\""))?;
    let Some((_, v1, v2, small)) = PRESETS.iter().find(|p| p.0 == name) else {
        let names: Vec<&str> = PRESETS.iter().map(|p| p.0).collect();
        bail!("augment.preset = \"{name}\" is not a preset; use one of {}", names.join(", "));
    };
    let crop = aug.get("crop_size").cloned();
    let merged = |base: &str, user: Option<&toml::Value>| -> Result<toml::Value> {
        let mut t: toml::Table = toml::from_str(base).expect("preset tables are valid TOML");
        if let Some(c) = &crop {
            t.insert("crop_size".into(), c.clone());
        }
        if let Some(u) = user {
            let u = u.as_table().ok_or_else(|| anyhow!("augment views must be tables"))?;
            for (k, v) in u {
                t.insert(k.clone(), v.clone());
            }
        }
        Ok(toml::Value::Table(t))
    };
    let view1 = merged(v1, aug.get("view1"))?;
    aug.insert("view1".into(), view1);
    if v2.is_some() || aug.contains_key("view2") {
        let view2 = merged(v2.unwrap_or(v1), aug.get("view2"))?;
        aug.insert("view2".into(), view2);
    }
    let wants_small =
        aug.contains_key("small") || aug.get("small_crops").and_then(|n| n.as_integer()).is_some_and(|n| n > 0);
    if let (Some(small), true) = (small, wants_small) {
        // The small crops keep their own crop_size (e.g. 96): augment.crop_size is the large one.
        let mut t: toml::Table = toml::from_str(small).expect("preset tables are valid TOML");
        if let Some(u) = aug.get("small").and_then(|u| u.as_table()) {
            for (k, v) in u {
                t.insert(k.clone(), v.clone());
            }
        }
        aug.insert("small".into(), toml::Value::Table(t));
    }
    Ok(())
}

/// The `--set` override that `--data DIR` stands for: `data.root` as a quoted TOML string.
pub fn data_root_override(dir: &Path) -> String {
    format!("data.root={}", toml::Value::String(dir.display().to_string()))
}

/// Parses a `--set` value as a TOML literal (number, bool, array, quoted string), falling back to a
/// bare string, and stores it at the dotted key.
pub fn apply_override(doc: &mut toml::Table, assignment: &str) -> Result<()> {
    let (key, raw) = assignment
        .split_once('=')
        .ok_or_else(|| anyhow!("--set `{assignment}`: expected key=value, e.g. --set train.epochs=2"))?;
    let key = key.trim();
    let raw = raw.trim();
    let value = match toml::from_str::<toml::Table>(&format!("v = {raw}")) {
        Ok(mut t) => t.remove("v").expect("parsed"),
        Err(_) => toml::Value::String(raw.to_string()),
    };
    let parts: Vec<&str> = key.split('.').collect();
    if parts.iter().any(|p| p.is_empty()) {
        bail!("--set `{assignment}`: `{key}` is not a valid key");
    }
    let mut table = doc;
    for p in &parts[..parts.len() - 1] {
        let entry = table.entry(p.to_string()).or_insert_with(|| toml::Value::Table(Default::default()));
        table = entry.as_table_mut().ok_or_else(|| anyhow!("--set `{assignment}`: `{p}` is a value, not a section"))?;
    }
    table.insert(parts[parts.len() - 1].to_string(), value);
    Ok(())
}

impl Config {
    /// Parses TOML text, applies overrides, deserializes and validates.
    pub fn from_toml(text: &str, origin: &str, overrides: &[String]) -> Result<Config> {
        let mut doc: toml::Table = toml::from_str(text).with_context(|| format!("{origin} is not valid TOML"))?;
        for o in overrides {
            apply_override(&mut doc, o)?;
        }
        Self::from_document(doc, origin, overrides)
    }

    /// A parsed (and overridden) document to a validated config. Errors about a key that a
    /// `--set` gave name that `--set`, not the file.
    fn from_document(mut doc: toml::Table, origin: &str, overrides: &[String]) -> Result<Config> {
        let source = |path: &str| -> String {
            let set = overrides.iter().rev().find(|o| {
                let key = o.split_once('=').map_or(o.as_str(), |(k, _)| k).trim();
                path == key || path.starts_with(&format!("{key}.")) || key.starts_with(&format!("{path}."))
            });
            match set {
                Some(o) => format!("--set {o}"),
                None => origin.to_string(),
            }
        };
        expand_preset(&mut doc).with_context(|| format!("{origin}: augment.preset"))?;
        // The method table first, on its own: its errors then name the key inside it.
        match doc.get("method") {
            Some(toml::Value::Table(t)) => {
                if let Err(e) = MethodConfig::from_table(t) {
                    let key = e.to_string().split('`').nth(1).unwrap_or("method").to_string();
                    return Err(e.context(source(&key)));
                }
            }
            Some(_) => bail!("{}: key `method` must be a table ([method] with name = \"moco\", ...)", source("method")),
            None => {}
        }
        let cfg: Config = serde_path_to_error::deserialize(toml::Value::Table(doc)).map_err(|e| {
            let path = e.path().to_string();
            // A missing key is the file's: a --set only adds or replaces keys.
            let missing = e.inner().to_string().starts_with("missing field");
            anyhow!("{}: key `{path}`: {}", if missing { origin.to_string() } else { source(&path) }, e.inner())
        })?;
        cfg.validate().with_context(|| {
            if overrides.is_empty() {
                format!("invalid configuration in {origin}")
            } else {
                format!("invalid configuration in {origin} with --set {}", overrides.join(" --set "))
            }
        })?;
        Ok(cfg)
    }

    /// This config with a relative `data.root` made absolute (against the current folder), as
    /// a run records it: evaluation from another folder then still finds the data.
    pub fn with_absolute_root(&self) -> Config {
        let mut c = self.clone();
        if let Ok(abs) = std::path::absolute(Path::new(&c.data.root)) {
            c.data.root = abs.display().to_string();
        }
        if let Some(Ok(abs)) = c.model.init_from.as_ref().map(|r| std::path::absolute(Path::new(r))) {
            c.model.init_from = Some(abs.display().to_string());
        }
        if let Some(Ok(abs)) = c.data.eval_root.as_ref().map(|r| std::path::absolute(Path::new(r))) {
            c.data.eval_root = Some(abs.display().to_string());
        }
        c
    }

    /// A configuration unmix wrote itself (a run folder's config.toml, a checkpoint's): as
    /// [`Config::from_toml`], but files written before the method settings were typed (they list
    /// every method's keys under `[method]`) drop the keys their method does not have.
    pub fn from_saved_toml(text: &str, origin: &str, overrides: &[String]) -> Result<Config> {
        let mut doc: toml::Table = toml::from_str(text).with_context(|| format!("{origin} is not valid TOML"))?;
        for o in overrides {
            apply_override(&mut doc, o)?;
        }
        if let Some(toml::Value::Table(m)) = doc.get_mut("method") {
            drop_legacy_method_keys(m);
        }
        Self::from_document(doc, origin, overrides)
    }

    pub fn load(path: &Path, overrides: &[String]) -> Result<Config> {
        let text = std::fs::read_to_string(path).with_context(|| {
            format!(
                "cannot read config file {} (give an existing TOML file, e.g. configs/fmnist-moco-unmix.toml)",
                path.display()
            )
        })?;
        Config::from_toml(&text, &path.display().to_string(), overrides)
    }

    pub fn to_toml(&self) -> String {
        toml::to_string_pretty(self).expect("a config always serializes to TOML")
    }

    /// The mixture this run trains with.
    pub fn mixture_kind(&self) -> MixtureKind {
        match (self.unmix.enabled, self.imix.enabled, self.mixco.enabled) {
            (true, _, _) => MixtureKind::UnMix,
            (_, true, _) => MixtureKind::IMix,
            (_, _, true) => MixtureKind::MixCo,
            _ => MixtureKind::None,
        }
    }

    /// The settings of the mixture this run trains with (None: the base method alone).
    pub fn mixture(&self) -> Option<MixtureSettings> {
        match self.mixture_kind() {
            MixtureKind::None => None,
            MixtureKind::UnMix => Some(MixtureSettings::UnMix(self.unmix.clone())),
            MixtureKind::IMix => Some(MixtureSettings::IMix(self.imix.clone())),
            MixtureKind::MixCo => Some(MixtureSettings::MixCo(self.mixco.clone())),
        }
    }

    /// Optimizer steps of the whole run at `per_epoch` steps per epoch: `train.steps`, or the
    /// epochs' steps.
    pub fn total_steps(&self, per_epoch: usize) -> usize {
        if self.train.steps > 0 {
            self.train.steps
        } else {
            self.train.epochs * per_epoch
        }
    }

    /// `train.steps` against the epochs it needs at `per_epoch` steps per epoch.
    pub fn check_steps(&self, per_epoch: usize) -> Result<()> {
        let s = self.train.steps;
        if s > 0 && s.div_ceil(per_epoch) != self.train.epochs {
            bail!(
                "train.steps = {s} at {per_epoch} steps per epoch touches {} epoch(s): set train.epochs = {} (or train.steps = 0 for whole epochs)",
                s.div_ceil(per_epoch),
                s.div_ceil(per_epoch)
            );
        }
        Ok(())
    }

    /// One mixture per run, and the rivals only where they are defined.
    fn validate_mixture(&self) -> Result<()> {
        self.imix.validate()?;
        self.mixco.validate()?;
        let on: Vec<&str> = [("unmix", self.unmix.enabled), ("imix", self.imix.enabled), ("mixco", self.mixco.enabled)]
            .into_iter()
            .filter_map(|(n, e)| e.then_some(n))
            .collect();
        if on.len() > 1 {
            bail!(
                "{} are all enabled: a run trains with one mixture; keep one (e.g. --set unmix.enabled=false with --set {}.enabled=true)",
                on.iter().map(|n| format!("{n}.enabled")).collect::<Vec<_>>().join(" and "),
                on[1]
            );
        }
        let kind = self.mixture_kind();
        let name = kind.name();
        let supported = match (kind, &self.method) {
            (MixtureKind::IMix, MethodConfig::Moco(m)) | (MixtureKind::MixCo, MethodConfig::Moco(m)) => {
                if m.symmetric {
                    bail!("{name}.enabled with method.symmetric = true: {name} is defined for the asymmetric MoCo loss (as its authors' code); set method.symmetric = false");
                }
                true
            }
            (MixtureKind::IMix, MethodConfig::Simclr(_)) => true,
            (MixtureKind::IMix | MixtureKind::MixCo, _) => false,
            _ => true,
        };
        if !supported {
            bail!(
                "{name}.enabled: {name} is implemented for method {} only, not {}",
                if kind == MixtureKind::IMix { "moco and simclr" } else { "moco" },
                self.method.name()
            );
        }
        Ok(())
    }

    pub fn view2(&self) -> &ViewConfig {
        self.augment.view2.as_ref().unwrap_or(&self.augment.view1)
    }

    /// What the method's settings are checked against, for `processes` data-parallel processes.
    pub fn run_context(&self, processes: usize) -> RunContext<'_> {
        RunContext { batch_size: self.train.batch_size, processes, unmix: &self.unmix }
    }

    /// This config with what it leaves to the data decided for `images` training images and
    /// `processes` processes (MoCo's `queue = "auto"`), and the sentence that says so; None when
    /// it leaves nothing.
    pub fn sized_to(&self, images: usize, processes: usize) -> Option<(Config, String)> {
        let MethodConfig::Moco(m) = &self.method else { return None };
        let (m, said) = m.sized_to(images, &self.run_context(processes))?;
        Some((Config { method: MethodConfig::Moco(m), ..self.clone() }, said))
    }

    /// The keys of this config whose values are far enough outside their usual range to make
    /// the loss or the weights non-finite, as "key = value (usual range)".
    pub fn divergence_suspects(&self) -> Vec<String> {
        // 1e30 rather than thirty zeros.
        let num = |x: f64| if x != 0.0 && !(1e-4..1e6).contains(&x.abs()) { format!("{x:e}") } else { format!("{x}") };
        let mut out = Vec::new();
        let t = &self.train;
        if t.lr > 2.0 {
            out.push(format!("train.lr = {} (usually 0.001-1 for SGD, up to a few for LARS)", num(t.lr)));
        }
        if t.weight_decay > 0.1 {
            out.push(format!("train.weight_decay = {} (usually 0-0.001)", num(t.weight_decay)));
        }
        if let Ok(toml::Value::Table(doc)) = toml::Value::try_from(self) {
            for (section, v) in &doc {
                let Some(temp) = v.get("temperature").and_then(toml::Value::as_float) else { continue };
                if temp < 0.01 {
                    out.push(format!("{section}.temperature = {} (usually 0.05-1)", num(temp)));
                }
            }
        }
        if self.data.mean.iter().any(|m| !(0.0..=1.0).contains(m)) {
            out.push(format!("data.mean = {:?} (per channel, on the 0-1 pixel scale)", self.data.mean));
        }
        if self.data.std.iter().any(|s| !(0.01..=1.0).contains(s)) {
            out.push(format!("data.std = {:?} (per channel, on the 0-1 pixel scale, about 0.2-0.4)", self.data.std));
        }
        out
    }

    /// Checks values that types cannot; each message names the key and what would fix it. The
    /// phases run in this order, so the first mistake in a file is the one reported.
    pub fn validate(&self) -> Result<()> {
        self.validate_data()?;
        self.validate_limits()?;
        self.validate_views()?;
        self.validate_model_and_batch()?;
        self.unmix.validate()?;
        self.validate_mixture()?;
        self.validate_unmix_layout()?;
        self.method.validate(&self.run_context(1))?;
        self.validate_train()?;
        self.validate_eval()
    }

    /// The dataset, its evaluation resize and crop, its channels and normalization.
    fn validate_data(&self) -> Result<()> {
        let c = self;
        let channels = c.data.dataset.channels();
        if c.data.eval_crop > 0 && c.data.eval_resize == 0 {
            bail!(
                "data.eval_crop = {} needs data.eval_resize (the shorter side is resized first, then centre-cropped)",
                c.data.eval_crop
            );
        }
        if c.data.eval_resize > 0 && (c.data.eval_crop == 0 || c.data.eval_crop > c.data.eval_resize) {
            bail!("data.eval_crop = {} must be in 1..=data.eval_resize ({})", c.data.eval_crop, c.data.eval_resize);
        }
        if c.data.dataset.is_folder()
            && (c.data.eval_resize == 0 || c.augment.view1.crop_size == 0 || c.view2().crop_size == 0)
        {
            bail!(
                "{} images vary in size: set augment.view1.crop_size (and view2's) and data.eval_resize / data.eval_crop (e.g. 256 / 224)",
                c.data.dataset
            );
        }
        if c.data.eval_root.is_some() && !c.data.dataset.is_folder() {
            bail!(
                "data.eval_root is for pretraining on a folder (data.dataset = \"image-folder\" or \"unlabeled-folder\"); {} evaluates on its own test split: remove data.eval_root",
                c.data.dataset
            );
        }
        if c.data.eval_root.as_deref() == Some("") {
            bail!("data.eval_root is empty: give a labeled folder (ROOT/CLASS/IMAGE) or remove the key");
        }
        if c.model.in_channels != channels {
            bail!(
                "model.in_channels = {} but {} images have {channels} channel(s)",
                c.model.in_channels,
                c.data.dataset
            );
        }
        if c.data.mean.len() != channels as usize || c.data.std.len() != channels as usize {
            bail!(
                "data.mean and data.std need {channels} value(s) for {}, got {} and {}",
                c.data.dataset,
                c.data.mean.len(),
                c.data.std.len()
            );
        }
        if c.data.mean.iter().any(|m| !m.is_finite()) || c.data.std.iter().any(|s| !(*s > 0.0 && s.is_finite())) {
            bail!("data.mean = {:?} must be finite and data.std = {:?} positive and finite", c.data.mean, c.data.std);
        }
        if c.data.prefetch == 0 {
            bail!("data.prefetch must be at least 1");
        }
        Ok(())
    }

    /// Upper bounds on sizes and counts.
    fn validate_limits(&self) -> Result<()> {
        let c = self;
        // Sizes beyond these are typing mistakes, and would end in an allocation failure (an
        // abort in libtorch) or a million threads instead of a message.
        at_most("data.workers", c.data.workers, 256)?;
        at_most("data.prefetch", c.data.prefetch, 1024)?;
        at_most("threads", c.threads, 4096)?;
        at_most("data.eval_resize", c.data.eval_resize, MAX_SIDE)?;
        at_most("train.batch_size", c.train.batch_size, 1 << 16)?;
        at_most("eval.batch_size", c.eval.batch_size, 1 << 16)?;
        for (i, w) in c.model.widths.iter().enumerate() {
            at_most(&format!("model.widths[{i}]"), *w as usize, 16384)?;
        }
        at_most("model.bn_splits", c.model.bn_splits.max(0) as usize, 1 << 16)?;
        Ok(())
    }

    /// The augmentation recipes, multi-crop's small crops included.
    fn validate_views(&self) -> Result<()> {
        let c = self;
        let mut views = vec![("augment.view1", &c.augment.view1), ("augment.view2", c.view2())];
        match (&c.augment.small, c.augment.small_crops) {
            (Some(small), n) if n > 0 => {
                if small.crop_size == 0 {
                    bail!("augment.small.crop_size must be set (e.g. 96 at 224 px, 16 at 32 px)");
                }
                if !c.method.takes_small_crops() {
                    bail!(
                        "augment.small_crops = {n}: multi-crop is implemented for method swav only; set it to 0 for {}",
                        c.method.name()
                    );
                }
                views.push(("augment.small", small));
            }
            (None, n) if n > 0 => {
                bail!("augment.small_crops = {n} needs an [augment.small] recipe (crop_size, crop_scale, ...)")
            }
            _ => {}
        }
        for (name, v) in views {
            validate_view(name, v)?;
        }
        Ok(())
    }

    /// The network's widths, batch-norm groups and padding, and the batch they split.
    fn validate_model_and_batch(&self) -> Result<()> {
        let c = self;
        if c.model.widths.iter().any(|w| *w <= 0) || c.model.bn_splits < 1 {
            bail!("model.widths must be positive and model.bn_splits >= 1");
        }
        if !(0..=8).contains(&c.model.input_padding) {
            bail!(
                "model.input_padding = {}: use 0 (none) to 8 pixels (1: the SwAV CIFAR ResNet)",
                c.model.input_padding
            );
        }
        let b = c.train.batch_size;
        if b < 2 {
            bail!("train.batch_size = {b}: contrastive methods need at least 2 images per batch");
        }
        if c.model.bn_splits > 1 && b as i64 % c.model.bn_splits != 0 {
            bail!("train.batch_size = {b} is not divisible by model.bn_splits = {}", c.model.bn_splits);
        }
        Ok(())
    }

    /// How the mixture's pass is laid out: one pass with the clean batch, or mixing groups.
    fn validate_unmix_layout(&self) -> Result<()> {
        let c = self;
        let b = c.train.batch_size;
        if c.unmix.enabled && c.unmix.one_pass && !matches!(c.method, MethodConfig::Moco(_)) {
            bail!(
                "unmix.one_pass = true is implemented for method moco only, not {}; remove the key (the mixture then gets a pass of its own)",
                c.method.name()
            );
        }
        let g = c.unmix.groups;
        if c.unmix.enabled && g > 1 {
            if !b.is_multiple_of(g) || b / g < 2 {
                bail!("train.batch_size = {b} must split into unmix.groups = {g} equal groups of at least 2 images");
            }
            if !c.train.drop_last {
                bail!("unmix.groups = {g} needs train.drop_last = true (a partial last batch would not split into equal groups)");
            }
        }
        Ok(())
    }

    /// The kNN and online-probe settings.
    fn validate_eval(&self) -> Result<()> {
        let c = self;
        if c.eval.knn_k == 0 || !(c.eval.knn_t > 0.0 && c.eval.knn_t.is_finite()) || c.eval.batch_size == 0 {
            bail!("eval.knn_k, eval.knn_t and eval.batch_size must be positive (and eval.knn_t finite)");
        }
        if !(c.eval.online_probe_lr > 0.0 && c.eval.online_probe_lr.is_finite()) {
            bail!("eval.online_probe_lr = {} must be positive and finite", c.eval.online_probe_lr);
        }
        Ok(())
    }

    fn validate_train(&self) -> Result<()> {
        let t = &self.train;
        if t.epochs == 0 {
            bail!("train.epochs must be at least 1");
        }
        if !(t.lr > 0.0 && t.lr.is_finite()) {
            bail!("train.lr = {} must be positive and finite", t.lr);
        }
        if !(t.weight_decay >= 0.0 && t.weight_decay.is_finite()) {
            bail!("train.weight_decay = {} must be >= 0 and finite", t.weight_decay);
        }
        if !(0.0..1.0).contains(&t.momentum) {
            bail!("train.momentum = {} must be in [0, 1)", t.momentum);
        }
        if !(t.lars_eta > 0.0 && t.lars_eta.is_finite()) {
            bail!("train.lars_eta = {} must be positive and finite", t.lars_eta);
        }
        if !(t.warmup_epochs >= 0.0 && t.warmup_epochs < t.epochs as f64) {
            bail!("train.warmup_epochs = {} must be in [0, train.epochs)", t.warmup_epochs);
        }
        if t.schedule != ScheduleKind::CosineStep && (t.warmup_epochs > 0.0 || t.min_lr > 0.0) {
            bail!("train.warmup_epochs and train.min_lr need train.schedule = \"cosine-step\"");
        }
        if t.schedule != ScheduleKind::CosineStep && (t.warmup_shape != WarmupShape::Ramp || t.warmup_start_lr > 0.0) {
            bail!("train.warmup_shape and train.warmup_start_lr need train.schedule = \"cosine-step\"");
        }
        if !(t.warmup_start_lr >= 0.0 && t.warmup_start_lr <= t.lr) {
            bail!("train.warmup_start_lr = {} must be in [0, train.lr]", t.warmup_start_lr);
        }
        if t.warmup_start_lr > 0.0 && t.warmup_shape != WarmupShape::Linspace {
            bail!(
                "train.warmup_start_lr = {} needs train.warmup_shape = \"linspace\" (the ramp starts at lr / W)",
                t.warmup_start_lr
            );
        }
        if !(t.min_lr >= 0.0 && t.min_lr <= t.lr) {
            bail!("train.min_lr = {} must be in [0, train.lr]", t.min_lr);
        }
        for (i, g) in t.param_groups.iter().enumerate() {
            if g.prefix.is_empty() {
                bail!("train.param_groups[{i}].prefix is empty; name the variables, e.g. \"predictor.\"");
            }
            let finite_positive = |v: f64| v > 0.0 && v.is_finite();
            if g.lr.is_some_and(|l| !finite_positive(l))
                || !finite_positive(g.lr_scale)
                || g.weight_decay.is_some_and(|w| !(w >= 0.0 && w.is_finite()))
            {
                bail!("train.param_groups[{i}] (prefix \"{}\"): lr and lr_scale must be positive, weight_decay >= 0, all finite", g.prefix);
            }
        }
        if t.log_every == 0 {
            bail!("train.log_every must be at least 1");
        }
        Ok(())
    }
}

/// The checks of one view's recipe (`name` is its section, e.g. "augment.view1").
/// The largest image side a crop or resize may produce.
const MAX_SIDE: usize = 8192;

/// `value` must not exceed `max`: an error naming the key otherwise.
fn at_most(key: &str, value: usize, max: usize) -> Result<()> {
    if value > max {
        bail!("{key} = {value} is beyond what unmix runs (at most {max}); a typing mistake?");
    }
    Ok(())
}

fn validate_view(name: &str, v: &ViewConfig) -> Result<()> {
    at_most(&format!("{name}.crop_size"), v.crop_size, MAX_SIDE)?;
    let [s0, s1] = v.crop_scale;
    if !(0.0 < s0 && s0 <= s1 && s1 <= 1.0) {
        bail!("{name}.crop_scale = [{s0}, {s1}] must satisfy 0 < min <= max <= 1");
    }
    let [r0, r1] = v.crop_ratio;
    if !(0.0 < r0 && r0 <= r1 && r1.is_finite()) {
        bail!("{name}.crop_ratio = [{r0}, {r1}] must satisfy 0 < min <= max (finite)");
    }
    if !(0.0 < v.blur_sigma[0] && v.blur_sigma[0] <= v.blur_sigma[1] && v.blur_sigma[1] <= 1000.0) {
        bail!("{name}.blur_sigma = {:?} must satisfy 0 < min <= max <= 1000", v.blur_sigma);
    }
    for (k, p) in [
        ("hflip_p", v.hflip_p),
        ("jitter_p", v.jitter_p),
        ("grayscale_p", v.grayscale_p),
        ("blur_p", v.blur_p),
        ("solarize_p", v.solarize_p),
    ] {
        if !(0.0..=1.0).contains(&p) {
            bail!("{name}.{k} = {p} is a probability: use a value in [0, 1]");
        }
    }
    if v.jitter[..3].iter().any(|x| !(*x >= 0.0 && x.is_finite())) || !(0.0..=0.5).contains(&v.jitter[3]) {
        bail!("{name}.jitter = {:?}: brightness, contrast, saturation >= 0 (finite) and hue in [0, 0.5]", v.jitter);
    }
    Ok(())
}

/// The `[method]` keys of configs written before the method settings were typed: one flat table
/// with every method's keys. Those the chosen method does not have are dropped when such a file
/// is read back ([`Config::from_saved_toml`]).
const LEGACY_METHOD_KEYS: &[&str] = &[
    "dim",
    "mlp_hidden",
    "mlp_bn",
    "mlp_layers",
    "queue",
    "momentum",
    "temperature",
    "symmetric",
    "predictor_hidden",
    "tau_base",
    "prototypes",
    "sinkhorn_epsilon",
    "sinkhorn_iters",
    "freeze_prototypes_steps",
    "swav_queue",
    "swav_queue_start_epoch",
    "barlow_lambda",
    "barlow_scale",
    "w_size",
    "w_iter",
    "w_eps",
    "vicreg_weights",
];

fn drop_legacy_method_keys(method: &mut toml::Table) {
    // The method's own keys are the ones its settings serialize (all of them: none is skipped).
    let Ok(parsed) = MethodConfig::from_table(&{
        let mut t = method.clone();
        t.retain(|k, _| k == "name" || !LEGACY_METHOD_KEYS.contains(&k));
        t
    }) else {
        return;
    };
    let Ok(toml::Value::Table(own)) = toml::Value::try_from(&parsed) else { return };
    method.retain(|k, _| own.contains_key(k) || !LEGACY_METHOD_KEYS.contains(&k));
}

#[cfg(test)]
mod tests {
    use super::*;

    const MIN: &str = r#"
[data]
dataset = "fashion-mnist"
root = "/tmp/x"
mean = [0.286]
std = [0.353]
[augment.view1]
crop_size = 28
[model]
arch = "resnet18"
in_channels = 1
[method]
name = "moco"
[train]
epochs = 2
batch_size = 256
lr = 0.03
"#;

    #[test]
    fn defaults_fill_missing_keys() {
        let c = Config::from_toml(MIN, "t", &[]).unwrap();
        let MethodConfig::Moco(m) = &c.method else { panic!("moco") };
        assert_eq!(m.queue, 4096);
        assert!(c.unmix.enabled);
        assert_eq!(c.unmix.prob, 0.5);
        assert_eq!(c.view2(), &c.augment.view1);
    }

    #[test]
    fn overrides_are_typed_and_applied() {
        let c = Config::from_toml(
            MIN,
            "t",
            &["train.epochs=3".into(), "unmix.enabled=false".into(), "data.root=/data/fm".into(), "seed=9".into()],
        )
        .unwrap();
        assert_eq!(c.train.epochs, 3);
        assert!(!c.unmix.enabled);
        assert_eq!(c.data.root, "/data/fm");
        assert_eq!(c.seed, 9);
    }

    #[test]
    fn unknown_key_is_named() {
        let e = Config::from_toml(MIN, "t", &["train.epoch=3".into()]).unwrap_err().to_string();
        assert!(e.contains("train") && e.contains("epoch"), "{e}");
        let e = Config::from_toml(&MIN.replace("lr = 0.03", "lr = 0.03\nlrr = 1"), "cfg.toml", &[])
            .unwrap_err()
            .to_string();
        assert!(e.contains("cfg.toml") && e.contains("lrr"), "{e}");
    }

    #[test]
    fn bad_values_are_named() {
        let e = format!("{:#}", Config::from_toml(MIN, "t", &["method.queue=1000".into()]).unwrap_err());
        assert!(e.contains("method.queue"), "{e}");
        let e = format!("{:#}", Config::from_toml(MIN, "t", &["unmix.prob=1.5".into()]).unwrap_err());
        assert!(e.contains("unmix.prob"), "{e}");
        let e = format!("{:#}", Config::from_toml(MIN, "t", &["train.epochs=\"ten\"".into()]).unwrap_err());
        assert!(e.contains("train.epochs"), "{e}");
        let e = format!("{:#}", Config::from_toml(MIN, "t", &["data.dataset=imagenet".into()]).unwrap_err());
        assert!(e.contains("data.dataset"), "{e}");
        // W-MSE whitening the whole mixed batch: singular at lambda 0.5 unless rows > 2 dim.
        let wmse = |sets: &[&str]| {
            let mut all: Vec<String> =
                ["method.name=\"wmse\"", "method.dim=64", "train.batch_size=128", "method.w_size=128"]
                    .iter()
                    .map(|s| s.to_string())
                    .collect();
            all.extend(sets.iter().map(|s| s.to_string()));
            Config::from_toml(MIN, "t", &all).map_err(|e| format!("{e:#}"))
        };
        let e = wmse(&[]).unwrap_err();
        assert!(e.contains("method.w_size") && e.contains("64 distinct rows"), "{e}");
        assert!(wmse(&["unmix.enabled=false"]).is_ok());
        assert!(wmse(&["train.batch_size=256"]).is_ok());
        assert!(wmse(&["method.w_eps=0.01"]).is_ok());
        assert!(wmse(&["method.dim=63"]).is_ok());
    }

    #[test]
    fn mixing_groups_are_checked_against_the_batch_and_the_method() {
        let with = |sets: &[&str]| {
            let all: Vec<String> = sets.iter().map(|s| s.to_string()).collect();
            Config::from_toml(MIN, "t", &all).map_err(|e| format!("{e:#}"))
        };
        let batch = with(&["train.batch_size=64", "unmix.groups=8"]).unwrap().train.batch_size;
        assert_eq!(batch, 64);
        let e = with(&["train.batch_size=64", "unmix.groups=5"]).unwrap_err();
        assert!(e.contains("unmix.groups = 5") && e.contains("train.batch_size = 64"), "{e}");
        let e = with(&["train.batch_size=64", "unmix.groups=64"]).unwrap_err();
        assert!(e.contains("at least 2 images"), "{e}");
        let e = with(&["train.batch_size=64", "unmix.groups=0"]).unwrap_err();
        assert!(e.contains("unmix.groups = 0"), "{e}");
        let e = with(&["train.batch_size=64", "unmix.groups=2", "train.drop_last=false"]).unwrap_err();
        assert!(e.contains("train.drop_last"), "{e}");
        let e = with(&["train.batch_size=64", "unmix.groups=2", "method={name = \"simclr\"}"]).unwrap_err();
        assert!(e.contains("unmix.groups = 2") && e.contains("simclr"), "{e}");
        // Un-Mix off: the groups do not matter.
        assert!(with(&["unmix.groups=5", "unmix.enabled=false"]).is_ok());
    }

    #[test]
    fn one_pass_is_moco_only() {
        let with = |s: &[&str]| {
            Config::load(
                Path::new("configs/fmnist-moco-unmix.toml"),
                &s.iter().map(|x| x.to_string()).collect::<Vec<_>>(),
            )
            .map_err(|e| format!("{e:#}"))
        };
        assert!(with(&["unmix.one_pass=true"]).unwrap().unmix.one_pass);
        let e = with(&["unmix.one_pass=true", "method={name = \"simclr\"}"]).unwrap_err();
        assert!(e.contains("unmix.one_pass") && e.contains("simclr"), "{e}");
    }

    #[test]
    fn shipped_configs_follow_the_authors_recipes() {
        let load = |f: &str| Config::load(Path::new(f), &[]).unwrap();
        // SwAV, CIFAR: LARC over every parameter, the input padded by one pixel, a kaiming stem,
        // and no queue (the script's 120 rounds down to 0 at batch 128, as the config says).
        for f in ["configs/cifar10-swav-unmix.toml", "configs/cifar100-swav-unmix.toml"] {
            let c = load(f);
            assert_eq!(
                (c.train.optimizer, c.train.lars_scope, c.train.lars_eta, c.train.lars_clip),
                (OptimizerKind::Lars, LarsScope::All, 0.001, false),
                "{f}"
            );
            assert_eq!(
                (c.model.input_padding, c.model.stem_init, c.model.conv_init),
                (1, Some(ConvInit::Torchvision), ConvInit::Torchvision),
                "{f}"
            );
            let MethodConfig::Swav(m) = &c.method else { panic!("{f}: swav") };
            assert_eq!((m.swav_queue, c.train.batch_size, c.train.weight_decay), (0, 128, 1e-6), "{f}");
            let text = std::fs::read_to_string(f).unwrap();
            assert!(
                text.contains("rounds the length down to a multiple of the batch") && !text.contains("Not yet here"),
                "{f}"
            );
        }
        assert_eq!(load("configs/fmnist-swav-unmix.toml").train.lars_scope, LarsScope::All);
        // MoCo, CIFAR: the authors' loop numbers epochs 1..E (lr_e = lr * 0.5 * (1 + cos(pi e / E))),
        // so the last epoch trains at lr 0; ImageNet's main_moco.py numbers them 0..E-1.
        for f in ["configs/cifar10-moco-unmix.toml", "configs/cifar100-moco-unmix.toml"] {
            let c = load(f);
            assert_eq!(c.train.schedule, ScheduleKind::CosineEpochToZero, "{f}");
            // ... and its symmetric loss forwards the mixture once per direction.
            let MethodConfig::Moco(m) = &c.method else { panic!("{f}: moco") };
            assert!(m.symmetric && m.unmix_pass_per_direction, "{f}");
        }
        assert_eq!(load("configs/imagenet-mocov2-unmix.toml").train.schedule, ScheduleKind::CosineEpoch);
        // SwAV's queue, when switched on, starts where the script's does: its 0-based epoch 15.
        for f in ["configs/cifar10-swav-unmix.toml", "configs/fmnist-swav-unmix.toml"] {
            let MethodConfig::Swav(m) = &load(f).method else { panic!("{f}: swav") };
            assert_eq!(m.swav_queue_start_epoch, 16, "{f}");
        }
        // SwAV's warmup: np.linspace(start_warmup = 0, base_lr, W) in every SwAV config; the
        // other recipes keep the step-fraction ramp.
        for e in std::fs::read_dir("configs").unwrap() {
            let path = e.unwrap().path();
            let c = Config::load(&path, &[]).unwrap();
            let want =
                if matches!(c.method, MethodConfig::Swav(_)) { WarmupShape::Linspace } else { WarmupShape::Ramp };
            assert_eq!((c.train.warmup_shape, c.train.warmup_start_lr), (want, 0.0), "{}", path.display());
        }
        // ImageNet MoCo v2: batch norm over 8 groups of 32 (the authors' 8 GPUs x 32), the run
        // script's mixing probability 0.5, the code default 0.0 named as the override.
        let c = load("configs/imagenet-mocov2-unmix.toml");
        assert_eq!((c.train.batch_size, c.model.bn_splits, c.unmix.prob), (256, 8, 0.5));
        // ... and Un-Mix mixing each GPU's 32 on its own: 8 mixing groups, the BN groups' sets.
        assert_eq!(c.unmix.groups, 8);
        let eight = Config::load(
            Path::new("configs/imagenet-mocov2-unmix.toml"),
            &["train.batch_size=32".into(), "model.bn_splits=1".into(), "unmix.groups=1".into()],
        );
        assert!(eight.is_ok(), "the 8-process override in the header loads");
        let text = std::fs::read_to_string("configs/imagenet-mocov2-unmix.toml").unwrap();
        assert!(text.contains("--set unmix.prob=0.0") && text.contains("--nproc_per_node=8"));
    }

    #[test]
    fn moco_v1_preset_converts_to_grey_before_the_jitter() {
        let v1 = MIN.replace("[augment.view1]\ncrop_size = 28\n", "[augment]\npreset = \"moco-v1\"\ncrop_size = 28\n");
        let c = Config::from_toml(&v1, "t", &[]).unwrap();
        assert!(c.augment.view1.grayscale_before_jitter);
        // The other presets keep torchvision's RandomApply(ColorJitter) -> RandomGrayscale order.
        let v2 = Config::from_toml(&v1.replace("moco-v1", "moco-v2"), "t", &[]).unwrap();
        assert!(!v2.augment.view1.grayscale_before_jitter);
    }

    #[test]
    fn resolved_config_round_trips() {
        let c = Config::from_toml(MIN, "t", &[]).unwrap();
        let again = Config::from_toml(&c.to_toml(), "resolved", &[]).unwrap();
        assert_eq!(c, again);
    }

    #[test]
    fn presets_expand_under_the_users_keys() {
        let base = MIN.replace(
            "[augment.view1]\ncrop_size = 28\n",
            "[augment]\npreset = \"byol\"\ncrop_size = 28\n[augment.view1]\nhflip_p = 0.0\n",
        );
        let c = Config::from_toml(&base, "t", &[]).unwrap();
        let (v1, v2) = (&c.augment.view1, c.view2());
        assert_eq!((v1.crop_size, v2.crop_size), (28, 28));
        assert_eq!((v1.blur_p, v2.blur_p), (1.0, 0.1));
        assert_eq!((v1.solarize_p, v2.solarize_p), (0.0, 0.2));
        assert_eq!(v1.jitter, [0.4, 0.4, 0.2, 0.1]);
        assert_eq!(v1.crop_scale, [0.08, 1.0]);
        // The user's key wins over the preset, for that view only.
        assert_eq!((v1.hflip_p, v2.hflip_p), (0.0, 0.5));
        // Symmetric presets: view 2 follows view 1; --set works on top; the resolved config
        // round-trips.
        let sym = base.replace("\"byol\"", "\"moco-v2\"");
        let c = Config::from_toml(&sym, "t", &["augment.view1.blur_p=0.3".into()]).unwrap();
        assert_eq!(c.view2(), &c.augment.view1);
        assert_eq!((c.augment.view1.blur_p, c.augment.view1.grayscale_p), (0.3, 0.2));
        assert_eq!(Config::from_toml(&c.to_toml(), "resolved", &[]).unwrap(), c);
        let e = format!("{:#}", Config::from_toml(&base.replace("\"byol\"", "\"byol2\""), "t", &[]).unwrap_err());
        assert!(e.contains("augment.preset") && e.contains("moco-v2"), "{e}");
    }
}
