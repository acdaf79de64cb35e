//! Scoring a batch under the configured error policy.

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;

use crate::config::OnError;
use crate::error::RewardError;
use crate::reward::{Reward, RewardInput, RewardOutput};

/// A sample left out of the step, with the reason.
#[derive(Debug, Clone, PartialEq)]
pub struct Dropped {
    /// Position in the scored batch.
    pub index: usize,
    /// Names the reward and the sample id.
    pub error: RewardError,
}

/// Per-sample outcome of a batch: `outputs[i]` is `None` exactly for the dropped samples.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct BatchScores {
    pub outputs: Vec<Option<RewardOutput>>,
    pub dropped: Vec<Dropped>,
}

impl BatchScores {
    pub fn scores(&self) -> Vec<Option<f64>> {
        self.outputs
            .iter()
            .map(|o| o.as_ref().map(|o| o.score))
            .collect()
    }
}

/// Scores `inputs` with `reward` on up to `threads` threads.
/// `OnError::Stop` returns the failure of the lowest-index failing sample seen (and stops
/// handing out work once one is seen); `OnError::Drop` scores everything and lists failures.
pub fn score_batch(
    reward: &dyn Reward,
    inputs: &[RewardInput],
    on_error: OnError,
    threads: usize,
) -> Result<BatchScores, RewardError> {
    let next = AtomicUsize::new(0);
    let stop = AtomicBool::new(false);
    let worker = || {
        let mut done = Vec::new();
        while !stop.load(Ordering::Relaxed) {
            let i = next.fetch_add(1, Ordering::Relaxed);
            let Some(input) = inputs.get(i) else { break };
            let r = reward.score(input);
            if r.is_err() && on_error == OnError::Stop {
                stop.store(true, Ordering::Relaxed);
            }
            done.push((i, r));
        }
        done
    };
    let threads = threads.clamp(1, inputs.len().max(1));
    let mut results: Vec<(usize, Result<RewardOutput, RewardError>)> = if threads == 1 {
        worker()
    } else {
        std::thread::scope(|s| {
            let handles: Vec<_> = (0..threads).map(|_| s.spawn(worker)).collect();
            handles
                .into_iter()
                .flat_map(|h| h.join().unwrap_or_else(|p| std::panic::resume_unwind(p)))
                .collect()
        })
    };
    results.sort_by_key(|(i, _)| *i);

    let mut out = BatchScores {
        outputs: Vec::with_capacity(inputs.len()),
        dropped: Vec::new(),
    };
    for (index, r) in results {
        match r {
            Ok(o) => out.outputs.push(Some(o)),
            Err(error) if on_error == OnError::Stop => return Err(error),
            Err(error) => {
                tracing::warn!("dropping sample: {error}");
                out.outputs.push(None);
                out.dropped.push(Dropped { index, error });
            }
        }
    }
    debug_assert_eq!(out.outputs.len(), inputs.len());
    Ok(out)
}

/// A config's rewards ready for the training step: the weighted sum and its batch policy.
#[derive(Clone)]
pub struct RewardSet {
    pub reward: Arc<dyn Reward>,
    pub on_error: OnError,
    pub threads: usize,
}

impl RewardSet {
    pub fn score_batch(&self, inputs: &[RewardInput]) -> Result<BatchScores, RewardError> {
        score_batch(self.reward.as_ref(), inputs, self.on_error, self.threads)
    }
}
