//! Tests of the blur, solarization and evaluation resizing added to `augment`, and of their
//! place in `augment()`'s draw order.

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use unmix_data::augment::{
    augment, box_blur, center_crop, color_jitter, gaussian_blur, resize_bilinear, resize_shorter_center_crop, solarize,
    to_grayscale, ColorJitter, GaussianBlur, RandomResizedCrop, ViewRecipe,
};
use unmix_data::Image;

fn noise(h: usize, w: usize, c: usize, seed: u64) -> Image {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    Image::new(h, w, c, (0..h * w * c).map(|_| rng.gen()).collect())
}

/// The test pattern of the Python script that produced the expected values below.
fn pattern(h: usize, w: usize, c: usize) -> Image {
    let mut data = Vec::with_capacity(h * w * c);
    for y in 0..h {
        for x in 0..w {
            for ch in 0..c {
                data.push(((x * 37 + y * 91 + ch * 53 + (x * y) % 17 * 13) % 256) as u8);
            }
        }
    }
    Image::new(h, w, c, data)
}

fn hex(s: &str) -> Vec<u8> {
    (0..s.len()).step_by(2).map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap()).collect()
}

/// `Image.frombytes(mode, (w, h), pattern).filter(ImageFilter.GaussianBlur(radius)).tobytes()`
/// from Pillow 13.0.0: (channels, h, w, radius, hex bytes). Radii 8 and 20 are larger than the
/// image (Pillow's other edge branch).
const PIL_BLUR: &[(usize, usize, usize, f64, &str)] = &[
    (3, 9, 13, 0.05, "00356a255a8f4a7fb46fa4d994c9feb9ee23de134803386d285d924d82b772a7dc97cc01bcf1265b90c58dc2f7bff429f1265b23588d558abf87bcf1b9ee23eb20551d52874f84b981b6ebb3e81db6eb20f52a5f34699e73a8ddb2e71cf1265b30659a6fa4d9aee31810457a4f84b98ec3f8cd023711467b5d92c7a9de13f52a5f4176ab8dc2f7fc3166487db294c9fee0154a2c619678ade2e71c516ca1d6c5fa2f1e538877ace1d0053a4c81b6a5da0ffe3368578cc1d3083d2c619685baefde1348c7fc312d629793c8fdf92e6382b7ece81d524e83b8d70c413d72a7a3d80d093e7392c7fcf82d6222578c95caff083d729ed30811467b84b9ee1a4f848dc2f700356a96cb00093e737cb1e612477c7db2e7fd32677db2e720558aa0d50a4378adc3f82d4378ade61b50669bd0093e7389bef3093e73d80d42659acff2275ca2d70c2f6499df14496ca1d61c5186a9de13598ec3e61b5096cb0023588d"),
    (3, 9, 13, 0.5, "1044783165975789a77a99ca8abbd8adc94dbc3f59304a683c5a8b4a7cb06fa4c094c931b8eb256093ae8aa9c6a6c35ac0577454718d6e8aa687a3bfa0bc51b74f5a3a598a5387b884b6bdb0cd35a1c044c35b74657f888992ac9cb64dc05675626c9b76a3ad9bb84d3b57785081b48ba7d8c5304d36678072919993b044c458756f7695939acac75979737daa91aacab134664864998098cdd72a5e73a8ae97cb5e4f7d888d82b3aa3a6e747b9aa4a941cf506e767babb13352456193869ed3d5295ea1d5555a8d967e9ecccb5f7f9086b8b84c7d6d7493b53768566f8c8ba92d2c5d7989a5d8d33e734779967f9fcf3c6b8a82a23741707b7694c24574927894c637547077a92d2559766a9ccf334f84888fc3ca5d92808bba4c7b7279aa3d68869195c75e5f7d9bae48626c8aa434528170a2c21c4f81c22d628b79aecf506c94af2f557178b438667593b13a6b8697b539708ba5ba3e598dac2e2e627d"),
    (3, 9, 13, 1.0, "36668c4d78966b8a9f8094aa899fa39598828d77716b677058668156789b6b9a998dbd68a8d23d63858d758b90858f8c8d8a8f888c908a8a8c8985888183797475775e738f658ca088a687a8ac587d9279898d808d8b80918683908484917e8d8c8092888c8b82847f6a7087667ba188859caf706f6f917e7e927c888c7b937d8393788a957a9098798b927f908b7c8e7d66856f6d9a8b70a0b7517b73a386789f847f8e8991768d956d8e93738a99767e996e828b6e847e65786d6c8e896e9fb54f8378a886759c927a8b968b7b8b8d738d89728e877186876882786d766d76675f76837974a098598c778f99798ba075849276847774827d75818e737f9172758c6d7175647c695578815d779c5f629191729d93759d877c8a74876a6f886b76857f748a896f80867777767078786372815a788a426987aa5588a6648e9f747b86855e787d658172797780896a847e7b876f807c7a826f716d7a6a446f73"),
    (3, 9, 13, 1.37, "53799060809372899882909a8a92958b8c8985817f77767c687484657f8e71958a89ac739bba5c63828a6e858c7c8a8f878d918c8c908d88898882847d7b817078866b7d8e738b8d8a997d9da26a738e837b8d84868a868d878890838b90818a8e808a877e867c798774798e787c918d8088a0827c7897817f9282888a848e8287927c8a937a8a927b8b8d7a878476867a748b7c71908e6d8ea16988779c867c9687848b888a80898f788b91768b90768a8b7585837282787185796e8b88679099608f789a8f7a938e7f898c82808a867a898778898776888274827b727d70737e6f7186786a8f836392828b9681889280858b7d81837d7e817d7d857c7b8778788274777b6c767a677581676f8a696a8f9176958e798f877e847f80797a817778807e767f84747e81737c7b707a7869777c607282586f859e66929a6d8b90787e837f717b807178807975818174818076807b767b786f777760737a52727b"),
    (3, 9, 13, 2.0, "5e7f8a67828d7287917d899185898e8686898180867a7c85747d857584847d8f7d899a7394a26a6584886d868b77888d80888e87878d888489847f877d7c86787c867881867f88808b8f789594706e8a86748a887c898a84878b8a848b8b8189877d87817a877c7a877c7b87827e838c807d9482787590867a8d8780898886858a8a818a8b7e88887b878478877f77877e76878275858a738291727f7a91887d8d88828988868488897f88897c878779868377867e75857c73867e7085836b848868837f8c8a808a89828688848287857e86857b858279847f77847b7683787383776e837a69847c658486838b868389858186848084827d83807c827e7a827b798177778074757f7070806f6b816e67828e798a8c7a87887c83847d80807d7f7d7d7f7a7c7f777b7f747a7d71777c6c737c676e7d636a7e9470899174858b7780867b7c7f7c7b7b7e7c787d7d767d7d737c7c70797a6a757963707a5c6c7b"),
    (3, 9, 13, 3.3, "6881896c828970818a74818a78818a7b81897e818780808482828085837c8784778b86738d876f6c82886f82887382897681897981897c80887e8086807f8482808084807c8681788982748c82717083877383877682887981887b81887d7f877f7f86807d83817e80837d7d857d79877d76897d737682867882867a81877c80877d80877e7f867f7d85807c83807b80817a7d82797a8478778577757c81847d81847e80857f7f857f7f85807e847f7c837f7a827f79807f777d7f757b807378807276827f82827f82827e83827e83817e83807c837f7b827e78817d777f7c747d7b727b7b70797b6e77877c80877c80867c81847c82827c81817b817f7a807d777f7b767e79737c78707b776d79766b788b797e8a797e887a7f867a80837b7f817a7f7e797f7c777e7a757d77727c746f7b736c7a716a788e767c8d777d8a787d87787f847a7e81797e7e797e7b767d78757c75727b716f7a706c796e6978"),
    (3, 9, 13, 8.0, "74747b74757a7576797677787777777878777979767a7b757c7b747c7c737d7d727e7d717e7e7175747a75747a7675797776787877777878777979767b7a757c7a747c7b737d7c727e7c717e7d7176737a7674797775797875787876777977777a78767b79757c79747c7a737d7b727e7b717e7c717773797773797874787975787975777976777a77767b78757c79747c79737d7a727e7b717e7b717872797973797974787a74777a75777a76767b76757c77757c78747c79737d79727d7a727e7a717a71797a72787a73787b73777b74777b75767c76757c76757d77747d78737d78737d79727d79727b71787b71787b72777c73777c73767b74767c75757c75757d76747d77737c77737d78727d79727c70787c71787c72777d72777c73767c74767d74757d74757d75747d76737c76737d77727d78727d70777d70777d71777d72777d72767d73767d74757d73757d74757d75747c75737d76727d7772"),
    (3, 9, 13, 20.0, "746c66746c66746c66746d66746d65746d65746e65746e65756e65756e65756e65756e65756f65746c66746c66746c66746d66746d65746d65746e65746e65756e65756e65756e65756e65756f65746c66746c66746c66746d66746d65746d65746e65746e65756e65756e65756e65756e65756f65746c66746c66746c66746d66746d65746d65746e66746e66756e65756e65756e65756e65756f65756c66756c66756c66756d66756d65756d65756d66756d66756e66756e66756e65756e65756e66756c66756c66756c66756c66756c66756d66756d66756d66756d66756d66756d66756d66756e66756c66756c66756c66756c66756c66756d66756d66756d66756d66756d66756d66756d66756e66756c66756c66756c66756c66756c66756d66756d66756d66756d66756d66756d66756d66756e66756c66756c66756c66756c66756c66756d66756d66756d66756d66756d66756d66756d66756e66"),
    (1, 7, 5, 1.5, "5662717b7f646d7980837279828789787d85898c74798085896d71767b7e686b707274"),
    (1, 7, 5, 0.3, "062a50758d5e8db5dc35aee0497ca61f679fe0536fb13381c4b7428ae7852e871a951d"),
];

