//! A run's records: `steps.jsonl` (loss and lr every `train.log_every` steps), `metrics.jsonl`
//! (one line per epoch) and the same table as `metrics.csv`, TensorBoard event files under
//! `tensorboard/`, the console's epoch lines and the progress bar.

use crate::checkpoint::{append_jsonl, read_jsonl};
use crate::events::EventWriter;
use anyhow::{Context, Result};
use serde_json::{json, Value};
use std::path::{Path, PathBuf};

/// Where rank 0 writes the run's records (other ranks write nothing).
pub struct RunLog {
    dir: Option<PathBuf>,
    events: Option<EventWriter>,
}

/// The columns of metrics.csv, in order (the keys of metrics.jsonl's lines).
const COLUMNS: [&str; 10] = [
    "epoch",
    "step",
    "loss",
    "lr",
    "images_per_second",
    "epoch_seconds",
    "data_wait_seconds",
    "knn_top1",
    "knn_top5",
    "online_probe_top1",
];

impl RunLog {
    /// The records of the run folder `dir`, or none (`dir = None`: a process other than rank 0).
    /// `resumed_at`: the step a resumed run continues from.
    pub fn new(dir: Option<&Path>, resumed_at: Option<u64>) -> Result<RunLog> {
        let events = match dir {
            Some(d) => Some(EventWriter::create(&d.join("tensorboard"), resumed_at.map(|s| s as i64))?),
            None => None,
        };
        Ok(RunLog { dir: dir.map(Path::to_path_buf), events })
    }

    pub fn step(&mut self, step: u64, epoch: usize, loss: f64, lr: f64) -> Result<()> {
        let Some(d) = &self.dir else { return Ok(()) };
        append_jsonl(&d.join("steps.jsonl"), &json!({"step": step, "epoch": epoch + 1, "loss": loss, "lr": lr}))?;
        if let Some(e) = &mut self.events {
            e.scalar("train/loss", step as i64, loss)?;
            e.scalar("train/lr", step as i64, lr)?;
        }
        Ok(())
    }

    pub fn epoch(&mut self, r: &EpochRecord) -> Result<()> {
        let Some(d) = &self.dir else { return Ok(()) };
        append_jsonl(&d.join("metrics.jsonl"), &r.json())?;
        write_csv(d)?;
        if let Some(e) = &mut self.events {
            let step = r.step as i64;
            e.scalar("epoch/loss", step, r.loss)?;
            e.scalar("epoch/images_per_second", step, r.images_per_second)?;
            if let Some((top1, top5)) = r.knn {
                e.scalar("eval/knn_top1", step, top1)?;
                e.scalar("eval/knn_top5", step, top5)?;
            }
            if let Some(p) = r.online_probe {
                e.scalar("eval/online_probe_top1", step, p)?;
            }
        }
        Ok(())
    }
}

/// metrics.csv, rewritten whole from metrics.jsonl (so it agrees with it after a resume cut it).
pub fn write_csv(dir: &Path) -> Result<()> {
    let rows = read_jsonl(&dir.join("metrics.jsonl"))?;
    let path = dir.join("metrics.csv");
    let tmp = dir.join("metrics.csv.tmp");
    let mut w = csv::Writer::from_path(&tmp).with_context(|| format!("cannot write {}", tmp.display()))?;
    w.write_record(COLUMNS)?;
    for r in &rows {
        w.write_record(COLUMNS.iter().map(|c| match &r[*c] {
            Value::Null => String::new(),
            v => v.to_string(),
        }))?;
    }
    w.flush()?;
    drop(w);
    std::fs::rename(&tmp, &path).with_context(|| format!("cannot write {}", path.display()))
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
