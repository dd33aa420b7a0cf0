//! `--plot FILE.svg`: p50 and p99 latency for each second of the run, with a line where
//! each new token was installed, so that a reader sees at a glance whether a refresh cost
//! the callers anything.
//!
//! plotters' SVG backend, without its `ttf` feature: no font file and no system library,
//! text is sized by estimate and set by the viewer in its own sans-serif.

use std::path::Path;

use plotters::coord::types::RangedCoordf64;
use plotters::coord::Shift;
use plotters::element::DashedPathElement;
use plotters::prelude::*;
use plotters::style::text_anchor::{HPos, Pos, VPos};
use tower::BoxError;

use crate::latency::SecondLatency;

/// The series' colours; the tests find each series' points by them.
pub const P50_COLOUR: RGBColor = RGBColor(0x1f, 0x77, 0xb4);
pub const P99_COLOUR: RGBColor = RGBColor(0xd6, 0x27, 0x28);
/// The token markers' colour, apart from both series'.
const TOKEN_COLOUR: RGBColor = RGBColor(0x2c, 0xa0, 0x2c);

/// Wide enough for ten seconds of points, low enough to sit in a README.
const SIZE: (u32, u32) = (960, 480);
const FONT: &str = "sans-serif";
const TITLE: &str = "Request latency per second while the token is refreshed";
/// The band between the title and the plot that holds the `token N` labels, in pixels.
const LABELS_ABOVE: i32 = 24;
/// The room right of the plot that holds the legend, in pixels.
const LEGEND_WIDTH: u32 = 140;

type Root<'a> = DrawingArea<SVGBackend<'a>, Shift>;
type Chart<'a> = ChartContext<'a, SVGBackend<'a>, Cartesian2d<RangedCoordf64, RangedCoordf64>>;

/// A token the layer reported obtained (`TokenEvent::Obtained`), and when.
#[derive(Debug, Clone, PartialEq)]
pub struct Install {
    pub generation: u64,
    /// Seconds since the run started.
    pub at: f64,
}

/// Writes the chart of `seconds` and `installs` to `path`, making its folder if need be
/// (`target/` when the build went to another `CARGO_TARGET_DIR`, say).
pub fn write(path: &Path, seconds: &[SecondLatency], installs: &[Install]) -> Result<(), BoxError> {
    let svg = svg(seconds, installs)?;
    let failed = |e: std::io::Error| format!("--plot {}: {e}", path.display());
    if let Some(folder) = path.parent().filter(|f| !f.as_os_str().is_empty()) {
        std::fs::create_dir_all(folder).map_err(failed)?;
    }
    std::fs::write(path, svg).map_err(failed)?;
    Ok(())
}

/// The chart as an SVG document.
pub fn svg(seconds: &[SecondLatency], installs: &[Install]) -> Result<String, BoxError> {
    let mut svg = String::new();
    {
        let root = SVGBackend::with_string(&mut svg, SIZE).into_drawing_area();
        root.fill(&WHITE)?;
        let below_title = root.titled(TITLE, (FONT, 24))?;
        let mut chart = ChartBuilder::on(&below_title)
            .margin(16)
            .margin_top(LABELS_ABOVE)
            .margin_right(LEGEND_WIDTH)
            .x_label_area_size(48)
            .y_label_area_size(64)
            .build_cartesian_2d(0.0..x_end(seconds, installs), 0.0..y_top(seconds))?;
        draw_mesh(&mut chart)?;
        let p50 = seconds.iter().map(|s| (middle(s), s.p50_ms));
        draw_series(&mut chart, P50_COLOUR, p50)?;
        let p99 = seconds.iter().map(|s| (middle(s), s.p99_ms));
        draw_series(&mut chart, P99_COLOUR, p99)?;
        mark_installs(&root, &mut chart, installs)?;
        draw_legend(&root, &chart)?;
        root.present()?;
    }
    Ok(svg)
}