#[test]
fn gaussian_blur_matches_pillow_bit_for_bit() {
    for &(c, h, w, radius, expected) in PIL_BLUR {
        let out = gaussian_blur(pattern(h, w, c).as_ref(), radius);
        assert_eq!((out.height, out.width, out.channels), (h, w, c));
        assert_eq!(out.data, hex(expected), "{c} channels {h}x{w}, radius {radius}");
    }
}

#[test]
fn blur_with_tiny_sigma_is_nearly_identity() {
    let img = noise(20, 17, 3, 1);
    assert_eq!(gaussian_blur(img.as_ref(), 0.0), img);
    // sigma 0.05: box weights of the neighbours ~ 1e-3 of a level; every value moves by <= 1.
    let out = gaussian_blur(img.as_ref(), 0.05);
    assert!(img.data.iter().zip(&out.data).all(|(a, b)| a.abs_diff(*b) <= 1));
    // And a real blur changes noise a lot.
    let strong = gaussian_blur(img.as_ref(), 2.0);
    let diff: u64 = img.data.iter().zip(&strong.data).map(|(a, b)| a.abs_diff(*b) as u64).sum();
    assert!(diff > 20 * img.data.len() as u64, "mean change {}", diff / img.data.len() as u64);
}

#[test]
fn blur_of_constant_image_is_constant() {
    for &v in &[0u8, 1, 77, 128, 254, 255] {
        for &(h, w, c) in &[(1, 1, 3), (9, 13, 3), (30, 4, 1), (5, 40, 3)] {
            let img = Image::new(h, w, c, vec![v; h * w * c]);
            for &r in &[0.1, 0.7, 1.9, 5.0, 60.0] {
                assert_eq!(gaussian_blur(img.as_ref(), r), img, "value {v}, {h}x{w}x{c}, r {r}");
            }
        }
    }
}

