//! Tests of the u8 augmentations against hand-derived Pillow / torchvision results.

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use unmix_data::augment::*;
use unmix_data::Image;

fn noise(h: usize, w: usize, c: usize, seed: u64) -> Image {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    Image::new(h, w, c, (0..h * w * c).map(|_| rng.gen()).collect())
}

fn gradient(h: usize, w: usize, c: usize) -> Image {
    let mut data = Vec::with_capacity(h * w * c);
    for y in 0..h {
        for x in 0..w {
            for ch in 0..c {
                data.push(((y * 7 + x * 5 + ch * 40) % 256) as u8);
            }
        }
    }
    Image::new(h, w, c, data)
}

fn constant(h: usize, w: usize, c: usize, v: u8) -> Image {
    Image::new(h, w, c, vec![v; h * w * c])
}

fn full_recipe(size: (usize, usize), channels: usize) -> ViewRecipe {
    ViewRecipe {
        resize_center: None,
        crop: Some(RandomResizedCrop { size, scale: (0.2, 1.0), ratio: (3.0 / 4.0, 4.0 / 3.0) }),
        hflip_p: 0.5,
        jitter: Some(ColorJitter { brightness: 0.4, contrast: 0.4, saturation: 0.4, hue: 0.1 }),
        jitter_p: 0.8,
        grayscale_p: 0.2,
        grayscale_first: false,
        blur: None,
        solarize_p: 0.0,
        mean: vec![0.5; channels],
        std: vec![0.25; channels],
    }
}

// ------------------------------------------------------------------------------------------------
// Sizes and crop parameters

#[test]
fn augment_output_sizes() {
    let mut rng = ChaCha8Rng::seed_from_u64(1);
    let mnist = gradient(28, 28, 1);
    let cifar = noise(40, 50, 3, 2);
    for _ in 0..50 {
        let out = augment(mnist.as_ref(), &full_recipe((28, 28), 1), &mut rng);
        assert_eq!((out.height, out.width, out.channels), (28, 28, 1));
        assert_eq!(out.data.len(), 28 * 28);
        let out = augment(cifar.as_ref(), &full_recipe((32, 32), 3), &mut rng);
        assert_eq!((out.height, out.width, out.channels), (32, 32, 3));
        assert_eq!(out.data.len(), 32 * 32 * 3);
    }
    // Without a crop the size is kept.
    let out = augment(cifar.as_ref(), &ViewRecipe { crop: None, ..full_recipe((1, 1), 3) }, &mut rng);
    assert_eq!((out.height, out.width, out.channels), (40, 50, 3));
}

#[test]
fn resized_crop_output_sizes() {
    let img = noise(40, 50, 3, 3);
    for &(top, left, h, w, oh, ow) in &[
        (0, 0, 40, 50, 32, 32),
        (5, 7, 20, 30, 32, 32),
        (39, 49, 1, 1, 3, 5),
        (0, 0, 40, 50, 40, 50),
        (3, 2, 10, 11, 10, 33),
    ] {
        let out = resized_crop(img.as_ref(), top, left, h, w, oh, ow);
        assert_eq!((out.height, out.width, out.channels, out.data.len()), (oh, ow, 3, oh * ow * 3));
    }
}

