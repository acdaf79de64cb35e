//! Learning rate per optimizer step: linear warm-up from 0, then cosine (or linear) decay to 0,
//! as transformers' `get_cosine_schedule_with_warmup` / `get_linear_schedule_with_warmup`
//! compute it (step 0 of a warm-up runs at lr 0; warm-up steps = ceil(ratio * total)).

use super::config::Schedule;

#[derive(Clone, Copy, Debug, PartialEq)]
pub struct LrSchedule {
    pub peak: f64,
    pub warmup_steps: usize,
    pub total_steps: usize,
    pub kind: Schedule,
}

impl LrSchedule {
    pub fn new(peak: f64, warmup_ratio: f64, total_steps: usize, kind: Schedule) -> Self {
        // transformers: math.ceil(num_training_steps * warmup_ratio).
        let warmup_steps = (warmup_ratio * total_steps as f64).ceil() as usize;
        LrSchedule {
            peak,
            warmup_steps: warmup_steps.min(total_steps),
            total_steps,
            kind,
        }
    }

    /// Learning rate of optimizer step `step` (0-based: the first update is step 0).
    pub fn lr(&self, step: usize) -> f64 {
        let (w, t) = (self.warmup_steps, self.total_steps);
        if step < w {
            return self.peak * step as f64 / w.max(1) as f64;
        }
        let progress = (step - w) as f64 / t.saturating_sub(w).max(1) as f64;
        let factor = match self.kind {
            Schedule::Cosine => 0.5 * (1.0 + (std::f64::consts::PI * progress).cos()),
            Schedule::Linear => 1.0 - progress,
            Schedule::Constant => 1.0,
        };
        self.peak * factor.max(0.0)
    }
}