#[test]
fn blur_preserves_mean_roughly_and_smooths() {
    let img = noise(24, 24, 3, 2);
    let out = gaussian_blur(img.as_ref(), 1.5);
    let mean = |d: &[u8]| d.iter().map(|&v| v as f64).sum::<f64>() / d.len() as f64;
    assert!((mean(&img.data) - mean(&out.data)).abs() < 2.0);
    // Neighbour differences shrink.
    let tv = |im: &Image| -> u64 { im.data.windows(4).map(|p| p[0].abs_diff(p[3]) as u64).sum() };
    assert!(tv(&out) * 3 < tv(&img), "{} vs {}", tv(&out), tv(&img));
}

#[test]
fn box_blur_radius_zero_is_identity_and_one_direction_only() {
    let img = pattern(9, 13, 3);
    assert_eq!(box_blur(img.as_ref(), 0.0, 0.0, 3), img);
    // Horizontal only: every column's vertical structure is kept if rows are constant.
    let rows_const = Image::new(6, 10, 1, (0..6).flat_map(|y| std::iter::repeat_n((y * 40) as u8, 10)).collect());
    assert_eq!(box_blur(rows_const.as_ref(), 2.5, 0.0, 3), rows_const);
    assert_ne!(box_blur(rows_const.as_ref(), 0.0, 2.5, 3), rows_const);
}

