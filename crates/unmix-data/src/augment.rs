//! u8 image augmentations with the semantics of torchvision's transforms on PIL images, which is
//! what the official PyTorch Un-Mix code runs: `RandomResizedCrop`, `RandomHorizontalFlip`,
//! `RandomApply([ColorJitter])`, `RandomGrayscale`, then `ToTensor` + `Normalize`; plus the
//! MoCo v2 / BYOL additions `RandomApply([GaussianBlur])` (PIL `ImageFilter.GaussianBlur`) and
//! `RandomSolarize` (PIL `ImageOps.solarize`), and `Resize` + `CenterCrop` for evaluation.
//!
//! The pixel arithmetic follows Pillow's C code (libImaging) rather than an idealised formula, so
//! that outputs match Pillow bit for bit where that is practical:
//! * resizing: `Resample.c` BILINEAR, separable, horizontal pass first, coefficients in 22-bit
//!   fixed point, each pass rounded and clamped to u8;
//! * brightness / contrast / saturation: `ImageEnhance` = `Image.blend(degenerate, img, factor)`,
//!   computed in `f32` and truncated (`Blend.c`);
//! * greyscale: `Convert.c` `L24`: `(R*19595 + G*38470 + B*7471 + 0x8000) >> 16`;
//! * hue: `Convert.c` `rgb2hsv` / `hsv2rgb` (u8 HSV) with the hue byte shifted with wraparound;
//! * Gaussian blur: `BoxBlur.c` `ImagingGaussianBlur`: three box blurs of an extended (fractional)
//!   radius per direction, horizontal first, 24-bit fixed-point weights, edges extended.
//!
//! Only the random draws differ from torchvision (they come from our own `rand` generators).

use rand::Rng;

use crate::image::{Image, ImageRef};

/// torchvision `RandomResizedCrop(size, scale, ratio)` with bilinear interpolation.
#[derive(Clone, Debug, PartialEq)]
pub struct RandomResizedCrop {
    /// Output (height, width).
    pub size: (usize, usize),
    pub scale: (f64, f64),
    pub ratio: (f64, f64),
}

impl RandomResizedCrop {
    /// torchvision's defaults: scale (0.08, 1), ratio (3/4, 4/3).
    pub fn new(height: usize, width: usize) -> Self {
        RandomResizedCrop {
            size: (height, width),
            scale: (0.08, 1.0),
            ratio: (3.0 / 4.0, 4.0 / 3.0),
        }
    }
}

/// torchvision `ColorJitter(brightness, contrast, saturation, hue)`; a parameter of 0 skips that op.
#[derive(Clone, Debug, PartialEq)]
pub struct ColorJitter {
    pub brightness: f64,
    pub contrast: f64,
    pub saturation: f64,
    pub hue: f64,
}

/// `RandomApply([GaussianBlur(sigma)], p)` of MoCo v2 / SimCLR / BYOL: with probability `p`,
/// `sigma ~ U(sigma.0, sigma.1)` and the image is filtered with PIL
/// `ImageFilter.GaussianBlur(radius=sigma)`, reproduced exactly by [`gaussian_blur`] (Pillow's
/// box-blur approximation of a Gaussian, not a sampled Gaussian kernel).
#[derive(Clone, Debug, PartialEq)]
pub struct GaussianBlur {
    pub sigma: (f64, f64),
    pub p: f64,
}

impl GaussianBlur {
    /// MoCo v2: `RandomApply([GaussianBlur([.1, 2.])], p=0.5)`.
    pub fn moco_v2() -> Self {
        GaussianBlur {
            sigma: (0.1, 2.0),
            p: 0.5,
        }
    }
}

/// The augmentation recipe of one view.
///
/// `Default` is the identity (no crop, no random op) with empty `mean` / `std`, for
/// `ViewRecipe { crop: ..., mean, std, ..Default::default() }`.
#[derive(Clone, Debug, PartialEq, Default)]
pub struct ViewRecipe {
    /// Evaluation of variable-size images: `Resize(.0)` of the shorter side then `CenterCrop(.1)`,
    /// before anything else (draws nothing).
    pub resize_center: Option<(usize, usize)>,
    /// `None`: the image is kept at its size.
    pub crop: Option<RandomResizedCrop>,
    pub hflip_p: f64,
    /// `RandomApply([ColorJitter], p = jitter_p)`.
    pub jitter: Option<ColorJitter>,
    pub jitter_p: f64,
    /// `RandomGrayscale(p)`; acts on 3-channel images only, the output keeps 3 channels.
    pub grayscale_p: f64,
    /// `RandomApply([GaussianBlur])`; `None`: never blurred.
    pub blur: Option<GaussianBlur>,
    /// `RandomSolarize(threshold=128, p)` (BYOL): values >= 128 become `255 - v`.
    pub solarize_p: f64,
    /// One per channel.
    pub mean: Vec<f32>,
    pub std: Vec<f32>,
}

impl ViewRecipe {
    /// No augmentation, normalization only.
    pub fn eval(mean: Vec<f32>, std: Vec<f32>) -> Self {
        ViewRecipe {
            resize_center: None,
            crop: None,
            hflip_p: 0.0,
            jitter: None,
            jitter_p: 0.0,
            grayscale_p: 0.0,
            blur: None,
            solarize_p: 0.0,
            mean,
            std,
        }
    }

