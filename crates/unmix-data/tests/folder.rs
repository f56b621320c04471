//! Tests of the image-folder datasets and the JPEG / PNG decoding path on the fixtures (real
//! photos), on damaged files, and on arbitrary bytes.

use std::path::{Path, PathBuf};

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use unmix_data::folder::{decode_image, decode_image_bytes};
use unmix_data::loader::Dataset;
use unmix_data::{Image, ImageFolder};

fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures")
}

fn names(f: &ImageFolder) -> Vec<String> {
    (0..f.len())
        .map(|i| {
            let p = f.path(i);
            let rel = p.strip_prefix(f.root()).unwrap();
            rel.display().to_string()
        })
        .collect()
}

fn rgb(img: &Image, y: usize, x: usize) -> [u8; 3] {
    let r = img.as_ref();
    [r.at(y, x, 0), r.at(y, x, 1), r.at(y, x, 2)]
}

/// JPEG decoders (zune-jpeg here, libjpeg-turbo in Pillow) may differ by a few levels.
fn close(a: [u8; 3], b: [u8; 3], tol: u8) -> bool {
    a.iter().zip(&b).all(|(x, y)| x.abs_diff(*y) <= tol)
}

#[test]
fn image_folder_classes_files_and_labels() {
    let f = ImageFolder::open(&fixtures().join("image-folder")).unwrap();
    assert_eq!(f.classes(), ["bird", "dog", "jeep"]);
    assert_eq!(
        names(&f),
        [
            "bird/eagle.jpg",
            "bird/goose.JPG",
            "bird/spoonbill_grey.jpeg",
            "dog/dalmatian_cmyk.jpg",
            "dog/dalmatian_grey16.png",
            "dog/dalmatian_la.png",
            "dog/mastiff_alpha.png",
            "jeep/jeep0.jpg",
            "jeep/jeep1_palette.png",
        ]
    );
    assert_eq!(f.labels(), [0, 0, 0, 1, 1, 1, 1, 2, 2]);
    assert_eq!(Dataset::len(&f), 9);
    assert_eq!((0..9).map(|i| f.label(i)).collect::<Vec<_>>(), f.labels());
    // Opening again gives the same order.
    assert_eq!(names(&ImageFolder::open(&fixtures().join("image-folder")).unwrap()), names(&f));
}