#[test]
fn rrc_params_inside_and_respecting_scale_and_ratio() {
    let mut rng = ChaCha8Rng::seed_from_u64(4);
    for &(hh, ww) in &[(28usize, 28usize), (32, 32), (40, 50), (50, 40), (7, 100), (300, 200)] {
        for &(scale, ratio) in
            &[((0.08, 1.0), (0.75, 4.0 / 3.0)), ((0.2, 1.0), (0.75, 4.0 / 3.0)), ((0.5, 0.5), (1.0, 1.0))]
        {
            for _ in 0..500 {
                let (top, left, h, w) = rrc_params(hh, ww, scale, ratio, &mut rng);
                assert!(h > 0 && w > 0);
                assert!(top + h <= hh && left + w <= ww, "{top} {left} {h} {w} in {hh}x{ww}");
                let fallback_central = top == (hh - h) / 2 && left == (ww - w) / 2;
                let (hf, wf, area) = (h as f64, w as f64, (hh * ww) as f64);
                // w and h are each rounded by at most 0.5.
                let ratio_ok =
                    (wf + 0.5) / (hf - 0.5).max(1e-9) >= ratio.0 - 1e-9 && (wf - 0.5) / (hf + 0.5) <= ratio.1 + 1e-9;
                let scale_ok = (wf + 0.5) * (hf + 0.5) >= scale.0 * area - 1e-9
                    && (wf - 0.5) * (hf - 0.5) <= scale.1 * area + 1e-9;
                assert!(
                    fallback_central || (ratio_ok && scale_ok),
                    "{h}x{w} in {hh}x{ww}, scale {scale:?} ratio {ratio:?}"
                );
            }
        }
    }
}

#[test]
fn rrc_params_uses_all_positions() {
    // With scale (0.25, 0.25) and ratio 1 on a 20x20 image the box is 10x10 at a random place.
    let mut rng = ChaCha8Rng::seed_from_u64(5);
    let mut tops = std::collections::HashSet::new();
    for _ in 0..2000 {
        let (top, left, h, w) = rrc_params(20, 20, (0.25, 0.25), (1.0, 1.0), &mut rng);
        assert_eq!((h, w), (10, 10));
        assert!(top <= 10 && left <= 10);
        tops.insert(top);
    }
    assert_eq!(tops.len(), 11);
}

#[test]
fn rrc_params_fallback_is_torchvision_central_crop() {
    let mut rng = ChaCha8Rng::seed_from_u64(6);
    // The target area is always larger than the image: every attempt fails.
    // Wide image (ratio 4 > 4/3): h = H, w = round(H * 4/3).
    assert_eq!(rrc_params(10, 40, (2.0, 3.0), (0.75, 4.0 / 3.0), &mut rng), (0, 13, 10, 13));
    // Tall image (ratio 1/4 < 3/4): w = W, h = round(W / (3/4)).
    assert_eq!(rrc_params(40, 10, (2.0, 3.0), (0.75, 4.0 / 3.0), &mut rng), (13, 0, 13, 10));
    // Ratio inside the range: the whole image.
    assert_eq!(rrc_params(30, 32, (2.0, 3.0), (0.75, 4.0 / 3.0), &mut rng), (0, 0, 30, 32));
}

// ------------------------------------------------------------------------------------------------
// Resampling (Pillow BILINEAR)

#[test]
fn resize_of_constant_image_stays_constant() {
    for &(v, c) in &[(0u8, 1usize), (123, 3), (255, 3), (1, 1)] {
        let img = constant(7, 9, c, v);
        for &(oh, ow) in &[(13, 4), (3, 3), (28, 28), (7, 20), (1, 1), (32, 9)] {
            let out = resize_bilinear(img.as_ref(), oh, ow);
            assert!(out.data.iter().all(|&x| x == v), "{v} -> {oh}x{ow}: {:?}", out.data);
        }
    }
}

#[test]
fn resize_to_same_size_is_identity() {
    let img = noise(11, 13, 3, 7);
    assert_eq!(resize_bilinear(img.as_ref(), 11, 13), img);
    let img = noise(28, 28, 1, 8);
    assert_eq!(resize_bilinear(img.as_ref(), 28, 28), img);
    // A crop without resizing is a plain crop.
    let out = resized_crop(img.as_ref(), 3, 4, 5, 6, 5, 6);
    for y in 0..5 {
        for x in 0..6 {
            assert_eq!(out.as_ref().at(y, x, 0), img.as_ref().at(3 + y, 4 + x, 0));
        }
    }
}

