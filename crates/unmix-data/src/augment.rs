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
        RandomResizedCrop { size: (height, width), scale: (0.08, 1.0), ratio: (3.0 / 4.0, 4.0 / 3.0) }
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
        GaussianBlur { sigma: (0.1, 2.0), p: 0.5 }
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
    /// RandomGrayscale before ColorJitter (MoCo v1's ImageNet code) instead of after it.
    pub grayscale_first: bool,
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
            grayscale_first: false,
            blur: None,
            solarize_p: 0.0,
            mean,
            std,
        }
    }

    /// Output (channels, height, width) of this recipe for an input of the given shape.
    pub fn output_shape(&self, channels: usize, height: usize, width: usize) -> (usize, usize, usize) {
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
/// With `grayscale_first` (MoCo v1), RandomGrayscale comes before RandomApply(ColorJitter).
///
/// Random draws, in order: the crop box (if `crop`), the flip coin, the jitter coin, (if
/// jittering) the op permutation and the factors, the greyscale coin (with `grayscale_first`:
/// before the jitter coin), the blur coin, (if blurring) sigma, the solarize coin. Coins are drawn even when their probability is 0 or 1
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
    let grayscale = |out: Image, rng: &mut _| {
        if coin(rng, recipe.grayscale_p) && out.channels == 3 {
            to_grayscale(out.as_ref(), 3)
        } else {
            out
        }
    };
    if recipe.grayscale_first {
        out = grayscale(out, rng);
    }
    let apply_jitter = coin(rng, recipe.jitter_p);
    if let (true, Some(j)) = (apply_jitter, &recipe.jitter) {
        out = color_jitter(out.as_ref(), j, rng);
    }
    if !recipe.grayscale_first {
        out = grayscale(out, rng);
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

static PORTABLE_ONLY: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);

/// Makes every AVX2-dispatched kernel run its portable build (`true`) or the CPU's best again
/// (`false`), process-wide: the tests check both builds on one machine. Same results either way.
pub fn set_portable_kernels(on: bool) {
    PORTABLE_ONLY.store(on, std::sync::atomic::Ordering::SeqCst);
}

/// Whether the AVX2 builds of the kernels run (the CPU has AVX2 and they are not switched off).
pub fn avx2_kernels() -> bool {
    #[cfg(target_arch = "x86_64")]
    {
        !PORTABLE_ONLY.load(std::sync::atomic::Ordering::Relaxed) && std::arch::is_x86_feature_detected!("avx2")
    }
    #[cfg(not(target_arch = "x86_64"))]
    false
}

/// `avx2_dispatch!(fn name(args) -> R = body);` defines `name`, which runs `body` (an
/// `#[inline(always)]` function of the same signature) compiled with AVX2 enabled when the CPU has
/// it, else as the portable (SSE2) build. The arithmetic is the same either way; the hot loops are
/// vectorized 8 lanes wide instead of 4. (A closure passed to a generic helper does not do this:
/// the closure is compiled on its own, without the feature.)
macro_rules! avx2_dispatch {
    (fn $name:ident($($a:ident: $t:ty),*) $(-> $r:ty)? = $body:ident;) => {
        fn $name($($a: $t),*) $(-> $r)? {
            #[cfg(target_arch = "x86_64")]
            if avx2_kernels() {
                #[target_feature(enable = "avx2")]
                unsafe fn avx2($($a: $t),*) $(-> $r)? {
                    $body($($a),*)
                }
                // SAFETY: the CPU has AVX2 (`avx2_kernels` checked it just above).
                return unsafe { avx2($($a),*) };
            }
            $body($($a),*)
        }
    };
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
            row[x] = if v < 0.0 { (-0.5 + f) as i32 } else { (0.5 + f) as i32 };
        }
        bounds.push((xmin, n));
    }
    Taps { ksize, bounds, coeffs }
}

