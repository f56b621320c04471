//! What a finished (or stopped) run reports: `summary.json` in the run folder.

use crate::config::Config;
use crate::eval::knn::{self, KnnResult};
use serde::{Deserialize, Serialize};

/// The summary of a run (its fields in alphabetical order, as the file has always had them).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Summary {
    pub dataset: String,
    /// Epochs finished.
    pub epochs: usize,
    pub epochs_planned: usize,
    /// The last logged loss (None when no finite one was logged).
    pub final_loss: Option<f64>,
    /// View-1 images per second of training, data pipeline included.
    pub images_per_second: f64,
    /// The last kNN evaluation, with its protocol.
    pub knn: Option<KnnSummary>,
    /// The machine the run (its last part, for a resumed run) trained on: CPU model, cores and
    /// the instruction-set flags speed depends on; absent in summaries of earlier versions.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub machine: Option<String>,
    pub method: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub online_probe: Option<ProbeSummary>,
    pub peak_rss_mib: Option<f64>,
    pub seed: u64,
    pub train_seconds: f64,
    pub unmix: bool,
    pub wall_seconds: f64,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct KnnSummary {
    pub k: usize,
    pub protocol: String,
    pub t: f64,
    pub top1: f64,
    pub top5: f64,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ProbeSummary {
    pub protocol: String,
    pub top1: f64,
}

/// The online probe's protocol sentence.
pub const PROBE_PROTOCOL: &str =
    "online linear probe: linear classifier trained during pretraining on detached backbone features of view 1 \
     (SGD, momentum 0.9, lr following the main schedule), top-1 on the test split with eval-mode features";

impl KnnSummary {
    pub fn new(cfg: &Config, r: &KnnResult) -> KnnSummary {
        KnnSummary { k: r.k, protocol: knn::protocol(cfg, r), t: r.t, top1: r.top1, top5: r.top5 }
    }
}

/// "CPU MODEL, N cores; FLAGS" with the flags among avx2, avx512f, avx512_bf16, amx_bf16 that
/// this CPU has (every speed or accuracy figure names its machine class).
pub fn machine() -> String {
    let info = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
    let field = |name: &str| {
        info.lines()
            .find(|l| l.split(':').next().is_some_and(|k| k.trim() == name))
            .and_then(|l| l.split_once(':'))
            .map(|(_, v)| v.trim().to_string())
    };
    let model = field("model name").unwrap_or_else(|| std::env::consts::ARCH.to_string());
    let flags = field("flags").unwrap_or_default();
    let have: Vec<&str> = ["avx2", "avx512f", "avx512_bf16", "amx_bf16"]
        .into_iter()
        .filter(|f| flags.split(' ').any(|x| x == *f))
        .collect();
    let cores = std::thread::available_parallelism().map_or(0, |n| n.get());
    format!("{model}, {cores} cores; {}", if have.is_empty() { "no avx2".to_string() } else { have.join(" ") })
}

/// Peak resident memory of this process in MiB (Linux), if known.
pub fn peak_rss_mib() -> Option<f64> {
    let s = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = s.lines().find(|l| l.starts_with("VmHWM:"))?;
    let kb: f64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kb / 1024.0)
}
