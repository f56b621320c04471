//! Dataset readers against the real fixtures in tests/fixtures (see its README.md), corrupt copies
//! of them, and a deterministic fuzz-style robustness test.

use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::time::Instant;

use unmix_data::cifar::{load_cifar10, load_cifar100, read_cifar_file, Cifar100Label};
use unmix_data::idx::{load_idx_pair, load_mnist_like, read_idx_images, read_idx_labels};
use unmix_data::{DataError, ImageSet};

fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests").join("fixtures")
}

fn fashion() -> PathBuf {
    fixtures().join("fashion-mnist")
}

fn gunzip(path: &Path) -> Vec<u8> {
    let mut out = Vec::new();
    flate2::read::GzDecoder::new(std::fs::File::open(path).unwrap()).read_to_end(&mut out).unwrap();
    out
}

fn gzip(data: &[u8]) -> Vec<u8> {
    let mut enc = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    enc.write_all(data).unwrap();
    enc.finish().unwrap()
}

fn idx_images_bytes(n: u32, rows: u32, cols: u32, body: &[u8]) -> Vec<u8> {
    let mut v = Vec::new();
    for x in [0x0000_0803u32, n, rows, cols] {
        v.extend_from_slice(&x.to_be_bytes());
    }
    v.extend_from_slice(body);
    v
}

fn idx_labels_bytes(labels: &[u8]) -> Vec<u8> {
    let mut v = 0x0000_0801u32.to_be_bytes().to_vec();
    v.extend_from_slice(&(labels.len() as u32).to_be_bytes());
    v.extend_from_slice(labels);
    v
}

fn write(dir: &Path, name: &str, bytes: &[u8]) -> PathBuf {
    let p = dir.join(name);
    std::fs::write(&p, bytes).unwrap();
    p
}

/// Asserts `r` is an error whose message names `path` and contains every one of `needles`.
#[track_caller]
fn assert_err<T: std::fmt::Debug>(r: Result<T, DataError>, path: &Path, needles: &[&str]) -> DataError {
    let err = r.expect_err("expected an error");
    let msg = err.to_string();
    assert!(msg.contains(&path.display().to_string()), "error does not name {}: {msg}", path.display());
    for n in needles {
        assert!(msg.contains(n), "error lacks {n:?}: {msg}");
    }
    err
}

fn pixel(set: &ImageSet, i: usize, y: usize, x: usize) -> Vec<u8> {
    let img = set.image(i);
    (0..set.channels).map(|c| img.at(y, x, c)).collect()
}

// ------------------------------------------------------------------ real fixtures

/// First labels of the original Debian `train-labels-idx1-ubyte.gz` / `t10k-labels-idx1-ubyte.gz`
/// (the test ones also match foolbox's fashionMNIST_NN_LABEL.png samples).
const FASHION_TRAIN_LABELS: [u32; 10] = [9, 0, 0, 3, 0, 2, 7, 2, 5, 5];
const FASHION_TEST_LABELS: [u32; 10] = [9, 2, 1, 1, 6, 1, 4, 6, 5, 7];
const CIFAR10_LABELS: [u32; 20] = [3, 8, 8, 0, 6, 6, 1, 6, 3, 1, 0, 9, 5, 7, 9, 8, 5, 7, 8, 6];
const CIFAR100_FINE: [u32; 20] = [49, 33, 72, 51, 71, 92, 15, 14, 23, 0, 71, 75, 81, 69, 40, 43, 92, 97, 70, 53];
const CIFAR100_COARSE: [u32; 20] = [10, 10, 0, 4, 10, 2, 11, 7, 10, 4, 10, 12, 19, 19, 5, 8, 2, 8, 2, 4];

