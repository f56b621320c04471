//! Checkpoints: one safetensors file with every tensor of the run plus a JSON metadata record
//! (with a CRC-32 of the tensors), written to a temporary file and renamed, so a crash or a full
//! disk never destroys the last finished checkpoint, and a damaged file is recognized as such.
//! Also the run's JSON-lines records, written one whole line per write so that a kill leaves at
//! most a torn last line, which readers skip.

use anyhow::{anyhow, bail, Context, Result};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
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
    /// Epochs finished; training resumes in this epoch.
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
    /// A checkpoint written inside an epoch (the run was interrupted): the batches of epoch
    /// `epoch` already trained, and that epoch's running sums. 0 at an epoch's end.
    #[serde(default)]
    pub batch_in_epoch: usize,
    #[serde(default)]
    pub epoch_loss_sum: f64,
    #[serde(default)]
    pub epoch_images: u64,
    #[serde(default)]
    pub epoch_seconds: f64,
    #[serde(default)]
    pub epoch_data_wait: f64,
    /// CRC-32 of the tensors (names, kinds, shapes and bytes, in name order); absent in
    /// checkpoints from before it was recorded.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub crc32: Option<u32>,
    /// The metrics.jsonl lines of the finished epochs, so a resume can restore the records a
    /// kill cut off (the checkpoint is the records' truth); empty in older checkpoints.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub records: Vec<serde_json::Value>,
    /// The machine lines that trained the run so far, one more each time a resume changed the
    /// machine class (runs repeat exactly only within a class); empty in older checkpoints.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub machines: Vec<String>,
}

impl Meta {
    /// Metadata at the end of epoch `epoch` (no epoch in progress), without a checksum yet.
    pub fn at_epoch_end(epoch: usize, step: u64, config: String, seed: u64, train_seconds: f64, images: u64) -> Meta {
        Meta {
            format: FORMAT,
            epoch,
            step,
            config,
            seed,
            train_seconds,
            images,
            batch_in_epoch: 0,
            epoch_loss_sum: 0.0,
            epoch_images: 0,
            epoch_seconds: 0.0,
            epoch_data_wait: 0.0,
            crc32: None,
            records: Vec::new(),
            machines: Vec::new(),
        }
    }
}

/// CRC-32 over the tensors in name order: each name, kind, shape and the raw bytes.
fn checksum(tensors: &[(String, Tensor)]) -> u32 {
    let mut order: Vec<&(String, Tensor)> = tensors.iter().filter(|(n, _)| n != META).collect();
    order.sort_by(|a, b| a.0.cmp(&b.0));
    let mut h = crc32fast::Hasher::new();
    for (name, t) in order {
        let t = t.to_device(tch::Device::Cpu).contiguous();
        h.update(name.as_bytes());
        h.update(format!("{:?}{:?}", t.kind(), t.size()).as_bytes());
        let numel = t.numel();
        let mut bytes = vec![0u8; numel * t.kind().elt_size_in_bytes()];
        t.copy_data_u8(&mut bytes, numel);
        h.update(&bytes);
    }
    h.finalize()
}

/// One tensor's bytes for the safetensors writer.
struct Raw {
    dtype: safetensors::Dtype,
    shape: Vec<usize>,
    bytes: Vec<u8>,
}

impl safetensors::View for &Raw {
    fn dtype(&self) -> safetensors::Dtype {
        self.dtype
    }
    fn shape(&self) -> &[usize] {
        &self.shape
    }
    fn data(&self) -> std::borrow::Cow<'_, [u8]> {
        std::borrow::Cow::Borrowed(&self.bytes)
    }
    fn data_len(&self) -> usize {
        self.bytes.len()
    }
}

