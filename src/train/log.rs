//! A run's records: `steps.jsonl` (loss and lr every `train.log_every` steps), `metrics.jsonl`
//! (one line per epoch), the console's epoch lines and the progress bar.

use crate::checkpoint::append_jsonl;
use anyhow::Result;
use serde_json::{json, Value};
use std::path::{Path, PathBuf};

/// Where rank 0 writes the run's records (other ranks write nothing).
pub struct RunLog {
    dir: Option<PathBuf>,
}

impl RunLog {
    /// The records of the run folder `dir`, or none (`dir = None`: a process other than rank 0).
    pub fn new(dir: Option<&Path>) -> RunLog {
        RunLog { dir: dir.map(Path::to_path_buf) }
    }

    pub fn step(&self, step: u64, epoch: usize, loss: f64, lr: f64) -> Result<()> {
        match &self.dir {
            Some(d) => {
                append_jsonl(&d.join("steps.jsonl"), &json!({"step": step, "epoch": epoch + 1, "loss": loss, "lr": lr}))
            }
            None => Ok(()),
        }
    }

    pub fn epoch(&self, line: &Value) -> Result<()> {
        match &self.dir {
            Some(d) => append_jsonl(&d.join("metrics.jsonl"), line),
            None => Ok(()),
        }
    }
}

/// One epoch's record.
#[derive(Clone, Debug)]
pub struct EpochRecord {
    /// Epochs finished (1-based).
    pub epoch: usize,
    pub step: u64,
    pub loss: f64,
    pub lr: f64,
    pub images_per_second: f64,
    pub seconds: f64,
    pub data_wait_seconds: f64,
    pub knn: Option<(f64, f64)>,
    pub online_probe: Option<f64>,
}

impl EpochRecord {
    /// The metrics.jsonl line.
    pub fn json(&self) -> Value {
        let mut line = json!({
            "epoch": self.epoch, "step": self.step, "loss": self.loss, "lr": self.lr,
            "images_per_second": self.images_per_second, "epoch_seconds": self.seconds, "data_wait_seconds": self.data_wait_seconds,
        });
        if let Some((top1, top5)) = self.knn {
            line["knn_top1"] = json!(top1);
            line["knn_top5"] = json!(top5);
        }
        if let Some(p) = self.online_probe {
            line["online_probe_top1"] = json!(p);
        }
        line
    }

    /// The console line.
    pub fn line(&self, epochs: usize) -> String {
        format!(
            "epoch {}/{epochs}  loss {:.4}  lr {:.5}  {:.0} img/s  data wait {:.1}s{}{}",
            self.epoch,
            self.loss,
            self.lr,
            self.images_per_second,
            self.data_wait_seconds,
            self.knn.map(|(t1, _)| format!("  kNN top-1 {t1:.2}%")).unwrap_or_default(),
            self.online_probe.map(|p| format!("  online probe {p:.2}%")).unwrap_or_default()
        )
    }
}

/// The progress bar of one epoch (hidden when `enabled` is false).
pub fn progress_bar(enabled: bool, len: u64, epoch: usize, epochs: usize) -> indicatif::ProgressBar {
    if !enabled {
        return indicatif::ProgressBar::hidden();
    }
    let bar = indicatif::ProgressBar::new(len);
    bar.set_style(
        indicatif::ProgressStyle::with_template("{prefix} [{bar:30}] {pos}/{len} {msg} ETA {eta}")
            .expect("the progress template is valid")
            .progress_chars("=> "),
    );
    bar.set_prefix(format!("epoch {}/{}", epoch + 1, epochs));
    bar
}
