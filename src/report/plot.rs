//! The run reports' charts, drawn with plotters in DejaVu Sans (embedded in the binary): line
//! charts of per-step or per-epoch series with ticks, axis labels and a legend, every point
//! marked (a single kNN point stays visible), and a 2-D scatter of embeddings coloured by class
//! with a class legend. Each chart is written as PNG and SVG side by side.

use anyhow::{anyhow, Result};
use plotters::coord::ranged1d::{DefaultFormatting, KeyPointHint};
use plotters::coord::types::RangedCoordf64;
use plotters::coord::Shift;
use plotters::prelude::*;
use std::path::Path;

const W: u32 = 900;
const H: u32 = 520;

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

fn colour(i: usize) -> RGBColor {
    let [r, g, b] = PALETTE[i % PALETTE.len()];
    RGBColor(r, g, b)
}

/// Registers the embedded font as plotters' "sans-serif" (once).
pub fn font() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        let bytes: &'static [u8] = include_bytes!("../../assets/DejaVuSans.ttf");
        if plotters::style::register_font("sans-serif", FontStyle::Normal, bytes).is_err() {
            eprintln!("warning: the embedded font did not load; plots will have no text");
        }
    });
}

fn err<E: std::fmt::Debug>(path: &Path) -> impl Fn(E) -> anyhow::Error + '_ {
    move |e| anyhow!("cannot draw {}: {e:?}", path.display())
}

/// A tick label: the shortest of whole, up-to-4-decimal or exponent form (ticks near zero, which
/// land at 1e-17 by rounding, print as 0).
fn number(v: f64) -> String {
    let a = v.abs();
    if a < 1e-12 {
        return "0".into();
    }
    if !(1e-3..1e6).contains(&a) {
        return format!("{v:.1e}");
    }
    let s = format!("{v:.4}");
    s.trim_end_matches('0').trim_end_matches('.').to_string()
}

/// The padded range of the finite values, never empty.
fn range(values: impl Iterator<Item = f64>) -> (f64, f64) {
    let (lo, hi) =
        values.filter(|v| v.is_finite()).fold((f64::INFINITY, f64::NEG_INFINITY), |(a, b), v| (a.min(v), b.max(v)));
    if !lo.is_finite() {
        return (0.0, 1.0);
    }
    let pad = if hi > lo { (hi - lo) * 0.06 } else { lo.abs().max(1.0) * 0.05 };
    (lo - pad, hi + pad)
}

/// A linear f64 axis with the ticks `ticks` chose (plotters' `with_key_points` has no default
/// label formatting, which its mesh needs).
struct Ticked {
    inner: RangedCoordf64,
    bold: Vec<f64>,
    light: Vec<f64>,
}

impl Ticked {
    fn new(range: std::ops::Range<f64>, bold: Vec<f64>, light: Vec<f64>) -> Self {
        Ticked { inner: range.into(), bold, light }
    }
}

impl Ranged for Ticked {
    type FormatOption = DefaultFormatting;
    type ValueType = f64;

    fn map(&self, value: &f64, limit: (i32, i32)) -> i32 {
        self.inner.map(value, limit)
    }

    fn key_points<Hint: KeyPointHint>(&self, hint: Hint) -> Vec<f64> {
        if hint.weight().allow_light_points() {
            self.light.clone()
        } else {
            self.bold.clone()
        }
    }

    fn range(&self) -> std::ops::Range<f64> {
        self.inner.range()
    }
}

/// Tick values for the axis range [lo, hi]: the bold ones at whole multiples of the smallest 1-2-5
/// step (at least `min_step`) that leaves at most `max` of them, the light grid at a fifth of it (a
/// quarter for a 2-step, none below `min_step`). Plotters' own float ticks compare with an absolute
/// epsilon and drop the last tick at values like 80.0, leaving the top of a kNN chart unlabelled.
fn ticks(lo: f64, hi: f64, max: usize, min_step: f64) -> (Vec<f64>, Vec<f64>) {
    let at = |step: f64| -> Vec<f64> {
        let (first, last) = ((lo / step).ceil() as i64, (hi / step).floor() as i64);
        (first..=last).map(|k| k as f64 * step).collect()
    };
    if !(lo.is_finite() && hi.is_finite() && hi > lo) {
        return (vec![], vec![]);
    }
    let mut decade = 10f64.powf(((hi - lo) / max.max(1) as f64).log10().floor());
    loop {
        for m in [1.0, 2.0, 5.0] {
            let step = m * decade;
            if step >= min_step && at(step).len() <= max.max(1) {
                let fine = if m == 2.0 { step / 4.0 } else { step / 5.0 };
                return (at(step), if fine >= min_step { at(fine) } else { vec![] });
            }
        }
        decade *= 10.0;
    }
}