#[test]
fn solarize_values_by_hand() {
    let img = Image::new(1, 8, 1, vec![0, 1, 127, 128, 129, 200, 254, 255]);
    // PIL ImageOps.solarize(threshold=128): v >= 128 -> 255 - v.
    assert_eq!(solarize(img.as_ref(), 128).data, vec![0, 1, 127, 127, 126, 55, 1, 0]);
    // Threshold 0 inverts everything; 255 only touches 255.
    assert_eq!(solarize(img.as_ref(), 0).data, vec![255, 254, 128, 127, 126, 55, 1, 0]);
    assert_eq!(solarize(img.as_ref(), 255).data, vec![0, 1, 127, 128, 129, 200, 254, 0]);
    // Pillow 13 on the RGB test pattern (first 4 pixels).
    let out = solarize(pattern(9, 13, 3).as_ref(), 128);
    assert_eq!(out.data[..12], hex("00356a255a704a7f4b6f5b26")[..]);
}

#[test]
fn solarize_twice_only_where_it_holds() {
    let all: Vec<u8> = (0..=255).collect();
    let img = Image::new(16, 16, 1, all.clone());
    let once = solarize(img.as_ref(), 128);
    let twice = solarize(once.as_ref(), 128);
    for v in 0..=255usize {
        if v < 128 {
            // Below the threshold: untouched, so twice is the identity.
            assert_eq!(twice.data[v], v as u8);
        } else {
            // v >= 128 maps to 255 - v <= 127, which the second pass keeps: twice == once,
            // and NOT the identity.
            assert_eq!(once.data[v], 255 - v as u8);
            assert_eq!(twice.data[v], 255 - v as u8);
            assert_ne!(twice.data[v], v as u8);
        }
    }
    // With threshold 0 (full inversion) it is an involution.
    assert_eq!(solarize(solarize(img.as_ref(), 0).as_ref(), 0), img);
}

fn base_recipe() -> ViewRecipe {
    ViewRecipe {
        crop: Some(RandomResizedCrop::new(12, 12)),
        hflip_p: 0.5,
        jitter: Some(ColorJitter { brightness: 0.4, contrast: 0.4, saturation: 0.2, hue: 0.1 }),
        jitter_p: 0.8,
        grayscale_p: 0.2,
        mean: vec![0.0; 3],
        std: vec![1.0; 3],
        ..Default::default()
    }
}

#[test]
fn default_recipe_is_identity() {
    let r = ViewRecipe::default();
    assert_eq!(r, ViewRecipe::eval(vec![], vec![]));
    let img = noise(7, 9, 3, 3);
    for seed in 0..5 {
        assert_eq!(augment(img.as_ref(), &r, &mut ChaCha8Rng::seed_from_u64(seed)), img);
    }
}

#[test]
fn grayscale_first_converts_before_the_jitter_as_moco_v1() {
    // MoCo v1's ImageNet code: RandomGrayscale(0.2) then ColorJitter(0.4, 0.4, 0.4, 0.4). With
    // both always on and no crop or flip, the view is jitter(grayscale(image)); the draws are the
    // flip coin, the greyscale coin, the jitter coin, then the jitter's own.
    let img = noise(16, 20, 3, 6);
    let j = ColorJitter { brightness: 0.4, contrast: 0.4, saturation: 0.4, hue: 0.4 };
    let recipe = ViewRecipe {
        jitter: Some(j.clone()),
        jitter_p: 1.0,
        grayscale_p: 1.0,
        grayscale_first: true,
        mean: vec![0.0; 3],
        std: vec![1.0; 3],
        ..Default::default()
    };
    let mut differs = 0;
    for seed in 0..20 {
        let got = augment(img.as_ref(), &recipe, &mut ChaCha8Rng::seed_from_u64(seed));
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        for _ in 0..3 {
            let _: f64 = rng.gen();
        }
        let want = color_jitter(to_grayscale(img.as_ref(), 3).as_ref(), &j, &mut rng);
        assert_eq!(got, want, "seed {seed}");
        // The other order (jitter, then greyscale) gives other images: the test can tell them apart.
        let other = augment(
            img.as_ref(),
            &ViewRecipe { grayscale_first: false, ..recipe.clone() },
            &mut ChaCha8Rng::seed_from_u64(seed),
        );
        differs += usize::from(other != got);
    }
    assert!(differs >= 15, "only {differs} of 20 seeds differ between the two orders");
}

