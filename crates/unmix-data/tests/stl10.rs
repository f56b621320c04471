//! Tests of the STL-10 binary reader on the fixture (real photos written in the STL-10 layout),
//! on corrupted copies, and on arbitrary bytes.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use unmix_data::stl10::{load_stl10, read_stl10_images, read_stl10_labels, Stl10Split};
use unmix_data::DataError;

const IMG: usize = 27648;

fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures")
}

fn stl() -> PathBuf {
    fixtures().join("stl10_binary")
}

/// A copy of the fixture folder to corrupt.
fn copy_fixture() -> (tempfile::TempDir, PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path().join("stl10_binary");
    std::fs::create_dir(&d).unwrap();
    for e in std::fs::read_dir(stl()).unwrap() {
        let e = e.unwrap();
        std::fs::copy(e.path(), d.join(e.file_name())).unwrap();
    }
    (dir, d)
}

fn px(set: &unmix_data::ImageSet, i: usize, y: usize, x: usize) -> [u8; 3] {
    let im = set.image(i);
    [im.at(y, x, 0), im.at(y, x, 1), im.at(y, x, 2)]
}

#[test]
fn reads_the_three_splits() {
    // Values printed by tools/make_fixtures.py from the PIL images before they were written.
    let train = load_stl10(&fixtures(), Stl10Split::Train).unwrap(); // the parent folder
    assert_eq!((train.len(), train.height, train.width, train.channels), (3, 96, 96, 3));
    assert_eq!(train.num_classes, 10);
    assert_eq!(train.labels, vec![0, 9, 4]); // file labels 1, 10, 5
    assert_eq!(train.pixels.len(), 3 * IMG);
    assert_eq!(px(&train, 0, 10, 70), [142, 120, 132]);
    assert_eq!(px(&train, 0, 95, 0), [59, 70, 41]);
    assert_eq!(px(&train, 1, 10, 70), [138, 25, 31]);
    assert_eq!(px(&train, 2, 95, 0), [193, 187, 191]);

    let test = load_stl10(&stl(), Stl10Split::Test).unwrap(); // the folder itself
    assert_eq!(test.len(), 2);
    assert_eq!(test.labels, vec![2, 9]);
    assert_eq!(px(&test, 0, 10, 70), [113, 83, 53]);
    assert_eq!(px(&test, 1, 95, 0), [186, 189, 166]);

    let unlabeled = load_stl10(&stl(), Stl10Split::Unlabeled).unwrap();
    assert_eq!(unlabeled.len(), 2);
    assert_eq!(unlabeled.num_classes, 0);
    assert_eq!(unlabeled.labels, vec![0, 0]);
    assert_eq!(px(&unlabeled, 0, 10, 70), [156, 159, 158]);
    assert_eq!(px(&unlabeled, 1, 95, 0), [66, 62, 53]);
}

#[test]
fn planes_are_column_major() {
    // Byte c * 9216 + x * 96 + y of the file is pixel (y, x, c).
    let raw = std::fs::read(stl().join("train_X.bin")).unwrap();
    let (pixels, n) = read_stl10_images(&stl().join("train_X.bin")).unwrap();
    assert_eq!(n, 3);
    let mut rng = ChaCha8Rng::seed_from_u64(1);
    for _ in 0..500 {
        let (i, y, x, c) = (rng.gen_range(0..3), rng.gen_range(0..96), rng.gen_range(0..96), rng.gen_range(0..3));
        assert_eq!(
            pixels[i * IMG + (y * 96 + x) * 3 + c],
            raw[i * IMG + c * 9216 + x * 96 + y],
            "image {i} ({y}, {x}, {c})"
        );
    }
    // A photo is not symmetric: the transposed reading would differ.
    assert_ne!(pixels[(10 * 96 + 70) * 3], pixels[(70 * 96 + 10) * 3]);
}

fn err_text(r: Result<unmix_data::ImageSet, DataError>) -> String {
    r.expect_err("expected an error").to_string()
}

#[test]
fn missing_files_are_named_with_what_the_folder_should_hold() {
    let dir = tempfile::tempdir().unwrap();
    let msg = err_text(load_stl10(dir.path(), Stl10Split::Train));
    assert!(msg.contains("stl10_binary/train_X.bin"), "{msg}");
    assert!(msg.contains("unlabeled_X.bin") && msg.contains("test_y.bin"), "{msg}");

    let (_t, d) = copy_fixture();
    std::fs::remove_file(d.join("test_y.bin")).unwrap();
    let msg = err_text(load_stl10(&d, Stl10Split::Test));
    assert!(msg.contains("test_y.bin") && msg.contains("not found"), "{msg}");
    // The unlabelled split needs no labels.
    assert!(load_stl10(&d, Stl10Split::Unlabeled).is_ok());
}

