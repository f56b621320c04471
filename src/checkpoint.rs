//! Checkpoints: one safetensors file with every tensor of the run plus a JSON metadata record,
//! written to a temporary file and renamed, so a crash or a full disk never destroys the last
//! finished checkpoint.

use anyhow::{anyhow, Context, Result};
use serde::{Deserialize, Serialize};
use std::io::Write;
use std::path::{Path, PathBuf};
use tch::Tensor;

const META: &str = "__meta__";

/// The metadata format this unmix writes (and the only one there has been; the config text it
/// holds may predate the typed method settings, which `Config::from_saved_toml` reads).
pub const FORMAT: u32 = 1;

/// Where a run folder keeps its checkpoint.
pub const RUN_CHECKPOINT: &str = "checkpoints/last.safetensors";

/// What a checkpoint records besides tensors.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct Meta {
    pub format: u32,
    /// Epochs finished; training resumes at this epoch.
    pub epoch: usize,
    /// Optimizer steps taken.
    pub step: u64,
    /// The resolved configuration (TOML), so evaluation can rebuild model and data.
    pub config: String,
    /// Seed of the run: with `epoch` and `step` it fixes every later random draw.
    pub seed: u64,
    /// Wall time spent in training so far, seconds.
    pub train_seconds: f64,
    /// Training images processed so far.
    pub images: u64,
}

pub fn save(path: &Path, tensors: &[(String, Tensor)], meta: &Meta) -> Result<()> {
    let json = serde_json::to_vec(meta)?;
    let mut all: Vec<(String, Tensor)> =
        tensors.iter().map(|(n, t)| (n.clone(), t.to_device(tch::Device::Cpu).contiguous())).collect();
    all.push((META.to_string(), Tensor::from_slice(&json)));
    let tmp = tmp_path(path);
    let write = || -> Result<()> {
        Tensor::write_safetensors(&all, &tmp).map_err(|e| anyhow!("{e}"))?;
        std::fs::File::open(&tmp)?.sync_all()?;
        std::fs::rename(&tmp, path)?;
        Ok(())
    };
    write()
        .inspect_err(|_| {
            let _ = std::fs::remove_file(&tmp);
        })
    .with_context(|| {
        format!("cannot write checkpoint {} (is the disk full or the folder read-only?); the previous checkpoint is untouched", path.display())
    })?;
    if let Some(dir) = path.parent() {
        if let Ok(d) = std::fs::File::open(dir) {
            let _ = d.sync_all();
        }
    }
    Ok(())
}

pub fn load(path: &Path) -> Result<(Vec<(String, Tensor)>, Meta)> {
    if !path.exists() {
        anyhow::bail!("checkpoint {} does not exist", path.display());
    }
    let mut tensors = Tensor::read_safetensors(path).map_err(|e| anyhow!("{e}")).with_context(|| {
        format!("{} is not a readable unmix checkpoint (damaged or another format)", path.display())
    })?;
    let pos = tensors
        .iter()
        .position(|(n, _)| n == META)
        .ok_or_else(|| anyhow!("{} has no unmix metadata: not an unmix checkpoint", path.display()))?;
    let (_, m) = tensors.swap_remove(pos);
    let bytes: Vec<u8> = Vec::try_from(&m).map_err(|e| anyhow!("{e}"))?;
    let meta: Meta = serde_json::from_slice(&bytes).with_context(|| format!("{}: damaged metadata", path.display()))?;
    Ok((tensors, meta))
}

fn tmp_path(path: &Path) -> PathBuf {
    let mut s = path.as_os_str().to_owned();
    s.push(".tmp");
    PathBuf::from(s)
}

/// Appends one JSON line and flushes.
pub fn append_jsonl(path: &Path, value: &serde_json::Value) -> Result<()> {
    let mut f = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .with_context(|| format!("cannot open {}", path.display()))?;
    writeln!(f, "{value}").with_context(|| format!("cannot write {}", path.display()))?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_and_failed_write_keeps_old_file() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("last.safetensors");
        let meta =
            Meta { format: 1, epoch: 3, step: 42, config: "seed = 1".into(), seed: 1, train_seconds: 1.5, images: 100 };
        let t = Tensor::from_slice(&[1.0f32, 2.0, 3.0]);
        save(&p, &[("a".into(), t.shallow_clone())], &meta).unwrap();
        let (ts, m) = load(&p).unwrap();
        assert_eq!(m, meta);
        assert_eq!(ts.len(), 1);
        assert_eq!(Vec::<f32>::try_from(&ts[0].1).unwrap(), vec![1.0, 2.0, 3.0]);
        // A write into a missing folder fails with a message and leaves the old file alone.
        let bad = dir.path().join("missing").join("x.safetensors");
        let e = save(&bad, &[("a".into(), t)], &meta).unwrap_err();
        assert!(format!("{e:#}").contains("cannot write checkpoint"));
        assert_eq!(load(&p).unwrap().1.step, 42);
        // A damaged file is reported as such.
        std::fs::write(dir.path().join("bad.safetensors"), b"garbage").unwrap();
        let e = load(&dir.path().join("bad.safetensors")).unwrap_err();
        assert!(format!("{e:#}").contains("not a readable unmix checkpoint"));
    }
}
