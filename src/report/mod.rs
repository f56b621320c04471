//! Run reports: the summary written at the end of a run, and the Un-Mix preview grid.

pub mod preview;

use crate::config::Config;
use crate::eval::knn::KnnResult;
use serde_json::{json, Value};

/// Peak resident memory of this process in MiB (Linux), if known.
pub fn peak_rss_mib() -> Option<f64> {
    let s = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = s.lines().find(|l| l.starts_with("VmHWM:"))?;
    let kb: f64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kb / 1024.0)
}

/// The protocol sentence written next to every kNN number.
pub fn knn_protocol(cfg: &Config, r: &KnnResult) -> String {
    format!(
        "weighted kNN (cosine, k {}, t {}) on the L2-normalized {}-d head output of the query encoder; bank = {} train split without augmentation; top-1 on the test split",
        r.k, r.t, cfg.method.dim, cfg.data.dataset
    )
}

pub fn summary(cfg: &Config, epochs_done: usize, last_loss: f64, knn: Option<KnnResult>, images: u64, train_seconds: f64, wall_seconds: f64) -> Value {
    json!({
        "method": cfg.method.name,
        "unmix": cfg.unmix.enabled,
        "dataset": cfg.data.dataset,
        "epochs": epochs_done,
        "epochs_planned": cfg.train.epochs,
        "final_loss": if last_loss.is_finite() { json!(last_loss) } else { Value::Null },
        "knn": knn.map(|r| json!({"top1": r.top1, "top5": r.top5, "k": r.k, "t": r.t, "protocol": knn_protocol(cfg, &r)})),
        "images_per_second": if train_seconds > 0.0 { images as f64 / train_seconds } else { 0.0 },
        "train_seconds": train_seconds,
        "wall_seconds": wall_seconds,
        "peak_rss_mib": peak_rss_mib(),
        "seed": cfg.seed,
    })
}