#[test]
fn fashion_mnist_fixture_train() {
    let set = load_mnist_like(&fashion(), true).unwrap();
    assert_eq!(set.len(), 1024);
    assert_eq!((set.height, set.width, set.channels), (28, 28, 1));
    assert_eq!(set.num_classes, 10);
    assert_eq!(set.pixels.len(), 1024 * 28 * 28);
    assert_eq!(&set.labels[..10], &FASHION_TRAIN_LABELS);
    // Every class occurs (the main crate trains on this fixture).
    for c in 0..10 {
        assert!(set.labels.contains(&c), "class {c} missing");
    }
    // Image 0 of the original train-images-idx3-ubyte.gz: sum, non-zero count, row 14 samples.
    let img0 = set.image(0).data;
    assert_eq!(img0.iter().map(|&b| b as u64).sum::<u64>(), 76247);
    assert_eq!(img0.iter().filter(|&&b| b != 0).count(), 433);
    assert_eq!(pixel(&set, 0, 14, 3), [4]);
    assert_eq!(pixel(&set, 0, 14, 12), [237]);
    assert_eq!(pixel(&set, 0, 14, 25), [255]);
    assert_eq!(pixel(&set, 0, 14, 26), [77]);
    assert_eq!(pixel(&set, 0, 0, 0), [0]);
}

#[test]
fn fashion_mnist_fixture_test_and_raw_readers() {
    let set = load_mnist_like(&fashion(), false).unwrap();
    assert_eq!(set.len(), 512);
    assert_eq!((set.height, set.width, set.channels, set.num_classes), (28, 28, 1, 10));
    assert_eq!(&set.labels[..10], &FASHION_TEST_LABELS);

    let (n, rows, cols, px) = read_idx_images(&fashion().join("t10k-images-idx3-ubyte.gz")).unwrap();
    assert_eq!((n, rows, cols, px.len()), (512, 28, 28, 512 * 784));
    assert_eq!(px, set.pixels);
    let labels = read_idx_labels(&fashion().join("t10k-labels-idx1-ubyte.gz")).unwrap();
    assert_eq!(labels.iter().map(|&l| l as u32).collect::<Vec<_>>(), set.labels);
}

#[test]
fn mnist_like_reads_plain_files_and_prefers_them() {
    let dir = tempfile::tempdir().unwrap();
    for name in ["train-images-idx3-ubyte", "train-labels-idx1-ubyte"] {
        write(dir.path(), name, &gunzip(&fashion().join(format!("{name}.gz"))));
    }
    // A broken .gz next to the plain file must be ignored: plain is preferred.
    write(dir.path(), "train-images-idx3-ubyte.gz", b"not gzip");
    let plain = load_mnist_like(dir.path(), true).unwrap();
    let gz = load_mnist_like(&fashion(), true).unwrap();
    assert_eq!(plain.pixels, gz.pixels);
    assert_eq!(plain.labels, gz.labels);
    // Gzip is detected by content, not by name: a gzip stream without .gz also loads.
    let dir2 = tempfile::tempdir().unwrap();
    let img = write(dir2.path(), "imgs", &std::fs::read(fashion().join("train-images-idx3-ubyte.gz")).unwrap());
    let lab = write(dir2.path(), "labs.gz", &gunzip(&fashion().join("train-labels-idx1-ubyte.gz")));
    let set = load_idx_pair(&img, &lab, 10).unwrap();
    assert_eq!(set.labels, gz.labels);
}

#[test]
fn cifar10_fixture() {
    let test = load_cifar10(&fixtures(), false).unwrap();
    assert_eq!(test.len(), 20);
    assert_eq!((test.height, test.width, test.channels, test.num_classes), (32, 32, 3, 10));
    assert_eq!(test.pixels.len(), 20 * 3072);
    assert_eq!(test.labels, CIFAR10_LABELS);
    // Pixels of foolbox's cifar10_00_3.png / cifar10_19_6.png, RGB, at (row, col).
    assert_eq!(pixel(&test, 0, 0, 0), [158, 112, 49]);
    assert_eq!(pixel(&test, 0, 7, 5), [167, 117, 42]);
    assert_eq!(pixel(&test, 0, 31, 31), [21, 67, 110]);
    assert_eq!(test.image(0).data.iter().map(|&b| b as u64).sum::<u64>(), 332962);
    assert_eq!(pixel(&test, 19, 7, 5), [63, 39, 43]);

    // The train split: the same 20 records spread over data_batch_1..5 (4 each), in order.
    // Also checks that root may be the batches folder itself.
    let train = load_cifar10(&fixtures().join("cifar-10-batches-bin"), true).unwrap();
    assert_eq!(train.len(), 20);
    assert_eq!(train.labels, test.labels);
    assert_eq!(train.pixels, test.pixels);

    let (px, labels) = read_cifar_file(&fixtures().join("cifar-10-batches-bin/data_batch_2.bin"), 1, 0, 10).unwrap();
    assert_eq!(labels, &CIFAR10_LABELS[4..8]);
    assert_eq!(px, &test.pixels[4 * 3072..8 * 3072]);
}