// Pillow's rule, by hand. Upscaling 2 -> 4 (scale 0.5, support 1): output centres at input
// coordinates 0.25, 0.75, 1.25, 1.75; taps (after clamping to the image and normalising):
//   out0 = in0;  out1 = 0.75 in0 + 0.25 in1;  out2 = 0.25 in0 + 0.75 in1;  out3 = in1.
// Rounding is half up (fixed point + 2^21): [0, 10] -> [0, 2.5 -> 3, 7.5 -> 8, 10].
#[test]
fn resize_upsample_2x_by_hand() {
    let row = Image::new(1, 2, 1, vec![0, 10]);
    assert_eq!(resize_bilinear(row.as_ref(), 1, 4).data, vec![0, 3, 8, 10]);
    let row = Image::new(1, 2, 1, vec![0, 100]);
    assert_eq!(resize_bilinear(row.as_ref(), 1, 4).data, vec![0, 25, 75, 100]);
    // The same vertically.
    let col = Image::new(2, 1, 1, vec![0, 10]);
    assert_eq!(resize_bilinear(col.as_ref(), 4, 1).data, vec![0, 3, 8, 10]);
    // 2x2 -> 4x4, separable: rows [0, 10] and [100, 200] become [0,3,8,10] and [100,125,175,200],
    // then each column (a, b) becomes [a, .75a+.25b, .25a+.75b, b] (rounded half up).
    let sq = Image::new(2, 2, 1, vec![0, 10, 100, 200]);
    let expected = vec![
        0, 3, 8, 10, //
        25, 34, 50,
        58, // 0.75*0 + 0.25*100 = 25; .75*3+.25*125 = 33.5 -> 34; .75*8+.25*175 = 49.75 -> 50; 57.5 -> 58
        75, 95, 133, 153, // 75; .25*3+.75*125 = 94.5 -> 95; .25*8+.75*175 = 133.25; 2.5+150 = 152.5 -> 153
        100, 125, 175, 200,
    ];
    assert_eq!(resize_bilinear(sq.as_ref(), 4, 4).data, expected);
    // Channels are independent.
    let rgb = Image::new(1, 2, 3, vec![0, 100, 10, 10, 0, 0]);
    assert_eq!(resize_bilinear(rgb.as_ref(), 1, 4).data, vec![0, 100, 10, 3, 75, 8, 8, 25, 3, 10, 0, 0]);
}

// Downscaling 4 -> 2 (scale 2): the triangle is stretched to support 2 (antialiasing). Centres at
// 1.0 and 3.0; tap weights tri((x + 0.5 - centre) / 2) = 0.75, 0.75, 0.25 -> 3/7, 3/7, 1/7:
//   out0 = (3 in0 + 3 in1 + in2) / 7,  out1 = (in1 + 3 in2 + 3 in3) / 7.
// 3 -> 2 (scale 1.5, support 1.5): centres 0.75, 2.25; weights 5/6, 1/2 -> 5/8, 3/8:
//   out0 = (5 in0 + 3 in1) / 8,  out1 = (3 in1 + 5 in2) / 8.
#[test]
fn resize_downsample_by_hand() {
    let row = Image::new(1, 4, 1, vec![0, 70, 140, 210]);
    assert_eq!(resize_bilinear(row.as_ref(), 1, 2).data, vec![50, 160]);
    let row = Image::new(1, 4, 1, vec![7, 0, 0, 0]);
    // 21/7 = 3 and 0.
    assert_eq!(resize_bilinear(row.as_ref(), 1, 2).data, vec![3, 0]);
    let row = Image::new(1, 3, 1, vec![10, 20, 30]);
    // 6.25 + 7.5 = 13.75 -> 14; 7.5 + 18.75 = 26.25 -> 26.
    assert_eq!(resize_bilinear(row.as_ref(), 1, 2).data, vec![14, 26]);
    let row = Image::new(1, 3, 1, vec![0, 80, 160]);
    // 30 and 130 exactly.
    assert_eq!(resize_bilinear(row.as_ref(), 1, 2).data, vec![30, 130]);
    // 4 -> 1: centre 2, support 4, weights tri((x + 0.5 - 2) / 4) = 5/8, 7/8, 7/8, 5/8 -> /3.
    let row = Image::new(1, 4, 1, vec![0, 0, 0, 240]);
    // 240 * (5/8) / 3 = 50.
    assert_eq!(resize_bilinear(row.as_ref(), 1, 1).data, vec![50]);
}

