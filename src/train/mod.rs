//! The pretraining loop: data -> Un-Mix -> method loss -> SGD, with per-epoch kNN, metrics,
//! atomic checkpoints and exact resume.

pub mod checkpoint;
pub mod optim;

use crate::config::{parse_device, Config};
use crate::data::{bad_image_policy, eval_recipes, load_pretrain, load_split, to_tensor, train_recipes, Split};
use crate::eval::knn::{self, KnnResult};
use crate::eval::online::OnlineProbe;
use crate::method::{
    Byol, ByolConfig, Features, Method, MixTarget, MoCo, MoCoConfig, Redundancy, RedundancyLoss, SimClr, SimClrConfig, SimSiam, SimSiamConfig, StepInfo,
    Swav, SwavConfig, Wmse, WmseConfig,
};
use crate::mix::{Mixed, UnMixSettings};
use crate::model::{head::HeadConfig, named_trainable, Arch, ResNetConfig};
use crate::report;
use anyhow::{bail, Context, Result};
use checkpoint::Meta;
use optim::{Optimizer, ParamGroup, Rule, Schedule};
use serde_json::json;
use std::path::{Path, PathBuf};
use std::time::Instant;
use tch::{Device, Kind, Tensor};
use unmix_data::loader::{num_batches, Loader, LoaderConfig};

pub const CHECKPOINT: &str = "checkpoints/last.safetensors";

#[derive(Clone, Debug, Default)]
pub struct RunOptions {
    /// Run folder.
    pub out: PathBuf,
    /// Continue from `out/checkpoints/last.safetensors`.
    pub resume: bool,
    /// Stop after this many finished epochs (time-boxed jobs); resume later with `--resume`.
    pub until_epoch: Option<usize>,
    /// Show a progress bar (on a terminal).
    pub progress: bool,
    /// Write plots and report.md at the end.
    pub report: bool,
    /// No kNN evaluation (benchmarks of the training loop alone).
    pub skip_eval: bool,
}

/// The configured backbone on `device` (`model.memory_format = "auto"`: channels-last on the CPU).
pub fn backbone_config(cfg: &Config, device: Device) -> ResNetConfig {
    ResNetConfig {
        arch: Arch::parse(&cfg.model.arch).expect("validated"),
        widths: cfg.model.widths,
        in_channels: cfg.model.in_channels,
        cifar_stem: cfg.model.cifar_stem,
        bn_splits: cfg.model.bn_splits,
        conv_init: crate::model::resnet::ConvInit::parse(&cfg.model.conv_init).expect("validated"),
        channels_last: match cfg.model.memory_format.as_str() {
            "channels-last" => true,
            "contiguous" => false,
            _ => device == Device::Cpu,
        },
        input_padding: cfg.model.input_padding,
        stem_init: cfg.model.stem_init.as_deref().map(|s| crate::model::resnet::ConvInit::parse(s).expect("validated")),
    }
}

