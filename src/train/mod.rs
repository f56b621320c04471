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
use crate::console::StopReason;
use crate::cost::Cost;
use crate::data::{bad_image_policy, load_pretrain, to_tensor, train_recipes};
use crate::eval::knn::{KnnData, KnnResult};
use crate::eval::online::OnlineProbe;
use crate::mix::MixtureKind;
use crate::model::Features;
use crate::say;
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
    /// A new run into a folder that holds something: move the old contents aside first (to
    /// `OUT.old-<seconds>`), never delete them. Without it such a run is refused.
    pub force: bool,
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
    /// `--resume` of a run that had finished all its epochs: nothing was changed.
    AlreadyFinished { epochs: usize },
    /// Stopped early (Ctrl-C, SIGTERM, a closed stdout) with a checkpoint of the step reached.
    Stopped { reason: StopReason, epoch: usize, step: u64, checkpoint: PathBuf },
}

impl Finished {
    /// The summary, if this process reports one.
    pub fn summary(&self) -> Option<&Summary> {
        match self {
            Finished::Main(s) => Some(s.as_ref()),
            _ => None,
        }
    }
}

/// The end-of-epoch evaluation: kNN when due, and the online probe's test accuracy.
struct EpochEval {
    /// None without labeled images (an unlabeled folder without data.eval_root).
    knn: Option<KnnData>,
    probe: Option<OnlineProbe>,
    classes: i64,
    use_probe: bool,
}