#[inline]
fn clip8(v: i32) -> u8 {
    // Pillow's clip8 on its INT32 sums (255 from 1 << (PRECISION_BITS + 8) up, 0 for v <= 0,
    // else v >> PRECISION_BITS), as a clamp of the arithmetic shift: the same value, branch-free.
    (v >> PRECISION_BITS).clamp(0, 255) as u8
}

/// Pillow's vertical pass for one output row: the taps' input rows start at `src[start]`, one
/// every `stride` bytes, and `dst.len()` bytes of each are summed. The sums run over blocks of 16
/// columns held in registers across all taps.
#[inline(always)]
fn vertical_row(src: &[u8], start: usize, stride: usize, k: &[i32], dst: &mut [u8]) {
    const L: usize = 16;
    let row = dst.len();
    let full = row / L * L;
    for j in (0..full).step_by(L) {
        let mut acc = [1i32 << (PRECISION_BITS - 1); L];
        for (t, &ky) in k.iter().enumerate() {
            let at = start + t * stride + j;
            for (a, &v) in acc.iter_mut().zip(&src[at..at + L]) {
                *a += v as i32 * ky;
            }
        }
        for (d, &a) in dst[j..j + L].iter_mut().zip(acc.iter()) {
            *d = clip8(a);
        }
    }
    for j in full..row {
        let mut a = 1i32 << (PRECISION_BITS - 1);
        for (t, &ky) in k.iter().enumerate() {
            a += src[start + t * stride + j] as i32 * ky;
        }
        dst[j] = clip8(a);
    }
}

/// Pillow's vertical pass (`ImagingResampleVertical_8bpc`) over the `h x w` box at (`top`,
/// `left`) of an image of `c` channels with rows of `stride` bytes: `out_h x w`.
// Pillow's own argument list (image, stride, box, channels, output size).
#[allow(clippy::too_many_arguments)]
#[inline(always)]
fn vertical_pass(
    src: &[u8],
    stride: usize,
    top: usize,
    left: usize,
    h: usize,
    w: usize,
    c: usize,
    out_h: usize,
) -> Vec<u8> {
    let taps = precompute_taps(h, out_h);
    let row = w * c;
    let mut out = vec![0u8; out_h * row];
    for (yy, (&(ymin, n), dst)) in taps.bounds.iter().zip(out.chunks_exact_mut(row)).enumerate() {
        let k = &taps.coeffs[yy * taps.ksize..yy * taps.ksize + n];
        vertical_row(src, (top + ymin) * stride + left * c, stride, k, dst);
    }
    out
}

/// Pillow's horizontal pass (`ImagingResampleHorizontal_8bpc`) over the `h x w` box: `h x out_w`.
/// It runs as a vertical pass over the transposed box (the same integer sums, vectorized across
/// a whole column instead of one pixel's few taps), transposed back.
#[allow(clippy::too_many_arguments)]
#[inline(always)]
fn horizontal_pass(
    src: &[u8],
    stride: usize,
    top: usize,
    left: usize,
    h: usize,
    w: usize,
    c: usize,
    out_w: usize,
) -> Vec<u8> {
    let taps = precompute_taps(w, out_w);
    let boxed = transpose_region(src, stride, top, left, h, w, c); // w x h
    let col = h * c;
    let mut temp_t = vec![0u8; out_w * col];
    for (xx, (&(xmin, n), dst)) in taps.bounds.iter().zip(temp_t.chunks_exact_mut(col)).enumerate() {
        let k = &taps.coeffs[xx * taps.ksize..xx * taps.ksize + n];
        vertical_row(&boxed, xmin * col, col, k, dst);
    }
    transpose_hwc(&temp_t, out_w, h, c)
}

/// PIL `img.crop((left, top, left + w, top + h)).resize((out_w, out_h), BILINEAR)`.
///
/// The crop box must lie inside the image. Resampling reads only pixels of the box, so this is
/// exactly crop-then-resize.
pub fn resized_crop(img: ImageRef, top: usize, left: usize, h: usize, w: usize, out_h: usize, out_w: usize) -> Image {
    resized_crop_dispatch(img, top, left, h, w, out_h, out_w)
}

