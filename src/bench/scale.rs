//! How the costs grow with the data (`scripts/bench-scale.sh`): `unmix bench folder` indexes an
//! ImageFolder tree and feeds the MoCo v2 pipeline from it (index time, resident memory per file,
//! time to the first batch, loader throughput); `unmix bench knn-bank` runs weighted kNN against a
//! bank of a given size (time, peak memory); `unmix bench scale-plot` draws their records as
//! log-log curves. Each measurement is a process of its own, so its memory figures are its own.

use super::model::{peak_rss_gib, status_kib};
use super::pipeline::{time_batches, two_view_loader};
use anyhow::{bail, Context, Result};
use std::path::Path;
use std::sync::Arc;
use std::time::Instant;
use tch::{Device, Kind, Tensor};
use unmix_data::folder::ImageFolder;

/// Resident memory of this process now (VmRSS), in bytes.
fn rss_bytes() -> f64 {
    status_kib("VmRSS") * 1024.0
}

pub struct FolderArgs<'a> {
    pub root: &'a Path,
    pub size: usize,
    pub batch: usize,
    pub steps: usize,
    pub workers: usize,
}

/// Indexes `root` as an ImageFolder, then times two-view MoCo v2 batches from it: the first
/// batch from the loader's creation (shuffling every index, starting the workers), then `steps`
/// more (fewer where the folder holds less than an epoch of them).
pub fn folder(a: &FolderArgs) -> Result<serde_json::Value> {
    let before = rss_bytes();
    let t = Instant::now();
    let folder = ImageFolder::open(a.root).with_context(|| format!("indexing {}", a.root.display()))?;
    let index_seconds = t.elapsed().as_secs_f64();
    let index_bytes = rss_bytes() - before;
    let files = folder.len();
    let classes = folder.classes().len();
    // A small folder times the batches it has (one epoch, less the untimed first batch).
    let steps = a.steps.min((files / a.batch.max(1)).saturating_sub(1));
    if steps == 0 {
        bail!("{} holds {files} images: fewer than two batches of --batch {}", a.root.display(), a.batch);
    }
    let start = Instant::now();
    let loader = two_view_loader(Arc::new(folder), a.size, a.batch, a.workers, 0);
    let t = time_batches(&loader, steps + 1, start)?;
    Ok(serde_json::json!({
        "tool": "unmix", "what": "folder", "root": a.root.display().to_string(), "files": files, "classes": classes,
        "index_seconds": index_seconds, "index_resident_bytes": index_bytes,
        "bytes_per_file": index_bytes / files as f64, "first_batch_seconds": t.first_batch_seconds,
        "size": a.size, "batch": a.batch, "steps": steps, "workers": a.workers, "images": t.images,
        "images_per_second": t.images as f64 / t.seconds, "peak_rss_gib": peak_rss_gib(), "checksum": t.checksum,
    }))
}

/// Weighted kNN (k 200, t 0.1, cosine) of `queries` random unit vectors against a bank of `bank`
/// random unit vectors of `dim` dimensions in `classes` classes, filled chunk by chunk (the bank
/// itself is the only full-size tensor); time and the process's peak memory.
pub fn knn_bank(bank: i64, queries: i64, dim: i64, classes: i64, threads: usize) -> Result<serde_json::Value> {
    tch::set_num_threads(threads as i32);
    tch::manual_seed(0);
    let opts = (Kind::Float, Device::Cpu);
    let unit = |n: i64| {
        let x = Tensor::randn([n, dim], opts);
        let norm = x.norm_scalaropt_dim(2, [1i64].as_slice(), true);
        x / norm
    };
    let b = Tensor::empty([bank, dim], opts);
    let step = 65_536;
    tch::no_grad(|| {
        let mut start = 0;
        while start < bank {
            let len = step.min(bank - start);
            b.narrow(0, start, len).copy_(&unit(len));
            start += len;
        }
    });
    let q = unit(queries);
    let labels: Vec<u32> = (0..bank).map(|i| (i % classes) as u32).collect();
    let qlabels: Vec<u32> = (0..queries).map(|i| (i % classes) as u32).collect();
    let t = Instant::now();
    let r = crate::eval::knn::evaluate(&b, &labels, &q, &qlabels, classes as usize, 200, 0.1);
    let secs = t.elapsed().as_secs_f64();
    Ok(serde_json::json!({
        "tool": "unmix", "what": "knn-bank", "bank": bank, "queries": queries, "dim": dim, "classes": classes,
        "threads": threads, "seconds": secs, "microseconds_per_query_per_1k_bank": 1e6 * secs / queries as f64 / (bank as f64 / 1000.0),
        "query_chunk": crate::eval::knn::query_chunk(bank), "bank_gib": (bank * dim * 4) as f64 / (1u64 << 30) as f64,
        "peak_rss_gib": peak_rss_gib(), "top1": r.top1,
    }))
}

/// The records of `record` (JSON lines of `folder` and `knn-bank`) as three log-log charts in
/// `out` (a folder): time, memory and loader throughput against the number of images.
pub fn plot(record: &Path, out: &Path, machine: &str) -> Result<()> {
    let text = std::fs::read_to_string(record).with_context(|| format!("reading {}", record.display()))?;
    let rows: Vec<serde_json::Value> =
        text.lines().filter(|l| !l.trim().is_empty()).map(serde_json::from_str).collect::<Result<_, _>>()?;
    let curve = |what: &str, x: &str, y: &str, scale: f64| -> Vec<(f64, f64)> {
        let mut p: Vec<(f64, f64)> = rows
            .iter()
            .filter(|r| r["what"] == what)
            .filter_map(|r| Some((r[x].as_f64()?, r[y].as_f64()? * scale)))
            .collect();
        p.sort_by(|a, b| a.0.total_cmp(&b.0));
        p
    };
    std::fs::create_dir_all(out)?;
    let gib = (1u64 << 30) as f64;
    use crate::report::plot::log_log_plot;
    log_log_plot(
        &out.join("scale-time"),
        &format!("Time against data size ({machine})"),
        "images in the folder / entries in the kNN bank",
        "seconds",
        &[
            ("index the folder", curve("folder", "files", "index_seconds", 1.0)),
            ("first batch (224 px)", curve("folder", "files", "first_batch_seconds", 1.0)),
            ("kNN of 10k queries", curve("knn-bank", "bank", "seconds", 1.0)),
        ],
    )?;
    log_log_plot(
        &out.join("scale-memory"),
        &format!("Memory against data size ({machine})"),
        "images in the folder / entries in the kNN bank",
        "GiB",
        &[
            ("folder index (resident growth)", curve("folder", "files", "index_resident_bytes", 1.0 / gib)),
            ("kNN, whole process (peak)", curve("knn-bank", "bank", "peak_rss_gib", 1.0)),
        ],
    )?;
    log_log_plot(
        &out.join("scale-loader"),
        &format!("Loader, two 224 px views per image ({machine})"),
        "images in the folder",
        "images per second",
        &[("from the folder", curve("folder", "files", "images_per_second", 1.0))],
    )?;
    Ok(())
}
