//! `synth`: the embedded default dataset, an Amazon-like catalogue and purchase log generated
//! from a seed (no third-party data). Same config, same bytes: sampling uses only ChaCha8's raw
//! stream (see `rng`), and the result goes through the same preprocessing as imported logs
//! (5-core filter, re-indexing), which reports what it removed.
//!
//! Default size (600 items, 1,500 users, sequences of 5-30 before filtering) keeps the whole
//! demo — indexing, SFT, SRPO, evaluation — within minutes on a 2-core CPU.

mod catalogue;
mod rng;
mod users;
mod words;

use serde::{Deserialize, Serialize};

use crate::dataset::Dataset;
use crate::error::{DataError, Result};
use crate::preprocess::{preprocess, PreprocessConfig, PreprocessReport, RawInteraction, RawLog};

pub use words::TREE as CATEGORY_TREE;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct SynthConfig {
    pub name: String,
    pub seed: u64,
    pub users: usize,
    pub items: usize,
    /// Sequence lengths before filtering, inclusive.
    pub min_len: usize,
    pub max_len: usize,
    /// P(next item is an accessory of the previous main product).
    pub complement_prob: f64,
    /// P(next item is a popularity draw unrelated to the user's tastes).
    pub noise_prob: f64,
    /// P(a taste moves to another leaf) per step.
    pub drift_prob: f64,
    /// P(staying in the previous item's leaf) when choosing by taste.
    pub stay_prob: f64,
    /// k-core filter applied to the generated log (SPEC.md: 5).
    pub k_core: usize,
}

impl Default for SynthConfig {
    fn default() -> Self {
        SynthConfig {
            name: "synth".into(),
            seed: 42,
            users: 1500,
            items: 600,
            min_len: 5,
            max_len: 30,
            complement_prob: 0.45,
            noise_prob: 0.1,
            drift_prob: 0.08,
            stay_prob: 0.4,
            k_core: 5,
        }
    }
}

impl SynthConfig {
    fn check(&self) -> Result<()> {
        let bad = |msg: String| Err(DataError::Config { msg });
        let n_leaves: usize = words::TREE.iter().map(|t| t.1.len()).sum();
        if self.items < 2 * n_leaves {
            return bad(format!(
                "synth needs at least {} items (2 per category leaf)",
                2 * n_leaves
            ));
        }
        if self.users == 0 {
            return bad("synth needs at least one user".into());
        }
        if self.min_len < 3 || self.max_len < self.min_len || self.max_len > self.items / 2 {
            return bad(format!(
                "sequence lengths {}..={} must satisfy 3 <= min <= max <= items/2",
                self.min_len, self.max_len
            ));
        }
        for (what, p) in [
            ("complement_prob", self.complement_prob),
            ("noise_prob", self.noise_prob),
            ("drift_prob", self.drift_prob),
            ("stay_prob", self.stay_prob),
        ] {
            if !(0.0..=1.0).contains(&p) {
                return bad(format!("{what} = {p} is not a probability"));
            }
        }
        if self.complement_prob + self.noise_prob > 1.0 {
            return bad("complement_prob + noise_prob must not exceed 1".into());
        }
        Ok(())
    }
}

/// The generated dataset and what the k-core filter did to it.
pub fn synth_with_report(cfg: &SynthConfig) -> Result<(Dataset, PreprocessReport)> {
    cfg.check()?;
    let mut rng = rng::Rng::new(cfg.seed);
    let cat = catalogue::build(&mut rng, cfg.items);
    let leaf_w = users::leaf_popularity(&cat);
    let mut log = RawLog::default();
    // Zero-padded ids keep the re-indexing in generation order.
    let (uw, iw) = (cfg.users.to_string().len(), cfg.items.to_string().len());
    let item_id = |i: usize| format!("i{i:0iw$}");
    for (i, it) in cat.items.iter().enumerate() {
        log.items.insert(item_id(i), it.meta.clone());
    }
    for u in 0..cfg.users {
        let user = format!("u{u:0uw$}");
        for p in users::sequence(&mut rng, &cat, cfg, &leaf_w) {
            log.reviews
                .insert((user.clone(), item_id(p.item)), p.review);
            log.interactions.push(RawInteraction {
                user: user.clone(),
                item: item_id(p.item),
                time: p.time,
            });
        }
    }
    let pre_cfg = PreprocessConfig {
        k_core: cfg.k_core,
        require_title: true,
    };
    let (ds, report) = preprocess(&cfg.name, log, &pre_cfg)?;
    tracing::info!(
        seed = cfg.seed,
        users = ds.n_users(),
        items = ds.n_items(),
        interactions = ds.n_interactions(),
        dropped_users = cfg.users - ds.n_users(),
        dropped_items = cfg.items - ds.n_items(),
        "synthetic dataset generated ({}-core filtered)",
        cfg.k_core
    );
    Ok((ds, report))
}

/// The embedded default dataset for `cfg` (see `synth_with_report` for the filter report).
pub fn synth(cfg: &SynthConfig) -> Result<Dataset> {
    synth_with_report(cfg).map(|r| r.0)
}
