//! A run in its folder, from prepared to finished: [`Run::prepare`] (data, evaluation, method,
//! loader; the checkpoint's state and repaired records on resume), [`Run::train`] (the epochs,
//! each ending with its checkpoint and then its records) and [`Run::finish`] (both readouts and
//! summary.json). Every write of a run happens in [`Run::save`], [`RunLog`] or [`Run::finish`],
//! each marked with its [`crate::fault`] point.

use super::eval::{check_splits, EpochEval};
use super::folder::{RunFolder, Start};
use super::log::{progress_bar, EpochRecord, RunLog};
use super::step::Trainer;
use super::summary::{self, KnnSummary, ProbeSummary, Summary, PROBE_PROTOCOL};
use super::{Finished, RunOptions, Runtime};
use crate::build;
use crate::checkpoint::{self, Meta};
use crate::config::Config;
use crate::console::StopReason;
use crate::cost::Cost;
use crate::data::{bad_image_policy, load_pretrain, to_tensor, train_recipes, Split};
use crate::eval::knn::KnnResult;
use crate::mix::MixtureKind;
use crate::say;
use anyhow::{bail, Context, Result};
use std::path::Path;
use std::time::Instant;
use tch::{Kind, Tensor};
use unmix_data::loader::{num_batches, Loader, LoaderConfig};

/// Where the run stands: finished epochs and steps, totals, and the epoch records so far.
#[derive(Default)]
struct Progress {
    epoch: usize,
    step: u64,
    train_seconds: f64,
    images: u64,
    /// The metrics.jsonl lines of the finished epochs (kept in the checkpoint).
    records: Vec<serde_json::Value>,
    /// The machine lines that trained the run, one more per change of class (kept in the checkpoint).
    machines: Vec<String>,
}

/// Inside an interrupted epoch: its batches done and running sums.
#[derive(Clone, Copy, Default)]
struct Within {
    batches: usize,
    loss_sum: f64,
    images: u64,
    seconds: f64,
    data_wait: f64,
}

/// The training images and the evaluation, checked against each other and the config.
pub(super) struct RunData {
    train_set: Split,
    eval: EpochEval,
    per_epoch: usize,
}

impl RunData {
    pub(super) fn load(cfg: &Config, opts: &RunOptions, rt: &Runtime) -> Result<RunData> {
        let train_set = load_pretrain(cfg)?;
        let eval = EpochEval::new(cfg)?;
        if let Some(knn) = &eval.knn {
            check_splits(cfg, &train_set, knn)?;
        } else if rt.main_rank() && !opts.skip_eval {
            say!(
                "no labeled images (data.eval_root is not set): kNN and the online probe are skipped; \
                 set data.eval_root to a labeled folder (ROOT/CLASS/IMAGE) to evaluate"
            );
        }
        let per_epoch = num_batches(train_set.len(), cfg.train.batch_size * rt.world, cfg.train.drop_last);
        if per_epoch == 0 {
            bail!(
                "{} training images give no full batch of train.batch_size = {}; lower the batch size or raise data.limit",
                train_set.len(),
                cfg.train.batch_size
            );
        }
        cfg.check_steps(per_epoch)?;
        if rt.world > 1 && matches!(cfg.mixture_kind(), MixtureKind::IMix | MixtureKind::MixCo) {
            bail!(
                "{}.enabled: the rival mixtures run in one process (their virtual labels span the whole batch); run without torchrun",
                cfg.mixture_kind().name()
            );
        }
        Ok(RunData { train_set, eval, per_epoch })
    }