/// A chart of `series` (name, values) over `xs`; NaN values are gaps. `path` gets `.png` and
/// `.svg` (its own extension is replaced).
pub fn line_plot(
    path: &Path,
    title: &str,
    xlabel: &str,
    ylabel: &str,
    xs: &[f64],
    series: &[(&str, Vec<f64>)],
) -> Result<()> {
    let curves: Vec<(&str, Vec<(f64, f64)>)> =
        series.iter().map(|(name, ys)| (*name, xs.iter().copied().zip(ys.iter().copied()).collect())).collect();
    curves_plot(path, title, xlabel, ylabel, &curves)
}

/// A chart of curves (name, points), each with x values of its own (arms of a comparison at
/// their own compute); NaN values are gaps. `path` gets `.png` and `.svg`.
pub fn curves_plot(
    path: &Path,
    title: &str,
    xlabel: &str,
    ylabel: &str,
    curves: &[(&str, Vec<(f64, f64)>)],
) -> Result<()> {
    font();
    let png = path.with_extension("png");
    draw_lines(BitMapBackend::new(&png, (W, H)).into_drawing_area(), &png, title, xlabel, ylabel, curves)?;
    let svg = path.with_extension("svg");
    draw_lines(SVGBackend::new(&svg, (W, H)).into_drawing_area(), &svg, title, xlabel, ylabel, curves)?;
    Ok(())
}

#[allow(clippy::too_many_arguments)]
fn draw_lines<DB: DrawingBackend>(
    area: DrawingArea<DB, Shift>,
    path: &Path,
    title: &str,
    xlabel: &str,
    ylabel: &str,
    curves: &[(&str, Vec<(f64, f64)>)],
) -> Result<()>
where
    DB::ErrorType: 'static,
{
    let e = err(path);
    area.fill(&WHITE).map_err(&e)?;
    let ((x0, x1), (x_bold, x_light)) = x_axis(curves);
    let (y0, y1) = range(curves.iter().flat_map(|(_, p)| p.iter().map(|q| q.1)));
    let (y_bold, y_light) = ticks(y0, y1, 10, 0.0);
    let mut chart = ChartBuilder::on(&area)
        .caption(title, ("sans-serif", 24))
        .margin(16)
        .x_label_area_size(48)
        .y_label_area_size(72)
        .build_cartesian_2d(Ticked::new(x0..x1, x_bold, x_light), Ticked::new(y0..y1, y_bold, y_light))
        .map_err(&e)?;
    chart
        .configure_mesh()
        .x_desc(xlabel)
        .y_desc(ylabel)
        .x_label_formatter(&|v| number(*v))
        .y_label_formatter(&|v| number(*v))
        .label_style(("sans-serif", 15))
        .axis_desc_style(("sans-serif", 17))
        .light_line_style(RGBColor(235, 235, 235))
        .draw()
        .map_err(&e)?;
    for (k, (name, points)) in curves.iter().enumerate() {
        let c = colour(k);
        let finite = points.iter().filter(|p| p.1.is_finite()).count();
        if finite == 0 {
            continue; // nothing measured (an online probe of an unlabeled run): no legend entry
        }
        // Runs of finite points as lines; every finite point also as a dot, small only where
        // the dots are dense (a sparse evaluation among many epochs keeps full-size dots).
        for run in points.split(|p| !p.1.is_finite()).filter(|r| r.len() > 1) {
            chart.draw_series(LineSeries::new(run.iter().copied(), c.stroke_width(2))).map_err(&e)?;
        }
        let dots = points.iter().filter(|p| p.1.is_finite()).copied();
        let radius = if finite > 60 { 1 } else { 4 };
        chart
            .draw_series(dots.map(move |p| Circle::new(p, radius, c.filled())))
            .map_err(&e)?
            .label(*name)
            .legend(move |(x, y)| Rectangle::new([(x, y - 5), (x + 18, y + 5)], c.filled()));
    }
    finish(chart, area, legend_corner(curves, (x0, x1), (y0, y1)), &e)
}