#[test]
fn blur_and_solarize_come_after_the_old_ops_in_the_stream() {
    let img = noise(20, 24, 3, 4);
    let base = base_recipe();
    let with_off =
        ViewRecipe { blur: Some(GaussianBlur { sigma: (0.1, 2.0), p: 0.0 }), solarize_p: 0.0, ..base.clone() };
    let always = ViewRecipe { blur: Some(GaussianBlur { sigma: (1.25, 1.25), p: 1.0 }), ..base.clone() };
    let solar = ViewRecipe { solarize_p: 1.0, ..base.clone() };
    let both = ViewRecipe { solarize_p: 1.0, ..always.clone() };
    for seed in 0..40 {
        let rng = || ChaCha8Rng::seed_from_u64(seed);
        let old = augment(img.as_ref(), &base, &mut rng());
        // Off (p = 0 or None) changes nothing.
        assert_eq!(augment(img.as_ref(), &with_off, &mut rng()), old);
        // On: the same crop/flip/jitter/greyscale result, then blurred / solarized.
        let blurred = gaussian_blur(old.as_ref(), 1.25);
        assert_eq!(augment(img.as_ref(), &always, &mut rng()), blurred);
        assert_eq!(augment(img.as_ref(), &solar, &mut rng()), solarize(old.as_ref(), 128));
        assert_eq!(augment(img.as_ref(), &both, &mut rng()), solarize(blurred.as_ref(), 128));
    }
}

#[test]
fn blur_probability_and_sigma_range_are_respected() {
    let img = noise(16, 16, 3, 5);
    let recipe =
        ViewRecipe { blur: Some(GaussianBlur::moco_v2()), mean: vec![0.0; 3], std: vec![1.0; 3], ..Default::default() };
    let mut blurred = 0;
    for seed in 0..400u64 {
        let out = augment(img.as_ref(), &recipe, &mut ChaCha8Rng::seed_from_u64(seed));
        if out != img {
            blurred += 1;
            // Some sigma in [0.1, 2] explains it.
            let mut rng = ChaCha8Rng::seed_from_u64(seed);
            // flip, jitter, greyscale and blur coins (no crop), then sigma.
            for _ in 0..4 {
                let _coin: f64 = rng.gen();
            }
            let sigma = 0.1 + 1.9 * rng.gen::<f64>();
            assert!((0.1..2.0).contains(&sigma));
            assert_eq!(out, gaussian_blur(img.as_ref(), sigma));
        }
    }
    // p = 0.5 over 400 draws (sigma >= 0.1 always changes noise).
    assert!((160..240).contains(&blurred), "{blurred} of 400 blurred");
}

#[test]
fn blur_and_solarize_on_one_channel() {
    let img = noise(10, 11, 1, 6);
    let r = ViewRecipe {
        blur: Some(GaussianBlur { sigma: (0.5, 0.5), p: 1.0 }),
        solarize_p: 1.0,
        mean: vec![0.0],
        std: vec![1.0],
        ..Default::default()
    };
    let out = augment(img.as_ref(), &r, &mut ChaCha8Rng::seed_from_u64(0));
    assert_eq!((out.height, out.width, out.channels), (10, 11, 1));
    assert_eq!(out, solarize(gaussian_blur(img.as_ref(), 0.5).as_ref(), 128));
}

