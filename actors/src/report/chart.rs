//! One metric as an SVG line chart: one line per phase, markers where a point stands alone.

use anyhow::{anyhow, Result};
use plotters::prelude::*;

use crate::metrics_log::Series;

const COLORS: [RGBColor; 6] = [
    RGBColor(31, 119, 180),
    RGBColor(214, 39, 40),
    RGBColor(44, 160, 44),
    RGBColor(255, 127, 14),
    RGBColor(148, 103, 189),
    RGBColor(140, 86, 75),
];

/// Every point is marked when a series is this short; longer ones are plain lines.
const MARK_ALL_BELOW: usize = 30;

/// Draws `series` (all of one metric) and returns the SVG text.
pub fn render_svg(title: &str, y_label: &str, series: &[Series]) -> Result<String> {
    let finite: Vec<(f64, f64)> = series
        .iter()
        .flat_map(|s| s.points.iter())
        .filter(|(_, y)| y.is_finite())
        .map(|&(x, y)| (x as f64, y))
        .collect();
    let (x_range, y_range) = ranges(&finite);
    let mut svg = String::new();
    {
        let root = SVGBackend::with_string(&mut svg, (820, 460)).into_drawing_area();
        root.fill(&WHITE).map_err(plot_err)?;
        let mut chart = ChartBuilder::on(&root)
            .caption(title, ("sans-serif", 22))
            .margin(14)
            .x_label_area_size(42)
            .y_label_area_size(70)
            .build_cartesian_2d(x_range, y_range)
            .map_err(plot_err)?;
        chart
            .configure_mesh()
            .x_desc("step")
            .x_label_formatter(&step_label)
            .y_desc(y_label)
            .light_line_style(WHITE.mix(0.0))
            .draw()
            .map_err(plot_err)?;
        for (i, s) in series.iter().enumerate() {
            let color = COLORS[i % COLORS.len()];
            let runs = finite_runs(&s.points);
            let mark_all = s.points.len() < MARK_ALL_BELOW;
            // An empty anchor series carries the legend entry even when all runs are markers.
            chart
                .draw_series(LineSeries::new(Vec::<(f64, f64)>::new(), color))
                .map_err(plot_err)?
                .label(s.phase.clone())
                .legend(move |(x, y)| {
                    PathElement::new(vec![(x, y), (x + 20, y)], color.stroke_width(2))
                });
            for run in &runs {
                if run.len() > 1 {
                    chart
                        .draw_series(LineSeries::new(run.iter().copied(), color.stroke_width(2)))
                        .map_err(plot_err)?;
                }
                if run.len() == 1 || mark_all {
                    let radius = if run.len() == 1 { 4 } else { 3 };
                    chart
                        .draw_series(run.iter().map(|&p| Circle::new(p, radius, color.filled())))
                        .map_err(plot_err)?;
                }
            }
        }
        chart
            .configure_series_labels()
            .position(SeriesLabelPosition::UpperRight)
            .background_style(WHITE.mix(0.85))
            .border_style(BLACK.mix(0.4))
            .draw()
            .map_err(plot_err)?;
        root.present().map_err(plot_err)?;
    }
    Ok(svg)
}

/// Steps are integers; ticks between them (short runs) keep one decimal.
fn step_label(x: &f64) -> String {
    if x.fract() == 0.0 {
        format!("{x:.0}")
    } else {
        format!("{x:.1}")
    }
}

fn plot_err<E: std::fmt::Display>(e: E) -> anyhow::Error {
    anyhow!("drawing chart: {e}")
}

/// Consecutive finite points; a NaN breaks the line.
fn finite_runs(points: &[(u64, f64)]) -> Vec<Vec<(f64, f64)>> {
    let mut runs = vec![Vec::new()];
    for &(x, y) in points {
        if y.is_finite() {
            runs.last_mut().expect("never empty").push((x as f64, y));
        } else if !runs.last().expect("never empty").is_empty() {
            runs.push(Vec::new());
        }
    }
    runs.retain(|r| !r.is_empty());
    runs
}

/// Axis ranges with a margin; a flat or single-point series still gets a visible span.
fn ranges(points: &[(f64, f64)]) -> (std::ops::Range<f64>, std::ops::Range<f64>) {
    let span = |vals: &mut dyn Iterator<Item = f64>, min_pad: f64| {
        let (lo, hi) = vals.fold((f64::INFINITY, f64::NEG_INFINITY), |(lo, hi), v| {
            (lo.min(v), hi.max(v))
        });
        if !lo.is_finite() {
            return 0.0..1.0;
        }
        let pad = ((hi - lo) * 0.05).max(min_pad.max(hi.abs().max(lo.abs()) * 0.05));
        (lo - pad)..(hi + pad)
    };
    let x = span(&mut points.iter().map(|p| p.0), 0.5);
    let y = span(&mut points.iter().map(|p| p.1), 1e-3);
    (x, y)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nan_splits_runs() {
        let runs = finite_runs(&[(0, 1.0), (1, f64::NAN), (2, 2.0), (3, 3.0)]);
        assert_eq!(runs, vec![vec![(0.0, 1.0)], vec![(2.0, 2.0), (3.0, 3.0)]]);
    }

    #[test]
    fn flat_ranges_are_widened() {
        let (x, y) = ranges(&[(5.0, 0.0)]);
        assert!(x.start < 5.0 && x.end > 5.0);
        assert!(y.start < 0.0 && y.end > 0.0);
    }
}
