//! `grrm report RUN_DIR`: one SVG chart per metric in `metrics.jsonl` plus `report.html`.
//!
//! SVG only: plotters' bitmap backend needs system font libraries to draw text, which this
//! project does not assume; browsers and most viewers show the SVGs directly.

mod chart;
mod page;

use std::path::{Path, PathBuf};

use anyhow::{bail, Result};

use crate::atomic::write_atomic;
use crate::metrics_log::{names, MetricsLog, Series};
use crate::run_dir::{CONFIG_FILE, METRICS_FILE};

pub use chart::render_svg;

/// Metrics drawn first, in this order, with their titles; the rest follow in file order.
pub const KNOWN_METRICS: [(&str, &str); 8] = [
    (names::REWARD_MEAN, "Mean reward"),
    (names::HIT_RATE, "Exact-hit rate"),
    (names::KL, "KL to the reference policy"),
    (names::CLIP_FRAC, "Clip fraction"),
    (names::ZERO_VAR_FRAC, "Zero-variance group fraction"),
    (names::LOSS, "Loss"),
    (names::RECALL_AT_10, "Recall@10"),
    (names::STEP_SECONDS, "Seconds per step"),
];

#[derive(Clone, Debug)]
pub struct ChartFile {
    pub metric: String,
    pub title: String,
    /// File name inside the output folder.
    pub file: String,
    pub series: Vec<Series>,
}

#[derive(Clone, Debug)]
pub struct Report {
    pub out_dir: PathBuf,
    pub html: PathBuf,
    pub charts: Vec<ChartFile>,
    pub records: usize,
    pub torn_tail: bool,
    pub bad_lines: usize,
}

/// Reads `run_dir/metrics.jsonl` and writes the charts and `report.html` into `out_dir`
/// (default `run_dir/report`).
pub fn generate_report(run_dir: &Path, out_dir: Option<&Path>) -> Result<Report> {
    let metrics_path = run_dir.join(METRICS_FILE);
    if !metrics_path.is_file() {
        bail!("{} has no {METRICS_FILE}", run_dir.display());
    }
    let log = MetricsLog::read(&metrics_path)?;
    if log.records.is_empty() {
        bail!("{} holds no records", metrics_path.display());
    }
    if let Some(t) = &log.torn_tail {
        tracing::warn!(
            "{}: skipped a torn last line: {t:?}",
            metrics_path.display()
        );
    }
    for (line, why) in &log.bad_lines {
        tracing::warn!("{}:{line}: skipped: {why}", metrics_path.display());
    }
    let out_dir = out_dir.map_or_else(|| run_dir.join("report"), Path::to_path_buf);
    std::fs::create_dir_all(&out_dir)?;

    let mut charts = Vec::new();
    let mut used = Vec::<String>::new();
    for metric in ordered_metrics(&log) {
        let series = log.series(&metric);
        if series
            .iter()
            .all(|s| s.points.iter().all(|p| !p.1.is_finite()))
        {
            continue;
        }
        let title = title_of(&metric);
        let svg = render_svg(&title, &metric, &series)?;
        let file = unique_file_name(&metric, &mut used);
        write_atomic(&out_dir.join(&file), svg.as_bytes())?;
        charts.push(ChartFile {
            metric,
            title,
            file,
            series,
        });
    }
    let config = std::fs::read_to_string(run_dir.join(CONFIG_FILE)).ok();
    let html = out_dir.join("report.html");
    let page = page::render_html(run_dir, &log, &charts, config.as_deref());
    write_atomic(&html, page.as_bytes())?;
    Ok(Report {
        out_dir,
        html,
        charts,
        records: log.records.len(),
        torn_tail: log.torn_tail.is_some(),
        bad_lines: log.bad_lines.len(),
    })
}

fn ordered_metrics(log: &MetricsLog) -> Vec<String> {
    let present = log.metric_names();
    let mut out: Vec<String> = KNOWN_METRICS
        .iter()
        .map(|(m, _)| m.to_string())
        .filter(|m| present.contains(m))
        .collect();
    let rest: Vec<String> = present.into_iter().filter(|m| !out.contains(m)).collect();
    out.extend(rest);
    out
}

fn title_of(metric: &str) -> String {
    KNOWN_METRICS
        .iter()
        .find(|(m, _)| *m == metric)
        .map_or_else(|| metric.to_string(), |(_, t)| t.to_string())
}

/// `recall@10` -> `recall_10.svg`; distinct metrics never share a file.
fn unique_file_name(metric: &str, used: &mut Vec<String>) -> String {
    let stem: String = metric
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' {
                c
            } else {
                '_'
            }
        })
        .collect();
    let mut name = format!("{stem}.svg");
    let mut n = 2;
    while used.contains(&name) || name == "report.svg" {
        name = format!("{stem}-{n}.svg");
        n += 1;
    }
    used.push(name.clone());
    name
}
