//! A bounded record of the busy actors' work (rollout jobs, learner updates, evaluations) with
//! the step and policy version each belonged to and when it ran: the overlap of rollouts with
//! the learner is visible here (tests, diagnostics).

use std::collections::VecDeque;
use std::sync::Mutex;
use std::time::Instant;

/// Activities kept (the oldest go first).
const KEEP: usize = 4096;

#[derive(Clone, Debug)]
pub struct Activity {
    /// `rollout`, `learner` or `evaluator`.
    pub actor: &'static str,
    /// The actor instance (restarts get new ids).
    pub id: u64,
    /// The step the work belongs to (0-based: the step being sampled for or trained).
    pub step: u64,
    /// Policy version sampled or evaluated with; for the learner, the version it published.
    pub version: u64,
    pub start: Instant,
    pub end: Instant,
}

#[derive(Default)]
pub struct Timeline {
    items: Mutex<VecDeque<Activity>>,
}

impl Timeline {
    pub fn record(&self, a: Activity) {
        let mut items = self.items.lock().expect("timeline lock");
        if items.len() == KEEP {
            items.pop_front();
        }
        items.push_back(a);
    }

    /// Everything kept, oldest first.
    pub fn activities(&self) -> Vec<Activity> {
        self.items
            .lock()
            .expect("timeline lock")
            .iter()
            .cloned()
            .collect()
    }
}