#[test]
fn cifar100_fixture() {
    let fine = load_cifar100(&fixtures(), false, Cifar100Label::Fine).unwrap();
    assert_eq!(fine.len(), 20);
    assert_eq!((fine.height, fine.width, fine.channels, fine.num_classes), (32, 32, 3, 100));
    assert_eq!(fine.labels, CIFAR100_FINE);
    // Pixels of foolbox's cifar100_00_49.png.
    assert_eq!(pixel(&fine, 0, 0, 0), [199, 215, 249]);
    assert_eq!(pixel(&fine, 0, 7, 5), [248, 246, 248]);
    assert_eq!(pixel(&fine, 0, 31, 31), [176, 164, 183]);
    assert_eq!(fine.image(0).data.iter().map(|&b| b as u64).sum::<u64>(), 559205);

    let coarse = load_cifar100(&fixtures().join("cifar-100-binary"), true, Cifar100Label::Coarse).unwrap();
    assert_eq!(coarse.num_classes, 20);
    assert_eq!(coarse.labels, CIFAR100_COARSE);
    assert_eq!(coarse.pixels, fine.pixels);
}

// ------------------------------------------------------------------ corrupt copies

#[test]
fn idx_truncated_and_wrong_size() {
    let dir = tempfile::tempdir().unwrap();
    let raw = gunzip(&fashion().join("train-images-idx3-ubyte.gz"));
    assert_eq!(raw.len(), 16 + 1024 * 784);

    let p = write(dir.path(), "short-images", &raw[..raw.len() - 100]);
    assert_err(
        read_idx_images(&p),
        &p,
        &["wrong size", "header says 1024 images of 28x28 = 802816 bytes", "file has 802716 bytes"],
    );
    let mut long = raw.clone();
    long.push(0);
    let p = write(dir.path(), "long-images", &long);
    assert_err(read_idx_images(&p), &p, &["wrong size", "file has 802817 bytes"]);

    // The same in gzip: a lying header, and a truncated gzip stream.
    let p = write(dir.path(), "short-images.gz", &gzip(&raw[..raw.len() - 100]));
    assert_err(read_idx_images(&p), &p, &["wrong size", "decompressed file has 802716 bytes"]);
    let gz = std::fs::read(fashion().join("train-images-idx3-ubyte.gz")).unwrap();
    let p = write(dir.path(), "cut.gz", &gz[..gz.len() / 2]);
    assert_err(read_idx_images(&p), &p, &["gzip decompression failed", "corrupt or truncated"]);

    // Header shorter than 16 bytes.
    let p = write(dir.path(), "stub", &raw[..10]);
    assert_err(read_idx_images(&p), &p, &["too short (10 bytes)", "16-byte IDX images header"]);

    // Labels: header claims 1024, file holds 1000.
    let labels = gunzip(&fashion().join("train-labels-idx1-ubyte.gz"));
    let p = write(dir.path(), "short-labels", &labels[..8 + 1000]);
    assert_err(read_idx_labels(&p), &p, &["wrong size", "header says 1024 labels", "file has 1000 bytes"]);
}