#[test]
fn resized_crop_reads_only_the_box() {
    // Pixels outside the box must not leak in (torchvision crops before resizing).
    let mut img = constant(10, 10, 1, 255);
    for y in 2..6 {
        for x in 3..7 {
            img.data[y * 10 + x] = 40;
        }
    }
    for &(oh, ow) in &[(8, 8), (2, 2), (3, 7)] {
        let out = resized_crop(img.as_ref(), 2, 3, 4, 4, oh, ow);
        assert!(out.data.iter().all(|&v| v == 40), "{oh}x{ow}: {:?}", out.data);
    }
}

// ------------------------------------------------------------------------------------------------
// Flip, colour

#[test]
fn hflip_mirrors_and_twice_is_identity() {
    let img = Image::new(1, 3, 3, vec![1, 2, 3, 4, 5, 6, 7, 8, 9]);
    assert_eq!(hflip(img.as_ref()).data, vec![7, 8, 9, 4, 5, 6, 1, 2, 3]);
    for (h, w, c) in [(5, 7, 3), (28, 28, 1), (1, 1, 3)] {
        let img = noise(h, w, c, 9);
        assert_eq!(hflip(hflip(img.as_ref()).as_ref()), img);
    }
}

#[test]
fn zero_strength_adjustments_are_identity() {
    for (c, seed) in [(3, 10u64), (1, 11)] {
        let img = noise(9, 8, c, seed);
        assert_eq!(adjust_brightness(img.as_ref(), 1.0), img);
        assert_eq!(adjust_contrast(img.as_ref(), 1.0), img);
        assert_eq!(adjust_saturation(img.as_ref(), 1.0), img);
        assert_eq!(adjust_hue(img.as_ref(), 0.0), img);
    }
}

#[test]
fn zero_color_jitter_always_applied_is_identity() {
    let recipe = ViewRecipe {
        resize_center: None,
        crop: None,
        hflip_p: 0.0,
        jitter: Some(ColorJitter { brightness: 0.0, contrast: 0.0, saturation: 0.0, hue: 0.0 }),
        jitter_p: 1.0,
        grayscale_p: 0.0,
        grayscale_first: false,
        blur: None,
        solarize_p: 0.0,
        mean: vec![0.0; 3],
        std: vec![1.0; 3],
    };
    let img = noise(6, 5, 3, 12);
    let mut rng = ChaCha8Rng::seed_from_u64(13);
    for _ in 0..20 {
        assert_eq!(augment(img.as_ref(), &recipe, &mut rng), img);
    }
    // The eval recipe does nothing either.
    assert_eq!(augment(img.as_ref(), &ViewRecipe::eval(vec![0.0; 3], vec![1.0; 3]), &mut rng), img);
}

#[test]
fn jitter_with_strength_changes_the_image() {
    let j = ColorJitter { brightness: 0.4, contrast: 0.4, saturation: 0.4, hue: 0.1 };
    let img = noise(8, 8, 3, 14);
    let mut rng = ChaCha8Rng::seed_from_u64(15);
    let changed = (0..10).filter(|_| color_jitter(img.as_ref(), &j, &mut rng) != img).count();
    assert!(changed >= 9);
}

#[test]
fn brightness_values() {
    let img = Image::new(1, 3, 1, vec![255, 3, 100]);
    assert_eq!(adjust_brightness(img.as_ref(), 0.0).data, vec![0, 0, 0]);
    // Pillow truncates: 127.5 -> 127, 1.5 -> 1.
    assert_eq!(adjust_brightness(img.as_ref(), 0.5).data, vec![127, 1, 50]);
    // Extrapolation clips.
    assert_eq!(adjust_brightness(img.as_ref(), 2.0).data, vec![255, 6, 200]);
    let rgb = noise(4, 4, 3, 16);
    assert!(adjust_brightness(rgb.as_ref(), 0.0).data.iter().all(|&v| v == 0));
}

