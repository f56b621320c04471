//! `unmix compare`: the ablation users run to check the paper's claim on their data: the base
//! method and + Un-Mix on the same seeds, everything else equal, with a mean +- std table, the
//! per-seed paired differences and a plot.
//!
//! Runs are long, so a comparison can be stopped and started again with the same command: a
//! finished arm is read back from its run folder, an interrupted one resumes from its last
//! checkpoint, and a folder holding a run of another configuration is refused.

use crate::checkpoint::{self, RUN_CHECKPOINT};
use crate::config::Config;
use crate::train::{pretrain, Finished, RunOptions};
use anyhow::{bail, Context, Result};
use serde_json::{json, Value};
use std::path::Path;

/// Mean and sample standard deviation.
pub fn mean_std(v: &[f64]) -> (f64, f64) {
    let n = v.len() as f64;
    let mean = v.iter().sum::<f64>() / n;
    let var = if v.len() > 1 { v.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / (n - 1.0) } else { 0.0 };
    (mean, var.sqrt())
}

/// One finished arm of the comparison.
#[derive(Clone, Debug)]
struct Arm {
    unmix: bool,
    seed: u64,
    top1: f64,
    images_per_second: f64,
    train_seconds: f64,
    /// Whether this invocation trained it (false: read back from a finished run folder).
    trained_now: bool,
}

/// The arm's run in `dir`: read back when finished, resumed when interrupted, trained otherwise.
/// A finished run is recognized by its summary and resolved config alone (its checkpoint may have
/// been moved away to keep only the records), so result folders can be kept without weights.
fn run_arm(cfg: &Config, dir: &Path, progress: bool) -> Result<(Value, bool)> {
    let same_config = |text: &str, origin: &str| -> Result<()> {
        let saved = Config::from_saved_toml(text, origin, &[])?;
        if saved != cfg.with_absolute_root() {
            bail!(
                "{} holds a run of another configuration than this comparison's arm; give another --out, or move that folder away",
                dir.display()
            );
        }
        Ok(())
    };
    let summary_path = dir.join("summary.json");
    let finished = std::fs::read_to_string(&summary_path)
        .ok()
        .and_then(|s| serde_json::from_str::<Value>(&s).ok())
        .filter(|s| s["knn"]["top1"].is_f64() && s["epochs"].as_u64() == Some(cfg.train.epochs as u64));
    if let Some(summary) = finished {
        let saved = dir.join("config.toml");
        let text = std::fs::read_to_string(&saved).with_context(|| format!("cannot read {}", saved.display()))?;
        same_config(&text, &saved.display().to_string())?;
        crate::say!("   finished earlier: kNN top-1 {:.2}%", summary["knn"]["top1"].as_f64().unwrap_or(f64::NAN));
        return Ok((summary, false));
    }
    let ckpt = dir.join(RUN_CHECKPOINT);
    let resume = ckpt.exists();
    if resume {
        let (_, meta) = checkpoint::load(&ckpt)?;
        same_config(&meta.config, &format!("the config saved in {}", ckpt.display()))?;
        crate::say!("   resuming {} at epoch {} of {}", dir.display(), meta.epoch, cfg.train.epochs);
    }
    // A folder without a checkpoint holds a run that never finished an epoch: moved aside.
    let opts = RunOptions { out: dir.to_path_buf(), resume, force: !resume, progress, ..Default::default() };
    match pretrain(cfg, &opts)? {
        Finished::Main(summary) => Ok((serde_json::to_value(summary)?, true)),
        Finished::Worker { rank, .. } => bail!("unmix compare runs in one process (this is rank {rank} of several)"),
        Finished::AlreadyFinished { .. } => bail!("{} finished training but holds no summary.json; move it away to train it again", dir.display()),
        Finished::Stopped { reason, epoch, step, .. } => bail!(
            "{reason}: the comparison stopped in {} at step {step} (epoch {}), with a checkpoint; run the same command again to continue",
            dir.display(),
            epoch + 1
        ),
    }
}

