//! Run reports: a run folder's plots and report.md, and the Un-Mix preview grid.

pub mod plot;
pub mod preview;

use crate::build::LoadedRun;
use crate::config::Config;
use anyhow::{bail, Context, Result};
use serde_json::Value;
use std::path::{Path, PathBuf};

fn column(rows: &[Value], key: &str) -> Vec<f64> {
    rows.iter().map(|r| r[key].as_f64().unwrap_or(f64::NAN)).collect()
}

/// 2-D PCA of the rows of `x` (N, D).
pub fn pca2(x: &tch::Tensor) -> Vec<(f64, f64)> {
    let x = x.to_kind(tch::Kind::Double);
    let c = &x - x.mean_dim(0, true, tch::Kind::Double);
    let cov = c.transpose(0, 1).mm(&c) / (x.size()[0].max(2) - 1) as f64;
    let (_, vecs) = cov.linalg_eigh("L");
    // eigh sorts eigenvalues ascending: the last two columns are the top components.
    let d = vecs.size()[1];
    let top = vecs.narrow(1, d - 2, 2).flip([1]);
    let p = c.mm(&top);
    let v: Vec<f64> = Vec::try_from(p.flatten(0, -1)).expect("double");
    v.chunks(2).map(|c| (c[0], c[1])).collect()
}

/// Writes (or rewrites) a run folder's report: loss.png, lr.png, accuracy.png, embeddings.png
/// (PCA of test-set embeddings coloured by class) and report.md.
pub fn write_report(run: &Path) -> Result<PathBuf> {
    let (cfg, steps, epochs) = read_records(run)?;
    let label = format!("{}{}", cfg.method.name(), cfg.mixture_kind().suffix());
    let labeled = crate::data::has_labels(&cfg);
    draw_curves(run, &cfg, &label, &steps, &epochs, labeled)?;
    let embed_note = embedding_map(run, &cfg, &label, labeled)?;
    let md = markdown(run, &cfg, &epochs, labeled, &embed_note);
    let out = run.join("report.md");
    crate::checkpoint::write_atomic(&out, md.as_bytes())?;
    crate::fault::after("report");
    Ok(out)
}

/// The run's configuration and its per-step and per-epoch records.
fn read_records(run: &Path) -> Result<(Config, Vec<Value>, Vec<Value>)> {
    let config_path = run.join("config.toml");
    let text = std::fs::read_to_string(&config_path)
        .with_context(|| format!("{} is not an unmix run folder (no config.toml)", run.display()))?;
    let cfg = Config::from_saved_toml(&text, &config_path.display().to_string(), &[])?;
    let steps = crate::checkpoint::read_jsonl(&run.join("steps.jsonl"))?;
    let epochs = crate::checkpoint::read_jsonl(&run.join("metrics.jsonl"))?;
    if steps.is_empty() && epochs.is_empty() {
        bail!("{} has no metrics yet (metrics.jsonl / steps.jsonl)", run.display());
    }
    Ok((cfg, steps, epochs))
}

/// loss.png and lr.png over the logged steps; accuracy.png over the epochs when there are labels
/// (epochs without a kNN evaluation leave gaps that the plot skips; every value is a dot).
fn draw_curves(run: &Path, cfg: &Config, label: &str, steps: &[Value], epochs: &[Value], labeled: bool) -> Result<()> {
    let step_x = column(steps, "step");
    let title = format!("Training loss: {label} on {}", cfg.data.dataset);
    plot::line_plot(
        &run.join("loss.png"),
        &title,
        "step",
        "loss",
        &step_x,
        &[("loss (logged steps)", column(steps, "loss"))],
    )?;
    plot::line_plot(
        &run.join("lr.png"),
        "Learning rate",
        "step",
        "learning rate",
        &step_x,
        &[("lr", column(steps, "lr"))],
    )?;
    if labeled {
        let curves =
            [("kNN", column(epochs, "knn_top1")), ("online linear probe", column(epochs, "online_probe_top1"))];
        let title = format!("Test top-1: {label}");
        plot::line_plot(&run.join("accuracy.png"), &title, "epoch", "top-1 (%)", &column(epochs, "epoch"), &curves)?;
    }
    Ok(())
}