/// The x range and its (labelled, light) ticks. Whole-number x (epochs, steps, seeds) gets half a
/// unit of room each side and whole ticks only, at most one per unit.
fn x_axis(curves: &[(&str, Vec<(f64, f64)>)]) -> ((f64, f64), (Vec<f64>, Vec<f64>)) {
    let xs: Vec<f64> = curves.iter().flat_map(|(_, p)| p.iter().map(|q| q.0)).collect();
    let whole = xs.iter().all(|x| x.fract() == 0.0);
    let (x0, x1) = if whole && !xs.is_empty() {
        let (lo, hi) = xs.iter().fold((f64::INFINITY, f64::NEG_INFINITY), |(a, b), &x| (a.min(x), b.max(x)));
        let pad = ((hi - lo) * 0.04).max(0.5);
        (lo - pad, hi + pad)
    } else {
        range(xs.iter().copied())
    };
    let t = if whole { ticks(x0, x1, ((x1 - x0).round() as usize).clamp(2, 10), 1.0) } else { ticks(x0, x1, 10, 0.0) };
    ((x0, x1), t)
}

/// The chart corner whose box (35 % of each axis) holds the fewest points, for the legend; on a
/// tie the right-hand corners first (rising accuracy curves end top right, falling losses bottom
/// right, so the other right-hand corner is usually empty).
fn legend_corner(
    curves: &[(&str, Vec<(f64, f64)>)],
    (x0, x1): (f64, f64),
    (y0, y1): (f64, f64),
) -> SeriesLabelPosition {
    let count = |right: bool, top: bool| {
        let (xm, ym) = (
            if right { x1 - 0.35 * (x1 - x0) } else { x0 + 0.35 * (x1 - x0) },
            if top { y1 - 0.35 * (y1 - y0) } else { y0 + 0.35 * (y1 - y0) },
        );
        let inside =
            |q: &(f64, f64)| (if right { q.0 >= xm } else { q.0 <= xm }) && if top { q.1 >= ym } else { q.1 <= ym };
        curves.iter().flat_map(|(_, p)| p.iter()).filter(|q| inside(q)).count()
    };
    let corners = [
        (true, true, SeriesLabelPosition::UpperRight),
        (true, false, SeriesLabelPosition::LowerRight),
        (false, true, SeriesLabelPosition::UpperLeft),
        (false, false, SeriesLabelPosition::LowerLeft),
    ];
    let fewest = corners.iter().map(|&(r, t, _)| count(r, t)).min().unwrap_or(0);
    corners.into_iter().find(|&(r, t, _)| count(r, t) == fewest).map_or(SeriesLabelPosition::UpperRight, |c| c.2)
}

/// A chart of curves (name, points) on logarithmic x and y axes (cost against data size); points
/// that are not positive and finite are left out. `path` gets `.png` and `.svg`.
pub fn log_log_plot(
    path: &Path,
    title: &str,
    xlabel: &str,
    ylabel: &str,
    curves: &[(&str, Vec<(f64, f64)>)],
) -> Result<()> {
    font();
    let curves: Vec<(&str, Vec<(f64, f64)>)> = curves
        .iter()
        .map(|(n, p)| {
            (*n, p.iter().copied().filter(|q| q.0 > 0.0 && q.1 > 0.0 && q.0.is_finite() && q.1.is_finite()).collect())
        })
        .collect();
    let png = path.with_extension("png");
    draw_log_log(BitMapBackend::new(&png, (W, H)).into_drawing_area(), &png, title, xlabel, ylabel, &curves)?;
    let svg = path.with_extension("svg");
    draw_log_log(SVGBackend::new(&svg, (W, H)).into_drawing_area(), &svg, title, xlabel, ylabel, &curves)
}

/// A logarithmic axis' tick label: 1, 2 and 5 times a power of ten are labelled, the ticks
/// between them left blank (their labels would run into each other).
fn log_tick(v: &f64) -> String {
    let lead = *v / 10f64.powf(v.log10().floor());
    if ![1.0, 2.0, 5.0, 10.0].iter().any(|l| (lead - l).abs() < 1e-6) {
        return String::new();
    }
    // Counts of images as 10k, 1M (a 1e6 tick would print in exponent form).
    match *v {
        v if v >= 1e6 => format!("{}M", number(v / 1e6)),
        v if v >= 1e4 => format!("{}k", number(v / 1e3)),
        v => number(v),
    }
}

