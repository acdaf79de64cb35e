//! Validation of reward outputs: every score the trainer sees went through [`Checked`].

use std::sync::Arc;

use crate::error::{RewardError, RewardErrorKind};
use crate::reward::{Reward, RewardInput, RewardOutput};

/// Wraps a reward and turns NaN/infinite scores or components, and scores outside `range`, into
/// typed errors. The range is the configured one, else the reward's own [`Reward::range`].
pub struct Checked {
    inner: Arc<dyn Reward>,
    range: Option<(f64, f64)>,
}

impl Checked {
    pub fn new(inner: Arc<dyn Reward>, range: Option<(f64, f64)>) -> Self {
        let range = range.or_else(|| inner.range());
        Self { inner, range }
    }
}

/// Checks one output against `range`; shared by [`Checked`] and the plug-ins' reply parsing.
pub fn validate_output(
    reward: &str,
    sample_id: &str,
    out: &RewardOutput,
    range: Option<(f64, f64)>,
) -> Result<(), RewardError> {
    let err = |kind| Err(RewardError::new(reward, sample_id, kind));
    if !out.score.is_finite() {
        return err(RewardErrorKind::NonFiniteScore { value: out.score });
    }
    if let Some((component, &value)) = out.components.iter().find(|(_, v)| !v.is_finite()) {
        return err(RewardErrorKind::NonFiniteComponent {
            component: component.clone(),
            value,
        });
    }
    if let Some((min, max)) = range {
        if out.score < min || out.score > max {
            return err(RewardErrorKind::OutOfRange {
                score: out.score,
                min,
                max,
            });
        }
    }
    Ok(())
}

impl Reward for Checked {
    fn name(&self) -> &str {
        self.inner.name()
    }

    fn score(&self, input: &RewardInput) -> Result<RewardOutput, RewardError> {
        let out = self.inner.score(input)?;
        validate_output(self.name(), &input.meta.sample_id, &out, self.range)?;
        Ok(out)
    }

    fn range(&self) -> Option<(f64, f64)> {
        self.range
    }
}