/// embeddings.png, a PCA map of (up to) 2000 test images from the run's checkpoint; the sentence
/// report.md gives about it.
fn embedding_map(run: &Path, cfg: &Config, label: &str, labeled: bool) -> Result<String> {
    let ckpt = run.join(crate::checkpoint::RUN_CHECKPOINT);
    if !labeled {
        return Ok("no labeled images (data.eval_root is not set), so no embedding map".to_string());
    }
    if !ckpt.exists() {
        return Ok("no checkpoint yet".to_string());
    }
    let loaded = LoadedRun::from_checkpoint(&ckpt, &[])?;
    let test = crate::data::load_split(cfg, false)?.limit(2000);
    let f = crate::eval::embed_split(cfg, loaded.device, loaded.method.as_ref(), &test, cfg.eval.features, true)?;
    let title = format!("Test embeddings (PCA), {label}, epoch {}", loaded.epoch);
    plot::scatter(&run.join("embeddings.png"), &title, &pca2(&f), &test.labels, &test.names)?;
    let which = match cfg.eval.features {
        crate::model::Features::Head => "head",
        crate::model::Features::Backbone => "backbone",
    };
    Ok(format!("PCA of the L2-normalized {which} features of the first {} test images, coloured by class", test.len()))
}

/// report.md: what ran, its results, the per-epoch table, the plots and the resolved configuration.
fn markdown(run: &Path, cfg: &Config, epochs: &[Value], labeled: bool, embed_note: &str) -> String {
    let json = |name: &str| -> Option<Value> {
        std::fs::read_to_string(run.join(name)).ok().and_then(|s| serde_json::from_str(&s).ok())
    };
    let mixture = match cfg.mixture_kind() {
        crate::mix::MixtureKind::None => " (no mixture)",
        kind => kind.suffix(),
    };
    let mut md = format!("# unmix run: {}\n\n", run.display());
    md += &format!(
        "Method **{}**{mixture} on **{}**, {} of {} epochs.\n\n## Results\n\n",
        cfg.method.name(),
        cfg.data.dataset,
        epochs.len(),
        cfg.train.epochs
    );
    let linear: Vec<Value> = linear_records(run).iter().filter_map(|name| json(name)).collect();
    md += &results_lines(json("summary.json").as_ref(), &linear);
    md += &epoch_table(epochs);
    md += &format!(
        "\n## Plots\n\n![loss](loss.png)\n![lr](lr.png)\n{}{}\nEmbedding map: {embed_note}.\n\n## Resolved configuration\n\n```toml\n{}```\n",
        if labeled { "![kNN](accuracy.png)\n" } else { "" },
        if run.join("embeddings.png").exists() { "![embeddings](embeddings.png)\n" } else { "" },
        cfg.to_toml()
    );
    md
}

/// The linear-probe records `unmix linear` left in the run folder: linear.json (the cached
/// probe), then linear-PROTOCOL.json (the papers' protocols) in name order.
fn linear_records(run: &Path) -> Vec<String> {
    let mut papers: Vec<String> = std::fs::read_dir(run)
        .map(|d| d.filter_map(|e| e.ok()?.file_name().into_string().ok()).collect())
        .unwrap_or_default();
    papers.retain(|n| n.starts_with("linear-") && n.ends_with(".json"));
    papers.sort();
    std::iter::once("linear.json".to_string()).filter(|n| run.join(n).is_file()).chain(papers).collect()
}

/// The results list: kNN, speed and time from summary.json, the online probe, and each linear
/// probe (a paper protocol's best and last epoch, or the cached probe's top-1/top-5).
fn results_lines(summary: Option<&Value>, linear: &[Value]) -> String {
    let f = |v: &Value, k: &str| v[k].as_f64().unwrap_or(f64::NAN);
    let text = |v: &Value, k: &str| v[k].as_str().unwrap_or("").to_string();
    let mut md = String::new();
    if let Some(s) = summary {
        if let Some(k) = s.get("knn").filter(|k| !k.is_null()) {
            md += &format!(
                "- kNN top-1 **{:.2}%**, top-5 {:.2}% — {}\n",
                f(k, "top1"),
                f(k, "top5"),
                text(k, "protocol")
            );
        }
        md += &format!(
            "- training images/second {:.1} (view-1 images through the whole step, data included); training time {:.0} s; wall time {:.0} s; peak RSS {} MiB\n",
            s["images_per_second"].as_f64().unwrap_or(0.0),
            s["train_seconds"].as_f64().unwrap_or(0.0),
            s["wall_seconds"].as_f64().unwrap_or(0.0),
            s["peak_rss_mib"].as_f64().map(|v| format!("{v:.0}")).unwrap_or_else(|| "?".into())
        );
        if let Some(p) = s.get("online_probe").filter(|p| !p.is_null()) {
            md += &format!("- online probe top-1 **{:.2}%** — {}\n", f(p, "top1"), text(p, "protocol"));
        }
    }
    for l in linear {
        md += &match l.get("result") {
            Some(r) => format!(
                "- linear probe, {} protocol: best top-1 **{:.2}%** at epoch {}, last epoch {:.2}% (top-5 {:.2}%) — {}{}\n",
                text(l, "protocol"),
                f(r, "best_top1"),
                r["best_epoch"],
                f(r, "last_top1"),
                f(r, "last_top5"),
                text(l, "description"),
                probe_cost(l)
            ),
            None => format!(
                "- linear probe top-1 **{:.2}%**, top-5 {:.2}% — {}{}\n",
                f(l, "top1"),
                f(l, "top5"),
                text(l, "protocol"),
                probe_cost(l)
            ),
        };
    }
    md
}

