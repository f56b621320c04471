//! Per-op cost of the augmentations: `cargo run --release -p unmix-data --example ops -- SIZE [PHOTO]`.
//! Without PHOTO the ops run on random bytes; with it (a JPEG or PNG) the crop runs on the decoded
//! photo and the other ops on a SIZE x SIZE resize of it, so branchy code sees real pixels.
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use std::time::Instant;
use unmix_data::augment::*;
use unmix_data::image::Image;

fn main() {
    let s: usize = std::env::args().nth(1).and_then(|a| a.parse().ok()).unwrap_or(32);
    let mut rng = ChaCha8Rng::seed_from_u64(0);
    let data: Vec<u8> = (0..s * s * 3).map(|_| rng.gen()).collect();
    let mut img = Image::new(s, s, 3, data);
    let mut full = img.clone();
    if let Some(path) = std::env::args().nth(2) {
        let p = std::path::PathBuf::from(path);
        let t = Instant::now();
        for _ in 0..20 {
            full = unmix_data::folder::decode_image(&p).unwrap();
        }
        println!("decode       {:8.2} us  {}x{}", t.elapsed().as_secs_f64() * 1e6 / 20.0, full.height, full.width);
        img = resize_bilinear(full.as_ref(), s, s);
    }
    let s_ = s;
    let n = (200_000 / s).max(50);
    let time = |name: &str, f: &mut dyn FnMut() -> Image| {
        let t = Instant::now();
        let mut k = 0usize;
        for _ in 0..n {
            k += f().data[0] as usize;
        }
        println!("{name:<12} {:8.2} us  ({k})", t.elapsed().as_secs_f64() * 1e6 / n as f64);
    };
    let j = ColorJitter { brightness: 0.4, contrast: 0.4, saturation: 0.4, hue: 0.1 };
    time("crop", &mut || {
        let (t, l, h, w) = rrc_params(full.height, full.width, (0.2, 1.0), (0.75, 4.0 / 3.0), &mut rng);
        resized_crop(full.as_ref(), t, l, h, w, s, s)
    });
    time("crop-h", &mut || {
        let (t, l, h, w) = rrc_params(full.height, full.width, (0.2, 1.0), (0.75, 4.0 / 3.0), &mut rng);
        resized_crop(full.as_ref(), t, l, h, w, h, s)
    });
    time("crop-v", &mut || {
        let (t, l, h, w) = rrc_params(full.height, full.width, (0.2, 1.0), (0.75, 4.0 / 3.0), &mut rng);
        resized_crop(full.as_ref(), t, l, h, w, s, w)
    });
    time("flip", &mut || hflip(img.as_ref()));
    time("brightness", &mut || adjust_brightness(img.as_ref(), 1.2));
    time("contrast", &mut || adjust_contrast(img.as_ref(), 1.2));
    time("saturation", &mut || adjust_saturation(img.as_ref(), 1.2));
    time("hue", &mut || adjust_hue(img.as_ref(), 0.05));
    time("jitter", &mut || color_jitter(img.as_ref(), &j, &mut rng));
    let j0 = ColorJitter { brightness: 0.4, contrast: 0.4, saturation: 0.4, hue: 0.0 };
    time("jitter-nohue", &mut || color_jitter(img.as_ref(), &j0, &mut rng));
    let jh = ColorJitter { brightness: 0.0, contrast: 0.0, saturation: 0.0, hue: 0.1 };
    for f in [-0.1, -0.05, -0.01, 0.01, 0.05, 0.1] {
        time(&format!("hue {f}"), &mut || adjust_hue(img.as_ref(), f));
    }
    time("jitter-hue", &mut || color_jitter(img.as_ref(), &jh, &mut rng));
    time("grayscale", &mut || to_grayscale(img.as_ref(), 3));
    time("blur", &mut || gaussian_blur(img.as_ref(), 1.0));
    let mut out = vec![0f32; s * s * 3];
    time("normalize", &mut || {
        normalize_into(img.as_ref(), &[0.5, 0.5, 0.5], &[0.2, 0.2, 0.2], &mut out);
        img.to_owned()
    });
    let r = ViewRecipe {
        crop: Some(RandomResizedCrop { size: (s, s), scale: (0.2, 1.0), ratio: (0.75, 4.0 / 3.0) }),
        hflip_p: 0.5,
        jitter: Some(j),
        jitter_p: 0.8,
        grayscale_p: 0.2,
        blur: Some(GaussianBlur { sigma: (0.1, 2.0), p: 0.5 }),
        mean: vec![0.5; 3],
        std: vec![0.2; 3],
        ..Default::default()
    };
    time("rgb2hsv", &mut || {
        let d: Vec<u8> = img
            .data
            .chunks_exact(3)
            .flat_map(|p| {
                let (h, s, v) = rgb_to_hsv(p[0], p[1], p[2]);
                [h, s, v]
            })
            .collect();
        Image::new(s_, s_, 3, d)
    });
    time("hsv2rgb", &mut || {
        let d: Vec<u8> = img
            .data
            .chunks_exact(3)
            .flat_map(|p| {
                let (h, s, v) = hsv_to_rgb(p[0], p[1], p[2]);
                [h, s, v]
            })
            .collect();
        Image::new(s_, s_, 3, d)
    });
    time("moco-v2", &mut || augment(full.as_ref(), &r, &mut rng));
}