fn raw(name: &str, t: &Tensor) -> Result<Raw> {
    use safetensors::Dtype;
    use tch::Kind;
    let t = t.to_device(tch::Device::Cpu).contiguous();
    let dtype = match t.kind() {
        Kind::Float => Dtype::F32,
        Kind::Double => Dtype::F64,
        Kind::BFloat16 => Dtype::BF16,
        Kind::Half => Dtype::F16,
        Kind::Int64 => Dtype::I64,
        Kind::Int => Dtype::I32,
        Kind::Uint8 => Dtype::U8,
        Kind::Int8 => Dtype::I8,
        Kind::Bool => Dtype::BOOL,
        k => bail!("tensor `{name}` has kind {k:?}, which unmix does not write"),
    };
    let numel = t.numel();
    let mut bytes = vec![0u8; numel * t.kind().elt_size_in_bytes()];
    t.copy_data_u8(&mut bytes, numel);
    Ok(Raw { dtype, shape: t.size().iter().map(|&d| d as usize).collect(), bytes })
}

/// Writes named tensors as a safetensors file whose header carries `metadata` (string pairs that
/// any safetensors reader shows, e.g. Python's `safe_open(path, "pt").metadata()`).
pub fn write_safetensors(path: &Path, tensors: &[(String, Tensor)], metadata: &BTreeMap<String, String>) -> Result<()> {
    let raws: Vec<(String, Raw)> = tensors.iter().map(|(n, t)| Ok((n.clone(), raw(n, t)?))).collect::<Result<_>>()?;
    let info: std::collections::HashMap<String, String> =
        metadata.iter().map(|(k, v)| (k.clone(), v.clone())).collect();
    safetensors::serialize_to_file(raws.iter().map(|(n, r)| (n.as_str(), r)), Some(info), path)
        .map_err(|e| anyhow!("cannot write {}: {e}", path.display()))
}

/// A safetensors file's header, read without its tensors.
struct Header {
    json: serde_json::Value,
    /// The offset its tensor data starts at.
    data: u64,
    /// The file's size in bytes.
    size: u64,
    /// The open file, positioned after the header.
    file: std::fs::File,
}

fn read_header(path: &Path) -> Result<Header> {
    use std::io::Read;
    let mut f = std::fs::File::open(path).with_context(|| format!("cannot open {}", path.display()))?;
    let size = f.metadata().with_context(|| format!("cannot read {}", path.display()))?.len();
    let mut len = [0u8; 8];
    f.read_exact(&mut len).with_context(|| format!("{} is not a safetensors file", path.display()))?;
    let n = u64::from_le_bytes(len);
    if n > (100 << 20).min(size.saturating_sub(8)) {
        bail!("{} is not a safetensors file (header of {n} bytes in a file of {size})", path.display());
    }
    let mut header = vec![0u8; n as usize];
    f.read_exact(&mut header).with_context(|| format!("{}: damaged header", path.display()))?;
    let v = serde_json::from_slice(&header).with_context(|| format!("{}: damaged header", path.display()))?;
    Ok(Header { json: v, data: 8 + n, size, file: f })
}

/// The string pairs in a safetensors file's header (`__metadata__`), read without its tensors.
pub fn read_header_metadata(path: &Path) -> Result<BTreeMap<String, String>> {
    let v = read_header(path)?.json;
    Ok(v["__metadata__"]
        .as_object()
        .map(|m| m.iter().filter_map(|(k, v)| Some((k.clone(), v.as_str()?.to_string()))).collect())
        .unwrap_or_default())
}

/// A checkpoint's metadata (epoch, step, config, ...) without reading its tensors: for what only
/// needs to know which run and where it stopped. [`load`] checks the tensors against the checksum.
pub fn read_meta(path: &Path) -> Result<Meta> {
    use std::io::{Read, Seek, SeekFrom};
    let Header { json: v, data, size, file: mut f } = read_header(path).with_context(|| {
        format!("{} is not a readable unmix checkpoint (damaged or another format)", path.display())
    })?;
    let offsets = v[META]["data_offsets"]
        .as_array()
        .ok_or_else(|| anyhow!("{} has no unmix metadata: not an unmix checkpoint", path.display()))?;
    let (a, b) = match (offsets.first().and_then(|o| o.as_u64()), offsets.get(1).and_then(|o| o.as_u64())) {
        (Some(a), Some(b)) if a <= b => (a, b),
        _ => bail!("{}: damaged header (the unmix metadata's offsets)", path.display()),
    };
    // Checked before anything is allocated: the metadata must lie inside the file.
    if data.checked_add(b).is_none_or(|end| end > size) {
        bail!("{}: truncated (its metadata lies past the end)", path.display());
    }
    let mut bytes = vec![0u8; (b - a) as usize];
    f.seek(SeekFrom::Start(data + a))
        .and_then(|_| f.read_exact(&mut bytes))
        .with_context(|| format!("{}: truncated (its metadata lies past the end)", path.display()))?;
    serde_json::from_slice(&bytes).with_context(|| format!("{}: damaged metadata", path.display()))
}