impl EpochEval {
    fn new(cfg: &Config) -> Result<EpochEval> {
        let knn = if crate::data::has_labels(cfg) { Some(KnnData::load(cfg)?) } else { None };
        let classes = knn.as_ref().map_or(0, |k| k.classes() as i64);
        // The probe learns from the pretraining images' labels: not for STL-10 (mostly
        // unlabeled), unlabeled folders, or a separate labeled folder.
        let use_probe = cfg.eval.online_probe
            && cfg.data.dataset != Dataset::Stl10
            && cfg.data.eval_root.is_none()
            && knn.as_ref().is_some_and(|k| !k.leave_one_out)
            && classes > 1;
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

    fn knn(&self, cfg: &Config, device: Device, trainer: &Trainer) -> Result<Option<KnnResult>> {
        self.knn.as_ref().map(|k| k.evaluate(cfg, device, trainer.method.as_ref())).transpose()
    }

    /// The end of the run's two kNN readouts, head output and pooled backbone: the configured one
    /// already measured (`configured`), the other measured now, so a run's summary holds both.
    fn readouts(
        &self,
        cfg: &Config,
        device: Device,
        trainer: &Trainer,
        configured: Option<&KnnResult>,
    ) -> Result<(Option<KnnSummary>, Option<KnnSummary>)> {
        let (Some(r), Some(k)) = (configured, &self.knn) else { return Ok((None, None)) };
        let mut other_cfg = cfg.clone();
        other_cfg.eval.features = match cfg.eval.features {
            Features::Head => Features::Backbone,
            Features::Backbone => Features::Head,
        };
        let other = k.evaluate(&other_cfg, device, trainer.method.as_ref())?;
        let (mine, other) = (KnnSummary::new(cfg, r), KnnSummary::new(&other_cfg, &other));
        Ok(match cfg.eval.features {
            Features::Head => (Some(mine), Some(other)),
            Features::Backbone => (Some(other), Some(mine)),
        })
    }

    fn probe_accuracy(&mut self, cfg: &Config, device: Device, trainer: &Trainer) -> Result<Option<f64>> {
        let (Some(p), Some(knn)) = (&self.probe, &self.knn) else { return Ok(None) };
        if !p.is_finite() {
            say!(
                "warning: the online probe diverged (eval.online_probe_lr = {} is too large for these features); it is left out of this run",
                cfg.eval.online_probe_lr
            );
            (self.probe, self.use_probe) = (None, false);
            return Ok(None);
        }
        let test =
            crate::eval::embed_split(cfg, device, trainer.method.as_ref(), &knn.test, Features::Backbone, false)?;
        let y = crate::eval::linear::labels_tensor(&knn.test.labels, device);
        Ok(Some(crate::eval::linear::accuracy(&p.logits(&test), &y).0))
    }
}

/// Whether a folder exists and holds anything.
fn in_use(dir: &Path) -> bool {
    std::fs::read_dir(dir).map(|mut d| d.next().is_some()).unwrap_or(false)
}

/// Moves a used run folder aside (`DIR.old-<seconds since 1970>`), never deleting it.
fn move_aside(dir: &Path) -> Result<PathBuf> {
    let secs = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or(0);
    let mut name = dir.as_os_str().to_owned();
    name.push(format!(".old-{secs}"));
    let to = PathBuf::from(name);
    std::fs::rename(dir, &to).with_context(|| format!("cannot move {} aside to {}", dir.display(), to.display()))?;
    Ok(to)
}

/// What `--resume` may not change: the network, the method and the data behind the checkpoint
/// (and, inside an epoch, the batch size that numbers its batches).
fn check_resume(cfg: &Config, meta: &checkpoint::Meta, ckpt: &Path) -> Result<()> {
    let old = Config::from_saved_toml(&meta.config, &format!("the config saved in {}", ckpt.display()), &[])?;
    let refuse = |key: &str, was: String| -> Result<()> {
        bail!("--resume cannot change {key} (the checkpoint {} was trained with {was}); start a new run with another --out", ckpt.display())
    };
    if old.method.name() != cfg.method.name() {
        return refuse("method.name", old.method.name().into());
    }
    if old.data.dataset != cfg.data.dataset {
        return refuse("data.dataset", old.data.dataset.to_string());
    }
    let shape = |c: &Config| {
        (c.model.arch, c.model.widths, c.model.in_channels, c.model.cifar_stem, c.model.bn_splits, c.method.projector())
    };
    if shape(&old) != shape(cfg) {
        return refuse(
            "the network (model.arch, widths, in_channels, cifar_stem, bn_splits, or method.dim / mlp_*)",
            format!("{:?}", old.model),
        );
    }
    if meta.batch_in_epoch > 0 && old.train.batch_size != cfg.train.batch_size {
        return refuse("train.batch_size inside an epoch", old.train.batch_size.to_string());
    }
    Ok(())
}

/// The run's state at a step, as a checkpoint (written by rank 0 only).
struct Progress {
    epoch: usize,
    step: u64,
    train_seconds: f64,
    images: u64,
}

/// Pretrains as configured; rank 0 returns the summary also written to `summary.json`.
///
/// The run folder belongs to one run: a new run into a folder that holds anything is refused
/// (unless `force` moves the old contents aside), `resume` of a finished run changes nothing, and
/// nothing is written before the config, the data and (on resume) the checkpoint have been
/// checked. The checkpoint is the record's truth: on resume the step and epoch logs are cut back
/// to it, and each epoch's line is written after its checkpoint.
pub fn pretrain(cfg: &Config, opts: &RunOptions) -> Result<Finished> {
    let wall = Instant::now();
    let cfg = &cfg.with_absolute_root();
    let out = &opts.out;
    let ckpt_path = out.join(RUN_CHECKPOINT);
    crate::console::catch_interrupts();
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
    if cfg.train.precision == crate::precision::Precision::Bf16
        && device == Device::Cpu
        && !crate::precision::cpu_has_native_bf16()
    {
        eprintln!(
            "warning: train.precision = \"bf16\" on a CPU without native bf16 (no avx512_bf16 or amx_bf16, or ONEDNN_MAX_CPU_ISA below \
             them): libtorch emulates bf16 here, slower than fp32; train.precision = \"fp32\" is faster on this machine"
        );
    }

    let resumed = if opts.resume {
        let (tensors, meta) =
            checkpoint::load(&ckpt_path).with_context(|| format!("cannot resume the run in {}", out.display()))?;
        if meta.epoch >= cfg.train.epochs {
            say!(
                "the run in {} finished all {} epochs; nothing to do (results: summary.json and report.md there; more epochs: --set train.epochs=N)",
                out.display(),
                meta.epoch
            );
            return Ok(Finished::AlreadyFinished { epochs: meta.epoch });
        }
        check_resume(cfg, &meta, &ckpt_path)?;
        checkpoint::check_finite(&tensors, &ckpt_path)?;
        Some((tensors, meta))
    } else {
        if main_rank && in_use(out) && !opts.force {
            bail!(
                "{} already holds files (another run?); continue that run with --resume, give another --out, or add --force to move it aside (nothing is deleted)",
                out.display()
            );
        }
        None
    };

    let train_set = load_pretrain(cfg)?;
    let mut eval = EpochEval::new(cfg)?;
    if let Some(knn) = &eval.knn {
        check_splits(cfg, &train_set, knn)?;
    } else if main_rank && !opts.skip_eval {
        say!(
            "no labeled images (data.eval_root is not set): kNN and the online probe are skipped; \
             set data.eval_root to a labeled folder (ROOT/CLASS/IMAGE) to evaluate"
        );
    }
    let per_epoch = num_batches(train_set.len(), cfg.train.batch_size * world, cfg.train.drop_last);
    if per_epoch == 0 {
        bail!(
            "{} training images give no full batch of train.batch_size = {}; lower the batch size or raise data.limit",
            train_set.len(),
            cfg.train.batch_size
        );
    }
    if let crate::method::MethodConfig::Moco(m) = &cfg.method {
        if main_rank && m.queue as usize > train_set.len() {
            say!(
                "warning: method.queue = {} holds more keys than there are images ({}): the queue's negatives include older \
                 keys of each query's own image; for a folder this small, lower method.queue (a multiple of {})",
                m.queue,
                train_set.len(),
                cfg.train.batch_size * world * if m.symmetric { 2 } else { 1 }
            );
        }
    }
    cfg.check_steps(per_epoch)?;
    if world > 1 && matches!(cfg.mixture_kind(), MixtureKind::IMix | MixtureKind::MixCo) {
        bail!("{}.enabled: the rival mixtures run in one process (their virtual labels span the whole batch); run without torchrun", cfg.mixture_kind().name());
    }
    let total_steps = cfg.total_steps(per_epoch);
    let mut trainer = Trainer::new(cfg, device, dist.clone(), per_epoch)?;
    if world > 1 && main_rank {
        say!(
            "data parallel: {world} processes x batch {} = effective batch {}; train.lr = {} is used as given for the effective batch \
             (no automatic scaling; the linear rule would be lr x effective / 256); Un-Mix mixes within each process's batch, as the authors' code",
            cfg.train.batch_size,
            cfg.train.batch_size * world,
            cfg.train.lr
        );
    }

    let mut at = Progress { epoch: 0, step: 0, train_seconds: 0.0, images: 0 };
    // Inside an interrupted epoch: its batches done and running sums.
    let mut within = (0usize, 0.0f64, 0u64, 0.0f64, 0.0f64);
    // On resume, the checkpoint's tensors are kept for the online probe, built at the first step.
    let mut probe_state: Option<Vec<(String, Tensor)>> = None;
    if let Some((tensors, meta)) = resumed {
        trainer
            .load_state(&tensors)
            .with_context(|| format!("{} does not fit this configuration", ckpt_path.display()))?;
        at = Progress { epoch: meta.epoch, step: meta.step, train_seconds: meta.train_seconds, images: meta.images };
        within =
            (meta.batch_in_epoch, meta.epoch_loss_sum, meta.epoch_images, meta.epoch_seconds, meta.epoch_data_wait);
        probe_state = Some(tensors);
        if main_rank {
            // The logs agree with the checkpoint: steps and epochs after it are cut away.
            checkpoint::retain_jsonl(&out.join("steps.jsonl"), |v| v["step"].as_u64().is_some_and(|s| s <= meta.step))?;
            checkpoint::retain_jsonl(&out.join("metrics.jsonl"), |v| {
                v["epoch"].as_u64().is_some_and(|e| e as usize <= meta.epoch)
            })?;
            log::write_csv(out)?;
        }
        say!(
            "resumed from {} at epoch {}{} (step {})",
            ckpt_path.display(),
            meta.epoch + usize::from(meta.batch_in_epoch > 0),
            if meta.batch_in_epoch > 0 {
                format!(", batch {} of {per_epoch}", meta.batch_in_epoch + 1)
            } else {
                String::new()
            },
            meta.step
        );
    } else if main_rank {
        if in_use(out) {
            let to = move_aside(out)?;
            say!("moved the earlier contents of {} to {} (--force)", out.display(), to.display());
        }
        std::fs::create_dir_all(out.join("checkpoints"))
            .with_context(|| format!("cannot create run folder {}", out.display()))?;
        write_config(out, cfg)?;
    }
    let mut log = RunLog::new(main_rank.then_some(out.as_path()), opts.resume.then_some(at.step))?;

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
    say!(
        "pretraining {} on {} ({} images, {} batches of {} per epoch), {}, device {}",
        run_label(cfg),
        cfg.data.dataset,
        train_set.len(),
        per_epoch,
        cfg.train.batch_size,
        length_phrase(cfg, per_epoch),
        cfg.device
    );
    let cost = Cost::of(cfg, total_steps, world);
    say!("counted compute: {}", cost.describe());

    // The checkpoint of `at` (inside an epoch when `within.0 > 0`), then the config beside it.
    let save = |trainer: &Trainer,
                eval: &EpochEval,
                at: &Progress,
                within: (usize, f64, u64, f64, f64)|
     -> Result<()> {
        let mut state = trainer.state();
        if let Some(p) = &eval.probe {
            state.extend(p.state());
        }
        let meta = checkpoint::Meta {
            batch_in_epoch: within.0,
            epoch_loss_sum: within.1,
            epoch_images: within.2,
            epoch_seconds: within.3,
            epoch_data_wait: within.4,
            ..checkpoint::Meta::at_epoch_end(at.epoch, at.step, cfg.to_toml(), cfg.seed, at.train_seconds, at.images)
        };
        checkpoint::save_with(
            &ckpt_path,
            &state,
            &meta,
            &build::header(cfg, at.epoch, "unmix checkpoint: every tensor of the run"),
        )?;
        write_config(out, cfg)
    };

    let mut last_knn: Option<KnnResult> = None;
    let mut last_probe: Option<f64> = None;
    let mut last_loss = f64::NAN;
    let stop_at = opts.until_epoch.unwrap_or(cfg.train.epochs).min(cfg.train.epochs);
    while at.epoch < stop_at {
        let epoch = at.epoch;
        let (start, sum0, images0, secs0, wait0) = std::mem::take(&mut within);
        // Batches of this epoch: all of them, but for the last one of a run of train.steps.
        let epoch_len = per_epoch.min(total_steps - epoch * per_epoch);
        let bar = progress_bar(opts.progress, epoch_len as u64, epoch, cfg.train.epochs);
        bar.set_position(start as u64);
        let t0 = Instant::now();
        // The running sum in fp32, as an uninterrupted epoch accumulates it (exact round trip).
        let mut loss_sum = Tensor::from(sum0 as f32).to_device(device);
        let mut batches = loader.epoch(epoch as u64, start);
        let mut epoch_images = images0;
        let mut lr = trainer.schedule.lr(epoch, at.step as usize);
        for (i, batch) in (&mut batches).take(epoch_len - start).enumerate() {
            let i = start + i;
            let mut batch = batch.with_context(|| format!("preparing batch {i} of epoch {}", epoch + 1))?;
            lr = trainer.schedule.lr(epoch, at.step as usize);
            let views: Vec<Tensor> = batch.views.iter().map(|v| to_tensor(v, device)).collect();
            // The tensors own copies: the buffers go back to the workers for later batches.
            let labels = std::mem::take(&mut batch.labels);
            loader.recycle(batch);
            let loss = trainer.forward(&views, at.step, epoch)?;
            // The probe's lr follows the main schedule's shape.
            let probe_lr = cfg.eval.online_probe_lr * lr / cfg.train.lr;
            eval.probe_step(trainer.method.take_features(), &labels, probe_lr, device, &mut probe_state)?;
            trainer.update(&loss, lr, at.step, epoch)?;
            loss_sum += loss.detach().to_kind(Kind::Float);
            at.step += 1;
            epoch_images += (labels.len() * world) as u64;
            if at.step.is_multiple_of(cfg.train.log_every as u64) || i + 1 == epoch_len {
                // The logged loss is the mean over processes (the global batch's loss).
                let l = match &dist {
                    Some(d) => {
                        let t = loss.detach().to_kind(Kind::Double).reshape([1]);
                        d.all_reduce_sum(&t)?;
                        t.double_value(&[0]) / world as f64
                    }
                    None => loss.double_value(&[]),
                };
                check_finite(l, epoch, at.step, &ckpt_path)?;
                last_loss = l;
                log.step(at.step, epoch, l, lr)?;
                let ips = (epoch_images - images0) as f64 / t0.elapsed().as_secs_f64();
                bar.set_message(format!("loss {l:.4} lr {lr:.5} {ips:.0} img/s"));
            }
            bar.inc(1);
            if i + 1 < epoch_len {
                if let Some(reason) = stop_now(dist.as_deref())? {
                    bar.finish_and_clear();
                    let secs = secs0 + t0.elapsed().as_secs_f64();
                    let wait = wait0 + batches.starved().as_secs_f64();
                    let inside = (i + 1, loss_sum.double_value(&[]), epoch_images, secs, wait);
                    if main_rank {
                        save(&trainer, &eval, &at, inside)?;
                    }
                    if let Some(d) = &dist {
                        d.barrier()?;
                    }
                    return Ok(Finished::Stopped { reason, epoch, step: at.step, checkpoint: ckpt_path });
                }
            }
        }
        let secs = secs0 + t0.elapsed().as_secs_f64();
        let starved = wait0 + batches.starved().as_secs_f64();
        drop(batches);
        bar.finish_and_clear();
        let mean_loss = loss_sum.double_value(&[]) / epoch_len as f64;
        check_finite(mean_loss, epoch, at.step, &ckpt_path)?;
        at.train_seconds += secs;
        at.images += epoch_images;
        at.epoch += 1;

        let due = cfg.eval.knn_every > 0 && at.epoch.is_multiple_of(cfg.eval.knn_every);
        let knn = if main_rank && !opts.skip_eval && (due || at.epoch == cfg.train.epochs) {
            let r = eval.knn(cfg, device, &trainer)?;
            last_knn = r.or(last_knn);
            r
        } else {
            None
        };
        let probe_top1 = if main_rank { eval.probe_accuracy(cfg, device, &trainer)? } else { None };
        if probe_top1.is_some() {
            last_probe = probe_top1;
        }
        let record = EpochRecord {
            epoch: at.epoch,
            step: at.step,
            loss: mean_loss,
            lr,
            images_per_second: epoch_images as f64 / secs,
            seconds: secs,
            data_wait_seconds: starved,
            knn: knn.map(|r| (r.top1, r.top5)),
            online_probe: probe_top1,
        };
        if main_rank {
            // The checkpoint first: after a kill between the two, the resumed run cuts the log
            // back to the checkpoint instead of holding an epoch the checkpoint lacks.
            save(&trainer, &eval, &at, (0, 0.0, 0, 0.0, 0.0))?;
            log.epoch(&record)?;
            say!("{}", record.line(cfg.train.epochs));
        }
        if let Some(d) = &dist {
            // The other ranks wait here while rank 0 evaluates and writes the checkpoint.
            d.barrier()?;
        }
        if at.epoch < cfg.train.epochs {
            if let Some(reason) = stop_now(dist.as_deref())? {
                return Ok(Finished::Stopped { reason, epoch: at.epoch, step: at.step, checkpoint: ckpt_path });
            }
        }
    }

    if loader.skipped() > 0 {
        say!("skipped {} unreadable image(s) in this run (data.on_bad_image = \"skip\")", loader.skipped());
    }
    if at.epoch < cfg.train.epochs {
        say!(
            "stopped after epoch {} of {}; continue with: unmix pretrain --out {} --resume",
            at.epoch,
            cfg.train.epochs,
            out.display()
        );
    }
    if !main_rank {
        return Ok(Finished::Worker { rank, epochs: at.epoch });
    }
    // Both readouts at the end of the run (none for a run stopped before its last epoch).
    let finished = !opts.skip_eval && at.epoch == cfg.train.epochs;
    let (knn_head, knn_backbone) =
        if finished { eval.readouts(cfg, device, &trainer, last_knn.as_ref())? } else { (None, None) };
    let summary = Summary {
        cost: Some(cost),
        dataset: cfg.data.dataset.to_string(),
        epochs: at.epoch,
        epochs_planned: cfg.train.epochs,
        final_loss: last_loss.is_finite().then_some(last_loss),
        images_per_second: if at.train_seconds > 0.0 { at.images as f64 / at.train_seconds } else { 0.0 },
        knn: last_knn.map(|r| KnnSummary::new(cfg, &r)),
        knn_backbone,
        knn_head,
        machine: Some(summary::machine()),
        method: cfg.method.name().to_string(),
        mixture: Some(cfg.mixture_kind().name().to_string()),
        online_probe: last_probe.map(|top1| ProbeSummary { protocol: PROBE_PROTOCOL.to_string(), top1 }),
        peak_rss_mib: summary::peak_rss_mib(),
        seed: cfg.seed,
        train_seconds: at.train_seconds,
        unmix: cfg.unmix.enabled,
        wall_seconds: wall.elapsed().as_secs_f64(),
    };
    std::fs::write(out.join("summary.json"), serde_json::to_string_pretty(&summary)?)
        .with_context(|| format!("cannot write {}", out.join("summary.json").display()))?;
    Ok(Finished::Main(Box::new(summary)))
}

/// "moco", "moco+unmix", "moco+imix": the method and its mixture.
fn run_label(cfg: &Config) -> String {
    match cfg.mixture_kind() {
        MixtureKind::None => cfg.method.name().to_string(),
        kind => format!("{}+{}", cfg.method.name(), kind.name()),
    }
}

/// "10 epochs", or with train.steps "4095 steps (17.50 epochs, train.steps)".
fn length_phrase(cfg: &Config, per_epoch: usize) -> String {
    if cfg.train.steps == 0 {
        return format!("{} epochs", cfg.train.epochs);
    }
    format!(
        "{} steps ({:.2} epochs, train.steps; the schedule spans them)",
        cfg.train.steps,
        cfg.train.steps as f64 / per_epoch as f64
    )
}

/// The run's resolved config, beside its checkpoint.
fn write_config(out: &Path, cfg: &Config) -> Result<()> {
    let path = out.join("config.toml");
    std::fs::write(&path, cfg.to_toml()).with_context(|| format!("cannot write {}", path.display()))
}

/// Whether to stop at this step (a signal or a closed stdout), agreed by every process.
fn stop_now(dist: Option<&crate::dist::Dist>) -> Result<Option<StopReason>> {
    let mine = crate::console::stop_requested();
    let Some(d) = dist else { return Ok(mine) };
    let t = Tensor::from_slice(&[f64::from(u8::from(mine.is_some()))]);
    d.all_reduce_sum(&t)?;
    Ok((t.double_value(&[0]) > 0.0).then_some(mine.unwrap_or(StopReason::Interrupted)))
}

/// The evaluation splits must be images of the training images' kind: the same channels, the
/// same size (fixed-size datasets), and labels the bank knows.
fn check_splits(cfg: &Config, train: &crate::data::Split, knn: &KnnData) -> Result<()> {
    let first = |s: &crate::data::Split, name: &str| -> Result<(usize, usize, usize)> {
        let img = s.data.image(0).with_context(|| format!("reading the first image of the {name} split"))?;
        Ok((img.channels, img.height, img.width))
    };
    let t = first(train, "train")?;
    let e = first(&knn.test, "test")?;
    let variable = cfg.data.eval_resize > 0;
    if t.0 != e.0 || (!variable && (t.1, t.2) != (e.1, e.2)) {
        bail!(
            "the test split of {} in {} holds {}x{} images with {} channel(s), the train split {}x{} with {}: they are not the same kind of images",
            cfg.data.dataset,
            cfg.data.root,
            e.1,
            e.2,
            e.0,
            t.1,
            t.2,
            t.0
        );
    }
    let classes = knn.bank.classes;
    if let Some(&l) = knn.test.labels.iter().find(|&&l| l as usize >= classes) {
        bail!(
            "the test split of {} in {} has label {l}, but the train split (the kNN bank) has {classes} classes: the splits do not match",
            cfg.data.dataset,
            cfg.data.root
        );
    }
    Ok(())
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
