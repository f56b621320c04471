//! Datasets of image files, decoded on demand (in the loader's worker threads).
//!
//! * [`ImageFolder::open`]: torchvision's `ImageFolder` layout, `ROOT/CLASS/.../*.{jpg,jpeg,png}`.
//! * [`ImageFolder::unlabeled`]: a folder of unlabeled images, `ROOT/.../*.{jpg,jpeg,png}` at any
//!   depth (one's own photos), every image label 0.
//! * [`ImageFolder::tiny_imagenet`]: the Tiny ImageNet layout (`wnids.txt`, `train/WNID/images/`,
//!   `val/images/` + `val/val_annotations.txt`).
//!
//! Only the file list is built up front; [`Dataset::image`] reads and decodes one file with
//! [`decode_image`], which turns every JPEG / PNG colour type into u8 RGB the way torchvision's
//! `pil_loader` (`Image.open(f).convert("RGB")`) does: greyscale is replicated, alpha is dropped
//! (not composited), CMYK JPEGs are converted, 16-bit samples are scaled to 8 bits. Like
//! `pil_loader`, EXIF orientation is not applied. Pixel values of JPEGs can differ from Pillow's
//! (libjpeg-turbo) by a few levels where the decoders' IDCT / chroma upsampling differ; PNG pixels
//! are exact.

use std::ffi::OsString;
use std::io::Cursor;
use std::path::{Path, PathBuf};

use crate::error::{DataError, Result};
use crate::image::Image;
use crate::loader::Dataset;

/// File name extensions that are decoded (compared case-insensitively), as torchvision's
/// `IMG_EXTENSIONS` minus the formats not compiled in.
pub const IMAGE_EXTENSIONS: [&str; 3] = ["jpg", "jpeg", "png"];

/// Larger files are refused before reading (no dataset image comes near this).
const MAX_FILE_BYTES: u64 = 256 << 20;
/// Decoder limits: a tiny file cannot claim a huge canvas and make us allocate it.
const MAX_SIDE: u32 = 1 << 15;
const MAX_ALLOC: u64 = 1 << 30;
/// Folder nesting below a class folder that is followed (guards against symlink loops).
const MAX_DEPTH: usize = 32;

/// A labelled list of image files.
#[derive(Clone, Debug)]
pub struct ImageFolder {
    root: PathBuf,
    classes: Vec<String>,
    files: Vec<PathBuf>,
    labels: Vec<u32>,
}

fn has_image_extension(path: &Path) -> bool {
    path.extension()
        .and_then(|e| e.to_str())
        .is_some_and(|e| IMAGE_EXTENSIONS.iter().any(|x| e.eq_ignore_ascii_case(x)))
}

fn read_dir_sorted(dir: &Path) -> Result<Vec<(OsString, PathBuf)>> {
    let mut entries = Vec::new();
    for entry in std::fs::read_dir(dir).map_err(|e| DataError::io(dir, e))? {
        let entry = entry.map_err(|e| DataError::io(dir, e))?;
        entries.push((entry.file_name(), entry.path()));
    }
    // Byte order of the names, like Python's sorted() of str.
    entries.sort();
    Ok(entries)
}

/// Image files under `dir`, in the order of torchvision's `make_dataset`:
/// `sorted(os.walk(dir, followlinks=True))`, then the sorted file names of each folder.
fn collect_images(dir: &Path) -> Result<Vec<PathBuf>> {
    fn walk(dir: &Path, depth: usize, folders: &mut Vec<(OsString, Vec<PathBuf>)>) -> Result<()> {
        if depth > MAX_DEPTH {
            return Err(DataError::format(
                dir,
                format!("folders nested more than {MAX_DEPTH} deep (a symbolic link loop?)"),
            ));
        }
        let mut files = Vec::new();
        let mut subdirs = Vec::new();
        for (_, path) in read_dir_sorted(dir)? {
            // Follows symbolic links (followlinks=True); a dangling link is neither.
            if path.is_dir() {
                subdirs.push(path);
            } else if path.is_file() && has_image_extension(&path) {
                files.push(path);
            }
        }
        folders.push((dir.as_os_str().to_owned(), files));
        for d in subdirs {
            walk(&d, depth + 1, folders)?;
        }
        Ok(())
    }
    let mut folders = Vec::new();
    walk(dir, 0, &mut folders)?;
    // sorted(os.walk(...)) orders the folders by their path string.
    folders.sort_by(|a, b| a.0.cmp(&b.0));
    Ok(folders.into_iter().flat_map(|(_, f)| f).collect())
}

