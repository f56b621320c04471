//! IDX reader (MNIST, Fashion-MNIST, EMNIST, ...), plain or gzip-compressed.
//!
//! Format (big-endian): images = magic 0x00000803, n, rows, cols (u32 each), then n*rows*cols
//! u8 pixels, row-major; labels = magic 0x00000801, n, then n u8 labels. Gzip is detected by its
//! magic bytes (1f 8b), not by the file extension.
//!
//! The readers never trust the header: every declared size is computed with checked arithmetic
//! and compared with the real data before anything is allocated (plain files), and gzip streams
//! are decompressed through a cap of the declared size + 1 bytes, so a lying header or a gzip
//! bomb cannot make them allocate more than the data actually decompresses to.

use std::fs::File;
use std::io::{self, BufRead, BufReader, Read};
use std::path::{Path, PathBuf};

use flate2::bufread::MultiGzDecoder;

use crate::error::{DataError, Result};
use crate::image::ImageSet;

const IDX_IMAGES_MAGIC: u32 = 0x0000_0803; // u8 data, 3 dimensions
const IDX_LABELS_MAGIC: u32 = 0x0000_0801; // u8 data, 1 dimension
const IMAGES_HEADER: usize = 16;
const LABELS_HEADER: usize = 8;
/// Largest initial buffer reserved for a gzip body; beyond it the buffer grows with the real data.
const GZ_INITIAL_CAPACITY: usize = 1 << 24;

/// Classes of MNIST and Fashion-MNIST.
const MNIST_CLASSES: usize = 10;

/// An opened IDX file: the (possibly decompressing) reader and what is known about its size.
struct IdxSource {
    reader: Box<dyn Read>,
    gzip: bool,
    /// On-disk length (for plain files this is the data length).
    file_len: u64,
}

/// Opens a dataset file; a missing file becomes [`DataError::NotFound`] saying what was expected.
pub(crate) fn open_file(path: &Path, expected: &str) -> Result<File> {
    if path.is_dir() {
        return Err(DataError::format(path, format!("is a directory; expected {expected}")));
    }
    File::open(path).map_err(|e| {
        if e.kind() == io::ErrorKind::NotFound {
            DataError::NotFound {
                root: path.parent().unwrap_or(Path::new("")).to_path_buf(),
                what: path.display().to_string(),
                hint: format!("expected {expected} there"),
            }
        } else {
            DataError::io(path, e)
        }
    })
}

fn open_source(path: &Path, expected: &str) -> Result<IdxSource> {
    let file = open_file(path, expected)?;
    let file_len = file.metadata().map_err(|e| DataError::io(path, e))?.len();
    let mut buf = BufReader::new(file);
    // Peek (without consuming) at the first two bytes: 1f 8b is the gzip magic.
    let gzip = {
        let head = buf.fill_buf().map_err(|e| DataError::io(path, e))?;
        head.len() >= 2 && head[0] == 0x1f && head[1] == 0x8b
    };
    let reader: Box<dyn Read> = if gzip { Box::new(MultiGzDecoder::new(buf)) } else { Box::new(buf) };
    Ok(IdxSource { reader, gzip, file_len })
}

/// Maps a read error: errors of the gzip decoder are format problems, the rest are I/O problems.
fn read_error(path: &Path, gzip: bool, e: io::Error) -> DataError {
    match e.kind() {
        io::ErrorKind::InvalidInput | io::ErrorKind::InvalidData | io::ErrorKind::UnexpectedEof if gzip => {
            DataError::format(path, format!("gzip decompression failed: {e} (the .gz file is corrupt or truncated)"))
        }
        _ => DataError::io(path, e),
    }
}

