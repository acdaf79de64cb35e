//! The one-line summary printed after each step:
//! `step 12/150 | reward 0.41 | hit 0.12 | kl 0.003 | clip 0.04 | zero-var 0.25 | 3.1 s`.

use std::fmt;

use crate::metrics_log::{names, Record};
use crate::progress::format_duration;

/// Metrics shown in the summary and their short labels, in display order.
pub const SUMMARY_FIELDS: [(&str, &str); 7] = [
    (names::LOSS, "loss"),
    (names::REWARD_MEAN, "reward"),
    (names::HIT_RATE, "hit"),
    (names::KL, "kl"),
    (names::CLIP_FRAC, "clip"),
    (names::ZERO_VAR_FRAC, "zero-var"),
    (names::RECALL_AT_10, "R@10"),
];

#[derive(Clone, Debug, PartialEq)]
pub struct StepSummary {
    pub step: u64,
    pub total: Option<u64>,
    pub fields: Vec<(String, f64)>,
    pub seconds: Option<f64>,
}

impl StepSummary {
    pub fn new(step: u64, total: Option<u64>) -> Self {
        Self {
            step,
            total,
            fields: Vec::new(),
            seconds: None,
        }
    }

    pub fn field(mut self, label: &str, value: f64) -> Self {
        self.fields.push((label.to_string(), value));
        self
    }

    pub fn seconds(mut self, secs: f64) -> Self {
        self.seconds = Some(secs);
        self
    }

    /// The known metrics of a record (see `SUMMARY_FIELDS`), with its `step_seconds` as time.
    pub fn from_record(record: &Record, total: Option<u64>) -> Self {
        let mut s = Self::new(record.step, total);
        for (metric, label) in SUMMARY_FIELDS {
            if let Some(v) = record.get(metric) {
                s = s.field(label, v);
            }
        }
        s.seconds = record.get(names::STEP_SECONDS);
        s
    }
}

impl fmt::Display for StepSummary {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.total {
            Some(t) => write!(f, "step {}/{t}", self.step)?,
            None => write!(f, "step {}", self.step)?,
        }
        for (label, v) in &self.fields {
            write!(f, " | {label} {}", format_value(*v))?;
        }
        if let Some(s) = self.seconds {
            write!(f, " | {}", format_duration(s))?;
        }
        Ok(())
    }
}

/// Compact numbers: 3 significant digits below 1 (0.41, 0.003, 0.0312), 2 decimals up to 10,
/// fewer above, scientific for tiny or huge magnitudes; trailing zeros dropped.
pub fn format_value(v: f64) -> String {
    if !v.is_finite() {
        return format!("{v}");
    }
    let a = v.abs();
    if a == 0.0 {
        return "0".into();
    }
    if !(1e-4..1e6).contains(&a) {
        return format!("{v:.2e}");
    }
    let decimals = if a >= 100.0 {
        0
    } else if a >= 10.0 {
        1
    } else if a >= 1.0 {
        2
    } else {
        // Digits after the point to keep 3 significant ones.
        (2 - a.log10().floor() as i32) as usize
    };
    trim_zeros(format!("{v:.decimals$}"))
}

fn trim_zeros(s: String) -> String {
    if !s.contains('.') {
        return s;
    }
    s.trim_end_matches('0').trim_end_matches('.').to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_example_line() {
        let s = StepSummary::new(12, Some(150))
            .field("reward", 0.41)
            .field("hit", 0.12)
            .field("kl", 0.003)
            .field("clip", 0.04)
            .field("zero-var", 0.25)
            .seconds(3.1);
        assert_eq!(
            s.to_string(),
            "step 12/150 | reward 0.41 | hit 0.12 | kl 0.003 | clip 0.04 | zero-var 0.25 | 3.1 s"
        );
    }

    #[test]
    fn values_are_compact() {
        assert_eq!(format_value(0.0312345), "0.0312");
        assert_eq!(format_value(1.5), "1.5");
        assert_eq!(format_value(123.4), "123");
        assert_eq!(format_value(-0.5), "-0.5");
        assert_eq!(format_value(2e-7), "2.00e-7");
        assert_eq!(format_value(f64::NAN), "NaN");
    }

    #[test]
    fn from_record_picks_known_metrics_in_order() {
        let r = Record::new(3, "rl")
            .with(names::KL, 0.01)
            .with(names::REWARD_MEAN, 0.5)
            .with("other", 1.0)
            .with(names::STEP_SECONDS, 2.0);
        assert_eq!(
            StepSummary::from_record(&r, None).to_string(),
            "step 3 | reward 0.5 | kl 0.01 | 2.0 s"
        );
    }
}
