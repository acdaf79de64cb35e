//! A weighted sum of rewards, itself a [`Reward`].

use std::sync::Arc;

use crate::error::RewardError;
use crate::reward::{Reward, RewardInput, RewardOutput};

/// `score = sum_i w_i * score_i`. Components hold each term's score under its name and each
/// term's components as `name/component`, so one log line shows the whole breakdown.
/// The first failing term fails the whole sample (its error names that term).
pub struct WeightedSum {
    name: String,
    terms: Vec<(f64, Arc<dyn Reward>)>,
}

impl WeightedSum {
    pub fn new(name: impl Into<String>, terms: Vec<(f64, Arc<dyn Reward>)>) -> Self {
        Self {
            name: name.into(),
            terms,
        }
    }

    pub fn terms(&self) -> &[(f64, Arc<dyn Reward>)] {
        &self.terms
    }
}

impl Reward for WeightedSum {
    fn name(&self) -> &str {
        &self.name
    }

    fn score(&self, input: &RewardInput) -> Result<RewardOutput, RewardError> {
        let mut out = RewardOutput::new(0.0);
        for (w, r) in &self.terms {
            let o = r.score(input)?;
            out.score += w * o.score;
            out.components.insert(r.name().to_string(), o.score);
            for (k, v) in o.components {
                out.components.insert(format!("{}/{k}", r.name()), v);
            }
        }
        Ok(out)
    }

    /// Known when every term's range is known: the sum of each weighted interval.
    fn range(&self) -> Option<(f64, f64)> {
        self.terms.iter().try_fold((0.0, 0.0), |(lo, hi), (w, r)| {
            let (a, b) = r.range()?;
            let (x, y) = (w * a, w * b);
            Some((lo + x.min(y), hi + x.max(y)))
        })
    }
}
