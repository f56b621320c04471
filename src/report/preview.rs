//! `unmix preview`: a PNG grid showing what Un-Mix does to a batch of real images: for each sample
//! i, view 1, view 2, the mixture (sample i of the mixed batch) and its reversed partner (view 1 of
//! sample N-1-i), with the mixing mode and lambda written under the grid.

use super::plot::caption;
use crate::config::Config;
use crate::data::{load_pretrain, to_tensor, train_recipes};
use crate::mix::{self, MixKind, Mixed, UnMixConfig};
use anyhow::{Context, Result};
use std::path::Path;
use tch::{Device, Kind, Tensor};
use unmix_data::loader::{Loader, LoaderConfig};

/// Undoes the normalization of one CHW image into u8 RGB tiles scaled by `zoom`.
fn paste(canvas: &mut image::RgbImage, t: &Tensor, mean: &[f32], std: &[f32], x0: u32, y0: u32, zoom: u32) {
    let (c, h, w) = (t.size()[0], t.size()[1], t.size()[2]);
    let v: Vec<f32> = Vec::try_from(t.to_kind(Kind::Float).flatten(0, -1)).expect("float image");
    for y in 0..h {
        for x in 0..w {
            let px: Vec<u8> = (0..3)
                .map(|k| {
                    let ch = if c == 1 { 0 } else { k };
                    let val = v[(ch * h * w + y * w + x) as usize] * std[ch as usize] + mean[ch as usize];
                    (val * 255.0).round().clamp(0.0, 255.0) as u8
                })
                .collect();
            for dy in 0..zoom {
                for dx in 0..zoom {
                    canvas.put_pixel(
                        x0 + x as u32 * zoom + dx,
                        y0 + y as u32 * zoom + dy,
                        image::Rgb([px[0], px[1], px[2]]),
                    );
                }
            }
        }
    }
}

/// Writes the preview PNG; `mode` forces "mixup" or "cutmix" (None: drawn as in training).
/// Returns the draw shown.
pub fn write_preview(cfg: &Config, images: usize, mode: Option<&str>, out: &Path) -> Result<mix::MixDraw> {
    let set = load_pretrain(cfg)?;
    let loader = Loader::new(
        set.data.clone(),
        train_recipes(cfg),
        LoaderConfig {
            batch_size: images,
            drop_last: false,
            shuffle: true,
            seed: cfg.seed,
            workers: 0,
            prefetch: 1,
            on_bad_image: crate::data::bad_image_policy(cfg),
        },
    );
    let batch = loader.epoch(0, 0).next().context("the dataset gave no batch")??;
    let v1 = to_tensor(&batch.views[0], Device::Cpu);
    let v2 = to_tensor(&batch.views[1], Device::Cpu);
    let (h, w) = (v1.size()[2] as usize, v1.size()[3] as usize);
    let prob = match mode {
        Some("mixup") => 1.0,
        Some("cutmix") => 0.0,
        None => cfg.unmix.prob,
        Some(m) => anyhow::bail!("--mode {m}: use \"mixup\" or \"cutmix\""),
    };
    // The same stream as training step 0, so the preview shows the run's first mixture.
    let mut rng = unmix_data::seed::step_rng(cfg.seed, 0);
    let draw = mix::draw(&mut rng, &UnMixConfig { prob, ..cfg.unmix.clone() }, h, w);
    let mixed = Mixed::new(&v1, draw);
    let partner = mix::reversed(&v1);

    let n = v1.size()[0] as u32;
    let zoom = (128 / h.max(w) as u32).max(1);
    let (tw, th) = (w as u32 * zoom, h as u32 * zoom);
    let gap = 4;
    let header = 30;
    let footer = 34;
    let mut canvas =
        image::RgbImage::from_pixel(4 * (tw + gap) + gap, header + n * (th + gap) + footer, image::Rgb([30, 30, 30]));
    let size = (canvas.width(), canvas.height());
    let (mean, std) = (&cfg.data.mean, &cfg.data.std);
    for i in 0..n {
        let y = header + i * (th + gap);
        for (k, t) in [&v1, &v2, &mixed.images, &partner].iter().enumerate() {
            paste(&mut canvas, &t.get(i as i64), mean, std, gap + k as u32 * (tw + gap), y, zoom);
        }
    }
    let white = [240, 240, 240];
    for (k, title) in ["view 1", "view 2", "mixture", "partner (N-1-i)"].iter().enumerate() {
        caption(&mut canvas, size, title, ((gap + k as u32 * (tw + gap)) as i32, 6), 18.0, white)?;
    }
    let text = match draw.kind {
        MixKind::Mixup => format!("mixup, lambda = {:.2} (image i's share of mixture i)", draw.lam),
        MixKind::CutMix { .. } => format!("CutMix, lambda = {:.2} (the kept fraction of image i)", draw.lam),
    };
    caption(&mut canvas, size, &text, (gap as i32, (header + n * (th + gap) + 6) as i32), 18.0, white)?;
    canvas.save(out).with_context(|| format!("cannot write {}", out.display()))?;
    Ok(draw)
}