    /// Output (channels, height, width) of this recipe for an input of the given shape.
    pub fn output_shape(
        &self,
        channels: usize,
        height: usize,
        width: usize,
    ) -> (usize, usize, usize) {
        match (&self.crop, self.resize_center) {
            (Some(c), _) => (channels, c.size.0, c.size.1),
            (None, Some((_, crop))) => (channels, crop, crop),
            (None, None) => (channels, height, width),
        }
    }
}

/// `a + (b - a) * U[0, 1)`, like `torch.empty(1).uniform_(a, b)`; valid for `a == b`.
#[inline]
fn uniform(rng: &mut impl Rng, a: f64, b: f64) -> f64 {
    a + (b - a) * rng.gen::<f64>()
}

/// `torch.rand(1) < p`.
#[inline]
fn coin(rng: &mut impl Rng, p: f64) -> bool {
    rng.gen::<f64>() < p
}

/// Applies, in BYOL's torchvision order (MoCo v2 applies the flip last instead): RandomResizedCrop,
/// horizontal flip, RandomApply(ColorJitter), RandomGrayscale, RandomApply(GaussianBlur),
/// RandomSolarize. Returns the u8 image (normalization is separate, see [`normalize_into`]).
///
/// Random draws, in order: the crop box (if `crop`), the flip coin, the jitter coin, (if
/// jittering) the op permutation and the factors, the greyscale coin, the blur coin, (if
/// blurring) sigma, the solarize coin. Coins are drawn even when their probability is 0 or 1
/// (a `None` blur counts as p = 0), so the stream layout does not depend on the recipe's values;
/// the blur and solarize draws come after all the others, so recipes without them give the same
/// images as before those ops existed.
pub fn augment(img: ImageRef, recipe: &ViewRecipe, rng: &mut impl Rng) -> Image {
    let resized;
    let img = match recipe.resize_center {
        Some((resize, crop)) => {
            resized = resize_shorter_center_crop(img, resize, crop);
            resized.as_ref()
        }
        None => img,
    };
    let mut out = match &recipe.crop {
        Some(c) => {
            let (top, left, h, w) = rrc_params(img.height, img.width, c.scale, c.ratio, rng);
            resized_crop(img, top, left, h, w, c.size.0, c.size.1)
        }
        None => img.to_owned(),
    };
    if coin(rng, recipe.hflip_p) {
        out = hflip(out.as_ref());
    }
    let apply_jitter = coin(rng, recipe.jitter_p);
    if let (true, Some(j)) = (apply_jitter, &recipe.jitter) {
        out = color_jitter(out.as_ref(), j, rng);
    }
    if coin(rng, recipe.grayscale_p) && out.channels == 3 {
        out = to_grayscale(out.as_ref(), 3);
    }
    let blur_p = recipe.blur.as_ref().map_or(0.0, |b| b.p);
    if let (true, Some(b)) = (coin(rng, blur_p), &recipe.blur) {
        // MoCo v2's GaussianBlur: sigma = random.uniform(sigma[0], sigma[1]).
        let sigma = uniform(rng, b.sigma.0, b.sigma.1);
        out = gaussian_blur(out.as_ref(), sigma);
    }
    if coin(rng, recipe.solarize_p) {
        out = solarize(out.as_ref(), 128);
    }
    out
}

/// torchvision `ColorJitter.forward`: draws a permutation of the four ops and the factors of the
/// enabled ones, then applies them in the permuted order.
pub fn color_jitter(img: ImageRef, j: &ColorJitter, rng: &mut impl Rng) -> Image {
    let mut order = [0usize, 1, 2, 3];
    for i in (1..4).rev() {
        let k = rng.gen_range(0..=i);
        order.swap(i, k);
    }
    fn factor(rng: &mut impl Rng, x: f64) -> Option<f64> {
        (x > 0.0).then(|| uniform(rng, (1.0 - x).max(0.0), 1.0 + x))
    }
    let b = factor(rng, j.brightness);
    let c = factor(rng, j.contrast);
    let s = factor(rng, j.saturation);
    let h = (j.hue > 0.0).then(|| uniform(rng, -j.hue, j.hue));
    let mut out = img.to_owned();
    for op in order {
        out = match (op, b, c, s, h) {
            (0, Some(f), ..) => adjust_brightness(out.as_ref(), f),
            (1, _, Some(f), ..) => adjust_contrast(out.as_ref(), f),
            (2, _, _, Some(f), _) => adjust_saturation(out.as_ref(), f),
            (3, .., Some(f)) => adjust_hue(out.as_ref(), f),
            _ => continue,
        };
    }
    out
}