#[test]
fn idx_gzip_bomb_is_capped() {
    // Header declares one 28x28 image, then 4 MiB of zeros compress to a few KiB.
    let dir = tempfile::tempdir().unwrap();
    let bomb = idx_images_bytes(1, 28, 28, &vec![0u8; 4 << 20]);
    let p = write(dir.path(), "bomb.gz", &gzip(&bomb));
    assert!(std::fs::metadata(&p).unwrap().len() < 64 << 10);
    assert_err(read_idx_images(&p), &p, &["wrong size", "more than 784 bytes"]);
    // A header declaring ~2^56 bytes over a tiny body fails on the data, not on allocation.
    let p = write(dir.path(), "liar.gz", &gzip(&idx_images_bytes(1 << 24, 1 << 16, 1 << 16, &[1, 2, 3])));
    assert_err(read_idx_images(&p), &p, &["wrong size", "decompressed file has 3 bytes"]);
    let p = write(dir.path(), "liar", &idx_images_bytes(u32::MAX, u32::MAX, 1 << 20, &[1, 2, 3]));
    assert_err(read_idx_images(&p), &p, &["4294967295 images of 4294967295x1048576"]);
}

#[test]
fn idx_bad_magic_and_swapped_paths() {
    let dir = tempfile::tempdir().unwrap();
    let mut raw = gunzip(&fashion().join("t10k-images-idx3-ubyte.gz"));
    raw[3] = 0x04;
    let p = write(dir.path(), "magic", &raw);
    assert_err(read_idx_images(&p), &p, &["bad magic number 0x00000804, expected 0x00000803 (IDX images)"]);
    let p = write(dir.path(), "magic.gz", &gzip(&raw));
    assert_err(read_idx_images(&p), &p, &["bad magic number 0x00000804"]);

    let images = fashion().join("t10k-images-idx3-ubyte.gz");
    let labels = fashion().join("t10k-labels-idx1-ubyte.gz");
    assert_err(
        load_idx_pair(&labels, &images, 10),
        &labels,
        &["bad magic number 0x00000801, expected 0x00000803", "swapped"],
    );
    assert_err(read_idx_labels(&images), &images, &["bad magic number 0x00000803, expected 0x00000801 (IDX labels)"]);
}

#[test]
fn idx_label_out_of_range_and_count_mismatch() {
    let dir = tempfile::tempdir().unwrap();
    let images = fashion().join("t10k-images-idx3-ubyte.gz");
    let mut labels = gunzip(&fashion().join("t10k-labels-idx1-ubyte.gz"));
    labels[8 + 3] = 10;
    let p = write(dir.path(), "labels", &labels);
    let err = assert_err(load_idx_pair(&images, &p, 10), &p, &["label 10 at record 3", "0..10"]);
    assert!(matches!(err, DataError::LabelOutOfRange { index: 3, label: 10, classes: 10, .. }));
    // With more classes allowed the same file is fine.
    assert_eq!(load_idx_pair(&images, &p, 11).unwrap().labels[3], 10);

    let real = gunzip(&fashion().join("t10k-labels-idx1-ubyte.gz"));
    let p = write(dir.path(), "fewer-labels", &idx_labels_bytes(&real[8..8 + 511]));
    assert_err(
        load_idx_pair(&images, &p, 10),
        &p,
        &["count mismatch", &images.display().to_string(), "512 images", "511 labels"],
    );

    // An empty but well-formed pair is refused too.
    let i0 = write(dir.path(), "i0", &idx_images_bytes(0, 28, 28, &[]));
    let l0 = write(dir.path(), "l0", &idx_labels_bytes(&[]));
    assert_err(load_idx_pair(&i0, &l0, 10), &i0, &["0 images"]);
}