/// Builds the configured method on `device`.
pub fn build_method(cfg: &Config, device: Device) -> Result<Box<dyn Method>> {
    let backbone = backbone_config(cfg, device);
    let m = &cfg.method;
    let head = HeadConfig { dim: m.dim, hidden: m.mlp_hidden, bn: m.mlp_bn, layers: m.mlp_layers };
    // The predictor MLP of BYOL, SimSiam and MoCo v3-style MoCo (two layers, with batch norm).
    let predictor = HeadConfig { dim: m.dim, hidden: m.predictor_hidden, bn: true, layers: 2 };
    let mix_target = if cfg.unmix.target == "view1" { MixTarget::View1 } else { MixTarget::View2 };
    match m.name.as_str() {
        "moco" => Ok(Box::new(MoCo::new(
            device,
            &backbone,
            MoCoConfig {
                head,
                queue: m.queue,
                momentum: m.momentum,
                temperature: m.temperature,
                symmetric: m.symmetric,
                predictor: (m.predictor_hidden > 0).then_some(predictor),
            },
        ))),
        "simclr" => Ok(Box::new(SimClr::new(device, &backbone, SimClrConfig { head, temperature: m.temperature, mix_target }))),
        "byol" => Ok(Box::new(Byol::new(
            device,
            &backbone,
            ByolConfig {
                projector: head,
                predictor,
                tau_base: m.tau_base,
                mix_target,
            },
        ))),
        "simsiam" => Ok(Box::new(SimSiam::new(
            device,
            &backbone,
            SimSiamConfig { projector: head, predictor, mix_target },
        ))),
        "barlow" => Ok(Box::new(Redundancy::new(device, &backbone, &head, RedundancyLoss::BarlowTwins { lambda: m.barlow_lambda, scale: m.barlow_scale }, mix_target))),
        "vicreg" => Ok(Box::new(Redundancy::new(
            device,
            &backbone,
            &head,
            RedundancyLoss::VicReg { sim: m.vicreg_weights[0], var: m.vicreg_weights[1], cov: m.vicreg_weights[2] },
            mix_target,
        ))),
        "swav" => Ok(Box::new(Swav::new(
            device,
            &backbone,
            SwavConfig {
                head,
                prototypes: m.prototypes,
                temperature: m.temperature,
                epsilon: m.sinkhorn_epsilon,
                sinkhorn_iters: m.sinkhorn_iters,
                freeze_prototypes_steps: m.freeze_prototypes_steps,
                queue: m.swav_queue,
                queue_start_epoch: m.swav_queue_start_epoch.saturating_sub(1),
            },
        ))),
        "wmse" => Ok(Box::new(Wmse::new(
            device,
            &backbone,
            WmseConfig { head, w_size: if m.w_size == 0 { cfg.train.batch_size as i64 } else { m.w_size }, w_iter: m.w_iter, eps: m.w_eps, mix_target },
        ))),
        other => bail!("method.name = \"{other}\" is not supported"),
    }
}

/// The configured optimizer over the method's trainable variables, with its parameter groups;
/// a group whose prefix matches no variable is an error that lists the variable prefixes.
pub fn build_optimizer(cfg: &Config, method: &dyn Method) -> Result<Optimizer> {
    let rule = match cfg.train.optimizer.as_str() {
        "lars" => Rule::Lars { eta: cfg.train.lars_eta, clip: cfg.train.lars_clip, exclude_1d: cfg.train.lars_scope == "weights" },
        "adam" => Rule::Adam { beta1: 0.9, beta2: 0.999, eps: 1e-8 },
        "adamw" => Rule::AdamW { beta1: 0.9, beta2: 0.999, eps: 1e-8 },
        _ => Rule::Sgd,
    };
    let mut opt = Optimizer::with_rule(named_trainable(method.trainable()), rule, cfg.train.momentum, cfg.train.weight_decay);
    let groups: Vec<ParamGroup> = cfg
        .train
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
            cfg.method.name,
            tops.join(", ")
        );
    }
    Ok(opt)
}

/// The configured evaluation features.
pub fn features(cfg: &Config) -> Features {
    if cfg.eval.features == "backbone" { Features::Backbone } else { Features::Head }
}

