//! Classic baselines, trained on the training split only, so every LLM number has context.
//!
//! - `Popularity`: items by training-interaction count.
//! - `Transition`: first-order item-to-item transitions of the training sequences
//!   (P(next = j | last = i), from adjacent pairs), optionally summed over the last `window`
//!   history items with weights `decay^d`, with popularity back-off: items without transition
//!   evidence are ranked by popularity below every item with some.
//!
//! Both exclude the items of the given history by default: the datasets de-duplicate user-item
//! pairs, so a history item is never the target, and the LLM's trie-constrained decoding could
//! do the same. `exclude_history: false` gives the plain variants.

use std::cmp::Ordering;
use std::collections::{HashMap, HashSet};
use std::fmt;

use serde::Serialize;

use crate::dataset::Dataset;
use crate::error::Result;
use crate::metrics::{MetricsAccumulator, RankingMetrics};
use crate::split::{Example, Split};

/// Length of the ranked lists evaluated (Recall@10 / NDCG@10 need 10).
pub const TOP_K: usize = 10;

pub trait Recommender {
    fn name(&self) -> String;
    /// The top `k` items for a user whose recent history is `history` (oldest first).
    fn recommend(&self, history: &[u32], k: usize) -> Vec<u32>;
}

/// Training counts and the item order they induce (count desc, then id asc).
#[derive(Debug, Clone)]
pub struct Popularity {
    pub counts: Vec<u32>,
    order: Vec<u32>,
    pub exclude_history: bool,
}

impl Popularity {
    pub fn fit(split: &Split, n_items: usize, exclude_history: bool) -> Popularity {
        let mut counts = vec![0u32; n_items];
        for (_, i) in split.train_pairs() {
            counts[i as usize] += 1;
        }
        let mut order: Vec<u32> = (0..n_items as u32).collect();
        order.sort_by_key(|&i| (std::cmp::Reverse(counts[i as usize]), i));
        Popularity {
            counts,
            order,
            exclude_history,
        }
    }

    /// Items in popularity order, skipping `exclude`.
    fn top(&self, k: usize, exclude: &HashSet<u32>) -> Vec<u32> {
        self.order
            .iter()
            .copied()
            .filter(|i| !exclude.contains(i))
            .take(k)
            .collect()
    }
}

impl Recommender for Popularity {
    fn name(&self) -> String {
        if self.exclude_history {
            "popularity".into()
        } else {
            "popularity (history not excluded)".into()
        }
    }

    fn recommend(&self, history: &[u32], k: usize) -> Vec<u32> {
        let exclude: HashSet<u32> = if self.exclude_history {
            history.iter().copied().collect()
        } else {
            HashSet::new()
        };
        self.top(k, &exclude)
    }
}

#[derive(Debug, Clone, Serialize)]
pub struct TransitionConfig {
    /// How many of the last history items contribute (1 = first-order Markov chain).
    pub window: usize,
    /// Weight of the d-th most recent item is `decay^d`.
    pub decay: f64,
    pub exclude_history: bool,
}

impl Default for TransitionConfig {
    fn default() -> Self {
        TransitionConfig {
            window: 1,
            decay: 0.5,
            exclude_history: true,
        }
    }
}

#[derive(Debug, Clone)]
pub struct Transition {
    /// `next[i]` = (j, P(j | i)) for items j that followed i in training, sorted by j.
    next: Vec<Vec<(u32, f64)>>,
    pop: Popularity,
    cfg: TransitionConfig,
}

impl Transition {
    pub fn fit(split: &Split, n_items: usize, cfg: TransitionConfig) -> Transition {
        let mut counts: Vec<HashMap<u32, u32>> = vec![HashMap::new(); n_items];
        for seq in split.train_sequences() {
            for w in seq.windows(2) {
                *counts[w[0] as usize].entry(w[1]).or_default() += 1;
            }
        }
        let next = counts
            .into_iter()
            .map(|c| {
                let total: u32 = c.values().sum();
                let mut v: Vec<(u32, f64)> = c
                    .into_iter()
                    .map(|(j, n)| (j, n as f64 / total as f64))
                    .collect();
                v.sort_by_key(|p| p.0);
                v
            })
            .collect();
        Transition {
            next,
            pop: Popularity::fit(split, n_items, cfg.exclude_history),
            cfg,
        }
    }
}

impl Recommender for Transition {
    fn name(&self) -> String {
        let mut s = if self.cfg.window <= 1 {
            "transition (first-order)".to_string()
        } else {
            format!(
                "transition (last {}, decay {})",
                self.cfg.window, self.cfg.decay
            )
        };
        if !self.cfg.exclude_history {
            s.push_str(" (history not excluded)");
        }
        s
    }

    fn recommend(&self, history: &[u32], k: usize) -> Vec<u32> {
        let exclude: HashSet<u32> = if self.cfg.exclude_history {
            history.iter().copied().collect()
        } else {
            HashSet::new()
        };
        let mut scores: HashMap<u32, f64> = HashMap::new();
        let mut w = 1.0;
        for &h in history.iter().rev().take(self.cfg.window.max(1)) {
            for &(j, p) in &self.next[h as usize] {
                if !exclude.contains(&j) {
                    *scores.entry(j).or_default() += w * p;
                }
            }
            w *= self.cfg.decay;
        }
        let counts = &self.pop.counts;
        let mut ranked: Vec<(u32, f64)> = scores.into_iter().collect();
        // Score, then popularity, then id: deterministic.
        ranked.sort_by(|a, b| {
            b.1.partial_cmp(&a.1)
                .unwrap_or(Ordering::Equal)
                .then(counts[b.0 as usize].cmp(&counts[a.0 as usize]))
                .then(a.0.cmp(&b.0))
        });
        let mut out: Vec<u32> = ranked.into_iter().take(k).map(|p| p.0).collect();
        if out.len() < k {
            // Back-off: fill with the most popular items not yet listed.
            let mut skip = exclude;
            skip.extend(out.iter().copied());
            out.extend(self.pop.top(k - out.len(), &skip));
        }
        out
    }
}

