//! TensorBoard event files: the run's scalars (loss, lr, kNN, probe, images/s) in the format
//! `tensorboard --logdir RUN` reads. No maintained Rust crate writes them, so this is the small
//! writer: each record is a TFRecord (length, masked CRC-32C of the length, an `Event` protocol
//! buffer, masked CRC-32C of the data) holding one scalar, written whole in one write.

use anyhow::{Context, Result};
use std::io::Write;
use std::path::{Path, PathBuf};

/// An open event file.
pub struct EventWriter {
    path: PathBuf,
    file: std::fs::File,
}

fn varint(mut v: u64, out: &mut Vec<u8>) {
    while v >= 0x80 {
        out.push((v as u8) | 0x80);
        v >>= 7;
    }
    out.push(v as u8);
}

/// A length-delimited field (wire type 2).
fn bytes_field(field: u32, data: &[u8], out: &mut Vec<u8>) {
    varint(u64::from(field << 3 | 2), out);
    varint(data.len() as u64, out);
    out.extend_from_slice(data);
}

/// TensorFlow's masked CRC-32C.
fn masked_crc(data: &[u8]) -> u32 {
    let c = crc32c::crc32c(data);
    c.rotate_right(15).wrapping_add(0xa282_ead8)
}

/// An `Event` with `wall_time` (field 1, double) and `step` (field 2, int64) before `what`.
fn event(wall: f64, step: i64, what: &[u8]) -> Vec<u8> {
    let mut e = Vec::with_capacity(16 + what.len());
    e.push(1 << 3 | 1);
    e.extend_from_slice(&wall.to_le_bytes());
    e.push(2 << 3);
    varint(step as u64, &mut e);
    e.extend_from_slice(what);
    e
}

/// The seconds in a new event file's name: now, or later than every file already in `dir`, as
/// TensorBoard reads a folder's files in the order of their names.
fn file_seconds(dir: &Path, wall: f64) -> u64 {
    let newest = std::fs::read_dir(dir)
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|e| {
            e.file_name().to_str()?.strip_prefix("events.out.tfevents.")?.split('.').next()?.parse::<u64>().ok()
        })
        .max();
    newest.map_or(wall as u64, |n| (n + 1).max(wall as u64))
}

fn now() -> f64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_secs_f64()).unwrap_or(0.0)
}

impl EventWriter {
    /// A new event file in `dir` (created if missing), starting with the file-version record.
    /// `resumed_at`: the step a resumed run continues from; TensorBoard then drops the earlier
    /// files' records after it (a `SessionLog` START), as they belong to the lost part of the run.
    pub fn create(dir: &Path, resumed_at: Option<i64>) -> Result<EventWriter> {
        std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
        let wall = now();
        let host = std::fs::read_to_string("/proc/sys/kernel/hostname")
            .map(|h| h.trim().to_string())
            .unwrap_or_else(|_| "host".into());
        let path = dir.join(format!("events.out.tfevents.{}.{host}.{}", file_seconds(dir, wall), std::process::id()));
        let file = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&path)
            .with_context(|| format!("cannot create {}", path.display()))?;
        let mut w = EventWriter { path, file };
        let mut what = Vec::new();
        bytes_field(3, b"brain.Event:2", &mut what);
        w.record(&event(wall, 0, &what))?;
        if let Some(step) = resumed_at {
            // session_log (Event field 7) { status (field 1) = START (1) }: TensorBoard drops
            // every earlier record at this step or later.
            let mut what = Vec::new();
            bytes_field(7, &[1 << 3, 1], &mut what);
            w.record(&event(wall, step, &what))?;
        }
        Ok(w)
    }

    fn record(&mut self, data: &[u8]) -> Result<()> {
        let len = (data.len() as u64).to_le_bytes();
        let mut r = Vec::with_capacity(data.len() + 16);
        r.extend_from_slice(&len);
        r.extend_from_slice(&masked_crc(&len).to_le_bytes());
        r.extend_from_slice(data);
        r.extend_from_slice(&masked_crc(data).to_le_bytes());
        self.file.write_all(&r).with_context(|| format!("cannot write {} (is the disk full?)", self.path.display()))
    }

    /// One scalar: `tag` at `step`.
    pub fn scalar(&mut self, tag: &str, step: i64, value: f64) -> Result<()> {
        // Summary.Value { tag (1): string, simple_value (2): float }
        let mut v = Vec::new();
        bytes_field(1, tag.as_bytes(), &mut v);
        v.push(2 << 3 | 5);
        v.extend_from_slice(&(value as f32).to_le_bytes());
        // Summary { value (1): Value }, in Event field 5.
        let mut summary = Vec::new();
        bytes_field(1, &v, &mut summary);
        let mut what = Vec::new();
        bytes_field(5, &summary, &mut what);
        self.record(&event(now(), step, &what))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn crc32c_and_records_follow_tensorflow() {
        // CRC-32C of "123456789" is 0xe3069283 (the standard check value).
        assert_eq!(crc32c::crc32c(b"123456789"), 0xe306_9283);
        let dir = tempfile::tempdir().unwrap();
        let mut w = EventWriter::create(dir.path(), Some(7)).unwrap();
        w.scalar("train/loss", 8, 1.5).unwrap();
        let bytes = std::fs::read(&w.path).unwrap();
        // Three records, each length-prefixed with a valid masked CRC of the length and data.
        let mut at = 0;
        let mut n = 0;
        while at < bytes.len() {
            let len = u64::from_le_bytes(bytes[at..at + 8].try_into().unwrap()) as usize;
            assert_eq!(u32::from_le_bytes(bytes[at + 8..at + 12].try_into().unwrap()), masked_crc(&bytes[at..at + 8]));
            let data = &bytes[at + 12..at + 12 + len];
            assert_eq!(u32::from_le_bytes(bytes[at + 12 + len..at + 16 + len].try_into().unwrap()), masked_crc(data));
            at += 16 + len;
            n += 1;
        }
        assert_eq!(n, 3);
    }
}