#[test]
fn corrupted_files_give_named_errors() {
    let (_t, d) = copy_fixture();
    let x = d.join("train_X.bin");
    let y = d.join("train_y.bin");
    let good_x = std::fs::read(&x).unwrap();
    let good_y = std::fs::read(&y).unwrap();

    // Truncated images: not a multiple of 27648.
    std::fs::write(&x, &good_x[..good_x.len() - 100]).unwrap();
    let msg = err_text(load_stl10(&d, Stl10Split::Train));
    assert!(msg.contains("train_X.bin") && msg.contains("not a multiple of the 27648"), "{msg}");
    // Empty.
    std::fs::write(&x, b"").unwrap();
    let msg = err_text(load_stl10(&d, Stl10Split::Train));
    assert!(msg.contains("train_X.bin") && msg.contains("empty"), "{msg}");
    // One image fewer than labels: count mismatch.
    std::fs::write(&x, &good_x[..2 * IMG]).unwrap();
    let msg = err_text(load_stl10(&d, Stl10Split::Train));
    assert!(msg.contains("train_y.bin") && msg.contains("count mismatch"), "{msg}");
    assert!(msg.contains("3 labels") && msg.contains("2 images"), "{msg}");
    std::fs::write(&x, &good_x).unwrap();

    // Labels 0 and 11 are outside 1..10.
    for bad in [0u8, 11, 255] {
        let mut yy = good_y.clone();
        yy[1] = bad;
        std::fs::write(&y, &yy).unwrap();
        let msg = err_text(load_stl10(&d, Stl10Split::Train));
        assert!(msg.contains("train_y.bin"), "{msg}");
        assert!(msg.contains(&format!("label {bad} at record 1 is out of range")), "{msg}");
    }
    // Too many labels.
    std::fs::write(&y, [1u8, 2, 3, 4]).unwrap();
    let msg = err_text(load_stl10(&d, Stl10Split::Train));
    assert!(msg.contains("count mismatch"), "{msg}");
    std::fs::write(&y, &good_y).unwrap();
    assert_eq!(load_stl10(&d, Stl10Split::Train).unwrap().len(), 3);

    // A directory where a file should be.
    std::fs::remove_file(&y).unwrap();
    std::fs::create_dir(&y).unwrap();
    assert!(read_stl10_labels(&y).unwrap_err().to_string().contains("directory"));
}

#[test]
fn stl10_reader_never_panics_on_arbitrary_bytes() {
    let dir = tempfile::tempdir().unwrap();
    let target = dir.path().join("fuzz.bin");
    let dir_text = dir.path().display().to_string();
    let real = std::fs::read(stl().join("test_X.bin")).unwrap();
    let labels = std::fs::read(stl().join("train_y.bin")).unwrap();
    let mut rng = ChaCha8Rng::seed_from_u64(7);
    let (mut oks, mut errs) = (0usize, 0usize);
    let mut check = |bytes: &[u8]| {
        std::fs::write(&target, bytes).unwrap();
        for r in [read_stl10_images(&target).map(drop), read_stl10_labels(&target).map(drop)] {
            match r {
                Ok(()) => oks += 1,
                Err(e) => {
                    errs += 1;
                    assert!(e.to_string().contains(&dir_text), "error does not name the file: {e}");
                }
            }
        }
    };
    let start = Instant::now();
    for round in 0..300 {
        // Arbitrary lengths around the record size, random content.
        let len = match round % 4 {
            0 => rng.gen_range(0..64),
            1 => IMG * rng.gen_range(1..3) + rng.gen_range(0..3) - 1,
            2 => IMG,
            _ => rng.gen_range(0..3 * IMG),
        };
        let bytes: Vec<u8> = (0..len).map(|_| rng.gen()).collect();
        check(&bytes);
        // Mutations of real data: flips, truncation, extension.
        let mut m = if round % 2 == 0 { real.clone() } else { labels.clone() };
        for _ in 0..rng.gen_range(1..20) {
            let i = rng.gen_range(0..m.len());
            m[i] = rng.gen();
        }
        match rng.gen_range(0..3) {
            0 => m.truncate(rng.gen_range(0..=m.len())),
            1 => m.extend((0..rng.gen_range(0..40)).map(|_| rng.gen::<u8>())),
            _ => {}
        }
        check(&m);
        if start.elapsed() > Duration::from_secs(20) {
            break;
        }
    }
    assert!(oks > 0 && errs > 0, "oks {oks}, errs {errs}");
}
