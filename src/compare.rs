//! `unmix compare`: the ablation users run to check the paper's claim on their data: the base
//! method and + Un-Mix on the same seeds, everything else equal, with a mean +- std table and a plot.

use crate::config::Config;
use crate::train::{pretrain, RunOptions};
use anyhow::{Context, Result};
use serde_json::json;
use std::path::Path;

/// Mean and sample standard deviation.
pub fn mean_std(v: &[f64]) -> (f64, f64) {
    let n = v.len() as f64;
    let mean = v.iter().sum::<f64>() / n;
    let var = if v.len() > 1 { v.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / (n - 1.0) } else { 0.0 };
    (mean, var.sqrt())
}

/// Runs `seeds` seeds (config seed, +1, ...) with Un-Mix off and on under `out/`, and writes
/// `compare.md`, `compare.json` and `compare.png` there. Returns the markdown table.
pub fn compare(cfg: &Config, seeds: usize, out: &Path, progress: bool) -> Result<String> {
    std::fs::create_dir_all(out).with_context(|| format!("cannot create {}", out.display()))?;
    let mut results: Vec<(bool, u64, f64, f64)> = Vec::new();
    for s in 0..seeds as u64 {
        for unmix in [false, true] {
            let mut c = cfg.clone();
            c.seed = cfg.seed + s;
            c.unmix.enabled = unmix;
            let dir = out.join(format!("{}-seed{}", if unmix { "unmix" } else { "base" }, c.seed));
            println!("== {} seed {} -> {}", if unmix { "+Un-Mix" } else { "base" }, c.seed, dir.display());
            let summary = pretrain(&c, &RunOptions { out: dir, progress, report: false, ..Default::default() })?;
            let top1 = summary["knn"]["top1"].as_f64().context("the run reported no kNN accuracy")?;
            let ips = summary["images_per_second"].as_f64().unwrap_or(f64::NAN);
            results.push((unmix, c.seed, top1, ips));
        }
    }
    let pick = |u: bool| -> Vec<f64> { results.iter().filter(|r| r.0 == u).map(|r| r.2).collect() };
    let (base, with) = (pick(false), pick(true));
    let (bm, bs) = mean_std(&base);
    let (um, us) = mean_std(&with);
    let protocol = format!(
        "{} on {}, {} epochs, weighted kNN k {} t {} top-1 (%) on the test split, seeds {}..{}",
        cfg.method.name, cfg.data.dataset, cfg.train.epochs, cfg.eval.knn_k, cfg.eval.knn_t, cfg.seed, cfg.seed + seeds as u64 - 1
    );
    let mut md = format!("# Un-Mix ablation\n\n{protocol}\n\n| seed | base | + Un-Mix |\n|---|---|---|\n");
    for (i, (b, u)) in base.iter().zip(&with).enumerate() {
        md += &format!("| {} | {b:.2} | {u:.2} |\n", cfg.seed + i as u64);
    }
    md += &format!("| **mean +- std** | **{bm:.2} +- {bs:.2}** | **{um:.2} +- {us:.2}** |\n\nDifference of means: {:+.2} points.\n", um - bm);
    std::fs::write(out.join("compare.md"), &md)?;
    std::fs::write(
        out.join("compare.json"),
        serde_json::to_string_pretty(&json!({
            "protocol": protocol,
            "runs": results.iter().map(|r| json!({"unmix": r.0, "seed": r.1, "knn_top1": r.2, "images_per_second": r.3})).collect::<Vec<_>>(),
            "base": {"mean": bm, "std": bs}, "unmix": {"mean": um, "std": us},
        }))?,
    )?;
    let xs: Vec<f64> = (0..seeds).map(|i| (cfg.seed + i as u64) as f64).collect();
    crate::report::plot::line_plot(&out.join("compare.png"), "KNN TOP-1 BY SEED", "SEED", &xs, &[("BASE", base), ("UNMIX", with)])?;
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