/// Runs `seeds` seeds (config seed, +1, ...) with Un-Mix off and on under `out/` (folders
/// `base-seedS` and `unmix-seedS`), and writes `compare.md`, `compare.json` and `compare.png`
/// there. Returns the markdown table.
pub fn compare(cfg: &Config, seeds: usize, out: &Path, progress: bool) -> Result<String> {
    std::fs::create_dir_all(out).with_context(|| format!("cannot create {}", out.display()))?;
    let mut arms: Vec<Arm> = Vec::new();
    for s in 0..seeds as u64 {
        for unmix in [false, true] {
            let mut c = cfg.clone();
            c.seed = cfg.seed + s;
            c.unmix.enabled = unmix;
            let dir = out.join(format!("{}-seed{}", if unmix { "unmix" } else { "base" }, c.seed));
            crate::say!("== {} seed {} -> {}", if unmix { "+Un-Mix" } else { "base" }, c.seed, dir.display());
            let (summary, trained_now) = run_arm(&c, &dir, progress)?;
            let top1 = summary["knn"]["top1"].as_f64().context("the run reported no kNN accuracy")?;
            arms.push(Arm {
                unmix,
                seed: c.seed,
                top1,
                images_per_second: summary["images_per_second"].as_f64().unwrap_or(f64::NAN),
                train_seconds: summary["train_seconds"].as_f64().unwrap_or(f64::NAN),
                trained_now,
            });
        }
    }
    let pick = |u: bool| -> Vec<f64> { arms.iter().filter(|r| r.unmix == u).map(|r| r.top1).collect() };
    let (base, with) = (pick(false), pick(true));
    let diffs: Vec<f64> = base.iter().zip(&with).map(|(b, u)| u - b).collect();
    let (bm, bs) = mean_std(&base);
    let (um, us) = mean_std(&with);
    let (dm, ds) = mean_std(&diffs);
    let protocol = format!(
        "{} on {}, {} epochs, {}, weighted kNN k {} t {} on the {} features, top-1 (%) on the test split, seeds {}..{}",
        cfg.method.name(),
        cfg.data.dataset,
        cfg.train.epochs,
        cfg.train.precision.name(),
        cfg.eval.knn_k,
        cfg.eval.knn_t,
        match cfg.eval.features {
            crate::model::Features::Head => "head",
            crate::model::Features::Backbone => "backbone",
        },
        cfg.seed,
        cfg.seed + seeds as u64 - 1
    );
    let mut md =
        format!("# Un-Mix ablation\n\n{protocol}\n\n| seed | base | + Un-Mix | + Un-Mix - base |\n|---|---|---|---|\n");
    for (i, ((b, u), d)) in base.iter().zip(&with).zip(&diffs).enumerate() {
        md += &format!("| {} | {b:.2} | {u:.2} | {d:+.2} |\n", cfg.seed + i as u64);
    }
    md += &format!(
        "| **mean +- std** | **{bm:.2} +- {bs:.2}** | **{um:.2} +- {us:.2}** | **{dm:+.2} +- {ds:.2}** |\n\n\
         Paired difference (same seed, + Un-Mix minus base): mean {dm:+.2} points, sample std {ds:.2}, over {} seed(s).\n",
        diffs.len()
    );
    std::fs::write(out.join("compare.md"), &md)
        .with_context(|| format!("cannot write {}", out.join("compare.md").display()))?;
    let runs: Vec<Value> = arms
        .iter()
        .map(|r| {
            json!({"unmix": r.unmix, "seed": r.seed, "knn_top1": r.top1, "images_per_second": r.images_per_second,
                   "train_seconds": r.train_seconds, "trained_now": r.trained_now})
        })
        .collect();
    let record = json!({
        "protocol": protocol,
        "method": cfg.method.name(),
        "epochs": cfg.train.epochs,
        "runs": runs,
        "base": {"mean": bm, "std": bs}, "unmix": {"mean": um, "std": us},
        "paired_difference": {"per_seed": diffs, "mean": dm, "std": ds},
    });
    std::fs::write(out.join("compare.json"), serde_json::to_string_pretty(&record)?)
        .with_context(|| format!("cannot write {}", out.join("compare.json").display()))?;
    let xs: Vec<f64> = (0..seeds).map(|i| (cfg.seed + i as u64) as f64).collect();
    crate::report::plot::line_plot(
        &out.join("compare.png"),
        &format!("kNN top-1 by seed: {} on {}, {} epochs", cfg.method.name(), cfg.data.dataset, cfg.train.epochs),
        "seed",
        "kNN top-1 (%)",
        &xs,
        &[("base", base), ("+ Un-Mix", with)],
    )?;
    Ok(md)
}

#[cfg(test)]
mod tests {
    #[test]
    fn mean_and_sample_std() {
        let (m, s) = super::mean_std(&[1.0, 2.0, 3.0, 4.0]);
        assert!((m - 2.5).abs() < 1e-12);
        assert!((s - (5.0f64 / 3.0).sqrt()).abs() < 1e-12);
        assert_eq!(super::mean_std(&[7.0]), (7.0, 0.0));
    }
}