/// Axes, their labels, and a light grid at whole seconds (or every few, for a long run)
/// and round milliseconds.
fn draw_mesh(chart: &mut Chart<'_>) -> Result<(), BoxError> {
    let seconds = chart.x_range().end as usize;
    // Beyond about 16, second labels crowd each other: plotters then picks round steps.
    let x_labels = (seconds + 1).min(16);
    let y_decimals = if chart.y_range().end >= 10.0 { 0 } else { 1 };
    chart
        .configure_mesh()
        .x_desc("seconds since start")
        .y_desc("latency (ms)")
        .x_labels(x_labels)
        .x_label_formatter(&|x| format!("{x:.0}"))
        .y_label_formatter(&|y| format!("{y:.y_decimals$}"))
        .axis_desc_style((FONT, 16))
        .label_style((FONT, 14))
        .bold_line_style(BLACK.mix(0.12))
        .light_line_style(TRANSPARENT)
        .draw()?;
    Ok(())
}

/// A line through one percentile's points, and a dot on each.
fn draw_series(
    chart: &mut Chart<'_>,
    colour: RGBColor,
    points: impl Iterator<Item = (f64, f64)> + Clone,
) -> Result<(), BoxError> {
    chart.draw_series(LineSeries::new(points.clone(), colour.stroke_width(2)))?;
    chart.draw_series(points.map(|point| Circle::new(point, 3, colour.filled())))?;
    Ok(())
}

/// A dashed vertical line where each token was installed, and its `token N` label above
/// the plot (on `root`), where it covers no point.
fn mark_installs(
    root: &Root<'_>,
    chart: &mut Chart<'_>,
    installs: &[Install],
) -> Result<(), BoxError> {
    let top = chart.y_range().end;
    let marker = |i: &Install| dashed([(i.at, 0.0), (i.at, top)]);
    chart.draw_series(installs.iter().map(marker))?;
    let font = (FONT, 14).into_font().color(&TOKEN_COLOUR);
    for install in installs {
        let (x, plot_top) = chart.backend_coord(&(install.at, top));
        let text = format!("token {}", install.generation);
        let above = (x + 3, plot_top - LABELS_ABOVE + 4);
        root.draw(&Text::new(text, above, &font))?;
    }
    Ok(())
}

/// The legend, right of the plot (on `root`), where it covers nothing. Its keys are
/// lines, so that every circle in the SVG is a data point.
fn draw_legend(root: &Root<'_>, chart: &Chart<'_>) -> Result<(), BoxError> {
    let (right, top) = chart.backend_coord(&(chart.x_range().end, chart.y_range().end));
    let font = TextStyle::from((FONT, 16).into_font()).pos(Pos::new(HPos::Left, VPos::Center));
    let key = |row: i32| {
        let y = top + 12 + row * 24;
        ((right + 16, y), (right + 40, y))
    };
    for (row, (name, colour)) in (0..).zip([("p50", P50_COLOUR), ("p99", P99_COLOUR)]) {
        let (from, to) = key(row);
        root.draw(&PathElement::new([from, to], colour.stroke_width(2)))?;
        root.draw(&Text::new(name, (to.0 + 8, to.1), &font))?;
    }
    let (from, to) = key(2);
    root.draw(&dashed([from, to]))?;
    root.draw(&Text::new("new token", (to.0 + 8, to.1), &font))?;
    Ok(())
}

/// A token marker's dashed line, or its key in the legend.
fn dashed<C: Clone>(ends: [C; 2]) -> DashedPathElement<std::array::IntoIter<C, 2>, u32> {
    DashedPathElement::new(ends, 6, 4, TOKEN_COLOUR.stroke_width(1))
}

/// The x of a second's point: the middle of the second its requests completed in.
fn middle(second: &SecondLatency) -> f64 {
    second.second as f64 + 0.5
}

/// The end of the x axis: past the last second and the last install, and at least 1 s.
fn x_end(seconds: &[SecondLatency], installs: &[Install]) -> f64 {
    let last_second = seconds.iter().map(|s| s.second as f64 + 1.0);
    let last_install = installs.iter().map(|i| i.at.ceil());
    last_second.chain(last_install).fold(1.0, f64::max)
}

/// The top of the y axis: the slowest p99 and a third more, so that no point touches the
/// top; at least 1 ms.
fn y_top(seconds: &[SecondLatency]) -> f64 {
    let slowest = seconds.iter().map(|s| s.p99_ms).fold(0.0, f64::max);
    (slowest * 4.0 / 3.0).max(1.0)
}
