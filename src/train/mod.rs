//! The pretraining loop: data -> a mixture -> method loss -> optimizer, with per-epoch
//! evaluation, records, atomic checkpoints and exact resume. [`pretrain`] reads as the run's
//! life: the runtime, the run folder under its lock ([`folder`]), how the run starts there, then
//! [`run`]'s phases: prepare (data, method; on resume the checkpoint's state and repaired
//! records), train the epochs, finish. The pieces: [`step`] (one training step, shared with
//! `unmix bench step`), [`eval`] (the end-of-epoch evaluation), [`log`] (the run's records),
//! [`summary`] (what a run reports).

pub mod eval;
pub mod folder;
pub mod log;
mod run;
pub mod step;
pub mod summary;

use crate::build;
use crate::config::Config;
use crate::console::StopReason;
use crate::dist::Dist;
use crate::say;
use anyhow::{bail, Result};
use folder::{RunFolder, Start};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Instant;
use summary::Summary;
use tch::Device;

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
    /// `--resume` of a run that had finished all its epochs, its records and summary.json in
    /// place: nothing was changed (`report_missing`: report.md is not there).
    AlreadyFinished { epochs: usize, report_missing: bool },
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

/// Where the run computes: the device and, for a multi-process run, its process group.
pub(crate) struct Runtime {
    device: Device,
    dist: Option<Arc<Dist>>,
    rank: usize,
    world: usize,
}

impl Runtime {
    /// Threads and device, the process group when launched by torchrun (or with RANK /
    /// WORLD_SIZE set; Gloo on the CPU, NCCL for CUDA when built with it), and the checks that
    /// depend on them.
    fn start(cfg: &Config) -> Result<Runtime> {
        crate::console::catch_interrupts();
        let device = build::runtime(cfg)?;
        let dist = Dist::from_env_on(device)?.map(Arc::new);
        let (rank, world) = dist.as_ref().map_or((0, 1), |d| (d.rank, d.world));
        if world > 1 && !cfg.train.drop_last {
            bail!("train.drop_last = false is not supported with {world} processes: every process needs a full share of each batch");
        }
        cfg.method.validate(&cfg.run_context(world))?;
        if cfg.train.precision == crate::precision::Precision::Bf16
            && device == Device::Cpu
            && !crate::precision::cpu_has_native_bf16()
        {
            eprintln!(
                "warning: train.precision = \"bf16\" on a CPU without native bf16 (no avx512_bf16 or amx_bf16, or ONEDNN_MAX_CPU_ISA \
                 below them): libtorch emulates bf16 here, slower than fp32; train.precision = \"fp32\" is faster on this machine"
            );
        }
        Ok(Runtime { device, dist, rank, world })
    }

    /// Only rank 0 writes the run folder and evaluates.
    fn main_rank(&self) -> bool {
        self.rank == 0
    }

    fn announce_data_parallel(&self, cfg: &Config) {
        if self.world > 1 && self.main_rank() {
            say!(
                "data parallel: {} processes x batch {} = effective batch {}; train.lr = {} is used as given for the effective batch \
                 (no automatic scaling; the linear rule would be lr x effective / 256); Un-Mix mixes within each process's batch with its own draws, as the authors' code",
                self.world,
                cfg.train.batch_size,
                cfg.train.batch_size * self.world,
                cfg.train.lr
            );
        }
    }
}

/// Pretrains as configured; rank 0 returns the summary also written to `summary.json`.
///
/// The run folder belongs to one run and one process: its lock is taken before anything is
/// read or moved, a new run into a folder that holds anything is refused (unless `force` moves
/// the old contents aside), and nothing is written before the config, the data and (on resume)
/// the checkpoint have been checked. The checkpoint is the records' truth: on resume (also of a
/// finished run) the records are made to agree with it, and each epoch's records are written
/// after its checkpoint.
pub fn pretrain(cfg: &Config, opts: &RunOptions) -> Result<Finished> {
    let wall = Instant::now();
    let cfg = &cfg.with_absolute_root();
    let rt = Runtime::start(cfg)?;
    let folder = RunFolder::open(&opts.out, rt.main_rank())?;
    let data = run::RunData::load(cfg, opts, &rt)?;
    let cfg = &data.sized(cfg, &rt);
    let start = folder.start(cfg, opts.resume, opts.force)?;
    if let Some(done) = already_finished(&folder, &start)? {
        return Ok(done);
    }
    let mut run = run::Run::prepare(cfg, opts, &rt, &folder, start, data)?;
    if let Some(stopped) = run.train()? {
        return Ok(stopped);
    }
    run.finish(wall)
}

/// A finished run whose records agree with its checkpoint and whose summary.json is there:
/// nothing to do. Otherwise the run goes on to repair and finish what a kill left.
fn already_finished(folder: &RunFolder, start: &Start) -> Result<Option<Finished>> {
    let Start::Finished { meta, .. } = start else { return Ok(None) };
    let dir = &folder.dir;
    if !dir.join("summary.json").exists() || !log::records_agree(dir, meta)? {
        return Ok(None);
    }
    let report_missing = !dir.join("report.md").exists();
    if !report_missing {
        say!(
            "the run in {} finished all {} epochs; nothing to do (results: summary.json and report.md there; more epochs: --set train.epochs=N)",
            dir.display(),
            meta.epoch
        );
    }
    Ok(Some(Finished::AlreadyFinished { epochs: meta.epoch, report_missing }))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::Path;

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
