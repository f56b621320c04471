//! `unmix bench step | loop | knn | peak`: the fmnist protocol's training step alone (fmnist net
//! at batch 256 or ResNet-18 CIFAR at batch 128, fp32 or bf16) with its achieved GFLOP/s, its
//! training loop with data, kNN evaluation over the 60k bank, and the machine's attainable peak
//! (large matrix products and a convolution, through libtorch); `bench/fmnist_pytorch.py` runs the
//! same workloads in PyTorch and `scripts/bench.sh` runs both and prints the ratios.

use crate::build;
use crate::config::Config;
use crate::eval::knn::KnnData;
use crate::precision::Precision;
use crate::train::{self, step::Trainer, Finished, RunOptions};
use anyhow::{bail, Result};
use serde_json::json;
use std::time::Instant;
use tch::{Kind, Tensor};

/// The fmnist protocol's configuration (MoCo + Un-Mix), shipped inside the binary.
pub const FMNIST: &str = include_str!("../../configs/fmnist-moco-unmix.toml");

/// A memory figure of this process from /proc/self/status (`VmHWM`, `VmRSS`, ...), in KiB; NaN
/// where the system has none.
pub fn status_kib(field: &str) -> f64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.strip_prefix(field).is_some_and(|r| r.starts_with(':')))
                .and_then(|l| l.split_whitespace().nth(1)?.parse::<f64>().ok())
        })
        .unwrap_or(f64::NAN)
}

/// Peak resident set of this process (VmHWM), in GiB.
pub fn peak_rss_gib() -> f64 {
    status_kib("VmHWM") / (1024.0 * 1024.0)
}

/// The fmnist protocol's config with overrides, or the ResNet-18 CIFAR variant (3 channels,
/// widths 64-512) of the same method.
pub fn config(model: &str, extra: &[String]) -> Result<Config> {
    let mut set: Vec<String> = match model {
        "fmnist" => vec![],
        "cifar-resnet18" => vec![
            "data.dataset=cifar10".into(),
            "data.mean=[0.4914, 0.4822, 0.4465]".into(),
            "data.std=[0.2023, 0.1994, 0.2010]".into(),
            "model.in_channels=3".into(),
            "model.widths=[64, 128, 256, 512]".into(),
        ],
        other => bail!("--model {other}: use fmnist or cifar-resnet18"),
    };
    set.extend(extra.iter().cloned());
    Config::from_toml(FMNIST, "the fmnist protocol config", &set)
}

/// What `unmix bench step` runs.
pub struct StepArgs<'a> {
    /// "fmnist" or "cifar-resnet18".
    pub model: &'a str,
    pub batch: usize,
    pub precision: Precision,
    /// Timed steps, after `warmup` untimed ones.
    pub steps: usize,
    pub warmup: usize,
    pub threads: usize,
    /// Config overrides.
    pub set: &'a [String],
    /// A Chrome trace of the timed steps from libtorch's profiler.
    pub profile: Option<&'a std::path::Path>,
}

