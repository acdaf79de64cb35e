//! Curriculum mixing (SPEC.md section 3, as the reference's `create_mixed_dataset` does it).
//!
//! 1. The alignment data are split into `parts` (3) contiguous parts (sizes differ by at most
//!    one, the larger first) and each part is shuffled; the reasoning data are shuffled once.
//! 2. Every part but the last is cut into batches of `batch_size` (8). Walking its alignment
//!    batches i = 0, 1, ..., N_align - 1 (N_align = the number of alignment *batches of that
//!    part*), after batch i the next reasoning batch is inserted with probability
//!    p_i = (i / N_align) * (N_reason / N_align) * factor (factor 1.5), where N_reason is the
//!    number of that part's reasoning batches not yet placed (the reference evaluates
//!    `len(reason_batches)` after its pops). The reasoning batches left over are appended.
//! 3. The last part's alignment and reasoning batches are shuffled together (batch order).
//!
//! With `repeat_reasoning` (the reference's behaviour: each part receives a fresh copy of all
//! reasoning data, so a reasoning sample is seen once per part) or without it (the reasoning
//! data are split over the parts like the alignment data). The output order is the training
//! order: sample counts are preserved and nothing is reshuffled afterwards.

use rand::seq::SliceRandom;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};

use crate::error::{DataError, Result};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct CurriculumConfig {
    pub parts: usize,
    pub batch_size: usize,
    pub factor: f64,
    pub repeat_reasoning: bool,
    pub seed: u64,
}

impl Default for CurriculumConfig {
    fn default() -> Self {
        CurriculumConfig {
            parts: 3,
            batch_size: 8,
            factor: 1.5,
            repeat_reasoning: true,
            seed: 42,
        }
    }
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct PartReport {
    pub alignment_samples: usize,
    pub reasoning_samples: usize,
    pub alignment_batches: usize,
    /// Reasoning batches inserted by the probability rule (0 for the shuffled last part).
    pub inserted_batches: usize,
    /// Reasoning batches appended after the part (or shuffled in, for the last part).
    pub appended_batches: usize,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct CurriculumReport {
    pub parts: Vec<PartReport>,
    pub total: usize,
}

/// Contiguous near-equal parts, the larger ones first (numpy's `array_split`).
fn split_parts<T: Clone>(xs: &[T], parts: usize) -> Vec<Vec<T>> {
    let (q, r) = (xs.len() / parts, xs.len() % parts);
    let mut out = Vec::with_capacity(parts);
    let mut start = 0;
    for p in 0..parts {
        let len = q + usize::from(p < r);
        out.push(xs[start..start + len].to_vec());
        start += len;
    }
    out
}

fn batches<T: Clone>(xs: &[T], size: usize) -> Vec<Vec<T>> {
    xs.chunks(size).map(<[T]>::to_vec).collect()
}

/// Insertion probability after alignment batch `i` of `n_align`, with `n_reason` reasoning
/// batches still to place.
pub fn insert_probability(i: usize, n_align: usize, n_reason: usize, factor: f64) -> f64 {
    if n_align == 0 {
        return 0.0;
    }
    (i as f64 / n_align as f64) * (n_reason as f64 / n_align as f64) * factor
}

/// Mix `align` and `reason` into the training order (see the module docs).
pub fn mix<T: Clone>(
    align: &[T],
    reason: &[T],
    cfg: &CurriculumConfig,
) -> Result<(Vec<T>, CurriculumReport)> {
    if cfg.parts == 0 || cfg.batch_size == 0 || !(cfg.factor.is_finite() && cfg.factor >= 0.0) {
        return Err(DataError::Config {
            msg: "curriculum needs parts >= 1, batch_size >= 1 and a finite factor >= 0".into(),
        });
    }
    let mut rng = ChaCha8Rng::seed_from_u64(cfg.seed);
    let mut parts = split_parts(align, cfg.parts);
    parts.iter_mut().for_each(|p| p.shuffle(&mut rng));
    let mut reason = reason.to_vec();
    reason.shuffle(&mut rng);
    let reason_parts: Vec<Vec<T>> = if cfg.repeat_reasoning {
        vec![reason; cfg.parts]
    } else {
        split_parts(&reason, cfg.parts)
    };
    let mut out = Vec::new();
    let mut report = CurriculumReport::default();
    for (k, (part, rpart)) in parts.iter().zip(&reason_parts).enumerate() {
        let a = batches(part, cfg.batch_size);
        let mut r = batches(rpart, cfg.batch_size).into_iter();
        let n_align = a.len();
        let mut pr = PartReport {
            alignment_samples: part.len(),
            reasoning_samples: rpart.len(),
            alignment_batches: n_align,
            ..Default::default()
        };
        if k + 1 < cfg.parts {
            for (i, batch) in a.into_iter().enumerate() {
                out.extend(batch);
                let left = r.len();
                let p = insert_probability(i, n_align, left, cfg.factor);
                // Draw every step, so the stream does not depend on what is left.
                if rng.random::<f64>() < p && left > 0 {
                    out.extend(r.next().expect("left > 0"));
                    pr.inserted_batches += 1;
                }
            }
            let rest: Vec<Vec<T>> = r.collect();
            pr.appended_batches = rest.len();
            out.extend(rest.into_iter().flatten());
        } else {
            let rest: Vec<Vec<T>> = r.collect();
            pr.appended_batches = rest.len();
            let mut all: Vec<Vec<T>> = a.into_iter().chain(rest).collect();
            all.shuffle(&mut rng);
            out.extend(all.into_iter().flatten());
        }
        report.parts.push(pr);
    }
    report.total = out.len();
    Ok((out, report))
}

/// Expected number of reasoning batches inserted in a curriculum part with `n_align`
/// alignment batches and `n_reason` reasoning batches (exact, by dynamic programming over the
/// number still to place).
pub fn expected_insertions(n_align: usize, n_reason: usize, factor: f64) -> f64 {
    let mut dist = vec![0.0f64; n_reason + 1];
    dist[n_reason] = 1.0;
    let mut expect = 0.0;
    for i in 0..n_align {
        let mut next = vec![0.0f64; n_reason + 1];
        for (left, &pr) in dist.iter().enumerate() {
            if pr == 0.0 {
                continue;
            }
            let p = insert_probability(i, n_align, left, factor).min(1.0);
            let p = if left == 0 { 0.0 } else { p };
            expect += pr * p;
            next[left] += pr * (1.0 - p);
            if left > 0 {
                next[left - 1] += pr * p;
            }
        }
        dist = next;
    }
    expect
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn array_split_sizes() {
        let parts = split_parts(&(0..10).collect::<Vec<_>>(), 3);
        assert_eq!(parts.iter().map(Vec::len).collect::<Vec<_>>(), [4, 3, 3]);
        assert_eq!(parts[1], [4, 5, 6]);
    }

    #[test]
    fn probability_formula() {
        assert_eq!(insert_probability(0, 10, 5, 1.5), 0.0);
        assert!((insert_probability(5, 10, 4, 1.5) - 0.5 * 0.4 * 1.5).abs() < 1e-12);
    }
}
