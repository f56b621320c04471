//! From a configuration to the objects that run it: the runtime (threads, device, seed), the
//! backbone, the method, the optimizer and its schedule, and a network rebuilt from a checkpoint.
//! Training, evaluation, reports and the command line all build through here.

use crate::checkpoint;
use crate::config::{Config, DeviceSpec};
use crate::method::Method;
use crate::model::{named_trainable, ResNetConfig};
use crate::optim::{LarsScope, Optimizer, OptimizerKind, ParamGroup, Rule, Schedule, ScheduleKind};
use anyhow::{bail, Context, Result};
use std::path::Path;
use tch::Device;

/// Sets libtorch's threads and weight-init seed and picks the device: plain "cuda" in a
/// multi-process run is cuda:LOCAL_RANK (each process its own GPU).
pub fn runtime(cfg: &Config) -> Result<Device> {
    let threads =
        if cfg.threads == 0 { std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1) } else { cfg.threads };
    tch::set_num_threads(threads as i32);
    let mut device = cfg.device.device();
    if cfg.device == DeviceSpec::Cuda {
        let local = std::env::var("LOCAL_RANK").ok().and_then(|v| v.parse::<usize>().ok());
        let world = std::env::var("WORLD_SIZE").ok().and_then(|v| v.parse::<usize>().ok()).unwrap_or(1);
        if let (Some(l), true) = (local, world > 1) {
            device = Device::Cuda(l);
        }
    }
    if let Device::Cuda(i) = device {
        if !tch::Cuda::is_available() || i >= tch::Cuda::device_count() as usize {
            bail!("device = \"{}\" but no such CUDA device is available; use device = \"cpu\"", cfg.device);
        }
    }
    tch::manual_seed(cfg.seed as i64);
    Ok(device)
}

/// The configured backbone on `device` (`model.memory_format = "auto"`: channels-last on the CPU).
pub fn backbone(cfg: &Config, device: Device) -> ResNetConfig {
    let m = &cfg.model;
    ResNetConfig {
        arch: m.arch,
        widths: m.widths,
        in_channels: m.in_channels,
        cifar_stem: m.cifar_stem,
        bn_splits: m.bn_splits,
        conv_init: m.conv_init,
        channels_last: m.memory_format.channels_last_on(device),
        input_padding: m.input_padding,
        stem_init: m.stem_init,
    }
}

/// The configured method on `device`, for a run of `processes` processes (in float64 for
/// `train.precision = "fp64"`).
pub fn method(cfg: &Config, device: Device, processes: usize) -> Box<dyn Method> {
    let mut m = cfg.method.build(device, &backbone(cfg, device), &cfg.run_context(processes));
    if cfg.train.precision == crate::precision::Precision::Fp64 {
        m.to_double();
    }
    m
}

/// The configured optimizer over the method's trainable variables, with its parameter groups;
/// a group whose prefix matches no variable is an error that lists the variable prefixes.
pub fn optimizer(cfg: &Config, method: &dyn Method) -> Result<Optimizer> {
    let t = &cfg.train;
    let rule = match t.optimizer {
        OptimizerKind::Sgd => Rule::Sgd,
        OptimizerKind::Lars => {
            Rule::Lars { eta: t.lars_eta, clip: t.lars_clip, exclude_1d: t.lars_scope == LarsScope::Weights }
        }
        OptimizerKind::Adam => Rule::Adam { beta1: 0.9, beta2: 0.999, eps: 1e-8 },
        OptimizerKind::Adamw => Rule::AdamW { beta1: 0.9, beta2: 0.999, eps: 1e-8 },
    };
    let mut opt = Optimizer::with_rule(named_trainable(method.trainable()), rule, t.momentum, t.weight_decay);
    let groups: Vec<ParamGroup> = t
        .param_groups
        .iter()
        .map(|g| ParamGroup { prefix: g.prefix.clone(), lr: g.lr, lr_scale: g.lr_scale, weight_decay: g.weight_decay })
        .collect();
    let counts = opt.set_groups(&groups);
    if let Some(i) = counts.iter().position(|c| *c == 0) {
        let mut tops: Vec<String> = opt.names().map(|n| format!("{}.", n.split('.').next().unwrap_or(n))).collect();
        tops.dedup();
        bail!(
            "train.param_groups[{i}].prefix = \"{}\" matches no trainable variable of method {}; its variables start with {}",
            groups[i].prefix,
            cfg.method.name(),
            tops.join(", ")
        );
    }
    Ok(opt)
}