/// Metrics of `model` over `examples`.
pub fn evaluate<'a>(
    model: &dyn Recommender,
    examples: impl IntoIterator<Item = &'a Example>,
    n_items: usize,
) -> RankingMetrics {
    let mut acc = MetricsAccumulator::new();
    for e in examples {
        acc.add_ids(&model.recommend(&e.history, TOP_K), e.target, n_items);
    }
    acc.finish()
}

#[derive(Debug, Clone, Serialize)]
pub struct BaselineResult {
    pub name: String,
    pub valid: RankingMetrics,
    pub test: RankingMetrics,
}

#[derive(Debug, Clone, Serialize)]
pub struct BaselineReport {
    pub dataset: String,
    pub history_cap: usize,
    pub results: Vec<BaselineResult>,
}

impl BaselineReport {
    pub fn get(&self, name: &str) -> Option<&BaselineResult> {
        self.results.iter().find(|r| r.name == name)
    }
}

/// Popularity (with and without history exclusion), first-order transitions and transitions
/// over the last 3 items (decay 0.5), all trained on the training split, evaluated on the
/// validation and test splits.
pub fn evaluate_baselines(ds: &Dataset) -> Result<BaselineReport> {
    let split = Split::new(ds)?;
    let n = ds.n_items();
    let models: Vec<Box<dyn Recommender>> = vec![
        Box::new(Popularity::fit(&split, n, true)),
        Box::new(Popularity::fit(&split, n, false)),
        Box::new(Transition::fit(&split, n, TransitionConfig::default())),
        Box::new(Transition::fit(
            &split,
            n,
            TransitionConfig {
                window: 3,
                ..Default::default()
            },
        )),
    ];
    let results = models
        .iter()
        .map(|m| BaselineResult {
            name: m.name(),
            valid: evaluate(m.as_ref(), split.valid(), n),
            test: evaluate(m.as_ref(), split.test(), n),
        })
        .collect();
    Ok(BaselineReport {
        dataset: ds.name.clone(),
        history_cap: split.history_cap,
        results,
    })
}

impl fmt::Display for BaselineReport {
    fn fmt(&self, f: &mut fmt::Formatter) -> fmt::Result {
        writeln!(
            f,
            "baselines on {} (trained on the training split; history cap {})",
            self.dataset, self.history_cap
        )?;
        writeln!(
            f,
            "  {:<44} {:<5} {:>7} {:>7} {:>7} {:>7} {:>7}",
            "model", "split", "R@1", "R@5", "R@10", "N@5", "N@10"
        )?;
        for r in &self.results {
            for (split, m) in [("valid", &r.valid), ("test", &r.test)] {
                writeln!(
                    f,
                    "  {:<44} {:<5} {:>7.4} {:>7.4} {:>7.4} {:>7.4} {:>7.4}",
                    r.name, split, m.recall_1, m.recall_5, m.recall_10, m.ndcg_5, m.ndcg_10
                )?;
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::dataset::ItemMeta;

    fn toy() -> (Dataset, Split) {
        // Training parts (all but the last two items): 0->1 three times, 0->2 once, 3 popular.
        let ds = Dataset {
            name: "t".into(),
            sequences: vec![
                vec![3, 0, 1, 9, 8],
                vec![3, 0, 1, 7, 6],
                vec![3, 0, 1, 5, 4],
                vec![3, 0, 2, 5, 4],
                vec![3, 2, 0, 1, 4],
            ],
            items: vec![ItemMeta::default(); 10],
            ..Default::default()
        };
        let split = Split::new(&ds).unwrap();
        (ds, split)
    }

    #[test]
    fn popularity_orders_by_training_counts() {
        let (_, s) = toy();
        let p = Popularity::fit(&s, 10, true);
        // train counts: 3:5, 0:5, 1:3, 2:2; ties by id.
        assert_eq!(&p.recommend(&[], 4), &[0, 3, 1, 2]);
        assert_eq!(&p.recommend(&[0, 1], 3), &[3, 2, 4]);
        let plain = Popularity::fit(&s, 10, false);
        assert_eq!(&plain.recommend(&[0, 1], 2), &[0, 3]);
    }

    #[test]
    fn transitions_then_popularity_backoff() {
        let (_, s) = toy();
        let t = Transition::fit(&s, 10, TransitionConfig::default());
        // After 0: 1 (3 of 4), then 2 (1 of 4), then popularity fill (3 excluded as history).
        assert_eq!(&t.recommend(&[3, 0], 4), &[1, 2, 4, 5]);
        // An item never followed by anything backs off to popularity.
        assert_eq!(&t.recommend(&[9], 3), &[0, 3, 1]);
        // Window 2 after [2, 0]: 0 gives 1: 0.75 (2 is history); 2 gives only 0 (history);
        // then popularity fills with 3.
        let t2 = Transition::fit(
            &s,
            10,
            TransitionConfig {
                window: 2,
                decay: 0.5,
                exclude_history: true,
            },
        );
        assert_eq!(&t2.recommend(&[2, 0], 2), &[1, 3]);
    }

    #[test]
    fn report_has_all_models() {
        let (ds, _) = toy();
        let r = evaluate_baselines(&ds).unwrap();
        assert_eq!(r.results.len(), 4);
        assert!(r.get("popularity").is_some() && r.get("transition (first-order)").is_some());
        assert!(r.to_string().contains("N@10"));
    }
}
