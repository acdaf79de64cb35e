//! `report.html`: a table of first/last/min/max per series, then every chart, then the config.

use std::fmt::Write;
use std::path::Path;

use super::ChartFile;
use crate::metrics_log::MetricsLog;
use crate::summary::format_value;

pub fn render_html(
    run_dir: &Path,
    log: &MetricsLog,
    charts: &[ChartFile],
    config: Option<&str>,
) -> String {
    let run = esc(&run_dir.display().to_string());
    let mut h = String::new();
    let _ = write!(
        h,
        "<!DOCTYPE html>\n<html><head><meta charset=\"utf-8\"><title>grrm report: {run}</title>\n\
         <style>body{{font-family:sans-serif;max-width:900px;margin:2em auto}}\
         table{{border-collapse:collapse}}td,th{{border:1px solid #ccc;padding:2px 8px;text-align:right}}\
         td:first-child,td:nth-child(2){{text-align:left}}img{{width:100%}}</style></head><body>\n\
         <h1>Run {run}</h1>\n<p>{} records.",
        log.records.len()
    );
    if log.torn_tail.is_some() {
        h += " A torn last line was skipped.";
    }
    if !log.bad_lines.is_empty() {
        let _ = write!(h, " {} unreadable lines were skipped.", log.bad_lines.len());
    }
    h += "</p>\n<table><tr><th>metric</th><th>phase</th><th>points</th><th>first</th>\
          <th>last</th><th>min</th><th>max</th></tr>\n";
    for c in charts {
        for s in &c.series {
            let vals: Vec<f64> = s
                .points
                .iter()
                .map(|p| p.1)
                .filter(|v| v.is_finite())
                .collect();
            let (Some(first), Some(last)) = (vals.first(), vals.last()) else {
                continue;
            };
            let min = vals.iter().copied().fold(f64::INFINITY, f64::min);
            let max = vals.iter().copied().fold(f64::NEG_INFINITY, f64::max);
            let _ = writeln!(
                h,
                "<tr><td><a href=\"#{}\">{}</a></td><td>{}</td><td>{}</td><td>{}</td><td>{}</td>\
                 <td>{}</td><td>{}</td></tr>",
                esc(&c.file),
                esc(&c.metric),
                esc(&s.phase),
                s.points.len(),
                format_value(*first),
                format_value(*last),
                format_value(min),
                format_value(max)
            );
        }
    }
    h += "</table>\n";
    for c in charts {
        let _ = writeln!(
            h,
            "<figure id=\"{f}\"><img src=\"{f}\" alt=\"{t}\"><figcaption>{t} (<code>{m}</code>)\
             </figcaption></figure>",
            f = esc(&c.file),
            t = esc(&c.title),
            m = esc(&c.metric)
        );
    }
    if let Some(cfg) = config {
        let _ = writeln!(
            h,
            "<details><summary>Resolved config</summary><pre>{}</pre></details>",
            esc(cfg)
        );
    }
    h += "</body></html>\n";
    h
}

fn esc(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}