/// The range of positive values, widened to whole powers of ten's neighbours (at least a decade).
fn log_range(values: impl Iterator<Item = f64>) -> (f64, f64) {
    let (lo, hi) = values.fold((f64::INFINITY, 0.0f64), |(a, b), v| (a.min(v), b.max(v)));
    if !lo.is_finite() || hi <= 0.0 {
        return (1.0, 10.0);
    }
    let (lo, hi) = (lo / 1.6, hi * 1.6);
    if hi / lo < 10.0 {
        let mid = (lo * hi).sqrt();
        (mid / 10f64.sqrt(), mid * 10f64.sqrt())
    } else {
        (lo, hi)
    }
}

fn draw_log_log<DB: DrawingBackend>(
    area: DrawingArea<DB, Shift>,
    path: &Path,
    title: &str,
    xlabel: &str,
    ylabel: &str,
    curves: &[(&str, Vec<(f64, f64)>)],
) -> Result<()>
where
    DB::ErrorType: 'static,
{
    let e = err(path);
    area.fill(&WHITE).map_err(&e)?;
    let (x0, x1) = log_range(curves.iter().flat_map(|(_, p)| p.iter().map(|q| q.0)));
    let (y0, y1) = log_range(curves.iter().flat_map(|(_, p)| p.iter().map(|q| q.1)));
    let mut chart = ChartBuilder::on(&area)
        .caption(title, ("sans-serif", 20))
        .margin(16)
        .x_label_area_size(48)
        .y_label_area_size(72)
        .build_cartesian_2d((x0..x1).log_scale(), (y0..y1).log_scale())
        .map_err(&e)?;
    chart
        .configure_mesh()
        .x_desc(xlabel)
        .y_desc(ylabel)
        .x_label_formatter(&log_tick)
        .y_label_formatter(&log_tick)
        .label_style(("sans-serif", 15))
        .axis_desc_style(("sans-serif", 17))
        .light_line_style(RGBColor(235, 235, 235))
        .draw()
        .map_err(&e)?;
    for (k, (name, points)) in curves.iter().enumerate() {
        let c = colour(k);
        chart.draw_series(LineSeries::new(points.iter().copied(), c.stroke_width(2))).map_err(&e)?;
        chart
            .draw_series(points.iter().map(move |p| Circle::new(*p, 4, c.filled())))
            .map_err(&e)?
            .label(*name)
            .legend(move |(x, y)| Rectangle::new([(x, y - 5), (x + 18, y + 5)], c.filled()));
    }
    finish(chart, area, SeriesLabelPosition::UpperLeft, &e)
}

/// Draws the legend of a line chart's series at `position` and writes the chart out.
fn finish<'a, DB: DrawingBackend + 'a, CT: CoordTranslate>(
    mut chart: ChartContext<'a, DB, CT>,
    area: DrawingArea<DB, Shift>,
    position: SeriesLabelPosition,
    e: &dyn Fn(DrawingAreaErrorKind<DB::ErrorType>) -> anyhow::Error,
) -> Result<()>
where
    DB::ErrorType: 'static,
{
    chart
        .configure_series_labels()
        .position(position)
        .label_font(("sans-serif", 15))
        .background_style(WHITE.mix(0.85))
        .border_style(RGBColor(180, 180, 180))
        .draw()
        .map_err(e)?;
    area.present().map_err(e)?;
    Ok(())
}

/// A scatter of 2-D points coloured by class, with a legend naming the classes (`names[c]`, or
/// "class c"). `path` gets `.png` and `.svg`.
pub fn scatter(path: &Path, title: &str, points: &[(f64, f64)], labels: &[u32], names: &[String]) -> Result<()> {
    font();
    let png = path.with_extension("png");
    draw_scatter(BitMapBackend::new(&png, (W, H + 60)).into_drawing_area(), &png, title, points, labels, names)?;
    let svg = path.with_extension("svg");
    draw_scatter(SVGBackend::new(&svg, (W, H + 60)).into_drawing_area(), &svg, title, points, labels, names)?;
    Ok(())
}