/// torchvision `RandomResizedCrop.get_params`: `(top, left, h, w)` of the crop box.
pub fn rrc_params(
    height: usize,
    width: usize,
    scale: (f64, f64),
    ratio: (f64, f64),
    rng: &mut impl Rng,
) -> (usize, usize, usize, usize) {
    let area = (height * width) as f64;
    let (log_r0, log_r1) = (ratio.0.ln(), ratio.1.ln());
    for _ in 0..10 {
        let target_area = area * uniform(rng, scale.0, scale.1);
        let aspect = uniform(rng, log_r0, log_r1).exp();
        // Python's round(): half to even.
        let w = (target_area * aspect).sqrt().round_ties_even();
        let h = (target_area / aspect).sqrt().round_ties_even();
        if w > 0.0 && w <= width as f64 && h > 0.0 && h <= height as f64 {
            let (w, h) = (w as usize, h as usize);
            let top = rng.gen_range(0..=height - h);
            let left = rng.gen_range(0..=width - w);
            return (top, left, h, w);
        }
    }
    // Fallback: central crop, aspect ratio clamped to the range.
    let in_ratio = width as f64 / height as f64;
    let (lo, hi) = (ratio.0.min(ratio.1), ratio.0.max(ratio.1));
    let (h, w) = if in_ratio < lo {
        (((width as f64) / lo).round_ties_even() as usize, width)
    } else if in_ratio > hi {
        (height, ((height as f64) * hi).round_ties_even() as usize)
    } else {
        (height, width)
    };
    let (h, w) = (h.clamp(1, height.max(1)), w.clamp(1, width.max(1)));
    ((height - h) / 2, (width - w) / 2, h, w)
}

// ------------------------------------------------------------------------------------------------
// Resampling (Pillow Resample.c, BILINEAR, 8 bits per channel)

const PRECISION_BITS: u32 = 32 - 8 - 2;

/// Fixed-point filter taps of one resampling pass.
struct Taps {
    ksize: usize,
    /// Per output position: first input index and number of taps.
    bounds: Vec<(usize, usize)>,
    coeffs: Vec<i32>,
}

#[inline]
fn bilinear_filter(x: f64) -> f64 {
    let x = x.abs();
    if x < 1.0 {
        1.0 - x
    } else {
        0.0
    }
}

/// Pillow's `precompute_coeffs` (support 1, the triangle filter) + `normalize_coeffs_8bpc`, for
/// the input range `[0, in_size)` resampled to `out_size`.
fn precompute_taps(in_size: usize, out_size: usize) -> Taps {
    let scale = in_size as f64 / out_size as f64;
    let filterscale = scale.max(1.0);
    let support = filterscale; // bilinear support (1.0) * filterscale
    let ksize = support.ceil() as usize * 2 + 1;
    let ss = 1.0 / filterscale;
    let mut bounds = Vec::with_capacity(out_size);
    let mut coeffs = vec![0i32; out_size * ksize];
    let mut k = vec![0f64; ksize];
    for xx in 0..out_size {
        let center = (xx as f64 + 0.5) * scale;
        // C `(int)` truncates toward zero; negatives are clamped to 0 anyway.
        let xmin = ((center - support + 0.5) as i64).max(0) as usize;
        let xmax = ((center + support + 0.5) as i64).min(in_size as i64) as usize;
        let n = xmax.saturating_sub(xmin).min(ksize);
        let mut ww = 0.0;
        for (x, kx) in k.iter_mut().enumerate().take(n) {
            let w = bilinear_filter((x as f64 + xmin as f64 - center + 0.5) * ss);
            *kx = w;
            ww += w;
        }
        let row = &mut coeffs[xx * ksize..(xx + 1) * ksize];
        for x in 0..n {
            let v = if ww != 0.0 { k[x] / ww } else { k[x] };
            let f = v * (1u32 << PRECISION_BITS) as f64;
            row[x] = if v < 0.0 {
                (-0.5 + f) as i32
            } else {
                (0.5 + f) as i32
            };
        }
        bounds.push((xmin, n));
    }
    Taps {
        ksize,
        bounds,
        coeffs,
    }
}

#[inline]
fn clip8(v: i32) -> u8 {
    // Pillow's clip8 on its INT32 sums: the taps are non-negative and sum to 1 << PRECISION_BITS,
    // so a sum of u8 * tap stays below 2^31.
    if v >= (1i32 << PRECISION_BITS << 8) {
        255
    } else if v <= 0 {
        0
    } else {
        (v >> PRECISION_BITS) as u8
    }
}

/// One row of Pillow's horizontal pass (`ImagingResampleHorizontal_8bpc`) for `C` channels.
#[inline(always)]
fn horizontal_row<const C: usize>(src: &[u8], dst: &mut [u8], taps: &Taps) {
    for (xx, (&(xmin, n), out)) in taps.bounds.iter().zip(dst.chunks_exact_mut(C)).enumerate() {
        let k = &taps.coeffs[xx * taps.ksize..xx * taps.ksize + n];
        let px = &src[xmin * C..(xmin + n) * C];
        let mut ss = [1i32 << (PRECISION_BITS - 1); C];
        for (p, &kx) in px.chunks_exact(C).zip(k) {
            for ch in 0..C {
                ss[ch] += p[ch] as i32 * kx;
            }
        }
        for ch in 0..C {
            out[ch] = clip8(ss[ch]);
        }
    }
}