/// Reads until `buf` is full or the stream ends; returns the number of bytes read.
fn read_up_to(reader: &mut dyn Read, buf: &mut [u8]) -> io::Result<usize> {
    let mut filled = 0;
    while filled < buf.len() {
        match reader.read(&mut buf[filled..]) {
            Ok(0) => break,
            Ok(k) => filled += k,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(filled)
}

fn be_u32(b: &[u8]) -> u32 {
    u32::from_be_bytes([b[0], b[1], b[2], b[3]])
}

fn describe_magic(magic: u32) -> &'static str {
    match magic {
        IDX_IMAGES_MAGIC => "IDX images",
        IDX_LABELS_MAGIC => "IDX labels",
        _ => "",
    }
}

/// Reads the header of `len` bytes and checks the magic number.
fn read_header(src: &mut IdxSource, path: &Path, len: usize, magic: u32, what: &str) -> Result<Vec<u8>> {
    let mut header = vec![0u8; len];
    let got = read_up_to(src.reader.as_mut(), &mut header).map_err(|e| read_error(path, src.gzip, e))?;
    if got < len {
        let problem = if got == 0 {
            format!("file is empty (0 bytes{}); expected the {len}-byte {what} header", gz_note(src.gzip))
        } else {
            format!("file is too short ({got} bytes{}) for the {len}-byte {what} header", gz_note(src.gzip))
        };
        return Err(DataError::format(path, problem));
    }
    let found = be_u32(&header[0..4]);
    if found != magic {
        let mut problem = format!("bad magic number 0x{found:08x}, expected 0x{magic:08x} ({what})");
        let other = describe_magic(found);
        if !other.is_empty() {
            problem.push_str(&format!("; this is an {other} file (are the images and labels paths swapped?)"));
        }
        return Err(DataError::format(path, problem));
    }
    Ok(header)
}

fn gz_note(gzip: bool) -> &'static str {
    if gzip {
        " after gzip decompression"
    } else {
        ""
    }
}

/// Reads exactly `expected` body bytes after a header of `header_len` bytes; `describe` renders the
/// header's claim for error messages ("header says ...").
fn read_body(
    src: &mut IdxSource,
    path: &Path,
    header_len: usize,
    expected: usize,
    describe: &dyn Fn() -> String,
) -> Result<Vec<u8>> {
    if !src.gzip {
        // Plain file: the on-disk size must match before anything is allocated.
        let actual = src.file_len.saturating_sub(header_len as u64);
        if actual != expected as u64 {
            return Err(DataError::format(
                path,
                format!("wrong size: {} but the file has {actual} bytes after the header", describe()),
            ));
        }
        let mut body = vec![0u8; expected];
        let got = read_up_to(src.reader.as_mut(), &mut body).map_err(|e| DataError::io(path, e))?;
        if got != expected {
            // The file shrank while being read.
            return Err(DataError::format(path, format!("{} but only {got} bytes could be read", describe())));
        }
        return Ok(body);
    }
    // Gzip: decompress at most expected + 1 bytes, so a lying header or a gzip bomb is cut short.
    let cap = (expected as u64).saturating_add(1);
    let mut body = Vec::with_capacity(expected.min(GZ_INITIAL_CAPACITY));
    src.reader.as_mut().take(cap).read_to_end(&mut body).map_err(|e| read_error(path, true, e))?;
    if body.len() != expected {
        let actual = if body.len() > expected { format!("more than {expected}") } else { body.len().to_string() };
        return Err(DataError::format(
            path,
            format!("wrong size: {} but the decompressed file has {actual} bytes after the header", describe()),
        ));
    }
    Ok(body)
}

/// Reads an IDX images file (magic 0x00000803), plain or gzip. Returns `(n, rows, cols, pixels)`,
/// pixels being `n * rows * cols` bytes, image after image, row-major.
pub fn read_idx_images(path: &Path) -> Result<(usize, usize, usize, Vec<u8>)> {
    let mut src = open_source(path, "an IDX images file (MNIST format, plain or gzip)")?;
    let header = read_header(&mut src, path, IMAGES_HEADER, IDX_IMAGES_MAGIC, "IDX images")?;
    let (n, rows, cols) = (be_u32(&header[4..8]), be_u32(&header[8..12]), be_u32(&header[12..16]));
    if rows == 0 || cols == 0 {
        return Err(DataError::format(path, format!("header declares empty {rows}x{cols} images")));
    }
    let describe = || format!("header says {n} images of {rows}x{cols}");
    let expected = (n as usize)
        .checked_mul(rows as usize)
        .and_then(|x| x.checked_mul(cols as usize))
        .ok_or_else(|| DataError::format(path, format!("{} which overflows the address space", describe())))?;
    let describe = || format!("header says {n} images of {rows}x{cols} = {expected} bytes");
    let pixels = read_body(&mut src, path, IMAGES_HEADER, expected, &describe)?;
    Ok((n as usize, rows as usize, cols as usize, pixels))
}

