//! The final table of `grrm demo` and `grrm eval`: one row per model (and mode), columns
//! R@1, R@5, R@10, N@5, N@10 and the invalid/duplicate rates.

use std::fmt::Write;

use grrm_recsys::metrics::RankingMetrics;
use grrm_recsys::PromptMode;

use super::EvalResults;

/// Names under which the baselines appear in [`EvalResults::baselines`].
pub const POPULARITY: &str = "popularity";
pub const TRANSITION: &str = "transition (first-order)";

#[derive(Clone, Debug, PartialEq, serde::Serialize)]
pub struct TableRow {
    pub name: String,
    /// "direct", "reasoning", or "-" for the baselines.
    pub mode: String,
    pub metrics: RankingMetrics,
}

impl TableRow {
    pub fn new(name: impl Into<String>, mode: impl Into<String>, metrics: RankingMetrics) -> Self {
        TableRow {
            name: name.into(),
            mode: mode.into(),
            metrics,
        }
    }

    /// A model's row from its evaluation.
    pub fn model(name: impl Into<String>, res: &EvalResults) -> Self {
        let mode = match res.mode {
            PromptMode::Direct => "direct",
            PromptMode::Reasoning => "reasoning",
        };
        TableRow::new(name, mode, res.metrics)
    }
}

/// The demo's rows: popularity and the sequential (first-order transition) baseline, taken from
/// the first evaluation that carries them, then every `(label, results)` in order (e.g. "SFT
/// model" direct and reasoning, "SRPO model" direct and reasoning).
pub fn demo_rows(runs: &[(&str, &EvalResults)]) -> Vec<TableRow> {
    let mut rows = Vec::new();
    for (name, label) in [
        (POPULARITY, "popularity"),
        (TRANSITION, "sequential baseline"),
    ] {
        if let Some(m) = runs.iter().find_map(|(_, r)| r.baseline(name)) {
            rows.push(TableRow::new(label, "-", *m));
        }
    }
    rows.extend(runs.iter().map(|(label, r)| TableRow::model(*label, r)));
    rows
}

/// Fixed-width text table, rates with four decimals.
pub fn format_table(rows: &[TableRow]) -> String {
    let name_w = rows
        .iter()
        .map(|r| r.name.chars().count())
        .chain(["model".len()])
        .max()
        .unwrap_or(5);
    let mode_w = rows
        .iter()
        .map(|r| r.mode.chars().count())
        .chain(["mode".len()])
        .max()
        .unwrap_or(4);
    let mut out = String::new();
    let cols = ["R@1", "R@5", "R@10", "N@5", "N@10", "invalid", "duplicate"];
    let _ = write!(out, "{:<name_w$}  {:<mode_w$}", "model", "mode");
    for c in cols {
        let _ = write!(out, "  {c:>9}");
    }
    out.push('\n');
    for r in rows {
        let m = &r.metrics;
        let _ = write!(out, "{:<name_w$}  {:<mode_w$}", r.name, r.mode);
        for v in [
            m.recall_1,
            m.recall_5,
            m.recall_10,
            m.ndcg_5,
            m.ndcg_10,
            m.invalid_rate,
            m.duplicate_rate,
        ] {
            let _ = write!(out, "  {v:>9.4}");
        }
        out.push('\n');
    }
    out
}