/// Pillow's vertical pass for one output row: `acc` is a scratch row of the same length.
#[inline(always)]
fn vertical_row(rows: &[u8], row: usize, k: &[i32], acc: &mut [i32], dst: &mut [u8]) {
    acc.fill(1i32 << (PRECISION_BITS - 1));
    for (src, &ky) in rows.chunks_exact(row).zip(k) {
        for (a, &v) in acc.iter_mut().zip(src) {
            *a += v as i32 * ky;
        }
    }
    for (d, &a) in dst.iter_mut().zip(acc.iter()) {
        *d = clip8(a);
    }
}

/// PIL `img.crop((left, top, left + w, top + h)).resize((out_w, out_h), BILINEAR)`.
///
/// The crop box must lie inside the image. Resampling reads only pixels of the box, so this is
/// exactly crop-then-resize.
pub fn resized_crop(
    img: ImageRef,
    top: usize,
    left: usize,
    h: usize,
    w: usize,
    out_h: usize,
    out_w: usize,
) -> Image {
    // The same integer arithmetic either way; with AVX2 the compiler vectorizes the passes
    // 8 lanes wide (the portable build targets SSE2).
    #[cfg(target_arch = "x86_64")]
    if std::arch::is_x86_feature_detected!("avx2") {
        // SAFETY: the CPU has AVX2 (checked just above).
        return unsafe { resized_crop_avx2(img, top, left, h, w, out_h, out_w) };
    }
    resized_crop_body(img, top, left, h, w, out_h, out_w)
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
unsafe fn resized_crop_avx2(img: ImageRef, top: usize, left: usize, h: usize, w: usize, out_h: usize, out_w: usize) -> Image {
    resized_crop_body(img, top, left, h, w, out_h, out_w)
}

#[inline(always)]
fn resized_crop_body(img: ImageRef, top: usize, left: usize, h: usize, w: usize, out_h: usize, out_w: usize) -> Image {
    assert!(
        top + h <= img.height && left + w <= img.width,
        "crop box outside the image"
    );
    assert!(
        h > 0 && w > 0 && out_h > 0 && out_w > 0,
        "empty crop or output"
    );
    let c = img.channels;
    let stride = img.width * c;

    // Horizontal pass (Pillow runs it first) over the rows of the box: h x out_w.
    let temp: Vec<u8> = if out_w != w {
        let taps = precompute_taps(w, out_w);
        let mut temp = vec![0u8; h * out_w * c];
        for y in 0..h {
            let src = &img.data[(top + y) * stride + left * c..(top + y) * stride + (left + w) * c];
            let dst = &mut temp[y * out_w * c..(y + 1) * out_w * c];
            match c {
                1 => horizontal_row::<1>(src, dst, &taps),
                3 => horizontal_row::<3>(src, dst, &taps),
                4 => horizontal_row::<4>(src, dst, &taps),
                _ => {
                    for (xx, &(xmin, n)) in taps.bounds.iter().enumerate() {
                        let k = &taps.coeffs[xx * taps.ksize..xx * taps.ksize + n];
                        for ch in 0..c {
                            let mut ss = 1i32 << (PRECISION_BITS - 1);
                            for (x, &kx) in k.iter().enumerate() {
                                ss += src[(xmin + x) * c + ch] as i32 * kx;
                            }
                            dst[xx * c + ch] = clip8(ss);
                        }
                    }
                }
            }
        }
        temp
    } else {
        let mut temp = Vec::with_capacity(h * w * c);
        for y in 0..h {
            temp.extend_from_slice(
                &img.data[(top + y) * stride + left * c..(top + y) * stride + (left + w) * c],
            );
        }
        temp
    };

    // Vertical pass: out_h x out_w.
    if out_h == h {
        return Image::new(out_h, out_w, c, temp);
    }
    let taps = precompute_taps(h, out_h);
    let row = out_w * c;
    let mut out = vec![0u8; out_h * row];
    let mut acc = vec![0i32; row];
    for (yy, (&(ymin, n), dst)) in taps.bounds.iter().zip(out.chunks_exact_mut(row)).enumerate() {
        let k = &taps.coeffs[yy * taps.ksize..yy * taps.ksize + n];
        vertical_row(&temp[ymin * row..(ymin + n) * row], row, k, &mut acc, dst);
    }
    Image::new(out_h, out_w, c, out)
}

/// PIL `img.resize((out_w, out_h), BILINEAR)`.
pub fn resize_bilinear(img: ImageRef, out_h: usize, out_w: usize) -> Image {
    resized_crop(img, 0, 0, img.height, img.width, out_h, out_w)
}

// ------------------------------------------------------------------------------------------------
// Geometry and colour

/// Mirror left-right.
pub fn hflip(img: ImageRef) -> Image {
    let c = img.channels;
    let mut out = Vec::with_capacity(img.data.len());
    for y in 0..img.height {
        let row = &img.data[y * img.width * c..(y + 1) * img.width * c];
        for px in row.chunks_exact(c).rev() {
            out.extend_from_slice(px);
        }
    }
    Image::new(img.height, img.width, c, out)
}

/// Pillow `ImagingBlend(degenerate, img, alpha)` for one value: `f32` arithmetic, truncated,
/// clipped when extrapolating.
#[inline]
fn blend(degenerate: u8, v: u8, alpha: f32) -> u8 {
    let t = degenerate as f32 + alpha * (v as i32 - degenerate as i32) as f32;
    if t <= 0.0 {
        0
    } else if t >= 255.0 {
        255
    } else {
        t as u8
    }
}

/// Pillow's RGB -> L (`L24` in Convert.c).
#[inline]
pub fn luma(r: u8, g: u8, b: u8) -> u8 {
    ((r as u32 * 19595 + g as u32 * 38470 + b as u32 * 7471 + 0x8000) >> 16) as u8
}

/// The image's greyscale (`L`) plane: itself for 1 channel.
fn luma_plane(img: ImageRef) -> Vec<u8> {
    match img.channels {
        1 => img.data.to_vec(),
        3 => img
            .data
            .chunks_exact(3)
            .map(|p| luma(p[0], p[1], p[2]))
            .collect(),
        c => panic!("unsupported channel count {c}"),
    }
}

/// `blend(degenerate, v, alpha)` for every byte `v`: one image's whole map, applied by lookup.
fn blend_table(degenerate: u8, alpha: f32) -> [u8; 256] {
    let mut t = [0u8; 256];
    for (v, o) in t.iter_mut().enumerate() {
        *o = blend(degenerate, v as u8, alpha);
    }
    t
}

/// `ImageEnhance.Brightness(img).enhance(factor)`: blend with black.
pub fn adjust_brightness(img: ImageRef, factor: f64) -> Image {
    let t = blend_table(0, factor as f32);
    let data = img.data.iter().map(|&v| t[v as usize]).collect();
    Image::new(img.height, img.width, img.channels, data)
}

/// `ImageEnhance.Contrast(img).enhance(factor)`: blend with the uniform grey
/// `int(mean(L) + 0.5)`.
pub fn adjust_contrast(img: ImageRef, factor: f64) -> Image {
    let l = luma_plane(img);
    let sum: u64 = l.iter().map(|&v| v as u64).sum();
    let mean = if l.is_empty() {
        0.0
    } else {
        sum as f64 / l.len() as f64
    };
    let t = blend_table((mean + 0.5) as u8, factor as f32);
    let data = img.data.iter().map(|&v| t[v as usize]).collect();
    Image::new(img.height, img.width, img.channels, data)
}

/// `ImageEnhance.Color(img).enhance(factor)`: blend with the greyscale version. Identity for 1
/// channel.
pub fn adjust_saturation(img: ImageRef, factor: f64) -> Image {
    if img.channels != 3 {
        return img.to_owned();
    }
    let a = factor as f32;
    let mut data = Vec::with_capacity(img.data.len());
    for p in img.data.chunks_exact(3) {
        let l = luma(p[0], p[1], p[2]);
        data.extend(p.iter().map(|&v| blend(l, v, a)));
    }
    Image::new(img.height, img.width, 3, data)
}

/// Pillow `rgb2hsv_row`: u8 (h, s, v), reproducing its float/double arithmetic.
pub fn rgb_to_hsv(r: u8, g: u8, b: u8) -> (u8, u8, u8) {
    let maxc = r.max(g).max(b);
    let minc = r.min(g).min(b);
    if maxc == minc {
        return (0, 0, maxc);
    }
    let cr = (maxc - minc) as f32;
    let rc = (maxc - r) as f32 / cr;
    let gc = (maxc - g) as f32 / cr;
    let bc = (maxc - b) as f32 / cr;
    let h: f32 = if r == maxc {
        bc - gc
    } else if g == maxc {
        (2.0 + rc as f64 - bc as f64) as f32
    } else {
        (4.0 + gc as f64 - rc as f64) as f32
    };
    // fmod(h / 6 + 1, 1) with h in [-1, 5): the sum is in [5/6, 11/6), where subtracting 1 is
    // exact, so this equals the C fmod bit for bit without its cost.
    let t = h as f64 / 6.0 + 1.0;
    let h = (if t >= 1.0 { t - 1.0 } else { t }) as f32;
    (((h as f64 * 255.0) as i32).clamp(0, 255) as u8, saturation_u8(maxc, maxc - minc), maxc)
}

/// [`rgb_to_hsv`] from tables: the hue depends only on which channel is largest, which smallest,
/// the range `cr = max - min` and the middle channel's distance to the max, so it is looked up
/// from a table computed once with [`rgb_to_hsv`] itself (equality over all 2^24 colours is a
/// test); the saturation from a (max, range) table.
#[inline]
pub fn rgb_to_hsv_fast(r: u8, g: u8, b: u8) -> (u8, u8, u8) {
    static HUE: std::sync::OnceLock<Vec<u8>> = std::sync::OnceLock::new();
    let maxc = r.max(g).max(b);
    let minc = r.min(g).min(b);
    if maxc == minc {
        return (0, 0, maxc);
    }
    let cr = maxc - minc;
    // Case k: (max channel, min channel) = (r, b), (r, g), (g, b), (g, r), (b, g), (b, r), taking
    // the first maximum as the C code does; x = max - middle.
    let (k, x) = if r == maxc {
        if b == minc { (0, maxc - g) } else { (1, maxc - b) }
    } else if g == maxc {
        if b == minc { (2, maxc - r) } else { (3, maxc - b) }
    } else if g == minc {
        (4, maxc - r)
    } else {
        (5, maxc - g)
    };
    let table = HUE.get_or_init(|| {
        let mut t = vec![0u8; 6 * 256 * 256];
        for cr in 1..256usize {
            for x in 0..=cr {
                let (m, mid) = (cr as u8, (cr - x) as u8);
                // Colours with max = cr, min = 0 and the middle channel at cr - x, per case.
                let colours = [(m, mid, 0), (m, 0, mid), (mid, m, 0), (0, m, mid), (mid, 0, m), (0, mid, m)];
                for (k, (r, g, b)) in colours.into_iter().enumerate() {
                    t[(k * 256 + cr) * 256 + x] = rgb_to_hsv(r, g, b).0;
                }
            }
        }
        t
    });
    (table[(k * 256 + cr as usize) * 256 + x as usize], saturation_u8(maxc, cr), maxc)
}

/// `CLIP8((int)((float)cr / (float)maxc * 255.0))` of `rgb2hsv_row`, from a table built once.
fn saturation_u8(maxc: u8, cr: u8) -> u8 {
    static TABLE: std::sync::OnceLock<Vec<u8>> = std::sync::OnceLock::new();
    let t = TABLE.get_or_init(|| {
        let mut t = vec![0u8; 256 * 256];
        for m in 1..256usize {
            for c in 0..=m {
                let s = c as f32 / m as f32;
                t[m * 256 + c] = ((s as f64 * 255.0) as i32).clamp(0, 255) as u8;
            }
        }
        t
    });
    t[maxc as usize * 256 + cr as usize]
}

/// The parts of Pillow's `hsv2rgb` that depend on h or s alone: the sector `i` and fraction `f`
/// of h, and `fs` of s (C float values), so the per-pixel work is a few multiplications.
struct HsvTables {
    sector: [u8; 256],
    f: [f32; 256],
    fs: [f32; 256],
}

fn hsv_tables() -> &'static HsvTables {
    static TABLES: std::sync::OnceLock<HsvTables> = std::sync::OnceLock::new();
    TABLES.get_or_init(|| {
        let (mut sector, mut f, mut fs) = ([0u8; 256], [0f32; 256], [0f32; 256]);
        for h in 0..256usize {
            let hh = h as f32 as f64 * 6.0 / 255.0;
            let i = hh.floor() as i32;
            sector[h] = (i % 6) as u8;
            f[h] = (hh - i as f32 as f64) as f32;
            fs[h] = (h as f32 as f64 / 255.0) as f32;
        }
        HsvTables { sector, f, fs }
    })
}