avx2_dispatch!(fn resized_crop_dispatch(img: ImageRef, top: usize, left: usize, h: usize, w: usize, out_h: usize, out_w: usize) -> Image = resized_crop_body;);

#[inline(always)]
fn resized_crop_body(img: ImageRef, top: usize, left: usize, h: usize, w: usize, out_h: usize, out_w: usize) -> Image {
    assert!(top + h <= img.height && left + w <= img.width, "crop box outside the image");
    assert!(h > 0 && w > 0 && out_h > 0 && out_w > 0, "empty crop or output");
    let (c, stride) = (img.channels, img.width * img.channels);
    let (need_h, need_v) = (out_w != w, out_h != h);
    // Pillow 13's order (ImagingResampleInner): the vertical pass first when the height shrinks by
    // more than twice as many pixels as the width, else the horizontal pass first. Each pass
    // rounds to u8, so the order shows in the output; Pillow 12 and older always go horizontal
    // first. The passes are skipped when a size is unchanged.
    let vertical_first = h > out_h && (h - out_h) as i64 > (w as i64 - out_w as i64) * 2;
    let data = match (need_h, need_v) {
        (false, false) => {
            let mut data = Vec::with_capacity(h * w * c);
            for y in top..top + h {
                data.extend_from_slice(&img.data[y * stride + left * c..y * stride + (left + w) * c]);
            }
            data
        }
        (true, false) => horizontal_pass(img.data, stride, top, left, h, w, c, out_w),
        (false, true) => vertical_pass(img.data, stride, top, left, h, w, c, out_h),
        (true, true) if vertical_first => {
            let temp = vertical_pass(img.data, stride, top, left, h, w, c, out_h);
            horizontal_pass(&temp, w * c, 0, 0, out_h, w, c, out_w)
        }
        (true, true) => {
            let temp = horizontal_pass(img.data, stride, top, left, h, w, c, out_w);
            vertical_pass(&temp, out_w * c, 0, 0, h, out_w, c, out_h)
        }
    };
    Image::new(out_h, out_w, c, data)
}

/// PIL `img.resize((out_w, out_h), BILINEAR)`.
pub fn resize_bilinear(img: ImageRef, out_h: usize, out_w: usize) -> Image {
    resized_crop(img, 0, 0, img.height, img.width, out_h, out_w)
}

// ------------------------------------------------------------------------------------------------
// Geometry and colour

