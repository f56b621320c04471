//! Reading a file whose length was already checked against its format.

use crate::error::{DataError, Result};
use std::fs::File;
use std::io::Read;
use std::path::Path;

/// Reads exactly `len` bytes (the length checked before allocating); a file that grew or shrank
/// meanwhile is an error naming it.
pub(crate) fn read_exactly(file: File, len: usize, path: &Path) -> Result<Vec<u8>> {
    let mut raw = Vec::with_capacity(len);
    file.take(len as u64 + 1).read_to_end(&mut raw).map_err(|e| DataError::io(path, e))?;
    if raw.len() != len {
        return Err(DataError::format(path, format!("file changed size while being read ({len} -> {})", raw.len())));
    }
    Ok(raw)
}