fn not_found(root: &Path, what: String, hint: &str) -> DataError {
    DataError::NotFound { root: root.to_path_buf(), what, hint: hint.to_string() }
}

impl ImageFolder {
    /// torchvision `ImageFolder(root)`: the classes are the sorted names of the subfolders of
    /// `root`, class `k` is the `k`-th; the samples are the `.jpg` / `.jpeg` / `.png` files
    /// (any case) found below each class folder (nested folders included, as torchvision
    /// does), in sorted order, so indices are stable. Other files are ignored; a class folder
    /// without images is an error (as in torchvision).
    pub fn open(root: &Path) -> Result<ImageFolder> {
        const HINT: &str = "expected one subfolder per class holding .jpg/.jpeg/.png files \
            (ROOT/CLASS/IMAGE)";
        if !root.is_dir() {
            return Err(not_found(root, format!("folder {}", root.display()), HINT));
        }
        let mut classes = Vec::new();
        let mut files = Vec::new();
        let mut labels = Vec::new();
        for (name, path) in read_dir_sorted(root)? {
            if !path.is_dir() {
                continue;
            }
            let class = name.to_string_lossy().into_owned();
            let found = collect_images(&path)?;
            if found.is_empty() {
                return Err(not_found(root, format!("images in class folder {}", path.display()), HINT));
            }
            let label = u32::try_from(classes.len()).expect("class count fits u32");
            labels.extend(std::iter::repeat_n(label, found.len()));
            files.extend(found);
            classes.push(class);
        }
        if classes.is_empty() {
            return Err(not_found(root, "class subfolders".to_string(), HINT));
        }
        Ok(ImageFolder { root: root.to_path_buf(), classes, files, labels })
    }

    /// A folder of unlabeled images: every `.jpg` / `.jpeg` / `.png` file (any case) below `root`,
    /// at any depth, in the same sorted walk order as [`ImageFolder::open`]; one class
    /// ("unlabeled"), every label 0. Subfolder names mean nothing here.
    pub fn unlabeled(root: &Path) -> Result<ImageFolder> {
        const HINT: &str = "expected a folder holding .jpg/.jpeg/.png files (subfolders are searched too)";
        if !root.is_dir() {
            return Err(not_found(root, format!("folder {}", root.display()), HINT));
        }
        let files = collect_images(root)?;
        if files.is_empty() {
            return Err(not_found(root, format!("image files under {}", root.display()), HINT));
        }
        let labels = vec![0; files.len()];
        Ok(ImageFolder { root: root.to_path_buf(), classes: vec!["unlabeled".to_string()], files, labels })
    }

    /// Tiny ImageNet (`tiny-imagenet-200.zip`). `root` is the `tiny-imagenet-200` folder or its
    /// parent. Classes are the WNIDs in the order of `wnids.txt` (the usual class indices).
    /// train: `train/WNID/images/*.JPEG`, each class's files sorted; val: `val/images/*`,
    /// labelled by `val/val_annotations.txt` (lines `FILE<TAB>WNID<TAB>x0<TAB>y0<TAB>x1<TAB>y1`),
    /// in the order of that file. The unlabelled `test` split is not supported.
    pub fn tiny_imagenet(root: &Path, train: bool) -> Result<ImageFolder> {
        let dir = {
            let nested = root.join("tiny-imagenet-200");
            if nested.join("wnids.txt").is_file() || !root.join("wnids.txt").is_file() {
                nested
            } else {
                root.to_path_buf()
            }
        };
        let (wnids_path, classes) = tiny_wnids(root, &dir)?;
        let (files, labels) =
            if train { tiny_train(root, &dir, &classes)? } else { tiny_val(root, &dir, &classes, &wnids_path)? };
        Ok(ImageFolder { root: dir, classes, files, labels })
    }

    /// Class names; label `k` is `classes()[k]`.
    pub fn classes(&self) -> &[String] {
        &self.classes
    }

