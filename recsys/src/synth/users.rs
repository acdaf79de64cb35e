//! Synthetic users and their purchase sequences.
//!
//! A user has a few preferred leaves of the category tree (tastes), a favourite brand per taste
//! with a loyalty strength, a preferred price level with a sensitivity, and a sequence length.
//! Each next item is, in order of precedence:
//! - an accessory of the previous item when it was a main product (complements), with
//!   probability `complement_prob`;
//! - a popularity-weighted draw from the whole catalogue (noise), with `noise_prob`;
//! - otherwise an item of the previous item's leaf (session momentum, `stay_prob`) or of a taste
//!   leaf, weighted by popularity, brand loyalty and price fit.
//!
//! Tastes drift: each step, with `drift_prob`, one taste moves to another leaf of the same top
//! category (or anywhere, one time in four). Items are never bought twice.

use super::catalogue::Catalogue;
use super::rng::Rng;
use super::words;
use super::SynthConfig;
use crate::dataset::Review;

pub struct Purchase {
    pub item: usize,
    pub time: f64,
    pub review: Review,
}

struct User {
    tastes: Vec<usize>,
    taste_weights: Vec<f64>,
    fav_brand: Vec<Option<usize>>,
    loyalty: f64,
    level: usize,
    price_sensitivity: f64,
}

/// Total item popularity per leaf: where users' first tastes are drawn from.
pub fn leaf_popularity(c: &Catalogue) -> Vec<f64> {
    c.leaves
        .iter()
        .map(|l| l.items.iter().map(|&i| c.items[i].popularity).sum())
        .collect()
}

/// A leaf near `leaf`: same top category three times in four.
fn neighbour_leaf(rng: &mut Rng, c: &Catalogue, leaf: usize, leaf_w: &[f64]) -> usize {
    if rng.chance(0.75) {
        let top = c.leaves[leaf].top;
        let same: Vec<usize> = (0..c.leaves.len())
            .filter(|&l| c.leaves[l].top == top)
            .collect();
        *rng.pick(&same)
    } else {
        rng.weighted(leaf_w).unwrap_or(leaf)
    }
}

fn favourite_brand(rng: &mut Rng, c: &Catalogue, leaf: usize) -> Option<usize> {
    let items = &c.leaves[leaf].items;
    if items.is_empty() {
        return None;
    }
    let w: Vec<f64> = items.iter().map(|&i| c.items[i].popularity).collect();
    rng.weighted(&w).map(|k| c.items[items[k]].brand)
}

fn new_user(rng: &mut Rng, c: &Catalogue, leaf_w: &[f64]) -> User {
    let first = rng.weighted(leaf_w).expect("catalogue has items");
    let mut tastes = vec![first];
    let n = rng.range(2, 3);
    while tastes.len() < n {
        let l = neighbour_leaf(rng, c, first, leaf_w);
        if !tastes.contains(&l) {
            tastes.push(l);
        }
    }
    let fav_brand = tastes.iter().map(|&l| favourite_brand(rng, c, l)).collect();
    User {
        taste_weights: [0.55, 0.3, 0.15][..tastes.len()].to_vec(),
        tastes,
        fav_brand,
        loyalty: 0.2 + 0.6 * rng.f64(),
        level: rng.below(words::PRICE_LEVELS.len()),
        price_sensitivity: 1.5 * rng.f64(),
    }
}

impl User {
    fn item_weight(&self, c: &Catalogue, i: usize, taste: Option<usize>) -> f64 {
        let it = &c.items[i];
        let mut w = it.popularity.powf(0.7);
        if taste.and_then(|t| self.fav_brand[t]) == Some(it.brand) {
            w *= 1.0 + 4.0 * self.loyalty;
        }
        w *= (-self.price_sensitivity * (it.level as f64 - self.level as f64).abs()).exp();
        if it.accessory {
            w *= 0.6;
        }
        w
    }