fn draw_scatter<DB: DrawingBackend>(
    area: DrawingArea<DB, Shift>,
    path: &Path,
    title: &str,
    points: &[(f64, f64)],
    labels: &[u32],
    names: &[String],
) -> Result<()>
where
    DB::ErrorType: 'static,
{
    let e = err(path);
    area.fill(&WHITE).map_err(&e)?;
    let area = area.margin(10, 0, 0, 0).titled(title, ("sans-serif", 24)).map_err(&e)?;
    let (w, _) = area.dim_in_pixel();
    let (plot, legend) = area.split_horizontally(w.saturating_sub(190));
    let (x0, x1) = range(points.iter().map(|p| p.0));
    let (y0, y1) = range(points.iter().map(|p| p.1));
    let mut chart = ChartBuilder::on(&plot)
        .margin(16)
        .x_label_area_size(44)
        .y_label_area_size(64)
        .build_cartesian_2d(x0..x1, y0..y1)
        .map_err(&e)?;
    chart
        .configure_mesh()
        .x_desc("first principal component")
        .y_desc("second principal component")
        .x_label_formatter(&|v| number(*v))
        .y_label_formatter(&|v| number(*v))
        .label_style(("sans-serif", 14))
        .axis_desc_style(("sans-serif", 16))
        .light_line_style(RGBColor(238, 238, 238))
        .draw()
        .map_err(&e)?;
    let classes = labels.iter().copied().max().map_or(0, |m| m as usize + 1);
    for c in 0..classes {
        let colour = colour(c);
        let mine = points.iter().zip(labels).filter(|(_, &l)| l as usize == c).map(|(p, _)| *p);
        chart.draw_series(mine.map(move |p| Circle::new(p, 2, colour.filled()))).map_err(&e)?;
    }
    // The class legend beside the chart: one row per class (at most 30 named, then a count).
    let text = TextStyle::from(("sans-serif", 14).into_font()).color(&BLACK);
    let rows = classes.min(30);
    for c in 0..rows {
        let y = 30 + 22 * c as i32;
        legend.draw(&Circle::new((14, y), 5, colour(c).filled())).map_err(&e)?;
        let name = names.get(c).cloned().unwrap_or_else(|| format!("class {c}"));
        legend.draw_text(&name, &text, (26, y - 8)).map_err(&e)?;
    }
    if classes > rows {
        legend.draw_text(&format!("... {} classes in all", classes), &text, (10, 30 + 22 * rows as i32)).map_err(&e)?;
    }
    legend.present().map_err(&e)?;
    plot.present().map_err(&e)?;
    Ok(())
}