/// The learning-rate schedule for `steps_per_epoch` optimizer steps per epoch, over the run's
/// steps (`train.steps`, or its epochs).
pub fn schedule(cfg: &Config, steps_per_epoch: usize) -> Schedule {
    let t = &cfg.train;
    match t.schedule {
        ScheduleKind::CosineStep => Schedule::CosineStep {
            lr: t.lr,
            min_lr: t.min_lr,
            warmup: (t.warmup_epochs * steps_per_epoch as f64).round() as usize,
            total: cfg.total_steps(steps_per_epoch),
            shape: t.warmup_shape,
            start_lr: t.warmup_start_lr,
        },
        // Over the run's steps in epochs: E, or a fraction with train.steps (the cosine reaches
        // the end of its curve at the last step).
        kind => Schedule::CosineEpoch {
            lr: t.lr,
            epochs: cfg.total_steps(steps_per_epoch) as f64 / steps_per_epoch as f64,
            to_zero: kind == ScheduleKind::CosineEpochToZero,
        },
    }
}

/// What a checkpoint or an export holds, as string pairs for its safetensors header: the network
/// (arch, widths, input channels, stem, head), the method and Un-Mix settings, the epoch and the
/// whole resolved config, so a file says what it is to any safetensors reader.
pub fn header(cfg: &Config, epoch: usize, content: &str) -> std::collections::BTreeMap<String, String> {
    let m = &cfg.model;
    let p = cfg.method.projector();
    let arch = serde_json::to_value(m.arch).ok().and_then(|v| v.as_str().map(str::to_string)).unwrap_or_default();
    let head = if p.mlp_hidden == 0 {
        format!("linear {}", p.dim)
    } else {
        format!(
            "mlp {} layers, hidden {}{}, out {}",
            p.mlp_layers,
            p.mlp_hidden,
            if p.mlp_bn { " with batch norm" } else { "" },
            p.dim
        )
    };
    let stem = if m.cifar_stem {
        "cifar: 3x3 stride-1 convolution, no max-pool"
    } else {
        "imagenet: 7x7 stride-2 convolution, 3x3 max-pool"
    };
    let u = &cfg.unmix;
    let unmix = if u.enabled {
        format!(
            "on: prob {} (mixup, else CutMix), alpha {}, target {}",
            u.prob,
            u.alpha,
            if u.target == crate::mix::MixTarget::View1 { "view1" } else { "view2" }
        )
    } else {
        "off".into()
    };
    [
        ("format", "pt".to_string()),
        ("producer", format!("unmix {}", env!("CARGO_PKG_VERSION"))),
        ("content", content.to_string()),
        ("arch", arch),
        ("widths", format!("{:?}", m.widths)),
        ("in_channels", m.in_channels.to_string()),
        ("stem", stem.to_string()),
        ("input_padding", m.input_padding.to_string()),
        ("head", head),
        ("method", cfg.method.name().to_string()),
        ("unmix", unmix),
        ("epoch", epoch.to_string()),
        ("dataset", cfg.data.dataset.to_string()),
        ("config", cfg.to_toml()),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v))
    .collect()
}

/// A network rebuilt for evaluation: from a checkpoint, or randomly initialised from a config.
pub struct LoadedRun {
    pub cfg: Config,
    pub device: Device,
    pub method: Box<dyn Method>,
    /// Epochs the checkpoint had finished (0 for a random network).
    pub epoch: usize,
}

impl LoadedRun {
    /// The network of `path` with its saved config, `overrides` applied on top.
    pub fn from_checkpoint(path: &Path, overrides: &[String]) -> Result<LoadedRun> {
        let (tensors, meta) = checkpoint::load(path)?;
        checkpoint::check_finite(&tensors, path)?;
        let cfg = Config::from_saved_toml(&meta.config, &format!("the config saved in {}", path.display()), overrides)?;
        let device = runtime(&cfg)?;
        let mut method = method(&cfg, device, 1);
        method.load_state(&tensors).with_context(|| format!("{}", path.display()))?;
        Ok(LoadedRun { cfg, device, method, epoch: meta.epoch })
    }

    /// A randomly initialised network built from the config file at `config`.
    pub fn random(config: &Path, overrides: &[String]) -> Result<LoadedRun> {
        let cfg = Config::load(config, overrides)?;
        let device = runtime(&cfg)?;
        let method = method(&cfg, device, 1);
        Ok(LoadedRun { cfg, device, method, epoch: 0 })
    }

    /// What a linear evaluation trained on, apart from its own epochs: "the backbone after N
    /// pretraining epochs" or "the untrained backbone (random init)".
    pub fn describe_backbone(&self) -> String {
        match self.epoch {
            0 => "the untrained backbone (random init)".to_string(),
            1 => "the backbone after 1 pretraining epoch".to_string(),
            n => format!("the backbone after {n} pretraining epochs"),
        }
    }

    /// "epoch N" or "random init", for messages (kNN lines: compare reads "(epoch N; " back).
    pub fn describe(&self) -> String {
        if self.epoch == 0 {
            "random init".to_string()
        } else {
            format!("epoch {}", self.epoch)
        }
    }
}