#[test]
fn idx_missing_empty_and_garbage() {
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("nope-images-idx3-ubyte.gz");
    let err = assert_err(read_idx_images(&missing), &missing, &["dataset not found", "expected an IDX images file"]);
    assert!(matches!(err, DataError::NotFound { .. }));

    let err = assert_err(load_mnist_like(dir.path(), true), dir.path(), &["train-images-idx3-ubyte", "t10k"]);
    assert!(matches!(err, DataError::NotFound { .. }));
    // Images present, labels missing: the labels file is named.
    std::fs::copy(fashion().join("t10k-images-idx3-ubyte.gz"), dir.path().join("t10k-images-idx3-ubyte.gz")).unwrap();
    assert_err(
        load_mnist_like(dir.path(), false),
        dir.path(),
        &["t10k-labels-idx1-ubyte or t10k-labels-idx1-ubyte.gz"],
    );

    let p = write(dir.path(), "empty", &[]);
    assert_err(read_idx_images(&p), &p, &["file is empty (0 bytes)"]);
    assert_err(read_idx_labels(&p), &p, &["file is empty (0 bytes)"]);
    let p = write(dir.path(), "empty.gz", &gzip(&[]));
    assert_err(read_idx_images(&p), &p, &["file is empty", "after gzip decompression"]);

    // Gzip of garbage: a valid stream whose content is not IDX ...
    let p = write(dir.path(), "garbage.gz", &gzip(b"this is certainly not an IDX file at all"));
    assert_err(read_idx_images(&p), &p, &["bad magic number 0x74686973"]);
    // ... and the gzip magic followed by garbage.
    let mut junk = vec![0x1f, 0x8b];
    junk.extend((0..200u32).map(|i| (i * 37 % 251) as u8));
    let p = write(dir.path(), "junk.gz", &junk);
    assert_err(read_idx_images(&p), &p, &["gzip decompression failed"]);
    assert_err(read_idx_labels(&p), &p, &["gzip decompression failed"]);
}

#[test]
fn cifar_corrupt_files() {
    let dir = tempfile::tempdir().unwrap();
    let c10 = std::fs::read(fixtures().join("cifar-10-batches-bin/test_batch.bin")).unwrap();
    let p = write(dir.path(), "test_batch.bin", &c10[..30731]);
    assert_err(
        read_cifar_file(&p, 1, 0, 10),
        &p,
        &["is 30731 bytes, not a multiple of the 3073-byte CIFAR-10 record; the file is truncated or not CIFAR-10 binary"],
    );
    let c100 = std::fs::read(fixtures().join("cifar-100-binary/test.bin")).unwrap();
    let p = write(dir.path(), "test.bin", &c100[..3074 * 3 + 1]);
    assert_err(read_cifar_file(&p, 2, 1, 100), &p, &["3074-byte CIFAR-100 record", "not CIFAR-100 binary"]);

    let p = write(dir.path(), "empty.bin", &[]);
    assert_err(read_cifar_file(&p, 1, 0, 10), &p, &["file is empty (0 bytes)", "3073 bytes"]);

    let mut bad = c10.clone();
    bad[3073 * 2] = 10; // label of record 2
    let p = write(dir.path(), "bad10.bin", &bad);
    let err = assert_err(read_cifar_file(&p, 1, 0, 10), &p, &["label 10 at record 2", "0..10"]);
    assert!(matches!(err, DataError::LabelOutOfRange { index: 2, label: 10, classes: 10, .. }));

    let mut bad = c100.clone();
    bad[3074 * 5] = 20; // coarse label of record 5
    bad[3074 * 7 + 1] = 100; // fine label of record 7
    let p = write(dir.path(), "bad100.bin", &bad);
    assert_err(read_cifar_file(&p, 2, 0, 20), &p, &["label 20 at record 5", "0..20"]);
    assert_err(read_cifar_file(&p, 2, 1, 100), &p, &["label 100 at record 7", "0..100"]);

    assert_err(read_cifar_file(&p, 2, 2, 100), &p, &["label index 2"]);
}