/// Mirror left-right.
pub fn hflip(img: ImageRef) -> Image {
    // Inlined with a literal channel count for 1 and 3, so the pixel copies are fixed-size moves.
    #[inline(always)]
    fn rows(img: ImageRef, out: &mut [u8], c: usize) {
        let row = img.width * c;
        for (src, dst) in img.data.chunks_exact(row).zip(out.chunks_exact_mut(row)) {
            for (s, d) in src.chunks_exact(c).rev().zip(dst.chunks_exact_mut(c)) {
                d.copy_from_slice(s);
            }
        }
    }
    let c = img.channels;
    let mut out = vec![0u8; img.data.len()];
    if img.width > 0 {
        match c {
            1 => rows(img, &mut out, 1),
            3 => rows(img, &mut out, 3),
            _ => rows(img, &mut out, c),
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
        3 => img.data.chunks_exact(3).map(|p| luma(p[0], p[1], p[2])).collect(),
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
    let mean = if l.is_empty() { 0.0 } else { sum as f64 / l.len() as f64 };
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
    assert!(a.is_finite(), "saturation factor {factor} is not a finite f32");
    // The grey value repeated per byte, then one branch-free blend over all bytes, which the
    // compiler vectorizes ([`blend`]'s clipping is a clamp).
    let mut data = vec![0u8; img.data.len()];
    for (g, p) in data.chunks_exact_mut(3).zip(img.data.chunks_exact(3)) {
        let l = luma(p[0], p[1], p[2]);
        g.copy_from_slice(&[l, l, l]);
    }
    blend_with_grey(img.data, &mut data, a);
    Image::new(img.height, img.width, 3, data)
}

avx2_dispatch!(fn blend_with_grey(src: &[u8], data: &mut [u8], a: f32) = blend_with_grey_body;);

/// [`blend`] of every byte of `src` with the grey value already in `data` (the result replaces
/// it), branch-free: the clipping is a clamp.
#[inline(always)]
fn blend_with_grey_body(src: &[u8], data: &mut [u8], a: f32) {
    for (d, &v) in data.iter_mut().zip(src) {
        let l = *d;
        let t = (l as f32 + a * (v as i32 - l as i32) as f32).clamp(0.0, 255.0);
        // SAFETY: `t` is finite (the caller checks the factor) and within [0, 255] after the clamp.
        *d = unsafe { t.to_int_unchecked::<i32>() } as u8;
    }
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
    assert!((-0.5..=0.5).contains(&hue_factor), "hue_factor {hue_factor} is not in [-0.5, 0.5]");
    if img.channels != 3 || hue_factor == 0.0 {
        return img.to_owned();
    }
    // numpy's float -> uint8 cast: truncation toward zero, then modulo 256.
    let shift = ((hue_factor * 255.0) as i64).rem_euclid(256) as u8;
    let mut data = vec![0u8; img.data.len()];
    hue_shift(img.data, &mut data, shift);
    Image::new(img.height, img.width, 3, data)
}

avx2_dispatch!(fn hue_shift(src: &[u8], dst: &mut [u8], shift: u8) = hue_shift_body;);

/// `hsv_to_rgb(h + shift, s, v)` of `rgb_to_hsv(r, g, b)` for every pixel, as straight-line
/// arithmetic over blocks of pixels held channel by channel, so that the compiler vectorizes it:
/// the same `f32` / `f64` operations as [`rgb_to_hsv`] and [`hsv_to_rgb`] (IEEE arithmetic is
/// the same in vector lanes; Rust never fuses multiply-adds), with selects instead of branches
/// and table lookups. Equality with them over all 2^24 colours is a test.
#[inline(always)]
fn hue_shift_body(src: &[u8], dst: &mut [u8], shift: u8) {
    const N: usize = 64;
    let (mut r, mut g, mut b) = ([0u8; N], [0u8; N], [0u8; N]);
    let (mut or, mut og, mut ob) = ([0u8; N], [0u8; N], [0u8; N]);
    let tab = hsv_tables();
    for (s, d) in src.chunks(3 * N).zip(dst.chunks_mut(3 * N)) {
        let n = s.len() / 3;
        for (i, p) in s.chunks_exact(3).enumerate() {
            (r[i], g[i], b[i]) = (p[0], p[1], p[2]);
        }
        for i in 0..N {
            (or[i], og[i], ob[i]) = hue_shift_rgb(r[i], g[i], b[i], shift, tab);
        }
        for (i, p) in d.chunks_exact_mut(3).enumerate().take(n) {
            p.copy_from_slice(&[or[i], og[i], ob[i]]);
        }
    }
}

/// One pixel of [`hue_shift_body`], branch-free: Pillow's rgb2hsv_row, the hue byte shifted, and
/// its hsv2rgb_row.
#[inline(always)]
fn hue_shift_rgb(r8: u8, g8: u8, b8: u8, shift: u8, tab: &HsvTables) -> (u8, u8, u8) {
    let (h8, s8) = rgb_to_hue_saturation_branch_free(r8, g8, b8);
    hsv_to_rgb_branch_free(h8.wrapping_add(shift), s8, r8.max(g8).max(b8), tab)
}

/// [`rgb_to_hsv`] without branches (vector lanes): Pillow's rgb2hsv_row for one pixel, its hue
/// and saturation bytes (the value byte is the largest channel).
#[inline(always)]
fn rgb_to_hue_saturation_branch_free(r8: u8, g8: u8, b8: u8) -> (u8, u8) {
    let maxc8 = r8.max(g8).max(b8);
    let minc8 = r8.min(g8).min(b8);
    let grey = maxc8 == minc8;
    let (r, g, b, maxc) = (r8 as f32, g8 as f32, b8 as f32, maxc8 as f32);
    let cr = maxc - minc8 as f32;
    // Grey pixels divide by zero here; their values are replaced below.
    let (rc, gc, bc) = ((maxc - r) / cr, (maxc - g) / cr, (maxc - b) / cr);
    let h_r = bc - gc;
    let h_g = (2.0 + rc as f64 - bc as f64) as f32;
    let h_b = (4.0 + gc as f64 - rc as f64) as f32;
    let h = if r8 == maxc8 {
        h_r
    } else if g8 == maxc8 {
        h_g
    } else {
        h_b
    };
    let t = h as f64 * (1.0 / 6.0) + 1.0;
    let h = (if t >= 1.0 { t - 1.0 } else { t }) as f32;
    let hq = if grey { 0.0 } else { h as f64 * 255.0 };
    let sq = if grey { 0.0 } else { (cr / maxc) as f64 * 255.0 };
    // Both are finite and in [0, 256) (grey pixels' NaNs were replaced just above): the casts
    // truncate as the C code's (int) does, then CLIP8. The unchecked casts keep them in vector
    // lanes (the checked `as` is scalarized).
    // SAFETY: finite values inside the i32 range.
    let h8 = unsafe { hq.to_int_unchecked::<i32>() }.clamp(0, 255) as u8;
    let s8 = unsafe { sq.to_int_unchecked::<i32>() }.clamp(0, 255) as u8;
    (h8, s8)
}

/// [`hsv_to_rgb`] without branches (vector lanes): Pillow's hsv2rgb_row for one pixel of hue
/// byte `hs`, saturation byte `s8` and value `maxc8`.
#[inline(always)]
fn hsv_to_rgb_branch_free(hs: u8, s8: u8, maxc8: u8, tab: &HsvTables) -> (u8, u8, u8) {
    let hs = hs as usize;
    let (f, sector, fs) = (tab.f[hs], tab.sector[hs], tab.fs[s8 as usize]);
    let vf = maxc8 as f32 as f64;
    let round = |x: f64| {
        // C round() of x >= 0: truncation plus the exact fractional part.
        // SAFETY: x = v * (1 - a) with v <= 255 and 0 <= a <= 1: finite, inside the i32 range.
        let i = unsafe { x.to_int_unchecked::<i32>() };
        (i + (x - i as f64 >= 0.5) as i32).clamp(0, 255) as u8
    };
    let p = round(vf * (1.0 - fs as f64));
    // The sector's middle channel: t in the even sectors, q in the odd ones; only that one is
    // computed.
    let even = sector % 2 == 0;
    let w = if even { fs as f64 * (1.0 - f as f64) } else { (fs * f) as f64 };
    let m = round(vf * (1.0 - w));
    let v = maxc8;
    // (r, g, b) per sector: (v, t, p) (q, v, p) (p, v, t) (p, q, v) (t, p, v) (v, p, q).
    let red = if sector == 0 || sector == 5 {
        v
    } else if sector == 2 || sector == 3 {
        p
    } else {
        m
    };
    let green = if sector == 1 || sector == 2 {
        v
    } else if sector == 4 || sector == 5 {
        p
    } else {
        m
    };
    let blue = if sector == 3 || sector == 4 {
        v
    } else if sector == 0 || sector == 1 {
        p
    } else {
        m
    };
    if s8 == 0 {
        (v, v, v)
    } else {
        (red, green, blue)
    }
}

/// torchvision `F.rgb_to_grayscale` on PIL (`img.convert("L")`, replicated to `out_channels`,
/// which is 1 or 3). A 1-channel input is already greyscale.
pub fn to_grayscale(img: ImageRef, out_channels: usize) -> Image {
    assert!(out_channels == 1 || out_channels == 3, "out_channels must be 1 or 3");
    let l = luma_plane(img);
    let data = if out_channels == 1 { l } else { l.iter().flat_map(|&v| [v, v, v]).collect() };
    Image::new(img.height, img.width, out_channels, data)
}

/// `ToTensor` + `Normalize`: `(x / 255 - mean[c]) / std[c]` in `f32`, written CHW (planar) into
/// `out` (`len = C * H * W`). The 256 values of each channel are computed once (the same `f32`
/// arithmetic) and the image is mapped through them in one pass.
pub fn normalize_into(img: ImageRef, mean: &[f32], std: &[f32], out: &mut [f32]) {
    let c = img.channels;
    let hw = img.height * img.width;
    assert_eq!(mean.len(), c, "one mean per channel");
    assert_eq!(std.len(), c, "one std per channel");
    assert_eq!(out.len(), c * hw, "output buffer size");
    let tables: Vec<[f32; 256]> = (0..c)
        .map(|ch| {
            let mut t = [0f32; 256];
            for (v, o) in t.iter_mut().enumerate() {
                *o = (v as f32 / 255.0 - mean[ch]) / std[ch];
            }
            t
        })
        .collect();
    if c == 3 {
        let (o0, rest) = out.split_at_mut(hw);
        let (o1, o2) = rest.split_at_mut(hw);
        let (t0, t1, t2) = (&tables[0], &tables[1], &tables[2]);
        for ((p, a), (b, d)) in img.data.chunks_exact(3).zip(o0.iter_mut()).zip(o1.iter_mut().zip(o2.iter_mut())) {
            *a = t0[p[0] as usize];
            *b = t1[p[1] as usize];
            *d = t2[p[2] as usize];
        }
        return;
    }
    for (ch, t) in tables.iter().enumerate() {
        let plane = &mut out[ch * hw..(ch + 1) * hw];
        for (o, &v) in plane.iter_mut().zip(img.data.iter().skip(ch).step_by(c)) {
            *o = t[v as usize];
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

avx2_dispatch!(fn column_box_blur_pass(src: &[u8], dst: &mut [u8], lines: usize, row: usize, float_radius: f32) = column_box_blur_pass_body;);

/// One Pillow box-blur pass (`ImagingLineBoxBlur8`) along the columns of a `(lines, row)` u8 array
/// (`row` values per line), every column at once so the compiler vectorizes it: a box of
/// `2 * radius + 1` values weighted `ww` plus the two next values weighted `fw` (the fractional
/// radius), edges extended, 24-bit fixed point. Pillow's three ranges of the line loop amount to
/// clamped indices, which is what this uses; the result is the same bit for bit (tests compare
/// with Pillow's output). Called through [`column_box_blur_pass`].
#[inline(always)]
fn column_box_blur_pass_body(src: &[u8], dst: &mut [u8], lines: usize, row: usize, float_radius: f32) {
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
    transpose_region(src, w * c, 0, 0, h, w, c)
}

/// The `h x w` box at (`top`, `left`) of an HWC image with rows of `stride` bytes, transposed:
/// `(w, h, c)`.
#[inline(always)]
fn transpose_region(src: &[u8], stride: usize, top: usize, left: usize, h: usize, w: usize, c: usize) -> Vec<u8> {
    let mut out = vec![0u8; h * w * c];
    match c {
        1 => transpose_block_c(src, &mut out, stride, top, left, h, w, 1),
        3 => transpose_block3(src, &mut out, stride, top, left, h, w),
        4 => transpose_block_c(src, &mut out, stride, top, left, h, w, 4),
        _ => transpose_block_c(src, &mut out, stride, top, left, h, w, c),
    }
    out
}

/// The blocked copy of `transpose_region` for `c` channels; inlined with a literal `c` for 1 and
/// 4, so the pixel copies are fixed-size moves.
#[allow(clippy::too_many_arguments)]
#[inline(always)]
fn transpose_block_c(src: &[u8], out: &mut [u8], stride: usize, top: usize, left: usize, h: usize, w: usize, c: usize) {
    // Blocks of 16 x 16 pixels keep both sides in cache lines.
    const B: usize = 16;
    for y0 in (0..h).step_by(B) {
        for x0 in (0..w).step_by(B) {
            for y in y0..(y0 + B).min(h) {
                let row = &src[(top + y) * stride + left * c..];
                for x in x0..(x0 + B).min(w) {
                    let d = (x * h + y) * c;
                    out[d..d + c].copy_from_slice(&row[x * c..x * c + c]);
                }
            }
        }
    }
}

/// Three channels moved as one 4-byte word: the fourth byte read is the next pixel's (or the
/// next row's, which exists as `y < h - 1`), and the fourth byte written lands on the next
/// destination pixel, written after it (the next `y` of the block, or a later block of rows);
/// the last row, whose next destination pixel is the next column's first, copies 3 bytes.
#[inline(always)]
fn transpose_block3(src: &[u8], out: &mut [u8], stride: usize, top: usize, left: usize, h: usize, w: usize) {
    const B: usize = 16;
    if h == 0 || w == 0 {
        return;
    }
    // Every read below is inside rows top..top + h, columns left..left + w (+1 byte before
    // the last row), every write inside out.
    assert!(stride >= (left + w) * 3 && (top + h - 1) * stride + (left + w) * 3 <= src.len() && out.len() == h * w * 3);
    let (sp, dp) = (src.as_ptr(), out.as_mut_ptr());
    for y0 in (0..h).step_by(B) {
        let y1 = (y0 + B).min(h);
        for x0 in (0..w).step_by(B) {
            for y in y0..y1 {
                let row = (top + y) * stride + left * 3;
                for x in x0..(x0 + B).min(w) {
                    let (s, d) = (row + x * 3, (x * h + y) * 3);
                    // SAFETY: s + 4 <= src.len() as row y + 1 exists; d + 4 <= out.len()
                    // unless (x, y) is the last pixel, which is in the last row.
                    unsafe {
                        if y + 1 < h {
                            std::ptr::write_unaligned(
                                dp.add(d) as *mut u32,
                                std::ptr::read_unaligned(sp.add(s) as *const u32),
                            );
                        } else {
                            std::ptr::copy_nonoverlapping(sp.add(s), dp.add(d), 3);
                        }
                    }
                }
            }
        }
    }
}

/// Pillow `ImagingBoxBlur(img, xradius, yradius, passes)`: `passes` horizontal box blurs, then
/// `passes` vertical ones; a radius of 0 skips its direction. Horizontal passes run as column
/// passes on the transposed image, as Pillow itself transposes for the vertical ones.
pub fn box_blur(img: ImageRef, xradius: f32, yradius: f32, passes: usize) -> Image {
    assert!(xradius >= 0.0 && yradius >= 0.0, "box blur radius must be >= 0");
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
    assert!(radius.is_finite() && radius >= 0.0, "blur radius {radius} must be finite and >= 0");
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
    let data = img.data.iter().map(|&v| if v >= threshold { 255 - v } else { v }).collect();
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
        let (pad_top, pad_left) = (h.saturating_sub(img.height) / 2, w.saturating_sub(img.width) / 2);
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
        data.extend_from_slice(&img.data[(y * img.width + left) * c..(y * img.width + left + w) * c]);
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
    let (nh, nw) = if w <= h { (new_long, resize) } else { (resize, new_long) };
    if (nh, nw) == (h, w) {
        center_crop(img, crop, crop)
    } else {
        center_crop(resize_bilinear(img, nh, nw).as_ref(), crop, crop)
    }
}