/// C `round()` (half away from zero) of a value well inside the `i32` range, without the libm
/// call `f64::round` becomes on baseline x86-64: truncation and the exact fractional part.
#[inline]
fn round_half_away(x: f64) -> i32 {
    let i = x as i32;
    let frac = x - i as f64;
    // Branch-free: the comparisons are unpredictable on photos.
    i + (frac >= 0.5) as i32 - (frac <= -0.5) as i32
}

/// Pillow `hsv2rgb` for u8 (h, s, v).
pub fn hsv_to_rgb(h: u8, s: u8, v: u8) -> (u8, u8, u8) {
    if s == 0 {
        return (v, v, v);
    }
    let tab = hsv_tables();
    let vf = v as f32 as f64;
    let clip = |x: f64| round_half_away(x).clamp(0, 255) as u8;
    let (f, fs) = (tab.f[h as usize], tab.fs[s as usize]);
    let p = clip(vf * (1.0 - fs as f64));
    let q = clip(vf * (1.0 - (fs * f) as f64));
    let t = clip(vf * (1.0 - fs as f64 * (1.0 - f as f64)));
    // Sector -> which of (v, t, p, q) goes to r, g, b; a lookup instead of a 6-way branch.
    const PICK: [[usize; 3]; 6] = [[0, 1, 2], [3, 0, 2], [2, 0, 1], [2, 3, 0], [1, 2, 0], [0, 2, 3]];
    let vals = [v, t, p, q];
    let [a, b, c] = PICK[tab.sector[h as usize] as usize];
    (vals[a], vals[b], vals[c])
}

