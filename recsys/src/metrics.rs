//! Ranking metrics over users with one target each (SPEC.md section 5).
//!
//! For a ranked list and a target: the hit rank r is the 1-based position of the target's first
//! occurrence. Recall@K (= hit rate) counts r <= K; NDCG@K adds 1/log2(r + 1) when r <= K (one
//! relevant item, so the ideal DCG is 1). A list slot that holds an ID of no catalogue item is
//! invalid; a slot that repeats an item already listed above it is a duplicate. Both rates are
//! over all slots of all lists. Positions are not compacted: an invalid or duplicate slot above
//! the target pushes it down, as it would for the user.

use std::collections::HashSet;

use serde::{Deserialize, Serialize};

pub const KS_RECALL: [usize; 3] = [1, 5, 10];
pub const KS_NDCG: [usize; 2] = [5, 10];

/// Aggregated metrics; all rates in [0, 1].
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
pub struct RankingMetrics {
    /// Number of users (lists) evaluated.
    pub users: usize,
    pub recall_1: f64,
    pub recall_5: f64,
    pub recall_10: f64,
    pub ndcg_5: f64,
    pub ndcg_10: f64,
    pub invalid_rate: f64,
    pub duplicate_rate: f64,
}

/// Accumulates per-user results; `finish` averages.
#[derive(Debug, Clone, Default)]
pub struct MetricsAccumulator {
    users: usize,
    hits: [f64; 3],
    ndcg: [f64; 2],
    slots: usize,
    invalid: usize,
    duplicate: usize,
}

/// 1-based rank of `target` in `ranked` (`None` slots are invalid IDs), if present.
pub fn hit_rank(ranked: &[Option<u32>], target: u32) -> Option<usize> {
    ranked
        .iter()
        .position(|&x| x == Some(target))
        .map(|p| p + 1)
}

impl MetricsAccumulator {
    pub fn new() -> Self {
        Self::default()
    }

    /// One user's ranked list; `None` marks a generated ID that names no item.
    pub fn add(&mut self, ranked: &[Option<u32>], target: u32) {
        self.users += 1;
        if let Some(r) = hit_rank(ranked, target) {
            for (h, &k) in self.hits.iter_mut().zip(&KS_RECALL) {
                if r <= k {
                    *h += 1.0;
                }
            }
            let gain = 1.0 / ((r + 1) as f64).log2();
            for (g, &k) in self.ndcg.iter_mut().zip(&KS_NDCG) {
                if r <= k {
                    *g += gain;
                }
            }
        }
        let mut seen = HashSet::new();
        self.slots += ranked.len();
        for x in ranked {
            match x {
                None => self.invalid += 1,
                Some(i) if !seen.insert(*i) => self.duplicate += 1,
                Some(_) => {}
            }
        }
    }

    /// Convenience for item indices: ids >= `n_items` count as invalid.
    pub fn add_ids(&mut self, ranked: &[u32], target: u32, n_items: usize) {
        let slots: Vec<Option<u32>> = ranked
            .iter()
            .map(|&i| ((i as usize) < n_items).then_some(i))
            .collect();
        self.add(&slots, target);
    }

    pub fn finish(&self) -> RankingMetrics {
        let n = self.users.max(1) as f64;
        let s = self.slots.max(1) as f64;
        RankingMetrics {
            users: self.users,
            recall_1: self.hits[0] / n,
            recall_5: self.hits[1] / n,
            recall_10: self.hits[2] / n,
            ndcg_5: self.ndcg[0] / n,
            ndcg_10: self.ndcg[1] / n,
            invalid_rate: self.invalid as f64 / s,
            duplicate_rate: self.duplicate as f64 / s,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn close(a: f64, b: f64) {
        assert!((a - b).abs() < 1e-12, "{a} != {b}");
    }

    #[test]
    fn single_lists_by_hand() {
        // Hit at rank 1: everything 1.
        let mut m = MetricsAccumulator::new();
        m.add_ids(&[7, 1, 2], 7, 10);
        let r = m.finish();
        assert_eq!(
            (r.recall_1, r.recall_5, r.recall_10, r.ndcg_5, r.ndcg_10),
            (1.0, 1.0, 1.0, 1.0, 1.0)
        );

        // Hit at rank 3: recall@1 0, recall@5/10 1, ndcg = 1/log2(4) = 0.5.
        let mut m = MetricsAccumulator::new();
        m.add_ids(&[1, 2, 7], 7, 10);
        let r = m.finish();
        assert_eq!((r.recall_1, r.recall_5, r.recall_10), (0.0, 1.0, 1.0));
        close(r.ndcg_5, 0.5);
        close(r.ndcg_10, 0.5);

        // Hit at rank 7: only @10 counts; 1/log2(8) = 1/3.
        let mut m = MetricsAccumulator::new();
        m.add_ids(&[0, 1, 2, 3, 4, 5, 9, 8], 9, 10);
        let r = m.finish();
        assert_eq!((r.recall_5, r.recall_10, r.ndcg_5), (0.0, 1.0, 0.0));
        close(r.ndcg_10, 1.0 / 3.0);

        // Rank 11 is outside every cut-off.
        let mut m = MetricsAccumulator::new();
        m.add_ids(&(0..11).collect::<Vec<_>>(), 10, 20);
        assert_eq!(m.finish().recall_10, 0.0);
    }

    #[test]
    fn averages_invalid_and_duplicates() {
        let mut m = MetricsAccumulator::new();
        // user A: [5, 99(invalid), 5(dup), 3] target 3 -> rank 4: recall@5 1, ndcg 1/log2(5)
        m.add_ids(&[5, 99, 5, 3], 3, 10);
        // user B: target 2 at rank 2 -> 1/log2(3)
        m.add(&[Some(1), Some(2), None, None], 2);
        // user C: miss, empty list
        m.add(&[], 4);
        let r = m.finish();
        assert_eq!(r.users, 3);
        close(r.recall_1, 0.0);
        close(r.recall_5, 2.0 / 3.0);
        close(r.recall_10, 2.0 / 3.0);
        close(r.ndcg_5, (1.0 / 5f64.log2() + 1.0 / 3f64.log2()) / 3.0);
        close(r.ndcg_10, r.ndcg_5);
        close(r.invalid_rate, 3.0 / 8.0);
        close(r.duplicate_rate, 1.0 / 8.0);
        // Serialises with stable field names.
        let json = serde_json::to_value(r).unwrap();
        assert!(json.get("recall_10").is_some() && json.get("duplicate_rate").is_some());
    }

    #[test]
    fn empty_accumulator_is_zero() {
        assert_eq!(
            MetricsAccumulator::new().finish(),
            RankingMetrics::default()
        );
    }
}