#[test]
fn resize_shorter_center_crop_sizes() {
    // (h, w, resize, crop) -> the resized size follows torchvision's int(size * long / short).
    for &(h, w, resize, crop) in &[
        (96, 72, 64, 56),
        (72, 96, 64, 64),
        (500, 375, 256, 224),
        (375, 500, 256, 224),
        (64, 64, 72, 64),
        (5, 3, 2, 2),
        (40, 40, 40, 40),
        (10, 30, 8, 8),
    ] {
        let img = noise(h, w, 3, 7);
        let out = resize_shorter_center_crop(img.as_ref(), resize, crop);
        assert_eq!((out.height, out.width, out.channels), (crop, crop, 3), "{h}x{w}");
    }
    // Unchanged size: no resampling, only the crop.
    let img = noise(40, 40, 3, 8);
    assert_eq!(resize_shorter_center_crop(img.as_ref(), 40, 40), img);
}

#[test]
fn resize_shorter_center_crop_by_hand() {
    // 9x13, Resize(6): short side 9 -> 6, long int(6 * 13 / 9) = int(8.67) = 8: 6x8.
    // CenterCrop(5): top = round(0.5) = 0, left = round(1.5) = 2 (half to even).
    let img = pattern(9, 13, 3);
    let out = resize_shorter_center_crop(img.as_ref(), 6, 5);
    let resized = resize_bilinear(img.as_ref(), 6, 8);
    for y in 0..5 {
        for x in 0..5 {
            for c in 0..3 {
                assert_eq!(out.as_ref().at(y, x, c), resized.as_ref().at(y, x + 2, c));
            }
        }
    }
    // Pillow 13: im.resize((8, 6), BILINEAR).crop((2, 0, 7, 5)).
    assert_eq!(out.data, hex("8490b7999e7e726768575e8c679caa918b7a90718f83a292797a645483b898668a96849a9b778e9d6b9261689da66c95906b869f5a757b7a67517588658c5c688e9b6b839e6b7562407588"));
}

#[test]
fn resize_shorter_center_crop_matches_pillow_on_a_photo() {
    let path =
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/image-folder/dog/mastiff_alpha.png");
    let img = unmix_data::folder::decode_image(&path).unwrap();
    assert_eq!((img.height, img.width), (96, 72));
    // Resize(20): 72x96 (w x h) -> 20x26; CenterCrop(16): top round(5) = 5, left round(2) = 2.
    let out = resize_shorter_center_crop(img.as_ref(), 20, 16);
    assert_eq!(out.data, hex("4c623f5f73486074447d6f57b38674dfa789c59e7698a86380955884995e8b996a716b756c6475a19aa6d8d6d2abaaaa4a5c3e4b5c46495841746154ae816ee9ae8ce4b48793a0608597598c9e60889366726c7a736c7fc1babde1ded98d889045543d4c5a47485743726356b1816de4a783e8b3899497608492598d9a5d7f865d6c64728b8594d7d3ced5cfd07571753e4f3740513d3f4d3a6c6154a07363bf866cc88e71907c5b7b805685895d8985696b606aafaaabd6cec9bfb7b8938e7c4d583f4b544048503e5549425a443e976d5abc7e62be8569755c4e51493d676254746c6ec0bbb8dfd6d3aba58c92916170794c676e4c565442403331513f389c725bd89972d2936da9806a493a35706d5c8d8a86948b90d5cdc896946d91905f434f335d673e6666413029225f463a876657a87452a9704d9a7664614f4687857781706dbcabacb9b3a484845a81845535432a39462c4b5234453e2c4d3b3053454173554986625463514954473c43423470574bdcb9ad96887e64694c72784b3341293a462d424732665645705b4c4d3f393f32306953528e72627c74545c5942715c4dceae9f81765f4a4f394a543436432e3f47324a4b3a735d4b644e3e342a25212026564f57866e626f6b4b797854988a7abfaea55d5e41575f38525a353c443541473849493b7d614b8864462d25202724285a4f517f6b61665f434649368a898dc7c3c75b594841462d61643d4043363f433649483b916e51cf9c6c6452403c35356654538e77678980595c59445956589a8d8f92837355553d44472f3b4132383f314043348a6b4fdda36f987151483d398a7474a890749e91658e8461645e45726556a79387898173616448373f2e353e303a3f3164543ea47b5465563d4d473875604c918561988e648d845e857e577a725296866f8a816b726f4d38412d34402d3a3f2f464232806141464331423e2c6e573a5d5c4187825b8078527d775189815c8c7f5e897e59726f49313f2a2b3b27323c2a36392a6a5134534933443e2c896849474733505337716e4a76784f837f567e78507c774c74754a"));
}