/// torchvision `F_pil.adjust_hue`: RGB -> u8 HSV, `h += uint8(hue_factor * 255)` with
/// wraparound, -> RGB. Identity for 1-channel images and for `hue_factor == 0` (torchvision would
/// still round-trip through HSV, which is slightly lossy; `ColorJitter` never calls it with 0).
pub fn adjust_hue(img: ImageRef, hue_factor: f64) -> Image {
    assert!(
        (-0.5..=0.5).contains(&hue_factor),
        "hue_factor {hue_factor} is not in [-0.5, 0.5]"
    );
    if img.channels != 3 || hue_factor == 0.0 {
        return img.to_owned();
    }
    // numpy's float -> uint8 cast: truncation toward zero, then modulo 256.
    let shift = ((hue_factor * 255.0) as i64).rem_euclid(256) as u8;
    let mut data = vec![0u8; img.data.len()];
    for (o, p) in data.chunks_exact_mut(3).zip(img.data.chunks_exact(3)) {
        let (h, s, v) = rgb_to_hsv_fast(p[0], p[1], p[2]);
        let (r, g, b) = hsv_to_rgb(h.wrapping_add(shift), s, v);
        o.copy_from_slice(&[r, g, b]);
    }
    Image::new(img.height, img.width, 3, data)
}

