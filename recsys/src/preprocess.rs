//! From a raw interaction log to a `Dataset`: drop items without metadata, order each user's
//! interactions by time (stable, so ties keep file order), de-duplicate user-item pairs keeping
//! the first, k-core filter users and items to a fixed point, and re-index both 0-based.

use std::collections::{HashMap, HashSet};

use serde::Serialize;

use crate::dataset::{Dataset, ItemMeta, Review};
use crate::error::{DataError, Result};

/// Leave-one-out needs a train item, a validation target and a test target.
pub const MIN_SEQ_LEN: usize = 3;

/// One logged interaction with the source's own ids.
#[derive(Debug, Clone, PartialEq)]
pub struct RawInteraction {
    pub user: String,
    pub item: String,
    /// Any monotone time (unix seconds, or the position in the source when it has none).
    pub time: f64,
}

/// What an importer hands to `preprocess`.
#[derive(Debug, Clone, Default)]
pub struct RawLog {
    /// In source order; the order breaks timestamp ties.
    pub interactions: Vec<RawInteraction>,
    /// Metadata by source item id.
    pub items: HashMap<String, ItemMeta>,
    /// Reviews by (source user id, source item id).
    pub reviews: HashMap<(String, String), Review>,
}

#[derive(Debug, Clone, Serialize)]
pub struct PreprocessConfig {
    /// Minimum interactions per user and per item (default 5, SPEC.md). Users also always need
    /// `MIN_SEQ_LEN` (3) for the leave-one-out split. 0 or 1 disables the item side.
    pub k_core: usize,
    /// Treat items whose metadata has no title as having no metadata (the model's text for an
    /// item starts with its title). Default true.
    pub require_title: bool,
}

impl Default for PreprocessConfig {
    fn default() -> Self {
        PreprocessConfig {
            k_core: 5,
            require_title: true,
        }
    }
}

/// What each stage did; serialisable for the CLI's report.
#[derive(Debug, Clone, Default, Serialize, PartialEq)]
pub struct PreprocessReport {
    pub raw_interactions: usize,
    pub dropped_without_metadata: usize,
    pub dropped_duplicates: usize,
    pub k_core: usize,
    pub k_core_rounds: usize,
    pub dropped_by_k_core: usize,
    pub users: usize,
    pub items: usize,
    pub interactions: usize,
    /// `user_ids[u]` = the source id of user u (likewise items): the re-indexing map.
    #[serde(skip)]
    pub user_ids: Vec<String>,
    #[serde(skip)]
    pub item_ids: Vec<String>,
}

/// Keep-mask of the k-core of a bipartite interaction list: repeatedly drop every interaction
/// whose user has fewer than `user_min` or whose item has fewer than `item_min` surviving
/// interactions, until nothing changes. Returns the mask and the number of rounds that removed
/// something.
pub fn k_core_mask(pairs: &[(u32, u32)], user_min: usize, item_min: usize) -> (Vec<bool>, usize) {
    let n_users = pairs.iter().map(|p| p.0 as usize + 1).max().unwrap_or(0);
    let n_items = pairs.iter().map(|p| p.1 as usize + 1).max().unwrap_or(0);
    let mut keep = vec![true; pairs.len()];
    let mut rounds = 0;
    loop {
        let mut uc = vec![0usize; n_users];
        let mut ic = vec![0usize; n_items];
        for (&(u, i), _) in pairs.iter().zip(&keep).filter(|(_, &k)| k) {
            uc[u as usize] += 1;
            ic[i as usize] += 1;
        }
        let mut changed = false;
        for (k, &(u, i)) in keep.iter_mut().zip(pairs) {
            if *k && (uc[u as usize] < user_min || ic[i as usize] < item_min) {
                *k = false;
                changed = true;
            }
        }
        if !changed {
            return (keep, rounds);
        }
        rounds += 1;
    }
}

/// Sort source ids numerically when all are integers (so already-dense ids keep their order),
/// else lexicographically.
fn sorted_ids(ids: HashSet<&str>) -> Vec<String> {
    let mut ids: Vec<String> = ids.into_iter().map(str::to_string).collect();
    if ids.iter().all(|s| s.parse::<u64>().is_ok()) {
        ids.sort_by_key(|s| s.parse::<u64>().unwrap());
    } else {
        ids.sort();
    }
    ids
}

