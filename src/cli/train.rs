//! The commands that train: `pretrain` (a run folder), `compare` (arms on seeds) and `preview`
//! (what the mixing does to a batch, before any training).

use super::args::{CompareArgs, PretrainArgs, PreviewArgs};
use super::outputs::{with_data, writable};
use anyhow::{bail, Context, Result};
use std::path::{Path, PathBuf};
use unmix::config::Config;
use unmix::console::StopReason;
use unmix::say;
use unmix::train::summary::Summary;
use unmix::train::{self, Finished, RunOptions};

/// `unmix pretrain`: the config (a new run's, or the checkpoint's on --resume), the run, then
/// what its end says (the report and figures, or how to continue a stopped run).
pub fn pretrain(a: PretrainArgs) -> Result<i32> {
    let (cfg, out) = pretrain_config(&a)?;
    let until_epoch = a.until_epoch.map(|e| e as usize);
    let opts = RunOptions {
        out: out.clone(),
        resume: a.resume,
        force: a.force,
        until_epoch,
        progress: !a.quiet,
        skip_eval: false,
    };
    match train::pretrain(&cfg, &opts)? {
        Finished::Main(summary) => finished(&out, &summary),
        // A process other than rank 0 of a multi-process run: rank 0 reports.
        Finished::Worker { .. } | Finished::AlreadyFinished { report_missing: false, .. } => Ok(0),
        Finished::AlreadyFinished { report_missing: true, epochs } => {
            let report = unmix::report::write_report(&out)?;
            say!("the run in {} finished all {epochs} epochs; wrote its missing {}", out.display(), report.display());
            Ok(0)
        }
        Finished::Stopped { reason, epoch, step, checkpoint } => {
            eprintln!(
                "{reason}: stopped at step {step} (in epoch {}) with a checkpoint at {}; continue with: unmix pretrain --out {} --resume",
                epoch + 1,
                checkpoint.display(),
                unmix::console::quote(&out)
            );
            Ok(if reason == StopReason::Interrupted { 130 } else { 1 })
        }
    }
}

/// The run's config and folder: on --resume the checkpoint's config with the accepted edits
/// (printed), else --config with the --set overrides (and --init-from as one) and --out or
/// runs/<config name>.
fn pretrain_config(a: &PretrainArgs) -> Result<(Config, PathBuf)> {
    let mut set = with_data(a.set.clone(), a.data.clone());
    if let Some(f) = &a.init_from {
        set.push(format!("model.init_from={}", toml::Value::String(f.display().to_string())));
    }
    if a.init_allow_missing_head {
        set.push("model.init_allow_missing_head=true".into());
    }
    if a.resume {
        let out = a.out.clone().context("--resume needs --out DIR, the run folder to continue")?;
        let (cfg, edits) = train::folder::resume_config(&out, &set)?;
        for e in edits {
            say!("{e}");
        }
        return Ok((cfg, out));
    }
    let path = a.config.as_ref().context("pretrain needs --config FILE (e.g. configs/fmnist-moco-unmix.toml)")?;
    let cfg = Config::load(path, &set)?;
    let stem = path.file_stem().map(|s| s.to_string_lossy().to_string()).unwrap_or_else(|| "run".into());
    Ok((cfg, a.out.clone().unwrap_or_else(|| PathBuf::from("runs").join(stem))))
}

/// A finished run: its report, and its figures.
fn finished(out: &Path, summary: &Summary) -> Result<i32> {
    let report = unmix::report::write_report(out)?;
    say!("report: {}", report.display());
    say!("run folder: {}", out.display());
    if let Some(knn) = &summary.knn {
        say!("kNN top-1: {:.2}%  (top-5 {:.2}%; {})", knn.top1, knn.top5, knn.protocol);
    }
    if let Some(p) = &summary.online_probe {
        say!("online linear probe top-1: {:.2}%", p.top1);
    }
    say!("training images/second: {:.1}", summary.images_per_second);
    Ok(0)
}

/// `unmix compare`.
pub fn compare(a: CompareArgs) -> Result<i32> {
    if a.seeds == 0 {
        bail!("--seeds must be at least 1");
    }
    let arms = unmix::compare::parse_arms(&a.arms)?;
    let reference = match &a.reference {
        Some(r) => r.parse().map_err(|e: anyhow::Error| anyhow::anyhow!("--reference: {e}"))?,
        None => arms[0].clone(),
    };
    let cfg = Config::load(&a.config, &with_data(a.set, a.data))?;
    let stem = a.config.file_stem().map(|s| s.to_string_lossy().to_string()).unwrap_or_else(|| "run".into());
    let out = a.out.unwrap_or_else(|| PathBuf::from("runs").join(format!("compare-{stem}")));
    let opts = unmix::compare::CompareOptions {
        arms: &arms,
        reference: &reference,
        seeds: a.seeds,
        out: &out,
        progress: !a.quiet,
        allow_mixed_machines: a.allow_mixed_machines,
    };
    let md = unmix::compare::compare(&cfg, &opts)?;
    say!("{md}\nwritten to {}", out.join("compare.md").display());
    Ok(0)
}

/// `unmix preview`.
pub fn preview(a: PreviewArgs) -> Result<i32> {
    if a.images < 2 {
        bail!("--images must be at least 2: the partner of sample i is sample N-1-i");
    }
    writable(&a.out)?;
    let cfg = Config::load(&a.config, &with_data(a.set, a.data))?;
    let shown = unmix::report::preview::write_preview(&cfg, a.images, a.mode.as_deref(), &a.out)?;
    say!("wrote {} ({shown})", a.out.display());
    Ok(0)
}