#[test]
fn cifar_missing_files() {
    let dir = tempfile::tempdir().unwrap();
    let err = assert_err(
        load_cifar10(dir.path(), true),
        dir.path(),
        &["cifar-10-batches-bin/data_batch_1.bin", "CIFAR-10 binary version"],
    );
    assert!(matches!(err, DataError::NotFound { .. }));
    assert_err(load_cifar10(dir.path(), false), dir.path(), &["cifar-10-batches-bin/test_batch.bin"]);
    assert_err(
        load_cifar100(dir.path(), true, Cifar100Label::Fine),
        dir.path(),
        &["cifar-100-binary/train.bin", "CIFAR-100 binary version"],
    );

    // Four of the five training batches: the missing one is named.
    let batches = dir.path().join("cifar-10-batches-bin");
    std::fs::create_dir(&batches).unwrap();
    for k in [1, 2, 4, 5] {
        let name = format!("data_batch_{k}.bin");
        std::fs::copy(fixtures().join("cifar-10-batches-bin").join(&name), batches.join(&name)).unwrap();
    }
    assert_err(load_cifar10(dir.path(), true), dir.path(), &["cifar-10-batches-bin/data_batch_3.bin"]);

    let missing = dir.path().join("x.bin");
    let err = assert_err(
        read_cifar_file(&missing, 1, 0, 10),
        &missing,
        &["dataset not found", "expected a CIFAR-10 binary file"],
    );
    assert!(matches!(err, DataError::NotFound { .. }));
    // A folder where a file is expected.
    let batches = dir.path().join("cifar-10-batches-bin");
    assert_err(read_cifar_file(&batches, 1, 0, 10), &batches, &["is a directory"]);
    assert_err(read_idx_labels(&batches), &batches, &["is a directory"]);
}

// ------------------------------------------------------------------ robustness

/// xorshift64* — deterministic, no extra crates.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n.max(1) as u64) as usize
    }
    /// Random bytes, of a random length below `max`.
    fn bytes_below(&mut self, max: usize) -> Vec<u8> {
        let n = self.below(max);
        (0..n).map(|_| self.next() as u8).collect()
    }
}

/// One random mutation of `base`: flip bytes, truncate, rewrite a header field, append, splice.
fn mutate(rng: &mut Rng, base: &[u8]) -> Vec<u8> {
    let mut v = base.to_vec();
    match rng.below(6) {
        0 => {
            for _ in 0..1 + rng.below(8) {
                if !v.is_empty() {
                    let i = rng.below(v.len());
                    v[i] ^= 1 << rng.below(8);
                }
            }
        }
        1 => v.truncate(rng.below(v.len() + 1)),
        2 => {
            // A header field (magic, n, rows, cols) set to an interesting or random value.
            let field = 4 * rng.below(4);
            let value = match rng.below(6) {
                0 => 0,
                1 => 1,
                2 => u32::MAX,
                3 => rng.next() as u32,
                4 => 1 << rng.below(32),
                _ => {
                    let cur = v.get(field..field + 4).map_or(0, |b| u32::from_be_bytes([b[0], b[1], b[2], b[3]]));
                    if rng.below(2) == 0 {
                        cur.wrapping_add(1)
                    } else {
                        cur.wrapping_sub(1)
                    }
                }
            };
            if v.len() >= field + 4 {
                v[field..field + 4].copy_from_slice(&value.to_be_bytes());
            }
        }
        3 => {
            let extra = rng.bytes_below(65);
            v.extend_from_slice(&extra);
        }
        4 => {
            // Overwrite a random span with random bytes.
            if !v.is_empty() {
                let start = rng.below(v.len());
                let fresh = rng.bytes_below(33);
                let len = fresh.len().min(v.len() - start);
                v[start..start + len].copy_from_slice(&fresh[..len]);
            }
        }
        _ => {
            // Random bytes behind a valid-looking prefix (IDX magic or gzip magic).
            let keep = rng.below(v.len().min(20) + 1);
            v.truncate(keep);
            let extra = rng.bytes_below(400);
            v.extend_from_slice(&extra);
        }
    }
    v
}

