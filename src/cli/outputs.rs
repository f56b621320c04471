//! What the commands share: `--data` as a config override, the network a checkpoint (or
//! `--random-init`) names, and the guards every output file passes before any long computation
//! (never over a checkpoint or a run's own records, an existing file only with --force, a folder
//! that takes a file).

use anyhow::{bail, Context, Result};
use std::path::{Path, PathBuf};
use unmix::build::LoadedRun;

/// `--data DIR` as the `data.root` override it stands for, after the other `--set`s.
pub fn with_data(mut set: Vec<String>, data: Option<PathBuf>) -> Vec<String> {
    if let Some(d) = data {
        set.push(unmix::config::data_root_override(&d));
    }
    set
}

/// A checkpoint's network, or the random network of `--random-init --config FILE`.
pub fn network(checkpoint: Option<&Path>, config: Option<&Path>, set: &[String]) -> Result<LoadedRun> {
    match (checkpoint, config) {
        (Some(p), _) => LoadedRun::from_checkpoint(p, set),
        (None, Some(c)) => LoadedRun::random(c, set),
        (None, None) => bail!("give --checkpoint FILE, or --random-init --config FILE"),
    }
}

/// `--precision` of the benchmarks.
pub fn parse_precision(s: &str) -> Result<unmix::precision::Precision> {
    unmix::precision::Precision::parse(s).ok_or_else(|| anyhow::anyhow!("--precision {s}: use fp32 or bf16"))
}

/// The run folder a checkpoint belongs to: `RUN/checkpoints/last.safetensors` with
/// `RUN/config.toml` beside; None for a checkpoint anywhere else.
pub fn run_folder(checkpoint: &Path) -> Option<PathBuf> {
    let dir = checkpoint.parent().filter(|d| d.file_name().is_some_and(|n| n == "checkpoints"))?.parent()?;
    let dir = if dir.as_os_str().is_empty() { Path::new(".") } else { dir };
    dir.join("config.toml").is_file().then(|| dir.to_path_buf())
}

/// Refuses to write `out` over a checkpoint (the one being read, or any other unmix checkpoint).
pub fn not_over_a_checkpoint(out: &Path, input: &Path) -> Result<()> {
    let same = match (out.canonicalize(), input.canonicalize()) {
        (Ok(a), Ok(b)) => a == b,
        _ => false,
    };
    if same || (out.is_file() && unmix::checkpoint::read_meta(out).is_ok()) {
        bail!("--out {} is a checkpoint; refusing to write over it (choose another file)", out.display());
    }
    Ok(())
}

/// The files of a run folder that belong to the run (its records, config, lock and report).
const RUN_FILES: [&str; 9] = [
    "config.toml",
    "metrics.jsonl",
    "metrics.csv",
    "steps.jsonl",
    "summary.json",
    "report.md",
    ".lock",
    "loss.png",
    "lr.png",
];

/// An output file of export / embed: never one of a run folder's own files (or inside its
/// checkpoints/ or tensorboard/), and an existing file only with --force.
pub fn new_output(out: &Path, force: bool) -> Result<()> {
    let parent = out.parent().filter(|d| !d.as_os_str().is_empty()).unwrap_or(Path::new("."));
    let name = out.file_name().map(|n| n.to_string_lossy().to_string()).unwrap_or_default();
    let is_run = |d: &Path| d.join("config.toml").is_file() && d.join("checkpoints").is_dir();
    let owner = parent.file_name().filter(|n| *n == "checkpoints" || *n == "tensorboard").and(parent.parent());
    if (is_run(parent) && RUN_FILES.contains(&name.as_str())) || owner.is_some_and(is_run) {
        bail!(
            "--out {} belongs to the run folder {} (its own records); refusing to write over it: choose another file",
            out.display(),
            owner.unwrap_or(parent).display()
        );
    }
    if out.exists() && !force {
        bail!("--out {} exists; add --force to replace it, or choose another file", out.display());
    }
    Ok(())
}

/// Checks that `out` can be created, before any long computation: its folder exists and takes
/// a file.
pub fn writable(out: &Path) -> Result<()> {
    let dir = out.parent().filter(|d| !d.as_os_str().is_empty()).unwrap_or(Path::new("."));
    if !dir.is_dir() {
        bail!("cannot write {}: the folder {} does not exist", out.display(), dir.display());
    }
    let probe = dir.join(format!(".unmix-write-test-{}", std::process::id()));
    std::fs::write(&probe, b"").with_context(|| format!("cannot write into {}", dir.display()))?;
    let _ = std::fs::remove_file(&probe);
    Ok(())
}