/// torchvision `F.rgb_to_grayscale` on PIL (`img.convert("L")`, replicated to `out_channels`,
/// which is 1 or 3). A 1-channel input is already greyscale.
pub fn to_grayscale(img: ImageRef, out_channels: usize) -> Image {
    assert!(
        out_channels == 1 || out_channels == 3,
        "out_channels must be 1 or 3"
    );
    let l = luma_plane(img);
    let data = if out_channels == 1 {
        l
    } else {
        l.iter().flat_map(|&v| [v, v, v]).collect()
    };
    Image::new(img.height, img.width, out_channels, data)
}

/// `ToTensor` + `Normalize`: `(x / 255 - mean[c]) / std[c]` in `f32`, written CHW (planar) into
/// `out` (`len = C * H * W`).
pub fn normalize_into(img: ImageRef, mean: &[f32], std: &[f32], out: &mut [f32]) {
    let c = img.channels;
    let hw = img.height * img.width;
    assert_eq!(mean.len(), c, "one mean per channel");
    assert_eq!(std.len(), c, "one std per channel");
    assert_eq!(out.len(), c * hw, "output buffer size");
    for ch in 0..c {
        let (m, s) = (mean[ch], std[ch]);
        let plane = &mut out[ch * hw..(ch + 1) * hw];
        for (o, &v) in plane.iter_mut().zip(img.data.iter().skip(ch).step_by(c)) {
            *o = (v as f32 / 255.0 - m) / s;
        }
    }
}

// ------------------------------------------------------------------------------------------------
// Gaussian blur (Pillow BoxBlur.c), solarization

/// Pillow `_gaussian_blur_radius`: the extended box radius whose `passes` box blurs have the
/// variance of a Gaussian of standard deviation `radius` (Gwosdek et al., SSVM 2011), computed in
/// C `float` with the `double` constants where the C code has them.
fn gaussian_box_radius(radius: f32, passes: u32) -> f32 {
    let sigma2 = radius * radius / passes as f32;
    let big_l = (12.0 * sigma2 as f64 + 1.0).sqrt() as f32; // [7] box length
    let l = ((big_l as f64 - 1.0) / 2.0).floor() as f32; // [11] integer part of the radius
    let mut a = (2.0 * l + 1.0) * (l * (l + 1.0) - 3.0 * sigma2); // [14] fractional part
    a /= 6.0 * (sigma2 - (l + 1.0) * (l + 1.0));
    l + a
}

/// One Pillow box-blur pass (`ImagingLineBoxBlur8`) along the columns of a `(lines, row)` u8 array
/// (`row` values per line), every column at once so the compiler vectorizes it: a box of
/// `2 * radius + 1` values weighted `ww` plus the two next values weighted `fw` (the fractional
/// radius), edges extended, 24-bit fixed point. Pillow's three ranges of the line loop amount to
/// clamped indices, which is what this uses; the result is the same bit for bit (tests compare
/// with Pillow's output).
fn column_box_blur_pass(src: &[u8], dst: &mut [u8], lines: usize, row: usize, float_radius: f32) {
    let radius = float_radius as usize; // C (int) truncation
    let ww = ((1u32 << 24) as f32 / (float_radius * 2.0 + 1.0)) as u32;
    let fw = ((1u32 << 24) - (radius as u32 * 2 + 1) * ww) / 2;
    let last = lines as isize - 1;
    let at = |j: isize| j.clamp(0, last) as usize * row;
    // The sum for position -1: lines -radius-1 .. radius-1, clamped.
    let mut acc = vec![0u32; row];
    for j in -(radius as isize) - 1..radius as isize {
        let r = &src[at(j)..at(j) + row];
        for (a, &v) in acc.iter_mut().zip(r) {
            *a += v as u32;
        }
    }
    for y in 0..lines as isize {
        let (add, sub, right) = (at(y + radius as isize), at(y - radius as isize - 1), at(y + radius as isize + 1));
        let (add, sub, right) = (&src[add..add + row], &src[sub..sub + row], &src[right..right + row]);
        let out = &mut dst[y as usize * row..(y as usize + 1) * row];
        for i in 0..row {
            // UINT32 arithmetic as in C (the true values fit).
            acc[i] = acc[i].wrapping_add(add[i] as u32).wrapping_sub(sub[i] as u32);
            let bulk = acc[i].wrapping_mul(ww).wrapping_add((sub[i] as u32 + right[i] as u32).wrapping_mul(fw));
            out[i] = (bulk.wrapping_add(1 << 23) >> 24) as u8;
        }
    }
}

/// `(h, w, c)` -> `(w, h, c)`.
fn transpose_hwc(src: &[u8], h: usize, w: usize, c: usize) -> Vec<u8> {
    let mut out = vec![0u8; src.len()];
    for y in 0..h {
        for x in 0..w {
            let (s, d) = ((y * w + x) * c, (x * h + y) * c);
            out[d..d + c].copy_from_slice(&src[s..s + c]);
        }
    }
    out
}