    /// The config with what it leaves to the data decided (said once), and the warning for a
    /// MoCo queue longer than the data.
    pub(super) fn sized(&self, cfg: &Config, rt: &Runtime) -> Config {
        let images = self.train_set.len();
        let cfg = match cfg.sized_to(images, rt.world) {
            Some((sized, said)) => {
                say!("{said}");
                sized
            }
            None => cfg.clone(),
        };
        if let crate::method::MethodConfig::Moco(m) = &cfg.method {
            if rt.main_rank() && m.queue as usize > images {
                say!(
                    "warning: method.queue = {} holds more keys than there are images ({images}): the queue's negatives include older \
                     keys of each query's own image; for a folder this small, set method.queue = \"auto\" or lower it (a multiple of {})",
                    m.queue,
                    cfg.train.batch_size * rt.world * if m.symmetric { 2 } else { 1 }
                );
            }
        }
        cfg
    }
}

pub(super) struct Run<'a> {
    cfg: &'a Config,
    opts: &'a RunOptions,
    rt: &'a Runtime,
    folder: &'a RunFolder,
    trainer: Trainer,
    eval: EpochEval,
    loader: Loader,
    log: RunLog,
    per_epoch: usize,
    total_steps: usize,
    cost: Cost,
    at: Progress,
    within: Within,
    /// On resume, the checkpoint's tensors, kept for the online probe (built at the first step).
    probe_state: Option<Vec<(String, Tensor)>>,
    last_loss: f64,
    last_knn: Option<KnnResult>,
    last_probe: Option<f64>,
}