/// "; N s on MACHINE" from a linear record that has its wall time (records of earlier versions
/// have none: nothing is added).
fn probe_cost(l: &Value) -> String {
    match (l["wall_seconds"].as_f64(), l["machine"].as_str()) {
        (Some(s), Some(m)) => format!("; {s:.0} s on {m}"),
        (Some(s), None) => format!("; {s:.0} s"),
        _ => String::new(),
    }
}

/// The per-epoch table of metrics.jsonl.
fn epoch_table(epochs: &[Value]) -> String {
    let mut md =
        "\n| epoch | loss | lr | kNN top-1 | online probe top-1 | images/s |\n|---|---|---|---|---|---|\n".to_string();
    let pct = |e: &Value, k: &str| e[k].as_f64().map(|v| format!("{v:.2}")).unwrap_or_default();
    for e in epochs {
        md += &format!(
            "| {} | {:.4} | {:.5} | {} | {} | {:.0} |\n",
            e["epoch"],
            e["loss"].as_f64().unwrap_or(f64::NAN),
            e["lr"].as_f64().unwrap_or(f64::NAN),
            pct(e, "knn_top1"),
            pct(e, "online_probe_top1"),
            e["images_per_second"].as_f64().unwrap_or(f64::NAN)
        );
    }
    md
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn the_results_list_names_every_readout_and_each_linear_protocol() {
        let summary = json!({
            "knn": {"top1": 84.2, "top5": 99.1, "protocol": "weighted kNN k 200"},
            "images_per_second": 700.04, "train_seconds": 1260.4, "wall_seconds": 1300.6, "peak_rss_mib": 2048.0,
            "online_probe": {"top1": 82.5, "protocol": "online probe"}
        });
        let linear = [
            json!({"top1": 85.0, "top5": 99.5, "protocol": "cached features"}),
            json!({"protocol": "moco", "description": "MoCo's linear protocol", "result":
                {"best_top1": 86.25, "best_epoch": 90, "last_top1": 86.0, "last_top5": 99.75},
                "wall_seconds": 1698.4, "machine": "AMD EPYC, 2 cores; avx2"}),
        ];
        let md = results_lines(Some(&summary), &linear);
        let lines: Vec<&str> = md.lines().collect();
        assert_eq!(lines.len(), 5, "{md}");
        assert_eq!(lines[0], "- kNN top-1 **84.20%**, top-5 99.10% — weighted kNN k 200");
        assert!(
            lines[1].contains("images/second 700.0")
                && lines[1].contains("training time 1260 s")
                && lines[1].ends_with("peak RSS 2048 MiB")
        );
        assert_eq!(lines[2], "- online probe top-1 **82.50%** — online probe");
        assert_eq!(lines[3], "- linear probe top-1 **85.00%**, top-5 99.50% — cached features");
        assert_eq!(
            lines[4],
            "- linear probe, moco protocol: best top-1 **86.25%** at epoch 90, last epoch 86.00% (top-5 99.75%) — MoCo's linear protocol; 1698 s on AMD EPYC, 2 cores; avx2"
        );
        assert_eq!(results_lines(None, &[]), "");
    }

    #[test]
    fn linear_records_list_the_cached_probe_then_the_protocols_in_name_order() {
        let dir = std::env::temp_dir().join(format!("unmix-report-linear-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        for n in ["linear-swav.json", "linear-moco.json", "linear.json", "summary.json", "linear-notes.txt"] {
            std::fs::write(dir.join(n), "{}").unwrap();
        }
        assert_eq!(linear_records(&dir), ["linear.json", "linear-moco.json", "linear-swav.json"]);
        std::fs::remove_file(dir.join("linear.json")).unwrap();
        assert_eq!(linear_records(&dir), ["linear-moco.json", "linear-swav.json"]);
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
