//! Collaborative item factors from training interactions only: symmetric co-occurrence of two
//! different items within `window` positions of a user's training sequence, PPMI-weighted
//! (max(0, ln(c_ij * C / (c_i * c_j)))), then reduced by the same truncated SVD as the text.
//! Items without training interactions get a zero vector.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::linalg::{dense_to_rows, truncated_svd, SparseRows};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct CollabConfig {
    /// Weight of the (unit-norm) collaborative block beside the (unit-norm) text block.
    pub weight: f32,
    pub window: usize,
    pub dims: usize,
    pub power_iters: usize,
    pub seed: u64,
}

impl Default for CollabConfig {
    fn default() -> Self {
        CollabConfig {
            weight: 0.5,
            window: 3,
            dims: 16,
            power_iters: 4,
            seed: 29,
        }
    }
}

impl CollabConfig {
    pub fn describe(&self) -> String {
        format!(
            "co-occurrence PPMI (window {}, train split) -> truncated SVD {} dims, weight {}",
            self.window, self.dims, self.weight
        )
    }
}

/// The PPMI co-occurrence matrix of `n_items` items over `sequences`.
pub fn ppmi<'a>(
    n_items: usize,
    sequences: impl Iterator<Item = &'a [u32]>,
    window: usize,
) -> SparseRows {
    let mut counts: Vec<BTreeMap<u32, f64>> = vec![BTreeMap::new(); n_items];
    for seq in sequences {
        for (t, &a) in seq.iter().enumerate() {
            for &b in seq.iter().skip(t + 1).take(window) {
                if a != b {
                    *counts[a as usize].entry(b).or_insert(0.0) += 1.0;
                    *counts[b as usize].entry(a).or_insert(0.0) += 1.0;
                }
            }
        }
    }
    let marg: Vec<f64> = counts.iter().map(|r| r.values().sum()).collect();
    let total: f64 = marg.iter().sum();
    let rows = counts
        .iter()
        .enumerate()
        .map(|(i, r)| {
            r.iter()
                .filter_map(|(&j, &c)| {
                    let pmi = (c * total / (marg[i] * marg[j as usize])).ln();
                    (pmi > 0.0).then_some((j, pmi))
                })
                .collect()
        })
        .collect();
    SparseRows {
        n_cols: n_items,
        rows,
    }
}

/// Collaborative factors, `out[i]` for item i (all zero when there is no co-occurrence).
pub fn collab_factors<'a>(
    n_items: usize,
    sequences: impl Iterator<Item = &'a [u32]>,
    cfg: &CollabConfig,
) -> Vec<Vec<f32>> {
    let m = ppmi(n_items, sequences, cfg.window);
    if m.rows.iter().all(Vec::is_empty) {
        return vec![vec![0.0; cfg.dims.max(1)]; n_items];
    }
    let (emb, _) = truncated_svd(&m, cfg.dims, 8, cfg.power_iters, cfg.seed);
    dense_to_rows(&emb)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ppmi_counts_window_pairs() {
        let seqs: Vec<Vec<u32>> = vec![vec![0, 1, 2], vec![0, 1], vec![3, 3]];
        let m = ppmi(4, seqs.iter().map(Vec::as_slice), 1);
        // pairs: (0,1) x2, (1,2) x1; C = 6, c0 = 2, c1 = 3, c2 = 1.
        let p01 = m.rows[0].iter().find(|x| x.0 == 1).unwrap().1;
        assert!((p01 - (2.0f64 * 6.0 / (2.0 * 3.0)).ln()).abs() < 1e-12);
        assert!(m.rows[3].is_empty(), "self-pairs are not co-occurrences");
    }
}