impl<'a> Run<'a> {
    /// Everything a run needs before its first step; nothing is written before the config, the
    /// data and (on resume) the checkpoint have been checked.
    pub(super) fn prepare(
        cfg: &'a Config,
        opts: &'a RunOptions,
        rt: &'a Runtime,
        folder: &'a RunFolder,
        start: Start,
        data: RunData,
    ) -> Result<Run<'a>> {
        let RunData { train_set, eval, per_epoch } = data;
        let total_steps = cfg.total_steps(per_epoch);
        let trainer = Trainer::new(cfg, rt.device, rt.dist.clone(), per_epoch)?;
        rt.announce_data_parallel(cfg);
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
        .sharded(rt.rank, rt.world);
        let mut run = Run {
            cfg,
            opts,
            rt,
            folder,
            trainer,
            eval,
            loader,
            log: RunLog::new(None)?,
            per_epoch,
            total_steps,
            cost: Cost::of(cfg, total_steps, rt.world),
            at: Progress::default(),
            within: Within::default(),
            probe_state: None,
            last_loss: f64::NAN,
            last_knn: None,
            last_probe: None,
        };
        run.begin(start)?;
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
        say!("counted compute: {}", run.cost.describe());
        Ok(run)
    }

    /// A new run's folder and config, or the checkpoint's state and the records made to agree
    /// with it.
    fn begin(&mut self, start: Start) -> Result<()> {
        match start {
            Start::New => self.start_new()?,
            Start::Resume { tensors, meta } | Start::Finished { tensors, meta } => self.resume_from(tensors, &meta)?,
        }
        if self.at.epoch < self.stop_at() {
            self.note_machine(); // only a machine that trains steps joins the run's machines
        }
        Ok(())
    }

    /// The epoch this process trains up to (--until-epoch, at most the config's epochs).
    fn stop_at(&self) -> usize {
        self.opts.until_epoch.unwrap_or(self.cfg.train.epochs).min(self.cfg.train.epochs)
    }

    /// This machine joins the run's machines when its class is not the last one's; a resume that
    /// changes class says so (the steps from here round as this class does, so the run repeats
    /// neither class's run exactly).
    fn note_machine(&mut self) {
        let here = summary::machine();
        let class = summary::machine_class(&here);
        if self.at.machines.is_empty() && self.at.step > 0 {
            self.at.machines.push(summary::UNRECORDED_MACHINE.to_string()); // a checkpoint of an earlier version
        }
        let last = self.at.machines.last().map(|m| summary::machine_class(m));
        if last.as_deref() == Some(class.as_str()) {
            return;
        }
        if let Some(last) = last.filter(|_| self.rt.main_rank()) {
            say!(
                "warning: this run trained on another machine class ({last}) until step {}, and goes on here ({class}); \
                 the steps from here round differently, so it will repeat neither class's run exactly (its summary lists \
                 both machines)",
                self.at.step
            );
        }
        self.at.machines.push(here);
    }

    /// A new run: the encoders from `model.init_from` if given, and (main rank) a fresh run folder
    /// with the config in it, an earlier one moved aside.
    fn start_new(&mut self) -> Result<()> {
        let main = self.rt.main_rank();
        if let Some(file) = &self.cfg.model.init_from {
            let method = self.trainer.method.as_mut();
            let said = crate::init::init_from(method, Path::new(file), self.cfg.model.init_allow_missing_head)?;
            say!("{said}");
        }
        if main {
            if self.folder.in_use() {
                let to = self.folder.move_aside()?;
                say!("moved the earlier contents of {} to {} (--force)", self.folder.dir.display(), to.display());
            }
            std::fs::create_dir_all(self.folder.dir.join("checkpoints"))
                .with_context(|| format!("cannot create run folder {}", self.folder.dir.display()))?;
            self.folder.write_config(self.cfg)?;
        }
        self.log = RunLog::new(main.then_some(self.folder.dir.as_path()))?;
        Ok(())
    }

    /// A resumed (or finished) run: the trainer's state, the progress and the epoch in progress
    /// from the checkpoint, and the logs continued from where it stopped.
    fn resume_from(&mut self, tensors: Vec<(String, Tensor)>, meta: &Meta) -> Result<()> {
        let main = self.rt.main_rank();
        let ckpt = self.folder.checkpoint();
        self.trainer
            .load_state(&tensors)
            .with_context(|| format!("{} does not fit this configuration", ckpt.display()))?;
        self.at = Progress {
            epoch: meta.epoch,
            step: meta.step,
            train_seconds: meta.train_seconds,
            images: meta.images,
            records: meta.records.clone(),
            machines: meta.machines.clone(),
        };
        self.within = Within {
            batches: meta.batch_in_epoch,
            loss_sum: meta.epoch_loss_sum,
            images: meta.epoch_images,
            seconds: meta.epoch_seconds,
            data_wait: meta.epoch_data_wait,
        };
        self.probe_state = Some(tensors);
        if main {
            self.folder.write_config(self.cfg)?;
        }
        self.log = RunLog::resumed(main.then_some(self.folder.dir.as_path()), meta)?;
        self.recall(meta);
        self.say_extension(meta);
        say!(
            "resumed from {} at step {} ({} of {} epochs finished{})",
            ckpt.display(),
            meta.step,
            meta.epoch,
            self.cfg.train.epochs,
            if meta.batch_in_epoch > 0 {
                format!(
                    "; epoch {} goes on from batch {} of {}",
                    meta.epoch + 1,
                    meta.batch_in_epoch + 1,
                    self.per_epoch
                )
            } else {
                String::new()
            }
        );
        Ok(())
    }

    /// A resume that makes the run longer says how the learning rate goes on: on the longer
    /// run's schedule from the next step, the steps trained so far having followed the shorter.
    fn say_extension(&self, meta: &Meta) {
        let Ok(old) = Config::from_saved_toml(&meta.config, "the checkpoint's config", &[]) else { return };
        if old.total_steps(self.per_epoch) == self.total_steps {
            return;
        }
        say!(
            "extending the run from {} to {}: the learning rate continues on the schedule of the longer run from step {} on \
             ({:.5} there; the steps trained so far followed the shorter run's schedule)",
            length_phrase(&old, self.per_epoch),
            length_phrase(self.cfg, self.per_epoch),
            meta.step + 1,
            self.trainer.schedule.lr(meta.epoch, meta.step as usize)
        );
    }

    /// The last logged loss and online-probe accuracy of a resumed run, from its records.
    fn recall(&mut self, meta: &Meta) {
        if let Some(l) = self.log.last_logged_loss() {
            self.last_loss = l;
        }
        self.last_probe = meta.records.iter().rev().find_map(|r| r["online_probe_top1"].as_f64());
    }

    /// Trains the remaining epochs; `Some` when the run stopped early (a signal or a closed
    /// stdout) with a checkpoint of the step reached.
    pub(super) fn train(&mut self) -> Result<Option<Finished>> {
        let stop_at = self.stop_at();
        while self.at.epoch < stop_at {
            if let Some(reason) = self.epoch()? {
                return Ok(Some(self.stopped(reason)));
            }
            if self.at.epoch < self.cfg.train.epochs {
                if let Some(reason) = stop_now(self.rt.dist.as_deref())? {
                    return Ok(Some(self.stopped(reason)));
                }
            }
        }
        if self.loader.skipped() > 0 {
            say!("skipped {} unreadable image(s) in this run (data.on_bad_image = \"skip\")", self.loader.skipped());
        }
        if self.at.epoch < self.cfg.train.epochs {
            say!(
                "stopped after epoch {} of {}; continue with: unmix pretrain --out {} --resume",
                self.at.epoch,
                self.cfg.train.epochs,
                crate::console::quote(&self.folder.dir)
            );
        }
        Ok(None)
    }

    fn stopped(&self, reason: StopReason) -> Finished {
        let epoch = self.at.epoch;
        Finished::Stopped { reason, epoch, step: self.at.step, checkpoint: self.folder.checkpoint() }
    }

    /// The progress bar's message after `batches` batches (`images` images) of this sitting's
    /// epoch since `t0`: loss, lr, speed and the run's time left at this pace (its evaluations not
    /// counted).
    fn pace(&self, loss: f64, lr: f64, t0: Instant, images: u64, batches: usize) -> String {
        let secs = t0.elapsed().as_secs_f64();
        let ips = images as f64 / secs;
        let left = secs / batches as f64 * (self.total_steps as u64 - self.at.step) as f64;
        format!("loss {loss:.4} lr {lr:.5} {ips:.0} img/s, run ETA {}", duration(left))
    }

    /// One epoch (the rest of it, when resumed inside it), ended by its evaluation, checkpoint
    /// and records; `Some` when a stop was asked for inside it (its checkpoint written).
    fn epoch(&mut self) -> Result<Option<StopReason>> {
        let (cfg, device, epoch) = (self.cfg, self.rt.device, self.at.epoch);
        let w0 = std::mem::take(&mut self.within);
        // Batches of this epoch: all of them, but for the last one of a run of train.steps.
        let epoch_len = self.per_epoch.min(self.total_steps - epoch * self.per_epoch);
        let bar = progress_bar(self.opts.progress, epoch_len as u64, epoch, cfg.train.epochs);
        bar.set_position(w0.batches as u64);
        let t0 = Instant::now();
        // The running sum in fp32, as an uninterrupted epoch accumulates it (exact round trip).
        let mut loss_sum = Tensor::from(w0.loss_sum as f32).to_device(device);
        let mut batches = self.loader.epoch(epoch as u64, w0.batches);
        let mut images = w0.images;
        let mut lr = self.trainer.schedule.lr(epoch, self.at.step as usize);
        for (i, batch) in (&mut batches).take(epoch_len - w0.batches).enumerate() {
            let i = w0.batches + i;
            let mut batch = batch.with_context(|| format!("preparing batch {i} of epoch {}", epoch + 1))?;
            lr = self.trainer.schedule.lr(epoch, self.at.step as usize);
            let views: Vec<Tensor> = batch.views.iter().map(|v| to_tensor(v, device)).collect();
            if self.at.step == 0 {
                check_normalized(cfg, &views[0])?;
            }
            // The tensors own copies: the buffers go back to the workers for later batches.
            let labels = std::mem::take(&mut batch.labels);
            self.loader.recycle(batch);
            let loss = self.step(&views, &labels, lr)?;
            loss_sum += loss.detach().to_kind(Kind::Float);
            images += (labels.len() * self.rt.world) as u64;
            if self.at.step.is_multiple_of(cfg.train.log_every as u64) || i + 1 == epoch_len {
                let l = self.log_step(&loss, lr)?;
                bar.set_message(self.pace(l, lr, t0, images - w0.images, i + 1 - w0.batches));
            }
            bar.inc(1);
            if i + 1 < epoch_len {
                if let Some(reason) = stop_now(self.rt.dist.as_deref())? {
                    bar.finish_and_clear();
                    let seconds = w0.seconds + t0.elapsed().as_secs_f64();
                    let data_wait = w0.data_wait + batches.starved().as_secs_f64();
                    let inside =
                        Within { batches: i + 1, loss_sum: loss_sum.double_value(&[]), images, seconds, data_wait };
                    drop(batches);
                    self.save_all_ranks(inside)?;
                    return Ok(Some(reason));
                }
            }
        }
        let seconds = w0.seconds + t0.elapsed().as_secs_f64();
        let data_wait = w0.data_wait + batches.starved().as_secs_f64();
        drop(batches);
        bar.finish_and_clear();
        let mean_loss = loss_sum.double_value(&[]) / epoch_len as f64;
        self.check_finite(mean_loss)?;
        self.at.train_seconds += seconds;
        self.at.images += images;
        self.at.epoch += 1;
        let record = self.evaluate(mean_loss, lr, images, seconds, data_wait)?;
        self.end_epoch(&record)?;
        Ok(None)
    }

    /// One optimizer step (and the online probe's) on a batch's views; the step's loss.
    fn step(&mut self, views: &[Tensor], labels: &[u32], lr: f64) -> Result<Tensor> {
        let (cfg, epoch) = (self.cfg, self.at.epoch);
        let loss = self.trainer.forward(views, self.at.step, epoch)?;
        // The probe's lr follows the main schedule's shape.
        let probe_lr = cfg.eval.online_probe_lr * lr / cfg.train.lr;
        let feats = self.trainer.method.take_features();
        self.eval.probe_step(feats, labels, probe_lr, self.rt.device, &mut self.probe_state)?;
        self.trainer.update(&loss, lr, self.at.step, epoch)?;
        self.at.step += 1;
        Ok(loss)
    }

    /// The step's loss, as the mean over processes (the global batch's loss), logged.
    fn log_step(&mut self, loss: &Tensor, lr: f64) -> Result<f64> {
        let l = match &self.rt.dist {
            Some(d) => {
                let t = loss.detach().to_kind(Kind::Double).reshape([1]);
                d.all_reduce_sum(&t)?;
                t.double_value(&[0]) / self.rt.world as f64
            }
            None => loss.double_value(&[]),
        };
        self.check_finite(l)?;
        self.last_loss = l;
        self.log.step(self.at.step, self.at.epoch, l, lr)?;
        Ok(l)
    }

    /// The finished epoch's kNN (when due) and probe accuracy, as its record.
    fn evaluate(&mut self, loss: f64, lr: f64, images: u64, seconds: f64, data_wait: f64) -> Result<EpochRecord> {
        let (cfg, device, main) = (self.cfg, self.rt.device, self.rt.main_rank());
        let due = cfg.eval.knn_every > 0 && self.at.epoch.is_multiple_of(cfg.eval.knn_every);
        let knn = if main && !self.opts.skip_eval && (due || self.at.epoch == cfg.train.epochs) {
            let r = self.eval.knn(cfg, device, &self.trainer)?;
            self.last_knn = r.or(self.last_knn);
            r
        } else {
            None
        };
        let probe = if main { self.eval.probe_accuracy(cfg, device, &self.trainer)? } else { None };
        self.last_probe = probe.or(self.last_probe);
        Ok(EpochRecord {
            epoch: self.at.epoch,
            step: self.at.step,
            loss,
            lr,
            images_per_second: images as f64 / seconds,
            seconds,
            data_wait_seconds: data_wait,
            knn: knn.map(|r| (r.top1, r.top5)),
            online_probe: probe,
        })
    }

    /// The epoch's checkpoint (with its record), then its records and console line; the other
    /// ranks wait while rank 0 evaluates and writes.
    fn end_epoch(&mut self, record: &EpochRecord) -> Result<()> {
        if self.rt.main_rank() {
            self.at.records.push(record.json());
            self.save(Within::default())?;
            self.log.epoch(record)?;
            say!("{}", record.line(self.cfg.train.epochs));
        }
        if let Some(d) = &self.rt.dist {
            d.barrier()?;
        }
        Ok(())
    }

    /// A checkpoint inside an epoch (rank 0 writes, every rank waits for it).
    fn save_all_ranks(&mut self, inside: Within) -> Result<()> {
        if self.rt.main_rank() {
            self.save(inside)?;
        }
        if let Some(d) = &self.rt.dist {
            d.barrier()?;
        }
        Ok(())
    }

    /// The checkpoint of where the run stands (inside an epoch when `inside.batches > 0`),
    /// refused when the state holds NaN or infinite values.
    fn save(&self, inside: Within) -> Result<()> {
        let cfg = self.cfg;
        let mut state = self.trainer.state();
        if let Some(p) = &self.eval.probe {
            state.extend(p.state());
        }
        let ckpt = self.folder.checkpoint();
        if let Some((name, _)) =
            state.iter().find(|(_, t)| t.is_floating_point() && !bool::try_from(t.isfinite().all()).unwrap_or(false))
        {
            bail!(
                "the run's tensor `{name}` holds NaN or infinite values after step {}; not saved, {}. {}",
                self.at.step,
                kept(&ckpt),
                suspects(cfg)
            );
        }
        let meta = Meta {
            batch_in_epoch: inside.batches,
            epoch_loss_sum: inside.loss_sum,
            epoch_images: inside.images,
            epoch_seconds: inside.seconds,
            epoch_data_wait: inside.data_wait,
            records: self.at.records.clone(),
            machines: self.at.machines.clone(),
            ..Meta::at_epoch_end(
                self.at.epoch,
                self.at.step,
                cfg.to_toml(),
                cfg.seed,
                self.at.train_seconds,
                self.at.images,
            )
        };
        let header = build::header(cfg, self.at.epoch, "unmix checkpoint: every tensor of the run");
        checkpoint::save_with(&ckpt, &state, &meta, &header)?;
        crate::fault::after("checkpoint");
        Ok(())
    }

    fn check_finite(&self, loss: f64) -> Result<()> {
        if loss.is_finite() {
            return Ok(());
        }
        bail!(
            "the loss became {loss} at step {} (epoch {}); training stopped without saving, and {}. {}",
            self.at.step,
            self.at.epoch + 1,
            kept(&self.folder.checkpoint()),
            suspects(self.cfg)
        )
    }

    /// The end of a run: both kNN readouts (a run whose records were repaired measures the
    /// configured one again, from the same weights) and summary.json.
    pub(super) fn finish(mut self, wall: Instant) -> Result<Finished> {
        let (cfg, device) = (self.cfg, self.rt.device);
        if !self.rt.main_rank() {
            return Ok(Finished::Worker { rank: self.rt.rank, epochs: self.at.epoch });
        }
        let finished = !self.opts.skip_eval && self.at.epoch == cfg.train.epochs;
        if finished && self.last_knn.is_none() {
            self.last_knn = self.eval.knn(cfg, device, &self.trainer)?;
        }
        let (knn_head, knn_backbone) = if finished {
            self.eval.readouts(cfg, device, &self.trainer, self.last_knn.as_ref())?
        } else {
            (None, None)
        };
        let at = &self.at;
        let summary = Summary {
            cost: Some(self.cost),
            dataset: cfg.data.dataset.to_string(),
            epochs: at.epoch,
            epochs_planned: cfg.train.epochs,
            final_loss: self.last_loss.is_finite().then_some(self.last_loss),
            images_per_second: if at.train_seconds > 0.0 { at.images as f64 / at.train_seconds } else { 0.0 },
            init_from: cfg.model.init_from.clone(),
            knn: self.last_knn.map(|r| KnnSummary::new(cfg, &r)),
            knn_backbone,
            knn_head,
            machine: Some(at.machines.last().cloned().unwrap_or_else(summary::machine)),
            machines: if at.machines.len() > 1 { at.machines.clone() } else { Vec::new() },
            method: cfg.method.name().to_string(),
            mixture: Some(cfg.mixture_kind().name().to_string()),
            online_probe: self.last_probe.map(|top1| ProbeSummary { protocol: PROBE_PROTOCOL.to_string(), top1 }),
            peak_rss_mib: summary::peak_rss_mib(),
            seed: cfg.seed,
            train_seconds: at.train_seconds,
            unmix: cfg.unmix.enabled,
            wall_seconds: wall.elapsed().as_secs_f64(),
        };
        checkpoint::write_atomic(
            &self.folder.dir.join("summary.json"),
            serde_json::to_string_pretty(&summary)?.as_bytes(),
        )?;
        crate::fault::after("summary");
        Ok(Finished::Main(Box::new(summary)))
    }
}