/// Training steps on fixed random batches, the training loop's own step ([`Trainer`]): Un-Mix
/// draw and mixing, the method's loss (under `precision`), backward, optimizer step, target
/// update, at the config's lr. The loss is read once at the end.
pub fn step(a: &StepArgs) -> Result<serde_json::Value> {
    let StepArgs { model, batch, precision, steps, warmup, threads, set: extra, profile } = *a;
    let mut set = vec![
        format!("train.batch_size={batch}"),
        format!("threads={threads}"),
        "method.queue=4096".into(),
        format!("train.precision=\"{}\"", precision.name()),
        format!("train.epochs={}", warmup + steps),
    ];
    set.extend(extra.iter().cloned());
    let cfg = config(model, &set)?;
    let device = build::runtime(&cfg)?;
    // One step per "epoch": the trainer's schedule is not used, every step runs at train.lr.
    let mut trainer = Trainer::new(&cfg, device, None, 1)?;
    let (c, side) = (cfg.model.in_channels, if model == "fmnist" { 28 } else { 32 });
    let x1 = Tensor::randn([batch as i64, c, side, side], (Kind::Float, device));
    let x2 = Tensor::randn([batch as i64, c, side, side], (Kind::Float, device));
    let mut t0 = Instant::now();
    let mut loss = Tensor::zeros([], (Kind::Float, device));
    let mut profiler = None;
    // Seconds in the forward pass with the loss, and in backward with the optimizer's update.
    let (mut forward_secs, mut update_secs) = (0.0, 0.0);
    for s in 0..warmup + steps {
        if s == warmup {
            profiler = profile.map(|_| super::profile::Profiler::start()).transpose()?;
            t0 = Instant::now();
        }
        let views = [x1.shallow_clone(), x2.shallow_clone()];
        let t = Instant::now();
        loss = {
            let _r = profile.map(|_| super::profile::Range::new("forward and loss")).transpose()?;
            trainer.forward(&views, s as u64, 0)?
        };
        let mid = Instant::now();
        {
            let _r = profile.map(|_| super::profile::Range::new("backward and update")).transpose()?;
            trainer.update(&loss, cfg.train.lr, s as u64, 0)?;
        }
        if s >= warmup {
            forward_secs += (mid - t).as_secs_f64();
            update_secs += mid.elapsed().as_secs_f64();
        }
    }
    let l = loss.double_value(&[]);
    let secs = t0.elapsed().as_secs_f64();
    if let (Some(p), Some(path)) = (profiler, profile) {
        p.save(path)?;
    }
    let ips = (steps * batch) as f64 / secs;
    // The step's counted FLOPs per image: its backbone passes (forward 1, backward 2) times one
    // forward pass's convolution FLOPs.
    let flops = crate::cost::passes_per_image(&cfg) * forward_flops(&cfg, c, side);
    Ok(json!({
        "tool": "unmix", "what": "step", "model": model, "batch": batch, "precision": format!("{precision:?}").to_lowercase(),
        "images_per_second": ips, "seconds": secs, "loss": l, "peak_rss_gib": peak_rss_gib(), "threads": threads,
        "memory_format": cfg.model.memory_format, "gflop_per_image": flops / 1e9, "gflops": ips * flops / 1e9,
        "forward_share": forward_secs / (forward_secs + update_secs), "profile": profile.map(|p| p.display().to_string()),
    }))
}

/// The fmnist protocol's training loop, data pipeline included, for `steps` steps of batch 256
/// (no evaluation, no online probe: the PyTorch port has neither).
pub fn training_loop(
    data: Option<&str>,
    steps: usize,
    workers: usize,
    threads: usize,
    precision: Precision,
    extra: &[String],
) -> Result<serde_json::Value> {
    let mut set = vec![
        format!("data.limit={}", steps * 256),
        "train.epochs=1".into(),
        format!("data.workers={workers}"),
        format!("threads={threads}"),
        "eval.online_probe=false".into(),
        format!("train.precision=\"{}\"", precision.name()),
    ];
    if let Some(d) = data {
        set.push(crate::config::data_root_override(std::path::Path::new(d)));
    }
    set.extend(extra.iter().cloned());
    let cfg = config("fmnist", &set)?;
    let dir = tempfile_dir()?;
    let finished = train::pretrain(&cfg, &RunOptions { out: dir.clone(), skip_eval: true, ..Default::default() })?;
    let _ = std::fs::remove_dir_all(&dir);
    let Finished::Main(summary) = finished else { bail!("the loop benchmark runs in one process") };
    Ok(json!({
        "tool": "unmix", "what": "loop", "steps": steps, "images_per_second": summary.images_per_second,
        "seconds": summary.train_seconds, "peak_rss_gib": peak_rss_gib(), "threads": threads, "workers": workers,
    }))
}