#[test]
fn contrast_values() {
    // L mean = 15.25 -> int(15.75) = 15.
    let img = Image::new(2, 2, 1, vec![0, 10, 20, 31]);
    assert_eq!(adjust_contrast(img.as_ref(), 0.0).data, vec![15; 4]);
    // 15 + 2 * (v - 15), clipped at 0: -15 -> 0, 5, 25, 47.
    assert_eq!(adjust_contrast(img.as_ref(), 2.0).data, vec![0, 5, 25, 47]);
    // RGB: the mean of the L plane. Pixels' L: (255,0,0) -> 76, (0,255,0) -> 150, (0,0,255) -> 29,
    // (255,255,255) -> 255; mean 127.5 -> 128.
    let rgb = Image::new(2, 2, 3, vec![255, 0, 0, 0, 255, 0, 0, 0, 255, 255, 255, 255]);
    assert_eq!(adjust_contrast(rgb.as_ref(), 0.0).data, vec![128; 12]);
    // 0.5: 128 + 0.5 * (v - 128) truncated: 255 -> 191.5 -> 191, 0 -> 64.
    assert_eq!(adjust_contrast(rgb.as_ref(), 0.5).data, vec![191, 64, 64, 64, 191, 64, 64, 64, 191, 191, 191, 191]);
    // Contrast 0 gives a uniform image on noise too.
    let n = noise(5, 5, 3, 17);
    let out = adjust_contrast(n.as_ref(), 0.0);
    assert!(out.data.iter().all(|&v| v == out.data[0]));
}

#[test]
fn saturation_and_grayscale_values() {
    assert_eq!(luma(255, 0, 0), 76);
    assert_eq!(luma(0, 255, 0), 150);
    assert_eq!(luma(0, 0, 255), 29);
    assert_eq!(luma(255, 255, 255), 255);
    assert_eq!(luma(10, 20, 30), 18); // (196 009 + 769 400 + 224 130 + 32 768) >> 16 = 18
    for v in 0..=255u8 {
        assert_eq!(luma(v, v, v), v);
    }
    let img = Image::new(1, 2, 3, vec![255, 0, 0, 10, 20, 30]);
    assert_eq!(to_grayscale(img.as_ref(), 3).data, vec![76, 76, 76, 18, 18, 18]);
    assert_eq!(to_grayscale(img.as_ref(), 1).data, vec![76, 18]);
    assert_eq!(adjust_saturation(img.as_ref(), 0.0), to_grayscale(img.as_ref(), 3));
    // 2.0: L + 2 (v - L), clipped: 76 + 2*179 -> 255, 76 - 152 -> 0; 18 + 2*(-8) = 2, 22, 42.
    assert_eq!(adjust_saturation(img.as_ref(), 2.0).data, vec![255, 0, 0, 2, 22, 42]);
    // A grey image is its own greyscale, and saturation/hue leave it alone.
    let grey = Image::new(1, 3, 3, vec![0, 0, 0, 77, 77, 77, 255, 255, 255]);
    assert_eq!(to_grayscale(grey.as_ref(), 3), grey);
    assert_eq!(adjust_saturation(grey.as_ref(), 0.3), grey);
    assert_eq!(adjust_hue(grey.as_ref(), 0.25), grey);
    // 1-channel images: saturation and hue are identity, greyscale too.
    let l = noise(4, 4, 1, 18);
    assert_eq!(adjust_saturation(l.as_ref(), 0.0), l);
    assert_eq!(adjust_hue(l.as_ref(), 0.3), l);
    assert_eq!(to_grayscale(l.as_ref(), 1), l);
}

#[test]
fn hsv_of_primaries() {
    assert_eq!(rgb_to_hsv(255, 0, 0), (0, 255, 255));
    assert_eq!(rgb_to_hsv(0, 255, 0), (85, 255, 255));
    assert_eq!(rgb_to_hsv(0, 0, 255), (170, 255, 255));
    assert_eq!(rgb_to_hsv(0, 0, 0), (0, 0, 0));
    assert_eq!(rgb_to_hsv(100, 100, 100), (0, 0, 100));
    // Half-saturated dark red: s = 64/128 = 0.5 -> 127.
    assert_eq!(rgb_to_hsv(128, 64, 64), (0, 127, 128));
    assert_eq!(hsv_to_rgb(0, 255, 255), (255, 0, 0));
    assert_eq!(hsv_to_rgb(85, 255, 255), (0, 255, 0));
    assert_eq!(hsv_to_rgb(170, 255, 255), (0, 0, 255));
    assert_eq!(hsv_to_rgb(0, 0, 77), (77, 77, 77));
}

