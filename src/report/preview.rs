//! `unmix preview`: a PNG grid showing what the config's mixture does to a batch of real images.
//! Un-Mix: for each sample i, view 1, view 2, the mixture (sample i of the mixed batch) and its
//! reversed partner (view 1 of sample N-1-i), with the mixing mode and lambda under the grid.
//! i-Mix and MixCo: each mixture's two source images, the mixture, the key it is labelled with,
//! and its own lambda beside the row.

use super::plot::caption;
use crate::config::Config;
use crate::data::{load_pretrain, to_tensor, train_recipes};
use crate::mix::{self, imix, mixco, MixKind, Mixed, MixtureKind, UnMixConfig, VirtualMix};
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

/// What a preview shows: titled columns of images (one row per sample), a note beside each row,
/// and a line under the grid.
struct Grid {
    columns: Vec<(String, Tensor)>,
    row_notes: Vec<String>,
    footer: String,
}

/// Writes the preview PNG of the config's mixture (Un-Mix when none is enabled) on the first
/// batch of training; `mode` forces Un-Mix's "mixup" or "cutmix" (None: drawn as in training).
/// Returns the line written under the grid.
pub fn write_preview(cfg: &Config, images: usize, mode: Option<&str>, out: &Path) -> Result<String> {
    if mode.is_some() && !matches!(cfg.mixture_kind(), MixtureKind::UnMix | MixtureKind::None) {
        anyhow::bail!("--mode chooses Un-Mix's mixup or CutMix; {} has no such choice", cfg.mixture_kind().name());
    }
    let (v1, v2) = first_batch(cfg, images)?;
    // The same stream as training step 0, so the preview shows the run's first mixture.
    let mut rng = unmix_data::seed::step_rng(cfg.seed, 0);
    let grid = match cfg.mixture_kind() {
        MixtureKind::IMix => rival_grid("i-Mix", &v1, &v2, &imix::draw(&v1, &cfg.imix, &mut rng)),
        MixtureKind::MixCo => rival_grid("MixCo", &v1, &v2, &mixco::draw(&v1, &cfg.mixco, &mut rng)?),
        MixtureKind::UnMix | MixtureKind::None => unmix_grid(cfg, &v1, &v2, mode, &mut rng)?,
    };
    draw_grid(cfg, &grid, out)?;
    Ok(grid.footer)
}

/// View 1 and view 2 of the first training batch of `images` images.
fn first_batch(cfg: &Config, images: usize) -> Result<(Tensor, Tensor)> {
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
    Ok((to_tensor(&batch.views[0], Device::Cpu), to_tensor(&batch.views[1], Device::Cpu)))
}

/// Un-Mix: view 1, view 2, the mixture and its reversed partner, one draw for the batch.
fn unmix_grid(cfg: &Config, v1: &Tensor, v2: &Tensor, mode: Option<&str>, rng: &mut impl rand::Rng) -> Result<Grid> {
    let (h, w) = (v1.size()[2] as usize, v1.size()[3] as usize);
    let prob = match mode {
        Some("mixup") => 1.0,
        Some("cutmix") => 0.0,
        None => cfg.unmix.prob,
        Some(m) => anyhow::bail!("--mode {m}: use \"mixup\" or \"cutmix\""),
    };
    let draw = mix::draw(rng, &UnMixConfig { prob, ..cfg.unmix.clone() }, h, w);
    let mixed = Mixed::new(v1, draw);
    let footer = match draw.kind {
        MixKind::Mixup => format!("Un-Mix: mixup, lambda = {:.2} (image i's share of mixture i)", draw.lam),
        MixKind::CutMix { .. } => format!("Un-Mix: CutMix, lambda = {:.2} (the kept fraction of image i)", draw.lam),
    };
    Ok(Grid {
        columns: vec![
            ("view 1".into(), v1.shallow_clone()),
            ("view 2".into(), v2.shallow_clone()),
            ("mixture".into(), mixed.images),
            ("partner (N-1-i)".into(), mix::reversed(v1)),
        ],
        row_notes: Vec::new(),
        footer,
    })
}

/// i-Mix or MixCo: each mixture with its two source images (view 1) and its own lambda.
fn rival_grid(name: &str, v1: &Tensor, v2: &Tensor, v: &VirtualMix) -> Grid {
    let pick = |idx: &[i64]| v1.index_select(0, &Tensor::from_slice(idx));
    let keys = v2.index_select(0, &Tensor::from_slice(&v.first));
    Grid {
        columns: vec![
            ("view 1".into(), pick(&v.first)),
            ("partner".into(), pick(&v.second)),
            ("mixture".into(), v.images.shallow_clone()),
            ("key: view 2".into(), keys),
        ],
        row_notes: v.lams.iter().map(|l| format!("lambda {l:.2}")).collect(),
        footer: if v.replaces_view1 {
            format!("{name}: a random partner each, label lambda_i on key i")
        } else {
            format!("{name}: i with i + N/2, label lambda_i on key i")
        },
    }
}

/// Draws the grid: titles, one row of tiles per sample with its note, the footer.
fn draw_grid(cfg: &Config, grid: &Grid, out: &Path) -> Result<()> {
    let first = &grid.columns[0].1;
    let (n, h, w) = (first.size()[0] as u32, first.size()[2] as u32, first.size()[3] as u32);
    let zoom = (128 / h.max(w)).max(1);
    let (tw, th) = (w * zoom, h * zoom);
    let (gap, header, footer, note_w) = (4, 30, 34, if grid.row_notes.is_empty() { 0 } else { 130 });
    let cols = grid.columns.len() as u32;
    let width = cols * (tw + gap) + gap + note_w;
    let mut canvas = image::RgbImage::from_pixel(width, header + n * (th + gap) + footer, image::Rgb([30, 30, 30]));
    let size = (canvas.width(), canvas.height());
    let (mean, std) = (&cfg.data.mean, &cfg.data.std);
    for i in 0..n {
        let y = header + i * (th + gap);
        for (k, (_, t)) in grid.columns.iter().enumerate() {
            paste(&mut canvas, &t.get(i as i64), mean, std, gap + k as u32 * (tw + gap), y, zoom);
        }
    }
    let white = [240, 240, 240];
    for (k, (title, _)) in grid.columns.iter().enumerate() {
        caption(&mut canvas, size, title, ((gap + k as u32 * (tw + gap)) as i32, 6), 18.0, white)?;
    }
    for (i, note) in grid.row_notes.iter().enumerate() {
        let at = ((gap + cols * (tw + gap) + 6) as i32, (header + i as u32 * (th + gap) + th / 2 - 9) as i32);
        caption(&mut canvas, size, note, at, 18.0, white)?;
    }
    caption(&mut canvas, size, &grid.footer, (gap as i32, (header + n * (th + gap) + 6) as i32), 18.0, white)?;
    canvas.save(out).with_context(|| format!("cannot write {}", out.display()))
}