/// kNN evaluation of the (randomly initialised) fmnist network: features of the 60k bank and the
/// 10k test images, then the weighted vote.
pub fn knn(data: Option<&str>, workers: usize, threads: usize) -> Result<serde_json::Value> {
    let mut set = vec![format!("data.workers={workers}"), format!("threads={threads}"), "eval.batch_size=1000".into()];
    if let Some(d) = data {
        set.push(crate::config::data_root_override(std::path::Path::new(d)));
    }
    let cfg = config("fmnist", &set)?;
    let device = build::runtime(&cfg)?;
    let method = build::method(&cfg, device, 1);
    let knn_data = KnnData::load(&cfg)?;
    let t0 = Instant::now();
    let r = knn_data.evaluate(&cfg, device, method.as_ref())?;
    let secs = t0.elapsed().as_secs_f64();
    let n = knn_data.bank.len() + knn_data.test.len();
    Ok(json!({
        "tool": "unmix", "what": "knn", "images_per_second": n as f64 / secs, "seconds": secs, "top1": r.top1,
        "peak_rss_gib": peak_rss_gib(), "threads": threads,
    }))
}

fn tempfile_dir() -> Result<std::path::PathBuf> {
    let d = std::env::temp_dir().join(format!("unmix-bench-{}", std::process::id()));
    std::fs::create_dir_all(&d)?;
    Ok(d)
}

/// One image's forward FLOPs through the configured backbone's convolutions at `channels` x
/// `side` x `side`.
fn forward_flops(cfg: &Config, channels: i64, side: i64) -> f64 {
    let vs = tch::nn::VarStore::new(tch::Device::Cpu);
    let net = crate::model::ResNet::new(&vs.root(), &build::backbone(cfg, tch::Device::Cpu));
    net.forward_flops(channels, side, side)
}

/// The machine's attainable throughput through libtorch on `threads` threads, as the anchor of
/// the step's achieved GFLOP/s: a 2048 x 2048 matrix product in fp32 (and in bf16 where the CPU
/// computes it natively), and a 3x3 convolution of ResNet-18 CIFAR's second stage (128 -> 128
/// channels at 16 x 16, batch 128, channels-last fp32), each repeated for about `seconds`.
pub fn peak(threads: usize, seconds: f64) -> Result<serde_json::Value> {
    tch::set_num_threads(threads as i32);
    let timed = |flops: f64, run: &dyn Fn()| {
        run();
        let t0 = Instant::now();
        let mut n = 0u32;
        while n < 3 || t0.elapsed().as_secs_f64() < seconds {
            run();
            n += 1;
        }
        flops * n as f64 / t0.elapsed().as_secs_f64() / 1e9
    };
    let gemm = |kind: Kind| {
        let n = 2048i64;
        let (a, b) = (Tensor::randn([n, n], (kind, tch::Device::Cpu)), Tensor::randn([n, n], (kind, tch::Device::Cpu)));
        timed(2.0 * (n * n * n) as f64, &|| {
            let _ = a.matmul(&b);
        })
    };
    let last = crate::model::layout::channels_last;
    let x = last(&Tensor::randn([128, 128, 16, 16], (Kind::Float, tch::Device::Cpu)));
    let w = last(&Tensor::randn([128, 128, 3, 3], (Kind::Float, tch::Device::Cpu)));
    let conv = timed(2.0 * 128.0 * 128.0 * 9.0 * 128.0 * 256.0, &|| {
        let _ = x.conv2d(&w, None::<Tensor>, [1, 1], [1, 1], [1, 1], 1);
    });
    let bf16 = crate::precision::cpu_has_native_bf16().then(|| gemm(Kind::BFloat16));
    Ok(json!({
        "tool": "unmix", "what": "peak", "threads": threads, "gemm_fp32_gflops": gemm(Kind::Float),
        "gemm_bf16_gflops": bf16, "conv3x3_fp32_gflops": conv,
    }))
}
