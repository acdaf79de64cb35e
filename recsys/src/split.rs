//! Leave-one-out split (SPEC.md section 1): per user, the last item is the test target, the
//! second-to-last the validation target, the rest is training data. Histories given to a model
//! are the last `history_cap` (20) items before the target.

use crate::dataset::{Dataset, Review};
use crate::error::{DataError, Result};

pub const HISTORY_CAP: usize = 20;

/// One next-item prediction: the user's recent history (oldest first) and the item to predict.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Example {
    pub user: u32,
    pub history: Vec<u32>,
    pub target: u32,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UserSplit {
    pub user: u32,
    /// Every item before the validation target (uncapped).
    pub train: Vec<u32>,
    /// History = last `cap` of `train`.
    pub valid: Example,
    /// History = last `cap` of `train` + the validation target.
    pub test: Example,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Split {
    pub history_cap: usize,
    /// Indexed by user.
    pub users: Vec<UserSplit>,
}

fn last(items: &[u32], cap: usize) -> Vec<u32> {
    items[items.len().saturating_sub(cap)..].to_vec()
}

impl Split {
    /// The split with the standard history cap of 20.
    pub fn new(ds: &Dataset) -> Result<Split> {
        Split::with_cap(ds, HISTORY_CAP)
    }

    /// Errors when the dataset has no users or a user has fewer than 3 items.
    pub fn with_cap(ds: &Dataset, history_cap: usize) -> Result<Split> {
        if history_cap == 0 {
            return Err(DataError::Config {
                msg: "history cap must be at least 1".into(),
            });
        }
        if ds.sequences.is_empty() {
            return Err(DataError::Empty {
                msg: format!("dataset {:?} has no users to split", ds.name),
            });
        }
        let mut users = Vec::with_capacity(ds.sequences.len());
        for (u, seq) in ds.sequences.iter().enumerate() {
            let n = seq.len();
            if n < 3 {
                return Err(DataError::Empty {
                    msg: format!(
                        "dataset {:?}: user {u} has {n} interactions; leave-one-out needs at least 3",
                        ds.name
                    ),
                });
            }
            let user = u as u32;
            let train = seq[..n - 2].to_vec();
            users.push(UserSplit {
                user,
                valid: Example {
                    user,
                    history: last(&train, history_cap),
                    target: seq[n - 2],
                },
                test: Example {
                    user,
                    history: last(&seq[..n - 1], history_cap),
                    target: seq[n - 1],
                },
                train,
            });
        }
        Ok(Split { history_cap, users })
    }

    pub fn valid(&self) -> impl Iterator<Item = &Example> {
        self.users.iter().map(|u| &u.valid)
    }

    pub fn test(&self) -> impl Iterator<Item = &Example> {
        self.users.iter().map(|u| &u.test)
    }

    /// Training sequences, indexed by user.
    pub fn train_sequences(&self) -> impl Iterator<Item = &[u32]> {
        self.users.iter().map(|u| u.train.as_slice())
    }

    /// All (user, item) interactions of the training part.
    pub fn train_pairs(&self) -> impl Iterator<Item = (u32, u32)> + '_ {
        self.users
            .iter()
            .flat_map(|u| u.train.iter().map(move |&i| (u.user, i)))
    }

    /// Next-item examples inside the training part: for each position t >= 1 of a user's
    /// training sequence, the capped history before t and the item at t (what seqrec tasks and
    /// RL prompts are drawn from, with no validation or test target in sight).
    pub fn train_examples(&self) -> Vec<Example> {
        let mut out = Vec::new();
        for u in &self.users {
            for t in 1..u.train.len() {
                out.push(Example {
                    user: u.user,
                    history: last(&u.train[..t], self.history_cap),
                    target: u.train[t],
                });
            }
        }
        out
    }

    /// Reviews of training interactions only, as (user, item, review) in key order: the text an
    /// indexer may use without leaking validation or test targets.
    pub fn train_reviews<'a>(&self, ds: &'a Dataset) -> Vec<(u32, u32, &'a Review)> {
        ds.reviews
            .iter()
            .filter(|(&(u, i), _)| {
                self.users
                    .get(u as usize)
                    .is_some_and(|s| s.train.contains(&i))
            })
            .map(|(&(u, i), r)| (u, i, r))
            .collect()
    }

    /// The same, grouped by item: `out[i]` = the training reviews of item i.
    pub fn train_reviews_by_item<'a>(&self, ds: &'a Dataset) -> Vec<Vec<&'a Review>> {
        let mut out = vec![Vec::new(); ds.n_items()];
        for (_, i, r) in self.train_reviews(ds) {
            out[i as usize].push(r);
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::dataset::ItemMeta;

    fn ds(seqs: Vec<Vec<u32>>, n_items: usize) -> Dataset {
        Dataset {
            name: "t".into(),
            sequences: seqs,
            items: vec![ItemMeta::default(); n_items],
            ..Default::default()
        }
    }

    #[test]
    fn exactly_three_items() {
        let s = Split::new(&ds(vec![vec![4, 7, 9]], 10)).unwrap();
        let u = &s.users[0];
        assert_eq!(u.train, [4]);
        assert_eq!(
            u.valid,
            Example {
                user: 0,
                history: vec![4],
                target: 7
            }
        );
        assert_eq!(
            u.test,
            Example {
                user: 0,
                history: vec![4, 7],
                target: 9
            }
        );
        assert!(s.train_examples().is_empty());
        assert_eq!(s.train_pairs().collect::<Vec<_>>(), [(0, 4)]);
    }

    #[test]
    fn too_short_or_empty_is_an_error() {
        let e = Split::new(&ds(vec![vec![0, 1, 2], vec![1, 2]], 3)).unwrap_err();
        assert!(e.to_string().contains("user 1 has 2 interactions"), "{e}");
        assert!(Split::new(&ds(vec![], 3)).is_err());
    }

    #[test]
    fn history_cap() {
        let seq: Vec<u32> = (0..30).collect();
        let s = Split::with_cap(&ds(vec![seq], 30), 20).unwrap();
        let u = &s.users[0];
        assert_eq!(u.train.len(), 28);
        assert_eq!(u.valid.history, (8..28).collect::<Vec<_>>());
        assert_eq!(u.valid.target, 28);
        assert_eq!(u.test.history, (9..29).collect::<Vec<_>>());
        assert_eq!(u.test.target, 29);
        let ex = s.train_examples();
        assert_eq!(ex.len(), 27);
        assert_eq!((ex[0].history.clone(), ex[0].target), (vec![0], 1));
        assert_eq!(ex[26].history, (7..27).collect::<Vec<_>>());
        assert_eq!(ex[26].target, 27);
    }

    #[test]
    fn reviews_of_training_pairs_only() {
        let mut d = ds(vec![vec![0, 1, 2, 3]], 4);
        for i in 0..4 {
            d.reviews.insert(
                (0, i),
                Review {
                    review: Some(format!("r{i}")),
                    summary: None,
                },
            );
        }
        let s = Split::new(&d).unwrap();
        let kept: Vec<u32> = s.train_reviews(&d).iter().map(|r| r.1).collect();
        assert_eq!(kept, [0, 1]);
        let by_item = s.train_reviews_by_item(&d);
        assert_eq!(
            by_item.iter().map(Vec::len).collect::<Vec<_>>(),
            [1, 1, 0, 0]
        );
    }
}