#[test]
fn center_crop_rounding_and_padding() {
    let img = Image::new(1, 6, 1, vec![10, 11, 12, 13, 14, 15]);
    // (6 - 3) / 2 = 1.5 -> 2; (6 - 5) / 2 = 0.5 -> 0; (6 - 2) / 2 = 2.
    assert_eq!(center_crop(img.as_ref(), 1, 3).data, vec![12, 13, 14]);
    assert_eq!(center_crop(img.as_ref(), 1, 5).data, vec![10, 11, 12, 13, 14]);
    assert_eq!(center_crop(img.as_ref(), 1, 2).data, vec![12, 13]);
    // Larger than the image: zero padding, (crop - size) // 2 before, the rest after.
    let col = Image::new(2, 1, 1, vec![7, 9]);
    assert_eq!(center_crop(col.as_ref(), 5, 1).data, vec![0, 7, 9, 0, 0]);
    assert_eq!(center_crop(col.as_ref(), 2, 4).data, vec![0, 7, 0, 0, 0, 9, 0, 0]);
}

#[test]
fn resize_center_in_a_recipe_equals_the_function_and_draws_nothing() {
    use rand::SeedableRng;
    let data: Vec<u8> = (0..40 * 60 * 3).map(|i| (i * 7 % 251) as u8).collect();
    let img = unmix_data::Image::new(40, 60, 3, data);
    let recipe =
        ViewRecipe { resize_center: Some((20, 16)), mean: vec![0.0; 3], std: vec![1.0; 3], ..Default::default() };
    let mut a = rand_chacha::ChaCha8Rng::seed_from_u64(1);
    let out = augment(img.as_ref(), &recipe, &mut a);
    assert_eq!((out.height, out.width), (16, 16));
    assert_eq!(out, resize_shorter_center_crop(img.as_ref(), 20, 16));
    assert_eq!(recipe.output_shape(3, 40, 60), (3, 16, 16));
}

#[test]
fn hue_shift_equals_pillow_arithmetic_on_every_colour() {
    // `adjust_hue` runs branch-free vector arithmetic; the reference is the per-pixel Pillow
    // arithmetic of `rgb_to_hsv` and `hsv_to_rgb`, over an image holding all 2^24 colours.
    use unmix_data::augment::{adjust_hue, hsv_to_rgb, rgb_to_hsv};
    let data: Vec<u8> = (0..1u32 << 24).flat_map(|c| [(c >> 16) as u8, (c >> 8) as u8, c as u8]).collect();
    let img = unmix_data::Image::new(4096, 4096, 3, data);
    // Shifts 25, 231, 127, 129, 0 (the HSV round trip alone) and 5.
    for factor in [0.1, -0.1, 0.5, -0.5, 0.003, 0.02] {
        let shift = ((factor * 255.0) as i64).rem_euclid(256) as u8;
        let out = adjust_hue(img.as_ref(), factor);
        let mut differ = 0u64;
        for (p, o) in img.data.chunks_exact(3).zip(out.data.chunks_exact(3)) {
            let (h, s, v) = rgb_to_hsv(p[0], p[1], p[2]);
            let (r, g, b) = hsv_to_rgb(h.wrapping_add(shift), s, v);
            if [r, g, b] != o {
                differ += 1;
            }
        }
        assert_eq!(differ, 0, "hue factor {factor}: {differ} colours differ");
    }
}

/// FNV-1a (64-bit) of a byte string: the checksums below were computed the same way in Python.
fn fnv1a(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325u64, |h, &v| (h ^ v as u64).wrapping_mul(0x0000_0100_0000_01b3))
}

