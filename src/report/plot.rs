//! Minimal PNG charts for run reports: line plots of per-epoch or per-step series and a 2-D
//! scatter of embeddings coloured by class. Drawn pixel by pixel with the bitmap font, so no
//! plotting library or font file is needed.

use super::font::{draw_text, draw_text_color, text_width};
use anyhow::{Context, Result};
use image::{Rgb, RgbImage};
use std::path::Path;

const W: u32 = 720;
const H: u32 = 420;
const LEFT: u32 = 70;
const RIGHT: u32 = 20;
const TOP: u32 = 40;
const BOTTOM: u32 = 40;
const BG: Rgb<u8> = Rgb([24, 24, 28]);
const AXIS: Rgb<u8> = Rgb([160, 160, 160]);

/// Ten well-separated colours (the tab10 palette).
pub const PALETTE: [[u8; 3]; 10] = [
    [31, 119, 180],
    [255, 127, 14],
    [44, 160, 44],
    [214, 39, 40],
    [148, 103, 189],
    [140, 86, 75],
    [227, 119, 194],
    [127, 127, 127],
    [188, 189, 34],
    [23, 190, 207],
];

fn fmt(v: f64) -> String {
    if v.fract() == 0.0 && v.abs() < 1e7 {
        return format!("{v:.0}");
    }
    if v != 0.0 && (v.abs() < 0.01 || v.abs() >= 10000.0) {
        format!("{v:.1E}")
    } else {
        format!("{v:.3}")
    }
}

fn line(img: &mut RgbImage, (x0, y0): (i64, i64), (x1, y1): (i64, i64), c: Rgb<u8>) {
    // Bresenham.
    let (dx, dy) = ((x1 - x0).abs(), -(y1 - y0).abs());
    let (sx, sy) = (if x0 < x1 { 1 } else { -1 }, if y0 < y1 { 1 } else { -1 });
    let (mut x, mut y, mut err) = (x0, y0, dx + dy);
    loop {
        if x >= 0 && y >= 0 && (x as u32) < img.width() && (y as u32) < img.height() {
            img.put_pixel(x as u32, y as u32, c);
        }
        if x == x1 && y == y1 {
            break;
        }
        let e2 = 2 * err;
        if e2 >= dy {
            err += dy;
            x += sx;
        }
        if e2 <= dx {
            err += dx;
            y += sy;
        }
    }
}

struct Frame {
    x: (f64, f64),
    y: (f64, f64),
}

impl Frame {
    fn new(xs: impl Iterator<Item = f64> + Clone, ys: impl Iterator<Item = f64> + Clone) -> Frame {
        let span = |it: &mut dyn Iterator<Item = f64>| {
            let (mut lo, mut hi) = (f64::INFINITY, f64::NEG_INFINITY);
            for v in it.filter(|v| v.is_finite()) {
                lo = lo.min(v);
                hi = hi.max(v);
            }
            if !lo.is_finite() {
                (0.0, 1.0)
            } else if hi - lo < 1e-12 {
                (lo - 0.5, hi + 0.5)
            } else {
                (lo, hi)
            }
        };
        Frame { x: span(&mut xs.clone()), y: span(&mut ys.clone()) }
    }

    fn px(&self, x: f64, y: f64) -> (i64, i64) {
        let fx = (x - self.x.0) / (self.x.1 - self.x.0);
        let fy = (y - self.y.0) / (self.y.1 - self.y.0);
        (
            (LEFT as f64 + fx * (W - LEFT - RIGHT) as f64).round() as i64,
            ((H - BOTTOM) as f64 - fy * (H - TOP - BOTTOM) as f64).round() as i64,
        )
    }

    fn draw_axes(&self, img: &mut RgbImage, title: &str, xlabel: &str) {
        draw_text(img, title, LEFT, 12, 3);
        line(img, (LEFT as i64, TOP as i64), (LEFT as i64, (H - BOTTOM) as i64), AXIS);
        line(img, (LEFT as i64, (H - BOTTOM) as i64), ((W - RIGHT) as i64, (H - BOTTOM) as i64), AXIS);
        let (ylo, yhi) = (fmt(self.y.0), fmt(self.y.1));
        draw_text(img, &yhi, LEFT.saturating_sub(text_width(&yhi, 2) + 6), TOP, 2);
        draw_text(img, &ylo, LEFT.saturating_sub(text_width(&ylo, 2) + 6), H - BOTTOM - 10, 2);
        let (xlo, xhi) = (fmt(self.x.0), fmt(self.x.1));
        draw_text(img, &xlo, LEFT, H - BOTTOM + 8, 2);
        draw_text(img, &xhi, W - RIGHT - text_width(&xhi, 2), H - BOTTOM + 8, 2);
        draw_text(img, xlabel, (W - text_width(xlabel, 2)) / 2, H - BOTTOM + 22, 2);
    }
}

