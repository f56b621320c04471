//! The pretraining loop: data -> Un-Mix -> method loss -> optimizer, with per-epoch evaluation,
//! records, atomic checkpoints and exact resume. The pieces: [`step`] (one training step, shared
//! with `unmix bench step`), [`log`] (the run's records), [`summary`] (what a run reports); this
//! file runs the epochs and evaluates and checkpoints at each one's end.

pub mod log;
pub mod step;
pub mod summary;

use crate::build;
use crate::checkpoint::{self, RUN_CHECKPOINT};
use crate::config::{Config, Dataset};
use crate::data::{bad_image_policy, load_pretrain, to_tensor, train_recipes};
use crate::eval::knn::{KnnData, KnnResult};
use crate::eval::online::OnlineProbe;
use crate::model::Features;
use anyhow::{bail, Context, Result};
use log::{progress_bar, EpochRecord, RunLog};
use std::path::{Path, PathBuf};
use std::time::Instant;
use step::Trainer;
use summary::{KnnSummary, ProbeSummary, Summary, PROBE_PROTOCOL};
use tch::{Device, Kind, Tensor};
use unmix_data::loader::{num_batches, Loader, LoaderConfig};

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
    /// No kNN evaluation (benchmarks of the training loop alone).
    pub skip_eval: bool,
}

/// How `pretrain` ended in this process.
#[derive(Clone, Debug)]
pub enum Finished {
    /// A single process, or rank 0 of several: the run's summary (also in summary.json).
    Main(Box<Summary>),
    /// Another rank of a multi-process run (rank 0 reports).
    Worker { rank: usize, epochs: usize },
}

impl Finished {
    /// The summary, if this process reports.
    pub fn summary(&self) -> Option<&Summary> {
        match self {
            Finished::Main(s) => Some(s.as_ref()),
            Finished::Worker { .. } => None,
        }
    }
}

/// The end-of-epoch evaluation: kNN when due, and the online probe's test accuracy.
struct EpochEval {
    knn: KnnData,
    probe: Option<OnlineProbe>,
    classes: i64,
    use_probe: bool,
}

impl EpochEval {
    fn new(cfg: &Config) -> Result<EpochEval> {
        let knn = KnnData::load(cfg)?;
        let classes = knn.classes() as i64;
        let use_probe = cfg.eval.online_probe && cfg.data.dataset != Dataset::Stl10 && classes > 1;
        Ok(EpochEval { knn, probe: None, classes, use_probe })
    }

    /// One probe step on the step's (detached) view-1 features; the probe is built at the first
    /// step, from the checkpoint's tensors when resuming.
    fn probe_step(
        &mut self,
        feats: Option<Tensor>,
        labels: &[u32],
        lr: f64,
        device: Device,
        resumed: &mut Option<Vec<(String, Tensor)>>,
    ) -> Result<()> {
        let (true, Some(f)) = (self.use_probe, feats.map(|f| f.to_kind(Kind::Float))) else { return Ok(()) };
        if self.probe.is_none() {
            let mut p = OnlineProbe::new(f.size()[1], self.classes, device);
            if let Some(s) = resumed.take() {
                p.load_state(&s).context("the checkpoint's online probe")?;
            }
            self.probe = Some(p);
        }
        let y = crate::eval::linear::labels_tensor(labels, device);
        let _ = self.probe.as_mut().expect("built above").step(&f, &y, lr);
        Ok(())
    }

    fn knn(&self, cfg: &Config, device: Device, trainer: &Trainer) -> Result<KnnResult> {
        self.knn.evaluate(cfg, device, trainer.method.as_ref())
    }

    fn probe_accuracy(&self, cfg: &Config, device: Device, trainer: &Trainer) -> Result<Option<f64>> {
        let Some(p) = &self.probe else { return Ok(None) };
        let test =
            crate::eval::embed_split(cfg, device, trainer.method.as_ref(), &self.knn.test, Features::Backbone, false)?;
        let y = crate::eval::linear::labels_tensor(&self.knn.test.labels, device);
        Ok(Some(crate::eval::linear::accuracy(&p.logits(&test), &y).0))
    }
}