    /// The file of sample `i`.
    pub fn path(&self, i: usize) -> &Path {
        &self.files[i]
    }

    /// All labels, one per sample.
    pub fn labels(&self) -> &[u32] {
        &self.labels
    }

    /// The folder the dataset was opened from.
    pub fn root(&self) -> &Path {
        &self.root
    }

    pub fn len(&self) -> usize {
        self.files.len()
    }

    pub fn is_empty(&self) -> bool {
        self.files.is_empty()
    }
}

impl Dataset for ImageFolder {
    fn len(&self) -> usize {
        self.files.len()
    }
    fn image(&self, i: usize) -> Result<Image> {
        decode_image(&self.files[i])
    }
    fn label(&self, i: usize) -> u32 {
        self.labels[i]
    }
}

fn read_text(path: &Path) -> Result<String> {
    let bytes = read_limited(path)?;
    String::from_utf8(bytes).map_err(|_| DataError::format(path, "not UTF-8 text"))
}

/// Reads a whole file after checking that it is a plausible size.
fn read_limited(path: &Path) -> Result<Vec<u8>> {
    let len = std::fs::metadata(path).map_err(|e| DataError::io(path, e))?.len();
    if len > MAX_FILE_BYTES {
        return Err(DataError::format(
            path,
            format!("file is {len} bytes, more than the {MAX_FILE_BYTES} bytes accepted"),
        ));
    }
    std::fs::read(path).map_err(|e| DataError::io(path, e))
}

/// Reads and decodes the image file at `path` to u8 RGB (see the module comment).
pub fn decode_image(path: &Path) -> Result<Image> {
    let bytes = read_limited(path)?;
    decode_image_bytes(&bytes, path)
}

/// zune-jpeg decodes a truncated JPEG without complaint (the missing part grey); Pillow refuses
/// it ("image file is truncated"). A complete JPEG has its end-of-image marker (FF D9) after its
/// last start-of-scan marker (FF DA): entropy-coded data cannot hold either byte pair (0xFF is
/// stuffed), and an embedded EXIF thumbnail's markers come before the main image's scans.
fn jpeg_is_complete(bytes: &[u8]) -> std::result::Result<(), String> {
    let last = |m: u8| bytes.windows(2).rposition(|w| w == [0xFF, m]);
    match (last(0xDA), last(0xD9)) {
        (Some(sos), Some(eoi)) if eoi > sos => Ok(()),
        (None, _) => Err("JPEG has no image data (no start-of-scan marker)".into()),
        _ => Err("JPEG is truncated (no end-of-image marker after the image data)".into()),
    }
}

/// Decodes JPEG or PNG `bytes` (the format is recognised from the content, not from the name) to
/// u8 RGB, 3 channels. Errors name `path`. A panic inside the decoder becomes an error too.
pub fn decode_image_bytes(bytes: &[u8], path: &Path) -> Result<Image> {
    let bad = |problem: String| DataError::format(path, format!("cannot decode image: {problem}"));
    if bytes.is_empty() {
        return Err(bad("file is empty".into()));
    }
    let decoded = std::panic::catch_unwind(|| {
        let reader = image::ImageReader::new(Cursor::new(bytes)).with_guessed_format().map_err(|e| e.to_string())?;
        match reader.format() {
            Some(image::ImageFormat::Jpeg) => jpeg_is_complete(bytes)?,
            Some(image::ImageFormat::Png) => {}
            Some(f) => return Err(format!("{f:?} files are not supported (only JPEG and PNG)")),
            None => return Err("not a JPEG or PNG file (unrecognised content)".into()),
        }
        let mut reader = reader;
        let mut limits = image::Limits::default();
        limits.max_image_width = Some(MAX_SIDE);
        limits.max_image_height = Some(MAX_SIDE);
        limits.max_alloc = Some(MAX_ALLOC);
        reader.limits(limits);
        reader.decode().map_err(|e| e.to_string())
    })
    .unwrap_or_else(|_| Err("the decoder panicked".into()))
    .map_err(bad)?;
    let (w, h) = (decoded.width() as usize, decoded.height() as usize);
    if w == 0 || h == 0 {
        return Err(bad(format!("image is {w}x{h}")));
    }
    // Grey -> replicated, grey+alpha / RGBA -> alpha dropped, 16-bit -> 8-bit; RGB8 moves.
    let rgb = match decoded {
        image::DynamicImage::ImageRgb8(b) => b,
        other => other.to_rgb8(),
    };
    Ok(Image::new(h, w, 3, rgb.into_raw()))
}