/// A line chart of one or more named series over shared x values.
pub fn line_plot(path: &Path, title: &str, xlabel: &str, xs: &[f64], series: &[(&str, Vec<f64>)]) -> Result<()> {
    let mut img = RgbImage::from_pixel(W, H, BG);
    let frame = Frame::new(xs.iter().copied(), series.iter().flat_map(|(_, v)| v.iter().copied()));
    frame.draw_axes(&mut img, title, xlabel);
    for (k, (name, ys)) in series.iter().enumerate() {
        let c = Rgb(PALETTE[k % PALETTE.len()]);
        let pts: Vec<(i64, i64)> =
            xs.iter().zip(ys).filter(|(_, y)| y.is_finite()).map(|(&x, &y)| frame.px(x, y)).collect();
        for w in pts.windows(2) {
            line(&mut img, w[0], w[1], c);
        }
        if pts.len() == 1 {
            let (x, y) = pts[0];
            for d in -2..=2 {
                line(&mut img, (x + d, y - 2), (x + d, y + 2), c);
            }
        }
        if series.len() > 1 {
            // The legend sits above the frame, right of the title, where no data is drawn.
            draw_text_color(&mut img, name, W - RIGHT - 160, 6 + k as u32 * 14, 2, PALETTE[k % PALETTE.len()]);
        }
    }
    img.save(path).with_context(|| format!("cannot write {}", path.display()))
}

/// A scatter of 2-D points coloured by label.
pub fn scatter(path: &Path, title: &str, points: &[(f64, f64)], labels: &[u32]) -> Result<()> {
    let mut img = RgbImage::from_pixel(W, H, BG);
    let frame = Frame::new(points.iter().map(|p| p.0), points.iter().map(|p| p.1));
    frame.draw_axes(&mut img, title, "PC1");
    for (&(x, y), &l) in points.iter().zip(labels) {
        let (px, py) = frame.px(x, y);
        let c = Rgb(PALETTE[l as usize % PALETTE.len()]);
        for dx in -1..=1 {
            for dy in -1..=1 {
                let (qx, qy) = (px + dx, py + dy);
                if qx >= 0 && qy >= 0 && (qx as u32) < W && (qy as u32) < H {
                    img.put_pixel(qx as u32, qy as u32, c);
                }
            }
        }
    }
    img.save(path).with_context(|| format!("cannot write {}", path.display()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn line_plot_draws_the_series_where_expected() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("l.png");
        // A rising line from the bottom-left to the top-right corner of the frame.
        line_plot(&p, "LOSS", "EPOCH", &[0.0, 1.0], &[("a", vec![0.0, 1.0])]).unwrap();
        let img = image::open(&p).unwrap().to_rgb8();
        assert_eq!(img.get_pixel(LEFT, H - BOTTOM).0, PALETTE[0]);
        assert_eq!(img.get_pixel(W - RIGHT, TOP).0, PALETTE[0]);
        let mid = ((LEFT + W - RIGHT) / 2, (TOP + H - BOTTOM) / 2);
        assert_eq!(img.get_pixel(mid.0, mid.1).0, PALETTE[0]);
        // Nothing drawn in the top-left of the frame.
        assert_eq!(*img.get_pixel(LEFT + 30, TOP + 60), BG);
    }

    #[test]
    fn scatter_colours_points_by_label() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("s.png");
        scatter(&p, "PCA", &[(0.0, 0.0), (1.0, 1.0)], &[0, 3]).unwrap();
        let img = image::open(&p).unwrap().to_rgb8();
        assert_eq!(img.get_pixel(LEFT, H - BOTTOM - 1).0, PALETTE[0]);
        assert_eq!(img.get_pixel(W - RIGHT, TOP).0, PALETTE[3]);
    }
}