#[test]
fn readers_never_panic_on_arbitrary_bytes() {
    let dir = tempfile::tempdir().unwrap();
    let start = Instant::now();

    // Small real corpora: 8 Fashion-MNIST images + labels (plain and gzip), 2 CIFAR records each.
    let (_, _, _, px) = read_idx_images(&fashion().join("train-images-idx3-ubyte.gz")).unwrap();
    let labels = read_idx_labels(&fashion().join("train-labels-idx1-ubyte.gz")).unwrap();
    let small_images = idx_images_bytes(8, 28, 28, &px[..8 * 784]);
    let small_labels = idx_labels_bytes(&labels[..8]);
    let c10 = std::fs::read(fixtures().join("cifar-10-batches-bin/data_batch_1.bin")).unwrap();
    let c100 = std::fs::read(fixtures().join("cifar-100-binary/test.bin")).unwrap();
    let corpora: Vec<Vec<u8>> = vec![
        small_images.clone(),
        small_labels.clone(),
        gzip(&small_images),
        gzip(&small_labels),
        c10[..2 * 3073].to_vec(),
        c100[..2 * 3074].to_vec(),
    ];
    let good_images = write(dir.path(), "good-images", &small_images);
    let good_labels = write(dir.path(), "good-labels", &small_labels);
    let target = dir.path().join("fuzz");
    let dir_text = dir.path().display().to_string();

    // Every reader on the file at `target`: Ok or an Err naming a file in the tempdir. Counts the
    // Oks and which kinds of problem were reported, to check that the fuzzing reaches them all.
    const KINDS: [&str; 9] = [
        "bad magic",
        "wrong size",
        "gzip decompression failed",
        "out of range",
        "not a multiple",
        "too short",
        "file is empty",
        "count mismatch",
        "overflows",
    ];
    let mut oks = 0usize;
    let mut seen = [0usize; KINDS.len()];
    let mut run_all = |bytes: &[u8]| {
        std::fs::write(&target, bytes).unwrap();
        let results: Vec<Result<(), DataError>> = vec![
            read_idx_images(&target).map(drop),
            read_idx_labels(&target).map(drop),
            load_idx_pair(&target, &good_labels, 10).map(drop),
            load_idx_pair(&good_images, &target, 10).map(drop),
            read_cifar_file(&target, 1, 0, 10).map(drop),
            read_cifar_file(&target, 2, 1, 100).map(drop),
            read_cifar_file(&target, 2, 0, 20).map(drop),
        ];
        for r in results {
            match r {
                Ok(()) => oks += 1,
                Err(e) => {
                    let msg = e.to_string();
                    assert!(msg.contains(&dir_text), "error does not name the file: {msg}");
                    for (k, kind) in KINDS.iter().enumerate() {
                        seen[k] += msg.contains(kind) as usize;
                    }
                }
            }
        }
    };

    let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
    let mut cases = 0;
    // Pure random byte strings, some behind the IDX / gzip magic.
    for i in 0..1000 {
        let mut v = match i % 4 {
            0 => vec![0, 0, 8, 3],
            1 => vec![0, 0, 8, 1],
            2 => vec![0x1f, 0x8b, 8, 0],
            _ => vec![],
        };
        let extra = rng.bytes_below(300);
        v.extend_from_slice(&extra);
        run_all(&v);
        cases += 1;
    }
    // Mutations of the real corpora, raw and (for IDX) re-gzipped after mutation so that lying
    // headers also go through the decompressor.
    for i in 0..2400 {
        let base = &corpora[i % corpora.len()];
        let m = mutate(&mut rng, base);
        run_all(&m);
        if i % 6 < 2 {
            run_all(&gzip(&m));
        }
        cases += 1;
    }
    // A few mutations of the full-size gzip fixture (header fields and truncation).
    let full = std::fs::read(fashion().join("t10k-images-idx3-ubyte.gz")).unwrap();
    let full_raw = gunzip(&fashion().join("t10k-images-idx3-ubyte.gz"));
    for _ in 0..10 {
        run_all(&mutate(&mut rng, &full));
        run_all(&mutate(&mut rng, &full_raw));
        cases += 2;
    }
    let elapsed = start.elapsed();
    eprintln!(
        "{cases} fuzz cases in {elapsed:?}; {oks} Ok; errors by kind: {:?}",
        KINDS.iter().zip(seen).collect::<Vec<_>>()
    );
    assert!(oks > 100, "mutations rarely kept a file valid: {oks} Ok");
    for (kind, n) in KINDS.iter().zip(seen) {
        assert!(n > 0, "fuzzing never produced a {kind:?} error");
    }
}
