//! Run reports: a run folder's plots and report.md, and the Un-Mix preview grid.

pub mod plot;
pub mod preview;

use crate::build::LoadedRun;
use crate::config::Config;
use serde_json::Value;

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
pub fn write_report(run: &std::path::Path) -> anyhow::Result<std::path::PathBuf> {
    use anyhow::Context;
    let config_path = run.join("config.toml");
    let text = std::fs::read_to_string(&config_path)
        .with_context(|| format!("{} is not an unmix run folder (no config.toml)", run.display()))?;
    let cfg = Config::from_saved_toml(&text, &config_path.display().to_string(), &[])?;
    let steps = crate::checkpoint::read_jsonl(&run.join("steps.jsonl"))?;
    let epochs = crate::checkpoint::read_jsonl(&run.join("metrics.jsonl"))?;
    if steps.is_empty() && epochs.is_empty() {
        anyhow::bail!("{} has no metrics yet (metrics.jsonl / steps.jsonl)", run.display());
    }
    let step_x = column(&steps, "step");
    let label = format!("{}{}", cfg.method.name(), cfg.mixture_kind().suffix());
    plot::line_plot(
        &run.join("loss.png"),
        &format!("Training loss: {label} on {}", cfg.data.dataset),
        "step",
        "loss",
        &step_x,
        &[("loss (logged steps)", column(&steps, "loss"))],
    )?;
    plot::line_plot(
        &run.join("lr.png"),
        "Learning rate",
        "step",
        "learning rate",
        &step_x,
        &[("lr", column(&steps, "lr"))],
    )?;
    let epoch_x = column(&epochs, "epoch");
    // Epochs without a kNN evaluation leave gaps that the plot skips; every value is a dot.
    let labeled = crate::data::has_labels(&cfg);
    if labeled {
        plot::line_plot(
            &run.join("accuracy.png"),
            &format!("Test top-1: {label}"),
            "epoch",
            "top-1 (%)",
            &epoch_x,
            &[("kNN", column(&epochs, "knn_top1")), ("online linear probe", column(&epochs, "online_probe_top1"))],
        )?;
    }

    // Embedding map of (up to) 2000 test images.
    let ckpt = run.join(crate::checkpoint::RUN_CHECKPOINT);
    let mut embed_note = String::from("no checkpoint yet");
    if !crate::data::has_labels(&cfg) {
        embed_note = "no labeled images (data.eval_root is not set), so no embedding map".to_string();
    } else if ckpt.exists() {
        let loaded = LoadedRun::from_checkpoint(&ckpt, &[])?;
        let test = crate::data::load_split(&cfg, false)?.limit(2000);
        let f = crate::eval::embed_split(&cfg, loaded.device, loaded.method.as_ref(), &test, cfg.eval.features, true)?;
        let title = format!("Test embeddings (PCA), {label}, epoch {}", loaded.epoch);
        plot::scatter(&run.join("embeddings.png"), &title, &pca2(&f), &test.labels, &test.names)?;
        let which = match cfg.eval.features {
            crate::model::Features::Head => "head",
            crate::model::Features::Backbone => "backbone",
        };
        embed_note = format!(
            "PCA of the L2-normalized {which} features of the first {} test images, coloured by class",
            test.len()
        );
    }

    let summary: Option<Value> =
        std::fs::read_to_string(run.join("summary.json")).ok().and_then(|s| serde_json::from_str(&s).ok());
    let linear: Option<Value> =
        std::fs::read_to_string(run.join("linear.json")).ok().and_then(|s| serde_json::from_str(&s).ok());
    let mut md = format!("# unmix run: {}\n\n", run.display());
    md += &format!(
        "Method **{}**{} on **{}**, {} of {} epochs.\n\n## Results\n\n",
        cfg.method.name(),
        match cfg.mixture_kind() {
            crate::mix::MixtureKind::None => " (no mixture)",
            kind => kind.suffix(),
        },
        cfg.data.dataset,
        epochs.len(),
        cfg.train.epochs
    );
    if let Some(s) = &summary {
        if let Some(k) = s.get("knn").filter(|k| !k.is_null()) {
            md += &format!(
                "- kNN top-1 **{:.2}%**, top-5 {:.2}% — {}\n",
                k["top1"].as_f64().unwrap_or(f64::NAN),
                k["top5"].as_f64().unwrap_or(f64::NAN),
                k["protocol"].as_str().unwrap_or("")
            );
        }
        md += &format!(
            "- training images/second {:.1} (view-1 images through the whole step, data included); training time {:.0} s; wall time {:.0} s; peak RSS {} MiB\n",
            s["images_per_second"].as_f64().unwrap_or(0.0),
            s["train_seconds"].as_f64().unwrap_or(0.0),
            s["wall_seconds"].as_f64().unwrap_or(0.0),
            s["peak_rss_mib"].as_f64().map(|v| format!("{v:.0}")).unwrap_or_else(|| "?".into())
        );
    }
    if let Some(p) = summary.as_ref().and_then(|s| s.get("online_probe")).filter(|p| !p.is_null()) {
        md += &format!(
            "- online probe top-1 **{:.2}%** — {}\n",
            p["top1"].as_f64().unwrap_or(f64::NAN),
            p["protocol"].as_str().unwrap_or("")
        );
    }
    if let Some(l) = &linear {
        md += &format!(
            "- linear probe top-1 **{:.2}%**, top-5 {:.2}% — {}\n",
            l["top1"].as_f64().unwrap_or(f64::NAN),
            l["top5"].as_f64().unwrap_or(f64::NAN),
            l["protocol"].as_str().unwrap_or("")
        );
    }
    md += "\n| epoch | loss | lr | kNN top-1 | online probe top-1 | images/s |\n|---|---|---|---|---|---|\n";
    for e in &epochs {
        md += &format!(
            "| {} | {:.4} | {:.5} | {} | {} | {:.0} |\n",
            e["epoch"],
            e["loss"].as_f64().unwrap_or(f64::NAN),
            e["lr"].as_f64().unwrap_or(f64::NAN),
            e["knn_top1"].as_f64().map(|v| format!("{v:.2}")).unwrap_or_default(),
            e["online_probe_top1"].as_f64().map(|v| format!("{v:.2}")).unwrap_or_default(),
            e["images_per_second"].as_f64().unwrap_or(f64::NAN)
        );
    }
    md += &format!(
        "\n## Plots\n\n![loss](loss.png)\n![lr](lr.png)\n{}{}\nEmbedding map: {embed_note}.\n\n## Resolved configuration\n\n```toml\n{}```\n",
        if labeled { "![kNN](accuracy.png)\n" } else { "" },
        if run.join("embeddings.png").exists() { "![embeddings](embeddings.png)\n" } else { "" },
        cfg.to_toml()
    );
    let out = run.join("report.md");
    crate::checkpoint::write_atomic(&out, md.as_bytes())?;
    crate::fault::after("report");
    Ok(out)
}