/// Pretrains as configured; rank 0 returns the summary also written to `summary.json`.
pub fn pretrain(cfg: &Config, opts: &RunOptions) -> Result<Finished> {
    let wall = Instant::now();
    let out = &opts.out;
    std::fs::create_dir_all(out.join("checkpoints"))
        .with_context(|| format!("cannot create run folder {}", out.display()))?;
    let ckpt_path = out.join(RUN_CHECKPOINT);
    let device = build::runtime(cfg)?;
    // Multi-process data parallelism when launched by torchrun (or with RANK/WORLD_SIZE set).
    // Gloo on the CPU; NCCL for CUDA when built with it (see build.rs), else Gloo.
    let dist = crate::dist::Dist::from_env_on(device)?.map(std::sync::Arc::new);
    let (rank, world) = dist.as_ref().map_or((0, 1), |d| (d.rank, d.world));
    // Only rank 0 writes the run folder and evaluates.
    let main_rank = rank == 0;
    if world > 1 && !cfg.train.drop_last {
        bail!("train.drop_last = false is not supported with {world} processes: every process needs a full share of each batch");
    }
    cfg.method.validate(&cfg.run_context(world))?;
    let train_set = load_pretrain(cfg)?;
    let mut eval = EpochEval::new(cfg)?;
    let per_epoch = num_batches(train_set.len(), cfg.train.batch_size * world, cfg.train.drop_last);
    if per_epoch == 0 {
        bail!(
            "{} training images give no full batch of train.batch_size = {}; lower the batch size or raise data.limit",
            train_set.len(),
            cfg.train.batch_size
        );
    }
    let mut trainer = Trainer::new(cfg, device, dist.clone(), per_epoch)?;
    if world > 1 && main_rank {
        println!(
            "data parallel: {world} processes x batch {} = effective batch {}; train.lr = {} is used as given for the effective batch \
             (no automatic scaling; the linear rule would be lr x effective / 256); Un-Mix mixes within each process's batch, as the authors' code",
            cfg.train.batch_size,
            cfg.train.batch_size * world,
            cfg.train.lr
        );
    }

    let (mut epoch, mut step, mut train_seconds, mut images) = (0usize, 0u64, 0.0f64, 0u64);
    // On resume, the checkpoint's tensors are kept for the online probe, built at the first step.
    let mut probe_state: Option<Vec<(String, Tensor)>> = None;
    if opts.resume {
        let (tensors, meta) =
            checkpoint::load(&ckpt_path).with_context(|| format!("cannot resume from {}", out.display()))?;
        trainer.load_state(&tensors).with_context(|| format!("{}", ckpt_path.display()))?;
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
        std::fs::write(out.join("config.toml"), cfg.to_toml())
            .with_context(|| format!("cannot write {}", out.join("config.toml").display()))?;
    }
    let log = RunLog::new(main_rank.then_some(out.as_path()));

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
    let label = format!("{}{}", cfg.method.name(), if cfg.unmix.enabled { "+unmix" } else { "" });
    println!(
        "pretraining {label} on {} ({} images, {} batches of {} per epoch), {} epochs, device {}",
        cfg.data.dataset,
        train_set.len(),
        per_epoch,
        cfg.train.batch_size,
        cfg.train.epochs,
        cfg.device
    );

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
        let mut lr = trainer.schedule.lr(epoch, step as usize);
        for (i, batch) in (&mut batches).enumerate() {
            let mut batch = batch.with_context(|| format!("preparing batch {i} of epoch {}", epoch + 1))?;
            lr = trainer.schedule.lr(epoch, step as usize);
            let views: Vec<Tensor> = batch.views.iter().map(|v| to_tensor(v, device)).collect();
            // The tensors own copies: the buffers go back to the workers for later batches.
            let labels = std::mem::take(&mut batch.labels);
            loader.recycle(batch);
            let loss = trainer.forward(&views, step, epoch)?;
            // The probe's lr follows the main schedule's shape.
            eval.probe_step(
                trainer.method.take_features(),
                &labels,
                cfg.eval.online_probe_lr * lr / cfg.train.lr,
                device,
                &mut probe_state,
            )?;
            trainer.update(&loss, lr, step, epoch)?;
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
                log.step(step, epoch, l, lr)?;
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
            let r = eval.knn(cfg, device, &trainer)?;
            last_knn = Some(r);
            Some(r)
        } else {
            None
        };
        let probe_top1 = if main_rank { eval.probe_accuracy(cfg, device, &trainer)? } else { None };
        if probe_top1.is_some() {
            last_probe = probe_top1;
        }
        let record = EpochRecord {
            epoch,
            step,
            loss: mean_loss,
            lr,
            images_per_second: epoch_images as f64 / secs,
            seconds: secs,
            data_wait_seconds: starved,
            knn: knn.map(|r| (r.top1, r.top5)),
            online_probe: probe_top1,
        };
        if !main_rank {
            // The other ranks wait here while rank 0 evaluates and writes the checkpoint.
            if let Some(d) = &dist {
                d.barrier()?;
            }
            continue;
        }
        log.epoch(&record.json())?;
        let mut state = trainer.state();
        if let Some(p) = &eval.probe {
            state.extend(p.state());
        }
        checkpoint::save(&ckpt_path, &state, &build::meta(cfg, epoch, step, train_seconds, images))?;
        if let Some(d) = &dist {
            d.barrier()?;
        }
        println!("{}", record.line(cfg.train.epochs));
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
        return Ok(Finished::Worker { rank, epochs: epoch });
    }
    let summary = Summary {
        dataset: cfg.data.dataset.to_string(),
        epochs: epoch,
        epochs_planned: cfg.train.epochs,
        final_loss: last_loss.is_finite().then_some(last_loss),
        images_per_second: if train_seconds > 0.0 { images as f64 / train_seconds } else { 0.0 },
        knn: last_knn.map(|r| KnnSummary::new(cfg, &r)),
        method: cfg.method.name().to_string(),
        online_probe: last_probe.map(|top1| ProbeSummary { protocol: PROBE_PROTOCOL.to_string(), top1 }),
        peak_rss_mib: summary::peak_rss_mib(),
        seed: cfg.seed,
        train_seconds,
        unmix: cfg.unmix.enabled,
        wall_seconds: wall.elapsed().as_secs_f64(),
    };
    std::fs::write(out.join("summary.json"), serde_json::to_string_pretty(&summary)?)
        .with_context(|| format!("cannot write {}", out.join("summary.json").display()))?;
    Ok(Finished::Main(Box::new(summary)))
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
        assert_eq!(default.model.memory_format, crate::model::MemoryFormat::Auto);
        assert!(build::backbone(&default, Device::Cpu).channels_last);
        assert!(!build::backbone(&default, Device::Cuda(0)).channels_last);
        assert!(!build::backbone(&cfg(&["model.memory_format=\"contiguous\""]), Device::Cpu).channels_last);
        assert!(build::backbone(&cfg(&["model.memory_format=\"channels-last\""]), Device::Cuda(0)).channels_last);
    }
}
