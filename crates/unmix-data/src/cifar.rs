//! CIFAR-10 / CIFAR-100 readers for the official *binary* versions
//! (https://www.cs.toronto.edu/~kriz/cifar.html).
//!
//! Each file is a sequence of fixed-size records: the label byte(s) (CIFAR-10: label; CIFAR-100:
//! coarse, fine), then 3072 pixel bytes: the 1024 red, 1024 green and 1024 blue values of a 32x32
//! image, each plane row-major. The readers transpose the planes to HWC interleaved RGB.

use std::path::{Path, PathBuf};

use crate::error::{DataError, Result};
use crate::idx::open_file;
use crate::image::ImageSet;

const SIDE: usize = 32;
const PLANE: usize = SIDE * SIDE; // 1024
const PIXELS: usize = 3 * PLANE; // 3072

const CIFAR10_DIR: &str = "cifar-10-batches-bin";
const CIFAR100_DIR: &str = "cifar-100-binary";

/// Which CIFAR-100 label to use.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Cifar100Label {
    /// The 100 classes (second label byte).
    Fine,
    /// The 20 superclasses (first label byte).
    Coarse,
}

fn dataset_name(label_bytes: usize) -> &'static str {
    match label_bytes {
        1 => "CIFAR-10",
        2 => "CIFAR-100",
        _ => "CIFAR",
    }
}

/// Reads one CIFAR binary file of records of `label_bytes` label bytes + 3072 pixel bytes, taking
/// the label at `label_index`. Returns the images as HWC interleaved RGB (`32*32*3` bytes each)
/// and the labels, all checked to be below `num_classes`.
pub fn read_cifar_file(
    path: &Path,
    label_bytes: usize,
    label_index: usize,
    num_classes: usize,
) -> Result<(Vec<u8>, Vec<u32>)> {
    if label_index >= label_bytes {
        return Err(DataError::format(
            path,
            format!("label index {label_index} is outside the {label_bytes} label byte(s) of a record"),
        ));
    }
    let name = dataset_name(label_bytes);
    let record = label_bytes + PIXELS;
    let file = open_file(path, &format!("a {name} binary file"))?;
    let len = file.metadata().map_err(|e| DataError::io(path, e))?.len();
    if len == 0 {
        return Err(DataError::format(
            path,
            format!("file is empty (0 bytes); expected {name} binary records of {record} bytes"),
        ));
    }
    if len % record as u64 != 0 {
        return Err(DataError::format(
            path,
            format!(
                "file is {len} bytes, not a multiple of the {record}-byte {name} record; \
                 the file is truncated or not {name} binary"
            ),
        ));
    }
    let len =
        usize::try_from(len).map_err(|_| DataError::format(path, format!("file is {len} bytes, too large to load")))?;
    let raw = crate::fileio::read_exactly(file, len, path)?;

    let n = len / record;
    let mut pixels = vec![0u8; n * PIXELS];
    let mut labels = Vec::with_capacity(n);
    for (index, (rec, out)) in raw.chunks_exact(record).zip(pixels.chunks_exact_mut(PIXELS)).enumerate() {
        let label = rec[label_index];
        if label as usize >= num_classes {
            return Err(DataError::LabelOutOfRange {
                path: path.to_path_buf(),
                index,
                label: label as u32,
                classes: num_classes,
            });
        }
        labels.push(label as u32);
        // Planar R, G, B (1024 bytes each) -> interleaved RGB.
        let planes = &rec[label_bytes..];
        for p in 0..PLANE {
            out[p * 3] = planes[p];
            out[p * 3 + 1] = planes[PLANE + p];
            out[p * 3 + 2] = planes[2 * PLANE + p];
        }
    }
    Ok((pixels, labels))
}

/// The folder holding the files: `root/<dir>` if that folder exists, `root` itself if it holds
/// `probe` (the user pointed at the folder), else `root/<dir>` (named in the not-found error).
fn resolve_dir(root: &Path, dir: &str, probe: &str) -> PathBuf {
    let nested = root.join(dir);
    if !nested.is_dir() && root.join(probe).is_file() {
        root.to_path_buf()
    } else {
        nested
    }
}

/// Checks that `path` exists, naming the expected file and what the folder should hold if not.
fn require(path: PathBuf, root: &Path, hint: &str) -> Result<PathBuf> {
    if path.is_file() {
        return Ok(path);
    }
    Err(DataError::NotFound {
        root: root.to_path_buf(),
        what: format!("expected {}", path.display()),
        hint: hint.to_string(),
    })
}

fn load_files(files: &[PathBuf], label_bytes: usize, label_index: usize, num_classes: usize) -> Result<ImageSet> {
    let mut pixels = Vec::new();
    let mut labels = Vec::new();
    for f in files {
        let (p, l) = read_cifar_file(f, label_bytes, label_index, num_classes)?;
        pixels.extend_from_slice(&p);
        labels.extend_from_slice(&l);
    }
    Ok(ImageSet { height: SIDE, width: SIDE, channels: 3, pixels, labels, num_classes })
}

/// CIFAR-10, binary version. `root` is the `cifar-10-batches-bin` folder or its parent.
/// train: `data_batch_1.bin` .. `data_batch_5.bin` (all five must exist); test: `test_batch.bin`.
/// 10 classes.
pub fn load_cifar10(root: &Path, train: bool) -> Result<ImageSet> {
    const HINT: &str = "the folder should contain data_batch_1.bin .. data_batch_5.bin and \
        test_batch.bin from the CIFAR-10 binary version (cifar-10-binary.tar.gz from \
        https://www.cs.toronto.edu/~kriz/cifar.html; the python/pickle version is not supported)";
    let names: Vec<String> = if train {
        (1..=5).map(|k| format!("data_batch_{k}.bin")).collect()
    } else {
        vec!["test_batch.bin".to_string()]
    };
    let dir = resolve_dir(root, CIFAR10_DIR, &names[0]);
    let files = names.iter().map(|n| require(dir.join(n), root, HINT)).collect::<Result<Vec<_>>>()?;
    load_files(&files, 1, 0, 10)
}

/// CIFAR-100, binary version. `root` is the `cifar-100-binary` folder or its parent.
/// `train.bin` / `test.bin`; record = coarse byte, fine byte, 3072 pixel bytes.
/// Fine: 100 classes; Coarse: 20.
pub fn load_cifar100(root: &Path, train: bool, label: Cifar100Label) -> Result<ImageSet> {
    const HINT: &str = "the folder should contain train.bin and test.bin from the CIFAR-100 binary \
        version (cifar-100-binary.tar.gz from https://www.cs.toronto.edu/~kriz/cifar.html; the \
        python/pickle version is not supported)";
    let name = if train { "train.bin" } else { "test.bin" };
    let dir = resolve_dir(root, CIFAR100_DIR, name);
    let file = require(dir.join(name), root, HINT)?;
    let (label_index, classes) = match label {
        Cifar100Label::Coarse => (0, 20),
        Cifar100Label::Fine => (1, 100),
    };
    load_files(&[file], 2, label_index, classes)
}