/// Reads an IDX labels file (magic 0x00000801), plain or gzip: one byte per label.
pub fn read_idx_labels(path: &Path) -> Result<Vec<u8>> {
    let mut src = open_source(path, "an IDX labels file (MNIST format, plain or gzip)")?;
    let header = read_header(&mut src, path, LABELS_HEADER, IDX_LABELS_MAGIC, "IDX labels")?;
    let n = be_u32(&header[4..8]) as usize;
    let describe = || format!("header says {n} labels = {n} bytes");
    read_body(&mut src, path, LABELS_HEADER, n, &describe)
}

/// Reads an images file and its labels file into a one-channel [`ImageSet`], checking that the
/// counts agree, that the set is not empty and that every label is below `num_classes`.
pub fn load_idx_pair(images: &Path, labels: &Path, num_classes: usize) -> Result<ImageSet> {
    let (n, rows, cols, pixels) = read_idx_images(images)?;
    let raw_labels = read_idx_labels(labels)?;
    if raw_labels.len() != n {
        return Err(DataError::format(
            labels,
            format!(
                "image/label count mismatch: {} has {n} images but this labels file has {} labels",
                images.display(),
                raw_labels.len()
            ),
        ));
    }
    if n == 0 {
        return Err(DataError::format(images, "header declares 0 images; the dataset is empty"));
    }
    if let Some((index, &label)) = raw_labels.iter().enumerate().find(|(_, &l)| l as usize >= num_classes) {
        return Err(DataError::LabelOutOfRange {
            path: labels.to_path_buf(),
            index,
            label: label as u32,
            classes: num_classes,
        });
    }
    Ok(ImageSet {
        height: rows,
        width: cols,
        channels: 1,
        pixels,
        labels: raw_labels.into_iter().map(u32::from).collect(),
        num_classes,
    })
}

/// `root/name` if it exists, else `root/name.gz` if that exists.
fn find_plain_or_gz(root: &Path, name: &str) -> Option<PathBuf> {
    [root.join(name), root.join(format!("{name}.gz"))].into_iter().find(|p| p.is_file())
}

/// MNIST / Fashion-MNIST layout: `root/{train,t10k}-{images-idx3,labels-idx1}-ubyte`, each either
/// plain or with `.gz` (whichever exists; plain first). 10 classes.
pub fn load_mnist_like(root: &Path, train: bool) -> Result<ImageSet> {
    let split = if train { "train" } else { "t10k" };
    let find = |kind: &str| -> Result<PathBuf> {
        let name = format!("{split}-{kind}-ubyte");
        find_plain_or_gz(root, &name).ok_or_else(|| DataError::NotFound {
            root: root.to_path_buf(),
            what: format!("{name} or {name}.gz"),
            hint: "the folder should hold the four MNIST-format files train-images-idx3-ubyte, \
                   train-labels-idx1-ubyte, t10k-images-idx3-ubyte, t10k-labels-idx1-ubyte \
                   (plain or .gz) as distributed for MNIST / Fashion-MNIST"
                .to_string(),
        })
    };
    let images = find("images-idx3")?;
    let labels = find("labels-idx1")?;
    load_idx_pair(&images, &labels, MNIST_CLASSES)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn idx_images(n: u32, rows: u32, cols: u32, body: &[u8]) -> Vec<u8> {
        let mut v = Vec::new();
        for x in [IDX_IMAGES_MAGIC, n, rows, cols] {
            v.extend_from_slice(&x.to_be_bytes());
        }
        v.extend_from_slice(body);
        v
    }

    #[test]
    fn plain_and_gzip_roundtrip() {
        use std::io::Write;
        let dir = tempfile::tempdir().unwrap();
        let bytes = idx_images(2, 2, 3, &[1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12]);
        let plain = dir.path().join("a");
        std::fs::write(&plain, &bytes).unwrap();
        let gz = dir.path().join("a.gz");
        let mut enc = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
        enc.write_all(&bytes).unwrap();
        std::fs::write(&gz, enc.finish().unwrap()).unwrap();
        for p in [&plain, &gz] {
            let (n, r, c, px) = read_idx_images(p).unwrap();
            assert_eq!((n, r, c), (2, 2, 3));
            assert_eq!(px, (1..=12).collect::<Vec<u8>>());
        }
    }

    #[test]
    fn huge_declared_size_is_rejected_without_allocating() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("big");
        std::fs::write(&p, idx_images(u32::MAX, u32::MAX, u32::MAX, &[0; 8])).unwrap();
        let err = read_idx_images(&p).unwrap_err().to_string();
        assert!(err.contains("4294967295 images"), "{err}");
    }
}