    /// Star rating: liked brands and fitting prices rate higher.
    fn rating(&self, rng: &mut Rng, c: &Catalogue, i: usize) -> u8 {
        let it = &c.items[i];
        let fav = self.fav_brand.contains(&Some(it.brand));
        let r = 4.1 + if fav { 0.5 } else { 0.0 }
            - 0.5 * (it.level as f64 - self.level as f64).abs()
            + 0.8 * rng.normal();
        r.round().clamp(1.0, 5.0) as u8
    }
}

fn review(rng: &mut Rng, c: &Catalogue, i: usize, stars: u8) -> Review {
    let it = &c.items[i];
    let (texts, summaries) = match stars {
        4..=5 => (words::REVIEW_GOOD, words::SUMMARY_GOOD),
        3 => (words::REVIEW_MEH, words::SUMMARY_MEH),
        _ => (words::REVIEW_BAD, words::SUMMARY_BAD),
    };
    let brand = &c.brands[it.brand].name;
    Review {
        review: Some(format!(
            "{} {} from {brand}: {}",
            stars_word(stars),
            it.noun.to_lowercase(),
            rng.pick(texts)
        )),
        summary: Some(rng.pick(summaries).to_string()),
    }
}

fn stars_word(stars: u8) -> &'static str {
    ["Terrible", "Poor", "Average", "Good", "Excellent"][(stars.clamp(1, 5) - 1) as usize]
}

pub fn sequence(rng: &mut Rng, c: &Catalogue, cfg: &SynthConfig, leaf_w: &[f64]) -> Vec<Purchase> {
    let mut user = new_user(rng, c, leaf_w);
    // Lengths skewed towards short sequences, as in real logs.
    let span = (cfg.max_len - cfg.min_len) as f64;
    let len = cfg.min_len + (span * rng.f64().powi(2)).round() as usize;
    let mut bought = vec![false; c.items.len()];
    let mut out: Vec<Purchase> = Vec::with_capacity(len);
    let mut time = 1.4e9 + rng.below(3 * 365) as f64 * 86_400.0;
    let mut attempts = 0;
    while out.len() < len && attempts < 20 * len {
        attempts += 1;
        if rng.chance(cfg.drift_prob) {
            let k = rng.below(user.tastes.len());
            let l = neighbour_leaf(rng, c, user.tastes[k], leaf_w);
            if !user.tastes.contains(&l) {
                user.tastes[k] = l;
                user.fav_brand[k] = favourite_brand(rng, c, l);
            }
        }
        let last = out.last().map(|p| p.item);
        let r = rng.f64();
        let pick = match last {
            Some(m) if r < cfg.complement_prob && !c.items[m].complements.is_empty() => {
                let accs = &c.items[m].complements;
                let w: Vec<f64> = accs
                    .iter()
                    .map(|&a| {
                        if bought[a] {
                            0.0
                        } else {
                            c.items[a].popularity.powf(0.3)
                        }
                    })
                    .collect();
                rng.weighted(&w).map(|k| accs[k])
            }
            _ if r < cfg.complement_prob + cfg.noise_prob => {
                let w: Vec<f64> = c
                    .items
                    .iter()
                    .enumerate()
                    .map(|(i, it)| if bought[i] { 0.0 } else { it.popularity })
                    .collect();
                rng.weighted(&w)
            }
            _ => {
                let (leaf, taste) = match last {
                    Some(m) if rng.chance(cfg.stay_prob) => {
                        let l = c.items[m].leaf;
                        (l, user.tastes.iter().position(|&t| t == l))
                    }
                    _ => {
                        let k = rng.weighted(&user.taste_weights).unwrap_or(0);
                        (user.tastes[k], Some(k))
                    }
                };
                let items = &c.leaves[leaf].items;
                let w: Vec<f64> = items
                    .iter()
                    .map(|&i| {
                        if bought[i] {
                            0.0
                        } else {
                            user.item_weight(c, i, taste)
                        }
                    })
                    .collect();
                rng.weighted(&w).map(|k| items[k])
            }
        };
        let Some(item) = pick else { continue };
        bought[item] = true;
        time += (rng.range(1, 45) * 86_400 + rng.below(86_400)) as f64;
        let stars = user.rating(rng, c, item);
        out.push(Purchase {
            item,
            time,
            review: review(rng, c, item, stars),
        });
    }
    out
}