/// The first batch, normalized, must be finite and of a sane scale: data.mean and data.std are
/// on the 0-1 pixel scale.
fn check_normalized(cfg: &Config, view: &Tensor) -> Result<()> {
    let max = view.abs().max().double_value(&[]);
    if !max.is_finite() || max > 1e3 {
        bail!(
            "the first batch, normalized with data.mean = {:?} and data.std = {:?}, holds values up to {max:e}: data.mean and \
             data.std are per-channel values on the 0-1 pixel scale (e.g. mean 0.2860, std 0.3530 for Fashion-MNIST); fix them \
             in the config or with --set data.mean=[...] --set data.std=[...]",
            cfg.data.mean,
            cfg.data.std
        );
    }
    Ok(())
}

/// "42s", "7m05s", "2h03m".
fn duration(secs: f64) -> String {
    let s = secs.max(0.0).round() as u64;
    match s {
        0..60 => format!("{s}s"),
        60..3600 => format!("{}m{:02}s", s / 60, s % 60),
        _ => format!("{}h{:02}m", s / 3600, s % 3600 / 60),
    }
}

/// Which checkpoint a failed run leaves.
fn kept(ckpt: &Path) -> String {
    if ckpt.exists() {
        format!("the last good checkpoint is kept at {}", ckpt.display())
    } else {
        "no checkpoint had been written yet".to_string()
    }
}