pub fn preprocess(
    name: &str,
    log: RawLog,
    cfg: &PreprocessConfig,
) -> Result<(Dataset, PreprocessReport)> {
    let mut report = PreprocessReport {
        raw_interactions: log.interactions.len(),
        k_core: cfg.k_core,
        ..Default::default()
    };
    let has_meta = |item: &str| {
        log.items
            .get(item)
            .is_some_and(|m| !cfg.require_title || m.title.is_some())
    };

    // Dense temporary ids in first-seen order, interactions without metadata dropped.
    let mut user_tmp: HashMap<&str, u32> = HashMap::new();
    let mut item_tmp: HashMap<&str, u32> = HashMap::new();
    let mut rows: Vec<(u32, u32, f64)> = Vec::with_capacity(log.interactions.len());
    for x in &log.interactions {
        if !has_meta(&x.item) {
            report.dropped_without_metadata += 1;
            continue;
        }
        let n = user_tmp.len() as u32;
        let u = *user_tmp.entry(x.user.as_str()).or_insert(n);
        let n = item_tmp.len() as u32;
        let i = *item_tmp.entry(x.item.as_str()).or_insert(n);
        rows.push((u, i, x.time));
    }

    // Chronological per user; sort_by is stable, so equal times keep source order.
    rows.sort_by(|a, b| a.0.cmp(&b.0).then(a.2.total_cmp(&b.2)));
    let mut seen = HashSet::new();
    rows.retain(|&(u, i, _)| seen.insert((u, i)));
    report.dropped_duplicates =
        report.raw_interactions - report.dropped_without_metadata - rows.len();

    let pairs: Vec<(u32, u32)> = rows.iter().map(|&(u, i, _)| (u, i)).collect();
    let (keep, rounds) = k_core_mask(&pairs, cfg.k_core.max(MIN_SEQ_LEN), cfg.k_core);
    report.k_core_rounds = rounds;
    let kept: Vec<(u32, u32)> = pairs
        .iter()
        .zip(&keep)
        .filter(|(_, &k)| k)
        .map(|(p, _)| *p)
        .collect();
    report.dropped_by_k_core = pairs.len() - kept.len();
    tracing::info!(
        raw = report.raw_interactions,
        without_metadata = report.dropped_without_metadata,
        duplicates = report.dropped_duplicates,
        k_core = cfg.k_core,
        rounds,
        dropped_by_k_core = report.dropped_by_k_core,
        "preprocessed interactions"
    );
    if kept.is_empty() {
        return Err(DataError::Empty {
            msg: format!(
                "dataset {name:?} is empty after filtering: {} raw interactions, {} without \
                 metadata, {} duplicates, {} removed by the {}-core filter",
                report.raw_interactions,
                report.dropped_without_metadata,
                report.dropped_duplicates,
                report.dropped_by_k_core,
                cfg.k_core
            ),
        });
    }

    // Final ids: sorted source ids, so the result does not depend on file order.
    let user_src: Vec<&str> = {
        let mut v = vec![""; user_tmp.len()];
        user_tmp.iter().for_each(|(s, &t)| v[t as usize] = s);
        v
    };
    let item_src: Vec<&str> = {
        let mut v = vec![""; item_tmp.len()];
        item_tmp.iter().for_each(|(s, &t)| v[t as usize] = s);
        v
    };
    let user_ids = sorted_ids(kept.iter().map(|p| user_src[p.0 as usize]).collect());
    let item_ids = sorted_ids(kept.iter().map(|p| item_src[p.1 as usize]).collect());
    let user_new: HashMap<&str, u32> = user_ids
        .iter()
        .enumerate()
        .map(|(k, s)| (s.as_str(), k as u32))
        .collect();
    let item_new: HashMap<&str, u32> = item_ids
        .iter()
        .enumerate()
        .map(|(k, s)| (s.as_str(), k as u32))
        .collect();

    let mut sequences = vec![Vec::new(); user_ids.len()];
    for &(u, i) in &kept {
        sequences[user_new[user_src[u as usize]] as usize].push(item_new[item_src[i as usize]]);
    }
    let items: Vec<ItemMeta> = item_ids.iter().map(|s| log.items[s].clone()).collect();
    let kept_pairs: HashSet<(u32, u32)> = sequences
        .iter()
        .enumerate()
        .flat_map(|(u, s)| s.iter().map(move |&i| (u as u32, i)))
        .collect();
    let reviews = log
        .reviews
        .into_iter()
        .filter_map(|((us, is), r)| {
            let key = (*user_new.get(us.as_str())?, *item_new.get(is.as_str())?);
            kept_pairs.contains(&key).then_some((key, r))
        })
        .collect();

    report.users = user_ids.len();
    report.items = item_ids.len();
    report.interactions = kept.len();
    report.user_ids = user_ids;
    report.item_ids = item_ids;
    let ds = Dataset {
        name: name.to_string(),
        sequences,
        items,
        reviews,
        index: None,
    };
    tracing::info!(
        users = report.users,
        items = report.items,
        interactions = report.interactions,
        "dataset {name} ready"
    );
    Ok((ds, report))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn titled(t: &str) -> ItemMeta {
        ItemMeta {
            title: Some(t.into()),
            ..Default::default()
        }
    }

    fn log(rows: &[(&str, &str, f64)], items: &[&str]) -> RawLog {
        RawLog {
            interactions: rows
                .iter()
                .map(|&(u, i, t)| RawInteraction {
                    user: u.into(),
                    item: i.into(),
                    time: t,
                })
                .collect(),
            items: items.iter().map(|&i| (i.to_string(), titled(i))).collect(),
            reviews: HashMap::new(),
        }
    }

    /// Every user rates every item: already a k-core, nothing is removed, 0 rounds.
    #[test]
    fn complete_block_is_already_k_core() {
        let pairs: Vec<(u32, u32)> = (0..5).flat_map(|u| (0..5).map(move |i| (u, i))).collect();
        let (keep, rounds) = k_core_mask(&pairs, 5, 5);
        assert!(keep.iter().all(|&k| k));
        assert_eq!(rounds, 0);
    }

    /// A 5x5 complete block plus a chain hanging off it: user 5 has 5 items, of which item 5 is
    /// only shared with users 6.. that have fewer than 5 items. Removing those users leaves item
    /// 5 with one interaction; removing it leaves user 5 with 4; the cascade removes the chain and
    /// nothing of the block.
    #[test]
    fn cascade_through_a_chain() {
        let mut pairs: Vec<(u32, u32)> = (0..5).flat_map(|u| (0..5).map(move |i| (u, i))).collect();
        pairs.extend([(5, 0), (5, 1), (5, 2), (5, 3), (5, 5)]);
        for u in 6..10 {
            pairs.extend([(u, 5), (u, 0)]);
        }
        let (keep, rounds) = k_core_mask(&pairs, 5, 5);
        let kept: Vec<_> = pairs
            .iter()
            .zip(&keep)
            .filter(|(_, &k)| k)
            .map(|(p, _)| *p)
            .collect();
        assert_eq!(kept.len(), 25);
        assert!(kept.iter().all(|&(u, i)| u < 5 && i < 5));
        assert_eq!(rounds, 3); // users 6-9; then item 5; then user 5
    }

    #[test]
    fn order_dedupe_and_reindex() {
        // Times out of file order, a tie (file order kept), a duplicate pair (first kept), and an
        // item without metadata (dropped).
        let l = log(
            &[
                ("ub", "i2", 30.0),
                ("ub", "i1", 10.0),
                ("ub", "i3", 20.0),
                ("ub", "i1", 40.0),
                ("ub", "nometa", 5.0),
                ("ua", "i3", 1.0),
                ("ua", "i2", 1.0),
                ("ua", "i1", 2.0),
            ],
            &["i1", "i2", "i3"],
        );
        let cfg = PreprocessConfig {
            k_core: 0,
            ..Default::default()
        };
        let (ds, rep) = preprocess("t", l, &cfg).unwrap();
        assert_eq!(rep.user_ids, ["ua", "ub"]);
        assert_eq!(rep.item_ids, ["i1", "i2", "i3"]);
        assert_eq!(ds.sequences, vec![vec![2, 1, 0], vec![0, 2, 1]]);
        assert_eq!(
            (rep.dropped_without_metadata, rep.dropped_duplicates),
            (1, 1)
        );
        assert_eq!(ds.items[2].title.as_deref(), Some("i3"));
    }

    #[test]
    fn everything_filtered_is_an_error() {
        let l = log(
            &[("u", "i1", 0.0), ("u", "i2", 1.0), ("v", "i1", 0.0)],
            &["i1", "i2"],
        );
        let e = preprocess("t", l, &PreprocessConfig::default()).unwrap_err();
        assert!(matches!(e, DataError::Empty { .. }));
        assert!(e.to_string().contains("empty after filtering"), "{e}");
    }

    #[test]
    fn untitled_items_count_as_without_metadata() {
        let mut l = log(
            &[
                ("u", "a", 0.0),
                ("u", "b", 1.0),
                ("u", "c", 2.0),
                ("u", "d", 3.0),
            ],
            &["a", "b", "c"],
        );
        l.items.insert("d".into(), ItemMeta::default());
        let cfg = PreprocessConfig {
            k_core: 1,
            ..Default::default()
        };
        let (ds, rep) = preprocess("t", l.clone(), &cfg).unwrap();
        assert_eq!((ds.n_items(), rep.dropped_without_metadata), (3, 1));
        let cfg = PreprocessConfig {
            k_core: 1,
            require_title: false,
        };
        assert_eq!(preprocess("t", l, &cfg).unwrap().0.n_items(), 4);
    }
}