pub fn save(path: &Path, tensors: &[(String, Tensor)], meta: &Meta) -> Result<()> {
    save_with(path, tensors, meta, &BTreeMap::new())
}

/// [`save`] with `header` in the file's safetensors header (what the network is, for readers
/// other than unmix).
pub fn save_with(
    path: &Path,
    tensors: &[(String, Tensor)],
    meta: &Meta,
    header: &BTreeMap<String, String>,
) -> Result<()> {
    let mut all: Vec<(String, Tensor)> =
        tensors.iter().map(|(n, t)| (n.clone(), t.to_device(tch::Device::Cpu).contiguous())).collect();
    let meta = Meta { crc32: Some(checksum(&all)), ..meta.clone() };
    all.push((META.to_string(), Tensor::from_slice(&serde_json::to_vec(&meta)?)));
    let tmp = tmp_path(path);
    let had_one = path.exists();
    let write = || -> Result<()> {
        write_safetensors(&tmp, &all, header)?;
        std::fs::File::open(&tmp)?.sync_all()?;
        std::fs::rename(&tmp, path)?;
        Ok(())
    };
    write()
        .inspect_err(|_| {
            let _ = std::fs::remove_file(&tmp);
        })
        .with_context(|| {
            let kept = if had_one { "the previous checkpoint is untouched" } else { "there was no earlier checkpoint" };
            format!("cannot write checkpoint {} (is the disk full or the folder read-only?); {kept}", path.display())
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
        bail!("checkpoint {} does not exist", path.display());
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
    if let Some(want) = meta.crc32 {
        let got = checksum(&tensors);
        if got != want {
            bail!(
                "checkpoint {} is damaged: its tensors do not match the checksum written with them ({got:08x}, not {want:08x}): \
                 a changed byte on disk or an incomplete copy; use an intact copy",
                path.display()
            );
        }
    }
    Ok((tensors, meta))
}

/// Refuses tensors with NaN or infinite values (weights damaged before the checksum existed,
/// or a run that diverged), naming the first one.
pub fn check_finite(tensors: &[(String, Tensor)], path: &Path) -> Result<()> {
    for (name, t) in tensors {
        if t.is_floating_point() && !bool::try_from(t.isfinite().all()).unwrap_or(false) {
            bail!(
                "checkpoint {}: tensor `{name}` holds NaN or infinite values; evaluate an earlier, intact checkpoint",
                path.display()
            );
        }
    }
    Ok(())
}

/// The temporary file a write of `path` goes through, unique to this process.
pub fn tmp_path(path: &Path) -> PathBuf {
    let mut s = path.as_os_str().to_owned();
    s.push(format!(".tmp.{}", std::process::id()));
    PathBuf::from(s)
}

/// Writes `path` whole or not at all (a temporary file, synced, renamed over it).
pub fn write_atomic(path: &Path, bytes: &[u8]) -> Result<()> {
    let tmp = tmp_path(path);
    let write = || -> std::io::Result<()> {
        let mut f = std::fs::File::create(&tmp)?;
        std::io::Write::write_all(&mut f, bytes)?;
        f.sync_all()?;
        std::fs::rename(&tmp, path)
    };
    write()
        .inspect_err(|_| {
            let _ = std::fs::remove_file(&tmp);
        })
        .with_context(|| format!("cannot write {} (is the disk full or the folder read-only?)", path.display()))
}

/// Appends one JSON line in a single write, so a kill can tear at most the last line.
pub fn append_jsonl(path: &Path, value: &serde_json::Value) -> Result<()> {
    let mut f = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .with_context(|| format!("cannot open {}", path.display()))?;
    let line = format!("{value}\n");
    f.write_all(line.as_bytes()).with_context(|| format!("cannot write {} (is the disk full?)", path.display()))?;
    Ok(())
}

/// The records of a JSON-lines file (a missing file has none). A torn last line (a run killed
/// while writing it) is skipped with a warning; a damaged line elsewhere is an error.
pub fn read_jsonl(path: &Path) -> Result<Vec<serde_json::Value>> {
    let text = match std::fs::read_to_string(path) {
        Ok(s) => s,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(vec![]),
        Err(e) => return Err(anyhow!("cannot read {}: {e}", path.display())),
    };
    let lines: Vec<&str> = text.lines().filter(|l| !l.trim().is_empty()).collect();
    let mut out = Vec::with_capacity(lines.len());
    for (i, l) in lines.iter().enumerate() {
        match serde_json::from_str(l) {
            Ok(v) => out.push(v),
            Err(_) if i + 1 == lines.len() => {
                eprintln!("warning: {}: skipping its torn last line (a run stopped while writing it)", path.display());
            }
            Err(e) => bail!("{}: line {} is not JSON ({e})", path.display(), i + 1),
        }
    }
    Ok(out)
}

/// Keeps the records of a JSON-lines file for which `keep` holds (and drops a torn line), so the
/// run's records agree with its checkpoint when it resumes; returns the kept records (none for
/// a missing file, which stays missing).
pub fn retain_jsonl(path: &Path, keep: impl Fn(&serde_json::Value) -> bool) -> Result<Vec<serde_json::Value>> {
    if !path.exists() {
        return Ok(Vec::new());
    }
    let kept: Vec<serde_json::Value> = read_jsonl(path)?.into_iter().filter(|v| keep(v)).collect();
    write_jsonl(path, &kept)?;
    Ok(kept)
}

/// Writes `path` as these JSON lines, whole or not at all.
pub fn write_jsonl(path: &Path, lines: &[serde_json::Value]) -> Result<()> {
    let text: String = lines.iter().map(|v| format!("{v}\n")).collect();
    write_atomic(path, text.as_bytes())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn read_meta_gives_what_load_gives_without_the_tensors_and_refuses_other_files() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path();
        let path = dir.join("c.safetensors");
        let tensors = vec![
            ("w".to_string(), Tensor::from_slice(&[1.5f32, -2.0, 3.25])),
            ("v".to_string(), Tensor::from_slice(&[7i64, 8])),
        ];
        let meta = Meta::at_epoch_end(3, 42, "seed = 1\n".into(), 1, 2.5, 768);
        save(&path, &tensors, &meta).unwrap();
        let (_, loaded) = load(&path).unwrap();
        let read = read_meta(&path).unwrap();
        assert_eq!(read, loaded);
        assert_eq!((read.epoch, read.step, read.config.as_str()), (3, 42, "seed = 1\n"));
        // A safetensors file without unmix's metadata, and a file cut short.
        let plain = dir.join("plain.safetensors");
        write_safetensors(&plain, &tensors, &BTreeMap::new()).unwrap();
        assert!(read_meta(&plain).unwrap_err().to_string().contains("not an unmix checkpoint"));
        let bytes = std::fs::read(&path).unwrap();
        let cut = dir.join("cut.safetensors");
        std::fs::write(&cut, &bytes[..bytes.len() - 3]).unwrap();
        assert!(
            format!("{:#}", read_meta(&cut).unwrap_err()).contains("truncated"),
            "{:#}",
            read_meta(&cut).unwrap_err()
        );
        // A hostile header: offsets at the end of the u64 range, refused before any allocation.
        let json = format!(r#"{{"{META}":{{"dtype":"U8","shape":[0],"data_offsets":[{m},{m}]}}}}"#, m = u64::MAX);
        let mut raw = (json.len() as u64).to_le_bytes().to_vec();
        raw.extend_from_slice(json.as_bytes());
        let hostile = dir.join("hostile.safetensors");
        std::fs::write(&hostile, raw).unwrap();
        assert!(format!("{:#}", read_meta(&hostile).unwrap_err()).contains("truncated"));
    }

    #[test]
    fn round_trip_and_failed_write_keeps_old_file() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("last.safetensors");
        let meta = Meta::at_epoch_end(3, 42, "seed = 1".into(), 1, 1.5, 100);
        let t = Tensor::from_slice(&[1.0f32, 2.0, 3.0]);
        save(&p, &[("a".into(), t.shallow_clone())], &meta).unwrap();
        let (ts, m) = load(&p).unwrap();
        assert_eq!(Meta { crc32: None, ..m.clone() }, meta);
        assert!(m.crc32.is_some());
        assert_eq!(ts.len(), 1);
        assert_eq!(Vec::<f32>::try_from(&ts[0].1).unwrap(), vec![1.0, 2.0, 3.0]);
        // A write into a missing folder fails with a message and leaves the old file alone.
        let bad = dir.path().join("missing").join("x.safetensors");
        let e = save(&bad, &[("a".into(), t)], &meta).unwrap_err();
        assert!(
            format!("{e:#}").contains("cannot write checkpoint")
                && format!("{e:#}").contains("there was no earlier checkpoint"),
            "{e:#}"
        );
        assert_eq!(load(&p).unwrap().1.step, 42);
        // A damaged file is reported as such.
        std::fs::write(dir.path().join("bad.safetensors"), b"garbage").unwrap();
        let e = load(&dir.path().join("bad.safetensors")).unwrap_err();
        assert!(format!("{e:#}").contains("not a readable unmix checkpoint"));
    }

    #[test]
    fn a_changed_byte_is_caught_by_the_checksum_and_non_finite_weights_are_named() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("last.safetensors");
        let t = Tensor::from_slice(&[1.0f32, 2.0, 3.0, 4.0]);
        save(&p, &[("w".into(), t)], &Meta::at_epoch_end(1, 1, String::new(), 0, 0.0, 0)).unwrap();
        // Flip one bit of the tensor data (the 4 floats are the 16 bytes before the metadata).
        let mut bytes = std::fs::read(&p).unwrap();
        let at = bytes.windows(4).position(|w| w == 3.0f32.to_le_bytes()).unwrap();
        bytes[at] ^= 1;
        std::fs::write(&p, &bytes).unwrap();
        let e = format!("{:#}", load(&p).unwrap_err());
        assert!(e.contains("is damaged") && e.contains("checksum"), "{e}");
        let nan = vec![("q.fc.weight".to_string(), Tensor::from_slice(&[1.0f32, f32::NAN]))];
        let e = format!("{:#}", check_finite(&nan, &p).unwrap_err());
        assert!(e.contains("q.fc.weight") && e.contains("NaN"), "{e}");
        assert!(check_finite(&[("n".to_string(), Tensor::from_slice(&[7i64]))], &p).is_ok());
    }

    #[test]
    fn jsonl_lines_are_whole_and_a_torn_last_line_is_skipped() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("steps.jsonl");
        for s in 1..=3 {
            append_jsonl(&p, &serde_json::json!({"step": s})).unwrap();
        }
        std::fs::OpenOptions::new().append(true).open(&p).unwrap().write_all(b"{\"step\": 4, \"lo").unwrap();
        let rows = read_jsonl(&p).unwrap();
        assert_eq!(rows.len(), 3);
        retain_jsonl(&p, |v| v["step"].as_u64() <= Some(2)).unwrap();
        assert_eq!(std::fs::read_to_string(&p).unwrap(), "{\"step\":1}\n{\"step\":2}\n");
        // A damaged line that is not the last one is an error naming the line.
        std::fs::write(&p, "{\"step\":1}\nnot json\n{\"step\":3}\n").unwrap();
        assert!(read_jsonl(&p).unwrap_err().to_string().contains("line 2"));
    }
}
