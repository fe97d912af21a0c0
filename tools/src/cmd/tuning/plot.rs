//! Line charts as SVG files (plotters' SVG backend, no system fonts): one line per series, a
//! title, labelled axes and a legend.

use std::path::Path;

use anyhow::{Context, Result};
use plotters::prelude::*;

/// One line of a chart.
#[derive(Clone, Debug)]
pub struct Series {
    /// The legend entry.
    pub name: String,
    /// Points (x, y) in the chart's units, in drawing order.
    pub points: Vec<(f64, f64)>,
    /// Draw dashed (a reference line such as a target), not solid.
    pub dashed: bool,
}

impl Series {
    /// A solid line.
    pub fn line(name: impl Into<String>, points: Vec<(f64, f64)>) -> Self {
        Self { name: name.into(), points, dashed: false }
    }
}

/// What a chart shows.
#[derive(Clone, Debug)]
pub struct Chart<'a> {
    /// The caption above the plot.
    pub title: &'a str,
    /// The x axis label, with its unit.
    pub x_label: &'a str,
    /// The y axis label, with its unit.
    pub y_label: &'a str,
    /// The lines.
    pub series: Vec<Series>,
    /// A logarithmic y axis (for curves spanning orders of magnitude).
    pub log_y: bool,
}

/// Distinguishable colours (Tableau 10), one per series in order.
const PALETTE: [RGBColor; 8] = [
    RGBColor(31, 119, 180),
    RGBColor(255, 127, 14),
    RGBColor(44, 160, 44),
    RGBColor(214, 39, 40),
    RGBColor(148, 103, 189),
    RGBColor(140, 86, 75),
    RGBColor(227, 119, 194),
    RGBColor(127, 127, 127),
];

/// The range covering every point, widened when empty or flat so the axes stay drawable.
fn range(values: impl Iterator<Item = f64>, from_zero: bool) -> (f64, f64) {
    let (mut lo, mut hi) = (f64::INFINITY, f64::NEG_INFINITY);
    for v in values.filter(|v| v.is_finite()) {
        lo = lo.min(v);
        hi = hi.max(v);
    }
    if !lo.is_finite() {
        return (0.0, 1.0);
    }
    if from_zero {
        lo = lo.min(0.0);
    }
    if hi - lo < 1e-12 {
        hi = lo + 1.0;
    }
    (lo, hi + (hi - lo) * 0.05)
}

/// Draws `chart` into an SVG file at `path` (800 × 480).
pub fn write_svg(path: &Path, chart: &Chart<'_>) -> Result<()> {
    draw(path, chart).with_context(|| format!("drawing {}", path.display()))
}

/// Mesh, series and legend: the same for a linear and a logarithmic y axis.
macro_rules! draw_body {
    ($c:ident, $chart:ident, $legend:expr) => {{
        $c.configure_mesh()
            .x_desc($chart.x_label)
            .y_desc($chart.y_label)
            .axis_desc_style(("sans-serif", 15))
            .light_line_style(WHITE.mix(0.0))
            .draw()?;
        for (i, s) in $chart.series.iter().enumerate() {
            let colour = PALETTE[i % PALETTE.len()];
            let style = colour.stroke_width(2);
            if s.points.len() <= 30 && !s.dashed {
                // Few points (one per inference, say): mark each, so a lone point shows too.
                $c.draw_series(s.points.iter().map(|&p| Circle::new(p, 3, colour.filled())))?;
            }
            let drawn = if s.dashed {
                $c.draw_series(DashedLineSeries::new(s.points.iter().copied(), 8, 5, style))?
            } else {
                $c.draw_series(LineSeries::new(s.points.iter().copied(), style))?
            };
            drawn
                .label(s.name.as_str())
                .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], style));
        }
        $c.configure_series_labels()
            .position($legend)
            .background_style(WHITE.mix(0.85))
            .border_style(BLACK)
            .label_font(("sans-serif", 14))
            .draw()?;
    }};
}

fn draw(path: &Path, chart: &Chart<'_>) -> Result<()> {
    let points = || chart.series.iter().flat_map(|s| s.points.iter());
    let (x0, x1) = range(points().map(|p| p.0), false);
    let root = SVGBackend::new(path, (800, 480)).into_drawing_area();
    root.fill(&WHITE)?;
    let mut builder = ChartBuilder::on(&root);
    builder.caption(chart.title, ("sans-serif", 20)).margin(12).x_label_area_size(44);
    builder.y_label_area_size(64);
    if chart.log_y {
        let pos = points().map(|p| p.1).filter(|v| *v > 0.0);
        let (lo, hi) = range(pos, false);
        let (lo, hi) = (lo * 0.9, hi * 1.1);
        let mut c = builder.build_cartesian_2d(x0..x1, (lo..hi).log_scale())?;
        // Budget curves fall steeply on the left and flatten low: the middle right is free.
        draw_body!(c, chart, SeriesLabelPosition::MiddleRight);
    } else {
        let (y0, y1) = range(points().map(|p| p.1), true);
        let mut c = builder.build_cartesian_2d(x0..x1, y0..y1)?;
        draw_body!(c, chart, SeriesLabelPosition::UpperRight);
    }
    root.present()?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ranges_cover_the_points_and_stay_drawable() {
        assert_eq!(range([2.0, 4.0].into_iter(), false), (2.0, 4.1));
        assert_eq!(range([2.0, 4.0].into_iter(), true), (0.0, 4.2));
        assert_eq!(range(std::iter::empty(), false), (0.0, 1.0));
        let (lo, hi) = range([3.0, 3.0, f64::NAN].into_iter(), false);
        assert!(lo == 3.0 && hi > lo);
    }
}
