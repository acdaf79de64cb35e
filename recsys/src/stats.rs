//! Dataset statistics: sizes, sparsity and sequence-length quantiles, overall and per split.

use std::collections::HashSet;
use std::fmt;

use serde::Serialize;

use crate::dataset::Dataset;
use crate::split::Split;

/// Quantiles by linear interpolation between order statistics (numpy's default).
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize)]
pub struct Quantiles {
    pub min: f64,
    pub p25: f64,
    pub p50: f64,
    pub p75: f64,
    pub p90: f64,
    pub max: f64,
    pub mean: f64,
}

impl Quantiles {
    /// All zero for an empty input.
    pub fn of(values: &[usize]) -> Quantiles {
        if values.is_empty() {
            return Quantiles::default();
        }
        let mut v: Vec<f64> = values.iter().map(|&x| x as f64).collect();
        v.sort_by(f64::total_cmp);
        let q = |p: f64| {
            let pos = p * (v.len() - 1) as f64;
            let (lo, hi) = (pos.floor() as usize, pos.ceil() as usize);
            v[lo] + (v[hi] - v[lo]) * (pos - lo as f64)
        };
        Quantiles {
            min: v[0],
            p25: q(0.25),
            p50: q(0.5),
            p75: q(0.75),
            p90: q(0.9),
            max: v[v.len() - 1],
            mean: v.iter().sum::<f64>() / v.len() as f64,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct SplitStats {
    /// "train", "valid" or "test".
    pub split: &'static str,
    pub users: usize,
    /// train: interactions in the training part; valid/test: examples (one per user).
    pub interactions: usize,
    /// Distinct items among the split's items (train) or targets (valid/test).
    pub distinct_items: usize,
    /// valid/test: targets never seen in training (a sequential model cannot have learnt them).
    pub cold_targets: usize,
    /// train: training-sequence lengths; valid/test: history lengths after the cap.
    pub length: Quantiles,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Stats {
    pub name: String,
    pub users: usize,
    pub items: usize,
    pub interactions: usize,
    /// 1 - interactions / (users * items).
    pub sparsity: f64,
    pub reviews: usize,
    pub indexed: bool,
    pub seq_len: Quantiles,
    pub history_cap: usize,
    pub splits: Vec<SplitStats>,
    /// Why there are no per-split numbers (a user with fewer than 3 items), if so.
    pub split_error: Option<String>,
}

pub fn stats(ds: &Dataset) -> Stats {
    let lens: Vec<usize> = ds.sequences.iter().map(Vec::len).collect();
    let cells = ds.n_users() as f64 * ds.n_items() as f64;
    let (splits, split_error, history_cap) = match Split::new(ds) {
        Ok(s) => (split_stats(&s), None, s.history_cap),
        Err(e) => (Vec::new(), Some(e.to_string()), crate::split::HISTORY_CAP),
    };
    Stats {
        name: ds.name.clone(),
        users: ds.n_users(),
        items: ds.n_items(),
        interactions: ds.n_interactions(),
        sparsity: if cells > 0.0 {
            1.0 - ds.n_interactions() as f64 / cells
        } else {
            1.0
        },
        reviews: ds.reviews.len(),
        indexed: ds.index.is_some(),
        seq_len: Quantiles::of(&lens),
        history_cap,
        splits,
        split_error,
    }
}

fn split_stats(s: &Split) -> Vec<SplitStats> {
    let train_items: HashSet<u32> = s.train_pairs().map(|p| p.1).collect();
    let train_lens: Vec<usize> = s.users.iter().map(|u| u.train.len()).collect();
    let mut out = vec![SplitStats {
        split: "train",
        users: s.users.len(),
        interactions: train_lens.iter().sum(),
        distinct_items: train_items.len(),
        cold_targets: 0,
        length: Quantiles::of(&train_lens),
    }];
    for (name, examples) in [
        ("valid", s.valid().collect::<Vec<_>>()),
        ("test", s.test().collect::<Vec<_>>()),
    ] {
        let lens: Vec<usize> = examples.iter().map(|e| e.history.len()).collect();
        out.push(SplitStats {
            split: name,
            users: examples.len(),
            interactions: examples.len(),
            distinct_items: examples
                .iter()
                .map(|e| e.target)
                .collect::<HashSet<_>>()
                .len(),
            cold_targets: examples
                .iter()
                .filter(|e| !train_items.contains(&e.target))
                .count(),
            length: Quantiles::of(&lens),
        });
    }
    out
}

fn fmt_q(f: &mut fmt::Formatter, q: &Quantiles) -> fmt::Result {
    write!(
        f,
        "{:>6} {:>6.1} {:>6.1} {:>6.1} {:>6.1} {:>6} {:>7.2}",
        q.min, q.p25, q.p50, q.p75, q.p90, q.max, q.mean
    )
}

impl fmt::Display for Stats {
    fn fmt(&self, f: &mut fmt::Formatter) -> fmt::Result {
        writeln!(f, "dataset {}", self.name)?;
        writeln!(
            f,
            "  users {}  items {}  interactions {}  sparsity {:.4}%  reviews {}  semantic IDs {}",
            self.users,
            self.items,
            self.interactions,
            self.sparsity * 100.0,
            self.reviews,
            if self.indexed { "yes" } else { "no" }
        )?;
        writeln!(
            f,
            "  {:<10} {:>6} {:>6} {:>6} {:>6} {:>6} {:>6} {:>7}",
            "lengths", "min", "p25", "p50", "p75", "p90", "max", "mean"
        )?;
        write!(f, "  {:<10} ", "sequence")?;
        fmt_q(f, &self.seq_len)?;
        writeln!(f)?;
        if let Some(e) = &self.split_error {
            return writeln!(f, "  no split: {e}");
        }
        writeln!(
            f,
            "\n  {:<6} {:>7} {:>12} {:>7} {:>6}   {:>6} {:>6} {:>6} {:>6} {:>6} {:>6} {:>7}",
            "split",
            "users",
            "interactions",
            "items",
            "cold",
            "min",
            "p25",
            "p50",
            "p75",
            "p90",
            "max",
            "mean"
        )?;
        for s in &self.splits {
            write!(
                f,
                "  {:<6} {:>7} {:>12} {:>7} {:>6}   ",
                s.split, s.users, s.interactions, s.distinct_items, s.cold_targets
            )?;
            fmt_q(f, &s.length)?;
            writeln!(f)?;
        }
        writeln!(
            f,
            "  (train: training-sequence lengths; valid/test: history lengths, capped at {}; \
             cold = targets unseen in training)",
            self.history_cap
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::dataset::ItemMeta;

    #[test]
    fn quantiles_interpolate() {
        let q = Quantiles::of(&[1, 2, 3, 4, 5]);
        assert_eq!(
            (q.min, q.p25, q.p50, q.p75, q.max, q.mean),
            (1.0, 2.0, 3.0, 4.0, 5.0, 3.0)
        );
        assert!((q.p90 - 4.6).abs() < 1e-12);
        let q = Quantiles::of(&[10, 0]);
        assert_eq!((q.p25, q.p50), (2.5, 5.0));
        assert_eq!(Quantiles::of(&[]), Quantiles::default());
    }

    #[test]
    fn per_split_numbers() {
        let ds = Dataset {
            name: "t".into(),
            sequences: vec![vec![0, 1, 2, 3], vec![1, 0, 4], vec![0, 1, 2]],
            items: vec![ItemMeta::default(); 5],
            ..Default::default()
        };
        let s = stats(&ds);
        assert_eq!((s.users, s.items, s.interactions), (3, 5, 10));
        assert!((s.sparsity - (1.0 - 10.0 / 15.0)).abs() < 1e-12);
        let [train, valid, test] = &s.splits[..] else {
            panic!()
        };
        assert_eq!((train.interactions, train.distinct_items), (4, 2)); // [0,1], [1], [0]
        assert_eq!((valid.distinct_items, valid.cold_targets), (3, 1)); // targets 2, 0, 1; 2 is cold
        assert_eq!((test.distinct_items, test.cold_targets), (3, 3)); // targets 3, 4, 2: all cold
        assert_eq!(test.length.max, 3.0);
        let table = s.to_string();
        assert!(
            table.contains("interactions 10") && table.contains("test"),
            "{table}"
        );
    }

    #[test]
    fn short_users_report_the_split_error() {
        let ds = Dataset {
            name: "t".into(),
            sequences: vec![vec![0, 1]],
            items: vec![ItemMeta::default(); 2],
            ..Default::default()
        };
        let s = stats(&ds);
        assert!(s.splits.is_empty());
        assert!(s.to_string().contains("no split"));
    }
}
