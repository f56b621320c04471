//! STL-10 reader for the official *binary* version (https://cs.stanford.edu/~acoates/stl10/,
//! `stl10_binary.tar.gz`).
//!
//! `{train,test,unlabeled}_X.bin` are sequences of 96x96 RGB images of 27648 bytes each: the 9216
//! red, 9216 green and 9216 blue values, each plane stored **column-major** (the MATLAB order), so
//! pixel (row y, column x) of channel c is byte `c * 9216 + x * 96 + y` of the image.
//! `{train,test}_y.bin` hold one label byte per image, 1..10. The reader transposes to HWC
//! interleaved RGB and stores the labels as 0..9.

use std::fs::File;
use std::io::{BufReader, Read};
use std::path::{Path, PathBuf};

use crate::error::{DataError, Result};
use crate::idx::open_file;
use crate::image::ImageSet;

const SIDE: usize = 96;
const PLANE: usize = SIDE * SIDE; // 9216
const PIXELS: usize = 3 * PLANE; // 27648
const CLASSES: usize = 10;

const DIR: &str = "stl10_binary";
const HINT: &str = "the folder should contain train_X.bin, train_y.bin, test_X.bin, test_y.bin \
    and unlabeled_X.bin from the STL-10 binary version (stl10_binary.tar.gz from \
    https://cs.stanford.edu/~acoates/stl10/)";

/// Which STL-10 split to read.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Stl10Split {
    /// 5000 labelled images (`train_X.bin`, `train_y.bin`).
    Train,
    /// 8000 labelled images (`test_X.bin`, `test_y.bin`).
    Test,
    /// 100000 unlabelled images (`unlabeled_X.bin`): every label is 0 and `num_classes` is 0, so
    /// that nothing can mistake them for class 0 of a 10-class set.
    Unlabeled,
}

impl Stl10Split {
    fn stem(self) -> &'static str {
        match self {
            Stl10Split::Train => "train",
            Stl10Split::Test => "test",
            Stl10Split::Unlabeled => "unlabeled",
        }
    }
}

/// Opens `path` and returns it with its length, after refusing an empty file.
fn open_sized(path: &Path, expected: &str) -> Result<(File, usize)> {
    let file = open_file(path, expected)?;
    let len = file.metadata().map_err(|e| DataError::io(path, e))?.len();
    if len == 0 {
        return Err(DataError::format(path, format!("file is empty (0 bytes); expected {expected}")));
    }
    let len =
        usize::try_from(len).map_err(|_| DataError::format(path, format!("file is {len} bytes, too large to load")))?;
    Ok((file, len))
}

/// Reads an STL-10 `*_X.bin` file: returns the images as HWC interleaved RGB (`96*96*3` bytes
/// each) and their number. The length is checked before anything is allocated, and at most that
/// many bytes are read.
pub fn read_stl10_images(path: &Path) -> Result<(Vec<u8>, usize)> {
    let (file, len) = open_sized(path, "an STL-10 binary image file (*_X.bin)")?;
    if len % PIXELS != 0 {
        return Err(DataError::format(
            path,
            format!(
                "file is {len} bytes, not a multiple of the {PIXELS}-byte STL-10 image (96x96x3); \
                 the file is truncated or not STL-10 binary"
            ),
        ));
    }
    let n = len / PIXELS;
    let mut pixels = vec![0u8; len];
    let mut reader = BufReader::with_capacity(1 << 16, file.take(len as u64));
    let mut rec = vec![0u8; PIXELS];
    for (index, out) in pixels.chunks_exact_mut(PIXELS).enumerate() {
        reader.read_exact(&mut rec).map_err(|e| {
            if e.kind() == std::io::ErrorKind::UnexpectedEof {
                DataError::format(path, format!("file shrank while being read (image {index} of {n} is incomplete)"))
            } else {
                DataError::io(path, e)
            }
        })?;
        // Column-major planes: (y, x, c) is at c * 9216 + x * 96 + y.
        for c in 0..3 {
            let plane = &rec[c * PLANE..(c + 1) * PLANE];
            for (x, column) in plane.chunks_exact(SIDE).enumerate() {
                for (y, &v) in column.iter().enumerate() {
                    out[(y * SIDE + x) * 3 + c] = v;
                }
            }
        }
    }
    Ok((pixels, n))
}

/// Reads an STL-10 `*_y.bin` file: one byte per image, 1..10, returned as 0..9.
pub fn read_stl10_labels(path: &Path) -> Result<Vec<u32>> {
    let (file, len) = open_sized(path, "an STL-10 binary label file (*_y.bin)")?;
    let raw = crate::fileio::read_exactly(file, len, path)?;
    raw.iter()
        .enumerate()
        .map(|(index, &b)| {
            // STL-10 labels are 1-based (1 = airplane ... 10 = truck).
            if b == 0 || b as usize > CLASSES {
                Err(DataError::format(
                    path,
                    format!("label {b} at record {index} is out of range (STL-10 labels are 1..10)"),
                ))
            } else {
                Ok(b as u32 - 1)
            }
        })
        .collect()
}

/// The folder holding the files: `root/stl10_binary` if that folder exists, `root` itself if it
/// holds `probe`, else `root/stl10_binary` (named in the not-found error).
fn resolve_dir(root: &Path, probe: &str) -> PathBuf {
    let nested = root.join(DIR);
    if !nested.is_dir() && root.join(probe).is_file() {
        root.to_path_buf()
    } else {
        nested
    }
}

fn require(path: PathBuf, root: &Path) -> Result<PathBuf> {
    if path.is_file() {
        return Ok(path);
    }
    Err(DataError::NotFound {
        root: root.to_path_buf(),
        what: format!("expected {}", path.display()),
        hint: HINT.to_string(),
    })
}

/// STL-10, binary version. `root` is the `stl10_binary` folder or its parent.
/// Train / Test: 10 classes, labels 0..9 (file labels 1..10). Unlabeled: labels all 0 and
/// `num_classes` 0 (see [`Stl10Split::Unlabeled`]).
pub fn load_stl10(root: &Path, split: Stl10Split) -> Result<ImageSet> {
    let x_name = format!("{}_X.bin", split.stem());
    let dir = resolve_dir(root, &x_name);
    let x_path = require(dir.join(&x_name), root)?;
    let y_path = match split {
        Stl10Split::Unlabeled => None,
        _ => Some(require(dir.join(format!("{}_y.bin", split.stem())), root)?),
    };
    let (pixels, n) = read_stl10_images(&x_path)?;
    let (labels, num_classes) = match y_path {
        None => (vec![0; n], 0),
        Some(y_path) => {
            let labels = read_stl10_labels(&y_path)?;
            if labels.len() != n {
                return Err(DataError::format(
                    &y_path,
                    format!("count mismatch: {} labels, but {} holds {n} images", labels.len(), x_path.display()),
                ));
            }
            (labels, CLASSES)
        }
    };
    Ok(ImageSet { height: SIDE, width: SIDE, channels: 3, pixels, labels, num_classes })
}