/// (file, height, width, pixel (5, 7), last pixel, tolerance).
type Expected = (&'static str, usize, usize, [u8; 3], [u8; 3], u8);

#[test]
fn every_colour_type_becomes_rgb() {
    let f = ImageFolder::open(&fixtures().join("image-folder")).unwrap();
    // (file, height, width, pixel (5, 7), last pixel, tolerance): values from Pillow, printed by
    // tools/make_fixtures.py (16-bit: round(v / 257)). PNGs must match exactly.
    let expected: [Expected; 9] = [
        ("bird/eagle.jpg", 72, 96, [67, 66, 62], [85, 66, 51], 6),
        ("bird/goose.JPG", 64, 64, [142, 157, 90], [133, 165, 82], 6),
        ("bird/spoonbill_grey.jpeg", 96, 80, [145, 145, 145], [139, 139, 139], 3),
        ("dog/dalmatian_cmyk.jpg", 80, 64, [62, 63, 54], [51, 41, 33], 8),
        ("dog/dalmatian_grey16.png", 80, 64, [62, 62, 62], [45, 45, 45], 0),
        ("dog/dalmatian_la.png", 80, 64, [62, 62, 62], [45, 45, 45], 0),
        ("dog/mastiff_alpha.png", 96, 72, [181, 156, 113], [98, 97, 55], 0),
        ("jeep/jeep0.jpg", 96, 128, [243, 235, 222], [44, 41, 36], 6),
        ("jeep/jeep1_palette.png", 64, 64, [89, 84, 76], [86, 90, 95], 0),
    ];
    for (i, (name, h, w, p57, last, tol)) in expected.into_iter().enumerate() {
        assert!(f.path(i).ends_with(name));
        let img = f.image(i).unwrap();
        assert_eq!((img.height, img.width, img.channels), (h, w, 3), "{name}");
        assert!(close(rgb(&img, 5, 7), p57, tol), "{name}: {:?} vs {p57:?}", rgb(&img, 5, 7));
        assert!(close(rgb(&img, h - 1, w - 1), last, tol), "{name}: {:?} vs {last:?}", rgb(&img, h - 1, w - 1));
        // Greyscale sources give equal channels everywhere.
        if name.contains("grey") || name.contains("_la") {
            assert!(img.data.chunks_exact(3).all(|p| p[0] == p[1] && p[1] == p[2]), "{name}");
        }
    }
    // The LA and the 16-bit PNG hold the same grey image.
    assert_eq!(f.image(4).unwrap(), f.image(5).unwrap());
}

#[test]
fn tiny_imagenet_layout() {
    let root = fixtures().join("tiny-imagenet-200");
    let train = ImageFolder::tiny_imagenet(&fixtures(), true).unwrap(); // the parent folder
                                                                        // The order of wnids.txt, not sorted.
    assert_eq!(train.classes(), ["n03594945", "n01614925", "n02110341"]);
    assert_eq!(train.labels(), [0, 0, 1, 1, 2, 2]);
    assert_eq!(
        names(&train),
        [
            "train/n03594945/images/n03594945_0.JPEG",
            "train/n03594945/images/n03594945_1.JPEG",
            "train/n01614925/images/n01614925_0.JPEG",
            "train/n01614925/images/n01614925_1.JPEG",
            "train/n02110341/images/n02110341_0.JPEG",
            "train/n02110341/images/n02110341_1.JPEG",
        ]
    );
    let img = train.image(0).unwrap();
    assert_eq!((img.height, img.width, img.channels), (64, 64, 3));
    assert!(close(rgb(&img, 5, 7), [247, 238, 229], 6), "{:?}", rgb(&img, 5, 7));
    assert!(close(rgb(&img, 63, 63), [46, 43, 38], 6), "{:?}", rgb(&img, 63, 63));

    let val = ImageFolder::tiny_imagenet(&root, false).unwrap(); // the folder itself
    assert_eq!(val.classes(), train.classes());
    assert_eq!(val.labels(), [1, 0, 2, 1]); // from val_annotations.txt
    assert_eq!(
        names(&val),
        ["val/images/val_0.JPEG", "val/images/val_1.JPEG", "val/images/val_2.JPEG", "val/images/val_3.JPEG"]
    );
    // val_1 and train n03594945_0 are the same photo, encoded the same way.
    assert_eq!(val.image(1).unwrap(), train.image(0).unwrap());
    let v0 = val.image(0).unwrap();
    assert!(close(rgb(&v0, 5, 7), [132, 147, 170], 6), "{:?}", rgb(&v0, 5, 7));
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for e in std::fs::read_dir(from).unwrap() {
        let e = e.unwrap();
        if e.path().is_dir() {
            copy_dir(&e.path(), &to.join(e.file_name()));
        } else {
            std::fs::copy(e.path(), to.join(e.file_name())).unwrap();
        }
    }
}

#[test]
fn tiny_imagenet_errors_are_named() {
    let t = tempfile::tempdir().unwrap();
    let d = t.path().join("tiny-imagenet-200");
    copy_dir(&fixtures().join("tiny-imagenet-200"), &d);
    let ann = d.join("val/val_annotations.txt");
    let good = std::fs::read_to_string(&ann).unwrap();

    std::fs::write(&ann, good.replace("n02110341", "n09999999")).unwrap();
    let msg = ImageFolder::tiny_imagenet(&d, false).unwrap_err().to_string();
    assert!(msg.contains("val_annotations.txt") && msg.contains("line 3") && msg.contains("n09999999"), "{msg}");

    std::fs::write(&ann, good.replace("val_2.JPEG", "val_9.JPEG")).unwrap();
    let msg = ImageFolder::tiny_imagenet(&d, false).unwrap_err().to_string();
    assert!(msg.contains("val_9.JPEG") && msg.contains("does not exist"), "{msg}");

    std::fs::write(&ann, "just one field\n").unwrap();
    let msg = ImageFolder::tiny_imagenet(&d, false).unwrap_err().to_string();
    assert!(msg.contains("line 1"), "{msg}");

    std::fs::remove_dir_all(d.join("train/n01614925")).unwrap();
    let msg = ImageFolder::tiny_imagenet(&d, true).unwrap_err().to_string();
    assert!(msg.contains("train/n01614925/images") && msg.contains("not found"), "{msg}");

    std::fs::remove_file(d.join("wnids.txt")).unwrap();
    let msg = ImageFolder::tiny_imagenet(&d, true).unwrap_err().to_string();
    assert!(msg.contains("wnids.txt"), "{msg}");
}

#[test]
fn image_folder_errors_are_named() {
    let t = tempfile::tempdir().unwrap();
    let msg = ImageFolder::open(&t.path().join("nope")).unwrap_err().to_string();
    assert!(msg.contains("nope"), "{msg}");
    let msg = ImageFolder::open(t.path()).unwrap_err().to_string();
    assert!(msg.contains("class subfolders"), "{msg}");
    std::fs::create_dir(t.path().join("empty_class")).unwrap();
    std::fs::write(t.path().join("empty_class/notes.txt"), "x").unwrap();
    let msg = ImageFolder::open(t.path()).unwrap_err().to_string();
    assert!(msg.contains("empty_class"), "{msg}");
}

#[test]
fn nested_folders_follow_torchvision_walk_order() {
    let t = tempfile::tempdir().unwrap();
    let png = std::fs::read(fixtures().join("image-folder/jeep/jeep1_palette.png")).unwrap();
    for rel in ["b/z.png", "b/sub/a.png", "b/a.PNG", "a/x.jpeg.png", "a/skip.gif"] {
        let p = t.path().join(rel);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(&p, &png).unwrap();
    }
    let f = ImageFolder::open(t.path()).unwrap();
    assert_eq!(f.classes(), ["a", "b"]);
    // sorted(os.walk): folder "b" before "b/sub"; files sorted within each (uppercase first).
    assert_eq!(names(&f), ["a/x.jpeg.png", "b/a.PNG", "b/z.png", "b/sub/a.png"]);
    assert_eq!(f.labels(), [0, 1, 1, 1]);
}

#[test]
fn unlabeled_folder_takes_every_image_at_any_depth() {
    let t = tempfile::tempdir().unwrap();
    let png = std::fs::read(fixtures().join("image-folder/jeep/jeep1_palette.png")).unwrap();
    let jpg = std::fs::read(fixtures().join("image-folder/bird/eagle.jpg")).unwrap();
    for (rel, bytes) in
        [("top.png", &png), ("b/z.JPG", &jpg), ("b/sub/deep/a.png", &png), ("a/x.jpeg", &jpg), ("a/notes.txt", &png)]
    {
        let p = t.path().join(rel);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(&p, bytes).unwrap();
    }
    let f = ImageFolder::unlabeled(t.path()).unwrap();
    // Files directly in the root count too (they would be skipped by ImageFolder::open).
    assert_eq!(names(&f), ["top.png", "a/x.jpeg", "b/z.JPG", "b/sub/deep/a.png"]);
    assert_eq!(f.labels(), [0, 0, 0, 0]);
    assert_eq!(f.classes(), ["unlabeled"]);
    let img = f.image(1).unwrap();
    assert_eq!((img.channels, img.height, img.width), (3, 72, 96));

    let msg = ImageFolder::unlabeled(&t.path().join("missing")).unwrap_err().to_string();
    assert!(msg.contains("missing"), "{msg}");
    let empty = tempfile::tempdir().unwrap();
    std::fs::create_dir(empty.path().join("sub")).unwrap();
    std::fs::write(empty.path().join("sub/readme.txt"), "x").unwrap();
    let msg = ImageFolder::unlabeled(empty.path()).unwrap_err().to_string();
    assert!(msg.contains("image files") && msg.contains(".jpg"), "{msg}");
}

#[test]
fn damaged_images_give_errors_naming_the_file() {
    let t = tempfile::tempdir().unwrap();
    let jpg = std::fs::read(fixtures().join("image-folder/jeep/jeep0.jpg")).unwrap();
    let png = std::fs::read(fixtures().join("image-folder/dog/mastiff_alpha.png")).unwrap();
    let cases: Vec<(&str, Vec<u8>)> = vec![
        ("truncated.jpg", jpg[..jpg.len() / 2].to_vec()),
        ("header_only.jpg", jpg[..200].to_vec()),
        ("truncated.png", png[..png.len() / 2].to_vec()),
        ("text.jpg", b"this is not an image at all\n".to_vec()),
        ("empty.png", Vec::new()),
        ("gif.jpg", b"GIF89a\x01\x00\x01\x00\x00\x00\x00;".to_vec()),
    ];
    for (name, bytes) in &cases {
        let p = t.path().join(name);
        std::fs::write(&p, bytes).unwrap();
        let msg = decode_image(&p).unwrap_err().to_string();
        assert!(msg.contains(&p.display().to_string()), "{name}: {msg}");
        assert!(msg.contains("cannot decode image"), "{name}: {msg}");
    }
    // A missing file: an I/O error naming it.
    let gone = t.path().join("gone.jpg");
    assert!(decode_image(&gone).unwrap_err().to_string().contains("gone.jpg"));
    // The content decides the format, not the name: a PNG called .jpg decodes.
    let p = t.path().join("png_named.jpg");
    std::fs::write(&p, &png).unwrap();
    assert_eq!(decode_image(&p).unwrap().height, 96);
}

#[test]
fn decoder_never_panics_on_arbitrary_and_mutated_bytes() {
    let path = Path::new("fuzz/input.jpg");
    let seeds: Vec<Vec<u8>> = [
        "image-folder/bird/goose.JPG",
        "image-folder/bird/spoonbill_grey.jpeg",
        "image-folder/dog/dalmatian_cmyk.jpg",
        "image-folder/dog/dalmatian_grey16.png",
        "image-folder/dog/dalmatian_la.png",
        "image-folder/jeep/jeep1_palette.png",
    ]
    .iter()
    .map(|f| std::fs::read(fixtures().join(f)).unwrap())
    .collect();
    let mut rng = ChaCha8Rng::seed_from_u64(11);
    let (mut oks, mut errs) = (0usize, 0usize);
    let mut check = |bytes: &[u8]| match decode_image_bytes(bytes, path) {
        Ok(img) => {
            assert_eq!(img.channels, 3);
            assert_eq!(img.data.len(), img.height * img.width * 3);
            oks += 1;
        }
        Err(e) => {
            let msg = e.to_string();
            assert!(msg.contains("fuzz/input.jpg"), "error does not name the file: {msg}");
            // Our guard turns decoder panics into errors; none should be needed.
            assert!(!msg.contains("panicked"), "decoder panicked: {msg}");
            errs += 1;
        }
    };
    for round in 0..2000 {
        let seed = &seeds[round % seeds.len()];
        let mut m = seed.clone();
        match round % 5 {
            // Arbitrary bytes, sometimes behind a valid magic.
            0 => {
                let n = rng.gen_range(0..300);
                m = (0..n).map(|_| rng.gen()).collect();
                if rng.gen_bool(0.5) {
                    let magic = &seed[..8.min(seed.len())];
                    m.splice(0..0, magic.iter().copied());
                }
            }
            1 => m.truncate(rng.gen_range(0..m.len())),
            _ => {
                for _ in 0..rng.gen_range(1..12) {
                    let i = rng.gen_range(0..m.len());
                    m[i] = rng.gen();
                }
            }
        }
        check(&m);
    }
    assert!(oks > 0 && errs > 0, "oks {oks}, errs {errs}");
}