/// Pillow 13.0.0 / torchvision 0.28 on `pattern(300, 257, c)`, images larger than the blocks
/// (16 pixels) of the transposes and the pixel blocks of the colour ops, with crop boxes at odd
/// offsets, down- and upsampling: (op, channels, crop box + output size, factor or radius,
/// FNV-1a of the output bytes). Made by `.venv/bin/python` with
/// `img.crop((l, t, l + w, t + h)).resize((ow, oh), Image.BILINEAR)`,
/// `img.filter(ImageFilter.GaussianBlur(r))`, `F.adjust_saturation`, `F.adjust_hue`, `F.hflip`.
const PIL_LARGE: &[(&str, usize, [usize; 6], f64, u64)] = &[
    ("crop", 3, [13, 7, 211, 240, 224, 224], 0.0, 0xe0c40b27f3846d99),
    ("crop", 3, [0, 0, 300, 257, 224, 224], 0.0, 0xdb6d2f76a4988c45),
    ("crop", 3, [50, 31, 97, 120, 224, 224], 0.0, 0x08f1312b70fc15c8),
    ("crop", 3, [5, 9, 280, 200, 96, 96], 0.0, 0x3377089291928791),
    ("crop", 3, [1, 2, 299, 17, 33, 250], 0.0, 0x758bf52d11e52c27),
    ("blur", 3, [0, 0, 0, 0, 0, 0], 0.3, 0xae476186f084a448),
    ("blur", 3, [0, 0, 0, 0, 0, 0], 1.0, 0x1a0e81c21773af47),
    ("blur", 3, [0, 0, 0, 0, 0, 0], 2.0, 0xf50977e7d8b2405b),
    ("blur", 3, [0, 0, 0, 0, 0, 0], 7.5, 0xea5988c6467ed117),
    ("crop", 1, [13, 7, 211, 240, 224, 224], 0.0, 0xeaffb8401d97dfbb),
    ("crop", 1, [0, 0, 300, 257, 224, 224], 0.0, 0xb4164aae6a9e236d),
    ("crop", 1, [50, 31, 97, 120, 224, 224], 0.0, 0xcb9396841295e054),
    ("crop", 1, [5, 9, 280, 200, 96, 96], 0.0, 0xb0c1db1007e7d3aa),
    ("crop", 1, [1, 2, 299, 17, 33, 250], 0.0, 0xf3180404bad77b39),
    ("blur", 1, [0, 0, 0, 0, 0, 0], 0.3, 0x98dff311c0d2b170),
    ("blur", 1, [0, 0, 0, 0, 0, 0], 1.0, 0x3fc37430e59493ee),
    ("blur", 1, [0, 0, 0, 0, 0, 0], 2.0, 0xbbe88bb9e066ceec),
    ("blur", 1, [0, 0, 0, 0, 0, 0], 7.5, 0xc868bb1022dbb8c0),
    ("saturation", 3, [0, 0, 0, 0, 0, 0], 0.4, 0xeafffad6a2e92001),
    ("saturation", 3, [0, 0, 0, 0, 0, 0], 1.3, 0x242cd38a901f2c57),
    ("hue", 3, [0, 0, 0, 0, 0, 0], 0.1, 0x61ef083664e736b2),
    ("hue", 3, [0, 0, 0, 0, 0, 0], -0.07, 0xcb8d1e8c2655c458),
    ("flip", 3, [0, 0, 0, 0, 0, 0], 0.0, 0xc0bc48ae883a6ef6),
];

#[test]
fn large_images_match_pillow_bit_for_bit() {
    use unmix_data::augment::{adjust_hue, adjust_saturation, hflip, resized_crop};
    let mut failed = Vec::new();
    for &(op, c, [t, l, h, w, oh, ow], f, expected) in PIL_LARGE {
        let img = pattern(300, 257, c);
        let out = match op {
            "crop" => resized_crop(img.as_ref(), t, l, h, w, oh, ow),
            "blur" => gaussian_blur(img.as_ref(), f),
            "saturation" => adjust_saturation(img.as_ref(), f),
            "hue" => adjust_hue(img.as_ref(), f),
            "flip" => hflip(img.as_ref()),
            _ => unreachable!(),
        };
        if fnv1a(&out.data) != expected {
            failed.push(format!("{op} {c} channels {:?} {f}", [t, l, h, w, oh, ow]));
        }
    }
    assert!(failed.is_empty(), "outputs differ from Pillow's: {failed:#?}");
}