/// Writes `text` onto an RGB image buffer (`w` x `h`) at (x, y) in the embedded font, `size`
/// pixels high, in `rgb`.
pub fn caption(
    buf: &mut [u8],
    (w, h): (u32, u32),
    text: &str,
    (x, y): (i32, i32),
    size: f64,
    rgb: [u8; 3],
) -> Result<()> {
    font();
    let area = BitMapBackend::with_buffer(buf, (w, h)).into_drawing_area();
    let colour = RGBColor(rgb[0], rgb[1], rgb[2]);
    let style = TextStyle::from(("sans-serif", size).into_font()).color(&colour);
    area.draw_text(text, &style, (x, y)).map_err(|e| anyhow!("cannot write text on an image: {e:?}"))?;
    area.present().map_err(|e| anyhow!("cannot write text on an image: {e:?}"))?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn linear_ticks_keep_the_last_multiple_below_the_top_and_respect_the_count() {
        // The swav-bn1 comparison's kNN axis: plotters labelled 78 .. 79.8 and dropped 80.
        let (bold, light) = ticks(77.93, 80.167, 10, 0.0);
        let labels: Vec<String> = bold.iter().map(|v| number(*v)).collect();
        assert_eq!(labels, ["78", "78.5", "79", "79.5", "80"]);
        assert_eq!(light.len(), 22, "{light:?}");
        let (bold, _) = ticks(77.93, 80.167, 12, 0.0);
        assert_eq!(bold.iter().map(|v| number(*v)).next_back().as_deref(), Some("80"));
        assert_eq!(bold.len(), 11);
        // Whole-number axes (epochs): whole ticks only, no grid between units.
        let (bold, light) = ticks(0.5, 3.5, 3, 1.0);
        assert_eq!((bold, light), (vec![1.0, 2.0, 3.0], vec![]));
        let (bold, light) = ticks(-1.5, 51.5, 10, 1.0);
        assert_eq!(bold, (0..=10).map(|k| k as f64 * 10.0).filter(|v| *v <= 50.0).collect::<Vec<_>>());
        assert_eq!(light.len(), 26);
        assert_eq!(ticks(1.0, 1.0, 10, 0.0), (vec![], vec![]));
    }

    #[test]
    fn the_legend_goes_to_the_emptiest_corner_right_hand_first() {
        let pos = |curves: &[(&str, Vec<(f64, f64)>)]| format!("{:?}", legend_corner(curves, (0.0, 10.0), (0.0, 10.0)));
        // Rising curves: top right is taken, bottom right is free.
        assert_eq!(pos(&[("a", vec![(1.0, 1.0), (9.0, 9.0)])]), "LowerRight");
        // Falling curves: bottom right taken.
        assert_eq!(pos(&[("a", vec![(1.0, 9.0), (9.0, 1.0)])]), "UpperRight");
        // Both right-hand corners taken (the moco-at-base chart): the empty top left.
        assert_eq!(pos(&[("a", vec![(1.0, 1.0), (9.0, 9.5)]), ("b", vec![(8.0, 0.5), (9.0, 1.0)])]), "UpperLeft");
        // Nothing anywhere: top right.
        assert_eq!(pos(&[]), "UpperRight");
    }

    #[test]
    fn log_ticks_label_one_two_five_per_decade_in_short_form() {
        let labels: Vec<String> =
            [0.05, 0.3, 1.0, 2.0, 7.0, 1e4, 2e4, 3e4, 5e5, 1e6, 2e6].iter().map(log_tick).collect();
        assert_eq!(labels, ["0.05", "", "1", "2", "", "10k", "20k", "", "500k", "1M", "2M"]);
    }

    #[test]
    fn log_ranges_span_the_points_and_at_least_a_decade() {
        let (lo, hi) = log_range([1e4, 1.28e6].into_iter());
        assert!(lo < 1e4 && hi > 1.28e6 && hi / lo < 1e3, "{lo} {hi}");
        let (lo, hi) = log_range([1566.0, 1780.0].into_iter());
        assert!(lo < 1566.0 && hi > 1780.0 && (hi / lo - 10.0).abs() < 1e-9, "{lo} {hi}");
        assert_eq!(log_range(std::iter::empty()), (1.0, 10.0));
    }

    /// A kNN evaluated every 10th of 100 epochs is 10 full-size dots (not the small dots of a
    /// dense curve), and a curve with nothing measured gets no legend entry.
    #[test]
    fn sparse_evaluations_keep_full_dots_and_an_empty_curve_has_no_legend() {
        let dir = std::env::temp_dir().join(format!("unmix-sparse-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let xs: Vec<f64> = (1..=100).map(f64::from).collect();
        let knn: Vec<f64> = xs.iter().map(|&x| if x % 10.0 == 0.0 { 20.0 + x / 10.0 } else { f64::NAN }).collect();
        let dense: Vec<f64> = xs.iter().map(|&x| 30.0 - x / 10.0).collect();
        line_plot(
            &dir.join("a"),
            "t",
            "epoch",
            "y",
            &xs,
            &[("kNN", knn), ("probe", vec![f64::NAN; 100]), ("dense", dense)],
        )
        .unwrap();
        let svg = std::fs::read_to_string(dir.join("a.svg")).unwrap();
        let circles = |r: &str, fill: &str| {
            svg.lines()
                .filter(|l| l.contains("<circle") && l.contains(&format!("r=\"{r}\"")) && l.contains(fill))
                .count()
        };
        assert_eq!(circles("4", "#1F77B4"), 10, "the kNN dots");
        assert_eq!(circles("1", "#2CA02C"), 100, "the dense curve's dots, in the third colour");
        let labels: Vec<&str> = svg.lines().map(str::trim).filter(|l| ["kNN", "probe", "dense"].contains(l)).collect();
        assert_eq!(labels, ["kNN", "dense"], "legend entries");
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn a_log_log_chart_is_written_as_png_and_svg_without_the_points_it_cannot_place() {
        let dir = std::env::temp_dir().join(format!("unmix-loglog-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let curves = [("a", vec![(1e4, 0.04), (1e5, 0.3), (0.0, 1.0), (1.28e6, f64::NAN)])];
        log_log_plot(&dir.join("c"), "t", "x", "y", &curves).unwrap();
        let png = std::fs::read(dir.join("c.png")).unwrap();
        assert_eq!(&png[1..4], b"PNG");
        assert!(std::fs::read_to_string(dir.join("c.svg")).unwrap().contains("<svg"));
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