/// Sets libtorch threads, the device and the weight-init seed.
pub fn setup_runtime(cfg: &Config) -> Result<Device> {
    let threads = if cfg.threads == 0 { std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1) } else { cfg.threads };
    tch::set_num_threads(threads as i32);
    let mut device = parse_device(&cfg.device)?;
    // Several processes per node (torchrun): plain "cuda" means each its own GPU, cuda:LOCAL_RANK.
    if cfg.device == "cuda" {
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

/// The kNN bank (train split, unaugmented) and test split.
pub struct KnnData {
    pub bank: Split,
    pub test: Split,
}

impl KnnData {
    pub fn load(cfg: &Config) -> Result<KnnData> {
        Ok(KnnData { bank: load_split(cfg, true)?, test: load_split(cfg, false)? })
    }

    /// Unaugmented features of the bank (train split) and the test split.
    pub fn features(&self, cfg: &Config, device: Device, method: &dyn Method, which: Features, l2: bool) -> Result<(Tensor, Tensor)> {
        let recipes = eval_recipes(cfg);
        let _layout = crate::model::layout::ChannelsLast::for_eval(method.trainable(), device);
        let embed = |x: &Tensor| method.embed(x, which);
        let bank = knn::extract(&self.bank.data, &recipes, cfg.eval.batch_size, cfg.data.workers, device, l2, &embed)?;
        let test = knn::extract(&self.test.data, &recipes, cfg.eval.batch_size, cfg.data.workers, device, l2, &embed)?;
        Ok((bank, test))
    }

    pub fn classes(&self) -> usize {
        self.bank.classes.max(self.test.classes)
    }

    pub fn evaluate(&self, cfg: &Config, device: Device, method: &dyn Method) -> Result<KnnResult> {
        let metric = if cfg.eval.knn_metric == "euclidean" { knn::Metric::EuclideanMajority } else { knn::Metric::WeightedCosine };
        let (bank, test) = self.features(cfg, device, method, features(cfg), metric == knn::Metric::WeightedCosine)?;
        let classes = self.classes();
        Ok(knn::evaluate_with(metric, &bank, &self.bank.labels, &test, &self.test.labels, classes, cfg.eval.knn_k, cfg.eval.knn_t))
    }
}

/// Pretrains as configured; returns the summary also written to `summary.json`.
pub fn pretrain(cfg: &Config, opts: &RunOptions) -> Result<serde_json::Value> {
    let wall = Instant::now();
    let out = &opts.out;
    std::fs::create_dir_all(out.join("checkpoints")).with_context(|| format!("cannot create run folder {}", out.display()))?;
    let ckpt_path = out.join(CHECKPOINT);
    let device = setup_runtime(cfg)?;
    // Multi-process data parallelism when launched by torchrun (or with RANK/WORLD_SIZE set).
    // Gloo on the CPU; NCCL for CUDA when built with it (see build.rs), else Gloo.
    let dist = crate::dist::Dist::from_env_on(device)?.map(std::sync::Arc::new);
    let (rank, world) = dist.as_ref().map_or((0, 1), |d| (d.rank, d.world));
    // Only rank 0 writes the run folder and evaluates.
    let main_rank = rank == 0;
    if world > 1 && !cfg.train.drop_last {
        bail!("train.drop_last = false is not supported with {world} processes: every process needs a full share of each batch");
    }

    if cfg.method.name == "swav" && cfg.method.swav_queue % (cfg.train.batch_size * world) as i64 != 0 {
        bail!("method.swav_queue = {} must be a multiple of the global batch ({} processes x {})", cfg.method.swav_queue, world, cfg.train.batch_size);
    }
    if cfg.method.name == "moco" {
        let keys = (cfg.train.batch_size * world) as i64 * if cfg.method.symmetric { 2 } else { 1 };
        if cfg.method.queue % keys != 0 {
            bail!("method.queue = {} must be a multiple of the keys enqueued per step across all {world} processes ({keys})", cfg.method.queue);
        }
    }
    let train_set = load_pretrain(cfg)?;
    let knn_data = KnnData::load(cfg)?;
    let per_epoch = num_batches(train_set.len(), cfg.train.batch_size * world, cfg.train.drop_last);
    if per_epoch == 0 {
        bail!(
            "{} training images give no full batch of train.batch_size = {}; lower the batch size or raise data.limit",
            train_set.len(),
            cfg.train.batch_size
        );
    }

    let mut method = build_method(cfg, device)?;
    method.set_dist(dist.clone());
    let mut opt = build_optimizer(cfg, method.as_ref())?;
    if let Some(d) = &dist {
        // Every rank starts from rank 0's weights and buffers (they agree anyway: same seed).
        let tensors: Vec<Tensor> = method.state().into_iter().map(|(_, t)| t).collect();
        d.broadcast_all(&tensors)?;
        if main_rank {
            println!(
                "data parallel: {world} processes x batch {} = effective batch {}; train.lr = {} is used as given for the effective batch \
                 (no automatic scaling; the linear rule would be lr x effective / 256); Un-Mix mixes within each process's batch, as the authors' code",
                cfg.train.batch_size,
                cfg.train.batch_size * world,
                cfg.train.lr
            );
        }
    }
    let total_steps = per_epoch * cfg.train.epochs;
    let schedule = match cfg.train.schedule.as_str() {
        "cosine-step" => Schedule::CosineStep {
            lr: cfg.train.lr,
            min_lr: cfg.train.min_lr,
            warmup: (cfg.train.warmup_epochs * per_epoch as f64).round() as usize,
            total: total_steps,
        },
        other => Schedule::CosineEpoch { lr: cfg.train.lr, epochs: cfg.train.epochs, to_zero: other == "cosine-epoch-to-zero" },
    };

    let (mut epoch, mut step, mut train_seconds, mut images) = (0usize, 0u64, 0.0f64, 0u64);
    // On resume, the checkpoint's tensors are kept for the online probe, built at the first step.
    let mut probe_state: Option<Vec<(String, Tensor)>> = None;
    if opts.resume {
        let (tensors, meta) = checkpoint::load(&ckpt_path).with_context(|| format!("cannot resume from {}", out.display()))?;
        method.load_state(&tensors).with_context(|| format!("{}", ckpt_path.display()))?;
        opt.load_state(&tensors);
        (epoch, step, train_seconds, images) = (meta.epoch, meta.step, meta.train_seconds, meta.images);
        println!("resumed from {} at epoch {} (step {})", ckpt_path.display(), epoch, step);
        probe_state = Some(tensors);
    } else if main_rank {
        // A fresh run must not silently mix its metrics with an earlier run's.
        for f in ["metrics.jsonl", "steps.jsonl", "summary.json"] {
            let _ = std::fs::remove_file(out.join(f));
        }
    }
    if main_rank {
        std::fs::write(out.join("config.toml"), cfg.to_toml()).with_context(|| format!("cannot write {}", out.join("config.toml").display()))?;
    }

    let loader = Loader::new(
        train_set.data.clone(),
        train_recipes(cfg),
        LoaderConfig {
            batch_size: cfg.train.batch_size,
            drop_last: cfg.train.drop_last,
            shuffle: true,
            seed: cfg.seed,
            workers: cfg.data.workers,
            prefetch: cfg.data.prefetch,
            on_bad_image: bad_image_policy(cfg),
        },
    )
    .sharded(rank, world);
    let precision = crate::precision::Precision::parse(&cfg.train.precision).expect("validated");
    let unmix = cfg.unmix.enabled.then(|| UnMixSettings { prob: cfg.unmix.prob, alpha: cfg.unmix.alpha });
    let label = format!("{}{}", cfg.method.name, if unmix.is_some() { "+unmix" } else { "" });
    println!(
        "pretraining {label} on {} ({} images, {} batches of {} per epoch), {} epochs, device {}",
        cfg.data.dataset,
        train_set.len(),
        per_epoch,
        cfg.train.batch_size,
        cfg.train.epochs,
        cfg.device
    );

    let classes = knn_data.classes() as i64;
    let use_probe = cfg.eval.online_probe && cfg.data.dataset != "stl10" && classes > 1;
    let mut probe: Option<OnlineProbe> = None;
    let mut last_knn: Option<KnnResult> = None;
    let mut last_probe: Option<f64> = None;
    let mut last_loss = f64::NAN;
    let stop_at = opts.until_epoch.unwrap_or(cfg.train.epochs).min(cfg.train.epochs);
    while epoch < stop_at {
        let bar = progress_bar(opts.progress, per_epoch as u64, epoch, cfg.train.epochs);
        let t0 = Instant::now();
        let mut loss_sum = Tensor::zeros([], (Kind::Float, device));
        let mut batches = loader.epoch(epoch as u64, 0);
        let mut epoch_images = 0u64;
        let mut lr = schedule.lr(epoch, step as usize);
        for (i, batch) in (&mut batches).enumerate() {
            let mut batch = batch.with_context(|| format!("preparing batch {i} of epoch {}", epoch + 1))?;
            lr = schedule.lr(epoch, step as usize);
            let views: Vec<Tensor> = batch.views.iter().map(|v| to_tensor(v, device)).collect();
            // The tensors own copies: the buffers go back to the workers for later batches.
            let labels = std::mem::take(&mut batch.labels);
            loader.recycle(batch);
            // One stream per step: the Un-Mix draw first, then whatever the method draws.
            let mut rng = unmix_data::seed::step_rng(cfg.seed, step);
            let mixed = unmix.as_ref().map(|s| {
                let (h, w) = (views[0].size()[2] as usize, views[0].size()[3] as usize);
                let mut m = Mixed::new(&views[0], crate::mix::draw(&mut rng, s, h, w));
                // Multi-crop: the small crops at even positions (2, 4, ...) are mixed too.
                let small: Vec<&Tensor> = views.iter().skip(2).step_by(2).collect();
                m.mix_crops(&small, &mut rng);
                m
            });
            let info = StepInfo { step, total_steps: total_steps as u64, epoch };
            let loss = crate::precision::forward(precision, device, || method.loss(&views, mixed.as_ref(), &info, &mut rng))
                .with_context(|| format!("step {step} (epoch {}): the method's loss", epoch + 1))?;
            if let (true, Some(f)) = (use_probe, method.take_features().map(|f| f.to_kind(Kind::Float))) {
                let p = probe.get_or_insert_with(|| {
                    let mut p = OnlineProbe::new(f.size()[1], classes, device);
                    if let Some(s) = probe_state.take() {
                        p.load_state(&s).expect("probe tensors have the probe's shapes");
                    }
                    p
                });
                let y = crate::eval::linear::labels_tensor(&labels, device);
                // The probe's lr follows the main schedule's shape.
                let _ = p.step(&f, &y, cfg.eval.online_probe_lr * lr / cfg.train.lr);
            }
            opt.zero_grad();
            loss.f_backward().context("backward pass failed")?;
            if let Some(d) = &dist {
                d.reduce_gradients(&opt.params(), method.global_loss())?;
            }
            opt.step_except(lr, |name| method.frozen(name, &info));
            method.after_step(&info);
            loss_sum += loss.detach();
            step += 1;
            epoch_images += (labels.len() * world) as u64;
            if step % cfg.train.log_every as u64 == 0 || i + 1 == per_epoch {
                // The logged loss is the mean over processes (the global batch's loss).
                let l = match &dist {
                    Some(d) => {
                        let t = loss.detach().to_kind(Kind::Double).reshape([1]);
                        d.all_reduce_sum(&t)?;
                        t.double_value(&[0]) / world as f64
                    }
                    None => loss.double_value(&[]),
                };
                check_finite(l, epoch, step, &ckpt_path)?;
                last_loss = l;
                if main_rank {
                    checkpoint::append_jsonl(&out.join("steps.jsonl"), &json!({"step": step, "epoch": epoch + 1, "loss": l, "lr": lr}))?;
                }
                let ips = epoch_images as f64 / t0.elapsed().as_secs_f64();
                bar.set_message(format!("loss {l:.4} lr {lr:.5} {ips:.0} img/s"));
            }
            bar.inc(1);
        }
        let secs = t0.elapsed().as_secs_f64();
        let starved = batches.starved().as_secs_f64();
        drop(batches);
        bar.finish_and_clear();
        let mean_loss = loss_sum.double_value(&[]) / per_epoch as f64;
        check_finite(mean_loss, epoch, step, &ckpt_path)?;
        train_seconds += secs;
        images += epoch_images;
        epoch += 1;

        let due = cfg.eval.knn_every > 0 && epoch % cfg.eval.knn_every == 0;
        let knn = if main_rank && !opts.skip_eval && (due || epoch == cfg.train.epochs) {
            let r = knn_data.evaluate(cfg, device, method.as_ref())?;
            last_knn = Some(r);
            Some(r)
        } else {
            None
        };
        let probe_top1 = match probe.as_ref().filter(|_| main_rank) {
            Some(p) => {
                let which = Features::Backbone;
                let _layout = crate::model::layout::ChannelsLast::for_eval(method.trainable(), device);
                let test = knn::extract(&knn_data.test.data, &eval_recipes(cfg), cfg.eval.batch_size, cfg.data.workers, device, false, &|x| method.embed(x, which))?;
                let y = crate::eval::linear::labels_tensor(&knn_data.test.labels, device);
                let (top1, _) = crate::eval::linear::accuracy(&p.logits(&test), &y);
                last_probe = Some(top1);
                Some(top1)
            }
            None => None,
        };
        let ips = epoch_images as f64 / secs;
        let mut line = json!({
            "epoch": epoch, "step": step, "loss": mean_loss, "lr": lr,
            "images_per_second": ips, "epoch_seconds": secs, "data_wait_seconds": starved,
        });
        if let Some(r) = knn {
            line["knn_top1"] = json!(r.top1);
            line["knn_top5"] = json!(r.top5);
        }
        if let Some(p) = probe_top1 {
            line["online_probe_top1"] = json!(p);
        }
        if !main_rank {
            // The other ranks wait here while rank 0 evaluates and writes the checkpoint.
            if let Some(d) = &dist {
                d.barrier()?;
            }
            continue;
        }
        checkpoint::append_jsonl(&out.join("metrics.jsonl"), &line)?;
        let meta = Meta { format: 1, epoch, step, config: cfg.to_toml(), seed: cfg.seed, train_seconds, images };
        let mut state = method.state();
        state.extend(opt.state());
        if let Some(p) = &probe {
            state.extend(p.state());
        }
        checkpoint::save(&ckpt_path, &state, &meta)?;
        if let Some(d) = &dist {
            d.barrier()?;
        }
        println!(
            "epoch {epoch}/{}  loss {mean_loss:.4}  lr {lr:.5}  {ips:.0} img/s  data wait {starved:.1}s{}",
            cfg.train.epochs,
            knn.map(|r| format!("  kNN top-1 {:.2}%", r.top1)).unwrap_or_default()
                + &probe_top1.map(|p| format!("  online probe {p:.2}%")).unwrap_or_default()
        );
    }

    if loader.skipped() > 0 {
        println!("skipped {} unreadable image(s) in this run (data.on_bad_image = \"skip\")", loader.skipped());
    }
    if epoch < cfg.train.epochs {
        println!(
            "stopped after epoch {epoch} of {}; continue with: unmix pretrain --out {} --resume",
            cfg.train.epochs,
            out.display()
        );
    }
    if !main_rank {
        return Ok(json!({"rank": rank, "epochs": epoch}));
    }
    let mut summary = report::summary(cfg, epoch, last_loss, last_knn, images, train_seconds, wall.elapsed().as_secs_f64());
    if let Some(p) = last_probe {
        summary["online_probe"] = json!({"top1": p, "protocol": "online linear probe: linear classifier trained during pretraining on detached backbone features of view 1 (SGD, momentum 0.9, lr following the main schedule), top-1 on the test split with eval-mode features"});
    }
    std::fs::write(out.join("summary.json"), serde_json::to_string_pretty(&summary)?)
        .with_context(|| format!("cannot write {}", out.join("summary.json").display()))?;
    if opts.report {
        let r = report::write_report(out)?;
        println!("report: {}", r.display());
    }
    Ok(summary)
}

fn check_finite(loss: f64, epoch: usize, step: u64, ckpt: &Path) -> Result<()> {
    if loss.is_finite() {
        return Ok(());
    }
    let kept = if ckpt.exists() {
        format!("the last good checkpoint is kept at {}", ckpt.display())
    } else {
        "no checkpoint had been written yet".to_string()
    };
    bail!(
        "the loss became {loss} at step {step} (epoch {}); training stopped without saving, and {kept}. \
         Lower train.lr, check data.mean/data.std, or resume with --resume after changing the config",
        epoch + 1
    )
}

fn progress_bar(enabled: bool, len: u64, epoch: usize, epochs: usize) -> indicatif::ProgressBar {
    if !enabled {
        return indicatif::ProgressBar::hidden();
    }
    let bar = indicatif::ProgressBar::new(len);
    bar.set_style(
        indicatif::ProgressStyle::with_template("{prefix} [{bar:30}] {pos}/{len} {msg} ETA {eta}")
            .expect("template")
            .progress_chars("=> "),
    );
    bar.set_prefix(format!("epoch {}/{}", epoch + 1, epochs));
    bar
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn memory_format_auto_is_the_default_and_means_channels_last_on_the_cpu() {
        let cfg = |sets: &[&str]| {
            let sets: Vec<String> = sets.iter().map(|s| s.to_string()).collect();
            Config::load(Path::new("configs/fmnist-moco-unmix.toml"), &sets).unwrap()
        };
        let default = cfg(&[]);
        assert_eq!(default.model.memory_format, "auto");
        assert!(backbone_config(&default, Device::Cpu).channels_last);
        assert!(!backbone_config(&default, Device::Cuda(0)).channels_last);
        assert!(!backbone_config(&cfg(&["model.memory_format=\"contiguous\""]), Device::Cpu).channels_last);
        assert!(backbone_config(&cfg(&["model.memory_format=\"channels-last\""]), Device::Cuda(0)).channels_last);
    }
}