#[test]
fn hue_shift() {
    let red = Image::new(1, 1, 3, vec![255, 0, 0]);
    // hue_factor * 255 = 85.425 -> 85: red becomes green, then blue.
    assert_eq!(adjust_hue(red.as_ref(), 0.335).data, vec![0, 255, 0]);
    let green = adjust_hue(red.as_ref(), 0.335);
    assert_eq!(adjust_hue(green.as_ref(), 0.335).data, vec![0, 0, 255]);
    // -0.335 -> trunc(-85.425) = -85 -> +171 mod 256: h = 171, i = 4, f = 0.0235..: (t, p, v) = (6, 0, 255).
    assert_eq!(adjust_hue(red.as_ref(), -0.335).data, vec![6, 0, 255]);
    // Hue 0 is the identity on random RGB.
    let img = noise(16, 16, 3, 19);
    assert_eq!(adjust_hue(img.as_ref(), 0.0), img);
    // Pillow's u8 HSV round trip is lossy but close: the hue byte is a 1/255 turn.
    for p in img.data.chunks_exact(3) {
        let (h, s, v) = rgb_to_hsv(p[0], p[1], p[2]);
        let (r, g, b) = hsv_to_rgb(h, s, v);
        for (a, b) in [(r, p[0]), (g, p[1]), (b, p[2])] {
            assert!((a as i32 - b as i32).abs() <= 8, "{p:?} -> {:?}", (r, g, b));
        }
        assert_eq!(r.max(g).max(b), p[0].max(p[1]).max(p[2]));
    }
}

// ------------------------------------------------------------------------------------------------
// Normalization and determinism

#[test]
fn normalize_hand_made_pixels() {
    // Two pixels, RGB: (255, 0, 51) and (0, 255, 102).
    let img = Image::new(1, 2, 3, vec![255, 0, 51, 0, 255, 102]);
    let mean = [0.5f32, 0.5, 0.5];
    let std = [0.5f32, 0.25, 0.2];
    let mut out = vec![f32::NAN; 6];
    normalize_into(img.as_ref(), &mean, &std, &mut out);
    // Planar: [R0, R1, G0, G1, B0, B1].
    let expected = [1.0f32, -1.0, -2.0, 2.0, -1.5, -0.5];
    for (o, e) in out.iter().zip(expected) {
        assert!((o - e).abs() < 1e-6, "{out:?}");
    }
    // Exactly the f32 formula of ToTensor + Normalize.
    assert_eq!(out[4].to_bits(), ((51.0f32 / 255.0 - 0.5) / 0.2).to_bits());
    let l = Image::new(1, 1, 1, vec![128]);
    let mut out = [0.0f32];
    normalize_into(l.as_ref(), &[0.1307], &[0.3081], &mut out);
    assert!((out[0] - (128.0 / 255.0 - 0.1307) / 0.3081).abs() < 1e-6);
}

#[test]
fn same_seed_same_view_different_seed_different_view() {
    let img = noise(40, 50, 3, 20);
    let recipe = full_recipe((32, 32), 3);
    let a = augment(img.as_ref(), &recipe, &mut ChaCha8Rng::seed_from_u64(21));
    let b = augment(img.as_ref(), &recipe, &mut ChaCha8Rng::seed_from_u64(21));
    assert_eq!(a, b);
    let different =
        (22..30u64).filter(|&s| augment(img.as_ref(), &recipe, &mut ChaCha8Rng::seed_from_u64(s)) != a).count();
    assert_eq!(different, 8);
    let s1 = unmix_data::seed::sample_rng(1, 0, 5, 0);
    let s2 = unmix_data::seed::sample_rng(1, 0, 5, 1);
    assert_ne!(augment(img.as_ref(), &recipe, &mut s1.clone()), augment(img.as_ref(), &recipe, &mut s2.clone()));
    assert_eq!(augment(img.as_ref(), &recipe, &mut s1.clone()), augment(img.as_ref(), &recipe, &mut s1.clone()));
}