/// Pillow `ImagingBoxBlur(img, xradius, yradius, passes)`: `passes` horizontal box blurs, then
/// `passes` vertical ones; a radius of 0 skips its direction. Horizontal passes run as column
/// passes on the transposed image, as Pillow itself transposes for the vertical ones.
pub fn box_blur(img: ImageRef, xradius: f32, yradius: f32, passes: usize) -> Image {
    assert!(
        xradius >= 0.0 && yradius >= 0.0,
        "box blur radius must be >= 0"
    );
    let mut out = img.to_owned();
    let (h, w, c) = (img.height, img.width, img.channels);
    if h == 0 || w == 0 {
        return out;
    }
    let mut scratch = vec![0u8; out.data.len()];
    if xradius != 0.0 {
        let mut t = transpose_hwc(&out.data, h, w, c);
        for _ in 0..passes {
            column_box_blur_pass(&t, &mut scratch, w, h * c, xradius);
            std::mem::swap(&mut t, &mut scratch);
        }
        out.data = transpose_hwc(&t, w, h, c);
    }
    if yradius != 0.0 {
        for _ in 0..passes {
            column_box_blur_pass(&out.data, &mut scratch, h, w * c, yradius);
            std::mem::swap(&mut out.data, &mut scratch);
        }
    }
    out
}

/// PIL `img.filter(ImageFilter.GaussianBlur(radius))`, bit-exact: `radius` (the standard
/// deviation; MoCo v2 passes its sigma here) is converted to C `float`, each direction gets three
/// box blurs of the radius given by Pillow's `_gaussian_blur_radius`. Radius 0 is the identity.
/// Works for any channel count.
pub fn gaussian_blur(img: ImageRef, radius: f64) -> Image {
    assert!(
        radius.is_finite() && radius >= 0.0,
        "blur radius {radius} must be finite and >= 0"
    );
    if radius == 0.0 {
        return img.to_owned(); // GaussianBlur.filter: xy == (0, 0) -> image.copy()
    }
    let r = gaussian_box_radius(radius as f32, 3);
    box_blur(img, r, r, 3)
}

/// PIL `ImageOps.solarize(img, threshold)`: every value `v >= threshold` becomes `255 - v`
/// (all channels). Not an involution: it maps everything below `threshold` to itself, so applying
/// it twice equals applying it once when `threshold <= 128`.
pub fn solarize(img: ImageRef, threshold: u8) -> Image {
    let data = img
        .data
        .iter()
        .map(|&v| if v >= threshold { 255 - v } else { v })
        .collect();
    Image::new(img.height, img.width, img.channels, data)
}

// ------------------------------------------------------------------------------------------------
// Evaluation resizing

/// torchvision `CenterCrop((h, w))`: crop box at `round((H - h) / 2)`, `round((W - w) / 2)`
/// (Python round: half to even); a crop larger than the image first pads it with zeros,
/// `(crop - size) // 2` before and the rest after, as torchvision does.
pub fn center_crop(img: ImageRef, h: usize, w: usize) -> Image {
    assert!(h > 0 && w > 0, "empty crop");
    let c = img.channels;
    if h > img.height || w > img.width {
        let (pad_top, pad_left) = (
            h.saturating_sub(img.height) / 2,
            w.saturating_sub(img.width) / 2,
        );
        let (ph, pw) = (img.height.max(h), img.width.max(w));
        let mut data = vec![0u8; ph * pw * c];
        for y in 0..img.height {
            let src = &img.data[y * img.width * c..(y + 1) * img.width * c];
            let at = ((pad_top + y) * pw + pad_left) * c;
            data[at..at + src.len()].copy_from_slice(src);
        }
        let padded = Image::new(ph, pw, c, data);
        return center_crop(padded.as_ref(), h, w);
    }
    let top = ((img.height - h) as f64 / 2.0).round_ties_even() as usize;
    let left = ((img.width - w) as f64 / 2.0).round_ties_even() as usize;
    let mut data = Vec::with_capacity(h * w * c);
    for y in top..top + h {
        data.extend_from_slice(
            &img.data[(y * img.width + left) * c..(y * img.width + left + w) * c],
        );
    }
    Image::new(h, w, c, data)
}

/// torchvision `Compose([Resize(resize), CenterCrop(crop)])` on a PIL image: the shorter side is
/// resized to `resize` and the longer to `int(resize * long / short)` (truncated) with PIL
/// BILINEAR (no resampling when the size is unchanged), then the central `crop x crop` is taken.
pub fn resize_shorter_center_crop(img: ImageRef, resize: usize, crop: usize) -> Image {
    assert!(resize > 0 && crop > 0, "resize and crop must be positive");
    assert!(img.height > 0 && img.width > 0, "empty image");
    let (h, w) = (img.height, img.width);
    let (short, long) = (h.min(w), h.max(w));
    // _compute_resized_output_size: int(size * long / short), true division in double.
    let new_long = ((resize * long) as f64 / short as f64) as usize;
    let (nh, nw) = if w <= h {
        (new_long, resize)
    } else {
        (resize, new_long)
    };
    if (nh, nw) == (h, w) {
        center_crop(img, crop, crop)
    } else {
        center_crop(resize_bilinear(img, nh, nw).as_ref(), crop, crop)
    }
}