const TINY_HINT: &str = "expected the Tiny ImageNet layout (tiny-imagenet-200.zip from \
    http://cs231n.stanford.edu/): wnids.txt, train/WNID/images/*.JPEG, val/images/*.JPEG \
    and val/val_annotations.txt";

/// Tiny ImageNet's classes: wnids.txt's WNIDs in order, each once.
fn tiny_wnids(root: &Path, dir: &Path) -> Result<(PathBuf, Vec<String>)> {
    let wnids_path = dir.join("wnids.txt");
    if !wnids_path.is_file() {
        return Err(not_found(root, format!("expected {}", wnids_path.display()), TINY_HINT));
    }
    let text = read_text(&wnids_path)?;
    let classes: Vec<String> = text.lines().map(str::trim).filter(|l| !l.is_empty()).map(str::to_string).collect();
    if classes.is_empty() {
        return Err(DataError::format(&wnids_path, "no WNIDs in the file"));
    }
    for (k, c) in classes.iter().enumerate() {
        if classes.iter().position(|d| d == c) != Some(k) {
            return Err(DataError::format(&wnids_path, format!("WNID {c} is listed twice")));
        }
    }
    Ok((wnids_path, classes))
}

/// Tiny ImageNet's train split: `train/WNID/images/*`, class by class, each class's files sorted.
fn tiny_train(root: &Path, dir: &Path, classes: &[String]) -> Result<(Vec<PathBuf>, Vec<u32>)> {
    let (mut files, mut labels) = (Vec::new(), Vec::new());
    for (k, wnid) in classes.iter().enumerate() {
        let images = dir.join("train").join(wnid).join("images");
        if !images.is_dir() {
            return Err(not_found(root, format!("expected {}", images.display()), TINY_HINT));
        }
        let found: Vec<PathBuf> = read_dir_sorted(&images)?
            .into_iter()
            .map(|(_, p)| p)
            .filter(|p| p.is_file() && has_image_extension(p))
            .collect();
        if found.is_empty() {
            return Err(not_found(root, format!("images in {}", images.display()), TINY_HINT));
        }
        labels.extend(std::iter::repeat_n(k as u32, found.len()));
        files.extend(found);
    }
    Ok((files, labels))
}

/// Tiny ImageNet's val split: `val/images/*` in the order of `val/val_annotations.txt`, each
/// labelled by its line's WNID.
fn tiny_val(root: &Path, dir: &Path, classes: &[String], wnids_path: &Path) -> Result<(Vec<PathBuf>, Vec<u32>)> {
    let ann = dir.join("val").join("val_annotations.txt");
    if !ann.is_file() {
        return Err(not_found(root, format!("expected {}", ann.display()), TINY_HINT));
    }
    let images = dir.join("val").join("images");
    let (mut files, mut labels) = (Vec::new(), Vec::new());
    for (n, line) in read_text(&ann)?.lines().enumerate() {
        if line.trim().is_empty() {
            continue;
        }
        let mut fields = line.split('\t');
        let (file, wnid) = match (fields.next(), fields.next()) {
            (Some(f), Some(w)) if !f.is_empty() && !w.is_empty() => (f, w.trim()),
            _ => {
                return Err(DataError::format(
                    &ann,
                    format!("line {}: expected FILE<TAB>WNID<TAB>box, got {line:?}", n + 1),
                ))
            }
        };
        let path = images.join(file);
        if Path::new(file).components().count() != 1 || !path.is_file() {
            return Err(DataError::format(&ann, format!("line {}: image {} does not exist", n + 1, path.display())));
        }
        let label = classes.iter().position(|c| c == wnid).ok_or_else(|| {
            DataError::format(&ann, format!("line {}: WNID {wnid} is not in {}", n + 1, wnids_path.display()))
        })?;
        files.push(path);
        labels.push(label as u32);
    }
    if files.is_empty() {
        return Err(DataError::format(&ann, "no annotated validation images"));
    }
    Ok((files, labels))
}