#[test]
fn flip_probability_is_respected() {
    let img = noise(4, 6, 3, 23);
    let flipped = hflip(img.as_ref());
    let mut recipe = ViewRecipe::eval(vec![0.0; 3], vec![1.0; 3]);
    recipe.hflip_p = 1.0;
    let mut rng = ChaCha8Rng::seed_from_u64(24);
    assert_eq!(augment(img.as_ref(), &recipe, &mut rng), flipped);
    recipe.hflip_p = 0.5;
    let n = (0..400).filter(|_| augment(img.as_ref(), &recipe, &mut rng) == flipped).count();
    assert!((150..250).contains(&n), "{n} flips out of 400");
    recipe.hflip_p = 0.0;
    recipe.grayscale_p = 1.0;
    assert_eq!(augment(img.as_ref(), &recipe, &mut rng), to_grayscale(img.as_ref(), 3));
}

// ------------------------------------------------------------------------------------------------
// Reference values computed with torchvision 0.28 / Pillow 13 (tests/pil_expected.py)

fn pil_test_image(channels: usize) -> Image {
    let (h, w) = (9, 11);
    let mut data = Vec::with_capacity(h * w * channels);
    for y in 0..h {
        for x in 0..w {
            for ch in 0..channels {
                data.push(((y * 37 + x * 59 + ch * 83 + ((x * y) % 17) * 11) % 256) as u8);
            }
        }
    }
    Image::new(h, w, channels, data)
}

#[test]
fn matches_torchvision_on_pil() {
    let text = include_str!("pil_expected.txt");
    let mut checked = 0;
    for line in text.lines().filter(|l| !l.starts_with('#') && !l.trim().is_empty()) {
        let parts: Vec<&str> = line.split('|').collect();
        assert_eq!(parts.len(), 3, "{line}");
        let head: Vec<&str> = parts[0].split_whitespace().collect();
        let shape: Vec<usize> = parts[1].split_whitespace().map(|v| v.parse().unwrap()).collect();
        let values: Vec<u8> = parts[2].split_whitespace().map(|v| v.parse().unwrap()).collect();
        let expected = Image::new(shape[0], shape[1], shape[2], values);
        let img = pil_test_image(if head[0] == "RGB" { 3 } else { 1 });
        let img = img.as_ref();
        let f = |i: usize| head[2 + i].parse::<f64>().unwrap();
        let u = |i: usize| head[2 + i].parse::<usize>().unwrap();
        let got = match head[1] {
            "identity" => img.to_owned(),
            "brightness" => adjust_brightness(img, f(0)),
            "contrast" => adjust_contrast(img, f(0)),
            "saturation" => adjust_saturation(img, f(0)),
            "hue" => adjust_hue(img, f(0)),
            "grayscale" => to_grayscale(img, u(0)),
            "resize" => resize_bilinear(img, u(0), u(1)),
            "resized_crop" => resized_crop(img, u(0), u(1), u(2), u(3), u(4), u(5)),
            op => panic!("unknown op {op}"),
        };
        if got != expected {
            let diff: Vec<(usize, u8, u8)> = got
                .data
                .iter()
                .zip(&expected.data)
                .enumerate()
                .filter(|(_, (a, b))| a != b)
                .map(|(i, (a, b))| (i, *a, *b))
                .take(10)
                .collect();
            panic!(
                "{}: shape {:?} vs {:?}, first differences (index, ours, pil): {diff:?}",
                parts[0].trim(),
                (got.height, got.width, got.channels),
                (expected.height, expected.width, expected.channels)
            );
        }
        checked += 1;
    }
    assert_eq!(checked, 52);
}
