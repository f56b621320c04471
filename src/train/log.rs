//! A run's records: `steps.jsonl` (loss and lr every `train.log_every` steps), `metrics.jsonl`
//! (one line per epoch) and the same table as `metrics.csv`, TensorBoard event files under
//! `tensorboard/`, the console's epoch lines and the progress bar.

use crate::checkpoint::{append_jsonl, read_jsonl, retain_jsonl, write_atomic, write_jsonl, Meta};
use crate::events::EventWriter;
use anyhow::Result;
use serde_json::{json, Value};
use std::path::{Path, PathBuf};

/// Where rank 0 writes the run's records (other ranks write nothing).
pub struct RunLog {
    dir: Option<PathBuf>,
    events: Option<EventWriter>,
    /// On resume: the last logged step's loss, from the records kept.
    last_loss: Option<f64>,
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
    /// The records of a new run in `dir`, or none (`dir = None`: a process other than rank 0).
    pub fn new(dir: Option<&Path>) -> Result<RunLog> {
        let events = dir.map(|d| EventWriter::create(&d.join("tensorboard"), None)).transpose()?;
        Ok(RunLog { dir: dir.map(Path::to_path_buf), events, last_loss: None })
    }

    /// The records of a run resumed from a checkpoint with `meta`, made to agree with it: the
    /// epoch lines are the checkpoint's (lines a kill cut off come back, later ones go), steps
    /// after it are cut, and TensorBoard gets a restart marker at its step followed by that
    /// step's scalars again (the marker drops them with the lost part of the run).
    pub fn resumed(dir: Option<&Path>, meta: &Meta) -> Result<RunLog> {
        let Some(d) = dir else { return Ok(RunLog { dir: None, events: None, last_loss: None }) };
        let epochs = restore_epochs(d, meta)?;
        let steps = retain_jsonl(&d.join("steps.jsonl"), |v| v["step"].as_u64().is_some_and(|s| s <= meta.step))?;
        let mut events = EventWriter::create(&d.join("tensorboard"), Some(meta.step as i64))?;
        let at_step = |v: &&Value| v["step"].as_u64() == Some(meta.step);
        if let Some(s) = steps.iter().rev().find(at_step) {
            let (loss, lr) = (s["loss"].as_f64().unwrap_or(f64::NAN), s["lr"].as_f64().unwrap_or(f64::NAN));
            step_events(&mut events, meta.step, loss, lr)?;
        }
        if let Some(r) = epochs.last().filter(at_step) {
            epoch_events(&mut events, r)?;
        }
        let last_loss = steps.last().and_then(|s| s["loss"].as_f64());
        Ok(RunLog { dir: Some(d.to_path_buf()), events: Some(events), last_loss })
    }

    /// The loss of the last step logged before this process (a resumed run's), if any.
    pub fn last_logged_loss(&self) -> Option<f64> {
        self.last_loss
    }

    pub fn step(&mut self, step: u64, epoch: usize, loss: f64, lr: f64) -> Result<()> {
        let Some(d) = &self.dir else { return Ok(()) };
        append_jsonl(&d.join("steps.jsonl"), &json!({"step": step, "epoch": epoch + 1, "loss": loss, "lr": lr}))?;
        crate::fault::after("steps");
        if let Some(e) = &mut self.events {
            step_events(e, step, loss, lr)?;
            crate::fault::after("step-events");
        }
        Ok(())
    }

    /// An epoch's records, after its checkpoint: TensorBoard, then metrics.jsonl, then
    /// metrics.csv (so a metrics line implies the scalars before it were written).
    pub fn epoch(&mut self, r: &EpochRecord) -> Result<()> {
        let Some(d) = &self.dir else { return Ok(()) };
        if let Some(e) = &mut self.events {
            epoch_events(e, &r.json())?;
            crate::fault::after("events");
        }
        append_jsonl(&d.join("metrics.jsonl"), &r.json())?;
        crate::fault::after("metrics");
        write_csv(d)?;
        crate::fault::after("csv");
        Ok(())
    }
}

/// Whether a run folder's epoch records are those of the checkpoint with `meta` (nothing to
/// repair after a finished run).
pub fn records_agree(dir: &Path, meta: &Meta) -> Result<bool> {
    let lines = read_jsonl(&dir.join("metrics.jsonl"))?;
    let csv_rows = std::fs::read_to_string(dir.join("metrics.csv")).map(|t| t.lines().count()).unwrap_or(0);
    Ok(lines == meta.records && csv_rows == lines.len() + 1)
}

/// metrics.jsonl and metrics.csv as the checkpoint has them (checkpoints from before the
/// records were kept in them: the lines up to its epoch); returns the epoch lines.
fn restore_epochs(dir: &Path, meta: &Meta) -> Result<Vec<Value>> {
    let path = dir.join("metrics.jsonl");
    let lines = if meta.records.len() == meta.epoch {
        write_jsonl(&path, &meta.records)?;
        meta.records.clone()
    } else {
        retain_jsonl(&path, |v| v["epoch"].as_u64().is_some_and(|e| e as usize <= meta.epoch))?
    };
    write_csv(dir)?;
    Ok(lines)
}

fn step_events(e: &mut EventWriter, step: u64, loss: f64, lr: f64) -> Result<()> {
    e.scalar("train/loss", step as i64, loss)?;
    e.scalar("train/lr", step as i64, lr)
}

/// An epoch's TensorBoard scalars, from its metrics.jsonl line.
fn epoch_events(e: &mut EventWriter, r: &Value) -> Result<()> {
    let step = r["step"].as_i64().unwrap_or(0);
    for (tag, key) in [
        ("epoch/loss", "loss"),
        ("epoch/images_per_second", "images_per_second"),
        ("eval/knn_top1", "knn_top1"),
        ("eval/knn_top5", "knn_top5"),
        ("eval/online_probe_top1", "online_probe_top1"),
    ] {
        if let Some(v) = r[key].as_f64() {
            e.scalar(tag, step, v)?;
        }
    }
    Ok(())
}

/// metrics.csv, rewritten whole from metrics.jsonl (so it agrees with it after a resume cut it).
pub fn write_csv(dir: &Path) -> Result<()> {
    let rows = read_jsonl(&dir.join("metrics.jsonl"))?;
    let path = dir.join("metrics.csv");
    let mut w = csv::Writer::from_writer(Vec::new());
    w.write_record(COLUMNS)?;
    for r in &rows {
        w.write_record(COLUMNS.iter().map(|c| match &r[*c] {
            Value::Null => String::new(),
            v => v.to_string(),
        }))?;
    }
    let bytes = w.into_inner().map_err(|e| anyhow::anyhow!("{e}"))?;
    write_atomic(&path, &bytes)
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
        indicatif::ProgressStyle::with_template("{prefix} [{bar:30}] {pos}/{len} (epoch ETA {eta}) {msg}")
            .expect("the progress template is valid")
            .progress_chars("=> "),
    );
    bar.set_prefix(format!("epoch {}/{}", epoch + 1, epochs));
    bar
}