/// What in this config can make the loss or weights non-finite, named by key.
fn suspects(cfg: &Config) -> String {
    let named = cfg.divergence_suspects();
    if named.is_empty() {
        "Lower train.lr (or use train.precision = \"fp32\"), then start again or resume with --resume".to_string()
    } else {
        format!("Keys of this config that can cause it: {}; fix them and start a new run", named.join("; "))
    }
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

/// Whether to stop at this step (a signal or a closed stdout), agreed by every process.
fn stop_now(dist: Option<&crate::dist::Dist>) -> Result<Option<StopReason>> {
    let mine = crate::console::stop_requested();
    let Some(d) = dist else { return Ok(mine) };
    let t = Tensor::from_slice(&[f64::from(u8::from(mine.is_some()))]);
    d.all_reduce_sum(&t)?;
    Ok((t.double_value(&[0]) > 0.0).then_some(mine.unwrap_or(StopReason::Interrupted)))
}

#[cfg(test)]
mod tests {
    use super::duration;

    #[test]
    fn time_left_reads_in_the_units_it_needs() {
        assert_eq!(duration(0.4), "0s");
        assert_eq!(duration(59.4), "59s");
        assert_eq!(duration(425.0), "7m05s");
        assert_eq!(duration(7380.0), "2h03m");
        assert_eq!(duration(-3.0), "0s");
    }
}
